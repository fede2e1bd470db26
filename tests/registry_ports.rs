//! Exposed ports from the image's registry, against real registry servers on loopback: `crane registry
//! serve` (go-containerregistry; no challenge), the CNCF distribution registry with htpasswd authentication
//! (a Basic challenge), and the same registry with token authentication (a Bearer challenge, anonymous pull
//! tokens from hack/registry/tokenserver, as public registries issue them), all built from the Go modules
//! pinned in hack/registry/go.mod by `hack/registry/registry.sh`, with images pushed by crane (no Docker
//! daemon): one exposing 80/tcp and 443/tcp, a multi-platform index whose platforms expose different ports,
//! one exposing nothing, and a private one behind credentials that a `config.json` written by the test holds
//! (crane pushes with it too).
//!
//! Through the paths a user takes: the SDK's spawn of a spec without ports (on the emulator or a real
//! cluster), and the `tycho run IMAGE --browser` binary with no `-p` and a `$BROWSER` recorder, which opens
//! the tunnelled page (where a kubelet runs containers). An unreachable registry, or an image that exposes
//! nothing, makes `--browser` a usage error asking for `-p` (exit code 2).
//!
//! Without Go, or when the registries do not build, the tests that need them say `SKIPPED` with the reason.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use common::{TestCluster, eventually, skip};
use tokio::process::Command;
use tycho_model::System;
use tycho_sdk::ContainerSpec;
use tycho_sdk::registry::{RegistryError, RegistryOptions};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pw";
const BOOT: Duration = Duration::from_secs(60);

/// The folder of the built registries (`registry.sh build`, once per test binary), or why not.
fn registry_bin() -> Result<&'static PathBuf, &'static str> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/registry/registry.sh");
        let out = std::process::Command::new(&script)
            .arg("build")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().rev().take(3).collect::<Vec<_>>();
            return Err(format!(
                "hack/registry/registry.sh build failed (Go and the module proxy are needed): {}",
                last.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ));
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    })
    .as_ref()
    .map_err(String::as_str)
}

/// The registries' folder, or `None` after reporting the skip of `test`.
fn registries_or_skip(test: &str) -> Option<&'static PathBuf> {
    match registry_bin() {
        Ok(bin) => Some(bin),
        Err(why) => {
            skip(test, &format!("no registry server to test against: {why}"));
            None
        }
    }
}

/// Which registry `registry.sh serve` runs.
#[derive(Clone, Copy, PartialEq)]
enum Auth {
    /// `crane registry serve`: no challenge.
    None,
    /// The distribution registry, every request needing [`USER`]:[`PASSWORD`] (Basic challenge).
    Basic,
    /// The distribution registry with token authentication: anonymous pull tokens, push tokens for
    /// [`USER`]:[`PASSWORD`] (Bearer challenge).
    Bearer,
}

/// A registry served by `registry.sh serve`, stopped when dropped.
struct Served {
    addr: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// `registry.sh serve [--auth USER:PASSWORD] [--bearer]`: its address once `/v2/` answers (200, or 401
    /// with auth).
    async fn start(auth: Auth) -> Served {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = std::process::Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/hack/registry/registry.sh"
        ));
        cmd.arg("serve").args(["--dir"]).arg(dir.path());
        if auth != Auth::None {
            cmd.args(["--auth", &format!("{USER}:{PASSWORD}")]);
        }
        if auth == Auth::Bearer {
            cmd.arg("--bearer");
        }
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start registry.sh serve");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().to_string();
        let served = Served {
            addr,
            child,
            _dir: dir,
        };
        let sock = served.addr.parse().expect("registry.sh prints HOST:PORT");
        let up = eventually(Duration::from_secs(30), || async {
            let (code, _) = common::http_get(sock, "/v2/").await?;
            matches!(code, 200 | 401).then_some(())
        })
        .await;
        assert!(
            up.is_some(),
            "the registry at {} did not answer; its log: {}",
            served.addr,
            std::fs::read_to_string(served._dir.path().join("serve.log")).unwrap_or_default()
        );
        served
    }

    /// What the server printed on stderr so far (the token server logs every token it issues).
    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("serve.log")).unwrap_or_default()
    }
}

/// A folder holding a Docker `config.json` with `auths` for `registry` (none when `auth` is `None`).
fn docker_config(registry: &str, auth: Option<(&str, &str)>) -> tempfile::TempDir {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let auths = match auth {
        Some((u, p)) => serde_json::json!({
            registry: {"auth": base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))}
        }),
        None => serde_json::json!({}),
    };
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::json!({ "auths": auths }).to_string(),
    )
    .unwrap();
    dir
}

/// Run crane (plain HTTP to loopback) with `DOCKER_CONFIG`; panics with its output when it fails.
fn crane(bin: &Path, docker_config: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(bin.join("crane"))
        .args(args)
        .arg("--insecure")
        .env("DOCKER_CONFIG", docker_config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "crane {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Push `ADDR/base:1` (one small layer, no ports) and return its reference.
fn push_base(bin: &Path, addr: &str, docker_config: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hello.txt"),
        "pushed by crane for tycho's tests\n",
    )
    .unwrap();
    let layer = dir.path().join("layer.tar");
    let st = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&layer)
        .arg("-C")
        .arg(dir.path())
        .arg("hello.txt")
        .status()
        .unwrap();
    assert!(st.success(), "tar");
    let base = format!("{addr}/base:1");
    crane(
        bin,
        docker_config,
        &[
            "append",
            "-b",
            "",
            "-f",
            layer.to_str().unwrap(),
            "-t",
            &base,
        ],
    );
    base
}

/// `base` with `ports` exposed (and the platform set), pushed as `target`.
fn push_with_ports(
    bin: &Path,
    docker_config: &Path,
    base: &str,
    ports: &str,
    platform: &str,
    target: &str,
) {
    crane(
        bin,
        docker_config,
        &[
            "mutate",
            base,
            "--exposed-ports",
            ports,
            "--set-platform",
            platform,
            "-t",
            target,
        ],
    );
}

/// The public images on the anonymous registry at `addr`:
/// - `library/nginx:latest` (linux/amd64) exposing 80/tcp and 443/tcp;
/// - `multi:latest`, an index of linux/amd64 (exposing 9090/tcp) and linux/arm64 (8080/tcp);
/// - `base:1`, exposing nothing.
fn push_public(bin: &Path, addr: &str) {
    let none = docker_config(addr, None);
    let base = push_base(bin, addr, none.path());
    push_with_ports(
        bin,
        none.path(),
        &base,
        "80/tcp,443/tcp",
        "linux/amd64",
        &format!("{addr}/library/nginx:latest"),
    );
    push_with_ports(
        bin,
        none.path(),
        &base,
        "9090/tcp",
        "linux/amd64",
        &format!("{addr}/multi:amd64"),
    );
    push_with_ports(
        bin,
        none.path(),
        &base,
        "8080/tcp,53/udp",
        "linux/arm64",
        &format!("{addr}/multi:arm64"),
    );
    crane(
        bin,
        none.path(),
        &[
            "index",
            "append",
            "-m",
            &format!("{addr}/multi:arm64"),
            "-m",
            &format!("{addr}/multi:amd64"),
            "-t",
            &format!("{addr}/multi:latest"),
        ],
    );
    let index = crane(
        bin,
        none.path(),
        &["manifest", &format!("{addr}/multi:latest")],
    );
    assert!(
        index.contains("\"arm64\"") && index.contains("\"amd64\""),
        "{index}"
    );
}

/// Registry options reading `docker_config` and caching in `cache`.
fn options(docker_config: &Path, cache: &Path) -> RegistryOptions {
    RegistryOptions {
        docker_config: Some(docker_config.join("config.json")),
        cache_dir: Some(cache.to_path_buf()),
        ..RegistryOptions::default()
    }
}

/// The ports for this machine's architecture in `multi:latest`: its amd64 entry exposes 9090, arm64 8080.
fn multi_ports_here() -> Vec<u16> {
    match std::env::consts::ARCH {
        "aarch64" => vec![8080],
        _ => vec![9090],
    }
}

/// The container ports of the System a container was spawned as.
async fn system_ports(cluster: &TestCluster, name: &str) -> (Vec<i32>, tycho_model::Expose) {
    let system = cluster.api::<System>().get(name).await.unwrap();
    let ports = system.spec.containers[0]
        .ports
        .iter()
        .map(|p| p.port)
        .collect();
    (ports, system.spec.expose)
}

/// The SDK's spawn of a spec without ports exposes the image's TCP ports — the platform's of a
/// multi-platform index — and its tunnel serves; given ports, or `image_ports(false)`, keep the registry
/// out of it; the answers are cached on disk.
#[tokio::test]
async fn sdk_spawn_exposes_the_image_ports() {
    let test = "sdk_spawn_exposes_the_image_ports";
    let Some(bin) = registries_or_skip(test) else {
        return;
    };
    let registry = Served::start(Auth::None).await;
    let addr = registry.addr.clone();
    push_public(bin, &addr);
    let cluster = TestCluster::start().await;
    let _controller = cluster.run_controller(|_| {}).await;
    let none = docker_config(&addr, None);
    let cache = tempfile::tempdir().unwrap();
    let opts = options(none.path(), cache.path());
    let location = cluster.sdk_location(Duration::from_secs(10)).await;

    let web = location
        .spawn(ContainerSpec::new(format!("{addr}/library/nginx")).registry(opts.clone()))
        .await
        .unwrap();
    assert_eq!(web.ports(), [80, 443]);
    let (ports, expose) = system_ports(&cluster, web.name()).await;
    assert_eq!(ports, [80, 443]);
    assert_eq!(expose, tycho_model::Expose::ClusterIP);

    let multi = location
        .spawn(ContainerSpec::new(format!("{addr}/multi")).registry(opts.clone()))
        .await
        .unwrap();
    assert_eq!(multi.ports(), multi_ports_here());
    for (platform, ports) in [("linux/arm64", vec![8080]), ("linux/amd64", vec![9090])] {
        let config = RegistryOptions {
            platform: Some(platform.into()),
            ..opts.clone()
        }
        .image_config(&format!("{addr}/multi:latest"))
        .await
        .unwrap();
        assert_eq!(
            (config.platform.as_str(), config.tcp_ports()),
            (platform, ports)
        );
    }
    let arm = RegistryOptions {
        platform: Some("linux/arm64".into()),
        ..opts.clone()
    }
    .image_config(&format!("{addr}/multi"))
    .await
    .unwrap();
    assert_eq!(
        arm.exposed_ports
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["53/udp", "8080/tcp"],
        "UDP is listed, but only TCP can be tunnelled"
    );

    let bare = location
        .spawn(ContainerSpec::new(format!("{addr}/base:1")).registry(opts.clone()))
        .await
        .unwrap();
    assert!(bare.ports().is_empty());
    assert_eq!(
        system_ports(&cluster, bare.name()).await,
        (vec![], tycho_model::Expose::None)
    );
    let given = location
        .spawn(
            ContainerSpec::new(format!("{addr}/library/nginx"))
                .port(8000)
                .registry(opts.clone()),
        )
        .await
        .unwrap();
    assert_eq!(given.ports(), [8000]);
    let off = location
        .spawn(
            ContainerSpec::new(format!("{addr}/library/nginx"))
                .registry(opts.clone())
                .image_ports(false),
        )
        .await
        .unwrap();
    assert!(off.ports().is_empty());

    // Cached: asked again once the registry is gone, the answer comes from disk; not without the cache.
    let cached = opts
        .image_config(&format!("{addr}/library/nginx:latest"))
        .await
        .unwrap();
    assert!(cached.from_cache);
    assert_eq!(cached.tcp_ports(), [80, 443]);
    assert_eq!(cached.reference, format!("{addr}/library/nginx:latest"));
    drop(registry);
    let again = opts
        .image_config(&format!("{addr}/library/nginx"))
        .await
        .unwrap();
    assert!(again.from_cache);
    assert_eq!(again.tcp_ports(), [80, 443]);
    let uncached = RegistryOptions {
        cache_ttl: Duration::ZERO,
        ..opts.clone()
    }
    .image_config(&format!("{addr}/library/nginx"))
    .await;
    assert!(
        matches!(uncached, Err(RegistryError::Unreachable { ref registry, .. }) if *registry == addr),
        "{uncached:?}"
    );
    // The spawn goes on without ports when the registry cannot be read.
    let unread = location
        .spawn(
            ContainerSpec::new(format!("{addr}/other")).registry(RegistryOptions {
                cache_ttl: Duration::ZERO,
                ..opts.clone()
            }),
        )
        .await
        .unwrap();
    assert!(unread.ports().is_empty());

    if common::runs_containers(&cluster.client).await {
        web.wait_ready(BOOT).await.unwrap();
        let tunnel = web
            .wait_http_200(None, None, "/", BOOT)
            .await
            .expect("HTTP 200 through the tunnel to the image's first port");
        assert_eq!(tunnel.remote_port(), 80);
        let (code, body) = common::http_get(([127, 0, 0, 1], tunnel.local_port()).into(), "/")
            .await
            .unwrap();
        assert_eq!(code, 200);
        assert!(body.contains("Welcome to nginx!"), "{body}");
    } else {
        skip(
            test,
            "the tunnel to the image's port needs a kubelet that runs containers (this cluster's nodes are kwok fakes)",
        );
    }
    location.close().await.unwrap();
    cluster.cleanup().await;
}

/// A private image: refused without credentials and with wrong ones, read with those of the
/// `config.json` (as `docker login` writes them, or from the credential store it names) — by the SDK's
/// spawn and `tycho run` too.
#[tokio::test]
async fn private_image_with_docker_config_credentials() {
    let test = "private_image_with_docker_config_credentials";
    let Some(bin) = registries_or_skip(test) else {
        return;
    };
    let registry = Served::start(Auth::Basic).await;
    let addr = registry.addr.clone();
    let creds = docker_config(&addr, Some((USER, PASSWORD)));
    let base = push_base(bin, &addr, creds.path());
    let image = format!("{addr}/private/nginx:1");
    push_with_ports(bin, creds.path(), &base, "8080/tcp", "linux/amd64", &image);

    let cache = tempfile::tempdir().unwrap();
    let config = options(creds.path(), cache.path())
        .image_config(&image)
        .await
        .unwrap();
    assert_eq!(config.tcp_ports(), [8080]);
    assert!(!config.from_cache);

    let none = docker_config(&addr, None);
    let anonymous = options(none.path(), tempfile::tempdir().unwrap().path())
        .image_config(&image)
        .await;
    match anonymous {
        Err(
            e @ RegistryError::Unauthorized {
                with_credentials: false,
                ..
            },
        ) => {
            let text = e.to_string();
            assert!(
                text.contains("without credentials") && text.contains("config.json"),
                "{text}"
            );
        }
        other => panic!("expected Unauthorized without credentials, got {other:?}"),
    }
    let wrong = docker_config(&addr, Some((USER, "wrong")));
    let refused = options(wrong.path(), tempfile::tempdir().unwrap().path())
        .image_config(&image)
        .await;
    assert!(
        matches!(
            refused,
            Err(RegistryError::Unauthorized {
                with_credentials: true,
                ..
            })
        ),
        "{refused:?}"
    );
    // `docker login`'s key for a registry may carry a scheme and path.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::json!({"auths": {format!("http://{addr}/v2/"): {"username": USER, "password": PASSWORD}}})
            .to_string(),
    )
    .unwrap();
    let config = options(dir.path(), tempfile::tempdir().unwrap().path())
        .image_config(&image)
        .await
        .unwrap();
    assert_eq!(config.tcp_ports(), [8080]);

    // A credential store instead (`credsStore`, as Docker Desktop writes it): `docker-credential-NAME get`
    // is asked with the registry on its standard input, as Docker does; `tycho run` finds it on PATH.
    let store = tempfile::tempdir().unwrap();
    let asked = store.path().join("asked");
    let helper = store.path().join("docker-credential-tychotest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\necho \"$server\" > {}\n\
             echo '{{\"ServerURL\":\"'\"$server\"'\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n",
            asked.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        store.path().join("config.json"),
        serde_json::json!({"auths": {}, "credsStore": "tychotest"}).to_string(),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        store.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tycho"))
        .args([
            "run",
            "--browser",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            &image,
        ])
        .env("DOCKER_CONFIG", store.path())
        .env("XDG_CACHE_HOME", cache.path())
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("Exposed ports of {image} (linux/amd64): 8080")),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "then no cluster: {stderr}");
    assert_eq!(std::fs::read_to_string(&asked).unwrap().trim(), addr);

    let cluster = TestCluster::start().await;
    let _controller = cluster.run_controller(|_| {}).await;
    let location = cluster.sdk_location(Duration::from_secs(10)).await;
    let c = location
        .spawn(
            ContainerSpec::new(&image)
                .registry(options(creds.path(), tempfile::tempdir().unwrap().path())),
        )
        .await
        .unwrap();
    assert_eq!(c.ports(), [8080]);
    assert_eq!(system_ports(&cluster, c.name()).await.0, [8080]);
    location.close().await.unwrap();
    cluster.cleanup().await;
}

/// A public image on a registry that answers with a Bearer challenge: read with an anonymous pull token
/// from the token endpoint the challenge names (and with a credentialed one when there are credentials);
/// wrong credentials are refused by the token service.
#[tokio::test]
async fn public_image_behind_anonymous_bearer_tokens() {
    let test = "public_image_behind_anonymous_bearer_tokens";
    let Some(bin) = registries_or_skip(test) else {
        return;
    };
    let registry = Served::start(Auth::Bearer).await;
    let addr = registry.addr.clone();
    let sock = addr.parse().unwrap();
    let (code, _) = common::http_get(sock, "/v2/").await.unwrap();
    assert_eq!(code, 401, "a Bearer challenge");
    let creds = docker_config(&addr, Some((USER, PASSWORD)));
    let base = push_base(bin, &addr, creds.path());
    let image = format!("{addr}/tycho/app:1");
    push_with_ports(bin, creds.path(), &base, "3000/tcp", "linux/amd64", &image);

    let none = docker_config(&addr, None);
    let config = options(none.path(), tempfile::tempdir().unwrap().path())
        .image_config(&image)
        .await
        .unwrap();
    assert_eq!(config.tcp_ports(), [3000]);
    let log = registry.log();
    assert!(
        log.contains("token: anonymous repository:tycho/app:pull granted pull"),
        "an anonymous pull token was issued:\n{log}"
    );
    let config = options(creds.path(), tempfile::tempdir().unwrap().path())
        .image_config(&image)
        .await
        .unwrap();
    assert_eq!(config.tcp_ports(), [3000]);
    let log = registry.log();
    assert!(
        log.contains(&format!(
            "token: {USER} repository:tycho/app:pull granted pull"
        )),
        "the credentials went to the token endpoint:\n{log}"
    );
    let wrong = docker_config(&addr, Some((USER, "wrong")));
    let refused = options(wrong.path(), tempfile::tempdir().unwrap().path())
        .image_config(&image)
        .await;
    assert!(
        matches!(
            refused,
            Err(RegistryError::Unauthorized {
                with_credentials: true,
                ..
            })
        ),
        "{refused:?}"
    );

    let cluster = TestCluster::start().await;
    let _controller = cluster.run_controller(|_| {}).await;
    let location = cluster.sdk_location(Duration::from_secs(10)).await;
    let c = location
        .spawn(
            ContainerSpec::new(&image)
                .registry(options(none.path(), tempfile::tempdir().unwrap().path())),
        )
        .await
        .unwrap();
    assert_eq!(c.ports(), [3000]);
    location.close().await.unwrap();
    cluster.cleanup().await;
}

/// `tycho run IMAGE --browser` as a process, with no `-p`: `$XDG_CACHE_HOME`, `$DOCKER_CONFIG` and
/// `$BROWSER` of the test's own.
struct Run {
    child: tokio::process::Child,
    state: PathBuf,
    browser_record: PathBuf,
    dir: tempfile::TempDir,
}

fn tycho_run(cluster: &TestCluster, image: &str, docker_config: &Path) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (script, record) = common::browser_recorder(dir.path());
    let child = Command::new(env!("CARGO_BIN_EXE_tycho"))
        .arg("run")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["-n", &cluster.namespace, "--browser", "--json"])
        .arg(&state)
        .arg(image)
        .env("BROWSER", &script)
        .env("DOCKER_CONFIG", docker_config)
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start tycho run");
    Run {
        child,
        state,
        browser_record: record,
        dir,
    }
}

impl Run {
    /// The state file, once written; panics with the process's output if it exits first.
    async fn state(&mut self) -> serde_json::Value {
        let path = self.state.clone();
        let found = eventually(BOOT, || async {
            let text = std::fs::read_to_string(&path).ok()?;
            serde_json::from_str::<serde_json::Value>(&text).ok()
        })
        .await;
        match found {
            Some(v) => v,
            None => {
                let _ = self.child.start_kill();
                let out = output_of(&mut self.child).await;
                panic!("tycho run wrote no state file; it printed:\n{out}");
            }
        }
    }

    /// The URL the browser was opened with.
    async fn browser_url(&self) -> String {
        let record = self.browser_record.clone();
        eventually(BOOT, || async {
            let url = std::fs::read_to_string(&record).ok()?.trim().to_string();
            (!url.is_empty()).then_some(url)
        })
        .await
        .expect("the browser was opened")
    }

    /// End it with SIGINT; its exit code and stderr.
    async fn interrupt(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().expect("running").to_string();
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("tycho run exits after SIGINT")
            .unwrap();
        let stderr = output_of(&mut self.child).await;
        (status.code(), stderr)
    }
}

/// What `child` printed on stderr (and stdout), after it exited.
async fn output_of(child: &mut tokio::process::Child) -> String {
    use tokio::io::AsyncReadExt;
    let _ = child.wait().await;
    let mut text = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut text).await;
    }
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut text).await;
    }
    text
}

/// Check a `tycho run --browser IMAGE` with no `-p`: it names the image's `reference` (normalised),
/// `platform` and `ports`; the state lists the ports (container ports, ascending); the browser got the
/// first one's URL, which serves the page; SIGINT ends it with 130.
async fn run_opens_the_page(
    cluster: &TestCluster,
    (image, reference, platform): (&str, &str, &str),
    docker_config: &Path,
    ports: &[u64],
) {
    let mut run = tycho_run(cluster, image, docker_config);
    let state = run.state().await;
    let listed: Vec<u64> = state["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["container"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, ports, "{state}");
    let local = state["ports"][0]["local"].as_u64().unwrap();
    let url = run.browser_url().await;
    assert_eq!(url, format!("http://127.0.0.1:{local}/"));
    let (code, body) = common::http_get(([127, 0, 0, 1], local as u16).into(), "/")
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("Welcome to nginx!"), "{body}");
    assert!(
        run.dir
            .path()
            .join("cache/tycho/image-config")
            .read_dir()
            .unwrap()
            .count()
            == 1,
        "the answer is cached under $XDG_CACHE_HOME/tycho/image-config"
    );
    let (code, stderr) = run.interrupt().await;
    assert_eq!(code, Some(130), "{stderr}");
    let expected = format!(
        "Exposed ports of {reference} ({platform}): {}",
        ports
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(
        stderr.contains(&expected),
        "missing {expected:?} in:\n{stderr}"
    );
}

/// `tycho run IMAGE --browser` with no `-p` opens the tunnelled page: a public image (anonymous) and a
/// private one (credentials from `$DOCKER_CONFIG/config.json`).
#[tokio::test]
async fn run_browser_without_p_opens_the_image_port() {
    let test = "run_browser_without_p_opens_the_image_port";
    let Some(bin) = registries_or_skip(test) else {
        return;
    };
    let cluster = TestCluster::start().await;
    if !common::runs_containers(&cluster.client).await {
        skip(
            test,
            "the tunnel and the HTTP 200 the browser waits for need a kubelet that runs containers (this cluster's nodes are kwok fakes)",
        );
        cluster.cleanup().await;
        return;
    }
    let _controller = cluster.run_controller(|_| {}).await;

    let public = Served::start(Auth::None).await;
    push_public(bin, &public.addr);
    let none = docker_config(&public.addr, None);
    // Named as a user names it, without tag: `latest` is meant.
    let image = format!("{}/library/nginx", public.addr);
    let reference = format!("{image}:latest");
    run_opens_the_page(
        &cluster,
        (&image, &reference, "linux/amd64"),
        none.path(),
        &[80, 443],
    )
    .await;

    let private = Served::start(Auth::Basic).await;
    let creds = docker_config(&private.addr, Some((USER, PASSWORD)));
    let base = push_base(bin, &private.addr, creds.path());
    let image = format!("{}/private/nginx:1", private.addr);
    push_with_ports(bin, creds.path(), &base, "8080/tcp", "linux/amd64", &image);
    run_opens_the_page(
        &cluster,
        (&image, &image, "linux/amd64"),
        creds.path(),
        &[8080],
    )
    .await;
    cluster.cleanup().await;
}

/// Exit code, stderr of `tycho run --browser IMAGE` with a kubeconfig that does not exist: what fails
/// before the cluster is contacted.
async fn run_before_cluster(image: &str, docker_config: &Path) -> (Option<i32>, String) {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tycho"))
        .args([
            "run",
            "--browser",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            image,
        ])
        .env("DOCKER_CONFIG", docker_config)
        .env("XDG_CACHE_HOME", cache.path())
        .env("BROWSER", "/bin/false")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// When the registry cannot be reached, or the image exposes no port, `tycho run --browser` without
/// `-p` says so and asks for `-p` (exit code 2), before contacting the cluster.
#[tokio::test]
async fn run_browser_asks_for_p_when_the_ports_cannot_be_read() {
    let test = "run_browser_asks_for_p_when_the_ports_cannot_be_read";
    // A loopback port nobody listens on.
    let dead = common::free_addr();
    let none = docker_config(&dead.to_string(), None);
    let (code, stderr) = run_before_cluster(&format!("{dead}/library/nginx"), none.path()).await;
    assert_eq!(code, Some(2), "{stderr}");
    for expected in [
        format!("cannot read the exposed ports of {dead}/library/nginx from its registry"),
        format!("cannot reach the registry {dead}"),
        "give the port with -p PORT".to_string(),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    let (code, stderr) = run_before_cluster("Not/A Reference", none.path()).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not a valid image reference"), "{stderr}");

    let Some(bin) = registries_or_skip(test) else {
        return;
    };
    let registry = Served::start(Auth::None).await;
    let none = docker_config(&registry.addr, None);
    let base = push_base(bin, &registry.addr, none.path());
    let (code, stderr) = run_before_cluster(&base, none.path()).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{base} exposes no TCP port")) && stderr.contains("-p PORT"),
        "{stderr}"
    );
    let (code, stderr) =
        run_before_cluster(&format!("{}/absent:1", registry.addr), none.path()).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}/absent:1 is not in the registry",
            registry.addr
        )),
        "{stderr}"
    );
}

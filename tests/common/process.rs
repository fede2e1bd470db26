//! Helpers of the end-to-end tests (tests/e2e_*.rs): the real `tycho` binary and the machine's real `kubectl`
//! as separate processes.
//!
//! - [`E2e::start`] runs `tycho sim` (or, when `TYCHO_TEST_KUBECONFIG` names a kubeconfig, uses that real
//!   cluster), creates a random namespace and installs the CRD with `kubectl apply -f crds/`.
//! - [`E2e::controller`] runs `tycho controller` as a child process; [`E2e::kubectl`] runs kubectl with the
//!   test's kubeconfig and a fresh `--cache-dir`.
//! - Every child process is held by a [`ChildGuard`] that kills it when dropped, so a failing test leaves
//!   nothing behind; the guard prints the tail of the process's log when the test panics.
//! - [`UaProxy`] is a tiny HTTP proxy that replaces the User-Agent of every request it forwards with its own
//!   and can cut the connections open through it. `tycho controller` names itself already
//!   (`tycho-controller/<version>`, src/cli/controller.rs; the emulator's simulated cluster sends
//!   `tycho-emulator-sim/<version>`), but the proxy's [`CONTROLLER_AGENT`] marks the calls of one controller
//!   process in the emulator's request log (the RBAC and fault tests), and its cut ends exactly that
//!   controller's watches.
//!
//! Included by path (`#[path = "common/process.rs"] mod process;`); of `common` it uses only `wait.rs`,
//! `skip.rs` and `kubelet.rs`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[path = "kubelet.rs"]
mod kubelet;
#[path = "skip.rs"]
mod skip;
#[path = "wait.rs"]
mod wait;
#[allow(unused_imports)]
pub use kubelet::runs_containers;
#[allow(unused_imports)]
pub use skip::{SKIP_LOG_ENV, current_test, skip};
pub use wait::{eventually, free_addr};

/// Environment variable naming a kubeconfig of a real cluster to test against instead of `tycho sim`.
pub const KUBECONFIG_ENV: &str = "TYCHO_TEST_KUBECONFIG";
/// User-Agent of the tests' own kube clients.
pub const TEST_AGENT: &str = "tycho-e2e-test";
/// User-Agent [`UaProxy`] stamps on the controller's requests.
pub const CONTROLLER_AGENT: &str = "tycho-controller-e2e";
/// Generous limit for anything that must eventually happen on a loaded machine.
pub const WAIT: Duration = Duration::from_secs(60);

/// The `tycho` binary under test.
pub fn tycho_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tycho")
}

/// Path of a file of the repository.
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct ChildGuard {
    name: String,
    child: Option<std::process::Child>,
    log: PathBuf,
}

impl ChildGuard {
    /// Spawn `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: std::process::Command, log: &Path) -> ChildGuard {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let err = out.try_clone().unwrap();
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        ChildGuard {
            name: name.into(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// Process id.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Ask it to stop with SIGTERM and wait (at most `limit`); true when it exited by itself with success.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill it with SIGKILL (no graceful shutdown) and reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Everything it printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            eprintln!(
                "---- last lines of {} ({}) ----\n{tail}\n----",
                self.name,
                self.log.display()
            );
        }
    }
}

/// A minimal HTTP/1.0 request: (status code, body).
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: {TEST_AGENT}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.ok()?;
    s.write_all(body.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

/// Output of a finished kubectl.
#[derive(Debug)]
pub struct Run {
    /// Exit status was success.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// The cluster of one end-to-end test: `tycho sim` in a child process, or a real cluster.
pub struct E2e {
    /// Temporary directory of this test (kubeconfig, kubectl cache, process logs).
    pub dir: tempfile::TempDir,
    /// Kubeconfig of the cluster.
    pub kubeconfig: PathBuf,
    /// The test's namespace (random).
    pub namespace: String,
    /// `host:port` of the emulator, when running on `tycho sim`.
    pub emulator: Option<String>,
    /// A kube client (User-Agent [`TEST_AGENT`]).
    pub client: Client,
    sim: Option<ChildGuard>,
    spawned: u32,
    extra_namespaces: Vec<String>,
}

impl E2e {
    /// Start `tycho sim` (or connect to `TYCHO_TEST_KUBECONFIG`), create a random namespace and install the
    /// CRD with `kubectl apply -f crds/`.
    pub async fn start() -> E2e {
        Self::start_bare().await.with_crd().await
    }

    /// Like [`E2e::start`], without installing the CRD.
    pub async fn start_bare() -> E2e {
        Self::start_bare_in(None).await
    }

    /// Like [`E2e::start`], with the test namespace named `namespace` (emulator: a fixed name is safe,
    /// the cluster is the test's own).
    pub async fn start_in(namespace: &str) -> E2e {
        Self::start_bare_in(Some(namespace)).await.with_crd().await
    }

    /// Install the CRD with `kubectl apply --server-side -f crds/` and wait until it is served. Test
    /// binaries run their tests in parallel against one real cluster, so several may install it at once:
    /// a forced server-side apply is idempotent, and a lost race (409) is retried.
    async fn with_crd(self) -> E2e {
        let crds = repo_path("crds").display().to_string();
        let args = [
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=tycho-tests",
            "-f",
            &crds,
        ];
        let mut out = self.kubectl(&args).await;
        for _ in 0..5 {
            if out.ok {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            out = self.kubectl(&args).await;
        }
        assert!(
            out.ok,
            "kubectl apply --server-side -f crds/: {}{}",
            out.stdout, out.stderr
        );
        self.wait_crd().await;
        self
    }

    /// Like [`E2e::start_bare`], with the test namespace named `namespace` when given (random otherwise).
    pub async fn start_bare_in(namespace: Option<&str>) -> E2e {
        let dir = tempfile::tempdir().unwrap();
        let (kubeconfig, emulator, sim) =
            match std::env::var(KUBECONFIG_ENV).ok().filter(|s| !s.is_empty()) {
                Some(path) => (PathBuf::from(path), None, None),
                None => {
                    let kubeconfig = dir.path().join("kubeconfig");
                    let mut cmd = std::process::Command::new(tycho_bin());
                    cmd.args([
                        "sim",
                        "--port",
                        "0",
                        "--nodes",
                        "3",
                        "--pod-ready-delay-ms",
                        "200",
                        "--kubeconfig",
                    ])
                    .arg(&kubeconfig);
                    let sim = ChildGuard::spawn("tycho sim", cmd, &dir.path().join("sim.log"));
                    let url = eventually(WAIT, || async {
                        let text = std::fs::read_to_string(&kubeconfig).ok()?;
                        let server = text
                            .lines()
                            .find_map(|l| l.trim().strip_prefix("server:"))?
                            .trim()
                            .to_string();
                        let host = server
                            .strip_prefix("http://")?
                            .trim_end_matches('/')
                            .to_string();
                        let (code, body) = http(&host, "GET", "/version", None).await?;
                        (code == 200 && body.contains("gitVersion")).then_some(host)
                    })
                    .await
                    .unwrap_or_else(|| panic!("tycho sim did not come up: {}", sim.log()));
                    (kubeconfig, Some(url), Some(sim))
                }
            };
        let client = client_for(&kubeconfig).await;
        let namespace = namespace
            .map(str::to_string)
            .unwrap_or_else(|| format!("tycho-e2e-{:08x}", rand::random::<u32>()));
        let ns: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}})).unwrap();
        Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create the test namespace");
        E2e {
            dir,
            kubeconfig,
            namespace,
            emulator,
            client,
            sim,
            spawned: 0,
            extra_namespaces: Vec::new(),
        }
    }

    /// Wait until Systems can be listed in the test namespace.
    pub async fn wait_crd(&self) {
        let systems: Api<tycho_model::System> = self.api();
        eventually(WAIT, || async {
            systems.list(&ListParams::default()).await.ok().map(|_| ())
        })
        .await
        .expect("the System CRD is served");
    }

    /// Time for pods to turn Ready: the simulated cluster takes a fraction of a second, a real one pulls
    /// images.
    pub fn ready_wait(&self) -> Duration {
        if self.is_emulator() {
            WAIT
        } else {
            Duration::from_secs(240)
        }
    }

    /// Whether the cluster is `tycho sim` (fault injection and the request log are available).
    pub fn is_emulator(&self) -> bool {
        self.emulator.is_some()
    }

    /// On a real cluster, report `SKIPPED <test>: <what> needs the API emulator` (see [`skip`]) and return
    /// true: the caller returns. False on `tycho sim`.
    pub fn skip_unless_emulator(&self, test: &str, what: &str) -> bool {
        if self.is_emulator() {
            return false;
        }
        skip(
            test,
            &format!("{what} needs the API emulator (real cluster from {KUBECONFIG_ENV})"),
        );
        true
    }

    /// An API handle in the test namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Create another namespace (deleted with the test namespace on a real cluster); returns its name.
    pub async fn create_namespace(&mut self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.namespace);
        let ns: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        Api::<k8s_openapi::api::core::v1::Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create a namespace");
        self.extra_namespaces.push(name.clone());
        name
    }

    /// The kubectl command line for `args`, with the test's kubeconfig, namespace and its own cache dir.
    pub fn kubectl_command(&self, args: &[&str]) -> tokio::process::Command {
        self.kubectl_command_in(&self.namespace, args)
    }

    /// Like [`E2e::kubectl_command`], in namespace `ns`.
    pub fn kubectl_command_in(&self, ns: &str, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .arg("--namespace")
            .arg(ns)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Run kubectl to completion (at most 120 s).
    pub async fn kubectl(&self, args: &[&str]) -> Run {
        self.kubectl_in(&self.namespace, args).await
    }

    /// Run kubectl in namespace `ns` to completion (at most 120 s).
    pub async fn kubectl_in(&self, ns: &str, args: &[&str]) -> Run {
        let mut cmd = self.kubectl_command_in(ns, args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish in 120 s"))
            .unwrap_or_else(|e| panic!("run kubectl: {e}"));
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    /// Run kubectl and require success; returns its stdout.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let ns = self.namespace.clone();
        self.kubectl_ok_in(&ns, args).await
    }

    /// Run kubectl in namespace `ns` and require success; returns its stdout.
    pub async fn kubectl_ok_in(&self, ns: &str, args: &[&str]) -> String {
        let out = self.kubectl_in(ns, args).await;
        assert!(
            out.ok,
            "kubectl {} failed:\n{}{}",
            args.join(" "),
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// Start a long-running kubectl (e.g. `get -w`) whose stdout lines arrive on the returned channel.
    pub fn kubectl_stream(
        &self,
        args: &[&str],
    ) -> (
        tokio::process::Child,
        tokio::sync::mpsc::UnboundedReceiver<String>,
    ) {
        let mut cmd = self.kubectl_command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn kubectl");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        (child, rx)
    }

    /// Run `tycho controller` on the test namespace, talking to the cluster directly.
    pub async fn controller(&mut self) -> Controller {
        let kubeconfig = self.kubeconfig.clone();
        let ns = self.namespace.clone();
        self.controller_with(&kubeconfig, Some(&ns)).await
    }

    /// Run `tycho controller` with `kubeconfig`, watching `namespace` (cluster-wide when None); waits until
    /// its health endpoint answers.
    pub async fn controller_with(
        &mut self,
        kubeconfig: &Path,
        namespace: Option<&str>,
    ) -> Controller {
        let args: Vec<String> = namespace
            .map(|ns| vec!["--namespace".to_string(), ns.to_string()])
            .unwrap_or_default();
        self.spawn_controller(kubeconfig, &args, &[])
            .await
            .unwrap_or_else(|log| panic!("tycho controller did not come up:\n{log}"))
    }

    /// Run `tycho controller ARGS --metrics-addr 127.0.0.1:<free>` with `kubeconfig` and extra environment;
    /// waits until its health endpoint answers. `Err` holds its output when it exits or never answers.
    pub async fn spawn_controller(
        &mut self,
        kubeconfig: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Result<Controller, String> {
        self.spawned += 1;
        let metrics = free_addr();
        let mut cmd = std::process::Command::new(tycho_bin());
        cmd.arg("controller")
            .args(args)
            .arg("--metrics-addr")
            .arg(metrics.to_string())
            .env("KUBECONFIG", kubeconfig)
            .env("TYCHO_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("TYCHO_NAMESPACES");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let name = format!("tycho controller #{}", self.spawned);
        let log = self
            .dir
            .path()
            .join(format!("controller-{}.log", self.spawned));
        let mut guard = ChildGuard::spawn(&name, cmd, &log);
        let deadline = Instant::now() + WAIT;
        loop {
            if http(&metrics.to_string(), "GET", "/healthz", None)
                .await
                .is_some_and(|(c, _)| c == 200)
            {
                break;
            }
            if !guard.running() || Instant::now() > deadline {
                let out = guard.log();
                guard.kill();
                return Err(out);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Controller {
            guard,
            metrics,
            proxy: None,
        })
    }

    /// Like [`E2e::tagged_controller`], with `tycho controller ARGS` and extra environment.
    pub async fn spawn_tagged_controller(
        &mut self,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Result<Controller, String> {
        let upstream = self.emulator.clone().expect("emulator only");
        let proxy = UaProxy::start(upstream, CONTROLLER_AGENT).await;
        let kubeconfig = self
            .dir
            .path()
            .join(format!("controller-{}.kubeconfig", self.spawned + 1));
        write_kubeconfig(&kubeconfig, &format!("http://{}", proxy.addr));
        let mut c = self.spawn_controller(&kubeconfig, args, env).await?;
        c.proxy = Some(proxy);
        Ok(c)
    }

    /// Run `tycho controller` (emulator only) through a [`UaProxy`], so that the emulator's request log
    /// records its calls with User-Agent [`CONTROLLER_AGENT`]; watching `namespace` (cluster-wide when None).
    pub async fn tagged_controller(&mut self, namespace: Option<&str>) -> Controller {
        let upstream = self.emulator.clone().expect("emulator only");
        let proxy = UaProxy::start(upstream, CONTROLLER_AGENT).await;
        let kubeconfig = self
            .dir
            .path()
            .join(format!("controller-{}.kubeconfig", self.spawned + 1));
        write_kubeconfig(&kubeconfig, &format!("http://{}", proxy.addr));
        let mut c = self.controller_with(&kubeconfig, namespace).await;
        c.proxy = Some(proxy);
        c
    }

    /// The requests of [`E2e::tagged_controller`]s in the emulator's request log.
    pub async fn controller_requests(&self) -> Vec<Value> {
        self.requests()
            .await
            .into_iter()
            .filter(|r| r["userAgent"] == CONTROLLER_AGENT)
            .collect()
    }

    /// `PUT /emulator/v1/faults` (emulator only).
    pub async fn set_faults(&self, spec: Value) {
        let host = self.emulator.as_ref().expect("emulator only");
        let (code, body) = http(host, "PUT", "/emulator/v1/faults", Some(&spec.to_string()))
            .await
            .expect("PUT faults");
        assert_eq!(code, 200, "PUT /emulator/v1/faults: {body}");
    }

    /// `GET /emulator/v1/faults` (emulator only).
    pub async fn faults(&self) -> Value {
        let host = self.emulator.as_ref().expect("emulator only");
        let (code, body) = http(host, "GET", "/emulator/v1/faults", None)
            .await
            .expect("GET faults");
        assert_eq!(code, 200, "GET /emulator/v1/faults: {body}");
        serde_json::from_str(&body).expect("faults JSON")
    }

    /// `GET /emulator/v1/requests` (emulator only).
    pub async fn requests(&self) -> Vec<Value> {
        let host = self.emulator.as_ref().expect("emulator only");
        let (code, body) = http(host, "GET", "/emulator/v1/requests", None)
            .await
            .expect("GET requests");
        assert_eq!(code, 200, "GET /emulator/v1/requests");
        serde_json::from_str(&body).expect("request log JSON")
    }

    /// `DELETE /emulator/v1/requests` (emulator only).
    pub async fn clear_requests(&self) {
        let host = self.emulator.as_ref().expect("emulator only");
        let (code, _) = http(host, "DELETE", "/emulator/v1/requests", None)
            .await
            .expect("DELETE requests");
        assert_eq!(code, 200);
    }

    /// Stop `tycho sim`, or delete the test's namespaces on a real cluster (dropping does the same).
    pub async fn cleanup(self) {
        drop(self);
    }
}

impl Drop for E2e {
    fn drop(&mut self) {
        if let Some(sim) = self.sim.take() {
            // The guard kills it (and prints its log's tail when the test failed).
            drop(sim);
            return;
        }
        for ns in std::iter::once(&self.namespace).chain(&self.extra_namespaces) {
            let _ = std::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args([
                    "delete",
                    "namespace",
                    ns,
                    "--wait=false",
                    "--ignore-not-found",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A kube client for `kubeconfig`, with User-Agent [`TEST_AGENT`].
pub async fn client_for(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("read the kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    config.headers.push((
        axum::http::header::USER_AGENT,
        axum::http::HeaderValue::from_static(TEST_AGENT),
    ));
    Client::try_from(config).expect("client")
}

/// A running `tycho controller` process.
pub struct Controller {
    /// The process.
    pub guard: ChildGuard,
    /// Its metrics and health address.
    pub metrics: SocketAddr,
    proxy: Option<UaProxy>,
}

impl Controller {
    /// SIGKILL it.
    pub fn kill(&mut self) {
        self.guard.kill();
    }

    /// Close the connections of a [`E2e::tagged_controller`] to the API server (its watches end, and only
    /// its own).
    pub fn cut_connections(&self) {
        self.proxy
            .as_ref()
            .expect("a tagged controller")
            .cut_connections();
    }

    /// Value of a metric sample line (exact series name with labels), if present.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = http(&self.metrics.to_string(), "GET", "/metrics", None).await?;
        body.lines().find_map(|l| {
            let rest = l.strip_prefix(series)?;
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
    }
}

/// Write a kubeconfig pointing at `server` (no credentials: the emulator's kind).
pub fn write_kubeconfig(path: &Path, server: &str) {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n"
    );
    std::fs::write(path, text).unwrap();
}

/// An HTTP proxy on 127.0.0.1 that forwards every connection to `upstream`, replacing the User-Agent of each
/// request with its own and asking for `Connection: close` so that every request opens a connection of its
/// own (and so passes through the header rewrite). Bodies and streamed responses (watches) pass untouched.
pub struct UaProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl UaProxy {
    /// Start it.
    pub async fn start(upstream: String, agent: &'static str) -> UaProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let cut_tx = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let mut cut_rx = cut_tx.subscribe();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = proxy_one(client, &upstream, agent) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        UaProxy { addr, task, cut }
    }

    /// Close every connection open through it now (the client sees its requests and watches end).
    pub fn cut_connections(&self) {
        self.cut.send_modify(|v| *v += 1);
    }
}

impl Drop for UaProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_connections();
    }
}

async fn proxy_one(
    mut client: tokio::net::TcpStream,
    upstream: &str,
    agent: &str,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut out = String::new();
    out.push_str(lines.next().unwrap_or_default());
    out.push_str("\r\n");
    for l in lines {
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("user-agent:") || lower.starts_with("connection:") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str(&format!("User-Agent: {agent}\r\nConnection: close\r\n\r\n"));
    let mut up = tokio::net::TcpStream::connect(upstream).await?;
    up.write_all(out.as_bytes()).await?;
    up.write_all(&buf[head_end + 4..]).await?;
    let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
    Ok(())
}

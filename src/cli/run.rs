//! `tycho run`: the seed's `tf` — open a session, spawn one container, tunnel its exposed ports,
//! optionally wait for HTTP 200 and open a browser, and clean everything up on Ctrl-C.
//!
//! `tycho run --template NAME [-P NAME=VALUE]...` spawns a System from a catalog template instead
//! (`spec.template` + `spec.parameters`, in the same session): the template is read through the API to
//! check the parameters and to learn its exposed ports, which are tunnelled (or those of `-p`). An
//! explicit flag rather than guessing whether a word is an image or a template: `nginx` can be both, and
//! guessing would cost every image run an API call and `get` on SystemTemplates.
//!
//! The exposed ports are those given with `-p`, else the image's own: the `ExposedPorts` of its
//! configuration, read from its registry before the cluster is contacted (`tycho_sdk::registry`:
//! Docker's credentials, an on-disk cache). When they cannot be read, or the image exposes none,
//! `--browser` is a usage error asking for `-p`; without `--browser` the container runs untunnelled.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::CliError;
use super::args::{ClusterArgs, parse_duration};
use super::output::{say, spinner};
use tycho_sdk::registry::RegistryOptions;
use tycho_sdk::{
    Container, ContainerSpec, Location, SdkError, SessionOptions, SessionState, TemplateSpec,
    Tunnel, open_browser,
};

const EXIT_HELP: &str = "\
Exit codes:
  0    the session ended normally
  1    failure (cluster unreachable, spawn failed, timeout, session lost)
  2    usage error (bad arguments, unreadable -f file, `run .` without docker, --browser
       without -p when the image's exposed ports cannot be read from its registry)
  130  interrupted (Ctrl-C / SIGINT or SIGTERM); the session was ended and everything cleaned up

Without -p, every TCP port the image exposes (EXPOSE in its Dockerfile) is tunnelled: its
configuration is read from its registry with the credentials of ~/.docker/config.json
($DOCKER_CONFIG), and kept for a day under ~/.cache/tycho/image-config ($XDG_CACHE_HOME).
Registries on loopback (localhost, 127.0.0.0/8, [::1]) are spoken to over plain HTTP.

With --template NAME, the System is made from that SystemTemplate (kubectl get systemtemplates) with
the parameters of -P NAME=VALUE (a value is parsed as the type the template declares); its exposed
TCP ports are tunnelled (or those of -p). Image options (NAME=VALUE, -f, --sleep, --cpus, --memory)
do not apply to a template.

Examples:
  tycho run --browser nginx
  tycho run --browser --template jupyter -P flavour=scipy -P token=s3cret
  tycho run -p 80 --browser nginx
  tycho run -p 80 -f index.html:/usr/share/nginx/html/index.html --offset 8000 nginx
  tycho run -p 8888 --json state.json jupyter/base-notebook GRANT_SUDO=yes
  tycho run --browser .          (the newest image built with docker)";

/// `tycho run IMAGE [NAME=VALUE...]` or `tycho run --template NAME [-P NAME=VALUE]...`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXIT_HELP)]
pub struct RunArgs {
    /// Image to run, or `.` for the newest locally built image (needs the docker CLI).
    #[arg(required_unless_present = "template", conflicts_with = "template")]
    pub image: Option<String>,
    /// Environment variables for the container, as NAME=VALUE.
    #[arg(value_name = "NAME=VALUE", conflicts_with = "template")]
    pub env: Vec<String>,
    /// Run a System made from this catalog template (a SystemTemplate) instead of an image.
    #[arg(long, value_name = "NAME")]
    pub template: Option<String>,
    /// A parameter of the template (repeatable), as NAME=VALUE.
    #[arg(short = 'P', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Container ports to expose and tunnel to (repeatable), e.g. `-p 80`; default: the image's
    /// exposed TCP ports, read from its registry.
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Local port = container port + OFFSET (default: free local ports).
    #[arg(long, value_name = "OFFSET")]
    pub offset: Option<u16>,
    /// Local address the tunnels listen on.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub bind: IpAddr,
    /// Wait for HTTP 200 on the first (lowest) port, then open a browser ($BROWSER, xdg-open or
    /// open).
    #[arg(long)]
    pub browser: bool,
    /// Host header (and URL host) for the HTTP 200 check and the browser.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Path for the HTTP 200 check and the browser.
    #[arg(long, default_value = "/", value_name = "PATH")]
    pub path: String,
    /// Pre-boot file: a local file copied to REMOTE before the container starts (repeatable).
    #[arg(
        short = 'f',
        long = "file",
        value_name = "LOCAL:REMOTE",
        conflicts_with = "template"
    )]
    pub files: Vec<String>,
    /// Start the container with an idle process instead of its own.
    #[arg(long, conflicts_with = "template")]
    pub sleep: bool,
    /// Write the state (system, lease, namespace, local ports) as JSON to this file.
    #[arg(long, value_name = "STATEFILE")]
    pub json: Option<PathBuf>,
    /// Duration of the session Lease (everything is collected this long after the client dies).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub lease_duration: Duration,
    /// How long to wait for the container to be ready (and for HTTP 200 with --browser).
    #[arg(long, default_value = "300s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// CPU limit, e.g. 500m or 2.
    #[arg(long, conflicts_with = "template")]
    pub cpus: Option<String>,
    /// Memory limit, e.g. 512Mi.
    #[arg(long, conflicts_with = "template")]
    pub memory: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,
}

/// The newest image the local docker knows (`docker images` lists newest first).
fn last_image() -> Result<String, CliError> {
    let out = std::process::Command::new("docker")
        .args(["images", "--format", "{{.ID}}\t{{.Repository}}\t{{.Tag}}"])
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CliError::Usage(
                "`tycho run .` runs the newest locally built image, which needs the docker CLI; \
                 `docker` was not found on PATH. Name the image instead (e.g. `tycho run nginx`)."
                    .into(),
            ));
        }
        Err(e) => return Err(CliError::input("running `docker images`")(e)),
    };
    if !out.status.success() {
        return Err(CliError::Usage(format!(
            "`docker images` failed, so the newest local image is unknown: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| !l.trim().is_empty()).ok_or_else(|| {
        CliError::Usage("docker has no local images: build one first (`docker build .`)".into())
    })?;
    let mut cols = line.split('\t');
    let id = cols.next().unwrap_or("").trim().to_string();
    let repo = cols.next().unwrap_or("").trim();
    let tag = cols.next().unwrap_or("").trim();
    if repo.is_empty() || repo == "<none>" {
        Ok(id)
    } else if tag.is_empty() || tag == "<none>" {
        Ok(repo.to_string())
    } else {
        Ok(format!("{repo}:{tag}"))
    }
}

/// The ports to expose and tunnel: `-p`, else the image's exposed TCP ports from its registry.
/// Failing to read them (or an image that exposes none) is a usage error with `--browser`, which
/// needs a port; without it the container runs without tunnels, and a line says why.
async fn resolve_ports(args: &RunArgs, image: &str) -> Result<Vec<u16>, CliError> {
    if !args.ports.is_empty() {
        return Ok(args.ports.clone());
    }
    match RegistryOptions::default().image_config(image).await {
        Ok(config) => {
            let ports = config.tcp_ports();
            if ports.is_empty() {
                let why = format!(
                    "{} exposes no TCP port (its configuration has no ExposedPorts)",
                    config.reference
                );
                if args.browser {
                    return Err(CliError::Usage(format!(
                        "--browser needs a port, and {why}: give it with -p PORT"
                    )));
                }
                say(
                    "INFO",
                    format!("{why}: nothing to tunnel (-p PORT adds one)"),
                );
            } else {
                let list: Vec<String> = ports.iter().map(ToString::to_string).collect();
                say(
                    "INFO",
                    format!(
                        "Exposed ports of {} ({}{}): {}",
                        config.reference,
                        config.platform,
                        if config.from_cache { ", cached" } else { "" },
                        list.join(", ")
                    ),
                );
            }
            Ok(ports)
        }
        Err(e) => {
            let why = format!(
                "cannot read the exposed ports of {image} from its registry: {}",
                super::error::report(&e)
            );
            if args.browser {
                return Err(CliError::Usage(format!(
                    "--browser needs a port, and {why}; give the port with -p PORT"
                )));
            }
            say(
                "WARN",
                format!("{why}; nothing to tunnel (-p PORT adds one)"),
            );
            Ok(Vec::new())
        }
    }
}

/// The spec of everything but the ports (checked before the registry is asked for them).
fn build_spec(args: &RunArgs, image: &str) -> Result<ContainerSpec, CliError> {
    // The ports are resolved here (`resolve_ports`): spawn is not to read the registry again.
    let mut spec = ContainerSpec::new(image)
        .sleep(args.sleep)
        .image_ports(false);
    for kv in &args.env {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            CliError::Usage(format!("environment variables are NAME=VALUE, got {kv:?}"))
        })?;
        if k.is_empty() {
            return Err(CliError::Usage(format!("empty variable name in {kv:?}")));
        }
        spec = spec.env(k, v);
    }
    for f in &args.files {
        let (local, remote) = f
            .rsplit_once(':')
            .ok_or_else(|| CliError::Usage(format!("-f takes LOCAL:REMOTE, got {f:?}")))?;
        if !remote.starts_with('/') {
            return Err(CliError::Usage(format!(
                "-f {f}: the remote path must be absolute"
            )));
        }
        let data = std::fs::read(local)
            .map_err(CliError::input(format!("-f {f}: cannot read {local}")))?;
        spec = spec.file(remote, data);
    }
    if let Some(c) = &args.cpus {
        spec = spec.cpus(c.clone());
    }
    if let Some(m) = &args.memory {
        spec = spec.memory(m.clone());
    }
    Ok(spec)
}

/// Every port must be a container port that `--offset` keeps below 65536.
fn check_ports(args: &RunArgs, ports: &[u16]) -> Result<(), CliError> {
    for p in ports {
        if *p == 0 {
            return Err(CliError::Usage("port 0 is not a container port".into()));
        }
        if let Some(off) = args.offset
            && u32::from(*p) + u32::from(off) > 65535
        {
            return Err(CliError::Usage(format!(
                "port {p} + offset {off} is beyond 65535"
            )));
        }
    }
    Ok(())
}

async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// What `tycho run` spawns.
enum What {
    /// A container of an image, with the ports to tunnel.
    Image(Box<ContainerSpec>, Vec<u16>),
    /// A System from a catalog template.
    Template(TemplateSpec),
}

/// `--template NAME -P NAME=VALUE...` as a [`TemplateSpec`].
fn template_spec(name: &str, params: &[String]) -> Result<TemplateSpec, CliError> {
    let mut spec = TemplateSpec::new(name);
    for kv in params {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            CliError::Usage(format!(
                "-P takes NAME=VALUE (a template parameter), got {kv:?}"
            ))
        })?;
        if k.is_empty() {
            return Err(CliError::Usage(format!("empty parameter name in {kv:?}")));
        }
        spec = spec.param(k, v);
    }
    Ok(spec)
}

/// The image, its spec and the ports to tunnel.
async fn image_spec(args: &RunArgs, image: &str) -> Result<What, CliError> {
    let image = if image == "." {
        let img = last_image()?;
        say(
            "INFO",
            format!("Newest local image: {img} (the cluster must be able to pull it)"),
        );
        img
    } else {
        image.to_string()
    };
    let spec = build_spec(args, &image)?;
    let ports = resolve_ports(args, &image).await?;
    check_ports(args, &ports)?;
    let spec = ports.iter().fold(spec, |spec, p| spec.port(*p));
    Ok(What::Image(Box::new(spec), ports))
}

/// Run `tycho run`.
pub async fn run(args: RunArgs) -> Result<ExitCode, CliError> {
    check_ports(&args, &args.ports)?;
    if args.template.is_none() && !args.params.is_empty() {
        return Err(CliError::Usage(
            "-P/--param gives a template's parameters: name the template with --template NAME"
                .into(),
        ));
    }
    let what = match (&args.template, &args.image) {
        (Some(t), _) => What::Template(template_spec(t, &args.params)?),
        (None, Some(image)) => image_spec(&args, image).await?,
        (None, None) => {
            return Err(CliError::Usage(
                "name an image (tycho run IMAGE) or a template (tycho run --template NAME)".into(),
            ));
        }
    };
    let mut options = args.cluster.options();
    options.session = SessionOptions {
        lease_duration: args.lease_duration,
        ..SessionOptions::default()
    };
    let (config, namespace) = options.config().await?;
    say(
        "INFO",
        format!(
            "Connecting to: {} (namespace {namespace})",
            config.cluster_url
        ),
    );
    let client = kube::Client::try_from(config).map_err(CliError::kube("cannot build a client"))?;
    let location = Location::from_client_with(client, &namespace, options.session.clone()).await?;
    say(
        "INFO",
        format!(
            "Session: {} (lease {:?})",
            location.session_name(),
            location.session_duration()
        ),
    );
    // From here on, every exit path ends the session.
    let outcome = tokio::select! {
        r = session_body(&args, &location, what) => r,
        _ = interrupted() => Err(Stop::Interrupted),
    };
    let code = match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Stop::Interrupted) => {
            say("INFO", "Interrupted: ending the session");
            ExitCode::from(130)
        }
        Err(Stop::Failed(e)) => {
            say("ERROR", e.report());
            ExitCode::from(1)
        }
    };
    if let Err(e) = location.close().await {
        say(
            "WARN",
            format!(
                "ending the session: {} (it expires on its own)",
                super::error::report(&e)
            ),
        );
    }
    if let Some(path) = &args.json {
        let _ = std::fs::remove_file(path);
    }
    Ok(code)
}

enum Stop {
    Interrupted,
    Failed(CliError),
}

impl From<CliError> for Stop {
    fn from(e: CliError) -> Self {
        Stop::Failed(e)
    }
}

impl From<SdkError> for Stop {
    fn from(e: SdkError) -> Self {
        Stop::Failed(e.into())
    }
}

async fn session_body(args: &RunArgs, location: &Location, what: What) -> Result<(), Stop> {
    let (container, ports) = match what {
        What::Image(spec, ports) => {
            let container = location.spawn(*spec).await?;
            say("INFO", format!("Spawning container: {}", container.name()));
            (container, ports)
        }
        What::Template(spec) => {
            let template = spec.template().to_string();
            let container = location.spawn_template(spec).await?;
            let ports = if args.ports.is_empty() {
                container.ports().to_vec()
            } else {
                args.ports.clone()
            };
            check_ports(args, &ports)?;
            say(
                "INFO",
                format!(
                    "Spawning {} from template {template} (container {}; ports {})",
                    container.name(),
                    container.container_name(),
                    if ports.is_empty() {
                        "none".to_string()
                    } else {
                        ports
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            );
            (container, ports)
        }
    };
    let ports = ports.as_slice();
    let pb = spinner(format!("Waiting for {} to be running", container.name()));
    let ready = container.wait_ready(args.timeout).await;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let pod = ready?;
    say(
        "INFO",
        format!("Container is running: {} (pod {pod})", container.name()),
    );
    let tunnels = open_tunnels(args, &container, ports).await?;
    if args.browser {
        browse(args, &container, &tunnels).await?;
    }
    if let Some(path) = &args.json {
        let state = serde_json::json!({
            "system": container.name(),
            "namespace": location.namespace(),
            "lease": location.session_name(),
            "pod": pod,
            "ports": tunnels.iter().map(|t| serde_json::json!({
                "container": t.remote_port(),
                "local": t.local_port(),
                "url": t.url(args.host.as_deref(), &args.path),
            })).collect::<Vec<_>>(),
        });
        write_state(path, &state)?;
    }
    say(
        "INFO",
        "Running; Ctrl-C ends the session and removes everything",
    );
    match until_gone(location, &container).await {
        None => Ok(()),
        Some(e) => Err(Stop::Failed(e)),
    }
}

/// One tunnel per exposed port (`-p PORT`, else the image's).
async fn open_tunnels(
    args: &RunArgs,
    container: &Container,
    ports: &[u16],
) -> Result<Vec<Tunnel>, SdkError> {
    let mut tunnels = Vec::new();
    for p in ports {
        let local = args.offset.map(|o| p + o);
        let t = container.attach_tunnel(*p, local, args.bind).await?;
        say(
            "INFO",
            format!(
                "Created tunnel object onto: {} ({} -> {p})",
                container.name(),
                t.local_port()
            ),
        );
        tunnels.push(t);
    }
    Ok(tunnels)
}

/// `--browser`: wait for HTTP 200 on the first tunnel, then open a browser on it.
async fn browse(args: &RunArgs, container: &Container, tunnels: &[Tunnel]) -> Result<(), Stop> {
    let Some(first) = tunnels.first() else {
        return Err(Stop::Failed(CliError::Usage(
            "--browser needs an exposed port (-p PORT)".into(),
        )));
    };
    say("INFO", format!("Waiting on http 200: {}", container.name()));
    let pb = spinner(format!("Waiting for HTTP 200 from {}", container.name()));
    let r = first
        .wait_http_200(args.host.as_deref(), &args.path, args.timeout)
        .await;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    r?;
    let url = first.url(args.host.as_deref(), &args.path);
    say("INFO", format!("Connected onto: {url}"));
    open_browser(&url)?;
    Ok(())
}

/// `--json STATEFILE`: write the state atomically (a temporary file renamed into place).
fn write_state(path: &std::path::Path, state: &serde_json::Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(state).map_err(CliError::serialize("the state"))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(CliError::io(path.display().to_string()))
}

/// Run until the session is lost or the System disappears (the error saying which), or until the
/// session ends (`None`).
async fn until_gone(location: &Location, container: &Container) -> Option<CliError> {
    let mut watch = location.session_watch();
    loop {
        tokio::select! {
            r = watch.changed() => {
                if r.is_err() {
                    return None;
                }
                if let SessionState::Lost(reason) = watch.borrow().clone() {
                    return Some(CliError::SessionLost { reason });
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(5)) => {
                if !container.exists().await.unwrap_or(true) {
                    let name = container.name().to_string();
                    return Some(CliError::SystemDeleted { name });
                }
            }
        }
    }
}

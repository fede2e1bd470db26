//! The everyday commands: `apply`, `get`, `status`, `delete`, `logs`, `exec`, `cp`, `tunnel`,
//! `completions` and `man`, plus what `run` shares with them (cluster flags, timestamped lines).

use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::CommandFactory;
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DeleteParams, ListParams, LogParams, Patch, PatchParams};
use tokio::io::AsyncWriteExt;

use super::CliError;
use tycho_model::{LABEL_SYSTEM, Phase, System};
use tycho_sdk::{ConnectOptions, Container, SdkError};

/// Field manager of `tycho apply`.
pub const FIELD_MANAGER: &str = "tycho-cli";

/// Which cluster and namespace to talk to.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// Path of the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

impl ClusterArgs {
    /// Connection options for the SDK.
    pub fn options(&self) -> ConnectOptions {
        ConnectOptions {
            // $KUBECONFIG may hold a list of files; the SDK's own inference handles that case.
            kubeconfig: self
                .kubeconfig
                .clone()
                .filter(|p| !p.to_string_lossy().contains(':')),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            ..ConnectOptions::default()
        }
    }

    /// A client and the namespace.
    pub async fn client(&self) -> Result<(kube::Client, String), CliError> {
        self.options().client().await.map_err(sdk)
    }
}

/// An SDK error as a CLI error (exit code 1).
pub fn sdk(e: SdkError) -> CliError {
    CliError::Failed(e.to_string())
}

/// A timestamped line on stderr, like the seed's `tf` (`MMDDhhmmss.mmm LEVEL    message`).
pub fn say(level: &str, msg: impl AsRef<str>) {
    let now = chrono::Local::now();
    eprintln!(
        "{} {level:<8} {}",
        now.format("%m%d%H%M%S%.3f"),
        msg.as_ref()
    );
}

/// A spinner on stderr while waiting, only when stderr is a terminal.
pub fn spinner(msg: String) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(100));
    Some(pb)
}

/// Parse `90`, `90s`, `2m`, `1h`, `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (e.g. 90s, 2m, 1h)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Output formats of listing commands.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Aligned columns.
    #[default]
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// `tycho apply`.
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// File with one or more Systems (multi-document YAML or JSON); `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Make every System owned by this session Lease (collected when it ends).
    #[arg(long, value_name = "LEASE")]
    pub session: Option<String>,
    /// Take ownership of fields other managers own.
    #[arg(long)]
    pub force_conflicts: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,
}

/// `tycho get`.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// A System name (all Systems of the namespace when omitted).
    pub name: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: OutputFormat,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,
}

/// What `tycho status --wait` waits for.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitFor {
    /// Phase Ready.
    Ready,
}

/// `tycho status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// System name.
    pub name: String,
    /// Wait until the System reaches this state.
    #[arg(long, value_enum)]
    pub wait: Option<WaitFor>,
    /// How long to wait (e.g. 90s, 2m).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: OutputFormat,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,
}

/// `tycho delete`.
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// System names.
    #[arg(required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,
}

/// `tycho logs`.
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// System name.
    pub name: String,
    /// Container (default: the System's first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep streaming new lines.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Prefix lines with their timestamps.
    #[arg(long)]
    pub timestamps: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<i64>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,
}

/// `tycho exec`.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// System name.
    pub name: String,
    /// Container (default: the System's first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,
}

/// `tycho cp`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Copies one file: `tycho cp NAME:/path/in/container LOCAL` or `tycho cp LOCAL NAME:/path/in/container`."
)]
pub struct CpArgs {
    /// Source: `NAME:/path` or a local file.
    pub source: String,
    /// Destination: a local file, or `NAME:/path`.
    pub destination: String,
    /// Container (default: the System's first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,
}

/// `tycho tunnel`.
#[derive(clap::Args, Debug)]
pub struct TunnelArgs {
    /// System name.
    pub name: String,
    /// Container port.
    pub port: u16,
    /// Local port (default: a free one).
    #[arg(long)]
    pub local_port: Option<u16>,
    /// Local address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Container (default: the System's first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,
}

/// `tycho completions`.
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `tycho man`.
#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write `tycho.1` and one page per subcommand into this directory instead of printing `tycho.1`.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

fn systems(client: &kube::Client, ns: &str) -> Api<System> {
    Api::namespaced(client.clone(), ns)
}

fn not_found(kind: &str, name: &str) -> impl FnOnce(kube::Error) -> CliError {
    let what = format!("{kind} {name}");
    move |e| match e {
        kube::Error::Api(s) if s.code == 404 => {
            CliError::Failed(format!("systems.tycho.dev \"{name}\" not found"))
        }
        other => CliError::Failed(format!("{what}: {other}")),
    }
}

/// `tycho apply -f FILE`: server-side apply of every System in the file.
pub async fn apply(args: ApplyArgs) -> Result<ExitCode, CliError> {
    let text = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|source| {
            CliError::Io {
                path: "-".into(),
                source,
            }
        })?;
        s
    } else {
        std::fs::read_to_string(&args.file).map_err(|source| CliError::Io {
            path: args.file.display().to_string(),
            source,
        })?
    };
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| CliError::Usage(format!("{}: {e}", args.file.display())))?;
    let (client, ns) = args.cluster.client().await?;
    let mut count = 0;
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let kind = doc.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if kind != "System" {
            return Err(CliError::Usage(format!(
                "{}: only System documents can be applied (found kind {kind:?})",
                args.file.display()
            )));
        }
        let mut sys: System = serde_json::from_value(doc)
            .map_err(|e| CliError::Usage(format!("{}: {e}", args.file.display())))?;
        let name = sys.metadata.name.clone().ok_or_else(|| {
            CliError::Usage(format!(
                "{}: a System has no metadata.name",
                args.file.display()
            ))
        })?;
        let target_ns = sys.metadata.namespace.clone().unwrap_or_else(|| ns.clone());
        sys.metadata.namespace = Some(target_ns.clone());
        sys.metadata.managed_fields = None;
        sys.metadata.resource_version = None;
        sys.status = None;
        if let Some(lease) = &args.session {
            sys.spec.session = Some(lease.clone());
        }
        let mut pp = PatchParams::apply(FIELD_MANAGER);
        if args.force_conflicts {
            pp = pp.force();
        }
        systems(&client, &target_ns)
            .patch(&name, &pp, &Patch::Apply(&sys))
            .await
            .map_err(|e| CliError::Failed(format!("apply System {target_ns}/{name}: {e}")))?;
        println!("system.tycho.dev/{name} serverside-applied");
        count += 1;
    }
    if count == 0 {
        return Err(CliError::Usage(format!(
            "{}: no System found",
            args.file.display()
        )));
    }
    Ok(ExitCode::SUCCESS)
}

fn age(sys: &System) -> String {
    let Some(t) = &sys.metadata.creation_timestamp else {
        return "<unknown>".into();
    };
    let secs = (k8s_openapi::jiff::Timestamp::now().as_second() - t.0.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn print_table(items: &[System]) {
    let rows: Vec<[String; 6]> = items
        .iter()
        .map(|s| {
            let st = s.status.clone().unwrap_or_default();
            [
                s.metadata.name.clone().unwrap_or_default(),
                st.phase.map(|p| p.as_str().to_string()).unwrap_or_default(),
                st.ready.unwrap_or_default(),
                st.node_ports.unwrap_or_default(),
                s.spec.session.clone().unwrap_or_default(),
                age(s),
            ]
        })
        .collect();
    let header = ["NAME", "PHASE", "READY", "NODE-PORTS", "SESSION", "AGE"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn print_value(v: &serde_json::Value, output: OutputFormat) -> Result<(), CliError> {
    match output {
        OutputFormat::Yaml => {
            let s = serde_saphyr::to_string(v).map_err(|e| CliError::Failed(e.to_string()))?;
            print!("{s}");
        }
        _ => {
            let s = serde_json::to_string_pretty(v).map_err(|e| CliError::Failed(e.to_string()))?;
            println!("{s}");
        }
    }
    Ok(())
}

fn to_value(s: &System) -> Result<serde_json::Value, CliError> {
    let mut v = serde_json::to_value(s).map_err(|e| CliError::Failed(e.to_string()))?;
    v["apiVersion"] = serde_json::json!("tycho.dev/v1alpha1");
    v["kind"] = serde_json::json!("System");
    Ok(v)
}

/// `tycho get [NAME]`.
pub async fn get(args: GetArgs) -> Result<ExitCode, CliError> {
    let (client, ns) = args.cluster.client().await?;
    let api = systems(&client, &ns);
    let items = match &args.name {
        Some(n) => vec![api.get(n).await.map_err(not_found("get System", n))?],
        None => {
            api.list(&ListParams::default())
                .await
                .map_err(|e| CliError::Failed(format!("list Systems in {ns}: {e}")))?
                .items
        }
    };
    match args.output {
        OutputFormat::Table => {
            if items.is_empty() {
                eprintln!("No Systems found in namespace {ns}.");
            } else {
                print_table(&items);
            }
        }
        out => {
            let v = if args.name.is_some() {
                to_value(&items[0])?
            } else {
                let list: Vec<serde_json::Value> =
                    items.iter().map(to_value).collect::<Result<_, _>>()?;
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": list})
            };
            print_value(&v, out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(sys: &System) {
    let st = sys.status.clone().unwrap_or_default();
    let name = sys.metadata.name.clone().unwrap_or_default();
    println!("Name:      {name}");
    println!(
        "Phase:     {}",
        st.phase.map(|p| p.as_str()).unwrap_or("<none>")
    );
    println!(
        "Ready:     {}",
        st.ready
            .unwrap_or_else(|| format!("{}/{}", st.ready_replicas, st.replicas))
    );
    if let Some(s) = &sys.spec.session {
        println!("Session:   {s}");
    }
    if let Some(e) = &st.expires_at {
        println!("Expires:   {e}");
    }
    if !st.conditions.is_empty() {
        println!("Conditions:");
        for c in &st.conditions {
            println!(
                "  {:<13} {:<6} {:<22} {}",
                c.type_, c.status, c.reason, c.message
            );
        }
    }
    if !st.endpoints.is_empty() {
        println!("Endpoints:");
        for e in &st.endpoints {
            let mut line = format!("  {}:{}/{}", e.container, e.port, e.protocol);
            if let Some(s) = &e.service {
                line.push_str(&format!("  service {s}"));
            }
            if let Some(np) = e.node_port {
                line.push_str(&format!("  nodePort {np}"));
            }
            if let Some(u) = &e.url {
                line.push_str(&format!("  {u}"));
            }
            println!("{line}");
        }
    }
}

/// `tycho status NAME [--wait ready]`.
pub async fn status(args: StatusArgs) -> Result<ExitCode, CliError> {
    let (client, ns) = args.cluster.client().await?;
    let api = systems(&client, &ns);
    let start = Instant::now();
    let pb = args
        .wait
        .and_then(|_| spinner(format!("Waiting for {} to be Ready", args.name)));
    let sys = loop {
        let sys = api
            .get(&args.name)
            .await
            .map_err(not_found("get System", &args.name))?;
        let phase = sys.status.as_ref().and_then(|s| s.phase);
        match args.wait {
            None => break sys,
            Some(WaitFor::Ready) if phase == Some(Phase::Ready) => break sys,
            Some(WaitFor::Ready) if phase == Some(Phase::Failed) => {
                if let Some(pb) = &pb {
                    pb.finish_and_clear();
                }
                print_status(&sys);
                return Err(CliError::Failed(format!("System {} failed", args.name)));
            }
            Some(_) if start.elapsed() >= args.timeout => {
                if let Some(pb) = &pb {
                    pb.finish_and_clear();
                }
                print_status(&sys);
                return Err(CliError::Failed(format!(
                    "timed out after {:?} waiting for System {} to be Ready",
                    args.timeout, args.name
                )));
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    match args.output {
        OutputFormat::Table => print_status(&sys),
        out => print_value(&to_value(&sys)?, out)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `tycho delete NAME...`.
pub async fn delete(args: DeleteArgs) -> Result<ExitCode, CliError> {
    let (client, ns) = args.cluster.client().await?;
    let api = systems(&client, &ns);
    for n in &args.names {
        api.delete(n, &DeleteParams::default())
            .await
            .map_err(not_found("delete System", n))?;
        println!("system.tycho.dev/{n} deleted");
    }
    Ok(ExitCode::SUCCESS)
}

/// The Running pod of a System (Ready ones first).
async fn running_pod(client: &kube::Client, ns: &str, name: &str) -> Result<String, CliError> {
    systems(client, ns)
        .get(name)
        .await
        .map_err(not_found("get System", name))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("{LABEL_SYSTEM}={name}")))
        .await
        .map_err(|e| CliError::Failed(format!("list pods of {name}: {e}")))?;
    let mut candidates: Vec<&Pod> = list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    candidates.sort_by_key(|p| {
        let s = p.status.as_ref();
        let running = s.and_then(|s| s.phase.as_deref()) == Some("Running");
        let ready = s
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        (!ready, !running)
    });
    candidates
        .first()
        .and_then(|p| p.metadata.name.clone())
        .ok_or_else(|| CliError::Failed(format!("System {name} has no pod yet")))
}

async fn container_name(
    client: &kube::Client,
    ns: &str,
    name: &str,
    asked: Option<String>,
) -> Result<String, CliError> {
    let c = Container::attach(client.clone(), ns, name, asked.as_deref())
        .await
        .map_err(|e| match e {
            e if e.is_not_found() => {
                CliError::Failed(format!("systems.tycho.dev \"{name}\" not found"))
            }
            other => sdk(other),
        })?;
    Ok(c.container_name().to_string())
}

/// `tycho logs NAME [-c C] [-f]`.
pub async fn logs(args: LogsArgs) -> Result<ExitCode, CliError> {
    let (client, ns) = args.cluster.client().await?;
    let container = container_name(&client, &ns, &args.name, args.container.clone()).await?;
    let pod = running_pod(&client, &ns, &args.name).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let lp = LogParams {
        container: Some(container),
        follow: args.follow,
        timestamps: args.timestamps,
        tail_lines: args.tail,
        ..LogParams::default()
    };
    let stream = pods
        .log_stream(&pod, &lp)
        .await
        .map_err(|e| CliError::Failed(format!("logs of {}: {e}", args.name)))?;
    let mut lines = stream.lines();
    let mut out = std::io::stdout();
    loop {
        tokio::select! {
            line = lines.next() => match line {
                Some(Ok(l)) => {
                    if writeln!(out, "{l}").is_err() {
                        break;
                    }
                }
                Some(Err(e)) => return Err(CliError::Failed(format!("reading logs: {e}"))),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::from(130)),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tycho exec NAME [-c C] -- CMD...`: exits with the command's exit code.
pub async fn exec(args: ExecArgs) -> Result<ExitCode, CliError> {
    let (client, ns) = args.cluster.client().await?;
    let container = container_name(&client, &ns, &args.name, args.container.clone()).await?;
    let pod = running_pod(&client, &ns, &args.name).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let ap = AttachParams::default()
        .container(container)
        .stdin(args.stdin)
        .stdout(true)
        .stderr(true);
    let mut attached = pods
        .exec(&pod, args.command.iter().map(String::as_str), &ap)
        .await
        .map_err(|e| CliError::Failed(format!("exec in {}: {e}", args.name)))?;
    let status = attached.take_status();
    let out = attached.stdout();
    let err = attached.stderr();
    let stdin_task = attached.stdin().map(|mut w| {
        tokio::spawn(async move {
            // Read the local stdin on a blocking thread, forward chunks to the remote stdin.
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
            tokio::task::spawn_blocking(move || {
                let mut input = std::io::stdin();
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match std::io::Read::read(&mut input, &mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if tx.blocking_send(buf[..n].to_vec()).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
            while let Some(chunk) = rx.recv().await {
                if w.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = w.shutdown().await;
        })
    });
    let copy_out = async {
        if let Some(o) = out {
            copy_to(o, std::io::stdout()).await;
        }
    };
    let copy_err = async {
        if let Some(e) = err {
            copy_to(e, std::io::stderr()).await;
        }
    };
    tokio::join!(copy_out, copy_err);
    let status = match status {
        Some(s) => s.await,
        None => None,
    };
    if let Some(t) = stdin_task {
        t.abort();
    }
    let _ = std::io::stdout().flush();
    match tycho_sdk::exit_code_of(status.as_ref()) {
        Ok(0) => Ok(ExitCode::SUCCESS),
        Ok(code) => Ok(ExitCode::from(
            u8::try_from(code.clamp(0, 255)).unwrap_or(1),
        )),
        Err(m) => Err(CliError::Failed(m)),
    }
}

async fn copy_to<R: tokio::io::AsyncRead + Unpin>(mut r: R, mut w: impl Write) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if w.write_all(&buf[..n]).and_then(|()| w.flush()).is_err() {
                    break;
                }
            }
        }
    }
}

fn split_remote(s: &str) -> Option<(&str, &str)> {
    let (name, path) = s.split_once(':')?;
    (!name.is_empty() && !name.contains('/') && path.starts_with('/')).then_some((name, path))
}

/// `tycho cp SRC DST`: one file, either direction.
pub async fn cp(args: CpArgs) -> Result<ExitCode, CliError> {
    let (client, ns) = args.cluster.client().await?;
    match (split_remote(&args.source), split_remote(&args.destination)) {
        (Some((name, path)), None) => {
            let c = Container::attach(client, &ns, name, args.container.as_deref())
                .await
                .map_err(sdk)?;
            let data = c.fetch(path).await.map_err(sdk)?;
            let mut dest = PathBuf::from(&args.destination);
            if dest.is_dir() {
                dest = dest.join(path.rsplit('/').next().unwrap_or("file"));
            }
            std::fs::write(&dest, &data).map_err(|source| CliError::Io {
                path: dest.display().to_string(),
                source,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        (None, Some((name, path))) => {
            let data = std::fs::read(&args.source).map_err(|source| CliError::Io {
                path: args.source.clone(),
                source,
            })?;
            let c = Container::attach(client, &ns, name, args.container.as_deref())
                .await
                .map_err(sdk)?;
            c.put(path, &data).await.map_err(sdk)?;
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(CliError::Usage(
            "exactly one of SOURCE and DESTINATION must be NAME:/absolute/path".into(),
        )),
    }
}

/// `tycho tunnel NAME PORT`: forward a local port until Ctrl-C.
pub async fn tunnel(args: TunnelArgs) -> Result<ExitCode, CliError> {
    let (client, ns) = args.cluster.client().await?;
    let c = Container::attach(client, &ns, &args.name, args.container.as_deref())
        .await
        .map_err(sdk)?;
    let t = c
        .attach_tunnel(args.port, args.local_port, args.bind)
        .await
        .map_err(sdk)?;
    println!("Forwarding from {} -> {}", t.local_addr(), args.port);
    let _ = std::io::stdout().flush();
    let _ = tokio::signal::ctrl_c().await;
    drop(t);
    Ok(ExitCode::from(130))
}

/// `tycho completions SHELL`.
pub fn completions(args: CompletionsArgs) -> Result<ExitCode, CliError> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "tycho", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// `tycho man`.
pub fn man(args: ManArgs) -> Result<ExitCode, CliError> {
    let cmd = super::Cli::command();
    match args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|source| CliError::Io {
                path: dir.display().to_string(),
                source,
            })?;
            clap_mangen::generate_to(cmd, &dir).map_err(|source| CliError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut buf)
                .map_err(|source| CliError::Io {
                    path: "stdout".into(),
                    source,
                })?;
            std::io::stdout()
                .write_all(&buf)
                .map_err(|source| CliError::Io {
                    path: "stdout".into(),
                    source,
                })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_remote_paths() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("x").is_err());
        assert_eq!(split_remote("web:/etc/x"), Some(("web", "/etc/x")));
        assert_eq!(split_remote("./local"), None);
        assert_eq!(split_remote("C:rel"), None);
    }
}

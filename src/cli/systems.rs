//! The commands on Systems: `apply`, `get`, `status` and `delete`, and how Systems are printed.

use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};

use super::CliError;
use super::args::{ClusterArgs, OutputFormat, parse_duration};
use super::output::{print_value, spinner};
use tycho_model::{Phase, System};

/// Field manager of `tycho apply`.
pub const FIELD_MANAGER: &str = "tycho-cli";

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

/// `tycho restart`.
#[derive(clap::Args, Debug)]
pub struct RestartArgs {
    /// System names.
    #[arg(required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,
}

/// The Systems of a namespace.
pub(super) fn systems(client: &kube::Client, ns: &str) -> Api<System> {
    Api::namespaced(client.clone(), ns)
}

/// A failed call on the System `name`: [`CliError::NotFound`] for a 404, else the API error
/// with what was attempted.
pub(super) fn not_found(action: &str, name: &str) -> impl FnOnce(kube::Error) -> CliError {
    let context = format!("{action} {name}");
    let name = name.to_string();
    move |e| match e {
        kube::Error::Api(s) if s.code == 404 => CliError::NotFound { name },
        other => CliError::kube(context)(other),
    }
}

/// The text of `-f FILE` (`-`: standard input).
fn read_input(file: &Path) -> Result<String, CliError> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(CliError::io("-"))?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).map_err(CliError::io(file.display().to_string()))
    }
}

/// A document of `tycho apply -f FILE` as the System to apply in namespace `ns`.
fn system_to_apply(args: &ApplyArgs, doc: serde_json::Value, ns: &str) -> Result<System, CliError> {
    let file = args.file.display();
    let kind = doc.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    if kind != "System" {
        return Err(CliError::Usage(format!(
            "{file}: only System documents can be applied (found kind {kind:?})"
        )));
    }
    let mut sys: System = serde_json::from_value(doc).map_err(CliError::input(file.to_string()))?;
    if sys.metadata.name.is_none() {
        return Err(CliError::Usage(format!(
            "{file}: a System has no metadata.name"
        )));
    }
    if sys.metadata.namespace.is_none() {
        sys.metadata.namespace = Some(ns.to_string());
    }
    sys.metadata.managed_fields = None;
    sys.metadata.resource_version = None;
    sys.status = None;
    if let Some(lease) = &args.session {
        sys.spec.session = Some(lease.clone());
    }
    Ok(sys)
}

/// `tycho apply -f FILE`: server-side apply of every System in the file.
pub async fn apply(args: ApplyArgs) -> Result<ExitCode, CliError> {
    let text = read_input(&args.file)?;
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
        .map_err(CliError::input(args.file.display().to_string()))?;
    let (client, ns) = args.cluster.client().await?;
    let mut pp = PatchParams::apply(FIELD_MANAGER);
    if args.force_conflicts {
        pp = pp.force();
    }
    let mut count = 0;
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let sys = system_to_apply(&args, doc, &ns)?;
        let name = sys.metadata.name.clone().unwrap_or_default();
        let target_ns = sys.metadata.namespace.clone().unwrap_or_default();
        systems(&client, &target_ns)
            .patch(&name, &pp, &Patch::Apply(&sys))
            .await
            .map_err(CliError::kube(format!("apply System {target_ns}/{name}")))?;
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

/// `tycho get [NAME]`.
pub async fn get(args: GetArgs) -> Result<ExitCode, CliError> {
    let (client, ns) = args.cluster.client().await?;
    let api = systems(&client, &ns);
    let items = match &args.name {
        Some(n) => vec![api.get(n).await.map_err(not_found("get System", n))?],
        None => {
            api.list(&ListParams::default())
                .await
                .map_err(CliError::kube(format!("list Systems in {ns}")))?
                .items
        }
    };
    match args.output {
        OutputFormat::Table if items.is_empty() => {
            eprintln!("No Systems found in namespace {ns}.");
        }
        OutputFormat::Table => print_table(&items),
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

/// `tycho status NAME [--wait ready]`.
pub async fn status(args: StatusArgs) -> Result<ExitCode, CliError> {
    let (client, ns) = args.cluster.client().await?;
    let api = systems(&client, &ns);
    let pb = args
        .wait
        .and_then(|_| spinner(format!("Waiting for {} to be Ready", args.name)));
    let waited = wait_for(&api, &args).await;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let sys = match waited {
        Ok(sys) => sys,
        Err((Some(sys), e)) => {
            print_status(&sys);
            return Err(e);
        }
        Err((None, e)) => return Err(e),
    };
    match args.output {
        OutputFormat::Table => print_status(&sys),
        out => print_value(&to_value(&sys)?, out)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The System of `tycho status`, once it is in the state `--wait` asks for; on failure also the
/// System as last seen, when there is one.
async fn wait_for(
    api: &Api<System>,
    args: &StatusArgs,
) -> Result<System, (Option<System>, CliError)> {
    let start = Instant::now();
    loop {
        let sys = api
            .get(&args.name)
            .await
            .map_err(|e| (None, not_found("get System", &args.name)(e)))?;
        let phase = sys.status.as_ref().and_then(|s| s.phase);
        match args.wait {
            None => return Ok(sys),
            Some(WaitFor::Ready) if phase == Some(Phase::Ready) => return Ok(sys),
            Some(WaitFor::Ready) if phase == Some(Phase::Failed) => {
                let name = args.name.clone();
                return Err((Some(sys), CliError::SystemFailed { name }));
            }
            Some(_) if start.elapsed() >= args.timeout => {
                let (name, after) = (args.name.clone(), args.timeout);
                return Err((Some(sys), CliError::WaitTimeout { name, after }));
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
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

/// Run `tycho restart`: roll the pods as `kubectl rollout restart` does (the System's
/// `tycho.dev/restartedAt` annotation becomes the pods' `kubectl.kubernetes.io/restartedAt`; a bare Pod
/// is replaced).
pub async fn restart(args: RestartArgs) -> Result<ExitCode, CliError> {
    let (client, ns) = args.cluster.client().await?;
    let api = systems(&client, &ns);
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = tycho_model::restart_patch(&now);
    for n in &args.names {
        api.patch(
            n,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .map_err(not_found("restart System", n))?;
        println!("system.tycho.dev/{n} restarted");
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

/// A System as a JSON value with its `apiVersion` and `kind`.
fn to_value(s: &System) -> Result<serde_json::Value, CliError> {
    let mut v = serde_json::to_value(s).map_err(CliError::serialize("the System"))?;
    v["apiVersion"] = serde_json::json!("tycho.dev/v1alpha1");
    v["kind"] = serde_json::json!("System");
    Ok(v)
}

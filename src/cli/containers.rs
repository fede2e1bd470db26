//! The commands on a System's container: `logs`, `exec`, `cp` and `tunnel`.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, ListParams, LogParams};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::CliError;
use super::args::ClusterArgs;
use super::systems::{not_found, systems};
use tycho_model::LABEL_SYSTEM;
use tycho_sdk::Container;

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
        .map_err(CliError::kube(format!("list pods of {name}")))?;
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
        .ok_or_else(|| CliError::NoPod {
            name: name.to_string(),
        })
}

/// The container `-c` names, else the System's first.
async fn container_name(
    client: &kube::Client,
    ns: &str,
    name: &str,
    asked: Option<&str>,
) -> Result<String, CliError> {
    let c = Container::attach(client.clone(), ns, name, asked)
        .await
        .map_err(|e| match e {
            e if e.is_not_found() => CliError::NotFound {
                name: name.to_string(),
            },
            other => other.into(),
        })?;
    Ok(c.container_name().to_string())
}

/// `tycho logs NAME [-c C] [-f]`.
pub async fn logs(args: LogsArgs) -> Result<ExitCode, CliError> {
    let (client, ns) = args.cluster.client().await?;
    let container = container_name(&client, &ns, &args.name, args.container.as_deref()).await?;
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
        .map_err(CliError::kube(format!("logs of {}", args.name)))?;
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
                Some(Err(e)) => return Err(CliError::Logs(e)),
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
    let container = container_name(&client, &ns, &args.name, args.container.as_deref()).await?;
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
        .map_err(CliError::kube(format!("exec in {}", args.name)))?;
    let status = attached.take_status();
    let out = attached.stdout();
    let err = attached.stderr();
    let stdin_task = attached.stdin().map(|w| tokio::spawn(forward_stdin(w)));
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
        Err(m) => Err(CliError::Exec(m)),
    }
}

/// Forward the local stdin to the remote one, until either ends.
async fn forward_stdin(mut w: impl AsyncWrite + Unpin) {
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
            let c = Container::attach(client, &ns, name, args.container.as_deref()).await?;
            let data = c.fetch(path).await?;
            let mut dest = PathBuf::from(&args.destination);
            if dest.is_dir() {
                dest = dest.join(path.rsplit('/').next().unwrap_or("file"));
            }
            std::fs::write(&dest, &data).map_err(CliError::io(dest.display().to_string()))?;
            Ok(ExitCode::SUCCESS)
        }
        (None, Some((name, path))) => {
            let data = std::fs::read(&args.source).map_err(CliError::io(args.source.clone()))?;
            let c = Container::attach(client, &ns, name, args.container.as_deref()).await?;
            c.put(path, &data).await?;
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
    let c = Container::attach(client, &ns, &args.name, args.container.as_deref()).await?;
    let t = c
        .attach_tunnel(args.port, args.local_port, args.bind)
        .await?;
    println!("Forwarding from {} -> {}", t.local_addr(), args.port);
    let _ = std::io::stdout().flush();
    let _ = tokio::signal::ctrl_c().await;
    drop(t);
    Ok(ExitCode::from(130))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths() {
        assert_eq!(split_remote("web:/etc/x"), Some(("web", "/etc/x")));
        assert_eq!(split_remote("./local"), None);
        assert_eq!(split_remote("C:rel"), None);
    }
}

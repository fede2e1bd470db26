//! `pods/exec` over WebSocket with the Kubernetes channel protocol (`v5.channel.k8s.io`,
//! `v4.channel.k8s.io`): channel 0 stdin, 1 stdout, 2 stderr, 3 the final `Status` as JSON,
//! 4 terminal resize; with v5 the client closes stdin with `[255, 0]`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::container::{SimContainer, quote_word};
use super::shell::{self, Ctx, Io, Sink, Stdin};
use super::ws::{self, CLOSE_CHANNEL, Ws};

/// Subprotocols served for exec, in preference order.
pub const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// What the client asked for.
#[derive(Debug, Clone, Default)]
pub struct ExecParams {
    /// The command (argv).
    pub command: Vec<String>,
    /// Whether stdin is attached.
    pub stdin: bool,
    /// Whether stdout is attached.
    pub stdout: bool,
    /// Whether stderr is attached.
    pub stderr: bool,
    /// Whether a TTY was requested (stderr then goes to stdout, as on a terminal).
    pub tty: bool,
}

/// The `Status` sent on channel 3 when a command ends with `code`, as the kubelet writes it.
pub fn exit_status_json(command: &[String], code: i32) -> String {
    if code == 0 {
        return r#"{"metadata":{},"status":"Success"}"#.to_string();
    }
    let cmd = format!("[{}]", command.join(" "));
    serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command {cmd}, exit code {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
    })
    .to_string()
}

/// Run `params.command` in `container`, wired to the WebSocket. `alive` is polled every two
/// seconds; when it says the pod is gone, the container's processes are terminated (as when the
/// runtime stops a container) and the exec ends with the command's status.
pub async fn run<F, Fut>(
    container: Arc<SimContainer>,
    params: ExecParams,
    mut socket: Ws,
    protocol: String,
    alive: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let v5 = protocol.starts_with("v5.");
    let cmdline = params
        .command
        .iter()
        .map(|w| quote_word(w))
        .collect::<Vec<_>>()
        .join(" ");
    let (pid, kill) = container.start_process(cmdline);
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(64);
    let (err_tx, mut err_rx) = mpsc::channel::<Bytes>(64);
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(64);
    let mut in_tx = if params.stdin { Some(in_tx) } else { None };
    let io = Io {
        stdin: if params.stdin {
            Stdin::channel(in_rx)
        } else {
            Stdin::null()
        },
        stdout: if params.stdout {
            Sink::Chan(out_tx.clone())
        } else {
            Sink::Null
        },
        stderr: if params.stderr {
            if params.tty {
                Sink::Chan(out_tx.clone())
            } else {
                Sink::Chan(err_tx.clone())
            }
        } else {
            Sink::Null
        },
    };
    drop(out_tx);
    drop(err_tx);
    let proc_container = Arc::clone(&container);
    let argv = params.command.clone();
    let mut task = tokio::spawn(async move {
        let mut ctx = Ctx::new(Arc::clone(&proc_container), pid, kill);
        let code = shell::run(&mut ctx, argv, io).await;
        proc_container.end_process(pid);
        code
    });

    let mut code: Option<i32> = None;
    let mut out_open = true;
    let mut err_open = true;
    let mut client_gone = false;
    let mut check = tokio::time::interval(Duration::from_secs(2));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.tick().await;
    loop {
        if code.is_some() && !out_open && !err_open {
            break;
        }
        tokio::select! {
            _ = check.tick(), if code.is_none() => {
                if !alive().await {
                    container.kill_all();
                }
            }
            r = &mut task, if code.is_none() => {
                code = Some(r.unwrap_or(1));
            }
            b = out_rx.recv(), if out_open => match b {
                Some(b) => if socket.send(ws::frame(1, &b)).await.is_err() { client_gone = true; break; },
                None => out_open = false,
            },
            b = err_rx.recv(), if err_open => match b {
                Some(b) => if socket.send(ws::frame(2, &b)).await.is_err() { client_gone = true; break; },
                None => err_open = false,
            },
            msg = socket.next() => match msg {
                Some(Ok(Message::Binary(data))) if !data.is_empty() => match data[0] {
                    0 => {
                        if let Some(tx) = &in_tx {
                            let _ = tx.send(data.slice(1..)).await;
                        }
                    }
                    CLOSE_CHANNEL if v5 && data.get(1) == Some(&0) => in_tx = None,
                    _ => {} // resize (4) and anything else: ignored.
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    client_gone = true;
                    break;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    if client_gone {
        // The client went away: terminate the process, as the runtime does when the exec
        // session's streams close.
        container.kill(pid);
        return;
    }
    let code = code.unwrap_or(1);
    let status = exit_status_json(&params.command, code);
    let _ = socket.send(ws::frame(3, status.as_bytes())).await;
    let _ = socket.send(ws::normal_close()).await;
    // Drain until the client acknowledges the close (or a short grace period ends).
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}

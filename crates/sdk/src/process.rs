//! Processes started in a container with exec.

use bytes::Bytes;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::SdkError;

/// What a finished command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
    /// Exit code (0 = success).
    pub code: i32,
}

impl Output {
    /// stdout as (lossy) UTF-8.
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// The exit code in the `Status` the kubelet sends at the end of an exec (`Success` → 0,
/// `NonZeroExitCode` → its `ExitCode` cause); any other failure is returned as its message.
pub fn exit_code(status: Option<&Status>) -> Result<i32, String> {
    let Some(s) = status else {
        return Err("the connection ended without an exit status".into());
    };
    if s.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let code = s
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|c| {
            c.iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message.as_deref())
        })
        .and_then(|m| m.parse::<i32>().ok());
    match code {
        Some(c) => Ok(c),
        None => Err(s
            .message
            .clone()
            .unwrap_or_else(|| "exec failed without a message".into())),
    }
}

/// A process running in a container.
///
/// Output streams through [`Process::stdout`] / [`Process::stderr`] (or callbacks); the process is
/// terminated when the `Process` is destroyed or dropped (its exec connection closes).
pub struct Process {
    command: String,
    stdout: Option<mpsc::UnboundedReceiver<Bytes>>,
    stderr: Option<mpsc::UnboundedReceiver<Bytes>>,
    done: Option<oneshot::Receiver<Result<i32, SdkError>>>,
    task: JoinHandle<()>,
    callback_task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("command", &self.command)
            .finish()
    }
}

async fn pump<R: AsyncRead + Unpin>(mut r: R, tx: mpsc::UnboundedSender<Bytes>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let _ = tx.send(Bytes::copy_from_slice(&buf[..n]));
            }
        }
    }
}

impl Process {
    pub(crate) async fn start(
        pods: Api<Pod>,
        pod: String,
        container: String,
        command: String,
    ) -> Result<Process, SdkError> {
        let ap = AttachParams::default()
            .container(container)
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let ctx = format!("exec {command:?} in pod {pod}");
        let mut attached = pods
            .exec(&pod, ["sh", "-c", command.as_str()], &ap)
            .await
            .map_err(SdkError::api(ctx.clone()))?;
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (err_tx, err_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let status = attached.take_status();
            let out = attached.stdout();
            let err = attached.stderr();
            let out_f = async {
                if let Some(o) = out {
                    pump(o, out_tx).await;
                }
            };
            let err_f = async {
                if let Some(e) = err {
                    pump(e, err_tx).await;
                }
            };
            tokio::join!(out_f, err_f);
            let status = match status {
                Some(s) => s.await,
                None => None,
            };
            let result = exit_code(status.as_ref()).map_err(|message| SdkError::Stream {
                context: ctx,
                message,
            });
            let _ = done_tx.send(result);
            // Keep `attached` alive until here: dropping it aborts the exec connection.
            drop(attached);
        });
        Ok(Process {
            command,
            stdout: Some(out_rx),
            stderr: Some(err_rx),
            done: Some(done_rx),
            task,
            callback_task: None,
        })
    }

    /// The command line.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Take the stdout stream (chunks as they arrive; ends when the process ends).
    pub fn stdout(&mut self) -> Option<mpsc::UnboundedReceiver<Bytes>> {
        self.stdout.take()
    }

    /// Take the stderr stream.
    pub fn stderr(&mut self) -> Option<mpsc::UnboundedReceiver<Bytes>> {
        self.stderr.take()
    }

    pub(crate) fn set_callbacks<D, T>(&mut self, mut on_data: D, on_exit: T)
    where
        D: FnMut(&[u8]) + Send + 'static,
        T: FnOnce(Result<i32, SdkError>) + Send + 'static,
    {
        let out = self.stdout.take();
        let err = self.stderr.take();
        let done = self.done.take();
        self.callback_task = Some(tokio::spawn(async move {
            let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
            for r in [out, err].into_iter().flatten() {
                let tx = tx.clone();
                let mut r = r;
                tokio::spawn(async move {
                    while let Some(b) = r.recv().await {
                        if tx.send(b).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(tx);
            while let Some(b) = rx.recv().await {
                on_data(&b);
            }
            let result = match done {
                Some(d) => d.await.unwrap_or_else(|_| {
                    Err(SdkError::Stream {
                        context: "process".into(),
                        message: "destroyed".into(),
                    })
                }),
                None => Err(SdkError::Stream {
                    context: "process".into(),
                    message: "already awaited".into(),
                }),
            };
            on_exit(result);
        }));
    }

    /// Wait for the process to end; returns its exit code.
    pub async fn wait(mut self) -> Result<i32, SdkError> {
        if let Some(t) = self.callback_task.take() {
            let _ = t.await;
        }
        match self.done.take() {
            Some(d) => d.await.unwrap_or_else(|_| {
                Err(SdkError::Stream {
                    context: format!("process {:?}", self.command),
                    message: "the exec task ended without a status".into(),
                })
            }),
            None => Err(SdkError::Stream {
                context: format!("process {:?}", self.command),
                message: "its exit status is delivered to the termination callback".into(),
            }),
        }
    }

    /// Wait for the process to end and return what it wrote (the streams not taken) and its exit code.
    pub async fn wait_until_complete(mut self) -> Result<Output, SdkError> {
        let mut out = self.stdout.take();
        let mut err = self.stderr.take();
        let collect = |rx: Option<mpsc::UnboundedReceiver<Bytes>>| async move {
            let mut v = Vec::new();
            if let Some(mut rx) = rx {
                while let Some(b) = rx.recv().await {
                    v.extend_from_slice(&b);
                }
            }
            v
        };
        let (stdout, stderr) = tokio::join!(collect(out.take()), collect(err.take()));
        let code = self.wait().await?;
        Ok(Output {
            stdout,
            stderr,
            code,
        })
    }

    /// Terminate the process (closes its exec connection; the container's runtime ends it).
    pub fn destroy(self) {
        drop(self);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.task.abort();
    }
}

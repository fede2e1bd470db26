//! A spawned container: readiness, logs, files, processes, tunnels, destruction.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{AsyncBufReadExt, Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DeleteParams, ListParams, LogParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

use super::location::Location;
use super::process::{Output, Process};
use super::tunnel::{self, Tunnel};
use super::{DEFAULT_FILE_LIMIT, SdkError};
use tycho_model::{LABEL_SYSTEM, Phase, System};

/// How long methods that need a running pod wait for it when nobody called
/// [`Container::wait_ready`] first.
const IMPLICIT_READY_TIMEOUT: Duration = Duration::from_secs(300);

/// One line of a container log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the container wrote it.
    pub time: DateTime<Utc>,
    /// The text.
    pub text: String,
}

impl LogLine {
    fn parse(line: &str) -> LogLine {
        match line.split_once(' ') {
            Some((ts, text)) => match DateTime::parse_from_rfc3339(ts) {
                Ok(t) => LogLine {
                    time: t.with_timezone(&Utc),
                    text: text.to_string(),
                },
                Err(_) => LogLine {
                    time: Utc::now(),
                    text: line.to_string(),
                },
            },
            None => LogLine {
                time: Utc::now(),
                text: line.to_string(),
            },
        }
    }
}

/// Quote a word for `sh`.
pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

struct ContainerInner {
    client: kube::Client,
    namespace: String,
    location: Option<Location>,
    system: String,
    container: String,
    ports: Vec<u16>,
    pod: Mutex<Option<String>>,
}

/// A container spawned in the session: a session-owned System with one container.
///
/// Cheap to clone. Holding it keeps the session open (see [`Location`]).
#[derive(Clone)]
pub struct Container {
    inner: Arc<ContainerInner>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("system", &self.inner.system)
            .field("container", &self.inner.container)
            .finish()
    }
}

impl Container {
    pub(crate) fn new(
        location: Location,
        system: String,
        container: String,
        ports: Vec<u16>,
    ) -> Container {
        Container {
            inner: Arc::new(ContainerInner {
                client: location.client().clone(),
                namespace: location.namespace().to_string(),
                location: Some(location),
                system,
                container,
                ports,
                pod: Mutex::new(None),
            }),
        }
    }

    /// Name of the System.
    pub fn name(&self) -> &str {
        &self.inner.system
    }

    /// Name of the container inside the pod.
    pub fn container_name(&self) -> &str {
        &self.inner.container
    }

    /// Exposed ports, as given in the spec.
    pub fn ports(&self) -> &[u16] {
        &self.inner.ports
    }

    /// Attach to an existing System (no session is opened; the System's lifetime is not tied
    /// to this handle). `container` picks one of its containers (default: the first).
    pub async fn attach(
        client: kube::Client,
        namespace: &str,
        system: &str,
        container: Option<&str>,
    ) -> Result<Container, SdkError> {
        let api: Api<System> = Api::namespaced(client.clone(), namespace);
        let sys = api
            .get(system)
            .await
            .map_err(SdkError::api(format!("get System {system}")))?;
        let spec = match container {
            Some(c) => sys
                .spec
                .containers
                .iter()
                .find(|x| x.name == c)
                .ok_or_else(|| {
                    SdkError::InvalidSpec(format!(
                        "System {system} has no container {c:?} (it has: {})",
                        sys.spec
                            .containers
                            .iter()
                            .map(|x| x.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?,
            None => sys.spec.containers.first().ok_or_else(|| {
                SdkError::InvalidSpec(format!("System {system} has no container"))
            })?,
        };
        let ports = spec
            .ports
            .iter()
            .filter(|p| p.expose)
            .filter_map(|p| u16::try_from(p.port).ok())
            .collect();
        Ok(Container {
            inner: Arc::new(ContainerInner {
                client,
                namespace: namespace.to_string(),
                location: None,
                system: system.to_string(),
                container: spec.name.clone(),
                ports,
                pod: Mutex::new(None),
            }),
        })
    }

    /// The location (session) this container was spawned in; `None` when attached.
    pub fn location(&self) -> Option<&Location> {
        self.inner.location.as_ref()
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.inner.client.clone(), &self.inner.namespace)
    }

    fn systems(&self) -> Api<System> {
        Api::namespaced(self.inner.client.clone(), &self.inner.namespace)
    }

    /// Wait until the System is Ready and one of its pods is Running and Ready; returns the pod name.
    ///
    /// Polls the System's status and its pods (label `tycho.dev/system`) every 100 ms.
    ///
    /// ```no_run
    /// # async fn demo(location: tycho_sdk::Location) -> Result<(), tycho_sdk::SdkError> {
    /// use std::time::Duration;
    /// // Start ten at once, then wait for all: they boot in parallel.
    /// let mut containers = Vec::new();
    /// for _ in 0..10 {
    ///     containers.push(location.spawn(tycho_sdk::ContainerSpec::new("nginx").port(80)).await?);
    /// }
    /// for c in &containers {
    ///     c.wait_ready(Duration::from_secs(120)).await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_ready(&self, timeout: Duration) -> Result<String, SdkError> {
        let start = Instant::now();
        let systems = self.systems();
        let pods = self.pods();
        let lp = ListParams::default().labels(&format!("{LABEL_SYSTEM}={}", self.inner.system));
        loop {
            let sys = systems
                .get_opt(&self.inner.system)
                .await
                .map_err(SdkError::api(format!("get System {}", self.inner.system)))?;
            let Some(sys) = sys else {
                return Err(SdkError::Failed {
                    system: self.inner.system.clone(),
                    message:
                        "the System no longer exists (destroyed, or its session was collected)"
                            .into(),
                });
            };
            let status = sys.status.unwrap_or_default();
            if status.phase == Some(Phase::Failed) {
                let message = status
                    .conditions
                    .iter()
                    .find(|c| c.status == "False" && !c.message.is_empty())
                    .map(|c| format!("{}: {}", c.reason, c.message))
                    .unwrap_or_else(|| "phase Failed".into());
                return Err(SdkError::Failed {
                    system: self.inner.system.clone(),
                    message,
                });
            }
            if status.phase == Some(Phase::Ready) || status.ready_replicas > 0 {
                let list = pods
                    .list(&lp)
                    .await
                    .map_err(SdkError::api(format!("list Pods of {}", self.inner.system)))?;
                let ready = list.items.iter().find(|p| {
                    p.metadata.deletion_timestamp.is_none()
                        && p.status.as_ref().is_some_and(|s| {
                            s.phase.as_deref() == Some("Running")
                                && s.conditions
                                    .iter()
                                    .flatten()
                                    .any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                });
                if let Some(p) = ready.and_then(|p| p.metadata.name.clone()) {
                    *self.inner.pod.lock().await = Some(p.clone());
                    return Ok(p);
                }
            }
            if start.elapsed() >= timeout {
                return Err(SdkError::Timeout {
                    what: format!("System {} to be Ready", self.inner.system),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The pod serving this container (waits for readiness when not known yet).
    pub async fn pod(&self) -> Result<String, SdkError> {
        if let Some(p) = self.inner.pod.lock().await.clone() {
            return Ok(p);
        }
        self.wait_ready(IMPLICIT_READY_TIMEOUT).await
    }

    /// Forget the cached pod (e.g. after it was replaced), so the next call looks it up again.
    pub async fn refresh_pod(&self) {
        *self.inner.pod.lock().await = None;
    }

    /// The container log so far, as timestamped lines.
    ///
    /// ```no_run
    /// # async fn demo(container: tycho_sdk::Container) -> Result<(), tycho_sdk::SdkError> {
    /// for line in container.logs().await? {
    ///     println!("{} {}", line.time, line.text);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn logs(&self) -> Result<Vec<LogLine>, SdkError> {
        let pod = self.pod().await?;
        let lp = LogParams {
            container: Some(self.inner.container.clone()),
            timestamps: true,
            ..LogParams::default()
        };
        let text = self
            .pods()
            .logs(&pod, &lp)
            .await
            .map_err(SdkError::api(format!("logs of pod {pod}")))?;
        Ok(text.lines().map(LogLine::parse).collect())
    }

    /// Follow the log: the lines so far, then new lines as they are written, until the pod ends.
    pub async fn log_stream(
        &self,
    ) -> Result<impl Stream<Item = Result<LogLine, SdkError>> + use<>, SdkError> {
        let pod = self.pod().await?;
        let lp = LogParams {
            container: Some(self.inner.container.clone()),
            timestamps: true,
            follow: true,
            ..LogParams::default()
        };
        let reader = self
            .pods()
            .log_stream(&pod, &lp)
            .await
            .map_err(SdkError::api(format!("follow logs of pod {pod}")))?;
        Ok(reader.lines().map(move |l| {
            l.map(|l| LogLine::parse(&l)).map_err(|e| SdkError::Stream {
                context: format!("following logs of pod {pod}"),
                message: e.to_string(),
            })
        }))
    }

    /// Run `argv` in the container to completion, feeding `stdin`; stdout is capped at `limit` bytes.
    pub async fn exec(
        &self,
        argv: &[&str],
        stdin: Option<&[u8]>,
        limit: usize,
    ) -> Result<Output, SdkError> {
        let pod = self.pod().await?;
        let ap = AttachParams::default()
            .container(self.inner.container.clone())
            .stdin(stdin.is_some())
            .stdout(true)
            .stderr(true);
        let ctx = format!("exec {:?} in pod {pod}", argv.join(" "));
        let mut attached = self
            .pods()
            .exec(&pod, argv.iter().copied(), &ap)
            .await
            .map_err(SdkError::api(ctx.clone()))?;
        let status = attached.take_status();
        let mut out = attached.stdout().ok_or_else(|| SdkError::Stream {
            context: ctx.clone(),
            message: "no stdout".into(),
        })?;
        let mut err = attached.stderr().ok_or_else(|| SdkError::Stream {
            context: ctx.clone(),
            message: "no stderr".into(),
        })?;
        let writer = async {
            if let (Some(data), Some(mut w)) = (stdin, attached.stdin()) {
                w.write_all(data).await.map_err(SdkError::io(ctx.clone()))?;
                w.shutdown().await.map_err(SdkError::io(ctx.clone()))?;
            }
            Ok::<(), SdkError>(())
        };
        let reader_out = async {
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = out
                    .read(&mut chunk)
                    .await
                    .map_err(SdkError::io(ctx.clone()))?;
                if n == 0 {
                    return Ok(buf);
                }
                if buf.len() + n > limit {
                    return Err(SdkError::TooLarge {
                        path: argv.join(" "),
                        limit,
                    });
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        };
        let reader_err = async {
            let mut buf = Vec::new();
            err.read_to_end(&mut buf)
                .await
                .map_err(SdkError::io(ctx.clone()))?;
            Ok::<_, SdkError>(buf)
        };
        // On the first error (e.g. the size limit), stop reading: dropping `attached` then
        // closes the exec connection, which terminates the remote command.
        let ((), stdout, stderr) = tokio::try_join!(writer, reader_out, reader_err)?;
        let status = match status {
            Some(s) => s.await,
            None => None,
        };
        let code = super::process::exit_code(status.as_ref()).map_err(|m| SdkError::Stream {
            context: ctx.clone(),
            message: m,
        })?;
        Ok(Output {
            stdout,
            stderr,
            code,
        })
    }

    /// The content of the file at `path` (at most [`DEFAULT_FILE_LIMIT`] bytes).
    ///
    /// ```no_run
    /// # async fn demo(container: tycho_sdk::Container) -> Result<(), tycho_sdk::SdkError> {
    /// container.put("/usr/new/path", b"Some data").await?;
    /// assert_eq!(container.fetch("/usr/new/path").await?, b"Some data");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn fetch(&self, path: &str) -> Result<Vec<u8>, SdkError> {
        self.fetch_limited(path, DEFAULT_FILE_LIMIT).await
    }

    /// The content of the file at `path`, failing with [`SdkError::TooLarge`] beyond `limit` bytes.
    pub async fn fetch_limited(&self, path: &str, limit: usize) -> Result<Vec<u8>, SdkError> {
        let out = self
            .exec(&["cat", path], None, limit)
            .await
            .map_err(|e| match e {
                SdkError::TooLarge { limit, .. } => SdkError::TooLarge {
                    path: path.to_string(),
                    limit,
                },
                other => other,
            })?;
        if out.code == 0 {
            return Ok(out.stdout);
        }
        Err(self.file_error(path, "cat", out))
    }

    fn file_error(&self, path: &str, command: &str, out: Output) -> SdkError {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.contains("No such file or directory") {
            SdkError::NotFound {
                system: self.inner.system.clone(),
                path: path.to_string(),
            }
        } else {
            SdkError::Remote {
                system: self.inner.system.clone(),
                command: format!("{command} {path}"),
                code: out.code,
                stderr,
            }
        }
    }

    /// Write `data` to the file at `path`, creating missing directories (at most
    /// [`DEFAULT_FILE_LIMIT`] bytes). Uses `tar` in the container, as `kubectl cp` does.
    pub async fn put(&self, path: &str, data: &[u8]) -> Result<(), SdkError> {
        if data.len() > DEFAULT_FILE_LIMIT {
            return Err(SdkError::TooLarge {
                path: path.to_string(),
                limit: DEFAULT_FILE_LIMIT,
            });
        }
        let (dir, base) = match path.rsplit_once('/') {
            Some((d, b)) if path.starts_with('/') && !b.is_empty() => {
                (if d.is_empty() { "/" } else { d }, b)
            }
            _ => {
                return Err(SdkError::InvalidSpec(format!(
                    "{path}: put needs an absolute file path"
                )));
            }
        };
        let archive = tunnel::tar_single(base, data)
            .map_err(SdkError::io(format!("{path}: packing the file")))?;
        let script = format!("mkdir -p {d} && tar xmf - -C {d}", d = sh_quote(dir));
        let out = self
            .exec(&["sh", "-c", &script], Some(&archive), 1024 * 1024)
            .await?;
        if out.code == 0 {
            return Ok(());
        }
        Err(self.file_error(path, "tar x", out))
    }

    /// Start `command` (a shell command line, run with `sh -c`) in the container. Its stdout and
    /// stderr stream through [`Process::stdout`] / [`Process::stderr`].
    ///
    /// ```no_run
    /// # async fn demo(container: tycho_sdk::Container) -> Result<(), tycho_sdk::SdkError> {
    /// let out = container.spawn_process("ps faxu").await?.wait_until_complete().await?;
    /// println!("{} (exit {})", out.stdout_str(), out.code);
    /// // Streaming: read chunks as they come.
    /// let mut p = container.spawn_process("echo a; sleep 1; echo b").await?;
    /// let mut stdout = p.stdout().expect("not taken yet");
    /// while let Some(chunk) = stdout.recv().await {
    ///     print!("{}", String::from_utf8_lossy(&chunk));
    /// }
    /// assert_eq!(p.wait().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn spawn_process(&self, command: &str) -> Result<Process, SdkError> {
        let pod = self.pod().await?;
        Process::start(
            self.pods(),
            pod,
            self.inner.container.clone(),
            command.to_string(),
        )
        .await
    }

    /// Start `command` and call `on_data(stdout_or_stderr_bytes)` for its output and
    /// `on_exit(code)` when it ends (the seed SDK's `data_callback` / `termination_callback`).
    pub async fn spawn_process_with_callbacks<D, T>(
        &self,
        command: &str,
        on_data: D,
        on_exit: T,
    ) -> Result<Process, SdkError>
    where
        D: FnMut(&[u8]) + Send + 'static,
        T: FnOnce(Result<i32, SdkError>) + Send + 'static,
    {
        let mut p = self.spawn_process(command).await?;
        p.set_callbacks(on_data, on_exit);
        Ok(p)
    }

    /// Open a local TCP listener on `bind:local_port` (a free port when `None`) whose
    /// connections are forwarded to `port` of the container through the API server.
    ///
    /// ```no_run
    /// # async fn demo(container: tycho_sdk::Container) -> Result<(), tycho_sdk::SdkError> {
    /// let tunnel = container.attach_tunnel(80, Some(1234), [127, 0, 0, 1].into()).await?;
    /// println!("http://127.0.0.1:{}/", tunnel.local_port());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn attach_tunnel(
        &self,
        port: u16,
        local_port: Option<u16>,
        bind: IpAddr,
    ) -> Result<Tunnel, SdkError> {
        let pod = self.pod().await?;
        Tunnel::open(self.clone(), self.pods(), pod, port, local_port, bind).await
    }

    fn default_port(&self, port: Option<u16>) -> Result<u16, SdkError> {
        port.or_else(|| self.inner.ports.first().copied())
            .ok_or_else(|| {
                SdkError::InvalidSpec(format!(
                    "{} exposes no port: pass one, or add .port(..) to the spec",
                    self.inner.system
                ))
            })
    }

    /// Tunnel to `port` (default: the first exposed port) and poll `path` until it answers
    /// HTTP 200, sending `host` as the `Host` header when given. Returns the tunnel.
    pub async fn wait_http_200(
        &self,
        port: Option<u16>,
        host: Option<&str>,
        path: &str,
        timeout: Duration,
    ) -> Result<Tunnel, SdkError> {
        let start = Instant::now();
        let port = self.default_port(port)?;
        self.wait_ready(timeout).await?;
        let tunnel = self
            .attach_tunnel(port, None, IpAddr::from([127, 0, 0, 1]))
            .await?;
        let left = timeout.saturating_sub(start.elapsed());
        tunnel.wait_http_200(host, path, left).await?;
        Ok(tunnel)
    }

    /// Like [`Container::wait_http_200`], then open a browser on the tunnel's URL (`$BROWSER`,
    /// else `xdg-open` / `open`).
    pub async fn attach_browser(
        &self,
        port: Option<u16>,
        host: Option<&str>,
        path: &str,
        timeout: Duration,
    ) -> Result<Tunnel, SdkError> {
        let tunnel = self.wait_http_200(port, host, path, timeout).await?;
        tunnel::open_browser(&tunnel.url(host, path))?;
        Ok(tunnel)
    }

    /// Restart the container, as `kubectl rollout restart` does: the System's pods are replaced (a bare
    /// Pod by a new one, a Deployment by a rollout). Files put into the old pod are gone; the pre-boot
    /// files are written again. Wait with [`Container::wait_ready`].
    pub async fn restart(&self) -> Result<(), SdkError> {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let patch = tycho_model::restart_patch(&now);
        self.systems()
            .patch(
                &self.inner.system,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .map_err(SdkError::api(format!(
                "restart System {}",
                self.inner.system
            )))?;
        self.refresh_pod().await;
        Ok(())
    }

    /// Delete the System (its pod, files and service go with it).
    pub async fn destroy(&self) -> Result<(), SdkError> {
        match self
            .systems()
            .delete(&self.inner.system, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(SdkError::api(format!(
                "delete System {}",
                self.inner.system
            ))(e)),
        }
    }

    /// Whether the System still exists.
    pub async fn exists(&self) -> Result<bool, SdkError> {
        Ok(self
            .systems()
            .get_opt(&self.inner.system)
            .await
            .map_err(SdkError::api(format!("get System {}", self.inner.system)))?
            .is_some())
    }

    /// Pods of this System (any state).
    pub async fn list_pods(&self) -> Result<Vec<Pod>, SdkError> {
        let lp = ListParams::default().labels(&format!("{LABEL_SYSTEM}={}", self.inner.system));
        Ok(self
            .pods()
            .list(&lp)
            .await
            .map_err(SdkError::api(format!("list Pods of {}", self.inner.system)))?
            .items)
    }

    /// Collect all lines of a following log stream (helper for tests and tools).
    pub async fn logs_until<F>(
        &self,
        timeout: Duration,
        mut done: F,
    ) -> Result<Vec<LogLine>, SdkError>
    where
        F: FnMut(&LogLine) -> bool,
    {
        let stream = self.log_stream().await?;
        futures::pin_mut!(stream);
        let mut lines = Vec::new();
        let r = tokio::time::timeout(timeout, async {
            while let Some(line) = stream.try_next().await? {
                let stop = done(&line);
                lines.push(line);
                if stop {
                    break;
                }
            }
            Ok::<(), SdkError>(())
        })
        .await;
        match r {
            Ok(res) => res.map(|()| lines),
            Err(_) => Err(SdkError::Timeout {
                what: format!("log lines of {}", self.inner.system),
                after: timeout,
            }),
        }
    }
}

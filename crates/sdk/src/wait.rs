//! Wait strategies, as Testcontainers users know them: wait until a container's log shows a line,
//! a TCP port accepts connections, an HTTP path answers a given status, or a command exits with a
//! given code.
//!
//! Every strategy first waits for the container to be Ready ([`Container::wait_ready`]), then polls
//! its condition until it holds or the timeout (counted from the call) passes. Everything goes
//! through the Kubernetes API (logs, port-forward, exec), so it works wherever the rest of the SDK
//! does.
//!
//! ```no_run
//! use std::time::Duration;
//! use tycho_sdk::wait::WaitFor;
//! use tycho_sdk::{ContainerSpec, Location};
//!
//! # async fn demo() -> Result<(), tycho_sdk::SdkError> {
//! let location = Location::connect().await?;
//! let db = location.spawn(ContainerSpec::new("postgres:17").port(5432)).await?;
//! let strategy = WaitFor::all([
//!     WaitFor::log_line("ready to accept connections", |line| {
//!         line.contains("ready to accept connections")
//!     })
//!     .times(2),
//!     WaitFor::tcp_port(5432),
//!     WaitFor::command("pg_isready -U postgres"),
//! ]);
//! db.wait_for(&strategy, Duration::from_secs(120)).await?;
//! # Ok(())
//! # }
//! ```

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::SdkError;
use super::container::Container;
use super::tunnel::Tunnel;

/// How often a polled condition (port, HTTP, command) is tried again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How long a connection through a port-forward must stay up, with nothing refusing it, for the
/// port to count as listening. The kubelet reports a refused port on the port-forward's error
/// stream and closes the connection; an accepted one stays open silently (a server that speaks
/// first, e.g. SSH, counts as soon as it does).
pub const TCP_GRACE: Duration = Duration::from_millis(1000);

/// Largest output of a [`WaitFor::command`] kept (the rest fails the attempt).
const COMMAND_OUTPUT_LIMIT: usize = 1024 * 1024;

/// Decides whether a log line is the one awaited (the text only, without the timestamp).
pub type LineMatcher = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// A condition to wait for on a [`Container`]: see the module docs, and [`Container::wait_for`].
#[derive(Clone)]
pub struct WaitFor {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Ready,
    LogLine {
        description: String,
        matcher: LineMatcher,
        times: usize,
    },
    TcpPort(u16),
    Http(HttpWait),
    Command {
        command: String,
        exit_code: i32,
    },
    All(Vec<WaitFor>),
}

/// Wait for an HTTP status through a tunnel: [`WaitFor::http`] and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpWait {
    path: String,
    port: Option<u16>,
    host: Option<String>,
    status: u16,
}

impl HttpWait {
    /// The container port (default: the first port of the spec).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The `Host` header to send (default `localhost`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The status code awaited (default 200).
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
}

impl std::fmt::Debug for WaitFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::fmt::Display for WaitFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl From<HttpWait> for WaitFor {
    fn from(h: HttpWait) -> WaitFor {
        WaitFor {
            kind: Kind::Http(h),
        }
    }
}

impl WaitFor {
    /// The container is Ready and a pod of it runs (what every other strategy waits for first).
    pub fn ready() -> WaitFor {
        WaitFor { kind: Kind::Ready }
    }

    /// A log line for which `matcher` returns true (once; see [`WaitFor::times`]). Lines written
    /// before the wait began count too, as in Testcontainers. `description` names it in errors
    /// (e.g. the regular expression). To wait for a regular expression, pass its `is_match`:
    /// `WaitFor::log_line(re.as_str(), move |l| re.is_match(l))`.
    pub fn log_line(
        description: impl Into<String>,
        matcher: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> WaitFor {
        WaitFor {
            kind: Kind::LogLine {
                description: description.into(),
                matcher: Arc::new(matcher),
                times: 1,
            },
        }
    }

    /// A log line containing `text`.
    pub fn log_contains(text: impl Into<String>) -> WaitFor {
        let text = text.into();
        let needle = text.clone();
        WaitFor::log_line(format!("containing {text:?}"), move |l| l.contains(&needle))
    }

    /// For a log-line strategy: wait for `n` matching lines (at least 1). Other strategies are
    /// returned unchanged.
    pub fn times(mut self, n: usize) -> WaitFor {
        if let Kind::LogLine { times, .. } = &mut self.kind {
            *times = n.max(1);
        }
        self
    }

    /// A container port accepts TCP connections (through a port-forward; see [`TCP_GRACE`]).
    pub fn tcp_port(port: u16) -> WaitFor {
        WaitFor {
            kind: Kind::TcpPort(port),
        }
    }

    /// `GET path` answers a status (200 unless [`HttpWait::status`] says otherwise), on the first
    /// port of the spec unless [`HttpWait::port`] says otherwise.
    pub fn http(path: impl Into<String>) -> HttpWait {
        let path = path.into();
        HttpWait {
            path: if path.starts_with('/') {
                path
            } else {
                format!("/{path}")
            },
            port: None,
            host: None,
            status: 200,
        }
    }

    /// `command` (a shell command line, run with `sh -c` in the container) exits with 0.
    pub fn command(command: impl Into<String>) -> WaitFor {
        WaitFor::command_exit(command, 0)
    }

    /// `command` exits with `exit_code`.
    pub fn command_exit(command: impl Into<String>, exit_code: i32) -> WaitFor {
        WaitFor {
            kind: Kind::Command {
                command: command.into(),
                exit_code,
            },
        }
    }

    /// Every one of `strategies`, one after the other, within one timeout.
    pub fn all(strategies: impl IntoIterator<Item = WaitFor>) -> WaitFor {
        WaitFor {
            kind: Kind::All(strategies.into_iter().collect()),
        }
    }

    /// What is awaited, in words (used in [`SdkError::Timeout`]).
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Ready => "the container to be Ready".into(),
            Kind::LogLine {
                description, times, ..
            } => {
                if *times == 1 {
                    format!("a log line matching {description}")
                } else {
                    format!("{times} log lines matching {description}")
                }
            }
            Kind::TcpPort(p) => format!("TCP port {p} to accept connections"),
            Kind::Http(h) => format!(
                "HTTP {} from GET {} on port {}{}",
                h.status,
                h.path,
                h.port
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "(the first exposed)".into()),
                h.host
                    .as_deref()
                    .map(|h| format!(" (Host: {h})"))
                    .unwrap_or_default()
            ),
            Kind::Command { command, exit_code } => {
                format!("`{command}` to exit with {exit_code}")
            }
            Kind::All(v) => v
                .iter()
                .map(WaitFor::describe)
                .collect::<Vec<_>>()
                .join(", then "),
        }
    }
}

/// Counts matching lines until `times` are seen; pure, so it is tested without a cluster.
#[derive(Debug)]
struct LineCounter {
    seen: usize,
    times: usize,
}

impl LineCounter {
    fn new(times: usize) -> LineCounter {
        LineCounter {
            seen: 0,
            times: times.max(1),
        }
    }

    /// Feed one line; true once enough matching lines were seen.
    fn feed(&mut self, matcher: &LineMatcher, line: &str) -> bool {
        if matcher(line) {
            self.seen += 1;
        }
        self.seen >= self.times
    }
}

/// The outcome of one try of a TCP connection through a tunnel, from what the connection did
/// within the grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TcpProbe {
    /// The server sent data, or nothing closed the connection within the grace period.
    Open,
    /// The connection was closed or reset at once: nothing listens.
    Refused,
}

/// Judge a probe from the first read on the local end of a tunnel (`None`: the grace period
/// passed with nothing read).
fn judge_tcp(read: Option<std::io::Result<usize>>) -> TcpProbe {
    match read {
        None | Some(Ok(1..)) => TcpProbe::Open,
        Some(Ok(0)) | Some(Err(_)) => TcpProbe::Refused,
    }
}

fn timeout_error(strategy: &WaitFor, timeout: Duration, last: &str) -> SdkError {
    SdkError::Timeout {
        what: if last.is_empty() {
            strategy.describe()
        } else {
            format!("{} (last: {last})", strategy.describe())
        },
        after: timeout,
    }
}

impl Container {
    /// Wait until `strategy` holds, for at most `timeout` (counted from this call, including the
    /// wait for readiness that comes first).
    ///
    /// ```no_run
    /// # async fn demo(container: tycho_sdk::Container) -> Result<(), tycho_sdk::SdkError> {
    /// use std::time::Duration;
    /// use tycho_sdk::wait::WaitFor;
    /// // A missing page answers 404 once the server runs.
    /// container
    ///     .wait_for(&WaitFor::http("/missing").status(404).into(), Duration::from_secs(60))
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_for(&self, strategy: &WaitFor, timeout: Duration) -> Result<(), SdkError> {
        let deadline = Instant::now() + timeout;
        self.wait_ready(timeout).await?;
        self.wait_until(strategy, deadline, timeout).await
    }

    fn wait_until<'a>(
        &'a self,
        strategy: &'a WaitFor,
        deadline: Instant,
        timeout: Duration,
    ) -> futures::future::BoxFuture<'a, Result<(), SdkError>> {
        Box::pin(async move {
            match &strategy.kind {
                Kind::Ready => Ok(()),
                Kind::LogLine { matcher, times, .. } => {
                    self.wait_log(strategy, matcher, *times, deadline, timeout)
                        .await
                }
                Kind::TcpPort(port) => self.wait_tcp(strategy, *port, deadline, timeout).await,
                Kind::Http(h) => self.wait_http(strategy, h, deadline, timeout).await,
                Kind::Command { command, exit_code } => {
                    self.wait_command(strategy, command, *exit_code, deadline, timeout)
                        .await
                }
                Kind::All(all) => {
                    for s in all {
                        self.wait_until(s, deadline, timeout).await?;
                    }
                    Ok(())
                }
            }
        })
    }

    async fn wait_log(
        &self,
        strategy: &WaitFor,
        matcher: &LineMatcher,
        times: usize,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), SdkError> {
        let mut counter = LineCounter::new(times);
        let follow = async {
            let stream = self.log_stream().await?;
            futures::pin_mut!(stream);
            while let Some(line) = stream.try_next().await? {
                if counter.feed(matcher, &line.text) {
                    return Ok(());
                }
            }
            Err(SdkError::Failed {
                system: self.name().to_string(),
                message: format!(
                    "the log ended before {} ({} of {times} seen)",
                    strategy.describe(),
                    counter.seen
                ),
            })
        };
        match tokio::time::timeout_at(deadline, follow).await {
            Ok(r) => r,
            Err(_) => Err(timeout_error(strategy, timeout, "")),
        }
    }

    async fn wait_tcp(
        &self,
        strategy: &WaitFor,
        port: u16,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), SdkError> {
        let tunnel = self
            .attach_tunnel(port, None, IpAddr::from([127, 0, 0, 1]))
            .await?;
        loop {
            let last = match probe_tcp(&tunnel).await {
                Ok(TcpProbe::Open) => return Ok(()),
                Ok(TcpProbe::Refused) => "connection closed at once (refused)".to_string(),
                Err(e) => e.to_string(),
            };
            if Instant::now() + POLL_INTERVAL >= deadline {
                return Err(timeout_error(strategy, timeout, &last));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn wait_http(
        &self,
        strategy: &WaitFor,
        h: &HttpWait,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), SdkError> {
        let port = match h.port.or_else(|| self.ports().first().copied()) {
            Some(p) => p,
            None => {
                return Err(SdkError::InvalidSpec(format!(
                    "{} exposes no port: name one for the HTTP wait",
                    self.name()
                )));
            }
        };
        let tunnel = self
            .attach_tunnel(port, None, IpAddr::from([127, 0, 0, 1]))
            .await?;
        loop {
            let last = match tunnel.http_get(h.host.as_deref(), &h.path).await {
                Ok((code, _)) if code == h.status => return Ok(()),
                Ok((code, _)) => format!("HTTP {code}"),
                Err(e) => e.to_string(),
            };
            if Instant::now() + POLL_INTERVAL >= deadline {
                return Err(timeout_error(strategy, timeout, &last));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn wait_command(
        &self,
        strategy: &WaitFor,
        command: &str,
        exit_code: i32,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), SdkError> {
        let mut last = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let argv = ["sh", "-c", command];
            let run = self.exec(&argv, None, COMMAND_OUTPUT_LIMIT);
            match tokio::time::timeout(left, run).await {
                Ok(Ok(out)) if out.code == exit_code => return Ok(()),
                Ok(Ok(out)) => {
                    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
                    last = if stderr.is_empty() {
                        format!("exit code {}", out.code)
                    } else {
                        format!("exit code {}: {stderr}", out.code)
                    };
                }
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => return Err(timeout_error(strategy, timeout, &last)),
            }
            if Instant::now() + POLL_INTERVAL >= deadline {
                return Err(timeout_error(strategy, timeout, &last));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// One TCP connection through `tunnel`: open when it stays up for [`TCP_GRACE`] or the server
/// speaks; refused when the port-forward closes it at once.
async fn probe_tcp(tunnel: &Tunnel) -> Result<TcpProbe, SdkError> {
    let addr = std::net::SocketAddr::new(IpAddr::from([127, 0, 0, 1]), tunnel.local_port());
    let mut socket = TcpStream::connect(addr)
        .await
        .map_err(SdkError::io(format!("connecting to the tunnel on {addr}")))?;
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(TCP_GRACE, socket.read(&mut buf))
        .await
        .ok();
    Ok(judge_tcp(read))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(f: impl Fn(&str) -> bool + Send + Sync + 'static) -> LineMatcher {
        Arc::new(f)
    }

    #[test]
    fn counts_matching_lines_until_enough() {
        let m = matcher(|l| l.contains("ready"));
        let mut c = LineCounter::new(2);
        assert!(!c.feed(&m, "starting"));
        assert!(!c.feed(&m, "ready once"));
        assert!(!c.feed(&m, "not yet"));
        assert!(c.feed(&m, "ready twice"));
        // Zero is taken as one.
        let mut one = LineCounter::new(0);
        assert!(!one.feed(&m, "nothing"));
        assert!(one.feed(&m, "ready"));
    }

    #[test]
    fn times_applies_to_log_lines_only() {
        let w = WaitFor::log_contains("up").times(3);
        assert_eq!(w.describe(), "3 log lines matching containing \"up\"");
        assert!(matches!(w.kind, Kind::LogLine { times: 3, .. }));
        let t = WaitFor::tcp_port(80).times(3);
        assert!(matches!(t.kind, Kind::TcpPort(80)));
    }

    #[test]
    fn log_contains_matches_substrings() {
        let WaitFor {
            kind: Kind::LogLine { matcher, .. },
        } = WaitFor::log_contains("GET /x")
        else {
            panic!("not a log-line strategy");
        };
        assert!(matcher("127.0.0.1 - \"GET /x HTTP/1.1\" 404"));
        assert!(!matcher("GET /y"));
    }

    #[test]
    fn http_defaults_and_settings() {
        let h = WaitFor::http("health");
        assert_eq!(h.path, "/health");
        assert_eq!(h.status, 200);
        assert_eq!((h.port, h.host.as_deref()), (None, None));
        let h = h.port(8080).host("example.org").status(404);
        assert_eq!(
            (h.port, h.host.as_deref(), h.status),
            (Some(8080), Some("example.org"), 404)
        );
        let w: WaitFor = h.into();
        assert_eq!(
            w.describe(),
            "HTTP 404 from GET /health on port 8080 (Host: example.org)"
        );
        assert_eq!(
            WaitFor::from(WaitFor::http("/")).describe(),
            "HTTP 200 from GET / on port (the first exposed)"
        );
    }

    #[test]
    fn describes_commands_and_sequences() {
        let w = WaitFor::all([
            WaitFor::ready(),
            WaitFor::command("test -f /tmp/ready"),
            WaitFor::command_exit("false", 1),
        ]);
        assert_eq!(
            w.to_string(),
            "the container to be Ready, then `test -f /tmp/ready` to exit with 0, then `false` to exit with 1"
        );
    }

    #[test]
    fn tcp_probe_judgement() {
        assert_eq!(judge_tcp(None), TcpProbe::Open);
        assert_eq!(judge_tcp(Some(Ok(1))), TcpProbe::Open);
        assert_eq!(judge_tcp(Some(Ok(0))), TcpProbe::Refused);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(judge_tcp(Some(Err(reset))), TcpProbe::Refused);
    }

    #[test]
    fn timeout_errors_say_what_and_the_last_observation() {
        let w = WaitFor::tcp_port(5432);
        let e = timeout_error(&w, Duration::from_secs(2), "connection closed at once");
        assert_eq!(
            e.to_string(),
            "timed out after 2s waiting for TCP port 5432 to accept connections (last: connection closed at once)"
        );
    }
}

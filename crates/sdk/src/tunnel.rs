//! TCP tunnels from a local port to a container port, through the API server's port-forward.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::SdkError;
use super::container::Container;

/// A local listener forwarding each accepted connection to a container port. Closed when dropped.
pub struct Tunnel {
    local: SocketAddr,
    port: u16,
    container: Container,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("local", &self.local)
            .field("port", &self.port)
            .field("system", &self.container.name())
            .finish()
    }
}

impl Tunnel {
    pub(crate) async fn open(
        container: Container,
        pods: Api<Pod>,
        pod: String,
        port: u16,
        local_port: Option<u16>,
        bind: IpAddr,
    ) -> Result<Tunnel, SdkError> {
        let addr = SocketAddr::new(bind, local_port.unwrap_or(0));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(SdkError::io(format!("listening on {addr}")))?;
        let local = listener
            .local_addr()
            .map_err(SdkError::io(format!("listening on {addr}")))?;
        tracing::debug!(system = %container.name(), local = %local, port, "created tunnel");
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, peer)) = listener.accept().await else {
                    continue;
                };
                let pods = pods.clone();
                let pod = pod.clone();
                tokio::spawn(async move {
                    if let Err(e) = forward(socket, &pods, &pod, port).await {
                        tracing::debug!(%peer, pod, port, error = %e, "tunnel connection ended with an error");
                    }
                });
            }
        });
        Ok(Tunnel {
            local,
            port,
            container,
            task,
        })
    }

    /// The local port.
    pub fn local_port(&self) -> u16 {
        self.local.port()
    }

    /// The local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The container port.
    pub fn remote_port(&self) -> u16 {
        self.port
    }

    /// The container this tunnel leads to.
    pub fn container(&self) -> &Container {
        &self.container
    }

    /// `http://HOST:PORT/PATH` for this tunnel (HOST: `host`, else the bound address, `127.0.0.1`
    /// when bound to all addresses).
    pub fn url(&self, host: Option<&str>, path: &str) -> String {
        let h = match host {
            Some(h) => h.to_string(),
            None if self.local.ip().is_unspecified() => "127.0.0.1".into(),
            None => match self.local.ip() {
                IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            },
        };
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        format!("http://{h}:{}{path}", self.local.port())
    }

    /// One `GET path` through the tunnel; returns the status code and body.
    pub async fn http_get(
        &self,
        host: Option<&str>,
        path: &str,
    ) -> Result<(u16, Vec<u8>), SdkError> {
        let target = if self.local.ip().is_unspecified() {
            SocketAddr::new(IpAddr::from([127, 0, 0, 1]), self.local.port())
        } else {
            self.local
        };
        http_get(target, host.unwrap_or("localhost"), path).await
    }

    /// Poll `path` through the tunnel until it answers 200.
    pub async fn wait_http_200(
        &self,
        host: Option<&str>,
        path: &str,
        timeout: Duration,
    ) -> Result<(), SdkError> {
        let start = Instant::now();
        tracing::debug!(system = %self.container.name(), "waiting on http 200");
        loop {
            let last = match self.http_get(host, path).await {
                Ok((200, _)) => {
                    tracing::debug!(url = %self.url(host, path), "connected");
                    return Ok(());
                }
                Ok((code, _)) => format!("HTTP {code}"),
                Err(e) => e.to_string(),
            };
            if start.elapsed() >= timeout {
                return Err(SdkError::Timeout {
                    what: format!("HTTP 200 from {} (last: {last})", self.url(host, path)),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stop listening (open connections finish).
    pub fn close(self) {
        drop(self);
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    mut socket: TcpStream,
    pods: &Api<Pod>,
    pod: &str,
    port: u16,
) -> Result<(), SdkError> {
    let ctx = format!("port-forward to {pod}:{port}");
    let mut pf = pods
        .portforward(pod, &[port])
        .await
        .map_err(SdkError::api(ctx.clone()))?;
    let mut stream = pf.take_stream(port).ok_or_else(|| SdkError::Stream {
        context: ctx.clone(),
        message: "no stream".into(),
    })?;
    let error = pf.take_error(port);
    let copy = tokio::io::copy_bidirectional(&mut socket, &mut stream);
    let res = match error {
        Some(err) => {
            tokio::select! {
                r = copy => r.map(|_| ()).map_err(|e| e.to_string()),
                e = err => match e {
                    Some(msg) => Err(msg),
                    None => Ok(()),
                },
            }
        }
        None => copy.await.map(|_| ()).map_err(|e| e.to_string()),
    };
    let _ = socket.shutdown().await;
    drop(stream);
    // The server closing the WebSocket first is normal; its join error is not interesting.
    let _ = pf.join().await;
    res.map_err(|message| SdkError::Stream {
        context: ctx,
        message,
    })
}

/// A minimal HTTP/1.1 GET (`Connection: close`): status code and body.
pub(crate) async fn http_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> Result<(u16, Vec<u8>), SdkError> {
    let ctx = format!("GET http://{addr}{path}");
    let fut = async {
        let mut s = TcpStream::connect(addr).await?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tycho-sdk\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| SdkError::Timeout {
            what: ctx.clone(),
            after: Duration::from_secs(10),
        })?
        .map_err(SdkError::io(ctx.clone()))?;
    let text_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| SdkError::Stream {
            context: ctx.clone(),
            message: format!("not an HTTP response ({} bytes)", buf.len()),
        })?;
    let head = String::from_utf8_lossy(&buf[..text_end]).into_owned();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| SdkError::Stream {
            context: ctx.clone(),
            message: format!("bad status line: {}", head.lines().next().unwrap_or("")),
        })?;
    let mut body = buf[text_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok((code, body))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = std::str::from_utf8(&data[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || data.len() < eol + 2 + size {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[(eol + 4 + size).min(data.len())..];
    }
}

/// Open `url` in a browser: the first command of `$BROWSER` (`%s` is replaced by the URL, else the
/// URL is appended), else `xdg-open` (Linux) or `open` (macOS). Does not wait for the browser.
pub fn open_browser(url: &str) -> Result<(), SdkError> {
    let (program, args): (String, Vec<String>) = match std::env::var("BROWSER")
        .ok()
        .and_then(|b| b.split(':').next().map(str::to_string))
        .filter(|b| !b.trim().is_empty())
    {
        Some(b) => {
            let mut words: Vec<String> = b.split_whitespace().map(str::to_string).collect();
            let program = words.remove(0);
            if words.iter().any(|w| w.contains("%s")) {
                let args = words.iter().map(|w| w.replace("%s", url)).collect();
                (program, args)
            } else {
                words.push(url.to_string());
                (program, words)
            }
        }
        None if cfg!(target_os = "macos") => ("open".into(), vec![url.to_string()]),
        None => ("xdg-open".into(), vec![url.to_string()]),
    };
    let mut child = std::process::Command::new(&program)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(SdkError::io(format!("starting the browser {program:?}")))?;
    // Reap it in the background so it does not linger as a zombie.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(())
}

/// A tar archive holding one regular file `name` with `data` (mode 0644, GNU long names past
/// 100 bytes), as `tar x` in a container reads it.
pub(crate) fn tar_single(name: &str, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_entry_type(tar::EntryType::Regular);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    header.set_mtime(now);
    let mut builder = tar::Builder::new(Vec::with_capacity(data.len() + 2048));
    builder.append_data(&mut header, name, data)?;
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_file_archive_reads_back() {
        fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
            use std::io::Read;
            let mut a = tar::Archive::new(archive);
            a.entries()
                .unwrap()
                .map(|e| {
                    let mut e = e.unwrap();
                    let name = e.path().unwrap().to_string_lossy().into_owned();
                    let mut data = Vec::new();
                    e.read_to_end(&mut data).unwrap();
                    (name, data)
                })
                .collect()
        }
        let m = entries(&tar_single("index.html", b"Hello").unwrap());
        assert_eq!(m, vec![("index.html".to_string(), b"Hello".to_vec())]);
        let long = "x".repeat(150);
        let m = entries(&tar_single(&long, b"1").unwrap());
        assert_eq!(m, vec![(long, b"1".to_vec())]);
    }

    #[test]
    fn dechunks() {
        assert_eq!(dechunk(b"5\r\nHello\r\n1\r\n!\r\n0\r\n\r\n"), b"Hello!");
    }
}

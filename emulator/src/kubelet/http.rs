//! The simulated HTTP server behind every listening port of a simulated container.
//!
//! It speaks real HTTP/1.1 (hyper) over the stream a port-forward opens, and serves files from
//! the container's filesystem, like nginx with its default configuration:
//! - `GET`/`HEAD` only (others: 405);
//! - the document root is the first of `/usr/share/nginx/html`, `/var/www/html` and the working
//!   directory that holds an `index.html`; otherwise the directory of the first pre-boot file
//!   whose name ends in `index.html` (which is served for `/`); otherwise the working directory;
//! - `/` and paths ending in `/` serve the directory's `index.html`; other paths the file at
//!   `<root><path>` (a directory gets its `index.html`); anything else is a 404;
//! - the `Host` header is accepted whatever it says;
//! - every request is logged in nginx's combined format to the container log (the main process)
//!   or to the stdout of the exec'd server process.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use chrono::Utc;
use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::container::{AccessSink, SimContainer};
use super::fs;

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" => "application/javascript",
        "json" => "application/json",
        "txt" | "conf" | "md" => "text/plain",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resolve a request path to a file of the container: `(status, body, content type)`.
pub fn resolve(container: &SimContainer, path: &str) -> (StatusCode, Bytes, &'static str) {
    let (root, index) = container.doc_root();
    let decoded = percent_decode(path.split('?').next().unwrap_or("/"));
    let candidate = if decoded == "/" {
        index.unwrap_or_else(|| fs::normalize(&root, "index.html"))
    } else {
        let p = fs::normalize(&root, decoded.trim_start_matches('/'));
        if decoded.ends_with('/') || container.fs().is_dir(&p) {
            fs::normalize(&p, "index.html")
        } else {
            p
        }
    };
    // Never serve outside the document root (normalize already removed `..`).
    let inside = root == "/" || candidate.starts_with(&format!("{}/", root.trim_end_matches('/')));
    let read = if inside {
        container.fs().read(&candidate).ok()
    } else {
        None
    };
    match read {
        Some(data) => (StatusCode::OK, data, content_type(&candidate)),
        None => (
            StatusCode::NOT_FOUND,
            Bytes::from_static(
                b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n</body>\r\n</html>\r\n",
            ),
            "text/html",
        ),
    }
}

fn handle(container: &SimContainer, port: u16, req: &Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let uri = req.uri().to_string();
    let ua = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let (status, body, ctype) = if method == Method::GET || method == Method::HEAD {
        resolve(container, req.uri().path())
    } else {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            Bytes::from_static(b"405 Not Allowed\n"),
            "text/plain",
        )
    };
    let len = body.len();
    let line = format!(
        "127.0.0.1 - - [{}] \"{method} {uri} {:?}\" {} {len} \"-\" \"{ua}\"",
        Utc::now().format("%d/%b/%Y:%H:%M:%S %z"),
        req.version(),
        status.as_u16(),
    );
    match container.listener(port) {
        Some(AccessSink::ContainerLog) | None => container.log_line(line),
        Some(AccessSink::Stdout(tx)) => {
            let _ = tx.try_send(Bytes::from(format!("{line}\n")));
        }
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::SERVER, http::HeaderValue::from_static("tycho-sim"));
    h.insert(header::CONTENT_TYPE, http::HeaderValue::from_static(ctype));
    h.insert(header::CONTENT_LENGTH, http::HeaderValue::from(len));
    resp
}

/// Serve HTTP/1.1 on `io` (one accepted connection to `port`) until the peer closes it.
pub async fn serve_connection<S>(container: Arc<SimContainer>, port: u16, io: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let resp = handle(&container, port, &req);
        async move { Ok::<_, Infallible>(resp) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .half_close(true)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, port, "simulated HTTP connection ended with an error");
    }
}

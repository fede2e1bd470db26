//! `pods/log`: plain text, chunked, with `follow`, `timestamps`, `tailLines`, `sinceSeconds`,
//! `sinceTime` and `limitBytes`, as the kubelet serves it.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;
use tokio::sync::broadcast;

use super::container::{LogLine, SimContainer};

/// Options of a log request.
#[derive(Debug, Clone, Default)]
pub struct LogParams {
    /// Keep the stream open and send new lines.
    pub follow: bool,
    /// Prefix each line with its RFC 3339 timestamp (nanoseconds, fixed width).
    pub timestamps: bool,
    /// Only the last N lines.
    pub tail_lines: Option<usize>,
    /// Only lines newer than this.
    pub since: Option<DateTime<Utc>>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<usize>,
}

/// Format one line as the kubelet does (`2024-05-01T10:00:00.000000000Z text\n` with timestamps).
pub fn format_line(line: &LogLine, timestamps: bool) -> String {
    if timestamps {
        format!(
            "{} {}\n",
            line.time.format("%Y-%m-%dT%H:%M:%S%.9fZ"),
            line.text
        )
    } else {
        format!("{}\n", line.text)
    }
}

/// The response body: backlog, then (when following) new lines until `alive` says the pod is gone.
pub fn body<F, Fut>(container: Arc<SimContainer>, params: LogParams, alive: F) -> Body
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let (backlog, rx) = container.log_snapshot();
    let mut lines: Vec<LogLine> = backlog
        .into_iter()
        .filter(|l| params.since.is_none_or(|s| l.time >= s))
        .collect();
    if let Some(n) = params.tail_lines {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let initial: String = lines
        .iter()
        .map(|l| format_line(l, params.timestamps))
        .collect();
    Body::from_stream(stream(initial, rx, params, alive))
}

fn stream<F, Fut>(
    initial: String,
    rx: broadcast::Receiver<LogLine>,
    params: LogParams,
    alive: F,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    struct St<F> {
        initial: Option<String>,
        rx: broadcast::Receiver<LogLine>,
        params: LogParams,
        sent: usize,
        alive: F,
    }
    let st = St {
        initial: Some(initial),
        rx,
        params,
        sent: 0,
        alive,
    };
    futures::stream::unfold(st, |mut st| async move {
        let limit = st.params.limit_bytes.unwrap_or(usize::MAX);
        if st.sent >= limit {
            return None;
        }
        let cut = |s: String, sent: usize| -> Bytes {
            let room = limit - sent;
            let mut b = s.into_bytes();
            b.truncate(room);
            Bytes::from(b)
        };
        if let Some(init) = st.initial.take()
            && (!init.is_empty() || !st.params.follow)
        {
            if init.is_empty() {
                return None;
            }
            let b = cut(init, st.sent);
            st.sent += b.len();
            return Some((Ok(b), st));
        }
        if !st.params.follow {
            return None;
        }
        loop {
            tokio::select! {
                r = st.rx.recv() => match r {
                    Ok(line) => {
                        let b = cut(format_line(&line, st.params.timestamps), st.sent);
                        st.sent += b.len();
                        return Some((Ok(b), st));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = tokio::time::sleep(Duration::from_secs(2)) => {
                    if !(st.alive)().await {
                        return None;
                    }
                }
            }
        }
    })
}

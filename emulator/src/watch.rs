//! Watch streams: newline-terminated JSON events over a chunked `application/json` response,
//! from a resourceVersion (events after it) or from "now" with synthetic ADDED events for the
//! current state; bookmarks; the `k8s.io/initial-events-end` bookmark for streaming lists;
//! selector transitions (an object that stops matching is sent as DELETED); 410 Gone past the
//! history window; timeoutSeconds; faults (dropped streams, forced 410).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::error::ApiError;
use crate::faults::Faults;
use crate::store::{Event, EventType, Store, StoreError};

/// How often a watch with `allowWatchBookmarks=true` receives a BOOKMARK.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(2);

/// Default watch duration when the client gives no timeoutSeconds (kube-apiserver picks
/// between minRequestTimeout and twice it; 1800 s is its minimum).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Turns a stored object into the object a watch event carries (version conversion, Table row,
/// PartialObjectMetadata).
pub type Encoder = Arc<dyn Fn(&Value) -> Value + Send + Sync>;

/// Decides whether an object matches the watch's namespace and selectors.
pub type Matcher = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

/// What a watch request asks for.
pub struct WatchRequest {
    /// Store key group.
    pub group: String,
    /// Store key plural.
    pub plural: String,
    /// Namespace to watch (None = all).
    pub namespace: Option<String>,
    /// The `key=value` labels every matching object carries (for the store's label index;
    /// the matcher still checks the whole selector).
    pub labels: Vec<(String, String)>,
    /// `resourceVersion` parameter ("" when absent).
    pub resource_version: String,
    /// `sendInitialEvents=true`.
    pub send_initial_events: bool,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `timeoutSeconds`.
    pub timeout: Duration,
    /// Namespace + label + field selector.
    pub matcher: Matcher,
    /// Event object encoder.
    pub encoder: Encoder,
    /// The kind and apiVersion for BOOKMARK objects.
    pub bookmark_kind: (String, String),
    /// Content type of the response.
    pub content_type: String,
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn gone_event(message: &str) -> Bytes {
    line("ERROR", &ApiError::gone(message).to_status())
}

fn bookmark(kind: &(String, String), rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": kind.0, "apiVersion": kind.1, "metadata": meta})
}

/// The watch event (type, object) for a store event as seen through a selector, per the
/// watch cache: objects that start matching are ADDED, that stop matching are DELETED (with the
/// previous content and the new resourceVersion).
fn filtered(ev: &Event, matcher: &Matcher) -> Option<(&'static str, Arc<Value>)> {
    let cur = matcher(&ev.object);
    match ev.kind {
        EventType::Added => cur.then(|| ("ADDED", ev.object.clone())),
        EventType::Deleted => {
            let was = ev.old.as_ref().is_some_and(|o| matcher(o)) || cur;
            was.then(|| ("DELETED", ev.object.clone()))
        }
        EventType::Modified => {
            let was = ev.old.as_ref().is_some_and(|o| matcher(o));
            match (was, cur) {
                (true, true) => Some(("MODIFIED", ev.object.clone())),
                (false, true) => Some(("ADDED", ev.object.clone())),
                (true, false) => {
                    let mut old = ev.old.as_ref().map_or(Value::Null, |o| (**o).clone());
                    if let Some(m) = old.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.insert("resourceVersion".into(), json!(ev.rv.to_string()));
                    }
                    Some(("DELETED", Arc::new(old)))
                }
                (false, false) => None,
            }
        }
    }
}

/// Starts a watch and returns the streaming response.
pub fn serve(
    store: Arc<Store>,
    faults: Faults,
    shutdown: tokio::sync::watch::Receiver<bool>,
    req: WatchRequest,
) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let rv_param = req.resource_version.clone();
    let from_now = rv_param.is_empty() || rv_param == "0";
    // Resolve the starting point synchronously so that 410 is decided before streaming.
    enum Start {
        Snapshot(Vec<Arc<Value>>, u64, broadcast::Receiver<Arc<Event>>),
        Resume(Vec<Arc<Event>>, u64, broadcast::Receiver<Arc<Event>>),
        Gone(String),
    }
    let start = if from_now || req.send_initial_events {
        let (items, rv, rx) = store.snapshot_labelled(
            &req.group,
            &req.plural,
            req.namespace.as_deref(),
            &req.labels,
        );
        Start::Snapshot(items, rv, rx)
    } else {
        match rv_param.parse::<u64>() {
            Err(_) => Start::Gone(format!("invalid resource version {rv_param:?}")),
            Ok(rv) => {
                if faults.take_force_gone() {
                    Start::Gone(format!("too old resource version: {rv} (injected fault)"))
                } else {
                    match store.watch_from(rv) {
                        Ok((past, rx)) => Start::Resume(past, rv, rx),
                        Err(StoreError::Gone { requested, oldest }) => {
                            Start::Gone(format!("too old resource version: {requested} ({oldest})"))
                        }
                        Err(e) => Start::Gone(e.to_string()),
                    }
                }
            }
        }
    };

    let content_type = req.content_type.clone();
    let mut drop_rx = faults.drop_signal();
    let mut shutdown = shutdown;
    tokio::spawn(async move {
        let WatchRequest {
            group,
            plural,
            send_initial_events,
            bookmarks,
            timeout,
            matcher,
            encoder,
            bookmark_kind,
            ..
        } = req;
        let (mut brx, mut last_rv) = match start {
            Start::Gone(msg) => {
                let _ = tx.send(gone_event(&msg)).await;
                return;
            }
            Start::Snapshot(items, rv, brx) => {
                for obj in items {
                    if matcher(&obj) && tx.send(line("ADDED", &encoder(&obj))).await.is_err() {
                        return;
                    }
                }
                if send_initial_events
                    && tx
                        .send(line("BOOKMARK", &bookmark(&bookmark_kind, rv, true)))
                        .await
                        .is_err()
                {
                    return;
                }
                (brx, rv)
            }
            Start::Resume(past, rv, brx) => {
                let mut last = rv;
                for ev in past {
                    last = last.max(ev.rv);
                    if ev.key.group != group || ev.key.plural != plural {
                        continue;
                    }
                    if let Some((t, obj)) = filtered(&ev, &matcher)
                        && tx.send(line(t, &encoder(&obj))).await.is_err()
                    {
                        return;
                    }
                }
                (brx, last)
            }
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        drop_rx.borrow_and_update();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tx.closed() => return,
                _ = drop_rx.changed() => return,
                _ = shutdown.changed() => return,
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(line("BOOKMARK", &bookmark(&bookmark_kind, last_rv, false))).await.is_err() {
                        return;
                    }
                }
                ev = brx.recv() => {
                    match ev {
                        Ok(ev) => {
                            if ev.rv <= last_rv {
                                continue;
                            }
                            last_rv = ev.rv;
                            if ev.key.group != group || ev.key.plural != plural {
                                continue;
                            }
                            if let Some((t, obj)) = filtered(&ev, &matcher)
                                && tx.send(line(t, &encoder(&obj))).await.is_err()
                            {
                                return;
                            }
                        }
                        // A watcher too slow for the fan-out buffer is closed, as kube-apiserver
                        // closes a watch whose buffer overflows; the client resumes from the last
                        // resourceVersion it saw (410 only if that left the history window).
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            }
        }
    });

    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::OK;
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

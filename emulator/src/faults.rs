//! Fault injection (added latency, error rates per verb and resource, dropped watch streams,
//! forced 410 Gone, a paused kubelet) and the request log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// One error-injection rule: requests matching `verb` and `resource` (None = any) fail with
/// `code` (500 InternalError or 429 TooManyRequests) with probability `rate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorRule {
    /// Verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`).
    #[serde(default)]
    pub verb: Option<String>,
    /// Resource plural (`configmaps`).
    #[serde(default)]
    pub resource: Option<String>,
    /// Probability in [0, 1].
    pub rate: f64,
    /// 500 or 429.
    #[serde(default = "default_code")]
    pub code: u16,
    /// Retry-After seconds for 429.
    #[serde(default = "default_retry")]
    pub retry_after_seconds: u64,
}

fn default_code() -> u16 {
    500
}

fn default_retry() -> u64 {
    1
}

/// The fault settings, as read and written by `GET/PUT /emulator/v1/faults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultSpec {
    /// Latency added to every API request, in milliseconds.
    pub latency_ms: u64,
    /// Error-injection rules.
    pub errors: Vec<ErrorRule>,
    /// Whether the simulated kubelet is paused.
    pub kubelet_paused: bool,
    /// On PUT: drop every open watch stream now (reads back false).
    pub drop_watches: bool,
    /// The next watch that resumes from a resourceVersion gets 410 Gone.
    pub force_gone: bool,
}

struct State {
    latency: Duration,
    errors: Vec<ErrorRule>,
    force_gone: bool,
}

/// A clonable handle on the emulator's faults.
#[derive(Clone)]
pub struct Faults {
    state: Arc<Mutex<State>>,
    kubelet_paused: Arc<AtomicBool>,
    drop_tx: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new()
    }
}

impl Faults {
    /// No faults.
    pub fn new() -> Faults {
        let (tx, _) = tokio::sync::watch::channel(0u64);
        Faults {
            state: Arc::new(Mutex::new(State {
                latency: Duration::ZERO,
                errors: Vec::new(),
                force_gone: false,
            })),
            kubelet_paused: Arc::new(AtomicBool::new(false)),
            drop_tx: Arc::new(tx),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `latency` to every API request.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Adds an error-injection rule.
    pub fn add_error_rule(&self, rule: ErrorRule) {
        self.lock().errors.push(rule);
    }

    /// Removes every fault (latency, rules, force-410) and resumes the kubelet.
    pub fn clear(&self) {
        let mut s = self.lock();
        s.latency = Duration::ZERO;
        s.errors.clear();
        s.force_gone = false;
        self.kubelet_paused.store(false, Ordering::SeqCst);
    }

    /// Ends every open watch stream now (clients see the connection end and re-watch).
    pub fn drop_watches(&self) {
        self.drop_tx.send_modify(|v| *v += 1);
    }

    /// The next watch resuming from a resourceVersion gets a 410 Gone ERROR event.
    pub fn force_gone_next_watch(&self) {
        self.lock().force_gone = true;
    }

    /// Pauses or resumes the simulated kubelet.
    pub fn pause_kubelet(&self, paused: bool) {
        self.kubelet_paused.store(paused, Ordering::SeqCst);
    }

    /// The flag the simulated kubelet reads.
    pub fn kubelet_paused_flag(&self) -> Arc<AtomicBool> {
        self.kubelet_paused.clone()
    }

    /// The current settings.
    pub fn spec(&self) -> FaultSpec {
        let s = self.lock();
        FaultSpec {
            latency_ms: s.latency.as_millis() as u64,
            errors: s.errors.clone(),
            kubelet_paused: self.kubelet_paused.load(Ordering::SeqCst),
            drop_watches: false,
            force_gone: s.force_gone,
        }
    }

    /// Replaces the settings (and drops watches when `drop_watches` is set).
    pub fn apply(&self, spec: &FaultSpec) {
        {
            let mut s = self.lock();
            s.latency = Duration::from_millis(spec.latency_ms);
            s.errors = spec.errors.clone();
            s.force_gone = spec.force_gone;
        }
        self.kubelet_paused
            .store(spec.kubelet_paused, Ordering::SeqCst);
        if spec.drop_watches {
            self.drop_watches();
        }
    }

    pub(crate) fn latency(&self) -> Duration {
        self.lock().latency
    }

    pub(crate) fn take_force_gone(&self) -> bool {
        std::mem::take(&mut self.lock().force_gone)
    }

    pub(crate) fn drop_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.drop_tx.subscribe()
    }

    /// The injected error for a request, if a rule fires.
    pub(crate) fn error_for(&self, verb: &str, resource: &str) -> Option<ApiError> {
        let s = self.lock();
        for r in &s.errors {
            if r.verb.as_deref().is_some_and(|v| v != verb)
                || r.resource.as_deref().is_some_and(|v| v != resource)
            {
                continue;
            }
            if r.rate > 0.0 && rand::random_bool(r.rate.clamp(0.0, 1.0)) {
                return Some(if r.code == 429 {
                    ApiError::too_many_requests(r.retry_after_seconds)
                } else {
                    ApiError::internal("injected fault: internal error")
                });
            }
        }
        None
    }
}

/// One API request as the request log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection (or the
    /// lowercase HTTP method for non-resource paths).
    pub verb: String,
    /// API group ("" for core).
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Resource plural ("" for non-resource paths).
    pub resource: String,
    /// Subresource (`status`), or "".
    pub subresource: String,
    /// Namespace, or "".
    pub namespace: String,
    /// Object name, or "".
    pub name: String,
    /// Request path.
    pub path: String,
    /// User-Agent header.
    pub user_agent: String,
    /// HTTP status code of the response.
    pub code: u16,
    /// The `Impersonate-User` header, or "" (recorded, not enforced: the emulator acts on no
    /// identity).
    #[serde(default)]
    pub impersonate_user: String,
    /// Every `Impersonate-Group` header, in order.
    #[serde(default)]
    pub impersonate_groups: Vec<String>,
    /// The `Impersonate-Uid` header, or "".
    #[serde(default)]
    pub impersonate_uid: String,
}

/// The request log.
#[derive(Clone, Default)]
pub struct RequestLog {
    inner: Arc<Mutex<Vec<RequestRecord>>>,
}

const LOG_CAP: usize = 200_000;

impl RequestLog {
    /// Appends a record (the oldest are dropped past 200,000 entries).
    pub fn push(&self, r: RequestRecord) {
        let mut v = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() >= LOG_CAP {
            v.drain(..LOG_CAP / 10);
        }
        v.push(r);
    }

    /// A copy of every record.
    pub fn all(&self) -> Vec<RequestRecord> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets every record.
    pub fn clear(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

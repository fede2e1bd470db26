//! Prometheus metrics and the `/metrics`, `/healthz`, `/readyz` endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::runtime::reflector::Store;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use tycho_model::{Phase, System};

use super::ControllerError;

type Labels = Vec<(String, String)>;

/// The controller's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles started.
    pub reconciles: Counter,
    /// Reconcile errors, by reason.
    pub errors: Family<Labels, Counter>,
    /// Reconcile duration in seconds.
    pub duration: Histogram,
    /// Systems by phase (set from the Systems cache at scrape time).
    pub systems: Family<Labels, Gauge>,
    /// Sessions whose collection began (expired or deleted Leases).
    pub sessions_expired: Counter,
    /// Seconds between a session's (or lifetime's) expiry instant and the deletion of its System.
    pub gc_delay: Histogram,
    /// API write requests (apply, delete, status, annotate) issued by reconciles.
    pub writes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Create and register the metrics (names prefixed `tycho_`).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tycho");
        let reconciles = Counter::default();
        let errors = Family::<Labels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let systems = Family::<Labels, Gauge>::default();
        let sessions_expired = Counter::default();
        let gc_delay = Histogram::new(exponential_buckets(0.001, 2.0, 18));
        let writes = Counter::default();
        registry.register("reconciles", "Reconciles of Systems", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconcile errors by reason",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of a reconcile",
            duration.clone(),
        );
        registry.register("systems", "Systems by phase", systems.clone());
        registry.register(
            "sessions_expired",
            "Sessions collected because their Lease expired or was deleted",
            sessions_expired.clone(),
        );
        registry.register(
            "gc_delay_seconds",
            "Delay between a session's or lifetime's expiry and the deletion of its Systems",
            gc_delay.clone(),
        );
        registry.register(
            "api_writes",
            "Write requests (apply, delete, status patch, annotate) sent by reconciles",
            writes.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            systems,
            sessions_expired,
            gc_delay,
            writes,
        }
    }

    /// Count an error by its reason.
    pub fn error(&self, reason: &str) {
        self.errors
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .inc();
    }

    /// Set the Systems-by-phase gauge from the Systems caches.
    pub fn set_phases(&self, stores: &[Store<System>]) {
        let mut counts: Vec<(&str, i64)> = [
            Phase::Pending,
            Phase::Progressing,
            Phase::Ready,
            Phase::Degraded,
            Phase::Failed,
            Phase::Expiring,
        ]
        .iter()
        .map(|p| (p.as_str(), 0))
        .collect();
        counts.push(("Unknown", 0));
        for store in stores {
            for s in store.state() {
                let phase = s
                    .status
                    .as_ref()
                    .and_then(|st| st.phase)
                    .map_or("Unknown", Phase::as_str);
                if let Some(c) = counts.iter_mut().find(|(p, _)| *p == phase) {
                    c.1 += 1;
                }
            }
        }
        for (phase, n) in counts {
            self.systems
                .get_or_create(&vec![("phase".to_string(), phase.to_string())])
                .set(n);
        }
    }

    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Shared state of the HTTP endpoints.
#[derive(Clone, Debug)]
pub struct Health {
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Set once the Systems caches synced and the CRD was found.
    pub ready: Arc<AtomicBool>,
    /// The Systems caches (for the phase gauge).
    pub stores: Vec<Store<System>>,
}

async fn metrics_handler(State(h): State<Health>) -> Response {
    h.metrics.set_phases(&h.stores);
    match h.metrics.encode() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics").into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(h): State<Health>) -> Response {
    if h.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "caches not synced or System CRD not found",
        )
            .into_response()
    }
}

/// The router serving `/metrics`, `/healthz` and `/readyz`.
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health)
}

/// Bind `addr`; returns the listener and the address actually bound (useful with port 0).
pub async fn bind(
    addr: SocketAddr,
) -> Result<(tokio::net::TcpListener, SocketAddr), ControllerError> {
    let err = |source| ControllerError::MetricsServer {
        addr: addr.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    Ok((listener, local))
}

/// Serve the endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    health: Health,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), std::io::Error> {
    axum::serve(listener, router(health))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_all_metric_families() {
        let m = Metrics::new();
        m.reconciles.inc();
        m.error("InvalidSpec");
        m.duration.observe(0.01);
        m.gc_delay.observe(0.2);
        m.sessions_expired.inc();
        m.set_phases(&[]);
        let text = m.encode().unwrap();
        for name in [
            "tycho_reconciles_total 1",
            "tycho_reconcile_errors_total{reason=\"InvalidSpec\"} 1",
            "tycho_reconcile_duration_seconds_count 1",
            "tycho_systems{phase=\"Ready\"} 0",
            "tycho_sessions_expired_total 1",
            "tycho_gc_delay_seconds_count 1",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}

//! The reconciling controller: a kube-runtime Controller on System that applies what [`crate::render`]
//! produces (forced server-side apply, one field manager), prunes what it no longer produces, corrects
//! drift, writes a deterministic status, and collects the Systems of ended sessions.
//!
//! Layout:
//! - [`run`] wires one Controller per watched namespace (or one cluster-wide), the metrics and health
//!   endpoints, and graceful shutdown;
//! - `reconcile` (private) orchestrates read → session → validate → render → apply → prune → status,
//!   reading only from the watch caches of [`cache`]; `collect` deletes the Systems of ended sessions
//!   (with workers of its own) and of ended lifetimes;
//! - pure logic lives in [`plan`] (rendered + live children → what to apply, replace and prune),
//!   [`session`] (expiry with an injected clock), [`status`], [`diff`] (whether an apply would change
//!   anything) and [`backoff`].
//!
//! Triggers: every System change; changes of the children it owns (Deployment, Service, ConfigMap,
//! NetworkPolicy, by owner reference; Pods by their `tycho.dev/system` label, so a crash-looping Deployment pod shows up as
//! Degraded); changes of the session Leases and PersistentVolumeClaims the Systems name (mapped through the
//! Systems cache); and a requeue at the exact instant a session or lifetime expires.

pub mod backoff;
pub mod cache;
mod collect;
pub mod diff;
pub mod error;
pub mod events;
pub mod metrics;
pub mod plan;
mod reconcile;
pub mod session;
pub mod status;
pub mod triggers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, info, warn};

pub use error::ControllerError;

use self::cache::{Caches, LabelIndex};

use crate::render::{RenderSettings, Renderer};
use tycho_model::{LABEL_MANAGED_BY, LABEL_SYSTEM, MANAGED_BY, System, SystemTemplate};

use self::backoff::{BackoffPolicy, Backoffs};
use self::metrics::{Health, Metrics};
use self::reconcile::{Context, NodeCache, error_policy, reconcile};
use self::session::{Clock, LeaseKey, LeaseView, SessionTracker, Sighting, SystemClock};

/// The one field manager of every write Tycho makes.
pub const FIELD_MANAGER: &str = "tycho";

/// Settings of the controller.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Namespaces to watch; empty means cluster-wide.
    pub namespaces: Vec<String>,
    /// Most reconciles running at once (0: unbounded).
    pub concurrency: u16,
    /// Rendering settings (GPU resource name, template override directory).
    pub render: RenderSettings,
    /// Where to serve `/metrics`, `/healthz` and `/readyz` (None: not served).
    pub metrics_addr: Option<SocketAddr>,
    /// Duration of a session Lease that sets no `leaseDurationSeconds`.
    pub default_session_duration: Duration,
    /// Allowance for clock differences when judging a Lease seen for the first time.
    pub session_tolerance: Duration,
    /// Safety requeue of a healthy System (catches missed watch events).
    pub resync: Duration,
    /// Backoff of transient errors.
    pub backoff: BackoffPolicy,
    /// The clock (injected for tests).
    pub clock: Arc<dyn Clock>,
    /// Instance name reported on Events (default: the host name).
    pub instance: Option<String>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            namespaces: Vec::new(),
            concurrency: 8,
            render: RenderSettings::default(),
            metrics_addr: None,
            default_session_duration: Duration::from_secs(30),
            session_tolerance: Duration::from_secs(5),
            resync: Duration::from_secs(600),
            backoff: BackoffPolicy::default(),
            clock: Arc::new(SystemClock),
            instance: None,
        }
    }
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Maps a Lease event to the Systems naming it, recording the sighting for the session logic.
fn lease_mapper(
    store: Store<System>,
    by_session: Arc<RwLock<LabelIndex<System>>>,
    sessions: Arc<Mutex<SessionTracker>>,
    clock: Arc<dyn Clock>,
) -> impl Fn(Lease) -> Vec<ObjectRef<System>> + Send + Sync + 'static {
    move |lease: Lease| {
        let (Some(ns), Some(name)) = (
            lease.metadata.namespace.clone(),
            lease.metadata.name.clone(),
        ) else {
            return Vec::new();
        };
        // An index lookup, not a scan: every Lease event comes here, node heartbeats included.
        let refs: Vec<ObjectRef<System>> = Caches::systems_under(&store, &by_session, &ns, &name)
            .iter()
            .map(|s| ObjectRef::from_obj(s.as_ref()))
            .collect();
        if refs.is_empty() {
            return refs;
        }
        let sighting = match sessions.lock() {
            Ok(mut tracker) => {
                tracker
                    .observe_sighting(
                        &LeaseKey::new(ns, name),
                        &LeaseView::from_lease(&lease),
                        clock.now(),
                    )
                    .1
            }
            Err(_) => Sighting::Same,
        };
        // A plain renewal only moves the expiry instant: the reconcile already scheduled for the old
        // instant re-reads the Lease and requeues for the new one, so renewals cost no reconcile each.
        if sighting == Sighting::Renewed {
            return Vec::new();
        }
        refs
    }
}

/// Maps a PersistentVolumeClaim event to the Systems mounting it (so a claim created late starts them).
fn claim_mapper(
    store: Store<System>,
    by_claim: Arc<RwLock<LabelIndex<System>>>,
) -> impl Fn(PersistentVolumeClaim) -> Vec<ObjectRef<System>> + Send + Sync {
    move |claim: PersistentVolumeClaim| {
        let (Some(ns), Some(name)) = (
            claim.metadata.namespace.as_deref(),
            claim.metadata.name.as_deref(),
        ) else {
            return Vec::new();
        };
        Caches::systems_under(&store, &by_claim, ns, name)
            .iter()
            .map(|s| ObjectRef::from_obj(s.as_ref()))
            .collect()
    }
}

/// Maps a SystemTemplate event to the Systems made from it (in this scope), so a template's change
/// re-renders them and a template created late starts them.
fn template_mapper(
    by_template: Arc<RwLock<LabelIndex<System>>>,
    scope: Option<String>,
) -> impl Fn(SystemTemplate) -> Vec<ObjectRef<System>> + Send + Sync {
    move |template: SystemTemplate| {
        let Some(name) = template.metadata.name.as_deref() else {
            return Vec::new();
        };
        Caches::systems_of_template(&by_template, name)
            .into_iter()
            .filter(|(ns, _)| scope.as_deref().is_none_or(|s| s == ns))
            .map(|(ns, n)| ObjectRef::new(&n).within(&ns))
            .collect()
    }
}

/// Maps a Pod event to its System through the `tycho.dev/system` label (Deployment pods are owned by a
/// ReplicaSet, so owner references would not reach the System).
fn pod_mapper(pod: Pod) -> Option<ObjectRef<System>> {
    let ns = pod.metadata.namespace.as_deref()?;
    let system = pod.metadata.labels.as_ref()?.get(LABEL_SYSTEM)?;
    Some(ObjectRef::new(system).within(ns))
}

/// The Controller of one watched scope (a namespace, or the whole cluster) and the caches its watches
/// fill: one watch per kind feeds both the reconcile triggers and the caches reconcile reads.
fn watch_scope(
    client: &Client,
    ns: Option<&str>,
    sessions: &Arc<Mutex<SessionTracker>>,
    clock: &Arc<dyn Clock>,
    concurrency: u16,
    own_statuses: &Arc<cache::OwnStatuses>,
    stop_rx: watch::Receiver<bool>,
) -> (Controller<System>, cache::Caches) {
    let managed = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}"));
    let (systems, systems_events) = cache::reflect(
        scoped::<System>(client, ns),
        watcher::Config::default().any_semantic(),
        cache::strip,
    );
    let (deployments, deployment_events) = cache::reflect_indexed(
        scoped::<Deployment>(client, ns),
        managed.clone(),
        cache::strip,
        triggers::deployment,
    );
    let (services, service_events) = cache::reflect_indexed(
        scoped::<Service>(client, ns),
        managed.clone(),
        cache::strip,
        triggers::object::<Service>,
    );
    let (config_maps, config_map_events) = cache::reflect_indexed(
        scoped::<ConfigMap>(client, ns),
        managed.clone(),
        cache::strip,
        triggers::object::<ConfigMap>,
    );
    let (network_policies, network_policy_events) = cache::reflect_indexed(
        scoped::<NetworkPolicy>(client, ns),
        managed.clone(),
        cache::strip,
        triggers::object::<NetworkPolicy>,
    );
    let (pods, pod_events) = cache::reflect_indexed(
        scoped::<Pod>(client, ns),
        managed.clone(),
        cache::slim_pod,
        triggers::pod,
    );
    let (leases, lease_events) = cache::reflect(
        scoped::<Lease>(client, ns),
        watcher::Config::default(),
        cache::slim_lease,
    );
    let (claims, claim_events) = cache::reflect(
        scoped::<PersistentVolumeClaim>(client, ns),
        watcher::Config::default(),
        cache::strip,
    );
    // A System wakes on its spec, labels, annotations and deletion, not on its own status writes.
    let (templates, template_events) = cache::reflect(
        Api::<SystemTemplate>::all(client.clone()),
        watcher::Config::default(),
        cache::strip,
    );
    let by_session = Arc::new(RwLock::new(LabelIndex::by(cache::session_of)));
    let by_claim = Arc::new(RwLock::new(LabelIndex::by(cache::claims_of)));
    let by_template = Arc::new(RwLock::new(LabelIndex::by(cache::template_of)));
    let own = own_statuses.clone();
    let systems_events = Caches::index_systems(
        vec![by_session.clone(), by_claim.clone(), by_template.clone()],
        systems_events,
    )
    .inspect_ok(move |event| own.observe(event));
    let system_triggers = systems_events
        .applied_objects()
        .predicate_filter(triggers::system, Default::default());
    let ctrl = Controller::for_stream(system_triggers, systems.clone())
        .owns_stream(deployment_events)
        .owns_stream(service_events)
        .owns_stream(config_map_events)
        .owns_stream(network_policy_events)
        .watches_stream(pod_events, pod_mapper)
        .watches_stream(
            lease_events.touched_objects(),
            lease_mapper(
                systems.clone(),
                by_session.clone(),
                sessions.clone(),
                clock.clone(),
            ),
        )
        .watches_stream(
            claim_events.touched_objects(),
            claim_mapper(systems.clone(), by_claim.clone()),
        )
        .watches_stream(
            template_events.touched_objects(),
            template_mapper(by_template.clone(), ns.map(str::to_string)),
        )
        .with_config(controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(stopped(stop_rx));
    let caches = cache::Caches {
        namespace: ns.map(str::to_string),
        systems,
        deployments,
        pods,
        services,
        config_maps,
        network_policies,
        leases,
        claims,
        by_session,
        by_claim,
        by_template,
        templates,
        synced: Arc::default(),
    };
    (ctrl, caches)
}

/// Ready (`/readyz`) once the System CRD answers and every cache of every scope has synced.
fn readiness(
    probe: Api<System>,
    templates: Api<SystemTemplate>,
    caches: Vec<cache::Caches>,
    ready: Arc<AtomicBool>,
    stop_rx: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let mut stop = stop_rx;
    tokio::spawn(async move {
        let wait = async {
            served(
                &probe,
                "the System CRD (systems.tycho.dev) is not served yet; not ready",
            )
            .await;
            // Helm installs a chart's crds/ on install but never on upgrade: an operator upgraded past the
            // chart that brought SystemTemplates finds no such CRD, and its template watch cannot start.
            served(
                &templates,
                "the SystemTemplate CRD (systemtemplates.tycho.dev) is not served; not ready until it is \
                 installed: tycho crd systemtemplate | kubectl apply -f - (or kubectl apply -f the chart's \
                 crds/, which helm upgrade does not do)",
            )
            .await;
            for c in &caches {
                c.synced().await;
            }
            ready.store(true, Ordering::SeqCst);
            info!("caches synced; ready");
        };
        tokio::select! {
            () = wait => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    })
}

/// Return once `api` answers a list; until then warn with `not_served` every 5 s.
async fn served<K>(api: &Api<K>, not_served: &str)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    while let Err(e) = api.list(&ListParams::default().limit(1)).await {
        warn!(error = %e, "{not_served}");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Run the controller until `shutdown` resolves (then finish running reconciles and return).
///
/// Watches the namespaces of `config.namespaces` (cluster-wide when empty), serves metrics and health on
/// `config.metrics_addr`, and is ready (`/readyz`) once the System CRD answers and every Systems cache
/// has synced.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    let renderer = Renderer::new(config.render.clone()).map_err(ControllerError::Templates)?;
    let metrics = Arc::new(Metrics::new());
    let sessions = Arc::new(Mutex::new(SessionTracker::new(
        config.default_session_duration,
        config.session_tolerance,
    )));
    let clock = config.clock.clone();
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut scopes: Vec<Option<String>> =
        config.namespaces.iter().map(|n| Some(n.clone())).collect();
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        scopes.push(None);
    }

    let mut controllers = Vec::new();
    let mut stores = Vec::new();
    let mut caches = Vec::new();
    let own_statuses = Arc::new(cache::OwnStatuses::default());
    for scope in &scopes {
        let (ctrl, scope_caches) = watch_scope(
            &client,
            scope.as_deref(),
            &sessions,
            &clock,
            config.concurrency,
            &own_statuses,
            stop_rx.clone(),
        );
        controllers.push(ctrl);
        stores.push(scope_caches.systems.clone());
        caches.push(scope_caches);
    }

    // Health and metrics.
    let ready = Arc::new(AtomicBool::new(false));
    let server = match config.metrics_addr {
        Some(addr) => {
            let (listener, local) = metrics::bind(addr).await?;
            info!(%local, "serving /metrics, /healthz and /readyz");
            let health = Health {
                metrics: metrics.clone(),
                ready: ready.clone(),
                stores: stores.clone(),
            };
            let stop = stopped(stop_rx.clone());
            Some(tokio::spawn(async move {
                if let Err(e) = metrics::serve(listener, health, stop).await {
                    warn!(error = %e, "metrics server stopped");
                }
            }))
        }
        None => None,
    };
    let readiness = readiness(
        scoped(&client, scopes.first().cloned().flatten().as_deref()),
        Api::all(client.clone()),
        caches.clone(),
        ready.clone(),
        stop_rx.clone(),
    );
    let reporter = Reporter {
        controller: FIELD_MANAGER.to_string(),
        instance: config.instance.clone(),
    };
    let reporter = match reporter.instance {
        Some(_) => reporter,
        None => Reporter::from(FIELD_MANAGER),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        renderer,
        recorder: events::Publisher::new(client.clone(), reporter),
        metrics: metrics.clone(),
        sessions,
        backoffs: Mutex::new(Backoffs::new(config.backoff)),
        clock,
        nodes: tokio::sync::Mutex::new(NodeCache::default()),
        caches,
        own_statuses,
        resync: config.resync,
        permits: (config.concurrency > 0).then(|| Semaphore::new(usize::from(config.concurrency))),
        collector: collect::Collector::default(),
        stop: stop_rx.clone(),
    });

    tokio::spawn(async move {
        shutdown.await;
        info!("shutting down: finishing running reconciles");
        let _ = stop_tx.send(true);
    });

    info!(namespaces = ?config.namespaces, concurrency = config.concurrency, "controller starting");
    let runs = controllers.into_iter().map(|c| {
        c.run(reconcile, error_policy, ctx.clone())
            .for_each(|res| async move {
                match res {
                    Ok((obj, _)) => debug!(system = %obj, "reconcile done"),
                    Err(controller::Error::ObjectNotFound(obj)) => {
                        debug!(%obj, "trigger for a System no longer cached")
                    }
                    Err(controller::Error::ReconcilerFailed(e, obj)) => {
                        debug!(%obj, error = %e, "reconcile failed")
                    }
                    Err(e) => warn!(error = %e, "controller"),
                }
            })
    });
    let all = futures::future::join_all(runs);
    tokio::pin!(all);
    let mut stop = stop_rx.clone();
    tokio::select! {
        _ = &mut all => {}
        () = async { let _ = stop.wait_for(|s| *s).await; } => {
            // kube-runtime holds a Controller's runner until its cache is ready, so a Controller whose
            // cache never synced (e.g. the CRD is missing) would never finish: nothing ran there anyway.
            if ready.load(Ordering::SeqCst) {
                if tokio::time::timeout(Duration::from_secs(60), &mut all).await.is_err() {
                    warn!("running reconciles did not finish within 60 s; stopping anyway");
                }
            } else {
                info!("caches never synced; nothing to finish");
            }
        }
    }
    readiness.abort();
    if let Some(server) = server {
        let _ = server.await;
    }
    info!("controller stopped");
    Ok(())
}

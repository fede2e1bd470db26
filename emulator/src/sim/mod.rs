//! The simulated cluster, in the manner of kwok and kube-controller-manager: Nodes with
//! capacity (kept Ready by a Lease heartbeat), a Deployment controller, a ReplicaSet
//! controller, a scheduler and a kubelet that turns bound pods Running and Ready.
//!
//! It is a *client* of the API server: everything goes through HTTP with the `kube` crate
//! (shared kube-runtime watchers feeding caches, work queues, writes through the API), never
//! through the emulator's store. It therefore runs unchanged against the emulator's API server
//! or a real one, and exercises the same API paths as the real components:
//! `pods/binding` (scheduler), `pods/status`, `replicasets/status`, `deployments/status`,
//! `nodes/status`, Leases in `kube-node-lease`, and core/v1 Events.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub mod deployment;
pub mod events;
pub mod informer;
pub mod kubelet;
pub mod nodes;
pub mod queue;
pub mod replicaset;
pub mod resources;
pub mod scheduler;

/// Label every simulated node carries (as kwok marks the nodes it manages); the kubelet only
/// runs pods bound to nodes with this label.
pub const SIMULATED_LABEL: &str = "tycho.dev/simulated";

/// Field manager used for the simulated components' writes.
pub const FIELD_MANAGER: &str = "tycho-sim";

/// Configuration of the simulated cluster.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of nodes, named `sim-node-1` .. `sim-node-N`.
    pub nodes: usize,
    /// CPU capacity of each node (a quantity, e.g. `"8"`).
    pub node_cpu: String,
    /// Memory capacity of each node (a quantity, e.g. `"32Gi"`).
    pub node_memory: String,
    /// `nvidia.com/gpu` capacity of each GPU node (0 = the resource is not advertised).
    pub gpus_per_node: u32,
    /// How many of the nodes (the first ones) have GPUs when `gpus_per_node` > 0; None = all.
    pub gpu_nodes: Option<usize>,
    /// Delay between a pod being bound to a node and it turning Running and Ready.
    pub pod_ready_delay: Duration,
    /// While true, the kubelet does nothing: bound pods stay Pending and not ready, deleted
    /// pods are not confirmed (as when a node's kubelet is down).
    pub kubelet_paused: Arc<AtomicBool>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 3,
            node_cpu: "8".into(),
            node_memory: "32Gi".into(),
            gpus_per_node: 0,
            gpu_nodes: None,
            pod_ready_delay: Duration::from_millis(500),
            kubelet_paused: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Errors of the simulated cluster.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// An API call failed.
    #[error("{action} {kind} {name}: {source}")]
    Api {
        /// What was attempted (`create`, `patch status`, ...).
        action: &'static str,
        /// Kind of the object.
        kind: &'static str,
        /// `namespace/name` of the object.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A resource quantity did not parse.
    #[error(transparent)]
    Quantity(#[from] resources::QuantityError),
    /// The configuration is not usable.
    #[error("invalid simulated cluster configuration: {0}")]
    Config(String),
    /// An object could not be (de)serialized.
    #[error("serializing {what}: {source}")]
    Json {
        /// What was being (de)serialized.
        what: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

impl SimError {
    /// A closure turning a client error into [`SimError::Api`] with context.
    pub(crate) fn api(
        action: &'static str,
        kind: &'static str,
        name: impl std::fmt::Display,
    ) -> impl FnOnce(kube::Error) -> SimError {
        let name = name.to_string();
        move |source| SimError::Api {
            action,
            kind,
            name,
            source,
        }
    }

    /// The HTTP status code of a failed API call, if the server answered with a Status.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            SimError::Api {
                source: kube::Error::Api(s),
                ..
            } => Some(s.code),
            _ => None,
        }
    }
}

/// Whether a client error is the API server's 404 NotFound.
pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether a client error is the API server's 409 (AlreadyExists or Conflict).
pub(crate) fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Current time as an RFC 3339 `metav1.Time` (seconds precision, `Z`).
pub(crate) fn now_time() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Formats a timestamp as `metav1.Time` does on the wire (RFC 3339, whole seconds, `Z`).
pub(crate) fn fmt_time(t: k8s_openapi::jiff::Timestamp) -> String {
    k8s_openapi::jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", t).unwrap_or_default()
}

/// Current time as an RFC 3339 `metav1.MicroTime` (microseconds precision, `Z`).
pub(crate) fn now_micro() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The caches shared by the simulated components (one watch per kind).
#[derive(Clone)]
pub(crate) struct Caches {
    pub pods: Arc<informer::Cache<Pod>>,
    pub nodes: Arc<informer::Cache<Node>>,
    pub replicasets: Arc<informer::Cache<ReplicaSet>>,
    pub deployments: Arc<informer::Cache<Deployment>>,
}

/// Runs the simulated cluster against the API server `client` points at, until `shutdown`
/// becomes true (or its sender is dropped).
///
/// Registers the nodes, then runs the node heartbeat, Deployment controller, ReplicaSet
/// controller, scheduler and kubelet. Transient API errors are retried with backoff; only an
/// unusable configuration is returned as an error.
pub async fn run(
    client: kube::Client,
    cfg: SimConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), SimError> {
    let node_template = nodes::NodeTemplate::from_config(&cfg)?;
    let caches = Caches {
        pods: informer::Cache::new(),
        nodes: informer::Cache::new(),
        replicasets: informer::Cache::new(),
        deployments: informer::Cache::new(),
    };
    let mut set = JoinSet::new();
    let recorder = events::Recorder::spawn(&mut set, client.clone(), shutdown.clone());

    // Controllers register their handlers before the informers start.
    let queues = [
        deployment::start(
            &mut set,
            client.clone(),
            &caches,
            recorder.clone(),
            shutdown.clone(),
        ),
        replicaset::start(
            &mut set,
            client.clone(),
            &caches,
            recorder.clone(),
            shutdown.clone(),
        ),
        scheduler::start(
            &mut set,
            client.clone(),
            &caches,
            recorder,
            shutdown.clone(),
        ),
        kubelet::start(&mut set, client.clone(), &caches, &cfg, shutdown.clone()),
    ];

    set.spawn(informer::run(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        Arc::clone(&caches.pods),
        shutdown.clone(),
    ));
    set.spawn(informer::run(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        Arc::clone(&caches.nodes),
        shutdown.clone(),
    ));
    set.spawn(informer::run(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
        Arc::clone(&caches.replicasets),
        shutdown.clone(),
    ));
    set.spawn(informer::run(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
        Arc::clone(&caches.deployments),
        shutdown.clone(),
    ));
    nodes::start(
        &mut set,
        client,
        node_template,
        Arc::clone(&caches.nodes),
        shutdown.clone(),
    );

    // Sender dropped counts as shutdown too.
    let _ = shutdown.wait_for(|s| *s).await;
    for q in &queues {
        q.shut_down();
    }
    set.shutdown().await;
    Ok(())
}

//! An in-process Kubernetes API server emulator with a simulated cluster (in the manner of kwok),
//! for end-to-end tests, benchmarks and demos where no real cluster can run.
//!
//! It stands in for kube-apiserver, kube-controller-manager (Deployment, ReplicaSet, garbage
//! collector), kube-scheduler and the kubelet. It is not a container runtime.
//!
//! **Identity.** The emulator authorizes every request (no RBAC authorizer: as kube-apiserver's
//! `--authorization-mode=AlwaysAllow`; RBAC objects are stored and validated, never consulted).
//! It authenticates no request either: credentials are not checked, and the impersonation
//! headers (`Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`) are recorded in the
//! request log ([`RequestRecord`]) but not enforced. Bearer tokens are authenticated only
//! through `TokenReview` (`POST /apis/authentication.k8s.io/v1/tokenreviews`), against static
//! tokens ([`EmulatorConfig::tokens`], [`Emulator::add_token`], [`StaticToken::parse_file`] for
//! kube-apiserver's `--token-auth-file` format); see [`auth`] for its answers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tycho_emulator::EmulatorError> {
//! let emu = tycho_emulator::Emulator::start(tycho_emulator::EmulatorConfig::default()).await?;
//! println!("kubectl --kubeconfig {}", emu.kubeconfig_path().display());
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

pub mod alloc;
pub mod auth;
pub mod builtin;
pub mod discovery;
pub mod error;
pub mod faults;
pub mod gc;
pub mod kubeconfig;
pub mod kubelet;
pub mod merge_keys;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod schema;
pub mod selector;
pub mod server;
pub mod sim;
pub mod ssa;
pub mod store;
pub mod table;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

pub use auth::StaticToken;
pub use error::{ApiError, EmulatorError};
pub use faults::{ErrorRule, FaultSpec, Faults, RequestRecord};

/// The User-Agent of the emulator's own API client (simulated cluster and kubelet), so that the
/// request log tells its calls apart from the clients under test.
pub const SIM_USER_AGENT: &str = concat!("tycho-emulator-sim/", env!("CARGO_PKG_VERSION"));

/// How to run the emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Port on 127.0.0.1 (0 = any free port).
    pub port: u16,
    /// Number of simulated nodes.
    pub nodes: usize,
    /// CPU capacity per node.
    pub node_cpu: String,
    /// Memory capacity per node.
    pub node_memory: String,
    /// `nvidia.com/gpu` capacity of each GPU node (0 = no GPUs are simulated).
    pub gpus_per_node: u32,
    /// How many of the nodes (the first ones) have GPUs when `gpus_per_node` > 0; None = all.
    pub gpu_nodes: Option<usize>,
    /// Delay before a bound pod turns Running and Ready.
    pub pod_ready_delay: Duration,
    /// Where to write the kubeconfig (None = a file in the temp directory, removed at shutdown).
    pub kubeconfig_path: Option<PathBuf>,
    /// Number of change events kept for watch resume (older resourceVersions get 410 Gone).
    pub watch_history: usize,
    /// Whether to run the simulated cluster (nodes, controllers, scheduler, kubelet).
    pub simulate: bool,
    /// Static bearer tokens, as kube-apiserver's `--token-auth-file` (read one with
    /// [`StaticToken::parse_file`]): what `TokenReview` authenticates (default: none).
    pub tokens: Vec<StaticToken>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            port: 0,
            nodes: 3,
            node_cpu: "8".into(),
            node_memory: "32Gi".into(),
            gpus_per_node: 0,
            gpu_nodes: None,
            pod_ready_delay: Duration::from_millis(500),
            kubeconfig_path: None,
            watch_history: 10_000,
            simulate: true,
            tokens: Vec::new(),
        }
    }
}

/// A running emulator. Dropping it or calling [`Emulator::shutdown`] stops everything.
pub struct Emulator {
    url: String,
    kubeconfig: PathBuf,
    temp_kubeconfig: bool,
    state: Arc<server::AppState>,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Emulator {
    /// Binds 127.0.0.1:`cfg.port`, creates the initial namespaces, writes the kubeconfig, starts
    /// the garbage collector and (when `cfg.simulate`) the simulated cluster.
    pub async fn start(cfg: EmulatorConfig) -> Result<Emulator, EmulatorError> {
        let sim_cfg = sim::SimConfig {
            nodes: cfg.nodes,
            node_cpu: cfg.node_cpu.clone(),
            node_memory: cfg.node_memory.clone(),
            gpus_per_node: cfg.gpus_per_node,
            gpu_nodes: cfg.gpu_nodes,
            pod_ready_delay: cfg.pod_ready_delay,
            kubelet_paused: Arc::default(),
        };
        if cfg.simulate {
            sim::nodes::NodeTemplate::from_config(&sim_cfg)
                .map_err(|e| EmulatorError::Config(e.to_string()))?;
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", cfg.port))
            .await
            .map_err(|source| EmulatorError::Bind {
                port: cfg.port,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                port: cfg.port,
                source,
            })?;
        let url = format!("http://{addr}");
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let store = Arc::new(store::Store::new(cfg.watch_history));
        let state = Arc::new(server::AppState::new(
            store,
            Faults::new(),
            shutdown_rx.clone(),
            addr.to_string(),
        ));
        for t in &cfg.tokens {
            state.tokens.add(t.clone());
        }
        state.bootstrap().map_err(|e| EmulatorError::Client {
            url: url.clone(),
            message: format!("bootstrap: {e}"),
        })?;
        let (kubeconfig, temp_kubeconfig) = match &cfg.kubeconfig_path {
            Some(p) => (p.clone(), false),
            None => (
                std::env::temp_dir().join(format!(
                    "tycho-emulator-{}-{}.kubeconfig",
                    addr.port(),
                    uuid::Uuid::new_v4().simple()
                )),
                true,
            ),
        };
        kubeconfig::write(&kubeconfig, &url)?;

        let app = server::router(state.clone());
        let mut srx = shutdown_rx.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = srx.wait_for(|s| *s).await;
                })
                .await;
        });
        let mut tasks = vec![tokio::spawn(gc::run(state.clone(), shutdown_rx.clone()))];
        let mut kcfg = kube::Config::new(url.parse().map_err(|e| EmulatorError::Client {
            url: url.clone(),
            message: format!("{e}"),
        })?);
        // kube-client sends no User-Agent of its own; its extra-headers layer adds this one.
        kcfg.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static(SIM_USER_AGENT),
        ));
        let client = kube::Client::try_from(kcfg).map_err(|e| EmulatorError::Client {
            url: url.clone(),
            message: e.to_string(),
        })?;
        let _ = state.kubelet.set(kubelet::Kubelet::new(client.clone()));
        if cfg.simulate {
            let sim_cfg = sim::SimConfig {
                kubelet_paused: state.faults.kubelet_paused_flag(),
                ..sim_cfg
            };
            let srx = shutdown_rx.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = sim::run(client, sim_cfg, srx).await {
                    tracing::error!(error = %e, "simulated cluster stopped");
                }
            }));
        }
        Ok(Emulator {
            url,
            kubeconfig,
            temp_kubeconfig,
            state,
            shutdown_tx,
            server: Some(server),
            tasks,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The kubeconfig file pointing at this emulator.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A handle on fault injection.
    pub fn faults(&self) -> Faults {
        self.state.faults.clone()
    }

    /// Every API request served so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.log.all()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.state.log.clear();
    }

    /// How long an Event lives after its last write before the emulator removes it, as
    /// kube-apiserver's `--event-ttl` (default [`server::DEFAULT_EVENT_TTL`], 1 h).
    pub fn set_event_ttl(&self, ttl: Duration) {
        self.state.set_event_ttl(ttl);
    }

    /// Adds a static bearer token that `TokenReview` authenticates from now on (replacing a
    /// known one with the same token; an empty token is ignored, as kube-apiserver skips it).
    pub fn add_token(&self, token: StaticToken) {
        self.state.tokens.add(token);
    }

    /// The object store (for white-box tests and benchmarks).
    pub fn store(&self) -> Arc<store::Store> {
        self.state.store.clone()
    }

    /// Stops the server, the garbage collector and the simulated cluster.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        for t in std::mem::take(&mut self.tasks) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        if let Some(s) = self.server.take() {
            let abort = s.abort_handle();
            if tokio::time::timeout(Duration::from_secs(3), s)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        for t in &self.tasks {
            t.abort();
        }
        if let Some(s) = &self.server {
            s.abort();
        }
        if self.temp_kubeconfig {
            let _ = std::fs::remove_file(&self.kubeconfig);
        }
    }
}

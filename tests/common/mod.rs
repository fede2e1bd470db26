//! Shared helpers of the integration tests: a cluster to test against — the in-process API emulator, or
//! a real cluster when `TYCHO_TEST_KUBECONFIG` names a kubeconfig — with a fresh random namespace, the
//! System CRD installed from `crds/`, and the controller running in-process; and the tests' Systems
//! ([`system`], fixtures.rs).
//!
//! Each test binary includes this module with `mod common;`; not every binary uses every helper.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tycho_emulator::{Emulator, EmulatorConfig, RequestRecord};
use tycho_model::System;
use tycho_operator::controller::{self, ControllerConfig};

pub mod api;
mod audit;
mod fixtures;
mod kubelet;
mod skip;
mod wait;
#[allow(unused_imports)]
pub use fixtures::{SystemBuilder, good_system_files, system, yaml_files};
#[allow(unused_imports)]
pub use kubelet::runs_containers;
#[allow(unused_imports)]
pub use skip::{SKIP_LOG_ENV, current_test, skip};
#[allow(unused_imports)]
pub use wait::{eventually, free_addr, until};

/// Environment variable naming a kubeconfig of a real cluster to test against instead of the emulator.
pub const KUBECONFIG_ENV: &str = "TYCHO_TEST_KUBECONFIG";
/// User-Agent of the controller's client in tests, to tell its requests apart in the emulator's log.
pub const CONTROLLER_AGENT: &str = "tycho-controller-under-test";

/// The emulator settings of the tests: a simulated pod turns Ready 200 ms after it starts.
pub fn emulator_config() -> EmulatorConfig {
    EmulatorConfig {
        pod_ready_delay: Duration::from_millis(200),
        ..EmulatorConfig::default()
    }
}

/// A cluster with a fresh namespace.
pub struct TestCluster {
    /// The emulator, when not testing against a real cluster.
    pub emulator: Option<Emulator>,
    /// Configuration of the cluster's API server.
    pub config: Config,
    /// A client for the test's own requests.
    pub client: Client,
    /// The namespace of this test.
    pub namespace: String,
    /// On a real cluster, the API server's audit log (hack/cluster.sh writes one beside the kubeconfig):
    /// the request log of a real server.
    audit: Option<audit::AuditLog>,
}

impl TestCluster {
    /// An SDK location on this cluster's test namespace, with sessions of `lease` (renewed by the SDK).
    pub async fn sdk_location(&self, lease: Duration) -> tycho_sdk::Location {
        tycho_sdk::Location::from_client_with(
            self.client.clone(),
            &self.namespace,
            tycho_sdk::SessionOptions {
                lease_duration: lease,
                ..tycho_sdk::SessionOptions::default()
            },
        )
        .await
        .expect("an SDK location on the test namespace")
    }

    /// Whether to skip `test` (after saying so): this cluster runs no containers (kwok's fake nodes), and
    /// `what` (what the test checks) happens inside them.
    pub async fn skip_without_containers(&self, what: &str, test: &str) -> bool {
        if runs_containers(&self.client).await {
            return false;
        }
        skip(
            test,
            &format!(
                "{what} need a kubelet that runs containers (this cluster's nodes are kwok fakes)"
            ),
        );
        true
    }

    /// Start the emulator (or connect to `TYCHO_TEST_KUBECONFIG`), create a random namespace and install
    /// the System CRD.
    pub async fn start() -> TestCluster {
        Self::start_with(emulator_config()).await
    }

    /// Like [`TestCluster::start`], with emulator settings.
    pub async fn start_with(emulator_config: EmulatorConfig) -> TestCluster {
        let cluster = Self::start_bare(emulator_config).await;
        cluster.install_crd().await;
        cluster
    }

    /// The kubeconfig a `tycho` CLI process (or kubectl) should use: the emulator's, else
    /// `TYCHO_TEST_KUBECONFIG`.
    pub fn kubeconfig_path(&self) -> PathBuf {
        match &self.emulator {
            Some(e) => e.kubeconfig_path().to_path_buf(),
            None => PathBuf::from(std::env::var(KUBECONFIG_ENV).expect("TYCHO_TEST_KUBECONFIG")),
        }
    }

    /// A cluster and namespace without installing the CRD.
    pub async fn start_bare(emulator_config: EmulatorConfig) -> TestCluster {
        let mut cluster = match std::env::var(KUBECONFIG_ENV).ok().filter(|s| !s.is_empty()) {
            Some(path) => Self::connect(Path::new(&path)).await,
            None => Self::start_emulator(emulator_config).await,
        };
        cluster.namespace = format!("tycho-test-{:08x}", rand::random::<u32>());
        let ns = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(cluster.namespace.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(cluster.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create the test namespace");
        // The test's view of the audit log begins after its namespace's creation.
        if let Some(a) = &cluster.audit {
            a.mark();
        }
        cluster
    }

    /// The real cluster of `kubeconfig` (with its audit log when one lies beside it), in namespace
    /// `default`.
    async fn connect(kubeconfig: &Path) -> TestCluster {
        init_test_log();
        let kc = Kubeconfig::read_from(kubeconfig).expect("read TYCHO_TEST_KUBECONFIG");
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig of the test cluster");
        TestCluster {
            emulator: None,
            client: Client::try_from(config.clone()).expect("client"),
            config,
            namespace: "default".into(),
            audit: audit::AuditLog::beside(kubeconfig),
        }
    }

    /// The API emulator alone, also when `TYCHO_TEST_KUBECONFIG` names a real cluster: for tests of what
    /// only the emulator has (its request log, a cluster of the test's own for cluster-wide objects). No
    /// namespace of the test's own (`namespace` is `default`) and no CRD.
    pub async fn start_emulator(emulator_config: EmulatorConfig) -> TestCluster {
        init_test_log();
        let emulator = Emulator::start(emulator_config)
            .await
            .expect("start the emulator");
        let config = Config::new(emulator.url().parse().expect("emulator url"));
        TestCluster {
            emulator: Some(emulator),
            client: Client::try_from(config.clone()).expect("client"),
            config,
            namespace: "default".into(),
            audit: None,
        }
    }

    /// Whether the tests run against the emulator (emulator-only checks are skipped otherwise).
    pub fn is_emulator(&self) -> bool {
        self.emulator.is_some()
    }

    /// On a real cluster, report `SKIPPED <test>: <what> needs the API emulator` (see [`skip`]) and return
    /// true: the caller cleans up and returns. False on the emulator.
    pub fn skip_unless_emulator(&self, test: &str, what: &str) -> bool {
        if self.is_emulator() {
            return false;
        }
        skip(
            test,
            &format!("{what} needs the API emulator (real cluster from {KUBECONFIG_ENV})"),
        );
        true
    }

    /// Apply `crds/tycho.dev_systems.yaml` and wait until Systems can be listed.
    pub async fn install_crd(&self) {
        self.install_crd_files(&["tycho.dev_systems.yaml", "tycho.dev_systemtemplates.yaml"])
            .await;
    }

    /// Install these CRD files of `crds/` (see [`TestCluster::install_crd`]).
    pub async fn install_crd_files(&self, files: &[&str]) {
        for &file in files {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("crds")
                .join(file);
            let text = std::fs::read_to_string(&path).expect("read the CRD file");
            let crd: CustomResourceDefinition =
                serde_saphyr::from_str(&text).expect("parse the CRD file");
            let name = crd.metadata.name.clone().expect("CRD name");
            // A forced server-side apply creates it or replaces an older version (a shared real cluster
            // may have one); the tests of a binary run in parallel and may race to install it, so a lost
            // race (409) is retried.
            let crds = Api::<CustomResourceDefinition>::all(self.client.clone());
            let pp = PatchParams::apply("tycho-tests").force();
            let mut result = crds.patch(&name, &pp, &Patch::Apply(&crd)).await;
            for _ in 0..5 {
                match &result {
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        result = crds.patch(&name, &pp, &Patch::Apply(&crd)).await;
                    }
                    _ => break,
                }
            }
            result.expect("install the CRD (server-side apply)");
        }
        if files.contains(&"tycho.dev_systemtemplates.yaml") {
            let templates: Api<tycho_model::SystemTemplate> = Api::all(self.client.clone());
            eventually(Duration::from_secs(30), || async {
                templates
                    .list(&ListParams::default())
                    .await
                    .ok()
                    .map(|_| ())
            })
            .await
            .expect("the SystemTemplate CRD is served");
        }
        if !files.contains(&"tycho.dev_systems.yaml") {
            return;
        }
        let systems: Api<System> = Api::namespaced(self.client.clone(), &self.namespace);
        eventually(Duration::from_secs(30), || async {
            systems.list(&ListParams::default()).await.ok().map(|_| ())
        })
        .await
        .expect("the System CRD is served");
    }

    /// An API handle in the test namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A client whose requests carry [`CONTROLLER_AGENT`].
    pub fn controller_client(&self) -> Client {
        let mut config = self.config.clone();
        config.headers.push((
            axum::http::header::USER_AGENT,
            axum::http::HeaderValue::from_static(CONTROLLER_AGENT),
        ));
        Client::try_from(config).expect("controller client")
    }

    /// Requests the controller sent (its User-Agent is [`CONTROLLER_AGENT`]): the emulator's request log,
    /// or on a real cluster the requests in this test's namespace (and cluster-scoped ones) of the API
    /// server's audit log since [`TestCluster::clear_requests`]. None when there is neither.
    pub fn controller_requests(&self) -> Option<Vec<RequestRecord>> {
        if let Some(e) = &self.emulator {
            return Some(
                e.requests()
                    .into_iter()
                    .filter(|r| r.user_agent == CONTROLLER_AGENT)
                    .collect(),
            );
        }
        let audit = self.audit.as_ref()?;
        Some(
            audit
                .records()
                .into_iter()
                .filter(|r| r.user_agent.starts_with(CONTROLLER_AGENT))
                .filter(|r| r.namespace == self.namespace || r.namespace.is_empty())
                .collect(),
        )
    }

    /// Every request of the request log: the emulator's, or on a real cluster the audit log's requests in
    /// this test's namespace (and cluster-scoped ones) since [`TestCluster::clear_requests`].
    pub fn requests(&self) -> Option<Vec<RequestRecord>> {
        if let Some(e) = &self.emulator {
            return Some(e.requests());
        }
        let audit = self.audit.as_ref()?;
        Some(
            audit
                .records()
                .into_iter()
                .filter(|r| r.namespace == self.namespace || r.namespace.is_empty())
                .collect(),
        )
    }

    /// Forget the request log (the emulator's, or this test's view of the audit log).
    pub fn clear_requests(&self) {
        if let Some(e) = &self.emulator {
            e.clear_requests();
        }
        if let Some(a) = &self.audit {
            a.mark();
        }
    }

    /// Run the controller in-process on this test's namespace.
    pub async fn run_controller(
        &self,
        tweak: impl FnOnce(&mut ControllerConfig),
    ) -> RunningController {
        let mut config = ControllerConfig {
            namespaces: vec![self.namespace.clone()],
            concurrency: 4,
            metrics_addr: Some(free_addr()),
            ..ControllerConfig::default()
        };
        tweak(&mut config);
        let metrics_addr = config.metrics_addr;
        let (tx, rx) = oneshot::channel::<()>();
        let client = self.controller_client();
        let task = tokio::spawn(async move {
            controller::run(client, config, async move {
                let _ = rx.await;
            })
            .await
        });
        RunningController {
            stop: Some(tx),
            task: Some(task),
            metrics_addr,
        }
    }

    /// Delete the namespace (real clusters) and stop the emulator.
    pub async fn cleanup(self) {
        match self.emulator {
            Some(e) => e.shutdown().await,
            None => {
                let _ = Api::<Namespace>::all(self.client.clone())
                    .delete(&self.namespace, &DeleteParams::background())
                    .await;
            }
        }
    }
}

/// A controller running in a task of the test.
pub struct RunningController {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), controller::ControllerError>>>,
    /// Where its metrics and health endpoints listen.
    pub metrics_addr: Option<SocketAddr>,
}

impl RunningController {
    /// Ask for a graceful shutdown and wait for it (at most 20 s).
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let r = tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("controller stops within 20 s after shutdown");
            r.expect("controller task").expect("controller run");
        }
    }

    /// GET a path of the metrics/health server: (status code, body).
    pub async fn http_get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.metrics_addr?, path).await
    }

    /// Value of a metric sample line (exact series name with labels), if present.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.http_get("/metrics").await?;
        body.lines().find_map(|l| {
            let rest = l.strip_prefix(series)?;
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
    }
}

impl Drop for RunningController {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Logs of the controller under test: `TYCHO_TEST_LOG=debug` (an EnvFilter).
fn init_test_log() {
    if let Ok(filter) = std::env::var("TYCHO_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Minimal HTTP/1.0 GET.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

/// A `$BROWSER` stand-in written into `dir`: a script that atomically writes the URL it is opened
/// with to a file. Returns `(script, file the URL lands in)`.
pub fn browser_recorder(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let record = dir.join("browser-url");
    let script = dir.join("browser.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1\" > {0}.tmp && mv {0}.tmp {0}\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, record)
}

/// Whether a request record is a write.
pub fn is_write(r: &RequestRecord) -> bool {
    matches!(
        r.verb.as_str(),
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

/// Shared handle type for tests that need the cluster in several tasks.
pub type Shared = Arc<TestCluster>;

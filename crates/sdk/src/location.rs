//! A cluster, namespace and session: the root of the SDK.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node as KubeNode, Pod};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;

use super::SdkError;
use super::container::Container;
use super::session::{Session, SessionOptions, SessionState, random_suffix};
use super::spec::ContainerSpec;
use super::template::{TemplateSpec, template_ports};
use tycho_model::quantity::Quantity;
use tycho_model::{System, SystemSpec, SystemTemplate};

/// Where and how to connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// A kubeconfig file (default: `$KUBECONFIG`, `~/.kube/config`, or the in-cluster config).
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig (default: its current context).
    pub context: Option<String>,
    /// The namespace (default: the context's namespace, else `default`).
    pub namespace: Option<String>,
    /// Session settings.
    pub session: SessionOptions,
}

impl ConnectOptions {
    /// Build a client and the namespace to use.
    pub async fn client(&self) -> Result<(kube::Client, String), SdkError> {
        let (config, namespace) = self.config().await?;
        let client =
            kube::Client::try_from(config).map_err(SdkError::connect("building the client"))?;
        Ok((client, namespace))
    }

    /// The client configuration and the namespace to use.
    pub async fn config(&self) -> Result<(kube::Config, String), SdkError> {
        let opts = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = match &self.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path)
                    .map_err(SdkError::connect(path.display().to_string()))?;
                kube::Config::from_custom_kubeconfig(kc, &opts)
                    .await
                    .map_err(SdkError::connect(path.display().to_string()))?
            }
            None if self.context.is_some() => kube::Config::from_kubeconfig(&opts)
                .await
                .map_err(SdkError::connect("reading the kubeconfig"))?,
            None => kube::Config::infer().await.map_err(SdkError::connect(
                "finding a kubeconfig or in-cluster config",
            ))?,
        };
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        Ok((config, namespace))
    }
}

pub(crate) struct LocationInner {
    pub client: kube::Client,
    pub namespace: String,
    pub session: Session,
}

/// A connection to a cluster with an open session. Cheap to clone; the session ends when
/// [`Location::close`] is called or the last clone (including those held by [`Container`]s,
/// [`Node`]s and [`Tunnel`](super::Tunnel)s) is dropped — dropping deletes the Lease in a task on the
/// current Tokio runtime, best effort; if none is running the Lease expires instead.
#[derive(Clone)]
pub struct Location {
    pub(crate) inner: Arc<LocationInner>,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Location")
            .field("namespace", &self.inner.namespace)
            .field("session", &self.inner.session.name)
            .finish()
    }
}

impl Location {
    /// Connect with the default kubeconfig (or in-cluster config) and namespace, and open a session.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), tycho_sdk::SdkError> {
    /// let location = tycho_sdk::Location::connect().await?;
    /// println!("session {}", location.session_name());
    /// location.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect() -> Result<Location, SdkError> {
        Location::connect_with(ConnectOptions::default()).await
    }

    /// Connect as `options` say and open a session.
    pub async fn connect_with(options: ConnectOptions) -> Result<Location, SdkError> {
        let (client, namespace) = options.client().await?;
        Location::from_client_with(client, &namespace, options.session).await
    }

    /// Open a session with an existing client in `namespace`.
    pub async fn from_client(client: kube::Client, namespace: &str) -> Result<Location, SdkError> {
        Location::from_client_with(client, namespace, SessionOptions::default()).await
    }

    /// Open a session with an existing client in `namespace`, with session options.
    pub async fn from_client_with(
        client: kube::Client,
        namespace: &str,
        session: SessionOptions,
    ) -> Result<Location, SdkError> {
        let session = Session::open(client.clone(), namespace, &session).await?;
        Ok(Location {
            inner: Arc::new(LocationInner {
                client,
                namespace: namespace.to_string(),
                session,
            }),
        })
    }

    /// The Kubernetes client.
    pub fn client(&self) -> &kube::Client {
        &self.inner.client
    }

    /// The namespace everything is created in.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Name of the session Lease.
    pub fn session_name(&self) -> &str {
        &self.inner.session.name
    }

    /// Duration of the session Lease.
    pub fn session_duration(&self) -> std::time::Duration {
        self.inner.session.duration
    }

    /// Whether the session was lost (deleted, collected, or not renewed within its duration).
    pub fn session_lost(&self) -> bool {
        matches!(self.inner.session.state(), SessionState::Lost(_))
    }

    /// A receiver of the session state, to react when it is lost.
    pub fn session_watch(&self) -> watch::Receiver<SessionState> {
        self.inner.session.watch()
    }

    /// End the session now: stop renewing and delete the Lease; the controller then deletes
    /// every System of the session (and their children).
    pub async fn close(&self) -> Result<(), SdkError> {
        self.inner.session.close().await
    }

    /// Ready, schedulable nodes, best first (most free allocatable memory, then CPU; free =
    /// allocatable minus the requests of the pods that are not finished on the node).
    pub async fn nodes(&self) -> Result<Vec<Node>, SdkError> {
        let nodes: Api<KubeNode> = Api::all(self.inner.client.clone());
        let list = nodes
            .list(&ListParams::default())
            .await
            .map_err(SdkError::api("list Nodes"))?;
        let pods: Api<Pod> = Api::all(self.inner.client.clone());
        let pod_list = pods
            .list(&ListParams::default())
            .await
            .map_err(SdkError::api("list Pods"))?;
        let mut used: HashMap<String, (i128, i128)> = HashMap::new();
        for p in &pod_list.items {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Succeeded" | "Failed")) {
                continue;
            }
            let Some(spec) = &p.spec else { continue };
            let Some(node) = &spec.node_name else {
                continue;
            };
            let e = used.entry(node.clone()).or_default();
            for c in &spec.containers {
                let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
                if let Some(req) = req {
                    e.0 += req.get("cpu").and_then(|q| milli(&q.0)).unwrap_or(0);
                    e.1 += req.get("memory").and_then(|q| units(&q.0)).unwrap_or(0);
                }
            }
        }
        let mut out = Vec::new();
        for n in list.items {
            let name = n.metadata.name.clone().unwrap_or_default();
            let status = n.status.as_ref();
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let unschedulable = n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
            if !ready || unschedulable {
                continue;
            }
            let alloc = status.and_then(|s| s.allocatable.as_ref());
            let cpu = alloc
                .and_then(|a| a.get("cpu"))
                .and_then(|q| milli(&q.0))
                .unwrap_or(0);
            let mem = alloc
                .and_then(|a| a.get("memory"))
                .and_then(|q| units(&q.0))
                .unwrap_or(0);
            let (ucpu, umem) = used.get(&name).copied().unwrap_or((0, 0));
            out.push(Node {
                name,
                allocatable_cpu_millis: cpu,
                allocatable_memory_bytes: mem,
                free_cpu_millis: cpu - ucpu,
                free_memory_bytes: mem - umem,
                location: self.clone(),
            });
        }
        out.sort_by(|a, b| {
            b.free_memory_bytes
                .cmp(&a.free_memory_bytes)
                .then(b.free_cpu_millis.cmp(&a.free_cpu_millis))
                .then(a.name.cmp(&b.name))
        });
        Ok(out)
    }

    /// The node with the most free memory and CPU.
    pub async fn best_node(&self) -> Result<Node, SdkError> {
        self.nodes()
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| SdkError::Failed {
                system: String::new(),
                message: "no Ready, schedulable node".into(),
            })
    }

    /// Spawn a container wherever the scheduler puts it. Returns as soon as the System is
    /// created: boot is asynchronous (see [`Container::wait_ready`]). A spec that names no port
    /// first gets the image's exposed ports from its registry (see [`ContainerSpec`]).
    pub async fn spawn(&self, spec: ContainerSpec) -> Result<Container, SdkError> {
        if let SessionState::Lost(reason) = self.inner.session.state() {
            return Err(SdkError::SessionLost {
                lease: self.session_name().to_string(),
                reason,
            });
        }
        let spec = spec.with_image_ports().await;
        let system_spec = spec.to_system_spec(self.session_name())?;
        let name = self
            .create_system(&spec.name_prefix(), &system_spec)
            .await?;
        tracing::debug!(system = %name, image = %spec.image(), "spawning container");
        Ok(Container::new(
            self.clone(),
            name,
            system_spec.containers[0].name.clone(),
            spec.ports().to_vec(),
        ))
    }

    /// Spawn a System from a catalog template (`SystemTemplate`) with parameters, owned by this session;
    /// returns at once. The template is read first (this needs `get` on `systemtemplates.tycho.dev`): its
    /// parameters are checked and typed ([`TemplateSpec`]), and the returned [`Container`] is its first
    /// container, with the template's exposed TCP ports as [`Container::ports`] (to tunnel to).
    pub async fn spawn_template(&self, spec: TemplateSpec) -> Result<Container, SdkError> {
        if let SessionState::Lost(reason) = self.inner.session.state() {
            return Err(SdkError::SessionLost {
                lease: self.session_name().to_string(),
                reason,
            });
        }
        let templates: Api<SystemTemplate> = Api::all(self.inner.client.clone());
        let template = templates
            .get_opt(spec.template())
            .await
            .map_err(SdkError::api(format!(
                "read SystemTemplate {}",
                spec.template()
            )))?
            .ok_or_else(|| {
                SdkError::InvalidSpec(format!(
                    "template {} does not exist (kubectl get systemtemplates lists the catalog)",
                    spec.template()
                ))
            })?;
        let container = template
            .spec
            .system
            .containers
            .first()
            .map(|c| c.name.clone())
            .ok_or_else(|| {
                SdkError::InvalidSpec(format!("template {} has no container", spec.template()))
            })?;
        let system_spec = spec.to_system_spec(&template, self.session_name())?;
        let name = self
            .create_system(&spec.name_prefix(), &system_spec)
            .await?;
        tracing::debug!(system = %name, template = %spec.template(), "spawning from a template");
        Ok(Container::new(
            self.clone(),
            name,
            container,
            template_ports(&template),
        ))
    }

    /// Create a System of `system_spec` named `<prefix>-<random>` (another suffix on a name clash).
    async fn create_system(
        &self,
        prefix: &str,
        system_spec: &SystemSpec,
    ) -> Result<String, SdkError> {
        let api: Api<System> = Api::namespaced(self.inner.client.clone(), self.namespace());
        for _ in 0..5 {
            let name = format!("{prefix}-{}", random_suffix(6));
            let system = System {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.namespace().to_string()),
                    ..ObjectMeta::default()
                },
                spec: system_spec.clone(),
                status: None,
            };
            match api.create(&PostParams::default(), &system).await {
                Ok(_) => return Ok(name),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(SdkError::api(format!("create System {name}"))(e)),
            }
        }
        Err(SdkError::InvalidSpec(format!(
            "could not find a free System name with prefix {prefix}"
        )))
    }
}

/// A Ready node of the cluster, with its free resources when listed.
#[derive(Clone)]
pub struct Node {
    /// Node name.
    pub name: String,
    /// Allocatable CPU (milli-CPUs).
    pub allocatable_cpu_millis: i128,
    /// Allocatable memory (bytes).
    pub allocatable_memory_bytes: i128,
    /// Allocatable minus requested CPU (milli-CPUs).
    pub free_cpu_millis: i128,
    /// Allocatable minus requested memory (bytes).
    pub free_memory_bytes: i128,
    location: Location,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("free_cpu_millis", &self.free_cpu_millis)
            .field("free_memory_bytes", &self.free_memory_bytes)
            .finish()
    }
}

impl Node {
    /// Spawn a container on this node (pinned with the `kubernetes.io/hostname` node selector).
    pub async fn spawn(&self, spec: ContainerSpec) -> Result<Container, SdkError> {
        self.location.spawn(spec.pin_to_node(&self.name)).await
    }
}

/// A quantity from the API server in milli-units (CPU), rounded up; `None` when it does not parse.
fn milli(q: &str) -> Option<i128> {
    Quantity::parse(q.trim()).ok()?.milli_value()
}

/// A quantity from the API server in whole units (memory bytes), rounded up.
fn units(q: &str) -> Option<i128> {
    Quantity::parse(q.trim()).ok()?.value()
}

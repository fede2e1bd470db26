//! The kubelet's streaming endpoints — `pods/log`, `pods/exec`, `pods/portforward` — backed by a
//! simulated container runtime.
//!
//! **This is a stand-in for a container runtime, not one.** No image is pulled and no process
//! runs: each container of a Running pod gets an in-memory filesystem (a few standard
//! directories and `/etc` files, a handful of files of well-known images such as nginx's welcome
//! page, then the pod's ConfigMap and Secret volumes mounted as the kubelet would — `subPath`,
//! `items`, modes), an environment resolved from the pod spec, a process table and a log. Exec
//! runs the built-in commands of [`shell`] (enough for `kubectl exec`, `kubectl cp` and the
//! Tycho SDK). Each declared TCP port of a container whose main process is not idle answers
//! HTTP/1.1 by serving files from that filesystem (see [`http`]), so a pre-boot `index.html`
//! is what a port-forward returns. Log lines prefixed `[tycho-sim]` are written by the simulator
//! (a real image logs its own lines); each HTTP request adds an access-log line.
//!
//! The protocols are the real ones, so the same client code works against a cluster:
//! WebSocket with the `v5.channel.k8s.io` / `v4.channel.k8s.io` channel protocol for exec and
//! `v4.channel.k8s.io` / `portforward.k8s.io` for port-forwarding. SPDY is not served: a client
//! that only speaks SPDY gets a 400 saying so (kubectl 1.32 uses WebSockets for exec and cp, but
//! tunnels SPDY inside a WebSocket for port-forward, which is not supported).
//!
//! Wiring: the API server routes `GET|POST /api/v1/namespaces/{ns}/pods/{name}/{log|exec|portforward}`
//! to [`Kubelet::handle`]; the server must be run with HTTP upgrades enabled (`axum::serve` does).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ::http::StatusCode;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::Api;

pub mod container;
pub mod exec;
pub mod fs;
pub mod http;
pub mod logs;
pub mod portforward;
pub mod shell;
mod tar_cmd;
pub mod ws;

use container::{ContainerRef, PodObjects, SimContainer};

/// Errors of the kubelet endpoints; each becomes a Kubernetes `Status` response.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// The pod does not exist.
    #[error("pods \"{0}\" not found")]
    PodNotFound(String),
    /// The request is not valid for this pod (container missing, pod not running, bad query).
    #[error("{0}")]
    BadRequest(String),
    /// Reading the pod or its objects from the API failed.
    #[error("reading {what}: {source}")]
    Api {
        /// What was being read.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The WebSocket upgrade was refused.
    #[error(transparent)]
    Upgrade(#[from] ws::UpgradeError),
    /// Unknown subresource.
    #[error("the server could not find the requested resource (subresource {0})")]
    NoSuchSubresource(String),
}

impl KubeletError {
    fn code(&self) -> StatusCode {
        match self {
            KubeletError::PodNotFound(_) | KubeletError::NoSuchSubresource(_) => {
                StatusCode::NOT_FOUND
            }
            KubeletError::BadRequest(_) | KubeletError::Upgrade(_) => StatusCode::BAD_REQUEST,
            KubeletError::Api { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            KubeletError::PodNotFound(_) | KubeletError::NoSuchSubresource(_) => "NotFound",
            KubeletError::BadRequest(_) | KubeletError::Upgrade(_) => "BadRequest",
            KubeletError::Api { .. } => "InternalError",
        }
    }

    /// The error as a `Status` response.
    pub fn into_response(self, pod: &str) -> Response {
        let code = self.code();
        let mut status = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": code.as_u16(),
        });
        if let KubeletError::PodNotFound(_) = self {
            status["details"] = serde_json::json!({"name": pod, "kind": "pods"});
        }
        let mut resp = Response::new(Body::from(status.to_string()));
        *resp.status_mut() = code;
        resp.headers_mut().insert(
            ::http::header::CONTENT_TYPE,
            ::http::HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// Decode a URL query into (key, value) pairs, keeping repeated keys (`command=a&command=b`).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b'%' => {
                    match std::str::from_utf8(b.get(i + 1..i + 3).unwrap_or(b"zz"))
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        Some(v) => {
                            out.push(v);
                            i += 3;
                        }
                        None => {
                            out.push(b'%');
                            i += 1;
                        }
                    }
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(p), String::new()),
        })
        .collect()
}

fn flag(q: &[(String, String)], key: &str) -> bool {
    q.iter()
        .any(|(k, v)| k == key && (v.is_empty() || v == "true" || v == "1"))
}

fn value<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn to_chrono(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
        .unwrap_or_else(Utc::now)
}

/// Runtime table: (pod uid, container name, restart count) → container.
type ContainerTable = HashMap<(String, String, i32), ContainerRef>;

/// The simulated kubelet: one per emulator, shared by all requests (cheap to clone).
#[derive(Clone)]
pub struct Kubelet {
    client: kube::Client,
    containers: Arc<Mutex<ContainerTable>>,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet").finish_non_exhaustive()
    }
}

impl Kubelet {
    /// A kubelet reading pods, ConfigMaps and Secrets through `client`.
    pub fn new(client: kube::Client) -> Kubelet {
        Kubelet {
            client,
            containers: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Serve `GET|POST /api/v1/namespaces/{namespace}/pods/{pod}/{subresource}` for
    /// `log`, `exec` and `portforward`.
    pub async fn handle(
        &self,
        namespace: &str,
        pod: &str,
        subresource: &str,
        req: Request,
    ) -> Response {
        match self.handle_inner(namespace, pod, subresource, req).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(namespace, pod, subresource, error = %e, "kubelet request refused");
                e.into_response(pod)
            }
        }
    }

    async fn handle_inner(
        &self,
        namespace: &str,
        pod_name: &str,
        subresource: &str,
        mut req: Request,
    ) -> Result<Response, KubeletError> {
        let query = parse_query(req.uri().query().unwrap_or(""));
        if !matches!(subresource, "log" | "exec" | "portforward") {
            return Err(KubeletError::NoSuchSubresource(subresource.to_string()));
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pod = pods
            .get_opt(pod_name)
            .await
            .map_err(|source| KubeletError::Api {
                what: format!("pod {namespace}/{pod_name}"),
                source,
            })?
            .ok_or_else(|| KubeletError::PodNotFound(pod_name.to_string()))?;
        let container_name = self.pick_container(&pod, value(&query, "container"), subresource)?;
        match subresource {
            "log" => {
                if flag(&query, "previous") {
                    return Err(KubeletError::BadRequest(format!(
                        "previous terminated container \"{container_name}\" in pod \"{pod_name}\" not found"
                    )));
                }
                let c = self.container(&pod, &container_name, "log").await?;
                let since = value(&query, "sinceSeconds")
                    .and_then(|s| s.parse::<i64>().ok())
                    .map(|s| Utc::now() - chrono::Duration::seconds(s))
                    .or_else(|| {
                        value(&query, "sinceTime")
                            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                            .map(|t| t.with_timezone(&Utc))
                    });
                let params = logs::LogParams {
                    follow: flag(&query, "follow"),
                    timestamps: flag(&query, "timestamps"),
                    tail_lines: value(&query, "tailLines").and_then(|s| s.parse().ok()),
                    since,
                    limit_bytes: value(&query, "limitBytes").and_then(|s| s.parse().ok()),
                };
                let alive = self.liveness(&pod);
                let mut resp = Response::new(logs::body(c, params, alive));
                resp.headers_mut().insert(
                    ::http::header::CONTENT_TYPE,
                    ::http::HeaderValue::from_static("text/plain"),
                );
                Ok(resp)
            }
            "exec" => {
                let command: Vec<String> = query
                    .iter()
                    .filter(|(k, _)| k == "command")
                    .map(|(_, v)| v.clone())
                    .collect();
                if command.is_empty() {
                    return Err(KubeletError::BadRequest(
                        "you must specify at least 1 command".into(),
                    ));
                }
                let params = exec::ExecParams {
                    command,
                    stdin: flag(&query, "stdin"),
                    stdout: flag(&query, "stdout"),
                    stderr: flag(&query, "stderr"),
                    tty: flag(&query, "tty"),
                };
                if !params.stdin && !params.stdout && !params.stderr {
                    return Err(KubeletError::BadRequest(
                        "you must specify at least one of stdin, stdout, stderr".into(),
                    ));
                }
                let c = self.container(&pod, &container_name, "exec").await?;
                let accepted = ws::accept(&mut req, "exec", exec::PROTOCOLS)?;
                let protocol = accepted.protocol.clone();
                let on_upgrade = accepted.on_upgrade;
                let alive = self.liveness(&pod);
                tokio::spawn(async move {
                    match ws::upgraded(on_upgrade).await {
                        Ok(socket) => exec::run(c, params, socket, protocol, alive).await,
                        Err(e) => tracing::debug!(error = %e, "exec upgrade failed"),
                    }
                });
                Ok(accepted.response)
            }
            _ => {
                // Refuse non-WebSocket clients first: SPDY clients name ports per stream.
                let accepted = ws::accept(&mut req, "portforward", portforward::PROTOCOLS)?;
                let ports: Vec<u16> = query
                    .iter()
                    .filter(|(k, _)| k == "ports" || k == "port")
                    .flat_map(|(_, v)| {
                        v.split(',')
                            .map(|p| p.trim().to_string())
                            .collect::<Vec<_>>()
                    })
                    .map(|p| {
                        p.parse::<u16>()
                            .ok()
                            .filter(|p| *p > 0)
                            .ok_or_else(|| KubeletError::BadRequest(format!("invalid port {p:?}")))
                    })
                    .collect::<Result<_, _>>()?;
                if ports.is_empty() {
                    return Err(KubeletError::BadRequest(
                        "at least one port must be specified".into(),
                    ));
                }
                let c = self.container(&pod, &container_name, "portforward").await?;
                let on_upgrade = accepted.on_upgrade;
                tokio::spawn(async move {
                    match ws::upgraded(on_upgrade).await {
                        Ok(socket) => portforward::run(c, ports, socket).await,
                        Err(e) => tracing::debug!(error = %e, "portforward upgrade failed"),
                    }
                });
                Ok(accepted.response)
            }
        }
    }

    /// A check that the pod still exists (same UID); API errors count as alive.
    fn liveness(
        &self,
        pod: &Pod,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> + Send + 'static
    {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        move || {
            let pods = pods.clone();
            let uid = uid.clone();
            let name = name.clone();
            Box::pin(async move {
                match pods.get_opt(&name).await {
                    Ok(Some(p)) => {
                        p.metadata.uid.as_deref() == Some(uid.as_str())
                            && p.metadata.deletion_timestamp.is_none()
                    }
                    Ok(None) => false,
                    Err(_) => true,
                }
            })
        }
    }

    fn pick_container(
        &self,
        pod: &Pod,
        asked: Option<&str>,
        subresource: &str,
    ) -> Result<String, KubeletError> {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let names: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
            .collect();
        match asked.filter(|a| !a.is_empty()) {
            Some(a) if names.iter().any(|n| n == a) => Ok(a.to_string()),
            Some(a) => Err(KubeletError::BadRequest(format!(
                "container {a} is not valid for pod {pod_name}"
            ))),
            None => {
                if let Some(d) = pod
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("kubectl.kubernetes.io/default-container"))
                    .filter(|d| names.contains(d))
                {
                    return Ok(d.clone());
                }
                match names.as_slice() {
                    [one] => Ok(one.clone()),
                    [first, ..] if subresource == "portforward" => Ok(first.clone()),
                    _ => Err(KubeletError::BadRequest(format!(
                        "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                        names.join(" ")
                    ))),
                }
            }
        }
    }

    /// The runtime state of a running container, created on first use.
    async fn container(
        &self,
        pod: &Pod,
        name: &str,
        subresource: &str,
    ) -> Result<ContainerRef, KubeletError> {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into());
        let cstatus = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == name));
        let running = cstatus
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.running.as_ref());
        let Some(running) = running.filter(|_| phase == "Running") else {
            let waiting = cstatus
                .and_then(|c| c.state.as_ref())
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.clone())
                .unwrap_or_else(|| "ContainerCreating".into());
            return Err(KubeletError::BadRequest(match subresource {
                "log" => format!(
                    "container \"{name}\" in pod \"{pod_name}\" is waiting to start: {waiting}"
                ),
                "exec" if phase == "Succeeded" || phase == "Failed" => format!(
                    "cannot exec into a container in a completed pod; current phase is {phase}"
                ),
                "exec" => format!("unable to upgrade connection: container not found (\"{name}\")"),
                _ => format!(
                    "unable to upgrade connection: pod {pod_name} is not running (phase {phase})"
                ),
            }));
        };
        let started = running
            .started_at
            .as_ref()
            .map(to_chrono)
            .unwrap_or_else(Utc::now);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let restarts = cstatus.map(|c| c.restart_count).unwrap_or(0);
        let key = (uid.clone(), name.to_string(), restarts);
        if let Some(c) = self.lock().get(&key) {
            return Ok(Arc::clone(c));
        }
        let spec = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == name))
            .ok_or_else(|| {
                KubeletError::BadRequest(format!(
                    "container {name} is not valid for pod {pod_name}"
                ))
            })?;
        let objs = self.pod_objects(pod).await?;
        let fresh = Arc::new(SimContainer::new(pod, spec, &objs, started));
        let (c, prune) = {
            let mut map = self.lock();
            let c = Arc::clone(map.entry(key).or_insert(fresh));
            (c, map.len() > 256)
        };
        if prune {
            self.prune().await;
        }
        Ok(c)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ContainerTable> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget containers whose pods are gone (their processes are terminated).
    async fn prune(&self) {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let Ok(list) = pods.list(&Default::default()).await else {
            return;
        };
        let live: std::collections::HashSet<String> = list
            .items
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        let mut map = self.lock();
        map.retain(|(uid, _, _), c| {
            let keep = live.contains(uid);
            if !keep {
                c.kill_all();
            }
            keep
        });
    }

    /// Read the ConfigMaps and Secrets the pod's volumes and env refer to.
    async fn pod_objects(&self, pod: &Pod) -> Result<PodObjects, KubeletError> {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let mut cms = std::collections::BTreeSet::new();
        let mut secrets = std::collections::BTreeSet::new();
        if let Some(spec) = &pod.spec {
            for v in spec.volumes.iter().flatten() {
                if let Some(cm) = &v.config_map {
                    cms.insert(cm.name.clone());
                }
                if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
                    secrets.insert(s);
                }
            }
            for c in &spec.containers {
                for e in c.env.iter().flatten() {
                    if let Some(f) = &e.value_from {
                        if let Some(r) = &f.config_map_key_ref {
                            cms.insert(r.name.clone());
                        }
                        if let Some(r) = &f.secret_key_ref {
                            secrets.insert(r.name.clone());
                        }
                    }
                }
                for e in c.env_from.iter().flatten() {
                    if let Some(r) = &e.config_map_ref {
                        cms.insert(r.name.clone());
                    }
                    if let Some(r) = &e.secret_ref {
                        secrets.insert(r.name.clone());
                    }
                }
            }
        }
        let mut objs = PodObjects::default();
        let cm_api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
        for n in cms {
            let got = cm_api
                .get_opt(&n)
                .await
                .map_err(|source| KubeletError::Api {
                    what: format!("configmap {ns}/{n}"),
                    source,
                })?;
            if let Some(cm) = got {
                objs.config_maps.insert(n, cm);
            }
        }
        let sec_api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        for n in secrets {
            let got = sec_api
                .get_opt(&n)
                .await
                .map_err(|source| KubeletError::Api {
                    what: format!("secret {ns}/{n}"),
                    source,
                })?;
            if let Some(s) = got {
                objs.secrets.insert(n, s);
            }
        }
        Ok(objs)
    }
}

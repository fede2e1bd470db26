//! The simulated kubelet (one for all simulated nodes, as kwok does): pods bound to a node
//! labelled [`SIMULATED_LABEL`](super::SIMULATED_LABEL) turn Running and Ready after
//! `pod_ready_delay`, with the status a kubelet reports through `pods/status` (phase, hostIP,
//! podIP from the node's podCIDR, startTime, container statuses, and the conditions
//! PodReadyToStartContainers, Initialized, ContainersReady, Ready, PodScheduled). Readiness
//! gates are honoured (Ready only once every gate's condition is True). A pod with a
//! `deletionTimestamp` is removed by the kubelet confirming the deletion (delete with
//! `gracePeriodSeconds=0`, uid precondition), as the real kubelet does after its containers
//! stop. While the kubelet is paused nothing happens at all (pods stay not ready, deletions are
//! not confirmed), as with a kubelet that is down.
//!
//! It also plays the pod garbage collector for pods bound to a node that no longer exists:
//! after a 40 s quarantine they are marked Failed with a `DisruptionTarget` condition (reason
//! `DeletionByPodGC`) and deleted.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::informer::{Cache, key_of};
use super::queue::{Key, Requeue, WorkQueue, run_workers};
use super::{Caches, SIMULATED_LABEL, SimConfig, SimError, is_not_found, now_time};

/// How long a pod bound to a missing node is left alone before the pod GC fails and deletes it
/// (kube-controller-manager's quarantine).
pub const ORPHAN_QUARANTINE: Duration = Duration::from_secs(40);
/// Conditions the kubelet owns; others (readiness gates, DisruptionTarget) are kept.
const KUBELET_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
    "PodScheduled",
];
/// Concurrent status writers.
const WORKERS: usize = 4;

/// A stable fake digest for an image reference (for `imageID`).
pub fn image_digest(image: &str) -> String {
    // Four rounds of FNV-1a 64 with different seeds give 64 hex digits.
    let mut out = String::with_capacity(64);
    for seed in 0u64..4 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
        for b in image.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    format!("sha256:{out}")
}

/// `imageID` as containerd reports it: the image's repository with the digest.
pub fn image_id(image: &str) -> String {
    let repo = image.split('@').next().unwrap_or(image);
    let repo = match repo.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => repo,
    };
    let repo = if repo.contains('/') {
        let first = repo.split('/').next().unwrap_or("");
        if first.contains('.') || first.contains(':') || first == "localhost" {
            repo.to_string()
        } else {
            format!("docker.io/{repo}")
        }
    } else {
        format!("docker.io/library/{repo}")
    };
    format!("{repo}@{}", image_digest(image))
}

/// A random containerd container id.
fn container_id() -> String {
    let a: u128 = rand::random();
    let b: u128 = rand::random();
    format!("containerd://{a:032x}{b:032x}")
}

fn condition_status<'a>(conditions: &'a [PodCondition], type_: &str) -> Option<&'a PodCondition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether every readiness gate of the pod has its condition True.
fn gates_ready(pod: &Pod) -> Result<(), String> {
    let conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    for gate in pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_deref())
        .unwrap_or_default()
    {
        match condition_status(conditions, &gate.condition_type) {
            None => {
                return Err(format!(
                    "corresponding condition of pod readiness gate \"{}\" does not exist.",
                    gate.condition_type
                ));
            }
            Some(c) if c.status != "True" => {
                return Err(format!(
                    "the status of pod readiness gate \"{}\" is not \"True\", but {}",
                    gate.condition_type, c.status
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Whether the pod already shows what the kubelet would report: Running, with a pod IP, and
/// Ready exactly when its readiness gates allow.
pub fn is_settled(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let ready = condition_status(conditions, "Ready").map(|c| c.status.as_str());
    status.phase.as_deref() == Some("Running")
        && status.pod_ip.is_some()
        && ready
            == Some(if gates_ready(pod).is_ok() {
                "True"
            } else {
                "False"
            })
}

/// The status patch that makes the pod Running: `host_ip` of its node, `pod_ip` allocated from
/// the node's podCIDR, all containers running and ready.
pub fn running_status(pod: &Pod, host_ip: &str, pod_ip: &str, now: &str) -> Value {
    let status = pod.status.as_ref();
    let existing = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let start = status
        .and_then(|s| s.start_time.as_ref())
        .map(|t| super::fmt_time(t.0))
        .unwrap_or_else(|| now.to_string());
    // Keep a condition's lastTransitionTime when its status does not change.
    let cond = |type_: &str, st: &str, reason: Option<&str>, message: Option<&str>| {
        let since = condition_status(existing, type_)
            .filter(|c| c.status == st)
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| super::fmt_time(t.0))
            .unwrap_or_else(|| now.to_string());
        let mut c = json!({"type": type_, "status": st, "lastProbeTime": null, "lastTransitionTime": since});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        if let Some(m) = message {
            c["message"] = json!(m);
        }
        c
    };
    let gates = gates_ready(pod);
    let mut conditions = vec![
        cond("PodReadyToStartContainers", "True", None, None),
        cond("Initialized", "True", None, None),
    ];
    match &gates {
        Ok(()) => conditions.push(cond("Ready", "True", None, None)),
        Err(m) => conditions.push(cond(
            "Ready",
            "False",
            Some("ReadinessGatesNotReady"),
            Some(m),
        )),
    }
    conditions.push(cond("ContainersReady", "True", None, None));
    conditions.push(cond("PodScheduled", "True", None, None));
    for c in existing {
        if !KUBELET_CONDITIONS.contains(&c.type_.as_str())
            && let Ok(v) = serde_json::to_value(c)
        {
            conditions.push(v);
        }
    }
    let spec = pod.spec.as_ref();
    let previous = |name: &str, init: bool| {
        let list = if init {
            status.and_then(|s| s.init_container_statuses.as_deref())
        } else {
            status.and_then(|s| s.container_statuses.as_deref())
        };
        list.unwrap_or_default()
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.container_id.clone())
    };
    let containers: Vec<Value> = spec
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            json!({
                "name": c.name,
                "image": image,
                "imageID": image_id(&image),
                "containerID": previous(&c.name, false).unwrap_or_else(container_id),
                "ready": true,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
                "lastState": {},
            })
        })
        .collect();
    let init: Vec<Value> = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            let sidecar = c.restart_policy.as_deref() == Some("Always");
            let state = if sidecar {
                json!({"running": {"startedAt": start}})
            } else {
                json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": start, "finishedAt": start,
                    "containerID": previous(&c.name, true)}})
            };
            json!({
                "name": c.name,
                "image": image,
                "imageID": image_id(&image),
                "containerID": previous(&c.name, true).unwrap_or_else(container_id),
                "ready": sidecar,
                "started": sidecar,
                "restartCount": 0,
                "state": state,
                "lastState": {},
            })
        })
        .collect();
    let mut s = json!({
        "phase": "Running",
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": start,
        "conditions": conditions,
        "containerStatuses": containers,
    });
    if !init.is_empty() {
        s["initContainerStatuses"] = json!(init);
    }
    json!({ "status": s })
}

/// Parses `a.b.c.0/24` into its first three octets.
fn cidr_prefix(cidr: &str) -> Option<[u8; 3]> {
    let (addr, len) = cidr.split_once('/')?;
    if len != "24" {
        return None;
    }
    let mut it = addr.split('.').map(|o| o.parse::<u8>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// Per node, the pod IPs in use.
#[derive(Default)]
pub struct IpAllocator {
    used: HashSet<String>,
    next: HashMap<String, u8>,
}

impl IpAllocator {
    /// Marks an address as in use.
    pub fn mark(&mut self, ip: &str) {
        self.used.insert(ip.to_string());
    }

    /// Frees an address.
    pub fn release(&mut self, ip: &str) {
        self.used.remove(ip);
    }

    /// Allocates a free host address in the node's /24 pod CIDR, cycling so that a freed
    /// address is not reused at once.
    pub fn allocate(&mut self, node: &str, cidr: &str) -> Option<String> {
        let prefix = cidr_prefix(cidr)?;
        let start = *self.next.get(node).unwrap_or(&1);
        for step in 0..254u16 {
            let host = ((u16::from(start) - 1 + step) % 254 + 1) as u8;
            let ip = format!("{}.{}.{}.{}", prefix[0], prefix[1], prefix[2], host);
            if !self.used.contains(&ip) {
                self.used.insert(ip.clone());
                self.next.insert(node.to_string(), host % 254 + 1);
                return Some(ip);
            }
        }
        None
    }
}

#[derive(Default)]
struct State {
    first_seen: HashMap<Key, Instant>,
    ips: IpAllocator,
    pod_ips: HashMap<Key, String>,
    parked: HashSet<Key>,
    orphaned_since: HashMap<Key, Instant>,
}

struct Kubelet {
    client: kube::Client,
    pods: Arc<Cache<Pod>>,
    nodes: Arc<Cache<Node>>,
    queue: Arc<WorkQueue>,
    delay: Duration,
    paused: Arc<AtomicBool>,
    state: Mutex<State>,
}

fn is_simulated(node: &Node) -> bool {
    node.labels().get(SIMULATED_LABEL).map(String::as_str) == Some("true")
}

fn internal_ip(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
}

impl Kubelet {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn on_pod(&self, old: Option<&Arc<Pod>>, new: Option<&Arc<Pod>>) {
        let Some(any) = new.or(old) else { return };
        let key = key_of(any.as_ref());
        let phase = new.and_then(|p| p.status.as_ref()?.phase.clone());
        let finished = matches!(phase.as_deref(), Some("Succeeded") | Some("Failed"));
        {
            let mut s = self.lock();
            let ip = new.and_then(|p| p.status.as_ref()?.pod_ip.clone());
            if new.is_none() || finished {
                if let Some(ip) = s.pod_ips.remove(&key) {
                    s.ips.release(&ip);
                }
                s.first_seen.remove(&key);
                s.parked.remove(&key);
                s.orphaned_since.remove(&key);
            } else if let Some(ip) = ip
                && s.pod_ips.get(&key) != Some(&ip)
            {
                if let Some(prev) = s.pod_ips.insert(key.clone(), ip.clone()) {
                    s.ips.release(&prev);
                }
                s.ips.mark(&ip);
            }
        }
        if let Some(p) = new {
            let bound = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty());
            if bound && !finished && (p.metadata.deletion_timestamp.is_some() || !is_settled(p)) {
                self.queue.add(key);
            }
        }
    }

    fn on_node(&self, old: Option<&Arc<Node>>, new: Option<&Arc<Node>>) {
        // A node that appears (or turns simulated) may have pods waiting; a node that goes
        // away leaves orphans for the pod GC.
        let Some(node) = new.or(old) else { return };
        let name = node.name_any();
        for p in self.pods.list() {
            if p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str()) {
                self.queue.add(key_of(p.as_ref()));
            }
        }
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Requeue, SimError> {
        let Some(pod) = self.pods.get(&key) else {
            return Ok(None);
        };
        let Some(node_name) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
        else {
            return Ok(None);
        };
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded") | Some("Failed")) {
            return Ok(None);
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let Some(node) = self.nodes.get(&Key::new("", node_name.clone())) else {
            return self.collect_orphan(&api, &key, &pod).await;
        };
        self.lock().orphaned_since.remove(&key);
        if !is_simulated(&node) {
            return Ok(None);
        }
        if self.paused.load(Ordering::Relaxed) {
            self.lock().parked.insert(key);
            return Ok(None);
        }
        if pod.metadata.deletion_timestamp.is_some() {
            // The containers are "stopped": confirm the deletion.
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: pod.metadata.uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            return match api.delete(&key.name, &dp).await {
                Ok(_) => Ok(None),
                Err(e) if is_not_found(&e) || super::is_conflict(&e) => Ok(None),
                Err(e) => Err(SimError::api("delete", "Pod", &key)(e)),
            };
        }
        if is_settled(&pod) {
            return Ok(None);
        }
        let seen = *self
            .lock()
            .first_seen
            .entry(key.clone())
            .or_insert_with(Instant::now);
        let elapsed = seen.elapsed();
        if elapsed < self.delay {
            return Ok(Some(self.delay - elapsed));
        }
        let host_ip = internal_ip(&node).unwrap_or_else(|| "10.0.0.1".into());
        let pod_ip = match pod.status.as_ref().and_then(|s| s.pod_ip.clone()) {
            Some(ip) => ip,
            None => {
                let cidr = node
                    .spec
                    .as_ref()
                    .and_then(|s| s.pod_cidr.clone())
                    .unwrap_or_else(|| "10.244.250.0/24".into());
                let ip = self.lock().ips.allocate(&node_name, &cidr);
                let Some(ip) = ip else {
                    tracing::warn!(pod = %key, node = %node_name, "no free pod IP on node");
                    return Ok(Some(Duration::from_secs(5)));
                };
                {
                    let mut s = self.lock();
                    if let Some(prev) = s.pod_ips.insert(key.clone(), ip.clone())
                        && prev != ip
                    {
                        s.ips.release(&prev);
                    }
                }
                ip
            }
        };
        let patch = running_status(&pod, &host_ip, &pod_ip, &now_time());
        match api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(None),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(SimError::api("patch status", "Pod", &key)(e)),
        }
    }

    /// Pod GC of a pod bound to a node that does not exist.
    async fn collect_orphan(
        &self,
        api: &Api<Pod>,
        key: &Key,
        pod: &Pod,
    ) -> Result<Requeue, SimError> {
        if !self.nodes.is_synced() {
            return Ok(Some(Duration::from_secs(1)));
        }
        let since = *self
            .lock()
            .orphaned_since
            .entry(key.clone())
            .or_insert_with(Instant::now);
        let elapsed = since.elapsed();
        if elapsed < ORPHAN_QUARANTINE {
            return Ok(Some(ORPHAN_QUARANTINE - elapsed));
        }
        let mut conditions: Vec<Value> = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.type_ != "DisruptionTarget")
            .filter_map(|c| serde_json::to_value(c).ok())
            .collect();
        conditions.push(json!({
            "type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
            "message": "PodGC: node no longer exists", "lastTransitionTime": now_time(),
        }));
        let patch = json!({"status": {"phase": "Failed", "conditions": conditions}});
        match api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(SimError::api("patch status", "Pod", key)(e)),
        }
        match api
            .delete(&key.name, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => Ok(None),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(SimError::api("delete", "Pod", key)(e)),
        }
    }
}

/// Starts the kubelet. Returns its queue (shut down by the caller on exit).
pub(crate) fn start(
    set: &mut JoinSet<()>,
    client: kube::Client,
    caches: &Caches,
    cfg: &SimConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Arc<WorkQueue> {
    let queue = WorkQueue::new();
    let kubelet = Arc::new(Kubelet {
        client,
        pods: Arc::clone(&caches.pods),
        nodes: Arc::clone(&caches.nodes),
        queue: Arc::clone(&queue),
        delay: cfg.pod_ready_delay,
        paused: Arc::clone(&cfg.kubelet_paused),
        state: Mutex::new(State::default()),
    });
    let k = Arc::clone(&kubelet);
    caches
        .pods
        .on_change(Box::new(move |old, new| k.on_pod(old, new)));
    let k = Arc::clone(&kubelet);
    caches
        .nodes
        .on_change(Box::new(move |old, new| k.on_node(old, new)));

    // Resume parked pods once the kubelet is unpaused.
    let k = Arc::clone(&kubelet);
    let mut sd = shutdown.clone();
    set.spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = sd.wait_for(|s| *s) => return,
            }
            if k.paused.load(Ordering::Relaxed) {
                continue;
            }
            let parked: Vec<Key> = k.lock().parked.drain().collect();
            for key in parked {
                k.queue.add(key);
            }
        }
    });

    let pods = Arc::clone(&caches.pods);
    let nodes = Arc::clone(&caches.nodes);
    let q = Arc::clone(&queue);
    set.spawn(async move {
        if pods.wait_synced(&mut shutdown).await && nodes.wait_synced(&mut shutdown).await {
            run_workers("kubelet", q, WORKERS, move |key| {
                Arc::clone(&kubelet).reconcile(key)
            })
            .await;
        }
    });
    queue
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn running_status_reports_ready_containers_and_conditions() {
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"nodeName": "sim-node-1", "containers": [{"name": "web", "image": "nginx:1.27"}],
                     "initContainers": [{"name": "init", "image": "busybox"}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}
        }));
        let now = "2025-01-01T00:00:05Z";
        let mut full = serde_json::to_value(&p).unwrap();
        full["status"] = running_status(&p, "10.0.0.1", "10.244.0.5", now)["status"].clone();
        let running: Pod = serde_json::from_value(full).unwrap();
        let s = running.status.as_ref().unwrap();
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.0.5"));
        assert_eq!(s.host_ip.as_deref(), Some("10.0.0.1"));
        assert!(s.start_time.is_some());
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready);
        assert_eq!(cs.started, Some(true));
        assert_eq!(cs.image, "nginx:1.27");
        assert!(cs.image_id.starts_with("docker.io/library/nginx@sha256:"));
        assert!(
            cs.container_id
                .as_ref()
                .unwrap()
                .starts_with("containerd://")
        );
        assert!(cs.state.as_ref().unwrap().running.is_some());
        let init = &s.init_container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            init.state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("Completed")
        );
        let conds = s.conditions.as_ref().unwrap();
        for t in KUBELET_CONDITIONS {
            let c = conds.iter().find(|c| c.type_ == t).unwrap();
            assert_eq!(c.status, "True", "{t}");
        }
        // PodScheduled did not change status: its transition time is kept.
        let sched = conds.iter().find(|c| c.type_ == "PodScheduled").unwrap();
        assert_eq!(
            sched.last_transition_time.as_ref().unwrap().0.to_string(),
            "2025-01-01T00:00:00Z"
        );
        assert!(is_settled(&running));
    }

    #[test]
    fn readiness_gates_hold_ready_back() {
        // Pod readiness gates: Ready only when every gate's condition is True.
        let p = pod(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "x"}], "readinessGates": [{"conditionType": "example.com/lb"}]},
            "status": {}
        }));
        let patch = running_status(&p, "10.0.0.1", "10.244.0.2", "2025-01-01T00:00:00Z");
        let ready = patch["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "ReadinessGatesNotReady");
        let mut full = serde_json::to_value(&p).unwrap();
        full["status"] = patch["status"].clone();
        let mut running: Pod = serde_json::from_value(full).unwrap();
        assert!(is_settled(&running));
        // The gate's condition turns True: the kubelet must update Ready.
        running
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
            .push(PodCondition {
                type_: "example.com/lb".into(),
                status: "True".into(),
                ..Default::default()
            });
        assert!(!is_settled(&running));
        let patch = running_status(&running, "10.0.0.1", "10.244.0.2", "2025-01-01T00:00:01Z");
        let conds = patch["status"]["conditions"].as_array().unwrap();
        assert!(
            conds
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        );
        assert!(conds.iter().any(|c| c["type"] == "example.com/lb"));
    }

    #[test]
    fn pod_ips_are_unique_per_node_cidr() {
        let mut a = IpAllocator::default();
        let ips: HashSet<String> = (0..254)
            .map(|_| a.allocate("n1", "10.244.3.0/24").unwrap())
            .collect();
        assert_eq!(ips.len(), 254);
        assert!(ips.contains("10.244.3.1") && ips.contains("10.244.3.254"));
        assert!(a.allocate("n1", "10.244.3.0/24").is_none());
        a.release("10.244.3.7");
        assert_eq!(
            a.allocate("n1", "10.244.3.0/24").as_deref(),
            Some("10.244.3.7")
        );
        assert!(a.allocate("n2", "bogus").is_none());
    }

    #[test]
    fn image_ids_look_like_containerd_ones() {
        assert!(image_id("nginx").starts_with("docker.io/library/nginx@sha256:"));
        assert!(image_id("bitnami/redis:7").starts_with("docker.io/bitnami/redis@sha256:"));
        assert!(image_id("ghcr.io/a/b:1").starts_with("ghcr.io/a/b@sha256:"));
        assert!(image_id("localhost:5000/x").starts_with("localhost:5000/x@sha256:"));
        assert_eq!(image_digest("a").len(), 7 + 64);
        assert_eq!(image_digest("a"), image_digest("a"));
    }
}

//! The scheduler: binds pending pods to nodes, in the manner of kube-scheduler with its default
//! plugins reduced to their essentials.
//!
//! Filters, in kube-scheduler's order: NodeUnschedulable (`spec.unschedulable` unless tolerated),
//! TaintToleration (`NoSchedule`/`NoExecute` taints must be tolerated), NodeAffinity
//! (`nodeSelector` and required node affinity), NodeResourcesFit (requests of cpu, memory,
//! ephemeral storage and extended resources such as `nvidia.com/gpu` against allocatable minus
//! what the node's pods request; the `pods` count). Score: NodeResourcesFit LeastAllocated over
//! cpu and memory (with the scheduler's non-zero defaults of 100m / 200Mi for containers without
//! requests), so pods spread over nodes. Binding goes through the `pods/binding` subresource,
//! as the real scheduler does (a pod's `spec.nodeName` cannot be patched on a real server).
//! A pod that fits nowhere gets `PodScheduled=False` with reason `Unschedulable` and a Warning
//! `FailedScheduling` Event with kube-scheduler's message, and is retried when nodes change or a
//! bound pod goes away (and every minute) — not in a hot loop.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, Pod, Taint, Toleration};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::events::{self, Recorder};
use super::informer::{Cache, key_of};
use super::queue::{Key, Requeue, WorkQueue, run_workers};
use super::resources::{Resources, pod_requests};
use super::{Caches, SimError, is_conflict, is_not_found, now_time};

/// The scheduler's name; pods naming another `schedulerName` are left alone.
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// Retry interval for unschedulable pods when nothing in the cluster changes.
pub const UNSCHEDULABLE_RETRY: Duration = Duration::from_secs(60);
/// Most bindings in flight at once.
const BINDS_IN_FLIGHT: usize = 16;
/// Default CPU request the scoring assumes for a container without one (`DefaultMilliCPURequest`).
const NON_ZERO_CPU: i128 = 100;
/// Default memory request the scoring assumes for a container without one (200 MiB).
const NON_ZERO_MEMORY: i128 = 200 * 1024 * 1024 * 1000;

/// What the scheduler knows about one node.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Node labels.
    pub labels: BTreeMap<String, String>,
    /// Node taints.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// `status.allocatable`.
    pub allocatable: Resources,
    /// Sum of the requests of the pods on the node.
    pub requested: Resources,
    /// Sum of the non-zero (defaulted) cpu and memory requests, for scoring.
    pub non_zero: (i128, i128),
    /// Number of pods on the node.
    pub pods: i128,
}

/// A pod's demand, as the scheduler computes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demand {
    /// Effective requests.
    pub requests: Resources,
    /// Non-zero cpu and memory requests (for scoring).
    pub non_zero: (i128, i128),
}

impl Demand {
    /// The demand of `pod`; quantities that do not parse count as zero (the API server would
    /// have rejected them).
    pub fn of(pod: &Pod) -> Demand {
        let requests = pod_requests(pod).unwrap_or_default();
        let mut cpu = 0;
        let mut mem = 0;
        for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
            let reqs = c.resources.as_ref().and_then(|r| r.requests.as_ref());
            let lims = c.resources.as_ref().and_then(|r| r.limits.as_ref());
            let get = |name: &str, default: i128| {
                reqs.and_then(|r| r.get(name))
                    .or_else(|| lims.and_then(|l| l.get(name)))
                    .and_then(|q| super::resources::parse_milli(&q.0).ok())
                    .unwrap_or(default)
            };
            cpu += get("cpu", NON_ZERO_CPU);
            mem += get("memory", NON_ZERO_MEMORY);
        }
        Demand {
            requests,
            non_zero: (cpu, mem),
        }
    }
}

/// Whether `toleration` tolerates `taint` (`v1.Toleration.ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    if let Some(key) = toleration.key.as_deref().filter(|k| !k.is_empty())
        && key != taint.key
    {
        return false;
    }
    match toleration.operator.as_deref() {
        Some("Exists") => true,
        None | Some("") | Some("Equal") => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        Some(_) => false,
    }
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether the pod's `nodeSelector` and required node affinity admit the node.
pub fn matches_node_affinity(pod: &Pod, node: &NodeInfo) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    for (k, v) in spec.node_selector.iter().flatten() {
        if node.labels.get(k) != Some(v) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let Some(required) = required else {
        return true;
    };
    // Terms are ORed; the requirements of a term are ANDed; an empty term matches nothing.
    required.node_selector_terms.iter().any(|term| {
        let exprs = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        if exprs.is_empty() && fields.is_empty() {
            return false;
        }
        exprs
            .iter()
            .all(|r| requirement_matches(r, node.labels.get(&r.key).map(String::as_str)))
            && fields.iter().all(|r| {
                r.key == "metadata.name" && requirement_matches(r, Some(node.name.as_str()))
            })
    })
}

/// Runs the filters on one node; `Err` carries kube-scheduler's reasons.
pub fn filter(pod: &Pod, demand: &Demand, node: &NodeInfo) -> Result<(), Vec<String>> {
    let tolerations: &[Toleration] = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    // NodeUnschedulable
    if node.unschedulable {
        let t = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if !tolerations.iter().any(|tol| tolerates(tol, &t)) {
            return Err(vec!["node(s) were unschedulable".into()]);
        }
    }
    // TaintToleration
    for taint in &node.taints {
        if taint.effect != "NoSchedule" && taint.effect != "NoExecute" {
            continue;
        }
        if !tolerations.iter().any(|tol| tolerates(tol, taint)) {
            return Err(vec![format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or("")
            )]);
        }
    }
    // NodeAffinity
    if !matches_node_affinity(pod, node) {
        return Err(vec![
            "node(s) didn't match Pod's node affinity/selector".into(),
        ]);
    }
    // NodeResourcesFit
    let mut reasons = Vec::new();
    let max_pods = node.allocatable.get("pods");
    if node.pods / 1000 + 1 > max_pods / 1000 {
        reasons.push("Too many pods".to_string());
    }
    for (name, want) in &demand.requests.0 {
        if *want <= 0 || name == "pods" {
            continue;
        }
        let free = node.allocatable.get(name) - node.requested.get(name);
        if *want > free {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

/// LeastAllocated score (0..=100) of the node with the pod on it.
pub fn score(demand: &Demand, node: &NodeInfo) -> i128 {
    let part = |alloc: i128, used: i128| {
        if alloc <= 0 {
            0
        } else {
            ((alloc - used).max(0) * 100) / alloc
        }
    };
    let cpu = part(
        node.allocatable.get("cpu"),
        node.non_zero.0 + demand.non_zero.0,
    );
    let mem = part(
        node.allocatable.get("memory"),
        node.non_zero.1 + demand.non_zero.1,
    );
    (cpu + mem) / 2
}

/// Picks a node for the pod: the feasible node with the best score (ties: fewer pods, then
/// name). `Err` is kube-scheduler's FitError message.
pub fn schedule(pod: &Pod, demand: &Demand, nodes: &[NodeInfo]) -> Result<String, String> {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(&NodeInfo, i128)> = None;
    for node in nodes {
        match filter(pod, demand, node) {
            Ok(()) => {
                let s = score(demand, node);
                let better = match best {
                    None => true,
                    Some((b, bs)) => {
                        s > bs || (s == bs && (node.pods, &node.name) < (b.pods, &b.name))
                    }
                };
                if better {
                    best = Some((node, s));
                }
            }
            Err(rs) => {
                for r in rs {
                    *reasons.entry(r).or_insert(0) += 1;
                }
            }
        }
    }
    if let Some((n, _)) = best {
        return Ok(n.name.clone());
    }
    Err(fit_error_message(nodes.len(), &reasons))
}

/// kube-scheduler's `FitError.Error()`: reasons as "<count> <reason>", sorted, then the
/// preemption post-filter's verdict (no pod priorities here, so preemption never helps).
pub fn fit_error_message(num_nodes: usize, reasons: &BTreeMap<String, usize>) -> String {
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    if num_nodes == 0 {
        return "no nodes available to schedule pods".into();
    }
    format!(
        "0/{num_nodes} nodes are available: {}. preemption: 0/{num_nodes} nodes are available: {num_nodes} No preemption victims found for incoming pod.",
        parts.join(", ")
    )
}

/// The taint the node lifecycle controller puts on nodes whose Ready condition is not True.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

/// Builds a [`NodeInfo`] (without usage) from a Node. A node that is not Ready carries the
/// `node.kubernetes.io/not-ready:NoSchedule` taint, as kube-controller-manager's node lifecycle
/// controller would have added it.
pub fn node_info(node: &Node) -> NodeInfo {
    let spec = node.spec.as_ref();
    let mut taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    if !ready && !taints.iter().any(|t| t.key == NOT_READY_TAINT) {
        taints.push(Taint {
            key: NOT_READY_TAINT.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        });
    }
    NodeInfo {
        name: node.name_any(),
        labels: node.labels().clone(),
        taints,
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        allocatable: Resources::from_list(
            node.status.as_ref().and_then(|s| s.allocatable.as_ref()),
        )
        .unwrap_or_default(),
        ..Default::default()
    }
}

/// Whether the scheduler should place this pod: not bound, not being deleted, not finished,
/// and for this scheduler.
pub fn needs_scheduling(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    spec.node_name.as_deref().unwrap_or("").is_empty()
        && pod.metadata.deletion_timestamp.is_none()
        && !matches!(phase, Some("Succeeded") | Some("Failed"))
        && spec
            .scheduler_name
            .as_deref()
            .is_none_or(|n| n.is_empty() || n == SCHEDULER_NAME)
}

/// What a pod occupies on its node: (node, demand), when bound and not finished.
fn occupancy(pod: &Pod) -> Option<(String, Demand)> {
    let node = pod
        .spec
        .as_ref()?
        .node_name
        .clone()
        .filter(|n| !n.is_empty())?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded") | Some("Failed")) {
        return None;
    }
    Some((node, Demand::of(pod)))
}

#[derive(Default)]
struct Usage {
    requested: Resources,
    non_zero: (i128, i128),
    pods: i128,
}

impl Usage {
    fn add(&mut self, d: &Demand) {
        self.requested.add(&d.requests);
        self.non_zero.0 += d.non_zero.0;
        self.non_zero.1 += d.non_zero.1;
        self.pods += 1000;
    }
    fn sub(&mut self, d: &Demand) {
        self.requested.sub(&d.requests);
        self.non_zero.0 -= d.non_zero.0;
        self.non_zero.1 -= d.non_zero.1;
        self.pods -= 1000;
    }
}

#[derive(Default)]
struct State {
    /// Per node, what the bound pods seen in the cache occupy.
    usage: HashMap<String, Usage>,
    /// Per pod, what it was counted for in `usage`.
    counted: HashMap<Key, (String, Demand)>,
    /// Pods bound by us whose binding the cache has not shown yet (the scheduler cache's
    /// "assumed" pods).
    assumed: HashMap<Key, (String, Demand)>,
    /// Unschedulable pods and the last message reported for each.
    unschedulable: HashMap<Key, String>,
}

struct Scheduler {
    client: kube::Client,
    pods: Arc<Cache<Pod>>,
    nodes: Arc<Cache<Node>>,
    recorder: Recorder,
    queue: Arc<WorkQueue>,
    state: Mutex<State>,
    /// Bounds the bindings in flight.
    binds: Arc<tokio::sync::Semaphore>,
}

impl Scheduler {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn on_pod(&self, old: Option<&Arc<Pod>>, new: Option<&Arc<Pod>>) {
        let Some(any) = new.or(old) else { return };
        let key = key_of(any.as_ref());
        let occ = new.and_then(|p| occupancy(p));
        let mut requeue_unschedulable = false;
        {
            let mut s = self.lock();
            if let Some((node, d)) = s.counted.remove(&key) {
                if let Some(u) = s.usage.get_mut(&node) {
                    u.sub(&d);
                }
                if occ.is_none() {
                    requeue_unschedulable = true; // resources freed
                }
            }
            if let Some((node, d)) = occ {
                s.usage.entry(node.clone()).or_default().add(&d);
                s.counted.insert(key.clone(), (node, d));
                s.assumed.remove(&key);
            }
            if new.is_none() {
                s.assumed.remove(&key);
                s.unschedulable.remove(&key);
            }
        }
        if let Some(p) = new
            && needs_scheduling(p)
        {
            self.queue.add(key);
        }
        if requeue_unschedulable {
            self.requeue_unschedulable();
        }
    }

    fn requeue_unschedulable(&self) {
        let keys: Vec<Key> = self.lock().unschedulable.keys().cloned().collect();
        for k in keys {
            self.queue.add(k);
        }
    }

    fn snapshot(&self) -> Vec<NodeInfo> {
        let nodes = self.nodes.list();
        let s = self.lock();
        let mut out: Vec<NodeInfo> = nodes
            .iter()
            .filter(|n| n.metadata.deletion_timestamp.is_none())
            .map(|n| {
                let mut info = node_info(n);
                if let Some(u) = s.usage.get(&info.name) {
                    info.requested = u.requested.clone();
                    info.non_zero = u.non_zero;
                    info.pods = u.pods;
                }
                info
            })
            .collect();
        for (node, d) in s.assumed.values() {
            if let Some(info) = out.iter_mut().find(|i| &i.name == node) {
                info.requested.add(&d.requests);
                info.non_zero.0 += d.non_zero.0;
                info.non_zero.1 += d.non_zero.1;
                info.pods += 1000;
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Requeue, SimError> {
        let Some(pod) = self.pods.get(&key) else {
            return Ok(None);
        };
        if !needs_scheduling(&pod) || self.lock().assumed.contains_key(&key) {
            return Ok(None);
        }
        let demand = Demand::of(&pod);
        let nodes = self.snapshot();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        match schedule(&pod, &demand, &nodes) {
            Ok(node) => {
                self.lock()
                    .assumed
                    .insert(key.clone(), (node.clone(), demand));
                let binding = json!({
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": key.name, "namespace": key.namespace, "uid": pod.metadata.uid},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node},
                });
                // The binding cycle runs asynchronously, as in kube-scheduler: the next pod is
                // placed (against the assumed pods) while this binding is in flight.
                let permit = Arc::clone(&self.binds)
                    .acquire_owned()
                    .await
                    .map_err(|_| SimError::Config("scheduler stopped".into()))?;
                let this = Arc::clone(&self);
                tokio::spawn(async move {
                    let r: Result<serde_json::Value, kube::Error> = api
                        .create_subresource("binding", &key.name, &PostParams::default(), &binding)
                        .await;
                    drop(permit);
                    match r {
                        Ok(_) => {
                            this.lock().unschedulable.remove(&key);
                            this.recorder.record(
                                events::object_ref(pod.as_ref()),
                                events::NORMAL,
                                "Scheduled",
                                &format!("Successfully assigned {key} to {node}"),
                                SCHEDULER_NAME,
                            );
                        }
                        Err(e) => {
                            this.lock().assumed.remove(&key);
                            // Deleted, or bound meanwhile: the watch will tell. Otherwise retry.
                            if !(is_not_found(&e) || is_conflict(&e)) {
                                tracing::debug!(pod = %key, error = %e, "binding failed, retrying");
                                this.queue.add_rate_limited(key);
                            }
                        }
                    }
                });
                Ok(None)
            }
            Err(message) => {
                let previous = self
                    .lock()
                    .unschedulable
                    .insert(key.clone(), message.clone());
                let condition_is_current = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
                    .is_some_and(|c| {
                        c.status == "False"
                            && c.reason.as_deref() == Some("Unschedulable")
                            && c.message.as_deref() == Some(message.as_str())
                    });
                if !condition_is_current {
                    let mut conditions: Vec<serde_json::Value> = pod
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .into_iter()
                        .flatten()
                        .filter(|c| c.type_ != "PodScheduled")
                        .filter_map(|c| serde_json::to_value(c).ok())
                        .collect();
                    conditions.push(json!({
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": message,
                        "lastProbeTime": null,
                        "lastTransitionTime": now_time(),
                    }));
                    let patch = json!({"status": {"phase": "Pending", "conditions": conditions}});
                    match api
                        .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if is_not_found(&e) => return Ok(None),
                        Err(e) => return Err(SimError::api("patch status", "Pod", &key)(e)),
                    }
                }
                if previous.as_deref() != Some(message.as_str()) {
                    self.recorder.record(
                        events::object_ref(pod.as_ref()),
                        events::WARNING,
                        "FailedScheduling",
                        &message,
                        SCHEDULER_NAME,
                    );
                }
                Ok(Some(UNSCHEDULABLE_RETRY))
            }
        }
    }
}

/// Starts the scheduler (one worker, so that its accounting of assumed pods stays exact).
/// Returns its queue (shut down by the caller on exit).
pub(crate) fn start(
    set: &mut JoinSet<()>,
    client: kube::Client,
    caches: &Caches,
    recorder: Recorder,
    mut shutdown: watch::Receiver<bool>,
) -> Arc<WorkQueue> {
    let queue = WorkQueue::new();
    let sched = Arc::new(Scheduler {
        client,
        pods: Arc::clone(&caches.pods),
        nodes: Arc::clone(&caches.nodes),
        recorder,
        queue: Arc::clone(&queue),
        state: Mutex::new(State::default()),
        binds: Arc::new(tokio::sync::Semaphore::new(BINDS_IN_FLIGHT)),
    });
    let s = Arc::clone(&sched);
    caches
        .pods
        .on_change(Box::new(move |old, new| s.on_pod(old, new)));
    let s = Arc::clone(&sched);
    caches.nodes.on_change(Box::new(move |_, new| {
        if new.is_some() {
            s.requeue_unschedulable();
        }
    }));
    let pods = Arc::clone(&caches.pods);
    let nodes = Arc::clone(&caches.nodes);
    let q = Arc::clone(&queue);
    set.spawn(async move {
        // Keys queued before the caches are loaded wait in the queue; the worker holds off
        // until both caches are synced so that no pod is placed on a partial view.
        if pods.wait_synced(&mut shutdown).await && nodes.wait_synced(&mut shutdown).await {
            run_workers("scheduler", q, 1, move |key| {
                Arc::clone(&sched).reconcile(key)
            })
            .await;
        }
    });
    queue
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}))
            .unwrap()
    }

    fn node(name: &str, cpu: &str, mem: &str) -> NodeInfo {
        let mut alloc = BTreeMap::new();
        alloc.insert(
            "cpu".into(),
            super::super::resources::parse_milli(cpu).unwrap(),
        );
        alloc.insert(
            "memory".into(),
            super::super::resources::parse_milli(mem).unwrap(),
        );
        alloc.insert("pods".into(), 110_000);
        let mut labels = BTreeMap::new();
        labels.insert("kubernetes.io/hostname".to_string(), name.to_string());
        NodeInfo {
            name: name.into(),
            labels,
            allocatable: Resources(alloc),
            ..Default::default()
        }
    }

    fn containers(req: serde_json::Value) -> serde_json::Value {
        json!({"containers": [{"name": "c", "image": "nginx", "resources": {"requests": req}}]})
    }

    #[test]
    fn spreads_pods_to_the_least_allocated_node() {
        // NodeResourcesFit LeastAllocated: the node with most free cpu/memory wins.
        let p = pod(containers(json!({"cpu": "1", "memory": "1Gi"})));
        let d = Demand::of(&p);
        let mut a = node("a", "8", "32Gi");
        a.requested.add(&d.requests);
        a.non_zero = d.non_zero;
        a.pods = 1000;
        let b = node("b", "8", "32Gi");
        assert_eq!(schedule(&p, &d, &[a, b]), Ok("b".to_string()));
    }

    #[test]
    fn pods_larger_than_any_node_get_the_fit_error_message() {
        // kube-scheduler: "0/3 nodes are available: 3 Insufficient memory. preemption: ..."
        let p = pod(containers(json!({"memory": "64Gi"})));
        let d = Demand::of(&p);
        let nodes = vec![
            node("a", "8", "32Gi"),
            node("b", "8", "32Gi"),
            node("c", "8", "32Gi"),
        ];
        let msg = schedule(&p, &d, &nodes).unwrap_err();
        assert!(
            msg.starts_with("0/3 nodes are available: 3 Insufficient memory."),
            "{msg}"
        );
    }

    #[test]
    fn extended_resources_must_be_allocatable() {
        let p = pod(containers(json!({"nvidia.com/gpu": "1"})));
        let d = Demand::of(&p);
        let plain = node("a", "8", "32Gi");
        let mut gpu = node("g", "8", "32Gi");
        gpu.allocatable.0.insert("nvidia.com/gpu".into(), 1000);
        assert_eq!(
            schedule(&p, &d, &[plain.clone(), gpu.clone()]),
            Ok("g".into())
        );
        gpu.requested.0.insert("nvidia.com/gpu".into(), 1000);
        let msg = schedule(&p, &d, &[plain, gpu]).unwrap_err();
        assert!(msg.contains("2 Insufficient nvidia.com/gpu"), "{msg}");
    }

    #[test]
    fn node_selector_and_taints_filter_nodes() {
        let mut tainted = node("t", "8", "32Gi");
        tainted.taints.push(Taint {
            key: "gpu".into(),
            value: Some("true".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        });
        let plain = node("a", "8", "32Gi");
        // A nodeSelector naming the tainted node, without toleration: no node fits.
        let p = pod(
            json!({"containers": [{"name": "c"}], "nodeSelector": {"kubernetes.io/hostname": "t"}}),
        );
        let msg = schedule(&p, &Demand::of(&p), &[tainted.clone(), plain.clone()]).unwrap_err();
        assert!(
            msg.contains("1 node(s) didn't match Pod's node affinity/selector"),
            "{msg}"
        );
        assert!(
            msg.contains("1 node(s) had untolerated taint {gpu: true}"),
            "{msg}"
        );
        // With the toleration it goes there.
        let p = pod(json!({
            "containers": [{"name": "c"}],
            "nodeSelector": {"kubernetes.io/hostname": "t"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
        }));
        assert_eq!(
            schedule(&p, &Demand::of(&p), &[tainted, plain]),
            Ok("t".into())
        );
    }

    #[test]
    fn toleration_matching_follows_tolerates_taint() {
        let taint = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoExecute".into(),
            ..Default::default()
        };
        let t = |v: serde_json::Value| -> Toleration { serde_json::from_value(v).unwrap() };
        assert!(tolerates(&t(json!({"key": "k", "value": "v"})), &taint));
        assert!(tolerates(
            &t(json!({"key": "k", "operator": "Exists"})),
            &taint
        ));
        assert!(tolerates(&t(json!({"operator": "Exists"})), &taint));
        assert!(!tolerates(&t(json!({"key": "k", "value": "w"})), &taint));
        assert!(!tolerates(
            &t(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})),
            &taint
        ));
    }

    #[test]
    fn required_node_affinity_terms() {
        let n = node("a", "8", "32Gi");
        let p = pod(
            json!({"containers": [{"name": "c"}], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["x"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}
            ]}}}}),
        );
        assert!(matches_node_affinity(&p, &n));
        let p = pod(
            json!({"containers": [{"name": "c"}], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}
            ]}}}}),
        );
        assert!(!matches_node_affinity(&p, &n));
    }

    #[test]
    fn too_many_pods_and_cordoned_nodes() {
        let p = pod(json!({"containers": [{"name": "c"}]}));
        let mut full = node("a", "8", "32Gi");
        full.pods = 110_000;
        let mut cordoned = node("b", "8", "32Gi");
        cordoned.unschedulable = true;
        let msg = schedule(&p, &Demand::of(&p), &[full, cordoned]).unwrap_err();
        assert!(msg.contains("1 Too many pods"), "{msg}");
        assert!(msg.contains("1 node(s) were unschedulable"), "{msg}");
    }

    #[test]
    fn nodes_that_are_not_ready_are_tainted() {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "110"}}
        }))
        .unwrap();
        let info = node_info(&n);
        assert!(info.taints.iter().any(|t| t.key == NOT_READY_TAINT));
        let p = pod(json!({"containers": [{"name": "c"}]}));
        let msg = schedule(&p, &Demand::of(&p), &[info]).unwrap_err();
        assert!(
            msg.contains("1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }"),
            "{msg}"
        );
    }

    #[test]
    fn only_unbound_live_pods_for_this_scheduler_are_scheduled() {
        assert!(needs_scheduling(&pod(json!({"containers": []}))));
        assert!(!needs_scheduling(&pod(
            json!({"containers": [], "nodeName": "a"})
        )));
        assert!(!needs_scheduling(&pod(
            json!({"containers": [], "schedulerName": "other"})
        )));
    }
}

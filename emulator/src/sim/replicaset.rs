//! The ReplicaSet controller, after kube-controller-manager's
//! (<https://kubernetes.io/docs/concepts/workloads/controllers/replicaset/>): creates and
//! deletes Pods so that the number of active pods (not terminating, not finished) owned by a
//! ReplicaSet matches `spec.replicas`; pods carry the template's labels and a controller owner
//! reference (`blockOwnerDeletion: true`); surplus pods are deleted in kube's ranking order
//! (unscheduled, then pending, then not ready, then newest first); status reports replicas,
//! fullyLabeledReplicas, readyReplicas, availableReplicas (ready for `minReadySeconds`) and
//! observedGeneration. Creations and deletions are tracked with "expectations", so that a sync
//! running before the watch shows its own writes does not create or delete twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::events::{self, Recorder};
use super::informer::{Cache, controller_uid, key_of};
use super::queue::{Key, Requeue, WorkQueue, run_workers};
use super::{Caches, SimError, is_conflict, is_not_found};

/// Component name used in Events.
pub const COMPONENT: &str = "replicaset-controller";
/// Most pods created or deleted in one sync (kube's `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;
/// Expectations older than this are considered lost (kube's `ExpectationsTimeout`).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);
/// Concurrent syncs (kube's `--concurrent-replicaset-syncs` default).
const WORKERS: usize = 5;
/// Characters of generated name suffixes (k8s.io/apimachinery `rand.String`).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A random suffix as the API server's `generateName` produces (5 characters).
pub fn random_suffix(n: usize) -> String {
    (0..n)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

/// Whether a pod counts towards a ReplicaSet's replicas (kube's `IsPodActive`).
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(phase, Some("Succeeded") | Some("Failed"))
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// When the pod's Ready condition last turned True, if it is True.
pub fn ready_since(pod: &Pod) -> Option<Option<k8s_openapi::jiff::Timestamp>> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

/// Whether a ready pod has been ready for `min_ready_seconds` at `now` (kube's
/// `IsPodAvailable`); if not yet, how long until it is.
pub fn availability(
    pod: &Pod,
    min_ready_seconds: i32,
    now: k8s_openapi::jiff::Timestamp,
) -> Result<(), Option<Duration>> {
    let Some(since) = ready_since(pod) else {
        return Err(None);
    };
    if min_ready_seconds <= 0 {
        return Ok(());
    }
    let Some(since) = since else { return Ok(()) };
    let need = Duration::from_secs(u64::try_from(min_ready_seconds).unwrap_or(0));
    let ready_for = Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO);
    if ready_for >= need {
        Ok(())
    } else {
        Err(Some(need - ready_for))
    }
}

/// Orders pods for deletion, most deletable first (kube's `ActivePodsWithRanks` ordering,
/// without the co-location rank): unassigned before assigned, Pending before Unknown before
/// Running, not ready before ready, more restarts first, newer before older.
pub fn deletion_order(pods: &mut [Arc<Pod>]) {
    fn phase_rank(p: &Pod) -> u8 {
        match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
            Some("Pending") | None => 0,
            Some("Unknown") => 1,
            Some("Running") => 2,
            _ => 3,
        }
    }
    fn restarts(p: &Pod) -> i32 {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
            .unwrap_or(0)
    }
    pods.sort_by(|a, b| {
        let assigned = |p: &Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty())
        };
        assigned(a)
            .cmp(&assigned(b))
            .then(phase_rank(a).cmp(&phase_rank(b)))
            .then(is_ready(a).cmp(&is_ready(b)))
            .then(restarts(b).cmp(&restarts(a)))
            .then(
                b.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0)
                    .cmp(&a.metadata.creation_timestamp.as_ref().map(|t| t.0)),
            )
    });
}

/// The status a ReplicaSet should report for its active pods.
pub fn compute_status(
    rs: &ReplicaSet,
    active: &[Arc<Pod>],
    now: k8s_openapi::jiff::Timestamp,
) -> (serde_json::Value, Option<Duration>) {
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = rs
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let mut fully_labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    let mut recheck: Option<Duration> = None;
    for p in active {
        let labels = p.labels();
        if template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            fully_labeled += 1;
        }
        if is_ready(p) {
            ready += 1;
            match availability(p, min_ready, now) {
                Ok(()) => available += 1,
                Err(Some(d)) => recheck = Some(recheck.map_or(d, |r| r.min(d))),
                Err(None) => {}
            }
        }
    }
    let mut status = json!({
        "replicas": active.len(),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
    });
    if let Some(g) = rs.metadata.generation {
        status["observedGeneration"] = json!(g);
    }
    // Keep conditions another writer set (ReplicaFailure is not produced here).
    if let Some(c) = rs.status.as_ref().and_then(|s| s.conditions.as_ref()) {
        status["conditions"] = json!(c);
    }
    (status, recheck)
}

/// Whether the live status already equals `want`.
fn status_matches(rs: &ReplicaSet, want: &serde_json::Value) -> bool {
    let Some(s) = rs.status.as_ref() else {
        return false;
    };
    let n = |k: &str| want[k].as_i64().unwrap_or(0);
    i64::from(s.replicas) == n("replicas")
        && i64::from(s.fully_labeled_replicas.unwrap_or(0)) == n("fullyLabeledReplicas")
        && i64::from(s.ready_replicas.unwrap_or(0)) == n("readyReplicas")
        && i64::from(s.available_replicas.unwrap_or(0)) == n("availableReplicas")
        && s.observed_generation == want["observedGeneration"].as_i64()
}

/// The pod a ReplicaSet creates from its template.
pub fn pod_from_template(rs: &ReplicaSet, name: String) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tm = template.metadata.unwrap_or_default();
    let owner = OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: rs.name_any(),
        uid: rs.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: rs.metadata.namespace.clone(),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

#[derive(Default)]
struct Expectation {
    adds: i64,
    dels: HashSet<Key>,
    set_at: Option<Instant>,
}

impl Expectation {
    fn satisfied(&self) -> bool {
        (self.adds <= 0 && self.dels.is_empty())
            || self
                .set_at
                .is_some_and(|t| t.elapsed() > EXPECTATIONS_TIMEOUT)
    }
}

struct Controller {
    client: kube::Client,
    pods: Arc<Cache<Pod>>,
    replicasets: Arc<Cache<ReplicaSet>>,
    recorder: Recorder,
    queue: Arc<WorkQueue>,
    expectations: Mutex<HashMap<Key, Expectation>>,
}

fn owner_rs_key(pod: &Pod) -> Option<Key> {
    let o = pod
        .metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "ReplicaSet")?;
    Some(Key::new(
        pod.metadata.namespace.clone().unwrap_or_default(),
        o.name.clone(),
    ))
}

impl Controller {
    fn exp(&self) -> MutexGuard<'_, HashMap<Key, Expectation>> {
        self.expectations.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn on_pod(&self, old: Option<&Arc<Pod>>, new: Option<&Arc<Pod>>) {
        let old_owner = old.and_then(|p| owner_rs_key(p));
        let new_owner = new.and_then(|p| owner_rs_key(p));
        if let Some(p) = new {
            if let Some(rs) = &new_owner {
                let mut e = self.exp();
                if old.is_none()
                    && let Some(x) = e.get_mut(rs)
                {
                    x.adds -= 1;
                }
                if p.metadata.deletion_timestamp.is_some()
                    && let Some(x) = e.get_mut(rs)
                {
                    x.dels.remove(&key_of(p.as_ref()));
                }
            }
        } else if let (Some(p), Some(rs)) = (old, &old_owner)
            && let Some(x) = self.exp().get_mut(rs)
        {
            x.dels.remove(&key_of(p.as_ref()));
        }
        if let Some(k) = old_owner.clone() {
            self.queue.add(k);
        }
        if let Some(k) = new_owner
            && Some(&k) != old_owner.as_ref()
        {
            self.queue.add(k);
        }
    }

    async fn create_pods(&self, rs: &ReplicaSet, key: &Key, count: usize) -> Result<(), SimError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        {
            let mut e = self.exp();
            let x = e.entry(key.clone()).or_default();
            x.adds = i64::try_from(count).unwrap_or(i64::MAX);
            x.set_at = Some(Instant::now());
        }
        // Slow start, as kube's controllers do: batches of 1, 2, 4, ... stop at the first error.
        let mut remaining = count;
        let mut batch = 1usize;
        let mut result = Ok(());
        while remaining > 0 {
            let n = batch.min(remaining);
            let futs = (0..n).map(|_| async {
                for _ in 0..3 {
                    let name = format!("{}-{}", key.name, random_suffix(5));
                    let pod = pod_from_template(rs, name.clone());
                    match api.create(&PostParams::default(), &pod).await {
                        Ok(created) => return Ok(created),
                        Err(e) if is_conflict(&e) => continue, // name taken: new suffix
                        Err(e) => {
                            return Err(SimError::api(
                                "create",
                                "Pod",
                                format!("{}/{name}", key.namespace),
                            )(e));
                        }
                    }
                }
                Err(SimError::Config(format!(
                    "could not find a free pod name for {key}"
                )))
            });
            let results = futures::future::join_all(futs).await;
            let mut failed = 0i64;
            for r in results {
                match r {
                    Ok(p) => self.recorder.record(
                        events::object_ref(rs),
                        events::NORMAL,
                        "SuccessfulCreate",
                        &format!("Created pod: {}", p.name_any()),
                        COMPONENT,
                    ),
                    Err(e) => {
                        failed += 1;
                        self.recorder.record(
                            events::object_ref(rs),
                            events::WARNING,
                            "FailedCreate",
                            &format!("Error creating: {e}"),
                            COMPONENT,
                        );
                        result = Err(e);
                    }
                }
            }
            remaining -= n;
            if failed > 0 {
                // The pods not created will never be observed.
                let skipped = i64::try_from(remaining).unwrap_or(i64::MAX) + failed;
                if let Some(x) = self.exp().get_mut(key) {
                    x.adds -= skipped;
                }
                break;
            }
            batch = batch.saturating_mul(2);
        }
        result
    }

    async fn delete_pods(
        &self,
        rs: &ReplicaSet,
        key: &Key,
        victims: Vec<Arc<Pod>>,
    ) -> Result<(), SimError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        {
            let mut e = self.exp();
            let x = e.entry(key.clone()).or_default();
            x.dels = victims.iter().map(|p| key_of(p.as_ref())).collect();
            x.set_at = Some(Instant::now());
        }
        let futs = victims.iter().map(|p| {
            let api = api.clone();
            async move {
                let name = p.name_any();
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => Ok(name),
                    Err(e) if is_not_found(&e) => {
                        if let Some(x) = self.exp().get_mut(key) {
                            x.dels.remove(&key_of(p.as_ref()));
                        }
                        Ok(name)
                    }
                    Err(e) => {
                        if let Some(x) = self.exp().get_mut(key) {
                            x.dels.remove(&key_of(p.as_ref()));
                        }
                        Err(SimError::api(
                            "delete",
                            "Pod",
                            format!("{}/{name}", key.namespace),
                        )(e))
                    }
                }
            }
        });
        let mut result = Ok(());
        for r in futures::future::join_all(futs).await {
            match r {
                Ok(name) => self.recorder.record(
                    events::object_ref(rs),
                    events::NORMAL,
                    "SuccessfulDelete",
                    &format!("Deleted pod: {name}"),
                    COMPONENT,
                ),
                Err(e) => result = Err(e),
            }
        }
        result
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Requeue, SimError> {
        let Some(rs) = self.replicasets.get(&key) else {
            self.exp().remove(&key);
            return Ok(None);
        };
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let mut active: Vec<Arc<Pod>> = self
            .pods
            .owned_by(&uid)
            .into_iter()
            .filter(|p| is_active(p))
            .collect();
        let satisfied = self.exp().get(&key).is_none_or(Expectation::satisfied);
        let mut manage_result = Ok(());
        if satisfied && rs.metadata.deletion_timestamp.is_none() {
            let want = usize::try_from(rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1))
                .unwrap_or(0);
            if active.len() < want {
                let n = (want - active.len()).min(BURST_REPLICAS);
                manage_result = self.create_pods(&rs, &key, n).await;
            } else if active.len() > want {
                let n = (active.len() - want).min(BURST_REPLICAS);
                deletion_order(&mut active);
                let victims: Vec<Arc<Pod>> = active[..n].to_vec();
                manage_result = self.delete_pods(&rs, &key, victims).await;
            }
        }
        // Status is computed from the pods seen before this sync's changes, as kube does.
        let (status, recheck) = compute_status(&rs, &active, k8s_openapi::jiff::Timestamp::now());
        if !status_matches(&rs, &status) {
            let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &key.namespace);
            let patch = json!({ "status": status });
            match api
                .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(updated) => self.replicasets.observe_write(updated),
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(SimError::api("patch status", "ReplicaSet", &key)(e)),
            }
        }
        manage_result?;
        Ok(recheck)
    }
}

/// Starts the ReplicaSet controller. Returns its queue (shut down by the caller on exit).
pub(crate) fn start(
    set: &mut JoinSet<()>,
    client: kube::Client,
    caches: &Caches,
    recorder: Recorder,
    mut shutdown: watch::Receiver<bool>,
) -> Arc<WorkQueue> {
    let queue = WorkQueue::new();
    let ctl = Arc::new(Controller {
        client,
        pods: Arc::clone(&caches.pods),
        replicasets: Arc::clone(&caches.replicasets),
        recorder,
        queue: Arc::clone(&queue),
        expectations: Mutex::new(HashMap::new()),
    });
    let c = Arc::clone(&ctl);
    caches
        .pods
        .on_change(Box::new(move |old, new| c.on_pod(old, new)));
    let q = Arc::clone(&queue);
    caches.replicasets.on_change(Box::new(move |old, new| {
        if let Some(rs) = new.or(old) {
            q.add(key_of(rs.as_ref()));
        }
    }));
    let pods = Arc::clone(&caches.pods);
    let rss = Arc::clone(&caches.replicasets);
    let q = Arc::clone(&queue);
    set.spawn(async move {
        if pods.wait_synced(&mut shutdown).await && rss.wait_synced(&mut shutdown).await {
            run_workers("replicaset", q, WORKERS, move |key| {
                Arc::clone(&ctl).reconcile(key)
            })
            .await;
        }
    });
    queue
}

/// Whether a pod is controlled by the given ReplicaSet uid (for tests and callers).
pub fn controlled_by(pod: &Pod, uid: &str) -> bool {
    controller_uid(pod) == Some(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs() -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "ns", "uid": "rs-uid", "generation": 3},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
        }))
        .unwrap()
    }

    fn pod(name: &str, v: serde_json::Value) -> Arc<Pod> {
        let mut base = json!({"metadata": {"name": name, "namespace": "ns", "labels": {"app": "web", "pod-template-hash": "abc"}}, "spec": {"containers": []}});
        if let Some(obj) = v.as_object() {
            for (k, val) in obj {
                if k == "metadata" {
                    for (mk, mv) in val.as_object().unwrap() {
                        base["metadata"][mk] = mv.clone();
                    }
                } else {
                    base[k] = val.clone();
                }
            }
        }
        Arc::new(serde_json::from_value(base).unwrap())
    }

    fn ready(t: &str) -> serde_json::Value {
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": t}]})
    }

    #[test]
    fn pods_carry_template_labels_and_a_controller_reference() {
        let p = pod_from_template(&rs(), format!("web-abc-{}", random_suffix(5)));
        assert_eq!(
            p.labels().get("pod-template-hash").map(String::as_str),
            Some("abc")
        );
        let o = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((o.kind.as_str(), o.uid.as_str()), ("ReplicaSet", "rs-uid"));
        assert_eq!(o.controller, Some(true));
        assert_eq!(o.block_owner_deletion, Some(true));
        assert!(controlled_by(&p, "rs-uid"));
        let name = p.name_any();
        assert_eq!(name.len(), "web-abc-".len() + 5);
        assert!(
            name["web-abc-".len()..]
                .bytes()
                .all(|b| ALPHABET.contains(&b))
        );
    }

    #[test]
    fn status_counts_ready_available_and_fully_labeled() {
        let now: k8s_openapi::jiff::Timestamp = "2025-01-01T00:01:00Z".parse().unwrap();
        let pods = vec![
            pod("a", json!({"status": ready("2025-01-01T00:00:00Z")})),
            pod("b", json!({"status": {"phase": "Pending"}})),
            pod(
                "c",
                json!({"metadata": {"labels": {"app": "web"}}, "status": ready("2025-01-01T00:00:55Z")}),
            ),
        ];
        let (s, recheck) = compute_status(&rs(), &pods, now);
        assert_eq!(s["replicas"], 3);
        assert_eq!(s["readyReplicas"], 2);
        assert_eq!(s["availableReplicas"], 2);
        assert_eq!(s["fullyLabeledReplicas"], 2);
        assert_eq!(s["observedGeneration"], 3);
        assert!(recheck.is_none());
        // With minReadySeconds: 30, the pod ready for 5 s is not available yet.
        let mut r = rs();
        r.spec.as_mut().unwrap().min_ready_seconds = Some(30);
        let (s, recheck) = compute_status(&r, &pods, now);
        assert_eq!(s["availableReplicas"], 1);
        assert_eq!(recheck, Some(Duration::from_secs(25)));
    }

    #[test]
    fn surplus_pods_are_deleted_unscheduled_pending_and_not_ready_first() {
        let mut pods = vec![
            pod(
                "running-old",
                json!({"metadata": {"creationTimestamp": "2025-01-01T00:00:00Z"}, "spec": {"nodeName": "n", "containers": []}, "status": ready("2025-01-01T00:00:00Z")}),
            ),
            pod(
                "running-new",
                json!({"metadata": {"creationTimestamp": "2025-01-01T00:00:09Z"}, "spec": {"nodeName": "n", "containers": []}, "status": ready("2025-01-01T00:00:10Z")}),
            ),
            pod(
                "pending",
                json!({"spec": {"nodeName": "n", "containers": []}, "status": {"phase": "Pending"}}),
            ),
            pod("unscheduled", json!({"status": {"phase": "Pending"}})),
        ];
        deletion_order(&mut pods);
        let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
        assert_eq!(
            names,
            ["unscheduled", "pending", "running-new", "running-old"]
        );
    }

    #[test]
    fn terminating_and_finished_pods_are_not_active() {
        assert!(is_active(&pod("a", json!({}))));
        assert!(!is_active(&pod(
            "a",
            json!({"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}})
        )));
        assert!(!is_active(&pod(
            "a",
            json!({"status": {"phase": "Failed"}})
        )));
    }

    #[test]
    fn expectations_block_until_observed_or_expired() {
        let mut e = Expectation {
            adds: 2,
            set_at: Some(Instant::now()),
            ..Default::default()
        };
        assert!(!e.satisfied());
        e.adds = 0;
        assert!(e.satisfied());
        e.dels.insert(Key::new("ns", "p"));
        assert!(!e.satisfied());
    }
}

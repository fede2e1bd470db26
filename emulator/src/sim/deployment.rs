//! The Deployment controller, after kube-controller-manager's
//! (<https://kubernetes.io/docs/concepts/workloads/controllers/deployment/>).
//!
//! For each Deployment, the ReplicaSet of its current pod template is named
//! `<deployment>-<pod-template-hash>` (FNV-32a of the template and `collisionCount`, encoded as
//! kube's `rand.SafeEncodeString`), carries the `pod-template-hash` label in its selector and
//! template, the revision annotations, and a controller owner reference to the Deployment.
//! Rollouts follow the strategy: `RollingUpdate` (maxSurge / maxUnavailable, kube's
//! `rolling.go`: scale the new ReplicaSet up within the surge, then old ones down as far as
//! availability allows) or `Recreate` (old ReplicaSets to zero, wait for their pods to be gone,
//! then the new one up). Paused Deployments are only scaled. Old ReplicaSets are kept scaled to
//! zero up to `revisionHistoryLimit` (default 10), older ones deleted. Status: observedGeneration,
//! replicas, updatedReplicas, readyReplicas, availableReplicas, unavailableReplicas, and the
//! Available and Progressing conditions with kube's reasons (NewReplicaSetCreated,
//! FoundNewReplicaSet, ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded,
//! MinimumReplicasAvailable, MinimumReplicasUnavailable).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::events::{self, Recorder};
use super::informer::{Cache, key_of};
use super::queue::{Key, Requeue, WorkQueue, run_workers};
use super::{Caches, SimError, is_conflict, is_not_found};

/// Component name used in Events.
pub const COMPONENT: &str = "deployment-controller";
/// Label added to a ReplicaSet's selector, template and itself.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Revision annotation on Deployments and ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Desired replicas annotation on ReplicaSets.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// Max replicas (desired + surge) annotation on ReplicaSets.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Default `spec.revisionHistoryLimit`.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
/// Default `spec.progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
/// Concurrent syncs (kube's `--concurrent-deployment-syncs` default).
const WORKERS: usize = 5;
/// Annotations of the Deployment not copied to its ReplicaSets.
const SKIPPED_ANNOTATIONS: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// The FNV-1a 32-bit offset basis: the hash of no bytes.
const FNV32_OFFSET: u32 = 0x811c_9dc5;

/// Continues a 32-bit FNV-1a hash `h` over `data` (`h = (h ^ byte) * 16777619` per byte), the
/// hash of Go's `hash/fnv.New32a` that kube's `ComputeHash` uses for the pod-template-hash.
/// Start from [`FNV32_OFFSET`]; chaining calls hashes the concatenation. Ours because the
/// `fnv` crate only offers the 64-bit variant.
fn fnv32a(h: u32, data: &[u8]) -> u32 {
    const PRIME: u32 = 0x0100_0193;
    data.iter()
        .fold(h, |h, b| (h ^ u32::from(*b)).wrapping_mul(PRIME))
}

/// kube's `rand.SafeEncodeString`: maps each byte to an alphabet without vowels or look-alikes.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

/// The pod-template-hash of a template: FNV-32a over its canonical JSON and, when set, the
/// collision count (little-endian u32, as kube's `ComputeHash` writes it), then the decimal
/// value safe-encoded.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    // serde_json maps are sorted, so this serialization is canonical.
    let text = serde_json::to_value(template)
        .map(|v| v.to_string())
        .unwrap_or_default();
    let mut h = fnv32a(FNV32_OFFSET, text.as_bytes());
    if let Some(c) = collision_count {
        h = fnv32a(h, &(c as u32).to_le_bytes());
    }
    safe_encode(&h.to_string())
}

/// Resolves an int-or-percent against `total`, rounding up or down (kube's
/// `GetScaledValueFromIntOrPercent`).
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> i32 {
    match v {
        IntOrString::Int(i) => *i,
        IntOrString::String(s) => {
            let Some(p) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return 0;
            };
            let num = p * i64::from(total);
            let v = if round_up {
                (num + 99).div_euclid(100)
            } else {
                num.div_euclid(100)
            };
            i32::try_from(v).unwrap_or(0)
        }
    }
}

/// The rollout strategy, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Kill old pods first.
    Recreate,
    /// Rolling update with resolved fenceposts.
    Rolling {
        /// Pods allowed above desired.
        max_surge: i32,
        /// Pods allowed unavailable below desired.
        max_unavailable: i32,
    },
}

/// The strategy of a Deployment with defaults (RollingUpdate 25% / 25%) and kube's
/// `ResolveFenceposts` (surge rounded up, unavailable rounded down, never both zero).
pub fn strategy(d: &Deployment) -> Strategy {
    let spec = d.spec.as_ref();
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
    let st = spec.and_then(|s| s.strategy.as_ref());
    if st.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
        return Strategy::Recreate;
    }
    let ru = st.and_then(|s| s.rolling_update.as_ref());
    let quarter = IntOrString::String("25%".into());
    let surge = ru.and_then(|r| r.max_surge.as_ref()).unwrap_or(&quarter);
    let unavail = ru
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&quarter);
    let max_surge = scaled_value(surge, desired, true);
    let mut max_unavailable = scaled_value(unavail, desired, false);
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    Strategy::Rolling {
        max_surge,
        max_unavailable: max_unavailable.min(desired.max(0)),
    }
}

/// What the rollout logic needs of a ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsView {
    /// Name.
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.replicas`.
    pub actual: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// Revision annotation.
    pub revision: i64,
}

impl RsView {
    /// The view of a ReplicaSet.
    pub fn of(rs: &ReplicaSet) -> RsView {
        let st = rs.status.as_ref();
        RsView {
            name: rs.name_any(),
            replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            actual: st.map(|s| s.replicas).unwrap_or(0),
            ready: st.and_then(|s| s.ready_replicas).unwrap_or(0),
            available: st.and_then(|s| s.available_replicas).unwrap_or(0),
            revision: revision_of(rs),
        }
    }
}

/// The revision annotation of an object (0 when absent).
pub fn revision_of<K: kube::Resource>(obj: &K) -> i64 {
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The replica count to create a new ReplicaSet with, or scale it to, in one step (kube's
/// `NewRSNewReplicas`).
pub fn new_rs_replicas(
    strategy: Strategy,
    desired: i32,
    new: Option<&RsView>,
    all: &[RsView],
) -> i32 {
    let current_new = new.map_or(0, |n| n.replicas);
    match strategy {
        Strategy::Recreate => desired,
        Strategy::Rolling { max_surge, .. } => {
            let current: i32 = all.iter().map(|r| r.replicas).sum();
            let max_total = desired + max_surge;
            if current >= max_total {
                return current_new;
            }
            let up = (max_total - current).min(desired - current_new).max(0);
            current_new + up
        }
    }
}

/// Scale-downs of old ReplicaSets for a rolling update (kube's `reconcileOldReplicaSets`:
/// unhealthy replicas first, then as far as `maxUnavailable` allows). `old` must be sorted
/// oldest first. Returns (name, new replicas).
pub fn scale_down_old(
    desired: i32,
    max_unavailable: i32,
    new: Option<&RsView>,
    old: &[RsView],
) -> Vec<(String, i32)> {
    let old_count: i32 = old.iter().map(|r| r.replicas).sum();
    if old_count == 0 {
        return Vec::new();
    }
    let all_count: i32 = old_count + new.map_or(0, |n| n.replicas);
    let min_available = desired - max_unavailable;
    let new_unavailable = new.map_or(0, |n| (n.replicas - n.available).max(0));
    let max_scaled_down = all_count - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let mut current: Vec<RsView> = old.to_vec();
    let mut out: BTreeMap<String, i32> = BTreeMap::new();
    // Clean up unhealthy replicas.
    let mut cleaned = 0;
    for rs in current.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        if rs.replicas == 0 || rs.replicas == rs.available {
            continue;
        }
        let n = (max_scaled_down - cleaned).min(rs.replicas - rs.available);
        rs.replicas -= n;
        cleaned += n;
        out.insert(rs.name.clone(), rs.replicas);
    }
    // Scale down healthy replicas as far as availability allows.
    let available: i32 =
        current.iter().map(|r| r.available).sum::<i32>() + new.map_or(0, |n| n.available);
    if available > min_available {
        let total = available - min_available;
        let mut done = 0;
        for rs in current.iter_mut() {
            if done >= total {
                break;
            }
            if rs.replicas == 0 {
                continue;
            }
            let n = rs.replicas.min(total - done);
            rs.replicas -= n;
            done += n;
            out.insert(rs.name.clone(), rs.replicas);
        }
    }
    out.into_iter().collect()
}

/// One step of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Create the new ReplicaSet with this many replicas.
    pub create_new: Option<i32>,
    /// Scale ReplicaSets: (name, replicas).
    pub scale: Vec<(String, i32)>,
}

/// Plans one sync of a Deployment: `new` is the ReplicaSet of the current template (if it
/// exists), `old` the others, oldest first.
pub fn plan(d: &Deployment, new: Option<&RsView>, old: &[RsView]) -> Plan {
    let spec = d.spec.as_ref();
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1).max(0);
    let paused = spec.and_then(|s| s.paused).unwrap_or(false);
    let mut all: Vec<RsView> = old.to_vec();
    if let Some(n) = new {
        all.push(n.clone());
    }
    if paused {
        // Only scaling: the single active ReplicaSet (or the new one) follows spec.replicas.
        let active: Vec<&RsView> = all.iter().filter(|r| r.replicas > 0).collect();
        let target = match (active.as_slice(), new) {
            ([one], _) => Some(*one),
            ([], Some(n)) => Some(n),
            _ => None,
        };
        return Plan {
            create_new: None,
            scale: target
                .filter(|t| t.replicas != desired)
                .map(|t| vec![(t.name.clone(), desired)])
                .unwrap_or_default(),
        };
    }
    match strategy(d) {
        Strategy::Recreate => {
            let scale: Vec<(String, i32)> = old
                .iter()
                .filter(|r| r.replicas > 0)
                .map(|r| (r.name.clone(), 0))
                .collect();
            if !scale.is_empty() {
                return Plan {
                    create_new: None,
                    scale,
                };
            }
            if old.iter().any(|r| r.actual > 0) {
                return Plan::default(); // wait for old pods to be gone
            }
            match new {
                None => Plan {
                    create_new: Some(desired),
                    scale: Vec::new(),
                },
                Some(n) if n.replicas != desired => Plan {
                    create_new: None,
                    scale: vec![(n.name.clone(), desired)],
                },
                Some(_) => Plan::default(),
            }
        }
        s @ Strategy::Rolling {
            max_unavailable, ..
        } => {
            let Some(n) = new else {
                return Plan {
                    create_new: Some(new_rs_replicas(s, desired, None, &all)),
                    scale: Vec::new(),
                };
            };
            if n.replicas > desired {
                return Plan {
                    create_new: None,
                    scale: vec![(n.name.clone(), desired)],
                };
            }
            let want = new_rs_replicas(s, desired, Some(n), &all);
            if want != n.replicas {
                return Plan {
                    create_new: None,
                    scale: vec![(n.name.clone(), want)],
                };
            }
            Plan {
                create_new: None,
                scale: scale_down_old(desired, max_unavailable, Some(n), old),
            }
        }
    }
}

/// Builds the ReplicaSet for the Deployment's current template.
pub fn new_replicaset(
    d: &Deployment,
    hash: &str,
    replicas: i32,
    revision: i64,
    max_surge: i32,
) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let mut template = spec.template.clone();
    let tm = template.metadata.get_or_insert_with(Default::default);
    tm.labels
        .get_or_insert_with(Default::default)
        .insert(POD_TEMPLATE_HASH.into(), hash.into());
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(POD_TEMPLATE_HASH.into(), hash.into());
    let mut annotations: BTreeMap<String, String> = d
        .annotations()
        .iter()
        .filter(|(k, _)| !SKIPPED_ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(REVISION.into(), revision.to_string());
    annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
    annotations.insert(MAX_REPLICAS.into(), (desired + max_surge).to_string());
    let labels = tm.labels.clone();
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{}-{}", d.name_any(), hash),
            "namespace": d.namespace(),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "Deployment", "name": d.name_any(),
                "uid": d.metadata.uid.clone().unwrap_or_default(),
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": spec.min_ready_seconds.unwrap_or(0),
            "selector": selector,
            "template": template,
        },
    }))
    .unwrap_or_default()
}

fn condition<'a>(conds: &'a [DeploymentCondition], t: &str) -> Option<&'a DeploymentCondition> {
    conds.iter().find(|c| c.type_ == t)
}

/// Builds a condition, keeping the previous times when status and reason are unchanged
/// (kube's `SetDeploymentCondition`), or only lastTransitionTime when `progress` is true.
fn make_condition(
    prev: Option<&DeploymentCondition>,
    t: &str,
    status: &str,
    reason: &str,
    message: String,
    now: &str,
    progress: bool,
) -> Value {
    let time = |c: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        c.map(|t| super::fmt_time(t.0))
            .unwrap_or_else(|| now.to_string())
    };
    match prev {
        Some(p) if p.status == status && p.reason.as_deref() == Some(reason) && !progress => {
            json!({
                "type": t, "status": status, "reason": reason, "message": p.message.clone().unwrap_or(message),
                "lastUpdateTime": time(p.last_update_time.as_ref()),
                "lastTransitionTime": time(p.last_transition_time.as_ref()),
            })
        }
        Some(p) if p.status == status => json!({
            "type": t, "status": status, "reason": reason, "message": message,
            "lastUpdateTime": now,
            "lastTransitionTime": time(p.last_transition_time.as_ref()),
        }),
        _ => json!({
            "type": t, "status": status, "reason": reason, "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now,
        }),
    }
}

/// Computes the Deployment's status from its ReplicaSets after this sync (kube's
/// `calculateStatus` and `syncRolloutStatus`). Returns the status and, while a rollout is in
/// progress, when the progress deadline would expire.
pub fn compute_status(
    d: &Deployment,
    new: Option<&RsView>,
    all: &[RsView],
    created_new: bool,
    now: k8s_openapi::jiff::Timestamp,
) -> (Value, Option<Duration>) {
    let spec = d.spec.as_ref();
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1).max(0);
    let prev = d.status.clone().unwrap_or_default();
    let prev_conds = prev.conditions.clone().unwrap_or_default();
    let now_s = super::fmt_time(now);
    let replicas: i32 = all.iter().map(|r| r.actual).sum();
    let spec_total: i32 = all.iter().map(|r| r.replicas).sum();
    let updated = new.map_or(0, |n| n.actual);
    let ready: i32 = all.iter().map(|r| r.ready).sum();
    let available: i32 = all.iter().map(|r| r.available).sum();
    let unavailable = (spec_total - available).max(0);
    let max_unavailable = match strategy(d) {
        Strategy::Rolling {
            max_unavailable, ..
        } => max_unavailable,
        Strategy::Recreate => 0,
    };
    let mut conditions: Vec<Value> = Vec::new();
    let avail_prev = condition(&prev_conds, "Available");
    conditions.push(if available >= desired - max_unavailable {
        make_condition(
            avail_prev,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            &now_s,
            false,
        )
    } else {
        make_condition(
            avail_prev,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            &now_s,
            false,
        )
    });
    let prog_prev = condition(&prev_conds, "Progressing");
    let complete = updated == desired
        && replicas == desired
        && available == desired
        && new.is_some_and(|n| n.replicas == desired);
    let paused = spec.and_then(|s| s.paused).unwrap_or(false);
    let old_actual = |rs: &[RsView]| -> i32 {
        rs.iter()
            .filter(|r| Some(&r.name) != new.map(|n| &n.name))
            .map(|r| r.actual)
            .sum()
    };
    let prev_old_replicas = prev.replicas.unwrap_or(0) - prev.updated_replicas.unwrap_or(0);
    let progressed = updated != prev.updated_replicas.unwrap_or(0)
        || old_actual(all) < prev_old_replicas
        || ready > prev.ready_replicas.unwrap_or(0)
        || available > prev.available_replicas.unwrap_or(0);
    let name = new.map(|n| n.name.clone()).unwrap_or_default();
    let mut deadline = None;
    let prog = if paused {
        make_condition(
            prog_prev,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
            &now_s,
            false,
        )
    } else if complete {
        make_condition(
            prog_prev,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{name}\" has successfully progressed."),
            &now_s,
            false,
        )
    } else if created_new {
        make_condition(
            None,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            format!("Created new replica set \"{name}\""),
            &now_s,
            false,
        )
    } else if prog_prev.is_some_and(|p| p.reason.as_deref() == Some("ProgressDeadlineExceeded"))
        && !progressed
    {
        make_condition(
            prog_prev,
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            format!("ReplicaSet \"{name}\" has timed out progressing."),
            &now_s,
            false,
        )
    } else if progressed || prog_prev.is_none() || prog_prev.is_some_and(|p| p.status != "True") {
        let reason = if prog_prev.is_none() {
            "FoundNewReplicaSet"
        } else {
            "ReplicaSetUpdated"
        };
        let message = if prog_prev.is_none() {
            format!("Found new replica set \"{name}\"")
        } else {
            format!("ReplicaSet \"{name}\" is progressing.")
        };
        make_condition(
            prog_prev,
            "Progressing",
            "True",
            reason,
            message,
            &now_s,
            true,
        )
    } else {
        // No progress since the last update: check the deadline.
        let limit = spec
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS);
        let last = prog_prev
            .and_then(|p| p.last_update_time.as_ref())
            .map(|t| t.0)
            .unwrap_or(now);
        let elapsed = Duration::try_from(now.duration_since(last)).unwrap_or(Duration::ZERO);
        let limit = Duration::from_secs(u64::try_from(limit).unwrap_or(0));
        if elapsed >= limit {
            make_condition(
                prog_prev,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{name}\" has timed out progressing."),
                &now_s,
                false,
            )
        } else {
            deadline = Some(limit - elapsed);
            make_condition(
                prog_prev,
                "Progressing",
                "True",
                prog_prev
                    .and_then(|p| p.reason.as_deref())
                    .unwrap_or("ReplicaSetUpdated"),
                format!("ReplicaSet \"{name}\" is progressing."),
                &now_s,
                false,
            )
        }
    };
    if !paused && !complete && deadline.is_none() && prog["status"] == "True" {
        let limit = spec
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS);
        deadline = Some(Duration::from_secs(u64::try_from(limit).unwrap_or(0)));
    }
    conditions.push(prog);
    // Other conditions (e.g. ReplicaFailure) are kept.
    for c in &prev_conds {
        if c.type_ != "Available"
            && c.type_ != "Progressing"
            && let Ok(v) = serde_json::to_value(c)
        {
            conditions.push(v);
        }
    }
    let mut status = json!({
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": unavailable,
        "conditions": conditions,
    });
    if let Some(g) = d.metadata.generation {
        status["observedGeneration"] = json!(g);
    }
    if let Some(c) = prev.collision_count {
        status["collisionCount"] = json!(c);
    }
    (status, deadline)
}

/// Whether the live status equals the computed one (conditions compared by content).
fn status_matches(d: &Deployment, want: &Value) -> bool {
    let Some(s) = d.status.as_ref() else {
        return false;
    };
    let Ok(mut live) = serde_json::to_value(s) else {
        return false;
    };
    // Normalise absent counters to 0 as the computed status has them.
    for k in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
    ] {
        if live.get(k).is_none() {
            live[k] = json!(0);
        }
    }
    let norm = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(cs) = v.get_mut("conditions").and_then(Value::as_array_mut) {
            cs.sort_by(|a, b| a["type"].as_str().cmp(&b["type"].as_str()));
        }
        v
    };
    norm(&live) == norm(want)
}

struct Controller {
    client: kube::Client,
    deployments: Arc<Cache<Deployment>>,
    replicasets: Arc<Cache<ReplicaSet>>,
    recorder: Recorder,
}

impl Controller {
    async fn scale(
        &self,
        d: &Deployment,
        rs: &ReplicaSet,
        replicas: i32,
        revision: Option<i64>,
    ) -> Result<ReplicaSet, SimError> {
        let api: Api<ReplicaSet> =
            Api::namespaced(self.client.clone(), &d.namespace().unwrap_or_default());
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let surge = match strategy(d) {
            Strategy::Rolling { max_surge, .. } => max_surge,
            Strategy::Recreate => 0,
        };
        let mut annotations = json!({
            DESIRED_REPLICAS: desired.to_string(),
            MAX_REPLICAS: (desired + surge).to_string(),
        });
        if let Some(r) = revision {
            annotations[REVISION] = json!(r.to_string());
        }
        let patch = json!({
            "metadata": {"annotations": annotations, "resourceVersion": rs.metadata.resource_version},
            "spec": {"replicas": replicas},
        });
        let from = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let updated = api
            .patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(SimError::api("scale", "ReplicaSet", key_of(rs)))?;
        if from != replicas {
            let dir = if replicas > from { "up" } else { "down" };
            self.recorder.record(
                events::object_ref(d),
                events::NORMAL,
                "ScalingReplicaSet",
                &format!(
                    "Scaled {dir} replica set {} from {from} to {replicas}",
                    rs.name_any()
                ),
                COMPONENT,
            );
        }
        self.replicasets.observe_write(updated.clone());
        Ok(updated)
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Requeue, SimError> {
        let Some(d) = self.deployments.get(&key) else {
            return Ok(None);
        };
        if d.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let Some(spec) = d.spec.as_ref() else {
            return Ok(None);
        };
        if spec
            .selector
            .match_labels
            .as_ref()
            .is_none_or(|m| m.is_empty())
            && spec
                .selector
                .match_expressions
                .as_ref()
                .is_none_or(|m| m.is_empty())
        {
            // An empty selector would select everything; kube refuses to act on it.
            return Ok(None);
        }
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let mut owned: Vec<Arc<ReplicaSet>> = self.replicasets.owned_by(&uid);
        owned.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .cmp(&b.metadata.creation_timestamp.as_ref().map(|t| t.0))
                .then(a.name_any().cmp(&b.name_any()))
        });
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(&spec.template, collision);
        let is_new = |rs: &ReplicaSet| {
            rs.labels().get(POD_TEMPLATE_HASH).map(String::as_str) == Some(hash.as_str())
        };
        let mut new_rs: Option<ReplicaSet> =
            owned.iter().find(|r| is_new(r)).map(|r| (**r).clone());
        let old_rs: Vec<Arc<ReplicaSet>> = owned.iter().filter(|r| !is_new(r)).cloned().collect();
        let max_old_revision = old_rs
            .iter()
            .map(|r| revision_of(r.as_ref()))
            .max()
            .unwrap_or(0);
        let surge = match strategy(&d) {
            Strategy::Rolling { max_surge, .. } => max_surge,
            Strategy::Recreate => 0,
        };
        let old_views: Vec<RsView> = old_rs.iter().map(|r| RsView::of(r)).collect();
        let ns = key.namespace.clone();
        let rs_api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);

        // A template brought back (rollback) gets the next revision.
        if let Some(n) = new_rs.as_ref()
            && revision_of(n) <= max_old_revision
        {
            let replicas = n.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            new_rs = Some(
                self.scale(&d, n, replicas, Some(max_old_revision + 1))
                    .await?,
            );
        }
        let step = plan(&d, new_rs.as_ref().map(RsView::of).as_ref(), &old_views);
        let mut created_new = false;
        if let Some(replicas) = step.create_new {
            let rs = new_replicaset(&d, &hash, replicas, max_old_revision + 1, surge);
            match rs_api.create(&PostParams::default(), &rs).await {
                Ok(created) => {
                    created_new = true;
                    if replicas > 0 {
                        self.recorder.record(
                            events::object_ref(d.as_ref()),
                            events::NORMAL,
                            "ScalingReplicaSet",
                            &format!(
                                "Scaled up replica set {} from 0 to {replicas}",
                                created.name_any()
                            ),
                            COMPONENT,
                        );
                    }
                    self.replicasets.observe_write(created.clone());
                    new_rs = Some(created);
                }
                Err(e) if is_conflict(&e) => {
                    // The name is taken. If by a ReplicaSet we do not control (or with another
                    // template), bump collisionCount so the next hash differs (kube does the same).
                    let existing = rs_api.get_opt(&rs.name_any()).await.map_err(SimError::api(
                        "get",
                        "ReplicaSet",
                        key_of(&rs),
                    ))?;
                    let ours = existing
                        .as_ref()
                        .is_some_and(|e| super::informer::controller_uid(e) == Some(uid.as_str()));
                    if !ours {
                        let patch =
                            json!({"status": {"collisionCount": collision.unwrap_or(0) + 1}});
                        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
                        let updated = api
                            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await
                            .map_err(SimError::api("patch status", "Deployment", &key))?;
                        self.deployments.observe_write(updated);
                    } else if let Some(e) = existing {
                        self.replicasets.observe_write(e);
                    }
                    return Ok(Some(Duration::from_millis(10)));
                }
                Err(e) => return Err(SimError::api("create", "ReplicaSet", key_of(&rs))(e)),
            }
        }
        let mut current: BTreeMap<String, ReplicaSet> = old_rs
            .iter()
            .map(|r| (r.name_any(), (**r).clone()))
            .collect();
        if let Some(n) = new_rs.clone() {
            current.insert(n.name_any(), n);
        }
        for (name, replicas) in &step.scale {
            if let Some(rs) = current.get(name).cloned() {
                let updated = self.scale(&d, &rs, *replicas, None).await?;
                current.insert(name.clone(), updated);
            }
        }
        // Keep the newest `revisionHistoryLimit` old ReplicaSets that are scaled to zero.
        let limit = usize::try_from(
            spec.revision_history_limit
                .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT),
        )
        .unwrap_or(0);
        let new_name = new_rs.as_ref().map(|n| n.name_any());
        let mut idle: Vec<&ReplicaSet> = current
            .values()
            .filter(|r| Some(r.name_any()) != new_name)
            .filter(|r| {
                RsView::of(r).replicas == 0
                    && RsView::of(r).actual == 0
                    && r.metadata.deletion_timestamp.is_none()
            })
            .collect();
        if idle.len() > limit {
            idle.sort_by_key(|r| revision_of(*r));
            let excess = idle.len() - limit;
            for rs in &idle[..excess] {
                let dp = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..DeleteParams::default()
                };
                match rs_api.delete(&rs.name_any(), &dp).await {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(SimError::api("delete", "ReplicaSet", key_of(*rs))(e)),
                }
            }
        }
        // Status, and the revision annotation of the Deployment.
        let views: Vec<RsView> = current.values().map(RsView::of).collect();
        let new_view = new_rs
            .as_ref()
            .and_then(|n| current.get(&n.name_any()))
            .map(RsView::of);
        let (status, deadline) = compute_status(
            &d,
            new_view.as_ref(),
            &views,
            created_new,
            k8s_openapi::jiff::Timestamp::now(),
        );
        let d_api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
        if new_view.is_some() {
            let have = d.annotations().get(REVISION).cloned();
            let new_rev = new_rs.as_ref().map(revision_of).unwrap_or(0).to_string();
            if have.as_deref() != Some(new_rev.as_str()) {
                let patch = json!({"metadata": {"annotations": {REVISION: new_rev}}});
                let updated = d_api
                    .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(SimError::api("annotate", "Deployment", &key))?;
                self.deployments.observe_write(updated);
            }
        }
        if !status_matches(&d, &status) {
            match d_api
                .patch_status(
                    &key.name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"status": status})),
                )
                .await
            {
                Ok(updated) => self.deployments.observe_write(updated),
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(SimError::api("patch status", "Deployment", &key)(e)),
            }
        }
        Ok(deadline)
    }
}

fn owner_deployment_key(rs: &ReplicaSet) -> Option<Key> {
    let o = rs
        .metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "Deployment")?;
    Some(Key::new(rs.namespace().unwrap_or_default(), o.name.clone()))
}

/// Starts the Deployment controller. Returns its queue (shut down by the caller on exit).
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
        deployments: Arc::clone(&caches.deployments),
        replicasets: Arc::clone(&caches.replicasets),
        recorder,
    });
    let q = Arc::clone(&queue);
    caches.deployments.on_change(Box::new(move |old, new| {
        if let Some(d) = new.or(old) {
            q.add(key_of(d.as_ref()));
        }
    }));
    let q = Arc::clone(&queue);
    caches.replicasets.on_change(Box::new(move |old, new| {
        let a = old.and_then(|r| owner_deployment_key(r));
        let b = new.and_then(|r| owner_deployment_key(r));
        if let Some(k) = a.clone() {
            q.add(k);
        }
        if let Some(k) = b
            && Some(&k) != a.as_ref()
        {
            q.add(k);
        }
    }));
    let ds = Arc::clone(&caches.deployments);
    let rss = Arc::clone(&caches.replicasets);
    let q = Arc::clone(&queue);
    set.spawn(async move {
        if ds.wait_synced(&mut shutdown).await && rss.wait_synced(&mut shutdown).await {
            run_workers("deployment", q, WORKERS, move |key| {
                Arc::clone(&ctl).reconcile(key)
            })
            .await;
        }
    });
    queue
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FNV-1a 32-bit test vectors (the reference implementation's), and chaining.
    #[test]
    fn fnv32a_vectors() {
        assert_eq!(fnv32a(FNV32_OFFSET, b""), 0x811c_9dc5);
        assert_eq!(fnv32a(FNV32_OFFSET, b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(FNV32_OFFSET, b"foobar"), 0xbf9c_f968);
        assert_eq!(
            fnv32a(fnv32a(FNV32_OFFSET, b"foo"), b"bar"),
            fnv32a(FNV32_OFFSET, b"foobar")
        );
    }

    fn deployment(replicas: i32, extra: Value) -> Deployment {
        let mut v = json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "d-uid", "generation": 2,
                         "annotations": {"team": "a", "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}
        });
        if let Some(o) = extra.as_object() {
            for (k, val) in o {
                v["spec"][k] = val.clone();
            }
        }
        serde_json::from_value(v).unwrap()
    }

    fn rs(name: &str, replicas: i32, actual: i32, available: i32, revision: i64) -> RsView {
        RsView {
            name: name.into(),
            replicas,
            actual,
            ready: available,
            available,
            revision,
        }
    }

    #[test]
    fn template_hash_is_stable_and_changes_with_the_template() {
        // pod-template-hash: a stable hash of the template (and collisionCount).
        let d = deployment(3, json!({}));
        let t = &d.spec.as_ref().unwrap().template;
        let h = template_hash(t, None);
        assert_eq!(h, template_hash(t, None));
        assert!(h.len() >= 6 && h.len() <= 10, "{h}");
        assert!(
            h.bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
        );
        assert_ne!(h, template_hash(t, Some(1)));
        let d2 = deployment(
            3,
            json!({"template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}),
        );
        assert_ne!(h, template_hash(&d2.spec.unwrap().template, None));
        // Replicas are not part of the template.
        assert_eq!(
            h,
            template_hash(&deployment(5, json!({})).spec.unwrap().template, None)
        );
    }

    #[test]
    fn fenceposts_default_to_25_percent() {
        // maxSurge rounds up, maxUnavailable rounds down (ResolveFenceposts).
        assert_eq!(
            strategy(&deployment(3, json!({}))),
            Strategy::Rolling {
                max_surge: 1,
                max_unavailable: 0
            }
        );
        assert_eq!(
            strategy(&deployment(10, json!({}))),
            Strategy::Rolling {
                max_surge: 3,
                max_unavailable: 2
            }
        );
        let d = deployment(
            3,
            json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}),
        );
        assert_eq!(
            strategy(&d),
            Strategy::Rolling {
                max_surge: 0,
                max_unavailable: 1
            }
        );
        assert_eq!(
            strategy(&deployment(3, json!({"strategy": {"type": "Recreate"}}))),
            Strategy::Recreate
        );
    }

    #[test]
    fn first_sync_creates_the_new_replicaset() {
        let d = deployment(3, json!({}));
        // No ReplicaSet yet: created with all replicas (nothing to surge against).
        assert_eq!(
            plan(&d, None, &[]),
            Plan {
                create_new: Some(3),
                scale: vec![]
            }
        );
        let rs = new_replicaset(&d, "abc12", 3, 1, 1);
        assert_eq!(rs.name_any(), "web-abc12");
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!(
            spec.selector.match_labels.as_ref().unwrap()[POD_TEMPLATE_HASH],
            "abc12"
        );
        assert_eq!(
            spec.template
                .as_ref()
                .unwrap()
                .metadata
                .as_ref()
                .unwrap()
                .labels
                .as_ref()
                .unwrap()[POD_TEMPLATE_HASH],
            "abc12"
        );
        assert_eq!(rs.annotations()[REVISION], "1");
        assert_eq!(rs.annotations()["team"], "a");
        assert!(
            !rs.annotations()
                .contains_key("kubectl.kubernetes.io/last-applied-configuration")
        );
        let o = &rs.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (o.kind.as_str(), o.controller, o.block_owner_deletion),
            ("Deployment", Some(true), Some(true))
        );
    }

    #[test]
    fn rolling_update_surges_then_scales_old_down_as_availability_allows() {
        // 3 replicas, maxSurge 1, maxUnavailable 0.
        let d = deployment(3, json!({}));
        let old = vec![rs("web-old", 3, 3, 3, 1)];
        // New ReplicaSet created with the surge only.
        assert_eq!(plan(&d, None, &old).create_new, Some(1));
        // New has 1 not yet available: nothing more can happen.
        let new = rs("web-new", 1, 1, 0, 2);
        assert_eq!(plan(&d, Some(&new), &old), Plan::default());
        // New pod available: old scaled down by one.
        let new = rs("web-new", 1, 1, 1, 2);
        assert_eq!(
            plan(&d, Some(&new), &old).scale,
            vec![("web-old".to_string(), 2)]
        );
        // Then the new one surges again.
        let old = vec![rs("web-old", 2, 2, 2, 1)];
        assert_eq!(
            plan(&d, Some(&new), &old).scale,
            vec![("web-new".to_string(), 2)]
        );
        // Finally old reaches zero.
        let new = rs("web-new", 3, 3, 3, 2);
        let old = vec![rs("web-old", 1, 1, 1, 1)];
        assert_eq!(
            plan(&d, Some(&new), &old).scale,
            vec![("web-old".to_string(), 0)]
        );
        let old = vec![rs("web-old", 0, 0, 0, 1)];
        assert_eq!(plan(&d, Some(&new), &old), Plan::default());
    }

    #[test]
    fn unhealthy_old_replicas_are_cleaned_up_first() {
        let d = deployment(3, json!({}));
        let new = rs("web-new", 1, 1, 0, 3);
        // Old ReplicaSets whose pods are not available can go without hurting availability.
        let old = vec![rs("web-a", 1, 1, 0, 1), rs("web-b", 3, 3, 3, 2)];
        assert_eq!(
            plan(&d, Some(&new), &old).scale,
            vec![("web-a".to_string(), 0)]
        );
    }

    #[test]
    fn scaling_to_zero_and_back() {
        let new = rs("web-new", 3, 3, 3, 1);
        assert_eq!(
            plan(&deployment(0, json!({})), Some(&new), &[]).scale,
            vec![("web-new".to_string(), 0)]
        );
        let new = rs("web-new", 0, 0, 0, 1);
        assert_eq!(
            plan(&deployment(2, json!({})), Some(&new), &[]).scale,
            vec![("web-new".to_string(), 2)]
        );
    }

    #[test]
    fn recreate_kills_old_pods_before_creating_new_ones() {
        let d = deployment(3, json!({"strategy": {"type": "Recreate"}}));
        let old = vec![rs("web-old", 3, 3, 3, 1)];
        assert_eq!(plan(&d, None, &old).scale, vec![("web-old".to_string(), 0)]);
        // Scaled to zero, pods still terminating: wait.
        let old = vec![rs("web-old", 0, 2, 0, 1)];
        assert_eq!(plan(&d, None, &old), Plan::default());
        let old = vec![rs("web-old", 0, 0, 0, 1)];
        assert_eq!(plan(&d, None, &old).create_new, Some(3));
    }

    #[test]
    fn paused_deployments_only_scale() {
        let d = deployment(5, json!({"paused": true}));
        let old = vec![rs("web-old", 3, 3, 3, 1)];
        assert_eq!(
            plan(&d, None, &old),
            Plan {
                create_new: None,
                scale: vec![("web-old".to_string(), 5)]
            }
        );
    }

    #[test]
    fn status_reports_counts_and_conditions() {
        let now: k8s_openapi::jiff::Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let d = deployment(3, json!({}));
        let new = rs("web-new", 3, 3, 3, 2);
        let all = vec![rs("web-old", 0, 0, 0, 1), new.clone()];
        let (s, deadline) = compute_status(&d, Some(&new), &all, false, now);
        assert_eq!(s["observedGeneration"], 2);
        assert_eq!(s["replicas"], 3);
        assert_eq!(s["updatedReplicas"], 3);
        assert_eq!(s["readyReplicas"], 3);
        assert_eq!(s["availableReplicas"], 3);
        assert_eq!(s["unavailableReplicas"], 0);
        let c = |t: &str| {
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap()
                .clone()
        };
        assert_eq!(c("Available")["status"], "True");
        assert_eq!(c("Available")["reason"], "MinimumReplicasAvailable");
        assert_eq!(c("Progressing")["reason"], "NewReplicaSetAvailable");
        assert_eq!(
            c("Progressing")["message"],
            "ReplicaSet \"web-new\" has successfully progressed."
        );
        assert!(deadline.is_none());
        // While pods are not available: Available=False, a progress deadline is set.
        let new = rs("web-new", 3, 3, 0, 1);
        let (s, deadline) = compute_status(&d, Some(&new), std::slice::from_ref(&new), true, now);
        let c = |t: &str| {
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap()
                .clone()
        };
        assert_eq!(c("Available")["status"], "False");
        assert_eq!(c("Progressing")["reason"], "NewReplicaSetCreated");
        assert_eq!(deadline, Some(Duration::from_secs(600)));
    }

    #[test]
    fn progress_deadline_exceeded_without_progress() {
        let now: k8s_openapi::jiff::Timestamp = "2025-01-01T00:10:00Z".parse().unwrap();
        let mut d = deployment(3, json!({"progressDeadlineSeconds": 60}));
        d.status = serde_json::from_value(json!({
            "replicas": 3, "updatedReplicas": 3, "readyReplicas": 0, "availableReplicas": 0,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                            "lastUpdateTime": "2025-01-01T00:00:00Z", "lastTransitionTime": "2025-01-01T00:00:00Z"}]
        })).unwrap();
        let new = rs("web-new", 3, 3, 0, 1);
        let (s, _) = compute_status(&d, Some(&new), std::slice::from_ref(&new), false, now);
        let p = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Progressing")
            .unwrap()
            .clone();
        assert_eq!(p["status"], "False");
        assert_eq!(p["reason"], "ProgressDeadlineExceeded");
    }

    #[test]
    fn unchanged_conditions_keep_their_times() {
        // Status must be deterministic, or the controller would update it forever.
        let t0: k8s_openapi::jiff::Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let t1: k8s_openapi::jiff::Timestamp = "2025-01-01T00:05:00Z".parse().unwrap();
        let mut d = deployment(1, json!({}));
        let new = rs("web-new", 1, 1, 1, 1);
        let (s0, _) = compute_status(&d, Some(&new), std::slice::from_ref(&new), false, t0);
        d.status = serde_json::from_value(s0.clone()).unwrap();
        let (s1, _) = compute_status(&d, Some(&new), std::slice::from_ref(&new), false, t1);
        assert_eq!(s0, s1);
        assert!(status_matches(&d, &s1));
        // Sub-second clocks do not leak into the wire format (metav1.Time has whole seconds).
        let frac: k8s_openapi::jiff::Timestamp = "2025-01-01T00:06:00.5Z".parse().unwrap();
        let (s2, _) = compute_status(&d, Some(&new), std::slice::from_ref(&new), false, frac);
        assert!(status_matches(&d, &s2));
        let mut d2 = deployment(2, json!({}));
        let (s3, _) = compute_status(&d2, Some(&new), std::slice::from_ref(&new), false, frac);
        d2.status = serde_json::from_value(s3.clone()).unwrap();
        assert!(status_matches(&d2, &s3));
    }
}

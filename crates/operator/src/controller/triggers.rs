//! Which watch events wake a System: only those that can change what its reconcile does or the status
//! it writes. Each function is a kube-runtime predicate (a digest of the fields that matter; an event
//! whose digest equals the last one seen for that object is dropped), pure and unit-tested.
//!
//! - A **System** wakes on a change of its generation (spec), labels, annotations or deletion, not on
//!   its own status writes.
//! - A **child** (Deployment, Pod, Service, ConfigMap, NetworkPolicy) wakes its System on a change of its metadata that
//!   Tycho reads (labels, annotations with the render hash, owner references, deletion), its spec or
//!   data (drift), and the status fields the System's status is computed from — not on a new
//!   `resourceVersion`, `managedFields`, timestamps or status fields nobody reads.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use serde::Serialize;
use serde_json::{Value, json};

use tycho_model::System;

use super::diff::fnv1a64;
use super::status::{deployment_problem, pod_problem};

/// Drops the watch events of objects whose digest did not change since the last event of the same
/// object. Deletions and re-list markers always pass (a deleted child must wake its System, so that it
/// is created again). Keyed by a 64-bit hash of namespace and name: 16 bytes an object.
#[derive(Debug, Default)]
pub struct DigestFilter {
    last: std::collections::HashMap<u64, u64>,
}

impl DigestFilter {
    /// Whether `event` should reach the Controller, by the digest function `f`.
    pub fn admit<K: Resource>(
        &mut self,
        event: &kube::runtime::watcher::Event<K>,
        f: fn(&K) -> Option<u64>,
    ) -> bool {
        use kube::runtime::watcher::Event;
        let key = |obj: &K| {
            let m = obj.meta();
            let ns = m.namespace.as_deref().unwrap_or_default();
            let name = m.name.as_deref().unwrap_or_default();
            fnv1a64(format!("{ns}/{name}").as_bytes())
        };
        match event {
            Event::Apply(obj) | Event::InitApply(obj) => match f(obj) {
                Some(d) => self.last.insert(key(obj), d).unwrap_or(QUIET) != d,
                None => true,
            },
            Event::Delete(obj) => self.last.remove(&key(obj)) != Some(QUIET),
            Event::Init | Event::InitDone => true,
        }
    }
}

/// The digest of an object whose events never need to wake its System (a healthy Deployment Pod): its
/// first sighting and its deletion pass no more than its changes.
pub const QUIET: u64 = 0;

fn digest(v: &Value) -> u64 {
    fnv1a64(v.to_string().as_bytes())
}

/// The metadata of `obj` that Tycho reads.
fn metadata<K: Resource>(obj: &K) -> Value {
    let m = obj.meta();
    json!({
        "generation": m.generation,
        "labels": m.labels,
        "annotations": m.annotations,
        "ownerReferences": m.owner_references,
        "deletionTimestamp": m.deletion_timestamp,
    })
}

/// Predicate of Systems: spec (through the generation), labels, annotations, deletion.
pub fn system(s: &System) -> Option<u64> {
    Some(digest(&metadata(s)))
}

/// Predicate of children without a status Tycho reads (Services, ConfigMaps): metadata and
/// everything but `metadata` and `status`.
pub fn object<K: Resource + Serialize>(obj: &K) -> Option<u64> {
    let mut v = serde_json::to_value(obj).ok()?;
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
        o.insert("metadata".into(), metadata(obj));
    }
    Some(digest(&v))
}

/// Predicate of Deployments: [`object`] and the status the System's status is computed from (replica
/// counts, observed generation, a failed rollout), not condition timestamps or progress messages.
pub fn deployment(d: &Deployment) -> Option<u64> {
    let st = d.status.as_ref();
    let v = json!({
        "object": object(d)?,
        "replicas": st.and_then(|s| s.replicas),
        "ready": st.and_then(|s| s.ready_replicas),
        "updated": st.and_then(|s| s.updated_replicas),
        "observed": st.and_then(|s| s.observed_generation),
        "problem": deployment_problem(d),
    });
    Some(digest(&v))
}

/// Whether `pod` is a System's bare Pod (a controller reference to a System), not a Deployment's.
pub fn is_bare(pod: &Pod) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.kind == "System")
}

/// Predicate of Pods. A bare Pod: [`object`] (drift), phase, readiness and problems. A Deployment's Pod:
/// only its problem (what the System's status shows of it; its readiness arrives through the
/// Deployment), so a healthy Pod's scheduling, start and readiness wake nobody: [`QUIET`].
pub fn pod(p: &Pod) -> Option<u64> {
    let problem = pod_problem(p);
    if !is_bare(p) {
        return Some(match problem {
            None => QUIET,
            Some(pr) => digest(&json!(pr)),
        });
    }
    let st = p.status.as_ref();
    let ready = st
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let v = json!({
        "object": object(p)?,
        "phase": st.and_then(|s| s.phase.as_ref()),
        "ready": ready,
        "problem": problem,
    });
    Some(digest(&v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentStatus;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
    use k8s_openapi::jiff::Timestamp;

    fn deploy() -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "generation": 1,
                         "annotations": {"tycho.dev/render-hash": "a"}},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": {"replicas": 1, "readyReplicas": 0, "observedGeneration": 1},
        }))
        .unwrap()
    }

    #[test]
    fn the_filter_drops_unchanged_digests_and_passes_deletions() {
        use kube::runtime::watcher::Event;
        let mut f = DigestFilter::default();
        let d = deploy();
        assert!(
            f.admit(&Event::InitApply(d.clone()), deployment),
            "first sight"
        );
        let mut noise = d.clone();
        noise.metadata.resource_version = Some("2".into());
        assert!(
            !f.admit(&Event::Apply(noise), deployment),
            "nothing read changed"
        );
        let mut ready = d.clone();
        ready.status.as_mut().unwrap().ready_replicas = Some(1);
        assert!(f.admit(&Event::Apply(ready.clone()), deployment));
        assert!(
            f.admit(&Event::Delete(ready.clone()), deployment),
            "deletions pass"
        );
        assert!(
            f.admit(&Event::Apply(ready), deployment),
            "seen again after deletion"
        );
    }

    #[test]
    fn a_system_does_not_wake_on_its_own_status() {
        let mut s: System = serde_json::from_value(json!({
            "apiVersion": "tycho.dev/v1alpha1", "kind": "System",
            "metadata": {"name": "web", "generation": 1},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        }))
        .unwrap();
        let before = system(&s);
        s.status = Some(Default::default());
        s.metadata.resource_version = Some("42".into());
        assert_eq!(system(&s), before);
        s.metadata.generation = Some(2);
        assert_ne!(system(&s), before);
        s.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        assert_ne!(system(&s), before);
    }

    #[test]
    fn a_deployment_wakes_on_readiness_and_drift_only() {
        let d = deploy();
        let base = deployment(&d);
        let mut noise = d.clone();
        noise.metadata.resource_version = Some("9".into());
        noise.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        noise.status.as_mut().unwrap().collision_count = Some(1);
        assert_eq!(
            deployment(&noise),
            base,
            "resourceVersion, managedFields, unread status"
        );
        let mut ready = d.clone();
        ready.status = Some(DeploymentStatus {
            ready_replicas: Some(1),
            ..ready.status.unwrap()
        });
        assert_ne!(deployment(&ready), base, "readiness");
        let mut drift = d.clone();
        drift.spec.as_mut().unwrap().replicas = Some(3);
        assert_ne!(deployment(&drift), base, "a spec change (drift)");
        let mut rehashed = d;
        rehashed
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert("tycho.dev/render-hash".into(), "b".into());
        assert_ne!(deployment(&rehashed), base, "the render hash");
    }

    fn pods() -> (Pod, Pod) {
        let deployment_pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "ns",
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": "web-1", "uid": "r", "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        }))
        .unwrap();
        let mut bare = deployment_pod.clone();
        bare.metadata.owner_references.as_mut().unwrap()[0] = serde_json::from_value(json!(
            {"apiVersion": "tycho.dev/v1alpha1", "kind": "System", "name": "web", "uid": "s",
             "controller": true}
        ))
        .unwrap();
        (deployment_pod, bare)
    }

    fn running(p: &Pod) -> Pod {
        let mut p = p.clone();
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            start_time: Some(Time(Timestamp::UNIX_EPOCH)),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        p
    }

    fn crashing(p: &Pod) -> Pod {
        let mut p = running(p);
        p.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
            name: "c".into(),
            restart_count: 3,
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("CrashLoopBackOff".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        p
    }

    #[test]
    fn a_bare_pod_wakes_on_phase_readiness_and_problems() {
        let (_, bare) = pods();
        assert!(is_bare(&bare));
        let base = pod(&bare);
        let mut timestamps = bare.clone();
        timestamps.status = Some(PodStatus {
            start_time: Some(Time(Timestamp::UNIX_EPOCH)),
            ..Default::default()
        });
        assert_eq!(pod(&timestamps), base, "timestamps wake nobody");
        assert_ne!(pod(&running(&bare)), base);
        assert_ne!(pod(&crashing(&bare)), pod(&running(&bare)));
    }

    #[test]
    fn a_deployment_pod_is_quiet_until_it_has_a_problem() {
        use kube::runtime::watcher::Event;
        let (dp, _) = pods();
        assert!(!is_bare(&dp));
        assert_eq!(pod(&dp), Some(QUIET));
        assert_eq!(pod(&running(&dp)), Some(QUIET));
        assert_ne!(pod(&crashing(&dp)), Some(QUIET));
        let mut f = DigestFilter::default();
        assert!(
            !f.admit(&Event::Apply(dp.clone()), pod),
            "a healthy new Pod"
        );
        assert!(!f.admit(&Event::Apply(running(&dp)), pod), "it runs");
        assert!(f.admit(&Event::Apply(crashing(&dp)), pod), "it crashes");
        assert!(f.admit(&Event::Apply(running(&dp)), pod), "it recovers");
        assert!(
            !f.admit(&Event::Delete(running(&dp)), pod),
            "a healthy Pod goes"
        );
        f.admit(&Event::Apply(crashing(&dp)), pod);
        assert!(
            f.admit(&Event::Delete(crashing(&dp)), pod),
            "a crashing Pod goes"
        );
    }
}

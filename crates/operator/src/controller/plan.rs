//! The reconcile decision as a pure function: a System's rendered children and its live children (as
//! the caches have them) → a [`Plan`]: which children to apply and why, which bare Pod to replace, which
//! children to prune. No I/O; `reconcile` carries a plan out and computes the status afterwards.
//!
//! A child is applied when it is missing, when its render hash (annotation [`RENDER_HASH`]) differs
//! from the live one (the spec changed), or when the hash is the same but a field Tycho sets was
//! changed by someone else (drift). A bare Pod whose spec hash ([`SPEC_HASH`]) changed is replaced:
//! a Pod's spec cannot change in place.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::{Resource, ResourceExt};
use serde::Serialize;

use crate::render::{Rendered, WorkloadObject};
use tycho_model::{LABEL_MANAGED_BY, MANAGED_BY};

use super::diff::{RENDER_HASH, SPEC_HASH, hash_json, is_subset};
use super::error::ControllerError;

/// Why a child is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// It does not exist (or is being deleted).
    Create,
    /// The render changed.
    Update,
    /// Same render, but a field Tycho sets was changed by someone else.
    Restore,
}

/// What to do with one rendered child.
#[derive(Clone, Debug, PartialEq)]
pub enum Step<K> {
    /// The live object already matches: nothing to write.
    Keep(K),
    /// Apply `desired` (its render hash annotation already set).
    Apply {
        /// The object to apply.
        desired: K,
        /// Why.
        why: Why,
        /// The live object, if any.
        live: Option<K>,
    },
}

impl<K> Step<K> {
    /// Whether this step writes.
    pub fn writes(&self) -> bool {
        matches!(self, Step::Apply { .. })
    }
}

/// What to do with the workload.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkloadStep {
    /// The Deployment.
    Deployment(Box<Step<Deployment>>),
    /// The bare Pod.
    Pod(Box<Step<Pod>>),
    /// Delete the bare Pod `name` (its spec changed); it is created again once it is gone.
    ReplacePod(String),
    /// The bare Pod `name` is terminating; wait for it.
    PodTerminating(String),
    /// A paused System with a bare Pod: no Pod.
    None,
}

/// A child to delete.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Prune {
    /// Its kind.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
}

/// Everything one reconcile writes to the children, decided without the API.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The files ConfigMap.
    pub config_map: Option<Step<ConfigMap>>,
    /// The Service.
    pub service: Option<Step<Service>>,
    /// The NetworkPolicy.
    pub network_policy: Option<Step<NetworkPolicy>>,
    /// The Deployment or bare Pod.
    pub workload: WorkloadStep,
    /// Children no longer rendered.
    pub prune: Vec<Prune>,
}

impl Plan {
    /// Whether carrying out this plan writes nothing.
    pub fn is_empty(&self) -> bool {
        !self.config_map.as_ref().is_some_and(Step::writes)
            && !self.service.as_ref().is_some_and(Step::writes)
            && !self.network_policy.as_ref().is_some_and(Step::writes)
            && match &self.workload {
                WorkloadStep::Deployment(s) => !s.writes(),
                WorkloadStep::Pod(s) => !s.writes(),
                WorkloadStep::ReplacePod(_) => false,
                WorkloadStep::PodTerminating(_) | WorkloadStep::None => true,
            }
            && self.prune.is_empty()
    }
}

/// The live children of one System.
#[derive(Clone, Debug, Default)]
pub struct Live {
    /// Deployments labelled for the System.
    pub deployments: Vec<Deployment>,
    /// Pods labelled for the System.
    pub pods: Vec<Pod>,
    /// Services labelled for the System.
    pub services: Vec<Service>,
    /// ConfigMaps labelled for the System.
    pub config_maps: Vec<ConfigMap>,
    /// NetworkPolicies labelled for the System.
    pub network_policies: Vec<NetworkPolicy>,
}

/// `value` as JSON, or a serialization error naming the object.
pub(super) fn to_json<T: Serialize>(
    value: &T,
    kind: &'static str,
    name: &str,
) -> Result<serde_json::Value, ControllerError> {
    serde_json::to_value(value).map_err(|source| ControllerError::Serialize {
        kind,
        name: name.to_string(),
        source,
    })
}

fn find<'a, K: Resource>(items: &'a [K], name: &str) -> Option<&'a K> {
    items
        .iter()
        .find(|o| o.meta().name.as_deref() == Some(name))
}

/// Whether `obj` has a controller owner reference to the System with `uid`.
pub fn controlled_by<K: Resource>(obj: &K, uid: &str) -> bool {
    obj.meta().owner_references.as_ref().is_some_and(|refs| {
        refs.iter()
            .any(|r| r.controller == Some(true) && r.uid == uid)
    })
}

/// Decide one child: stamp the render hash on `desired` and compare with the live object.
pub fn child<K>(mut desired: K, live: &[K], kind: &'static str) -> Result<Step<K>, ControllerError>
where
    K: Resource + Serialize + Clone,
{
    let name = desired.meta().name.clone().unwrap_or_default();
    let hash = hash_json(&to_json(&desired, kind, &name)?);
    desired
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(RENDER_HASH.to_string(), hash.clone());
    let live = find(live, &name).filter(|l| l.meta().deletion_timestamp.is_none());
    let why = match live {
        None => Why::Create,
        Some(l) if l.annotations().get(RENDER_HASH) != Some(&hash) => Why::Update,
        Some(l) if is_subset(&to_json(&desired, kind, &name)?, &to_json(l, kind, &name)?) => {
            return Ok(Step::Keep(l.clone()));
        }
        Some(_) => Why::Restore,
    };
    Ok(Step::Apply {
        desired,
        why,
        live: live.cloned(),
    })
}

/// Decide the bare Pod: replace it when the System owns it and its spec hash changed.
fn pod(mut desired: Pod, live: &[Pod], uid: &str) -> Result<WorkloadStep, ControllerError> {
    let name = desired.metadata.name.clone().unwrap_or_default();
    let spec = to_json(&desired.spec, "Pod", &name)?;
    // A restart request (`kubectl.kubernetes.io/restartedAt`) is part of what the Pod must match; a Pod
    // without one keeps the hash of its spec alone.
    let spec_hash = match desired.annotations().get(tycho_model::POD_RESTARTED_AT) {
        Some(at) => hash_json(&serde_json::json!({ "spec": spec, "restartedAt": at })),
        None => hash_json(&spec),
    };
    desired
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(SPEC_HASH.to_string(), spec_hash.clone());
    if let Some(l) = find(live, &name) {
        if l.metadata.deletion_timestamp.is_some() {
            return Ok(WorkloadStep::PodTerminating(name));
        }
        if controlled_by(l, uid) && l.annotations().get(SPEC_HASH) != Some(&spec_hash) {
            return Ok(WorkloadStep::ReplacePod(name));
        }
    }
    Ok(WorkloadStep::Pod(Box::new(child(desired, live, "Pod")?)))
}

/// Children of `kind` in `live` that the System controls, carry Tycho's label, are not being deleted,
/// and are not `keep`.
fn prunable<K: Resource>(
    live: &[K],
    keep: Option<&str>,
    uid: &str,
    kind: &'static str,
) -> Vec<Prune> {
    live.iter()
        .filter(|o| o.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY))
        .filter(|o| controlled_by(*o, uid) && o.meta().deletion_timestamp.is_none())
        .map(|o| o.name_any())
        .filter(|n| keep != Some(n.as_str()))
        .map(|name| Prune { kind, name })
        .collect()
}

/// The plan for a System with `uid`, whose render is `rendered`, given its `live` children. With
/// `paused` a bare Pod is not run.
pub fn plan(
    rendered: Rendered,
    live: &Live,
    uid: &str,
    paused: bool,
) -> Result<Plan, ControllerError> {
    let keep_cm = rendered
        .config_map
        .as_ref()
        .and_then(|c| c.metadata.name.clone());
    let keep_svc = rendered
        .service
        .as_ref()
        .and_then(|s| s.metadata.name.clone());
    let keep_np = rendered
        .network_policy
        .as_ref()
        .and_then(|n| n.metadata.name.clone());
    let network_policy = rendered
        .network_policy
        .map(|np| child(np, &live.network_policies, "NetworkPolicy"))
        .transpose()?;
    let config_map = rendered
        .config_map
        .map(|cm| child(cm, &live.config_maps, "ConfigMap"))
        .transpose()?;
    let service = rendered
        .service
        .map(|svc| child(svc, &live.services, "Service"))
        .transpose()?;
    let (workload, keep_deploy, keep_pod) = match rendered.workload {
        WorkloadObject::Deployment(d) => {
            let name = d.metadata.name.clone();
            (
                WorkloadStep::Deployment(Box::new(child(*d, &live.deployments, "Deployment")?)),
                name,
                None,
            )
        }
        WorkloadObject::Pod(_) if paused => (WorkloadStep::None, None, None),
        WorkloadObject::Pod(p) => {
            let name = p.metadata.name.clone();
            (pod(*p, &live.pods, uid)?, None, name)
        }
    };
    let mut prune = prunable(&live.config_maps, keep_cm.as_deref(), uid, "ConfigMap");
    prune.extend(prunable(
        &live.services,
        keep_svc.as_deref(),
        uid,
        "Service",
    ));
    prune.extend(prunable(
        &live.deployments,
        keep_deploy.as_deref(),
        uid,
        "Deployment",
    ));
    prune.extend(prunable(&live.pods, keep_pod.as_deref(), uid, "Pod"));
    prune.extend(prunable(
        &live.network_policies,
        keep_np.as_deref(),
        uid,
        "NetworkPolicy",
    ));
    Ok(Plan {
        config_map,
        service,
        network_policy,
        workload,
        prune,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{RenderSettings, Renderer};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use tycho_model::System;

    const UID: &str = "uid-1";

    fn system(spec: serde_json::Value) -> System {
        let mut s: System = serde_json::from_value(serde_json::json!({
            "apiVersion": "tycho.dev/v1alpha1", "kind": "System",
            "metadata": {"name": "web", "namespace": "ns", "uid": UID},
            "spec": spec,
        }))
        .unwrap();
        s.metadata.uid = Some(UID.into());
        s
    }

    fn nginx() -> serde_json::Value {
        serde_json::json!({"containers": [{"name": "nginx", "image": "nginx:1.27",
            "ports": [{"port": 80}], "files": [{"path": "/etc/x", "content": "x"}]}]})
    }

    fn render(s: &System) -> Rendered {
        Renderer::new(RenderSettings::default())
            .unwrap()
            .render(s)
            .unwrap()
    }

    /// What the API server would hold after carrying out `plan` (the applied objects as they are).
    fn applied(plan: &Plan) -> Live {
        fn take<K: Clone>(s: &Option<Step<K>>) -> Vec<K> {
            match s {
                Some(Step::Keep(k)) | Some(Step::Apply { desired: k, .. }) => vec![k.clone()],
                None => vec![],
            }
        }
        let mut live = Live {
            config_maps: take(&plan.config_map),
            services: take(&plan.service),
            network_policies: take(&plan.network_policy),
            ..Default::default()
        };
        match &plan.workload {
            WorkloadStep::Deployment(s) => live.deployments = take(&Some(s.as_ref().clone())),
            WorkloadStep::Pod(s) => live.pods = take(&Some(s.as_ref().clone())),
            _ => {}
        }
        live
    }

    fn deployment_why(p: &Plan) -> Option<Why> {
        match &p.workload {
            WorkloadStep::Deployment(s) => match s.as_ref() {
                Step::Apply { why, .. } => Some(*why),
                Step::Keep(_) => None,
            },
            _ => None,
        }
    }

    #[test]
    fn a_new_system_creates_every_child() {
        let s = system(nginx());
        let p = plan(render(&s), &Live::default(), UID, false).unwrap();
        assert!(matches!(
            p.config_map,
            Some(Step::Apply {
                why: Why::Create,
                ..
            })
        ));
        assert!(matches!(
            p.service,
            Some(Step::Apply {
                why: Why::Create,
                ..
            })
        ));
        assert_eq!(deployment_why(&p), Some(Why::Create));
        assert!(p.prune.is_empty());
        assert!(!p.is_empty());
    }

    #[test]
    fn an_unchanged_system_plans_nothing() {
        let s = system(nginx());
        let first = plan(render(&s), &Live::default(), UID, false).unwrap();
        let live = applied(&first);
        let again = plan(render(&s), &live, UID, false).unwrap();
        assert!(again.is_empty(), "{again:?}");
        assert!(matches!(again.service, Some(Step::Keep(_))));
    }

    #[test]
    fn a_spec_change_updates_and_drift_is_restored() {
        let s = system(nginx());
        let live = applied(&plan(render(&s), &Live::default(), UID, false).unwrap());
        let mut changed = nginx();
        changed["containers"][0]["image"] = "nginx:1.28".into();
        let p = plan(render(&system(changed)), &live, UID, false).unwrap();
        assert_eq!(deployment_why(&p), Some(Why::Update));
        assert!(matches!(p.service, Some(Step::Keep(_))));
        // Someone scales the Deployment by hand: same render hash, a field differs.
        let mut drifted = live.clone();
        drifted.deployments[0].spec.as_mut().unwrap().replicas = Some(5);
        let p = plan(render(&s), &drifted, UID, false).unwrap();
        assert_eq!(deployment_why(&p), Some(Why::Restore));
    }

    #[test]
    fn children_no_longer_rendered_are_pruned_only_when_ours() {
        let s = system(nginx());
        let live = applied(&plan(render(&s), &Live::default(), UID, false).unwrap());
        // The rendered children carry the System's controller reference.
        assert!(controlled_by(&live.services[0], UID));
        // Without files and ports: no ConfigMap, no Service.
        let bare = serde_json::json!({"containers": [{"name": "nginx", "image": "nginx:1.27"}]});
        let p = plan(render(&system(bare.clone())), &live, UID, false).unwrap();
        let mut pruned: Vec<_> = p.prune.iter().map(|x| (x.kind, x.name.as_str())).collect();
        pruned.sort();
        assert_eq!(pruned, vec![("ConfigMap", "web-files"), ("Service", "web")]);
        // Not controlled by this System (another owner, or none): left alone.
        let mut foreign = live.clone();
        foreign.services[0].metadata.owner_references = None;
        let p = plan(render(&system(bare)), &foreign, UID, false).unwrap();
        assert_eq!(p.prune.len(), 1);
    }

    #[test]
    fn a_bare_pod_is_replaced_when_its_spec_changes_and_waited_for_while_terminating() {
        let mut spec = nginx();
        spec["workload"] = "Pod".into();
        let s = system(spec.clone());
        let mut live = applied(&plan(render(&s), &Live::default(), UID, false).unwrap());
        assert!(plan(render(&s), &live, UID, false).unwrap().is_empty());
        let mut changed = spec.clone();
        changed["containers"][0]["image"] = "nginx:1.28".into();
        let p = plan(render(&system(changed.clone())), &live, UID, false).unwrap();
        assert_eq!(p.workload, WorkloadStep::ReplacePod("web".into()));
        live.pods[0].metadata.deletion_timestamp =
            Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        let p = plan(render(&system(changed)), &live, UID, false).unwrap();
        assert_eq!(p.workload, WorkloadStep::PodTerminating("web".into()));
        // Paused: no Pod, and the running one is pruned.
        let live = applied(&plan(render(&s), &Live::default(), UID, false).unwrap());
        let p = plan(render(&s), &live, UID, true).unwrap();
        assert_eq!(p.workload, WorkloadStep::None);
        assert_eq!(
            p.prune,
            vec![Prune {
                kind: "Pod",
                name: "web".into()
            }]
        );
    }

    fn isolated() -> serde_json::Value {
        let mut spec = nginx();
        spec["network"] =
            serde_json::json!({"isolated": true, "allowFrom": [{"namespace": "monitoring"}]});
        spec
    }

    fn np_why(p: &Plan) -> Option<Why> {
        match &p.network_policy {
            Some(Step::Apply { why, .. }) => Some(*why),
            _ => None,
        }
    }

    #[test]
    fn an_isolated_system_applies_its_network_policy_and_prunes_it_when_switched_off() {
        let s = system(isolated());
        let p = plan(render(&s), &Live::default(), UID, false).unwrap();
        assert_eq!(np_why(&p), Some(Why::Create));
        let live = applied(&p);
        assert_eq!(live.network_policies.len(), 1);
        assert!(controlled_by(&live.network_policies[0], UID));
        // Unchanged: nothing to write.
        let again = plan(render(&s), &live, UID, false).unwrap();
        assert!(again.is_empty(), "{again:?}");
        assert!(matches!(again.network_policy, Some(Step::Keep(_))));
        // Another peer: an update.
        let mut more = isolated();
        more["network"]["allowFrom"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"cidr": "10.0.0.0/8"}));
        let p = plan(render(&system(more)), &live, UID, false).unwrap();
        assert_eq!(np_why(&p), Some(Why::Update));
        // Someone edits the policy's rules by hand: restored.
        let mut drifted = live.clone();
        drifted.network_policies[0].spec.as_mut().unwrap().ingress = None;
        let p = plan(render(&s), &drifted, UID, false).unwrap();
        assert_eq!(np_why(&p), Some(Why::Restore));
        // Isolation switched off (or network removed): pruned.
        let mut off = isolated();
        off["network"]["isolated"] = false.into();
        for spec in [off, nginx()] {
            let p = plan(render(&system(spec)), &live, UID, false).unwrap();
            assert!(p.network_policy.is_none());
            assert_eq!(
                p.prune,
                vec![Prune {
                    kind: "NetworkPolicy",
                    name: "web".into()
                }]
            );
        }
        // A policy of the same name not controlled by this System is left alone.
        let mut foreign = live.clone();
        foreign.network_policies[0].metadata.owner_references = None;
        let p = plan(render(&system(nginx())), &foreign, UID, false).unwrap();
        assert!(p.prune.is_empty());
    }
}

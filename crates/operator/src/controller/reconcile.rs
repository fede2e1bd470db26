//! The reconcile pipeline: read → session → validate → render → apply → prune → status.
//!
//! `reconcile` only orchestrates; the decisions are pure functions in [`super::session`], [`super::diff`]
//! and [`super::status`]. Writes: forced server-side apply with the one field manager [`FIELD_MANAGER`],
//! only when a child would change; a status merge patch only when the status changed; nothing else.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tracing::{debug, info, instrument, warn};

use crate::render::{RenderError, Renderer, WorkloadObject};
use tycho_model::{LABEL_MANAGED_BY, MANAGED_BY, Phase, System, SystemStatus, Workload};

use super::FIELD_MANAGER;
use super::backoff::Backoffs;
use super::cache::Caches;
use super::collect::{self, Collector};
use super::diff::{RENDER_HASH, SPEC_HASH, hash_json, is_subset};
use super::error::{ControllerError, api_code};
use super::metrics::Metrics;
use super::session::{Clock, LeaseKey, LeaseView, SessionState, SessionTracker, lifetime_deadline};
use super::status::{
    AppliedWorkload, Outcome, SESSION_VALID, SessionStatus, StatusInput, compute_status,
    pick_node_address, same_status, status_patch,
};

/// How long a node address lookup is reused.
const NODE_TTL: Duration = Duration::from_secs(60);
/// Safety requeue while a replaced Pod terminates (its deletion also triggers a reconcile).
const REPLACE_REQUEUE: Duration = Duration::from_secs(2);

/// Shared state of all reconciles.
pub(crate) struct Context {
    pub client: Client,
    pub renderer: Renderer,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub sessions: Arc<Mutex<SessionTracker>>,
    pub backoffs: Mutex<Backoffs<(String, String)>>,
    pub clock: Arc<dyn Clock>,
    pub nodes: tokio::sync::Mutex<NodeCache>,
    pub caches: Vec<Caches>,
    pub resync: Duration,
    pub permits: Option<Semaphore>,
    pub collector: Collector,
}

/// Cached node address for endpoint URLs.
#[derive(Default)]
pub(crate) struct NodeCache {
    at: Option<Instant>,
    address: Option<String>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Context {
    /// The caches of the scope that watches namespace `ns`.
    fn caches(&self, ns: &str) -> Result<&Caches, ControllerError> {
        self.caches
            .iter()
            .find(|c| c.covers(ns))
            .ok_or_else(|| ControllerError::NotWatched(ns.to_string()))
    }
}

fn key_of(system: &System) -> (String, String) {
    (system.namespace().unwrap_or_default(), system.name_any())
}

/// Reconcile one System: the entry point given to the Controller.
#[instrument(skip(system, ctx), fields(name = %system.name_any(), namespace = %system.namespace().unwrap_or_default()))]
pub(crate) async fn reconcile(
    system: Arc<System>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    let _permit = match &ctx.permits {
        Some(s) => s.acquire().await.ok(),
        None => None,
    };
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let result = reconcile_system(&system, &ctx).await;
    ctx.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    match &result {
        Ok(action) => {
            lock(&ctx.backoffs).reset(&key_of(&system));
            debug!(?action, "reconciled");
        }
        Err(e) => {
            ctx.metrics.error(e.reason());
            report_error(&system, e, &ctx).await;
        }
    }
    result
}

/// What to do after a failed reconcile: wait for a change on permanent errors, back off on transient ones.
pub(crate) fn error_policy(
    system: Arc<System>,
    error: &ControllerError,
    ctx: Arc<Context>,
) -> Action {
    if error.is_permanent() {
        Action::await_change()
    } else {
        let delay = lock(&ctx.backoffs).next(&key_of(&system));
        debug!(?delay, reason = error.reason(), "retrying after backoff");
        Action::requeue(delay)
    }
}

/// The central error path: log, put permanent errors on the System as a condition, and publish a Warning
/// naming the field (for permanent errors only when the condition is new, so a System stuck on a bad spec
/// costs no writes).
async fn report_error(system: &System, error: &ControllerError, ctx: &Context) {
    warn!(reason = error.reason(), error = %error, "reconcile failed");
    let mut publish = !error.is_permanent();
    if error.is_permanent() {
        let message = error.to_string();
        let session = match system.spec.session {
            Some(_) => SessionStatus::Active,
            None => SessionStatus::None,
        };
        let input = StatusInput {
            system,
            outcome: Outcome::Invalid {
                reason: error.reason(),
                message: &message,
            },
            session: &session,
            expires_at: lifetime_of(system),
            node_address: None,
            now: ctx.clock.now(),
        };
        let status = compute_status(&input, system.status.as_ref());
        match write_status(system, &status, ctx).await {
            Ok(changed) => publish = changed,
            Err(e) => warn!(error = %e, "cannot write the failure to the System's status"),
        }
    }
    if publish {
        event(
            ctx,
            system,
            EventType::Warning,
            error.reason(),
            "Reconcile",
            error.to_string(),
        )
        .await;
    }
}

pub(super) async fn event(
    ctx: &Context,
    system: &System,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let mut note = note;
    if note.len() > 1000 {
        let mut cut = 1000;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
    }
    let ev = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &system.object_ref(&())).await {
        warn!(error = %e, reason, "cannot publish an Event");
    }
}

fn lifetime_of(system: &System) -> Option<Timestamp> {
    let created = system.metadata.creation_timestamp.as_ref()?.0;
    system
        .spec
        .lifetime
        .map(|secs| lifetime_deadline(created, secs))
}

fn had_valid_session(system: &System) -> bool {
    system.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == SESSION_VALID && c.status == "True" && c.reason == "SessionActive")
    })
}

fn until(now: Timestamp, then: Timestamp) -> Duration {
    let ms = then.as_millisecond().saturating_sub(now.as_millisecond());
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

async fn reconcile_system(system: &System, ctx: &Arc<Context>) -> Result<Action, ControllerError> {
    if system.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = system
        .metadata
        .name
        .clone()
        .ok_or(ControllerError::MissingMetadata("name"))?;
    let ns = system
        .metadata
        .namespace
        .clone()
        .ok_or(ControllerError::MissingMetadata("namespace"))?;
    let uid = system
        .metadata
        .uid
        .clone()
        .ok_or(ControllerError::MissingMetadata("uid"))?;

    // Lifetime.
    let lifetime = lifetime_of(system);
    if let Some(deadline) = lifetime
        && ctx.clock.now() >= deadline
    {
        collect::lifetime(system, &ns, &name, deadline, ctx).await?;
        return Ok(Action::await_change());
    }
    let mut next_deadline = lifetime;

    // Session.
    let session = match &system.spec.session {
        None => SessionStatus::None,
        Some(lease_name) => {
            let key = LeaseKey::new(&ns, lease_name);
            let lease =
                Caches::get(&ctx.caches(&ns)?.leases, &ns, lease_name).map(|l| l.as_ref().clone());
            let now = ctx.clock.now();
            let mut state = {
                let mut tracker = lock(&ctx.sessions);
                match &lease {
                    Some(l) => tracker.observe(&key, &LeaseView::from_lease(l), now),
                    None => tracker.observe_missing(&key, now),
                }
            };
            if state == SessionState::Missing && had_valid_session(system) {
                // It ran under this Lease before (e.g. the Lease was deleted while we were down).
                state = SessionState::Deleted { noticed_at: now };
            }
            match state {
                SessionState::Active { expires_at } => {
                    next_deadline = Some(next_deadline.map_or(expires_at, |d| d.min(expires_at)));
                    SessionStatus::Active
                }
                SessionState::Missing => {
                    let status = compute_status(
                        &StatusInput {
                            system,
                            outcome: Outcome::NotStarted,
                            session: &SessionStatus::Missing,
                            expires_at: lifetime,
                            node_address: None,
                            now,
                        },
                        system.status.as_ref(),
                    );
                    if write_status(system, &status, ctx).await? {
                        event(
                            ctx,
                            system,
                            EventType::Warning,
                            "SessionNotFound",
                            "Start",
                            format!(
                                "spec.session: Lease {lease_name} does not exist in namespace {ns}; the System does not start until it does"
                            ),
                        )
                        .await;
                    }
                    // The Lease's creation triggers a reconcile (watched).
                    return Ok(Action::await_change());
                }
                ended => {
                    // Collected by its own workers, outside the reconcile limit: a burst of
                    // expiries does not wait behind reconciles, nor hold them up.
                    collect::spawn_session(ctx, key, lease, ended);
                    return Ok(Action::await_change());
                }
            }
        }
    };

    // Validate, check claims, render.
    tycho_model::validate::validate(system).map_err(ControllerError::InvalidSpec)?;
    check_claims(system, &ns, ctx.caches(&ns)?)?;
    let rendered = ctx.renderer.render(system).map_err(|e| match e {
        RenderError::Invalid(fields) => ControllerError::InvalidSpec(fields),
        other => ControllerError::RenderFailed(other),
    })?;

    // Read the live children.
    let live = LiveChildren::cached(ctx.caches(&ns)?, &ns, &name);
    let mut changes = Changes::default();

    // Apply: ConfigMap, Service, then the workload.
    let applied_cm = match rendered.config_map {
        Some(cm) => {
            let existing = find(&live.config_maps, cm.metadata.name.as_deref());
            Some(apply_child(ctx, &ns, cm, existing, "ConfigMap", &mut changes).await?)
        }
        None => None,
    };
    let applied_svc = match rendered.service {
        Some(svc) => {
            let existing = find(&live.services, svc.metadata.name.as_deref());
            Some(apply_child(ctx, &ns, svc, existing, "Service", &mut changes).await?)
        }
        None => None,
    };
    let mut requeue_soon = false;
    let (applied_deploy, applied_pod, pod_name) = match rendered.workload {
        WorkloadObject::Deployment(d) => {
            let existing = find(&live.deployments, d.metadata.name.as_deref());
            (
                Some(apply_child(ctx, &ns, *d, existing, "Deployment", &mut changes).await?),
                None,
                None,
            )
        }
        WorkloadObject::Pod(_) if system.spec.paused => (None, None, None),
        WorkloadObject::Pod(p) => {
            let pod_name = p.metadata.name.clone();
            let (pod, wait) = apply_pod(ctx, &ns, &uid, *p, &live.pods, &mut changes).await?;
            requeue_soon |= wait;
            (None, pod, pod_name)
        }
    };

    // Prune children the render no longer produces.
    let keep_cm = applied_cm.as_ref().and_then(|c| c.metadata.name.clone());
    let keep_svc = applied_svc.as_ref().and_then(|s| s.metadata.name.clone());
    let keep_deploy = applied_deploy
        .as_ref()
        .and_then(|d| d.metadata.name.clone());
    prune(
        ctx,
        &ns,
        &uid,
        &live.config_maps,
        keep_cm.as_deref(),
        "ConfigMap",
        &mut changes,
    )
    .await?;
    prune(
        ctx,
        &ns,
        &uid,
        &live.services,
        keep_svc.as_deref(),
        "Service",
        &mut changes,
    )
    .await?;
    prune(
        ctx,
        &ns,
        &uid,
        &live.deployments,
        keep_deploy.as_deref(),
        "Deployment",
        &mut changes,
    )
    .await?;
    let prunable_pods: Vec<Pod> = live
        .pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect();
    prune(
        ctx,
        &ns,
        &uid,
        &prunable_pods,
        pod_name.as_deref(),
        "Pod",
        &mut changes,
    )
    .await?;

    // Events for what changed.
    for (reason, what) in [
        ("Created", &changes.created),
        ("Updated", &changes.updated),
        ("DriftCorrected", &changes.restored),
        ("Replaced", &changes.replaced),
        ("Pruned", &changes.pruned),
    ] {
        if !what.is_empty() {
            let verb = match reason {
                "Created" => "created",
                "Updated" => "updated to the current spec",
                "DriftCorrected" => "restored after an outside change",
                "Replaced" => "deleted for replacement (a Pod's spec cannot change in place)",
                _ => "deleted (no longer rendered)",
            };
            event(
                ctx,
                system,
                EventType::Normal,
                reason,
                "Apply",
                format!("{verb}: {}", what.join(", ")),
            )
            .await;
        }
    }

    // Status.
    let workload = match (&applied_deploy, system.spec.workload) {
        (Some(d), _) => AppliedWorkload::Deployment(d),
        (None, Workload::Pod) | (None, Workload::Deployment) => {
            AppliedWorkload::Pod(applied_pod.as_ref())
        }
    };
    let node_address = node_address(ctx).await;
    let status = compute_status(
        &StatusInput {
            system,
            outcome: Outcome::Applied {
                workload,
                service: applied_svc.as_ref(),
                pods: &live.pods,
            },
            session: &session,
            expires_at: lifetime,
            node_address: node_address.as_deref(),
            now: ctx.clock.now(),
        },
        system.status.as_ref(),
    );
    let was_ready = system.status.as_ref().and_then(|s| s.phase) == Some(Phase::Ready);
    if write_status(system, &status, ctx).await? && !was_ready && status.phase == Some(Phase::Ready)
    {
        let urls: Vec<String> = status
            .endpoints
            .iter()
            .map(|e| match (&e.url, e.node_port) {
                (Some(u), _) => format!("{}:{} at {u}", e.container, e.port),
                (None, Some(np)) => format!("{}:{} on node port {np}", e.container, e.port),
                (None, None) => format!("{}:{}", e.container, e.port),
            })
            .collect();
        let note = if urls.is_empty() {
            format!("{} ready", status.ready.clone().unwrap_or_default())
        } else {
            format!(
                "{} ready; {}",
                status.ready.clone().unwrap_or_default(),
                urls.join(", ")
            )
        };
        event(ctx, system, EventType::Normal, "Ready", "Status", note).await;
    }

    let now = ctx.clock.now();
    let mut after = ctx.resync;
    if let Some(deadline) = next_deadline {
        after = after.min(until(now, deadline));
    }
    if requeue_soon {
        after = after.min(REPLACE_REQUEUE);
    }
    Ok(Action::requeue(after))
}

/// Children of one System as the caches have them (label-indexed).
struct LiveChildren {
    deployments: Vec<Deployment>,
    pods: Vec<Pod>,
    services: Vec<Service>,
    config_maps: Vec<ConfigMap>,
}

impl LiveChildren {
    fn cached(caches: &Caches, ns: &str, name: &str) -> Self {
        LiveChildren {
            deployments: caches.deployments.of_system(ns, name),
            pods: caches.pods.of_system(ns, name),
            services: caches.services.of_system(ns, name),
            config_maps: caches.config_maps.of_system(ns, name),
        }
    }
}

fn find<'a, K: Resource>(items: &'a [K], name: Option<&str>) -> Option<&'a K> {
    let name = name?;
    items
        .iter()
        .find(|o| o.meta().name.as_deref() == Some(name))
}

fn controlled_by<K: Resource>(obj: &K, uid: &str) -> bool {
    obj.meta().owner_references.as_ref().is_some_and(|refs| {
        refs.iter()
            .any(|r| r.controller == Some(true) && r.uid == uid)
    })
}

/// What a reconcile changed, for Events.
#[derive(Default)]
struct Changes {
    created: Vec<String>,
    updated: Vec<String>,
    restored: Vec<String>,
    replaced: Vec<String>,
    pruned: Vec<String>,
}

fn serialize<T: Serialize>(
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

/// Apply one child unless the live object already matches it. Returns the object as the API server has it.
async fn apply_child<K>(
    ctx: &Context,
    ns: &str,
    mut desired: K,
    live: Option<&K>,
    kind: &'static str,
    changes: &mut Changes,
) -> Result<K, ControllerError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
{
    let name = desired.meta().name.clone().unwrap_or_default();
    let hash = hash_json(&serialize(&desired, kind, &name)?);
    desired
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(RENDER_HASH.to_string(), hash.clone());
    let mut restoring = false;
    if let Some(live) = live
        && live.meta().deletion_timestamp.is_none()
    {
        let same_render = live.annotations().get(RENDER_HASH) == Some(&hash);
        if same_render {
            if is_subset(
                &serialize(&desired, kind, &name)?,
                &serialize(live, kind, &name)?,
            ) {
                return Ok(live.clone());
            }
            restoring = true;
        }
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let out = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
        .map_err(ControllerError::api("apply", kind, ns, &name))?;
    ctx.metrics.writes.inc();
    let label = format!("{kind} {name}");
    match (live.is_some(), restoring) {
        (false, _) => changes.created.push(label),
        (true, true) => changes.restored.push(label),
        (true, false) => changes.updated.push(label),
    }
    Ok(out)
}

/// Apply the bare Pod; replace it (delete, then create on the next pass) when its spec changed.
/// Returns the applied Pod (None while being replaced) and whether to requeue soon.
async fn apply_pod(
    ctx: &Context,
    ns: &str,
    uid: &str,
    mut desired: Pod,
    live_pods: &[Pod],
    changes: &mut Changes,
) -> Result<(Option<Pod>, bool), ControllerError> {
    let name = desired.metadata.name.clone().unwrap_or_default();
    let spec_hash = hash_json(&serialize(&desired.spec, "Pod", &name)?);
    desired
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(SPEC_HASH.to_string(), spec_hash.clone());
    let live = find(live_pods, Some(&name));
    if let Some(live) = live {
        if live.metadata.deletion_timestamp.is_some() {
            return Ok((None, true));
        }
        let ours = controlled_by(live, uid);
        if ours && live.annotations().get(SPEC_HASH) != Some(&spec_hash) {
            delete_pod(ctx, ns, &name).await?;
            changes.replaced.push(format!("Pod {name}"));
            return Ok((None, true));
        }
        match apply_child(ctx, ns, desired, Some(live), "Pod", changes).await {
            Ok(p) => Ok((Some(p), false)),
            Err(ControllerError::Api { source, .. }) if ours && api_code(&source) == Some(422) => {
                // A field that cannot change in place: replace the Pod.
                delete_pod(ctx, ns, &name).await?;
                changes.replaced.push(format!("Pod {name}"));
                Ok((None, true))
            }
            Err(e) => Err(e),
        }
    } else {
        Ok((
            Some(apply_child(ctx, ns, desired, None, "Pod", changes).await?),
            false,
        ))
    }
}

async fn delete_pod(ctx: &Context, ns: &str, name: &str) -> Result<(), ControllerError> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            ctx.metrics.writes.inc();
            Ok(())
        }
        Err(e) if api_code(&e) == Some(404) => Ok(()),
        Err(e) => Err(ControllerError::api("delete", "Pod", ns, name)(e)),
    }
}

/// Delete the children of `kind` that this System controls, carry Tycho's labels, and are not `keep`.
async fn prune<K>(
    ctx: &Context,
    ns: &str,
    uid: &str,
    live: &[K],
    keep: Option<&str>,
    kind: &'static str,
    changes: &mut Changes,
) -> Result<(), ControllerError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
{
    for obj in live {
        let name = obj.name_any();
        let managed = obj.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY);
        if !managed
            || !controlled_by(obj, uid)
            || keep == Some(name.as_str())
            || obj.meta().deletion_timestamp.is_some()
        {
            continue;
        }
        let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {
                ctx.metrics.writes.inc();
            }
            Err(e) if api_code(&e) == Some(404) => {}
            Err(e) => return Err(ControllerError::api("delete", kind, ns, &name)(e)),
        }
        info!(kind, child = %name, "pruned");
        changes.pruned.push(format!("{kind} {name}"));
    }
    Ok(())
}

fn check_claims(system: &System, ns: &str, caches: &Caches) -> Result<(), ControllerError> {
    let mut seen = BTreeSet::new();
    for (index, v) in system.spec.volumes.iter().enumerate() {
        if !seen.insert(v.claim.as_str()) {
            continue;
        }
        if Caches::get(&caches.claims, ns, &v.claim).is_none() {
            return Err(ControllerError::MissingClaim {
                index,
                claim: v.claim.clone(),
                namespace: ns.to_string(),
            });
        }
    }
    Ok(())
}

/// Write the status if it differs from the stored one (compared order-independently). Returns whether a
/// write happened.
async fn write_status(
    system: &System,
    status: &SystemStatus,
    ctx: &Context,
) -> Result<bool, ControllerError> {
    if same_status(system.status.as_ref(), status) {
        return Ok(false);
    }
    let (ns, name) = key_of(system);
    let api: Api<System> = Api::namespaced(ctx.client.clone(), &ns);
    let body = serialize(
        &status_patch(status).map_err(|source| ControllerError::Serialize {
            kind: "System",
            name: name.clone(),
            source,
        })?,
        "System",
        &name,
    )?;
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    match api.patch_status(&name, &params, &Patch::Merge(&body)).await {
        Ok(_) => {
            ctx.metrics.writes.inc();
            Ok(true)
        }
        // Deleted meanwhile: nothing to report on.
        Err(e) if api_code(&e) == Some(404) => Ok(false),
        Err(e) => Err(ControllerError::api("patch-status", "System", &ns, &name)(
            e,
        )),
    }
}

async fn node_address(ctx: &Context) -> Option<String> {
    let mut cache = ctx.nodes.lock().await;
    if let Some(at) = cache.at
        && at.elapsed() < NODE_TTL
    {
        return cache.address.clone();
    }
    let api: Api<Node> = Api::all(ctx.client.clone());
    cache.address = match api.list(&ListParams::default().limit(100)).await {
        Ok(list) => pick_node_address(&list.items),
        Err(e) => {
            debug!(error = %e, "nodes are not readable; endpoints get no URL");
            None
        }
    };
    cache.at = Some(Instant::now());
    cache.address.clone()
}

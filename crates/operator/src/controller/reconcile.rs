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
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tracing::{debug, info, instrument, warn};

use crate::render::{RenderError, Renderer};
use crate::template;
use tycho_model::{Phase, System, SystemStatus, Workload};

use super::FIELD_MANAGER;
use super::backoff::Backoffs;
use super::cache::{Caches, Indexed, OwnStatuses};
use super::collect::{self, Collector};
use super::error::{ControllerError, api_code};
use super::metrics::Metrics;
use super::plan::{self, Live, Step, Why, WorkloadStep, controlled_by};
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
    pub recorder: super::events::Publisher,
    pub metrics: Arc<Metrics>,
    pub sessions: Arc<Mutex<SessionTracker>>,
    pub backoffs: Mutex<Backoffs<(String, String)>>,
    pub clock: Arc<dyn Clock>,
    pub nodes: tokio::sync::Mutex<NodeCache>,
    pub caches: Vec<Caches>,
    /// Status writes the Systems cache has not shown yet.
    pub own_statuses: Arc<OwnStatuses>,
    pub resync: Duration,
    pub permits: Option<Semaphore>,
    pub collector: Collector,
    /// Set when the controller stops: tasks it spawned (collection, expiry timers) end with it.
    pub stop: tokio::sync::watch::Receiver<bool>,
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
    let system = ctx.own_statuses.overlay(system);
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

/// How long from `now` until `then` (zero when it has passed).
pub(super) fn until(now: Timestamp, then: Timestamp) -> Duration {
    let ms = then.as_millisecond().saturating_sub(now.as_millisecond());
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The identity of a System, which the API server always sets.
struct Ids {
    name: String,
    ns: String,
    uid: String,
}

impl Ids {
    fn of(system: &System) -> Result<Ids, ControllerError> {
        let m = &system.metadata;
        Ok(Ids {
            name: m
                .name
                .clone()
                .ok_or(ControllerError::MissingMetadata("name"))?,
            ns: m
                .namespace
                .clone()
                .ok_or(ControllerError::MissingMetadata("namespace"))?,
            uid: m
                .uid
                .clone()
                .ok_or(ControllerError::MissingMetadata("uid"))?,
        })
    }
}

/// The pipeline: lifetime and session gate → validate → render → plan → act → Events → status.
async fn reconcile_system(system: &System, ctx: &Arc<Context>) -> Result<Action, ControllerError> {
    if system.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ids = Ids::of(system)?;
    ctx.caches(&ids.ns)?.synced().await;
    let caches = ctx.caches(&ids.ns)?;
    // The System as it runs: its template (as cached) applied; the owner comes after validation.
    let template = system
        .spec
        .template
        .as_deref()
        .and_then(|t| caches.template(t));
    let mut effective = template::effective(system, template.as_deref())?;
    let lifetime = lifetime_of(&effective.system);
    if let Some(deadline) = lifetime
        && ctx.clock.now() >= deadline
    {
        collect::lifetime(system, &ids.ns, &ids.name, deadline, ctx).await?;
        return Ok(Action::await_change());
    }
    let Gate::Proceed { session, deadline } = session_gate(system, &ids, lifetime, ctx).await?
    else {
        return Ok(Action::await_change());
    };
    let next_deadline = match (lifetime, deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };

    tycho_model::validate::validate(&effective.system).map_err(ControllerError::InvalidSpec)?;
    if let Some(action) = quota_gate(system, &effective, caches, &session, lifetime, ctx).await? {
        return Ok(action);
    }
    template::apply_owner(&mut effective.system.spec);
    let run = &effective.system;
    check_claims(run, &ids.ns, caches)?;
    let rendered = ctx.renderer.render(run).map_err(|e| match e {
        RenderError::Invalid(fields) => ControllerError::InvalidSpec(fields),
        other => ControllerError::RenderFailed(other),
    })?;
    let live = live_children(caches, &ids.ns, &ids.name)?;
    let plan = plan::plan(rendered, &live, &ids.uid, run.spec.paused)?;
    let applied = carry_out(ctx, &ids, plan).await?;
    announce(ctx, system, &applied.changes).await;

    let workload = match (&applied.deployment, run.spec.workload) {
        (Some(d), _) => AppliedWorkload::Deployment(d),
        (None, Workload::Pod) | (None, Workload::Deployment) => {
            AppliedWorkload::Pod(applied.pod.as_ref())
        }
    };
    let node_address = node_address(ctx).await;
    let mut status = compute_status(
        &StatusInput {
            system: run,
            outcome: Outcome::Applied {
                workload,
                service: applied.service.as_ref(),
                pods: &live.pods,
            },
            session: &session,
            expires_at: lifetime,
            node_address: node_address.as_deref(),
            now: ctx.clock.now(),
        },
        system.status.as_ref(),
    );
    status.template = effective.template_version.clone();
    let was_ready = system.status.as_ref().and_then(|s| s.phase) == Some(Phase::Ready);
    if write_status(system, &status, ctx).await? && !was_ready && status.phase == Some(Phase::Ready)
    {
        event(
            ctx,
            system,
            EventType::Normal,
            "Ready",
            "Status",
            ready_note(&status),
        )
        .await;
    }

    let mut after = ctx.resync;
    if let Some(deadline) = next_deadline {
        after = after.min(until(ctx.clock.now(), deadline));
    }
    if applied.requeue_soon {
        after = after.min(REPLACE_REQUEUE);
    }
    Ok(Action::requeue(after))
}

/// How often a System held back by its template's `maxPerOwner` looks again.
const QUOTA_RECHECK: Duration = Duration::from_secs(5);

/// The position of `system` among its owner's Systems of the same template in its namespace, oldest
/// first (creation time, then name), not counting those being deleted; and how many there are.
pub(crate) fn quota_position(system: &System, mates: &[Arc<System>]) -> Option<(usize, usize)> {
    let owner = system.spec.owner.as_deref()?;
    let mut mine: Vec<&System> = mates
        .iter()
        .map(|s| s.as_ref())
        .filter(|s| {
            s.spec.owner.as_deref() == Some(owner) && s.metadata.deletion_timestamp.is_none()
        })
        .collect();
    mine.sort_by(|a, b| {
        let key = |s: &System| {
            (
                s.metadata.creation_timestamp.clone().map(|t| t.0),
                s.name_any(),
            )
        };
        key(a).cmp(&key(b))
    });
    let position = mine
        .iter()
        .position(|s| s.name_any() == system.name_any())?;
    Some((position, mine.len()))
}

/// A template's `maxPerOwner`: a System past it starts nothing (status Pending, `QuotaExceeded`, and a
/// Warning once) and looks again shortly; those before it in creation order go first.
async fn quota_gate(
    system: &System,
    effective: &template::Effective,
    caches: &Caches,
    session: &SessionStatus,
    lifetime: Option<Timestamp>,
    ctx: &Context,
) -> Result<Option<Action>, ControllerError> {
    let (Some(max), Some(owner), Some(tname)) = (
        effective.max_per_owner,
        system.spec.owner.as_deref(),
        system.spec.template.as_deref(),
    ) else {
        return Ok(None);
    };
    let ns = system.namespace().unwrap_or_default();
    let mates = Caches::systems_under(&caches.systems, &caches.by_template, &ns, tname);
    let Some((position, count)) = quota_position(system, &mates) else {
        return Ok(None);
    };
    let max = usize::try_from(max).unwrap_or(0);
    if position < max {
        return Ok(None);
    }
    let message = format!(
        "{owner} runs {max} Systems of template {tname} in {ns}, its maxPerOwner; this one is number {} of {count} in creation order and starts when an earlier one goes",
        position + 1
    );
    let mut status = compute_status(
        &StatusInput {
            system: &effective.system,
            outcome: Outcome::Waiting {
                reason: "QuotaExceeded",
                message: &message,
            },
            session,
            expires_at: lifetime,
            node_address: None,
            now: ctx.clock.now(),
        },
        system.status.as_ref(),
    );
    status.template = effective.template_version.clone();
    if write_status(system, &status, ctx).await? {
        event(
            ctx,
            system,
            EventType::Warning,
            "QuotaExceeded",
            "Admit",
            message,
        )
        .await;
    }
    Ok(Some(Action::requeue(QUOTA_RECHECK)))
}

/// Whether a reconcile goes on past the session check.
enum Gate {
    /// Go on, with this session status and the session's expiry (if any) to requeue at.
    Proceed {
        session: SessionStatus,
        deadline: Option<Timestamp>,
    },
    /// Stop here: the session is missing (status and Warning written) or ended (collection started).
    Stop,
}

/// Judge the System's session from the cached Lease: active, missing (a status and a Warning, nothing
/// started), or ended (handed to the collection workers, outside the reconcile limit, so a burst of
/// expiries neither waits behind reconciles nor holds them up).
async fn session_gate(
    system: &System,
    ids: &Ids,
    lifetime: Option<Timestamp>,
    ctx: &Arc<Context>,
) -> Result<Gate, ControllerError> {
    let Some(lease_name) = &system.spec.session else {
        return Ok(Gate::Proceed {
            session: SessionStatus::None,
            deadline: None,
        });
    };
    let ns = &ids.ns;
    let key = LeaseKey::new(ns, lease_name);
    let lease = Caches::get(&ctx.caches(ns)?.leases, ns, lease_name).map(|l| l.as_ref().clone());
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
            collect::watch_expiry(ctx, key, expires_at);
            Ok(Gate::Proceed {
                session: SessionStatus::Active,
                deadline: Some(expires_at),
            })
        }
        SessionState::Missing => {
            let input = StatusInput {
                system,
                outcome: Outcome::NotStarted,
                session: &SessionStatus::Missing,
                expires_at: lifetime,
                node_address: None,
                now,
            };
            let status = compute_status(&input, system.status.as_ref());
            if write_status(system, &status, ctx).await? {
                let note = format!(
                    "spec.session: Lease {lease_name} does not exist in namespace {ns}; the System does not start until it does"
                );
                event(
                    ctx,
                    system,
                    EventType::Warning,
                    "SessionNotFound",
                    "Start",
                    note,
                )
                .await;
            }
            // The Lease's creation triggers a reconcile (watched).
            Ok(Gate::Stop)
        }
        ended => {
            collect::spawn_session(ctx, key, lease, ended);
            Ok(Gate::Stop)
        }
    }
}

/// What carrying out a plan left: the children as the API server has them, and what changed.
struct Applied {
    service: Option<Service>,
    deployment: Option<Deployment>,
    pod: Option<Pod>,
    /// A bare Pod is being replaced: look again soon.
    requeue_soon: bool,
    changes: Changes,
}

/// Carry out a plan: ConfigMap, NetworkPolicy (in place before the pods start), Service, the workload,
/// then the prunes.
async fn carry_out(ctx: &Context, ids: &Ids, plan: plan::Plan) -> Result<Applied, ControllerError> {
    let ns = &ids.ns;
    let caches = ctx.caches(ns)?;
    let mut changes = Changes::default();
    if let Some(step) = plan.config_map {
        act(
            ctx,
            ns,
            step,
            "ConfigMap",
            &caches.config_maps,
            &mut changes,
        )
        .await?;
    }
    if let Some(step) = plan.network_policy {
        act(
            ctx,
            ns,
            step,
            "NetworkPolicy",
            &caches.network_policies,
            &mut changes,
        )
        .await?;
    }
    let service = match plan.service {
        Some(step) => Some(act(ctx, ns, step, "Service", &caches.services, &mut changes).await?),
        None => None,
    };
    let (deployment, pod, requeue_soon) = match plan.workload {
        WorkloadStep::Deployment(step) => (
            Some(
                act(
                    ctx,
                    ns,
                    *step,
                    "Deployment",
                    &caches.deployments,
                    &mut changes,
                )
                .await?,
            ),
            None,
            false,
        ),
        WorkloadStep::Pod(step) => {
            let pod = act_pod(ctx, ns, &ids.uid, *step, &caches.pods, &mut changes).await?;
            let wait = pod.is_none();
            (None, pod, wait)
        }
        WorkloadStep::ReplacePod(pod) => {
            delete_child(ctx, ns, "Pod", &pod).await?;
            changes.replaced.push(format!("Pod {pod}"));
            (None, None, true)
        }
        WorkloadStep::PodTerminating(_) => (None, None, true),
        WorkloadStep::None => (None, None, false),
    };
    for p in &plan.prune {
        delete_child(ctx, ns, p.kind, &p.name).await?;
        info!(kind = p.kind, child = %p.name, "pruned");
        changes.pruned.push(format!("{} {}", p.kind, p.name));
    }
    Ok(Applied {
        service,
        deployment,
        pod,
        requeue_soon,
        changes,
    })
}

/// One Normal Event for each kind of change a reconcile made.
async fn announce(ctx: &Context, system: &System, changes: &Changes) {
    for (reason, what, verb) in [
        ("Created", &changes.created, "created"),
        ("Updated", &changes.updated, "updated to the current spec"),
        (
            "DriftCorrected",
            &changes.restored,
            "restored after an outside change",
        ),
        (
            "Replaced",
            &changes.replaced,
            "deleted for replacement (a Pod's spec cannot change in place)",
        ),
        ("Pruned", &changes.pruned, "deleted (no longer rendered)"),
    ] {
        if !what.is_empty() {
            let note = format!("{verb}: {}", what.join(", "));
            event(ctx, system, EventType::Normal, reason, "Apply", note).await;
        }
    }
}

/// The note of the Ready Event: how many are ready, and where to reach them.
fn ready_note(status: &SystemStatus) -> String {
    let ready = status.ready.clone().unwrap_or_default();
    let urls: Vec<String> = status
        .endpoints
        .iter()
        .map(|e| match (&e.url, e.node_port) {
            (Some(u), _) => format!("{}:{} at {u}", e.container, e.port),
            (None, Some(np)) => format!("{}:{} on node port {np}", e.container, e.port),
            (None, None) => format!("{}:{}", e.container, e.port),
        })
        .collect();
    if urls.is_empty() {
        format!("{ready} ready")
    } else {
        format!("{ready} ready; {}", urls.join(", "))
    }
}

/// Children of one System as the caches have them (label-indexed).
fn live_children(caches: &Caches, ns: &str, name: &str) -> Result<Live, ControllerError> {
    fn unpacked<K>(
        kind: &'static str,
        got: Result<Vec<K>, (String, serde_json::Error)>,
    ) -> Result<Vec<K>, ControllerError> {
        got.map_err(|(name, source)| ControllerError::Cached { kind, name, source })
    }
    Ok(Live {
        deployments: unpacked("Deployment", caches.deployments.of_system(ns, name))?,
        pods: unpacked("Pod", caches.pods.of_system(ns, name))?,
        services: unpacked("Service", caches.services.of_system(ns, name))?,
        config_maps: unpacked("ConfigMap", caches.config_maps.of_system(ns, name))?,
        network_policies: unpacked("NetworkPolicy", caches.network_policies.of_system(ns, name))?,
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

/// Carry out one child's step: keep it, or apply it with forced server-side apply. Returns the object
/// as the API server has it.
async fn act<K>(
    ctx: &Context,
    ns: &str,
    step: Step<K>,
    kind: &'static str,
    cache: &Indexed<K>,
    changes: &mut Changes,
) -> Result<K, ControllerError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
{
    let (desired, why) = match step {
        Step::Keep(live) => return Ok(live),
        Step::Apply { desired, why, .. } => (desired, why),
    };
    let name = desired.meta().name.clone().unwrap_or_default();
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
    cache.own_write(&out);
    let label = format!("{kind} {name}");
    match why {
        Why::Create => changes.created.push(label),
        Why::Restore => changes.restored.push(label),
        Why::Update => changes.updated.push(label),
    }
    Ok(out)
}

/// Carry out the bare Pod's step. An apply the API server refuses with 422 (a field that cannot change
/// in place) replaces the Pod instead. Returns the Pod (None while it is being replaced).
async fn act_pod(
    ctx: &Context,
    ns: &str,
    uid: &str,
    step: Step<Pod>,
    cache: &Indexed<Pod>,
    changes: &mut Changes,
) -> Result<Option<Pod>, ControllerError> {
    let ours = match &step {
        Step::Apply { live: Some(l), .. } => controlled_by(l, uid),
        _ => false,
    };
    let name = match &step {
        Step::Keep(p) | Step::Apply { desired: p, .. } => p.name_any(),
    };
    match act(ctx, ns, step, "Pod", cache, changes).await {
        Ok(p) => Ok(Some(p)),
        Err(ControllerError::Api { source, .. }) if ours && api_code(&source) == Some(422) => {
            delete_child(ctx, ns, "Pod", &name).await?;
            changes.replaced.push(format!("Pod {name}"));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Delete a child of `kind` by name; 404 counts as done.
async fn delete_child(
    ctx: &Context,
    ns: &str,
    kind: &'static str,
    name: &str,
) -> Result<(), ControllerError> {
    async fn delete<K>(api: Api<K>, name: &str) -> Result<(), kube::Error>
    where
        K: Resource + Clone + DeserializeOwned + Debug,
    {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }
    let c = ctx.client.clone();
    let result = match kind {
        "Deployment" => delete(Api::<Deployment>::namespaced(c, ns), name).await,
        "Pod" => delete(Api::<Pod>::namespaced(c, ns), name).await,
        "Service" => delete(Api::<Service>::namespaced(c, ns), name).await,
        "NetworkPolicy" => delete(Api::<NetworkPolicy>::namespaced(c, ns), name).await,
        _ => delete(Api::<ConfigMap>::namespaced(c, ns), name).await,
    };
    result.map_err(ControllerError::api("delete", kind, ns, name))?;
    ctx.metrics.writes.inc();
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
    let body = plan::to_json(
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
            ctx.own_statuses.wrote(system, status);
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

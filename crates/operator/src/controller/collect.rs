//! Collection: deleting the Systems of an ended session, or a System whose lifetime ran out.
//!
//! Sessions are collected by their own workers ([`Collector`]), not inside the reconcile that noticed
//! the expiry, so a burst of expiries (a thousand notebooks of a course closing at once) is not queued
//! behind the reconcile limit and does not hold up reconciles either. Each session is collected once at
//! a time (a second notice while a collection runs is dropped), in this order: the terminal mark on the
//! Lease first (later renewals resurrect nothing), then the Systems, then the Lease, and the Events last
//! (they do not delay a deletion).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use tycho_model::System;

use super::FIELD_MANAGER;
use super::cache::Caches;
use super::error::{ControllerError, api_code};
use super::reconcile::{Context, event, lock, until};
use super::session::{LeaseKey, LeaseView, SessionState};
use super::status::format_time;

/// Most session collections running at once (each makes a few sequential calls).
pub const COLLECT_CONCURRENCY: usize = 64;
/// Attempts of one collection before it is left to the next reconcile of a System of the session.
const ATTEMPTS: u32 = 8;

/// The session collection workers: a concurrency limit of their own and the sessions in flight.
pub(crate) struct Collector {
    permits: Semaphore,
    in_flight: Mutex<HashSet<LeaseKey>>,
    /// The expiry timer of each active session: the instant it is set for.
    timers: Mutex<HashMap<LeaseKey, Timestamp>>,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            permits: Semaphore::new(COLLECT_CONCURRENCY),
            in_flight: Mutex::new(HashSet::new()),
            timers: Mutex::new(HashMap::new()),
        }
    }
}

/// Make sure the session `key` is judged again at `expires_at`, by a timer of its own rather than through
/// the reconcile queue (where a thousand Systems requeued for the same instant would wait their turn).
/// When it fires the session is judged from the cached Lease: still active (renewed) → a timer for the
/// new expiry; ended → collected. One timer a session: an earlier one already set re-judges first.
pub(crate) fn watch_expiry(ctx: &Arc<Context>, key: LeaseKey, expires_at: Timestamp) {
    {
        let mut timers = lock(&ctx.collector.timers);
        if timers.get(&key).is_some_and(|t| *t <= expires_at) {
            return;
        }
        timers.insert(key.clone(), expires_at);
    }
    let ctx = ctx.clone();
    tokio::spawn(async move {
        // At least 1 ms, so that a judgement at the very instant cannot spin.
        let wait = until(ctx.clock.now(), expires_at).max(Duration::from_millis(1));
        let mut stop = ctx.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            // A stopped controller's caches no longer follow the Leases: judge nothing from them.
            _ = stop.wait_for(|s| *s) => return,
        }
        {
            let mut timers = lock(&ctx.collector.timers);
            if timers.get(&key) == Some(&expires_at) {
                timers.remove(&key);
            }
        }
        let Some(caches) = ctx.caches.iter().find(|c| c.covers(&key.namespace)) else {
            return;
        };
        let lease =
            Caches::get(&caches.leases, &key.namespace, &key.name).map(|l| l.as_ref().clone());
        let now = ctx.clock.now();
        let state = {
            let mut tracker = lock(&ctx.sessions);
            match &lease {
                Some(l) => tracker.observe(&key, &LeaseView::from_lease(l), now),
                None => tracker.observe_missing(&key, now),
            }
        };
        match state {
            SessionState::Active { expires_at } => watch_expiry(&ctx, key, expires_at),
            // Judged by the reconcile of a System naming it (which knows whether it ran under it).
            SessionState::Missing => {}
            ended => spawn_session(&ctx, key, lease, ended),
        }
    });
}

/// Start collecting the session `key` (unless its collection already runs) and return at once.
pub(crate) fn spawn_session(
    ctx: &Arc<Context>,
    key: LeaseKey,
    lease: Option<Lease>,
    state: SessionState,
) {
    if !lock(&ctx.collector.in_flight).insert(key.clone()) {
        return;
    }
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let _permit = ctx.collector.permits.acquire().await.ok();
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=ATTEMPTS {
            if *ctx.stop.borrow() {
                break;
            }
            match session(&key, lease.as_ref(), state, &ctx).await {
                Ok(()) => break,
                Err(e) => {
                    ctx.metrics.error(e.reason());
                    warn!(session = %key, attempt, error = %e, "collecting the session failed");
                    if attempt == ATTEMPTS {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        lock(&ctx.collector.in_flight).remove(&key);
    });
}

/// Systems (in the cache of the scope that watches it) that name the session `key`: an index lookup.
fn systems_of_session(ctx: &Context, key: &LeaseKey) -> Vec<Arc<System>> {
    ctx.caches
        .iter()
        .find(|c| c.covers(&key.namespace))
        .map(|c| Caches::systems_under(&c.systems, &c.by_session, &key.namespace, &key.name))
        .unwrap_or_default()
}

/// Mark the Lease collected (terminal), unless it already is. Optimistic concurrency: a renewal racing
/// with this patch makes it fail with 409, and the retry sees the renewal.
async fn mark(
    leases: &Api<Lease>,
    key: &LeaseKey,
    lease: &Lease,
    now: Timestamp,
    ctx: &Context,
) -> Result<(), ControllerError> {
    if LeaseView::from_lease(lease).collected {
        return Ok(());
    }
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": lease.metadata.resource_version,
            "annotations": { tycho_model::ANNOTATION_COLLECTED: format_time(now) },
        }
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    match leases
        .patch(&key.name, &params, &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            ctx.metrics.writes.inc();
            Ok(())
        }
        Err(e) if api_code(&e) == Some(404) => Ok(()),
        Err(e) => Err(ControllerError::api(
            "annotate",
            "Lease",
            &key.namespace,
            &key.name,
        )(e)),
    }
}

/// Delete one object; 404 counts as done. Returns whether this call deleted it.
async fn delete<K>(
    api: &Api<K>,
    kind: &'static str,
    ns: &str,
    name: &str,
    ctx: &Context,
) -> Result<bool, ControllerError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            ctx.metrics.writes.inc();
            Ok(true)
        }
        Err(e) if api_code(&e) == Some(404) => Ok(false),
        Err(e) => Err(ControllerError::api("delete", kind, ns, name)(e)),
    }
}

/// Collect a session: the terminal mark, every System naming it, the Lease, then the Events.
async fn session(
    key: &LeaseKey,
    lease: Option<&Lease>,
    state: SessionState,
    ctx: &Context,
) -> Result<(), ControllerError> {
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let now = ctx.clock.now();
    if let Some(l) = lease {
        mark(&leases, key, l, now, ctx).await?;
    }
    let newly = lock(&ctx.sessions).mark_collected(key, now);
    let reason = match state {
        SessionState::Deleted { .. } => "SessionDeleted",
        _ => "SessionExpired",
    };
    if newly {
        ctx.metrics.sessions_expired.inc();
        info!(session = %key, reason, "session ended; collecting its Systems");
    }
    let expired_at = state.ended_at().unwrap_or(now);
    let systems: Api<System> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let mut deleted = Vec::new();
    for s in systems_of_session(ctx, key) {
        if s.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if delete(&systems, "System", &key.namespace, &s.name_any(), ctx).await? {
            let delay = ctx.clock.now().as_millisecond() - expired_at.as_millisecond();
            ctx.metrics.gc_delay.observe(delay.max(0) as f64 / 1000.0);
            deleted.push(s);
        }
    }
    if lease.is_some() {
        delete(&leases, "Lease", &key.namespace, &key.name, ctx).await?;
    }
    lock(&ctx.sessions).forget(key, ctx.clock.now());
    let what = if reason == "SessionDeleted" {
        "was deleted"
    } else {
        "expired"
    };
    for s in &deleted {
        let note = format!(
            "spec.session: Lease {} {what}; deleted the System",
            key.name
        );
        event(ctx, s, EventType::Normal, reason, "Collect", note).await;
    }
    Ok(())
}

/// Delete a System whose `lifetime` ran out.
pub(crate) async fn lifetime(
    system: &System,
    ns: &str,
    name: &str,
    deadline: Timestamp,
    ctx: &Context,
) -> Result<(), ControllerError> {
    let api: Api<System> = Api::namespaced(ctx.client.clone(), ns);
    if !delete(&api, "System", ns, name, ctx).await? {
        return Ok(());
    }
    let delay = ctx.clock.now().as_millisecond() - deadline.as_millisecond();
    ctx.metrics.gc_delay.observe(delay.max(0) as f64 / 1000.0);
    let note = format!(
        "spec.lifetime: {}s after creation elapsed at {}; deleted the System",
        system.spec.lifetime.unwrap_or_default(),
        format_time(deadline)
    );
    event(
        ctx,
        system,
        EventType::Normal,
        "LifetimeExpired",
        "Collect",
        note,
    )
    .await;
    Ok(())
}

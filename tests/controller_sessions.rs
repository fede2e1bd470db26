//! Sessions against an API server (the emulator, or the cluster of `TYCHO_TEST_KUBECONFIG`): a Lease that
//! stops being renewed gets its Systems deleted once its duration has passed since the last renewal the
//! controller saw, never before; a deleted Lease likewise at once; a System naming a missing Lease never
//! starts until it exists; a collected Lease stays collected; `lifetime` deletes at its deadline, not before;
//! a restarted controller keeps a renewed session alive.
//!
//! The checks are causal, not stopwatches: the Lease versions a watch receives (renewals, the controller's
//! `tycho.dev/collected` mark, the deletion), the controller's own Events (`eventTime`, its clock) and, on
//! the emulator, the order of the API's request log. The only deadlines are generous waits (a loaded machine
//! cannot break them) that fail saying what they saw; how fast collection is, is measured by
//! `benches/e2e.rs` (its sessions phase), and printed here as `MEASURE` lines.

mod common;
#[path = "common/lease_history.rs"]
mod lease_history;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{SystemBuilder, TestCluster, eventually, system};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use lease_history::{LeaseHistory, event_times, events_on, renew_time};
use serde_json::json;
use tycho_emulator::RequestRecord;
use tycho_model::{ANNOTATION_COLLECTED, Phase, System};

const WAIT: Duration = Duration::from_secs(60);
/// Lease duration of the renewed sessions: renewals every 500 ms leave 3.5 s of slack for a stalled machine.
const LEASE_SECS: i32 = 4;
/// Generous bound on how late after its due instant a collection may happen: scheduling on a loaded machine
/// cannot stretch a timer and a few API calls this far; the real figure comes from the benchmark.
const LATE: Duration = Duration::from_secs(10);

/// A System of one sleeping container.
fn sleeper(name: &str) -> SystemBuilder {
    system(name).container(
        json!({ "name": "main", "image": "busybox:1.36", "sleep": true, "ports": [{ "port": 8080 }] }),
    )
}

async fn create_lease(api: &Api<Lease>, name: &str, duration: i32, annotations: serde_json::Value) {
    let lease: Lease = serde_json::from_value(json!({
        "metadata": { "name": name, "annotations": annotations },
        "spec": {
            "holderIdentity": "test-client",
            "leaseDurationSeconds": duration,
            "acquireTime": MicroTime(Timestamp::now()),
            "renewTime": MicroTime(Timestamp::now()),
        }
    }))
    .expect("a Lease");
    api.create(&PostParams::default(), &lease)
        .await
        .expect("create the Lease");
}

/// Microseconds since the epoch (the resolution of a Lease's `renewTime` and an Event's `eventTime`).
fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

/// Renew: PATCH `renewTime` to now. Returns the `renewTime` the server stored, on success. The controller
/// cannot have seen this renewal before the instant it carries: that is taken before the request is sent.
async fn renew(api: &Api<Lease>, name: &str) -> Option<i64> {
    let patch = json!({ "spec": { "renewTime": MicroTime(Timestamp::now()) } });
    let lease = api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .ok()?;
    renew_time(&lease)
}

/// Renew the Lease every `every` until `stop` is set; returns the `renewTime` of the last successful
/// renewal and how many succeeded.
fn renewer(
    api: Api<Lease>,
    name: &'static str,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(Option<i64>, usize)> {
    tokio::spawn(async move {
        let (mut last, mut count) = (None, 0);
        while !stop.load(Ordering::SeqCst) {
            if let Some(t) = renew(&api, name).await {
                last = Some(t);
                count += 1;
            }
            tokio::time::sleep(every).await;
        }
        (last, count)
    })
}

async fn event_reasons(c: &TestCluster, object: &str) -> Vec<String> {
    events_on(&c.api(), object)
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

/// The `eventTime` of the (first) Event `reason` on `object`, waiting for it.
async fn wait_event_time(c: &TestCluster, object: &str, reason: &str) -> i64 {
    let t = eventually(WAIT, || async {
        event_times(&c.api(), object, reason)
            .await
            .into_iter()
            .min()
    })
    .await;
    match t {
        Some(t) => t,
        None => panic!(
            "no {reason} Event on {object} within {WAIT:?}; its Events: {:?}",
            event_reasons(c, object).await
        ),
    }
}

async fn session_valid(api: &Api<System>, name: &str) -> Option<String> {
    let s = api.get_opt(name).await.ok()??;
    let c = s
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "SessionValid")?;
    Some(format!("{}/{}", c.status, c.reason))
}

async fn wait_session_valid(api: &Api<System>, name: &str, want: &str) {
    let got = eventually(WAIT, || async {
        session_valid(api, name).await.filter(|v| v == want)
    })
    .await;
    assert!(
        got.is_some(),
        "{name}: SessionValid {want} not reached; last {:?}",
        session_valid(api, name).await
    );
}

/// Wait (generously) until `names` are all gone; fails saying which remain.
async fn wait_gone(api: &Api<System>, names: &[&str], what: &str) {
    let gone = eventually(WAIT, || async {
        for n in names {
            if !matches!(api.get_opt(n).await, Ok(None)) {
                return None;
            }
        }
        Some(())
    })
    .await;
    if gone.is_none() {
        let mut left = Vec::new();
        for n in names {
            if let Ok(Some(s)) = api.get_opt(n).await {
                left.push(format!(
                    "{n} (deletionTimestamp {:?}, status {:?})",
                    s.metadata.deletion_timestamp,
                    s.status.map(|st| st.conditions)
                ));
            }
        }
        panic!("{what}: not gone within {WAIT:?}: {left:?}");
    }
}

/// Position in the request log of the first record matching `f`.
fn position(log: &[RequestRecord], f: impl Fn(&RequestRecord) -> bool) -> Option<usize> {
    log.iter().position(f)
}

fn by_controller(r: &RequestRecord, verb: &str, resource: &str, name: &str) -> bool {
    r.user_agent.starts_with(common::CONTROLLER_AGENT)
        && r.verb == verb
        && r.resource == resource
        && r.name == name
        && r.code < 300
}

/// Collection of session `lease` in the emulator's request log: the collected mark (a PATCH of the Lease)
/// comes before the deletion of every System in `systems`, and the Lease's deletion after them.
fn assert_collection_order(c: &TestCluster, lease: &str, systems: &[&str]) {
    let Some(log) = c.requests() else {
        common::skip(
            &common::current_test(),
            "the order of the collection's API calls is read from a request log (the emulator's, or a real server's audit log)",
        );
        return;
    };
    let calls = || {
        log.iter()
            .filter(|r| r.user_agent.starts_with(common::CONTROLLER_AGENT) && common::is_write(r))
            .map(|r| format!("{} {} {} -> {}", r.verb, r.resource, r.name, r.code))
            .collect::<Vec<_>>()
    };
    let mark = position(&log, |r| by_controller(r, "patch", "leases", lease))
        .unwrap_or_else(|| panic!("no PATCH (collected mark) of Lease {lease}: {:?}", calls()));
    for s in systems {
        let del = position(&log, |r| by_controller(r, "delete", "systems", s))
            .unwrap_or_else(|| panic!("no DELETE of System {s}: {:?}", calls()));
        assert!(
            mark < del,
            "System {s} deleted before the mark: {:?}",
            calls()
        );
        let lease_del = position(&log, |r| by_controller(r, "delete", "leases", lease))
            .unwrap_or_else(|| panic!("no DELETE of Lease {lease}: {:?}", calls()));
        assert!(
            del < lease_del,
            "Lease deleted before System {s}: {:?}",
            calls()
        );
    }
}

/// The collection of an expired session, from the records: the Lease version carrying the controller's
/// collected mark names the renewal the decision was based on (the mark is a PATCH with that version's
/// resourceVersion as precondition, so no later renewal came in between); every System's `SessionExpired`
/// Event comes at least the Lease duration after that renewal, and not more than [`LATE`] after it was due.
async fn assert_expired_after_duration(
    c: &TestCluster,
    history: &LeaseHistory,
    last_renewal: i64,
    duration_secs: i32,
    systems: &[&str],
) {
    let marked = history.marked().unwrap_or_else(|| {
        panic!(
            "no Lease version with the {ANNOTATION_COLLECTED} mark; seen: {}",
            history.describe()
        )
    });
    let based_on = renew_time(&marked).expect("the marked Lease has a renewTime");
    assert_eq!(
        based_on,
        last_renewal,
        "the collection was based on an earlier renewal than the last one (collected while renewed); seen: {}",
        history.describe()
    );
    let due = based_on + i64::from(duration_secs) * 1_000_000;
    for s in systems {
        let at = wait_event_time(c, s, "SessionExpired").await;
        let late = at - due;
        eprintln!(
            "MEASURE {s}: SessionExpired {:+.3} s after the Lease's expiry (last renewal + {duration_secs} s)",
            late as f64 / 1e6
        );
        assert!(
            late >= 0,
            "{s} collected {:.3} s before its Lease expired (last renewal {based_on}, event {at})",
            -late as f64 / 1e6
        );
        assert!(
            late <= LATE.as_micros() as i64,
            "{s} collected {:.3} s after its Lease expired (bound {LATE:?})",
            late as f64 / 1e6
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_collects_its_systems_after_its_duration_and_never_before() {
    let c = TestCluster::start().await;
    let ctrl = c.run_controller(|_| {}).await;
    let systems: Api<System> = c.api();
    let leases: Api<Lease> = c.api();
    let (history, watching) = LeaseHistory::watch(leases.clone(), "sess");
    create_lease(&leases, "sess", LEASE_SECS, json!({})).await;
    let stop = Arc::new(AtomicBool::new(false));
    let renewing = renewer(
        leases.clone(),
        "sess",
        Duration::from_millis(500),
        stop.clone(),
    );

    for s in [
        sleeper("a").session("sess").build(),
        sleeper("b").session("sess").build(),
        sleeper("control").build(),
    ] {
        systems
            .create(&PostParams::default(), &s)
            .await
            .expect("create a System");
    }
    wait_session_valid(&systems, "a", "True/SessionActive").await;
    wait_session_valid(&systems, "b", "True/SessionActive").await;
    assert!(
        eventually(WAIT, || async {
            c.api::<Deployment>().get_opt("a").await.ok().flatten()
        })
        .await
        .is_some(),
        "a's Deployment is created"
    );

    // Renewals keep it alive for more than twice its duration: the watch sees them, and no collected mark.
    let enough = 2 * LEASE_SECS as usize * 2 + 1;
    let renewed = eventually(WAIT, || async {
        (history.renewals() >= enough).then_some(())
    })
    .await;
    assert!(
        renewed.is_some(),
        "the watch saw {} renewals, not {enough}: {}",
        history.renewals(),
        history.describe()
    );
    assert!(
        history.marked().is_none(),
        "a renewed session is not collected: {}",
        history.describe()
    );
    assert!(
        systems.get_opt("a").await.expect("get a").is_some(),
        "a renewed session's System stays"
    );

    stop.store(true, Ordering::SeqCst);
    let (last_renewal, _) = renewing.await.expect("renewer");
    let last_renewal = last_renewal.expect("at least one renewal succeeded");
    wait_gone(&systems, &["a", "b"], "the expired session's Systems").await;
    let deleted = eventually(WAIT, || async { history.deleted().then_some(()) }).await;
    assert!(
        deleted.is_some(),
        "the Lease is deleted: {}",
        history.describe()
    );
    watching.abort();
    assert_expired_after_duration(&c, &history, last_renewal, LEASE_SECS, &["a", "b"]).await;
    assert_collection_order(&c, "sess", &["a", "b"]);

    // The control System untouched, children follow through owner references.
    assert!(
        systems.get_opt("control").await.expect("get").is_some(),
        "a System of no session stays"
    );
    assert!(
        event_times(&c.api(), "control", "SessionExpired")
            .await
            .is_empty(),
        "no SessionExpired Event on the control System"
    );
    let gone = eventually(WAIT, || async {
        matches!(c.api::<Deployment>().get_opt("a").await, Ok(None)).then_some(())
    })
    .await;
    assert!(gone.is_some(), "children garbage-collected");
    assert_eq!(ctrl.metric("tycho_sessions_expired_total").await, Some(1.0));
    assert_eq!(ctrl.metric("tycho_gc_delay_seconds_count").await, Some(2.0));
    let sum = ctrl
        .metric("tycho_gc_delay_seconds_sum")
        .await
        .expect("gc delay sum");
    eprintln!(
        "MEASURE GC delay after expiry instant: mean {:.3} s",
        sum / 2.0
    );

    ctrl.stop().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_session_never_starts_until_the_lease_exists_and_deletion_collects() {
    let c = TestCluster::start().await;
    let ctrl = c.run_controller(|_| {}).await;
    let systems: Api<System> = c.api();
    let leases: Api<Lease> = c.api();
    let deployments: Api<Deployment> = c.api();
    systems
        .create(
            &PostParams::default(),
            &sleeper("waiting").session("later").build(),
        )
        .await
        .expect("create waiting");
    // The controller has judged it (its condition and its Warning Event say so) and started nothing.
    wait_session_valid(&systems, "waiting", "False/SessionNotFound").await;
    wait_event_time(&c, "waiting", "SessionNotFound").await;
    let s = systems.get("waiting").await.expect("get waiting");
    assert_eq!(
        s.status.as_ref().and_then(|st| st.phase),
        Some(Phase::Pending)
    );
    assert!(
        deployments.get_opt("waiting").await.expect("get").is_none(),
        "nothing started"
    );

    // The Lease appears: it starts, and only after the Lease was created.
    create_lease(&leases, "later", 30, json!({})).await;
    let lease = leases.get("later").await.expect("get the Lease");
    wait_session_valid(&systems, "waiting", "True/SessionActive").await;
    let dep = eventually(WAIT, || async {
        deployments.get_opt("waiting").await.ok().flatten()
    })
    .await
    .expect("waiting's Deployment is created once the Lease exists");
    assert!(
        dep.metadata.creation_timestamp >= lease.metadata.creation_timestamp,
        "Deployment created {:?}, before the Lease {:?}",
        dep.metadata.creation_timestamp,
        lease.metadata.creation_timestamp
    );
    if let Some(log) = c.requests() {
        let lease_created = position(&log, |r| {
            // A create's record has no name (it is in the body); this test creates one Lease.
            r.verb == "create" && r.resource == "leases" && r.code < 300
        })
        .expect("the Lease's creation is in the request log");
        let started = position(&log, |r| {
            r.user_agent.starts_with(common::CONTROLLER_AGENT)
                && common::is_write(r)
                && r.resource == "deployments"
                && (r.name == "waiting" || r.path.ends_with("/deployments"))
        })
        .expect("the controller's write of the Deployment is in the request log");
        assert!(
            lease_created < started,
            "the Deployment was written (#{started}) before the Lease existed (#{lease_created})"
        );
    } else {
        common::skip(
            "missing_session_never_starts_until_the_lease_exists_and_deletion_collects",
            "the request-log order (Lease created before the Deployment written) needs a request log (the emulator's, or a real server's audit log)",
        );
    }

    // The client ends the session by deleting the Lease: collected, with a SessionDeleted Event that comes
    // after the deletion.
    let before_delete = micros(Timestamp::now());
    leases
        .delete("later", &DeleteParams::background())
        .await
        .expect("delete the Lease");
    wait_gone(&systems, &["waiting"], "the ended session's System").await;
    let at = wait_event_time(&c, "waiting", "SessionDeleted").await;
    assert!(
        at >= before_delete,
        "SessionDeleted Event ({at}) before the Lease was deleted ({before_delete})"
    );
    eprintln!(
        "MEASURE deleted Lease: SessionDeleted Event {:.3} s after the deletion was sent",
        (at - before_delete) as f64 / 1e6
    );

    ctrl.stop().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collected_lease_stays_collected_and_lifetime_expires() {
    let c = TestCluster::start().await;
    let ctrl = c.run_controller(|_| {}).await;
    let systems: Api<System> = c.api();
    let leases: Api<Lease> = c.api();

    // A Lease already marked collected (a collection interrupted by a crash) resurrects nothing,
    // even though it is freshly renewed.
    create_lease(
        &leases,
        "done",
        30,
        json!({ "tycho.dev/collected": "2024-01-01T00:00:00Z" }),
    )
    .await;
    systems
        .create(
            &PostParams::default(),
            &sleeper("late").session("done").build(),
        )
        .await
        .expect("create late");
    wait_gone(&systems, &["late"], "the System of a collected Lease").await;
    // The controller judged it (its Event says why) and never started it.
    wait_event_time(&c, "late", "SessionExpired").await;
    let reasons = event_reasons(&c, "late").await;
    assert!(
        !reasons.iter().any(|r| r == "Created"),
        "it never started: {reasons:?}"
    );
    if let Some(log) = c.requests() {
        let writes: Vec<String> = log
            .iter()
            .filter(|r| r.user_agent.starts_with(common::CONTROLLER_AGENT) && common::is_write(r))
            .filter(|r| {
                matches!(
                    r.resource.as_str(),
                    "deployments" | "services" | "configmaps"
                )
            })
            .map(|r| format!("{} {}", r.verb, r.path))
            .collect();
        assert!(writes.is_empty(), "it never started: {writes:?}");
    }

    // lifetime: deleted at creation + lifetime (creationTimestamp, whole seconds), not before.
    systems
        .create(
            &PostParams::default(),
            &sleeper("short").lifetime(3).build(),
        )
        .await
        .expect("create short");
    let created = systems
        .get("short")
        .await
        .expect("get short")
        .metadata
        .creation_timestamp
        .expect("creationTimestamp");
    let deadline = micros(created.0) + 3_000_000;
    wait_gone(&systems, &["short"], "a System past its lifetime").await;
    let at = wait_event_time(&c, "short", "LifetimeExpired").await;
    let late = at - deadline;
    eprintln!(
        "MEASURE lifetime 3 s: LifetimeExpired {:+.3} s after creationTimestamp + 3 s",
        late as f64 / 1e6
    );
    assert!(
        late >= 0,
        "collected {:.3} s before its lifetime ended",
        -late as f64 / 1e6
    );
    assert!(
        late <= LATE.as_micros() as i64,
        "collected {:.3} s after its lifetime ended (bound {LATE:?})",
        late as f64 / 1e6
    );

    ctrl.stop().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_keeps_renewed_sessions_and_still_collects() {
    let c = TestCluster::start().await;
    let systems: Api<System> = c.api();
    let leases: Api<Lease> = c.api();
    let (history, watching) = LeaseHistory::watch(leases.clone(), "long");
    create_lease(&leases, "long", LEASE_SECS, json!({})).await;
    let stop = Arc::new(AtomicBool::new(false));
    let renewing = renewer(
        leases.clone(),
        "long",
        Duration::from_millis(500),
        stop.clone(),
    );
    systems
        .create(
            &PostParams::default(),
            &sleeper("kept").session("long").build(),
        )
        .await
        .expect("create kept");

    let first = c.run_controller(|_| {}).await;
    wait_session_valid(&systems, "kept", "True/SessionActive").await;
    let ready = eventually(WAIT, || async {
        let s = systems.get_opt("kept").await.ok()??;
        (s.status?.phase? == Phase::Ready).then_some(())
    })
    .await;
    assert!(ready.is_some(), "kept becomes Ready");
    first.stop().await;
    // Down for a while, with renewals going on.
    let seen = history.renewals();
    let more = eventually(WAIT, || async {
        (history.renewals() >= seen + 4).then_some(())
    })
    .await;
    assert!(more.is_some(), "renewals go on: {}", history.describe());
    c.clear_requests();
    let second = c.run_controller(|_| {}).await;
    assert!(
        eventually(WAIT, || async {
            second.http_get("/readyz").await.filter(|r| r.0 == 200)
        })
        .await
        .is_some(),
        "ready after the caches sync"
    );
    // It has reconciled `kept` (twice, by its own count), with renewals going on for longer than the
    // duration since the restart.
    let reconciled = eventually(WAIT, || async {
        (second.metric("tycho_reconciles_total").await? >= 2.0).then_some(())
    })
    .await;
    assert!(reconciled.is_some(), "the restarted controller reconciles");
    let seen = history.renewals();
    let more = eventually(WAIT, || async {
        (history.renewals() > seen + 2 * LEASE_SECS as usize).then_some(())
    })
    .await;
    assert!(more.is_some(), "renewals go on: {}", history.describe());
    assert!(
        history.marked().is_none(),
        "a renewed session survives a controller restart: {}",
        history.describe()
    );
    assert!(
        systems.get_opt("kept").await.expect("get kept").is_some(),
        "a renewed session survives a controller restart"
    );
    if let Some(requests) = c.controller_requests() {
        // The log saw the restarted controller (its lists and watches), and no write.
        assert!(
            requests.iter().any(|r| r.resource == "systems"),
            "the request log has the restarted controller's requests: {} records",
            requests.len()
        );
        let writes: Vec<String> = requests
            .iter()
            .filter(|r| common::is_write(r))
            .map(|r| format!("{} {}", r.verb, r.path))
            .collect();
        assert!(
            writes.is_empty(),
            "a restart writes nothing for an unchanged System: {writes:?}"
        );
    } else {
        common::skip(
            "a_restarted_controller_keeps_renewed_sessions_and_still_collects",
            "the no-writes-after-restart check needs a request log (the emulator's, or a real server's audit log)",
        );
    }

    stop.store(true, Ordering::SeqCst);
    let (last, _) = renewing.await.expect("renewer");
    let last = last.expect("at least one renewal succeeded");
    wait_gone(
        &systems,
        &["kept"],
        "the expired session's System after a restart",
    )
    .await;
    let deleted = eventually(WAIT, || async { history.deleted().then_some(()) }).await;
    assert!(
        deleted.is_some(),
        "the Lease is deleted: {}",
        history.describe()
    );
    watching.abort();
    assert_expired_after_duration(&c, &history, last, LEASE_SECS, &["kept"]).await;
    if let Some(requests) = c.controller_requests() {
        // The same filter that saw no write above sees the collection's.
        assert!(
            requests.iter().any(common::is_write),
            "the collection's writes are in the request log"
        );
    }
    assert_collection_order(&c, "long", &["kept"]);

    second.stop().await;
    c.cleanup().await;
}

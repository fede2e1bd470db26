//! Sessions against an API server (the emulator, or the cluster of `TYCHO_TEST_KUBECONFIG`): a Lease that
//! stops being renewed gets its Systems deleted within its duration plus a second; a deleted Lease likewise;
//! a System naming a missing Lease never starts until it exists; a collected Lease stays collected;
//! `lifetime` deletes at its deadline; a restarted controller keeps a renewed session alive.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{TestCluster, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tycho::model::{Phase, System};

const WAIT: Duration = Duration::from_secs(60);

fn system(name: &str, session: Option<&str>, lifetime: Option<i64>) -> System {
    let mut spec = json!({
        "containers": [{ "name": "main", "image": "busybox:1.36", "sleep": true, "ports": [{ "port": 8080 }] }]
    });
    if let Some(s) = session {
        spec["session"] = json!(s);
    }
    if let Some(l) = lifetime {
        spec["lifetime"] = json!(l);
    }
    serde_json::from_value(json!({
        "apiVersion": "tycho.dev/v1alpha1",
        "kind": "System",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .unwrap()
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
    .unwrap();
    api.create(&PostParams::default(), &lease).await.unwrap();
}

async fn renew(api: &Api<Lease>, name: &str) -> bool {
    let patch = json!({ "spec": { "renewTime": MicroTime(Timestamp::now()) } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .is_ok()
}

/// Renew the Lease every `every` until `stop` is set; returns the instant of the last successful renewal.
fn renewer(
    api: Api<Lease>,
    name: &'static str,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Instant> {
    tokio::spawn(async move {
        let mut last = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if renew(&api, name).await {
                last = Instant::now();
            }
            tokio::time::sleep(every).await;
        }
        last
    })
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

/// Wait until `names` are all gone; returns when that happened.
async fn wait_gone(api: &Api<System>, names: &[&str], limit: Duration) -> Option<Instant> {
    eventually(limit, || async {
        for n in names {
            if !matches!(api.get_opt(n).await, Ok(None)) {
                return None;
            }
        }
        Some(Instant::now())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_session_collects_its_systems_within_duration_plus_one_second() {
    let c = TestCluster::start().await;
    let ctrl = c.run_controller(|_| {}).await;
    let systems: Api<System> = c.api();
    let leases: Api<Lease> = c.api();
    create_lease(&leases, "sess", 2, json!({})).await;
    let stop = Arc::new(AtomicBool::new(false));
    let renewing = renewer(
        leases.clone(),
        "sess",
        Duration::from_millis(500),
        stop.clone(),
    );

    for s in [
        system("a", Some("sess"), None),
        system("b", Some("sess"), None),
        system("control", None, None),
    ] {
        systems.create(&PostParams::default(), &s).await.unwrap();
    }
    wait_session_valid(&systems, "a", "True/SessionActive").await;
    wait_session_valid(&systems, "b", "True/SessionActive").await;
    assert!(
        eventually(WAIT, || async {
            c.api::<Deployment>().get_opt("a").await.ok().flatten()
        })
        .await
        .is_some()
    );

    // Renewals keep it alive well past its duration.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        systems.get_opt("a").await.unwrap().is_some(),
        "a renewed session is not collected"
    );

    stop.store(true, Ordering::SeqCst);
    let last_renewal = renewing.await.unwrap();
    let collected = wait_gone(&systems, &["a", "b"], Duration::from_secs(10))
        .await
        .expect("Systems collected");
    let delay = collected.duration_since(last_renewal);
    eprintln!(
        "MEASURE session GC: Systems gone {delay:?} after the last renewal (lease duration 2 s)"
    );
    assert!(
        delay <= Duration::from_secs(3) + Duration::from_millis(300),
        "collected {delay:?} after the last renewal"
    );
    assert!(delay >= Duration::from_secs(2), "never early: {delay:?}");

    // The Lease is deleted, the control System untouched, children follow through owner references.
    assert!(
        eventually(WAIT, || async {
            matches!(leases.get_opt("sess").await, Ok(None)).then_some(())
        })
        .await
        .is_some()
    );
    assert!(systems.get_opt("control").await.unwrap().is_some());
    if c.is_emulator() {
        let gone = eventually(WAIT, || async {
            matches!(c.api::<Deployment>().get_opt("a").await, Ok(None)).then_some(())
        })
        .await;
        assert!(gone.is_some(), "children garbage-collected");
    } else {
        common::skip(
            "expired_session_collects_its_systems_within_duration_plus_one_second",
            "waiting for the garbage collector's removal of the children is done on the API emulator only",
        );
    }
    assert_eq!(ctrl.metric("tycho_sessions_expired_total").await, Some(1.0));
    assert_eq!(ctrl.metric("tycho_gc_delay_seconds_count").await, Some(2.0));
    let sum = ctrl.metric("tycho_gc_delay_seconds_sum").await.unwrap();
    eprintln!(
        "MEASURE GC delay after expiry instant: mean {:.3} s",
        sum / 2.0
    );
    assert!(sum / 2.0 < 1.0, "GC delay after the expiry instant {sum}");

    ctrl.stop().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_session_never_starts_until_the_lease_exists_and_deletion_collects() {
    let c = TestCluster::start().await;
    let ctrl = c.run_controller(|_| {}).await;
    let systems: Api<System> = c.api();
    let leases: Api<Lease> = c.api();
    systems
        .create(
            &PostParams::default(),
            &system("waiting", Some("later"), None),
        )
        .await
        .unwrap();
    wait_session_valid(&systems, "waiting", "False/SessionNotFound").await;
    let s = systems.get("waiting").await.unwrap();
    assert_eq!(
        s.status.as_ref().and_then(|st| st.phase),
        Some(Phase::Pending)
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        c.api::<Deployment>()
            .get_opt("waiting")
            .await
            .unwrap()
            .is_none(),
        "nothing started"
    );

    // The Lease appears: it starts.
    create_lease(&leases, "later", 30, json!({})).await;
    wait_session_valid(&systems, "waiting", "True/SessionActive").await;
    assert!(
        eventually(WAIT, || async {
            c.api::<Deployment>()
                .get_opt("waiting")
                .await
                .ok()
                .flatten()
        })
        .await
        .is_some()
    );

    // The client ends the session by deleting the Lease: collected at once.
    let t = Instant::now();
    leases
        .delete("later", &DeleteParams::background())
        .await
        .unwrap();
    let gone = wait_gone(&systems, &["waiting"], Duration::from_secs(10))
        .await
        .expect("collected");
    assert!(
        gone.duration_since(t) < Duration::from_secs(3),
        "{:?}",
        gone.duration_since(t)
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
        .create(&PostParams::default(), &system("late", Some("done"), None))
        .await
        .unwrap();
    assert!(
        wait_gone(&systems, &["late"], Duration::from_secs(10))
            .await
            .is_some(),
        "System of a collected Lease deleted"
    );
    assert!(
        c.api::<Deployment>()
            .get_opt("late")
            .await
            .unwrap()
            .is_none(),
        "it never started"
    );

    // lifetime: deleted at creation + lifetime, not before.
    let t = Instant::now();
    systems
        .create(&PostParams::default(), &system("short", None, Some(3)))
        .await
        .unwrap();
    let gone = wait_gone(&systems, &["short"], Duration::from_secs(15))
        .await
        .expect("lifetime collected");
    let after = gone.duration_since(t);
    eprintln!("MEASURE lifetime 3 s: gone after {after:?}");
    // creationTimestamp has whole seconds: the deadline is 2–3 s after our create.
    assert!(
        after >= Duration::from_secs(2)
            && after <= Duration::from_secs(4) + Duration::from_millis(500),
        "{after:?}"
    );

    ctrl.stop().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_keeps_renewed_sessions_and_still_collects() {
    let c = TestCluster::start().await;
    let systems: Api<System> = c.api();
    let leases: Api<Lease> = c.api();
    create_lease(&leases, "long", 2, json!({})).await;
    let stop = Arc::new(AtomicBool::new(false));
    let renewing = renewer(
        leases.clone(),
        "long",
        Duration::from_millis(500),
        stop.clone(),
    );
    systems
        .create(&PostParams::default(), &system("kept", Some("long"), None))
        .await
        .unwrap();

    let first = c.run_controller(|_| {}).await;
    wait_session_valid(&systems, "kept", "True/SessionActive").await;
    let ready = eventually(WAIT, || async {
        let s = systems.get_opt("kept").await.ok()??;
        (s.status?.phase? == Phase::Ready).then_some(())
    })
    .await;
    assert!(ready.is_some(), "kept becomes Ready");
    first.stop().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.clear_requests();
    let second = c.run_controller(|_| {}).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            second.http_get("/readyz").await.filter(|r| r.0 == 200)
        })
        .await
        .is_some(),
        "ready after the caches sync"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kept = systems.get_opt("kept").await.unwrap();
    assert!(
        kept.is_some(),
        "a renewed session survives a controller restart"
    );
    if let Some(requests) = c.controller_requests() {
        let writes: Vec<String> = requests
            .iter()
            .filter(|r| common::is_write(r))
            .map(|r| format!("{} {}", r.verb, r.path))
            .collect();
        assert!(
            writes.is_empty(),
            "a restart writes nothing for an unchanged System: {writes:?}"
        );
    }

    stop.store(true, Ordering::SeqCst);
    let last = renewing.await.unwrap();
    let gone = wait_gone(&systems, &["kept"], Duration::from_secs(10))
        .await
        .expect("collected after restart");
    assert!(
        gone.duration_since(last) <= Duration::from_secs(3) + Duration::from_millis(300),
        "{:?}",
        gone.duration_since(last)
    );

    second.stop().await;
    c.cleanup().await;
}

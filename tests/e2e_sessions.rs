//! End to end with the `tycho controller` process against `tycho sim` (or the cluster of
//! `TYCHO_TEST_KUBECONFIG`): a session Lease (coordination.k8s.io/v1, `leaseDurationSeconds: 3`) that stops
//! being renewed takes the Systems that name it with it once its duration has passed since the last renewal
//! the controller saw, and never before; their children follow through owner references; a System of no
//! session stays.
//!
//! Causal checks, not stopwatches: a watch of the Lease gives the renewal the controller based its decision on
//! (the version carrying its `tycho.dev/collected` mark, written with that version's resourceVersion as
//! precondition), and the controller's `SessionExpired` Events give when it acted (`eventTime`, its clock, on
//! this machine). How soon after expiry is measured by `benches/e2e.rs` and printed here (`MEASURE`).

#[path = "common/fixtures.rs"]
mod fixtures;
#[path = "common/lease_history.rs"]
mod lease_history;
#[path = "common/process.rs"]
mod process;

use std::time::{Duration, Instant};

use fixtures::{SystemBuilder, system};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use lease_history::{LeaseHistory, event_times, renew_time};
use process::{E2e, WAIT, eventually};
use serde_json::json;
use tycho_model::{ANNOTATION_COLLECTED, System};

const DURATION: Duration = Duration::from_secs(3);
/// Generous bound on how late after the Lease's expiry the collection may come: a loaded machine's
/// scheduling cannot stretch a timer and a few API calls this far; the real figure is the benchmark's.
const LATE: Duration = Duration::from_secs(10);

/// A System of one sleeping container.
fn shell(name: &str) -> SystemBuilder {
    system(name).container(
        json!({ "name": "shell", "image": "busybox:1.37", "sleep": true, "ports": [{ "port": 8000 }] }),
    )
}

/// Renew: set `renewTime` to now. Returns the `renewTime` stored (microseconds): the controller cannot
/// have seen this renewal before that instant, which is taken before the request is sent.
async fn renew(leases: &Api<Lease>) -> i64 {
    let patch = json!({ "spec": { "renewTime": MicroTime(Timestamp::now()) } });
    let lease = leases
        .patch("sess", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("renew the Lease");
    renew_time(&lease).expect("a renewed Lease has a renewTime")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrenewed_session_lease_takes_its_systems_after_its_duration_never_before() {
    let mut e = E2e::start().await;
    let _c = e.controller().await;
    let systems: Api<System> = e.api();
    let leases: Api<Lease> = e.api();
    let lease: Lease = serde_json::from_value(json!({
        "metadata": { "name": "sess" },
        "spec": {
            "holderIdentity": "e2e-client",
            "leaseDurationSeconds": DURATION.as_secs(),
            "acquireTime": MicroTime(Timestamp::now()),
            "renewTime": MicroTime(Timestamp::now()),
        }
    }))
    .unwrap();
    let (history, watching) = LeaseHistory::watch(leases.clone(), "sess");
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut last = Instant::now();
    let names = ["a", "b", "c"];
    for n in names {
        systems
            .create(&PostParams::default(), &shell(n).session("sess").build())
            .await
            .unwrap();
    }
    systems
        .create(&PostParams::default(), &shell("control").build())
        .await
        .unwrap();

    // Keep the session alive (a renewal every second) until every System runs.
    let limit = Instant::now() + e.ready_wait();
    loop {
        let mut ready = 0;
        for n in names {
            let s = systems.get(n).await.unwrap();
            if s.status.and_then(|s| s.ready).as_deref() == Some("1/1") {
                ready += 1;
            }
        }
        if ready == names.len() {
            break;
        }
        assert!(Instant::now() < limit, "the session's Systems never ran");
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            renew(&leases).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Renew twice more, a second apart, then stop.
    tokio::time::sleep(Duration::from_secs(1).saturating_sub(last.elapsed())).await;
    renew(&leases).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let last = renew(&leases).await;

    // Wait (generously) until they are gone and the Lease is deleted.
    let gone = eventually(WAIT, || async {
        for n in names {
            if systems.get_opt(n).await.ok()?.is_some() {
                return None;
            }
        }
        history.deleted().then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "the session's Systems and Lease are not gone within {WAIT:?}; Lease versions seen: {}",
        history.describe()
    );
    watching.abort();

    // The controller's decision: the Lease version with its collected mark carries the renewal it was based
    // on — the last one (no collection while renewed).
    let marked = history.marked();
    let marked = marked.unwrap_or_else(|| {
        panic!(
            "no Lease version with the {ANNOTATION_COLLECTED} mark: {}",
            history.describe()
        )
    });
    let based_on = renew_time(&marked).expect("the marked Lease has a renewTime");
    assert_eq!(
        based_on,
        last,
        "collected on an earlier renewal than the last: {}",
        history.describe()
    );
    // Its acts: a SessionExpired Event per System, never before the expiry, not more than LATE after.
    let due = based_on + DURATION.as_micros() as i64;
    let events: Api<Event> = e.api();
    let mut late = Vec::new();
    for n in names {
        let at = eventually(WAIT, || async {
            event_times(&events, n, "SessionExpired")
                .await
                .into_iter()
                .min()
        })
        .await
        .unwrap_or_else(|| panic!("no SessionExpired Event on {n}"));
        late.push(at - due);
    }
    eprintln!(
        "MEASURE session GC: SessionExpired Events {:?} s after the Lease's expiry (last renewal + {} s)",
        late.iter()
            .map(|d| format!("{:+.3}", *d as f64 / 1e6))
            .collect::<Vec<_>>(),
        DURATION.as_secs()
    );
    for (n, d) in names.iter().zip(&late) {
        assert!(
            *d >= 0,
            "{n} collected {:.3} s before its Lease expired",
            -*d as f64 / 1e6
        );
        assert!(
            *d <= LATE.as_micros() as i64,
            "{n} collected {:.3} s after its Lease expired (bound {LATE:?})",
            *d as f64 / 1e6
        );
    }
    assert!(
        event_times(&events, "control", "SessionExpired")
            .await
            .is_empty(),
        "no SessionExpired Event on the System of no session"
    );

    // The children follow (the cluster's garbage collector), the Lease is gone, the other System stays.
    let deployments: Api<Deployment> = e.api();
    let children = eventually(WAIT, || async {
        for n in names {
            if deployments.get_opt(n).await.ok()?.is_some() {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(
        children.is_some(),
        "the collected Systems' Deployments remain"
    );
    assert!(systems.get_opt("control").await.unwrap().is_some());
    assert!(deployments.get_opt("control").await.unwrap().is_some());
    e.cleanup().await;
}

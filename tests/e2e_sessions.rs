//! End to end with the `tycho controller` process against `tycho sim` (or the cluster of
//! `TYCHO_TEST_KUBECONFIG`): a session Lease (coordination.k8s.io/v1, `leaseDurationSeconds: 3`) that stops
//! being renewed takes the Systems that name it with it within its duration plus one second — measured
//! from the moment renewals stop plus the duration, i.e. the Lease's expiry — and never before; their
//! children follow through owner references; a System of no session stays.

#[path = "common/process.rs"]
mod process;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use process::{E2e, WAIT, eventually};
use serde_json::json;
use tycho::model::System;

const DURATION: Duration = Duration::from_secs(3);

fn system(name: &str, session: Option<&str>) -> System {
    let mut spec = json!({
        "containers": [{ "name": "shell", "image": "busybox:1.37", "sleep": true, "ports": [{ "port": 8000 }] }]
    });
    if let Some(s) = session {
        spec["session"] = json!(s);
    }
    serde_json::from_value(json!({
        "apiVersion": "tycho.dev/v1alpha1", "kind": "System", "metadata": { "name": name }, "spec": spec,
    }))
    .unwrap()
}

/// Renew: set `renewTime` to now. Returns the instant taken just before the timestamp, so that
/// `instant + duration` is never later than the expiry the controller computes from `renewTime`.
async fn renew(leases: &Api<Lease>) -> Instant {
    let at = Instant::now();
    let patch = json!({ "spec": { "renewTime": MicroTime(Timestamp::now()) } });
    leases
        .patch("sess", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrenewed_session_lease_takes_its_systems_within_its_duration_plus_one_second() {
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
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut last = Instant::now();
    let names = ["a", "b", "c"];
    for n in names {
        systems
            .create(&PostParams::default(), &system(n, Some("sess")))
            .await
            .unwrap();
    }
    systems
        .create(&PostParams::default(), &system("control", None))
        .await
        .unwrap();

    // Keep the session alive (a renewal every second) until every System runs.
    let limit = Instant::now()
        + if e.is_emulator() {
            WAIT
        } else {
            Duration::from_secs(240)
        };
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
            last = renew(&leases).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Renew twice more, a second apart, then stop.
    tokio::time::sleep(Duration::from_secs(1).saturating_sub(last.elapsed())).await;
    renew(&leases).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let last = renew(&leases).await;
    let expiry = last + DURATION;

    // Watch them go: poll every 20 ms, noting when each disappears.
    let mut gone: Vec<Option<Instant>> = vec![None; names.len()];
    while gone.iter().any(Option::is_none) {
        for (i, n) in names.iter().enumerate() {
            if gone[i].is_none() && systems.get_opt(n).await.unwrap().is_none() {
                gone[i] = Some(Instant::now());
            }
        }
        assert!(
            last.elapsed() < DURATION + Duration::from_secs(10),
            "not collected 10 s after expiry: {gone:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delays: Vec<f64> = gone
        .iter()
        .map(|g| {
            let g = g.unwrap();
            if g >= expiry {
                g.duration_since(expiry).as_secs_f64()
            } else {
                -expiry.duration_since(g).as_secs_f64()
            }
        })
        .collect();
    eprintln!(
        "MEASURE session GC: Systems gone {:?} s after the Lease's expiry (renewals stopped + {} s)",
        delays
            .iter()
            .map(|d| format!("{d:+.3}"))
            .collect::<Vec<_>>(),
        DURATION.as_secs()
    );
    for (n, d) in names.iter().zip(&delays) {
        assert!(
            *d <= 1.0,
            "{n} collected {d:.3} s after expiry (bound: 1 s)"
        );
        // Never early: the first poll after the deletion may come up to 20 ms late, the deletion itself not
        // before the expiry (the controller computes it from renewTime, stamped after `last`).
        assert!(*d >= -0.05, "{n} collected {:.3} s before expiry", -d);
    }

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

//! The client side of the session contract: the Lease the SDK creates, its renewal about every
//! third of the duration, and a session that cannot renew in time reporting itself lost.
//!
//! The renewals are read from a watch of the Lease (every version the server stored), not from a stopwatch.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestCluster, eventually};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::watcher;
use tycho_emulator::ErrorRule;
use tycho_sdk::{Location, SessionOptions, SessionState};

const WAIT: Duration = Duration::from_secs(60);

/// The distinct `renewTime`s (microseconds) of the Lease `name`, in the order a watch receives them.
fn watch_renewals(
    api: kube::Api<Lease>,
    name: String,
) -> (Arc<Mutex<Vec<i64>>>, tokio::task::JoinHandle<()>) {
    let times = Arc::new(Mutex::new(Vec::new()));
    let t = times.clone();
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
        while let Some(ev) = events.next().await {
            if let Ok(watcher::Event::Apply(l) | watcher::Event::InitApply(l)) = ev
                && l.metadata.name.as_deref() == Some(name.as_str())
                && let Some(rt) = l.spec.and_then(|s| s.renew_time)
            {
                let mut v = t.lock().expect("renewals lock");
                let micros = rt.0.as_microsecond();
                if v.last() != Some(&micros) {
                    v.push(micros);
                }
            }
        }
    });
    (times, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_is_created_renewed_and_lost_when_renewals_fail() {
    let cluster = TestCluster::start().await;
    let location = Location::from_client_with(
        cluster.client.clone(),
        &cluster.namespace,
        SessionOptions {
            lease_duration: Duration::from_secs(3),
            holder: Some("alice@laptop:42".into()),
            ..SessionOptions::default()
        },
    )
    .await
    .unwrap();
    let leases: kube::Api<Lease> = cluster.api();
    let lease = leases.get(location.session_name()).await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("alice@laptop:42"));
    assert_eq!(spec.lease_duration_seconds, Some(3));
    let first = spec.renew_time.unwrap().0;
    assert!(spec.acquire_time.is_some());

    // Renewed about every second (a third of 3 s): the watch sees three renewals after the first
    // renewTime, each at least half a period after the one before (no hammering) and less than the
    // duration (the Lease never lapses).
    let (renewals, watching) = watch_renewals(leases.clone(), location.session_name().to_string());
    let seen = eventually(WAIT, || async {
        let v = renewals.lock().expect("renewals lock").clone();
        (v.len() >= 4).then_some(v)
    })
    .await;
    watching.abort();
    let seen = seen.unwrap_or_else(|| {
        panic!(
            "fewer than 3 renewals seen within {WAIT:?}: {:?}",
            renewals.lock().expect("renewals lock")
        )
    });
    assert!(
        seen[0] >= first.as_microsecond(),
        "renewTime went back from the created Lease's: {seen:?}"
    );
    let gaps: Vec<i64> = seen.windows(2).map(|w| (w[1] - w[0]) / 1000).collect();
    eprintln!("MEASURE SDK renewals every {gaps:?} ms (a third of 3 s)");
    for g in &gaps {
        assert!(
            (500..3000).contains(g),
            "renewTime advanced {g} ms (renewals: {gaps:?} ms)"
        );
    }
    assert!(!location.session_lost());

    // Every renewal now fails: within the duration the session reports itself lost.
    let Some(emu) = cluster.emulator.as_ref() else {
        common::skip(
            "lease_is_created_renewed_and_lost_when_renewals_fail",
            "the lost-session part (failing renewals by fault injection) needs the API emulator",
        );
        location.close().await.expect("close the session");
        cluster.cleanup().await;
        return;
    };
    emu.faults().add_error_rule(ErrorRule {
        verb: Some("patch".into()),
        resource: Some("leases".into()),
        rate: 1.0,
        code: 500,
        retry_after_seconds: 0,
    });
    let mut w = location.session_watch();
    let state = tokio::time::timeout(WAIT, w.wait_for(|s| matches!(s, SessionState::Lost(_))))
        .await
        .expect("the session reports itself lost")
        .expect("session state")
        .clone();
    // It was lost because renewals failed: the API served 500s to the SDK's PATCHes of its Lease.
    let failed = emu
        .requests()
        .iter()
        .filter(|r| r.verb == "patch" && r.resource == "leases" && r.code == 500)
        .count();
    assert!(failed >= 1, "no failed renewal in the request log");
    let SessionState::Lost(reason) = state else {
        unreachable!()
    };
    assert!(reason.contains("not renewed"), "{reason}");
    emu.faults().clear();
    location.close().await.unwrap();
    assert!(
        leases
            .get_opt(location.session_name())
            .await
            .unwrap()
            .is_none()
    );
    cluster.cleanup().await;
}

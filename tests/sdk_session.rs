//! The client side of the session contract: the Lease the SDK creates, its renewal about every
//! third of the duration, and a session that cannot renew in time reporting itself lost.

mod common;

use std::time::Duration;

use common::TestCluster;
use k8s_openapi::api::coordination::v1::Lease;
use tycho::sdk::{Location, SessionOptions, SessionState};
use tycho_emulator::ErrorRule;

#[tokio::test]
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

    // Renewed about every second (a third of 3 s).
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let renewed = leases
        .get(location.session_name())
        .await
        .unwrap()
        .spec
        .unwrap()
        .renew_time
        .unwrap()
        .0;
    let advanced = renewed.as_millisecond() - first.as_millisecond();
    assert!(
        (1500..=2600).contains(&advanced),
        "renewTime advanced {advanced} ms"
    );
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
    let state = tokio::time::timeout(
        Duration::from_secs(6),
        w.wait_for(|s| matches!(s, SessionState::Lost(_))),
    )
    .await
    .expect("lost within the lease duration plus a renewal period")
    .unwrap()
    .clone();
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

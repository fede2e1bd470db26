//! Leader election against the API emulator: two candidates on one Lease, exactly one leads; when the leader
//! dies without a word (its task aborted, as a killed pod), the standby takes over within the lease duration
//! plus a retry period; when the leader stops gracefully it releases the Lease and the standby takes over at
//! its next retry.

use std::future::pending;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tycho::leader::{LeaderElector, LeaderError};
use tycho_emulator::{Emulator, EmulatorConfig};

const LEASE: Duration = Duration::from_secs(2);
const RENEW: Duration = Duration::from_millis(1500);
const RETRY: Duration = Duration::from_millis(250);

async fn emulator() -> (Emulator, Client) {
    let emu = Emulator::start(EmulatorConfig {
        simulate: false,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let config = kube::Config::new(emu.url().parse().unwrap());
    let client = Client::try_from(config).unwrap();
    (emu, client)
}

fn elector(client: &Client, lease: &str, identity: &str) -> LeaderElector {
    LeaderElector::new(
        client.clone(),
        "default",
        lease,
        identity,
        LEASE,
        RENEW,
        RETRY,
    )
    .unwrap()
}

/// Run a candidate whose leader work never finishes by itself.
fn candidate(e: LeaderElector) -> (watch::Receiver<bool>, JoinHandle<Result<(), LeaderError>>) {
    let rx = e.subscribe();
    (rx, tokio::spawn(e.run_until_lost(pending::<()>())))
}

async fn wait_for(rx: &mut watch::Receiver<bool>, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    tokio::time::timeout(limit, rx.wait_for(|l| *l))
        .await
        .ok()?
        .ok()?;
    Some(start.elapsed())
}

async fn holder(client: &Client, lease: &str) -> (Option<String>, Option<i32>) {
    let l = Api::<Lease>::namespaced(client.clone(), "default")
        .get(lease)
        .await
        .unwrap();
    let spec = l.spec.unwrap_or_default();
    (spec.holder_identity, spec.lease_transitions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_and_a_standby_takes_over_when_it_dies() {
    let (emu, client) = emulator().await;
    let (mut rx_a, task_a) = candidate(elector(&client, "tycho-test", "replica-a"));
    let (mut rx_b, task_b) = candidate(elector(&client, "tycho-test", "replica-b"));

    // One of them leads quickly.
    let start = Instant::now();
    loop {
        if *rx_a.borrow() || *rx_b.borrow() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "nobody acquired the Lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And only one, for several lease durations of renewals.
    let watch_until = Instant::now() + LEASE * 2;
    while Instant::now() < watch_until {
        let (a, b) = (*rx_a.borrow(), *rx_b.borrow());
        assert!(a ^ b, "leaders: a={a} b={b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (leader, standby_rx, leader_task, standby_task, leader_id, standby_id) = if *rx_a.borrow() {
        ("a", &mut rx_b, task_a, task_b, "replica-a", "replica-b")
    } else {
        ("b", &mut rx_a, task_b, task_a, "replica-b", "replica-a")
    };
    assert_eq!(
        holder(&client, "tycho-test").await.0.as_deref(),
        Some(leader_id),
        "leader {leader}"
    );

    // The leader dies without releasing anything.
    leader_task.abort();
    let killed = Instant::now();
    let took = wait_for(standby_rx, LEASE + RETRY * 2 + Duration::from_secs(2))
        .await
        .expect("the standby never took over");
    let took_total = killed.elapsed();
    eprintln!(
        "standby took over {took_total:?} after the leader died (lease {LEASE:?}, retry {RETRY:?})"
    );
    assert!(took <= took_total);
    // Not before the Lease could have expired (the dead leader renewed at most one retry period before dying)…
    assert!(
        took_total >= LEASE - RETRY * 2,
        "took over too early: {took_total:?}"
    );
    // …and within the lease duration plus a (jittered) retry period, with scheduling slack.
    assert!(
        took_total <= LEASE + RETRY * 2 + Duration::from_secs(1),
        "too slow: {took_total:?}"
    );
    let (holder_id, transitions) = holder(&client, "tycho-test").await;
    assert_eq!(holder_id.as_deref(), Some(standby_id));
    assert_eq!(transitions, Some(1));
    standby_task.abort();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_leader_releases_and_the_standby_takes_over_at_once() {
    let (emu, client) = emulator().await;
    let first = elector(&client, "tycho-release", "replica-a");
    let mut first_rx = first.subscribe();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let first_task = tokio::spawn(first.run_until_lost(async move {
        let _ = stop_rx.await;
        "done"
    }));
    assert!(
        wait_for(&mut first_rx, Duration::from_secs(5))
            .await
            .is_some()
    );

    let (mut second_rx, second_task) = candidate(elector(&client, "tycho-release", "replica-b"));
    tokio::time::sleep(LEASE).await;
    assert!(
        !*second_rx.borrow(),
        "the standby must not lead while the leader renews"
    );

    stop_tx.send(()).unwrap();
    let stopped = Instant::now();
    assert_eq!(first_task.await.unwrap().unwrap(), "done");
    assert!(
        !*first_rx.borrow(),
        "a released leader no longer reports leading"
    );
    let took = wait_for(&mut second_rx, LEASE)
        .await
        .expect("no takeover after release");
    let total = stopped.elapsed();
    eprintln!("takeover {total:?} after a graceful release (wait {took:?})");
    assert!(
        total < Duration::from_secs(1) + RETRY * 2,
        "a released Lease is free at the next retry: {total:?}"
    );
    assert_eq!(
        holder(&client, "tycho-release").await.0.as_deref(),
        Some("replica-b")
    );
    second_task.abort();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_steps_down_before_anyone_can_take_over() {
    let (emu, client) = emulator().await;
    let e = elector(&client, "tycho-stepdown", "replica-a");
    let mut rx = e.subscribe();
    let task = tokio::spawn(e.run_until_lost(pending::<()>()));
    assert!(wait_for(&mut rx, Duration::from_secs(5)).await.is_some());

    // Someone else overwrites the Lease (e.g. an operator deleted and recreated it): the leader must notice at its
    // next renewal and stop, rather than keep reconciling beside a new holder.
    let api = Api::<Lease>::namespaced(client.clone(), "default");
    let mut l = api.get("tycho-stepdown").await.unwrap();
    if let Some(spec) = l.spec.as_mut() {
        spec.holder_identity = Some("intruder".into());
    }
    api.replace("tycho-stepdown", &Default::default(), &l)
        .await
        .unwrap();
    let result = tokio::time::timeout(RENEW + RETRY * 2, task)
        .await
        .expect("the leader kept going")
        .unwrap();
    match result {
        Err(LeaderError::Lost { reason, .. }) => assert!(reason.contains("intruder"), "{reason}"),
        other => panic!("expected Lost, got {other:?}"),
    }
    assert!(!*rx.borrow());
    emu.shutdown().await;
}

#[test]
fn inconsistent_timings_are_rejected() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let s = Duration::from_secs;
        for (lease, renew, retry) in [
            (s(10), s(10), s(2)),
            (s(10), s(5), s(5)),
            (s(10), s(5), s(0)),
            (Duration::ZERO, s(0), s(0)),
        ] {
            let e = LeaderElector::new(client.clone(), "default", "l", "me", lease, renew, retry);
            assert!(
                matches!(e, Err(LeaderError::Config(_))),
                "{lease:?} {renew:?} {retry:?}"
            );
        }
        assert!(matches!(
            LeaderElector::new(client.clone(), "default", "l", "", s(10), s(5), s(1)),
            Err(LeaderError::Config(_))
        ));
    });
}

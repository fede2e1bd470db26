//! Leader election against the API emulator: two candidates on one Lease, exactly one leads; when the leader
//! dies without a word (its task aborted, as a killed pod), the standby takes over within the lease duration
//! plus a retry period; when the leader stops gracefully it releases the Lease and the standby takes over at
//! its next retry.
//!
//! Timing is judged from the Lease's versions as a watch receives them (the holder's last `renewTime`, the new
//! holder's `acquireTime`, both stamped by this process's clock), not from stopwatches; waits are generous.

mod common;

use std::future::pending;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestCluster;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tycho_emulator::EmulatorConfig;
use tycho_operator::leader::{LeaderElector, LeaderError};

const LEASE: Duration = Duration::from_secs(2);
const RENEW: Duration = Duration::from_millis(1500);
const RETRY: Duration = Duration::from_millis(250);
/// Generous limit for anything that must happen eventually on a loaded machine.
const WAIT: Duration = Duration::from_secs(60);
/// Generous bound on how late a takeover may come after it became possible.
const LATE: Duration = Duration::from_secs(10);

/// Every version of the Lease `name` in `default`, as a watch receives them.
fn lease_history(client: &Client, name: &str) -> (Arc<Mutex<Vec<Lease>>>, JoinHandle<()>) {
    let history: Arc<Mutex<Vec<Lease>>> = Arc::default();
    let (h, name) = (history.clone(), name.to_string());
    let api = Api::<Lease>::namespaced(client.clone(), "default");
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
        while let Some(ev) = events.next().await {
            if let Ok(watcher::Event::Apply(l) | watcher::Event::InitApply(l)) = ev
                && l.metadata.name.as_deref() == Some(name.as_str())
            {
                h.lock().expect("history lock").push(l);
            }
        }
    });
    (history, task)
}

fn holder_of(l: &Lease) -> Option<&str> {
    l.spec.as_ref()?.holder_identity.as_deref()
}

fn micros(t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime>) -> Option<i64> {
    t.as_ref().map(|t| t.0.as_microsecond())
}

fn describe(history: &Mutex<Vec<Lease>>) -> String {
    history
        .lock()
        .expect("history lock")
        .iter()
        .map(|l| {
            let s = l.spec.clone().unwrap_or_default();
            format!(
                "holder={:?} acquire={:?} renew={:?} duration={:?}",
                s.holder_identity,
                micros(&s.acquire_time),
                micros(&s.renew_time),
                s.lease_duration_seconds
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Wait until the watch has received a version held by `who`.
async fn wait_seen(history: &Mutex<Vec<Lease>>, who: &str) {
    let start = Instant::now();
    while !history
        .lock()
        .expect("history lock")
        .iter()
        .any(|l| holder_of(l) == Some(who))
    {
        assert!(
            start.elapsed() < WAIT,
            "the watch never saw {who} hold the Lease: {}",
            describe(history)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The last `renewTime` `who` wrote, and the `acquireTime` of the first version held by `next` after it.
fn handover(history: &Mutex<Vec<Lease>>, who: &str, next: &str) -> Option<(i64, i64)> {
    let versions = history.lock().expect("history lock").clone();
    let last = versions.iter().rposition(|l| holder_of(l) == Some(who))?;
    let renewed = micros(&versions[last].spec.as_ref()?.renew_time)?;
    let acquired = versions[last..]
        .iter()
        .find(|l| holder_of(l) == Some(next))
        .and_then(|l| micros(&l.spec.as_ref()?.acquire_time))?;
    Some((renewed, acquired))
}

/// The emulator without its simulated cluster: only the API server (and its request log).
async fn emulator() -> TestCluster {
    TestCluster::start_emulator(EmulatorConfig {
        simulate: false,
        ..EmulatorConfig::default()
    })
    .await
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
    let cluster = emulator().await;
    let client = cluster.client.clone();
    let (history, watching) = lease_history(&client, "tycho-test");
    let (mut rx_a, task_a) = candidate(elector(&client, "tycho-test", "replica-a"));
    let (mut rx_b, task_b) = candidate(elector(&client, "tycho-test", "replica-b"));

    // One of them leads quickly.
    let start = Instant::now();
    loop {
        if *rx_a.borrow() || *rx_b.borrow() {
            break;
        }
        assert!(start.elapsed() < WAIT, "nobody acquired the Lease");
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
    assert!(
        wait_for(standby_rx, WAIT).await.is_some(),
        "the standby never took over: {}",
        describe(&history)
    );
    wait_seen(&history, standby_id).await;
    watching.abort();
    // Not before the Lease expired (the standby judges from when it saw the last renewal, which is no
    // earlier than the renewTime the leader stamped), and not much after.
    let (renewed, acquired) = handover(&history, leader_id, standby_id)
        .unwrap_or_else(|| panic!("no handover in the Lease's history: {}", describe(&history)));
    let late = acquired - (renewed + LEASE.as_micros() as i64);
    eprintln!(
        "MEASURE standby acquired {:+.3} s after the dead leader's Lease expired (lease {LEASE:?}, retry {RETRY:?})",
        late as f64 / 1e6
    );
    assert!(
        late >= 0,
        "took over {:.3} s before the Lease expired: {}",
        -late as f64 / 1e6,
        describe(&history)
    );
    assert!(
        late <= (RETRY * 2 + LATE).as_micros() as i64,
        "took over {:.3} s after the Lease expired",
        late as f64 / 1e6
    );
    let (holder_id, transitions) = holder(&client, "tycho-test").await;
    assert_eq!(holder_id.as_deref(), Some(standby_id));
    assert_eq!(transitions, Some(1));
    standby_task.abort();
    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_leader_releases_and_the_standby_takes_over_at_once() {
    let cluster = emulator().await;
    let client = cluster.client.clone();
    // A long Lease: a takeover before it could have expired can only come from the release.
    let long = Duration::from_secs(10);
    let elector = |id: &str| {
        LeaderElector::new(
            client.clone(),
            "default",
            "tycho-release",
            id,
            long,
            RENEW,
            RETRY,
        )
        .expect("an elector")
    };
    let (history, watching) = lease_history(&client, "tycho-release");
    let first = elector("replica-a");
    let mut first_rx = first.subscribe();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let first_task = tokio::spawn(first.run_until_lost(async move {
        let _ = stop_rx.await;
        "done"
    }));
    assert!(wait_for(&mut first_rx, WAIT).await.is_some());

    let (mut second_rx, second_task) = candidate(elector("replica-b"));
    // Three renewals by the leader seen by the watch, and the standby never led meanwhile.
    let renewals = || {
        history
            .lock()
            .expect("history lock")
            .iter()
            .filter(|l| holder_of(l) == Some("replica-a"))
            .count()
    };
    let seen = renewals();
    let start = Instant::now();
    while renewals() < seen + 3 {
        assert!(
            !*second_rx.borrow(),
            "the standby must not lead while the leader renews: {}",
            describe(&history)
        );
        assert!(
            start.elapsed() < WAIT,
            "no renewals: {}",
            describe(&history)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !*second_rx.borrow(),
        "the standby must not lead while the leader renews"
    );

    stop_tx.send(()).unwrap();
    assert_eq!(first_task.await.unwrap().unwrap(), "done");
    assert!(
        !*first_rx.borrow(),
        "a released leader no longer reports leading"
    );
    assert!(
        wait_for(&mut second_rx, WAIT).await.is_some(),
        "no takeover after release: {}",
        describe(&history)
    );
    wait_seen(&history, "replica-b").await;
    watching.abort();
    // The release (holder cleared) came first, then the standby's acquisition — long before the leader's
    // last renewal would have expired.
    let versions = history.lock().expect("history lock").clone();
    let released = versions
        .iter()
        .position(|l| holder_of(l).is_none())
        .unwrap_or_else(|| panic!("no release in the Lease's history: {}", describe(&history)));
    let acquired_at = versions
        .iter()
        .position(|l| holder_of(l) == Some("replica-b"))
        .unwrap_or_else(|| panic!("no acquisition: {}", describe(&history)));
    assert!(
        released < acquired_at,
        "acquired before the release: {}",
        describe(&history)
    );
    let (renewed, acquired) = handover(&history, "replica-a", "replica-b")
        .unwrap_or_else(|| panic!("no handover: {}", describe(&history)));
    eprintln!(
        "MEASURE takeover {:.3} s after the leader's last renewal (lease {long:?}, retry {RETRY:?})",
        (acquired - renewed) as f64 / 1e6
    );
    assert!(
        acquired < renewed + long.as_micros() as i64,
        "the standby waited for the Lease to expire instead of taking the released one: {}",
        describe(&history)
    );
    assert_eq!(
        holder(&client, "tycho-release").await.0.as_deref(),
        Some("replica-b")
    );
    second_task.abort();
    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_steps_down_before_anyone_can_take_over() {
    let cluster = emulator().await;
    let client = cluster.client.clone();
    let e = elector(&client, "tycho-stepdown", "replica-a");
    let mut rx = e.subscribe();
    let task = tokio::spawn(e.run_until_lost(pending::<()>()));
    assert!(wait_for(&mut rx, WAIT).await.is_some());

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
    cluster.clear_requests();
    let result = tokio::time::timeout(WAIT, task)
        .await
        .expect("the leader kept going")
        .unwrap();
    // It stepped down without writing the Lease again: the log saw it read the Lease, and no write.
    let log = cluster.requests().expect("the emulator's request log");
    assert!(
        log.iter()
            .any(|r| r.resource == "leases" && r.verb == "get"),
        "the leader's read of the Lease is in the log: {log:?}"
    );
    assert!(
        !log.iter().any(|r| r.resource == "leases"
            && r.code < 300
            && matches!(r.verb.as_str(), "update" | "patch" | "create")),
        "the leader wrote the Lease after it was taken: {log:?}"
    );
    match result {
        Err(LeaderError::Lost { reason, .. }) => assert!(reason.contains("intruder"), "{reason}"),
        other => panic!("expected Lost, got {other:?}"),
    }
    assert!(!*rx.borrow());
    cluster.cleanup().await;
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

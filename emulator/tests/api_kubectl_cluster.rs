//! Everyday kubectl commands against the emulator with its simulated cluster: `get all`
//! (categories), `rollout status` and `wait` (watching Deployment status conditions),
//! `describe` (typed clients, events by field selector), `get events`, `get nodes -o wide`.

mod api_common;

use std::time::Duration;

use api_common::{Kubectl, start_with};
use tycho_emulator::EmulatorConfig;

/// kubectl workflows that depend on controllers: a created Deployment rolls out (`rollout
/// status`, `wait --for=condition=Available`), `get all` lists it through the `all` category,
/// `describe` shows its events, nodes report Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_wait_describe_get_all() {
    let emu = start_with(EmulatorConfig {
        nodes: 2,
        pod_ready_delay: Duration::from_millis(100),
        ..EmulatorConfig::default()
    })
    .await;
    let k = Kubectl::new(&emu);
    k.ok(
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=2",
        ],
        None,
    )
    .await;
    k.ok(
        &["rollout", "status", "deployment/web", "--timeout=60s"],
        None,
    )
    .await;
    k.ok(
        &[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=60s",
        ],
        None,
    )
    .await;
    let all = k.ok(&["get", "all"], None).await;
    assert!(
        all.contains("deployment.apps/web") && all.contains("pod/web-"),
        "{all}"
    );
    assert!(all.contains("replicaset.apps/web-"), "{all}");
    let d = k.ok(&["describe", "deployment", "web"], None).await;
    assert!(d.contains("Replicas:") && d.contains("2 desired"), "{d}");
    let nodes = k.ok(&["get", "nodes", "-o", "wide"], None).await;
    assert_eq!(
        nodes.lines().filter(|l| l.contains(" Ready ")).count(),
        2,
        "{nodes}"
    );
    let pods = k
        .ok(&["get", "pods", "-l", "app=web", "-o", "name"], None)
        .await;
    let pod = pods
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("pod/")
        .to_string();
    let desc = k.ok(&["describe", "pod", &pod], None).await;
    assert!(
        desc.contains("Status:") && desc.contains("Running"),
        "{desc}"
    );
    assert!(desc.contains("Scheduled"), "events of the pod: {desc}");
    let ev = k.ok(&["get", "events"], None).await;
    assert!(ev.contains("Scheduled"), "{ev}");
    k.ok(&["delete", "deployment", "web"], None).await;
    emu.shutdown().await;
}

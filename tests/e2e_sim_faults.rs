//! End to end against the `tycho sim` process alone: its simulated cluster (Deployment and ReplicaSet
//! controllers, scheduler, kubelet) must itself recover from the faults the emulator injects for the
//! operator's tests — dropped watch streams and 410 Gone — as kube-controller-manager's informers do (a
//! relist delivers every change missed while the watch was down). Otherwise the operator's fault tests
//! measure the simulator, not the operator.
//!
//! Each round: the next resuming watch gets 410 Gone, every watch stream is dropped, and the Deployment is
//! scaled at once (so that the ReplicaSet changes while some watcher of the simulator relists); the pods
//! must then match the new replica count. Each round also confirms that the faults landed: the forced 410
//! was served (the emulator's fault flag was taken by a resuming watch) and the simulator relisted (a
//! `list` in the request log).

#[path = "common/process.rs"]
mod process;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use process::{E2e, eventually};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_cluster_recovers_from_dropped_watches_and_410s() {
    let e = E2e::start_bare().await;
    if e.skip_unless_emulator(
        "the_simulated_cluster_recovers_from_dropped_watches_and_410s",
        "fault injection",
    ) {
        return;
    }
    let d: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "d" },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": "d" } },
            "template": {
                "metadata": { "labels": { "app": "d" } },
                "spec": { "containers": [{ "name": "c", "image": "nginx:1.27" }] }
            }
        }
    }))
    .unwrap();
    let deployments: Api<Deployment> = e.api();
    let pods: Api<Pod> = e.api();
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let converged = |want: usize| {
        let (deployments, pods) = (deployments.clone(), pods.clone());
        async move {
            eventually(Duration::from_secs(15), || async {
                let st = deployments.get("d").await.ok()?.status?;
                let running = pods
                    .list(&ListParams::default().labels("app=d"))
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .count();
                (st.ready_replicas.unwrap_or(0) as usize == want && running == want).then_some(())
            })
            .await
            .is_some()
        }
    };
    assert!(converged(1).await, "the Deployment never ran");
    for round in 0..20 {
        let want = 1 + (round % 2) + 1; // 2, 3, 2, 3, ...
        e.clear_requests().await;
        e.set_faults(json!({ "forceGone": true, "dropWatches": true }))
            .await;
        deployments
            .patch(
                "d",
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "replicas": want } })),
            )
            .await
            .unwrap();
        if !converged(want).await {
            let st = deployments.get("d").await.unwrap().status;
            let names: Vec<String> = pods
                .list(&ListParams::default().labels("app=d"))
                .await
                .unwrap()
                .items
                .iter()
                .map(|p| p.name_any())
                .collect();
            panic!(
                "round {round}: scaled to {want} after a dropped watch + 410, but the simulated cluster did \
                 not follow within 15 s.\nDeployment status: {st:?}\npods: {names:?}"
            );
        }
        let served = eventually(Duration::from_secs(15), || async {
            (e.faults().await["forceGone"] == json!(false)).then_some(())
        })
        .await;
        assert!(
            served.is_some(),
            "round {round}: the forced 410 was never served (no watch resumed): {}",
            e.faults().await
        );
        // The watcher that got the 410 starts over: its resource sees a second watch (or list) by the
        // simulator after the drop (the re-watch may wait out the watcher's backoff).
        let restarted = || async {
            let log = e.requests().await;
            let mut per_resource = std::collections::BTreeMap::<String, usize>::new();
            for r in &log {
                let by_sim = r["userAgent"]
                    .as_str()
                    .is_some_and(|ua| ua.starts_with("tycho-emulator-sim/"));
                if by_sim && (r["verb"] == "watch" || r["verb"] == "list") {
                    *per_resource
                        .entry(r["resource"].as_str().unwrap_or_default().to_string())
                        .or_default() += 1;
                }
            }
            per_resource
        };
        let relisted = eventually(Duration::from_secs(15), || async {
            restarted().await.values().any(|n| *n >= 2).then_some(())
        })
        .await;
        assert!(
            relisted.is_some(),
            "round {round}: no watcher of the simulator started over after the 410; watches and lists per resource: {:?}",
            restarted().await
        );
    }
    e.cleanup().await;
}

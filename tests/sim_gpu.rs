//! GPUs on the simulated cluster: a System asking for `limits: {gpus: 1}` gets pods with the
//! `nvidia.com/gpu` extended resource, which the simulated scheduler places only on nodes that
//! advertise it (`gpus_per_node`, here on 2 of 3 nodes, as `tycho sim --gpus-per-node 1 --gpu-nodes 2`
//! sets up), one per GPU; a replica beyond the GPUs stays Pending as Unschedulable.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{TestCluster, emulator_config, eventually, system};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use tycho_emulator::EmulatorConfig;
use tycho_model::{Phase, System};

const WAIT: Duration = Duration::from_secs(60);

fn scheduled(p: &Pod) -> Option<String> {
    p.spec.as_ref()?.node_name.clone().filter(|n| !n.is_empty())
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn unschedulable_message(p: &Pod) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable"))
        .map(|c| c.message.clone().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_systems_run_only_on_gpu_nodes() {
    let cluster = TestCluster::start_with(EmulatorConfig {
        nodes: 3,
        gpus_per_node: 1,
        gpu_nodes: Some(2),
        ..emulator_config()
    })
    .await;
    if cluster.skip_unless_emulator(
        "gpu_systems_run_only_on_gpu_nodes",
        "simulated GPU nodes (a real cluster's GPU nodes are whatever it has)",
    ) {
        cluster.cleanup().await;
        return;
    }
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let gpu_nodes: BTreeSet<String> = eventually(WAIT, || async {
        let l = nodes
            .list(&ListParams::default().labels("nvidia.com/gpu.present=true"))
            .await
            .ok()?;
        (l.items.len() == 2).then(|| l.items.iter().map(|n| n.name_any()).collect())
    })
    .await
    .expect("two GPU nodes registered");
    let all = nodes.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(all.len(), 3);
    for n in &all {
        let gpus = n
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get("nvidia.com/gpu"))
            .map(|q| q.0.clone());
        let want = gpu_nodes.contains(&n.name_any()).then(|| "1".to_string());
        assert_eq!(gpus, want, "{}", n.name_any());
    }

    let controller = cluster.run_controller(|_| {}).await;
    let systems: Api<System> = cluster.api();
    let pods: Api<Pod> = cluster.api();
    let trainer = system("trainer")
        .container(json!({ "name": "train", "image": "cuda:12", "limits": { "gpus": 1 } }));
    systems
        .patch(
            "trainer",
            &PatchParams::apply("tycho-tests").force(),
            &Patch::Apply(&trainer.clone().replicas(3).build()),
        )
        .await
        .unwrap();

    // Two replicas run, one on each GPU node; the third cannot be placed.
    let (placed, pending) = eventually(WAIT, || async {
        let ps = pods.list(&ListParams::default()).await.ok()?.items;
        let running: Vec<&Pod> = ps.iter().filter(|p| ready(p)).collect();
        let stuck: Vec<String> = ps.iter().filter_map(unschedulable_message).collect();
        (ps.len() == 3 && running.len() == 2 && stuck.len() == 1).then(|| {
            (
                running
                    .iter()
                    .filter_map(|p| scheduled(p))
                    .collect::<Vec<_>>(),
                stuck[0].clone(),
            )
        })
    })
    .await
    .unwrap_or_else(|| panic!("GPU pods not placed as expected"));
    let on: BTreeSet<String> = placed.iter().cloned().collect();
    assert_eq!(on, gpu_nodes, "one GPU pod per GPU node: {placed:?}");
    assert!(pending.contains("Insufficient nvidia.com/gpu"), "{pending}");
    for p in pods.list(&ListParams::default()).await.unwrap().items {
        let limits = p.spec.as_ref().unwrap().containers[0]
            .resources
            .as_ref()
            .and_then(|r| r.limits.clone())
            .unwrap_or_default();
        assert_eq!(
            limits.get("nvidia.com/gpu").map(|q| q.0.as_str()),
            Some("1"),
            "{}",
            p.name_any()
        );
    }

    // With as many replicas as GPUs the System becomes Ready.
    systems
        .patch(
            "trainer",
            &PatchParams::apply("tycho-tests").force(),
            &Patch::Apply(&trainer.replicas(2).build()),
        )
        .await
        .unwrap();
    let ok = eventually(WAIT, || async {
        let s = systems.get("trainer").await.ok()?;
        (s.status?.phase? == Phase::Ready).then_some(())
    })
    .await;
    assert!(
        ok.is_some(),
        "System not Ready with 2 replicas on 2 GPUs: {:?}",
        systems.get("trainer").await.ok().and_then(|s| s.status)
    );
    controller.stop().await;
    cluster.cleanup().await;
}

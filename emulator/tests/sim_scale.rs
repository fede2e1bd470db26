//! Throughput of the simulated cluster (run by hand: `cargo test -p tycho-emulator --test
//! sim_scale -- --ignored --nocapture`): N one-replica Deployments from cold start until every
//! pod is Running and Ready and every Deployment reports availableReplicas 1.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use tycho_emulator::{Emulator, EmulatorConfig};

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn run(n: usize, nodes: usize) {
    let emu = Emulator::start(EmulatorConfig {
        nodes,
        pod_ready_delay: Duration::from_millis(100),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let client = kube::Client::try_from(kube::Config::new(emu.url().parse().unwrap())).unwrap();
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "bench"}})).unwrap(),
    )
    .await
    .unwrap();
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "bench");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "bench");
    let start = Instant::now();
    futures::stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let deps = deps.clone();
            async move {
                let d: Deployment = serde_json::from_value(json!({
                    "metadata": {"name": format!("d{i}")},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": format!("d{i}")}},
                             "template": {"metadata": {"labels": {"app": format!("d{i}")}},
                                          "spec": {"containers": [{"name": "c", "image": "nginx",
                                              "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}
                }))
                .unwrap();
                deps.create(&PostParams::default(), &d).await.unwrap();
            }
        })
        .await;
    let created = start.elapsed();
    loop {
        let ps = pods.list(&ListParams::default()).await.unwrap().items;
        let r = ps.iter().filter(|p| ready(p)).count();
        if std::env::var("SIM_SCALE_TRACE").is_ok() {
            let bound = ps
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
                .count();
            println!(
                "{:>6.1}s pods {} bound {bound} ready {r}",
                start.elapsed().as_secs_f64(),
                ps.len()
            );
        }
        if r == n {
            let ds = deps.list(&ListParams::default()).await.unwrap().items;
            if ds
                .iter()
                .all(|d| d.status.as_ref().and_then(|s| s.available_replicas) == Some(1))
            {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "timed out with {r}/{n} ready"
        );
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let all = start.elapsed();
    println!(
        "{n} Deployments on {nodes} nodes: created in {:.2}s, all Ready in {:.2}s ({:.0} pods/s)",
        created.as_secs_f64(),
        all.as_secs_f64(),
        n as f64 / all.as_secs_f64()
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark, run by hand"]
async fn one_thousand_deployments() {
    run(1000, 10).await;
}

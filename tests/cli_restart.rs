//! `tycho restart` as a user runs it: a Deployment rolls out (kubectl's restartedAt on its pod template),
//! a bare Pod is replaced by a new one; an unknown System exits non-zero naming it.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{TestCluster, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::process::Command;
use tycho_model::System;

async fn tycho(cluster: &TestCluster, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tycho"))
        .arg(args[0])
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["-n", &cluster.namespace])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn system(name: &str, workload: &str) -> System {
    serde_json::from_value(json!({
        "apiVersion": "tycho.dev/v1alpha1", "kind": "System",
        "metadata": {"name": name},
        "spec": {"workload": workload, "containers": [{"name": "web", "image": "nginx"}]}
    }))
    .unwrap()
}

async fn ready_pod(pods: &Api<Pod>, system: &str) -> Option<String> {
    let list = pods.list(&Default::default()).await.ok()?;
    list.items
        .into_iter()
        .find(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("tycho.dev/system"))
                .map(String::as_str)
                == Some(system)
                && p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .and_then(|p| p.metadata.uid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_rolls_a_deployment_and_replaces_a_bare_pod() {
    let cluster = TestCluster::start().await;
    let controller = cluster.run_controller(|_| {}).await;
    let systems: Api<System> = cluster.api();
    let pods: Api<Pod> = cluster.api();
    let deployments: Api<Deployment> = cluster.api();
    systems
        .create(&PostParams::default(), &system("roll", "Deployment"))
        .await
        .unwrap();
    systems
        .create(&PostParams::default(), &system("bare", "Pod"))
        .await
        .unwrap();
    let first = eventually(Duration::from_secs(60), || ready_pod(&pods, "bare"))
        .await
        .expect("bare runs");
    eventually(Duration::from_secs(60), || async {
        deployments.get_opt("roll").await.ok().flatten()
    })
    .await
    .expect("roll has its Deployment");

    let (code, out, err) = tycho(&cluster, &["restart", "roll", "bare"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("system.tycho.dev/roll restarted"), "{out}");

    let at = eventually(Duration::from_secs(60), || async {
        deployments
            .get("roll")
            .await
            .ok()?
            .spec?
            .template
            .metadata?
            .annotations?
            .get("kubectl.kubernetes.io/restartedAt")
            .cloned()
    })
    .await;
    assert!(
        at.is_some(),
        "the Deployment's pod template carries restartedAt"
    );
    let second = eventually(Duration::from_secs(60), || async {
        ready_pod(&pods, "bare").await.filter(|uid| *uid != first)
    })
    .await;
    assert!(second.is_some(), "the bare Pod is replaced by a new one");

    let (code, _, err) = tycho(&cluster, &["restart", "nothing"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("nothing"), "{err}");
    controller.stop().await;
    cluster.cleanup().await;
}

//! Whether the cluster under test runs containers. The emulator's simulated kubelet does (it serves exec,
//! logs, file copies and port-forwarding from an in-memory filesystem); a real cluster does when its nodes
//! have a kubelet (minikube), and does not when every node is a kwok fake (hack/cluster.sh): there pods turn
//! Running and Ready but nothing answers exec, logs or port-forward. Tests skip what needs containers there.
//!
//! Shared by `common` (`mod kubelet;`) and `common/process.rs` (`#[path = "kubelet.rs"] mod kubelet;`).
#![allow(dead_code)]

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, ListParams};

/// Annotation kwok puts on (and expects of) the nodes it fakes.
pub const KWOK_NODE_ANNOTATION: &str = "kwok.x-k8s.io/node";

/// True unless every node of the cluster is a kwok fake (or the cluster has no nodes).
pub async fn runs_containers(client: &Client) -> bool {
    let nodes = match Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(nodes) => nodes.items,
        Err(e) => panic!("list the cluster's nodes: {e}"),
    };
    nodes.iter().any(|n| {
        !n.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(KWOK_NODE_ANNOTATION))
    })
}

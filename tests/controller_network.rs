//! Network isolation through the controller (`spec.network`): an isolated System gets a NetworkPolicy it
//! owns, with its pods selected and the right rules; a policy deleted by hand comes back; switching isolation
//! off prunes it; bad peers are refused at admission naming the field. Against the emulator, or a real
//! cluster with `TYCHO_TEST_KUBECONFIG` (whose API server validates the NetworkPolicy itself).

mod common;

use std::time::Duration;

use common::{TestCluster, eventually, until};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tycho_model::System;

const WAIT: Duration = Duration::from_secs(60);

fn system(name: &str, spec: Value) -> System {
    serde_json::from_value(json!({
        "apiVersion": "tycho.dev/v1alpha1", "kind": "System",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

fn isolated_spec() -> Value {
    json!({
        "containers": [{
            "name": "web",
            "image": "nginx:1.27",
            "ports": [{"port": 80, "name": "http"}, {"port": 9113, "expose": false}],
        }],
        "network": {
            "isolated": true,
            "allowFrom": [
                {"namespace": "monitoring"},
                {"namespaceSelector": {"team": "web"}},
                {"cidr": "10.20.0.0/16", "except": ["10.20.99.0/24"]},
            ],
            "egress": {"to": [{"cidr": "10.30.0.0/24", "ports": [{"port": 5432}]}]},
        },
    })
}

async fn policy(api: &Api<NetworkPolicy>, name: &str) -> Option<NetworkPolicy> {
    api.get_opt(name)
        .await
        .ok()
        .flatten()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_system_gets_its_network_policy_restored_and_pruned() {
    let cluster = TestCluster::start().await;
    let controller = cluster.run_controller(|_| {}).await;
    let systems: Api<System> = cluster.api();
    let policies: Api<NetworkPolicy> = cluster.api();
    let pp = PostParams::default();
    systems
        .create(&pp, &system("net", isolated_spec()))
        .await
        .expect("the API server admits an isolated System");
    let uid = systems.get("net").await.unwrap().metadata.uid.unwrap();

    let np = eventually(WAIT, || policy(&policies, "net"))
        .await
        .expect("the NetworkPolicy is applied");
    // Owned by the System, labelled like every child, selecting its pods.
    let owner = &np.metadata.owner_references.clone().unwrap_or_default();
    assert!(
        owner
            .iter()
            .any(|o| o.uid == uid && o.controller == Some(true) && o.kind == "System"),
        "{owner:?}"
    );
    let labels = np.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["tycho.dev/system"], "net");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "tycho");
    let spec = serde_json::to_value(np.spec.as_ref().unwrap()).unwrap();
    let own = json!({"podSelector": {"matchLabels": {"tycho.dev/system": "net"}}});
    assert_eq!(spec["podSelector"], own["podSelector"]);
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        spec["ingress"],
        json!([
            {"from": [
                own,
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
                {"namespaceSelector": {"matchLabels": {"team": "web"}}},
                {"ipBlock": {"cidr": "10.20.0.0/16", "except": ["10.20.99.0/24"]}},
            ]},
            {"ports": [{"port": 80, "protocol": "TCP"}]},
        ]),
        "ingress: its own pods and the peers on every port, anyone on the exposed port only"
    );
    assert_eq!(
        spec["egress"],
        json!([
            {"to": [own]},
            {"to": [{"ipBlock": {"cidr": "10.30.0.0/24"}}], "ports": [{"port": 5432, "protocol": "TCP"}]},
            {"to": [{"namespaceSelector": {}}],
             "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
        ])
    );

    // Deleted by hand: the controller restores it (a new object).
    let first_uid = np.metadata.uid.clone();
    policies
        .delete("net", &DeleteParams::default())
        .await
        .unwrap();
    until(WAIT, "the NetworkPolicy is restored", || async {
        policy(&policies, "net")
            .await
            .is_some_and(|p| p.metadata.uid != first_uid)
    })
    .await;

    // Isolation and egress switched off: pruned.
    systems
        .patch(
            "net",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"network": {"isolated": false, "egress": null}}})),
        )
        .await
        .unwrap();
    until(WAIT, "the NetworkPolicy is pruned", || async {
        policy(&policies, "net").await.is_none()
    })
    .await;
    // And back on: applied again.
    systems
        .patch(
            "net",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"network": {"isolated": true}}})),
        )
        .await
        .unwrap();
    let np = eventually(WAIT, || policy(&policies, "net"))
        .await
        .expect("the NetworkPolicy is applied again");
    assert_eq!(
        np.spec.unwrap().policy_types,
        Some(vec!["Ingress".to_string()]),
        "no egress section: egress is not restricted"
    );

    controller.stop().await;
    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_peers_are_refused_at_admission_naming_the_field() {
    let cluster = TestCluster::start().await;
    let systems: Api<System> = cluster.api();
    let pp = PostParams::default();
    let containers = json!([{"name": "web", "image": "nginx:1.27"}]);
    for (name, network, field) in [
        (
            "two-kinds",
            json!({"isolated": true, "allowFrom": [{"namespace": "a", "cidr": "10.0.0.0/8"}]}),
            "exactly one of namespace, namespaceSelector and cidr",
        ),
        (
            "bad-cidr",
            json!({"isolated": true, "allowFrom": [{"cidr": "10.0.0.0/33"}]}),
            "spec.network.allowFrom[0].cidr",
        ),
        (
            "not-a-cidr",
            json!({"egress": {"to": [{"cidr": "example.com"}]}}),
            "spec.network.egress.to[0].cidr",
        ),
        (
            "except-outside",
            json!({"isolated": true, "allowFrom": [{"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}]}),
            "each must be a CIDR inside it",
        ),
        (
            "no-kind",
            json!({"isolated": true, "allowFrom": [{}]}),
            "spec.network.allowFrom[0]",
        ),
    ] {
        let s = system(
            name,
            json!({"containers": containers.clone(), "network": network}),
        );
        match systems.create(&pp, &s).await {
            Ok(_) => panic!("{name}: admitted"),
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{name}: {e:?}");
                assert!(
                    e.message.contains(field),
                    "{name}: the error does not name {field}: {}",
                    e.message
                );
            }
            Err(e) => panic!("{name}: {e}"),
        }
    }
    // A good one of each kind, IPv6 included, is admitted.
    let good = system(
        "good",
        json!({"containers": containers, "network": {"isolated": true, "allowFrom": [
            {"namespace": "a"}, {"namespaceSelector": {}}, {"cidr": "2001:db8::/32", "except": ["2001:db8:1::/48"]}
        ], "egress": {"allowDNS": false}}}),
    );
    systems
        .create(&pp, &good)
        .await
        .expect("a good network spec is admitted");
    cluster.cleanup().await;
}

//! The chart's RBAC rules against the API calls the operator really makes.
//!
//! The operator runs in-process against the API emulator — with the leader election `tycho controller
//! --leader-elect` uses around it — through a client that marks its requests with its own User-Agent, and goes
//! through a System's life: create, ready, scale, a child deleted by hand (drift), an isolated System (its NetworkPolicy applied, then pruned), a session-owned System
//! collected when its Lease is deleted, deletion. Every request it made, as the emulator's request log recorded
//! it, must be allowed by the Roles and ClusterRoles the chart renders (tests/chart/snapshots), cluster-wide and
//! namespaced. A permission the operator needs but the chart lacks fails here, not in a user's cluster; and the
//! other way round, a permission the chart grants must be used by these runs or carry a one-line reason in the
//! chart (`unused:` lines of charts/tycho/templates/rbac.yaml), so that an over-grant fails here too.

mod common;
#[path = "chart/rbac.rs"]
mod rbac;

use std::time::{Duration, Instant};

use common::{TestCluster, emulator_config};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rbac::{Grant, Policy, Request, describe};
use tycho_model::System;
use tycho_operator::controller::{self, ControllerConfig};
use tycho_operator::leader::LeaderElector;

const RELEASE_NS: &str = "tycho-system";

/// The emulator with the CRD installed and the namespaces `namespaces` and [`RELEASE_NS`].
async fn start(namespaces: &[&str]) -> TestCluster {
    let cluster = TestCluster::start_emulator(emulator_config()).await;
    cluster.install_crd().await;
    let ns_api: Api<Namespace> = Api::all(cluster.client.clone());
    for ns in namespaces.iter().chain([&RELEASE_NS]) {
        let body: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
        match ns_api.create(&PostParams::default(), &body).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("namespace {ns}: {e}"),
        }
    }
    cluster
}

fn example(name: &str, namespace: &str) -> System {
    let path = format!("{}/examples/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    let mut s: System = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    s.metadata.namespace = Some(namespace.into());
    s
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn phase(api: &Api<System>, name: &str) -> Option<String> {
    let s = api.get_opt(name).await.ok()??;
    s.status?.phase.map(|p| p.as_str().to_string())
}

/// Drive the operator through a System's life in `ns`; returns when everything settled.
async fn lifecycle(admin: &Client, ns: &str) {
    let systems: Api<System> = Api::namespaced(admin.clone(), ns);
    let pp = PostParams::default();
    systems.create(&pp, &example("nginx", ns)).await.unwrap();
    wait_until("nginx Ready", Duration::from_secs(30), || async {
        phase(&systems, "nginx").await.as_deref() == Some("Ready")
    })
    .await;

    // Scale it: a spec change rolls through to the Deployment.
    systems
        .patch(
            "nginx",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    wait_until("Deployment scaled", Duration::from_secs(30), || async {
        deployments
            .get_opt("nginx")
            .await
            .ok()
            .flatten()
            .and_then(|d| d.spec?.replicas)
            == Some(2)
    })
    .await;

    // Drift: a child deleted by hand comes back.
    deployments
        .delete("nginx", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("Deployment restored", Duration::from_secs(30), || async {
        deployments
            .get_opt("nginx")
            .await
            .ok()
            .flatten()
            .is_some_and(|d| d.metadata.deletion_timestamp.is_none())
    })
    .await;

    // An isolated System: its NetworkPolicy is applied, and pruned when isolation is switched off.
    let policies: Api<NetworkPolicy> = Api::namespaced(admin.clone(), ns);
    systems.create(&pp, &example("isolated", ns)).await.unwrap();
    wait_until("NetworkPolicy applied", Duration::from_secs(30), || async {
        policies.get_opt("isolated").await.ok().flatten().is_some()
    })
    .await;
    systems
        .patch(
            "isolated",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"network": null}})),
        )
        .await
        .unwrap();
    wait_until("NetworkPolicy pruned", Duration::from_secs(30), || async {
        policies.get_opt("isolated").await.ok().flatten().is_none()
    })
    .await;
    systems
        .delete("isolated", &DeleteParams::default())
        .await
        .unwrap();

    // A session-owned System, collected when its Lease is deleted.
    let leases: Api<Lease> = Api::namespaced(admin.clone(), ns);
    let lease = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some("demo-session".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("client".into()),
            lease_duration_seconds: Some(30),
            renew_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                k8s_openapi::jiff::Timestamp::now(),
            )),
            ..Default::default()
        }),
    };
    leases.create(&pp, &lease).await.unwrap();
    let mut owned = example("nginx", ns);
    owned.metadata.name = Some("owned".into());
    owned.spec.session = Some("demo-session".into());
    systems.create(&pp, &owned).await.unwrap();
    wait_until("owned Ready", Duration::from_secs(30), || async {
        phase(&systems, "owned").await.as_deref() == Some("Ready")
    })
    .await;
    leases
        .delete("demo-session", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("owned collected", Duration::from_secs(30), || async {
        systems.get_opt("owned").await.ok().flatten().is_none()
    })
    .await;

    systems
        .delete("nginx", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("nginx deleted", Duration::from_secs(30), || async {
        systems.get_opt("nginx").await.ok().flatten().is_none()
    })
    .await;
}

/// Run the operator (under leader election, as `tycho controller --leader-elect` does) while `lifecycle` runs
/// in each namespace, and return the requests it made.
async fn operator_requests(namespaces: &[&str], watch: Vec<String>) -> Vec<Request> {
    let cluster = start(namespaces).await;
    let admin = cluster.client.clone();
    // Its requests carry the User-Agent common::CONTROLLER_AGENT.
    let operator = cluster.controller_client();
    cluster.clear_requests();

    let elector = LeaderElector::new(
        operator.clone(),
        RELEASE_NS,
        "tycho",
        "tycho-0",
        Duration::from_secs(15),
        Duration::from_secs(10),
        Duration::from_secs(2),
    )
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = ControllerConfig {
        namespaces: watch,
        ..ControllerConfig::default()
    };
    let run = tokio::spawn(
        elector.run_until_lost(controller::run(operator, config, async move {
            let _ = stop_rx.await;
        })),
    );

    for ns in namespaces {
        lifecycle(&admin, ns).await;
    }
    stop_tx.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .expect("the operator did not stop");
    result.unwrap().unwrap().unwrap();

    let requests: Vec<Request> = cluster
        .controller_requests()
        .expect("the emulator's request log")
        .iter()
        .flat_map(rbac::authorizations)
        .collect();
    cluster.cleanup().await;
    assert!(
        requests.len() > 10,
        "the operator made only {} requests",
        requests.len()
    );
    requests
}

fn summary(requests: &[Request]) -> String {
    let mut kinds: Vec<String> = requests
        .iter()
        .filter(|r| r.is_resource())
        .map(|r| {
            let sub = if r.subresource.is_empty() {
                String::new()
            } else {
                format!("/{}", r.subresource)
            };
            format!("{} {}/{}{}", r.verb, r.api_group, r.resource, sub)
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds.join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_wide_chart_rbac_allows_every_call_the_operator_makes() {
    let requests = operator_requests(&["research"], Vec::new()).await;
    eprintln!("operator calls: {}", summary(&requests));
    let policy = Policy::for_service_account(&rbac::chart_snapshot("default"), RELEASE_NS, "tycho");
    assert_every_grant_used_or_explained(&policy, &requests);
    let denied = policy.denied(requests);
    assert!(
        denied.is_empty(),
        "the chart's RBAC does not allow:\n{}",
        describe(&denied)
    );
}

/// Every permission `policy` grants is used by `requests` or has its reason in the chart.
fn assert_every_grant_used_or_explained(policy: &Policy, requests: &[Request]) {
    assert!(
        !policy.grants().is_empty(),
        "the chart grants nothing to the ServiceAccount"
    );
    let unused = policy.unused(requests);
    eprintln!(
        "granted but unused by this run: {}",
        unused
            .iter()
            .map(Grant::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let unexplained = rbac::unexplained(policy, requests);
    assert!(
        unexplained.is_empty(),
        "the chart grants, the operator never used, and no `unused:` reason in charts/tycho/templates/rbac.yaml explains:\n{}",
        unexplained
            .iter()
            .map(|g| format!("  - {g}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_chart_rbac_allows_every_call_the_operator_makes() {
    // tests/chart/values/namespaced.yaml: Roles in team-a and team-b, no Node access.
    let requests = operator_requests(
        &["team-a", "team-b"],
        vec!["team-a".into(), "team-b".into()],
    )
    .await;
    eprintln!("operator calls: {}", summary(&requests));
    let policy =
        Policy::for_service_account(&rbac::chart_snapshot("namespaced"), RELEASE_NS, "tycho");
    // That values file turns leader election off; the leader Lease is granted by the default chart's Role.
    let leader = Policy::for_service_account(&rbac::chart_snapshot("default"), RELEASE_NS, "tycho");
    // rbac.readNodes is false there: the operator's periodic Node list is then refused, which it tolerates
    // (endpoints get no URL; `node_address` in crates/operator/src/controller/reconcile.rs). Nothing else
    // may be refused.
    assert_every_grant_used_or_explained(&policy, &requests);
    let denied: Vec<Request> = policy
        .denied(requests)
        .into_iter()
        .filter(|r| !(r.namespace == RELEASE_NS && r.resource == "leases" && leader.allows(r)))
        .filter(|r| !(r.resource == "nodes" && r.verb == "list" && r.namespace.is_empty()))
        .collect();
    assert!(
        denied.is_empty(),
        "the namespaced chart's RBAC does not allow:\n{}",
        describe(&denied)
    );
}

#[test]
fn the_checker_denies_what_the_chart_does_not_grant() {
    let default =
        Policy::for_service_account(&rbac::chart_snapshot("default"), RELEASE_NS, "tycho");
    let namespaced =
        Policy::for_service_account(&rbac::chart_snapshot("namespaced"), RELEASE_NS, "tycho");
    let r = Request::new;
    // Granted.
    for req in [
        r("patch", "apps", "deployments", "", "anywhere", "web"),
        r("watch", "tycho.dev", "systems", "", "", ""),
        r("patch", "tycho.dev", "systems", "status", "x", "web"),
        r(
            "get",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "",
            "",
            "systems.tycho.dev",
        ),
        r("list", "", "nodes", "", "", ""),
        r(
            "update",
            "coordination.k8s.io",
            "leases",
            "",
            RELEASE_NS,
            "tycho",
        ),
        Request::non_resource("get", "/apis/tycho.dev/v1alpha1"),
        Request::non_resource("get", "/version"),
        Request::non_resource("get", "/openapi/v3"),
    ] {
        assert!(default.allows(&req), "{req}");
    }
    // Requests without a resource are classified, not waved through: only GETs of discovery and health.
    for req in [
        r("get", "", "", "", "", ""),
        Request::non_resource("get", "/metrics"),
        Request::non_resource("post", "/apis"),
        Request::non_resource("get", "/logs/kube-apiserver.log"),
    ] {
        assert!(!default.allows(&req), "{req}");
    }
    // Both ways: what no request used is reported, and a request of a granted permission uses it.
    let patch_deploy = r("patch", "apps", "deployments", "", "a", "web");
    let unused = default.unused(std::slice::from_ref(&patch_deploy));
    let grant = |s: &str| Grant::parse(s).expect("a grant");
    assert!(!unused.contains(&grant("patch apps/deployments")));
    assert!(unused.contains(&grant("delete apps/deployments")));
    assert!(unused.contains(&grant("get apiextensions.k8s.io/customresourcedefinitions")));
    assert!(!default.unused(&[]).is_empty());
    assert_eq!(default.unused(&[]), default.grants());
    // Not granted anywhere: Secrets, other CRDs, deleting claims, a cluster-wide delete of Systems' children.
    for req in [
        r("get", "", "secrets", "", "a", "s"),
        r(
            "get",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "",
            "",
            "other.example.org",
        ),
        r(
            "list",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "",
            "",
            "",
        ),
        r("delete", "", "persistentvolumeclaims", "", "a", "data"),
        r("deletecollection", "", "pods", "", "a", ""),
        r("update", "tycho.dev", "systems", "scale", "a", "web"),
    ] {
        assert!(!default.allows(&req), "{req}");
    }
    // Namespaced: only in team-a/team-b, no cluster-wide watch, no Nodes.
    assert!(namespaced.allows(&r("watch", "tycho.dev", "systems", "", "team-a", "")));
    assert!(!namespaced.allows(&r("watch", "tycho.dev", "systems", "", "", "")));
    assert!(!namespaced.allows(&r("patch", "apps", "deployments", "", "elsewhere", "web")));
    assert!(!namespaced.allows(&r("list", "", "nodes", "", "", "")));
    assert_eq!(
        namespaced
            .denied([
                r("get", "", "secrets", "", "team-a", "s"),
                r("get", "", "secrets", "", "team-a", "s")
            ])
            .len(),
        1
    );
}

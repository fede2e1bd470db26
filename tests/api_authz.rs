//! Who may do what through the HTTP API is decided by Kubernetes RBAC, not by the API: judged by the
//! real control plane's RBAC authorizer (`TYCHO_TEST_KUBECONFIG`), with ServiceAccount users, real
//! tokens, and the API running as a ServiceAccount that holds only what the chart grants it
//! (tokenreviews create, impersonate users/groups/serviceaccounts/uids — tests/chart checks the chart's
//! ClusterRole is exactly that).

mod common;

use std::time::Duration;

use common::api::{ApiUnderTest, editor_rules, user};
use common::{TestCluster, eventually, skip};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use serde_json::json;
use tycho_api::Limits;
use tycho_model::System;

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..PolicyRule::default()
    }
}

/// A ServiceAccount with exactly the chart's API ClusterRole, and a client config with its token.
async fn api_identity(cluster: &TestCluster, ns: &str, name: &str) -> kube::Config {
    let pp = PostParams::default();
    let meta = |n: &str, namespaced: bool| ObjectMeta {
        name: Some(n.to_string()),
        namespace: namespaced.then(|| ns.to_string()),
        ..ObjectMeta::default()
    };
    let sas: Api<ServiceAccount> = Api::namespaced(cluster.client.clone(), ns);
    sas.create(
        &pp,
        &ServiceAccount {
            metadata: meta("tycho-api", true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    Api::<ClusterRole>::all(cluster.client.clone())
        .create(
            &pp,
            &ClusterRole {
                metadata: meta(name, false),
                rules: Some(vec![
                    rule("authentication.k8s.io", &["tokenreviews"], &["create"]),
                    rule(
                        "",
                        &["users", "groups", "serviceaccounts"],
                        &["impersonate"],
                    ),
                    rule("authentication.k8s.io", &["uids"], &["impersonate"]),
                ]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    Api::<ClusterRoleBinding>::all(cluster.client.clone())
        .create(
            &pp,
            &ClusterRoleBinding {
                metadata: meta(name, false),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "ClusterRole".into(),
                    name: name.into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: "tycho-api".into(),
                    namespace: Some(ns.to_string()),
                    ..Default::default()
                }]),
            },
        )
        .await
        .unwrap();
    let tr = k8s_openapi::api::authentication::v1::TokenRequest {
        spec: k8s_openapi::api::authentication::v1::TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = sas
        .create_token_request("tycho-api", &pp, &tr)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let mut config = cluster.config.clone();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_rbac_decides_what_each_caller_may_do() {
    let test = "kubernetes_rbac_decides_what_each_caller_may_do";
    let cluster = TestCluster::start().await;
    if cluster.is_emulator() {
        skip(
            test,
            "the emulator authorizes every request (no RBAC authorizer); the real control plane judges this (TYCHO_TEST_KUBECONFIG)",
        );
        cluster.cleanup().await;
        return;
    }
    let a = cluster.namespace.clone();
    let b = format!("{a}-b");
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(b.clone()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (ab, bb) = (a.clone(), b.clone());
    let controller = cluster
        .run_controller(move |c| c.namespaces = vec![ab, bb])
        .await;
    let (alice, ta) = user(&cluster, &a, "alice", editor_rules()).await;
    let (_, tb) = user(&cluster, &b, "bob", editor_rules()).await;
    let (_, tc) = user(
        &cluster,
        &a,
        "carol",
        vec![rule("tycho.dev", &["systems"], &["get"])],
    )
    .await;
    let role_name = format!("{a}-tycho-api");
    let api_config = api_identity(&cluster, &a, &role_name).await;

    // The API's own identity can do nothing with Systems itself.
    let own = kube::Client::try_from(api_config.clone()).unwrap();
    let err = Api::<System>::namespaced(own, &a)
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403),
        "{err:?}"
    );

    let api = ApiUnderTest::start(api_config, Limits::default()).await;
    let sys_a = format!("/v1/namespaces/{a}/systems");
    let sys_b = format!("/v1/namespaces/{b}/systems");

    let me = api.call("GET", "/v1/whoami", Some(&ta), None).await;
    assert_eq!(me.body["identity"]["username"], alice, "{me:?}");

    // alice runs a System in her namespace, in a session she opens with it.
    let created = api
        .call(
            "POST",
            &sys_a,
            Some(&ta),
            Some(json!({"name": "notebook", "image": "nginx", "ports": [80], "newSession": {"durationSeconds": 300}})),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let session = created.body["session"]["name"]
        .as_str()
        .unwrap()
        .to_string();

    // bob sees nothing of namespace A and cannot touch alice's System.
    for (m, p) in [
        ("GET", sys_a.clone()),
        ("GET", format!("{sys_a}/notebook")),
        ("DELETE", format!("{sys_a}/notebook")),
        ("POST", format!("{sys_a}/notebook/restart")),
        ("DELETE", format!("/v1/namespaces/{a}/sessions/{session}")),
    ] {
        let r = api.call(m, &p, Some(&tb), None).await;
        assert!(r.is_problem(403), "bob {m} {p}: {r:?}");
        assert_eq!(r.body["reason"], "Forbidden");
    }
    let bobs = api.call("GET", &sys_b, Some(&tb), None).await;
    assert_eq!(bobs.status, 200, "{bobs:?}");
    assert_eq!(bobs.body["items"].as_array().unwrap().len(), 0);
    // … nor alice of namespace B.
    let r = api.call("GET", &sys_b, Some(&ta), None).await;
    assert!(r.is_problem(403), "{r:?}");

    // carol may only get: reading works, creating, listing and deleting are refused.
    let got = api
        .call("GET", &format!("{sys_a}/notebook"), Some(&tc), None)
        .await;
    assert_eq!(got.status, 200, "{got:?}");
    let refused = api
        .call(
            "POST",
            &sys_a,
            Some(&tc),
            Some(json!({"name": "mine", "image": "nginx"})),
        )
        .await;
    assert!(refused.is_problem(403), "{refused:?}");
    let refused = api.call("GET", &sys_a, Some(&tc), None).await;
    assert!(refused.is_problem(403), "{refused:?}");
    let refused = api
        .call("DELETE", &format!("{sys_a}/notebook"), Some(&tc), None)
        .await;
    assert!(refused.is_problem(403), "{refused:?}");

    // Nobody anonymous.
    let anon = api.call("GET", &sys_a, None, None).await;
    assert!(anon.is_problem(401), "{anon:?}");

    // alice closes her session over the API: her System goes.
    let closed = api
        .call(
            "DELETE",
            &format!("/v1/namespaces/{a}/sessions/{session}"),
            Some(&ta),
            None,
        )
        .await;
    assert_eq!(closed.status, 202, "{closed:?}");
    let systems: Api<System> = Api::namespaced(cluster.client.clone(), &a);
    let gone = eventually(Duration::from_secs(60), || async {
        systems
            .get_opt("notebook")
            .await
            .ok()
            .and_then(|s| s.is_none().then_some(()))
    })
    .await;
    assert!(
        gone.is_some(),
        "the System of the closed session is collected"
    );

    api.stop().await;
    controller.stop().await;
    let _ = Api::<ClusterRoleBinding>::all(cluster.client.clone())
        .delete(&role_name, &DeleteParams::default())
        .await;
    let _ = Api::<ClusterRole>::all(cluster.client.clone())
        .delete(&role_name, &DeleteParams::default())
        .await;
    let _ = namespaces.delete(&b, &DeleteParams::background()).await;
    cluster.cleanup().await;
}

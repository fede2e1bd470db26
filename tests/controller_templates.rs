//! The catalog through the controller: a System made from a SystemTemplate (parameters filled in, its own
//! fields winning, max-age as the default lifetime, re-rendered when the template changes, started when a
//! template appears late), owners on every child, a template's `maxPerOwner` admitting Systems in creation
//! order, and bad parameters as a condition and an Event. Against the emulator, or a real cluster with
//! `TYCHO_TEST_KUBECONFIG`.

mod common;

use std::time::Duration;

use common::{TestCluster, until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tycho_model::{System, SystemTemplate};

fn system(name: &str, spec: Value) -> System {
    serde_json::from_value(json!({
        "apiVersion": "tycho.dev/v1alpha1", "kind": "System",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

fn template(name: &str, image: &str) -> SystemTemplate {
    serde_json::from_value(json!({
        "apiVersion": "tycho.dev/v1alpha1", "kind": "SystemTemplate",
        "metadata": {"name": name, "annotations": {"tycho.dev/max-age": "1h"}},
        "spec": {
            "description": "nginx with a greeting",
            "maxPerOwner": 2,
            "parameters": [
                {"name": "version", "default": "1.27", "allowed": ["1.27", "1.28"]},
                {"name": "greeting", "description": "What it says"}
            ],
            "system": {
                "expose": "ClusterIP",
                "containers": [{
                    "name": "web",
                    "image": image,
                    "ports": [{"port": 80}],
                    "env": [{"name": "GREETING", "value": "${greeting}"}]
                }]
            }
        }
    }))
    .unwrap()
}

async fn status(api: &Api<System>, name: &str) -> Value {
    api.get(name)
        .await
        .ok()
        .and_then(|s| serde_json::to_value(s.status).ok())
        .unwrap_or(Value::Null)
}

fn ready_reason(status: &Value) -> String {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["reason"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systems_from_a_template_with_owners_and_quotas() {
    let cluster = TestCluster::start().await;
    let controller = cluster.run_controller(|_| {}).await;
    let ns = cluster.namespace.clone();
    let tname = format!("greeter-{ns}");
    let templates: Api<SystemTemplate> = Api::all(cluster.client.clone());
    let systems: Api<System> = cluster.api();
    let deployments: Api<Deployment> = cluster.api();
    let services: Api<Service> = cluster.api();
    let pp = PostParams::default();
    templates
        .create(&pp, &template(&tname, "nginx:${version}"))
        .await
        .expect("the API server accepts the template");

    // Made from the template: parameters filled in, its owner on every child.
    let spec = json!({"template": tname, "parameters": {"greeting": "hello"}, "owner": "alice@example.com"});
    systems
        .create(&pp, &system("one", spec.clone()))
        .await
        .unwrap();
    until(Duration::from_secs(60), "one is Ready", || async {
        status(&systems, "one").await["phase"] == "Ready"
    })
    .await;
    let d = deployments.get("one").await.unwrap();
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(pod.containers[0].image.as_deref(), Some("nginx:1.27"));
    let env: Vec<(String, String)> = pod.containers[0]
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    assert!(
        env.contains(&("GREETING".into(), "hello".into())),
        "{env:?}"
    );
    assert!(
        env.contains(&("TYCHO_OWNER".into(), "alice@example.com".into())),
        "{env:?}"
    );
    for labels in [
        d.metadata.labels.clone(),
        services.get("one").await.unwrap().metadata.labels,
    ] {
        assert_eq!(labels.unwrap()["tycho.dev/owner"], "alice.example.com");
    }
    let st = status(&systems, "one").await;
    let rv = templates
        .get(&tname)
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    assert_eq!(st["template"], format!("{tname}@{rv}"));
    assert!(
        st["expiresAt"].is_string(),
        "max-age gives a lifetime: {st}"
    );

    // A change of the template re-renders its Systems.
    let patch = json!({"spec": {"parameters": [
        {"name": "version", "default": "1.28", "allowed": ["1.27", "1.28"]},
        {"name": "greeting", "description": "What it says"}
    ]}});
    templates
        .patch(&tname, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    until(
        Duration::from_secs(60),
        "the Deployment follows the template",
        || async {
            deployments
                .get("one")
                .await
                .ok()
                .and_then(|d| d.spec?.template.spec?.containers[0].image.clone())
                == Some("nginx:1.28".into())
        },
    )
    .await;

    // maxPerOwner 2: the third of alice's waits, in creation order, and starts when one goes.
    systems
        .create(&pp, &system("two", spec.clone()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // creation timestamps have whole seconds
    systems
        .create(&pp, &system("three", spec.clone()))
        .await
        .unwrap();
    until(
        Duration::from_secs(60),
        "three waits with QuotaExceeded",
        || async {
            let st = status(&systems, "three").await;
            st["phase"] == "Pending" && ready_reason(&st) == "QuotaExceeded"
        },
    )
    .await;
    assert!(
        deployments.get_opt("three").await.unwrap().is_none(),
        "a refused System has no children"
    );
    let events: Api<Event> = cluster.api();
    until(
        Duration::from_secs(30),
        "a QuotaExceeded Warning",
        || async {
            events.list(&ListParams::default()).await.is_ok_and(|l| {
                l.items.iter().any(|e| {
                    e.reason.as_deref() == Some("QuotaExceeded")
                        && e.involved_object.name.as_deref() == Some("three")
                })
            })
        },
    )
    .await;
    // Another owner is not limited by alice's Systems.
    let bobs = json!({"template": tname, "parameters": {"greeting": "yo"}, "owner": "bob"});
    systems.create(&pp, &system("bobs", bobs)).await.unwrap();
    systems
        .delete("one", &DeleteParams::default())
        .await
        .unwrap();
    until(
        Duration::from_secs(60),
        "three starts once one is gone",
        || async { deployments.get_opt("three").await.ok().flatten().is_some() },
    )
    .await;
    assert_ne!(
        ready_reason(&status(&systems, "bobs").await),
        "QuotaExceeded"
    );

    // Bad parameters: a condition and an Event naming the parameter; nothing is started.
    let bad = json!({"template": tname, "parameters": {"greeting": "x", "colour": "red"}});
    systems.create(&pp, &system("bad", bad)).await.unwrap();
    until(
        Duration::from_secs(60),
        "bad fails naming spec.parameters.colour",
        || async {
            let st = status(&systems, "bad").await;
            ready_reason(&st) == "InvalidParameters"
                && st.to_string().contains("spec.parameters.colour")
        },
    )
    .await;
    let wrong = json!({"template": tname, "parameters": {"greeting": "x", "version": "2.0"}});
    systems.create(&pp, &system("wrong", wrong)).await.unwrap();
    until(
        Duration::from_secs(60),
        "wrong fails naming the allowed values",
        || async {
            status(&systems, "wrong")
                .await
                .to_string()
                .contains("not one of the allowed values")
        },
    )
    .await;

    // A template created after its System: the System waits (TemplateNotFound), then starts.
    let late = format!("late-{ns}");
    systems
        .create(
            &pp,
            &system(
                "early",
                json!({"template": late, "parameters": {"greeting": "x"}}),
            ),
        )
        .await
        .unwrap();
    until(
        Duration::from_secs(60),
        "early reports TemplateNotFound",
        || async { ready_reason(&status(&systems, "early").await) == "TemplateNotFound" },
    )
    .await;
    templates
        .create(&pp, &template(&late, "nginx:${version}"))
        .await
        .unwrap();
    until(
        Duration::from_secs(60),
        "early starts when its template appears",
        || async { deployments.get_opt("early").await.ok().flatten().is_some() },
    )
    .await;

    // Admission: a System with neither containers nor a template.
    let err = systems
        .create(&pp, &system("refused", json!({})))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at least one container"), "{err}");
    // Parameters without a template: the values are untyped in the schema (CEL cannot see them), so the
    // controller refuses it with a condition.
    let orphan = json!({"containers": [{"name": "a", "image": "nginx"}], "parameters": {"a": 1}});
    systems
        .create(&pp, &system("orphan", orphan))
        .await
        .unwrap();
    until(
        Duration::from_secs(60),
        "orphan fails naming spec.parameters",
        || async {
            let st = status(&systems, "orphan").await;
            ready_reason(&st) == "InvalidSpec" && st.to_string().contains("spec.parameters")
        },
    )
    .await;

    controller.stop().await;
    for t in [&tname, &late] {
        let _ = templates.delete(t, &DeleteParams::default()).await;
    }
    cluster.cleanup().await;
}

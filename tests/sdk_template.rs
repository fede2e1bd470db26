//! The SDK's spawn from a catalog template (`Location::spawn_template`): a session-owned System naming the
//! template with typed parameters, started by the controller with the parameters filled in, the template's
//! first container and exposed ports on the returned `Container`, collected when the session closes; bad
//! parameters and a missing template refused before anything is created. Against the emulator, or a real
//! cluster with `TYCHO_TEST_KUBECONFIG`.

mod common;

use std::time::Duration;

use common::{TestCluster, eventually};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use tycho_model::{System, SystemTemplate};
use tycho_sdk::{Location, SdkError, TemplateSpec};

fn template(name: &str) -> SystemTemplate {
    serde_json::from_value(json!({
        "apiVersion": "tycho.dev/v1alpha1", "kind": "SystemTemplate",
        "metadata": {"name": name},
        "spec": {
            "parameters": [
                {"name": "greeting"},
                {"name": "replicas", "type": "integer", "default": 1}
            ],
            "system": {
                "containers": [{
                    "name": "web",
                    "image": "nginx:1.27",
                    "ports": [{"port": 80}],
                    "env": [{"name": "REPLICAS", "value": "${replicas}"}],
                    "files": [{"path": "/usr/share/nginx/html/index.html", "content": "${greeting}\n"}]
                }]
            }
        }
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_from_a_template_with_parameters() {
    let cluster = TestCluster::start().await;
    let _controller = cluster.run_controller(|_| {}).await;
    let tname = format!("sdk-greeter-{}", cluster.namespace);
    let templates: Api<SystemTemplate> = Api::all(cluster.client.clone());
    templates
        .create(&PostParams::default(), &template(&tname))
        .await
        .unwrap();

    let location = Location::from_client(cluster.client.clone(), &cluster.namespace)
        .await
        .unwrap();
    // Refused before anything is created.
    for (spec, wanted) in [
        (
            TemplateSpec::new(&tname)
                .param("greeting", "hi")
                .param("colour", "red"),
            "colour",
        ),
        (
            TemplateSpec::new(&tname)
                .param("greeting", "hi")
                .param("replicas", "two"),
            "not an integer",
        ),
        (TemplateSpec::new(&tname), "greeting"),
        (TemplateSpec::new("no-such-template"), "does not exist"),
    ] {
        match location.spawn_template(spec).await {
            Err(e @ SdkError::InvalidSpec(_)) => {
                assert!(e.to_string().contains(wanted), "{e}")
            }
            other => panic!("{wanted}: {other:?}"),
        }
    }
    let systems: Api<System> = cluster.api();
    assert!(
        systems
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let container = location
        .spawn_template(
            TemplateSpec::new(&tname)
                .param("greeting", "hello from the SDK")
                .param("replicas", "1")
                .name("greeter"),
        )
        .await
        .unwrap();
    assert_eq!(container.container_name(), "web");
    assert_eq!(container.ports(), &[80]);
    assert!(
        container.name().starts_with("greeter-"),
        "{}",
        container.name()
    );
    container
        .wait_ready(Duration::from_secs(60))
        .await
        .expect("the System made from the template is ready");
    let sys = systems.get(container.name()).await.unwrap();
    assert_eq!(sys.spec.template.as_deref(), Some(tname.as_str()));
    assert_eq!(
        serde_json::to_value(&sys.spec.parameters).unwrap(),
        json!({"greeting": "hello from the SDK", "replicas": 1})
    );
    assert_eq!(sys.spec.session.as_deref(), Some(location.session_name()));
    if common::runs_containers(&cluster.client).await {
        let index = container
            .fetch("/usr/share/nginx/html/index.html")
            .await
            .unwrap();
        assert_eq!(index, b"hello from the SDK\n", "the parameter filled in");
    } else {
        common::skip(
            "spawn_from_a_template_with_parameters",
            "reading the container's file needs a kubelet that runs containers (kwok nodes); the System is still checked",
        );
    }

    location.close().await.unwrap();
    let gone = eventually(Duration::from_secs(60), || async {
        systems
            .get_opt(container.name())
            .await
            .ok()
            .and_then(|s| s.is_none().then_some(()))
    })
    .await;
    assert!(gone.is_some(), "the session's System is collected");
    templates
        .delete(&tname, &DeleteParams::default())
        .await
        .unwrap();
    cluster.cleanup().await;
}

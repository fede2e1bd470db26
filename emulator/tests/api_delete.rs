//! Deletion semantics: finalizers and deletionTimestamp, propagation policies, owner-reference
//! garbage collection as kube-controller-manager does it, namespace termination, CRD removal.
//! Each test names the Kubernetes behaviour it checks.

mod api_common;

use api_common::{WIDGET_CRD, client, eventually, http, start};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

fn cm(name: &str, extra_meta: Value) -> ConfigMap {
    let mut meta = json!({"name": name});
    if let (Some(m), Some(e)) = (meta.as_object_mut(), extra_meta.as_object()) {
        for (k, v) in e {
            m.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({"metadata": meta, "data": {}})).unwrap()
}

fn owner(o: &ConfigMap, block: bool) -> Value {
    json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": o.metadata.name, "uid": o.metadata.uid,
        "blockOwnerDeletion": block}])
}

async fn gone(api: &Api<ConfigMap>, name: &str) -> bool {
    matches!(api.get(name).await, Err(kube::Error::Api(s)) if s.code == 404)
}

/// Finalizers: DELETE of an object with finalizers sets deletionTimestamp and keeps it; a
/// terminating object rejects new finalizers; removing the last finalizer deletes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_hold_deletion() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    api.create(
        &PostParams::default(),
        &cm("f", json!({"finalizers": ["test.tycho.dev/hold"]})),
    )
    .await
    .unwrap();
    let r = api.delete("f", &DeleteParams::default()).await.unwrap();
    let held = r.left().expect("object returned while terminating");
    assert!(held.metadata.deletion_timestamp.is_some());
    let still = api.get("f").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    let e = api
        .patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["test.tycho.dev/hold", "new/one"]}})),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, kube::Error::Api(s) if s.code == 422));
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(gone(&api, "f").await);
    emu.shutdown().await;
}

/// DELETE responses: a Status `Success` (ConfigMap) or the object; DeleteOptions
/// preconditions (uid / resourceVersion) mismatch is 409 Conflict; a missing object is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_status_and_preconditions() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("wrong".into()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    assert!(matches!(api.delete("a", &dp).await, Err(kube::Error::Api(s)) if s.code == 409));
    let r = http(
        &emu,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/a",
        &[("Content-Type", "application/json")],
        Some(r#"{"propagationPolicy":"Background"}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "Success");
    let r = http(
        &emu,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/a",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["reason"], "NotFound");
    emu.shutdown().await;
}

/// Garbage collection (background cascading deletion): when an owner is deleted its dependents
/// are deleted, across levels; a dependent whose owner uid does not exist is collected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_cascading_and_dangling_owner() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    let top = api
        .create(&PostParams::default(), &cm("top", json!({})))
        .await
        .unwrap();
    let mid = api
        .create(
            &PostParams::default(),
            &cm("mid", json!({"ownerReferences": owner(&top, false)})),
        )
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &cm("leaf", json!({"ownerReferences": owner(&mid, false)})),
    )
    .await
    .unwrap();
    api.delete("top", &DeleteParams::background())
        .await
        .unwrap();
    eventually(10, || async {
        (gone(&api, "mid").await && gone(&api, "leaf").await).then_some(())
    })
    .await;
    let fake = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "00000000-0000-0000-0000-000000000000"}]);
    api.create(
        &PostParams::default(),
        &cm("orphaned", json!({"ownerReferences": fake})),
    )
    .await
    .unwrap();
    eventually(10, || async { gone(&api, "orphaned").await.then_some(()) }).await;
    emu.shutdown().await;
}

/// Foreground cascading deletion: the owner gets the `foregroundDeletion` finalizer and a
/// deletionTimestamp, stays while dependents with blockOwnerDeletion exist, and goes once they
/// are deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    let top = api
        .create(&PostParams::default(), &cm("top", json!({})))
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &cm(
            "child",
            json!({"ownerReferences": owner(&top, true),
        "finalizers": ["test.tycho.dev/hold"]}),
        ),
    )
    .await
    .unwrap();
    let r = api
        .delete("top", &DeleteParams::foreground())
        .await
        .unwrap();
    let t = r.left().unwrap();
    assert!(
        t.metadata
            .finalizers
            .unwrap()
            .contains(&"foregroundDeletion".to_string())
    );
    // The child is being deleted but held by its own finalizer: the owner must wait.
    eventually(10, || async {
        api.get("child")
            .await
            .ok()
            .and_then(|c| c.metadata.deletion_timestamp)
            .map(|_| ())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        api.get("top").await.is_ok(),
        "owner waits for blocking dependent"
    );
    api.patch(
        "child",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually(10, || async { gone(&api, "top").await.then_some(()) }).await;
    emu.shutdown().await;
}

/// Orphan propagation: dependents survive and lose their ownerReferences to the deleted owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_propagation_keeps_dependents() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    let top = api
        .create(&PostParams::default(), &cm("top", json!({})))
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &cm("child", json!({"ownerReferences": owner(&top, true)})),
    )
    .await
    .unwrap();
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteParams::default()
    };
    api.delete("top", &dp).await.unwrap();
    eventually(10, || async { gone(&api, "top").await.then_some(()) }).await;
    let child = api.get("child").await.unwrap();
    assert!(
        child
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    emu.shutdown().await;
}

/// Namespace deletion: the namespace turns Terminating (new content is forbidden), its
/// contents are deleted, then the namespace itself is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_removes_contents() {
    let emu = start().await;
    let c = client(&emu).await;
    let nss: Api<Namespace> = Api::all(c.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap(),
    )
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "doomed");
    api.create(
        &PostParams::default(),
        &cm("a", json!({"finalizers": ["test.tycho.dev/hold"]})),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    nss.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let ns = nss.get("doomed").await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    let e = api
        .create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap_err();
    assert!(matches!(e, kube::Error::Api(s) if s.code == 403));
    eventually(10, || async { gone(&api, "b").await.then_some(()) }).await;
    assert!(
        nss.get("doomed").await.is_ok(),
        "held by the finalizer of a"
    );
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually(10, || async {
        matches!(nss.get("doomed").await, Err(kube::Error::Api(s)) if s.code == 404).then_some(())
    })
    .await;
    emu.shutdown().await;
}

/// CRD deletion: the CRD gets the `customresourcecleanup.apiextensions.k8s.io` finalizer, its
/// custom resources are deleted (honouring their finalizers; new ones are refused with 405),
/// then the CRD goes and the kind disappears from discovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_deletion_removes_resources_and_discovery() {
    let emu = start().await;
    let c = client(&emu).await;
    let crd_api: Api<DynamicObject> = Api::all_with(
        c.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: Value = serde_saphyr::from_str(WIDGET_CRD).unwrap();
    crd_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(crd).unwrap(),
        )
        .await
        .unwrap();
    let r = http(&emu, "GET", "/apis/test.tycho.dev/v1", &[], None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.json()["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "widgets" && x["shortNames"][0] == "wdg")
    );
    let apis = http(&emu, "GET", "/apis", &[], None).await.json();
    assert!(
        apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "test.tycho.dev" && g["preferredVersion"]["version"] == "v1")
    );
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("test.tycho.dev", "v1", "Widget"),
        "widgets",
    );
    let w: Api<DynamicObject> = Api::namespaced_with(c.clone(), "default", &ar);
    w.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"apiVersion": "test.tycho.dev/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"color": "red"}}))
        .unwrap(),
    )
    .await
    .unwrap();
    // Served versions share storage: v1beta1 shows the same object.
    let r = http(
        &emu,
        "GET",
        "/apis/test.tycho.dev/v1beta1/namespaces/default/widgets/w",
        &[],
        None,
    )
    .await;
    assert_eq!(r.json()["apiVersion"], "test.tycho.dev/v1beta1");
    w.create(&PostParams::default(), &serde_json::from_value(json!({"apiVersion": "test.tycho.dev/v1", "kind": "Widget",
        "metadata": {"name": "held", "finalizers": ["test.tycho.dev/hold"]}, "spec": {"color": "red"}})).unwrap()).await.unwrap();
    crd_api
        .delete("widgets.test.tycho.dev", &DeleteParams::default())
        .await
        .unwrap();
    // The CRD stays (Terminating, cleanup finalizer) while a custom resource is held.
    eventually(10, || async {
        let r = http(
            &emu,
            "GET",
            "/apis/test.tycho.dev/v1/namespaces/default/widgets/w",
            &[],
            None,
        )
        .await;
        (r.status == 404).then_some(())
    })
    .await;
    let crd = crd_api.get("widgets.test.tycho.dev").await.unwrap();
    assert!(
        crd.metadata
            .finalizers
            .unwrap()
            .contains(&"customresourcecleanup.apiextensions.k8s.io".to_string())
    );
    let e = w
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "test.tycho.dev/v1", "kind": "Widget",
        "metadata": {"name": "late"}, "spec": {"color": "red"}}))
            .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, kube::Error::Api(s) if s.code == 405));
    w.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually(10, || async {
        let r = http(&emu, "GET", "/apis/test.tycho.dev/v1", &[], None).await;
        (r.status == 404).then_some(())
    })
    .await;
    assert!(
        matches!(crd_api.get("widgets.test.tycho.dev").await, Err(kube::Error::Api(s)) if s.code == 404)
    );
    emu.shutdown().await;
}

/// A Service held by a finalizer keeps its node port while terminating and releases it when
/// the last finalizer is removed (the port can then be allocated again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_with_finalizer_releases_node_port_on_removal() {
    use k8s_openapi::api::core::v1::Service;
    let emu = start().await;
    let c = client(&emu).await;
    let svcs: Api<Service> = Api::namespaced(c, "default");
    let svc = |name: &str, fin: bool| -> Service {
        let mut v = json!({"metadata": {"name": name}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}});
        if fin {
            v["metadata"]["finalizers"] = json!(["test.tycho.dev/hold"]);
        }
        serde_json::from_value(v).unwrap()
    };
    svcs.create(&PostParams::default(), &svc("s1", true))
        .await
        .unwrap();
    svcs.delete("s1", &DeleteParams::default()).await.unwrap();
    assert!(
        svcs.create(&PostParams::default(), &svc("s2", false))
            .await
            .is_err(),
        "port still held"
    );
    svcs.patch(
        "s1",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    svcs.create(&PostParams::default(), &svc("s2", false))
        .await
        .unwrap();
    emu.shutdown().await;
}

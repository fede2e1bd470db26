//! Cases where the differential test (tests/differential.rs) found the emulator answering
//! differently from kube-apiserver, fixed and pinned here so that they hold without a real cluster.

mod api_common;

use api_common::{Raw, http, start};
use serde_json::{Value, json};

const JSON: (&str, &str) = ("Content-Type", "application/json");
const MERGE: (&str, &str) = ("Content-Type", "application/merge-patch+json");

async fn post(emu: &tycho_emulator::Emulator, path: &str, body: Value) -> Raw {
    http(emu, "POST", path, &[JSON], Some(&body.to_string())).await
}

#[tokio::test]
async fn status_details_and_error_codes_match_kube_apiserver() {
    let emu = start().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    // Core-group errors carry no `details.group`.
    let r = http(&emu, "GET", &format!("{cms}/nope"), &[], None).await;
    assert_eq!(r.status, 404);
    assert!(r.json()["details"].get("group").is_none(), "{}", r.body);
    // An unknown patch media type is 415, whatever the body.
    post(
        &emu,
        cms,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
    )
    .await;
    let r = http(
        &emu,
        "PATCH",
        &format!("{cms}/a"),
        &[("Content-Type", "text/plain")],
        Some("x"),
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.body);
    assert_eq!(r.json()["reason"], "UnsupportedMediaType");
    // An unknown propagation policy is judged as DeleteOptions, before the object is looked up.
    let r = http(
        &emu,
        "DELETE",
        &format!("{cms}/nope?propagationPolicy=Sideways"),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let st = r.json();
    assert_eq!(st["details"]["group"], "meta.k8s.io");
    assert_eq!(st["details"]["kind"], "DeleteOptions");
    assert_eq!(st["details"]["causes"][0]["field"], "propagationPolicy");
    // A server-side apply conflict names no object in its details, only the causes.
    let apply = ("Content-Type", "application/apply-patch+yaml");
    let body = |v: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"k": v}}).to_string()
    };
    let r = http(
        &emu,
        "PATCH",
        &format!("{cms}/s?fieldManager=alice"),
        &[apply],
        Some(&body("a")),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = http(
        &emu,
        "PATCH",
        &format!("{cms}/s?fieldManager=bob"),
        &[apply],
        Some(&body("b")),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let st = r.json();
    assert!(
        st["details"].get("name").is_none() && st["details"].get("kind").is_none(),
        "{st}"
    );
    assert_eq!(st["details"]["causes"][0]["field"], ".data.k");
    // Creating in a terminating namespace: 403 with a NamespaceTerminating cause.
    post(
        &emu,
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}}),
    )
    .await;
    post(&emu, "/api/v1/namespaces/t/configmaps", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["x.dev/hold"]}})).await;
    http(&emu, "DELETE", "/api/v1/namespaces/t", &[], None).await;
    let r = post(
        &emu,
        "/api/v1/namespaces/t/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.json()["details"]["causes"][0]["field"],
        "metadata.namespace"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn lists_selectors_and_watch_resource_versions() {
    let emu = start().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    for n in ["a", "b", "c"] {
        post(&emu, cms, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "labels": {"app": "x"}}})).await;
    }
    // Items of a built-in list carry no apiVersion/kind; a filtered page has no remainingItemCount.
    let r = http(
        &emu,
        "GET",
        &format!("{cms}?labelSelector=app%3Dx&limit=1"),
        &[],
        None,
    )
    .await;
    let l = r.json();
    assert!(
        l["items"][0].get("kind").is_none() && l["items"][0].get("apiVersion").is_none(),
        "{l}"
    );
    assert!(l["metadata"]["continue"].is_string(), "{l}");
    assert!(l["metadata"].get("remainingItemCount").is_none(), "{l}");
    let l = http(&emu, "GET", &format!("{cms}?limit=1"), &[], None)
        .await
        .json();
    assert_eq!(l["metadata"]["remainingItemCount"], 2, "{l}");
    // An invalid label value is 400.
    let r = http(
        &emu,
        "GET",
        &format!("{cms}?labelSelector=app%3D%3D%3Dx"),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // An unparsable resourceVersion on a watch: a bare 500.
    let r = http(
        &emu,
        "GET",
        &format!("{cms}?watch=true&resourceVersion=abc&timeoutSeconds=1"),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(r.json().get("reason").is_none(), "{}", r.body);
    // RV 1 is compacted away: 200 and one ERROR event with 410 Expired.
    let r = http(
        &emu,
        "GET",
        &format!("{cms}?watch=true&resourceVersion=1&timeoutSeconds=1"),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ev: Value =
        serde_json::from_str(r.body.lines().next().unwrap_or_default()).expect("an event");
    assert_eq!(ev["type"], "ERROR", "{ev}");
    assert_eq!(ev["object"]["code"], 410, "{ev}");
    // The initial-events-end bookmark has no creationTimestamp.
    let r = http(&emu, "GET", &format!("{cms}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1"), &[], None).await;
    let bm = r
        .body
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["type"] == "BOOKMARK")
        .expect("a bookmark");
    assert!(
        bm["object"]["metadata"].get("creationTimestamp").is_none(),
        "{bm}"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn objects_are_shaped_as_kube_apiserver_shapes_them() {
    let emu = start().await;
    // stringData is merged into data (base64) and dropped.
    let s = post(&emu, "/api/v1/namespaces/default/secrets", json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": "hunter2"}})).await.json();
    assert_eq!(s["data"]["password"], "aHVudGVyMg==", "{s}");
    assert!(s.get("stringData").is_none(), "{s}");
    // A namespace is labelled with its own name.
    let n = post(
        &emu,
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "labelled"}}),
    )
    .await
    .json();
    assert_eq!(
        n["metadata"]["labels"]["kubernetes.io/metadata.name"], "labelled",
        "{n}"
    );
    // Finalizer names are validated.
    let r = post(&emu, "/api/v1/namespaces/default/configmaps", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "f", "finalizers": ["not a finalizer"]}})).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let fields: Vec<String> = r.json()["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .map(|c| c["field"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(fields, ["metadata.finalizers", "metadata.finalizers[0]"]);
    // Removing the last finalizer of a terminating object answers with the updated object.
    let cm = "/api/v1/namespaces/default/configmaps/held";
    post(&emu, "/api/v1/namespaces/default/configmaps", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["x.dev/hold"]}})).await;
    http(&emu, "DELETE", cm, &[], None).await;
    let r = http(
        &emu,
        "PATCH",
        cm,
        &[MERGE],
        Some(r#"{"metadata":{"finalizers":null}}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let o = r.json();
    assert!(o["metadata"].get("finalizers").is_none(), "{o}");
    assert!(o["metadata"].get("managedFields").is_none(), "{o}");
    assert_eq!(http(&emu, "GET", cm, &[], None).await.status, 404);
    // A pod gets enableServiceLinks (owned by its creator) and, from admission, priority,
    // preemptionPolicy and the not-ready/unreachable tolerations (owned by nobody).
    let p = post(&emu, "/api/v1/namespaces/default/pods", json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}})).await.json();
    assert_eq!(p["spec"]["enableServiceLinks"], true, "{p}");
    assert_eq!(p["spec"]["priority"], 0, "{p}");
    assert_eq!(p["spec"]["preemptionPolicy"], "PreemptLowerPriority", "{p}");
    assert_eq!(
        p["spec"]["tolerations"].as_array().map(Vec::len),
        Some(2),
        "{p}"
    );
    let owned = p["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"].clone();
    assert!(
        owned.get("f:enableServiceLinks").is_some() && owned.get("f:tolerations").is_none(),
        "{owned}"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn schema_errors_block_cel_rules() {
    let emu = start().await;
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.fidelity.dev"},
        "spec": {"group": "fidelity.dev", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "required": ["size"],
                    "x-kubernetes-validations": [{"rule": "self.size < 10", "message": "small"}],
                    "properties": {"size": {"type": "integer"}, "color": {"type": "string", "enum": ["red"]}}}}}}}]}
    });
    let r = post(
        &emu,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        crd,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let path = "/apis/fidelity.dev/v1/namespaces/default/gadgets";
    let mut served = false;
    for _ in 0..100 {
        if http(&emu, "GET", path, &[], None).await.status == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(served, "the CRD is served");
    let causes = |r: &Raw| -> Vec<String> {
        let mut f: Vec<String> = r.json()["details"]["causes"]
            .as_array()
            .expect("causes")
            .iter()
            .map(|c| c["field"].as_str().unwrap_or_default().to_string())
            .collect();
        f.sort();
        f
    };
    // A blocking schema error (unsupported enum value): the CEL rule is not evaluated.
    let r = post(&emu, path, json!({"apiVersion": "fidelity.dev/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"size": 50, "color": "blue"}})).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(causes(&r), ["<nil>", "spec.color"]);
    // Without one, the CEL rule is.
    let r = post(&emu, path, json!({"apiVersion": "fidelity.dev/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"size": 50}})).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(causes(&r), ["spec"]);
    emu.shutdown().await;
}

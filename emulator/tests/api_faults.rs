//! Fault injection, the request log, the admin endpoints, metadata-only and Table output,
//! OpenAPI documents, and the simulated cluster wired behind `simulate`. Each test names what it
//! checks.

mod api_common;

use std::time::{Duration, Instant};

use api_common::{WIDGET_CRD, client, eventually, http, start, start_with};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tycho_emulator::{EmulatorConfig, ErrorRule, FaultSpec};

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {}})).unwrap()
}

/// Fault injection: per-verb/resource error rates answer 500 InternalError or 429
/// TooManyRequests with Retry-After; added latency delays requests; clearing restores service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_errors_and_latency() {
    let emu = start().await;
    let f = emu.faults();
    f.add_error_rule(ErrorRule {
        verb: Some("create".into()),
        resource: Some("configmaps".into()),
        rate: 1.0,
        code: 429,
        retry_after_seconds: 2,
    });
    let ct = [("Content-Type", "application/json")];
    let r = http(
        &emu,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &ct,
        Some(r#"{"metadata":{"name":"a"}}"#),
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), vec!["2".to_string()]);
    assert_eq!(r.json()["reason"], "TooManyRequests");
    // Other verbs and resources are unaffected.
    assert_eq!(
        http(
            &emu,
            "GET",
            "/api/v1/namespaces/default/configmaps",
            &[],
            None
        )
        .await
        .status,
        200
    );
    assert_eq!(
        http(
            &emu,
            "POST",
            "/api/v1/namespaces/default/secrets",
            &ct,
            Some(r#"{"metadata":{"name":"a"}}"#)
        )
        .await
        .status,
        201
    );
    f.clear();
    f.add_error_rule(ErrorRule {
        verb: None,
        resource: Some("configmaps".into()),
        rate: 1.0,
        code: 500,
        retry_after_seconds: 1,
    });
    let r = http(
        &emu,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        &[],
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["reason"].as_str().map(str::to_string)),
        (500, Some("InternalError".into()))
    );
    f.clear();
    f.set_latency(Duration::from_millis(300));
    let t = Instant::now();
    assert_eq!(
        http(&emu, "GET", "/api/v1/namespaces", &[], None)
            .await
            .status,
        200
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
    emu.shutdown().await;
}

/// Admin endpoints: `PUT/GET /emulator/v1/faults` (JSON FaultSpec) and
/// `GET/DELETE /emulator/v1/requests` (verb, group, resource, namespace, name, user agent, code).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_and_request_log() {
    let emu = start().await;
    let spec = FaultSpec {
        kubelet_paused: true,
        latency_ms: 5,
        ..FaultSpec::default()
    };
    let r = http(
        &emu,
        "PUT",
        "/emulator/v1/faults",
        &[("Content-Type", "application/json")],
        Some(&serde_json::to_string(&spec).unwrap()),
    )
    .await;
    assert_eq!(r.status, 200);
    let got: FaultSpec = serde_json::from_str(
        &http(&emu, "GET", "/emulator/v1/faults", &[], None)
            .await
            .body,
    )
    .unwrap();
    assert!(got.kubelet_paused && got.latency_ms == 5);
    assert!(
        emu.faults()
            .kubelet_paused_flag()
            .load(std::sync::atomic::Ordering::SeqCst)
    );
    http(&emu, "DELETE", "/emulator/v1/requests", &[], None).await;
    http(
        &emu,
        "GET",
        "/api/v1/namespaces/default/configmaps/x",
        &[("User-Agent", "probe/1.0")],
        None,
    )
    .await;
    http(
        &emu,
        "GET",
        "/apis/apps/v1/deployments?watch=true&timeoutSeconds=1",
        &[("User-Agent", "probe/1.0")],
        None,
    )
    .await;
    let log: serde_json::Value = http(&emu, "GET", "/emulator/v1/requests", &[], None)
        .await
        .json();
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["verb"], "get");
    assert_eq!(log[0]["resource"], "configmaps");
    assert_eq!(log[0]["namespace"], "default");
    assert_eq!(log[0]["name"], "x");
    assert_eq!(log[0]["userAgent"], "probe/1.0");
    assert_eq!(log[0]["code"], 404);
    assert_eq!(log[1]["verb"], "watch");
    assert_eq!(log[1]["apiGroup"], "apps");
    assert_eq!(emu.requests().len(), 2, "admin calls are not logged");
    emu.shutdown().await;
}

/// Metadata-only clients (kube-runtime `Controller::owns`): `as=PartialObjectMetadataList` lists
/// and watches return PartialObjectMetadata items, which `metadata_watcher` consumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_object_metadata_lists_and_watches() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let l = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(l.items.len(), 1);
    assert_eq!(l.items[0].metadata.name.as_deref(), Some("a"));
    let r = http(
        &emu,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        &[(
            "Accept",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        )],
        None,
    )
    .await;
    assert_eq!(r.json()["kind"], "PartialObjectMetadataList");
    assert!(r.json()["items"][0].get("data").is_none());
    let meta_api: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(c.clone(), "default");
    let mut w = watcher(meta_api, watcher::Config::default())
        .applied_objects()
        .boxed();
    let first: PartialObjectMeta<ConfigMap> =
        tokio::time::timeout(Duration::from_secs(10), w.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("a"));
    api.create(&PostParams::default(), &cm("b")).await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), w.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.metadata.name.as_deref(), Some("b"));
    emu.shutdown().await;
}

/// Server-side printing: a custom resource's Table has NAME plus the CRD's
/// additionalPrinterColumns evaluated with JSONPath (incl. a filter), rows carry
/// PartialObjectMetadata; Pods get READY/STATUS/RESTARTS/AGE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_output() {
    let emu = start().await;
    let ct = [("Content-Type", "application/yaml")];
    assert_eq!(
        http(
            &emu,
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &ct,
            Some(WIDGET_CRD)
        )
        .await
        .status,
        201
    );
    let w = r#"{"apiVersion":"test.tycho.dev/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"color":"red","size":4}}"#;
    assert_eq!(
        http(
            &emu,
            "POST",
            "/apis/test.tycho.dev/v1/namespaces/default/widgets",
            &[("Content-Type", "application/json")],
            Some(w)
        )
        .await
        .status,
        201
    );
    let st = r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#;
    let r = http(
        &emu,
        "PATCH",
        "/apis/test.tycho.dev/v1/namespaces/default/widgets/w/status",
        &[("Content-Type", "application/merge-patch+json")],
        Some(st),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let accept = [(
        "Accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
    )];
    let r = http(
        &emu,
        "GET",
        "/apis/test.tycho.dev/v1/namespaces/default/widgets?limit=500",
        &accept,
        None,
    )
    .await;
    assert_eq!(
        r.header("content-type")[0],
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    );
    let t = r.json();
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, vec!["Name", "Color", "Size", "Ready"]);
    assert_eq!(t["rows"][0]["cells"], json!(["w", "red", 4, "True"]));
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let pod = r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"x"}]}}"#;
    http(
        &emu,
        "POST",
        "/api/v1/namespaces/default/pods",
        &[("Content-Type", "application/json")],
        Some(pod),
    )
    .await;
    let t = http(
        &emu,
        "GET",
        "/api/v1/namespaces/default/pods/p",
        &accept,
        None,
    )
    .await
    .json();
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .take(5)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, vec!["Name", "Ready", "Status", "Restarts", "Age"]);
    assert_eq!(t["rows"][0]["cells"][1], "0/1");
    assert_eq!(t["rows"][0]["cells"][2], "Pending");
    emu.shutdown().await;
}

/// OpenAPI v3: the index lists every served group/version (including a new CRD's) with a hash
/// URL; each document's PATCH operation carries x-kubernetes-group-version-kind and a
/// fieldValidation parameter; the CRD schema is published; /openapi/v2 is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_v3_documents() {
    let emu = start().await;
    http(
        &emu,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &[("Content-Type", "application/yaml")],
        Some(WIDGET_CRD),
    )
    .await;
    let idx = http(&emu, "GET", "/openapi/v3", &[], None).await.json();
    for gv in [
        "api/v1",
        "apis/apps/v1",
        "apis/apiextensions.k8s.io/v1",
        "apis/coordination.k8s.io/v1",
        "apis/test.tycho.dev/v1",
    ] {
        assert!(
            idx["paths"][gv]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .contains("?hash="),
            "{gv}"
        );
    }
    let url = idx["paths"]["apis/test.tycho.dev/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let doc = http(&emu, "GET", &url, &[], None).await.json();
    let patch =
        &doc["paths"]["/apis/test.tycho.dev/v1/namespaces/{namespace}/widgets/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "test.tycho.dev", "version": "v1", "kind": "Widget"})
    );
    assert!(
        patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
    );
    assert_eq!(
        doc["components"]["schemas"]["dev.tycho.test.v1.Widget"]["properties"]["spec"]["required"],
        json!(["color"])
    );
    assert_eq!(
        http(&emu, "GET", "/openapi/v2", &[], None).await.status,
        404
    );
    emu.shutdown().await;
}

/// The simulated cluster behind `simulate`: Nodes register, a Deployment gets a ReplicaSet and
/// Running pods through the API; deleting the Deployment cascades (Deployment → ReplicaSet →
/// Pods) through owner-reference garbage collection, with the kubelet confirming graceful pod
/// deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_cluster_and_cascading_deletion() {
    let emu = start_with(EmulatorConfig {
        nodes: 2,
        pod_ready_delay: Duration::from_millis(100),
        ..EmulatorConfig::default()
    })
    .await;
    let c = client(&emu).await;
    let deps: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let d = json!({"metadata": {"name": "web"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    deps.create(&PostParams::default(), &serde_json::from_value(d).unwrap())
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    eventually(30, || async {
        let l = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        let running = l
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        (running == 2).then_some(())
    })
    .await;
    deps.delete("web", &DeleteParams::background())
        .await
        .unwrap();
    let rss: Api<ReplicaSet> = Api::namespaced(c.clone(), "default");
    eventually(30, || async {
        let r = rss.list(&ListParams::default()).await.ok()?;
        let p = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        (r.items.is_empty() && p.items.is_empty()).then_some(())
    })
    .await;
    emu.shutdown().await;
}

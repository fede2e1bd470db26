//! Object lifecycle semantics through the `kube` crate (and raw HTTP where the wire matters).
//! Each test cites the Kubernetes behaviour it checks.

mod api_common;

use api_common::{WIDGET_CRD, client, http, start};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
use serde_json::json;

fn cm(name: &str, data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": data}))
    .unwrap()
}

fn status_code(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("not an API error: {other:?}"),
    }
}

fn deployment(name: &str, image: &str) -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}}}})
}

/// API concepts (object metadata): the server sets uid, creationTimestamp and a string
/// resourceVersion that increases; the namespace comes from the URL when the body has none;
/// lists carry kind, apiVersion and metadata.resourceVersion; generateName appends a suffix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_sets_system_metadata_and_lists_carry_resource_version() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let a = api
        .create(&PostParams::default(), &cm("a", json!({"k": "v"})))
        .await
        .unwrap();
    let b = api
        .create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    assert_eq!(a.metadata.namespace.as_deref(), Some("default"));
    assert!(a.metadata.uid.is_some() && a.metadata.creation_timestamp.is_some());
    let rva: u64 = a
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    let rvb: u64 = b
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rvb > rva);
    let raw = http(
        &emu,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        &[],
        None,
    )
    .await;
    let list = raw.json();
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["apiVersion"], "v1");
    assert!(
        list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= rvb
    );
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let g: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "gen-"}, "data": {}})).unwrap();
    let made = api.create(&PostParams::default(), &g).await.unwrap();
    let n = made.metadata.name.unwrap();
    assert!(n.starts_with("gen-") && n.len() == 9, "{n}");
    emu.shutdown().await;
}

/// API conventions (Status): NotFound 404, AlreadyExists 409, namespace mismatch 400 BadRequest,
/// missing namespace 404, name validation 422 Invalid with causes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    assert_eq!(status_code(api.get("nope").await.unwrap_err()).0, 404);
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let (code, reason, _) = status_code(
        api.create(&PostParams::default(), &cm("a", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    let r = http(
        &emu,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[("Content-Type", "application/json")],
        Some(
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"other"}}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["reason"], "BadRequest");
    let other: Api<ConfigMap> = Api::namespaced(c.clone(), "missing-ns");
    assert_eq!(
        status_code(
            other
                .create(&PostParams::default(), &cm("a", json!({})))
                .await
                .unwrap_err()
        )
        .0,
        404
    );
    let r = http(
        &emu,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[("Content-Type", "application/json")],
        Some(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#),
    )
    .await;
    assert_eq!(r.status, 422);
    let s = r.json();
    assert_eq!(s["reason"], "Invalid");
    assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
    emu.shutdown().await;
}

/// API concepts (resource versions / optimistic concurrency): an update carrying a stale
/// resourceVersion is rejected with 409 Conflict; a no-op update does not change it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimistic_concurrency_conflict() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    let v1 = api
        .create(&PostParams::default(), &cm("a", json!({"k": "1"})))
        .await
        .unwrap();
    let mut v2 = v1.clone();
    v2.data = Some([("k".to_string(), "2".to_string())].into());
    let v2 = api.replace("a", &PostParams::default(), &v2).await.unwrap();
    assert_ne!(v1.metadata.resource_version, v2.metadata.resource_version);
    let mut stale = v1.clone();
    stale.data = Some([("k".to_string(), "3".to_string())].into());
    let (code, reason, msg) = status_code(
        api.replace("a", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(msg.contains("the object has been modified"), "{msg}");
    let same = api.replace("a", &PostParams::default(), &v2).await.unwrap();
    assert_eq!(same.metadata.resource_version, v2.metadata.resource_version);
    emu.shutdown().await;
}

/// metadata.generation: set to 1 on create and bumped only on spec changes (not on label or
/// status changes), for built-ins (Deployment) and custom resources (any change outside
/// metadata and status).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_bumps_on_spec_changes_only() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let d = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(deployment("d", "nginx:1")).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    let pp = PatchParams::default();
    let d = api
        .patch(
            "d",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    let d = api
        .patch_status("d", &pp, &Patch::Merge(json!({"status": {"replicas": 1}})))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    assert_eq!(d.status.unwrap().replicas, Some(1));
    let d = api
        .patch("d", &pp, &Patch::Merge(json!({"spec": {"replicas": 3}})))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(2));

    let crd_api: Api<DynamicObject> = Api::all_with(
        c.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: serde_json::Value = serde_saphyr::from_str(WIDGET_CRD).unwrap();
    let created = crd_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(crd).unwrap(),
        )
        .await
        .unwrap();
    let st = serde_json::to_value(&created).unwrap();
    let conds = st["status"]["conditions"].as_array().unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    );
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("test.tycho.dev", "v1", "Widget"),
        "widgets",
    );
    let w: Api<DynamicObject> = Api::namespaced_with(c.clone(), "default", &ar);
    let obj: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "test.tycho.dev/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"color": "red"}}))
        .unwrap();
    let o = w.create(&PostParams::default(), &obj).await.unwrap();
    assert_eq!(o.metadata.generation, Some(1));
    assert_eq!(o.data["spec"]["size"], 3, "schema default applied");
    let o = w
        .patch_status(
            "w",
            &pp,
            &Patch::Merge(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})),
        )
        .await
        .unwrap();
    assert_eq!(o.metadata.generation, Some(1));
    let o = w
        .patch("w", &pp, &Patch::Merge(json!({"spec": {"color": "blue"}})))
        .await
        .unwrap();
    assert_eq!(o.metadata.generation, Some(2));
    emu.shutdown().await;
}

/// Status subresource: writes to the main resource ignore `.status`, writes to `/status`
/// ignore everything but `.status` (for kinds that declare the subresource).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_subresource_split() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<Deployment> = Api::namespaced(c, "default");
    api.create(
        &PostParams::default(),
        &serde_json::from_value(deployment("d", "nginx:1")).unwrap(),
    )
    .await
    .unwrap();
    let pp = PatchParams::default();
    let d = api
        .patch("d", &pp, &Patch::Merge(json!({"status": {"replicas": 7}})))
        .await
        .unwrap();
    assert_eq!(d.status.and_then(|s| s.replicas), None);
    let d = api
        .patch_status(
            "d",
            &pp,
            &Patch::Merge(json!({"spec": {"replicas": 9}, "status": {"replicas": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(1));
    assert_eq!(d.status.unwrap().replicas, Some(2));
    emu.shutdown().await;
}

/// Label selectors (=, ==, !=, in, notin, exists, !exists) and field selectors
/// (metadata.name, metadata.namespace, spec.nodeName for pods); unsupported field labels are
/// rejected with 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_and_field_selectors() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    for (n, labels) in [
        ("a", json!({"app": "web", "tier": "fe"})),
        ("b", json!({"app": "db"})),
        ("c", json!({})),
    ] {
        let mut o = cm(n, json!({}));
        o.metadata.labels = serde_json::from_value(labels).unwrap();
        api.create(&PostParams::default(), &o).await.unwrap();
    }
    let names = |l: kube::api::ObjectList<ConfigMap>| -> Vec<String> {
        l.items
            .into_iter()
            .map(|o| o.metadata.name.unwrap())
            .collect()
    };
    for (sel, want) in [
        ("app=web", vec!["a"]),
        ("app==db", vec!["b"]),
        ("app!=web", vec!["b", "c"]),
        ("app in (web,db)", vec!["a", "b"]),
        ("app notin (web)", vec!["b", "c"]),
        ("tier", vec!["a"]),
        ("!app", vec!["c"]),
    ] {
        let got = names(api.list(&ListParams::default().labels(sel)).await.unwrap());
        assert_eq!(got, want, "{sel}");
    }
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=b"))
                .await
                .unwrap()
        ),
        vec!["b"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name!=b,metadata.namespace=default"))
                .await
                .unwrap()
        ),
        vec!["a", "c"]
    );
    let e = api
        .list(&ListParams::default().fields("spec.foo=x"))
        .await
        .unwrap_err();
    assert_eq!(status_code(e).0, 400);
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    for (n, node) in [("p1", "n1"), ("p2", "n2")] {
        pods.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": n},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    }
    let l = pods
        .list(&ListParams::default().fields("spec.nodeName=n2"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    assert_eq!(l.items[0].metadata.name.as_deref(), Some("p2"));
    let l = pods
        .list(&ListParams::default().fields("status.phase=Pending"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 2);
    emu.shutdown().await;
}

/// API concepts (retrieving large results in chunks): `limit` returns a `continue` token and
/// `remainingItemCount`; following the tokens yields every object exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_and_continue_paging() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    for i in 0..7 {
        api.create(&PostParams::default(), &cm(&format!("cm-{i}"), json!({})))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(3);
    loop {
        let page = api.list(&lp).await.unwrap();
        seen.extend(page.items.iter().map(|o| o.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => {
                assert!(page.metadata.remaining_item_count.unwrap() > 0);
                lp = lp.continue_token(&t);
            }
            _ => break,
        }
    }
    assert_eq!(seen.len(), 7);
    seen.dedup();
    assert_eq!(seen.len(), 7);
    emu.shutdown().await;
}

/// Field validation (server-side): for built-ins, Strict rejects unknown fields with 400
/// `strict decoding error: unknown field "..."`, Warn accepts with a `Warning: 299` header and
/// drops the field; a body that does not fit the type is a 400 BadRequest. Custom resources are
/// validated against the CRD's structural schema (422 Invalid with causes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_validation_strict_warn_and_schema() {
    let emu = start().await;
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":"1"},"spec":{"foo":1}}"#;
    let ct = [("Content-Type", "application/json")];
    let r = http(
        &emu,
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
        &ct,
        Some(body),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("strict decoding error: unknown field \"spec\""),
        "{}",
        r.body
    );
    let r = http(
        &emu,
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Warn",
        &ct,
        Some(body),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(
        r.header("warning")
            .iter()
            .any(|w| w.starts_with("299 - ") && w.contains("unknown field")),
        "{:?}",
        r.headers
    );
    assert!(r.json().get("spec").is_none(), "unknown field dropped");
    let bad = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":"three"}}"#;
    let r = http(
        &emu,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        &ct,
        Some(bad),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);

    let c = client(&emu).await;
    let crd_api: Api<DynamicObject> = Api::all_with(
        c.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: serde_json::Value = serde_saphyr::from_str(WIDGET_CRD).unwrap();
    crd_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(crd).unwrap(),
        )
        .await
        .unwrap();
    let w = r#"{"apiVersion":"test.tycho.dev/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"color":"purple","size":0}}"#;
    let r = http(
        &emu,
        "POST",
        "/apis/test.tycho.dev/v1/namespaces/default/widgets",
        &ct,
        Some(w),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let s = r.json();
    assert_eq!(s["reason"], "Invalid");
    let fields: Vec<&str> = s["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"spec.color") && fields.contains(&"spec.size"),
        "{fields:?}"
    );
    let w = r#"{"apiVersion":"test.tycho.dev/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"color":"red","bogus":1}}"#;
    let r = http(
        &emu,
        "POST",
        "/apis/test.tycho.dev/v1/namespaces/default/widgets?fieldValidation=Strict",
        &ct,
        Some(w),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("unknown field \\\"spec.bogus\\\""),
        "{}",
        r.body
    );
    emu.shutdown().await;
}

/// dryRun=All: the request is validated and the response shows the result, but nothing is
/// persisted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_does_not_persist() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let o = api
        .create(&pp, &cm("dry", json!({"a": "1"})))
        .await
        .unwrap();
    assert_eq!(o.metadata.name.as_deref(), Some("dry"));
    assert_eq!(status_code(api.get("dry").await.unwrap_err()).0, 404);
    emu.shutdown().await;
}

/// Immutable fields as kube-apiserver enforces them: most of a Pod's spec (the image may
/// change), a Deployment's selector, a ConfigMap with `immutable: true`, a Service's clusterIP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutable_fields() {
    let emu = start().await;
    let c = client(&emu).await;
    let pp = PatchParams::default();
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "x:1"}]}}))
        .unwrap(),
    )
    .await
    .unwrap();
    pods.patch(
        "p",
        &pp,
        &Patch::Strategic(json!({"spec": {"containers": [{"name": "c", "image": "x:2"}]}})),
    )
    .await
    .unwrap();
    let e = pods
        .patch(
            "p",
            &pp,
            &Patch::Strategic(json!({"spec": {"containers": [{"name": "c", "command": ["sh"]}]}})),
        )
        .await
        .unwrap_err();
    let (code, _, msg) = status_code(e);
    assert_eq!(code, 422);
    assert!(msg.contains("pod updates may not change fields"), "{msg}");

    let deps: Api<Deployment> = Api::namespaced(c.clone(), "default");
    deps.create(
        &PostParams::default(),
        &serde_json::from_value(deployment("d", "nginx")).unwrap(),
    )
    .await
    .unwrap();
    let e = deps
        .patch(
            "d",
            &pp,
            &Patch::Merge(
                json!({"spec": {"selector": {"matchLabels": {"app": "other"}},
        "template": {"metadata": {"labels": {"app": "other"}}}}}),
            ),
        )
        .await
        .unwrap_err();
    let (code, _, msg) = status_code(e);
    assert_eq!(code, 422);
    assert!(
        msg.contains("spec.selector") && msg.contains("field is immutable"),
        "{msg}"
    );

    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let mut o = cm("imm", json!({"a": "1"}));
    o.immutable = Some(true);
    cms.create(&PostParams::default(), &o).await.unwrap();
    let e = cms
        .patch("imm", &pp, &Patch::Merge(json!({"data": {"a": "2"}})))
        .await
        .unwrap_err();
    assert_eq!(status_code(e).0, 422);
    cms.patch(
        "imm",
        &pp,
        &Patch::Merge(json!({"metadata": {"labels": {"ok": "yes"}}})),
    )
    .await
    .unwrap();

    let svcs: Api<Service> = Api::namespaced(c.clone(), "default");
    svcs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80}]}}))
        .unwrap(),
    )
    .await
    .unwrap();
    let e = svcs
        .patch(
            "s",
            &pp,
            &Patch::Merge(
                json!({"spec": {"clusterIP": "10.96.200.200", "clusterIPs": ["10.96.200.200"]}}),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(status_code(e).0, 422);
    emu.shutdown().await;
}

/// Services: a ClusterIP from 10.96.0.0/12 and node ports in 30000–32767 are allocated without
/// collisions; a taken node port is 422 "provided port is already allocated"; deletion
/// releases it; an apply that omits nodePort keeps the allocated one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_cluster_ip_and_node_ports() {
    let emu = start().await;
    let c = client(&emu).await;
    let svcs: Api<Service> = Api::namespaced(c, "default");
    let s1 = svcs
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "s1"},
        "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let ip = s1.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
    assert!(ip.starts_with("10.9") || ip.starts_with("10.10"), "{ip}");
    let e = svcs
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "s2"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}))
            .unwrap(),
        )
        .await
        .unwrap_err();
    let (code, _, msg) = status_code(e);
    assert_eq!(code, 422);
    assert!(msg.contains("provided port is already allocated"), "{msg}");
    let apply = PatchParams::apply("tester").force();
    let s3 = svcs.patch("s3", &apply, &Patch::Apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s3"},
        "spec": {"type": "NodePort", "selector": {"app": "a"}, "ports": [{"name": "http", "port": 80}]}}))).await.unwrap();
    let np = s3.spec.as_ref().unwrap().ports.as_ref().unwrap()[0]
        .node_port
        .unwrap();
    assert!((30000..=32767).contains(&np) && np != 30080);
    let s3b = svcs.patch("s3", &apply, &Patch::Apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s3"},
        "spec": {"type": "NodePort", "selector": {"app": "b"}, "ports": [{"name": "http", "port": 80}]}}))).await.unwrap();
    assert_eq!(
        s3b.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].node_port,
        Some(np)
    );
    assert_eq!(
        s3b.spec.as_ref().unwrap().cluster_ip,
        s3.spec.as_ref().unwrap().cluster_ip
    );
    svcs.delete("s1", &DeleteParams::default()).await.unwrap();
    svcs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "s4"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}))
        .unwrap(),
    )
    .await
    .unwrap();
    emu.shutdown().await;
}

/// Patch content types: JSON merge patch, JSON patch (with `test`), strategic merge patch with
/// merge keys on built-ins, and 415 UnsupportedMediaType for strategic merge on custom resources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_types() {
    let emu = start().await;
    let c = client(&emu).await;
    let pp = PatchParams::default();
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    cms.create(
        &PostParams::default(),
        &cm("a", json!({"x": "1", "y": "2"})),
    )
    .await
    .unwrap();
    let o = cms
        .patch(
            "a",
            &pp,
            &Patch::Merge(json!({"data": {"x": null, "z": "3"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(o.data).unwrap(),
        json!({"y": "2", "z": "3"})
    );
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/data/y", "value": "2"},
        {"op": "replace", "path": "/data/y", "value": "20"}]))
        .unwrap();
    let o = cms.patch("a", &pp, &Patch::<()>::Json(jp)).await.unwrap();
    assert_eq!(o.data.unwrap()["y"], "20");
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/data/y", "value": "nope"}]))
            .unwrap();
    assert_eq!(
        status_code(
            cms.patch("a", &pp, &Patch::<()>::Json(jp))
                .await
                .unwrap_err()
        )
        .0,
        422
    );

    let deps: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let mut d = deployment("d", "nginx");
    d["spec"]["template"]["spec"]["containers"] =
        json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]);
    deps.create(&PostParams::default(), &serde_json::from_value(d).unwrap())
        .await
        .unwrap();
    let o = deps
        .patch(
            "d",
            &pp,
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
        {"name": "b", "image": "b:2"}, {"$patch": "delete", "name": "a"}]}}}})),
        )
        .await
        .unwrap();
    let cs = o.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].image.as_deref(), Some("b:2"));

    let crd_api: Api<DynamicObject> = Api::all_with(
        c.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: serde_json::Value = serde_saphyr::from_str(WIDGET_CRD).unwrap();
    crd_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(crd).unwrap(),
        )
        .await
        .unwrap();
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
    let e = w
        .patch(
            "w",
            &pp,
            &Patch::Strategic(json!({"spec": {"color": "blue"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(status_code(e).0, 415);
    emu.shutdown().await;
}

/// Server-side apply: creates a missing object (201), records managedFields (Apply for the
/// applier, Update for other writers), reports conflicts with another manager as 409 with
/// FieldManagerConflict causes, and `force` takes ownership.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_conflicts_and_force() {
    let emu = start().await;
    let c = client(&emu).await;
    let deps: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let body = deployment("d", "nginx:1");
    let r = http(
        &emu,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/d?fieldManager=alice",
        &[("Content-Type", "application/apply-patch+yaml")],
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mf = r.json()["metadata"]["managedFields"].clone();
    assert_eq!(mf[0]["manager"], "alice");
    assert_eq!(mf[0]["operation"], "Apply");
    deps.patch(
        "d",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 5}})),
    )
    .await
    .unwrap();
    let mut bob = deployment("d", "nginx:1");
    bob["spec"]["replicas"] = json!(2);
    let e = deps
        .patch("d", &PatchParams::apply("bob"), &Patch::Apply(bob.clone()))
        .await
        .unwrap_err();
    let (code, reason, msg) = status_code(e);
    assert_eq!((code, reason.as_str()), (409, "Conflict"), "{msg}");
    assert!(msg.contains(".spec.replicas"), "{msg}");
    let r = http(
        &emu,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/d?fieldManager=bob",
        &[("Content-Type", "application/apply-patch+yaml")],
        Some(&bob.to_string()),
    )
    .await;
    assert_eq!(
        r.json()["details"]["causes"][0]["reason"],
        "FieldManagerConflict"
    );
    let d = deps
        .patch("d", &PatchParams::apply("bob").force(), &Patch::Apply(bob))
        .await
        .unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(2));
    let r = http(
        &emu,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/d",
        &[("Content-Type", "application/apply-patch+yaml")],
        Some("{}"),
    )
    .await;
    // kube-apiserver: 422 Invalid, PatchOptions.meta.k8s.io, cause `fieldManager` (differential test).
    assert_eq!(
        r.status, 422,
        "fieldManager is required for apply: {}",
        r.body
    );
    let st = r.json();
    assert_eq!(st["details"]["kind"], "PatchOptions", "{st}");
    assert_eq!(st["details"]["causes"][0]["field"], "fieldManager", "{st}");
    // YAML bodies are accepted for apply.
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  k: v\n";
    let r = http(
        &emu,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/y?fieldManager=yaml",
        &[("Content-Type", "application/apply-patch+yaml")],
        Some(yaml),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["data"]["k"], "v");
    emu.shutdown().await;
}

/// deletecollection (DELETE on a collection with a label selector) deletes exactly the
/// matching objects; PUT on a collection is 405 MethodNotAllowed; a continue token older than
/// the history window is 410 Expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_collection_method_not_allowed_and_expired_continue() {
    let emu = api_common::start_with(tycho_emulator::EmulatorConfig {
        simulate: false,
        watch_history: 3,
        ..tycho_emulator::EmulatorConfig::default()
    })
    .await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    for (n, l) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let mut o = cm(n, json!({}));
        o.metadata.labels = Some([("g".to_string(), l.to_string())].into());
        api.create(&PostParams::default(), &o).await.unwrap();
    }
    let page = api.list(&ListParams::default().limit(1)).await.unwrap();
    let token = page.metadata.continue_.unwrap();
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("g=x"),
    )
    .await
    .unwrap();
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| o.metadata.name.unwrap())
        .collect();
    assert_eq!(left, vec!["c"]);

    let r = http(
        &emu,
        "PUT",
        "/api/v1/namespaces/default/configmaps",
        &[("Content-Type", "application/json")],
        Some("{}"),
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["reason"], "MethodNotAllowed");
    for i in 0..5 {
        api.create(
            &PostParams::default(),
            &cm(&format!("churn-{i}"), json!({})),
        )
        .await
        .unwrap();
    }
    let r = http(
        &emu,
        "GET",
        &format!("/api/v1/namespaces/default/configmaps?limit=1&continue={token}"),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 410, "{}", r.body);
    assert_eq!(r.json()["reason"], "Expired");
    emu.shutdown().await;
}

/// events.k8s.io/v1 and core/v1 Events are two views of one storage (as in kube-apiserver):
/// an event published by kube-runtime's Recorder (events.k8s.io/v1) is listed as a core Event
/// (`note` → `message`, `regarding` → `involvedObject`, `reportingController` →
/// `reportingComponent`) and found by `involvedObject` field selectors, and vice versa.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_share_storage_between_api_groups() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event as V1Event;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let emu = start().await;
    let c = client(&emu).await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let target = cms
        .create(&PostParams::default(), &cm("target", json!({})))
        .await
        .unwrap();
    let recorder = Recorder::new(
        c.clone(),
        Reporter {
            controller: "tycho-test".into(),
            instance: None,
        },
    );
    recorder
        .publish(
            &Event {
                type_: EventType::Warning,
                reason: "Broken".into(),
                note: Some("it broke".into()),
                action: "Reconcile".into(),
                secondary: None,
            },
            &kube::Resource::object_ref(&target, &()),
        )
        .await
        .unwrap();
    let core: Api<CoreEvent> = Api::namespaced(c.clone(), "default");
    let l = core
        .list(
            &ListParams::default()
                .fields("involvedObject.name=target,involvedObject.kind=ConfigMap"),
        )
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    let e = &l.items[0];
    assert_eq!(e.message.as_deref(), Some("it broke"));
    assert_eq!(e.reason.as_deref(), Some("Broken"));
    assert_eq!(e.reporting_component.as_deref(), Some("tycho-test"));
    core.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "core-ev"},
        "involvedObject": {"kind": "ConfigMap", "name": "target", "namespace": "default"},
        "reason": "Hello", "message": "from core", "type": "Normal",
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingComponent": "x", "reportingInstance": "y", "action": "A"})).unwrap())
        .await
        .unwrap();
    let v1: Api<V1Event> = Api::namespaced(c.clone(), "default");
    let got = v1.get("core-ev").await.unwrap();
    assert_eq!(got.note.as_deref(), Some("from core"));
    assert_eq!(got.regarding.unwrap().name.as_deref(), Some("target"));
    assert_eq!(
        v1.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    emu.shutdown().await;
}

/// CRD selectableFields: a custom resource list can be filtered by a declared field
/// (`spec.color`); undeclared fields are rejected with 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_selectable_fields() {
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
    for (n, color) in [("a", "red"), ("b", "blue"), ("c", "red")] {
        let body = format!(
            r#"{{"apiVersion":"test.tycho.dev/v1","kind":"Widget","metadata":{{"name":"{n}"}},"spec":{{"color":"{color}"}}}}"#
        );
        let r = http(
            &emu,
            "POST",
            "/apis/test.tycho.dev/v1/namespaces/default/widgets",
            &[("Content-Type", "application/json")],
            Some(&body),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let l = http(
        &emu,
        "GET",
        "/apis/test.tycho.dev/v1/namespaces/default/widgets?fieldSelector=spec.color%3Dred",
        &[],
        None,
    )
    .await
    .json();
    let names: Vec<&str> = l["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["a", "c"]);
    let r = http(
        &emu,
        "GET",
        "/apis/test.tycho.dev/v1/namespaces/default/widgets?fieldSelector=spec.size%3D3",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    emu.shutdown().await;
}

/// Events expire a TTL after their last write (kube-apiserver's `--event-ttl`); others stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_expire_after_their_ttl() {
    use k8s_openapi::api::core::v1::Event;
    let emu = start().await;
    emu.set_event_ttl(std::time::Duration::from_secs(1));
    let events: Api<Event> = Api::namespaced(client(&emu).await, "default");
    let ev = |name: &str| -> Event {
        serde_json::from_value(json!({"metadata": {"name": name},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "Test", "message": "m", "type": "Normal"}))
        .unwrap()
    };
    events
        .create(&PostParams::default(), &ev("old"))
        .await
        .unwrap();
    api_common::eventually(10, || async {
        events.get_opt("old").await.unwrap().is_none().then_some(())
    })
    .await;
    events
        .create(&PostParams::default(), &ev("new"))
        .await
        .unwrap();
    assert!(events.get_opt("new").await.unwrap().is_some());
    emu.set_event_ttl(std::time::Duration::from_secs(3600));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(events.get_opt("new").await.unwrap().is_some());
}

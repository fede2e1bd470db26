//! The controller against an API server (the in-process emulator, or the cluster of
//! `TYCHO_TEST_KUBECONFIG`): children with owner references and labels, status, spec changes, pruning,
//! drift correction, bare Pod replacement, invalid specs, and zero writes for an unchanged System.

mod common;

use std::time::Duration;

use common::{TestCluster, eventually, is_write, system};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tycho_model::{Phase, System};

const WAIT: Duration = Duration::from_secs(60);

fn nginx_spec() -> serde_json::Value {
    json!({
        "containers": [{
            "name": "web",
            "image": "nginx:1.27",
            "ports": [{ "port": 80, "name": "http" }],
            "files": [{ "path": "/usr/share/nginx/html/index.html", "content": "<h1>hi</h1>\n" }],
        }]
    })
}

/// Apply a System as a user would (`kubectl apply --server-side`).
async fn apply(api: &Api<System>, s: &System) {
    api.patch(
        &s.name_any(),
        &PatchParams::apply("tycho-tests").force(),
        &Patch::Apply(s),
    )
    .await
    .unwrap();
}

async fn wait_system(
    api: &Api<System>,
    name: &str,
    what: &str,
    pred: impl Fn(&System) -> bool,
) -> System {
    match eventually(WAIT, || async {
        api.get_opt(name).await.ok().flatten().filter(|s| pred(s))
    })
    .await
    {
        Some(s) => s,
        None => panic!(
            "System {name}: {what} not reached; last: {:?}",
            api.get_opt(name).await.ok().flatten().map(|s| s.status)
        ),
    }
}

fn phase(s: &System) -> Option<Phase> {
    s.status.as_ref().and_then(|st| st.phase)
}

fn condition<'a>(
    s: &'a System,
    t: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    s.status.as_ref()?.conditions.iter().find(|c| c.type_ == t)
}

async fn gone<K>(api: &Api<K>, name: &str) -> bool
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(WAIT, || async {
        matches!(api.get_opt(name).await, Ok(None)).then_some(())
    })
    .await
    .is_some()
}

async fn event_reasons(c: &TestCluster, object: &str) -> Vec<String> {
    let events: Api<Event> = c.api();
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(object))
        .filter_map(|e| e.reason)
        .collect()
}

async fn wait_event(c: &TestCluster, object: &str, reason: &str) {
    let found = eventually(WAIT, || async {
        event_reasons(c, object)
            .await
            .iter()
            .any(|r| r == reason)
            .then_some(())
    })
    .await;
    assert!(
        found.is_some(),
        "no {reason} Event on {object}: {:?}",
        event_reasons(c, object).await
    );
}

fn owned_by(meta: &kube::api::ObjectMeta, sys: &System) -> bool {
    meta.owner_references.as_ref().is_some_and(|refs| {
        refs.iter().any(|r| {
            r.controller == Some(true)
                && r.kind == "System"
                && r.uid == sys.metadata.uid.clone().unwrap_or_default()
                && r.block_owner_deletion == Some(true)
        })
    })
}

fn labelled(meta: &kube::api::ObjectMeta, system: &str) -> bool {
    let l = meta.labels.clone().unwrap_or_default();
    l.get("app.kubernetes.io/managed-by").map(String::as_str) == Some("tycho")
        && l.get("tycho.dev/system").map(String::as_str) == Some(system)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_gives_owned_children_and_a_ready_status_with_node_ports() {
    let c = TestCluster::start().await;
    let ctrl = c.run_controller(|_| {}).await;
    let systems: Api<System> = c.api();
    apply(&systems, &system("web").spec(nginx_spec()).build()).await;

    let sys = wait_system(&systems, "web", "phase Ready", |s| {
        phase(s) == Some(Phase::Ready)
    })
    .await;
    if let Some(requests) = c.controller_requests() {
        // What one System costs the API server on its way to Ready (the benchmark's cold start is bound
        // by it: see docs/benchmarks.md).
        let mut writes: Vec<String> = requests
            .iter()
            .filter(|r| is_write(r))
            .map(|r| {
                format!(
                    "{} {}{}",
                    r.verb,
                    r.resource,
                    if r.subresource.is_empty() {
                        String::new()
                    } else {
                        format!("/{}", r.subresource)
                    }
                )
            })
            .collect();
        writes.sort();
        eprintln!(
            "MEASURE writes from create to Ready: {} {writes:?}",
            writes.len()
        );
    }
    let st = sys.status.clone().unwrap();
    assert_eq!(st.ready.as_deref(), Some("1/1"));
    assert_eq!((st.ready_replicas, st.replicas), (1, 1));
    assert_eq!(st.observed_generation, sys.metadata.generation);
    for t in ["Ready", "Progressing", "Degraded", "SessionValid"] {
        let cond = condition(&sys, t).unwrap_or_else(|| panic!("condition {t}"));
        assert_eq!(cond.observed_generation, sys.metadata.generation);
    }
    assert_eq!(condition(&sys, "Ready").unwrap().status, "True");

    let dep = c.api::<Deployment>().get("web").await.unwrap();
    let svc = c.api::<Service>().get("web").await.unwrap();
    let cm = c.api::<ConfigMap>().get("web-files").await.unwrap();
    for meta in [&dep.metadata, &svc.metadata, &cm.metadata] {
        assert!(owned_by(meta, &sys), "owner reference on {:?}", meta.name);
        assert!(labelled(meta, "web"), "labels on {:?}", meta.name);
        let managers: Vec<_> = meta
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|m| m.manager.clone())
            .collect();
        assert!(
            managers.iter().any(|m| m == "tycho"),
            "field manager tycho on {:?}: {managers:?}",
            meta.name
        );
    }
    let node_port = svc.spec.unwrap().ports.unwrap()[0]
        .node_port
        .expect("allocated node port");
    assert_eq!(st.node_ports, Some(node_port.to_string()));
    assert_eq!(st.endpoints.len(), 1);
    assert_eq!(st.endpoints[0].node_port, Some(node_port));
    assert_eq!(st.endpoints[0].service.as_deref(), Some("web"));
    // The URL is http://<an address of a node>:<node port> (simulated nodes are 10.0.x.y; kwok's report
    // 127.0.0.1; a real cluster's, whatever they are).
    let url = st.endpoints[0]
        .url
        .clone()
        .expect("url from a node address");
    let nodes = Api::<Node>::all(c.client.clone())
        .list(&Default::default())
        .await
        .expect("list nodes");
    let addresses: Vec<String> = nodes
        .items
        .iter()
        .filter_map(|n| n.status.as_ref()?.addresses.clone())
        .flatten()
        .filter(|a| a.type_ == "ExternalIP" || a.type_ == "InternalIP")
        .map(|a| a.address)
        .collect();
    assert!(
        addresses
            .iter()
            .any(|a| url == format!("http://{a}:{node_port}")),
        "{url} is not http://<a node address>:{node_port}; node addresses: {addresses:?}"
    );

    wait_event(&c, "web", "Created").await;
    wait_event(&c, "web", "Ready").await;

    // Health and metrics.
    assert_eq!(ctrl.http_get("/healthz").await.map(|r| r.0), Some(200));
    let ready = eventually(Duration::from_secs(10), || async {
        ctrl.http_get("/readyz").await.filter(|r| r.0 == 200)
    })
    .await;
    assert!(
        ready.is_some(),
        "/readyz: {:?}",
        ctrl.http_get("/readyz").await
    );
    assert!(ctrl.metric("tycho_reconciles_total").await.unwrap_or(0.0) >= 1.0);
    assert_eq!(
        ctrl.metric("tycho_systems{phase=\"Ready\"}").await,
        Some(1.0)
    );

    ctrl.stop().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_changes_update_prune_and_drift_is_corrected() {
    let c = TestCluster::start().await;
    let ctrl = c.run_controller(|_| {}).await;
    let systems: Api<System> = c.api();
    let deployments: Api<Deployment> = c.api();
    apply(&systems, &system("app").spec(nginx_spec()).build()).await;
    wait_system(&systems, "app", "phase Ready", |s| {
        phase(s) == Some(Phase::Ready)
    })
    .await;

    // Spec change: new image and an env var reach the Deployment.
    let mut spec = nginx_spec();
    spec["containers"][0]["image"] = json!("nginx:1.28");
    spec["containers"][0]["env"] =
        json!([{ "name": "GREETING", "value": "hello: \"world\"\n{{ x }}" }]);
    apply(&systems, &system("app").spec(spec.clone()).build()).await;
    let image_and_env = |d: &Deployment| {
        let c0 = d
            .spec
            .as_ref()?
            .template
            .spec
            .as_ref()?
            .containers
            .first()?
            .clone();
        Some((c0.image?, c0.env?.first()?.value.clone()?))
    };
    let updated = eventually(WAIT, || async {
        let d = deployments.get("app").await.ok()?;
        image_and_env(&d).filter(|(i, _)| i == "nginx:1.28")
    })
    .await
    .expect("Deployment updated");
    assert_eq!(updated.1, "hello: \"world\"\n{{ x }}");
    wait_event(&c, "app", "Updated").await;

    // Files removed → ConfigMap pruned; expose None → Service pruned.
    spec["containers"][0]["files"] = json!([]);
    spec["expose"] = json!("None");
    apply(&systems, &system("app").spec(spec.clone()).build()).await;
    assert!(
        gone(&c.api::<ConfigMap>(), "app-files").await,
        "ConfigMap pruned"
    );
    assert!(gone(&c.api::<Service>(), "app").await, "Service pruned");
    wait_event(&c, "app", "Pruned").await;
    let sys = wait_system(&systems, "app", "no endpoints", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.endpoints.is_empty() && st.node_ports.is_none())
    })
    .await;
    assert!(sys.status.unwrap().endpoints.is_empty());

    // Drift: someone edits the image with another field manager → restored.
    let drift = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "web", "image": "evil:latest" }] } } } });
    deployments
        .patch(
            "app",
            &PatchParams {
                field_manager: Some("intruder".into()),
                ..Default::default()
            },
            &Patch::Strategic(&drift),
        )
        .await
        .unwrap();
    let restored = eventually(WAIT, || async {
        let d = deployments.get("app").await.ok()?;
        image_and_env(&d).filter(|(i, _)| i == "nginx:1.28")
    })
    .await;
    assert!(restored.is_some(), "drifted image restored");
    wait_event(&c, "app", "DriftCorrected").await;

    // A deleted child is recreated.
    let old_uid = deployments.get("app").await.unwrap().uid();
    deployments
        .delete("app", &DeleteParams::background())
        .await
        .unwrap();
    let recreated = eventually(WAIT, || async {
        deployments
            .get_opt("app")
            .await
            .ok()
            .flatten()
            .filter(|d| d.uid() != old_uid && d.metadata.deletion_timestamp.is_none())
    })
    .await;
    assert!(recreated.is_some(), "deleted Deployment restored");

    ctrl.stop().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_system_costs_no_api_calls() {
    let c = TestCluster::start().await;
    // Reconcile every second even without changes, to measure what an unchanged reconcile costs.
    let ctrl = c
        .run_controller(|cfg| cfg.resync = Duration::from_secs(1))
        .await;
    let systems: Api<System> = c.api();
    apply(&systems, &system("quiet").spec(nginx_spec()).build()).await;
    wait_system(&systems, "quiet", "phase Ready", |s| {
        phase(s) == Some(Phase::Ready)
    })
    .await;
    // Settled, by the controller's own counters: two reconciles in a row that wrote nothing (the follow-ups
    // set off by its own status write are over).
    let counters = || async {
        Some((
            ctrl.metric("tycho_reconciles_total").await?,
            ctrl.metric("tycho_api_writes_total").await?,
        ))
    };
    let settled = eventually(WAIT, || async {
        let (r0, w0) = counters().await?;
        let (r1, w1) = eventually(WAIT, || async {
            counters().await.filter(|(r, _)| *r >= r0 + 2.0)
        })
        .await?;
        (w1 == w0).then_some(r1)
    })
    .await;
    assert!(
        settled.is_some(),
        "never two reconciles in a row without a write: {:?}",
        counters().await
    );

    let before = ctrl.metric("tycho_reconciles_total").await.unwrap();
    c.clear_requests();
    // Three resync reconciles (one a second) observed by the controller's own counter.
    let after = eventually(WAIT, || async {
        ctrl.metric("tycho_reconciles_total")
            .await
            .filter(|a| *a >= before + 3.0)
    })
    .await
    .unwrap_or_else(|| panic!("fewer than 3 resync reconciles within {WAIT:?}"));
    let reconciles = after - before;

    if let Some(requests) = c.controller_requests() {
        let writes: Vec<_> = requests.iter().filter(|r| is_write(r)).collect();
        assert!(
            writes.is_empty(),
            "an unchanged System must cost no writes; got {:?}",
            writes
                .iter()
                .map(|r| format!("{} {}", r.verb, r.path))
                .collect::<Vec<_>>()
        );
        // Reads come from the watch caches: no GET or LIST at all. The one exception is the node
        // address for endpoint URLs, looked up at most once a minute for all Systems (not per System).
        let reads: Vec<_> = requests
            .iter()
            .filter(|r| !is_write(r) && r.verb != "watch" && r.resource != "nodes")
            .collect();
        eprintln!(
            "MEASURE unchanged reconcile: {reconciles} reconciles, {} writes, {} reads",
            writes.len(),
            reads.len(),
        );
        assert!(
            reads.is_empty(),
            "an unchanged System's reconcile must read from the caches, not the API server; got {:?}",
            reads
                .iter()
                .map(|r| format!("{} {}", r.verb, r.path))
                .collect::<Vec<_>>()
        );
        // The same filter sees the controller's writes when there is something to write: a deleted
        // Service is recreated, and the log shows it.
        c.clear_requests();
        c.api::<Service>()
            .delete("quiet", &DeleteParams::background())
            .await
            .expect("delete the Service");
        let rewritten = eventually(WAIT, || async {
            c.controller_requests()?
                .iter()
                .any(|r| is_write(r) && r.resource == "services" && r.code < 300)
                .then_some(())
        })
        .await;
        assert!(
            rewritten.is_some(),
            "the request log (filtered by the controller's User-Agent) never showed the Service's re-creation: {:?}",
            c.controller_requests()
                .unwrap_or_default()
                .iter()
                .map(|r| format!("{} {} {}", r.verb, r.path, r.code))
                .collect::<Vec<_>>()
        );
    } else {
        common::skip(
            "unchanged_system_costs_no_api_calls",
            "counting the controller's writes needs a request log (the emulator's, or a real server's audit log)",
        );
    }
    assert_eq!(
        ctrl.metric("tycho_api_writes_total").await.map(|w| w > 0.0),
        Some(true)
    );
    ctrl.stop().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_pod_is_replaced_only_when_its_spec_changes() {
    let c = TestCluster::start().await;
    let ctrl = c.run_controller(|_| {}).await;
    let systems: Api<System> = c.api();
    let pods: Api<Pod> = c.api();
    let mut spec = nginx_spec();
    spec["workload"] = json!("Pod");
    apply(&systems, &system("solo").spec(spec.clone()).build()).await;
    let sys = wait_system(&systems, "solo", "phase Ready", |s| {
        phase(s) == Some(Phase::Ready)
    })
    .await;
    let pod = pods.get("solo").await.unwrap();
    assert!(owned_by(&pod.metadata, &sys));
    assert!(pod.annotations().contains_key("tycho.dev/spec-hash"));
    assert!(
        c.api::<Deployment>()
            .get_opt("solo")
            .await
            .unwrap()
            .is_none()
    );
    let first_uid = pod.uid();

    // Labels only: updated in place.
    spec["labels"] = json!({ "team": "blue" });
    apply(&systems, &system("solo").spec(spec.clone()).build()).await;
    let relabelled = eventually(WAIT, || async {
        let p = pods.get_opt("solo").await.ok().flatten()?;
        (p.labels().get("team").map(String::as_str) == Some("blue")).then_some(p)
    })
    .await
    .expect("pod relabelled");
    assert_eq!(
        relabelled.uid(),
        first_uid,
        "a label change does not replace the Pod"
    );

    // Image change: replaced.
    spec["containers"][0]["image"] = json!("nginx:1.28");
    apply(&systems, &system("solo").spec(spec.clone()).build()).await;
    let replaced = eventually(WAIT, || async {
        let p = pods.get_opt("solo").await.ok().flatten()?;
        let image = p.spec.as_ref()?.containers.first()?.image.clone()?;
        (image == "nginx:1.28" && p.uid() != first_uid).then_some(p)
    })
    .await;
    assert!(replaced.is_some(), "Pod replaced with the new image");
    wait_event(&c, "solo", "Replaced").await;
    wait_system(&systems, "solo", "Ready again", |s| {
        phase(s) == Some(Phase::Ready)
    })
    .await;

    // Switching to a Deployment prunes the bare Pod.
    spec["workload"] = json!("Deployment");
    apply(&systems, &system("solo").spec(spec).build()).await;
    let dep = eventually(WAIT, || async {
        c.api::<Deployment>().get_opt("solo").await.ok().flatten()
    })
    .await;
    assert!(dep.is_some());
    assert!(gone(&pods, "solo").await, "bare Pod pruned");

    ctrl.stop().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_spec_and_missing_claim_become_conditions_and_warnings() {
    let c = TestCluster::start().await;
    let ctrl = c.run_controller(|_| {}).await;
    let systems: Api<System> = c.api();

    // A missing claim: Failed, no children, Warning naming the field; the claim's creation starts it.
    let mut spec = nginx_spec();
    spec["volumes"] = json!([{ "claim": "data", "mountPath": "/data" }]);
    apply(&systems, &system("needs-data").spec(spec).build()).await;
    let sys = wait_system(&systems, "needs-data", "phase Failed", |s| {
        phase(s) == Some(Phase::Failed)
    })
    .await;
    let degraded = condition(&sys, "Degraded").unwrap();
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "MissingClaim")
    );
    assert!(
        degraded.message.contains("spec.volumes[0].claim"),
        "{}",
        degraded.message
    );
    wait_event(&c, "needs-data", "MissingClaim").await;
    assert!(
        c.api::<Deployment>()
            .get_opt("needs-data")
            .await
            .unwrap()
            .is_none()
    );

    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": { "name": "data" },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } }
    }))
    .unwrap();
    c.api::<PersistentVolumeClaim>()
        .create(&PostParams::default(), &pvc)
        .await
        .unwrap();
    let dep = eventually(WAIT, || async {
        c.api::<Deployment>()
            .get_opt("needs-data")
            .await
            .ok()
            .flatten()
    })
    .await;
    assert!(dep.is_some(), "created once the claim exists");

    // An annotation key the API server would reject on the children: caught by validation, named.
    let mut spec = nginx_spec();
    spec["annotations"] = json!({ "not a valid key!": "x" });
    apply(&systems, &system("bad-key").spec(spec).build()).await;
    let sys = wait_system(&systems, "bad-key", "phase Failed", |s| {
        phase(s) == Some(Phase::Failed)
    })
    .await;
    let ready = condition(&sys, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "InvalidSpec")
    );
    assert!(
        ready.message.contains("spec.annotations"),
        "{}",
        ready.message
    );
    wait_event(&c, "bad-key", "InvalidSpec").await;
    assert!(
        c.api::<Deployment>()
            .get_opt("bad-key")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        ctrl.metric("tycho_reconcile_errors_total{reason=\"InvalidSpec\"}")
            .await
            .unwrap_or(0.0)
            >= 1.0
    );

    ctrl.stop().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_wide_controller_reconciles_any_namespace() {
    let c = TestCluster::start().await;
    if c.skip_unless_emulator(
        "cluster_wide_controller_reconciles_any_namespace",
        "a cluster-wide controller (it would touch Systems of other users of a shared cluster)",
    ) {
        c.cleanup().await;
        return;
    }
    let ctrl = c.run_controller(|cfg| cfg.namespaces.clear()).await;
    let systems: Api<System> = c.api();
    apply(&systems, &system("wide").spec(nginx_spec()).build()).await;
    let sys = wait_system(&systems, "wide", "phase Ready", |s| {
        phase(s) == Some(Phase::Ready)
    })
    .await;
    assert!(owned_by(
        &c.api::<Deployment>().get("wide").await.unwrap().metadata,
        &sys
    ));
    ctrl.stop().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_without_the_crd_and_stops_promptly() {
    let c = TestCluster::start_bare(tycho_emulator::EmulatorConfig::default()).await;
    if c.skip_unless_emulator(
        "not_ready_without_the_crd_and_stops_promptly",
        "a cluster without the System CRD (a shared cluster has it installed by other tests)",
    ) {
        c.cleanup().await;
        return;
    }
    let ctrl = c.run_controller(|_| {}).await;
    let up = eventually(Duration::from_secs(10), || async {
        ctrl.http_get("/healthz").await.filter(|r| r.0 == 200)
    })
    .await;
    assert!(up.is_some(), "/healthz answers while the CRD is missing");
    assert_eq!(ctrl.http_get("/readyz").await.map(|r| r.0), Some(503));
    c.install_crd().await;
    let ready = eventually(Duration::from_secs(20), || async {
        ctrl.http_get("/readyz").await.filter(|r| r.0 == 200)
    })
    .await;
    assert!(ready.is_some(), "ready once the CRD is served");
    let t = std::time::Instant::now();
    ctrl.stop().await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "graceful stop took {:?}",
        t.elapsed()
    );
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_template_crd_is_served() {
    // Helm installs crds/ only on install: an upgraded operator can meet a cluster with the System CRD
    // but not the SystemTemplate CRD it also watches.
    let c = TestCluster::start_bare(tycho_emulator::EmulatorConfig::default()).await;
    if c.skip_unless_emulator(
        "not_ready_until_the_template_crd_is_served",
        "a cluster without the SystemTemplate CRD (a shared cluster has it installed by other tests)",
    ) {
        c.cleanup().await;
        return;
    }
    c.install_crd_files(&["tycho.dev_systems.yaml"]).await;
    let ctrl = c.run_controller(|_| {}).await;
    let up = eventually(Duration::from_secs(10), || async {
        ctrl.http_get("/healthz").await.filter(|r| r.0 == 200)
    })
    .await;
    assert!(up.is_some(), "/healthz answers while a CRD is missing");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        ctrl.http_get("/readyz").await.map(|r| r.0),
        Some(503),
        "not ready without the SystemTemplate CRD"
    );
    c.install_crd_files(&["tycho.dev_systemtemplates.yaml"])
        .await;
    let ready = eventually(Duration::from_secs(20), || async {
        ctrl.http_get("/readyz").await.filter(|r| r.0 == 200)
    })
    .await;
    assert!(
        ready.is_some(),
        "ready once the SystemTemplate CRD is served"
    );
    ctrl.stop().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_api_errors_back_off_and_recover() {
    let c = TestCluster::start().await;
    let Some(emu) = &c.emulator else {
        common::skip(
            "transient_api_errors_back_off_and_recover",
            "fault injection (500s and Retry-After) needs the API emulator",
        );
        c.cleanup().await;
        return;
    };
    let faults = emu.faults();
    faults.add_error_rule(tycho_emulator::ErrorRule {
        verb: Some("patch".into()),
        resource: Some("deployments".into()),
        rate: 1.0,
        code: 500,
        retry_after_seconds: 1,
    });
    let ctrl = c
        .run_controller(|cfg| {
            cfg.backoff = tycho_operator::controller::backoff::BackoffPolicy {
                base: Duration::from_millis(200),
                cap: Duration::from_secs(2),
            }
        })
        .await;
    let systems: Api<System> = c.api();
    apply(&systems, &system("flaky").spec(nginx_spec()).build()).await;
    let failing = eventually(WAIT, || async {
        ctrl.metric("tycho_reconcile_errors_total{reason=\"ApplyFailed\"}")
            .await
            .filter(|n| *n >= 3.0)
    })
    .await;
    assert!(failing.is_some(), "retried with backoff");
    wait_event(&c, "flaky", "ApplyFailed").await;
    assert!(
        c.api::<Deployment>()
            .get_opt("flaky")
            .await
            .unwrap()
            .is_none()
    );
    // Backoff, not a hot loop: 3 s of failures at most a handful of attempts.
    let before = ctrl
        .metric("tycho_reconcile_errors_total{reason=\"ApplyFailed\"}")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = ctrl
        .metric("tycho_reconcile_errors_total{reason=\"ApplyFailed\"}")
        .await
        .unwrap();
    assert!(after - before <= 6.0, "{} attempts in 3 s", after - before);

    faults.clear();
    wait_system(&systems, "flaky", "phase Ready after recovery", |s| {
        phase(s) == Some(Phase::Ready)
    })
    .await;
    ctrl.stop().await;
    c.cleanup().await;
}

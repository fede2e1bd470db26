//! End to end: the `tycho controller` process started with the arguments the Helm chart renders (its
//! Deployment's `args`, `$(POD_NAME)`/`$(POD_NAMESPACE)` expanded as the kubelet does), against `tycho sim`:
//! - it starts and reconciles with exactly those arguments;
//! - after a full run — every example applied with kubectl, Ready, edits, pruning, a child deleted by hand,
//!   a bare-Pod System replaced, a session Lease that expires, a lifetime that ends, a System deleted, and a
//!   graceful stop — every API call it made, as the emulator's request log (`GET /emulator/v1/requests`)
//!   recorded it, is allowed by the Roles and ClusterRoles the chart renders (tests/chart/snapshots, checked
//!   by tests/chart/rbac.rs). A missing permission fails naming the request.
//!
//! The controller talks to the emulator through a proxy that stamps its own User-Agent on the controller's
//! requests (process::UaProxy), so that the log's requests of this one controller process are those with
//! that agent.
//! Against a real cluster (`TYCHO_TEST_KUBECONFIG`) these tests are skipped: they need the request log.

#[path = "common/fixtures.rs"]
mod fixtures;
#[path = "common/process.rs"]
mod process;

#[path = "chart/rbac.rs"]
mod rbac;

use std::collections::BTreeSet;
use std::time::Duration;

use fixtures::system;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use process::{E2e, WAIT, eventually, repo_path};
use rbac::{Policy, Request, describe};
use serde_json::{Value, json};
use tycho_model::System;

const RELEASE_NS: &str = "tycho-system";
const POD_NAME: &str = "tycho-6d5f7c9b8-x2x4q";

/// The container args of the chart's controller Deployment in a rendered snapshot, with `$(VAR)` expanded
/// from its env the way the kubelet does, and without `--metrics-addr` (the tests pick a free port).
fn chart_args(snapshot: &str) -> Vec<String> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(&rbac::chart_snapshot(snapshot)).unwrap();
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("the chart renders a Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        args.first().map(String::as_str),
        Some("controller"),
        "{args:?}"
    );
    args[1..]
        .iter()
        .filter(|a| !a.starts_with("--metrics-addr"))
        .map(|a| {
            a.replace("$(POD_NAMESPACE)", RELEASE_NS)
                .replace("$(POD_NAME)", POD_NAME)
        })
        .collect()
}

const ENV: &[(&str, &str)] = &[("POD_NAME", POD_NAME), ("POD_NAMESPACE", RELEASE_NS)];

async fn create_namespace(e: &E2e, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
    match Api::<Namespace>::all(e.client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(err) => panic!("namespace {name}: {err}"),
    }
}

async fn create_lease(e: &E2e, name: &str, seconds: i32) {
    let lease: Lease = serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "holderIdentity": "e2e-client",
            "leaseDurationSeconds": seconds,
            "renewTime": MicroTime(Timestamp::now()),
        }
    }))
    .unwrap();
    e.api::<Lease>()
        .create(&PostParams::default(), &lease)
        .await
        .unwrap();
}

async fn wait_phase(e: &E2e, name: &str, phase: &str) {
    let systems: Api<System> = e.api();
    let got = eventually(WAIT, || async {
        let s = systems.get(name).await.ok()?;
        (s.status?.phase?.as_str() == phase).then_some(())
    })
    .await;
    assert!(
        got.is_some(),
        "{name} never {phase}: {:?}",
        systems.get(name).await.ok().and_then(|s| s.status)
    );
}

async fn wait_gone(e: &E2e, name: &str) {
    let systems: Api<System> = e.api();
    let got = eventually(WAIT, || async {
        systems.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(got.is_some(), "{name} was not collected");
}

async fn merge(e: &E2e, name: &str, patch: Value) {
    e.api::<System>()
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

/// Drive the controller through a System's whole life in the test namespace.
async fn full_run(e: &E2e) {
    let examples = repo_path("examples").display().to_string();
    e.kubectl_ok(&["apply", "-f", &examples]).await;
    // The session example waits for its Lease; with it, its bare Pod is created (and stays Pending: the
    // simulated nodes have no GPU, so the System is Degraded).
    create_lease(e, "notebook-session-7f3a", 600).await;
    wait_phase(e, "nginx", "Ready").await;
    wait_phase(e, "scratch", "Degraded").await;
    wait_phase(e, "jupyter", "Ready").await;

    // Edits: scale, drop the files (ConfigMap pruned), later stop exposing the port (Service deleted).
    merge(e, "nginx", json!({ "spec": { "replicas": 2 } })).await;
    let nginx: System = e.api::<System>().get("nginx").await.unwrap();
    let mut containers = serde_json::to_value(&nginx.spec.containers).unwrap();
    containers[0].as_object_mut().unwrap().remove("files");
    merge(e, "nginx", json!({ "spec": { "containers": containers } })).await;
    let cm_gone = eventually(WAIT, || async {
        e.api::<k8s_openapi::api::core::v1::ConfigMap>()
            .get_opt("nginx-files")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert!(cm_gone.is_some(), "the files ConfigMap was not pruned");
    wait_phase(e, "nginx", "Ready").await;

    // Drift: a Deployment deleted by hand comes back.
    e.kubectl_ok(&["delete", "deployment", "nginx"]).await;
    let back = eventually(WAIT, || async {
        let d = e.api::<Deployment>().get_opt("nginx").await.ok()??;
        d.metadata.deletion_timestamp.is_none().then_some(())
    })
    .await;
    assert!(back.is_some(), "the Deployment did not come back");

    // A bare-Pod System whose spec changes: the Pod is replaced.
    let old_pod = e.api::<Pod>().get("scratch").await.unwrap().metadata.uid;
    let scratch: System = e.api::<System>().get("scratch").await.unwrap();
    let mut containers = serde_json::to_value(&scratch.spec.containers).unwrap();
    containers[0]["image"] = json!("python:3.13-alpine");
    merge(
        e,
        "scratch",
        json!({ "spec": { "containers": containers } }),
    )
    .await;
    let replaced = eventually(WAIT, || async {
        let p = e.api::<Pod>().get_opt("scratch").await.ok()??;
        (p.metadata.uid != old_pod && p.metadata.deletion_timestamp.is_none()).then_some(())
    })
    .await;
    assert!(replaced.is_some(), "the scratch Pod was not replaced");

    // Nothing exposed: the Service goes.
    let nginx: System = e.api::<System>().get("nginx").await.unwrap();
    let mut containers = serde_json::to_value(&nginx.spec.containers).unwrap();
    containers[0]["ports"][0]["expose"] = json!(false);
    merge(e, "nginx", json!({ "spec": { "containers": containers } })).await;
    let svc_gone = eventually(WAIT, || async {
        e.api::<Service>()
            .get_opt("nginx")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert!(svc_gone.is_some(), "the Service was not deleted");

    // A session that is never renewed (the controller deletes its Systems and the Lease), a deleted
    // session Lease, and a lifetime that ends.
    create_lease(e, "short", 2).await;
    let sleeper = json!({ "name": "c", "image": "busybox:1.37", "sleep": true });
    let short = system("short").container(sleeper.clone()).session("short");
    e.api::<System>()
        .create(&PostParams::default(), &short.build())
        .await
        .unwrap();
    let brief = system("brief").container(sleeper).lifetime(3).build();
    e.api::<System>()
        .create(&PostParams::default(), &brief)
        .await
        .unwrap();
    wait_gone(e, "short").await;
    wait_gone(e, "brief").await;
    e.api::<Lease>()
        .delete("notebook-session-7f3a", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(e, "scratch").await;

    // kubectl delete of a System.
    e.kubectl_ok(&["delete", "system", "two-containers"]).await;
    wait_phase(e, "nginx", "Ready").await;
}

/// The distinct resource requests of the controller in the request log.
async fn controller_calls(e: &E2e) -> Vec<Request> {
    let records: Vec<tycho_emulator::RequestRecord> = e
        .controller_requests()
        .await
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("a request record"))
        .collect();
    let set: BTreeSet<Request> = records
        .iter()
        .flat_map(rbac::authorizations)
        .filter(Request::is_resource)
        .collect();
    set.into_iter().collect()
}

fn summary(calls: &[Request]) -> String {
    let set: BTreeSet<String> = calls
        .iter()
        .map(|r| {
            let sub = if r.subresource.is_empty() {
                String::new()
            } else {
                format!("/{}", r.subresource)
            };
            let scope = if r.namespace.is_empty() {
                "cluster"
            } else if r.namespace == RELEASE_NS {
                "release ns"
            } else {
                "namespaced"
            };
            let group = if r.api_group.is_empty() {
                "core"
            } else {
                &r.api_group
            };
            format!("{} {group}/{}{sub} ({scope})", r.verb, r.resource)
        })
        .collect();
    set.into_iter().collect::<Vec<_>>().join("\n  ")
}

/// The manifests with `resource` removed from every RBAC rule (as JSON documents, which are YAML).
fn without_resource(manifests: &str, resource: &str) -> String {
    let docs: Vec<Value> = serde_saphyr::from_multiple(manifests).unwrap();
    docs.into_iter()
        .filter(|d| d.is_object())
        .map(|mut d| {
            if let Some(rules) = d["rules"].as_array_mut() {
                for rule in rules {
                    if let Some(resources) = rule["resources"].as_array_mut() {
                        resources.retain(|r| r != resource);
                    }
                }
            }
            format!("---\n{d}\n")
        })
        .collect()
}

/// Flags `tycho controller` accepts, from its `--help`.
fn accepted_flags() -> BTreeSet<String> {
    let out = std::process::Command::new(process::tycho_bin())
        .args(["controller", "--help"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[' || c == '<')
        .filter(|w| w.starts_with("--"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_runs_with_the_arguments_the_chart_renders() {
    let mut e = E2e::start().await;
    if e.skip_unless_emulator(
        "the_controller_runs_with_the_arguments_the_chart_renders",
        "a controller in the chart's release namespace (tycho-system, shared on a real cluster; tests/e2e_helm.rs runs the chart's args there)",
    ) {
        return;
    }
    create_namespace(&e, RELEASE_NS).await;
    let args = chart_args("default");
    let kubeconfig = e.kubeconfig.clone();
    let started = e.spawn_controller(&kubeconfig, &args, ENV).await;
    let _c = started.unwrap_or_else(|log| {
        panic!(
            "`tycho controller {}` (the chart's Deployment args) does not start:\n{log}",
            args.join(" ")
        )
    });
    let nginx = repo_path("examples/nginx.yaml").display().to_string();
    e.kubectl_ok(&["apply", "-f", &nginx]).await;
    wait_phase(&e, "nginx", "Ready").await;
    e.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_of_the_controller_process_is_allowed_by_the_chart_rbac() {
    let mut e = E2e::start().await;
    if e.skip_unless_emulator(
        "every_call_of_the_controller_process_is_allowed_by_the_chart_rbac",
        "the RBAC check reads the emulator's request log (tests/e2e_helm.rs has the real authorizer judge the chart's RBAC)",
    ) {
        return;
    }
    create_namespace(&e, RELEASE_NS).await;
    // The chart's own arguments (cluster-wide by default), minus any flag this binary does not accept:
    // the_controller_runs_with_the_arguments_the_chart_renders fails for those.
    let accepted = accepted_flags();
    let (args, dropped): (Vec<String>, Vec<String>) = chart_args("default")
        .into_iter()
        .partition(|a| accepted.contains(a.split('=').next().unwrap_or_default()));
    if !dropped.is_empty() {
        eprintln!(
            "NOTE: `tycho controller` does not accept the chart's {dropped:?}; running without them"
        );
    }
    let mut c = e
        .spawn_tagged_controller(&args, ENV)
        .await
        .unwrap_or_else(|log| panic!("tycho controller {args:?} does not start:\n{log}"));
    full_run(&e).await;
    // A graceful stop (SIGTERM), as when Kubernetes stops the pod: what it does on the way out counts too.
    let clean = c.guard.terminate(Duration::from_secs(30));
    assert!(
        clean,
        "the controller did not stop cleanly on SIGTERM:\n{}",
        c.guard.log()
    );

    let calls = controller_calls(&e).await;
    eprintln!("controller calls:\n  {}", summary(&calls));
    // The run went through the paths that matter (so that the check below cannot pass vacuously).
    for (verb, resource, sub) in [
        ("watch", "systems", ""),
        ("patch", "systems", "status"),
        ("patch", "deployments", ""),
        ("patch", "services", ""),
        ("patch", "configmaps", ""),
        ("delete", "configmaps", ""),
        ("delete", "services", ""),
        ("delete", "pods", ""),
        ("delete", "systems", ""),
        ("create", "events", ""),
    ] {
        assert!(
            calls
                .iter()
                .any(|r| r.verb == verb && r.resource == resource && r.subresource == sub),
            "the controller never made a `{verb} {resource}{}` call; calls:\n  {}",
            if sub.is_empty() {
                String::new()
            } else {
                format!("/{sub}")
            },
            summary(&calls)
        );
    }
    // The check names a missing permission: the same calls against the chart without `systems/status`.
    let without_status = without_resource(&rbac::chart_snapshot("default"), "systems/status");
    let crippled = Policy::for_service_account(&without_status, RELEASE_NS, "tycho");
    let message = describe(&crippled.denied(calls.clone()));
    assert!(
        message.contains("patch tycho.dev/systems/status"),
        "a chart without systems/status must be reported: {message}"
    );

    let policy = Policy::for_service_account(&rbac::chart_snapshot("default"), RELEASE_NS, "tycho");
    let denied = policy.denied(calls);
    assert!(
        denied.is_empty(),
        "the chart's RBAC (charts/tycho, rendered in tests/chart/snapshots/default.yaml) does not allow these \
         calls of `tycho controller`:\n{}",
        describe(&denied)
    );
    e.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_of_a_namespaced_controller_is_allowed_by_the_namespaced_chart_rbac() {
    // tests/chart/values/namespaced.yaml: watchNamespaces team-a and team-b (Roles there, no ClusterRole for
    // Systems or their children), rbac.readNodes false, no leader election.
    let mut e = E2e::start_in("team-a").await;
    if e.skip_unless_emulator(
        "every_call_of_a_namespaced_controller_is_allowed_by_the_namespaced_chart_rbac",
        "the RBAC check reads the emulator's request log (tests/e2e_helm.rs has the real authorizer judge the chart's RBAC)",
    ) {
        return;
    }
    create_namespace(&e, RELEASE_NS).await;
    create_namespace(&e, "team-b").await;
    create_namespace(&e, "elsewhere").await;
    let args = chart_args("namespaced");
    assert!(args.contains(&"--namespace=team-a".to_string()), "{args:?}");
    let mut c = e
        .spawn_tagged_controller(&args, ENV)
        .await
        .unwrap_or_else(|log| panic!("tycho controller {args:?} does not start:\n{log}"));
    // A System in an unwatched namespace is left alone; one in team-b is reconciled.
    let nginx = repo_path("examples/nginx.yaml").display().to_string();
    e.kubectl_ok_in("elsewhere", &["apply", "-f", &nginx]).await;
    e.kubectl_ok_in("team-b", &["apply", "-f", &nginx]).await;
    full_run(&e).await;
    let team_b: Api<System> = Api::namespaced(e.client.clone(), "team-b");
    let ready = eventually(WAIT, || async {
        (team_b.get("nginx").await.ok()?.status?.phase?.as_str() == "Ready").then_some(())
    })
    .await;
    assert!(ready.is_some(), "team-b/nginx never Ready");
    let elsewhere: Api<System> = Api::namespaced(e.client.clone(), "elsewhere");
    assert!(
        elsewhere.get("nginx").await.unwrap().status.is_none(),
        "a System outside the watched namespaces was reconciled"
    );
    let clean = c.guard.terminate(Duration::from_secs(30));
    assert!(
        clean,
        "the controller did not stop cleanly on SIGTERM:\n{}",
        c.guard.log()
    );

    let calls = controller_calls(&e).await;
    eprintln!("controller calls:\n  {}", summary(&calls));
    assert!(
        calls.iter().all(|r| r.namespace != "elsewhere"),
        "calls in an unwatched namespace: {}",
        summary(
            &calls
                .iter()
                .filter(|r| r.namespace == "elsewhere")
                .cloned()
                .collect::<Vec<_>>()
        )
    );
    let policy =
        Policy::for_service_account(&rbac::chart_snapshot("namespaced"), RELEASE_NS, "tycho");
    // rbac.readNodes=false: the controller's Node list (for endpoint URLs) is refused on a real cluster, which
    // it tolerates (the endpoints get no URL); nothing else may be refused.
    let denied: Vec<Request> = policy
        .denied(calls)
        .into_iter()
        .filter(|r| !(r.verb == "list" && r.resource == "nodes" && r.namespace.is_empty()))
        .collect();
    assert!(
        denied.is_empty(),
        "the namespaced chart's RBAC (tests/chart/snapshots/namespaced.yaml) does not allow these calls of \
         `tycho controller`:\n{}",
        describe(&denied)
    );
    e.cleanup().await;
}

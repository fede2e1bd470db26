//! Installing Tycho exactly as a user does, on a real control plane (`TYCHO_TEST_KUBECONFIG`, e.g. from
//! `hack/cluster.sh up`), with the real `helm`: `helm lint`, `helm template`, `helm install` of
//! charts/tycho (the operator's pod runs on a kwok node, where no container really starts), then the
//! `tycho controller` process authenticated as the chart's ServiceAccount (a token from the TokenRequest
//! API) with the arguments of the Deployment Helm rendered, so that the real RBAC authorizer judges every
//! call the operator makes. The run applies every example with client-side and then server-side apply,
//! edits, a session that expires, a `tycho run` session whose client is killed, and deletes; afterwards the
//! API server's audit log (hack/cluster.sh writes one beside the kubeconfig) must show no call of the
//! ServiceAccount refused, and a call outside the chart's rules must be refused (403). Then `helm upgrade`
//! and `helm uninstall`.
//!
//! On the emulator the test is skipped (it needs a real authorizer and a real `helm`); tests/e2e_rbac.rs
//! checks the same chart RBAC against the emulator's request log.

#[path = "common/audit.rs"]
mod audit;
#[path = "common/fixtures.rs"]
mod fixtures;
#[path = "common/process.rs"]
mod process;
#[path = "chart/rbac.rs"]
mod rbac;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fixtures::system;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use process::{E2e, KUBECONFIG_ENV, WAIT, eventually, repo_path, skip, tycho_bin};
use serde_json::{Value, json};
use tycho_emulator::RequestRecord;
use tycho_model::System;

/// Run a command; (success, stdout, stderr).
fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn helm(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    run(Command::new("helm")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args))
}

fn helm_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let (ok, out, err) = helm(kubeconfig, args);
    assert!(ok, "helm {}: {err}\n{out}", args.join(" "));
    out
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    run(Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args))
}

fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let (ok, out, err) = kubectl(kubeconfig, args);
    assert!(ok, "kubectl {}: {err}\n{out}", args.join(" "));
    out
}

/// The controller Deployment's container args in `helm template` output, `$(VAR)` expanded from `env`.
fn deployment_args(manifests: &str, env: &[(&str, &str)]) -> Vec<String> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(manifests).expect("helm template output");
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("the chart renders a Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("the container has args")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    assert_eq!(args.first().map(String::as_str), Some("controller"));
    args[1..]
        .iter()
        .filter(|a| !a.starts_with("--metrics-addr"))
        .map(|a| {
            env.iter()
                .fold(a.clone(), |a, (k, v)| a.replace(&format!("$({k})"), v))
        })
        .collect()
}

/// A kubeconfig for `token` on the cluster of `admin` (same server and CA).
fn token_kubeconfig(admin: &Path, token: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(admin).expect("read the admin kubeconfig");
    let admin: Value = serde_saphyr::from_str(&text).expect("a kubeconfig");
    let cluster = admin["clusters"][0]["cluster"].clone();
    let kc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{ "name": "c", "cluster": cluster }],
        "users": [{ "name": "sa", "user": { "token": token } }],
        "contexts": [{ "name": "sa", "context": { "cluster": "c", "user": "sa" } }],
        "current-context": "sa",
    });
    let path = dir.join("serviceaccount.kubeconfig");
    std::fs::write(&path, kc.to_string()).expect("write the ServiceAccount's kubeconfig");
    path
}

/// Uninstalls the release when the test ends, also when it fails (its cluster-scoped RBAC objects would
/// otherwise stay behind on a shared cluster). After a successful `helm uninstall` this finds nothing.
struct Uninstall {
    kubeconfig: PathBuf,
    release: String,
    namespace: String,
}

impl Drop for Uninstall {
    fn drop(&mut self) {
        let _ = helm(
            &self.kubeconfig,
            &[
                "uninstall",
                &self.release,
                "-n",
                &self.namespace,
                "--ignore-not-found",
            ],
        );
    }
}

/// One API call of the audit log, as a line of the report.
fn describe(r: &RequestRecord) -> String {
    let group = if r.api_group.is_empty() {
        "core"
    } else {
        &r.api_group
    };
    let sub = if r.subresource.is_empty() {
        String::new()
    } else {
        format!("/{}", r.subresource)
    };
    let ns = if r.namespace.is_empty() {
        "cluster"
    } else {
        &r.namespace
    };
    format!(
        "{} {group}/{}{sub} ({ns}) -> {}",
        r.verb, r.resource, r.code
    )
}

async fn wait_phase(systems: &Api<System>, name: &str, phase: &str) {
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

async fn wait_gone<K>(api: &Api<K>, name: &str, what: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let got = eventually(WAIT, || async {
        api.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(got.is_some(), "{what} {name} was not deleted");
}

async fn create_lease(e: &E2e, name: &str, seconds: i32) {
    let lease: Lease = serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "holderIdentity": "e2e-helm",
            "leaseDurationSeconds": seconds,
            "renewTime": MicroTime(Timestamp::now()),
        }
    }))
    .expect("a Lease");
    e.api::<Lease>()
        .create(&PostParams::default(), &lease)
        .await
        .expect("create a Lease");
}

/// The operator's life on the cluster, as the chart's ServiceAccount: examples applied client-side and
/// server-side, an edit, a session that expires, a killed `tycho run` client, a delete.
async fn operator_run(e: &E2e) {
    let examples = repo_path("examples").display().to_string();
    let systems: Api<System> = e.api();
    // The claims the RStudio and two-container examples mount (their comments ask for them first); the
    // cluster's default StorageClass provisions them.
    for claim in ["rstudio-home", "shared-html"] {
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": { "name": claim },
            "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } }
        }))
        .expect("a claim");
        e.api::<PersistentVolumeClaim>()
            .create(&PostParams::default(), &pvc)
            .await
            .expect("create a claim");
    }
    e.kubectl_ok(&["apply", "-f", &examples]).await;
    create_lease(e, "notebook-session-7f3a", 600).await;
    for name in ["nginx", "jupyter", "rstudio", "two-containers"] {
        wait_phase(&systems, name, "Ready").await;
    }
    // kwok's nodes advertise no GPU: the session example's Pod stays Pending.
    wait_phase(&systems, "scratch", "Degraded").await;
    // The same files with server-side apply: kubectl takes the fields over without a conflict.
    e.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=e2e-helm",
        "-f",
        &examples,
    ])
    .await;
    // An edit: two replicas.
    systems
        .patch(
            "nginx",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 2 } })),
        )
        .await
        .expect("scale nginx");
    let deployments: Api<Deployment> = e.api();
    let scaled = eventually(WAIT, || async {
        let d = deployments.get("nginx").await.ok()?;
        (d.status?.ready_replicas? == 2).then_some(())
    })
    .await;
    assert!(scaled.is_some(), "nginx never had 2 ready replicas");
    wait_phase(&systems, "nginx", "Ready").await;

    // A session that is never renewed: the controller deletes its System, the real garbage collector the
    // children.
    create_lease(e, "short", 2).await;
    let short = system("short")
        .container(json!({ "name": "c", "image": "busybox:1.37", "sleep": true }))
        .session("short")
        .build();
    systems
        .create(&PostParams::default(), &short)
        .await
        .expect("create System short");
    wait_gone(&systems, "short", "System").await;
    wait_gone(&e.api::<Lease>(), "short", "Lease").await;
    wait_gone(&deployments, "short", "Deployment").await;

    // `tycho run` opens its own session; its client is killed, so the session expires and is collected.
    let state = e.dir.path().join("run-state.json");
    let mut child = tokio::process::Command::new(tycho_bin())
        .arg("run")
        .arg("--kubeconfig")
        .arg(&e.kubeconfig)
        .args(["-n", &e.namespace, "--lease-duration", "3s", "--json"])
        .arg(&state)
        .args(["--sleep", "busybox:1.37"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start tycho run");
    let started = eventually(WAIT, || async {
        let text = std::fs::read_to_string(&state).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v["system"].as_str().map(str::to_string)
    })
    .await;
    let Some(name) = started else {
        let _ = child.kill().await;
        panic!("tycho run never wrote its state file");
    };
    wait_phase(&systems, &name, "Ready").await;
    child.kill().await.expect("kill tycho run");
    wait_gone(&systems, &name, "System").await;
    wait_gone(&deployments, &name, "Deployment").await;

    // kubectl delete: the garbage collector removes the children.
    e.kubectl_ok(&["delete", "system", "two-containers"]).await;
    wait_gone(&deployments, "two-containers", "Deployment").await;
    wait_phase(&systems, "nginx", "Ready").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_the_chart_and_the_real_authorizer_allows_every_operator_call() {
    let test = "helm_installs_the_chart_and_the_real_authorizer_allows_every_operator_call";
    if std::env::var(KUBECONFIG_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .is_none()
    {
        skip(
            test,
            "needs a real API server and helm (hack/cluster.sh up)",
        );
        return;
    }
    let (helm_found, _, _) = run(Command::new("helm").arg("version"));
    assert!(
        helm_found,
        "helm is not on PATH: `eval \"$(hack/cluster.sh up)\"` puts the one built from hack/cluster/go.mod there"
    );
    let e = E2e::start_bare().await;
    let admin = e.kubeconfig.clone();
    let audit_log = admin.with_file_name("audit.log");
    assert!(
        audit_log.exists(),
        "no audit log beside {} (hack/cluster.sh writes one unless TYCHO_CLUSTER_AUDIT=0)",
        admin.display()
    );
    let release_ns = format!("{}-tycho", e.namespace);
    // A release name of its own: its ClusterRole and ClusterRoleBinding are cluster-scoped (the chart names
    // them, the ServiceAccount and the leader-election Lease after the release when it contains "tycho").
    let release = format!("tycho-{}", e.namespace.trim_start_matches("tycho-e2e-"));
    let _uninstall = Uninstall {
        kubeconfig: e.kubeconfig.clone(),
        release: release.clone(),
        namespace: release_ns.clone(),
    };
    let chart = repo_path("charts/tycho").display().to_string();
    let values = [
        "--set".to_string(),
        format!("watchNamespaces={{{}}}", e.namespace),
    ];
    let values: Vec<&str> = values.iter().map(String::as_str).collect();

    let lint = helm_ok(&admin, &["lint", &chart]);
    assert!(lint.contains("0 chart(s) failed"), "{lint}");
    let mut template = vec!["template", &release, &chart, "-n", &release_ns];
    template.extend(&values);
    let manifests = helm_ok(&admin, &template);

    let mut install = vec![
        "install",
        &release,
        &chart,
        "-n",
        &release_ns,
        "--create-namespace",
        "--wait",
        "--timeout",
        "180s",
    ];
    install.extend(&values);
    helm_ok(&admin, &install);
    let status = helm_ok(&admin, &["status", &release, "-n", &release_ns]);
    assert!(status.contains("STATUS: deployed"), "{status}");
    e.wait_crd().await;

    // The operator as the chart's ServiceAccount, with the arguments Helm rendered for its Deployment.
    let sa = release.as_str();
    let token = kubectl_ok(
        &admin,
        &["create", "token", sa, "-n", &release_ns, "--duration=2h"],
    );
    let sa_kubeconfig = token_kubeconfig(&admin, token.trim(), e.dir.path());
    let pod_name = "tycho-0123456789-abcde";
    let env = [
        ("POD_NAME", pod_name),
        ("POD_NAMESPACE", release_ns.as_str()),
    ];
    let args = deployment_args(&manifests, &env);
    assert!(
        args.iter()
            .any(|a| a == &format!("--namespace={}", e.namespace)),
        "{args:?}"
    );
    let mut e = e;
    let mut controller = e
        .spawn_controller(&sa_kubeconfig, &args, &env)
        .await
        .unwrap_or_else(|log| panic!("tycho controller {args:?} as the ServiceAccount:\n{log}"));
    operator_run(&e).await;
    let clean = controller.guard.terminate(Duration::from_secs(30));
    assert!(
        clean,
        "the controller did not stop cleanly:\n{}",
        controller.guard.log()
    );

    // A call outside the chart's rules is refused by the real authorizer.
    let (ok, _, err) = kubectl(&sa_kubeconfig, &["get", "secrets", "-n", &e.namespace]);
    assert!(
        !ok && err.contains("Forbidden"),
        "the ServiceAccount may list Secrets: {err}"
    );

    // Every call the operator made, as the audit log recorded it.
    let user = format!("system:serviceaccount:{release_ns}:{sa}");
    let calls = audit::AuditLog::from_start(&audit_log).records_of(&user);
    let distinct: BTreeSet<String> = calls.iter().map(describe).collect();
    eprintln!(
        "calls of {user} ({}):\n  {}",
        calls.len(),
        distinct.iter().cloned().collect::<Vec<_>>().join("\n  ")
    );
    for (verb, resource, sub) in [
        ("watch", "systems", ""),
        ("patch", "systems", "status"),
        ("patch", "deployments", ""),
        ("patch", "services", ""),
        ("patch", "configmaps", ""),
        ("delete", "systems", ""),
        ("create", "events", ""),
        ("update", "leases", ""),
    ] {
        assert!(
            calls.iter().any(|c| c.verb == verb
                && c.resource == resource
                && c.subresource == sub
                && c.code < 300),
            "the audit log shows no successful `{verb} {resource}{sub}` of {user}"
        );
    }
    let refused: Vec<String> = calls
        .iter()
        .filter(|c| c.code == 403 && !(c.resource == "secrets" && c.verb == "list"))
        .map(describe)
        .collect();
    assert!(
        refused.is_empty(),
        "the real authorizer refused calls of the operator (the chart's RBAC is missing rules):\n  {}",
        refused.join("\n  ")
    );
    assert!(
        calls
            .iter()
            .any(|c| c.code == 403 && c.resource == "secrets" && c.verb == "list"),
        "the refused list of Secrets is not in the audit log"
    );

    // The project's own RBAC model (tests/chart/rbac.rs, which judges the emulator's request logs) agrees
    // with the real authorizer on this run: it allows every call the real one allowed.
    let policy = rbac::Policy::for_service_account(&manifests, &release_ns, sa);
    let allowed = calls
        .iter()
        .filter(|c| c.code != 403)
        .flat_map(rbac::authorizations)
        .filter(rbac::Request::is_resource);
    let denied = policy.denied(allowed);
    assert!(
        denied.is_empty(),
        "tests/chart/rbac.rs denies calls the real authorizer allowed:\n{}",
        rbac::describe(&denied)
    );

    // Upgrade and uninstall.
    let mut upgrade = vec![
        "upgrade",
        &release,
        &chart,
        "-n",
        &release_ns,
        "--wait",
        "--timeout",
        "180s",
        "--set",
        "logLevel=debug",
    ];
    upgrade.extend(&values);
    helm_ok(&admin, &upgrade);
    let deployments: Api<Deployment> = Api::namespaced(e.client.clone(), &release_ns);
    let upgraded = deployments
        .list(&ListParams::default())
        .await
        .expect("list the release's Deployments");
    let text = serde_json::to_string(&upgraded.items).unwrap_or_default();
    assert!(
        text.contains("debug"),
        "helm upgrade did not change the Deployment"
    );
    let history = helm_ok(&admin, &["history", &release, "-n", &release_ns]);
    assert!(history.lines().count() >= 3, "{history}");
    helm_ok(
        &admin,
        &["uninstall", &release, "-n", &release_ns, "--wait"],
    );
    let left = deployments
        .list(&ListParams::default())
        .await
        .expect("list the release's Deployments");
    assert!(left.items.is_empty(), "helm uninstall left the Deployment");
    // Helm never deletes what it installed from crds/: the Systems API stays.
    e.wait_crd().await;
    let _ = kubectl(
        &admin,
        &["delete", "namespace", &release_ns, "--wait=false"],
    );
    e.cleanup().await;
}

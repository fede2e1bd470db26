//! The real `kubectl` (1.32, through gcloud's dispatcher) against the emulator: discovery,
//! OpenAPI-v3 field validation, client-side and server-side apply, Table output, watch, patch,
//! delete. Each test names the Kubernetes behaviour it checks.

mod api_common;

use api_common::{Kubectl, WIDGET_CRD, start};

const WIDGET: &str = r#"
apiVersion: test.tycho.dev/v1
kind: Widget
metadata:
  name: w1
  labels: {app: demo}
spec:
  color: red
  size: 5
"#;

/// `/version` selects kubectl 1.32 (the dispatcher runs the binary matching the server minor),
/// and legacy discovery lists the core kinds with short names (`kubectl get cm`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_and_discovery_short_names() {
    let emu = start().await;
    let k = Kubectl::new(&emu);
    let out = k.ok(&["version", "-o", "json"], None).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["serverVersion"]["minor"], "32");
    assert!(
        v["clientVersion"]["gitVersion"]
            .as_str()
            .unwrap()
            .starts_with("v1.32")
    );
    let ns = k.ok(&["get", "ns"], None).await;
    // Aggregated discovery (apidiscovery.k8s.io/v2) was served: no per-group-version requests.
    let paths: Vec<String> = emu.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.iter().any(|p| p == "/apis"), "{paths:?}");
    assert!(
        !paths.iter().any(|p| p == "/api/v1" || p == "/apis/apps/v1"),
        "{paths:?}"
    );
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(n), "{ns}");
    }
    // Imperative generators (`kubectl create configmap`) send protobuf, which the emulator does
    // not decode; `create -f` sends JSON.
    k.ok(
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1}\ndata: {a: \"1\"}\n"),
    )
    .await;
    let cms = k.ok(&["get", "cm"], None).await;
    assert!(cms.contains("c1"), "{cms}");
    assert!(cms.contains("DATA"), "table columns: {cms}");
    emu.shutdown().await;
}

/// CRDs: a CRD's kind is served (and discoverable) the moment the CRD is created; kubectl's
/// default validation (OpenAPI v3 + fieldValidation=Strict) accepts a valid custom resource;
/// `get` prints the CRD's additionalPrinterColumns; `get -o yaml` returns the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_then_custom_resource_client_side_apply() {
    let emu = start().await;
    let k = Kubectl::new(&emu);
    k.ok(&["apply", "-f", "-"], Some(WIDGET_CRD)).await;
    let out = k.ok(&["apply", "-f", "-"], Some(WIDGET)).await;
    assert!(out.contains("widget.test.tycho.dev/w1 created"), "{out}");
    let table = k.ok(&["get", "widgets"], None).await;
    assert!(
        table.contains("COLOR") && table.contains("SIZE") && table.contains("red"),
        "{table}"
    );
    let y = k.ok(&["get", "wdg", "w1", "-o", "yaml"], None).await;
    assert!(
        y.contains("kubectl.kubernetes.io/last-applied-configuration"),
        "{y}"
    );
    // Changed apply goes through a merge patch (custom resources have no strategic merge).
    let changed = WIDGET.replace("color: red", "color: blue");
    let out = k.ok(&["apply", "-f", "-"], Some(&changed)).await;
    assert!(out.contains("configured"), "{out}");
    let unchanged = k.ok(&["apply", "-f", "-"], Some(&changed)).await;
    assert!(unchanged.contains("unchanged"), "{unchanged}");
    let g = k
        .ok(
            &[
                "get",
                "widget",
                "w1",
                "-o",
                "jsonpath={.spec.color}/{.metadata.generation}",
            ],
            None,
        )
        .await;
    assert_eq!(g, "blue/2");
    let out = k.ok(&["delete", "-f", "-"], Some(&changed)).await;
    assert!(out.contains("deleted"), "{out}");
    let o = k.run(&["get", "widget", "w1"], None).await;
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("NotFound") || o.stderr.contains("not found"),
        "{}",
        o.stderr
    );
    emu.shutdown().await;
}

const CORE: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  labels: {a: "1", b: "2"}
data:
  a: "1"
  b: "2"
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 8080}
  - {name: https, port: 443}
  - {name: old, port: 80}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  strategy:
    type: RollingUpdate
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: a
        image: nginx:1
        env: [{name: FOO, value: "1"}, {name: BAR, value: "2"}]
      - name: b
        image: busybox:1
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: lock
spec:
  holderIdentity: me
  leaseDurationSeconds: 15
"#;

/// Client-side apply of core kinds: create, then a changed apply that kubectl sends as a
/// strategic merge patch with `$setElementOrder`, `$patch: delete` and `$retainKeys`
/// directives (merge keys: Service ports by port, containers and env by name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_kinds_client_side_apply_strategic_merge() {
    let emu = start().await;
    let k = Kubectl::new(&emu);
    let out = k.ok(&["apply", "-f", "-"], Some(CORE)).await;
    assert!(
        out.contains("configmap/cfg created") && out.contains("deployment.apps/web created"),
        "{out}"
    );
    let changed = CORE
        .replace("labels: {a: \"1\", b: \"2\"}", "labels: {a: \"1\"}")
        .replace("  b: \"2\"\n", "")
        .replace(
            "  - {name: https, port: 443}\n  - {name: old, port: 80}\n",
            "",
        )
        .replace("    type: RollingUpdate", "    type: Recreate")
        .replace(", {name: BAR, value: \"2\"}", "")
        .replace("      - name: b\n        image: busybox:1\n", "")
        .replace("holderIdentity: me", "holderIdentity: you");
    let out = k.ok(&["apply", "-f", "-"], Some(&changed)).await;
    assert!(
        out.contains("configmap/cfg configured") && out.contains("service/web configured"),
        "{out}"
    );
    let cm = k.ok(&["get", "cm", "cfg", "-o", "json"], None).await;
    let cm: serde_json::Value = serde_json::from_str(&cm).unwrap();
    assert_eq!(cm["data"], serde_json::json!({"a": "1"}));
    assert_eq!(cm["metadata"]["labels"], serde_json::json!({"a": "1"}));
    let svc: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "svc", "web", "-o", "json"], None).await).unwrap();
    let ports: Vec<i64> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, vec![8080]);
    let d: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "deploy", "web", "-o", "json"], None).await).unwrap();
    assert_eq!(
        d["spec"]["strategy"],
        serde_json::json!({"type": "Recreate"})
    );
    let cs = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 1);
    assert_eq!(
        cs[0]["env"],
        serde_json::json!([{"name": "FOO", "value": "1"}])
    );
    assert_eq!(
        k.ok(
            &[
                "get",
                "lease",
                "lock",
                "-o",
                "jsonpath={.spec.holderIdentity}"
            ],
            None
        )
        .await,
        "you"
    );
    let unchanged = k.ok(&["apply", "-f", "-"], Some(&changed)).await;
    assert!(unchanged.contains("configmap/cfg unchanged"), "{unchanged}");
    let out = k.ok(&["delete", "-f", "-"], Some(&changed)).await;
    assert!(out.contains("deployment.apps \"web\" deleted"), "{out}");
    emu.shutdown().await;
}

/// Server-side apply with kubectl (`--server-side`): one apply-patch request creates the object
/// (201) and re-applies update it; a conflicting manager needs `--force-conflicts`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_crd_and_custom_resource() {
    let emu = start().await;
    let k = Kubectl::new(&emu);
    k.ok(&["apply", "--server-side", "-f", "-"], Some(WIDGET_CRD))
        .await;
    let out = k
        .ok(&["apply", "--server-side", "-f", "-"], Some(WIDGET))
        .await;
    assert!(out.contains("serverside-applied"), "{out}");
    let changed = WIDGET.replace("size: 5", "size: 6");
    k.ok(&["apply", "--server-side", "-f", "-"], Some(&changed))
        .await;
    assert_eq!(
        k.ok(
            &["get", "widget", "w1", "-o", "jsonpath={.spec.size}"],
            None
        )
        .await,
        "6"
    );
    let other = WIDGET.replace("size: 5", "size: 9");
    let o = k
        .run(
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "other",
                "-f",
                "-",
            ],
            Some(&other),
        )
        .await;
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("conflict"), "{}", o.stderr);
    k.ok(
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "other",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(&other),
    )
    .await;
    assert_eq!(
        k.ok(
            &["get", "widget", "w1", "-o", "jsonpath={.spec.size}"],
            None
        )
        .await,
        "9"
    );
    // Default validation rejects an unknown field (fieldValidation=Strict from OpenAPI v3).
    let bad = WIDGET.replace("size: 5", "size: 5\n  bogus: 1");
    let o = k
        .run(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(&bad),
        )
        .await;
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("unknown field"), "{}", o.stderr);
    emu.shutdown().await;
}

/// `kubectl get -w` lists then watches from the list's resourceVersion with the Table Accept
/// header; a change appears as a new row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_streams_changes() {
    use tokio::io::AsyncBufReadExt;
    let emu = start().await;
    let k = Kubectl::new(&emu);
    k.ok(&["apply", "-f", "-"], Some(WIDGET_CRD)).await;
    k.ok(&["apply", "-f", "-"], Some(WIDGET)).await;
    let mut child = k.spawn(&["get", "widgets", "-w"]);
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    seen.push(read(&mut lines).await);
    seen.push(read(&mut lines).await);
    assert!(
        seen[0].contains("NAME") && seen[0].contains("COLOR"),
        "{seen:?}"
    );
    assert!(
        seen[1].contains("w1") && seen[1].contains("red"),
        "{seen:?}"
    );
    k.ok(
        &[
            "patch",
            "widget",
            "w1",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"color":"green"}}"#,
        ],
        None,
    )
    .await;
    let l = read(&mut lines).await;
    assert!(l.contains("w1") && l.contains("green"), "{l}");
    child.kill().await.unwrap();
    emu.shutdown().await;
}

/// `kubectl patch` (strategic by default for core kinds, `--type merge|json`), `kubectl create -f`,
/// `get -o yaml`, `delete` of core kinds, and `--dry-run=server`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_create_get_delete_core() {
    let emu = start().await;
    let k = Kubectl::new(&emu);
    k.ok(&["create", "-f", "-"], Some(CORE)).await;
    k.ok(
        &[
            "patch",
            "deploy",
            "web",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"b","image":"busybox:2"}]}}}}"#,
        ],
        None,
    )
    .await;
    let imgs = k
        .ok(
            &[
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.spec.template.spec.containers[*].image}",
            ],
            None,
        )
        .await;
    assert_eq!(imgs, "nginx:1 busybox:2");
    k.ok(
        &[
            "patch",
            "cm",
            "cfg",
            "--type",
            "json",
            "-p",
            r#"[{"op":"add","path":"/data/c","value":"3"}]"#,
        ],
        None,
    )
    .await;
    assert_eq!(
        k.ok(&["get", "cm", "cfg", "-o", "jsonpath={.data.c}"], None)
            .await,
        "3"
    );
    let y = k.ok(&["get", "svc", "web", "-o", "yaml"], None).await;
    assert!(y.contains("clusterIP: 10."), "{y}");
    let table = k.ok(&["get", "deploy,svc"], None).await;
    assert!(
        table.contains("UP-TO-DATE") && table.contains("CLUSTER-IP"),
        "{table}"
    );
    k.ok(&["delete", "cm", "cfg", "--dry-run=server"], None)
        .await;
    k.ok(&["get", "cm", "cfg"], None).await;
    let out = k.ok(&["delete", "cm", "cfg"], None).await;
    assert!(out.contains("deleted"), "{out}");
    let o = k.run(&["delete", "cm", "cfg"], None).await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("NotFound"), "{}", o.stderr);
    emu.shutdown().await;
}

type Lines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

async fn read(lines: &mut Lines) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .expect("a line in time")
        .unwrap()
        .expect("not at end of output")
}

/// kubectl's imperative generators (`create configmap|secret|namespace|serviceaccount|
/// deployment|service`) send protobuf bodies (typed clients): they are decoded and created as
/// the JSON equivalents would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imperative_create_with_protobuf_bodies() {
    let emu = start().await;
    let k = Kubectl::new(&emu);
    k.ok(&["create", "namespace", "team"], None).await;
    k.ok(
        &[
            "-n",
            "team",
            "create",
            "configmap",
            "c1",
            "--from-literal=a=1",
            "--from-literal=b=two",
        ],
        None,
    )
    .await;
    k.ok(
        &[
            "-n",
            "team",
            "create",
            "secret",
            "generic",
            "s1",
            "--from-literal=pw=hunter2",
        ],
        None,
    )
    .await;
    k.ok(&["-n", "team", "create", "serviceaccount", "robot"], None)
        .await;
    k.ok(
        &[
            "-n",
            "team",
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=2",
            "--port=80",
        ],
        None,
    )
    .await;
    k.ok(
        &[
            "-n",
            "team",
            "create",
            "service",
            "nodeport",
            "web",
            "--tcp=80:8080",
        ],
        None,
    )
    .await;
    let cm: serde_json::Value = serde_json::from_str(
        &k.ok(&["-n", "team", "get", "cm", "c1", "-o", "json"], None)
            .await,
    )
    .unwrap();
    assert_eq!(cm["data"], serde_json::json!({"a": "1", "b": "two"}));
    assert_eq!(
        k.ok(
            &[
                "-n",
                "team",
                "get",
                "secret",
                "s1",
                "-o",
                "jsonpath={.data.pw}"
            ],
            None
        )
        .await,
        "aHVudGVyMg=="
    );
    let d: serde_json::Value = serde_json::from_str(
        &k.ok(&["-n", "team", "get", "deploy", "web", "-o", "json"], None)
            .await,
    )
    .unwrap();
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        80
    );
    let s: serde_json::Value = serde_json::from_str(
        &k.ok(&["-n", "team", "get", "svc", "web", "-o", "json"], None)
            .await,
    )
    .unwrap();
    assert_eq!(s["spec"]["type"], "NodePort");
    assert_eq!(s["spec"]["ports"][0]["port"], 80);
    assert_eq!(s["spec"]["ports"][0]["targetPort"], 8080);
    assert!(s["spec"]["ports"][0]["nodePort"].as_i64().unwrap() >= 30000);
    assert!(
        k.ok(&["-n", "team", "get", "sa"], None)
            .await
            .contains("robot")
    );
    // Other everyday commands on the created objects.
    k.ok(
        &[
            "-n",
            "team",
            "expose",
            "deployment",
            "web",
            "--name",
            "web2",
            "--port",
            "81",
            "--target-port",
            "80",
        ],
        None,
    )
    .await;
    k.ok(
        &[
            "-n",
            "team",
            "create",
            "service",
            "clusterip",
            "web3",
            "--tcp=82:80",
        ],
        None,
    )
    .await;
    k.ok(
        &["-n", "team", "scale", "deployment", "web", "--replicas=3"],
        None,
    )
    .await;
    k.ok(
        &[
            "-n",
            "team",
            "set",
            "image",
            "deployment/web",
            "nginx=nginx:1.28",
        ],
        None,
    )
    .await;
    k.ok(
        &["-n", "team", "label", "deployment", "web", "tier=frontend"],
        None,
    )
    .await;
    k.ok(
        &["-n", "team", "annotate", "deployment", "web", "note=hi"],
        None,
    )
    .await;
    k.ok(
        &["-n", "team", "rollout", "restart", "deployment", "web"],
        None,
    )
    .await;
    let d: serde_json::Value = serde_json::from_str(
        &k.ok(&["-n", "team", "get", "deploy", "web", "-o", "json"], None)
            .await,
    )
    .unwrap();
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.28"
    );
    assert_eq!(d["metadata"]["labels"]["tier"], "frontend");
    assert_eq!(d["metadata"]["annotations"]["note"], "hi");
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    let s2: serde_json::Value = serde_json::from_str(
        &k.ok(&["-n", "team", "get", "svc", "web2", "-o", "json"], None)
            .await,
    )
    .unwrap();
    assert_eq!(s2["spec"]["selector"]["app"], "web");
    k.ok(&["delete", "namespace", "team"], None).await;
    emu.shutdown().await;
}

/// Client-side → server-side apply migration: after a client-side apply, `apply --server-side`
/// of the same manifest succeeds without conflicts and kubectl upgrades the managedFields of
/// `kubectl-client-side-apply` (an Update manager recorded by the server) with a JSON patch
/// guarded by a resourceVersion precondition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_to_server_side_apply_migration() {
    let emu = start().await;
    let k = Kubectl::new(&emu);
    k.ok(&["apply", "-f", "-"], Some(CORE)).await;
    let mf = k
        .ok(
            &[
                "get",
                "cm",
                "cfg",
                "-o",
                "jsonpath={.metadata.managedFields[*].manager}",
            ],
            None,
        )
        .await;
    assert_eq!(mf, "kubectl-client-side-apply");
    emu.clear_requests();
    k.ok(&["apply", "--server-side", "-f", "-"], Some(CORE))
        .await;
    let patches: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.verb == "patch" && r.resource == "configmaps")
        .collect();
    assert!(
        patches.len() >= 2,
        "apply + managedFields upgrade: {patches:?}"
    );
    assert!(patches.iter().all(|r| r.code == 200), "{patches:?}");
    let ops = k
        .ok(
            &[
                "get",
                "cm",
                "cfg",
                "-o",
                "jsonpath={.metadata.managedFields[*].operation}",
            ],
            None,
        )
        .await;
    assert!(
        !ops.contains("Update"),
        "client-side-apply ownership migrated: {ops}"
    );
    emu.shutdown().await;
}

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

//! The rendered chart applied to the API emulator with the real `kubectl`, as `helm install` would send it:
//! the CRD from charts/tycho/crds first, then every object `helm template` renders (tests/chart/snapshots,
//! kept identical to Helm's output by the Python chart check) for the default values and each values file.
//! The API server's schema validation (strict field validation) accepts every object, and the operator's
//! Deployment rolls out on the simulated nodes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{TestCluster, emulator_config};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl is on PATH")
}

fn ok(kubeconfig: &Path, args: &[&str]) -> String {
    let out = kubectl(kubeconfig, args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kubectl {}: {}\n{stdout}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A stand-in for the Prometheus Operator's ServiceMonitor CRD, so the `ha` values (serviceMonitor.enabled) apply.
const SERVICE_MONITOR_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              x-kubernetes-preserve-unknown-fields: true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_chart_applies_with_kubectl_and_rolls_out() {
    let cluster = TestCluster::start_emulator(emulator_config()).await;
    let kc = cluster.kubeconfig_path();
    let kc = kc.as_path();

    tokio::task::block_in_place(|| {
        // Helm installs crds/ first.
        let crd = root().join("charts/tycho/crds/tycho.dev_systems.yaml");
        ok(kc, &["apply", "--server-side", "-f", crd.to_str().unwrap()]);
        ok(
            kc,
            &[
                "wait",
                "--for=condition=Established",
                "crd/systems.tycho.dev",
                "--timeout=30s",
            ],
        );
        let sm = std::env::temp_dir().join(format!(
            "tycho-servicemonitor-crd-{}.yaml",
            std::process::id()
        ));
        std::fs::write(&sm, SERVICE_MONITOR_CRD).unwrap();
        ok(kc, &["apply", "-f", sm.to_str().unwrap()]);
        let _ = std::fs::remove_file(&sm);

        let namespaces: String = ["tycho-system", "team-a", "team-b", "jupyter"]
            .iter()
            .map(|ns| format!("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"))
            .collect();
        let ns_file =
            std::env::temp_dir().join(format!("tycho-namespaces-{}.yaml", std::process::id()));
        std::fs::write(&ns_file, namespaces).unwrap();
        ok(kc, &["apply", "-f", ns_file.to_str().unwrap()]);
        let _ = std::fs::remove_file(&ns_file);

        // Helm installs into the release namespace without enforcing it on objects that name
        // another one (the namespaced values put Roles in team-a/team-b); `kubectl -n` would refuse
        // those, a context namespace does not.
        ok(
            kc,
            &[
                "config",
                "set-context",
                "--current",
                "--namespace=tycho-system",
            ],
        );

        // Every values case, one after the other, as successive `helm upgrade`s of one release would.
        for case in ["default", "namespaced", "existing-sa", "ha", "api"] {
            let file = root().join(format!("tests/chart/snapshots/{case}.yaml"));
            let out = ok(
                kc,
                &[
                    "apply",
                    "--server-side",
                    "--force-conflicts",
                    "--field-manager=helm",
                    "-f",
                    file.to_str().unwrap(),
                ],
            );
            eprintln!("{case}:\n{out}");
            assert!(
                out.lines().count() >= 5,
                "{case}: too few objects applied:\n{out}"
            );
        }

        // Back to the default values, and the operator's Deployment rolls out on the simulated nodes.
        let default = root().join("tests/chart/snapshots/default.yaml");
        ok(
            kc,
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=helm",
                "-f",
                default.to_str().unwrap(),
            ],
        );
        ok(
            kc,
            &[
                "-n",
                "tycho-system",
                "rollout",
                "status",
                "deployment/tycho",
                "--timeout=60s",
            ],
        );
        let pods = ok(
            kc,
            &[
                "-n",
                "tycho-system",
                "get",
                "pods",
                "-l",
                "app.kubernetes.io/instance=tycho",
                "-o",
                "jsonpath={.items[*].spec.securityContext.runAsUser}",
            ],
        );
        assert!(
            pods.split_whitespace().all(|u| u == "65532") && !pods.trim().is_empty(),
            "{pods}"
        );

        // Objects the API server rejects are rejected through this path too (strict field validation).
        let bad =
            std::env::temp_dir().join(format!("tycho-bad-deploy-{}.yaml", std::process::id()));
        let text = std::fs::read_to_string(&default).unwrap().replace(
            "revisionHistoryLimit: 3",
            "revisionHistoryLimit: 3\n  replicaz: 2",
        );
        std::fs::write(&bad, text).unwrap();
        let out = kubectl(
            kc,
            &[
                "apply",
                "--server-side",
                "-n",
                "tycho-system",
                "-f",
                bad.to_str().unwrap(),
            ],
        );
        let _ = std::fs::remove_file(&bad);
        assert!(!out.status.success(), "a misspelt field was accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("replicaz"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    cluster.cleanup().await;
}

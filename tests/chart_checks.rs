//! Runs the chart and GitOps checks (`ci/chart-check.sh`: the Helm chart rendered and linted by Helm's
//! own engine, every object validated against the Kubernetes schemas, the values schema, RBAC and Pod
//! Security checks, and the Argo CD health check in a real Lua interpreter) as part of
//! `cargo test --workspace`, so the README's one test command runs every test.
//!
//! The script uses the active virtualenv, or creates `target/chart-venv` and installs
//! `tests/chart/requirements.txt` into it.

use std::process::Command;

#[test]
fn chart_and_gitops_checks_pass() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("sh")
        .arg("ci/chart-check.sh")
        .current_dir(root)
        .output()
        .expect("run ci/chart-check.sh (needs python3 with venv and pip)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ci/chart-check.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    println!("{stdout}");
}

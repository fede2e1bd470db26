//! The workspace's crates are split by who uses them (see ARCHITECTURE.md): a program that only wants
//! the SDK must not compile the renderer, the controller, the CLI or the emulator, and the operator's
//! build (`--no-default-features`, as the Dockerfile builds it) must not contain the emulator.
//!
//! These read the dependency graph with `cargo tree` (offline, from Cargo.lock: nothing is built).

use std::collections::BTreeSet;
use std::process::Command;

/// The packages in the normal (non-dev, non-build) dependency tree of `package` with `extra` flags.
fn normal_deps(package: &str, extra: &[&str]) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["--format", "{p}", "-p", package])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn assert_absent(package: &str, deps: &BTreeSet<String>, forbidden: &[&str]) {
    let found: Vec<&&str> = forbidden.iter().filter(|f| deps.contains(**f)).collect();
    assert!(
        found.is_empty(),
        "{package} must not depend on {found:?} (its tree: {} packages)",
        deps.len()
    );
}

#[test]
fn the_model_has_no_client_renderer_or_runtime() {
    let deps = normal_deps("tycho-model", &[]);
    assert_absent(
        "tycho-model",
        &deps,
        &[
            "kube-client",
            "kube-runtime",
            "tokio",
            "hyper",
            "tera",
            "clap",
            "axum",
            "tycho-sdk",
            "tycho-operator",
            "tycho-emulator",
        ],
    );
    assert!(deps.contains("kube-core"), "the CRD derive needs kube-core");
}

#[test]
fn the_sdk_pulls_neither_the_renderer_nor_the_cli_nor_the_emulator() {
    let deps = normal_deps("tycho-sdk", &[]);
    assert_absent(
        "tycho-sdk",
        &deps,
        &[
            "tera",
            "clap",
            "clap_complete",
            "clap_mangen",
            "axum",
            "prometheus-client",
            "indicatif",
            "kube-runtime",
            "tycho-operator",
            "tycho-emulator",
        ],
    );
    assert!(deps.contains("tycho-model") && deps.contains("kube-client"));
}

#[test]
fn the_operator_does_not_pull_the_cli_or_the_emulator() {
    let deps = normal_deps("tycho-operator", &[]);
    assert_absent(
        "tycho-operator",
        &deps,
        &[
            "clap",
            "clap_complete",
            "clap_mangen",
            "indicatif",
            "tycho-sdk",
            "tycho-emulator",
        ],
    );
    assert!(deps.contains("tera") && deps.contains("kube-runtime"));
}

#[test]
fn the_http_api_pulls_neither_the_operator_nor_the_cli_nor_the_emulator() {
    let deps = normal_deps("tycho-api", &[]);
    assert_absent(
        "tycho-api",
        &deps,
        &[
            "clap",
            "tera",
            "prometheus-client",
            "tycho-operator",
            "tycho-sdk",
            "tycho-emulator",
        ],
    );
    assert!(deps.contains("tycho-model") && deps.contains("utoipa") && deps.contains("axum"));
}

#[test]
fn the_emulator_is_in_the_binary_only_with_the_dev_feature() {
    let without = normal_deps("tycho", &["--no-default-features"]);
    assert_absent("tycho --no-default-features", &without, &["tycho-emulator"]);
    let with = normal_deps("tycho", &[]);
    assert!(
        with.contains("tycho-emulator"),
        "the default build (`cargo run -- dev`) has the emulator"
    );
}

//! The CRD's OpenAPI schema and CEL rules, run the way kube-apiserver runs them (through the
//! emulator's `schema` module, which uses kube-cel): every rule compiles, every good System is
//! admitted, and the bad corpus is rejected at admission wherever the schema can express the
//! check — naming the same field as `tycho_model::validate`. The rest is left to the controller's
//! validation (condition + Warning Event), which `validate_corpus` covers.

#[path = "common/fields.rs"]
mod fields;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::path::Path;

use fixtures::{good_system_files, yaml_files};
use serde_json::Value;
use tycho_emulator::schema::{UnknownFields, validate_crd_schema, validate_custom_resource};

fn crd() -> Value {
    serde_json::to_value(<tycho_model::System as kube::CustomResourceExt>::crd()).unwrap()
}

fn schema() -> Value {
    crd()
        .pointer("/spec/versions/0/schema/openAPIV3Schema")
        .unwrap()
        .clone()
}

fn admit(file: &Path) -> Result<(), Vec<String>> {
    let text = std::fs::read_to_string(file).unwrap();
    let obj: Value = serde_saphyr::from_str(&text).unwrap();
    validate_custom_resource(&schema(), obj, None, UnknownFields::Strict)
        .map(|_| ())
        .map_err(|errs| errs.iter().map(|e| e.to_string()).collect())
}

#[test]
fn every_cel_rule_compiles_and_the_schema_is_structural() {
    if let Err(errors) = validate_crd_schema(&crd()) {
        panic!("{errors:#?}");
    }
}

#[test]
fn good_systems_are_admitted() {
    let files = good_system_files();
    for file in files {
        if let Err(e) = admit(&file) {
            panic!("{}: rejected at admission: {e:#?}", file.display());
        }
    }
}

/// Bad corpus files the API server must reject on its own (schema bounds, patterns, CEL rules).
const REJECTED_AT_ADMISSION: &[&str] = &[
    "name-too-long",
    "name-uppercase",
    "name-starts-with-digit",
    "no-containers",
    "duplicate-container",
    "container-name-invalid",
    "image-empty",
    "relative-working-dir",
    "env-both",
    "env-neither",
    "env-bad-name",
    "env-two-refs",
    "port-out-of-range",
    "port-name-too-long",
    "port-duplicate-across-containers",
    "nodeport-range",
    "limits-below-requests",
    "quantity-invalid",
    "file-dotdot",
    "file-trailing-slash",
    "file-duplicate",
    "file-both-contents",
    "file-no-content",
    "file-bad-base64",
    "file-mode",
    "files-too-large",
    "readiness-port-missing",
    "readiness-both",
    "pod-replicas",
    "replicas-range",
    "session-invalid",
    "session-too-long",
    "gpus-overcommit",
    "lifetime-zero",
    "reserved-label",
    "volume-unknown-container",
    "volume-relative-mount",
    "volume-bad-claim",
    "many-errors",
    "network-peer-two-kinds",
    "network-bad-cidr",
    "network-except-outside",
];

#[test]
fn the_api_server_rejects_what_the_schema_can_express() {
    let mut failures = Vec::new();
    let mut controller_only = Vec::new();
    for file in yaml_files("tests/corpus/bad") {
        let stem = file.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let expected: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(|f| f.trim().to_string())
            .collect();
        if expected.iter().all(|f| f == "metadata.name") && stem == "name-missing" {
            // A missing name is refused by the API server before validation (metadata is not
            // part of the CRD schema); the emulator leaves metadata to its caller.
            continue;
        }
        match admit(&file) {
            Ok(()) if REJECTED_AT_ADMISSION.contains(&stem.as_str()) => {
                failures.push(format!("{stem}: admitted, but the CRD should reject it"))
            }
            Ok(()) => controller_only.push(stem),
            Err(errors) => {
                // The admission error mentions the field (or, for a rule on a parent object, the
                // parent's path appears in the rule's message).
                let all = errors.join(" | ");
                let named = expected
                    .iter()
                    .any(|f| errors.iter().any(|e| fields::names_field(e, f)));
                if !named {
                    failures.push(format!(
                        "{stem}: rejected without naming {expected:?}: {all}"
                    ));
                }
            }
        }
    }
    eprintln!(
        "checked by the controller only (not expressible or not expressed in the CRD): {controller_only:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! The product's own CRD (crds/tycho.dev_systems.yaml) through the emulator's CRD checks and
//! custom resource validation: a CRD kube-apiserver accepts must be accepted here, and the
//! examples a user applies must validate under `fieldValidation=Strict` (kubectl's default).

use std::path::{Path, PathBuf};

use serde_json::Value;
use tycho_emulator::schema::{UnknownFields, validate_crd_schema, validate_custom_resource};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn crd() -> Value {
    load(&repo().join("crds/tycho.dev_systems.yaml"))
}

fn schema(crd: &Value) -> Value {
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn yamls(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    v.sort();
    v
}

/// CRD creation: structural schema and every CEL rule compile (kube-apiserver rejects the CRD
/// otherwise, CEL docs "Validation rules").
#[test]
fn tycho_crd_is_accepted() {
    if let Err(e) = validate_crd_schema(&crd()) {
        panic!("{e:#?}");
    }
}

/// Custom resources: the shipped examples and the "good" corpus validate under Strict field
/// validation (no unknown fields, all rules pass) — CRD docs "Validation".
#[test]
fn examples_validate_strict() {
    let s = schema(&crd());
    let mut files = yamls(&repo().join("examples"));
    files.extend(yamls(&repo().join("tests/corpus/good")));
    assert!(!files.is_empty());
    for f in files {
        let obj = load(&f);
        if obj["kind"] != "System" {
            continue;
        }
        if let Err(e) = validate_custom_resource(&s, obj, None, UnknownFields::Strict) {
            let msgs: Vec<String> = e.iter().map(ToString::to_string).collect();
            panic!("{}: {msgs:#?}", f.display());
        }
    }
}

/// Bad Systems are rejected with Kubernetes-style causes at the right field: OpenAPI value
/// validations (pattern, maximum, maxLength), list-type map uniqueness and the CRD's CEL rules.
#[test]
fn bad_corpus_rejected_with_causes() {
    let s = schema(&crd());
    let cases = [
        (
            "container-name-invalid.yaml",
            "spec.containers[0].name",
            "FieldValueInvalid",
        ),
        (
            "port-out-of-range.yaml",
            "spec.containers[0].ports[0].port",
            "FieldValueInvalid",
        ),
        ("replicas-range.yaml", "spec.replicas", "FieldValueInvalid"),
        ("session-too-long.yaml", "spec.session", "FieldValueTooLong"),
        (
            "duplicate-container.yaml",
            "spec.containers[1]",
            "FieldValueDuplicate",
        ),
        ("files-too-large.yaml", "spec", "FieldValueInvalid"),
        ("no-containers.yaml", "spec.containers", "FieldValueInvalid"),
    ];
    for (file, field, reason) in cases {
        let obj = load(&repo().join("tests/corpus/bad").join(file));
        let errs = validate_custom_resource(&s, obj, None, UnknownFields::Strict).expect_err(file);
        assert!(
            errs.iter()
                .any(|e| e.field == field && e.reason.as_str() == reason),
            "{file}: {errs:#?}"
        );
    }
}

/// Server-side apply of every example with the CRD's list types: creates, and re-applying the
/// same config changes nothing ("Applying the same object twice is a no-op"); a second
/// manager changing a field the first owns conflicts.
#[test]
fn examples_server_side_apply() {
    use tycho_emulator::merge_keys::MergeSchema;
    use tycho_emulator::ssa::{SsaError, apply};
    let s = MergeSchema::from_openapi(&schema(&crd()));
    let mut n = 0;
    for f in yamls(&repo().join("examples")) {
        let obj = load(&f);
        if obj["kind"] != "System" {
            continue;
        }
        n += 1;
        let once = apply(None, &obj, "kubectl", false, &s, "2026-01-01T00:00:00Z")
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let twice = apply(
            Some(&once),
            &obj,
            "kubectl",
            false,
            &s,
            "2026-01-01T00:05:00Z",
        )
        .unwrap();
        assert_eq!(once, twice, "{}", f.display());
        let mut other = serde_json::json!({"apiVersion": obj["apiVersion"], "kind": "System",
            "metadata": {"name": obj["metadata"]["name"]}, "spec": {"containers": obj["spec"]["containers"]}});
        other["spec"]["containers"][0]["image"] = Value::from("changed:1");
        match apply(
            Some(&once),
            &other,
            "someone-else",
            false,
            &s,
            "2026-01-01T00:06:00Z",
        ) {
            Err(SsaError::Conflict { conflicts }) => {
                assert!(
                    conflicts
                        .iter()
                        .any(|c| c.manager == "kubectl" && c.field.ends_with("].image")),
                    "{conflicts:?}"
                )
            }
            other => panic!("{}: expected a conflict, got {other:?}", f.display()),
        }
    }
    assert!(n > 0);
}

//! Admission by the API server itself, over HTTP: every good System (the examples and
//! `tests/corpus/good`) is admitted, and every bad one (`tests/corpus/bad`) gets the same decision from
//! the server as from the emulator's schema module (which `validate_cel` runs offline) — rejected at
//! admission naming the same field, or admitted and left to the controller's validation.
//!
//! On the emulator this checks its HTTP admission path against its schema module. Against a real
//! kube-apiserver (`TYCHO_TEST_KUBECONFIG`, see hack/cluster.sh) it proves that the CRD — its structural
//! schema and every CEL rule, within the real server's cost budgets — is accepted (the CRD is installed
//! by [`TestCluster::start`]) and judges Systems as the emulator does. Every request is a server-side dry
//! run, so nothing is stored.

mod common;
#[path = "common/fields.rs"]
mod fields;

use std::path::Path;

use common::{TestCluster, good_system_files, yaml_files};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use serde_json::Value;
use tycho_emulator::schema::{UnknownFields, validate_custom_resource};

fn schema() -> Value {
    serde_json::to_value(<tycho_model::System as kube::CustomResourceExt>::crd())
        .expect("the CRD as JSON")
        .pointer("/spec/versions/0/schema/openAPIV3Schema")
        .expect("the CRD's schema")
        .clone()
}

fn systems_api(c: &TestCluster) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("tycho.dev", "v1alpha1", "System"),
        "systems",
    );
    Api::namespaced_with(c.client.clone(), &c.namespace, &ar)
}

/// Each System document of a file (examples may hold other kinds too).
fn systems_in(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).expect("read a corpus file");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("a YAML file");
    docs.into_iter().filter(|d| d["kind"] == "System").collect()
}

/// The server's answer to a dry-run create: Ok, or the error lines `<field>: <message>` of its causes
/// (or its message when it gives no causes).
async fn dry_run_create(api: &Api<DynamicObject>, doc: &Value) -> Result<(), Vec<String>> {
    let mut doc = doc.clone();
    if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("namespace");
    }
    let obj: DynamicObject = serde_json::from_value(doc).expect("a System document");
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    match api.create(&pp, &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => {
            assert!(
                status.code == 422 || status.code == 400,
                "a rejection must be 422 Invalid or 400 BadRequest, got {} {}: {}",
                status.code,
                status.reason,
                status.message
            );
            let causes = status
                .details
                .as_ref()
                .map(|d| d.causes.clone())
                .unwrap_or_default();
            if causes.is_empty() {
                Err(vec![format!("<nil>: {}", status.message)])
            } else {
                Err(causes
                    .iter()
                    .map(|c| format!("{}: {}", c.field, c.message))
                    .collect())
            }
        }
        Err(e) => panic!("dry-run create: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_admits_every_good_system() {
    let c = TestCluster::start().await;
    let api = systems_api(&c);
    let files = good_system_files();
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in &files {
        for doc in systems_in(file) {
            checked += 1;
            if let Err(errors) = dry_run_create(&api, &doc).await {
                failures.push(format!("{}: {}", file.display(), errors.join(" | ")));
            }
        }
    }
    assert!(checked >= 7, "only {checked} good Systems found");
    assert!(failures.is_empty(), "rejected:\n{}", failures.join("\n"));
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_judges_bad_systems_as_the_emulator_schema_does() {
    let c = TestCluster::start().await;
    let api = systems_api(&c);
    let schema = schema();
    let files = yaml_files("tests/corpus/bad");
    assert!(
        files.len() >= 30,
        "the bad corpus shrank to {}",
        files.len()
    );
    let (mut rejected, mut admitted) = (0, 0);
    let mut failures = Vec::new();
    for file in &files {
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let text = std::fs::read_to_string(file).expect("read a corpus file");
        let expected: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(|f| f.trim().to_string())
            .collect();
        let doc: Value = serde_saphyr::from_str(&text).expect("a YAML document");
        if stem == "name-missing" {
            // No name: the server refuses it before validation; the schema module leaves metadata to
            // its caller. Checked here on the server only.
            let got = dry_run_create(&api, &doc).await;
            if got.is_ok() {
                failures.push(format!("{stem}: a System without a name was admitted"));
            }
            continue;
        }
        let offline = validate_custom_resource(&schema, doc.clone(), None, UnknownFields::Strict)
            .map(|_| ())
            .map_err(|errs| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>());
        let server = dry_run_create(&api, &doc).await;
        match (&offline, &server) {
            (Ok(()), Ok(())) => admitted += 1,
            (Err(_), Err(errors)) => {
                rejected += 1;
                if !expected
                    .iter()
                    .any(|f| errors.iter().any(|e| fields::names_field(e, f)))
                {
                    failures.push(format!(
                        "{stem}: the server rejects it without naming {expected:?}: {}",
                        errors.join(" | ")
                    ));
                }
            }
            (Ok(()), Err(errors)) => failures.push(format!(
                "{stem}: the server rejects what the emulator's schema admits: {}",
                errors.join(" | ")
            )),
            (Err(errors), Ok(())) => failures.push(format!(
                "{stem}: the server admits what the emulator's schema rejects: {}",
                errors.join(" | ")
            )),
        }
    }
    eprintln!("bad corpus: {rejected} rejected at admission by both, {admitted} admitted by both");
    assert!(
        rejected >= 20,
        "only {rejected} bad Systems were rejected at admission"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    c.cleanup().await;
}

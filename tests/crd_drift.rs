//! The committed CRD (`crds/tycho.dev_systems.yaml`, and the Helm chart's copy when there is one)
//! equals what `tycho crd` generates from the model (`tycho_model::crd_yaml`, crates/model/src/lib.rs).

use std::path::Path;

const REGENERATE: &str = "regenerate with: cargo run -q -- crd system > crds/tycho.dev_systems.yaml \
     && cargo run -q -- crd systemtemplate > crds/tycho.dev_systemtemplates.yaml \
     (and copy them to charts/tycho/crds/ if the chart exists), then commit";

fn check(relative: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let committed =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{relative}: {e}; {REGENERATE}"));
    let generated = if relative.ends_with("systemtemplates.yaml") {
        tycho_model::template_crd_yaml().expect("the CRD serializes")
    } else {
        tycho_model::crd_yaml().expect("the CRD serializes")
    };
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || "length differs".to_string(),
                |l| format!("first difference at line {}", l + 1),
            );
        panic!("{relative} is out of date with crates/model/src/lib.rs ({line}); {REGENERATE}");
    }
}

#[test]
fn committed_crd_matches_the_model() {
    check("crds/tycho.dev_systems.yaml");
    check("crds/tycho.dev_systemtemplates.yaml");
}

#[test]
fn chart_crd_matches_the_model_when_the_chart_exists() {
    let chart_crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/tycho/crds");
    if chart_crds.is_dir() {
        check("charts/tycho/crds/tycho.dev_systems.yaml");
        check("charts/tycho/crds/tycho.dev_systemtemplates.yaml");
    }
}

#[test]
fn the_crd_parses_and_describes_systems() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let text = tycho_model::crd_yaml().unwrap();
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(crd.metadata.name.as_deref(), Some("systems.tycho.dev"));
    assert_eq!(crd.spec.names.kind, "System");
    assert_eq!(crd.spec.scope, "Namespaced");
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let schema = serde_json::to_string(&version.schema).unwrap();
    assert!(
        schema.contains("x-kubernetes-validations"),
        "CEL rules are missing from the schema"
    );
}

//! The chart ships the System CRD under charts/tycho/crds/: it must be exactly what `tycho crd` generates from
//! the Rust type (and what crds/ holds), or `helm install` would create a CRD the controller does not match.

#[test]
fn chart_crd_is_the_generated_crd() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let generated = tycho_model::crd_yaml().unwrap();
    let chart =
        std::fs::read_to_string(root.join("charts/tycho/crds/tycho.dev_systems.yaml")).unwrap();
    assert!(
        chart == generated,
        "charts/tycho/crds/tycho.dev_systems.yaml drifted from the Rust type: \
         run `cargo run -- crd > crds/tycho.dev_systems.yaml && cp crds/tycho.dev_systems.yaml charts/tycho/crds/`"
    );
    let committed = std::fs::read_to_string(root.join("crds/tycho.dev_systems.yaml")).unwrap();
    assert_eq!(chart, committed, "charts/tycho/crds/ and crds/ differ");
    let template = tycho_model::template_crd_yaml().unwrap();
    let chart =
        std::fs::read_to_string(root.join("charts/tycho/crds/tycho.dev_systemtemplates.yaml"))
            .unwrap();
    assert!(
        chart == template,
        "charts/tycho/crds/tycho.dev_systemtemplates.yaml drifted from the Rust type: \
         run `cargo run -- crd systemtemplate > crds/tycho.dev_systemtemplates.yaml && cp crds/tycho.dev_systemtemplates.yaml charts/tycho/crds/`"
    );
}

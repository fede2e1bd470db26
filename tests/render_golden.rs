//! Golden files: every example under `examples/` renders exactly to `tests/golden/<example>.yaml`,
//! and every good corpus System to `tests/golden/corpus-<name>.yaml`.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test --test render_golden` and review the diff.

#[path = "common/fixtures.rs"]
mod fixtures;

use std::path::Path;

use fixtures::good_system_files;
use tycho::cli::render::parse_systems;
use tycho_operator::render::{RenderSettings, Renderer};

fn render_file(path: &Path) -> String {
    let renderer = Renderer::new(RenderSettings::default()).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    let systems = parse_systems(&path.display().to_string(), &text).unwrap();
    systems
        .iter()
        .map(|s| renderer.render(s).unwrap().to_yaml().unwrap())
        .collect()
}

#[test]
fn every_example_matches_its_golden_file() {
    let examples = good_system_files();
    for required in [
        "nginx",
        "jupyter",
        "rstudio",
        "two-containers",
        "session",
        "isolated",
    ] {
        assert!(
            examples.iter().any(|p| p.file_stem().unwrap() == required),
            "examples/{required}.yaml is missing"
        );
    }
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut failures = Vec::new();
    for example in &examples {
        let got = render_file(example);
        let prefix = if example.parent().unwrap().ends_with("good") {
            "corpus-"
        } else {
            ""
        };
        let golden = golden_dir.join(format!(
            "{prefix}{}",
            example.file_name().unwrap().to_str().unwrap()
        ));
        if update {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(want) if want == got => {}
            Ok(want) => {
                let line = want
                    .lines()
                    .zip(got.lines())
                    .position(|(a, b)| a != b)
                    .map(|l| l + 1);
                failures.push(format!(
                    "{}: differs from {} (first differing line: {line:?})",
                    example.display(),
                    golden.display()
                ));
            }
            Err(e) => failures.push(format!("{}: {e}", golden.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nIf the change is intended: UPDATE_GOLDEN=1 cargo test --test render_golden, then review the diff.",
        failures.join("\n")
    );
}

#[test]
fn golden_output_is_byte_identical_across_renderers_and_runs() {
    for example in good_system_files() {
        let a = render_file(&example);
        let b = render_file(&example);
        assert_eq!(a, b, "{}", example.display());
    }
}

#[test]
fn golden_yaml_parses_back_into_typed_objects() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
    for example in good_system_files() {
        let text = render_file(&example);
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        assert!(!docs.is_empty());
        for doc in docs {
            let kind = doc["kind"].as_str().unwrap().to_string();
            match kind.as_str() {
                "Deployment" => drop(serde_json::from_value::<Deployment>(doc).unwrap()),
                "Pod" => drop(serde_json::from_value::<Pod>(doc).unwrap()),
                "Service" => drop(serde_json::from_value::<Service>(doc).unwrap()),
                "ConfigMap" => drop(serde_json::from_value::<ConfigMap>(doc).unwrap()),
                "NetworkPolicy" => drop(
                    serde_json::from_value::<k8s_openapi::api::networking::v1::NetworkPolicy>(doc)
                        .unwrap(),
                ),
                other => panic!("{}: unexpected kind {other}", example.display()),
            }
        }
    }
}

//! A corpus of bad Systems (`tests/corpus/bad/*.yaml`), each rejected with a message naming the
//! field(s) given in its `# expect: <field>` lines, and good ones (every example and
//! `tests/corpus/good/*.yaml`) accepted.

#[path = "common/fixtures.rs"]
mod fixtures;

use std::path::Path;

use fixtures::{good_system_files, yaml_files};
use tycho::cli::render::parse_systems;
use tycho_model::validate::validate;

#[test]
fn every_bad_system_is_rejected_naming_its_fields() {
    let files = yaml_files("tests/corpus/bad");
    assert!(
        files.len() >= 30,
        "the bad corpus shrank to {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(str::trim)
            .collect();
        assert!(
            !expected.is_empty(),
            "{}: no `# expect: <field>` line",
            file.display()
        );
        let systems = parse_systems(&file.display().to_string(), &text)
            .unwrap_or_else(|e| panic!("{}: does not parse: {e}", file.display()));
        let errors = match validate(&systems[0]) {
            Ok(()) => {
                failures.push(format!("{}: accepted", file.display()));
                continue;
            }
            Err(errors) => errors,
        };
        for field in &expected {
            if !errors.iter().any(|e| e.field == *field) {
                failures.push(format!(
                    "{}: no error names {field}; got: {}",
                    file.display(),
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" | ")
                ));
            }
        }
        for e in &errors {
            assert!(
                !e.message.is_empty(),
                "{}: empty message for {}",
                file.display(),
                e.field
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_good_system_is_accepted() {
    let files = good_system_files();
    assert!(files.len() >= 5);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for system in parse_systems(&file.display().to_string(), &text).unwrap() {
            if let Err(errors) = validate(&system) {
                panic!(
                    "{}: rejected: {}",
                    file.display(),
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
            }
        }
    }
}

#[test]
fn all_errors_are_reported_not_just_the_first() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bad/many-errors.yaml"),
    )
    .unwrap();
    let system = parse_systems("many-errors", &text).unwrap().remove(0);
    let errors = validate(&system).unwrap_err();
    assert!(errors.len() >= 5, "{errors:?}");
}

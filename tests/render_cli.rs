//! `tycho render` as a user runs it: files, stdin, several files, flags, and failures that exit
//! non-zero naming the file, document and field.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn tycho(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tycho"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn kinds(yaml: &str) -> Vec<String> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml).unwrap();
    docs.iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

fn temp_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn renders_an_example_to_multi_document_yaml() {
    let o = tycho(&["render", "-f", "examples/nginx.yaml"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        kinds(&stdout(&o)),
        ["ConfigMap/nginx-files", "Deployment/nginx", "Service/nginx"]
    );
    let golden = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/nginx.yaml"),
    )
    .unwrap();
    assert_eq!(stdout(&o), golden);
}

#[test]
fn renders_several_files_and_stdin_in_order() {
    let jupyter = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/jupyter.yaml"),
    )
    .unwrap();
    let o = tycho(
        &[
            "render",
            "-f",
            "examples/session.yaml",
            "-f",
            "-",
            "--filename",
            "examples/rstudio.yaml",
        ],
        Some(&jupyter),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        kinds(&stdout(&o)),
        [
            "ConfigMap/scratch-files",
            "Pod/scratch",
            "Service/scratch",
            "Deployment/jupyter",
            "Service/jupyter",
            "Deployment/rstudio",
            "Service/rstudio"
        ]
    );
}

#[test]
fn renders_several_documents_of_one_file() {
    let two = "apiVersion: tycho.dev/v1alpha1\nkind: System\nmetadata: {name: a}\nspec: {containers: [{name: c, image: i}]}\n---\napiVersion: tycho.dev/v1alpha1\nkind: System\nmetadata: {name: b, namespace: x}\nspec: {containers: [{name: c, image: i}], workload: Pod}\n";
    let o = tycho(&["render", "-f", "-"], Some(two));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(kinds(&stdout(&o)), ["Deployment/a", "Pod/b"]);
}

#[test]
fn an_invalid_system_exits_2_naming_the_field() {
    let o = tycho(&["render", "-f", "tests/corpus/bad/file-dotdot.yaml"], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("tests/corpus/bad/file-dotdot.yaml"), "{err}");
    assert!(err.contains("spec.containers[0].files[0].path"), "{err}");
    assert!(
        stdout(&o).is_empty(),
        "nothing is printed for invalid input"
    );
}

#[test]
fn a_document_that_is_not_a_system_is_an_error_naming_it() {
    let text = "apiVersion: tycho.dev/v1alpha1\nkind: System\nmetadata: {name: a}\nspec: {containers: [{name: c, image: i}]}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n";
    let (_d, path) = temp_file(text);
    let o = tycho(&["render", "-f", path.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("document 2") && err.contains("Secret"),
        "{err}"
    );
}

#[test]
fn type_errors_and_unknown_fields_are_errors_naming_the_place() {
    let typo = "apiVersion: tycho.dev/v1alpha1\nkind: System\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: i\n    imagePullPolicy: Always\n";
    let o = tycho(&["render", "-f", "-"], Some(typo));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("spec.containers[0].imagePullPolicy: unknown field"),
        "{}",
        stderr(&o)
    );

    let wrong_type = "apiVersion: tycho.dev/v1alpha1\nkind: System\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: i\n    ports: [{port: eighty}]\n";
    let o = tycho(&["render", "-f", "-"], Some(wrong_type));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 8"), "{}", stderr(&o));
}

#[test]
fn broken_yaml_and_missing_files_fail() {
    let o = tycho(&["render", "-f", "-"], Some("kind: [unclosed\n"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("<stdin>"), "{}", stderr(&o));
    let o = tycho(&["render", "-f", "no/such/file.yaml"], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no/such/file.yaml"));
    let o = tycho(&["render"], None);
    assert_eq!(o.status.code(), Some(2), "-f is required");
}

#[test]
fn the_gpu_resource_flag_names_the_extended_resource() {
    let o = tycho(
        &[
            "render",
            "-f",
            "examples/session.yaml",
            "--gpu-resource",
            "amd.com/gpu",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("amd.com/gpu: \"1\""), "{}", stdout(&o));
    assert!(!stdout(&o).contains("nvidia.com/gpu: \"1\""));
}

#[test]
fn the_templates_flag_overrides_and_a_broken_override_names_the_template() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("service.yaml.tera"),
        "apiVersion: v1\nkind: Service\n{% for %}\n",
    )
    .unwrap();
    let o = tycho(
        &[
            "render",
            "-f",
            "examples/jupyter.yaml",
            "--templates",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("service.yaml.tera") && err.contains("line 3"),
        "{err}"
    );

    let src = tycho_operator::render::EMBEDDED_TEMPLATES
        .iter()
        .find(|(n, _)| *n == "service.yaml.tera")
        .unwrap()
        .1;
    std::fs::write(
        dir.path().join("service.yaml.tera"),
        src.replace("spec:\n", "spec:\n  externalTrafficPolicy: \"Local\"\n"),
    )
    .unwrap();
    let o = tycho(
        &[
            "render",
            "-f",
            "examples/jupyter.yaml",
            "--templates",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("externalTrafficPolicy: Local"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn the_same_system_twice_is_an_error() {
    let o = tycho(
        &[
            "render",
            "-f",
            "examples/nginx.yaml",
            "-f",
            "examples/nginx.yaml",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("more than once"), "{}", stderr(&o));
}

#[test]
fn a_directory_renders_all_its_yaml_files_in_name_order() {
    let o = tycho(&["render", "-f", "examples"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let names: Vec<String> = kinds(&stdout(&o))
        .into_iter()
        .filter(|k| k.starts_with("Deployment/") || k.starts_with("Pod/"))
        .collect();
    assert_eq!(
        names,
        [
            "Deployment/isolated",
            "Deployment/jupyter",
            "Deployment/nginx",
            "Deployment/rstudio",
            "Pod/scratch",
            "Deployment/two-containers"
        ]
    );
}

//! Template override directories: customisation works, broken overrides are errors naming the
//! template (and line), and overrides cannot break Tycho's invariants or its escaping.

#[path = "common/fixtures.rs"]
mod fixtures;

use std::path::Path;

use fixtures::system;
use serde_json::json;
use tycho_model::*;
use tycho_operator::render::{
    EMBEDDED_TEMPLATES, RenderError, RenderSettings, Renderer, WorkloadObject,
};

/// The System every override is rendered for: its env value, port and file reach every template.
fn web() -> System {
    system("web")
        .namespace("team")
        .uid("uid-1")
        .replicas(2)
        .session("lease-1")
        .container(json!({
            "name": "app",
            "image": "nginx",
            "env": [{ "name": "V", "value": "a\nkind: Secret\n---\nx: y" }],
            "ports": [{ "port": 80, "expose": true }],
            "files": [{ "path": "/etc/f", "content": "hello" }],
        }))
        .build()
}

fn embedded(name: &str) -> &'static str {
    EMBEDDED_TEMPLATES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1
}

fn renderer_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Renderer, RenderError>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, src) in files {
        std::fs::write(dir.path().join(name), src).unwrap();
    }
    let r = Renderer::new(RenderSettings {
        template_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    });
    (dir, r)
}

#[test]
fn a_template_with_a_syntax_error_is_refused_at_start_naming_template_and_line() {
    let broken = "apiVersion: v1\nkind: Service\n{% if %}\n";
    let (_d, r) = renderer_with(&[("service.yaml.tera", broken)]);
    match r.unwrap_err() {
        RenderError::Template {
            template,
            line,
            message,
        } => {
            assert_eq!(template, "service.yaml.tera", "{message}");
            assert_eq!(line, Some(3), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn an_unknown_filter_is_refused_at_start() {
    let (_d, r) = renderer_with(&[(
        "configmap.yaml.tera",
        "kind: ConfigMap\nx: {{ 1 | nosuchfilter }}\n",
    )]);
    let err = r.unwrap_err();
    assert_eq!(err.reason(), "TemplateError");
    assert!(err.to_string().contains("configmap.yaml.tera"), "{err}");
}

#[test]
fn an_undefined_variable_fails_rendering_naming_template_and_line() {
    let src = embedded("deployment.yaml.tera").replace(
        "  replicas: {{ replicas | json }}",
        "  replicas: {{ replicaz | json }}",
    );
    let line = src.lines().position(|l| l.contains("replicaz")).unwrap() + 1;
    let (_d, r) = renderer_with(&[("deployment.yaml.tera", &src)]);
    let err = r.unwrap().render(&web()).unwrap_err();
    match &err {
        RenderError::Template {
            template, line: l, ..
        } => {
            assert_eq!(template, "deployment.yaml.tera", "{err}");
            assert_eq!(*l, Some(line), "{err}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_misspelt_field_is_an_error_not_a_silent_null() {
    let src = embedded("podspec.yaml.tera")
        .replace("image: {{ c.image | json }}", "image: {{ c.imag | json }}");
    let (_d, r) = renderer_with(&[("podspec.yaml.tera", &src)]);
    let err = r.unwrap().render(&web()).unwrap_err();
    assert_eq!(err.reason(), "TemplateError", "{err}");
    assert!(err.to_string().contains("podspec.yaml.tera"), "{err}");
}

#[test]
fn output_that_is_not_yaml_is_an_error_naming_template_and_output_line() {
    let src = "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec: [unclosed\n";
    let (_d, r) = renderer_with(&[("service.yaml.tera", src)]);
    let err = r.unwrap().render(&web()).unwrap_err();
    match &err {
        RenderError::Output { template, line, .. } => {
            assert_eq!(template, "service.yaml.tera");
            assert!(line.is_some(), "{err}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.reason(), "TemplateOutputInvalid");
}

#[test]
fn output_of_the_wrong_kind_or_shape_is_an_error() {
    let wrong_kind =
        embedded("deployment.yaml.tera").replace("kind: Deployment", "kind: StatefulSet");
    let (_d, r) = renderer_with(&[("deployment.yaml.tera", &wrong_kind)]);
    let err = r.unwrap().render(&web()).unwrap_err();
    assert_eq!(err.reason(), "TemplateOutputInvalid", "{err}");
    assert!(err.to_string().contains("deployment.yaml.tera"), "{err}");

    let wrong_type = embedded("service.yaml.tera")
        .replace("port: {{ p.port | json }}", "port: {{ p.name | json }}");
    let (_d, r) = renderer_with(&[("service.yaml.tera", &wrong_type)]);
    let err = r.unwrap().render(&web()).unwrap_err();
    assert_eq!(err.reason(), "TemplateOutputInvalid", "{err}");
}

#[test]
fn a_missing_override_directory_is_an_error() {
    let err = Renderer::new(RenderSettings {
        template_dir: Some(Path::new("/nonexistent/tycho-templates").to_path_buf()),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.reason(), "TemplateReadFailed");
    assert!(err.to_string().contains("/nonexistent/tycho-templates"));
}

#[test]
fn overrides_customise_output_and_may_include_their_own_partials() {
    // A platform team adds a sidecar (from a partial of its own) and a pod annotation.
    let podspec = embedded("podspec.yaml.tera")
        .replace(
            "  annotations: {{ podAnnotations | json }}",
            "  annotations: {{ podAnnotations | json }}\n  # platform: keep\n",
        )
        .replace(
            "  containers:",
            "  containers:\n{% include \"sidecar.tera\" %}",
        );
    let sidecar =
        "  - name: \"log-shipper\"\n    image: {{ \"registry.example.com/shipper:1\" | json }}";
    let (_d, r) = renderer_with(&[("podspec.yaml.tera", &podspec), ("sidecar.tera", sidecar)]);
    let rendered = r.unwrap().render(&web()).unwrap();
    let WorkloadObject::Deployment(d) = &rendered.workload else {
        panic!()
    };
    let names: Vec<_> = d
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, ["log-shipper", "app"]);
}

#[test]
fn overrides_cannot_break_names_labels_owners_or_selectors() {
    // A hostile or careless override: wrong names, namespace, labels, selector, no owner refs.
    let deployment = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: "other"
  namespace: "kube-system"
  labels: {"tycho.dev/system": "someone-else", "extra": "kept"}
  ownerReferences: [{"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "x"}]
spec:
  replicas: 99
  selector: {matchLabels: {"app": "everything"}}
  template:
    metadata: {labels: {"app": "everything"}}
    spec:
      containers: [{"name": "c", "image": "i"}]
"#;
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: \"x\"}\nspec: {selector: {\"app\": \"everything\"}, ports: [{port: 1}]}\n";
    let configmap = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"x\", namespace: \"y\"}\n";
    let (_d, r) = renderer_with(&[
        ("deployment.yaml.tera", deployment),
        ("service.yaml.tera", service),
        ("configmap.yaml.tera", configmap),
    ]);
    let s = web();
    let rendered = r.unwrap().render(&s).unwrap();
    let WorkloadObject::Deployment(d) = &rendered.workload else {
        panic!()
    };
    let owner = tycho_operator::render::owner_reference(&s).unwrap();
    let metas = [
        (&d.metadata, "web"),
        (&rendered.service.as_ref().unwrap().metadata, "web"),
        (&rendered.config_map.as_ref().unwrap().metadata, "web-files"),
    ];
    for (meta, name) in metas {
        assert_eq!(meta.name.as_deref(), Some(name));
        assert_eq!(meta.namespace.as_deref(), Some("team"));
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels["tycho.dev/system"], "web");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "tycho");
        assert_eq!(labels["tycho.dev/session"], "lease-1");
        assert_eq!(
            meta.owner_references.as_ref().unwrap(),
            &vec![owner.clone()]
        );
    }
    assert_eq!(d.metadata.labels.as_ref().unwrap()["extra"], "kept");
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(
        spec.selector.match_labels.as_ref().unwrap(),
        &[("tycho.dev/system".to_string(), "web".to_string())]
            .into_iter()
            .collect()
    );
    assert_eq!(
        spec.template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap()["tycho.dev/system"],
        "web"
    );
    let svc_selector = rendered
        .service
        .as_ref()
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .selector
        .clone()
        .unwrap();
    assert_eq!(svc_selector.len(), 1);
    assert_eq!(svc_selector["tycho.dev/system"], "web");
}

#[test]
fn output_written_without_the_json_filter_is_still_escaped() {
    // An override that forgets `| json` still cannot be injected: autoescape JSON-quotes it.
    let src = embedded("podspec.yaml.tera")
        .replace("value: {{ e.value | json }}", "value: {{ e.value }}");
    assert!(src.contains("value: {{ e.value }}"));
    let (_d, r) = renderer_with(&[("podspec.yaml.tera", &src)]);
    let rendered = r.unwrap().render(&web()).unwrap();
    let WorkloadObject::Deployment(d) = &rendered.workload else {
        panic!()
    };
    let env = d
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .env
        .clone()
        .unwrap();
    assert_eq!(env[0].value.as_deref(), Some("a\nkind: Secret\n---\nx: y"));
}

#[test]
fn the_injection_checks_would_catch_a_template_that_pastes_raw_strings() {
    // Control experiment: `| safe` bypasses escaping; the same value then breaks the output,
    // which is exactly what the injection tests detect.
    let src = embedded("podspec.yaml.tera")
        .replace("value: {{ e.value | json }}", "value: {{ e.value | safe }}");
    let (_d, r) = renderer_with(&[("podspec.yaml.tera", &src)]);
    match r.unwrap().render(&web()) {
        Err(e) => assert_eq!(e.reason(), "TemplateOutputInvalid", "{e}"),
        Ok(rendered) => {
            let WorkloadObject::Deployment(d) = &rendered.workload else {
                panic!()
            };
            let env = d
                .spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .containers[0]
                .env
                .clone()
                .unwrap();
            assert_ne!(env[0].value.as_deref(), Some("a\nkind: Secret\n---\nx: y"));
        }
    }
}

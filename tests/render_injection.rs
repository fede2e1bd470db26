//! Injection safety: values a user writes render as exactly that string, and cannot change the
//! structure of the rendered YAML — newlines, colons, quotes, `#`, `{{ }}`, `{% %}`, anchors,
//! aliases, tags, `- `, `---`, `...`, YAML 1.1 booleans, control and line-separator characters.

#[path = "common/fixtures.rs"]
mod fixtures;

use fixtures::system;
use serde_json::{Value, json};
use tycho_model::*;
use tycho_operator::render::{RenderSettings, Rendered, Renderer, WorkloadObject};

/// Strings that would break (or subvert) YAML if pasted raw into a template.
const NASTY: &[&str] = &[
    "plain",
    "",
    "a\nb: c",
    "key: value",
    "\"double\" and 'single' quotes",
    "'",
    "\"",
    "# not a comment",
    "value # trailing comment",
    "{{ system.name }}",
    "{{ spec | json }}",
    "{% if true %}injected{% endif %}",
    "{# comment #}",
    "&anchor value",
    "*alias",
    "!!binary aGVsbG8=",
    "!tag value",
    "- item",
    "- a\n- b",
    "---",
    "...",
    "\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: evil\n",
    "--- !!python/object:os.system ['rm -rf /']",
    "[a, b]",
    "{a: b}",
    "? complex key",
    "|\n  literal",
    ">\n  folded",
    "%YAML 1.1",
    "@at `backtick`",
    "null",
    "~",
    "true",
    "yes",
    "on",
    "0x1F",
    "0o17",
    "1e3",
    ".inf",
    "  leading and trailing spaces  ",
    "tab\there",
    "cr\rlf\r\n",
    "back\\slash \\n not a newline",
    "nul-free control \u{1}\u{7}\u{1b}[31m",
    "del \u{7f} c1 \u{85} nel \u{9b}",
    "line sep \u{2028} para sep \u{2029}",
    "bom \u{feff} nonchar \u{fffe}\u{ffff}",
    "unicode ☃ 🚀 é",
    "${HOME} $(whoami) `id`",
    "a: &x 1\nb: *x",
];

fn system_with(nasty: &str) -> System {
    system("inj")
        .namespace("ns")
        .uid("u-1")
        .set("annotations", json!({ "example.com/note": nasty }))
        .container(json!({
            "name": "app",
            "image": "nginx:1.27",
            "command": [nasty, "fixed"],
            "args": [nasty],
            "workingDir": format!("/w/{nasty}"),
            "env": [{ "name": "NASTY", "value": nasty }, { "name": "FIXED", "value": "fixed" }],
            "ports": [{ "port": 80, "name": "http", "expose": true }],
            "readiness": {
                "http": { "path": format!("/{}", nasty.replace(|c: char| c.is_control(), "")), "port": 80 },
            },
            "files": [
                { "path": "/etc/nasty.txt", "content": nasty },
                { "path": "/etc/fixed.txt", "content": "fixed" },
            ],
        }))
        .build()
}

fn render(system: &System) -> Rendered {
    Renderer::new(RenderSettings::default())
        .unwrap()
        .render(system)
        .unwrap()
}

/// The JSON with every string leaf blanked: the structure (keys, list lengths, types).
fn shape(v: &Value) -> Value {
    match v {
        Value::String(_) => Value::String(String::new()),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        other => other.clone(),
    }
}

#[test]
fn user_values_render_as_exactly_that_string() {
    for nasty in NASTY {
        let rendered = render(&system_with(nasty));
        let WorkloadObject::Deployment(d) = &rendered.workload else {
            panic!("not a Deployment")
        };
        let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let c = &pod.containers[0];
        assert_eq!(
            c.command.as_ref().unwrap(),
            &vec![nasty.to_string(), "fixed".to_string()],
            "{nasty:?}"
        );
        assert_eq!(
            c.args.as_ref().unwrap(),
            &vec![nasty.to_string()],
            "{nasty:?}"
        );
        assert_eq!(
            c.working_dir.as_deref(),
            Some(format!("/w/{nasty}").as_str()),
            "{nasty:?}"
        );
        let env = c.env.as_ref().unwrap();
        assert_eq!(env.len(), 2, "{nasty:?}");
        assert_eq!(env[0].value.as_deref(), Some(*nasty), "{nasty:?}");
        assert_eq!(env[1].value.as_deref(), Some("fixed"), "{nasty:?}");
        let cm = rendered.config_map.as_ref().unwrap();
        let data = cm.data.as_ref().unwrap();
        assert_eq!(data.len(), 2, "{nasty:?}");
        assert_eq!(data["app-0"], *nasty, "{nasty:?}");
        assert_eq!(data["app-1"], "fixed");
        for annotations in [
            d.metadata.annotations.as_ref().unwrap(),
            cm.metadata.annotations.as_ref().unwrap(),
            rendered
                .service
                .as_ref()
                .unwrap()
                .metadata
                .annotations
                .as_ref()
                .unwrap(),
            d.spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap(),
        ] {
            assert_eq!(annotations["example.com/note"], *nasty, "{nasty:?}");
        }
    }
}

#[test]
fn user_values_cannot_change_the_structure() {
    let reference: Vec<Value> = render(&system_with("plain"))
        .objects()
        .unwrap()
        .iter()
        .map(shape)
        .collect();
    for nasty in NASTY {
        let objects = render(&system_with(nasty)).objects().unwrap();
        let shapes: Vec<Value> = objects.iter().map(shape).collect();
        assert_eq!(shapes, reference, "structure changed for {nasty:?}");
    }
}

#[test]
fn the_yaml_output_round_trips_exactly() {
    for nasty in NASTY {
        let rendered = render(&system_with(nasty));
        let yaml = rendered.to_yaml().unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
        assert_eq!(docs, rendered.objects().unwrap(), "{nasty:?}:\n{yaml}");
        // Every document is one of ours: no smuggled Secret.
        for d in &docs {
            assert!(
                ["ConfigMap", "Deployment", "Service"].contains(&d["kind"].as_str().unwrap()),
                "{nasty:?}"
            );
        }
    }
}

#[test]
fn nasty_images_hosts_paths_and_mount_paths_are_literal_too() {
    // Values validation lets through without whitespace, in the remaining places.
    let tricky = "x:{{y}}#&a!!binary*b{%-z-%}'\"";
    let mut s = system_with("plain");
    s.spec.workload = Workload::Pod;
    let c = &mut s.spec.containers[0];
    c.image = format!("img/{tricky}");
    c.readiness = Some(Readiness {
        http: Some(HttpCheck {
            path: format!("/p: {tricky} # c"),
            port: 80,
            host: Some(tricky.to_string()),
        }),
        tcp: None,
    });
    c.files[0].path = format!("/etc/{tricky}/f: #c");
    s.spec.volumes = vec![VolumeSpec {
        claim: "data".into(),
        mount_path: format!("/mnt/{tricky}"),
        sub_path: Some(format!("sub: {tricky}")),
        read_only: false,
        container: None,
    }];
    s.spec.tolerations = vec![k8s_openapi::api::core::v1::Toleration {
        key: Some("k".into()),
        operator: Some("Equal".into()),
        value: Some(format!("v\n- {tricky}")),
        effect: Some("NoSchedule".into()),
        ..Default::default()
    }];
    let rendered = render(&s);
    let WorkloadObject::Pod(p) = &rendered.workload else {
        panic!("not a Pod")
    };
    let spec = p.spec.as_ref().unwrap();
    let c = &spec.containers[0];
    assert_eq!(c.image.as_deref(), Some(format!("img/{tricky}").as_str()));
    let get = c
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(
        get.path.as_deref(),
        Some(format!("/p: {tricky} # c").as_str())
    );
    assert_eq!(get.http_headers.as_ref().unwrap()[0].value, tricky);
    let mounts = c.volume_mounts.as_ref().unwrap();
    assert_eq!(mounts[0].mount_path, format!("/etc/{tricky}/f: #c"));
    assert_eq!(mounts[2].mount_path, format!("/mnt/{tricky}"));
    assert_eq!(
        mounts[2].sub_path.as_deref(),
        Some(format!("sub: {tricky}").as_str())
    );
    assert_eq!(
        spec.tolerations.as_ref().unwrap()[0].value.as_deref(),
        Some(format!("v\n- {tricky}").as_str())
    );
    let docs: Vec<Value> = serde_saphyr::from_multiple(&rendered.to_yaml().unwrap()).unwrap();
    assert_eq!(docs, rendered.objects().unwrap());
}

#[test]
fn a_nasty_value_in_a_name_position_is_refused_not_rendered() {
    let mut s = system_with("plain");
    s.spec.containers[0].name = "app\nkind: Secret".into();
    let err = Renderer::new(RenderSettings::default())
        .unwrap()
        .render(&s)
        .unwrap_err();
    assert_eq!(err.reason(), "InvalidSpec");
    assert!(err.to_string().contains("spec.containers[0].name"), "{err}");
}

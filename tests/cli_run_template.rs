//! `tycho run --template NAME -P NAME=VALUE` as a process against the emulator (controller in-process), or a
//! real cluster with `TYCHO_TEST_KUBECONFIG`: a System naming the template with typed parameters in the
//! session, the template's exposed port tunnelled and opened in the browser, Ctrl-C leaving nothing behind;
//! an unknown parameter refused before anything is created; image options and `-P` without a template are
//! usage errors.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{TestCluster, eventually};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use tokio::process::Command;
use tycho_model::{System, SystemTemplate};

fn template(name: &str) -> SystemTemplate {
    serde_json::from_value(json!({
        "apiVersion": "tycho.dev/v1alpha1", "kind": "SystemTemplate",
        "metadata": {"name": name},
        "spec": {
            "description": "nginx saying something",
            "parameters": [
                {"name": "greeting"},
                {"name": "workers", "type": "integer", "default": 1}
            ],
            "system": {
                "expose": "ClusterIP",
                "containers": [{
                    "name": "web",
                    "image": "nginx:1.27",
                    "ports": [{"port": 80}, {"port": 9113, "expose": false}],
                    "env": [{"name": "WORKERS", "value": "${workers}"}],
                    "files": [{"path": "/usr/share/nginx/html/index.html", "content": "${greeting}\n"}]
                }]
            }
        }
    }))
    .unwrap()
}

fn tycho(cluster: &TestCluster, args: &[&str], env: &[(&str, &std::path::Path)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tycho"));
    cmd.arg("run")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["-n", &cluster.namespace])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

async fn nothing_left(cluster: &TestCluster) -> bool {
    let systems: Api<System> = cluster.api();
    let leases: Api<Lease> = cluster.api();
    eventually(Duration::from_secs(30), || async {
        let s = systems.list(&ListParams::default()).await.ok()?;
        let l = leases.list(&ListParams::default()).await.ok()?;
        (s.items.is_empty() && l.items.is_empty()).then_some(())
    })
    .await
    .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_a_template_with_parameters_then_sigint_cleans_everything() {
    let cluster = TestCluster::start().await;
    let kubelet = common::runs_containers(&cluster.client).await;
    let _controller = cluster.run_controller(|_| {}).await;
    let tname = format!("greeter-{}", cluster.namespace);
    let templates: Api<SystemTemplate> = Api::all(cluster.client.clone());
    templates
        .create(&PostParams::default(), &template(&tname))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (script, record) = common::browser_recorder(dir.path());
    let mut args = vec![
        "--template",
        &tname,
        "-P",
        "greeting=hello from a template",
        "--param",
        "workers=3",
        "--json",
    ];
    let state_arg = state.display().to_string();
    args.push(&state_arg);
    if kubelet {
        args.push("--browser");
    } else {
        common::skip(
            "run_a_template_with_parameters_then_sigint_cleans_everything",
            "the tunnel's HTTP check and the browser need a kubelet that runs containers (this cluster's nodes are kwok fakes); the System, its parameters and the cleanup are still checked",
        );
    }
    let mut child = tycho(&cluster, &args, &[("BROWSER", &script)])
        .spawn()
        .expect("start tycho run");
    let st = eventually(Duration::from_secs(90), || async {
        let text = std::fs::read_to_string(&state).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()
    })
    .await
    .expect("tycho run wrote its state file");
    // The template's exposed port (80, not the unexposed 9113) is tunnelled.
    let ports = st["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "{st}");
    assert_eq!(ports[0]["container"], 80);

    // The System names the template, with the parameters typed as the template declares them.
    let systems: Api<System> = cluster.api();
    let sys = systems.get(st["system"].as_str().unwrap()).await.unwrap();
    assert_eq!(sys.spec.template.as_deref(), Some(tname.as_str()));
    assert_eq!(
        serde_json::to_value(&sys.spec.parameters).unwrap(),
        json!({"greeting": "hello from a template", "workers": 3})
    );
    assert_eq!(sys.spec.session.as_deref(), st["lease"].as_str());
    assert!(sys.spec.containers.is_empty(), "the template gives them");
    assert!(
        sys.metadata
            .name
            .as_deref()
            .unwrap()
            .starts_with("greeter-"),
        "{:?}",
        sys.metadata.name
    );

    if kubelet {
        let local = ports[0]["local"].as_u64().unwrap() as u16;
        let (code, body) = common::http_get(([127, 0, 0, 1], local).into(), "/")
            .await
            .unwrap();
        assert_eq!(
            (code, body.as_str()),
            (200, "hello from a template\n"),
            "the template's pre-boot file, its parameter filled in, through the tunnel"
        );
        let url = eventually(Duration::from_secs(30), || async {
            let u = std::fs::read_to_string(&record).ok()?;
            (!u.trim().is_empty()).then(|| u.trim().to_string())
        })
        .await;
        assert_eq!(url, Some(format!("http://127.0.0.1:{local}/")));
    }

    let pid = child.id().expect("running").to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("tycho run exits after SIGINT")
        .unwrap();
    assert_eq!(out.code(), Some(130));
    assert!(
        nothing_left(&cluster).await,
        "the session's System and Lease are gone"
    );
    templates
        .delete(&tname, &DeleteParams::default())
        .await
        .unwrap();
    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_template_runs_fail_naming_the_problem() {
    let cluster = TestCluster::start().await;
    let tname = format!("greeter-bad-{}", cluster.namespace);
    let templates: Api<SystemTemplate> = Api::all(cluster.client.clone());
    templates
        .create(&PostParams::default(), &template(&tname))
        .await
        .unwrap();

    // Refused before a System exists: an unknown parameter, a value not of the declared type, a missing
    // required one, a template that does not exist. The session is ended.
    for (args, wanted) in [
        (
            vec![
                "--template",
                &tname,
                "-P",
                "greeting=hi",
                "-P",
                "colour=red",
            ],
            "no parameter \"colour\"",
        ),
        (
            vec![
                "--template",
                &tname,
                "-P",
                "greeting=hi",
                "-P",
                "workers=many",
            ],
            "workers",
        ),
        (
            vec!["--template", &tname],
            "required parameters not given: greeting",
        ),
        (vec!["--template", "no-such-template"], "does not exist"),
    ] {
        let out = tycho(&cluster, &args, &[]).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(wanted), "{args:?}: {stderr}");
        assert!(nothing_left(&cluster).await, "{args:?} left something");
    }
    // Usage errors (exit 2): an image and a template, image options with a template, -P without one.
    for args in [
        vec!["--template", tname.as_str(), "nginx"],
        vec!["--template", tname.as_str(), "--sleep"],
        vec!["-P", "greeting=hi", "nginx"],
        vec![],
    ] {
        // A short --timeout: were it not refused, the run would fail fast instead of waiting.
        let mut args = args;
        args.extend(["--timeout", "5s"]);
        let out = tycho(&cluster, &args, &[]).output().await.unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    templates
        .delete(&tname, &DeleteParams::default())
        .await
        .unwrap();
    cluster.cleanup().await;
}

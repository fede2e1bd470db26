//! End to end with the machine's real `kubectl`, against `tycho sim` and `tycho controller` running as
//! separate processes (or the cluster of `TYCHO_TEST_KUBECONFIG`, with a random namespace):
//! - `kubectl apply -f crds/`, then every file of `examples/`, client-side and `--server-side`, with kubectl's
//!   default (strict) validation, which rejects unknown fields and values outside the CRD's schema;
//! - `kubectl get systems` prints the CRD's printer columns, and a Ready row once the simulated pods run;
//! - `kubectl get systems -w` streams a change while it runs;
//! - `kubectl delete` removes a System, and then its children go (owner-reference garbage collection).

#[path = "common/process.rs"]
mod process;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, ListParams};
use process::{E2e, WAIT, eventually, repo_path};
use tycho_model::System;

fn examples() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(repo_path("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let s: System = serde_saphyr::from_str(&text).unwrap();
            (p.display().to_string(), s.metadata.name.unwrap())
        })
        .collect();
    v.sort();
    assert!(v.len() >= 5, "examples/ holds {} Systems", v.len());
    v
}

/// The row of `name` in `kubectl get systems` output, split on whitespace.
fn row<'a>(table: &'a str, name: &str) -> Option<Vec<&'a str>> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&name))
}

fn is_node_port(s: &str) -> bool {
    s.split(',')
        .all(|p| p.parse::<u16>().is_ok_and(|n| (30000..=32767).contains(&n)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_crd_and_every_example_client_side_and_server_side() {
    let mut e = E2e::start_bare().await;
    let crds = repo_path("crds").display().to_string();
    let out = e.kubectl_ok(&["apply", "-f", &crds]).await;
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/systems.tycho.dev"),
        "{out}"
    );
    e.wait_crd().await;
    let examples = examples();

    // Client-side apply, one file at a time, then the whole directory again: nothing changes.
    for (file, name) in &examples {
        let out = e.kubectl_ok(&["apply", "-f", file]).await;
        assert!(
            out.contains(&format!("system.tycho.dev/{name} created")),
            "{file}: {out}"
        );
    }
    // Lists whose items the CRD defaults (ports, files) differ from the live object, so kubectl's three-way
    // merge may send them again ("configured", as on a real cluster); the spec must not change.
    let systems: Api<System> = e.api();
    let generations = || async {
        let mut g = Vec::new();
        for (_, name) in &examples {
            g.push(systems.get(name).await.unwrap().metadata.generation);
        }
        g
    };
    let before = generations().await;
    let dir = repo_path("examples").display().to_string();
    let out = e.kubectl_ok(&["apply", "-f", &dir]).await;
    for (_, name) in &examples {
        assert!(
            out.contains(&format!("system.tycho.dev/{name} unchanged"))
                || out.contains(&format!("system.tycho.dev/{name} configured")),
            "re-apply: {out}"
        );
    }
    assert_eq!(
        generations().await,
        before,
        "re-applying the same files changed a spec"
    );

    // Server-side apply into a second namespace, twice (the second apply is a no-op, not a conflict).
    let ssa_ns = e.create_namespace("ssa").await;
    for (file, name) in &examples {
        let out = e
            .kubectl_ok_in(&ssa_ns, &["apply", "--server-side", "-f", file])
            .await;
        assert!(
            out.contains(&format!("system.tycho.dev/{name} serverside-applied")),
            "{file}: {out}"
        );
    }
    let out = e
        .kubectl_ok_in(&ssa_ns, &["apply", "--server-side", "-f", &dir])
        .await;
    assert_eq!(
        out.matches("serverside-applied").count(),
        examples.len(),
        "{out}"
    );

    // Both hold what the files say.
    for ns in [e.namespace.clone(), ssa_ns.clone()] {
        let api: Api<System> = Api::namespaced(e.client.clone(), &ns);
        for (file, name) in &examples {
            let want: System =
                serde_saphyr::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            let got = api.get(name).await.unwrap();
            assert_eq!(
                got.spec.containers.len(),
                want.spec.containers.len(),
                "{ns}/{name}"
            );
            for (g, w) in got.spec.containers.iter().zip(&want.spec.containers) {
                assert_eq!((&g.name, &g.image), (&w.name, &w.image), "{ns}/{name}");
            }
            assert_eq!(got.spec.session, want.spec.session, "{ns}/{name}");
        }
    }
    let managers: Vec<String> = Api::<System>::namespaced(e.client.clone(), &ssa_ns)
        .get("nginx")
        .await
        .unwrap()
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            format!(
                "{}/{}",
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default()
            )
        })
        .collect();
    assert!(
        managers.contains(&"kubectl/Apply".to_string()),
        "managedFields: {managers:?}"
    );

    // Default validation is in force: an unknown field and a value outside the schema are refused, both
    // client-side and server-side, and nothing is created.
    let bad_field = e.dir.path().join("bad-field.yaml");
    std::fs::write(
        &bad_field,
        "apiVersion: tycho.dev/v1alpha1\nkind: System\nmetadata: {name: bad-field}\nspec:\n  bogus: 1\n  containers: [{name: a, image: nginx}]\n",
    )
    .unwrap();
    let bad_value = e.dir.path().join("bad-value.yaml");
    std::fs::write(
        &bad_value,
        "apiVersion: tycho.dev/v1alpha1\nkind: System\nmetadata: {name: bad-value}\nspec:\n  containers: [{name: a, image: nginx, ports: [{port: 70000}]}]\n",
    )
    .unwrap();
    for ssa in [false, true] {
        let file = bad_field.display().to_string();
        let mut args = vec!["apply", "-f", &file];
        if ssa {
            args.push("--server-side");
        }
        let out = e.kubectl(&args).await;
        assert!(
            !out.ok,
            "unknown field accepted (ssa {ssa}): {}",
            out.stdout
        );
        assert!(out.stderr.contains("bogus"), "ssa {ssa}: {}", out.stderr);
        let file = bad_value.display().to_string();
        args[2] = &file;
        let out = e.kubectl(&args).await;
        assert!(!out.ok, "port 70000 accepted (ssa {ssa}): {}", out.stdout);
        assert!(
            out.stderr.contains("ports[0].port"),
            "ssa {ssa}: {}",
            out.stderr
        );
    }
    assert!(systems.get_opt("bad-field").await.unwrap().is_none());
    assert!(systems.get_opt("bad-value").await.unwrap().is_none());

    // Printer columns, then a Ready row with a node port once the controller ran and the pods are up.
    let table = e.kubectl_ok(&["get", "systems"]).await;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "PHASE", "READY", "NODE-PORTS", "SESSION", "AGE"],
        "{table}"
    );
    assert_eq!(
        row(&table, "scratch")
            .and_then(|r| r.get(1).map(|s| s.to_string()))
            .as_deref(),
        Some("notebook-session-7f3a"),
        "the session column of the session example, before any status:\n{table}"
    );
    let _controller = e.controller().await;
    let ready = eventually(e.ready_wait(), || async {
        let table = e.kubectl_ok(&["get", "systems"]).await;
        let r = row(&table, "nginx")?;
        (r.len() == 5 && r[1] == "Ready" && r[2] == "1/1" && is_node_port(r[3]))
            .then(|| table.clone())
    })
    .await;
    let last = e.kubectl_ok(&["get", "systems"]).await;
    let table = ready.unwrap_or_else(|| panic!("no Ready row for nginx:\n{last}"));
    eprintln!("{table}");
    e.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_streams_a_change() {
    let mut e = E2e::start().await;
    let _controller = e.controller().await;
    let nginx = repo_path("examples/nginx.yaml").display().to_string();
    e.kubectl_ok(&["apply", "-f", &nginx]).await;
    let systems: Api<System> = e.api();
    let ready = eventually(e.ready_wait(), || async {
        let s = systems.get("nginx").await.ok()?;
        (s.status?.ready.as_deref() == Some("1/1")).then_some(())
    })
    .await;
    assert!(ready.is_some(), "nginx never 1/1 Ready");

    let (mut watch, mut lines) = e.kubectl_stream(&["get", "systems", "-w"]);
    let first = tokio::time::timeout(WAIT, async {
        loop {
            let l = lines.recv().await.expect("kubectl get -w ended");
            if l.starts_with("nginx ") {
                return l;
            }
        }
    })
    .await
    .expect("the initial row of get -w");
    assert!(first.contains("1/1"), "{first}");

    // A change made while the watch runs: scale to 2; the controller's status updates stream in.
    e.kubectl_ok(&[
        "patch",
        "system",
        "nginx",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":2}}"#,
    ])
    .await;
    let mut seen = Vec::new();
    let streamed = tokio::time::timeout(e.ready_wait(), async {
        loop {
            let Some(l) = lines.recv().await else {
                return false;
            };
            seen.push(l.clone());
            let cols: Vec<&str> = l.split_whitespace().collect();
            if cols.first() == Some(&"nginx")
                && cols.get(1) == Some(&"Ready")
                && cols.get(2) == Some(&"2/2")
            {
                return true;
            }
        }
    })
    .await;
    assert!(
        matches!(streamed, Ok(true)),
        "get -w did not stream nginx Ready 2/2; rows seen: {seen:#?} (kubectl still running: {:?})",
        watch.try_wait().map(|s| s.is_none())
    );
    assert!(matches!(watch.try_wait(), Ok(None)), "get -w keeps running");
    watch.kill().await.unwrap();
    e.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_delete_removes_the_system_and_then_its_children() {
    let mut e = E2e::start().await;
    let _controller = e.controller().await;
    let nginx = repo_path("examples/nginx.yaml").display().to_string();
    e.kubectl_ok(&["apply", "-f", &nginx]).await;
    let by_label = ListParams::default().labels("tycho.dev/system=nginx");
    let deployments: Api<Deployment> = e.api();
    let services: Api<Service> = e.api();
    let config_maps: Api<ConfigMap> = e.api();
    let counts = || async {
        (
            deployments.list(&by_label).await.unwrap().items.len(),
            services.list(&by_label).await.unwrap().items.len(),
            config_maps.list(&by_label).await.unwrap().items.len(),
        )
    };
    let made = eventually(WAIT, || async {
        (counts().await == (1, 1, 1)).then_some(())
    })
    .await;
    assert!(made.is_some(), "children of nginx: {:?}", counts().await);

    let out = e.kubectl_ok(&["delete", "system", "nginx"]).await;
    assert!(out.contains(r#"system.tycho.dev "nginx" deleted"#), "{out}");
    // kubectl waits for the System itself to be gone.
    let systems: Api<System> = e.api();
    assert!(
        systems.get_opt("nginx").await.unwrap().is_none(),
        "the System is still there after kubectl delete"
    );
    let gone = eventually(WAIT, || async {
        (counts().await == (0, 0, 0)).then_some(())
    })
    .await;
    assert!(gone.is_some(), "children left behind: {:?}", counts().await);
    let out = e
        .kubectl_ok(&[
            "get",
            "deployments,services,configmaps,replicasets",
            "-l",
            "tycho.dev/system=nginx",
        ])
        .await;
    assert!(out.trim().is_empty(), "{out}");
    // And the controller does not bring them back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(counts().await, (0, 0, 0));
    e.cleanup().await;
}

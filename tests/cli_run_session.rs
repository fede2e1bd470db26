//! `tycho run` as a process against the emulator (controller in-process): the browser flow and
//! `--json` state, Ctrl-C (SIGINT) leaving nothing behind, and SIGKILL (no cleanup code runs)
//! collected once the lease duration has passed since its last renewal — judged from the Lease's versions a
//! watch receives and the controller's `SessionExpired` Event, not a stopwatch.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;

use common::{TestCluster, eventually};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::runtime::watcher;
use tokio::process::{Child, Command};
use tycho_model::System;

struct Run {
    child: Child,
    state: PathBuf,
    browser_record: PathBuf,
    _dir: tempfile::TempDir,
}

async fn tycho_run(cluster: &TestCluster, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index.html");
    std::fs::write(&index, "Hello from tycho run\n").unwrap();
    let state = dir.path().join("state.json");
    let (script, record) = common::browser_recorder(dir.path());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tycho"));
    cmd.arg("run")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["-n", &cluster.namespace, "-p", "80", "--json"])
        .arg(&state)
        .arg("-f")
        .arg(format!(
            "{}:/usr/share/nginx/html/index.html",
            index.display()
        ))
        .args(extra)
        .arg("nginx")
        .arg("GREETING=hello")
        .env("BROWSER", &script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("start tycho run");
    Run {
        child,
        state,
        browser_record: record,
        _dir: dir,
    }
}

async fn wait_state(path: &Path) -> serde_json::Value {
    let v = eventually(Duration::from_secs(60), || async {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()
    })
    .await;
    v.expect("tycho run wrote its state file")
}

fn signal(child: &Child, sig: &str) {
    let pid = child.id().expect("running").to_string();
    let st = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap();
    assert!(st.success());
}

async fn nothing_left(cluster: &TestCluster, limit: Duration) -> Option<()> {
    let systems: kube::Api<System> = cluster.api();
    let leases: kube::Api<Lease> = cluster.api();
    eventually(limit, || async {
        let s = systems.list(&ListParams::default()).await.ok()?;
        let l = leases.list(&ListParams::default()).await.ok()?;
        (s.items.is_empty() && l.items.is_empty()).then_some(())
    })
    .await
}

#[tokio::test]
async fn run_with_browser_then_sigint_cleans_everything() {
    let cluster = TestCluster::start().await;
    if !common::runs_containers(&cluster.client).await {
        common::skip(
            "run_with_browser_then_sigint_cleans_everything",
            "the tunnel and the HTTP 200 the browser waits for need a kubelet that runs containers (this cluster's nodes are kwok fakes)",
        );
        cluster.cleanup().await;
        return;
    }
    let _controller = cluster.run_controller(|_| {}).await;
    let mut run = tycho_run(&cluster, &["--browser"]).await;
    let state = wait_state(&run.state).await;
    let local = state["ports"][0]["local"].as_u64().unwrap() as u16;
    assert_eq!(state["ports"][0]["container"], 80);
    // The browser was handed the tunnel's URL, and the URL serves the pre-boot index.html.
    // `tycho run` writes its state file before the browser is opened: wait for the record.
    let mut url = String::new();
    for _ in 0..300 {
        url = std::fs::read_to_string(&run.browser_record)
            .unwrap_or_default()
            .trim()
            .to_string();
        if !url.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(url, format!("http://127.0.0.1:{local}/"));
    let (code, body) = common::http_get(([127, 0, 0, 1], local).into(), "/")
        .await
        .unwrap();
    assert_eq!((code, body.as_str()), (200, "Hello from tycho run\n"));
    // The environment variable reached the container.
    let systems: kube::Api<System> = cluster.api();
    let sys = systems
        .get(state["system"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        sys.spec.containers[0].env[0].value.as_deref(),
        Some("hello")
    );
    assert_eq!(sys.spec.session.as_deref(), state["lease"].as_str());

    signal(&run.child, "-INT");
    let out = tokio::time::timeout(Duration::from_secs(20), run.child.wait())
        .await
        .expect("tycho run exits after SIGINT")
        .unwrap();
    assert_eq!(out.code(), Some(130));
    let mut stderr = String::new();
    if let Some(mut e) = run.child.stderr.take() {
        use tokio::io::AsyncReadExt;
        e.read_to_string(&mut stderr).await.unwrap();
    }
    for expected in [
        "Connecting to:",
        "Spawning container:",
        "Container is running:",
        "Created tunnel object onto:",
        "Connected onto: http://127.0.0.1:",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(
        nothing_left(&cluster, Duration::from_secs(10))
            .await
            .is_some(),
        "System and Lease are gone"
    );
    let pods: kube::Api<Pod> = cluster.api();
    let no_pods = eventually(Duration::from_secs(15), || async {
        pods.list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(no_pods.is_some(), "its pod is gone too");
    assert!(!run.state.exists(), "the state file is removed at the end");
    cluster.cleanup().await;
}

/// Generous bound on how late after the Lease's expiry the collection may come (the benchmark measures it).
const LATE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_killed_with_sigkill_is_collected_after_the_lease_duration() {
    let cluster = TestCluster::start().await;
    let _controller = cluster.run_controller(|_| {}).await;
    let lease_secs = 3;
    // Every version of the session's Lease, as a watch receives them.
    let history: Arc<Mutex<Vec<Lease>>> = Arc::default();
    let watching = tokio::spawn({
        let (api, history) = (cluster.api::<Lease>(), history.clone());
        async move {
            let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
            while let Some(ev) = events.next().await {
                if let Ok(watcher::Event::Apply(l) | watcher::Event::InitApply(l)) = ev {
                    history.lock().expect("history lock").push(l);
                }
            }
        }
    });
    let mut run = tycho_run(&cluster, &["--lease-duration", "3s"]).await;
    let state = wait_state(&run.state).await;
    let system = state["system"].as_str().unwrap().to_string();
    let lease_name = state["lease"].as_str().unwrap().to_string();
    signal(&run.child, "-KILL");
    let _ = run.child.wait().await;
    let gone = nothing_left(&cluster, Duration::from_secs(60)).await;
    watching.abort();
    let versions: Vec<Lease> = history
        .lock()
        .expect("history lock")
        .iter()
        .filter(|l| l.metadata.name.as_deref() == Some(lease_name.as_str()))
        .cloned()
        .collect();
    let describe = || {
        versions
            .iter()
            .map(|l| {
                format!(
                    "rv={:?} renewTime={:?} annotations={:?}",
                    l.metadata.resource_version,
                    l.spec.as_ref().and_then(|s| s.renew_time.clone()),
                    l.metadata.annotations
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert!(
        gone.is_some(),
        "System {system} and its Lease were not collected; Lease versions: {}",
        describe()
    );
    // The renewal the controller based its decision on: the version with its collected mark.
    let marked = versions
        .iter()
        .find(|l| {
            l.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(tycho_model::ANNOTATION_COLLECTED))
        })
        .unwrap_or_else(|| panic!("no collected mark on the Lease: {}", describe()));
    let renewed = marked
        .spec
        .as_ref()
        .and_then(|s| s.renew_time.as_ref())
        .expect("renewTime")
        .0
        .as_microsecond();
    let events: kube::Api<Event> = cluster.api();
    let expired = events
        .list(&ListParams::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(system.as_str()))
        .filter(|e| e.reason.as_deref() == Some("SessionExpired"))
        .filter_map(|e| e.event_time.map(|t| t.0.as_microsecond()))
        .min()
        .expect("a SessionExpired Event on the System");
    let late = expired - (renewed + lease_secs * 1_000_000);
    eprintln!(
        "MEASURE SIGKILLed session: SessionExpired {:+.3} s after the Lease's expiry (last renewal + {lease_secs} s)",
        late as f64 / 1e6
    );
    assert!(
        late >= 0,
        "collected {:.3} s before the Lease expired",
        -late as f64 / 1e6
    );
    assert!(
        late <= LATE.as_micros() as i64,
        "collected {:.3} s after the Lease expired (bound {LATE:?})",
        late as f64 / 1e6
    );
    cluster.cleanup().await;
}

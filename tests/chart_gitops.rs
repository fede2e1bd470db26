//! The status samples the Argo CD health check is tested against (gitops/argocd/testdata/*.json) are what
//! the controller's own status function writes: this test recomputes each one with
//! `tycho_operator::controller::status::compute_status` and fails when a committed sample drifts from it.
//! `UPDATE_GITOPS_TESTDATA=1 cargo test --test chart_gitops` rewrites them; `ci/chart-check.sh` then runs
//! the Lua health check over them (gitops/argocd/tests).

#[path = "common/fixtures.rs"]
mod fixtures;

use std::path::PathBuf;

use fixtures::{SystemBuilder, system, yaml_files};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodStatus, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use serde_json::json;
use tycho_model::{System, SystemStatus};
use tycho_operator::controller::status::{
    AppliedWorkload, Outcome, SessionStatus, StatusInput, compute_status,
};

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("gitops/argocd/testdata")
}

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap()
}

/// The Jupyter notebook of the samples, as the API server returns it.
fn jupyter() -> SystemBuilder {
    system("jupyter")
        .namespace("research")
        .generation(1)
        .uid("6f1c2b9e-3a57-4d0e-9b6e-0c8a4c1d2e3f")
        .created(t(1_760_000_000))
        .container(json!({
            "name": "notebook",
            "image": "quay.io/jupyter/scipy-notebook:2024-12-09",
            "ports": [{ "port": 8888, "name": "notebook", "expose": true }],
        }))
}

fn deployment(ready: i32, updated: i32, total: i32) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("jupyter".into()),
            generation: Some(1),
            ..Default::default()
        },
        status: Some(DeploymentStatus {
            ready_replicas: Some(ready),
            updated_replicas: Some(updated),
            replicas: Some(total),
            observed_generation: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service() -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("jupyter".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("NodePort".into()),
            ports: Some(vec![ServicePort {
                name: Some("notebook".into()),
                port: 8888,
                protocol: Some("TCP".into()),
                node_port: Some(31876),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(name: &str, ready: bool, waiting: Option<&str>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        status: Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            container_statuses: waiting.map(|w| {
                vec![ContainerStatus {
                    name: "notebook".into(),
                    state: Some(ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some(w.into()),
                            message: Some(format!("{w}: back-off pulling image")),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn status(
    sys: &System,
    outcome: Outcome<'_>,
    session: &SessionStatus,
    previous: Option<&SystemStatus>,
) -> SystemStatus {
    let input = StatusInput {
        system: sys,
        outcome,
        session,
        expires_at: None,
        node_address: Some("192.168.49.2"),
        now: t(1_760_000_100),
    };
    compute_status(&input, previous)
}

/// Every sample: (file stem, the System as the API server would return it).
fn samples() -> Vec<(&'static str, serde_json::Value)> {
    let dep_ready = deployment(1, 1, 1);
    let dep_rolling = deployment(0, 1, 1);
    let svc = service();
    let ready_pods = [pod("jupyter-7c9d-abcde", true, None)];
    let starting_pods = [pod("jupyter-7c9d-abcde", false, None)];
    let crashing = [pod("jupyter-7c9d-abcde", false, Some("ImagePullBackOff"))];
    let applied = |pods| Outcome::Applied {
        workload: AppliedWorkload::Deployment(&dep_ready),
        service: Some(&svc),
        pods,
    };

    let mut out = Vec::new();
    let mut push = |name: &'static str, mut sys: System, st: Option<SystemStatus>| {
        sys.status = st;
        out.push((name, serde_json::to_value(&sys).unwrap()));
    };

    let sys = jupyter().build();
    let ready = status(&sys, applied(&ready_pods), &SessionStatus::None, None);
    push("ready", sys.clone(), Some(ready.clone()));

    // The user edited the spec: generation 2, the controller has not written a status for it yet.
    let mut edited = sys.clone();
    edited.metadata.generation = Some(2);
    push("stale-generation", edited, Some(ready.clone()));

    push("new", sys.clone(), None);

    let rolling = Outcome::Applied {
        workload: AppliedWorkload::Deployment(&dep_rolling),
        service: Some(&svc),
        pods: &starting_pods,
    };
    let progressing = status(&sys, rolling, &SessionStatus::None, None);
    push("progressing", sys.clone(), Some(progressing));

    let degraded = status(&sys, applied(&crashing), &SessionStatus::None, Some(&ready));
    push("degraded", sys.clone(), Some(degraded));

    let invalid = Outcome::Invalid {
        reason: "MissingClaim",
        message: "spec.volumes[0].claim: PersistentVolumeClaim rstudio-home does not exist in namespace research",
    };
    let failed = status(&sys, invalid, &SessionStatus::None, None);
    push("failed", sys.clone(), Some(failed));

    let paused_sys = jupyter().generation(3).paused(true).build();
    let paused = status(
        &paused_sys,
        Outcome::Applied {
            workload: AppliedWorkload::Deployment(&deployment(0, 0, 0)),
            service: Some(&svc),
            pods: &[],
        },
        &SessionStatus::None,
        None,
    );
    push("paused", paused_sys, Some(paused));

    let session_sys = jupyter().session("notebook-session-42").build();
    let waiting = status(
        &session_sys,
        Outcome::NotStarted,
        &SessionStatus::Missing,
        None,
    );
    push("waiting-for-session", session_sys.clone(), Some(waiting));
    let ended = status(
        &session_sys,
        Outcome::NotStarted,
        &SessionStatus::Ended {
            reason: "SessionExpired",
        },
        None,
    );
    push("session-expired", session_sys, Some(ended));

    out
}

#[test]
fn argocd_health_testdata_is_what_the_controller_writes() {
    let update = std::env::var("UPDATE_GITOPS_TESTDATA").is_ok_and(|v| !v.is_empty() && v != "0");
    let dir = testdata();
    let mut stale = Vec::new();
    for (name, value) in samples() {
        let path = dir.join(format!("{name}.json"));
        let text = format!("{}\n", serde_json::to_string_pretty(&value).unwrap());
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != text {
            stale.push(path.display().to_string());
        }
        // And every sample is a System the API would accept back (the Rust type round-trips it).
        let back: System = serde_json::from_str(&committed).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), value, "{name}");
    }
    assert!(
        stale.is_empty(),
        "status samples drifted from the controller's status function: {stale:?}\n\
         review, then UPDATE_GITOPS_TESTDATA=1 cargo test --test chart_gitops and re-run ci/chart-check.sh"
    );
}

/// The Systems of the example GitOps repository render with `tycho render -f`, the preview docs/gitops.md
/// tells users to run before they commit: every file, and every object it would create.
#[test]
fn gitops_example_systems_render_with_tycho_render() {
    let files = yaml_files("gitops/examples/systems/research");
    assert!(files.len() >= 2, "{files:?}");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tycho"));
    cmd.arg("render");
    for f in &files {
        cmd.arg("-f").arg(f);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tycho render failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kinds: Vec<(String, String)> = stdout
        .split("\n---")
        .filter_map(|doc| {
            let v: serde_json::Value = serde_saphyr::from_str(doc).ok()?;
            Some((
                v["kind"].as_str()?.to_string(),
                v["metadata"]["name"].as_str()?.to_string(),
            ))
        })
        .collect();
    for expected in [
        ("ConfigMap", "landing-files"),
        ("Deployment", "landing"),
        ("Service", "landing"),
        ("Deployment", "shared-notebook"),
        ("Service", "shared-notebook"),
    ] {
        assert!(
            kinds
                .iter()
                .any(|(k, n)| k == expected.0 && n == expected.1),
            "{expected:?} missing from {kinds:?}"
        );
    }
}

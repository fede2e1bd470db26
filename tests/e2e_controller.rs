//! End to end with the `tycho controller` process against `tycho sim` (or the cluster of
//! `TYCHO_TEST_KUBECONFIG`, in a random namespace): children created with owner references; status Ready with
//! node ports once the simulated pods run; spec edits roll out; removed files, ports and containers are
//! pruned; a child deleted by hand comes back; a controller killed with SIGKILL mid-way and restarted
//! converges with no duplicate or orphaned object; a dropped watch and a forced 410 Gone are recovered from
//! (emulator only: fault injection).

#[path = "common/fixtures.rs"]
mod fixtures;
#[path = "common/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fixtures::system;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use process::{E2e, WAIT, eventually};
use serde_json::json;
use tycho_model::System;

fn web(image: &str) -> serde_json::Value {
    json!({
        "name": "web", "image": image,
        "ports": [{ "port": 80, "name": "http" }],
        "files": [{ "path": "/usr/share/nginx/html/index.html", "content": "hello\n" }],
        "requests": { "cpus": "50m", "memory": "32Mi" },
    })
}

fn sidecar() -> serde_json::Value {
    json!({
        "name": "side", "image": "busybox:1.37", "command": ["sleep", "infinity"],
        "ports": [{ "port": 9000, "name": "metrics" }],
        "requests": { "cpus": "10m", "memory": "16Mi" },
    })
}

/// Server-side apply of a whole System, as a user's tool would.
async fn apply(api: &Api<System>, s: &System) {
    let pp = PatchParams::apply("e2e-test").force();
    api.patch(&s.name_any(), &pp, &Patch::Apply(s))
        .await
        .unwrap();
}

async fn wait_ready(e: &E2e, name: &str, replicas: &str) -> System {
    let api: Api<System> = e.api();
    let got = eventually(e.ready_wait(), || async {
        let s = api.get(name).await.ok()?;
        let st = s.status.as_ref()?;
        (st.phase.map(|p| p.as_str()) == Some("Ready")
            && st.ready.as_deref() == Some(replicas)
            && st.observed_generation == s.metadata.generation)
            .then_some(s)
    })
    .await;
    match got {
        Some(s) => s,
        None => {
            let last = api.get(name).await.ok().and_then(|s| s.status);
            let d = e.api::<Deployment>().get_opt(name).await.ok().flatten();
            let pods: Vec<String> = e
                .api::<Pod>()
                .list(&by_system(name))
                .await
                .map(|l| l.items)
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    let ready = p
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .and_then(|c| {
                            c.iter()
                                .find(|c| c.type_ == "Ready")
                                .map(|c| c.status.clone())
                        });
                    format!(
                        "{} phase={:?} ready={ready:?} deleting={}",
                        p.name_any(),
                        p.status.as_ref().and_then(|s| s.phase.clone()),
                        p.metadata.deletion_timestamp.is_some()
                    )
                })
                .collect();
            panic!(
                "{name} not Ready {replicas}; status: {last:?}\nDeployment status: {:?}\npods: {pods:#?}",
                d.and_then(|d| d.status)
            )
        }
    }
}

fn owned_by(meta: &kube::api::ObjectMeta, sys: &System) -> bool {
    let uid = sys.metadata.uid.as_deref().unwrap();
    meta.owner_references.as_ref().is_some_and(|refs| {
        refs.len() == 1
            && refs[0].uid == uid
            && refs[0].kind == "System"
            && refs[0].api_version == "tycho.dev/v1alpha1"
            && refs[0].name == sys.name_any()
            && refs[0].controller == Some(true)
            && refs[0].block_owner_deletion == Some(true)
    })
}

fn by_system(name: &str) -> ListParams {
    ListParams::default().labels(&format!("tycho.dev/system={name}"))
}

/// (Deployments, Services, ConfigMaps) labelled for System `name`, not being deleted.
async fn counts(e: &E2e, name: &str) -> (usize, usize, usize) {
    let lp = by_system(name);
    let alive = |m: &kube::api::ObjectMeta| m.deletion_timestamp.is_none();
    (
        e.api::<Deployment>()
            .list(&lp)
            .await
            .unwrap()
            .items
            .iter()
            .filter(|o| alive(&o.metadata))
            .count(),
        e.api::<Service>()
            .list(&lp)
            .await
            .unwrap()
            .items
            .iter()
            .filter(|o| alive(&o.metadata))
            .count(),
        e.api::<ConfigMap>()
            .list(&lp)
            .await
            .unwrap()
            .items
            .iter()
            .filter(|o| alive(&o.metadata))
            .count(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_are_owned_and_status_turns_ready_with_node_ports() {
    let mut e = E2e::start().await;
    let _c = e.controller().await;
    let systems: Api<System> = e.api();
    apply(
        &systems,
        &system("shop")
            .container(web("nginx:1.27"))
            .container(sidecar())
            .build(),
    )
    .await;
    let s = wait_ready(&e, "shop", "1/1").await;

    let d = e.api::<Deployment>().get("shop").await.unwrap();
    let svc = e.api::<Service>().get("shop").await.unwrap();
    let cm = e.api::<ConfigMap>().get("shop-files").await.unwrap();
    for (kind, meta) in [
        ("Deployment", &d.metadata),
        ("Service", &svc.metadata),
        ("ConfigMap", &cm.metadata),
    ] {
        assert!(
            owned_by(meta, &s),
            "{kind} not owned by the System: {:?}",
            meta.owner_references
        );
        assert_eq!(
            meta.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
            "tycho",
            "{kind}"
        );
    }
    assert_eq!(counts(&e, "shop").await, (1, 1, 1));

    // The status names the node ports Kubernetes allocated for the Service.
    let node_ports: Vec<String> = svc
        .spec
        .unwrap()
        .ports
        .unwrap()
        .iter()
        .map(|p| {
            p.node_port
                .expect("a NodePort Service port has a node port")
                .to_string()
        })
        .collect();
    assert_eq!(node_ports.len(), 2);
    let st = s.status.unwrap();
    assert_eq!(
        st.node_ports.as_deref(),
        Some(node_ports.join(",").as_str()),
        "{st:?}"
    );
    assert_eq!((st.ready_replicas, st.replicas), (1, 1));
    assert_eq!(st.endpoints.len(), 2, "{:?}", st.endpoints);
    let ready = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    assert_eq!(ready.status, "True");
    // The pod that made it Ready is the Deployment's.
    let pods = e.api::<Pod>().list(&by_system("shop")).await.unwrap().items;
    assert_eq!(
        pods.len(),
        1,
        "{:?}",
        pods.iter().map(|p| p.name_any()).collect::<Vec<_>>()
    );
    e.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_edits_roll_out_and_removed_files_ports_and_containers_are_pruned() {
    let mut e = E2e::start().await;
    let _c = e.controller().await;
    let systems: Api<System> = e.api();
    let deployments: Api<Deployment> = e.api();
    let services: Api<Service> = e.api();
    apply(
        &systems,
        &system("app")
            .container(web("nginx:1.27"))
            .container(sidecar())
            .build(),
    )
    .await;
    wait_ready(&e, "app", "1/1").await;
    let first_rs: Vec<String> = e
        .api::<ReplicaSet>()
        .list(&by_system("app"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.name_any())
        .collect();
    assert_eq!(first_rs.len(), 1, "{first_rs:?}");

    // An edit of the image rolls out: new template, a new ReplicaSet, and Ready on the new pods.
    apply(
        &systems,
        &system("app")
            .container(web("nginx:1.28"))
            .container(sidecar())
            .build(),
    )
    .await;
    let rolled = eventually(e.ready_wait(), || async {
        let rs = e
            .api::<ReplicaSet>()
            .list(&by_system("app"))
            .await
            .ok()?
            .items;
        let new = rs.iter().find(|r| {
            let image = r
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .and_then(|s| s.containers[0].image.clone());
            !first_rs.contains(&r.name_any()) && image.as_deref() == Some("nginx:1.28")
        })?;
        (new.status.as_ref()?.ready_replicas == Some(1)).then_some(())
    })
    .await;
    assert!(
        rolled.is_some(),
        "no new ReplicaSet with nginx:1.28 became ready"
    );
    let d = deployments.get("app").await.unwrap();
    let containers = d.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(containers[0].image.as_deref(), Some("nginx:1.28"));
    let s = wait_ready(&e, "app", "1/1").await;
    let pods = e.api::<Pod>().list(&by_system("app")).await.unwrap().items;
    assert!(
        pods.iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("nginx:1.28")),
        "old pods still running after the rollout"
    );
    assert!(
        s.status.unwrap().node_ports.unwrap().contains(','),
        "two node ports"
    );

    // Remove the sidecar (its port with it) and the files: the Deployment has one container, the Service
    // one port, the ConfigMap is deleted.
    let mut w = web("nginx:1.28");
    w.as_object_mut().unwrap().remove("files");
    apply(&systems, &system("app").container(w.clone()).build()).await;
    let pruned = eventually(WAIT, || async {
        let d = deployments.get("app").await.ok()?;
        let names: Vec<String> = d
            .spec?
            .template
            .spec?
            .containers
            .into_iter()
            .map(|c| c.name)
            .collect();
        let ports: Vec<i32> = services
            .get("app")
            .await
            .ok()?
            .spec?
            .ports?
            .iter()
            .map(|p| p.port)
            .collect();
        let cm_gone = e
            .api::<ConfigMap>()
            .get_opt("app-files")
            .await
            .ok()?
            .is_none();
        (names == ["web"] && ports == [80] && cm_gone).then_some(())
    })
    .await;
    assert!(
        pruned.is_some(),
        "sidecar, port 9000 or the files ConfigMap not pruned: {:?} / {:?}",
        deployments
            .get("app")
            .await
            .unwrap()
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .containers
            .len(),
        services.get("app").await.unwrap().spec.unwrap().ports
    );
    let s = wait_ready(&e, "app", "1/1").await;
    assert!(
        !s.status.unwrap().node_ports.unwrap().contains(','),
        "one node port left"
    );

    // Nothing exposed any more: the Service is deleted and the status has no node ports.
    w["ports"] = json!([{ "port": 80, "name": "http", "expose": false }]);
    apply(&systems, &system("app").container(w).build()).await;
    let gone = eventually(WAIT, || async {
        services.get_opt("app").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "the Service stays although nothing is exposed"
    );
    let s = wait_ready(&e, "app", "1/1").await;
    let st = s.status.unwrap();
    assert!(st.node_ports.is_none() && st.endpoints.is_empty(), "{st:?}");
    assert_eq!(counts(&e, "app").await, (1, 0, 0));
    e.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_deleted_by_hand_comes_back() {
    let mut e = E2e::start().await;
    let _c = e.controller().await;
    let systems: Api<System> = e.api();
    apply(
        &systems,
        &system("drift").container(web("nginx:1.27")).build(),
    )
    .await;
    let s = wait_ready(&e, "drift", "1/1").await;
    let uids = |objs: [&kube::api::ObjectMeta; 3]| objs.map(|m| m.uid.clone().unwrap());
    let before = uids([
        &e.api::<Deployment>().get("drift").await.unwrap().metadata,
        &e.api::<Service>().get("drift").await.unwrap().metadata,
        &e.api::<ConfigMap>()
            .get("drift-files")
            .await
            .unwrap()
            .metadata,
    ]);
    for (kind, name) in [
        ("deployment", "drift"),
        ("service", "drift"),
        ("configmap", "drift-files"),
    ] {
        let out = e.kubectl_ok(&["delete", kind, name]).await;
        assert!(out.contains("deleted"), "{out}");
        let back = eventually(WAIT, || async {
            let meta = match kind {
                "deployment" => e.api::<Deployment>().get_opt(name).await.ok()??.metadata,
                "service" => e.api::<Service>().get_opt(name).await.ok()??.metadata,
                _ => e.api::<ConfigMap>().get_opt(name).await.ok()??.metadata,
            };
            (meta.deletion_timestamp.is_none() && !before.contains(meta.uid.as_ref()?))
                .then_some(meta)
        })
        .await
        .unwrap_or_else(|| panic!("the {kind} {name} deleted by hand did not come back"));
        assert!(
            owned_by(&back, &s),
            "the re-created {kind} is owned: {:?}",
            back.owner_references
        );
    }
    wait_ready(&e, "drift", "1/1").await;
    assert_eq!(counts(&e, "drift").await, (1, 1, 1));
    e.cleanup().await;
}

/// Every child labelled for a System must belong to a live System of that name, through its uid; each System
/// has exactly one of each kind it needs.
async fn assert_no_duplicates_or_orphans(
    e: &E2e,
    expected: &BTreeMap<String, (usize, usize, usize)>,
) {
    let systems: BTreeMap<String, System> = e
        .api::<System>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| (s.name_any(), s))
        .collect();
    assert_eq!(
        systems.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (name, want) in expected {
        assert_eq!(&counts(e, name).await, want, "children of {name}");
    }
    let lp = ListParams::default().labels("app.kubernetes.io/managed-by=tycho");
    let mut metas: Vec<(String, kube::api::ObjectMeta)> = Vec::new();
    metas.extend(
        e.api::<Deployment>()
            .list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|o| ("Deployment".into(), o.metadata)),
    );
    metas.extend(
        e.api::<Service>()
            .list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|o| ("Service".into(), o.metadata)),
    );
    metas.extend(
        e.api::<ConfigMap>()
            .list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|o| ("ConfigMap".into(), o.metadata)),
    );
    for (kind, meta) in metas {
        let owner = meta
            .labels
            .as_ref()
            .and_then(|l| l.get("tycho.dev/system"))
            .cloned()
            .unwrap_or_default();
        let sys = systems.get(&owner).unwrap_or_else(|| {
            panic!(
                "orphan {kind} {} (System {owner:?} is gone)",
                meta.name.clone().unwrap()
            )
        });
        assert!(
            owned_by(&meta, sys),
            "{kind} {} not owned by the live System {owner}",
            meta.name.unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_way_and_restarted_converges_without_duplicates_or_orphans() {
    let mut e = E2e::start().await;
    let systems: Api<System> = e.api();
    // Eight Systems in one kubectl apply, and the controller SIGKILLed as soon as the first child exists.
    let mut docs = String::new();
    for i in 0..8 {
        let s = system(&format!("s{i}"))
            .container(web("nginx:1.27"))
            .container(sidecar())
            .build();
        docs.push_str("---\n");
        docs.push_str(&serde_json::to_string(&s).unwrap());
        docs.push('\n');
    }
    let file = e.dir.path().join("systems.yaml");
    std::fs::write(&file, docs).unwrap();
    let mut c = e.controller().await;
    if e.is_emulator() {
        // Every write of a Deployment fails: the controller creates each System's ConfigMap and Service
        // (in that order) and fails at its Deployment, so that whenever it is killed, it is mid-way.
        e.set_faults(json!({ "errors": [
            { "verb": "patch", "resource": "deployments", "rate": 1.0, "code": 500, "retryAfterSeconds": 0 }
        ] }))
        .await;
    }
    e.kubectl_ok(&["apply", "-f", &file.display().to_string()])
        .await;
    // The kill lands once the controller has created a first child: on the emulator, once it has also
    // failed at a Deployment (the request log shows the 500); on a real cluster, as soon as a Deployment
    // exists (polling tightly).
    let deadline = Instant::now() + WAIT;
    loop {
        let started = if e.is_emulator() {
            let services = e
                .api::<Service>()
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .len();
            let failed = e
                .requests()
                .await
                .iter()
                .any(|r| r["resource"] == "deployments" && r["code"] == 500);
            services > 0 && failed
        } else {
            !e.api::<Deployment>()
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty()
        };
        if started {
            break;
        }
        assert!(Instant::now() < deadline, "the controller created nothing");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.kill();
    // What it had made when it died: mid-way means some System without all of its children.
    let mut made = Vec::new();
    for i in 0..8 {
        made.push(counts(&e, &format!("s{i}")).await);
    }
    eprintln!(
        "MEASURE controller killed with (Deployments, Services, ConfigMaps) per System {made:?}"
    );
    let complete = made.iter().filter(|c| **c == (1, 1, 1)).count();
    let started = made.iter().filter(|c| **c != (0, 0, 0)).count();
    assert!(started > 0, "killed before it created anything: {made:?}");
    if e.is_emulator() {
        assert_eq!(
            complete, 0,
            "no System can be complete without its Deployment: {made:?}"
        );
        e.set_faults(json!({})).await;
    } else if complete == 8 {
        process::skip(
            "a_controller_killed_mid_way_and_restarted_converges_without_duplicates_or_orphans",
            "the kill landed after the controller had finished (no fault injection to hold it mid-way on a real cluster)",
        );
    }

    // While it is down: one System deleted (the cluster's garbage collector removes its children), one
    // edited (a second replica, without the sidecar and its port), one added.
    systems.delete("s0", &Default::default()).await.unwrap();
    // (A merge patch replaces the list: kubectl's client-side apply owns it, so a server-side apply by
    // another manager would keep the sidecar.)
    systems
        .patch(
            "s1",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 2, "containers": [web("nginx:1.27")] } })),
        )
        .await
        .unwrap();
    systems
        .create(
            &PostParams::default(),
            &system("s8").container(web("nginx:1.27")).build(),
        )
        .await
        .unwrap();

    let started = Instant::now();
    let _c2 = e.controller().await;
    let mut expected = BTreeMap::new();
    for i in 1..=8 {
        let name = format!("s{i}");
        wait_ready(&e, &name, if i == 1 { "2/2" } else { "1/1" }).await;
        expected.insert(name, (1, 1, 1));
    }
    eprintln!(
        "MEASURE restarted controller converged 8 Systems in {:?}",
        started.elapsed()
    );
    let gone = eventually(WAIT, || async {
        (counts(&e, "s0").await == (0, 0, 0)).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "children of the deleted s0 remain: {:?}",
        counts(&e, "s0").await
    );
    assert_no_duplicates_or_orphans(&e, &expected).await;
    let d1 = e.api::<Deployment>().get("s1").await.unwrap().spec.unwrap();
    assert_eq!(d1.replicas, Some(2));
    assert_eq!(d1.template.spec.unwrap().containers.len(), 1);
    let p1: Vec<i32> = e
        .api::<Service>()
        .get("s1")
        .await
        .unwrap()
        .spec
        .unwrap()
        .ports
        .unwrap()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(p1, [80]);
    // Pods: exactly the wanted number per System once settled (no duplicate ReplicaSets running).
    let settled = eventually(WAIT, || async {
        for i in 1..=8 {
            let want = if i == 1 { 2 } else { 1 };
            let pods = e
                .api::<Pod>()
                .list(&by_system(&format!("s{i}")))
                .await
                .ok()?
                .items;
            if pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .count()
                != want
            {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(settled.is_some(), "pod counts never settled");
    e.cleanup().await;
}

/// The controller's requests since `from` (an index into its request log).
async fn controller_lists_since(e: &E2e, from: usize) -> Vec<String> {
    e.controller_requests().await[from..]
        .iter()
        .filter(|r| r["verb"] == "list")
        .map(|r| r["path"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_watch_and_a_forced_410_are_recovered_from() {
    let mut e = E2e::start().await;
    if e.skip_unless_emulator(
        "a_dropped_watch_and_a_forced_410_are_recovered_from",
        "fault injection (dropped watches, forced 410 Gone)",
    ) {
        return;
    }
    let ns = e.namespace.clone();
    let c = e.tagged_controller(Some(&ns)).await;
    let systems: Api<System> = e.api();
    apply(&systems, &system("f").container(web("nginx:1.27")).build()).await;
    wait_ready(&e, "f", "1/1").await;

    // Every open watch stream ends; a change made afterwards is still reconciled.
    e.set_faults(json!({ "dropWatches": true })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    systems
        .patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 2 } })),
        )
        .await
        .unwrap();
    wait_ready(&e, "f", "2/2").await;
    assert_eq!(
        e.api::<Deployment>()
            .get("f")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(2)
    );

    // The next watch that resumes from a resourceVersion gets 410 Gone, and the controller's connections
    // (only those: the emulator's simulated cluster watches too) are cut so that one of its watches resumes
    // first; the 410 shows as a fresh list by the controller.
    let mut relisted = Vec::new();
    for _ in 0..10 {
        let mark = e.controller_requests().await.len();
        e.set_faults(json!({ "forceGone": true })).await;
        c.cut_connections();
        relisted = eventually(Duration::from_secs(5), || async {
            let l = controller_lists_since(&e, mark).await;
            (!l.is_empty()).then_some(l)
        })
        .await
        .unwrap_or_default();
        if !relisted.is_empty() {
            break;
        }
    }
    assert!(
        !relisted.is_empty(),
        "no watch of the controller was answered with 410 Gone"
    );
    let faults = e.faults().await;
    assert_eq!(
        faults["forceGone"], false,
        "the forced 410 was served: {faults}"
    );
    eprintln!("controller re-listed after 410 Gone: {relisted:?}");
    e.set_faults(json!({})).await;

    // Changes after the 410: a spec edit and a child deleted by hand are reconciled.
    systems
        .patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 3 } })),
        )
        .await
        .unwrap();
    wait_ready(&e, "f", "3/3").await;
    let uid = e.api::<Service>().get("f").await.unwrap().metadata.uid;
    e.kubectl_ok(&["delete", "service", "f"]).await;
    let back = eventually(WAIT, || async {
        let s = e.api::<Service>().get_opt("f").await.ok()??;
        (s.metadata.uid != uid).then_some(())
    })
    .await;
    assert!(
        back.is_some(),
        "a Service deleted after the 410 did not come back"
    );
    let s = systems.get("f").await.unwrap();
    assert_eq!(
        s.meta().generation,
        s.status.as_ref().unwrap().observed_generation
    );
    e.cleanup().await;
}

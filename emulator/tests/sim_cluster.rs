//! End-to-end tests of the simulated cluster (nodes, Deployment and ReplicaSet controllers,
//! scheduler, kubelet) running against the emulator's API server, driven with the `kube` client
//! as a user or an operator would. Each test names the Kubernetes behaviour it checks.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tycho_emulator::{Emulator, EmulatorConfig};

const TIMEOUT: Duration = Duration::from_secs(20);

async fn start(nodes: usize) -> (Emulator, Client) {
    let emu = Emulator::start(EmulatorConfig {
        nodes,
        pod_ready_delay: Duration::from_millis(200),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let client = client_for(&emu.url());
    (emu, client)
}

fn client_for(url: &str) -> Client {
    let cfg = kube::Config::new(url.parse().unwrap());
    Client::try_from(cfg).unwrap()
}

async fn namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &ns).await.unwrap();
}

/// Polls `f` until it returns `Some`, or panics with `what` after [`TIMEOUT`].
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "main", "image": image,
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}
                }]}
            }
        }
    }))
    .unwrap()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn controller_of(obj: &impl kube::Resource) -> Option<(String, String)> {
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| (o.kind.clone(), o.name.clone()))
}

async fn pods_of(api: &Api<Pod>, app: &str) -> Vec<Pod> {
    api.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
}

/// Waits until the Deployment has `n` Running and Ready pods, all from ReplicaSet `rs`, and no
/// other pod; returns them.
async fn wait_ready_pods(pods: &Api<Pod>, app: &str, rs: &str, n: usize) -> Vec<Pod> {
    eventually(&format!("{n} ready pods of {rs}"), || async {
        let ps = pods_of(pods, app).await;
        let ok = ps.len() == n
            && ps.iter().all(|p| {
                is_ready(p)
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    && controller_of(p) == Some(("ReplicaSet".into(), rs.into()))
            });
        ok.then_some(ps)
    })
    .await
}

/// Waits until `n` nodes report Ready.
async fn wait_nodes_ready(client: &Client, n: usize) {
    let nodes: Api<Node> = Api::all(client.clone());
    eventually("nodes Ready", || async {
        let l = nodes.list(&ListParams::default()).await.ok()?;
        let ready = l
            .items
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        (ready == n).then_some(())
    })
    .await;
}

/// Nodes register Ready with capacity, addresses and labels, and renew a Lease in
/// kube-node-lease (https://kubernetes.io/docs/concepts/architecture/nodes/#node-heartbeats).
#[tokio::test]
async fn nodes_register_ready_with_capacity_and_heartbeat_leases() {
    let (_emu, client) = start(3).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let list = eventually("3 nodes", || async {
        let l = nodes.list(&ListParams::default()).await.ok()?;
        (l.items.len() == 3).then_some(l.items)
    })
    .await;
    let mut ips = HashSet::new();
    for n in &list {
        assert!(n.name_any().starts_with("sim-node-"));
        assert_eq!(n.labels()["kubernetes.io/os"], "linux");
        assert_eq!(n.labels()["kubernetes.io/hostname"], n.name_any());
        assert_eq!(n.labels()["tycho.dev/simulated"], "true");
        let st = n.status.as_ref().unwrap();
        let alloc = st.allocatable.as_ref().unwrap();
        assert_eq!(alloc["pods"].0, "110");
        assert_eq!(alloc["cpu"].0, "8");
        let ready = st
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        let ip = st
            .addresses
            .as_ref()
            .unwrap()
            .iter()
            .find(|a| a.type_ == "InternalIP")
            .unwrap();
        assert!(ip.address.starts_with("10.0.0."));
        ips.insert(ip.address.clone());
    }
    assert_eq!(ips.len(), 3);
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = eventually("node lease", || async {
        leases.get_opt("sim-node-1").await.ok().flatten()
    })
    .await;
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("sim-node-1"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    assert!(spec.renew_time.is_some());
}

/// A Deployment gets a ReplicaSet `<name>-<pod-template-hash>` owned by it, whose pods are
/// scheduled onto the nodes, spread, and turn Running and Ready with unique pod IPs; the
/// Deployment's status and revision follow
/// (https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#creating-a-deployment).
#[tokio::test]
async fn deployment_gets_a_replicaset_and_ready_pods_on_sim_nodes() {
    let (_emu, client) = start(3).await;
    namespace(&client, "app").await;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "app");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "app");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "app");
    let d = deps
        .create(&PostParams::default(), &deployment("web", 3, "nginx:1.27"))
        .await
        .unwrap();

    let rs = eventually("a ReplicaSet", || async {
        let l = rss.list(&ListParams::default()).await.ok()?;
        l.items.into_iter().next()
    })
    .await;
    let hash = rs.labels()["pod-template-hash"].clone();
    assert_eq!(rs.name_any(), format!("web-{hash}"));
    let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.kind, "Deployment");
    assert_eq!(owner.uid, d.metadata.uid.clone().unwrap());
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));
    assert_eq!(
        rs.spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()["pod-template-hash"],
        hash
    );

    let ready = wait_ready_pods(&pods, "web", &rs.name_any(), 3).await;
    let mut ips = HashSet::new();
    let mut nodes = HashSet::new();
    for p in &ready {
        assert!(p.name_any().starts_with(&format!("{}-", rs.name_any())));
        let st = p.status.as_ref().unwrap();
        let ip = st.pod_ip.clone().unwrap();
        assert!(ip.starts_with("10.244."), "{ip}");
        ips.insert(ip);
        assert!(st.host_ip.as_ref().unwrap().starts_with("10.0.0."));
        assert!(st.start_time.is_some());
        let cs = &st.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready && cs.started == Some(true));
        assert!(cs.state.as_ref().unwrap().running.is_some());
        for t in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            assert!(
                st.conditions
                    .as_ref()
                    .unwrap()
                    .iter()
                    .any(|c| c.type_ == t && c.status == "True"),
                "{t}"
            );
        }
        nodes.insert(p.spec.as_ref().unwrap().node_name.clone().unwrap());
    }
    assert_eq!(ips.len(), 3, "pod IPs are unique");
    assert_eq!(
        nodes.len(),
        3,
        "least-allocated scoring spreads pods over the nodes"
    );

    let d = eventually("Deployment available", || async {
        let d = deps.get("web").await.ok()?;
        let s = d.status.as_ref()?;
        (s.available_replicas == Some(3)
            && s.updated_replicas == Some(3)
            && s.ready_replicas == Some(3))
        .then_some(d)
    })
    .await;
    let s = d.status.as_ref().unwrap();
    assert_eq!(s.observed_generation, d.metadata.generation);
    let conds = s.conditions.as_ref().unwrap();
    let available = conds.iter().find(|c| c.type_ == "Available").unwrap();
    assert_eq!(
        (available.status.as_str(), available.reason.as_deref()),
        ("True", Some("MinimumReplicasAvailable"))
    );
    let progressing = eventually("Progressing complete", || async {
        let d = deps.get("web").await.ok()?;
        d.status?.conditions?.into_iter().find(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("NewReplicaSetAvailable")
        })
    })
    .await;
    assert_eq!(progressing.status, "True");
    assert_eq!(d.annotations()["deployment.kubernetes.io/revision"], "1");
    let rs = rss.get(&rs.name_any()).await.unwrap();
    let rst = rs.status.unwrap();
    assert_eq!(
        (rst.replicas, rst.ready_replicas, rst.available_replicas),
        (3, Some(3), Some(3))
    );
    assert_eq!(rst.fully_labeled_replicas, Some(3));
}

/// Changing the pod template rolls out a new ReplicaSet (revision 2) and scales the old one to
/// zero while keeping it as history
/// (https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#updating-a-deployment).
#[tokio::test]
async fn template_change_rolls_out_a_new_replicaset() {
    let (_emu, client) = start(3).await;
    namespace(&client, "roll").await;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "roll");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "roll");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "roll");
    deps.create(&PostParams::default(), &deployment("web", 3, "nginx:1.26"))
        .await
        .unwrap();
    let first = eventually("first ReplicaSet", || async {
        rss.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await;
    wait_ready_pods(&pods, "web", &first.name_any(), 3).await;

    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}}});
    deps.patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();

    let second = eventually("second ReplicaSet", || async {
        rss.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|r| r.name_any() != first.name_any())
    })
    .await;
    assert_eq!(
        second.annotations()["deployment.kubernetes.io/revision"],
        "2"
    );
    let ready = wait_ready_pods(&pods, "web", &second.name_any(), 3).await;
    for p in &ready {
        assert_eq!(
            p.spec.as_ref().unwrap().containers[0].image.as_deref(),
            Some("nginx:1.27")
        );
    }
    let old = eventually("old ReplicaSet at zero", || async {
        let r = rss.get(&first.name_any()).await.ok()?;
        (r.spec.as_ref()?.replicas == Some(0) && r.status.as_ref()?.replicas == 0).then_some(r)
    })
    .await;
    assert_eq!(old.annotations()["deployment.kubernetes.io/revision"], "1");
    let d = eventually("rollout complete", || async {
        let d = deps.get("web").await.ok()?;
        let s = d.status.as_ref()?;
        (s.updated_replicas == Some(3) && s.replicas == Some(3) && s.available_replicas == Some(3))
            .then_some(d)
    })
    .await;
    assert_eq!(d.annotations()["deployment.kubernetes.io/revision"], "2");
}

/// Scaling a Deployment to zero removes its pods; scaling back creates them again
/// (https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#scaling-a-deployment).
#[tokio::test]
async fn scale_to_zero_and_back() {
    let (_emu, client) = start(3).await;
    namespace(&client, "scale").await;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "scale");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "scale");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "scale");
    deps.create(&PostParams::default(), &deployment("web", 2, "nginx"))
        .await
        .unwrap();
    let rs = eventually("ReplicaSet", || async {
        rss.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await;
    wait_ready_pods(&pods, "web", &rs.name_any(), 2).await;

    deps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 0}})),
    )
    .await
    .unwrap();
    eventually("no pods", || async {
        pods_of(&pods, "web").await.is_empty().then_some(())
    })
    .await;
    eventually("status at zero", || async {
        let s = deps.get("web").await.ok()?.status?;
        (s.replicas.unwrap_or(0) == 0 && s.available_replicas.unwrap_or(0) == 0).then_some(())
    })
    .await;
    assert_eq!(
        rss.get(&rs.name_any())
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(0)
    );

    deps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await
    .unwrap();
    wait_ready_pods(&pods, "web", &rs.name_any(), 4).await;
    assert_eq!(
        rss.list(&ListParams::default()).await.unwrap().items.len(),
        1,
        "scaling does not create a ReplicaSet"
    );
}

/// A pod requesting more memory than any node has stays Pending with PodScheduled=False,
/// reason Unschedulable, and one Warning FailedScheduling Event — retried, not in a hot loop
/// (https://kubernetes.io/docs/concepts/scheduling-eviction/kube-scheduler/).
#[tokio::test]
async fn unschedulable_pod_stays_pending_with_a_failed_scheduling_event() {
    let (_emu, client) = start(3).await;
    wait_nodes_ready(&client, 3).await;
    namespace(&client, "big").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "big");
    let events: Api<Event> = Api::namespaced(client.clone(), "big");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "huge"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"memory": "64Gi"}}}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let cond = eventually("PodScheduled=False", || async {
        let p = pods.get("huge").await.ok()?;
        p.status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
    })
    .await;
    assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
    let msg = cond.message.unwrap();
    assert!(
        msg.starts_with("0/3 nodes are available: 3 Insufficient memory."),
        "{msg}"
    );
    let ev = eventually("FailedScheduling event", || async {
        events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("FailedScheduling"))
    })
    .await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_eq!(ev.involved_object.kind.as_deref(), Some("Pod"));
    assert_eq!(ev.involved_object.name.as_deref(), Some("huge"));
    assert_eq!(ev.message.as_deref(), Some(msg.as_str()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let p = pods.get("huge").await.unwrap();
    assert!(p.spec.unwrap().node_name.is_none());
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Pending"));
    let n = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("FailedScheduling"))
        .count();
    assert_eq!(n, 1, "FailedScheduling is not repeated in a hot loop");
}

/// While the kubelet is paused, bound pods stay not ready; once it resumes they turn Ready (a
/// node whose kubelet stops posting status leaves its pods as they are).
#[tokio::test]
async fn paused_kubelet_keeps_pods_not_ready() {
    let (emu, client) = start(2).await;
    namespace(&client, "paused").await;
    emu.faults().pause_kubelet(true);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "paused");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "paused");
    deps.create(&PostParams::default(), &deployment("web", 2, "nginx"))
        .await
        .unwrap();
    eventually("2 bound pods", || async {
        let ps = pods_of(&pods, "web").await;
        (ps.len() == 2
            && ps
                .iter()
                .all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()))
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for p in pods_of(&pods, "web").await {
        assert!(
            !is_ready(&p),
            "pod {} must not be ready while the kubelet is paused",
            p.name_any()
        );
        assert_ne!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Running")
        );
    }
    let d = deps.get("web").await.unwrap();
    assert_eq!(d.status.and_then(|s| s.available_replicas).unwrap_or(0), 0);
    emu.faults().pause_kubelet(false);
    eventually("ready after resume", || async {
        let ps = pods_of(&pods, "web").await;
        (ps.len() == 2 && ps.iter().all(is_ready)).then_some(())
    })
    .await;
}

/// Deleting a Deployment removes its ReplicaSets and their pods through owner references
/// (https://kubernetes.io/docs/concepts/architecture/garbage-collection/#cascading-deletion).
#[tokio::test]
async fn deleting_a_deployment_removes_replicasets_and_pods() {
    let (_emu, client) = start(3).await;
    namespace(&client, "gc").await;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "gc");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "gc");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "gc");
    deps.create(&PostParams::default(), &deployment("web", 2, "nginx"))
        .await
        .unwrap();
    let rs = eventually("ReplicaSet", || async {
        rss.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await;
    wait_ready_pods(&pods, "web", &rs.name_any(), 2).await;
    deps.delete("web", &DeleteParams::default()).await.unwrap();
    eventually("ReplicaSets gone", || async {
        rss.list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    eventually("pods gone", || async {
        pods.list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
}

/// A pod deleted by hand is replaced by the ReplicaSet controller
/// (https://kubernetes.io/docs/concepts/workloads/controllers/replicaset/#how-a-replicaset-works).
#[tokio::test]
async fn replicaset_replaces_a_deleted_pod() {
    let (_emu, client) = start(3).await;
    namespace(&client, "heal").await;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "heal");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "heal");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "heal");
    deps.create(&PostParams::default(), &deployment("web", 2, "nginx"))
        .await
        .unwrap();
    let rs = eventually("ReplicaSet", || async {
        rss.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await;
    let before = wait_ready_pods(&pods, "web", &rs.name_any(), 2).await;
    let victim = before[0].name_any();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    let after = eventually("replacement", || async {
        let ps = pods_of(&pods, "web").await;
        (ps.len() == 2 && ps.iter().all(is_ready) && ps.iter().all(|p| p.name_any() != victim))
            .then_some(ps)
    })
    .await;
    assert_eq!(after.len(), 2);
}

/// The simulated cluster is an ordinary API client: run against an emulator started without
/// it, with GPU nodes, a pod requesting `nvidia.com/gpu` lands only where GPUs are allocatable
/// and the extended resource is accounted like cpu and memory (kube-scheduler NodeResourcesFit).
#[tokio::test]
async fn extended_resources_are_scheduled_against_allocatable() {
    let emu = Emulator::start(EmulatorConfig {
        simulate: false,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let client = client_for(&emu.url());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let cfg = tycho_emulator::sim::SimConfig {
        nodes: 2,
        gpus_per_node: 1,
        pod_ready_delay: Duration::from_millis(100),
        ..Default::default()
    };
    let sim = tokio::spawn(tycho_emulator::sim::run(client.clone(), cfg, rx));
    namespace(&client, "gpu").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "gpu");
    let gpu_pod = |name: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "cuda", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}
        }))
        .unwrap()
    };
    for n in ["g1", "g2", "g3"] {
        pods.create(&PostParams::default(), &gpu_pod(n))
            .await
            .unwrap();
    }
    let placed: BTreeMap<String, String> = eventually("two GPU pods running", || async {
        let ps = pods.list(&ListParams::default()).await.ok()?.items;
        let running: BTreeMap<String, String> = ps
            .iter()
            .filter(|p| is_ready(p))
            .map(|p| {
                (
                    p.name_any(),
                    p.spec.as_ref().unwrap().node_name.clone().unwrap(),
                )
            })
            .collect();
        (running.len() == 2).then_some(running)
    })
    .await;
    let nodes: HashSet<&String> = placed.values().collect();
    assert_eq!(nodes.len(), 2, "one GPU per node");
    let pending = eventually("third pod unschedulable", || async {
        let ps = pods.list(&ListParams::default()).await.ok()?.items;
        ps.into_iter().find(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable")
                    })
                })
        })
    })
    .await;
    let msg = pending
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(msg.contains("2 Insufficient nvidia.com/gpu"), "{msg}");
    // Freeing a GPU lets the pending pod in.
    let victim = placed.keys().next().unwrap().clone();
    pods.delete(&victim, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    eventually("pending pod scheduled after a GPU frees up", || async {
        let p = pods.get(&pending.name_any()).await.ok()?;
        is_ready(&p).then_some(())
    })
    .await;
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), sim)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Once everything is Ready, the simulated components are quiet: no status written in a loop,
/// only the node heartbeat (one Lease renewal per node every 10 s) — controllers must not
/// trigger themselves (level-triggered reconciliation with deterministic status).
#[tokio::test]
async fn steady_state_makes_no_writes_but_heartbeats() {
    let (emu, client) = start(3).await;
    namespace(&client, "quiet").await;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "quiet");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "quiet");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "quiet");
    deps.create(&PostParams::default(), &deployment("web", 3, "nginx"))
        .await
        .unwrap();
    let rs = eventually("ReplicaSet", || async {
        rss.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await;
    wait_ready_pods(&pods, "web", &rs.name_any(), 3).await;
    eventually("Deployment complete", || async {
        let d = deps.get("web").await.ok()?;
        d.status?.conditions?.into_iter().find(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("NewReplicaSetAvailable")
        })
    })
    .await;
    // Windows are measured in heartbeats, not seconds: a first round of heartbeats (one per node) lets any
    // follow-up of the rollout land; in the next round, nothing but the heartbeats is written.
    let heartbeats = |log: &[tycho_emulator::RequestRecord]| {
        let mut nodes: Vec<String> = log
            .iter()
            .filter(|r| {
                matches!(r.verb.as_str(), "patch" | "update")
                    && r.resource == "leases"
                    && r.namespace == tycho_emulator::sim::nodes::NODE_LEASE_NAMESPACE
                    && r.user_agent == tycho_emulator::SIM_USER_AGENT
                    && r.code < 300
            })
            .map(|r| r.name.clone())
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes.len()
    };
    emu.clear_requests();
    eventually("a heartbeat of every node (settling)", || async {
        (heartbeats(&emu.requests()) == 3).then_some(())
    })
    .await;
    emu.clear_requests();
    eventually("a heartbeat of every node", || async {
        (heartbeats(&emu.requests()) == 3).then_some(())
    })
    .await;
    let log = emu.requests();
    let writes: Vec<String> = log
        .into_iter()
        .filter(|r| !matches!(r.verb.as_str(), "get" | "list" | "watch"))
        .filter(|r| {
            !(r.resource == "leases"
                && r.namespace == tycho_emulator::sim::nodes::NODE_LEASE_NAMESPACE)
        })
        .map(|r| format!("{} {} {}/{}", r.verb, r.resource, r.subresource, r.name))
        .collect();
    assert!(
        writes.is_empty(),
        "unexpected writes in steady state (between two heartbeats of every node): {writes:?}"
    );
}

/// The simulated cluster's calls carry its own User-Agent (`tycho-emulator-sim/<version>`), so the
/// request log tells them apart from the client under test (as kube-controller-manager's and the
/// kubelet's do on a real cluster).
#[tokio::test]
async fn simulated_cluster_requests_carry_their_user_agent() {
    let (emu, client) = start(2).await;
    wait_nodes_ready(&client, 2).await;
    eventually("the simulator's watches", || async {
        let log = emu.requests();
        ["pods", "nodes"]
            .iter()
            .all(|k| log.iter().any(|r| r.verb == "watch" && r.resource == *k))
            .then_some(())
    })
    .await;
    let log = emu.requests();
    let sim: Vec<_> = log
        .iter()
        .filter(|r| r.user_agent == tycho_emulator::SIM_USER_AGENT)
        .collect();
    assert!(
        tycho_emulator::SIM_USER_AGENT.starts_with("tycho-emulator-sim/")
            && tycho_emulator::SIM_USER_AGENT.len() > "tycho-emulator-sim/".len()
    );
    for (verb, resource) in [("patch", "nodes"), ("watch", "pods"), ("watch", "nodes")] {
        assert!(
            sim.iter().any(|r| r.verb == verb && r.resource == resource),
            "no {verb} {resource} by the simulator: {:?}",
            log.iter()
                .map(|r| format!("{} {} {:?}", r.verb, r.resource, r.user_agent))
                .collect::<Vec<_>>()
        );
    }
    // Every node and lease write is the simulator's; the test's own calls are not.
    for r in &log {
        if matches!(r.resource.as_str(), "nodes" | "leases") && r.verb != "get" && r.verb != "list"
        {
            assert_eq!(r.user_agent, tycho_emulator::SIM_USER_AGENT, "{r:?}");
        }
    }
    emu.clear_requests();
    Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let mine = emu.requests();
    assert!(
        mine.iter().any(|r| r.verb == "list"
            && r.resource == "nodes"
            && r.user_agent != tycho_emulator::SIM_USER_AGENT),
        "{mine:?}"
    );
}

/// Settings the simulated cluster cannot honour are refused when the emulator starts (so that
/// `tycho sim --gpu-nodes 4 --nodes 3` fails with a message instead of running without nodes).
#[tokio::test]
async fn impossible_node_settings_are_refused_at_start() {
    let err = Emulator::start(EmulatorConfig {
        nodes: 3,
        gpus_per_node: 1,
        gpu_nodes: Some(4),
        ..EmulatorConfig::default()
    })
    .await
    .err()
    .expect("4 GPU nodes out of 3 refused");
    assert!(err.to_string().contains("gpu_nodes (4)"), "{err}");
    let err = Emulator::start(EmulatorConfig {
        node_memory: "lots".into(),
        ..EmulatorConfig::default()
    })
    .await
    .err()
    .expect("a bad quantity refused");
    assert!(err.to_string().contains("node_memory"), "{err}");
}

//! The emulator store's memory footprint, measured with a counting allocator: bytes per stored
//! object (a small ConfigMap, a Running Pod, a core/v1 Event), what the watch history adds
//! (events sharing the stored objects, and the old versions that updates keep alive until
//! they leave the window), and the label index's share.
//!
//! `cargo run -p tycho-emulator --example footprint [--release]`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use serde_json::{Value, json};
use tycho_emulator::store::{ObjectKey, Store};

/// Counts the bytes currently allocated.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: delegates to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout as asked.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: allocated by `alloc` above with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const N: usize = 10_000;

fn key(plural: &str, i: usize) -> ObjectKey {
    ObjectKey {
        group: String::new(),
        plural: plural.into(),
        namespace: "team-a".into(),
        name: format!("obj-{i:05}"),
    }
}

fn config_map(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("obj-{i:05}"), "namespace": "team-a",
            "uid": format!("2f6a3c1e-0d4b-4c5e-9a7f-{i:012}"), "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": "web", "tycho.dev/system": "s1"}},
        "data": {"config.yaml": "replicas: 2\nimage: nginx:1.27\n"}})
}

fn pod(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("obj-{i:05}"), "namespace": "team-a",
            "uid": format!("2f6a3c1e-0d4b-4c5e-9a7f-{i:012}"), "creationTimestamp": "2026-01-01T00:00:00Z",
            "generateName": "web-7d4b9c8f6-", "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f6",
                "uid": "8e1f0b2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}]},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler", "nodeName": "node-1", "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority", "priority": 0,
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]},
        "status": {"phase": "Running", "podIP": "10.244.1.7", "hostIP": "172.18.0.3", "qosClass": "Burstable",
            "startTime": "2026-01-01T00:00:01Z",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:02Z"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "containerStatuses": [{"name": "web", "ready": true, "started": true, "restartCount": 0,
                "image": "nginx:1.27", "imageID": "docker.io/library/nginx@sha256:0123456789abcdef",
                "containerID": "containerd://0123456789abcdef", "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}}]}})
}

fn event(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("obj-{i:05}.18a2b3c4d5e6f7a8"), "namespace": "team-a",
            "uid": format!("2f6a3c1e-0d4b-4c5e-9a7f-{i:012}"), "creationTimestamp": "2026-01-01T00:00:00Z"},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": format!("web-7d4b9c8f6-{i:05}"),
            "namespace": "team-a", "uid": "8e1f0b2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "resourceVersion": "1234"},
        "reason": "Scheduled", "message": format!("Successfully assigned team-a/web-7d4b9c8f6-{i:05} to node-1"),
        "source": {"component": "default-scheduler"}, "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z", "count": 1, "type": "Normal",
        "reportingComponent": "default-scheduler", "reportingInstance": ""})
}

/// Bytes per object of `N` objects made by `make`, in a store keeping `history` events; then
/// what one update per object adds while the old versions are in the window.
fn measure(what: &str, plural: &str, make: fn(usize) -> Value, history: usize) {
    let json_len = make(0).to_string().len();
    let before = live();
    let store = Store::new(history);
    let empty = live();
    for i in 0..N {
        store.create(&key(plural, i), make(i)).expect("create");
    }
    let created = live();
    for i in 0..N {
        let mut o = make(i);
        o["metadata"]["annotations"] = json!({"touched": "yes"});
        store.update(&key(plural, i), o, None).expect("update");
    }
    let updated = live();
    let per = |b: isize| b as f64 / N as f64;
    println!(
        "{what:<10} history {history:>6}: {:>6} B of JSON, {:>7.0} B/object stored, {:>7.0} B/object more after one update each",
        json_len,
        per(created - empty),
        per(updated - created),
    );
    drop(store);
    let _ = before;
}

fn main() {
    println!("{N} objects per row (store overhead with no objects is a few KB):");
    for (what, plural, make) in [
        ("ConfigMap", "configmaps", config_map as fn(usize) -> Value),
        ("Pod", "pods", pod),
        ("Event", "events", event),
    ] {
        // history 1: the objects alone (with the uid, owner and label indexes); history N:
        // plus one event per change, each keeping the previous version alive.
        measure(what, plural, make, 1);
        measure(what, plural, make, N * 2);
    }
}

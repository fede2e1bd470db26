//! Bytes a cached object costs in the controller's stores, typed (k8s-openapi) and packed
//! ([`cache::Packed`]), counted by a counting allocator over 10,000 copies.
//!
//! Input: a directory of `kubectl get KIND -o json` lists of one live System's objects:
//!
//! ```sh
//! tycho dev --kubeconfig /tmp/kc &  KUBECONFIG=/tmp/kc kubectl apply -f examples/nginx.yaml
//! for k in deployment pod service configmap system; do
//!   KUBECONFIG=/tmp/kc kubectl get $k -o json > /tmp/objs/$k.json; done
//! cargo run --release -p tycho-operator --example cache_footprint -- /tmp/objs
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System as Heap};
use std::path::Path;
use std::sync::atomic::{AtomicIsize, Ordering};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tycho_operator::controller::cache::{self, Packed};

struct Counting;
static HELD: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        HELD.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout as asked.
        unsafe { Heap.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        HELD.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: allocated by `alloc` above with this layout.
        unsafe { Heap.dealloc(p, l) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

const N: usize = 10_000;

/// The first item of the list in `path`, under N names.
fn copies<K: DeserializeOwned>(path: &Path, slim: fn(&mut K)) -> impl Iterator<Item = K> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let list: serde_json::Value = serde_json::from_str(&text).unwrap();
    let item = list["items"][0].clone();
    assert!(item.is_object(), "{}: no items", path.display());
    (0..N).map(move |i| {
        let mut o = item.clone();
        o["metadata"]["name"] = format!("obj-{i}").into();
        o["metadata"]["uid"] = format!("{i:08}-aaaa-bbbb-cccc-dddddddddddd").into();
        let mut k: K = serde_json::from_value(o).unwrap();
        slim(&mut k);
        k
    })
}

/// Bytes per object held by a store of typed objects, and of packed ones.
fn measure<K>(path: &Path, slim: fn(&mut K)) -> (isize, isize)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let before = HELD.load(Ordering::Relaxed);
    let (typed, mut w) = reflector::store::<K>();
    for k in copies(path, slim) {
        w.apply_watcher_event(&Event::Apply(k));
    }
    let typed_bytes = (HELD.load(Ordering::Relaxed) - before) / N as isize;
    assert_eq!(typed.len(), N);
    drop((typed, w));
    let before = HELD.load(Ordering::Relaxed);
    let (packed, mut w) = reflector::store::<Packed<K>>();
    for k in copies(path, slim) {
        w.apply_watcher_event(&Event::Apply(Packed::pack(&k)));
    }
    let packed_bytes = (HELD.load(Ordering::Relaxed) - before) / N as isize;
    assert_eq!(packed.len(), N);
    (typed_bytes, packed_bytes)
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: cache_footprint DIR");
    let dir = Path::new(&dir);
    let rows = [
        (
            "Deployment",
            measure::<Deployment>(&dir.join("deployment.json"), cache::strip),
        ),
        (
            "Pod",
            measure::<Pod>(&dir.join("pod.json"), cache::slim_pod),
        ),
        (
            "Service",
            measure::<Service>(&dir.join("service.json"), cache::strip),
        ),
        (
            "ConfigMap",
            measure::<ConfigMap>(&dir.join("configmap.json"), cache::strip),
        ),
    ];
    let (system, _) = measure::<tycho_model::System>(&dir.join("system.json"), cache::strip);
    println!("| kind | typed B/object | packed B/object |\n|---|---|---|");
    let (mut t, mut p) = (system, system);
    for (kind, (typed, packed)) in rows {
        println!("| {kind} | {typed} | {packed} |");
        t += typed;
        p += packed;
    }
    println!("| System (typed in both: the Controller reads it) | {system} | {system} |");
    println!("| **per System** | **{t}** | **{p}** |");
}

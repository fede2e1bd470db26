//! Micro benchmark of the store's label index: a LIST by label selector (`app=target`, 10
//! matching objects) in a namespace of 100 objects and in one of 100,000, through the index
//! (`Store::list_labelled`, what the API server does) and by a scan of the namespace
//! (`Store::list` with the selector as a filter, what it did before the index).
//!
//! `cargo run -p tycho-emulator --example label_index [--release]`

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tycho_emulator::selector::{equality_labels, labels_match, parse_label_selector};
use tycho_emulator::store::{ObjectKey, Store};

const MATCHING: usize = 10;

fn fill(store: &Store, ns: &str, n: usize) {
    for i in 0..n {
        // The matching objects are spread over the namespace.
        let app = if i % (n / MATCHING) == 0 {
            "target".to_string()
        } else {
            format!("other-{}", i % 50)
        };
        let name = format!("cm-{i:06}");
        let key = ObjectKey {
            group: String::new(),
            plural: "configmaps".into(),
            namespace: ns.into(),
            name: name.clone(),
        };
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "uid": format!("{ns}-{i}"),
                "labels": {"app": app, "tier": "backend"}},
            "data": {"key": "value"}});
        store.create(&key, obj).expect("create");
    }
}

/// The median time of `runs` runs of `f`, which must return `MATCHING` items.
fn median(runs: usize, f: impl Fn() -> usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            assert_eq!(f(), MATCHING);
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    let store = Store::new(1000);
    fill(&store, "small", 100);
    fill(&store, "big", 100_000);
    let reqs = parse_label_selector("app=target").expect("selector");
    let indexed = equality_labels(&reqs);
    let filter = |o: &Value| labels_match(&reqs, o);
    println!("LIST configmaps -l app=target ({MATCHING} matching), median of the runs:");
    println!("{:<28} {:>14} {:>14}", "", "ns of 100", "ns of 100,000");
    let row = |what: &str, runs: usize, labels: &[(String, String)]| {
        let t = |ns: &str| {
            median(runs, || {
                store
                    .list_labelled("", "configmaps", Some(ns), None, 0, labels, &filter)
                    .items
                    .len()
            })
        };
        println!("{what:<28} {:>14.1?} {:>14.1?}", t("small"), t("big"));
    };
    row("label index (list_labelled)", 201, &indexed);
    row("scan (list + filter)", 21, &[]);
}

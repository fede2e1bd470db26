//! The controllers of kube-controller-manager that the API server's semantics depend on: the
//! owner-reference garbage collector (dangling dependents are deleted; `foregroundDeletion`
//! waits for dependents with `blockOwnerDeletion`; `orphan` strips owner references) and the
//! namespace lifecycle controller (a terminating namespace is emptied, then removed), and the
//! CRD finalizer (a deleted CRD's custom resources are deleted before the CRD goes).
//! Event-driven from the store's change feed, with a full rescan at start and after lag.
//! It also expires core/v1 Events a TTL after their last write, as the lease kube-apiserver
//! puts on each Event in etcd does (`--event-ttl`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use crate::server::{AppState, CRD_CLEANUP, DeleteOpts, WriteCtx};
use crate::store::{Event, EventType, ObjectKey};

const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

fn has_finalizer(v: &Value, f: &str) -> bool {
    v["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == f))
}

fn deleting(v: &Value) -> bool {
    !v["metadata"]["deletionTimestamp"].is_null()
}

fn key_of(v: &Value, group: &str, plural: &str) -> ObjectKey {
    ObjectKey {
        group: group.to_string(),
        plural: plural.to_string(),
        namespace: v["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        name: v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

fn owner_refs(v: &Value) -> Vec<Value> {
    v["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Runs the garbage collector and namespace controller until `shutdown` turns true.
pub async fn run(st: Arc<AppState>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut rx = st.store.subscribe();
    full_scan(&st);
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut swept = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                periodic(&st);
                // Expired Events are looked for every half TTL (at most every minute).
                let ttl = st.event_ttl();
                if swept.elapsed() >= (ttl / 2).min(Duration::from_secs(60)) {
                    expire_events(&st, ttl);
                    swept = std::time::Instant::now();
                }
            }
            ev = rx.recv() => match ev {
                Ok(ev) => handle(&st, &ev),
                Err(RecvError::Lagged(_)) => full_scan(&st),
                Err(RecvError::Closed) => return,
            },
        }
    }
}

/// When an Event was last written: the latest time of its managedFields (every API write
/// stamps one), else its creation.
fn last_write(ev: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    let parse = |t: &Value| {
        t.as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc())
    };
    let managed = ev["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| parse(&m["time"]));
    managed
        .chain(parse(&ev["metadata"]["creationTimestamp"]))
        .max()
}

/// Removes the Events last written more than `ttl` ago.
fn expire_events(st: &AppState, ttl: Duration) {
    let Ok(ttl) = chrono::Duration::from_std(ttl) else {
        return;
    };
    let cutoff = chrono::Utc::now() - ttl;
    let expired = st.store.list("", "events", None, None, 0, &|e| {
        last_write(e).is_some_and(|t| t < cutoff)
    });
    for e in expired.items {
        let key = key_of(&e, "", "events");
        let _ = st.store.delete(&key, Some(crate::store::object_rv(&e)));
    }
}

fn full_scan(st: &AppState) {
    for (key, _) in st.store.objects_with_owners() {
        process_dependent(st, &key);
    }
    periodic(st);
}

/// The CRD finalizer controller: deletes every custom resource of a terminating CRD, then
/// removes the cleanup finalizer so the CRD goes.
fn process_crd(st: &AppState, crd: &Value) {
    let group = crd["spec"]["group"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let plural = crd["spec"]["names"]["plural"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let Some(info) = st.info_for(&group, &plural) else {
        return;
    };
    let all = st.store.list(&group, &plural, None, None, 0, &|_| true);
    for o in &all.items {
        if deleting(o) {
            continue;
        }
        let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = o["metadata"]["name"].as_str().unwrap_or_default();
        let _ = st.delete_object(&info, ns, name, &DeleteOpts::default());
    }
    if st.store.count(&group, &plural) == 0 {
        let key = key_of(crd, "apiextensions.k8s.io", "customresourcedefinitions");
        let _ = st.remove_finalizer(&key, CRD_CLEANUP);
    }
}

fn periodic(st: &AppState) {
    let nss = st.store.list("", "namespaces", None, None, 0, &deleting);
    for ns in nss.items {
        process_namespace(st, ns["metadata"]["name"].as_str().unwrap_or_default());
    }
    let crds = st.store.list(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        None,
        None,
        0,
        &deleting,
    );
    for crd in crds.items {
        process_crd(st, &crd);
    }
}

fn handle(st: &AppState, ev: &Event) {
    let obj = &ev.object;
    match ev.kind {
        EventType::Deleted => {
            if let Some(uid) = obj["metadata"]["uid"].as_str() {
                for dep in st.store.dependents(uid) {
                    process_dependent(st, &dep);
                }
            }
            // An owner waiting for its dependents may now be free.
            for r in owner_refs(obj) {
                if let Some(uid) = r["uid"].as_str()
                    && let Some((key, owner)) = st.store.get_by_uid(uid)
                    && deleting(&owner)
                    && has_finalizer(&owner, FOREGROUND)
                {
                    process_foreground(st, &key, &owner);
                }
            }
            // The last custom resource of a terminating CRD releases it.
            if let Some(c) = st
                .info_for(&ev.key.group, &ev.key.plural)
                .and_then(|i| i.custom.clone())
                && let Some(crd) = st.store.get(
                    "apiextensions.k8s.io",
                    "customresourcedefinitions",
                    "",
                    &c.crd_name,
                )
                && deleting(&crd)
            {
                process_crd(st, &crd);
            }
            if !ev.key.namespace.is_empty()
                && st
                    .store
                    .get("", "namespaces", "", &ev.key.namespace)
                    .is_some_and(|n| deleting(&n))
            {
                process_namespace(st, &ev.key.namespace);
            }
        }
        EventType::Added | EventType::Modified => {
            let refs_changed = ev.old.as_ref().is_none_or(|o| {
                o["metadata"]["ownerReferences"] != obj["metadata"]["ownerReferences"]
            });
            if refs_changed && !owner_refs(obj).is_empty() {
                process_dependent(st, &ev.key);
            }
            if deleting(obj) {
                if has_finalizer(obj, FOREGROUND) {
                    process_foreground(st, &ev.key, obj);
                }
                if has_finalizer(obj, ORPHAN) {
                    process_orphan(st, &ev.key, obj);
                }
                if ev.key.group.is_empty() && ev.key.plural == "namespaces" {
                    process_namespace(st, &ev.key.name);
                }
                if ev.key.group == "apiextensions.k8s.io" && has_finalizer(obj, CRD_CLEANUP) {
                    process_crd(st, obj);
                }
            }
        }
    }
}

/// attemptToDeleteItem: deletes a dependent none of whose owners exist (or whose owners are
/// all being deleted in the foreground), and strips references to missing owners otherwise.
fn process_dependent(st: &AppState, key: &ObjectKey) {
    let Some(obj) = st
        .store
        .get(&key.group, &key.plural, &key.namespace, &key.name)
    else {
        return;
    };
    if deleting(&obj) {
        return;
    }
    let refs = owner_refs(&obj);
    if refs.is_empty() {
        return;
    }
    let mut solid = 0;
    let mut gone_or_waiting: Vec<String> = Vec::new();
    let mut waiting = false;
    for r in &refs {
        let uid = r["uid"].as_str().unwrap_or_default();
        match st.store.get_by_uid(uid) {
            None => gone_or_waiting.push(uid.to_string()),
            Some((_, owner)) => {
                if deleting(&owner) && has_finalizer(&owner, FOREGROUND) {
                    waiting = true;
                    gone_or_waiting.push(uid.to_string());
                } else {
                    solid += 1;
                }
            }
        }
    }
    if gone_or_waiting.is_empty() {
        return;
    }
    let Some(info) = st.info_for(&key.group, &key.plural) else {
        return;
    };
    if solid > 0 {
        let mut ctx = WriteCtx::internal("generic-garbage-collector");
        let drop_uids = gone_or_waiting.clone();
        let _ = st.mutate_object(&info, &key.namespace, &key.name, &mut ctx, &|o| {
            let mut n = o.clone();
            let refs: Vec<Value> = owner_refs(o)
                .into_iter()
                .filter(|r| {
                    !drop_uids
                        .iter()
                        .any(|u| r["uid"] == Value::String(u.clone()))
                })
                .collect();
            if refs.len() == owner_refs(o).len() {
                return None;
            }
            n["metadata"]["ownerReferences"] = Value::Array(refs);
            Some(n)
        });
        return;
    }
    let policy = if waiting || has_finalizer(&obj, FOREGROUND) {
        "Foreground"
    } else if has_finalizer(&obj, ORPHAN) {
        "Orphan"
    } else {
        "Background"
    };
    let opts = DeleteOpts {
        propagation: Some(policy.to_string()),
        uid: obj["metadata"]["uid"].as_str().map(str::to_string),
        ..DeleteOpts::default()
    };
    let _ = st.delete_object(&info, &key.namespace, &key.name, &opts);
}

/// processDeletingDependentsItem: deletes the dependents of an owner being deleted in the
/// foreground, and removes its `foregroundDeletion` finalizer once no dependent with
/// `blockOwnerDeletion: true` remains.
fn process_foreground(st: &AppState, key: &ObjectKey, owner: &Value) {
    let Some(uid) = owner["metadata"]["uid"].as_str() else {
        return;
    };
    let deps = st.store.dependents(uid);
    for d in &deps {
        process_dependent(st, d);
    }
    let blocking = st.store.dependents(uid).into_iter().any(|d| {
        st.store
            .get(&d.group, &d.plural, &d.namespace, &d.name)
            .is_some_and(|o| {
                owner_refs(&o).iter().any(|r| {
                    r["uid"].as_str() == Some(uid)
                        && r["blockOwnerDeletion"].as_bool() == Some(true)
                })
            })
    });
    if !blocking {
        let _ = st.remove_finalizer(key, FOREGROUND);
    }
}

/// orphanDependents: strips the owner's references from its dependents, then removes the
/// `orphan` finalizer.
fn process_orphan(st: &AppState, key: &ObjectKey, owner: &Value) {
    let Some(uid) = owner["metadata"]["uid"].as_str() else {
        return;
    };
    for d in st.store.dependents(uid) {
        let Some(info) = st.info_for(&d.group, &d.plural) else {
            continue;
        };
        let mut ctx = WriteCtx::internal("generic-garbage-collector");
        let _ = st.mutate_object(&info, &d.namespace, &d.name, &mut ctx, &|o| {
            let mut n = o.clone();
            let refs: Vec<Value> = owner_refs(o)
                .into_iter()
                .filter(|r| r["uid"].as_str() != Some(uid))
                .collect();
            if refs.is_empty() {
                if let Some(m) = n["metadata"].as_object_mut() {
                    m.remove("ownerReferences");
                }
            } else {
                n["metadata"]["ownerReferences"] = Value::Array(refs);
            }
            Some(n)
        });
    }
    let _ = st.remove_finalizer(key, ORPHAN);
}

/// The namespace lifecycle controller: deletes everything in a terminating namespace, then the
/// namespace itself once it is empty.
fn process_namespace(st: &AppState, ns: &str) {
    let Some(nsobj) = st.store.get("", "namespaces", "", ns) else {
        return;
    };
    if !deleting(&nsobj) {
        return;
    }
    let keys = st.store.keys_in_namespace(ns);
    for k in &keys {
        let Some(obj) = st.store.get(&k.group, &k.plural, &k.namespace, &k.name) else {
            continue;
        };
        if deleting(&obj) {
            continue;
        }
        if let Some(info) = st.info_for(&k.group, &k.plural) {
            let _ = st.delete_object(&info, ns, &k.name, &DeleteOpts::default());
        }
    }
    if st.store.keys_in_namespace(ns).is_empty() {
        let key = key_of(&nsobj, "", "namespaces");
        if nsobj["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            let _ = st.store.delete(&key, None);
        }
    }
}

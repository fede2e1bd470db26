//! Small helpers on objects as JSON values (metadata access, finalizers, no-op detection) and on
//! resource kinds with special lifecycle rules.

use serde_json::{Map, Value, json};

use crate::builtin::ResourceInfo;

/// The object's `metadata` map, created (and the object turned into a map) if missing.
pub(super) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let Some(m) = obj.as_object_mut() else {
        unreachable_object()
    };
    let meta = m.entry("metadata".to_string()).or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    match meta.as_object_mut() {
        Some(x) => x,
        None => unreachable_object(),
    }
}

#[allow(clippy::panic)]
fn unreachable_object() -> ! {
    // Both call sites have just ensured the value is an object.
    unreachable!("value is an object")
}

/// The string at `path` ("" when absent or not a string).
pub(super) fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or_default()
}

/// `metadata.finalizers`.
pub(super) fn finalizers(v: &Value) -> Vec<String> {
    v["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Sets `metadata.finalizers` (removed when empty).
pub(super) fn set_finalizers(v: &mut Value, f: &[String]) {
    let m = meta_mut(v);
    if f.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(f));
    }
}

/// Whether the object is being deleted (`metadata.deletionTimestamp` set).
pub(super) fn is_terminating(v: &Value) -> bool {
    !v["metadata"]["deletionTimestamp"].is_null()
}

/// The 5-character suffix of a `generateName` (kube's `utilrand.String` alphabet).
pub(super) fn random_suffix() -> String {
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHA[rand::random_range(0..ALPHA.len())] as char)
        .collect()
}

/// Object equality ignoring resourceVersion and managedFields timestamps (no-op detection).
pub(super) fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            if let Some(mf) = m.get_mut("managedFields").and_then(Value::as_array_mut) {
                for e in mf {
                    if let Some(em) = e.as_object_mut() {
                        em.remove("time");
                    }
                }
            }
        }
        v
    };
    strip(a) == strip(b)
}

/// Removes a dotted/indexed path (`spec.containers[0].foo`) from a value.
pub(super) fn remove_path(v: &mut Value, path: &str) {
    let mut segs: Vec<(String, Option<usize>)> = Vec::new();
    for part in path.split('.') {
        let mut name = part;
        let mut idxs = Vec::new();
        while let Some(open) = name.rfind('[') {
            let idx = name[open + 1..].trim_end_matches(']').parse::<usize>().ok();
            idxs.push(idx);
            name = &name[..open];
        }
        segs.push((name.to_string(), None));
        for i in idxs.into_iter().rev() {
            segs.push((String::new(), i));
        }
    }
    fn rec(v: &mut Value, segs: &[(String, Option<usize>)]) {
        let Some(((name, idx), rest)) = segs.split_first() else {
            return;
        };
        if rest.is_empty() {
            if let Some(m) = v.as_object_mut() {
                m.remove(name);
            }
            return;
        }
        let next = if name.is_empty() {
            idx.and_then(|i| v.get_mut(i))
        } else {
            v.get_mut(name.as_str())
        };
        if let Some(n) = next {
            rec(n, rest);
        }
    }
    rec(v, &segs);
}

/// Core Services (cluster IPs and node ports are allocated).
pub(super) fn is_service(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.kind == "Service"
}

/// CustomResourceDefinitions (their changes rebuild the registry).
pub(super) fn is_crd(info: &ResourceInfo) -> bool {
    info.group == "apiextensions.k8s.io" && info.kind == "CustomResourceDefinition"
}

/// Core Namespaces (deleted by the namespace lifecycle controller).
pub(super) fn is_namespace(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.kind == "Namespace"
}

/// Core Pods (graceful deletion, binding).
pub(super) fn is_pod(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.kind == "Pod"
}

/// A pod deleted with a grace period the kubelet has not confirmed yet.
pub(super) fn is_graceful_pending(info: &ResourceInfo, obj: &Value) -> bool {
    is_pod(info)
        && obj["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(0)
            > 0
}

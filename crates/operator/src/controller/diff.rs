//! Deciding, without writing, whether applying a rendered child would change anything. Pure.
//!
//! A forced server-side apply of an unchanged object is still a write request. To keep reconciles of an
//! unchanged System at zero writes, a child is applied only when
//! - its render hash (annotation [`RENDER_HASH`], a hash of everything rendered) differs from the live one —
//!   the spec changed, which also covers fields the new render no longer sets; or
//! - some rendered field differs from the live object ([`is_subset`]) — someone edited or removed a field
//!   that Tycho owns (drift), which the apply then restores.
//!
//! Fields the API server or other managers add (defaults, status, allocated node ports) do not count.

use serde_json::Value;

use tycho_model::quantity::Quantity;

/// Annotation on every child: hash of the rendered object (without this annotation).
pub const RENDER_HASH: &str = "tycho.dev/render-hash";
/// Annotation on a bare Pod: hash of its rendered spec. A Pod whose spec hash changes is replaced.
pub const SPEC_HASH: &str = "tycho.dev/spec-hash";

/// FNV-1a 64-bit (the `fnv` crate): small, stable across Rust versions and platforms (unlike
/// `DefaultHasher`).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    h.write(bytes);
    h.finish()
}

/// Stable hash of a value's JSON serialization, as 16 hex digits.
pub fn hash_json(value: &Value) -> String {
    // serde_json's map is ordered (BTreeMap without preserve_order), so the bytes are canonical.
    format!("{:016x}", fnv1a64(value.to_string().as_bytes()))
}

/// Whether every field set in `desired` has the same value in `live`.
///
/// Empty values (null, `[]`, `{}`) in `desired` match a missing field. Lists of objects match element by
/// element and may have extra elements in `live` (entries other managers added); lists of scalars must be
/// equal. Kubernetes quantities under `resources` compare by value (`"0.5"` equals `"500m"`).
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    subset_at(desired, live, false)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn subset_at(desired: &Value, live: &Value, quantities: bool) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, dv)| match l.get(k) {
            Some(lv) => subset_at(dv, lv, quantities || k == "resources" || k == "overhead"),
            None => is_empty(dv),
        }),
        (Value::Array(d), Value::Array(l)) => {
            let objects = d.iter().all(Value::is_object);
            if objects {
                d.len() <= l.len()
                    && d.iter()
                        .zip(l.iter())
                        .all(|(dv, lv)| subset_at(dv, lv, quantities))
            } else {
                d.len() == l.len()
                    && d.iter()
                        .zip(l.iter())
                        .all(|(dv, lv)| subset_at(dv, lv, quantities))
            }
        }
        (Value::String(d), Value::String(l)) => d == l || (quantities && same_quantity(d, l)),
        (Value::Number(d), Value::Number(l)) => {
            d == l || d.as_f64().is_some_and(|a| l.as_f64() == Some(a))
        }
        (d, Value::Null) => is_empty(d),
        (d, l) => d == l,
    }
}

/// Whether two strings are the same Kubernetes quantity. The API server stores quantities in
/// canonical form rounded up to nano-units (`0.5` → `500m`), so they are compared at that precision.
fn same_quantity(a: &str, b: &str) -> bool {
    match (Quantity::parse(a.trim()), Quantity::parse(b.trim())) {
        (Ok(a), Ok(b)) => match (a.scaled_ceil(9), b.scaled_ceil(9)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_added_fields_do_not_count() {
        let desired =
            json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}], "type": "NodePort"}});
        let live = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "nodePort": 31234, "targetPort": 80}],
                         "type": "NodePort", "clusterIP": "10.0.0.1"}, "status": {}});
        assert!(is_subset(&desired, &live));
    }

    #[test]
    fn edited_or_removed_fields_count() {
        let desired = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"image": "nginx:1"}});
        assert!(!is_subset(
            &desired,
            &json!({"metadata": {"labels": {"a": "2"}}, "spec": {"image": "nginx:1"}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"metadata": {}, "spec": {"image": "nginx:1"}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"metadata": {"labels": {"a": "1"}}, "spec": {"image": "evil"}})
        ));
    }

    #[test]
    fn empty_desired_matches_missing() {
        assert!(is_subset(
            &json!({"env": [], "x": null, "m": {}}),
            &json!({})
        ));
    }

    #[test]
    fn scalar_lists_must_match_exactly_object_lists_may_grow() {
        assert!(!is_subset(
            &json!({"args": ["a"]}),
            &json!({"args": ["a", "b"]})
        ));
        assert!(is_subset(
            &json!({"c": [{"name": "a"}]}),
            &json!({"c": [{"name": "a", "x": 1}, {"name": "sidecar"}]})
        ));
        assert!(!is_subset(
            &json!({"c": [{"name": "a"}, {"name": "b"}]}),
            &json!({"c": [{"name": "a"}]})
        ));
    }

    #[test]
    fn quantities_compare_by_value_under_resources() {
        let d = json!({"resources": {"limits": {"cpu": "0.5", "memory": "1Gi"}}});
        let l = json!({"resources": {"limits": {"cpu": "500m", "memory": "1073741824"}}});
        assert!(is_subset(&d, &l));
        assert!(
            !is_subset(&json!({"env": "0.5"}), &json!({"env": "500m"})),
            "only under resources"
        );
        assert!(same_quantity("1e3", "1k"));
        assert!(
            same_quantity("0.0000000001", "1n"),
            "rounded up to nano-units"
        );
        assert!(!same_quantity("1", "1001m"));
        assert!(!same_quantity("abc", "abc"));
    }

    #[test]
    fn hash_is_stable() {
        let a = json!({"b": 1, "a": [1, 2]});
        assert_eq!(hash_json(&a), hash_json(&json!({"a": [1, 2], "b": 1})));
        assert_ne!(hash_json(&a), hash_json(&json!({"a": [2, 1], "b": 1})));
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(hash_json(&json!("x")).len(), 16);
    }
}

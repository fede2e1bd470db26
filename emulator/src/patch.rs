//! The three PATCH content types of kube-apiserver, on `serde_json::Value`s:
//! - `application/merge-patch+json`: JSON merge patch, RFC 7386;
//! - `application/json-patch+json`: JSON patch, RFC 6902 (json-patch crate);
//! - `application/strategic-merge-patch+json`: strategic merge patch, ported from
//!   k8s.io/apimachinery `pkg/util/strategicpatch` (the server side: `MergeParallelList` and
//!   `IgnoreUnmatchedNulls` on), with merge keys from [`MergeSchema`].

use serde_json::{Map, Value};

use crate::merge_keys::{MergeSchema, SchemaNode, SmpStrategy};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList/";
const SET_ORDER_PREFIX: &str = "$setElementOrder/";

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document is malformed or names an unknown directive (kube-apiserver answers
    /// 400 BadRequest).
    #[error("{0}")]
    Invalid(String),
    /// The patch is well formed but cannot be applied to this object: a failed JSON patch
    /// `test`, a missing path, a list of lists (kube-apiserver answers 422).
    #[error("{0}")]
    Unprocessable(String),
}

impl PatchError {
    /// The HTTP status kube-apiserver uses for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::Invalid(_) => 400,
            PatchError::Unprocessable(_) => 422,
        }
    }
}

/// JSON merge patch (RFC 7386): objects merge recursively, `null` deletes a member, any
/// non-object patch replaces the target.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// JSON patch (RFC 6902): `add`, `remove`, `replace`, `move`, `copy`, `test`. The operations
/// apply atomically: on error the target is unchanged.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    if !patch.is_array() {
        return Err(PatchError::Invalid(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch".into(),
        ));
    }
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::Invalid(format!("invalid JSON patch: {e}")))?;
    json_patch::patch(target, &ops.0).map_err(|e| PatchError::Unprocessable(e.to_string()))
}

/// Strategic merge patch, as kube-apiserver applies it: maps merge, `null` deletes a key, lists
/// with `patchStrategy: merge` merge by their merge key (scalars as sets), other lists are
/// replaced; directives `$patch: replace|delete` (maps and list items),
/// `$setElementOrder/<list>`, `$retainKeys`, `$deleteFromPrimitiveList/<list>`.
pub fn strategic_merge_patch(
    target: &Value,
    patch: &Value,
    schema: &MergeSchema,
) -> Result<Value, PatchError> {
    let Value::Object(p) = patch else {
        return Err(PatchError::Invalid(
            "strategic merge patch format is not supported".into(),
        ));
    };
    let original = match target {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    merge_map(original, p.clone(), schema.root()).map(Value::Object)
}

fn bad_type(t: &Value, m: &Map<String, Value>) -> PatchError {
    PatchError::Invalid(format!(
        "unknown patch type: {} in map: {}",
        scalar_str(t),
        Value::Object(m.clone())
    ))
}

fn no_merge_key(m: &Value, key: &str) -> PatchError {
    PatchError::Invalid(format!(
        "map: {m} does not contain declared merge key: {key}"
    ))
}

fn scalar_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `discardNullValuesFromPatch` + `removeDirectives`: how a patch value that has nothing to
/// merge with is stored. Returns None when the value itself is a directive.
fn clean_new_value(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE) {
                return None;
            }
            let mut out = Map::new();
            for (k, v) in m {
                if v.is_null() || k == RETAIN_KEYS || k.starts_with(SET_ORDER_PREFIX) {
                    continue;
                }
                if k.starts_with(DELETE_PRIMITIVE_PREFIX) {
                    continue;
                }
                if let Some(c) = clean_new_value(v) {
                    out.insert(k, c);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(a) => Some(Value::Array(
            a.into_iter().filter_map(clean_new_value).collect(),
        )),
        other => Some(other),
    }
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    node: SchemaNode<'_>,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(d) = patch.get(DIRECTIVE).cloned() {
        return match d.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                match clean_new_value(Value::Object(patch)) {
                    Some(Value::Object(m)) => Ok(m),
                    _ => Ok(Map::new()),
                }
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(bad_type(&d, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, node)?;

    // Regular keys first, then the parallel deletion lists.
    let (deletes, regular): (Vec<_>, Vec<_>) = patch
        .into_iter()
        .partition(|(k, _)| k.starts_with(DELETE_PRIMITIVE_PREFIX));
    for (k, pv) in regular {
        if pv.is_null() {
            original.remove(&k);
            continue;
        }
        let field = node.field(&k);
        let Some(ov) = original.remove(&k) else {
            if let Some(c) = clean_new_value(pv) {
                original.insert(k, c);
            }
            continue;
        };
        let merged = match (ov, pv) {
            (Value::Object(om), Value::Object(pm)) => {
                Some(Value::Object(merge_map(om, pm, field)?))
            }
            (Value::Array(ol), Value::Array(pl)) => {
                Some(Value::Array(merge_list_field(ol, pl, field, false)?))
            }
            (_, pv) => clean_new_value(pv),
        };
        if let Some(m) = merged {
            original.insert(k, m);
        }
    }
    for (k, pv) in deletes {
        let key = k[DELETE_PRIMITIVE_PREFIX.len()..].to_string();
        if key.is_empty() {
            return Err(PatchError::Invalid(
                "invalid patch format of primitive list".into(),
            ));
        }
        let Value::Array(pl) = pv else {
            return Err(PatchError::Invalid(
                "invalid patch format of primitive list".into(),
            ));
        };
        let Some(ov) = original.remove(&key) else {
            continue;
        };
        match ov {
            Value::Array(ol) => {
                let field = node.field(&key);
                let merged = merge_list_field(ol, pl, field, true)?;
                original.insert(key, Value::Array(merged));
            }
            other => {
                original.insert(key, other);
            }
        }
    }
    Ok(original)
}

fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let bad = || PatchError::Invalid("invalid patch format of retainKeys".into());
    let Value::Array(list) = retain else {
        return Err(bad());
    };
    let keep = |k: &str| list.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_PRIMITIVE_PREFIX) || k.starts_with(SET_ORDER_PREFIX)
        {
            continue;
        }
        if !keep(k) {
            return Err(bad());
        }
    }
    original.retain(|k, _| keep(k));
    Ok(())
}

/// The merge key of a list field, None for lists of scalars.
fn merge_key_of(field: SchemaNode<'_>) -> (bool, Option<String>) {
    match field.list().map(|l| &l.smp) {
        Some(SmpStrategy::Merge { merge_key }) => (true, merge_key.clone()),
        _ => (false, None),
    }
}

/// `mergeSliceHandler`: merge when the field's strategy is merge (or for deletion lists),
/// otherwise the patch replaces the list.
fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: SchemaNode<'_>,
    is_delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    let (merge, key) = merge_key_of(field);
    if merge || is_delete_list {
        merge_slice(original, patch, field, key.as_deref(), is_delete_list)
    } else {
        match clean_new_value(Value::Array(patch)) {
            Some(Value::Array(a)) => Ok(a),
            _ => Ok(Vec::new()),
        }
    }
}

#[derive(PartialEq, Eq, Clone, Copy, Debug)]
enum Kind {
    Map,
    Scalar(u8),
}

fn kind_of(v: &Value) -> Result<Kind, PatchError> {
    Ok(match v {
        Value::Object(_) => Kind::Map,
        Value::Array(_) => {
            return Err(PatchError::Unprocessable(
                "lists of lists are not supported".into(),
            ));
        }
        Value::Null => Kind::Scalar(0),
        Value::Bool(_) => Kind::Scalar(1),
        Value::Number(_) => Kind::Scalar(2),
        Value::String(_) => Kind::Scalar(3),
    })
}

/// `sliceElementType`: all items of all lists must have one type.
fn element_kind(lists: &[&[Value]]) -> Result<Option<Kind>, PatchError> {
    let mut prev: Option<Kind> = None;
    for l in lists {
        for v in l.iter() {
            let k = kind_of(v)?;
            match prev {
                None => prev = Some(k),
                Some(p) if p != k => {
                    return Err(PatchError::Invalid(
                        "list element types are not identical".into(),
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(prev)
}

fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: SchemaNode<'_>,
    merge_key: Option<&str>,
    is_delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = element_kind(&[&original, &patch])?;
    if kind != Some(Kind::Map) {
        if is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        let (patch_items, server_only) = partition_primitives(merged, &patch);
        return Ok(normalize_order(
            patch_items,
            server_only,
            &patch,
            &original,
            None,
        ));
    }
    let Some(key) = merge_key else {
        return Err(PatchError::Invalid(
            "cannot merge lists without merge key for type map".into(),
        ));
    };
    let (original, patch) = merge_special_elements(original, patch, key)?;
    let server_order = original.clone();
    let merged = merge_without_special(original, &patch, field, key)?;
    let (patch_items, server_only) = partition_maps(merged, &patch, key)?;
    Ok(normalize_order(
        patch_items,
        server_only,
        &patch,
        &server_order,
        Some(key),
    ))
}

/// `mergeSliceWithSpecialElements`: `$patch: delete` removes items by merge key, `$patch:
/// replace` makes the remaining patch items the whole list, `$patch: merge` is rejected.
fn merge_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::new();
    let mut replace = false;
    for v in patch {
        let Value::Object(m) = &v else {
            plain.push(v);
            continue;
        };
        let Some(d) = m.get(DIRECTIVE) else {
            plain.push(v);
            continue;
        };
        match d.as_str() {
            Some("delete") => {
                let Some(kv) = m.get(key) else {
                    return Err(no_merge_key(&v, key));
                };
                original.retain(|o| o.get(key) != Some(kv));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::Invalid(
                    "merging lists cannot yet be specified in the patch".into(),
                ));
            }
            _ => return Err(bad_type(d, m)),
        }
    }
    if replace {
        let items = plain.into_iter().filter_map(clean_new_value).collect();
        return Ok((items, Vec::new()));
    }
    Ok((original, plain))
}

fn merge_without_special(
    mut original: Vec<Value>,
    patch: &[Value],
    field: SchemaNode<'_>,
    key: &str,
) -> Result<Vec<Value>, PatchError> {
    for v in patch {
        let Value::Object(pm) = v else {
            return Err(no_merge_key(v, key));
        };
        let Some(kv) = pm.get(key) else {
            return Err(no_merge_key(v, key));
        };
        let mut found = None;
        for (i, o) in original.iter().enumerate() {
            let Value::Object(om) = o else {
                return Err(PatchError::Invalid(format!(
                    "value for key {i} is not a map."
                )));
            };
            if om.get(key) == Some(kv) {
                found = Some(i);
                break;
            }
        }
        match found {
            Some(i) => {
                let om = match std::mem::take(&mut original[i]) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                original[i] = Value::Object(merge_map(om, pm.clone(), field.item())?);
            }
            None => {
                if let Some(c) = clean_new_value(v.clone()) {
                    original.push(c);
                }
            }
        }
    }
    Ok(original)
}

fn partition_primitives(merged: Vec<Value>, by: &[Value]) -> (Vec<Value>, Vec<Value>) {
    merged.into_iter().partition(|v| by.contains(v))
}

fn partition_maps(
    merged: Vec<Value>,
    by: &[Value],
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut in_patch = Vec::new();
    let mut server_only = Vec::new();
    for v in merged {
        let Some(kv) = v.get(key) else {
            return Err(no_merge_key(&v, key));
        };
        if by.iter().any(|b| b.get(key) == Some(kv)) {
            in_patch.push(v);
        } else {
            server_only.push(v);
        }
    }
    Ok((in_patch, server_only))
}

/// `index`: position of `item` in `list`, by merge key value for maps.
fn index_of(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    match key {
        Some(k) => {
            let want = item.get(k);
            list.iter().position(|v| v.get(k) == want)
        }
        None => list.iter().position(|v| v == item),
    }
}

/// `normalizeElementOrder`: patch items sorted by the patch (or `$setElementOrder`) order,
/// server-only items by the live order, then interleaved by live order (`mergeSortedSlice`).
fn normalize_order(
    mut patch_items: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let sort = |items: &mut Vec<Value>, order: &[Value]| {
        items.sort_by_key(|v| index_of(order, v, key).map_or(-1, |i| i as i64));
    };
    sort(&mut patch_items, patch_order);
    sort(&mut server_only, server_order);
    // mergeSortedSlice(left = server-only, right = patch items)
    let (left, right) = (server_only, patch_items);
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() || j < right.len() {
        if i >= left.len() {
            out.push(right[j].clone());
            j += 1;
        } else if j >= right.len() {
            out.push(left[i].clone());
            i += 1;
        } else {
            let li = index_of(server_order, &left[i], key);
            let ri = index_of(server_order, &right[j], key);
            match (li, ri) {
                (Some(a), Some(b)) if a < b => {
                    out.push(left[i].clone());
                    i += 1;
                }
                _ => {
                    out.push(right[j].clone());
                    j += 1;
                }
            }
        }
    }
    out
}

/// `mergePatchIntoOriginal`: each `$setElementOrder/<list>` merges its list (if present in the
/// patch) and then orders the result: `$setElementOrder` > patch order > live order.
fn merge_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    node: SchemaNode<'_>,
) -> Result<(), PatchError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER_PREFIX))
        .cloned()
        .collect();
    for dkey in keys {
        let Some(order_v) = patch.remove(&dkey) else {
            continue;
        };
        let bad = || PatchError::Invalid("invalid patch format of setElementOrder list".into());
        let Value::Array(order) = order_v else {
            return Err(bad());
        };
        let list_key = dkey[SET_ORDER_PREFIX.len()..].to_string();
        if list_key.is_empty() {
            return Err(bad());
        }
        let field = node.field(&list_key);
        let (_, merge_key) = merge_key_of(field);
        let orig_list = match original.get(&list_key) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => {
                return Err(PatchError::Invalid(format!(
                    "expected a []interface {{}}, but received a {}",
                    go_type(other)
                )));
            }
        };
        let patch_list = match patch.get(&list_key) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => {
                return Err(PatchError::Invalid(format!(
                    "expected a []interface {{}}, but received a {}",
                    go_type(other)
                )));
            }
        };
        validate_set_order(
            patch_list.as_deref().unwrap_or(&[]),
            &order,
            merge_key.as_deref(),
        )?;
        let merged = match (&orig_list, &patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => match clean_new_value(Value::Array(p.clone())) {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            },
            (Some(o), Some(p)) => merge_list_field(o.clone(), p.clone(), field, false)?,
            (None, None) => continue,
        };
        let (patch_items, server_only) = match merge_key.as_deref() {
            None => partition_primitives(merged, &order),
            Some(k) => partition_maps(merged, &order, k)?,
        };
        if let Some(k) = merge_key.as_deref() {
            for v in order.iter() {
                if v.get(k).is_none() {
                    return Err(no_merge_key(v, k));
                }
            }
        }
        element_kind(&[
            orig_list.as_deref().unwrap_or(&[]),
            patch_list.as_deref().unwrap_or(&[]),
        ])?;
        let both = normalize_order(
            patch_items,
            server_only,
            &order,
            orig_list.as_deref().unwrap_or(&[]),
            merge_key.as_deref(),
        );
        original.insert(list_key.clone(), Value::Array(both));
        patch.remove(&list_key);
    }
    Ok(())
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "map[string]interface {}",
        Value::Array(_) => "[]interface {}",
        Value::String(_) => "string",
        Value::Number(_) => "float64",
        Value::Bool(_) => "bool",
        Value::Null => "<nil>",
    }
}

/// `validatePatchWithSetOrderList`: the patch items (deletions aside) must appear in the
/// `$setElementOrder` list, in the same relative order.
fn validate_set_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = patch_list
        .iter()
        .filter(|v| {
            merge_key.is_none() || v.get(DIRECTIVE).and_then(Value::as_str) != Some("delete")
        })
        .collect();
    let (mut pi, mut si) = (0, 0);
    while pi < non_delete.len() && si < order.len() {
        let p = non_delete[pi];
        if p.get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        let equal = match merge_key {
            None => p == &order[si],
            Some(k) => {
                let l = p.get(k).ok_or_else(|| no_merge_key(p, k))?;
                let r = order[si]
                    .get(k)
                    .ok_or_else(|| no_merge_key(&order[si], k))?;
                l == r
            }
        };
        if equal {
            pi += 1;
        }
        si += 1;
    }
    if pi < non_delete.len() && si >= order.len() {
        return Err(PatchError::Invalid(format!(
            "the order in patch list:\n{}\n doesn't match $setElementOrder list:\n{}",
            Value::Array(patch_list.to_vec()),
            Value::Array(order.to_vec())
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(kind: (&str, &str), target: Value, patch: Value) -> Value {
        strategic_merge_patch(&target, &patch, &MergeSchema::builtin(kind.0, kind.1)).unwrap()
    }

    /// RFC 7386 §2: `null` removes a member, objects merge recursively, arrays are replaced.
    #[test]
    fn merge_patch_null_deletes_and_arrays_replace() {
        let mut t = json!({"a":"b","c":{"d":"e","f":"g"},"l":[1,2]});
        merge_patch(&mut t, &json!({"a":"z","c":{"f":null},"l":[3]}));
        assert_eq!(t, json!({"a":"z","c":{"d":"e"},"l":[3]}));
    }

    /// RFC 7386 §2: a patch that is not an object replaces the whole target; an object patch
    /// on a non-object target starts from `{}` (RFC 7386 appendix A, cases 12–15).
    #[test]
    fn merge_patch_non_object() {
        let mut t = json!({"a":"b"});
        merge_patch(&mut t, &json!(["c"]));
        assert_eq!(t, json!(["c"]));
        let mut t = json!(["a"]);
        merge_patch(&mut t, &json!({"a":{"bb":{"ccc":null}}}));
        assert_eq!(t, json!({"a":{"bb":{}}}));
    }

    /// The merge patch kubectl CSA sends for a changed System (wire-protocol doc §2).
    #[test]
    fn merge_patch_kubectl_csa_body() {
        let mut t = json!({"metadata":{"name":"demo","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"old"}},
            "spec":{"image":"example/demo:1","replicas":1,"ports":[80]}});
        merge_patch(
            &mut t,
            &json!({"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"new"}},
                "spec":{"image":"example/demo:2","replicas":2}}),
        );
        assert_eq!(
            t["spec"],
            json!({"image":"example/demo:2","replicas":2,"ports":[80]})
        );
        assert_eq!(
            t["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
            "new"
        );
    }

    /// RFC 6902 §4.1–4.6: add, remove, replace, move, copy, and a passing test.
    #[test]
    fn json_patch_all_ops() {
        let mut t = json!({"a":{"b":1},"l":[1,2]});
        json_patch(
            &mut t,
            &json!([
                {"op":"test","path":"/a/b","value":1},
                {"op":"add","path":"/l/-","value":3},
                {"op":"replace","path":"/a/b","value":2},
                {"op":"copy","from":"/a","path":"/c"},
                {"op":"move","from":"/c/b","path":"/d"},
                {"op":"remove","path":"/l/0"}
            ]),
        )
        .unwrap();
        assert_eq!(t, json!({"a":{"b":2},"c":{},"d":2,"l":[2,3]}));
    }

    /// RFC 6902 §4.6/§5: a failed `test` fails the whole patch and leaves the document
    /// unchanged; kube-apiserver answers 422 (kubectl's resourceVersion precondition, §7).
    #[test]
    fn json_patch_failed_test_is_error_and_atomic() {
        let mut t = json!({"metadata":{"resourceVersion":"103"},"x":1});
        let err = json_patch(
            &mut t,
            &json!([{"op":"replace","path":"/x","value":2},
                    {"op":"test","path":"/metadata/resourceVersion","value":"99"}]),
        )
        .unwrap_err();
        assert_eq!(err.status_code(), 422);
        assert_eq!(t, json!({"metadata":{"resourceVersion":"103"},"x":1}));
    }

    /// RFC 6902 §5: a missing path is an error; a patch that is not an array is malformed (400).
    #[test]
    fn json_patch_errors() {
        let mut t = json!({"a":1});
        let e = json_patch(&mut t, &json!([{"op":"remove","path":"/nope"}])).unwrap_err();
        assert!(matches!(e, PatchError::Unprocessable(_)));
        let e = json_patch(&mut t, &json!({"op":"remove"})).unwrap_err();
        assert!(matches!(e, PatchError::Invalid(_)));
        let e = json_patch(&mut t, &json!([{"op":"frobnicate","path":"/a"}])).unwrap_err();
        assert!(matches!(e, PatchError::Invalid(_)));
    }

    /// The CSA SMP body for a ConfigMap (wire-protocol doc §2): null deletes map keys
    /// (strategic-merge-patch.md "null deletes"), `{}` annotations is a no-op merge.
    #[test]
    fn smp_kubectl_configmap_body() {
        let out = smp(
            ("", "ConfigMap"),
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","labels":{"a":"1","b":"2"},
                "annotations":{"x":"y"}},"data":{"a":"1","b":"2"}}),
            json!({"data":{"b":null},"metadata":{"annotations":{},"labels":{"b":null}}}),
        );
        assert_eq!(out["data"], json!({"a":"1"}));
        assert_eq!(out["metadata"]["labels"], json!({"a":"1"}));
        assert_eq!(out["metadata"]["annotations"], json!({"x":"y"}));
    }

    /// The CSA SMP body for a Service (wire-protocol doc §2): ports merge by `port`,
    /// `$patch: delete` removes items, `$setElementOrder/ports` orders the result —
    /// sig-api-machinery strategic-merge-patch.md and preserve-order-in-strategic-merge-patch.md.
    #[test]
    fn smp_kubectl_service_body() {
        let out = smp(
            ("", "Service"),
            json!({"spec":{"type":"ClusterIP","clusterIP":"10.96.0.10","ports":[
                {"name":"web","port":80,"protocol":"TCP","targetPort":80},
                {"name":"tls","port":443,"protocol":"TCP","targetPort":443},
                {"name":"http","port":8080,"protocol":"TCP","targetPort":8080}]}}),
            json!({"spec":{"$setElementOrder/ports":[{"port":8080}],"ports":[{"name":"http","port":8080},
                {"$patch":"delete","port":443},{"$patch":"delete","port":80}]}}),
        );
        assert_eq!(
            out["spec"],
            json!({"type":"ClusterIP","clusterIP":"10.96.0.10","ports":[
                {"name":"http","port":8080,"protocol":"TCP","targetPort":8080}]})
        );
    }

    /// The CSA SMP body for a Deployment (wire-protocol doc §2): `$retainKeys` clears
    /// `rollingUpdate` from the strategy (DeploymentStrategy is `patchStrategy:"retainKeys"`),
    /// containers and env merge by name with `$patch: delete` and `$setElementOrder`.
    #[test]
    fn smp_kubectl_deployment_body() {
        let live = json!({"spec":{"replicas":1,"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%","maxUnavailable":"25%"}},
            "template":{"spec":{"containers":[
                {"name":"a","image":"nginx","env":[{"name":"X","value":"1"},{"name":"Y","value":"2"}]},
                {"name":"b","image":"redis"}]}}}});
        let patch = json!({"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":null,"type":"Recreate"},
            "template":{"spec":{"$setElementOrder/containers":[{"name":"a"}],"containers":[
                {"$setElementOrder/env":[{"name":"Y"}],"env":[{"$patch":"delete","name":"X"}],"name":"a"},
                {"$patch":"delete","name":"b"}]}}}});
        let out = smp(("apps", "Deployment"), live, patch);
        assert_eq!(
            out["spec"],
            json!({"replicas":1,"strategy":{"type":"Recreate"},"template":{"spec":{"containers":[
                {"name":"a","image":"nginx","env":[{"name":"Y","value":"2"}]}]}}})
        );
    }

    /// `$retainKeys` clears keys absent from the list even when the patch does not null them
    /// (strategic-merge-patch.md "$retainKeys").
    #[test]
    fn smp_retain_keys_clears_unlisted() {
        let out = smp(
            ("apps", "Deployment"),
            json!({"spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1}}}}),
            json!({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}),
        );
        assert_eq!(out["spec"]["strategy"], json!({"type":"Recreate"}));
    }

    /// A patch field missing from `$retainKeys` makes the patch invalid ("invalid patch format
    /// of retainKeys", mergepatch.ErrBadPatchFormatForRetainKeys, 400).
    #[test]
    fn smp_retain_keys_mismatch_is_error() {
        let e = strategic_merge_patch(
            &json!({"spec":{"strategy":{}}}),
            &json!({"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":{"maxSurge":1}}}}),
            &MergeSchema::builtin("apps", "Deployment"),
        )
        .unwrap_err();
        assert_eq!(
            e,
            PatchError::Invalid("invalid patch format of retainKeys".into())
        );
    }

    /// Merge lists merge items with equal merge keys and add new ones; the order is the patch
    /// order, with live-only items placed after patch items they follow in the live list
    /// (strategicpatch `normalizeElementOrder` / `mergeSortedSlice`: an item absent from the
    /// live list sorts before live-only items).
    #[test]
    fn smp_merges_containers_by_name() {
        let out = smp(
            ("", "Pod"),
            json!({"spec":{"containers":[{"name":"a","image":"x:1","ports":[{"containerPort":80}]},{"name":"b","image":"y"}]}}),
            json!({"spec":{"containers":[{"name":"a","image":"x:2","ports":[{"containerPort":81}]},{"name":"c","image":"z"}]}}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name":"a","image":"x:2","ports":[{"containerPort":81},{"containerPort":80}]},
                   {"name":"c","image":"z"},{"name":"b","image":"y"}])
        );
    }

    /// Lists without `patchStrategy:"merge"` (tolerations, args) are replaced by the patch
    /// (strategic-merge-patch.md: "lists are replaced by default").
    #[test]
    fn smp_replaces_lists_without_strategy() {
        let out = smp(
            ("", "Pod"),
            json!({"spec":{"tolerations":[{"key":"a"}],"containers":[{"name":"a","args":["1","2"]}]}}),
            json!({"spec":{"tolerations":[{"key":"b"}],"containers":[{"name":"a","args":["3"]}]}}),
        );
        assert_eq!(out["spec"]["tolerations"], json!([{"key":"b"}]));
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["3"]));
    }

    /// metadata.finalizers is `patchStrategy:"merge"` on scalars: union without duplicates, and
    /// `$deleteFromPrimitiveList/finalizers` removes items (strategic-merge-patch.md).
    #[test]
    fn smp_primitive_merge_list_and_delete_from_primitive_list() {
        let out = smp(
            ("", "ConfigMap"),
            json!({"metadata":{"finalizers":["a","b"]}}),
            json!({"metadata":{"finalizers":["c","a"],"$deleteFromPrimitiveList/finalizers":["b"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "a"]));
        let out = smp(
            ("", "ConfigMap"),
            json!({"metadata":{"finalizers":["a","b","c"]}}),
            json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["b"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
        // deleting from a list that does not exist is a no-op
        let out = smp(
            ("", "ConfigMap"),
            json!({"metadata":{}}),
            json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["b"]}}),
        );
        assert_eq!(out["metadata"], json!({}));
    }

    /// `$setElementOrder` on a primitive merge list orders the merged set
    /// (preserve-order-in-strategic-merge-patch.md example).
    #[test]
    fn smp_set_element_order_primitive() {
        let out = smp(
            ("", "ConfigMap"),
            json!({"metadata":{"finalizers":["a","b","c"]}}),
            json!({"metadata":{"$setElementOrder/finalizers":["c","a","b"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));
    }

    /// `$setElementOrder` reorders server items and interleaves server-only ones by live
    /// order (preserve-order-in-strategic-merge-patch.md: "$setElementOrder > patch > live").
    #[test]
    fn smp_set_element_order_with_server_only_items() {
        let out = smp(
            ("", "Pod"),
            json!({"spec":{"containers":[{"name":"a"},{"name":"b"},{"name":"c"}]}}),
            json!({"spec":{"$setElementOrder/containers":[{"name":"c"},{"name":"a"}],
                "containers":[{"name":"c","image":"z"}]}}),
        );
        let names: Vec<_> = out["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        // patch items ordered c, a; the server-only b goes before c because b precedes c live.
        assert_eq!(names, ["b", "c", "a"]);
        assert_eq!(out["spec"]["containers"][1]["image"], "z");
    }

    /// A patch list whose items are not in `$setElementOrder` is rejected
    /// (validatePatchWithSetOrderList).
    #[test]
    fn smp_set_element_order_mismatch_is_error() {
        let e = strategic_merge_patch(
            &json!({"spec":{"containers":[{"name":"a"}]}}),
            &json!({"spec":{"$setElementOrder/containers":[{"name":"a"}],
                "containers":[{"name":"b"}]}}),
            &MergeSchema::builtin("", "Pod"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("doesn't match $setElementOrder list")
        );
    }

    /// `$patch: replace` in a list item replaces the whole list with the other items
    /// (strategic-merge-patch.md "$patch: replace" on lists).
    #[test]
    fn smp_list_patch_replace() {
        let out = smp(
            ("", "Pod"),
            json!({"spec":{"containers":[{"name":"a"},{"name":"b"}]}}),
            json!({"spec":{"containers":[{"name":"c","image":"z"},{"$patch":"replace"}]}}),
        );
        assert_eq!(out["spec"]["containers"], json!([{"name":"c","image":"z"}]));
    }

    /// `$patch: replace` in a map replaces the map; `$patch: delete` empties it
    /// (handleDirectiveInMergeMap).
    #[test]
    fn smp_map_patch_replace_and_delete() {
        let out = smp(
            ("", "ConfigMap"),
            json!({"data":{"a":"1","b":"2"},"metadata":{"labels":{"x":"1"}}}),
            json!({"data":{"$patch":"replace","c":"3"},"metadata":{"labels":{"$patch":"delete"}}}),
        );
        assert_eq!(out["data"], json!({"c":"3"}));
        assert_eq!(out["metadata"]["labels"], json!({}));
    }

    /// `$patch: merge` is not implemented by Kubernetes: "merging lists cannot yet be specified
    /// in the patch" for lists, "unknown patch type" for maps.
    #[test]
    fn smp_patch_merge_and_unknown_directive_rejected() {
        let s = MergeSchema::builtin("", "Pod");
        let e = strategic_merge_patch(
            &json!({"spec":{"containers":[{"name":"a"}]}}),
            &json!({"spec":{"containers":[{"$patch":"merge"}]}}),
            &s,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "merging lists cannot yet be specified in the patch"
        );
        let e = strategic_merge_patch(&json!({"spec":{}}), &json!({"spec":{"$patch":"merge"}}), &s)
            .unwrap_err();
        assert!(e.to_string().starts_with("unknown patch type: merge"));
    }

    /// A merge-list item without its merge key is an error ("does not contain declared merge key").
    #[test]
    fn smp_missing_merge_key_is_error() {
        let e = strategic_merge_patch(
            &json!({"spec":{"containers":[{"name":"a"}]}}),
            &json!({"spec":{"containers":[{"image":"x"}]}}),
            &MergeSchema::builtin("", "Pod"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("does not contain declared merge key: name")
        );
        let e = strategic_merge_patch(
            &json!({"spec":{"containers":[{"name":"a"}]}}),
            &json!({"spec":{"containers":[{"$patch":"delete"}]}}),
            &MergeSchema::builtin("", "Pod"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("does not contain declared merge key: name")
        );
    }

    /// Lists of lists are not supported (mergepatch.ErrNoListOfLists, 422).
    #[test]
    fn smp_list_of_lists_is_unprocessable() {
        let e = strategic_merge_patch(
            &json!({"metadata":{"finalizers":[["a"]]}}),
            &json!({"metadata":{"finalizers":[["b"]]}}),
            &MergeSchema::builtin("", "ConfigMap"),
        )
        .unwrap_err();
        assert_eq!(e.status_code(), 422);
    }

    /// New values are stored without nulls and directives (discardNullValuesFromPatch,
    /// removeDirectives — kubernetes#123304), a type change replaces the value, a non-object
    /// patch is rejected.
    #[test]
    fn smp_new_values_cleaned_and_type_change() {
        let out = smp(
            ("", "ConfigMap"),
            json!({"data":"oops"}),
            json!({"data":{"a":"1","b":null},"x":{"y":null,"z":[{"$patch":"delete","k":1},{"k":2}]}}),
        );
        assert_eq!(out, json!({"data":{"a":"1"},"x":{"z":[{"k":2}]}}));
        assert!(strategic_merge_patch(&json!({}), &json!([1]), &MergeSchema::empty()).is_err());
    }

    /// ownerReferences merge by uid (ObjectMeta `patchMergeKey:"uid"`).
    #[test]
    fn smp_owner_references_by_uid() {
        let out = smp(
            ("", "ConfigMap"),
            json!({"metadata":{"ownerReferences":[{"uid":"1","name":"a"},{"uid":"2","name":"b"}]}}),
            json!({"metadata":{"ownerReferences":[{"uid":"2","name":"B"},{"$patch":"delete","uid":"1"}]}}),
        );
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{"uid":"2","name":"B"}])
        );
    }
}

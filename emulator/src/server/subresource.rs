//! Subresources with their own bodies: `pods/binding` (the scheduler's bind) and `*/scale`
//! (autoscaling/v1 Scale of Deployments, ReplicaSets and StatefulSets).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::encoding::{json_response, success};
use super::object::{is_terminating, str_of};
use super::{AppState, RETRIES, WriteCtx, now};
use crate::builtin::ResourceInfo;
use crate::error::{ApiError, Cause};
use crate::store::{StoreError, object_rv};

/// POST `pods/{name}/binding`: assigns the pod to the binding's node (once).
pub(super) fn bind_pod(
    st: &AppState,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    binding: &Value,
    ctx: &mut WriteCtx,
) -> Result<Response, ApiError> {
    let node = str_of(binding, &["target", "name"]).to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            name,
            vec![Cause::new(
                "FieldValueRequired",
                "target.name",
                "Required value",
            )],
        ));
    }
    let key = AppState::key(info, ns, name);
    for _ in 0..RETRIES {
        let old = st
            .store
            .get(&key.group, &key.plural, &key.namespace, &key.name)
            .ok_or_else(|| ApiError::not_found("", "pods", name))?;
        check_bindable(name, binding, &old)?;
        let new = bound(&old, &node);
        if ctx.dry_run {
            break;
        }
        match st.store.update(&key, new, Some(object_rv(&old))) {
            Ok(_) => break,
            Err(StoreError::NotFound) => return Err(ApiError::not_found("", "pods", name)),
            Err(_) => continue,
        }
    }
    Ok(success(StatusCode::CREATED, true))
}

/// 409 when the binding's uid precondition fails or the pod is terminating or bound.
fn check_bindable(name: &str, binding: &Value, pod: &Value) -> Result<(), ApiError> {
    let conflict = |msg: &str| ApiError::conflict("", "pods", name, msg);
    if let Some(uid) = binding["metadata"]["uid"].as_str()
        && !uid.is_empty()
        && uid != str_of(pod, &["metadata", "uid"])
    {
        return Err(conflict("the UID in the precondition does not match"));
    }
    if is_terminating(pod) {
        return Err(conflict(
            "pod is being deleted, cannot be assigned to a host",
        ));
    }
    let cur = str_of(pod, &["spec", "nodeName"]);
    if !cur.is_empty() {
        return Err(conflict(&format!(
            "pod {name} is already assigned to node \"{cur}\""
        )));
    }
    Ok(())
}

/// The pod bound to `node`, with the PodScheduled condition.
fn bound(pod: &Value, node: &str) -> Value {
    let mut new = pod.clone();
    new["spec"]["nodeName"] = json!(node);
    let mut conds: Vec<Value> = new["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    conds.retain(|c| c["type"] != "PodScheduled");
    conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now()}));
    new["status"]["conditions"] = json!(conds);
    new
}

/// The autoscaling/v1 Scale of a workload.
pub(super) fn scale_of(obj: &Value) -> Value {
    let sel = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"],
            "uid": obj["metadata"]["uid"], "resourceVersion": obj["metadata"]["resourceVersion"],
            "creationTimestamp": obj["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": sel},
    })
}

fn set_replicas(
    st: &AppState,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    replicas: i64,
    ctx: &mut WriteCtx,
) -> Result<Arc<Value>, ApiError> {
    st.mutate_object(info, ns, name, ctx, &|o| {
        let mut n = o.clone();
        n["spec"]["replicas"] = json!(replicas);
        Some(n)
    })
}

/// PUT `scale`: sets `spec.replicas` from the Scale body.
pub(super) fn put_scale(
    st: &AppState,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    scale: &Value,
    ctx: &mut WriteCtx,
) -> Result<Response, ApiError> {
    let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
    let out = set_replicas(st, info, ns, name, replicas, ctx)?;
    Ok(json_response(StatusCode::OK, &scale_of(&out)))
}

/// PATCH `scale`: a JSON patch or merge patch of the Scale.
pub(super) fn patch_scale(
    st: &AppState,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    content_type: &str,
    body: &[u8],
    ctx: &mut WriteCtx,
) -> Result<Response, ApiError> {
    let cur = st
        .current(info, ns, name)
        .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))?;
    let mut scale = scale_of(&cur);
    let p: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    match content_type {
        "application/json-patch+json" => {
            crate::patch::json_patch(&mut scale, &p)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
        _ => crate::patch::merge_patch(&mut scale, &p),
    }
    put_scale(st, info, ns, name, &scale, ctx)
}

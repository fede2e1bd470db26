//! OpenAPI v3: the `/openapi/v3` index and one document per group/version. Every kind's item
//! path carries a PATCH operation with `x-kubernetes-group-version-kind` and a `fieldValidation`
//! query parameter — what kubectl's query-param verifier looks for before sending
//! `fieldValidation=Strict` (a review, which has no item path, carries it on its collection) —
//! and custom resources' structural schemas are published in
//! `components.schemas`. `/openapi/v2` is not served (404), as kubectl 1.32 tolerates.

use serde_json::{Map, Value, json};

use crate::builtin::{Registry, ResourceInfo};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `/openapi/v3`: the index of per-group-version documents, each URL carrying a content hash.
pub fn index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    for (g, v) in reg.group_versions() {
        let doc = gv_doc(reg, &g, &v).unwrap_or(Value::Null);
        let p = gv_path(&g, &v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={:016X}", fnv(&doc.to_string()))}),
        );
    }
    json!({"paths": paths})
}

/// The schema name of a kind: `io.k8s.api.core.v1.ConfigMap` style for built-ins, reversed
/// group for custom resources (`dev.tycho.v1alpha1.System`).
pub fn schema_name(info: &ResourceInfo) -> String {
    let rev: Vec<&str> = info.group.split('.').rev().collect();
    if info.is_custom() {
        format!("{}.{}.{}", rev.join("."), info.version, info.kind)
    } else {
        let g = if info.group.is_empty() {
            "core"
        } else {
            info.group.split('.').next().unwrap_or_default()
        };
        format!("io.k8s.api.{g}.{}.{}", info.version, info.kind)
    }
}

fn op(info: &ResourceInfo, action: &str, verb: &str) -> Value {
    let gvk = json!({"group": info.group, "version": info.version, "kind": info.kind});
    let mut params = vec![
        json!({"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}}),
        json!({"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}}),
    ];
    if matches!(action, "patch" | "put" | "post") {
        params.push(json!({"name": "fieldValidation", "in": "query",
            "description": "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
            "schema": {"type": "string", "uniqueItems": true}}));
    }
    if action == "patch" {
        params.push(json!({"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}));
    }
    let reference = json!({"$ref": format!("#/components/schemas/{}", schema_name(info))});
    json!({
        "operationId": format!("{verb}{}", info.kind),
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    })
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}` (None if not served).
pub fn gv_doc(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let infos = reg.resources(group, version);
    if infos.is_empty() {
        return None;
    }
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for i in &infos {
        let (coll, item) = if i.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", i.plural),
                format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", i.plural),
            )
        } else {
            (
                format!("{prefix}/{}", i.plural),
                format!("{prefix}/{}/{{name}}", i.plural),
            )
        };
        if i.persisted() {
            paths.insert(
                coll,
                json!({"get": op(i, "list", "list"), "post": op(i, "post", "create")}),
            );
            paths.insert(
                item.clone(),
                json!({
                    "get": op(i, "get", "read"),
                    "put": op(i, "put", "replace"),
                    "patch": op(i, "patch", "patch"),
                    "delete": op(i, "delete", "delete"),
                }),
            );
        } else {
            // A review: POST to the collection only. kube-apiserver's document has no PATCH
            // for it either, and kubectl's query-param verifier then falls back to
            // `/openapi/v2`, which the emulator does not serve (kubectl fails with "failed to
            // download openapi"): the PATCH operation here is for the verifier alone (a PATCH
            // is answered 405), so that kubectl sends `fieldValidation=Strict` instead.
            paths.insert(
                coll,
                json!({"post": op(i, "post", "create"), "patch": op(i, "patch", "patch")}),
            );
        }
        if i.status_subresource {
            paths.insert(
                format!("{item}/status"),
                json!({"get": op(i, "get", "read"), "put": op(i, "put", "replace"), "patch": op(i, "patch", "patch")}),
            );
        }
        let gvk = json!([{"group": i.group, "version": i.version, "kind": i.kind}]);
        let mut schema = match &i.custom {
            Some(c) if c.schema.is_object() => c.schema.clone(),
            _ => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        };
        if let Some(m) = schema.as_object_mut() {
            m.insert("x-kubernetes-group-version-kind".into(), gvk);
        }
        schemas.insert(schema_name(i), schema);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

//! The OpenAPI 3.1 document: paths and types from the route functions and their Rust types (utoipa),
//! the System's `spec` and `status` schemas from the System CRD, itself generated from `tycho_model`.

use kube::CustomResourceExt;
use serde_json::Value;
use tycho_model::System;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ApiError, Cause, Problem};
use crate::routes::{sessions, systems};
use crate::types::*;

/// The API's OpenAPI description (before the CRD schemas are put in: see [`document`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tycho API",
        description = "Start, watch, change and stop Tycho Systems and sessions over HTTP, as the identity of the caller: every call is made to Kubernetes with the caller's identity (TokenReview, then impersonation), so Kubernetes RBAC decides what each caller may do.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        systems::create, systems::list, systems::get, systems::change, systems::restart,
        systems::delete, systems::logs, systems::watch,
        sessions::open, sessions::list, sessions::get, sessions::renew, sessions::close,
        crate::server::whoami,
    ),
    components(schemas(Problem, Cause, SystemSpecDoc, SystemStatusDoc, WaitFor, WatchEvent, WatchSse)),
    modifiers(&Bearer),
    tags(
        (name = "systems", description = "Stacks of containers (the System custom resource)"),
        (name = "sessions", description = "Leases that own Systems; when one ends, its Systems go"),
        (name = "identity", description = "Who the caller is")
    )
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The OpenAPI document as served at `/openapi.json` (and committed as `docs/openapi.json`).
pub fn document() -> Result<Value, ApiError> {
    let mut doc = serde_json::to_value(ApiDoc::openapi())
        .map_err(|e| ApiError::Server(format!("serialising the OpenAPI document: {e}")))?;
    let crd = serde_json::to_value(System::crd())
        .map_err(|e| ApiError::Server(format!("serialising the System CRD: {e}")))?;
    let props = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    for (component, prop) in [("SystemSpec", "spec"), ("SystemStatus", "status")] {
        let mut schema = props[prop].clone();
        if schema.is_null() {
            return Err(ApiError::Server(format!(
                "the System CRD has no {prop} schema"
            )));
        }
        to_openapi_31(&mut schema);
        doc["components"]["schemas"][component] = schema;
    }
    constrain_names(&mut doc);
    // The `data` of a watch event is JSON of a WatchEvent (JSON Schema's contentMediaType/contentSchema).
    if let Some(data) = doc.pointer_mut("/components/schemas/WatchSse/properties/data") {
        data["contentMediaType"] = "application/json".into();
        data["contentSchema"] = serde_json::json!({"$ref": "#/components/schemas/WatchEvent"});
    }
    Ok(doc)
}

/// Path parameters `namespace` (a DNS-1123 label) and `name` (a DNS-1123 subdomain) are documented
/// with the rules the API checks them by.
fn constrain_names(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|p| p.values_mut())
    {
        let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for p in params.iter_mut().filter(|p| p["in"] == "path") {
            let (pattern, max) = match p["name"].as_str() {
                Some("namespace") => ("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", 63),
                Some("name") => ("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", 253),
                _ => continue,
            };
            p["schema"]["pattern"] = pattern.into();
            p["schema"]["maxLength"] = max.into();
        }
    }
}

/// A CRD (OpenAPI 3.0, structural) schema as an OpenAPI 3.1 (JSON Schema 2020-12) one: `nullable`
/// becomes a `null` type; Kubernetes' `x-kubernetes-*` keys stay (extensions are allowed).
fn to_openapi_31(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.remove("nullable") == Some(Value::Bool(true))
                && let Some(Value::String(t)) = m.get("type").cloned()
            {
                m.insert(
                    "type".into(),
                    Value::Array(vec![Value::String(t), "null".into()]),
                );
            }
            if m.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
                && !m.contains_key("type")
            {
                m.insert(
                    "type".into(),
                    Value::Array(vec!["integer".into(), "string".into()]),
                );
                m.remove("anyOf");
            }
            for (_, child) in m.iter_mut() {
                to_openapi_31(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(to_openapi_31),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_carries_the_crd_schemas_and_every_route() {
        let doc = document().unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let spec = doc["components"]["schemas"]["SystemSpec"]
            .as_object()
            .unwrap();
        assert!(spec["properties"]["containers"].is_object());
        assert_eq!(doc["paths"].as_object().unwrap().len(), 9);
        assert!(!doc.to_string().contains("\"nullable\""));
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }

    #[test]
    fn nullable_becomes_a_null_type() {
        let mut v = serde_json::json!({"type": "string", "nullable": true});
        to_openapi_31(&mut v);
        assert_eq!(v, serde_json::json!({"type": ["string", "null"]}));
    }
}

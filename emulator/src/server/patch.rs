//! PATCH: JSON merge patch, JSON patch, strategic merge patch (built-in types only) and
//! server-side apply (which creates a missing object), each followed by an update.

use std::sync::Arc;

use serde_json::{Value, json};

use super::admission::{ssa_apply, ssa_error};
use super::encoding::parse_yaml_or_json;
use super::object::{meta_mut, str_of};
use super::{AppState, RETRIES, Retry, WriteCtx};
use crate::builtin::{self, ResourceInfo};
use crate::error::{ApiError, Cause};
use crate::merge_keys::MergeSchema;
use crate::store::object_rv;

const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

/// A decoded PATCH request.
struct PatchReq<'a> {
    content_type: &'a str,
    patch: Value,
    sub: Option<&'a str>,
    force: bool,
    schema: MergeSchema,
}

impl PatchReq<'_> {
    fn is_apply(&self) -> bool {
        self.content_type == APPLY
    }
}

impl AppState {
    /// Applies a PATCH of the given content type. Returns the object and whether it was created
    /// (server-side apply on a missing object).
    #[allow(clippy::too_many_arguments)]
    pub fn patch_object(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        content_type: &str,
        patch_body: &[u8],
        sub: Option<&str>,
        force: bool,
        ctx: &mut WriteCtx,
    ) -> Result<(Arc<Value>, bool), ApiError> {
        check_media_type(info, content_type)?;
        let req = PatchReq {
            content_type,
            patch: parse_patch(content_type, patch_body)?,
            sub,
            force,
            schema: Self::merge_schema(info),
        };
        if req.is_apply() {
            check_apply_config(&req.patch, name, ctx)?;
        }
        for _ in 0..RETRIES {
            let Some(old) = self.current(info, ns, name) else {
                if !req.is_apply() || sub.is_some() {
                    return Err(ApiError::not_found(&info.group, &info.plural, name));
                }
                match self.apply_create(info, ns, name, &req, ctx) {
                    Ok(o) => return Ok((o, true)),
                    Err(e) if e.reason == "AlreadyExists" => continue,
                    Err(e) => return Err(e),
                }
            };
            let old = if info.is_events_v1() {
                Arc::new(builtin::core_event_to_v1(&old))
            } else {
                old
            };
            let new = patched(info, ns, name, &old, &req, &ctx.manager)?;
            let mut c2 = ctx.clone();
            c2.applied = req.is_apply();
            let r = self.update_object(info, &old, new, sub, &mut c2);
            ctx.warnings = c2.warnings;
            match r {
                Ok(o) => return Ok((o, false)),
                Err(Retry::Api(e)) => return Err(e),
                Err(Retry::Race) => continue,
            }
        }
        Err(ApiError::conflict_modified(&info.group, &info.plural, name))
    }

    /// Server-side apply of a missing object: creates it with the configuration.
    fn apply_create(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        req: &PatchReq<'_>,
        ctx: &mut WriteCtx,
    ) -> Result<Arc<Value>, ApiError> {
        let mut cfg = req.patch.clone();
        meta_mut(&mut cfg).insert("name".into(), json!(name));
        let created = ssa_apply(None, &cfg, &ctx.manager, None, req.force, &req.schema)
            .map_err(|e| ssa_error(info, name, e))?;
        let mut c2 = ctx.clone();
        c2.applied = true;
        let out = self.create_object(info, Some(ns).filter(|_| info.namespaced), created, &mut c2);
        ctx.warnings = c2.warnings;
        out
    }
}

/// The media type is judged before the body (415 for an unknown one, as kube-apiserver);
/// custom resources have no strategic merge patch.
fn check_media_type(info: &ResourceInfo, content_type: &str) -> Result<(), ApiError> {
    match content_type {
        MERGE | JSON_PATCH | APPLY => Ok(()),
        STRATEGIC if !info.is_custom() => Ok(()),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

fn parse_patch(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    if content_type == APPLY {
        parse_yaml_or_json(body)
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
    }
}

/// An apply configuration needs a field manager, apiVersion and kind, and the URL's name.
fn check_apply_config(patch: &Value, name: &str, ctx: &WriteCtx) -> Result<(), ApiError> {
    if ctx.manager.is_empty() || ctx.manager == "unknown" {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            vec![Cause::new(
                "FieldValueRequired",
                "fieldManager",
                "Required value: is required for apply patch",
            )],
        ));
    }
    let av = str_of(patch, &["apiVersion"]);
    let kind = str_of(patch, &["kind"]);
    if av.is_empty() || kind.is_empty() {
        return Err(ApiError::bad_request(
            "apiVersion and kind must be set in an apply configuration",
        ));
    }
    let pname = str_of(patch, &["metadata", "name"]);
    if !pname.is_empty() && pname != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({pname}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

/// 400 for a malformed patch, 422 for a patch that does not apply.
fn patch_error(e: &crate::patch::PatchError) -> ApiError {
    let reason = if e.status_code() == 400 {
        "BadRequest"
    } else {
        "Invalid"
    };
    ApiError::new(e.status_code(), reason, e.to_string())
}

/// The object after the patch.
fn patched(
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    old: &Arc<Value>,
    req: &PatchReq<'_>,
    manager: &str,
) -> Result<Value, ApiError> {
    match req.content_type {
        MERGE => {
            let mut n = (**old).clone();
            crate::patch::merge_patch(&mut n, &req.patch);
            Ok(n)
        }
        JSON_PATCH => {
            let mut n = (**old).clone();
            crate::patch::json_patch(&mut n, &req.patch).map_err(|e| patch_error(&e))?;
            Ok(n)
        }
        STRATEGIC => crate::patch::strategic_merge_patch(old, &req.patch, &req.schema)
            .map_err(|e| patch_error(&e)),
        _ => applied(info, ns, name, old, req, manager),
    }
}

/// Server-side apply onto the live object; the configuration's resourceVersion, if any, is a
/// precondition.
fn applied(
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    old: &Arc<Value>,
    req: &PatchReq<'_>,
    manager: &str,
) -> Result<Value, ApiError> {
    let mut cfg = req.patch.clone();
    meta_mut(&mut cfg).insert("name".into(), json!(name));
    if info.namespaced {
        meta_mut(&mut cfg).insert("namespace".into(), json!(ns));
    }
    let mut live = (**old).clone();
    if let Some(rv) = cfg["metadata"]["resourceVersion"].as_str()
        && !rv.is_empty()
        && rv.parse::<u64>().ok() != Some(object_rv(old))
    {
        return Err(ApiError::conflict_modified(&info.group, &info.plural, name));
    }
    meta_mut(&mut cfg).remove("resourceVersion");
    meta_mut(&mut live).remove("resourceVersion");
    let mut out = ssa_apply(Some(&live), &cfg, manager, req.sub, req.force, &req.schema)
        .map_err(|e| ssa_error(info, name, e))?;
    meta_mut(&mut out).insert("resourceVersion".into(), json!(object_rv(old).to_string()));
    Ok(out)
}

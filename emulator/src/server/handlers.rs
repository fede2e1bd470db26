//! One handler per verb of a resource request: get, list, watch, create, update, patch,
//! delete, deletecollection (and the binding and scale subresources).

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::Value;

use super::encoding::{
    Output, decode_body, delete_response, single_response, success, with_warnings,
};
use super::http::{Incoming, Q};
use super::list_watch::{self, selectors};
use super::object::{is_namespace, str_of};
use super::{AppState, DeleteOpts, Validation, WriteCtx, delete, subresource};
use crate::builtin::{Registry, ResourceInfo};
use crate::error::ApiError;
use crate::selector;

/// A resource request, resolved: what it addresses and how to answer it.
pub(super) struct Call<'a> {
    st: &'a AppState,
    info: Arc<ResourceInfo>,
    ns: &'a str,
    name: &'a str,
    pub(super) sub: Option<&'a str>,
    q: &'a Q,
    output: Output,
    content_type: String,
    body: &'a [u8],
    ctx: WriteCtx,
}

impl<'a> Call<'a> {
    /// Resolves the resource (404 for unknown resources, a namespace on a cluster-scoped
    /// resource, unknown subresources, or a namespaced object without a namespace) and reads
    /// the write options (400 for invalid `fieldValidation` or `dryRun`).
    pub(super) fn new(
        st: &'a AppState,
        reg: &Registry,
        req: &Incoming<'a>,
    ) -> Result<Call<'a>, ApiError> {
        let ri = req.ri;
        let info = reg
            .get(&ri.group, &ri.version, &ri.resource)
            .ok_or_else(ApiError::no_route)?;
        // `namespaces/{name}` addresses the Namespace itself.
        let ns_in_path =
            !(ri.namespace.is_empty() || info.plural == "namespaces" && info.group.is_empty());
        if ns_in_path && !info.namespaced {
            return Err(ApiError::no_route());
        }
        let ns = if info.namespaced {
            ri.namespace.as_str()
        } else {
            ""
        };
        let sub = (!ri.subresource.is_empty()).then_some(ri.subresource.as_str());
        if sub.is_some_and(|s| !has_subresource(&info, s)) {
            return Err(ApiError::no_route());
        }
        let accept = req.header(header::ACCEPT).unwrap_or_default();
        let output = Output::from_accept(accept, req.q.get("includeObject"));
        let ctx = write_ctx(req.q, req.ua)?;
        let content_type = req
            .header(header::CONTENT_TYPE)
            .unwrap_or("application/json")
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let name = ri.name.as_str();
        if info.namespaced && ns.is_empty() {
            let post_all = name.is_empty() && *req.method == axum::http::Method::POST;
            let named = !name.is_empty() && !is_namespace(&info);
            if post_all || named {
                return Err(ApiError::no_route());
            }
        }
        Ok(Call {
            st,
            info,
            ns,
            name,
            sub,
            q: req.q,
            output,
            content_type,
            body: req.body,
            ctx,
        })
    }

    /// Whether the resource stores its objects (false for a review, which serves POST alone).
    pub(super) fn persisted(&self) -> bool {
        self.info.persisted()
    }

    fn decoded_body(&self) -> Result<Value, ApiError> {
        decode_body(&self.content_type, self.body)
    }

    fn respond(&self, obj: &Value, code: StatusCode) -> Response {
        with_warnings(
            single_response(&self.info, obj, &self.output, code),
            &self.ctx.warnings,
        )
    }
}

/// Which subresources a resource serves.
fn has_subresource(info: &ResourceInfo, sub: &str) -> bool {
    match sub {
        "status" => info.status_subresource,
        "binding" => info.group.is_empty() && info.kind == "Pod",
        "scale" => info.group == "apps",
        _ => false,
    }
}

/// `fieldManager` (default: the User-Agent's product), `fieldValidation`, `dryRun`.
fn write_ctx(q: &Q, ua: &str) -> Result<WriteCtx, ApiError> {
    let manager = q
        .get("fieldManager")
        .map(str::to_string)
        .unwrap_or_else(|| {
            let m = ua.split('/').next().unwrap_or_default();
            if m.is_empty() {
                "unknown".to_string()
            } else {
                m.to_string()
            }
        });
    let validation = match q.get("fieldValidation") {
        Some("Strict") => Validation::Strict,
        Some("Ignore") => Validation::Ignore,
        None | Some("") | Some("Warn") => Validation::Warn,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\"; got {other:?}"
            )));
        }
    };
    let dry_run = match q.get("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid dryRun value {other:?}: supported values: \"All\""
            )));
        }
    };
    Ok(WriteCtx {
        manager,
        validation,
        dry_run,
        warnings: Vec::new(),
        applied: false,
    })
}

/// GET of one object (or its scale).
pub(super) fn get(c: &Call<'_>) -> Result<Response, ApiError> {
    let obj =
        c.st.current(&c.info, c.ns, c.name)
            .ok_or_else(|| ApiError::not_found(&c.info.group, &c.info.plural, c.name))?;
    if c.sub == Some("scale") {
        return Ok(super::encoding::json_response(
            StatusCode::OK,
            &subresource::scale_of(&obj),
        ));
    }
    Ok(single_response(&c.info, &obj, &c.output, StatusCode::OK))
}

/// GET of a collection.
pub(super) fn list(c: &Call<'_>) -> Result<Response, ApiError> {
    list_watch::list(c.st, &c.info, c.ns, c.q, &c.output)
}

/// GET of a collection with `watch=true`.
pub(super) fn watch(c: &Call<'_>) -> Result<Response, ApiError> {
    list_watch::watch(c.st, &c.info, c.ns, c.q, &c.output)
}

/// POST to a collection.
pub(super) fn create(c: &mut Call<'_>) -> Result<Response, ApiError> {
    let obj = c.decoded_body()?;
    let ns = Some(c.ns).filter(|n| !n.is_empty());
    let created = c.st.create_object(&c.info, ns, obj, &mut c.ctx)?;
    Ok(c.respond(&created, StatusCode::CREATED))
}

/// POST of a review (`TokenReview`): answered, not stored.
pub(super) fn review(c: &mut Call<'_>) -> Result<Response, ApiError> {
    let obj = c.decoded_body()?;
    let answered = c.st.review_token(&c.info, obj, &mut c.ctx)?;
    Ok(c.respond(&answered, StatusCode::CREATED))
}

/// POST `pods/{name}/binding`.
pub(super) fn bind(c: &mut Call<'_>) -> Result<Response, ApiError> {
    let b = c.decoded_body()?;
    subresource::bind_pod(c.st, &c.info, c.ns, c.name, &b, &mut c.ctx)
}

/// PUT of an object (or its status or scale).
pub(super) fn update(c: &mut Call<'_>) -> Result<Response, ApiError> {
    let obj = c.decoded_body()?;
    if c.sub == Some("scale") {
        return subresource::put_scale(c.st, &c.info, c.ns, c.name, &obj, &mut c.ctx);
    }
    let out =
        c.st.replace_object(&c.info, c.ns, c.name, obj, c.sub, &mut c.ctx)?;
    Ok(c.respond(&out, StatusCode::OK))
}

/// PATCH of an object (or its status or scale); 201 when server-side apply created it.
pub(super) fn patch(c: &mut Call<'_>) -> Result<Response, ApiError> {
    if c.sub == Some("scale") {
        let ct = c.content_type.clone();
        return subresource::patch_scale(c.st, &c.info, c.ns, c.name, &ct, c.body, &mut c.ctx);
    }
    let (out, created) = c.st.patch_object(
        &c.info,
        c.ns,
        c.name,
        &c.content_type,
        c.body,
        c.sub,
        c.q.flag("force"),
        &mut c.ctx,
    )?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(c.respond(&out, code))
}

/// DELETE of an object.
pub(super) fn delete(c: &Call<'_>) -> Result<Response, ApiError> {
    let opts = delete_opts(c.q, c.body)?;
    let d = c.st.delete_object(&c.info, c.ns, c.name, &opts)?;
    Ok(delete_response(&c.info, &d, &c.output))
}

/// DELETE of a collection (with selectors): every matching object is deleted.
pub(super) fn delete_collection(c: &Call<'_>) -> Result<Response, ApiError> {
    let opts = delete_opts(c.q, c.body)?;
    let (labels, fields) = selectors(&c.info, c.q)?;
    let (sg, sp) = c.info.store_key();
    let items = c.st.store.list_labelled(
        &sg,
        &sp,
        Some(c.ns).filter(|n| !n.is_empty()),
        None,
        0,
        &selector::equality_labels(&labels),
        &|o| selector::labels_match(&labels, o) && selector::fields_match(&fields, o),
    );
    for o in items.items {
        let n = str_of(&o, &["metadata", "name"]);
        let ons = str_of(&o, &["metadata", "namespace"]);
        match c.st.delete_object(&c.info, ons, n, &opts) {
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(success(StatusCode::OK, false))
}

/// `DeleteOptions` from the body and the query (the query wins), validated before the object
/// is looked up, as kube-apiserver does.
fn delete_opts(q: &Q, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let mut opts = DeleteOpts {
        propagation: b["propagationPolicy"].as_str().map(str::to_string),
        grace_period: b["gracePeriodSeconds"].as_i64(),
        uid: b["preconditions"]["uid"].as_str().map(str::to_string),
        resource_version: b["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
        dry_run: b["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "All")),
    };
    if opts.propagation.is_none() {
        opts.propagation = match b["orphanDependents"].as_bool() {
            Some(true) => Some("Orphan".into()),
            Some(false) => Some("Background".into()),
            None => None,
        };
    }
    if let Some(p) = q.get("propagationPolicy") {
        opts.propagation = Some(p.to_string());
    }
    if let Some(p) = opts.propagation.as_deref()
        && !matches!(p, "Foreground" | "Background" | "Orphan")
    {
        return Err(delete::invalid_propagation(p));
    }
    if let Some(g) = q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()) {
        opts.grace_period = Some(g);
    }
    if q.get("dryRun") == Some("All") {
        opts.dry_run = true;
    }
    Ok(opts)
}

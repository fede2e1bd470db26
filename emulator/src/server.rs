//! The HTTP API server (axum): routing of Kubernetes API paths, the request log and fault
//! injection, and the object lifecycle rules of kube-apiserver's generic registry — create,
//! update, patch (merge, JSON, strategic, apply), status subresource split, graceful deletion
//! and finalizers, list/watch with selectors and paging, Table and PartialObjectMetadata output.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Map, Value, json};

use crate::alloc::Allocator;
use crate::builtin::{self, Registry, ResourceInfo};
use crate::error::{ApiError, Cause};
use crate::faults::{Faults, RequestLog, RequestRecord};
use crate::merge_keys::MergeSchema;
use crate::store::{self, ObjectKey, Store, StoreError, object_rv};
use crate::{discovery, openapi, table, watch};

const MAX_BODY: usize = 64 * 1024 * 1024;

/// The finalizer apiextensions-apiserver puts on a deleted CRD until its resources are gone.
pub const CRD_CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Shared state of the running server.
pub struct AppState {
    /// The object store.
    pub store: Arc<Store>,
    registry: RwLock<Arc<Registry>>,
    /// Fault injection settings.
    pub faults: Faults,
    /// The request log.
    pub log: RequestLog,
    alloc: Mutex<Allocator>,
    /// Becomes true when the emulator shuts down.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    crd_lock: Mutex<()>,
    /// The simulated kubelet serving `pods/{log,exec,portforward}` (set at start).
    pub kubelet: std::sync::OnceLock<crate::kubelet::Kubelet>,
}

/// The current time as a Kubernetes `Time` (RFC 3339, seconds, `Z`).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Field validation directive (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Drop unknown fields silently.
    Ignore,
    /// Drop unknown fields with a `Warning` header (the default).
    Warn,
    /// Reject unknown fields (400).
    Strict,
}

/// Per-request write options.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    /// Field manager for managedFields.
    pub manager: String,
    /// Unknown-field handling.
    pub validation: Validation,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// Warnings to return in `Warning` headers.
    pub warnings: Vec<String>,
    /// Whether managedFields were already computed (server-side apply).
    pub applied: bool,
}

impl WriteCtx {
    /// Options for internal writes (controllers of the emulator itself).
    pub fn internal(manager: &str) -> WriteCtx {
        WriteCtx {
            manager: manager.to_string(),
            validation: Validation::Ignore,
            dry_run: false,
            warnings: Vec::new(),
            applied: false,
        }
    }
}

/// `DeleteOptions` as far as the emulator honours them.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// `Background`, `Foreground`, `Orphan`.
    pub propagation: Option<String>,
    /// `gracePeriodSeconds`.
    pub grace_period: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// The outcome of a delete.
pub struct Deleted {
    /// The object (its last state, or the terminating object).
    pub object: Arc<Value>,
    /// Whether it is gone (false: pending finalizers or graceful deletion).
    pub gone: bool,
}

enum Retry {
    Api(ApiError),
    Race,
}

impl From<ApiError> for Retry {
    fn from(e: ApiError) -> Self {
        Retry::Api(e)
    }
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
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

fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or_default()
}

fn finalizers(v: &Value) -> Vec<String> {
    v["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn set_finalizers(v: &mut Value, f: &[String]) {
    let m = meta_mut(v);
    if f.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(f));
    }
}

fn random_suffix() -> String {
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHA[rand::random_range(0..ALPHA.len())] as char)
        .collect()
}

/// Object equality ignoring resourceVersion and managedFields timestamps (no-op detection).
fn same_object(a: &Value, b: &Value) -> bool {
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
fn remove_path(v: &mut Value, path: &str) {
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

impl AppState {
    /// New state around a store.
    pub fn new(
        store: Arc<Store>,
        faults: Faults,
        shutdown: tokio::sync::watch::Receiver<bool>,
        addr: String,
    ) -> AppState {
        AppState {
            store,
            registry: RwLock::new(Arc::new(Registry::default())),
            faults,
            log: RequestLog::default(),
            alloc: Mutex::new(Allocator::new()),
            shutdown,
            addr,
            crd_lock: Mutex::new(()),
            kubelet: std::sync::OnceLock::new(),
        }
    }

    /// The current registry.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn alloc(&self) -> MutexGuard<'_, Allocator> {
        self.alloc.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuilds the registry from the stored CRDs (after a CRD changed).
    fn rebuild_registry(&self) {
        let crds = self.store.list(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            None,
            None,
            0,
            &|_| true,
        );
        let values: Vec<Value> = crds.items.iter().map(|v| (**v).clone()).collect();
        let reg = Registry::new(&values);
        *self.registry.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(reg);
    }

    /// The resource info of a store key (group, plural), preferring the storage version.
    pub fn info_for(&self, group: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.registry()
            .store_resources()
            .into_iter()
            .find(|i| i.group == group && i.plural == plural)
    }

    fn key(info: &ResourceInfo, ns: &str, name: &str) -> ObjectKey {
        let (group, plural) = info.store_key();
        ObjectKey {
            group,
            plural,
            namespace: if info.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    fn merge_schema(info: &ResourceInfo) -> MergeSchema {
        match &info.custom {
            Some(c) => MergeSchema::from_openapi(&c.schema),
            None => MergeSchema::builtin(&info.group, &info.kind),
        }
    }

    /// Sets/validates apiVersion and kind of a request body.
    fn check_type(info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
        let Some(m) = obj.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the body of the request is not a JSON object",
            ));
        };
        let av = info.api_version();
        match m.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => {
                m.insert("apiVersion".into(), json!(av));
            }
            Some(x) if x == av => {}
            Some(x) => {
                // Another served version of the same resource is accepted (no conversion needed
                // for CRDs with conversion strategy None).
                let (g, _) = builtin::split_api_version(x);
                if g != info.group {
                    return Err(ApiError::bad_request(format!(
                        "the API version in the data ({x}) does not match the expected API version ({av})"
                    )));
                }
                m.insert("apiVersion".into(), json!(av));
            }
        }
        match m.get("kind").and_then(Value::as_str) {
            None | Some("") => {
                m.insert("kind".into(), json!(info.kind));
            }
            Some(k) if k == info.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    info.kind
                )));
            }
        }
        Ok(())
    }

    /// Decoding + field validation + pruning (+ defaults and schema validation for custom
    /// resources).
    fn decode(
        &self,
        info: &ResourceInfo,
        obj: &mut Value,
        old: Option<&Value>,
        ctx: &mut WriteCtx,
    ) -> Result<(), ApiError> {
        if let Some(c) = &info.custom {
            return validate_custom(info, &c.schema, obj, old, ctx);
        }
        match builtin::typed_unknown_fields(&info.group, &info.kind, obj) {
            Err(e) => Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                info.kind, info.version, info.kind
            ))),
            Ok(unknown) => {
                if unknown.is_empty() {
                    return Ok(());
                }
                match ctx.validation {
                    Validation::Strict => {
                        let list: Vec<String> = unknown
                            .iter()
                            .map(|u| format!("unknown field \"{u}\""))
                            .collect();
                        return Err(ApiError::bad_request(format!(
                            "strict decoding error: {}",
                            list.join(", ")
                        )));
                    }
                    Validation::Warn => {
                        for u in &unknown {
                            ctx.warnings.push(format!("unknown field \"{u}\""));
                        }
                    }
                    Validation::Ignore => {}
                }
                for u in &unknown {
                    remove_path(obj, u);
                }
                Ok(())
            }
        }
    }

    fn record_managed(
        info: &ResourceInfo,
        old: Option<&Value>,
        new: &mut Value,
        ctx: &WriteCtx,
        sub: Option<&str>,
    ) {
        if ctx.applied {
            return;
        }
        let schema = Self::merge_schema(info);
        // The status a built-in strategy sets on create (PrepareForCreate) is not the writer's:
        // kube-apiserver's reset fields keep it out of the main resource's managedFields.
        let status = if old.is_none() && sub.is_none() && info.status_subresource {
            new.as_object_mut().and_then(|m| m.remove("status"))
        } else {
            None
        };
        record_update(old, new, &ctx.manager, sub, &schema, &now());
        if let (Some(st), Some(m)) = (status, new.as_object_mut()) {
            m.insert("status".into(), st);
        }
    }

    /// Creates an object (POST semantics).
    pub fn create_object(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        mut obj: Value,
        ctx: &mut WriteCtx,
    ) -> Result<Arc<Value>, ApiError> {
        Self::check_type(info, &mut obj)?;
        if let Some(c) = &info.custom
            && self
                .store
                .get(
                    "apiextensions.k8s.io",
                    "customresourcedefinitions",
                    "",
                    &c.crd_name,
                )
                .is_some_and(|crd| !crd["metadata"]["deletionTimestamp"].is_null())
        {
            return Err(ApiError::method_not_allowed(
                "create not allowed while custom resource definition is terminating",
            ));
        }
        let ts = now();
        let ns_name = if info.namespaced {
            let ns = ns.ok_or_else(ApiError::no_route)?;
            let meta = meta_mut(&mut obj);
            match meta.get("namespace").and_then(Value::as_str) {
                Some(x) if !x.is_empty() && x != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {}
            }
            meta.insert("namespace".into(), json!(ns));
            match self.store.get("", "namespaces", "", ns) {
                None => return Err(ApiError::not_found("", "namespaces", ns)),
                Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => {
                    let name = str_of(&obj, &["metadata", "name"]);
                    let mut e = ApiError::forbidden(format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        crate::error::qualified(&info.group, &info.plural),
                        name
                    ))
                    .with_details("", &info.plural, name);
                    e.details.causes = vec![Cause::new(
                        "NamespaceTerminating",
                        "metadata.namespace",
                        format!("namespace {ns} is being terminated"),
                    )];
                    return Err(e);
                }
                _ => {}
            }
            ns.to_string()
        } else {
            meta_mut(&mut obj).remove("namespace");
            String::new()
        };
        {
            let meta = meta_mut(&mut obj);
            let name = meta
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if name.is_empty() {
                let gen_name = meta
                    .get("generateName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if gen_name.is_empty() {
                    return Err(ApiError::invalid(
                        &info.group,
                        &info.kind,
                        "",
                        vec![Cause::new(
                            "FieldValueRequired",
                            "metadata.name",
                            "Required value: name or generateName is required",
                        )],
                    ));
                }
                meta.insert(
                    "name".into(),
                    json!(format!("{gen_name}{}", random_suffix())),
                );
            }
            if meta
                .get("resourceVersion")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
            {
                return Err(ApiError::internal(
                    "resourceVersion should not be set on objects to be created",
                ));
            }
            meta.remove("resourceVersion");
            meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), json!(ts));
            meta.remove("deletionTimestamp");
            meta.remove("deletionGracePeriodSeconds");
            meta.remove("selfLink");
            if info.has_generation {
                meta.insert("generation".into(), json!(1));
            } else {
                meta.remove("generation");
            }
        }
        let name = str_of(&obj, &["metadata", "name"]).to_string();
        builtin::prepare_for_create(info, &mut obj);
        builtin::apply_defaults(info, &mut obj);
        self.decode(info, &mut obj, None, ctx)?;
        let mut causes = builtin::validate_metadata(info, &obj);
        causes.extend(builtin::validate_object(info, &obj));
        if is_crd(info) {
            causes.extend(validate_crd(&obj));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&info.group, &info.kind, &name, causes));
        }
        if is_crd(info) {
            let status = builtin::crd_status(&obj, &ts);
            if let Some(m) = obj.as_object_mut() {
                m.insert("status".into(), status);
            }
        }
        Self::record_managed(info, None, &mut obj, ctx, None);
        builtin::admit_create(info, &mut obj);
        if info.is_events_v1() {
            obj = builtin::v1_event_to_core(&obj);
        }
        let key = Self::key(info, &ns_name, &name);
        let svc = is_service(info);
        let mut alloc = if svc { Some(self.alloc()) } else { None };
        if let Some(a) = alloc.as_mut() {
            if self
                .store
                .get(&key.group, &key.plural, &key.namespace, &key.name)
                .is_some()
            {
                return Err(ApiError::already_exists(&info.group, &info.plural, &name));
            }
            a.allocate(&mut obj, None)
                .map_err(|c| ApiError::invalid(&info.group, &info.kind, &name, c))?;
        }
        if ctx.dry_run {
            if let Some(a) = alloc.as_mut() {
                a.release(&obj);
            }
            return Ok(Arc::new(obj));
        }
        let created = match self.store.create(&key, obj) {
            Ok(o) => o,
            Err(_) => {
                return Err(ApiError::already_exists(&info.group, &info.plural, &name));
            }
        };
        drop(alloc);
        if is_crd(info) {
            let _g = self.crd_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.rebuild_registry();
        }
        Ok(created)
    }

    /// Updates an object from `old` to `new` (PUT/PATCH semantics, status split, immutable
    /// fields, generation, managedFields, finalizer-driven removal).
    fn update_object(
        &self,
        info: &ResourceInfo,
        old: &Arc<Value>,
        mut new: Value,
        sub: Option<&str>,
        ctx: &mut WriteCtx,
    ) -> Result<Arc<Value>, Retry> {
        let view;
        let old = if info.is_events_v1() {
            view = Arc::new(builtin::core_event_to_v1(old));
            &view
        } else {
            old
        };
        let name = str_of(old, &["metadata", "name"]).to_string();
        let ns = str_of(old, &["metadata", "namespace"]).to_string();
        Self::check_type(info, &mut new)?;
        {
            let meta = meta_mut(&mut new);
            match meta.get("name").and_then(Value::as_str) {
                None | Some("") => {
                    meta.insert("name".into(), json!(name));
                }
                Some(n) if n != name => {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    ))
                    .into());
                }
                _ => {}
            }
            if info.namespaced {
                match meta.get("namespace").and_then(Value::as_str) {
                    Some(x) if !x.is_empty() && x != ns => {
                        return Err(ApiError::bad_request(
                            "the namespace of the provided object does not match the namespace sent on the request",
                        )
                        .into());
                    }
                    _ => {
                        meta.insert("namespace".into(), json!(ns));
                    }
                }
            } else {
                meta.remove("namespace");
            }
            if let Some(rv) = meta.get("resourceVersion").and_then(Value::as_str)
                && !rv.is_empty()
                && rv.parse::<u64>().ok() != Some(object_rv(old))
            {
                return Err(ApiError::conflict_modified(&info.group, &info.plural, &name).into());
            }
        }
        // Status subresource split.
        if info.status_subresource {
            match sub {
                Some("status") => {
                    let mut merged = (**old).clone();
                    let new_status = new.get("status").cloned();
                    let new_mf = new["metadata"].get("managedFields").cloned();
                    if let Some(m) = merged.as_object_mut() {
                        match new_status {
                            Some(s) => {
                                m.insert("status".into(), s);
                            }
                            None => {
                                m.remove("status");
                            }
                        }
                    }
                    if let Some(mf) = new_mf {
                        meta_mut(&mut merged).insert("managedFields".into(), mf);
                    }
                    new = merged;
                }
                _ => {
                    if let Some(m) = new.as_object_mut() {
                        match old.get("status") {
                            Some(s) => {
                                m.insert("status".into(), s.clone());
                            }
                            None => {
                                m.remove("status");
                            }
                        }
                    }
                }
            }
        }
        // System metadata the client cannot change.
        {
            let old_meta = old["metadata"].clone();
            let meta = meta_mut(&mut new);
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match old_meta.get(f) {
                    Some(v) => {
                        meta.insert(f.into(), v.clone());
                    }
                    None => {
                        meta.remove(f);
                    }
                }
            }
            meta.remove("selfLink");
            if !meta.contains_key("managedFields")
                && let Some(mf) = old_meta.get("managedFields")
            {
                meta.insert("managedFields".into(), mf.clone());
            }
            if meta
                .get("managedFields")
                .is_some_and(|v| v.as_array().is_some_and(Vec::is_empty))
            {
                meta.remove("managedFields");
            }
        }
        builtin::apply_defaults(info, &mut new);
        self.decode(info, &mut new, Some(old), ctx)?;
        let mut causes = builtin::validate_metadata(info, &new);
        causes.extend(builtin::validate_object(info, &new));
        causes.extend(builtin::validate_update(info, old, &new));
        if is_crd(info) {
            causes.extend(validate_crd(&new));
        }
        if !old["metadata"]["deletionTimestamp"].is_null() {
            let of = finalizers(old);
            if finalizers(&new).iter().any(|f| !of.contains(f)) {
                causes.push(Cause::new(
                    "FieldValueForbidden",
                    "metadata.finalizers",
                    "Forbidden: no new finalizers can be added if the object is being deleted",
                ));
            }
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&info.group, &info.kind, &name, causes).into());
        }
        if info.has_generation && builtin::spec_changed(info, old, &new) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta_mut(&mut new).insert("generation".into(), json!(g));
        }
        if is_crd(info) {
            let since = old["status"]["conditions"][0]["lastTransitionTime"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(now);
            let status = builtin::crd_status(&new, &since);
            if let Some(m) = new.as_object_mut() {
                m.insert("status".into(), status);
            }
        }
        Self::record_managed(info, Some(old), &mut new, ctx, sub);
        let key = Self::key(info, &ns, &name);
        let (old, mut new) = if info.is_events_v1() {
            (
                Arc::new(builtin::v1_event_to_core(old)),
                builtin::v1_event_to_core(&new),
            )
        } else {
            (old.clone(), new)
        };
        let old = &old;
        let svc = is_service(info);
        let mut alloc = if svc { Some(self.alloc()) } else { None };
        if let Some(a) = alloc.as_mut() {
            a.allocate(&mut new, Some(old))
                .map_err(|c| ApiError::invalid(&info.group, &info.kind, &name, c))?;
        }
        let undo = |a: &mut Option<MutexGuard<'_, Allocator>>, new: &Value| {
            if let Some(a) = a.as_mut() {
                a.release(new);
                a.reserve(old);
            }
        };
        if same_object(old, &new) {
            return Ok(old.clone());
        }
        if ctx.dry_run {
            undo(&mut alloc, &new);
            return Ok(Arc::new(new));
        }
        let terminating = !new["metadata"]["deletionTimestamp"].is_null();
        let done = terminating && finalizers(&new).is_empty() && !is_graceful_pending(info, &new);
        let result = if done {
            self.store.delete(&key, Some(object_rv(old)))
        } else {
            self.store.update(&key, new.clone(), Some(object_rv(old)))
        };
        match result {
            Ok(o) => {
                // Release the allocator before the removal side effects take it again.
                drop(alloc);
                if done {
                    self.after_removal(info, &o);
                    // kube-apiserver answers the update that removed the last finalizer with the
                    // updated object as deleted (finalizers gone), without managedFields.
                    let mut last = new;
                    if let Some(m) = last["metadata"].as_object_mut() {
                        m.remove("managedFields");
                        if let Some(rv) = o["metadata"].get("resourceVersion") {
                            m.insert("resourceVersion".into(), rv.clone());
                        }
                    }
                    return Ok(Arc::new(last));
                } else if is_crd(info) {
                    let _g = self.crd_lock.lock().unwrap_or_else(|e| e.into_inner());
                    self.rebuild_registry();
                }
                Ok(o)
            }
            Err(StoreError::NotFound) => {
                undo(&mut alloc, &new);
                Err(ApiError::not_found(&info.group, &info.plural, &name).into())
            }
            Err(_) => {
                undo(&mut alloc, &new);
                Err(Retry::Race)
            }
        }
    }

    /// Side effects of an object's final removal (allocations, CRD contents).
    fn after_removal(&self, info: &ResourceInfo, obj: &Value) {
        if is_service(info) {
            self.alloc().release(obj);
        }
        if is_crd(info) {
            let group = str_of(obj, &["spec", "group"]).to_string();
            let plural = str_of(obj, &["spec", "names", "plural"]).to_string();
            let all = self.store.list(&group, &plural, None, None, 0, &|_| true);
            for o in all.items {
                let key = ObjectKey {
                    group: group.clone(),
                    plural: plural.clone(),
                    namespace: str_of(&o, &["metadata", "namespace"]).to_string(),
                    name: str_of(&o, &["metadata", "name"]).to_string(),
                };
                let _ = self.store.delete(&key, None);
            }
            let _g = self.crd_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.rebuild_registry();
        }
    }

    /// Replaces an object (PUT), retrying internal races when the body carries no
    /// resourceVersion (unconditional update).
    pub fn replace_object(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        body: Value,
        sub: Option<&str>,
        ctx: &mut WriteCtx,
    ) -> Result<Arc<Value>, ApiError> {
        for _ in 0..16 {
            let key = Self::key(info, ns, name);
            let old = self
                .store
                .get(&key.group, &key.plural, &key.namespace, &key.name)
                .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))?;
            match self.update_object(info, &old, body.clone(), sub, ctx) {
                Ok(o) => return Ok(o),
                Err(Retry::Api(e)) => return Err(e),
                Err(Retry::Race) => continue,
            }
        }
        Err(ApiError::conflict_modified(&info.group, &info.plural, name))
    }

    /// Applies `f` to the current object and stores the result, retrying on races. `f` returns
    /// None to leave the object unchanged.
    pub fn mutate_object(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        ctx: &mut WriteCtx,
        f: &dyn Fn(&Value) -> Option<Value>,
    ) -> Result<Arc<Value>, ApiError> {
        for _ in 0..16 {
            let key = Self::key(info, ns, name);
            let old = self
                .store
                .get(&key.group, &key.plural, &key.namespace, &key.name)
                .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))?;
            let Some(new) = f(&old) else {
                return Ok(old);
            };
            match self.update_object(info, &old, new, None, ctx) {
                Ok(o) => return Ok(o),
                Err(Retry::Api(e)) => return Err(e),
                Err(Retry::Race) => continue,
            }
        }
        Err(ApiError::conflict_modified(&info.group, &info.plural, name))
    }

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
        let is_apply = content_type == "application/apply-patch+yaml";
        // The media type is judged before the body (415 for an unknown one, as kube-apiserver).
        match content_type {
            "application/merge-patch+json"
            | "application/json-patch+json"
            | "application/apply-patch+yaml" => {}
            "application/strategic-merge-patch+json" => {
                if info.is_custom() {
                    return Err(ApiError::unsupported_media_type(content_type));
                }
            }
            other => return Err(ApiError::unsupported_media_type(other)),
        }
        let patch: Value = if is_apply {
            parse_yaml_or_json(patch_body)?
        } else {
            serde_json::from_slice(patch_body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
        };
        if is_apply {
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
            let av = str_of(&patch, &["apiVersion"]);
            let kind = str_of(&patch, &["kind"]);
            if av.is_empty() || kind.is_empty() {
                return Err(ApiError::bad_request(
                    "apiVersion and kind must be set in an apply configuration",
                ));
            }
            let pname = str_of(&patch, &["metadata", "name"]);
            if !pname.is_empty() && pname != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({pname}) does not match the name on the URL ({name})"
                )));
            }
        }
        let schema = Self::merge_schema(info);
        for _ in 0..16 {
            let key = Self::key(info, ns, name);
            let old = self
                .store
                .get(&key.group, &key.plural, &key.namespace, &key.name);
            let Some(old) = old else {
                if !is_apply || sub.is_some() {
                    return Err(ApiError::not_found(&info.group, &info.plural, name));
                }
                let mut cfg = patch.clone();
                meta_mut(&mut cfg).insert("name".into(), json!(name));
                let created = ssa_apply(None, &cfg, &ctx.manager, None, force, &schema, &now())
                    .map_err(|e| ssa_error(info, name, e))?;
                let mut c2 = ctx.clone();
                c2.applied = true;
                let out = self.create_object(
                    info,
                    Some(ns).filter(|_| info.namespaced),
                    created,
                    &mut c2,
                );
                ctx.warnings = c2.warnings;
                return match out {
                    Ok(o) => Ok((o, true)),
                    Err(e) if e.reason == "AlreadyExists" => continue,
                    Err(e) => Err(e),
                };
            };
            let old = if info.is_events_v1() {
                Arc::new(builtin::core_event_to_v1(&old))
            } else {
                old
            };
            let new = match content_type {
                "application/merge-patch+json" => {
                    let mut n = (*old).clone();
                    crate::patch::merge_patch(&mut n, &patch);
                    n
                }
                "application/json-patch+json" => {
                    let mut n = (*old).clone();
                    crate::patch::json_patch(&mut n, &patch).map_err(|e| {
                        ApiError::new(
                            e.status_code(),
                            if e.status_code() == 400 {
                                "BadRequest"
                            } else {
                                "Invalid"
                            },
                            e.to_string(),
                        )
                    })?;
                    n
                }
                "application/strategic-merge-patch+json" => {
                    crate::patch::strategic_merge_patch(&old, &patch, &schema).map_err(|e| {
                        ApiError::new(
                            e.status_code(),
                            if e.status_code() == 400 {
                                "BadRequest"
                            } else {
                                "Invalid"
                            },
                            e.to_string(),
                        )
                    })?
                }
                _ => {
                    let mut cfg = patch.clone();
                    meta_mut(&mut cfg).insert("name".into(), json!(name));
                    if info.namespaced {
                        meta_mut(&mut cfg).insert("namespace".into(), json!(ns));
                    }
                    let mut live = (*old).clone();
                    // The apply configuration's resourceVersion, if any, is a precondition.
                    if let Some(rv) = cfg["metadata"]["resourceVersion"].as_str()
                        && !rv.is_empty()
                        && rv.parse::<u64>().ok() != Some(object_rv(&old))
                    {
                        return Err(ApiError::conflict_modified(&info.group, &info.plural, name));
                    }
                    meta_mut(&mut cfg).remove("resourceVersion");
                    meta_mut(&mut live).remove("resourceVersion");
                    let mut out =
                        ssa_apply(Some(&live), &cfg, &ctx.manager, sub, force, &schema, &now())
                            .map_err(|e| ssa_error(info, name, e))?;
                    meta_mut(&mut out)
                        .insert("resourceVersion".into(), json!(object_rv(&old).to_string()));
                    out
                }
            };
            let mut c2 = ctx.clone();
            c2.applied = is_apply;
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

    /// Deletes an object (DELETE semantics: preconditions, graceful deletion of scheduled pods,
    /// finalizers, propagation policy finalizers, namespace termination).
    pub fn delete_object(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Deleted, ApiError> {
        for _ in 0..16 {
            let key = Self::key(info, ns, name);
            let old = self
                .store
                .get(&key.group, &key.plural, &key.namespace, &key.name)
                .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))?;
            if let Some(uid) = &opts.uid
                && uid != str_of(&old, &["metadata", "uid"])
            {
                return Err(ApiError::conflict(
                    &info.group,
                    &info.plural,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        str_of(&old, &["metadata", "uid"])
                    ),
                ));
            }
            if let Some(rv) = &opts.resource_version
                && rv.parse::<u64>().ok() != Some(object_rv(&old))
            {
                return Err(ApiError::conflict(
                    &info.group,
                    &info.plural,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        object_rv(&old)
                    ),
                ));
            }
            let mut obj = (*old).clone();
            let ts = now();
            let already = !old["metadata"]["deletionTimestamp"].is_null();
            // Namespaces: the namespace lifecycle controller empties them first.
            if info.group.is_empty() && info.kind == "Namespace" {
                if already {
                    return Ok(Deleted {
                        object: old,
                        gone: false,
                    });
                }
                meta_mut(&mut obj).insert("deletionTimestamp".into(), json!(ts));
                meta_mut(&mut obj).insert("deletionGracePeriodSeconds".into(), json!(0));
                obj["status"] = json!({"phase": "Terminating"});
                if opts.dry_run {
                    return Ok(Deleted {
                        object: Arc::new(obj),
                        gone: false,
                    });
                }
                match self.store.update(&key, obj, Some(object_rv(&old))) {
                    Ok(o) => {
                        return Ok(Deleted {
                            object: o,
                            gone: false,
                        });
                    }
                    Err(_) => continue,
                }
            }
            let mut fins = finalizers(&old);
            // A CRD is kept until its custom resources are gone (apiextensions-apiserver adds
            // the cleanup finalizer on delete and marks the CRD Terminating).
            if is_crd(info) && !already && !fins.iter().any(|f| f == CRD_CLEANUP) {
                fins.push(CRD_CLEANUP.to_string());
                let mut conds: Vec<Value> = obj["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                conds.retain(|c| c["type"] != "Terminating");
                conds.push(json!({"type": "Terminating", "status": "True",
                    "reason": "InstanceDeletionInProgress",
                    "message": "CustomResource deletion is in progress", "lastTransitionTime": ts}));
                obj["status"]["conditions"] = json!(conds);
            }
            let policy =
                opts.propagation
                    .as_deref()
                    .unwrap_or(if already { "" } else { "Background" });
            let (orphan, fg) = ("orphan".to_string(), "foregroundDeletion".to_string());
            match policy {
                "Orphan" => {
                    fins.retain(|f| f != &fg);
                    if !fins.contains(&orphan) {
                        fins.push(orphan);
                    }
                }
                "Foreground" => {
                    fins.retain(|f| f != &orphan);
                    if !fins.contains(&fg) {
                        fins.push(fg);
                    }
                }
                "Background" => {
                    fins.retain(|f| f != &orphan && f != &fg);
                }
                "" => {}
                other => return Err(invalid_propagation(other)),
            }
            // Graceful deletion of scheduled pods (the kubelet confirms with grace 0).
            let mut grace = 0i64;
            if info.group.is_empty() && info.kind == "Pod" {
                let phase = str_of(&old, &["status", "phase"]);
                let scheduled = !str_of(&old, &["spec", "nodeName"]).is_empty();
                let requested = opts
                    .grace_period
                    .or_else(|| old["spec"]["terminationGracePeriodSeconds"].as_i64())
                    .unwrap_or(30);
                if scheduled && phase != "Succeeded" && phase != "Failed" {
                    grace = requested.max(0);
                }
                if already {
                    let cur = old["metadata"]["deletionGracePeriodSeconds"]
                        .as_i64()
                        .unwrap_or(0);
                    grace = grace.min(cur);
                }
            }
            if fins.is_empty() && grace == 0 {
                if opts.dry_run {
                    return Ok(Deleted {
                        object: old,
                        gone: true,
                    });
                }
                match self.store.delete(&key, Some(object_rv(&old))) {
                    Ok(o) => {
                        self.after_removal(info, &o);
                        return Ok(Deleted {
                            object: o,
                            gone: true,
                        });
                    }
                    Err(StoreError::NotFound) => {
                        return Err(ApiError::not_found(&info.group, &info.plural, name));
                    }
                    Err(_) => continue,
                }
            }
            set_finalizers(&mut obj, &fins);
            {
                let meta = meta_mut(&mut obj);
                if !already {
                    let when = if grace > 0 {
                        (chrono::Utc::now() + chrono::Duration::seconds(grace))
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    } else {
                        ts.clone()
                    };
                    meta.insert("deletionTimestamp".into(), json!(when));
                }
                if !already || grace == 0 {
                    meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
                }
            }
            if same_object(&old, &obj) {
                return Ok(Deleted {
                    object: old,
                    gone: false,
                });
            }
            if opts.dry_run {
                return Ok(Deleted {
                    object: Arc::new(obj),
                    gone: false,
                });
            }
            match self.store.update(&key, obj, Some(object_rv(&old))) {
                Ok(o) => {
                    return Ok(Deleted {
                        object: o,
                        gone: false,
                    });
                }
                Err(StoreError::NotFound) => {
                    return Err(ApiError::not_found(&info.group, &info.plural, name));
                }
                Err(_) => continue,
            }
        }
        Err(ApiError::conflict_modified(&info.group, &info.plural, name))
    }

    /// Removes one finalizer from an object (deleting it if it was the last one of a terminating
    /// object). Used by the emulator's controllers.
    pub fn remove_finalizer(&self, key: &ObjectKey, finalizer: &str) -> Result<(), ApiError> {
        let Some(info) = self.info_for(&key.group, &key.plural) else {
            return Ok(());
        };
        let mut ctx = WriteCtx::internal("generic-garbage-collector");
        let fin = finalizer.to_string();
        match self.mutate_object(&info, &key.namespace, &key.name, &mut ctx, &|o| {
            let mut f = finalizers(o);
            if !f.contains(&fin) {
                return None;
            }
            f.retain(|x| x != &fin);
            let mut n = o.clone();
            set_finalizers(&mut n, &f);
            Some(n)
        }) {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Creates the namespaces every cluster starts with.
    pub fn bootstrap(&self) -> Result<(), ApiError> {
        self.rebuild_registry();
        let reg = self.registry();
        let Some(ns_info) = reg.get("", "v1", "namespaces") else {
            return Err(ApiError::internal("namespaces not registered"));
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let mut ctx = WriteCtx::internal("kube-apiserver");
            let obj = json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}});
            match self.create_object(&ns_info, None, obj, &mut ctx) {
                Ok(_) => {}
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(svc) = reg.get("", "v1", "services") {
            let mut ctx = WriteCtx::internal("kube-apiserver");
            let obj = json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}});
            self.alloc()
                .release(&json!({"spec": {"clusterIP": "10.96.0.1"}}));
            match self.create_object(&svc, Some("default"), obj, &mut ctx) {
                Ok(_) => {}
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        self.store.compact();
        Ok(())
    }
}

fn is_service(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.kind == "Service"
}

fn is_crd(info: &ResourceInfo) -> bool {
    info.group == "apiextensions.k8s.io" && info.kind == "CustomResourceDefinition"
}

fn is_graceful_pending(info: &ResourceInfo, obj: &Value) -> bool {
    info.group.is_empty()
        && info.kind == "Pod"
        && obj["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(0)
            > 0
}

fn parse_yaml_or_json(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Bridges to the pure algorithms (E2): server-side apply, managedFields, CR validation.
// ---------------------------------------------------------------------------------------------

/// Why server-side apply failed.
pub enum ApplyFailure {
    /// Conflicts with other managers: the message and (manager, field) pairs.
    Conflicts(String, Vec<(String, String)>),
    /// Invalid configuration.
    Invalid(String),
}

fn ssa_apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    sub: Option<&str>,
    force: bool,
    schema: &MergeSchema,
    now: &str,
) -> Result<Value, ApplyFailure> {
    bridge::apply(live, config, manager, sub, force, schema, now)
}

fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    sub: Option<&str>,
    schema: &MergeSchema,
    now: &str,
) {
    bridge::record_update(old, new, manager, sub, schema, now);
}

fn validate_custom(
    info: &ResourceInfo,
    schema: &Value,
    obj: &mut Value,
    old: Option<&Value>,
    ctx: &mut WriteCtx,
) -> Result<(), ApiError> {
    match bridge::validate_custom_resource(schema, obj.clone(), old, ctx.validation) {
        Ok((validated, warnings)) => {
            *obj = validated;
            if ctx.validation == Validation::Warn {
                ctx.warnings.extend(warnings);
            }
            Ok(())
        }
        Err(bridge::CrInvalid::Unknown(msg)) => Err(ApiError::bad_request(msg)),
        Err(bridge::CrInvalid::Causes(causes)) => Err(ApiError::invalid(
            &info.group,
            &info.kind,
            str_of(obj, &["metadata", "name"]),
            causes,
        )),
    }
}

fn validate_crd(obj: &Value) -> Vec<Cause> {
    bridge::validate_crd_schema(obj)
}

fn ssa_error(info: &ResourceInfo, name: &str, e: ApplyFailure) -> ApiError {
    match e {
        ApplyFailure::Conflicts(message, cs) => {
            let causes: Vec<Cause> = cs
                .iter()
                .map(|(m, f)| {
                    Cause::new("FieldManagerConflict", f, format!("conflict with \"{m}\""))
                })
                .collect();
            // kube-apiserver's apply conflict names no object in its details, only the causes.
            let _ = (info, name);
            let mut err = ApiError::new(409, "Conflict", message);
            err.details.causes = causes;
            err
        }
        ApplyFailure::Invalid(m) => ApiError::invalid(
            &info.group,
            &info.kind,
            name,
            vec![Cause::new("FieldValueInvalid", "", m)],
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP layer
// ---------------------------------------------------------------------------------------------

/// The router serving the whole API.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(entry).with_state(state)
}

struct Q(HashMap<String, String>);

impl Q {
    fn parse(uri: &axum::http::Uri) -> Q {
        let pairs: Vec<(String, String)> = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|q| q.0)
            .unwrap_or_default();
        Q(pairs.into_iter().collect())
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1"))
    }
}

/// What a request addresses (as kube-apiserver's RequestInfo).
#[derive(Debug, Clone, Default)]
struct ReqInfo {
    resource_request: bool,
    verb: String,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    namespace: String,
    name: String,
}

fn request_info(method: &Method, path: &str, q: &Q) -> ReqInfo {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let mut ri = ReqInfo {
        verb: method.as_str().to_lowercase(),
        ..ReqInfo::default()
    };
    let rest: &[&str] = match segs.as_slice() {
        ["api", v, rest @ ..] => {
            ri.version = v.to_string();
            rest
        }
        ["apis", g, v, rest @ ..] => {
            ri.group = g.to_string();
            ri.version = v.to_string();
            rest
        }
        _ => return ri,
    };
    if rest.is_empty() {
        return ri;
    }
    let rest: &[&str] = if rest[0] == "namespaces"
        && rest.len() >= 3
        && !(rest.len() == 3 && (rest[2] == "status" || rest[2] == "finalize"))
    {
        ri.namespace = rest[1].to_string();
        &rest[2..]
    } else {
        rest
    };
    ri.resource_request = true;
    ri.resource = rest[0].to_string();
    if let Some(n) = rest.get(1) {
        ri.name = n.to_string();
    }
    if let Some(s) = rest.get(2) {
        ri.subresource = s.to_string();
    }
    if rest.len() > 3 {
        ri.resource_request = false;
    }
    if ri.resource == "namespaces" && !ri.name.is_empty() && rest.len() == 2 {
        ri.namespace = ri.name.clone();
    }
    let has_name = !ri.name.is_empty();
    ri.verb = match *method {
        Method::GET | Method::HEAD => {
            if has_name {
                "get"
            } else if q.flag("watch") {
                "watch"
            } else {
                "list"
            }
        }
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => {
            if has_name {
                "delete"
            } else {
                "deletecollection"
            }
        }
        _ => "unknown",
    }
    .to_string();
    ri
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    let mut r = (code, v.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

/// `(namespace, pod, subresource)` of a kubelet streaming request
/// (`/api/v1/namespaces/{ns}/pods/{name}/{log|exec|portforward}`).
fn kubelet_target(path: &str) -> Option<(String, String, String)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, sub]
            if matches!(*sub, "log" | "exec" | "portforward" | "attach") =>
        {
            Some((ns.to_string(), name.to_string(), sub.to_string()))
        }
        _ => None,
    }
}

async fn entry(State(st): State<Arc<AppState>>, req: Request) -> Response {
    if let Some((ns, pod, sub)) = kubelet_target(req.uri().path()) {
        let ua = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let path = req.uri().path().to_string();
        let verb = if *req.method() == Method::GET {
            "get"
        } else {
            "create"
        };
        let resp = match st.kubelet.get() {
            Some(k) => k.handle(&ns, &pod, &sub, req).await,
            None => {
                ApiError::not_implemented("the simulated kubelet is not running").into_response()
            }
        };
        st.log.push(RequestRecord {
            verb: verb.into(),
            api_group: String::new(),
            api_version: "v1".into(),
            resource: "pods".into(),
            subresource: sub,
            namespace: ns,
            name: pod,
            path,
            user_agent: ua,
            code: resp.status().as_u16(),
        });
        return resp;
    }
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let q = Q::parse(&parts.uri);
    let ua = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if path.starts_with("/emulator/") {
        let bytes = to_bytes(body, MAX_BODY).await.unwrap_or_default();
        return admin(&st, &parts.method, &path, &bytes);
    }
    let ri = request_info(&parts.method, &path, &q);
    let resp = async {
        if ri.resource_request {
            let lat = st.faults.latency();
            if !lat.is_zero() {
                tokio::time::sleep(lat).await;
            }
            if let Some(e) = st.faults.error_for(&ri.verb, &ri.resource) {
                return e.into_response();
            }
        }
        let bytes = match to_bytes(body, MAX_BODY).await {
            Ok(b) => b,
            Err(e) => return ApiError::bad_request(format!("reading body: {e}")).into_response(),
        };
        match dispatch(
            &st,
            &parts.method,
            &path,
            &q,
            &parts.headers,
            &ri,
            &bytes,
            &ua,
        ) {
            Ok(r) => r,
            Err(e) => e.into_response(),
        }
    }
    .await;
    st.log.push(RequestRecord {
        verb: ri.verb.clone(),
        api_group: ri.group.clone(),
        api_version: ri.version.clone(),
        resource: ri.resource.clone(),
        subresource: ri.subresource.clone(),
        namespace: ri.namespace.clone(),
        name: ri.name.clone(),
        path,
        user_agent: ua,
        code: resp.status().as_u16(),
    });
    resp
}

fn admin(st: &AppState, method: &Method, path: &str, body: &[u8]) -> Response {
    match (method, path.trim_end_matches('/')) {
        (&Method::GET, "/emulator/v1/requests") => {
            json_response(StatusCode::OK, &json!(st.log.all()))
        }
        (&Method::DELETE, "/emulator/v1/requests") => {
            st.log.clear();
            json_response(StatusCode::OK, &json!({}))
        }
        (&Method::GET, "/emulator/v1/faults") => {
            json_response(StatusCode::OK, &json!(st.faults.spec()))
        }
        (&Method::PUT, "/emulator/v1/faults") => {
            match serde_json::from_slice::<crate::faults::FaultSpec>(body) {
                Ok(spec) => {
                    st.faults.apply(&spec);
                    json_response(StatusCode::OK, &json!(st.faults.spec()))
                }
                Err(e) => ApiError::bad_request(format!("invalid fault spec: {e}")).into_response(),
            }
        }
        _ => ApiError::no_route().into_response(),
    }
}

#[allow(clippy::too_many_arguments)]
fn dispatch(
    st: &AppState,
    method: &Method,
    path: &str,
    q: &Q,
    headers: &HeaderMap,
    ri: &ReqInfo,
    body: &[u8],
    ua: &str,
) -> Result<Response, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let reg = st.registry();
    let trimmed = path.trim_end_matches('/');
    if !ri.resource_request {
        if method != Method::GET && method != Method::HEAD {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let segs: Vec<&str> = trimmed.trim_start_matches('/').split('/').collect();
        return match segs.as_slice() {
            ["version"] => Ok(json_response(StatusCode::OK, &discovery::version())),
            ["healthz"] | ["readyz"] | ["livez"] => Ok((StatusCode::OK, "ok").into_response()),
            ["api"] | ["apis"] if discovery::wants_aggregated(accept).is_some() => {
                let ct = discovery::wants_aggregated(accept).unwrap_or("application/json");
                let av = if ct.contains("v=v2beta1") {
                    "apidiscovery.k8s.io/v2beta1"
                } else {
                    "apidiscovery.k8s.io/v2"
                };
                let body = discovery::aggregated(&reg, segs[0] == "api", av);
                let mut r = (StatusCode::OK, body.to_string()).into_response();
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
                r.headers_mut()
                    .insert(header::VARY, HeaderValue::from_static("Accept"));
                Ok(r)
            }
            ["api"] => Ok(json_response(
                StatusCode::OK,
                &discovery::api_versions(&st.addr),
            )),
            ["apis"] => Ok(json_response(
                StatusCode::OK,
                &discovery::api_group_list(&reg),
            )),
            ["api", v] => discovery::resource_list(&reg, "", v)
                .map(|d| json_response(StatusCode::OK, &d))
                .ok_or_else(ApiError::no_route),
            ["apis", g] => discovery::api_group(&reg, g)
                .map(|d| json_response(StatusCode::OK, &d))
                .ok_or_else(ApiError::no_route),
            ["apis", g, v] => discovery::resource_list(&reg, g, v)
                .map(|d| json_response(StatusCode::OK, &d))
                .ok_or_else(ApiError::no_route),
            ["openapi", "v3"] => Ok(json_response(StatusCode::OK, &openapi::index(&reg))),
            ["openapi", "v3", "api", v] => openapi::gv_doc(&reg, "", v)
                .map(|d| json_response(StatusCode::OK, &d))
                .ok_or_else(ApiError::no_route),
            ["openapi", "v3", "apis", g, v] => openapi::gv_doc(&reg, g, v)
                .map(|d| json_response(StatusCode::OK, &d))
                .ok_or_else(ApiError::no_route),
            _ => Err(ApiError::no_route()),
        };
    }
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
    let name = ri.name.as_str();
    let sub = (!ri.subresource.is_empty()).then_some(ri.subresource.as_str());
    if let Some(s) = sub {
        let ok = match s {
            "status" => info.status_subresource,
            "binding" => info.group.is_empty() && info.kind == "Pod",
            "scale" => info.group == "apps",
            _ => false,
        };
        if !ok {
            return Err(ApiError::no_route());
        }
    }
    let output = Output::from(accept, q);
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
    let mut ctx = WriteCtx {
        manager,
        validation,
        dry_run,
        warnings: Vec::new(),
        applied: false,
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let is_ns_namespace = info.group.is_empty() && info.kind == "Namespace";
    if info.namespaced && name.is_empty() && ns.is_empty() && *method == Method::POST {
        return Err(ApiError::no_route());
    }
    if info.namespaced && !name.is_empty() && ns.is_empty() && !is_ns_namespace {
        return Err(ApiError::no_route());
    }
    match (method.clone(), name.is_empty()) {
        (Method::GET, true) => {
            if q.flag("watch") {
                watch_request(st, &info, ns, q, &output, accept)
            } else {
                list_request(st, &info, ns, q, &output)
            }
        }
        (Method::GET, false) => {
            let key = AppState::key(&info, ns, name);
            let obj = st
                .store
                .get(&key.group, &key.plural, &key.namespace, &key.name)
                .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))?;
            if sub == Some("scale") {
                return Ok(json_response(StatusCode::OK, &scale_of(&obj)));
            }
            Ok(single_response(&info, &obj, &output, StatusCode::OK))
        }
        (Method::POST, true) => {
            let obj = decode_body(&content_type, body)?;
            let created =
                st.create_object(&info, Some(ns).filter(|n| !n.is_empty()), obj, &mut ctx)?;
            Ok(with_warnings(
                single_response(&info, &created, &output, StatusCode::CREATED),
                &ctx.warnings,
            ))
        }
        (Method::POST, false) if sub == Some("binding") => {
            let b = decode_body(&content_type, body)?;
            bind_pod(st, &info, ns, name, &b, &mut ctx)
        }
        (Method::PUT, false) => {
            let obj = decode_body(&content_type, body)?;
            if sub == Some("scale") {
                let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(0);
                let out = set_replicas(st, &info, ns, name, replicas, &mut ctx)?;
                return Ok(json_response(StatusCode::OK, &scale_of(&out)));
            }
            let out = st.replace_object(&info, ns, name, obj, sub, &mut ctx)?;
            Ok(with_warnings(
                single_response(&info, &out, &output, StatusCode::OK),
                &ctx.warnings,
            ))
        }
        (Method::PATCH, false) => {
            if sub == Some("scale") {
                let key = AppState::key(&info, ns, name);
                let cur = st
                    .store
                    .get(&key.group, &key.plural, &key.namespace, &key.name)
                    .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))?;
                let mut scale = scale_of(&cur);
                let p: Value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                match content_type.as_str() {
                    "application/json-patch+json" => {
                        crate::patch::json_patch(&mut scale, &p)
                            .map_err(|e| ApiError::bad_request(e.to_string()))?;
                    }
                    _ => crate::patch::merge_patch(&mut scale, &p),
                }
                let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
                let out = set_replicas(st, &info, ns, name, replicas, &mut ctx)?;
                return Ok(json_response(StatusCode::OK, &scale_of(&out)));
            }
            let (out, created) = st.patch_object(
                &info,
                ns,
                name,
                &content_type,
                body,
                sub,
                q.flag("force"),
                &mut ctx,
            )?;
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(with_warnings(
                single_response(&info, &out, &output, code),
                &ctx.warnings,
            ))
        }
        (Method::DELETE, false) => {
            let opts = delete_opts(q, body)?;
            let d = st.delete_object(&info, ns, name, &opts)?;
            Ok(delete_response(&info, &d, &output))
        }
        (Method::DELETE, true) => {
            let opts = delete_opts(q, body)?;
            let (labels, fields) = selectors(&info, q)?;
            let (sg, sp) = info.store_key();
            let items = st.store.list(
                &sg,
                &sp,
                Some(ns).filter(|n| !n.is_empty()),
                None,
                0,
                &|o| store::labels_match(&labels, o) && store::fields_match(&fields, o),
            );
            for o in items.items {
                let n = str_of(&o, &["metadata", "name"]);
                let ons = str_of(&o, &["metadata", "namespace"]);
                match st.delete_object(&info, ons, n, &opts) {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            ri.verb
        ))),
    }
}

fn decode_body(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    match content_type {
        "application/json" | "" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding body: {e}"))),
        "application/yaml" | "application/x-yaml" | "text/yaml" => parse_yaml_or_json(body),
        "application/vnd.kubernetes.protobuf" => crate::protobuf::decode(body).map_err(|e| {
            let mut err = ApiError::unsupported_media_type(content_type);
            err.message = format!("{} ({e})", err.message);
            err
        }),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// 422 for an unknown propagation policy (`DeleteOptions.meta.k8s.io "" is invalid`).
fn invalid_propagation(p: &str) -> ApiError {
    ApiError::invalid(
        "meta.k8s.io",
        "DeleteOptions",
        "",
        vec![Cause::new(
            "FieldValueNotSupported",
            "propagationPolicy",
            format!(
                "Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
            ),
        )],
    )
}

fn delete_opts(q: &Q, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
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
        match b["orphanDependents"].as_bool() {
            Some(true) => opts.propagation = Some("Orphan".into()),
            Some(false) => opts.propagation = Some("Background".into()),
            None => {}
        }
    }
    if let Some(p) = q.get("propagationPolicy") {
        opts.propagation = Some(p.to_string());
    }
    // DeleteOptions are validated before the object is looked up, as kube-apiserver does.
    if let Some(p) = opts.propagation.as_deref()
        && !matches!(p, "Foreground" | "Background" | "Orphan")
    {
        return Err(invalid_propagation(p));
    }
    if let Some(g) = q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()) {
        opts.grace_period = Some(g);
    }
    if q.get("dryRun") == Some("All") {
        opts.dry_run = true;
    }
    Ok(opts)
}

fn delete_response(info: &ResourceInfo, d: &Deleted, output: &Output) -> Response {
    if info.return_deleted_object || !d.gone {
        return single_response(info, &d.object, output, StatusCode::OK);
    }
    let mut status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {
            "name": str_of(&d.object, &["metadata", "name"]),
            "group": info.group,
            "kind": info.plural,
            "uid": str_of(&d.object, &["metadata", "uid"]),
        }
    });
    // The core group is left out, as kube-apiserver does.
    if info.group.is_empty()
        && let Some(det) = status["details"].as_object_mut()
    {
        det.remove("group");
    }
    json_response(StatusCode::OK, &status)
}

fn bind_pod(
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
    for _ in 0..16 {
        let old = st
            .store
            .get(&key.group, &key.plural, &key.namespace, &key.name)
            .ok_or_else(|| ApiError::not_found("", "pods", name))?;
        if let Some(uid) = binding["metadata"]["uid"].as_str()
            && !uid.is_empty()
            && uid != str_of(&old, &["metadata", "uid"])
        {
            return Err(ApiError::conflict(
                "",
                "pods",
                name,
                "the UID in the precondition does not match",
            ));
        }
        if !old["metadata"]["deletionTimestamp"].is_null() {
            return Err(ApiError::conflict(
                "",
                "pods",
                name,
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        let cur = str_of(&old, &["spec", "nodeName"]);
        if !cur.is_empty() {
            return Err(ApiError::conflict(
                "",
                "pods",
                name,
                &format!("pod {name} is already assigned to node \"{cur}\""),
            ));
        }
        let mut new = (*old).clone();
        new["spec"]["nodeName"] = json!(node);
        let mut conds: Vec<Value> = new["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conds.retain(|c| c["type"] != "PodScheduled");
        conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now()}));
        new["status"]["conditions"] = json!(conds);
        if ctx.dry_run {
            break;
        }
        match st.store.update(&key, new, Some(object_rv(&old))) {
            Ok(_) => break,
            Err(StoreError::NotFound) => return Err(ApiError::not_found("", "pods", name)),
            Err(_) => continue,
        }
    }
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

fn scale_of(obj: &Value) -> Value {
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

// ---------------------------------------------------------------------------------------------
// Output: JSON, Table, PartialObjectMetadata
// ---------------------------------------------------------------------------------------------

/// How objects are rendered in the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The objects themselves.
    Json,
    /// `as=Table` (with `includeObject`: None, Metadata, Object).
    Table(String),
    /// `as=PartialObjectMetadata(List)`.
    Metadata,
}

impl Output {
    fn from(accept: &str, q: &Q) -> Output {
        for part in accept.split(',') {
            let p: String = part.chars().filter(|c| !c.is_whitespace()).collect();
            if p.contains("as=Table") && p.contains("g=meta.k8s.io") {
                return Output::Table(q.get("includeObject").unwrap_or("Metadata").to_string());
            }
            if p.contains("as=PartialObjectMetadata") && p.contains("g=meta.k8s.io") {
                return Output::Metadata;
            }
            if p.starts_with("application/json") || p.starts_with("*/*") {
                return Output::Json;
            }
        }
        Output::Json
    }

    fn content_type(&self) -> &'static str {
        match self {
            Output::Json => "application/json",
            Output::Table(_) => "application/json;as=Table;v=v1;g=meta.k8s.io",
            Output::Metadata => "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
        }
    }
}

/// The object as the requested version shows it (custom resources share one store across their
/// served versions).
pub fn as_version(info: &ResourceInfo, obj: &Value) -> Value {
    if info.is_events_v1() {
        return builtin::core_event_to_v1(obj);
    }
    let av = info.api_version();
    if obj["apiVersion"].as_str() == Some(av.as_str()) {
        return obj.clone();
    }
    let mut o = obj.clone();
    o["apiVersion"] = json!(av);
    o
}

fn partial_meta(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

fn encode(info: &ResourceInfo, obj: &Value, output: &Output) -> Value {
    match output {
        Output::Json => as_version(info, obj),
        Output::Metadata => partial_meta(obj),
        Output::Table(include) => table::table(
            info,
            &[obj],
            json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
            include,
        ),
    }
}

fn single_response(
    info: &ResourceInfo,
    obj: &Value,
    output: &Output,
    code: StatusCode,
) -> Response {
    let mut r = (code, encode(info, obj, output).to_string()).into_response();
    if let Ok(v) = HeaderValue::from_str(output.content_type()) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn supported_fields(info: &ResourceInfo) -> Vec<String> {
    let mut f = vec![
        "metadata.name".to_string(),
        "metadata.namespace".to_string(),
    ];
    let extra: &[&str] = match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "Event") | ("events.k8s.io", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "Secret") => &["type"],
        ("", "Node") => &["spec.unschedulable"],
        ("", "Namespace") => &["status.phase"],
        ("apps", "ReplicaSet") => &["status.replicas"],
        _ => &[],
    };
    f.extend(extra.iter().map(|s| s.to_string()));
    if let Some(c) = &info.custom {
        f.extend(
            c.selectable_fields
                .iter()
                .map(|p| p.trim_start_matches('.').to_string()),
        );
    }
    f
}

fn selectors(
    info: &ResourceInfo,
    q: &Q,
) -> Result<(Vec<store::Requirement>, Vec<store::FieldTerm>), ApiError> {
    let labels = match q.get("labelSelector") {
        Some(s) if !s.is_empty() => {
            store::parse_label_selector(s).map_err(ApiError::bad_request)?
        }
        _ => Vec::new(),
    };
    let fields = match q.get("fieldSelector") {
        Some(s) if !s.is_empty() => store::parse_field_selector(s, &supported_fields(info))
            .map_err(ApiError::bad_request)?,
        _ => Vec::new(),
    };
    Ok((labels, fields))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

fn list_request(
    st: &AppState,
    info: &ResourceInfo,
    ns: &str,
    q: &Q,
    output: &Output,
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(info, q)?;
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
    let after = match q.get("continue") {
        Some(c) if !c.is_empty() => {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| ApiError::bad_request("continue key is not valid"))?;
            let tok: ContinueToken = serde_json::from_slice(&raw)
                .map_err(|_| ApiError::bad_request("continue key is not valid"))?;
            if tok.rv < st.store.oldest_resumable_rv() {
                return Err(ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ));
            }
            Some((tok.ns, tok.name))
        }
        _ => None,
    };
    let nsf = Some(ns).filter(|n| !n.is_empty());
    let (sg, sp) = info.store_key();
    let res = st.store.list(&sg, &sp, nsf, after.as_ref(), limit, &|o| {
        store::labels_match(&labels, o) && store::fields_match(&fields, o)
    });
    let mut meta = json!({"resourceVersion": res.rv.to_string()});
    if let Some((n, name)) = &res.next {
        let tok = ContinueToken {
            rv: res.rv,
            ns: n.clone(),
            name: name.clone(),
        };
        let raw = serde_json::to_vec(&tok).unwrap_or_default();
        meta["continue"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
        // kube-apiserver counts the remaining items only for an unfiltered list.
        if labels.is_empty() && fields.is_empty() {
            meta["remainingItemCount"] = json!(res.remaining);
        }
    } else if info.is_custom() {
        // Custom resource lists (unstructured) always carry `continue`.
        meta["continue"] = json!("");
    }
    let body = match output {
        Output::Table(include) => {
            let refs: Vec<&Value> = res.items.iter().map(|a| a.as_ref()).collect();
            let mut meta = meta;
            if meta["continue"] == ""
                && let Some(m) = meta.as_object_mut()
            {
                m.remove("continue");
            }
            table::table(info, &refs, meta, include).to_string()
        }
        Output::Metadata => {
            let items: Vec<Value> = res.items.iter().map(|o| partial_meta(o)).collect();
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items}).to_string()
        }
        Output::Json => {
            // Serialize without cloning the stored objects.
            let av = info.api_version();
            let mut out = String::with_capacity(64 + res.items.len() * 512);
            out.push_str(&format!(
                "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{},\"items\":[",
                json!(info.list_kind()),
                json!(av),
                meta
            ));
            for (i, o) in res.items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !info.is_custom() {
                    // Items of a built-in type's list carry no apiVersion and kind (typed lists of
                    // kube-apiserver); custom resources' (unstructured) items do.
                    let mut item = as_version(info, o);
                    if let Some(m) = item.as_object_mut() {
                        m.remove("apiVersion");
                        m.remove("kind");
                    }
                    out.push_str(&item.to_string());
                } else if o["apiVersion"].as_str() == Some(av.as_str()) && !info.is_events_v1() {
                    out.push_str(&o.to_string());
                } else {
                    out.push_str(&as_version(info, o).to_string());
                }
            }
            out.push_str("]}");
            out
        }
    };
    let mut r = (StatusCode::OK, body).into_response();
    let ct = match output {
        Output::Metadata => "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
        other => other.content_type(),
    };
    if let Ok(v) = HeaderValue::from_str(ct) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(r)
}

fn watch_request(
    st: &AppState,
    info: &Arc<ResourceInfo>,
    ns: &str,
    q: &Q,
    output: &Output,
    _accept: &str,
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(info, q)?;
    // kube-apiserver answers an unparsable resourceVersion on a watch with a bare 500.
    if let Some(rv) = q.get("resourceVersion").filter(|rv| !rv.is_empty())
        && rv.parse::<u64>().is_err()
    {
        return Err(ApiError::new(
            500,
            "",
            format!(
                "resourceVersion: Invalid value: {rv:?}: strconv.ParseUint: parsing {rv:?}: invalid syntax"
            ),
        ));
    }
    let nsf = (!ns.is_empty()).then(|| ns.to_string());
    let nsm = nsf.clone();
    let matcher: watch::Matcher = Arc::new(move |o: &Value| {
        nsm.as_deref()
            .is_none_or(|n| o["metadata"]["namespace"].as_str() == Some(n))
            && store::labels_match(&labels, o)
            && store::fields_match(&fields, o)
    });
    let info2 = info.clone();
    let out2 = output.clone();
    let encoder: watch::Encoder = Arc::new(move |o: &Value| encode(&info2, o, &out2));
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(std::time::Duration::from_secs)
        .unwrap_or(watch::DEFAULT_TIMEOUT);
    let (bk, bav) = match output {
        Output::Json => (info.kind.clone(), info.api_version()),
        Output::Metadata => ("PartialObjectMetadata".into(), "meta.k8s.io/v1".into()),
        Output::Table(_) => ("Table".into(), "meta.k8s.io/v1".into()),
    };
    let (sg, sp) = info.store_key();
    let req = watch::WatchRequest {
        group: sg,
        plural: sp,
        namespace: nsf,
        resource_version: q.get("resourceVersion").unwrap_or_default().to_string(),
        send_initial_events: q.flag("sendInitialEvents"),
        bookmarks: q.flag("allowWatchBookmarks"),
        timeout,
        matcher,
        encoder,
        bookmark_kind: (bk, bav),
        content_type: match output {
            Output::Json => "application/json".into(),
            other => other.content_type().into(),
        },
    };
    Ok(watch::serve(
        st.store.clone(),
        st.faults.clone(),
        st.shutdown.clone(),
        req,
    ))
}

/// Bridges to E2's pure algorithms (server-side apply, managedFields, custom resource
/// validation).
mod bridge {
    use serde_json::Value;

    use super::{ApplyFailure, Validation};
    use crate::error::Cause;
    use crate::merge_keys::MergeSchema;
    use crate::schema;

    /// Why a custom resource is invalid.
    pub enum CrInvalid {
        /// Unknown fields under Strict validation: the `strict decoding error: ...` message.
        Unknown(String),
        /// Schema violations.
        Causes(Vec<Cause>),
    }

    pub fn apply(
        live: Option<&Value>,
        config: &Value,
        manager: &str,
        sub: Option<&str>,
        force: bool,
        schema: &MergeSchema,
        now: &str,
    ) -> Result<Value, ApplyFailure> {
        crate::ssa::apply_subresource(live, config, manager, sub, force, schema, now).map_err(|e| {
            match &e {
                crate::ssa::SsaError::Conflict { conflicts } => ApplyFailure::Conflicts(
                    e.to_string(),
                    conflicts
                        .iter()
                        .map(|c| (c.manager.clone(), c.field.clone()))
                        .collect(),
                ),
                crate::ssa::SsaError::Invalid(m) => ApplyFailure::Invalid(m.clone()),
            }
        })
    }

    pub fn record_update(
        old: Option<&Value>,
        new: &mut Value,
        manager: &str,
        sub: Option<&str>,
        schema: &MergeSchema,
        now: &str,
    ) {
        crate::ssa::record_update(old, new, manager, sub, schema, now);
    }

    pub fn validate_custom_resource(
        schema: &Value,
        obj: Value,
        old: Option<&Value>,
        v: Validation,
    ) -> Result<(Value, Vec<String>), CrInvalid> {
        if !schema.is_object() {
            return Ok((obj, Vec::new()));
        }
        let unknown = match v {
            Validation::Ignore => schema::UnknownFields::Ignore,
            Validation::Warn => schema::UnknownFields::Warn,
            Validation::Strict => schema::UnknownFields::Strict,
        };
        match schema::validate_custom_resource(schema, obj, old, unknown) {
            Ok(val) => Ok((val.object, val.warnings)),
            Err(errs) => {
                if let Some(msg) = schema::strict_decoding_message(&errs) {
                    return Err(CrInvalid::Unknown(msg));
                }
                Err(CrInvalid::Causes(to_causes(&errs)))
            }
        }
    }

    fn to_causes(errs: &[schema::FieldError]) -> Vec<Cause> {
        errs.iter()
            .map(|e| Cause::new(e.reason.as_str(), &e.field, e.message.clone()))
            .collect()
    }

    pub fn validate_crd_schema(crd: &Value) -> Vec<Cause> {
        match schema::validate_crd_schema(crd) {
            Ok(()) => Vec::new(),
            Err(errs) => to_causes(&errs),
        }
    }
}

//! Create (POST): namespace checks, system metadata (name from generateName, uid, timestamps,
//! generation), defaults, validation, managedFields, Service IP allocation, storing.

use std::sync::Arc;

use serde_json::{Value, json};

use super::admission::validate_crd;
use super::object::{is_crd, is_service, is_terminating, meta_mut, random_suffix, str_of};
use super::{AppState, WriteCtx, now};
use crate::builtin::{self, ResourceInfo};
use crate::error::{ApiError, Cause};

impl AppState {
    /// Creates an object (POST semantics).
    pub fn create_object(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        mut obj: Value,
        ctx: &mut WriteCtx,
    ) -> Result<Arc<Value>, ApiError> {
        Self::check_type(info, &mut obj)?;
        self.check_crd_not_terminating(info)?;
        let ts = now();
        let ns_name = self.assign_namespace(info, ns, &mut obj)?;
        init_metadata(info, &mut obj, &ts)?;
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
        self.store_new(info, &ns_name, &name, obj, ctx.dry_run)
    }

    /// 405 for a custom resource whose CRD is being deleted.
    fn check_crd_not_terminating(&self, info: &ResourceInfo) -> Result<(), ApiError> {
        let Some(c) = &info.custom else {
            return Ok(());
        };
        let crd = self.store.get(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "",
            &c.crd_name,
        );
        if crd.is_some_and(|crd| is_terminating(&crd)) {
            return Err(ApiError::method_not_allowed(
                "create not allowed while custom resource definition is terminating",
            ));
        }
        Ok(())
    }

    /// Sets `metadata.namespace` from the URL (namespaced resources; the namespace must exist
    /// and not be terminating) or removes it (cluster-scoped ones). Returns the namespace.
    fn assign_namespace(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        obj: &mut Value,
    ) -> Result<String, ApiError> {
        if !info.namespaced {
            meta_mut(obj).remove("namespace");
            return Ok(String::new());
        }
        let ns = ns.ok_or_else(ApiError::no_route)?;
        let meta = meta_mut(obj);
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
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if is_terminating(&n) => Err(namespace_terminating(info, ns, obj)),
            _ => Ok(ns.to_string()),
        }
    }

    /// Allocates (Services) and stores a new object, or returns it unstored for a dry run.
    fn store_new(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let key = Self::key(info, ns, name);
        let mut alloc = if is_service(info) {
            Some(self.alloc())
        } else {
            None
        };
        if let Some(a) = alloc.as_mut() {
            if self
                .store
                .get(&key.group, &key.plural, &key.namespace, &key.name)
                .is_some()
            {
                return Err(ApiError::already_exists(&info.group, &info.plural, name));
            }
            a.allocate(&mut obj, None)
                .map_err(|c| ApiError::invalid(&info.group, &info.kind, name, c))?;
        }
        if dry_run {
            if let Some(a) = alloc.as_mut() {
                a.release(&obj);
            }
            return Ok(Arc::new(obj));
        }
        let created = self
            .store
            .create(&key, obj)
            .map_err(|_| ApiError::already_exists(&info.group, &info.plural, name))?;
        drop(alloc);
        if is_crd(info) {
            self.rebuild_registry();
        }
        Ok(created)
    }
}

/// 403 for a create in a terminating namespace.
fn namespace_terminating(info: &ResourceInfo, ns: &str, obj: &Value) -> ApiError {
    let name = str_of(obj, &["metadata", "name"]);
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
    e
}

/// The system metadata of a new object: its name (from `generateName`), uid, creation time and
/// generation; what the client may not set is removed.
fn init_metadata(info: &ResourceInfo, obj: &mut Value, ts: &str) -> Result<(), ApiError> {
    let meta = meta_mut(obj);
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
    Ok(())
}

//! Update (PUT and the write half of PATCH): identity and resourceVersion checks, the status
//! subresource split, system metadata the client cannot change, validation, generation,
//! managedFields, and the removal of a terminating object whose last finalizer is gone.

use std::sync::{Arc, MutexGuard};

use serde_json::{Value, json};

use super::admission::validate_crd;
use super::object::{
    finalizers, is_crd, is_graceful_pending, is_service, is_terminating, meta_mut, same_object,
    str_of,
};
use super::{AppState, RETRIES, Retry, WriteCtx, now};
use crate::alloc::Allocator;
use crate::builtin::{self, ResourceInfo};
use crate::error::{ApiError, Cause};
use crate::store::{ObjectKey, StoreError, object_rv};

/// Metadata fields only the server sets: an update keeps the stored values.
const SYSTEM_METADATA: [&str; 5] = [
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
];

impl AppState {
    /// Updates an object from `old` to `new` (PUT/PATCH semantics, status split, immutable
    /// fields, generation, managedFields, finalizer-driven removal).
    pub(super) fn update_object(
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
        check_identity(info, old, &mut new, &name, &ns)?;
        if info.status_subresource {
            new = split_status(old, new, sub);
        }
        keep_system_metadata(old, &mut new);
        builtin::apply_defaults(info, &mut new);
        self.decode(info, &mut new, Some(old), ctx)?;
        validate_update(info, old, &new, &name)?;
        derive_fields(info, old, &mut new);
        Self::record_managed(info, Some(old), &mut new, ctx, sub);
        let key = Self::key(info, &ns, &name);
        let (old, new) = if info.is_events_v1() {
            (
                Arc::new(builtin::v1_event_to_core(old)),
                builtin::v1_event_to_core(&new),
            )
        } else {
            (old.clone(), new)
        };
        self.store_update(info, &key, &old, new, ctx.dry_run)
    }

    /// Stores an updated object (allocating Service IPs and ports), or removes it when it is
    /// terminating and nothing holds it any more. A no-op update returns the stored object.
    fn store_update(
        &self,
        info: &ResourceInfo,
        key: &ObjectKey,
        old: &Arc<Value>,
        mut new: Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, Retry> {
        let mut alloc = if is_service(info) {
            Some(self.alloc())
        } else {
            None
        };
        if let Some(a) = alloc.as_mut() {
            a.allocate(&mut new, Some(old))
                .map_err(|c| ApiError::invalid(&info.group, &info.kind, &key.name, c))?;
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
        if dry_run {
            undo(&mut alloc, &new);
            return Ok(Arc::new(new));
        }
        let done =
            is_terminating(&new) && finalizers(&new).is_empty() && !is_graceful_pending(info, &new);
        let result = if done {
            self.store.delete(key, Some(object_rv(old)))
        } else {
            self.store.update(key, new.clone(), Some(object_rv(old)))
        };
        match result {
            Ok(o) => {
                // Release the allocator before the removal side effects take it again.
                drop(alloc);
                if done {
                    self.after_removal(info, &o);
                    return Ok(removed_by_update(new, &o));
                }
                if is_crd(info) {
                    self.rebuild_registry();
                }
                Ok(o)
            }
            Err(StoreError::NotFound) => {
                undo(&mut alloc, &new);
                Err(ApiError::not_found(&info.group, &info.plural, &key.name).into())
            }
            Err(_) => {
                undo(&mut alloc, &new);
                Err(Retry::Race)
            }
        }
    }

    /// Side effects of an object's final removal (allocations, CRD contents).
    pub(super) fn after_removal(&self, info: &ResourceInfo, obj: &Value) {
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
        for _ in 0..RETRIES {
            let old = self
                .current(info, ns, name)
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
        for _ in 0..RETRIES {
            let old = self
                .current(info, ns, name)
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
}

/// The body's name and namespace must be the URL's (they are filled in when empty); a
/// resourceVersion in the body is a precondition.
fn check_identity(
    info: &ResourceInfo,
    old: &Value,
    new: &mut Value,
    name: &str,
    ns: &str,
) -> Result<(), ApiError> {
    let meta = meta_mut(new);
    match meta.get("name").and_then(Value::as_str) {
        None | Some("") => {
            meta.insert("name".into(), json!(name));
        }
        Some(n) if n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        _ => {}
    }
    if info.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(x) if !x.is_empty() && x != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
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
        return Err(ApiError::conflict_modified(&info.group, &info.plural, name));
    }
    Ok(())
}

/// The status subresource split: a write to `status` changes only the status (and
/// managedFields), a write to the main resource everything but the status.
fn split_status(old: &Value, mut new: Value, sub: Option<&str>) -> Value {
    if sub == Some("status") {
        let mut merged = old.clone();
        let new_status = new.get("status").cloned();
        let new_mf = new["metadata"].get("managedFields").cloned();
        if let Some(m) = merged.as_object_mut() {
            match new_status {
                Some(s) => m.insert("status".into(), s),
                None => m.remove("status"),
            };
        }
        if let Some(mf) = new_mf {
            meta_mut(&mut merged).insert("managedFields".into(), mf);
        }
        return merged;
    }
    if let Some(m) = new.as_object_mut() {
        match old.get("status") {
            Some(s) => m.insert("status".into(), s.clone()),
            None => m.remove("status"),
        };
    }
    new
}

/// Keeps the stored system metadata and, when the body has none, the stored managedFields.
fn keep_system_metadata(old: &Value, new: &mut Value) {
    let old_meta = &old["metadata"];
    let meta = meta_mut(new);
    for f in SYSTEM_METADATA {
        match old_meta.get(f) {
            Some(v) => meta.insert(f.into(), v.clone()),
            None => meta.remove(f),
        };
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

/// 422 with every cause that makes the update invalid (object, metadata, immutable fields,
/// finalizers added to a terminating object).
fn validate_update(
    info: &ResourceInfo,
    old: &Value,
    new: &Value,
    name: &str,
) -> Result<(), ApiError> {
    let mut causes = builtin::validate_metadata(info, new);
    causes.extend(builtin::validate_object(info, new));
    causes.extend(builtin::validate_update(info, old, new));
    if is_crd(info) {
        causes.extend(validate_crd(new));
    }
    if is_terminating(old) {
        let of = finalizers(old);
        if finalizers(new).iter().any(|f| !of.contains(f)) {
            causes.push(Cause::new(
                "FieldValueForbidden",
                "metadata.finalizers",
                "Forbidden: no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&info.group, &info.kind, name, causes))
    }
}

/// What the server derives on update: `metadata.generation` (bumped when the spec changed) and
/// a CRD's status.
fn derive_fields(info: &ResourceInfo, old: &Value, new: &mut Value) {
    if info.has_generation && builtin::spec_changed(info, old, new) {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        meta_mut(new).insert("generation".into(), json!(g));
    }
    if is_crd(info) {
        let since = old["status"]["conditions"][0]["lastTransitionTime"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(now);
        let status = builtin::crd_status(new, &since);
        if let Some(m) = new.as_object_mut() {
            m.insert("status".into(), status);
        }
    }
}

/// kube-apiserver answers the update that removed the last finalizer with the updated object as
/// deleted (finalizers gone), without managedFields, at the deletion's resourceVersion.
fn removed_by_update(mut last: Value, removed: &Value) -> Arc<Value> {
    if let Some(m) = last["metadata"].as_object_mut() {
        m.remove("managedFields");
        if let Some(rv) = removed["metadata"].get("resourceVersion") {
            m.insert("resourceVersion".into(), rv.clone());
        }
    }
    Arc::new(last)
}

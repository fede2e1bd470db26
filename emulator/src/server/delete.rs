//! DELETE: preconditions, namespace termination, the finalizers of the propagation policies and
//! of CRD cleanup, graceful deletion of scheduled pods, immediate removal; removing a finalizer
//! (the emulator's controllers).

use std::sync::Arc;

use serde_json::{Value, json};

use super::object::{
    finalizers, is_crd, is_namespace, is_pod, is_terminating, meta_mut, same_object,
    set_finalizers, str_of,
};
use super::{AppState, CRD_CLEANUP, DeleteOpts, Deleted, RETRIES, Retry, WriteCtx, now};
use crate::builtin::ResourceInfo;
use crate::error::{ApiError, Cause};
use crate::store::{ObjectKey, StoreError, object_rv};

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

impl AppState {
    /// Deletes an object (DELETE semantics: preconditions, graceful deletion of scheduled pods,
    /// finalizers, propagation policy finalizers, namespace termination).
    pub fn delete_object(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Deleted, ApiError> {
        let key = Self::key(info, ns, name);
        for _ in 0..RETRIES {
            let old = self
                .store
                .get(&key.group, &key.plural, &key.namespace, &key.name)
                .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))?;
            check_preconditions(info, name, &old, opts)?;
            let attempt = if is_namespace(info) {
                self.terminate_namespace(&key, old, opts)
            } else {
                self.delete_once(info, &key, old, opts)
            };
            match attempt {
                Ok(d) => return Ok(d),
                Err(Retry::Api(e)) => return Err(e),
                Err(Retry::Race) => continue,
            }
        }
        Err(ApiError::conflict_modified(&info.group, &info.plural, name))
    }

    /// Namespaces: marked Terminating; the namespace lifecycle controller (gc) empties and then
    /// removes them.
    fn terminate_namespace(
        &self,
        key: &ObjectKey,
        old: Arc<Value>,
        opts: &DeleteOpts,
    ) -> Result<Deleted, Retry> {
        if is_terminating(&old) {
            return Ok(Deleted {
                object: old,
                gone: false,
            });
        }
        let mut obj = (*old).clone();
        meta_mut(&mut obj).insert("deletionTimestamp".into(), json!(now()));
        meta_mut(&mut obj).insert("deletionGracePeriodSeconds".into(), json!(0));
        obj["status"] = json!({"phase": "Terminating"});
        if opts.dry_run {
            return Ok(Deleted {
                object: Arc::new(obj),
                gone: false,
            });
        }
        match self.store.update(key, obj, Some(object_rv(&old))) {
            Ok(o) => Ok(Deleted {
                object: o,
                gone: false,
            }),
            Err(_) => Err(Retry::Race),
        }
    }

    /// One attempt at deleting `old`: removed at once when nothing holds it, otherwise marked
    /// for deletion with the finalizers of the propagation policy.
    fn delete_once(
        &self,
        info: &ResourceInfo,
        key: &ObjectKey,
        old: Arc<Value>,
        opts: &DeleteOpts,
    ) -> Result<Deleted, Retry> {
        let ts = now();
        let already = is_terminating(&old);
        let mut obj = (*old).clone();
        let mut fins = finalizers(&old);
        if is_crd(info) && !already && !fins.iter().any(|f| f == CRD_CLEANUP) {
            fins.push(CRD_CLEANUP.to_string());
            mark_crd_terminating(&mut obj, &ts);
        }
        let policy = opts
            .propagation
            .as_deref()
            .unwrap_or(if already { "" } else { "Background" });
        apply_propagation(policy, &mut fins)?;
        let grace = pod_grace(info, &old, opts, already);
        if fins.is_empty() && grace == 0 {
            return self.remove(info, key, old, opts.dry_run);
        }
        set_finalizers(&mut obj, &fins);
        let meta = meta_mut(&mut obj);
        if !already {
            let when = if grace > 0 {
                (chrono::Utc::now() + chrono::Duration::seconds(grace))
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            } else {
                ts
            };
            meta.insert("deletionTimestamp".into(), json!(when));
        }
        if !already || grace == 0 {
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
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
        match self.store.update(key, obj, Some(object_rv(&old))) {
            Ok(o) => Ok(Deleted {
                object: o,
                gone: false,
            }),
            Err(StoreError::NotFound) => {
                Err(ApiError::not_found(&info.group, &info.plural, &key.name).into())
            }
            Err(_) => Err(Retry::Race),
        }
    }

    /// Removes an object nothing holds any more.
    fn remove(
        &self,
        info: &ResourceInfo,
        key: &ObjectKey,
        old: Arc<Value>,
        dry_run: bool,
    ) -> Result<Deleted, Retry> {
        if dry_run {
            return Ok(Deleted {
                object: old,
                gone: true,
            });
        }
        match self.store.delete(key, Some(object_rv(&old))) {
            Ok(o) => {
                self.after_removal(info, &o);
                Ok(Deleted {
                    object: o,
                    gone: true,
                })
            }
            Err(StoreError::NotFound) => {
                Err(ApiError::not_found(&info.group, &info.plural, &key.name).into())
            }
            Err(_) => Err(Retry::Race),
        }
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
}

/// 409 when the uid or resourceVersion preconditions do not hold.
fn check_preconditions(
    info: &ResourceInfo,
    name: &str,
    old: &Value,
    opts: &DeleteOpts,
) -> Result<(), ApiError> {
    let uid = str_of(old, &["metadata", "uid"]);
    if let Some(want) = &opts.uid
        && want != uid
    {
        return Err(ApiError::conflict(
            &info.group,
            &info.plural,
            name,
            &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
        ));
    }
    if let Some(rv) = &opts.resource_version
        && rv.parse::<u64>().ok() != Some(object_rv(old))
    {
        return Err(ApiError::conflict(
            &info.group,
            &info.plural,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                object_rv(old)
            ),
        ));
    }
    Ok(())
}

/// A CRD is kept until its custom resources are gone: apiextensions-apiserver adds the cleanup
/// finalizer on delete and sets the Terminating condition.
fn mark_crd_terminating(obj: &mut Value, ts: &str) {
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

/// The finalizers of a propagation policy: `orphan` (Orphan), `foregroundDeletion`
/// (Foreground), neither (Background); "" keeps them as they are.
fn apply_propagation(policy: &str, fins: &mut Vec<String>) -> Result<(), ApiError> {
    let (add, drop): (Option<&str>, &[&str]) = match policy {
        "Orphan" => (Some(ORPHAN), &[FOREGROUND]),
        "Foreground" => (Some(FOREGROUND), &[ORPHAN]),
        "Background" => (None, &[ORPHAN, FOREGROUND]),
        "" => (None, &[]),
        other => return Err(invalid_propagation(other)),
    };
    fins.retain(|f| !drop.contains(&f.as_str()));
    if let Some(a) = add
        && !fins.iter().any(|f| f == a)
    {
        fins.push(a.to_string());
    }
    Ok(())
}

/// The grace period of a deletion: only a scheduled pod that has not finished gets one (the
/// kubelet confirms with grace 0); a repeated delete can only shorten it.
fn pod_grace(info: &ResourceInfo, old: &Value, opts: &DeleteOpts, already: bool) -> i64 {
    if !is_pod(info) {
        return 0;
    }
    let phase = str_of(old, &["status", "phase"]);
    let scheduled = !str_of(old, &["spec", "nodeName"]).is_empty();
    let requested = opts
        .grace_period
        .or_else(|| old["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30);
    let mut grace = 0;
    if scheduled && phase != "Succeeded" && phase != "Failed" {
        grace = requested.max(0);
    }
    if already {
        let cur = old["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(0);
        grace = grace.min(cur);
    }
    grace
}

/// 422 for an unknown propagation policy (`DeleteOptions.meta.k8s.io "" is invalid`).
pub(super) fn invalid_propagation(p: &str) -> ApiError {
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

//! What every write goes through before it is stored: apiVersion/kind checks, decoding with
//! field validation and pruning of unknown fields (`fieldValidation`), custom resource schema
//! and CEL validation, CRD schema validation, managedFields bookkeeping and server-side apply
//! (bridges to [`crate::ssa`] and [`crate::schema`]).

use serde_json::{Value, json};

use super::object::{remove_path, str_of};
use super::{AppState, Validation, WriteCtx, now};
use crate::builtin::{self, ResourceInfo};
use crate::error::{ApiError, Cause};
use crate::merge_keys::MergeSchema;
use crate::schema;

/// Why server-side apply failed.
pub enum ApplyFailure {
    /// Conflicts with other managers: the message and (manager, field) pairs.
    Conflicts(String, Vec<(String, String)>),
    /// Invalid configuration.
    Invalid(String),
}

impl AppState {
    /// The merge keys of a resource (strategic merge patch, server-side apply).
    pub(super) fn merge_schema(info: &ResourceInfo) -> MergeSchema {
        match &info.custom {
            Some(c) => MergeSchema::from_openapi(&c.schema),
            None => MergeSchema::builtin(&info.group, &info.kind),
        }
    }

    /// Sets/validates apiVersion and kind of a request body.
    pub(super) fn check_type(info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
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
    pub(super) fn decode(
        &self,
        info: &ResourceInfo,
        obj: &mut Value,
        old: Option<&Value>,
        ctx: &mut WriteCtx,
    ) -> Result<(), ApiError> {
        if let Some(c) = &info.custom {
            return validate_custom(info, &c.schema, obj, old, ctx);
        }
        let unknown = builtin::typed_unknown_fields(&info.group, &info.kind, obj).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                info.kind, info.version, info.kind
            ))
        })?;
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

    /// Records the write of `ctx.manager` in managedFields (unless server-side apply already
    /// did).
    pub(super) fn record_managed(
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
        crate::ssa::record_update(old, new, &ctx.manager, sub, &schema, &now());
        if let (Some(st), Some(m)) = (status, new.as_object_mut()) {
            m.insert("status".into(), st);
        }
    }
}

/// Validates (and defaults and prunes) a custom resource against its CRD's schema.
fn validate_custom(
    info: &ResourceInfo,
    schema: &Value,
    obj: &mut Value,
    old: Option<&Value>,
    ctx: &mut WriteCtx,
) -> Result<(), ApiError> {
    if !schema.is_object() {
        return Ok(());
    }
    let unknown = match ctx.validation {
        Validation::Ignore => schema::UnknownFields::Ignore,
        Validation::Warn => schema::UnknownFields::Warn,
        Validation::Strict => schema::UnknownFields::Strict,
    };
    match schema::validate_custom_resource(schema, obj.clone(), old, unknown) {
        Ok(validated) => {
            *obj = validated.object;
            if ctx.validation == Validation::Warn {
                ctx.warnings.extend(validated.warnings);
            }
            Ok(())
        }
        Err(errs) => match schema::strict_decoding_message(&errs) {
            Some(msg) => Err(ApiError::bad_request(msg)),
            None => Err(ApiError::invalid(
                &info.group,
                &info.kind,
                str_of(obj, &["metadata", "name"]),
                to_causes(&errs),
            )),
        },
    }
}

fn to_causes(errs: &[schema::FieldError]) -> Vec<Cause> {
    errs.iter()
        .map(|e| Cause::new(e.reason.as_str(), &e.field, e.message.clone()))
        .collect()
}

/// The causes that make a CRD's schema invalid.
pub(super) fn validate_crd(crd: &Value) -> Vec<Cause> {
    match schema::validate_crd_schema(crd) {
        Ok(()) => Vec::new(),
        Err(errs) => to_causes(&errs),
    }
}

/// Server-side apply of `config` by `manager` onto `live` (None: the object is created).
pub(super) fn ssa_apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    sub: Option<&str>,
    force: bool,
    schema: &MergeSchema,
) -> Result<Value, ApplyFailure> {
    crate::ssa::apply_subresource(live, config, manager, sub, force, schema, &now()).map_err(|e| {
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

/// The API error of a failed server-side apply.
pub(super) fn ssa_error(info: &ResourceInfo, name: &str, e: ApplyFailure) -> ApiError {
    match e {
        ApplyFailure::Conflicts(message, cs) => {
            // kube-apiserver's apply conflict names no object in its details, only the causes.
            let mut err = ApiError::new(409, "Conflict", message);
            err.details.causes = cs
                .iter()
                .map(|(m, f)| {
                    Cause::new("FieldManagerConflict", f, format!("conflict with \"{m}\""))
                })
                .collect();
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

//! `TokenReview` (`POST /apis/authentication.k8s.io/v1/tokenreviews`): decoded and checked as
//! any create (apiVersion and kind, unknown fields, managedFields of the writer), answered by
//! [`crate::auth::Tokens::review`] as kube-apiserver's TokenReview storage does, and never
//! stored.

use serde_json::{Map, Value, json};

use super::object::meta_mut;
use super::{AppState, WriteCtx};
use crate::builtin::ResourceInfo;
use crate::error::ApiError;

impl AppState {
    /// Answers a TokenReview: the request object with its `status` filled in.
    pub(super) fn review_token(
        &self,
        info: &ResourceInfo,
        mut obj: Value,
        ctx: &mut WriteCtx,
    ) -> Result<Value, ApiError> {
        Self::check_type(info, &mut obj)?;
        self.decode(info, &mut obj, None, ctx)?;
        // A cluster-scoped object: the namespace in the body is cleared.
        meta_mut(&mut obj).remove("namespace");
        // The typed object leaves out empty values (`omitempty`).
        if let Some(m) = obj.as_object_mut() {
            for part in ["spec", "status"] {
                if m.get_mut(part).is_some_and(drop_empty) {
                    m.remove(part);
                }
            }
        }
        // kube-apiserver's field manager records the request before its storage answers.
        Self::record_managed(info, None, &mut obj, ctx, None);
        let token = obj["spec"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if token.is_empty() {
            return Err(ApiError::bad_request(
                "token is required for TokenReview in authentication",
            ));
        }
        let audiences: Vec<String> = obj["spec"]["audiences"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let review = self.tokens.review(&token, &audiences);
        let Some(m) = obj.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the body of the request is not a JSON object",
            ));
        };
        // What the client sent in `status` stays unless the review sets it (as the typed
        // object kube-apiserver fills in).
        let mut status = match m.remove("status") {
            Some(Value::Object(s)) => s,
            _ => Map::new(),
        };
        if review.authenticated {
            status.insert("authenticated".into(), json!(true));
        } else {
            status.remove("authenticated");
        }
        if let Some(e) = review.error {
            status.insert("error".into(), json!(e));
        }
        if let Some((user, auds)) = review.user {
            let mut u = Map::new();
            u.insert("username".into(), json!(user.username));
            if !user.uid.is_empty() {
                u.insert("uid".into(), json!(user.uid));
            }
            if !user.groups.is_empty() {
                u.insert("groups".into(), json!(user.groups));
            }
            status.insert("user".into(), Value::Object(u));
            status.insert("audiences".into(), json!(auds));
        }
        // Structs are always encoded, empty or not.
        status.entry("user").or_insert_with(|| json!({}));
        m.insert("status".into(), Value::Object(status));
        m.entry("spec").or_insert_with(|| json!({}));
        Ok(obj)
    }
}

/// Removes the empty values (`""`, `false`, `0`, `[]`, `{}`, null) under `v`, as a typed
/// object's `omitempty` fields leave them out; true when `v` itself is empty.
fn drop_empty(v: &mut Value) -> bool {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !drop_empty(x));
            m.is_empty()
        }
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !*b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Null => true,
    }
}

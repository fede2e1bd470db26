//! LIST (label and field selectors, `limit` and `continue` paging) and WATCH (from a
//! resourceVersion or from now, with selectors, bookmarks and timeouts; see [`crate::watch`]).

use std::sync::Arc;

use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};

use super::AppState;
use super::encoding::{Output, encode, list_response};
use super::http::Q;
use crate::builtin::ResourceInfo;
use crate::error::ApiError;
use crate::selector::{self, FieldTerm, Requirement};
use crate::watch;

/// What `continue` encodes: the list's resourceVersion and the last key returned.
#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

/// The label and field selectors of a request (400 when malformed or on an unsupported field).
pub(super) fn selectors(
    info: &ResourceInfo,
    q: &Q,
) -> Result<(Vec<Requirement>, Vec<FieldTerm>), ApiError> {
    let labels = match q.get("labelSelector") {
        Some(s) if !s.is_empty() => {
            selector::parse_label_selector(s).map_err(ApiError::bad_request)?
        }
        _ => Vec::new(),
    };
    let fields = match q.get("fieldSelector") {
        Some(s) if !s.is_empty() => {
            selector::parse_field_selector(s, &selector::supported_fields(info))
                .map_err(ApiError::bad_request)?
        }
        _ => Vec::new(),
    };
    Ok((labels, fields))
}

/// The key to continue after (410 when the token is older than the history window).
fn continue_after(st: &AppState, q: &Q) -> Result<Option<(String, String)>, ApiError> {
    let Some(c) = q.get("continue").filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
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
    Ok(Some((tok.ns, tok.name)))
}

/// LIST.
pub(super) fn list(
    st: &AppState,
    info: &ResourceInfo,
    ns: &str,
    q: &Q,
    output: &Output,
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(info, q)?;
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
    let after = continue_after(st, q)?;
    let nsf = Some(ns).filter(|n| !n.is_empty());
    let (sg, sp) = info.store_key();
    let indexed = selector::equality_labels(&labels);
    let res = st
        .store
        .list_labelled(&sg, &sp, nsf, after.as_ref(), limit, &indexed, &|o| {
            selector::labels_match(&labels, o) && selector::fields_match(&fields, o)
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
    Ok(list_response(info, &res, meta, output))
}

/// WATCH.
pub(super) fn watch(
    st: &AppState,
    info: &Arc<ResourceInfo>,
    ns: &str,
    q: &Q,
    output: &Output,
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
    let indexed = selector::equality_labels(&labels);
    let matcher: watch::Matcher = Arc::new(move |o: &Value| {
        nsm.as_deref()
            .is_none_or(|n| o["metadata"]["namespace"].as_str() == Some(n))
            && selector::labels_match(&labels, o)
            && selector::fields_match(&fields, o)
    });
    let info2 = info.clone();
    let out2 = output.clone();
    let encoder: watch::Encoder = Arc::new(move |o: &Value| encode(&info2, o, &out2));
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(std::time::Duration::from_secs)
        .unwrap_or(watch::DEFAULT_TIMEOUT);
    let (sg, sp) = info.store_key();
    let req = watch::WatchRequest {
        group: sg,
        plural: sp,
        namespace: nsf,
        labels: indexed,
        resource_version: q.get("resourceVersion").unwrap_or_default().to_string(),
        send_initial_events: q.flag("sendInitialEvents"),
        bookmarks: q.flag("allowWatchBookmarks"),
        timeout,
        matcher,
        encoder,
        bookmark_kind: output.bookmark_kind(info),
        content_type: output.content_type().into(),
    };
    Ok(watch::serve(
        st.store.clone(),
        st.faults.clone(),
        st.shutdown.clone(),
        req,
    ))
}

//! Encoding: request bodies (JSON, YAML, protobuf) in, objects out in the requested form (the
//! object at the requested version, a `Table`, `PartialObjectMetadata`), and the responses built
//! from them (status codes, content types, `Warning` headers, `Status` bodies).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Deleted;
use super::object::str_of;
use crate::builtin::{self, ResourceInfo};
use crate::error::ApiError;
use crate::store::ListResult;
use crate::table;

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
    /// The output an `Accept` header asks for (`include_object`: the `includeObject` parameter
    /// of a Table).
    pub fn from_accept(accept: &str, include_object: Option<&str>) -> Output {
        for part in accept.split(',') {
            let p: String = part.chars().filter(|c| !c.is_whitespace()).collect();
            if p.contains("as=Table") && p.contains("g=meta.k8s.io") {
                return Output::Table(include_object.unwrap_or("Metadata").to_string());
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

    /// The content type of a single object (or watch event) in this output.
    pub fn content_type(&self) -> &'static str {
        match self {
            Output::Json => "application/json",
            Output::Table(_) => "application/json;as=Table;v=v1;g=meta.k8s.io",
            Output::Metadata => "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
        }
    }

    /// The content type of a list in this output.
    fn list_content_type(&self) -> &'static str {
        match self {
            Output::Metadata => "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
            other => other.content_type(),
        }
    }

    /// The kind and apiVersion of a watch BOOKMARK's object.
    pub(super) fn bookmark_kind(&self, info: &ResourceInfo) -> (String, String) {
        match self {
            Output::Json => (info.kind.clone(), info.api_version()),
            Output::Metadata => ("PartialObjectMetadata".into(), "meta.k8s.io/v1".into()),
            Output::Table(_) => ("Table".into(), "meta.k8s.io/v1".into()),
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

/// One object in the requested output.
pub(super) fn encode(info: &ResourceInfo, obj: &Value, output: &Output) -> Value {
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

fn with_content_type(mut r: Response, ct: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(ct) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// A JSON body.
pub(super) fn json_response(code: StatusCode, v: &Value) -> Response {
    with_content_type((code, v.to_string()).into_response(), "application/json")
}

/// One object in the requested output.
pub(super) fn single_response(
    info: &ResourceInfo,
    obj: &Value,
    output: &Output,
    code: StatusCode,
) -> Response {
    let r = (code, encode(info, obj, output).to_string()).into_response();
    with_content_type(r, output.content_type())
}

/// Adds `Warning: 299 - "..."` headers.
pub(super) fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

/// A `Status` of success (with `code` when given).
pub(super) fn success(code: StatusCode, with_code: bool) -> Response {
    let mut status =
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
    if with_code {
        status["code"] = json!(code.as_u16());
    }
    json_response(code, &status)
}

/// The answer to a DELETE: the object while it is still there (or when the resource returns
/// deleted objects), otherwise a `Status` naming it.
pub(super) fn delete_response(info: &ResourceInfo, d: &Deleted, output: &Output) -> Response {
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

/// A list in the requested output, with the list metadata `meta`.
pub(super) fn list_response(
    info: &ResourceInfo,
    res: &ListResult,
    mut meta: Value,
    output: &Output,
) -> Response {
    let body = match output {
        Output::Table(include) => {
            let refs: Vec<&Value> = res.items.iter().map(|a| a.as_ref()).collect();
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
        Output::Json => json_list(info, res, &meta),
    };
    with_content_type(
        (StatusCode::OK, body).into_response(),
        output.list_content_type(),
    )
}

/// A list of objects as JSON, serialised without cloning the stored objects where possible.
fn json_list(info: &ResourceInfo, res: &ListResult, meta: &Value) -> String {
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

/// A JSON body, or YAML (a server-side apply configuration, `kubectl` with YAML bodies).
pub(super) fn parse_yaml_or_json(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

/// A request body of the given content type as a JSON value (415 for unknown types and for
/// protobuf bodies of kinds the decoder does not know).
pub(super) fn decode_body(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
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

//! HTTP routing: the request's API coordinates (kube-apiserver's RequestInfo), the request log,
//! fault injection (latency, errors), kubelet streaming subresources, the emulator's admin
//! endpoints (`/emulator/v1/...`), non-resource paths (version, health, discovery, OpenAPI),
//! and the dispatch of resource requests to one handler per verb.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Bytes, to_bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::encoding::json_response;
use super::handlers::{self, Call};
use crate::builtin::Registry;
use crate::error::ApiError;
use crate::faults::RequestRecord;
use crate::{discovery, openapi};

const MAX_BODY: usize = 64 * 1024 * 1024;

/// The router serving the whole API.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(entry).with_state(state)
}

/// Query parameters (the last value of a repeated one).
pub(super) struct Q(HashMap<String, String>);

impl Q {
    fn parse(uri: &axum::http::Uri) -> Q {
        let pairs: Vec<(String, String)> = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|q| q.0)
            .unwrap_or_default();
        Q(pairs.into_iter().collect())
    }

    /// The parameter's value.
    pub(super) fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    /// Whether the parameter is `true` or `1`.
    pub(super) fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1"))
    }
}

/// What a request addresses (as kube-apiserver's RequestInfo).
#[derive(Debug, Clone, Default)]
pub(super) struct ReqInfo {
    pub(super) resource_request: bool,
    pub(super) verb: String,
    pub(super) group: String,
    pub(super) version: String,
    pub(super) resource: String,
    pub(super) subresource: String,
    pub(super) namespace: String,
    pub(super) name: String,
}

/// The verb of a request, as kube-apiserver names it for authorization and audit.
fn verb(method: &Method, has_name: bool, watch: bool) -> &'static str {
    match *method {
        Method::GET | Method::HEAD if has_name => "get",
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if has_name => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
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
    ri.resource_request = rest.len() <= 3;
    ri.resource = rest[0].to_string();
    if let Some(n) = rest.get(1) {
        ri.name = n.to_string();
    }
    if let Some(s) = rest.get(2) {
        ri.subresource = s.to_string();
    }
    if ri.resource == "namespaces" && !ri.name.is_empty() && rest.len() == 2 {
        ri.namespace = ri.name.clone();
    }
    ri.verb = verb(method, !ri.name.is_empty(), q.flag("watch")).to_string();
    ri
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

/// The impersonation headers of a request: `Impersonate-User`, every `Impersonate-Group`,
/// `Impersonate-Uid` ("" and none when absent).
fn impersonation(headers: &HeaderMap) -> (String, Vec<String>, String) {
    let text = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let one = |name: &str| headers.get(name).map(text).unwrap_or_default();
    (
        one("impersonate-user"),
        headers
            .get_all("impersonate-group")
            .iter()
            .map(text)
            .collect(),
        one("impersonate-uid"),
    )
}

fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn entry(State(st): State<Arc<AppState>>, req: Request) -> Response {
    if let Some(target) = kubelet_target(req.uri().path()) {
        return kubelet(&st, target, req).await;
    }
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let q = Q::parse(&parts.uri);
    let ua = user_agent(&parts.headers);
    let (impersonate_user, impersonate_groups, impersonate_uid) = impersonation(&parts.headers);
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
        let req = Incoming {
            method: &parts.method,
            path: &path,
            q: &q,
            headers: &parts.headers,
            ri: &ri,
            body: &bytes,
            ua: &ua,
        };
        dispatch(&st, &req).unwrap_or_else(IntoResponse::into_response)
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
        impersonate_user,
        impersonate_groups,
        impersonate_uid,
    });
    resp
}

/// `pods/{log,exec,portforward,attach}`, served by the simulated kubelet.
async fn kubelet(
    st: &AppState,
    (ns, pod, sub): (String, String, String),
    req: Request,
) -> Response {
    let ua = user_agent(req.headers());
    let (impersonate_user, impersonate_groups, impersonate_uid) = impersonation(req.headers());
    let path = req.uri().path().to_string();
    let verb = if *req.method() == Method::GET {
        "get"
    } else {
        "create"
    };
    let resp = match st.kubelet.get() {
        Some(k) => k.handle(&ns, &pod, &sub, req).await,
        None => ApiError::not_implemented("the simulated kubelet is not running").into_response(),
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
        impersonate_user,
        impersonate_groups,
        impersonate_uid,
    });
    resp
}

/// The emulator's admin API: the request log and fault injection.
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

/// One API request, read.
pub(super) struct Incoming<'a> {
    pub(super) method: &'a Method,
    pub(super) path: &'a str,
    pub(super) q: &'a Q,
    pub(super) headers: &'a HeaderMap,
    pub(super) ri: &'a ReqInfo,
    pub(super) body: &'a Bytes,
    pub(super) ua: &'a str,
}

impl Incoming<'_> {
    pub(super) fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Routes a request: non-resource paths, then resource requests by method to their verb's
/// handler.
fn dispatch(st: &AppState, req: &Incoming<'_>) -> Result<Response, ApiError> {
    let accept = req.header(header::ACCEPT).unwrap_or_default();
    let reg = st.registry();
    if !req.ri.resource_request {
        return non_resource(st, &reg, req.method, req.path, accept);
    }
    let mut call = Call::new(st, &reg, req)?;
    let (name, sub) = (req.ri.name.is_empty(), call.sub);
    if !call.persisted() {
        // A review serves POST to its collection; its objects have no path.
        return match (req.method.clone(), name) {
            (Method::POST, true) => handlers::review(&mut call),
            (_, true) => Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )),
            (_, false) => Err(ApiError::no_route()),
        };
    }
    match (req.method.clone(), name) {
        (Method::GET, true) if req.q.flag("watch") => handlers::watch(&call),
        (Method::GET, true) => handlers::list(&call),
        (Method::GET, false) => handlers::get(&call),
        (Method::POST, true) => handlers::create(&mut call),
        (Method::POST, false) if sub == Some("binding") => handlers::bind(&mut call),
        (Method::PUT, false) => handlers::update(&mut call),
        (Method::PATCH, false) => handlers::patch(&mut call),
        (Method::DELETE, false) => handlers::delete(&call),
        (Method::DELETE, true) => handlers::delete_collection(&call),
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            req.ri.verb
        ))),
    }
}

/// Non-resource paths: version, health, discovery (aggregated and legacy), OpenAPI v3.
fn non_resource(
    st: &AppState,
    reg: &Registry,
    method: &Method,
    path: &str,
    accept: &str,
) -> Result<Response, ApiError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let ok = |d: serde_json::Value| json_response(StatusCode::OK, &d);
    let segs: Vec<&str> = path
        .trim_end_matches('/')
        .trim_start_matches('/')
        .split('/')
        .collect();
    match segs.as_slice() {
        ["version"] => Ok(ok(discovery::version())),
        ["healthz"] | ["readyz"] | ["livez"] => Ok((StatusCode::OK, "ok").into_response()),
        ["api"] | ["apis"] if discovery::wants_aggregated(accept).is_some() => {
            Ok(aggregated_discovery(reg, segs[0] == "api", accept))
        }
        ["api"] => Ok(ok(discovery::api_versions(&st.addr))),
        ["apis"] => Ok(ok(discovery::api_group_list(reg))),
        ["api", v] => discovery::resource_list(reg, "", v)
            .map(ok)
            .ok_or_else(ApiError::no_route),
        ["apis", g] => discovery::api_group(reg, g)
            .map(ok)
            .ok_or_else(ApiError::no_route),
        ["apis", g, v] => discovery::resource_list(reg, g, v)
            .map(ok)
            .ok_or_else(ApiError::no_route),
        ["openapi", "v3"] => Ok(ok(openapi::index(reg))),
        ["openapi", "v3", "api", v] => openapi::gv_doc(reg, "", v)
            .map(ok)
            .ok_or_else(ApiError::no_route),
        ["openapi", "v3", "apis", g, v] => openapi::gv_doc(reg, g, v)
            .map(ok)
            .ok_or_else(ApiError::no_route),
        _ => Err(ApiError::no_route()),
    }
}

/// Aggregated discovery (apidiscovery.k8s.io v2 or v2beta1, as the `Accept` header asks).
fn aggregated_discovery(reg: &Registry, legacy: bool, accept: &str) -> Response {
    let ct = discovery::wants_aggregated(accept).unwrap_or("application/json");
    let av = if ct.contains("v=v2beta1") {
        "apidiscovery.k8s.io/v2beta1"
    } else {
        "apidiscovery.k8s.io/v2"
    };
    let body = discovery::aggregated(reg, legacy, av);
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ri(method: Method, path: &str, query: &str) -> ReqInfo {
        let uri: axum::http::Uri = format!("{path}?{query}").parse().unwrap();
        request_info(&method, path, &Q::parse(&uri))
    }

    /// RequestInfo: verbs by method, name and `watch`; namespaces, subresources, and the
    /// Namespace addressed by `namespaces/{name}`.
    #[test]
    fn request_info_of_paths() {
        let r = ri(Method::GET, "/api/v1/namespaces/ns1/pods/p1/status", "");
        assert!(r.resource_request);
        assert_eq!(
            (r.verb.as_str(), r.group.as_str(), r.version.as_str()),
            ("get", "", "v1")
        );
        assert_eq!(
            (r.namespace.as_str(), r.resource.as_str(), r.name.as_str()),
            ("ns1", "pods", "p1")
        );
        assert_eq!(r.subresource, "status");
        assert_eq!(
            ri(Method::GET, "/apis/apps/v1/deployments", "").verb,
            "list"
        );
        assert_eq!(
            ri(Method::GET, "/apis/apps/v1/deployments", "watch=true").verb,
            "watch"
        );
        assert_eq!(
            ri(Method::DELETE, "/api/v1/namespaces/a/pods", "").verb,
            "deletecollection"
        );
        assert_eq!(
            ri(Method::DELETE, "/api/v1/namespaces/a/pods/p", "").verb,
            "delete"
        );
        let ns = ri(Method::PUT, "/api/v1/namespaces/a/finalize", "");
        assert_eq!(
            (
                ns.resource.as_str(),
                ns.name.as_str(),
                ns.subresource.as_str()
            ),
            ("namespaces", "a", "finalize")
        );
        assert_eq!(ri(Method::GET, "/api/v1/namespaces/a", "").namespace, "a");
        assert!(!ri(Method::GET, "/api/v1/namespaces/a/pods/p/x/y", "").resource_request);
        assert!(!ri(Method::GET, "/version", "").resource_request);
        assert!(!ri(Method::GET, "/apis/apps/v1", "").resource_request);
    }
}

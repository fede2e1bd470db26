//! Sessions: Leases that own Systems. Opened here, renewed by the caller or held (renewed) by this API,
//! closed with everything they own.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tycho_model::{ANNOTATION_COLLECTED, LABEL_MANAGED_BY, MANAGED_BY};

use super::Problems;
use crate::auth::Caller;
use crate::build::{self, FIELD_MANAGER};
use crate::error::ApiError;
use crate::extract::{Body, PathArgs, dns_name};
use crate::state::AppState;
use crate::types::{Accepted, Hold, OpenSession, SessionList, SessionView};

fn leases(caller: &Caller, ns: &str) -> Result<Api<Lease>, ApiError> {
    dns_name("namespace", ns, false)?;
    Ok(Api::namespaced(caller.client.clone(), ns))
}

/// Create the Lease of a new session held by the caller.
pub async fn open_lease(
    caller: &Caller,
    ns: &str,
    duration_seconds: i64,
) -> Result<Lease, ApiError> {
    let lease = build::session_lease(ns, &caller.identity.username, duration_seconds)?;
    leases(caller, ns)?
        .create(
            &PostParams {
                dry_run: false,
                field_manager: Some(FIELD_MANAGER.into()),
            },
            &lease,
        )
        .await
        .map_err(ApiError::kube("opening a session (creating its Lease)"))
}

async fn renew_lease(api: &Api<Lease>, name: &str) -> Result<Lease, ApiError> {
    let lease = api
        .get(name)
        .await
        .map_err(ApiError::kube(format!("getting session {name}")))?;
    if lease.annotations().contains_key(ANNOTATION_COLLECTED) {
        return Err(ApiError::Kubernetes {
            context: format!("renewing session {name}"),
            message: "the session has ended and its Systems are being collected; open a new one"
                .into(),
            code: 409,
            reason: "Conflict".into(),
            causes: Vec::new(),
        });
    }
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let patch = json!({ "spec": { "renewTime": now } });
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(name, &pp, &Patch::Merge(&patch))
        .await
        .map_err(ApiError::kube(format!("renewing session {name}")))
}

/// Renew the session every third of its duration, as the caller, until it is closed, ends, or this
/// API stops.
pub fn hold_session(
    state: &Arc<AppState>,
    caller: &Caller,
    ns: &str,
    name: &str,
    duration_seconds: i64,
) {
    let api: Api<Lease> = Api::namespaced(caller.client.clone(), ns);
    let period = Duration::from_secs(u64::try_from(duration_seconds / 3).unwrap_or(1).max(1));
    let key = (ns.to_string(), name.to_string());
    let weak = Arc::downgrade(state);
    let lease = name.to_string();
    let namespace = ns.to_string();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tick.tick().await;
            match renew_lease(&api, &lease).await {
                Ok(_) => tracing::debug!(session = %lease, "renewed a held session"),
                Err(e) if matches!(e.kube_code(), Some(404 | 409 | 403)) => {
                    tracing::info!(session = %lease, error = %e, "stopped holding a session");
                    break;
                }
                Err(e) => {
                    tracing::warn!(session = %lease, error = %e, "could not renew a held session; retrying")
                }
            }
        }
        if let Some(state) = weak.upgrade()
            && let Ok(mut held) = state.held.lock()
        {
            held.remove(&(namespace, lease));
        }
    });
    if let Ok(mut held) = state.held.lock()
        && let Some(old) = held.insert(key, task)
    {
        old.abort();
    }
}

/// Open a session. Systems name it in `session`; when it is not renewed within `durationSeconds`,
/// or is closed, they are deleted.
#[utoipa::path(
    post,
    path = "/v1/namespaces/{namespace}/sessions",
    tag = "sessions",
    params(("namespace" = String, Path, description = "Namespace")),
    request_body = OpenSession,
    responses((status = 201, description = "Opened", body = SessionView), Problems),
    security(("bearer" = []))
)]
pub async fn open(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathArgs(ns): PathArgs<String>,
    Body(req): Body<OpenSession>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    let lease = open_lease(&caller, &ns, req.duration_seconds).await?;
    let name = lease.name_any();
    let held = req.hold == Hold::Api;
    if held {
        hold_session(&state, &caller, &ns, &name, req.duration_seconds);
    }
    Ok((StatusCode::CREATED, Json(build::session_view(&lease, held))))
}

/// List the sessions (Tycho's Leases) of a namespace.
#[utoipa::path(
    get,
    path = "/v1/namespaces/{namespace}/sessions",
    tag = "sessions",
    params(("namespace" = String, Path, description = "Namespace")),
    responses((status = 200, description = "The sessions", body = SessionList), Problems),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathArgs(ns): PathArgs<String>,
) -> Result<Json<SessionList>, ApiError> {
    let api = leases(&caller, &ns)?;
    let list = api
        .list(&ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}")))
        .await
        .map_err(ApiError::kube("listing sessions"))?;
    let mut items: Vec<SessionView> = list
        .items
        .iter()
        .map(|l| build::session_view(l, state.holds(&ns, &l.name_any())))
        .collect();
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(SessionList { items }))
}

/// Get a session.
#[utoipa::path(
    get,
    path = "/v1/namespaces/{namespace}/sessions/{name}",
    tag = "sessions",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("name" = String, Path, description = "Session (Lease) name")
    ),
    responses((status = 200, description = "The session", body = SessionView), Problems),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathArgs((ns, name)): PathArgs<(String, String)>,
) -> Result<Json<SessionView>, ApiError> {
    let api = leases(&caller, &ns)?;
    dns_name("name", &name, true)?;
    let lease = api
        .get(&name)
        .await
        .map_err(ApiError::kube(format!("getting session {name}")))?;
    Ok(Json(build::session_view(&lease, state.holds(&ns, &name))))
}

/// Renew a session now (the caller holds it: renew within every `durationSeconds`).
#[utoipa::path(
    post,
    path = "/v1/namespaces/{namespace}/sessions/{name}/renew",
    tag = "sessions",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("name" = String, Path, description = "Session (Lease) name")
    ),
    responses((status = 200, description = "Renewed", body = SessionView), Problems),
    security(("bearer" = []))
)]
pub async fn renew(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathArgs((ns, name)): PathArgs<(String, String)>,
) -> Result<Json<SessionView>, ApiError> {
    let api = leases(&caller, &ns)?;
    dns_name("name", &name, true)?;
    let lease = renew_lease(&api, &name).await?;
    Ok(Json(build::session_view(&lease, state.holds(&ns, &name))))
}

/// Close a session: everything it owns is deleted.
#[utoipa::path(
    delete,
    path = "/v1/namespaces/{namespace}/sessions/{name}",
    tag = "sessions",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("name" = String, Path, description = "Session (Lease) name")
    ),
    responses((status = 202, description = "Closed; its Systems are being deleted", body = Accepted), Problems),
    security(("bearer" = []))
)]
pub async fn close(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathArgs((ns, name)): PathArgs<(String, String)>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let api = leases(&caller, &ns)?;
    dns_name("name", &name, true)?;
    api.delete(&name, &DeleteParams::default())
        .await
        .map_err(ApiError::kube(format!("closing session {name}")))?;
    state.release(&ns, &name);
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            kind: "Session".into(),
            name,
            namespace: ns,
            message: "closed; the Systems it owned are being deleted".into(),
        }),
    ))
}

//! Systems: create, list, get (and wait), change, restart, delete, logs, and a stream of changes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body as HttpBody;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{AsyncBufReadExt, Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tycho_model::{LABEL_SYSTEM, System};

use super::Problems;
use crate::auth::Caller;
use crate::build::{self, FIELD_MANAGER, LABEL_OWNER, owner_label};
use crate::error::ApiError;
use crate::extract::{Body, PathArgs, QueryArgs, dns_name};
use crate::routes::sessions::{hold_session, open_lease};
use crate::state::AppState;
use crate::types::{
    Accepted, ChangeSystem, CreateSystem, Created, GetQuery, ListQuery, LogQuery, Synced,
    SystemList, SystemView, WaitFor, WatchQuery, WatchSse,
};

/// Longest `?wait=ready` a get may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

fn systems(caller: &Caller, ns: &str) -> Result<Api<System>, ApiError> {
    dns_name("namespace", ns, false)?;
    Ok(Api::namespaced(caller.client.clone(), ns))
}

/// Create a System from a whole spec or the short form, optionally with a new session; a create that
/// fails leaves nothing behind (the session opened for it is closed again).
#[utoipa::path(
    post,
    path = "/v1/namespaces/{namespace}/systems",
    tag = "systems",
    params(("namespace" = String, Path, description = "Namespace")),
    request_body = CreateSystem,
    responses((status = 201, description = "Created", body = Created), Problems),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathArgs(ns): PathArgs<String>,
    Body(req): Body<CreateSystem>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let api = systems(&caller, &ns)?;
    // Body fields: a wrong one is a 422 naming it (path parameters are 400s).
    let in_body = |e: ApiError| match e {
        ApiError::Invalid { detail, field, .. } => ApiError::Invalid {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail,
            field,
        },
        other => other,
    };
    if let Some(name) = &req.name {
        dns_name("name", name, false).map_err(in_body)?;
    }
    if let Some(s) = &req.session {
        dns_name("session", s, true).map_err(in_body)?;
    }
    let owner = caller.identity.username.clone();
    let planned = build::system_for(&req, &ns, &owner, req.session.as_deref())?;
    let typed: System = serde_json::from_value(planned)
        .map_err(|e| ApiError::unprocessable("spec", format!("not a valid System spec: {e}")))?;
    if let Some(open) = &req.new_session {
        let lease = open_lease(&caller, &ns, open.duration_seconds).await?;
        let session_name = lease.metadata.name.clone().unwrap_or_default();
        let mut sys = typed;
        sys.spec.session = Some(session_name.clone());
        let created = match api.create(&post_params(), &sys).await {
            Ok(s) => s,
            Err(e) => {
                // Nothing is left behind: the session opened for this System is closed again.
                let leases: Api<Lease> = Api::namespaced(caller.client.clone(), &ns);
                if let Err(cleanup) = leases.delete(&session_name, &DeleteParams::default()).await {
                    tracing::warn!(session = %session_name, error = %cleanup, "could not close the session of a failed create");
                }
                return Err(ApiError::kube("creating the System")(e));
            }
        };
        let held = open.hold == crate::types::Hold::Api;
        if held {
            hold_session(&state, &caller, &ns, &session_name, open.duration_seconds);
        }
        return Ok((
            StatusCode::CREATED,
            Json(Created {
                system: build::view(&created),
                session: Some(build::session_view(&lease, held)),
            }),
        ));
    }
    let created = api
        .create(&post_params(), &typed)
        .await
        .map_err(ApiError::kube("creating the System"))?;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            system: build::view(&created),
            session: None,
        }),
    ))
}

fn post_params() -> PostParams {
    PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.into()),
    }
}

/// List Systems, filtered by label selector, owner and session.
#[utoipa::path(
    get,
    path = "/v1/namespaces/{namespace}/systems",
    tag = "systems",
    params(("namespace" = String, Path, description = "Namespace"), ListQuery),
    responses((status = 200, description = "The Systems", body = SystemList), Problems),
    security(("bearer" = []))
)]
pub async fn list(
    caller: Caller,
    PathArgs(ns): PathArgs<String>,
    QueryArgs(q): QueryArgs<ListQuery>,
) -> Result<Json<SystemList>, ApiError> {
    let api = systems(&caller, &ns)?;
    let owner = match q.owner.as_deref() {
        Some("me") => Some(caller.identity.username.clone()),
        other => other.map(str::to_string),
    };
    let mut selector: Vec<String> = Vec::new();
    if let Some(l) = q.label.as_deref().filter(|l| !l.is_empty()) {
        selector.push(l.to_string());
    }
    if let Some(o) = &owner {
        selector.push(format!("{LABEL_OWNER}={}", owner_label(o)));
    }
    let lp = ListParams {
        label_selector: (!selector.is_empty()).then(|| selector.join(",")),
        ..ListParams::default()
    };
    let list = api
        .list(&lp)
        .await
        .map_err(ApiError::kube("listing Systems"))?;
    let mut items: Vec<SystemView> = list
        .items
        .iter()
        .filter(|s| q.session.is_none() || s.spec.session == q.session)
        .map(build::view)
        .filter(|v| owner.is_none() || v.owner == owner)
        .collect();
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(SystemList { items }))
}

/// Get a System; with `?wait=ready`, answer once it is ready (or when `timeout` passes).
#[utoipa::path(
    get,
    path = "/v1/namespaces/{namespace}/systems/{name}",
    tag = "systems",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("name" = String, Path, description = "System name"),
        GetQuery
    ),
    responses((status = 200, description = "The System (with `wait`: ready, or as it was when the time ran out)", body = SystemView), Problems),
    security(("bearer" = []))
)]
pub async fn get(
    caller: Caller,
    PathArgs((ns, name)): PathArgs<(String, String)>,
    QueryArgs(q): QueryArgs<GetQuery>,
) -> Result<Json<SystemView>, ApiError> {
    let api = systems(&caller, &ns)?;
    dns_name("name", &name, true)?;
    let timeout = match q.timeout {
        Some(t) if t == 0 || Duration::from_secs(t) > MAX_WAIT => {
            return Err(ApiError::bad_request(
                "timeout",
                "timeout must be 1 to 300 seconds",
            ));
        }
        Some(t) => Duration::from_secs(t),
        None => Duration::from_secs(60),
    };
    let sys = api
        .get(&name)
        .await
        .map_err(ApiError::kube(format!("getting System {name}")))?;
    if q.wait != Some(WaitFor::Ready) || build::is_ready(&sys) {
        return Ok(Json(build::view(&sys)));
    }
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut last = sys;
    let stream = watcher(api, cfg).default_backoff();
    futures::pin_mut!(stream);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) | Ok(None) => break,
            Ok(Some(Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)))) => {
                let ready = build::is_ready(&s);
                last = s;
                if ready {
                    break;
                }
            }
            Ok(Some(Ok(watcher::Event::Delete(s)))) => {
                last = s;
                last.metadata.deletion_timestamp.get_or_insert_with(|| {
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::now(),
                    )
                });
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "watch while waiting for a System");
            }
        }
    }
    Ok(Json(build::view(&last)))
}

/// Change replicas, paused, a container's image, env, limits or requests: a server-side apply of just
/// those fields.
#[utoipa::path(
    patch,
    path = "/v1/namespaces/{namespace}/systems/{name}",
    tag = "systems",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("name" = String, Path, description = "System name")
    ),
    request_body = ChangeSystem,
    responses((status = 200, description = "The changed System", body = SystemView), Problems),
    security(("bearer" = []))
)]
pub async fn change(
    caller: Caller,
    PathArgs((ns, name)): PathArgs<(String, String)>,
    Body(req): Body<ChangeSystem>,
) -> Result<Json<SystemView>, ApiError> {
    let api = systems(&caller, &ns)?;
    dns_name("name", &name, true)?;
    let current = api
        .get(&name)
        .await
        .map_err(ApiError::kube(format!("getting System {name}")))?;
    let containers: Vec<String> = current
        .spec
        .containers
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let patch = build::change_patch(&req, &name, &containers)?;
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let changed = api
        .patch(&name, &pp, &Patch::Apply(&patch))
        .await
        .map_err(ApiError::kube(format!("changing System {name}")))?;
    Ok(Json(build::view(&changed)))
}

/// Restart a System's pods, as `kubectl rollout restart` does (a bare Pod is replaced).
#[utoipa::path(
    post,
    path = "/v1/namespaces/{namespace}/systems/{name}/restart",
    tag = "systems",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("name" = String, Path, description = "System name")
    ),
    responses((status = 202, description = "Restart requested", body = SystemView), Problems),
    security(("bearer" = []))
)]
pub async fn restart(
    caller: Caller,
    PathArgs((ns, name)): PathArgs<(String, String)>,
) -> Result<(StatusCode, Json<SystemView>), ApiError> {
    let api = systems(&caller, &ns)?;
    dns_name("name", &name, true)?;
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = tycho_model::restart_patch(&now);
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let sys = api
        .patch(&name, &pp, &Patch::Merge(&patch))
        .await
        .map_err(ApiError::kube(format!("restarting System {name}")))?;
    Ok((StatusCode::ACCEPTED, Json(build::view(&sys))))
}

/// Delete a System and everything it made.
#[utoipa::path(
    delete,
    path = "/v1/namespaces/{namespace}/systems/{name}",
    tag = "systems",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("name" = String, Path, description = "System name")
    ),
    responses((status = 202, description = "Deletion started", body = Accepted), Problems),
    security(("bearer" = []))
)]
pub async fn delete(
    caller: Caller,
    PathArgs((ns, name)): PathArgs<(String, String)>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let api = systems(&caller, &ns)?;
    dns_name("name", &name, true)?;
    api.delete(&name, &DeleteParams::background())
        .await
        .map_err(ApiError::kube(format!("deleting System {name}")))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            kind: "System".into(),
            name,
            namespace: ns,
            message: "deleting; its pods, services and files go with it".into(),
        }),
    ))
}

/// A container's log, as text; with `follow=true`, new lines as they come.
#[utoipa::path(
    get,
    path = "/v1/namespaces/{namespace}/systems/{name}/logs",
    tag = "systems",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("name" = String, Path, description = "System name"),
        LogQuery
    ),
    responses((status = 200, description = "The log", content_type = "text/plain", body = String), Problems),
    security(("bearer" = []))
)]
pub async fn logs(
    caller: Caller,
    PathArgs((ns, name)): PathArgs<(String, String)>,
    QueryArgs(q): QueryArgs<LogQuery>,
) -> Result<Response, ApiError> {
    let api = systems(&caller, &ns)?;
    dns_name("name", &name, true)?;
    if q.tail_lines.is_some_and(|t| t < 0) {
        return Err(ApiError::bad_request(
            "tailLines",
            "tailLines must be 0 or more",
        ));
    }
    let sys = api
        .get(&name)
        .await
        .map_err(ApiError::kube(format!("getting System {name}")))?;
    let container = match &q.container {
        Some(c) if sys.spec.containers.iter().any(|x| &x.name == c) => c.clone(),
        Some(c) => {
            return Err(ApiError::bad_request(
                "container",
                format!("System {name} has no container {c:?}"),
            ));
        }
        None => sys
            .spec
            .containers
            .first()
            .map(|c| c.name.clone())
            .unwrap_or_default(),
    };
    let pods: Api<Pod> = Api::namespaced(caller.client.clone(), &ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("{LABEL_SYSTEM}={name}")))
        .await
        .map_err(ApiError::kube(format!("listing the pods of System {name}")))?;
    let pod = pick_pod(&list.items).ok_or_else(|| {
        ApiError::NotFound(format!(
            "System {name} has no pod yet; try again when it is running"
        ))
    })?;
    let lp = LogParams {
        container: Some(container),
        follow: q.follow.unwrap_or(false),
        tail_lines: q.tail_lines,
        ..LogParams::default()
    };
    let reader = pods
        .log_stream(&pod, &lp)
        .await
        .map_err(ApiError::kube(format!("reading the log of pod {pod}")))?;
    let lines = reader.lines().map_ok(|mut l| {
        l.push('\n');
        bytes::Bytes::from(l)
    });
    let mut resp = HttpBody::from_stream(lines).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(resp)
}

/// The pod to read a log from: a running one if there is one, the newest otherwise.
fn pick_pod(pods: &[Pod]) -> Option<String> {
    let running = |p: &&Pod| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            && p.metadata.deletion_timestamp.is_none()
    };
    pods.iter()
        .filter(running)
        .chain(pods.iter())
        .max_by_key(|p| {
            (
                running(p),
                p.metadata.creation_timestamp.clone().map(|t| t.0),
            )
        })
        .and_then(|p| p.metadata.name.clone())
}

/// Server-sent events of Systems as they change: `system` with a System's view (first one for each
/// System there is, then on every change), `deleted` with the last view of a deleted one, `synced` once
/// the first ones are sent, and `problem` (a problem document) if the stream cannot go on.
#[utoipa::path(
    get,
    path = "/v1/namespaces/{namespace}/watch/systems",
    tag = "systems",
    params(("namespace" = String, Path, description = "Namespace"), WatchQuery),
    responses((status = 200, description = "A stream of `system`, `deleted`, `synced` and `problem` events", content_type = "text/event-stream", body = WatchSse), Problems),
    security(("bearer" = []))
)]
pub async fn watch(
    caller: Caller,
    PathArgs(ns): PathArgs<String>,
    QueryArgs(q): QueryArgs<WatchQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let api = systems(&caller, &ns)?;
    let mut cfg = watcher::Config::default();
    let mut lp = ListParams::default().limit(1);
    if let Some(n) = &q.name {
        dns_name("name", n, true)?;
        cfg = cfg.fields(&format!("metadata.name={n}"));
        lp = lp.fields(&format!("metadata.name={n}"));
    }
    if let Some(l) = q.label.as_deref().filter(|l| !l.is_empty()) {
        cfg = cfg.labels(l);
        lp = lp.labels(l);
    }
    // A first list answers 403, 404 or 400 (a bad selector) as a status, before the stream starts.
    api.list(&lp)
        .await
        .map_err(ApiError::kube("listing Systems to watch"))?;
    let events = watcher(api, cfg).default_backoff();
    let stream = events
        .scan(false, |failed, ev| {
            let out = if *failed {
                None
            } else {
                match ev {
                    Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => {
                        Some(sse("system", &build::view(&s)))
                    }
                    Ok(watcher::Event::Delete(s)) => Some(sse("deleted", &build::view(&s))),
                    Ok(watcher::Event::InitDone) => Some(sse("synced", &Synced { synced: true })),
                    Ok(watcher::Event::Init) => Some(Event::default().comment("resync")),
                    Err(e) => {
                        let problem = ApiError::Server(format!("watching Systems: {e}")).problem();
                        // Forbidden or gone for good: tell and stop; other errors are retried by the backoff.
                        if matches!(&e, watcher::Error::WatchFailed(kube::Error::Api(s)) | watcher::Error::InitialListFailed(kube::Error::Api(s)) if s.code == 403 || s.code == 404) {
                            *failed = true;
                        }
                        Some(sse("problem", &problem))
                    }
                }
            };
            futures::future::ready(out.map(Ok))
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn sse<T: serde::Serialize>(kind: &str, value: &T) -> Event {
    Event::default()
        .event(kind)
        .json_data(value)
        .unwrap_or_else(|_| Event::default().event(kind).data("{}"))
}

//! The HTTP server: routes, limits, the docs and launcher pages, plain HTTP on loopback or TLS.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;

use crate::auth::Caller;
use crate::error::{ApiError, Problem, problem_response};
use crate::routes::{sessions, systems};
use crate::state::{AppState, Limits};
use crate::types::WhoAmI;

/// The launcher page and its assets, compiled in.
const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// TLS certificate chain and private key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy).
    pub allow_plain_http: bool,
    /// Body size and time limits.
    pub limits: Limits,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            tls: None,
            allow_plain_http: false,
            limits: Limits::default(),
        }
    }
}

/// Who the caller is, as the API server's TokenReview says.
#[utoipa::path(
    get,
    path = "/v1/whoami",
    tag = "identity",
    responses((status = 200, description = "The caller", body = WhoAmI), crate::routes::Problems),
    security(("bearer" = []))
)]
pub async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        identity: caller.identity,
    })
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.base_client.apiserver_version().await {
        Ok(_) => "ok".into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the Kubernetes API server does not answer: {e}"),
        )
            .into_response(),
    }
}

async fn openapi_json() -> Response {
    match crate::openapi::document() {
        Ok(doc) => Json(doc).into_response(),
        Err(e) => e.into_response(),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(
        header::HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(
            "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    r
}

async fn not_found() -> Response {
    problem_response(&Problem {
        kind: "about:blank".into(),
        title: "Not Found".into(),
        status: 404,
        detail: "no such route; the API is described at /openapi.json and /docs".into(),
        field: None,
        reason: None,
        causes: Vec::new(),
    })
}

/// Turn the timeout layer's bare 408 into a problem document.
async fn problem_for_bare_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if (status.is_client_error() || status.is_server_error()) && !is_problem {
        let detail = match status {
            StatusCode::REQUEST_TIMEOUT => {
                "the request took longer than the request timeout".to_string()
            }
            StatusCode::METHOD_NOT_ALLOWED => "this route does not take that method".to_string(),
            s => s.canonical_reason().unwrap_or("error").to_string(),
        };
        let allow = resp.headers().get(header::ALLOW).cloned();
        let mut out = problem_response(&Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail,
            field: None,
            reason: None,
            causes: Vec::new(),
        });
        if let Some(a) = allow {
            out.headers_mut().insert(header::ALLOW, a);
        }
        return out;
    }
    resp
}

/// The API's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let limits = state.limits.clone();
    // Requests that answer at once are bounded by the request timeout; streams (logs, watch) and a
    // get that waits (bounded by its own `timeout`) are not.
    let bounded = Router::new()
        .route("/v1/whoami", get(whoami))
        .route(
            "/v1/namespaces/{namespace}/systems",
            post(systems::create).get(systems::list),
        )
        .route(
            "/v1/namespaces/{namespace}/systems/{name}",
            axum::routing::patch(systems::change).delete(systems::delete),
        )
        .route(
            "/v1/namespaces/{namespace}/systems/{name}/restart",
            post(systems::restart),
        )
        .route(
            "/v1/namespaces/{namespace}/sessions",
            post(sessions::open).get(sessions::list),
        )
        .route(
            "/v1/namespaces/{namespace}/sessions/{name}",
            get(sessions::get).delete(sessions::close),
        )
        .route(
            "/v1/namespaces/{namespace}/sessions/{name}/renew",
            post(sessions::renew),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ));
    let streams = Router::new()
        .route(
            "/v1/namespaces/{namespace}/systems/{name}",
            get(systems::get),
        )
        .route(
            "/v1/namespaces/{namespace}/systems/{name}/logs",
            get(systems::logs),
        )
        .route(
            "/v1/namespaces/{namespace}/watch/systems",
            get(systems::watch),
        );
    // `get` shares its path with `change` and `delete`: axum merges the method routers of one path.
    let api = bounded.merge(streams);
    // The interactive docs (Swagger UI, vendored in the crate `utoipa-swagger-ui-vendored`, served from
    // the binary) read the same document as `/openapi.json`; no validator is called.
    let swagger = utoipa_swagger_ui::SwaggerUi::new("/docs")
        .config(utoipa_swagger_ui::Config::from("/openapi.json").validator_url("none"));
    Router::new()
        .merge(api)
        .route("/openapi.json", get(openapi_json))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .merge(swagger)
        .fallback(not_found)
        .layer(axum::middleware::map_response(problem_for_bare_errors))
        .layer(DefaultBodyLimit::max(limits.body_limit))
        .with_state(state)
}

/// A bound, not yet running, API server.
pub struct ApiServer {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
}

fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> Result<tokio_rustls::TlsAcceptor, ApiError> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| ApiError::Server(format!("reading {}: {e}", p.display())))
    };
    let certs = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ApiError::Server(format!("reading certificates from {}: {e}", cert.display()))
        })?;
    if certs.is_empty() {
        return Err(ApiError::Server(format!(
            "{} holds no PEM certificate",
            cert.display()
        )));
    }
    let key_der = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| ApiError::Server(format!("reading the key from {}: {e}", key.display())))?
        .ok_or_else(|| ApiError::Server(format!("{} holds no PEM private key", key.display())))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ApiError::Server(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| ApiError::Server(format!("TLS certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

impl ApiServer {
    /// Check the configuration, bind the address and build the routes. Plain HTTP is refused on a
    /// non-loopback address unless `allow_plain_http` says a proxy terminates TLS.
    pub async fn bind(cfg: &ServeConfig, kube_config: kube::Config) -> Result<ApiServer, ApiError> {
        if cfg.tls.is_none() && !is_loopback(&cfg.listen) && !cfg.allow_plain_http {
            return Err(ApiError::Server(format!(
                "refusing to serve plain HTTP on {}: bearer tokens would cross the network in clear text; give --tls-cert and --tls-key, listen on 127.0.0.1, or pass --allow-plain-http when a proxy terminates TLS",
                cfg.listen
            )));
        }
        let tls = match &cfg.tls {
            Some((cert, key)) => Some(tls_acceptor(cert, key)?),
            None => None,
        };
        let state = Arc::new(AppState::new(kube_config, cfg.limits.clone())?);
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| ApiError::Server(format!("binding {}: {e}", cfg.listen)))?;
        Ok(ApiServer {
            listener,
            tls,
            router: router(state),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, ApiError> {
        self.listener
            .local_addr()
            .map_err(|e| ApiError::Server(format!("reading the bound address: {e}")))
    }

    /// The base URL (`http://127.0.0.1:PORT` or `https://…`).
    pub fn url(&self) -> Result<String, ApiError> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Ok(format!("{scheme}://{}", self.local_addr()?))
    }

    /// Serve until `shutdown` completes.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ApiError> {
        let Some(tls) = self.tls else {
            return axum::serve(self.listener, self.router)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(|e| ApiError::Server(format!("serving: {e}")));
        };
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                () = &mut shutdown => return Ok(()),
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let tls = tls.clone();
            let router = self.router.clone();
            tokio::spawn(async move {
                let stream =
                    match tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                let service = hyper_util::service::TowerToHyperService::new(router);
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
    }
}

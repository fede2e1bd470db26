//! The HTTP API under test: `tycho_api::ApiServer` in a task of the test, and an HTTP client for it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::task::JoinHandle;
use tycho_api::{ApiServer, Limits, ServeConfig};

/// A running API.
pub struct ApiUnderTest {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), tycho_api::ApiError>>>,
    http: HttpClient<HttpConnector, Full<Bytes>>,
}

/// An answer: status, content type, body (JSON when it parses, else a string).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Content-Type.
    pub content_type: String,
    /// Other headers (lowercase names).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Value,
}

impl ApiUnderTest {
    /// Serve on a free loopback port with `base` as the API's own credentials.
    pub async fn start(base: kube::Config, limits: Limits) -> ApiUnderTest {
        let cfg = ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            limits,
            ..ServeConfig::default()
        };
        let server = ApiServer::bind(&cfg, base).await.expect("bind the API");
        let url = server.url().unwrap();
        let (stop, mut rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(server.run(async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
        ApiUnderTest {
            url,
            stop,
            task: Some(task),
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// A request with a raw body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(60), self.http.request(req))
            .await
            .expect("the API answers within 60 s")
            .expect("HTTP request");
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let content_type = headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).to_string()));
        Answer {
            status,
            content_type,
            headers,
            body,
        }
    }

    /// A JSON request.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        match body {
            Some(b) => {
                self.raw(
                    method,
                    path,
                    token,
                    Some("application/json"),
                    serde_json::to_vec(&b).unwrap(),
                )
                .await
            }
            None => self.raw(method, path, token, None, Vec::new()).await,
        }
    }

    /// Read the server-sent events of `path` until `done(event, data)` says so or `timeout` passes;
    /// returns the events seen.
    pub async fn events_until(
        &self,
        path: &str,
        token: &str,
        timeout: Duration,
        mut done: impl FnMut(&str, &Value) -> bool,
    ) -> Vec<(String, Value)> {
        let req = http::Request::builder()
            .uri(format!("{}{path}", self.url))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = self.http.request(req).await.expect("SSE request");
        assert_eq!(resp.status().as_u16(), 200, "the event stream opens");
        let mut body = resp.into_body();
        let mut seen = Vec::new();
        let mut buf = String::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(Some(Ok(f))) => f,
                _ => return seen,
            };
            if let Ok(data) = frame.into_data() {
                buf.push_str(&String::from_utf8_lossy(&data));
            }
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = e.trim().to_string();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let value: Value = serde_json::from_str(&data).unwrap_or(Value::String(data));
                let stop = done(&event, &value);
                seen.push((event, value));
                if stop {
                    return seen;
                }
            }
        }
    }

    /// Stop the server.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

impl Answer {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this is a problem document with `status`.
    pub fn is_problem(&self, status: u16) -> bool {
        self.status == status
            && self.content_type.starts_with("application/problem+json")
            && self.body["status"] == status
    }
}

/// Rules of a Role that lets a user run Systems in a namespace through the API.
pub fn editor_rules() -> Vec<k8s_openapi::api::rbac::v1::PolicyRule> {
    use k8s_openapi::api::rbac::v1::PolicyRule;
    let rule = |group: &str, resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..PolicyRule::default()
    };
    vec![
        rule(
            "tycho.dev",
            &["systems"],
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        rule(
            "coordination.k8s.io",
            &["leases"],
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        rule("", &["pods", "pods/log"], &["get", "list", "watch"]),
    ]
}

/// A user of the cluster with a bearer token, allowed `rules` in `namespace`: on the emulator a static
/// token of its TokenReview (the emulator authorizes everything); on a real cluster a ServiceAccount
/// of that namespace bound to a Role with `rules`, and a token from the TokenRequest API. Returns
/// (user name as the API server reports it, token).
pub async fn user(
    cluster: &super::TestCluster,
    namespace: &str,
    name: &str,
    rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule>,
) -> (String, String) {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding, RoleRef, Subject};
    use kube::api::{Api, ObjectMeta, PostParams};
    if let Some(emu) = &cluster.emulator {
        let token = format!("{name}-{:016x}", rand::random::<u64>());
        let mut t = tycho_emulator::StaticToken::new(token.clone(), name);
        t.uid = format!("uid-{name}");
        t.groups = vec!["tycho:users".into()];
        emu.add_token(t);
        return (name.to_string(), token);
    }
    let meta = |n: &str| ObjectMeta {
        name: Some(n.to_string()),
        namespace: Some(namespace.to_string()),
        ..ObjectMeta::default()
    };
    let pp = PostParams::default();
    let sas: Api<ServiceAccount> = Api::namespaced(cluster.client.clone(), namespace);
    sas.create(
        &pp,
        &ServiceAccount {
            metadata: meta(name),
            ..ServiceAccount::default()
        },
    )
    .await
    .expect("create the ServiceAccount");
    Api::<Role>::namespaced(cluster.client.clone(), namespace)
        .create(
            &pp,
            &Role {
                metadata: meta(name),
                rules: Some(rules),
            },
        )
        .await
        .expect("create the Role");
    Api::<RoleBinding>::namespaced(cluster.client.clone(), namespace)
        .create(
            &pp,
            &RoleBinding {
                metadata: meta(name),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "Role".into(),
                    name: name.to_string(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: name.to_string(),
                    namespace: Some(namespace.to_string()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .expect("create the RoleBinding");
    let tr = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let answer = sas
        .create_token_request(name, &pp, &tr)
        .await
        .expect("request a token");
    let token = answer.status.expect("token status").token;
    (format!("system:serviceaccount:{namespace}:{name}"), token)
}

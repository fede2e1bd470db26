//! Identity: `TokenReview` against static tokens (a token file given at start and tokens added at
//! run time) through the kube client, raw HTTP and the real `kubectl`, as kube-apiserver v1.37
//! answers (checked against one started with `--token-auth-file`); and the request log's record
//! of the impersonation headers kube's client sends.

mod api_common;

use api_common::{Kubectl, client, http, start_with};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use tycho_emulator::auth::API_AUDIENCE;
use tycho_emulator::{EmulatorConfig, RequestRecord, StaticToken};

const TOKEN_FILE: &str = "\
# token,user,uid,groups
t-alice,alice,uid-1,\"dev,ops\"
t-bob,bob,uid-2
";

fn review(token: &str, audiences: Option<&[&str]>) -> TokenReview {
    TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.into()),
            audiences: audiences.map(|a| a.iter().map(|s| s.to_string()).collect()),
        },
        ..TokenReview::default()
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// TokenReview through kube's typed client: a token of the file and one added after start
/// authenticate (groups + `system:authenticated`, the API audience); an unknown token and a
/// known one for a foreign audience do not (`error: invalid bearer token`, `user: {}`); an empty
/// token is 400 BadRequest. Nothing is stored; list is 405, a named path 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_review_through_kube_client() {
    let emu = start_with(EmulatorConfig {
        simulate: false,
        tokens: StaticToken::parse_file(TOKEN_FILE).unwrap(),
        ..EmulatorConfig::default()
    })
    .await;
    emu.add_token(StaticToken {
        token: "t-later".into(),
        user: "later".into(),
        uid: String::new(),
        groups: vec![],
    });
    let c = client(&emu).await;
    let api: Api<TokenReview> = Api::all(c.clone());
    let pp = PostParams::default();

    let st = api
        .create(&pp, &review("t-alice", None))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(st.authenticated, Some(true));
    assert_eq!(st.error, None);
    assert_eq!(
        st.user,
        Some(UserInfo {
            username: Some("alice".into()),
            uid: Some("uid-1".into()),
            groups: Some(strings(&["dev", "ops", "system:authenticated"])),
            extra: None,
        })
    );
    assert_eq!(st.audiences, Some(strings(&[API_AUDIENCE])));

    let st = api
        .create(&pp, &review("t-later", None))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(st.authenticated, Some(true));
    let user = st.user.unwrap();
    assert_eq!(user.username.as_deref(), Some("later"));
    assert_eq!(user.uid, None);
    assert_eq!(user.groups, Some(strings(&["system:authenticated"])));

    // Audiences: a token file's tokens are for the API server's audience only.
    let st = api
        .create(&pp, &review("t-bob", Some(&["other", API_AUDIENCE])))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(st.authenticated, Some(true));
    assert_eq!(st.audiences, Some(strings(&[API_AUDIENCE])));
    for (token, auds) in [("t-bob", Some(&["other"][..])), ("nope", None)] {
        let st = api
            .create(&pp, &review(token, auds))
            .await
            .unwrap()
            .status
            .unwrap();
        assert_eq!(st.authenticated, None, "{token}");
        assert_eq!(st.error.as_deref(), Some("invalid bearer token"));
        assert_eq!(st.user, Some(UserInfo::default()));
        assert_eq!(st.audiences, None);
    }

    // An empty token.
    match api.create(&pp, &review("", None)).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 400);
            assert_eq!(s.reason, "BadRequest");
            assert_eq!(
                s.message,
                "token is required for TokenReview in authentication"
            );
        }
        other => panic!("empty token: {other:?}"),
    }

    // Never stored: no list, no named path.
    match api.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (405, "MethodNotAllowed"))
        }
        other => panic!("list: {other:?}"),
    }
    match api.get("x").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        other => panic!("get: {other:?}"),
    }
    assert!(
        emu.store()
            .list(
                "authentication.k8s.io",
                "tokenreviews",
                None,
                None,
                0,
                &|_| true
            )
            .items
            .is_empty()
    );
    emu.shutdown().await;
}

/// The answer as raw JSON is kube-apiserver's: the request echoed with the writer's
/// managedFields, `status.user: {}` and no `authenticated` when not authenticated; discovery
/// lists `tokenreviews` (cluster-scoped, create only) and OpenAPI a POST path alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_review_raw_answer_and_discovery() {
    let emu = start_with(EmulatorConfig {
        simulate: false,
        ..EmulatorConfig::default()
    })
    .await;
    let ct = [
        ("Content-Type", "application/json"),
        ("User-Agent", "raw-test/1.0"),
    ];
    let path = "/apis/authentication.k8s.io/v1/tokenreviews";
    let r = http(
        &emu,
        "POST",
        path,
        &ct,
        Some(r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"unknown-token"}}"#),
    )
    .await;
    assert_eq!(r.status, 201);
    let mut body = r.json();
    let mf = body["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields")
        .unwrap();
    assert_eq!(mf[0]["manager"], "raw-test");
    assert_eq!(mf[0]["operation"], "Update");
    assert_eq!(mf[0]["fieldsV1"], json!({"f:spec": {"f:token": {}}}));
    assert_eq!(
        body,
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "metadata": {},
            "spec": {"token": "unknown-token"},
            "status": {"user": {}, "error": "invalid bearer token"},
        })
    );
    // A token that leaves the bearer token empty is the anonymous user's.
    let r = http(&emu, "POST", path, &ct, Some(r#"{"spec":{"token":" x"}}"#)).await;
    assert_eq!(
        r.json()["status"],
        json!({"authenticated": true, "audiences": [API_AUDIENCE],
            "user": {"username": "system:anonymous", "groups": ["system:unauthenticated"]}})
    );
    // Unknown fields: dropped with a warning, or 400 with fieldValidation=Strict.
    let r = http(
        &emu,
        "POST",
        path,
        &ct,
        Some(r#"{"spec":{"token":"x","bogus":1}}"#),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["spec"], json!({"token": "x"}));
    assert_eq!(
        r.header("warning"),
        vec![r#"299 - "unknown field \"spec.bogus\"""#.to_string()]
    );
    let strict = format!("{path}?fieldValidation=Strict");
    let r = http(
        &emu,
        "POST",
        &strict,
        &ct,
        Some(r#"{"spec":{"token":"x","bogus":1}}"#),
    )
    .await;
    assert_eq!(r.status, 400);
    // Methods and paths: as kube-apiserver's (405 on the collection, 404 on a name or namespace).
    for (method, p, code) in [
        ("GET", path.to_string(), 405),
        ("GET", format!("{path}?watch=true"), 405),
        ("DELETE", path.to_string(), 405),
        ("PUT", path.to_string(), 405),
        ("GET", format!("{path}/x"), 404),
        ("DELETE", format!("{path}/x"), 404),
        (
            "POST",
            "/apis/authentication.k8s.io/v1/namespaces/default/tokenreviews".to_string(),
            404,
        ),
    ] {
        let r = http(&emu, method, &p, &ct, Some(r#"{"spec":{"token":"x"}}"#)).await;
        assert_eq!(r.status, code, "{method} {p}");
    }

    let d = http(&emu, "GET", "/apis/authentication.k8s.io/v1", &[], None)
        .await
        .json();
    assert_eq!(
        d["resources"],
        json!([{"name": "tokenreviews", "singularName": "tokenreview", "namespaced": false,
            "kind": "TokenReview", "verbs": ["create"]}])
    );
    let agg = http(
        &emu,
        "GET",
        "/apis",
        &[(
            "Accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        )],
        None,
    )
    .await
    .json();
    let group = agg["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "authentication.k8s.io")
        .expect("authentication.k8s.io in aggregated discovery");
    let res = &group["versions"][0]["resources"][0];
    assert_eq!(
        (&res["resource"], &res["scope"], &res["verbs"]),
        (
            &json!("tokenreviews"),
            &json!("Cluster"),
            &json!(["create"])
        )
    );
    let oa = http(
        &emu,
        "GET",
        "/openapi/v3/apis/authentication.k8s.io/v1",
        &[],
        None,
    )
    .await
    .json();
    let paths: Vec<(&String, Vec<&String>)> = oa["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, ops)| (p, ops.as_object().unwrap().keys().collect()))
        .collect();
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert_eq!(paths[0].0, path);
    // POST, and a PATCH operation for kubectl's query-param verifier (see openapi.rs).
    assert_eq!(paths[0].1, vec!["patch", "post"]);
    emu.shutdown().await;
}

/// The real kubectl: `kubectl create -f - -o json` of a TokenReview prints the answer; an empty
/// token fails with the server's message; `kubectl api-resources` lists the resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_review_through_kubectl() {
    let emu = start_with(EmulatorConfig {
        simulate: false,
        tokens: StaticToken::parse_file(TOKEN_FILE).unwrap(),
        ..EmulatorConfig::default()
    })
    .await;
    let k = Kubectl::new(&emu);
    let manifest = |token: &str| {
        format!(
            "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: \"{token}\"\n"
        )
    };
    let out = k
        .ok(
            &["create", "-f", "-", "-o", "json"],
            Some(&manifest("t-alice")),
        )
        .await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kind"], "TokenReview");
    assert_eq!(
        v["status"],
        json!({"authenticated": true, "audiences": [API_AUDIENCE],
            "user": {"username": "alice", "uid": "uid-1",
                "groups": ["dev", "ops", "system:authenticated"]}})
    );
    let out = k
        .ok(
            &["create", "-f", "-", "-o", "json"],
            Some(&manifest("nope")),
        )
        .await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["status"],
        json!({"user": {}, "error": "invalid bearer token"})
    );
    let o = k.run(&["create", "-f", "-"], Some(&manifest(""))).await;
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(
        o.stderr
            .contains("token is required for TokenReview in authentication"),
        "{}",
        o.stderr
    );
    let out = k
        .ok(
            &[
                "api-resources",
                "--api-group=authentication.k8s.io",
                "-o",
                "wide",
            ],
            None,
        )
        .await;
    let line = out
        .lines()
        .find(|l| l.starts_with("tokenreviews"))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        [
            "tokenreviews",
            "authentication.k8s.io/v1",
            "false",
            "TokenReview",
            "create"
        ],
        "{out}"
    );
    emu.shutdown().await;
}

/// The request log records the impersonation headers kube's client sends for
/// `auth_info.impersonate`, `impersonate_groups` (one header each) and `impersonate_uid`, and
/// leaves them empty without; the admin endpoint serves them in camelCase, and a record without
/// them (an older log) still reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_log_records_impersonation() {
    let emu = start_with(EmulatorConfig {
        simulate: false,
        ..EmulatorConfig::default()
    })
    .await;
    let kc = kube::config::Kubeconfig::read_from(emu.kubeconfig_path()).unwrap();
    let mut cfg =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    cfg.auth_info.impersonate = Some("alice".into());
    cfg.auth_info.impersonate_groups = Some(strings(&["dev", "ops"]));
    cfg.auth_info.impersonate_uid = Some("uid-1".into());
    let as_alice: Api<ConfigMap> = Api::namespaced(kube::Client::try_from(cfg).unwrap(), "default");
    let plain: Api<ConfigMap> = Api::namespaced(client(&emu).await, "kube-system");
    emu.clear_requests();
    as_alice.list(&ListParams::default()).await.unwrap();
    plain.list(&ListParams::default()).await.unwrap();
    let log = emu.requests();
    let find = |ns: &str| -> RequestRecord {
        log.iter()
            .find(|r| r.resource == "configmaps" && r.namespace == ns)
            .cloned()
            .unwrap_or_else(|| panic!("no list in {ns}: {log:?}"))
    };
    let r = find("default");
    assert_eq!(r.impersonate_user, "alice");
    assert_eq!(r.impersonate_groups, strings(&["dev", "ops"]));
    assert_eq!(r.impersonate_uid, "uid-1");
    let r = find("kube-system");
    assert_eq!(
        (
            r.impersonate_user.as_str(),
            r.impersonate_groups.len(),
            r.impersonate_uid.as_str()
        ),
        ("", 0, "")
    );

    let admin = http(&emu, "GET", "/emulator/v1/requests", &[], None)
        .await
        .json();
    let rec = admin
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["namespace"] == "default")
        .unwrap();
    assert_eq!(rec["impersonateUser"], "alice");
    assert_eq!(rec["impersonateGroups"], json!(["dev", "ops"]));
    assert_eq!(rec["impersonateUid"], "uid-1");
    let old: RequestRecord = serde_json::from_value(json!({
        "verb": "get", "apiGroup": "", "apiVersion": "v1", "resource": "pods",
        "subresource": "", "namespace": "a", "name": "p", "path": "/api/v1/namespaces/a/pods/p",
        "userAgent": "x", "code": 200
    }))
    .unwrap();
    assert_eq!(old.impersonate_user, "");
    assert!(old.impersonate_groups.is_empty());
    emu.shutdown().await;
}

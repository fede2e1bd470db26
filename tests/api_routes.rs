//! The HTTP API, every route through HTTP: against the emulator by default, against a real cluster when
//! `TYCHO_TEST_KUBECONFIG` names one (users are then ServiceAccounts with Roles and real tokens).

mod common;

use std::time::Duration;

use common::api::{ApiUnderTest, editor_rules, user};
use common::{TestCluster, until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use tycho_api::Limits;
use tycho_model::System;

async fn setup() -> (TestCluster, common::RunningController, ApiUnderTest) {
    let cluster = TestCluster::start().await;
    let controller = cluster.run_controller(|_| {}).await;
    let api = ApiUnderTest::start(
        cluster.config.clone(),
        Limits {
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(30),
        },
    )
    .await;
    (cluster, controller, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_through_http() {
    let (cluster, controller, api) = setup().await;
    let ns = cluster.namespace.clone();
    let (alice, token) = user(&cluster, &ns, "alice", editor_rules()).await;
    let t = Some(token.as_str());

    // whoami
    let me = api.call("GET", "/v1/whoami", t, None).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["identity"]["username"], alice);

    // create (short form) with a new session held by the caller
    let created = api
        .call(
            "POST",
            &format!("/v1/namespaces/{ns}/systems"),
            t,
            Some(json!({
                "name": "web",
                "image": "nginx:1.27",
                "ports": [80],
                "env": {"GREETING": "hello"},
                "files": {"/usr/share/nginx/html/index.html": "hi"},
                "limits": {"cpus": "500m", "memory": "128Mi"},
                "newSession": {"durationSeconds": 60, "hold": "caller"}
            })),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["system"]["owner"], alice);
    let session = created.body["session"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(created.body["system"]["spec"]["session"], session);
    assert_eq!(created.body["session"]["holder"], alice);

    // create (full form) in no session
    let full = api
        .call(
            "POST",
            &format!("/v1/namespaces/{ns}/systems"),
            t,
            Some(json!({
                "name": "db",
                "labels": {"tier": "db"},
                "spec": {"containers": [{"name": "redis", "image": "redis:7", "ports": [{"port": 6379}]}]}
            })),
        )
        .await;
    assert_eq!(full.status, 201, "{full:?}");

    // list with filters
    let list = |q: &'static str| {
        let api = &api;
        let ns = ns.clone();
        async move {
            api.call("GET", &format!("/v1/namespaces/{ns}/systems{q}"), t, None)
                .await
        }
    };
    let names = |a: &common::api::Answer| -> Vec<String> {
        a.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&list("").await), ["db", "web"]);
    assert_eq!(names(&list("?label=tier%3Ddb").await), ["db"]);
    assert_eq!(names(&list("?owner=me").await), ["db", "web"]);
    assert_eq!(
        names(&list("?owner=somebody-else").await),
        Vec::<String>::new()
    );
    let by_session = api
        .call(
            "GET",
            &format!("/v1/namespaces/{ns}/systems?session={session}"),
            t,
            None,
        )
        .await;
    assert_eq!(names(&by_session), ["web"]);

    // get with wait=ready
    let ready = api
        .call(
            "GET",
            &format!("/v1/namespaces/{ns}/systems/web?wait=ready&timeout=120"),
            t,
            None,
        )
        .await;
    assert_eq!(ready.status, 200, "{ready:?}");
    assert_eq!(ready.body["ready"], true, "{ready:?}");
    assert_eq!(ready.body["status"]["phase"], "Ready");

    // the event stream: the current state first
    let seen = api
        .events_until(
            &format!("/v1/namespaces/{ns}/watch/systems?name=web"),
            &token,
            Duration::from_secs(20),
            |e, _| e == "synced",
        )
        .await;
    assert!(
        seen.iter()
            .any(|(e, v)| e == "system" && v["name"] == "web"),
        "{seen:?}"
    );

    // logs (the emulator's kubelet logs what it starts; a real cluster's kwok pods have no log)
    if cluster.is_emulator() {
        let logs = api
            .call(
                "GET",
                &format!("/v1/namespaces/{ns}/systems/web/logs?tailLines=10"),
                t,
                None,
            )
            .await;
        assert_eq!(logs.status, 200, "{logs:?}");
        assert!(logs.content_type.starts_with("text/plain"));
        assert!(logs.body.as_str().unwrap().contains("nginx"), "{logs:?}");
    }

    // change: only the given fields, by server-side apply
    let changed = api
        .call(
            "PATCH",
            &format!("/v1/namespaces/{ns}/systems/web"),
            t,
            Some(json!({"image": "nginx:1.28", "env": {"EXTRA": "1"}, "replicas": 2})),
        )
        .await;
    assert_eq!(changed.status, 200, "{changed:?}");
    let spec = &changed.body["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["containers"][0]["image"], "nginx:1.28");
    let env: Vec<&str> = spec["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"GREETING") && env.contains(&"EXTRA"),
        "{env:?}"
    );
    assert_eq!(
        spec["containers"][0]["limits"]["cpus"], "500m",
        "untouched fields stay"
    );

    // restart: the pod template gets kubectl's restartedAt
    let restarted = api
        .call(
            "POST",
            &format!("/v1/namespaces/{ns}/systems/web/restart"),
            t,
            None,
        )
        .await;
    assert_eq!(restarted.status, 202, "{restarted:?}");
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    until(
        Duration::from_secs(30),
        "the Deployment's pod template carries restartedAt",
        || async {
            deployments
                .get("web")
                .await
                .ok()
                .and_then(|d| {
                    d.spec?
                        .template
                        .metadata?
                        .annotations?
                        .get("kubectl.kubernetes.io/restartedAt")
                        .cloned()
                })
                .is_some()
        },
    )
    .await;

    // sessions: list, get, renew
    let sessions = api
        .call("GET", &format!("/v1/namespaces/{ns}/sessions"), t, None)
        .await;
    assert_eq!(sessions.status, 200);
    assert!(
        sessions.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == session)
    );
    let got = api
        .call(
            "GET",
            &format!("/v1/namespaces/{ns}/sessions/{session}"),
            t,
            None,
        )
        .await;
    assert_eq!(got.status, 200);
    let renewed = api
        .call(
            "POST",
            &format!("/v1/namespaces/{ns}/sessions/{session}/renew"),
            t,
            None,
        )
        .await;
    assert_eq!(renewed.status, 200, "{renewed:?}");
    assert!(renewed.body["renewed"].as_str() >= got.body["renewed"].as_str());

    // a session held by the API
    let held = api
        .call(
            "POST",
            &format!("/v1/namespaces/{ns}/sessions"),
            t,
            Some(json!({"durationSeconds": 10, "hold": "api"})),
        )
        .await;
    assert_eq!(held.status, 201, "{held:?}");
    assert_eq!(held.body["heldByApi"], true);
    let held_name = held.body["name"].as_str().unwrap().to_string();
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), &ns);
    let first = leases
        .get(&held_name)
        .await
        .unwrap()
        .spec
        .unwrap()
        .renew_time
        .unwrap();
    until(
        Duration::from_secs(20),
        "the API renews the session it holds",
        || async {
            leases
                .get(&held_name)
                .await
                .ok()
                .and_then(|l| l.spec?.renew_time)
                .is_some_and(|t| t.0 > first.0)
        },
    )
    .await;

    // close: the session's System goes; delete: the other one goes
    let streamed_delete = {
        let api = &api;
        let token = token.clone();
        let ns = ns.clone();
        async move {
            api.events_until(
                &format!("/v1/namespaces/{ns}/watch/systems?name=web"),
                &token,
                Duration::from_secs(60),
                |e, _| e == "deleted",
            )
            .await
        }
    };
    let close = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        api.call(
            "DELETE",
            &format!("/v1/namespaces/{ns}/sessions/{session}"),
            t,
            None,
        )
        .await
    };
    let (events, closed) = tokio::join!(streamed_delete, close);
    assert_eq!(closed.status, 202, "{closed:?}");
    assert!(
        events
            .iter()
            .any(|(e, v)| e == "deleted" && v["name"] == "web"),
        "the stream tells the deletion: {events:?}"
    );
    let deleted = api
        .call(
            "DELETE",
            &format!("/v1/namespaces/{ns}/systems/db"),
            t,
            None,
        )
        .await;
    assert_eq!(deleted.status, 202, "{deleted:?}");
    let systems: Api<System> = Api::namespaced(cluster.client.clone(), &ns);
    until(Duration::from_secs(30), "both Systems are gone", || async {
        systems
            .list(&ListParams::default())
            .await
            .map(|l| l.items.is_empty())
            .unwrap_or(false)
    })
    .await;
    let gone = api
        .call("GET", &format!("/v1/namespaces/{ns}/systems/db"), t, None)
        .await;
    assert!(gone.is_problem(404), "{gone:?}");
    let _ = api
        .call(
            "DELETE",
            &format!("/v1/namespaces/{ns}/sessions/{held_name}"),
            t,
            None,
        )
        .await;

    api.stop().await;
    controller.stop().await;
    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_problem_documents_naming_the_field() {
    let (cluster, controller, api) = setup().await;
    let ns = cluster.namespace.clone();
    let (_, token) = user(&cluster, &ns, "alice", editor_rules()).await;
    let t = Some(token.as_str());
    let systems = format!("/v1/namespaces/{ns}/systems");

    let anonymous = api.call("GET", &systems, None, None).await;
    assert!(anonymous.is_problem(401), "{anonymous:?}");
    assert!(
        anonymous
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer"))
    );
    let forged = api.call("GET", &systems, Some("not-a-token"), None).await;
    assert!(forged.is_problem(401), "{forged:?}");

    let not_json = api
        .raw("POST", &systems, t, Some("application/json"), b"{".to_vec())
        .await;
    assert!(not_json.is_problem(400), "{not_json:?}");
    let wrong_type = api
        .call(
            "POST",
            &systems,
            t,
            Some(json!({"image": "x", "replicas": "two"})),
        )
        .await;
    assert!(wrong_type.is_problem(422), "{wrong_type:?}");
    assert_eq!(wrong_type.body["field"], "replicas", "{wrong_type:?}");
    let no_image = api
        .call("POST", &systems, t, Some(json!({"name": "x"})))
        .await;
    assert!(no_image.is_problem(422));
    assert_eq!(no_image.body["field"], "image");
    let not_a_name = api
        .call("GET", "/v1/namespaces/Not_A_Namespace/systems", t, None)
        .await;
    assert!(not_a_name.is_problem(400));
    assert_eq!(not_a_name.body["field"], "namespace");
    let too_big = api
        .call(
            "POST",
            &systems,
            t,
            Some(json!({"image": "x", "files": {"/big": "x".repeat(100_000)}})),
        )
        .await;
    assert!(too_big.is_problem(413), "{too_big:?}");
    let wrong_media = api
        .raw("POST", &systems, t, Some("text/plain"), b"{}".to_vec())
        .await;
    assert!(wrong_media.is_problem(415), "{wrong_media:?}");
    let unknown_query = api
        .call("GET", &format!("{systems}?colour=red"), t, None)
        .await;
    assert!(unknown_query.is_problem(400), "{unknown_query:?}");
    assert_eq!(unknown_query.body["field"], "colour");
    let no_route = api.call("GET", "/v2/nothing", t, None).await;
    assert!(no_route.is_problem(404));
    let wrong_method = api.call("PUT", &systems, t, None).await;
    assert!(wrong_method.is_problem(405), "{wrong_method:?}");
    assert!(wrong_method.header("allow").is_some());

    // The API server's validation (CEL) comes through with its field paths, and the session opened
    // for the failed create is closed again: nothing is left behind.
    let invalid = api
        .call(
            "POST",
            &systems,
            t,
            Some(json!({
                "name": "dup",
                "spec": {"containers": [
                    {"name": "a", "image": "nginx", "ports": [{"port": 80}]},
                    {"name": "b", "image": "nginx", "ports": [{"port": 80}]}
                ]},
                "newSession": {"durationSeconds": 60}
            })),
        )
        .await;
    assert!(invalid.is_problem(422), "{invalid:?}");
    assert_eq!(invalid.body["reason"], "Invalid");
    let causes = invalid.body["causes"].as_array().unwrap();
    assert!(
        causes
            .iter()
            .any(|c| c["field"] == "spec" && c["message"].as_str().unwrap().contains("only once")),
        "{causes:?}"
    );
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), &ns);
    let left: Vec<String> = leases
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=tycho"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|l| l.metadata.name)
        .collect();
    assert!(
        left.is_empty(),
        "a failed create left sessions behind: {left:?}"
    );

    let missing = api
        .call(
            "PATCH",
            &format!("{systems}/nothing"),
            t,
            Some(json!({"replicas": 1})),
        )
        .await;
    assert!(missing.is_problem(404), "{missing:?}");
    let conflict = api
        .call(
            "POST",
            &systems,
            t,
            Some(json!({"name": "twice", "image": "nginx"})),
        )
        .await;
    assert_eq!(conflict.status, 201);
    let again = api
        .call(
            "POST",
            &systems,
            t,
            Some(json!({"name": "twice", "image": "nginx"})),
        )
        .await;
    assert!(again.is_problem(409), "{again:?}");
    assert_eq!(again.body["reason"], "AlreadyExists");

    api.stop().await;
    controller.stop().await;
    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_made_as_the_caller() {
    let cluster = TestCluster::start().await;
    if cluster.skip_unless_emulator(
        "every_call_is_made_as_the_caller",
        "the request log is the emulator's (the real cluster's side is api_authz)",
    ) {
        cluster.cleanup().await;
        return;
    }
    let api = ApiUnderTest::start(cluster.config.clone(), Limits::default()).await;
    let ns = cluster.namespace.clone();
    let (_, token) = user(&cluster, &ns, "alice", editor_rules()).await;
    let t = Some(token.as_str());
    let emu = cluster.emulator.as_ref().unwrap();
    emu.clear_requests();
    let created = api
        .call(
            "POST",
            &format!("/v1/namespaces/{ns}/systems"),
            t,
            Some(json!({"image": "nginx", "newSession": {"durationSeconds": 30}})),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let name = created.body["system"]["name"].as_str().unwrap().to_string();
    for (m, p, b) in [
        ("GET", format!("/v1/namespaces/{ns}/systems"), None),
        ("GET", format!("/v1/namespaces/{ns}/systems/{name}"), None),
        (
            "PATCH",
            format!("/v1/namespaces/{ns}/systems/{name}"),
            Some(json!({"paused": true})),
        ),
        (
            "POST",
            format!("/v1/namespaces/{ns}/systems/{name}/restart"),
            None,
        ),
        ("GET", format!("/v1/namespaces/{ns}/sessions"), None),
        (
            "DELETE",
            format!("/v1/namespaces/{ns}/systems/{name}"),
            None,
        ),
    ] {
        let a = api.call(m, &p, t, b).await;
        assert!(a.status < 300, "{m} {p}: {a:?}");
    }
    let log: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.user_agent != tycho_emulator::SIM_USER_AGENT)
        .collect();
    let (reviews, calls): (Vec<_>, Vec<_>) = log.iter().partition(|r| r.resource == "tokenreviews");
    assert!(
        !reviews.is_empty() && reviews.len() <= 2,
        "tokens are reviewed and the answer cached: {reviews:?}"
    );
    assert!(
        reviews.iter().all(|r| r.impersonate_user.is_empty()),
        "token reviews are the API's own"
    );
    assert!(calls.len() >= 8, "{calls:?}");
    for r in &calls {
        assert_eq!(
            r.impersonate_user, "alice",
            "every call for the request impersonates the caller: {r:?}"
        );
        assert_eq!(r.impersonate_groups, ["tycho:users"], "{r:?}");
        assert_eq!(r.impersonate_uid, "uid-alice", "{r:?}");
    }
    api.stop().await;
    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_openapi_document_is_the_committed_one_and_the_docs_work_offline() {
    let cluster = TestCluster::start_emulator(common::emulator_config()).await;
    let api = ApiUnderTest::start(cluster.config.clone(), Limits::default()).await;
    let served = api.call("GET", "/openapi.json", None, None).await;
    assert_eq!(served.status, 200);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let pretty = serde_json::to_string_pretty(&served.body).unwrap() + "\n";
    if std::env::var("UPDATE_OPENAPI").is_ok() {
        std::fs::write(&path, &pretty).unwrap();
    }
    let committed =
        std::fs::read_to_string(&path).expect("docs/openapi.json (UPDATE_OPENAPI=1 writes it)");
    let committed: Value = serde_json::from_str(&committed).unwrap();
    assert!(
        committed == served.body,
        "docs/openapi.json differs from what the server serves; run UPDATE_OPENAPI=1 cargo test --test api_routes"
    );
    // The docs page and every asset it loads come from the binary; none from elsewhere.
    let page = api.call("GET", "/docs/", None, None).await;
    assert_eq!(page.status, 200);
    let html = page.body.as_str().unwrap().to_string();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        let a = api.call("GET", &format!("/docs/{asset}"), None, None).await;
        assert_eq!(a.status, 200, "{asset}");
    }
    let init = api
        .call("GET", "/docs/swagger-initializer.js", None, None)
        .await;
    assert!(
        init.body.as_str().unwrap().contains("/openapi.json"),
        "{:?}",
        init.body
    );
    let launcher = api.call("GET", "/", None, None).await;
    assert_eq!(launcher.status, 200);
    assert!(launcher.content_type.starts_with("text/html"));
    api.stop().await;
    cluster.cleanup().await;
}

//! Watch semantics (API concepts: efficient detection of changes, watch bookmarks, streaming
//! lists, 410 Gone) through kube and raw HTTP. Each test names the behaviour it checks.

mod api_common;

use std::time::Duration;

use api_common::{client, http, next, start, start_with, watch_lines};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use serde_json::json;
use tycho_emulator::EmulatorConfig;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": {}}))
        .unwrap()
}

/// Watch from a resourceVersion delivers exactly the changes after it, in order, as
/// newline-terminated JSON events with Content-Type application/json.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_resource_version() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    let a = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let rv = a.metadata.resource_version.clone().unwrap();
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    let mut s = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    let mut got = Vec::new();
    while got.len() < 2 {
        match s.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(o) => got.push(format!("ADDED {}", o.metadata.name.unwrap())),
            WatchEvent::Modified(o) => got.push(format!("MODIFIED {}", o.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, vec!["ADDED b", "MODIFIED a"]);
    let r = http(
        &emu,
        "GET",
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1"
        ),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type")[0].starts_with("application/json"));
    assert!(
        r.body.ends_with('\n') && r.body.lines().count() == 2,
        "{:?}",
        r.body
    );
    emu.shutdown().await;
}

/// Watch with resourceVersion "0" (or unset) starts with synthetic ADDED events for the current
/// state, then streams live changes; timeoutSeconds ends the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_zero_sends_current_state_then_live_and_times_out() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let mut rx = watch_lines(
        &emu,
        "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=0&timeoutSeconds=2",
        "application/json",
    )
    .await;
    let e = next(&mut rx, 5).await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("a"))
    );
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    let e = next(&mut rx, 5).await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("b"))
    );
    let start = std::time::Instant::now();
    assert!(
        next(&mut rx, 5).await.is_none(),
        "stream ends at timeoutSeconds"
    );
    assert!(start.elapsed() < Duration::from_secs(4));
    emu.shutdown().await;
}

/// Watch bookmarks: with allowWatchBookmarks=true the server sends periodic BOOKMARK events
/// carrying only the kind, apiVersion and the current resourceVersion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_bookmarks() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    let a = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let rv = a.metadata.resource_version.unwrap();
    let mut rx = watch_lines(&emu, &format!("/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion={rv}"), "application/json").await;
    let e = next(&mut rx, 6).await.expect("a bookmark");
    assert_eq!(e["type"], "BOOKMARK");
    assert_eq!(e["object"]["kind"], "ConfigMap");
    assert_eq!(e["object"]["metadata"]["resourceVersion"], rv.as_str());
    emu.shutdown().await;
}

/// Streaming lists (sendInitialEvents=true, resourceVersionMatch=NotOlderThan): initial ADDED
/// events, then a BOOKMARK annotated `k8s.io/initial-events-end: "true"` — kube-runtime's
/// watcher with `streaming_lists()` reports InitDone and then live events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_initial_events_end_bookmark() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    for n in ["a", "b", "c"] {
        api.create(&PostParams::default(), &cm(n, json!({})))
            .await
            .unwrap();
    }
    let mut rx = watch_lines(&emu, "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=", "application/json").await;
    for _ in 0..3 {
        assert_eq!(next(&mut rx, 5).await.unwrap()["type"], "ADDED");
    }
    let b = next(&mut rx, 5).await.unwrap();
    assert_eq!(b["type"], "BOOKMARK");
    assert_eq!(
        b["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );

    let mut w = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut init = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), w.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::Init => {}
            watcher::Event::InitApply(_) => init += 1,
            watcher::Event::InitDone => break,
            other => panic!("unexpected before InitDone: {other:?}"),
        }
    }
    assert_eq!(init, 3);
    api.create(&PostParams::default(), &cm("d", json!({})))
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(10), w.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        watcher::Event::Apply(o) => assert_eq!(o.metadata.name.as_deref(), Some("d")),
        other => panic!("unexpected {other:?}"),
    }
    emu.shutdown().await;
}

/// API concepts (410 Gone): resuming a watch from a resourceVersion older than the retained
/// history yields an ERROR event whose Status has code 410 and reason Expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_past_history_window() {
    let emu = start_with(EmulatorConfig {
        simulate: false,
        watch_history: 5,
        ..EmulatorConfig::default()
    })
    .await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    let first = api
        .create(&PostParams::default(), &cm("x0", json!({})))
        .await
        .unwrap();
    for i in 1..12 {
        api.create(&PostParams::default(), &cm(&format!("x{i}"), json!({})))
            .await
            .unwrap();
    }
    let rv = first.metadata.resource_version.unwrap();
    let mut s = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    match s.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => panic!("expected 410, got {other:?}"),
    }
    emu.shutdown().await;
}

/// Watch with a label selector: an object that stops matching is sent as DELETED, one that
/// starts matching as ADDED (as the watch cache does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_transitions_are_added_and_deleted() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    let a = api
        .create(&PostParams::default(), &cm("a", json!({"app": "x"})))
        .await
        .unwrap();
    let rv = a.metadata.resource_version.unwrap();
    let mut s = api
        .watch(&WatchParams::default().labels("app=x").timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &cm("b", json!({"app": "y"})))
        .await
        .unwrap();
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "x"}}})),
    )
    .await
    .unwrap();
    match s.try_next().await.unwrap().unwrap() {
        WatchEvent::Deleted(o) => assert_eq!(o.metadata.name.as_deref(), Some("a")),
        other => panic!("expected DELETED a, got {other:?}"),
    }
    match s.try_next().await.unwrap().unwrap() {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("b")),
        other => panic!("expected ADDED b, got {other:?}"),
    }
    emu.shutdown().await;
}

/// Table watch (kubectl get -w): with the Table Accept header every event's object is a
/// one-row meta.k8s.io/v1 Table whose row carries a PartialObjectMetadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_watch_events() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let mut rx = watch_lines(
        &emu,
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )
    .await;
    let e = next(&mut rx, 5).await.unwrap();
    assert_eq!(e["object"]["kind"], "Table");
    assert_eq!(e["object"]["rows"].as_array().unwrap().len(), 1);
    assert_eq!(
        e["object"]["rows"][0]["object"]["kind"],
        "PartialObjectMetadata"
    );
    assert_eq!(e["object"]["rows"][0]["cells"][0], "a");
    emu.shutdown().await;
}

/// kube-runtime's watcher recovers from dropped watch streams and from a forced 410 Gone
/// (fault injection): it re-watches/relists and keeps delivering changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_recovers_from_dropped_streams_and_forced_gone() {
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    let mut w = watcher(api.clone(), watcher::Config::default()).boxed();
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    wait_for("a", &mut w).await;
    let lists = |log: &[tycho_emulator::RequestRecord]| {
        log.iter()
            .filter(|r| r.verb == "list" && r.resource == "configmaps")
            .count()
    };
    let watches = |log: &[tycho_emulator::RequestRecord]| {
        log.iter()
            .filter(|r| r.verb == "watch" && r.resource == "configmaps")
            .count()
    };
    // A dropped stream: the watcher watches again from where it was (a new watch, no relist).
    emu.clear_requests();
    emu.faults().drop_watches();
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    wait_for("b", &mut w).await;
    let log = emu.requests();
    assert!(watches(&log) >= 1, "no new watch after the drop: {log:?}");
    assert_eq!(lists(&log), 0, "a dropped stream needs no relist: {log:?}");
    // A forced 410 Gone on the resumed watch: the fault is taken (the 410 was served, as an ERROR event
    // of the watch as a real API server sends it) and the watcher relists.
    emu.clear_requests();
    emu.faults().force_gone_next_watch();
    emu.faults().drop_watches();
    api.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    wait_for("c", &mut w).await;
    assert!(
        !emu.faults().spec().force_gone,
        "the forced 410 was never served"
    );
    let log = emu.requests();
    assert!(lists(&log) >= 1, "no relist after the 410: {log:?}");
    emu.shutdown().await;
}

type Events =
    futures::stream::BoxStream<'static, Result<watcher::Event<ConfigMap>, watcher::Error>>;

async fn wait_for(name: &str, w: &mut Events) {
    let fut = async {
        loop {
            match w.next().await {
                Some(Ok(watcher::Event::Apply(o))) | Some(Ok(watcher::Event::InitApply(o)))
                    if o.metadata.name.as_deref() == Some(name) =>
                {
                    return;
                }
                Some(_) => {}
                None => panic!("stream ended"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("event in time");
}

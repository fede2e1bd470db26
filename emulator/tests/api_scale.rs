//! Scale: the store's hot paths with 10,000 objects (create throughput, paged and full lists,
//! label-selected lists, watch fan-out to several watchers). Prints the figures measured.

mod api_common;

use std::time::{Duration, Instant};

use api_common::{client, start};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

/// 10,000 ConfigMaps: concurrent creates, a full list, a paged list (limit=500 + continue) and
/// a label-selected list all return consistent results, and four concurrent
/// watches each see every creation. The timings are printed (`MEASURE`), not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_objects() {
    const N: usize = 10_000;
    let emu = start().await;
    let c = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    let rv0 = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut watchers = Vec::new();
    for _ in 0..4 {
        let s = api
            .watch(&WatchParams::default().timeout(120), &rv0)
            .await
            .unwrap();
        watchers.push(tokio::spawn(async move {
            let mut s = s.boxed();
            let mut n = 0;
            while n < N {
                match s.try_next().await {
                    Ok(Some(WatchEvent::Added(_))) => n += 1,
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            n
        }));
    }
    let t = Instant::now();
    futures::stream::iter(0..N)
        .map(|i| {
            let api = api.clone();
            async move {
                let o: ConfigMap =
                    serde_json::from_value(json!({"metadata": {"name": format!("cm-{i:05}"),
                    "labels": {"shard": (i % 10).to_string()}}, "data": {"k": "v"}}))
                    .unwrap();
                api.create(&PostParams::default(), &o).await.unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let create = t.elapsed();
    let t = Instant::now();
    let all = api.list(&ListParams::default()).await.unwrap();
    let full = t.elapsed();
    assert_eq!(all.items.len(), N);
    let t = Instant::now();
    let mut lp = ListParams::default().limit(500);
    let mut paged = 0;
    loop {
        let p = api.list(&lp).await.unwrap();
        paged += p.items.len();
        match p.metadata.continue_ {
            Some(tok) if !tok.is_empty() => lp = lp.continue_token(&tok),
            _ => break,
        }
    }
    let paged_t = t.elapsed();
    assert_eq!(paged, N);
    let t = Instant::now();
    let shard = api
        .list(&ListParams::default().labels("shard=3"))
        .await
        .unwrap();
    let sel = t.elapsed();
    assert_eq!(shard.items.len(), N / 10);
    for w in watchers {
        let n = tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, N);
    }
    eprintln!(
        "MEASURE {N} creates: {:.1}s ({:.0}/s); full list {:?}; paged list {:?}; selector list {:?}",
        create.as_secs_f64(),
        N as f64 / create.as_secs_f64(),
        full,
        paged_t,
        sel
    );
    emu.shutdown().await;
}

//! The seed SDK's examples (../shared/seeds/20ft-sdk-docs.rst), translated to the Tycho SDK and run
//! against the emulator with the controller in-process (or a real cluster with TYCHO_TEST_KUBECONFIG).

mod common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestCluster, eventually};
use kube::api::ListParams;
use tycho_model::System;
use tycho_sdk::ContainerSpec;

const BOOT: Duration = Duration::from_secs(60);

fn nginx_with_index(text: &str) -> ContainerSpec {
    ContainerSpec::new("nginx")
        .port(80)
        .file("/usr/share/nginx/html/index.html", text)
}

/// "My first container" with the browser flow: spawn nginx with a pre-boot index.html, wait for
/// HTTP 200, open a browser (a script recording the URL), and check the URL serves the file.
#[tokio::test]
async fn first_container_browser_flow() {
    let cluster = TestCluster::start().await;
    if cluster
        .skip_without_containers(
            "tunnels, exec, files and logs",
            "first_container_browser_flow",
        )
        .await
    {
        cluster.cleanup().await;
        return;
    }
    let _controller = cluster.run_controller(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (script, record) = common::browser_recorder(dir.path());
    // SAFETY: no other test in this binary reads or writes BROWSER.
    unsafe { std::env::set_var("BROWSER", &script) };

    let location = cluster.sdk_location(Duration::from_secs(10)).await;
    let node = location.best_node().await.unwrap();
    let container = node.spawn(nginx_with_index("Hello World!")).await.unwrap();
    let tunnel = container
        .attach_browser(None, None, "/", BOOT)
        .await
        .unwrap();
    let url = eventually(Duration::from_secs(10), || async {
        std::fs::read_to_string(&record)
            .ok()
            .map(|s| s.trim().to_string())
    })
    .await
    .expect("the browser was opened");
    assert_eq!(url, format!("http://127.0.0.1:{}/", tunnel.local_port()));
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let (code, body) = common::http_get(addr, "/").await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(body, "Hello World!");
    // The pod runs on the node we chose.
    let pods = container.list_pods().await.unwrap();
    assert_eq!(
        pods[0].spec.as_ref().unwrap().node_name.as_deref(),
        Some(node.name.as_str())
    );
    location.close().await.unwrap();
    cluster.cleanup().await;
}

/// Pre-boot files, then "put and fetch": a new path is created; image files can be fetched;
/// missing paths and size limits give clear errors.
#[tokio::test]
async fn preboot_files_put_and_fetch() {
    let cluster = TestCluster::start().await;
    if cluster
        .skip_without_containers(
            "tunnels, exec, files and logs",
            "preboot_files_put_and_fetch",
        )
        .await
    {
        cluster.cleanup().await;
        return;
    }
    let _controller = cluster.run_controller(|_| {}).await;
    let location = cluster.sdk_location(Duration::from_secs(10)).await;
    let container = location
        .spawn(nginx_with_index("Hello World!").file("/etc/app/config.toml", "a = 1\n"))
        .await
        .unwrap();
    container.wait_ready(BOOT).await.unwrap();
    assert_eq!(
        container
            .fetch("/usr/share/nginx/html/index.html")
            .await
            .unwrap(),
        b"Hello World!"
    );
    assert_eq!(
        container.fetch("/etc/app/config.toml").await.unwrap(),
        b"a = 1\n"
    );
    container.put("/usr/new/path", b"Some data").await.unwrap();
    assert_eq!(
        container.fetch("/usr/new/path").await.unwrap(),
        b"Some data"
    );
    let binary: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    container.put("/tmp/blob.bin", &binary).await.unwrap();
    assert_eq!(container.fetch("/tmp/blob.bin").await.unwrap(), binary);
    if cluster.is_emulator() {
        let conf = container.fetch("/etc/nginx/nginx.conf").await.unwrap();
        assert!(String::from_utf8_lossy(&conf).contains("worker_processes"));
    } else {
        common::skip(
            "preboot_files_put_and_fetch",
            "the image's own /etc/nginx/nginx.conf (the simulated image has a known one) needs the API emulator",
        );
    }
    let err = container.fetch("/no/such/file").await.unwrap_err();
    assert!(matches!(err, tycho_sdk::SdkError::NotFound { .. }), "{err}");
    let err = container
        .fetch_limited("/tmp/blob.bin", 1000)
        .await
        .unwrap_err();
    assert!(
        matches!(err, tycho_sdk::SdkError::TooLarge { limit: 1000, .. }),
        "{err}"
    );
    location.close().await.unwrap();
    cluster.cleanup().await;
}

/// Processes: synchronously to completion, and asynchronously with streaming callbacks.
#[tokio::test]
async fn synchronous_and_asynchronous_processes() {
    let cluster = TestCluster::start().await;
    if cluster
        .skip_without_containers(
            "tunnels, exec, files and logs",
            "synchronous_and_asynchronous_processes",
        )
        .await
    {
        cluster.cleanup().await;
        return;
    }
    let _controller = cluster.run_controller(|_| {}).await;
    let location = cluster.sdk_location(Duration::from_secs(10)).await;
    let container = location
        .spawn(ContainerSpec::new("nginx").port(80))
        .await
        .unwrap();
    container
        .wait_http_200(None, None, "/", BOOT)
        .await
        .unwrap();
    // Synchronously.
    let out = container
        .spawn_process("ps faxu")
        .await
        .unwrap()
        .wait_until_complete()
        .await
        .unwrap();
    assert_eq!(out.code, 0);
    assert!(out.stdout_str().contains("PID"), "{}", out.stdout_str());
    let out = container
        .spawn_process("exit 7")
        .await
        .unwrap()
        .wait_until_complete()
        .await
        .unwrap();
    assert_eq!(out.code, 7);
    // Asynchronously, with callbacks: the first chunk arrives before the process ends.
    let data = Arc::new(Mutex::new(Vec::<(Instant, Vec<u8>)>::new()));
    let ended = Arc::new(Mutex::new(None::<(Instant, i32)>));
    let (d, e) = (Arc::clone(&data), Arc::clone(&ended));
    let process = container
        .spawn_process_with_callbacks(
            "echo tick; sleep 1; echo tock",
            move |b| d.lock().unwrap().push((Instant::now(), b.to_vec())),
            move |code| *e.lock().unwrap() = Some((Instant::now(), code.unwrap())),
        )
        .await
        .unwrap();
    let sleeper = container.spawn_process("sleep 3").await.unwrap();
    // With callbacks, wait() waits for them and leaves the exit code to the termination callback.
    let waited = process.wait().await;
    assert!(
        matches!(&waited, Err(tycho_sdk::SdkError::Stream { message, .. }) if message.contains("termination callback")),
        "{waited:?}"
    );
    let (end_time, end_code) = ended
        .lock()
        .unwrap()
        .expect("termination callback ran before wait() returned");
    assert_eq!(end_code, 0, "exit code given to the termination callback");
    let chunks = data.lock().unwrap().clone();
    let all: Vec<u8> = chunks.iter().flat_map(|(_, b)| b.clone()).collect();
    assert_eq!(all, b"tick\ntock\n");
    // Streamed, not buffered until the end: the first chunk holds only what was written before the
    // `sleep 1`, and it was handed over before the termination callback ran.
    assert_eq!(
        chunks[0].1,
        b"tick\n",
        "first chunk {:?}",
        String::from_utf8_lossy(&chunks[0].1)
    );
    assert!(chunks[0].0 <= end_time, "output streamed before the end");
    // The sleep is still running (visible in ps), until destroyed.
    let ps = container
        .spawn_process("ps")
        .await
        .unwrap()
        .wait_until_complete()
        .await
        .unwrap();
    if cluster.is_emulator() {
        assert!(ps.stdout_str().contains("sleep 3"), "{}", ps.stdout_str());
    } else {
        common::skip(
            "synchronous_and_asynchronous_processes",
            "the `ps` listing (images differ in their ps) needs the API emulator",
        );
    }
    sleeper.destroy();
    location.close().await.unwrap();
    cluster.cleanup().await;
}

/// A container started asleep serves nothing; its server is started later as a process.
#[tokio::test]
async fn sleeping_container_server_started_later() {
    let cluster = TestCluster::start().await;
    if cluster
        .skip_without_containers(
            "tunnels, exec, files and logs",
            "sleeping_container_server_started_later",
        )
        .await
    {
        cluster.cleanup().await;
        return;
    }
    let _controller = cluster.run_controller(|_| {}).await;
    let location = cluster.sdk_location(Duration::from_secs(10)).await;
    let container = location
        .spawn(nginx_with_index("late hello").sleep(true))
        .await
        .unwrap();
    container.wait_ready(BOOT).await.unwrap();
    let before = container
        .spawn_process("ps")
        .await
        .unwrap()
        .wait_until_complete()
        .await
        .unwrap();
    let tunnel = container
        .attach_tunnel(80, None, IpAddr::from([127, 0, 0, 1]))
        .await
        .unwrap();
    assert!(
        tunnel.http_get(None, "/").await.is_err(),
        "nothing listens while asleep"
    );
    let server = container.spawn_process("nginx").await.unwrap();
    tunnel
        .wait_http_200(None, "/", Duration::from_secs(20))
        .await
        .unwrap();
    let (code, body) = tunnel.http_get(None, "/").await.unwrap();
    assert_eq!((code, body.as_slice()), (200, &b"late hello"[..]));
    let after = container
        .spawn_process("ps")
        .await
        .unwrap()
        .wait_until_complete()
        .await
        .unwrap();
    assert!(
        !before.stdout_str().lines().any(|l| l.ends_with(" nginx")),
        "{}",
        before.stdout_str()
    );
    assert!(
        after.stdout_str().lines().any(|l| l.ends_with(" nginx")),
        "{}",
        after.stdout_str()
    );
    drop(server);
    location.close().await.unwrap();
    cluster.cleanup().await;
}

/// Logs: timestamped lines, including an access-log line per request served.
#[tokio::test]
async fn logs_are_timestamped_and_follow() {
    let cluster = TestCluster::start().await;
    if cluster
        .skip_without_containers(
            "tunnels, exec, files and logs",
            "logs_are_timestamped_and_follow",
        )
        .await
    {
        cluster.cleanup().await;
        return;
    }
    let _controller = cluster.run_controller(|_| {}).await;
    let location = cluster.sdk_location(Duration::from_secs(10)).await;
    let container = location.spawn(nginx_with_index("logged")).await.unwrap();
    let tunnel = container
        .wait_http_200(None, None, "/", BOOT)
        .await
        .unwrap();
    let logs = container.logs().await.unwrap();
    assert!(!logs.is_empty());
    let now = chrono::Utc::now();
    assert!(
        logs.iter()
            .all(|l| l.time <= now && now - l.time < chrono::Duration::minutes(5))
    );
    if cluster.is_emulator() {
        assert!(
            logs.iter()
                .any(|l| l.text.contains("\"GET / HTTP/1.1\" 200")),
            "{logs:?}"
        );
    } else {
        common::skip(
            "logs_are_timestamped_and_follow",
            "the access-log line (a real nginx logs its own format) needs the API emulator",
        );
    }
    let t = tokio::spawn({
        let c = container.clone();
        async move {
            c.logs_until(Duration::from_secs(10), |l| l.text.contains("/followed"))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = tunnel.http_get(None, "/followed").await.unwrap();
    let followed = t.await.unwrap().unwrap();
    assert!(
        followed
            .last()
            .unwrap()
            .text
            .contains("\"GET /followed HTTP/1.1\" 404")
    );
    location.close().await.unwrap();
    cluster.cleanup().await;
}

/// Ten containers booted one after another, then ten spawned at once and awaited together: each serves its
/// own page. How long either takes is printed (`MEASURE`), not asserted: a latency figure, not a promise.
#[tokio::test]
async fn ten_containers_sequentially_and_concurrently_each_serve_their_own_page() {
    let cluster = TestCluster::start().await;
    if cluster
        .skip_without_containers(
            "tunnels, exec, files and logs",
            "ten_containers_sequentially_and_concurrently_each_serve_their_own_page",
        )
        .await
    {
        cluster.cleanup().await;
        return;
    }
    let _controller = cluster.run_controller(|_| {}).await;
    let location = cluster.sdk_location(Duration::from_secs(10)).await;
    let t0 = Instant::now();
    for i in 0..10 {
        let c = location
            .best_node()
            .await
            .unwrap()
            .spawn(nginx_with_index(&format!("seq {i}")))
            .await
            .unwrap();
        let tunnel = c
            .wait_http_200(None, Some("www.atomicdroplet.com"), "/", BOOT)
            .await
            .unwrap();
        let (code, body) = tunnel.http_get(None, "/").await.unwrap();
        assert_eq!(
            (code, String::from_utf8_lossy(&body).to_string()),
            (200, format!("seq {i}"))
        );
    }
    let sequential = t0.elapsed();
    let t1 = Instant::now();
    let mut containers = Vec::new();
    for i in 0..10 {
        containers.push(
            location
                .best_node()
                .await
                .unwrap()
                .spawn(nginx_with_index(&format!("par {i}")))
                .await
                .unwrap(),
        );
    }
    let mut tunnels = Vec::new();
    for c in &containers {
        tunnels.push(
            c.wait_http_200(None, Some("www.atomicdroplet.com"), "/", BOOT)
                .await
                .unwrap(),
        );
    }
    let concurrent = t1.elapsed();
    eprintln!("MEASURE 10 containers: sequential {sequential:?}, concurrent {concurrent:?}");
    for (i, t) in tunnels.iter().enumerate() {
        let (code, body) = t.http_get(None, "/").await.unwrap();
        assert_eq!(
            (code, String::from_utf8_lossy(&body).to_string()),
            (200, format!("par {i}"))
        );
    }
    location.close().await.unwrap();
    cluster.cleanup().await;
}

/// Closing the session deletes everything it created; a lost session is reported.
#[tokio::test]
async fn closing_the_session_collects_everything() {
    let cluster = TestCluster::start().await;
    let _controller = cluster.run_controller(|_| {}).await;
    let location = cluster.sdk_location(Duration::from_secs(10)).await;
    let a = location.spawn(nginx_with_index("a")).await.unwrap();
    let b = location
        .spawn(ContainerSpec::new("busybox").sleep(true))
        .await
        .unwrap();
    a.wait_ready(BOOT).await.unwrap();
    b.wait_ready(BOOT).await.unwrap();
    b.destroy().await.unwrap();
    let systems: kube::Api<System> = cluster.api();
    location.close().await.unwrap();
    let gone = eventually(Duration::from_secs(15), || async {
        let left = systems.list(&ListParams::default()).await.ok()?;
        left.items.is_empty().then_some(())
    })
    .await;
    assert!(gone.is_some(), "the session's Systems were collected");
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = cluster.api();
    // The pods go through the garbage collector (System → Deployment → ReplicaSet → Pod); a real
    // kube-controller-manager that started moments ago takes longer than 15 s the first time.
    let no_pods = eventually(Duration::from_secs(60), || async {
        pods.list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(no_pods.is_some(), "their pods went with them");

    // Deleting the Lease behind the SDK's back: the session reports itself lost.
    let other = cluster.sdk_location(Duration::from_secs(3)).await;
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> = cluster.api();
    leases
        .delete(other.session_name(), &Default::default())
        .await
        .unwrap();
    let mut w = other.session_watch();
    tokio::time::timeout(
        Duration::from_secs(5),
        w.wait_for(|s| matches!(s, tycho_sdk::SessionState::Lost(_))),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(other.session_lost());
    assert!(other.spawn(ContainerSpec::new("nginx")).await.is_err());
    cluster.cleanup().await;
}

/// `nodes()` ranks Ready nodes by free allocatable memory, then CPU: requests of running pods count.
#[tokio::test]
async fn best_node_ranks_by_free_memory_and_cpu() {
    let cluster = TestCluster::start().await;
    let _controller = cluster.run_controller(|_| {}).await;
    let location = cluster.sdk_location(Duration::from_secs(10)).await;
    let before = location.nodes().await.unwrap();
    assert!(!before.is_empty());
    let best = before[0].clone();
    let c = best
        .spawn(
            ContainerSpec::new("busybox")
                .sleep(true)
                .memory("4Gi")
                .cpus("1"),
        )
        .await
        .unwrap();
    c.wait_ready(BOOT).await.unwrap();
    let after = location.nodes().await.unwrap();
    let same = after.iter().find(|n| n.name == best.name).unwrap();
    assert_eq!(
        same.free_memory_bytes,
        best.free_memory_bytes - 4 * 1024 * 1024 * 1024
    );
    assert_eq!(same.free_cpu_millis, best.free_cpu_millis - 1000);
    if cluster.is_emulator() && before.len() > 1 {
        // Equal simulated nodes: the loaded one is no longer the best.
        assert_ne!(after[0].name, best.name);
        assert_eq!(location.best_node().await.unwrap().name, after[0].name);
    } else {
        common::skip(
            "best_node_ranks_by_free_memory_and_cpu",
            "the re-ranking after loading the best node needs several equal (simulated) nodes",
        );
    }
    location.close().await.unwrap();
    cluster.cleanup().await;
}

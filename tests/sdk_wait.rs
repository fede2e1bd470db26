//! Wait strategies of the SDK (`tycho_sdk::wait`), as Testcontainers users know them: a log line, a TCP
//! port, an HTTP status other than 200 and a command's exit code, each awaited on a container of the
//! emulator's kubelet (or a real cluster's, with TYCHO_TEST_KUBECONFIG) and each shown to wait for what
//! happens later, and to time out naming what it saw last.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::TestCluster;
use tycho_sdk::wait::WaitFor;
use tycho_sdk::{ContainerSpec, SdkError};

const BOOT: Duration = Duration::from_secs(60);
const LOOPBACK: [u8; 4] = [127, 0, 0, 1];

fn nginx() -> ContainerSpec {
    ContainerSpec::new("nginx").port(80)
}

/// The timeout error's text, failing when it is another error.
fn timed_out(r: Result<(), SdkError>) -> String {
    match r {
        Err(e @ SdkError::Timeout { .. }) => e.to_string(),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

/// A log line matcher: lines logged before the wait count, and `times` waits for later ones.
#[tokio::test]
async fn log_lines_are_awaited_and_counted() {
    let cluster = TestCluster::start().await;
    if cluster
        .skip_without_containers(
            "logs, port-forwards and exec",
            "log_lines_are_awaited_and_counted",
        )
        .await
    {
        cluster.cleanup().await;
        return;
    }
    let _controller = cluster.run_controller(|_| {}).await;
    let location = cluster.sdk_location(Duration::from_secs(10)).await;
    let c = location.spawn(nginx()).await.unwrap();
    c.wait_for(
        &WaitFor::log_contains("\"GET / HTTP/1.1\" 200"),
        Duration::from_secs(2),
    )
    .await
    .expect_err("no request was served yet");
    let tunnel = c
        .attach_tunnel(80, None, IpAddr::from(LOOPBACK))
        .await
        .unwrap();
    let addr = tunnel.local_addr();
    let requests = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        for _ in 0..2 {
            assert_eq!(common::http_get(addr, "/").await.map(|r| r.0), Some(200));
        }
    });
    let start = Instant::now();
    // common::http_get speaks HTTP/1.0.
    let served = WaitFor::log_line("GET / answered 200", |l| {
        l.contains("\"GET / HTTP/1.0\" 200")
    });
    c.wait_for(&served.clone().times(2), BOOT).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(700),
        "it waited for the requests ({:?})",
        start.elapsed()
    );
    requests.await.unwrap();
    let err = timed_out(c.wait_for(&served.times(3), Duration::from_secs(2)).await);
    assert!(
        err.contains("3 log lines matching GET / answered 200"),
        "{err}"
    );
    location.close().await.unwrap();
    cluster.cleanup().await;
}

/// A TCP port counts as open only once a server listens on it.
#[tokio::test]
async fn tcp_port_opens_when_a_server_listens() {
    let cluster = TestCluster::start().await;
    if cluster
        .skip_without_containers(
            "logs, port-forwards and exec",
            "tcp_port_opens_when_a_server_listens",
        )
        .await
    {
        cluster.cleanup().await;
        return;
    }
    let _controller = cluster.run_controller(|_| {}).await;
    let location = cluster.sdk_location(Duration::from_secs(10)).await;
    let c = location.spawn(nginx().sleep(true)).await.unwrap();
    let err = timed_out(
        c.wait_for(&WaitFor::tcp_port(80), Duration::from_secs(4))
            .await,
    );
    assert!(
        err.contains("TCP port 80") && err.contains("refused"),
        "{err}"
    );
    let _server = c.spawn_process("nginx").await.unwrap();
    c.wait_for(&WaitFor::tcp_port(80), BOOT).await.unwrap();
    location.close().await.unwrap();
    cluster.cleanup().await;
}

/// An HTTP status other than 200, on a path of our choosing.
#[tokio::test]
async fn http_status_other_than_200() {
    let cluster = TestCluster::start().await;
    if cluster
        .skip_without_containers("logs, port-forwards and exec", "http_status_other_than_200")
        .await
    {
        cluster.cleanup().await;
        return;
    }
    let _controller = cluster.run_controller(|_| {}).await;
    let location = cluster.sdk_location(Duration::from_secs(10)).await;
    let c = location.spawn(nginx()).await.unwrap();
    c.wait_for(&WaitFor::http("/missing").status(404).into(), BOOT)
        .await
        .unwrap();
    let err = timed_out(
        c.wait_for(
            &WaitFor::http("/").port(80).status(404).into(),
            Duration::from_secs(2),
        )
        .await,
    );
    assert!(err.contains("last: HTTP 200"), "{err}");
    location.close().await.unwrap();
    cluster.cleanup().await;
}

/// A command's exit code, polled until the container's state makes it so.
#[tokio::test]
async fn command_exit_code_is_polled() {
    let cluster = TestCluster::start().await;
    if cluster
        .skip_without_containers(
            "logs, port-forwards and exec",
            "command_exit_code_is_polled",
        )
        .await
    {
        cluster.cleanup().await;
        return;
    }
    let _controller = cluster.run_controller(|_| {}).await;
    let location = cluster.sdk_location(Duration::from_secs(10)).await;
    let c = location.spawn(nginx()).await.unwrap();
    c.wait_ready(BOOT).await.unwrap();
    let writer = tokio::spawn({
        let c = c.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            c.put("/tmp/ready", b"1").await.unwrap();
        }
    });
    let start = Instant::now();
    c.wait_for(&WaitFor::command("test -f /tmp/ready"), BOOT)
        .await
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "it waited for the file"
    );
    writer.await.unwrap();
    c.wait_for(&WaitFor::command_exit("exit 3", 3), BOOT)
        .await
        .unwrap();
    let all = WaitFor::all([
        WaitFor::ready(),
        WaitFor::tcp_port(80),
        WaitFor::http("/").into(),
        WaitFor::command("test -f /tmp/ready"),
    ]);
    c.wait_for(&all, BOOT).await.unwrap();
    let err = timed_out(
        c.wait_for(&WaitFor::command("false"), Duration::from_secs(2))
            .await,
    );
    assert!(err.contains("last: exit code 1"), "{err}");
    location.close().await.unwrap();
    cluster.cleanup().await;
}

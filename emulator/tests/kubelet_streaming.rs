//! The kubelet's streaming endpoints through the `kube` client's own exec / logs / portforward,
//! behind a minimal API stub that serves one pod and its ConfigMap (so these tests do not depend
//! on the full API emulator).

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures::{AsyncBufReadExt, FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, LogParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tycho_emulator::kubelet::Kubelet;

fn pod_json(name: &str, phase: &str, command: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
        "spec": {
            "containers": [{
                "name": "main", "image": "nginx:1.27", "command": command,
                "ports": [{"containerPort": 80}],
                "volumeMounts": [{"name": "files", "mountPath": "/usr/share/nginx/html/index.html", "subPath": "f0"}]
            }],
            "volumes": [{"name": "files", "configMap": {"name": "web-files"}}]
        },
        "status": {
            "phase": phase,
            "containerStatuses": [{
                "name": "main", "image": "nginx:1.27", "imageID": "", "ready": phase == "Running", "restartCount": 0,
                "state": if phase == "Running" {
                    serde_json::json!({"running": {"startedAt": "2024-05-01T10:00:00Z"}})
                } else {
                    serde_json::json!({"waiting": {"reason": "ContainerCreating"}})
                }
            }]
        }
    })
}

async fn get_pod(Path((_ns, name)): Path<(String, String)>) -> Response {
    let body = match name.as_str() {
        "web" => pod_json("web", "Running", serde_json::json!([])),
        "sleepy" => pod_json(
            "sleepy",
            "Running",
            serde_json::json!([
                "/bin/sh",
                "-c",
                "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"
            ]),
        ),
        "pending" => pod_json("pending", "Pending", serde_json::json!([])),
        _ => {
            return (
                axum::http::StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":format!("pods \"{name}\" not found")})),
            )
                .into_response();
        }
    };
    axum::Json(body).into_response()
}

async fn get_cm() -> Response {
    axum::Json(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "web-files", "namespace": "ns"},
        "data": {"f0": "<h1>Hello World!</h1>\n"}
    }))
    .into_response()
}

async fn start() -> kube::Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = kube::Config::new(url.parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let kubelet = Kubelet::new(client.clone());
    let app = Router::new()
        .route("/api/v1/namespaces/{ns}/pods/{name}", get(get_pod))
        .route("/api/v1/namespaces/{ns}/configmaps/{name}", get(get_cm))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/{sub}",
            any(
                move |Path((ns, name, sub)): Path<(String, String, String)>, req: Request| {
                    let k = kubelet.clone();
                    async move { k.handle(&ns, &name, &sub, req).await }
                },
            ),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    client
}

async fn exec(
    pods: &Api<Pod>,
    pod: &str,
    cmd: &[&str],
    stdin: Option<&[u8]>,
) -> (String, String, Option<String>) {
    let ap = AttachParams::default()
        .container("main")
        .stdin(stdin.is_some())
        .stdout(true)
        .stderr(true);
    let mut p = pods.exec(pod, cmd.iter().copied(), &ap).await.unwrap();
    if let Some(data) = stdin {
        let mut w = p.stdin().unwrap();
        w.write_all(data).await.unwrap();
        w.shutdown().await.unwrap();
        drop(w);
    }
    let mut out = p.stdout().unwrap();
    let mut err = p.stderr().unwrap();
    let status = p.take_status().unwrap();
    let (mut o, mut e) = (String::new(), String::new());
    let (r1, r2) = tokio::join!(out.read_to_string(&mut o), err.read_to_string(&mut e));
    r1.unwrap();
    r2.unwrap();
    let st = status.await;
    let code = st.and_then(|s| {
        if s.status.as_deref() == Some("Success") {
            None
        } else {
            s.details?.causes?.first()?.message.clone()
        }
    });
    (o, e, code)
}

#[tokio::test]
async fn exec_with_kube_client_stdout_stderr_exit_code_and_stdin() {
    let client = start().await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    let (o, _, code) = exec(
        &pods,
        "web",
        &["cat", "/usr/share/nginx/html/index.html"],
        None,
    )
    .await;
    assert_eq!(o, "<h1>Hello World!</h1>\n");
    assert_eq!(code, None);
    let (o, e, code) = exec(
        &pods,
        "web",
        &["sh", "-c", "echo out; cat /missing; exit 3"],
        None,
    )
    .await;
    assert_eq!(o, "out\n");
    assert_eq!(e, "cat: /missing: No such file or directory\n");
    assert_eq!(code.as_deref(), Some("3"));
    let (_, e, code) = exec(&pods, "web", &["nosuchcmd"], None).await;
    assert_eq!(code.as_deref(), Some("127"));
    assert!(e.contains("command not found"));
    // stdin (v5 close signal ends it).
    let (_, _, code) = exec(
        &pods,
        "web",
        &["sh", "-c", "mkdir -p /usr/new && cat > /usr/new/path"],
        Some(b"Some data"),
    )
    .await;
    assert_eq!(code, None);
    let (o, _, _) = exec(&pods, "web", &["cat", "/usr/new/path"], None).await;
    assert_eq!(o, "Some data");
}

#[tokio::test]
async fn exec_streams_a_long_running_process() {
    let client = start().await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    let ap = AttachParams::default()
        .container("main")
        .stdout(true)
        .stderr(false);
    let t0 = std::time::Instant::now();
    let mut p = pods
        .exec("web", ["sh", "-c", "echo first; sleep 3; echo second"], &ap)
        .await
        .unwrap();
    let mut status = Box::pin(p.take_status().expect("the exec's status channel"));
    let mut out = p.stdout().unwrap();
    let mut buf = [0u8; 64];
    let n = out.read(&mut buf).await.unwrap();
    // Streamed: the first line arrives on its own, while the process still runs (its exit status has not
    // come yet). Only a stall of the whole 3 s sleep could break this.
    assert_eq!(&buf[..n], b"first\n");
    assert!(
        (&mut status).now_or_never().is_none(),
        "the process had ended before its first line was read"
    );
    let mut rest = String::new();
    out.read_to_string(&mut rest).await.unwrap();
    assert_eq!(rest, "second\n");
    let st = tokio::time::timeout(Duration::from_secs(60), status)
        .await
        .expect("the exec's status arrives");
    assert_eq!(
        st.and_then(|s| s.status).as_deref(),
        Some("Success"),
        "exit status"
    );
    // The sleep is real: the process cannot have ended sooner.
    assert!(t0.elapsed() >= Duration::from_secs(3));
}

#[tokio::test]
async fn logs_follow_tail_and_timestamps() {
    let client = start().await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    let all = pods
        .logs(
            "web",
            &LogParams {
                container: Some("main".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        all.starts_with("[tycho-sim] starting container main (image nginx:1.27)"),
        "{all}"
    );
    assert!(all.contains("listening on port 80/TCP"), "{all}");
    let stamped = pods
        .logs(
            "web",
            &LogParams {
                timestamps: true,
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(stamped.lines().count(), 1);
    assert!(
        stamped.starts_with("2024-05-01T10:00:00.000000000Z [tycho-sim]"),
        "{stamped}"
    );
    // Follow, then make an HTTP request through a port-forward: its access line arrives.
    let mut lines = pods
        .log_stream(
            "web",
            &LogParams {
                follow: true,
                tail_lines: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .lines();
    let mut pf = pods.portforward("web", &[80]).await.unwrap();
    let mut s = pf.take_stream(80).unwrap();
    s.write_all(
        b"GET /index.html HTTP/1.1\r\nHost: example\r\nUser-Agent: t\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let line = tokio::time::timeout(Duration::from_secs(5), lines.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        line.contains("\"GET /index.html HTTP/1.1\" 200 22"),
        "{line}"
    );
    let err = pods
        .logs("pending", &LogParams::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("is waiting to start: ContainerCreating"),
        "{err}"
    );
}

#[tokio::test]
async fn portforward_serves_preboot_index_and_refuses_idle_ports() {
    let client = start().await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    let mut pf = pods.portforward("web", &[80]).await.unwrap();
    let mut s = pf.take_stream(80).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("Hello World!") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "connection closed early: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    // Keep-alive: a second request on the same connection.
    s.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    assert!(String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 404"));
    drop(s);
    // The kubelet closes the WebSocket once the container closed the connection (as the real
    // one does), so kube's forwarder may report a send-after-close when the local side ends.
    let _ = pf.join().await;

    // An idle (sleeping) container refuses until a server is started in it.
    let mut pf = pods.portforward("sleepy", &[80]).await.unwrap();
    let err = pf.take_error(80).unwrap().await;
    assert!(err.unwrap_or_default().contains("connection refused"));
    drop(pf);
    let ap = AttachParams::default()
        .container("main")
        .stdout(true)
        .stderr(true);
    let mut server = pods.exec("sleepy", ["nginx"], &ap).await.unwrap();
    let mut server_out = server.stdout().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut pf = pods.portforward("sleepy", &[80]).await.unwrap();
    let mut s = pf.take_stream(80).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    assert!(String::from_utf8_lossy(&resp).contains("Hello World!"));
    // The exec'd server's access log is its stdout.
    let mut line = vec![0u8; 256];
    let n = server_out.read(&mut line).await.unwrap();
    assert!(String::from_utf8_lossy(&line[..n]).contains("\"GET / HTTP/1.1\" 200"));
    let (o, _, _) = exec(&pods, "sleepy", &["ps"], None).await;
    assert!(o.contains(" nginx\n"), "{o}");

    // Errors before the upgrade are Kubernetes Status objects.
    let err = pods.portforward("pending", &[80]).await.err().unwrap();
    assert!(err.to_string().contains("not running"), "{err}");
    let err = pods.portforward("ghost", &[80]).await.err().unwrap();
    assert!(err.to_string().contains("not found"), "{err}");
}

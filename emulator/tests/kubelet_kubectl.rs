//! The real `kubectl` (1.32) against the emulator's simulated kubelet: `exec` (WebSockets,
//! v5.channel.k8s.io), `logs`, `cp` both ways (exec + tar) and `port-forward`.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, PostParams};
use tokio::process::Command;
use tycho_emulator::{Emulator, EmulatorConfig};

async fn kubectl(kubeconfig: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .expect("run kubectl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn start_with_pod() -> (Emulator, kube::Client) {
    let emu = Emulator::start(EmulatorConfig {
        pod_ready_delay: Duration::from_millis(100),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let client = kube::Client::try_from(kube::Config::new(emu.url().parse().unwrap())).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-files"},
            "data": {"f0": "Hello from kubectl\n"}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {
                "containers": [{
                    "name": "nginx", "image": "nginx:1.27",
                    "ports": [{"containerPort": 80}],
                    "volumeMounts": [{"name": "files", "mountPath": "/usr/share/nginx/html/index.html", "subPath": "f0"}]
                }],
                "volumes": [{"name": "files", "configMap": {"name": "web-files"}}]
            }
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    for _ in 0..100 {
        let p = pods.get("web").await.unwrap();
        if p.status.and_then(|s| s.phase).as_deref() == Some("Running") {
            return (emu, client);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("pod never ran");
}

#[tokio::test]
async fn kubectl_exec_logs_and_cp() {
    let (emu, _client) = start_with_pod().await;
    let kc = emu.kubeconfig_path().to_path_buf();

    let (code, out, err) = kubectl(
        &kc,
        &[
            "exec",
            "web",
            "--",
            "cat",
            "/usr/share/nginx/html/index.html",
        ],
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "Hello from kubectl\n"), "{err}");
    let (code, _, err) = kubectl(
        &kc,
        &["exec", "web", "--", "sh", "-c", "echo oops >&2; exit 4"],
    )
    .await;
    assert_eq!(code, 4, "{err}");
    let (code, out, _) = kubectl(&kc, &["exec", "web", "-c", "nginx", "--", "ps"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("nginx -g 'daemon off;'"), "{out}");

    // kubectl exec -i with stdin.
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["exec", "-i", "web", "--", "sh", "-c", "cat > /tmp/in.txt"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"piped data\n").await.unwrap();
    }
    assert!(child.wait().await.unwrap().success());
    let (_, out, _) = kubectl(&kc, &["exec", "web", "--", "cat", "/tmp/in.txt"]).await;
    assert_eq!(out, "piped data\n");

    // logs
    let (code, out, err) = kubectl(&kc, &["logs", "web", "--timestamps", "--tail", "2"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.contains("[tycho-sim] listening on port 80/TCP"),
        "{out}"
    );

    // cp out of and into the pod (exec + tar over WebSockets).
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("index.html");
    let (code, _, err) = kubectl(
        &kc,
        &[
            "cp",
            "web:/usr/share/nginx/html/index.html",
            local.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(&local).unwrap(),
        "Hello from kubectl\n"
    );
    let upload = dir.path().join("up.txt");
    std::fs::write(&upload, "uploaded by kubectl cp\n").unwrap();
    let (code, _, err) = kubectl(&kc, &["cp", upload.to_str().unwrap(), "web:/tmp/up.txt"]).await;
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = kubectl(&kc, &["exec", "web", "--", "cat", "/tmp/up.txt"]).await;
    assert_eq!(out, "uploaded by kubectl cp\n");
    emu.shutdown().await;
}

/// kubectl 1.32 port-forward tunnels SPDY inside a WebSocket (`SPDY/3.1+portforward.k8s.io`) and
/// falls back to plain SPDY; the emulator serves only the WebSocket channel protocol that kube
/// speaks, so kubectl's port-forward is refused with a clear message (documented limitation).
#[tokio::test]
async fn kubectl_port_forward_is_refused_clearly() {
    let (emu, _client) = start_with_pod().await;
    let kc = emu.kubeconfig_path().to_path_buf();
    let child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["port-forward", "pod/web", ":80"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // kubectl upgrades the connection when it starts, before printing "Forwarding from": refused, it
    // prints nothing on stdout and exits with an error naming the limitation.
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("kubectl port-forward exits after the refusal")
        .expect("kubectl's output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "kubectl port-forward succeeded: {stdout}{err}"
    );
    assert!(
        !stdout.contains("Forwarding from"),
        "kubectl forwards (the documented limitation is gone: update README.md and this test): {stdout}"
    );
    assert!(
        err.contains("only over WebSocket"),
        "refused without the documented message: {err}"
    );
    // The emulator refused it: the request log has the portforward request with an error status.
    let refused: Vec<String> = emu
        .requests()
        .into_iter()
        .filter(|r| r.subresource == "portforward")
        .map(|r| format!("{} {} -> {}", r.verb, r.path, r.code))
        .collect();
    assert!(
        !refused.is_empty()
            && emu
                .requests()
                .iter()
                .filter(|r| r.subresource == "portforward")
                .all(|r| r.code >= 400),
        "portforward requests in the log: {refused:?}"
    );
    emu.shutdown().await;
}

/// A long-running exec ends (SIGTERM, exit 143) when its pod is deleted, as the runtime stops it.
#[tokio::test]
async fn exec_ends_when_the_pod_is_deleted() {
    let (emu, client) = start_with_pod().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let ap = kube::api::AttachParams::default()
        .container("nginx")
        .stdout(true)
        .stderr(true);
    let mut p = pods.exec("web", ["sleep", "300"], &ap).await.unwrap();
    let status = p.take_status().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    pods.delete("web", &Default::default()).await.unwrap();
    let st = tokio::time::timeout(Duration::from_secs(8), status)
        .await
        .expect("exec ended after the pod was deleted")
        .expect("a status");
    let code = st
        .details
        .and_then(|d| d.causes)
        .and_then(|c| c[0].message.clone());
    assert_eq!(code.as_deref(), Some("143"));
    emu.shutdown().await;
}

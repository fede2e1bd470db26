//! The everyday commands as a user runs them: `tycho apply`, `get`, `status --wait ready`, `exec`,
//! `cp` both ways, `logs`, `tunnel`, `delete`, plus `completions` and `man` (no cluster needed).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::TestCluster;
use tokio::process::Command;

async fn tycho(cluster: &TestCluster, args: &[&str]) -> (i32, String, String) {
    // Cluster flags right after the subcommand (anything after `--` belongs to the command).
    let out = Command::new(env!("CARGO_BIN_EXE_tycho"))
        .arg(args[0])
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["-n", &cluster.namespace])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SYSTEM: &str = "apiVersion: tycho.dev/v1alpha1
kind: System
metadata:
  name: web
spec:
  workload: Pod
  containers:
    - name: nginx
      image: nginx:1.27
      ports:
        - port: 80
      files:
        - path: /usr/share/nginx/html/index.html
          content: |
            Hello from apply
";

#[tokio::test]
async fn apply_get_status_exec_cp_logs_tunnel_delete() {
    let cluster = TestCluster::start().await;
    let _controller = cluster.run_controller(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, SYSTEM).unwrap();

    let (code, out, err) = tycho(&cluster, &["apply", "-f", file.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "system.tycho.dev/web serverside-applied\n");

    let (code, out, err) = tycho(
        &cluster,
        &["status", "web", "--wait", "ready", "--timeout", "60s"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Phase:     Ready"), "{out}");

    let (code, out, _) = tycho(&cluster, &["get"]).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.lines().nth(1).unwrap().starts_with("web "), "{out}");
    let (code, out, _) = tycho(&cluster, &["get", "web", "-o", "json"]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kind"], "System");
    assert_eq!(v["status"]["phase"], "Ready");
    let (code, out, _) = tycho(&cluster, &["get", "-o", "yaml"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("kind: List"), "{out}");

    if common::runs_containers(&cluster.client).await {
        container_ops(&cluster, dir.path()).await;
    } else {
        common::skip(
            "apply_get_status_exec_cp_logs_tunnel_delete",
            "exec, cp, tunnel and logs need a kubelet that runs containers (this cluster's nodes are kwok fakes)",
        );
    }

    let (code, out, _) = tycho(&cluster, &["delete", "web"]).await;
    assert_eq!((code, out.as_str()), (0, "system.tycho.dev/web deleted\n"));
    let (code, _, err) = tycho(&cluster, &["status", "web"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("not found"), "{err}");
    cluster.cleanup().await;
}

#[tokio::test]
async fn usage_errors_completions_and_man() {
    let bin = env!("CARGO_BIN_EXE_tycho");
    let out = std::process::Command::new(bin)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("tycho"));
    let out = std::process::Command::new(bin)
        .args(["man"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH tycho 1"));
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin)
        .args(["man", "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(dir.path().join("tycho-run.1").exists());
    // Usage errors exit 2 before any cluster is contacted.
    let out = std::process::Command::new(bin)
        .args([
            "run",
            "nginx",
            "NOT_AN_ASSIGNMENT",
            "--kubeconfig",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(bin)
        .args(["run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // `tycho run .` without docker says why.
    let out = std::process::Command::new(bin)
        .args(["run", ".", "--kubeconfig", "/nonexistent"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs the docker CLI"));
}

/// `exec`, `cp` both ways, `tunnel` and `logs` on System `web` (they need a kubelet that runs containers).
async fn container_ops(cluster: &TestCluster, dir: &std::path::Path) {
    let (code, out, err) = tycho(
        cluster,
        &[
            "exec",
            "web",
            "--",
            "cat",
            "/usr/share/nginx/html/index.html",
        ],
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "Hello from apply\n"), "{err}");
    let (code, _, _) = tycho(cluster, &["exec", "web", "--", "sh", "-c", "exit 5"]).await;
    assert_eq!(code, 5, "exec exits with the remote exit code");

    let up = dir.join("up.txt");
    std::fs::write(&up, "uploaded\n").unwrap();
    let (code, _, err) = tycho(
        cluster,
        &["cp", up.to_str().unwrap(), "web:/srv/new/up.txt"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let down = dir.join("down.txt");
    let (code, _, err) = tycho(
        cluster,
        &["cp", "web:/srv/new/up.txt", down.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&down).unwrap(), "uploaded\n");
    let (code, _, err) = tycho(cluster, &["cp", "web:/nope", down.to_str().unwrap()]).await;
    assert_eq!(code, 1);
    assert!(err.contains("no such file"), "{err}");

    // tunnel: forwards until interrupted.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tycho"))
        .args(["tunnel", "web", "80", "--kubeconfig"])
        .arg(cluster.kubeconfig_path())
        .args(["-n", &cluster.namespace])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr: std::net::SocketAddr = line
        .trim_start_matches("Forwarding from ")
        .split(" -> ")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (code, body) = common::http_get(addr, "/").await.unwrap();
    assert_eq!((code, body.as_str()), (200, "Hello from apply\n"));
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert_eq!(child.wait().await.unwrap().code(), Some(130));

    let (code, out, err) = tycho(cluster, &["logs", "web", "--timestamps"]).await;
    assert_eq!(code, 0, "{err}");
    if cluster.is_emulator() {
        assert!(out.contains("\"GET / HTTP/1.0\" 200"), "{out}");
    } else {
        common::skip(
            "apply_get_status_exec_cp_logs_tunnel_delete",
            "the access-log line of the tunnelled request (a real nginx logs its own format) needs the API emulator",
        );
    }
}

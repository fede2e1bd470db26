//! The simulated container runtime without any server: filesystem seeding from a pod spec and
//! ConfigMaps, built-in commands, the shell, tar, and the HTTP file server's path rules.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use tycho_emulator::kubelet::container::{PodObjects, SimContainer};
use tycho_emulator::kubelet::http::resolve;
use tycho_emulator::kubelet::shell::{self, Ctx, Io, Sink, Stdin};

fn pod(command: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-abc", "namespace": "ns", "uid": "u-1"},
        "spec": {
            "containers": [{
                "name": "main", "image": "docker.io/library/nginx:1.27",
                "command": command,
                "env": [{"name": "GREETING", "value": "hi there"},
                        {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "web-files", "key": "f0"}}}],
                "ports": [{"containerPort": 80}],
                "volumeMounts": [
                    {"name": "files", "mountPath": "/usr/share/nginx/html/index.html", "subPath": "f0"},
                    {"name": "files", "mountPath": "/opt/app/run.sh", "subPath": "f1"}
                ]
            }],
            "volumes": [{"name": "files", "configMap": {"name": "web-files",
                "items": [{"key": "f0", "path": "f0"}, {"key": "f1", "path": "f1", "mode": 493}]}}]
        },
        "status": {"phase": "Running"}
    }))
    .unwrap()
}

fn objs() -> PodObjects {
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-files"},
        "data": {"f0": "Hello World!", "f1": "echo run"}
    }))
    .unwrap();
    let mut o = PodObjects::default();
    o.config_maps.insert("web-files".into(), cm);
    o
}

fn container(command: serde_json::Value) -> Arc<SimContainer> {
    let p = pod(command);
    let c = p.spec.as_ref().unwrap().containers[0].clone();
    Arc::new(SimContainer::new(&p, &c, &objs(), Utc::now()))
}

async fn sh_with_stdin(
    c: &Arc<SimContainer>,
    argv: &[&str],
    stdin: Vec<u8>,
) -> (i32, Vec<u8>, String) {
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let (pid, kill) = c.start_process(argv.join(" "));
    let mut ctx = Ctx::new(Arc::clone(c), pid, kill);
    let code = shell::run(
        &mut ctx,
        argv.iter().map(|s| s.to_string()).collect(),
        Io {
            stdin: Stdin::bytes(stdin),
            stdout: Sink::Buf(Arc::clone(&out)),
            stderr: Sink::Buf(Arc::clone(&err)),
        },
    )
    .await;
    c.end_process(pid);
    let o = out.lock().unwrap().clone();
    let e = String::from_utf8(err.lock().unwrap().clone()).unwrap();
    (code, o, e)
}

async fn sh(c: &Arc<SimContainer>, script: &str) -> (i32, String, String) {
    let (code, out, err) = sh_with_stdin(c, &["sh", "-c", script], vec![]).await;
    (code, String::from_utf8(out).unwrap(), err)
}

#[tokio::test]
async fn preboot_files_env_and_image_files_are_seeded() {
    let c = container(serde_json::json!([]));
    assert!(!c.idle);
    assert_eq!(c.main_cmdline, "nginx -g 'daemon off;'");
    let (code, out, _) = sh(&c, "cat /usr/share/nginx/html/index.html").await;
    assert_eq!((code, out.as_str()), (0, "Hello World!"));
    let (_, out, _) = sh(&c, "ls -l /opt/app").await;
    assert!(out.starts_with("-rwxr-xr-x"), "{out}");
    let (_, out, _) = sh(&c, "echo \"$GREETING\" $FROM_CM").await;
    assert_eq!(out, "hi there Hello World!\n");
    let (code, out, _) = sh(&c, "cat /etc/nginx/nginx.conf").await;
    assert_eq!(code, 0);
    assert!(out.contains("worker_processes"));
    assert_eq!(sh(&c, "cat /etc/hostname").await.1, "web-abc\n");
}

#[tokio::test]
async fn shell_chaining_redirection_and_errors() {
    let c = container(serde_json::json!([]));
    let (code, out, _) = sh(
        &c,
        "mkdir -p /usr/new && echo 'Some data' > /usr/new/path; cat /usr/new/path",
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "Some data\n"));
    let (code, _, err) = sh(&c, "cat /nope").await;
    assert_eq!(code, 1);
    assert_eq!(err, "cat: /nope: No such file or directory\n");
    let (code, out, err) = sh(&c, "vmstat 1 || echo fallback").await;
    assert_eq!(code, 0);
    assert_eq!(out, "fallback\n");
    assert_eq!(err, "vmstat: command not found\n");
    let (code, _, _) = sh(&c, "false && echo no").await;
    assert_eq!(code, 1);
    let (code, _, _) = sh(&c, "exit 3; echo unreachable").await;
    assert_eq!(code, 3);
    let (code, out, _) = sh(&c, "test -d /tmp && echo dir; [ -f /tmp ] || echo notfile").await;
    assert_eq!((code, out.as_str()), (0, "dir\nnotfile\n"));
    let (_, out, _) = sh(&c, "echo a | cat").await;
    assert_eq!(out, "a\n");
    let (code, _, _) = sh_with_stdin(&c, &["definitely-missing"], vec![]).await;
    assert_eq!(code, 127);
}

#[tokio::test]
async fn ps_shows_exec_processes_and_sleep_is_killable() {
    let c = container(serde_json::json!([
        "/bin/sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"
    ]));
    assert!(c.idle);
    assert!(c.listener(80).is_none(), "an idle container serves nothing");
    let c2 = Arc::clone(&c);
    let sleeper = tokio::spawn(async move { sh_with_stdin(&c2, &["sleep", "30"], vec![]).await });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (_, out, _) = sh(&c, "ps").await;
    assert!(out.contains("sleep 30"), "{out}");
    assert!(out.contains("    1 root"), "{out}");
    let pid: u32 = out
        .lines()
        .find(|l| l.ends_with("sleep 30"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(sh(&c, &format!("kill {pid}")).await.0, 0);
    let (code, _, _) = sleeper.await.unwrap();
    assert_eq!(code, 143);
    let (_, out, _) = sh(&c, "ps").await;
    assert!(!out.contains("sleep 30"), "{out}");
}

/// The (name, content) of every member of an archive.
fn untar(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(archive);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn tar_round_trip_like_kubectl_cp() {
    let c = container(serde_json::json!([]));
    // kubectl cp pod:/usr/share/nginx/html/index.html ./x  runs `tar cf - <path>`.
    let (code, archive, err) = sh_with_stdin(
        &c,
        &["tar", "cf", "-", "/usr/share/nginx/html/index.html"],
        vec![],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(err, "tar: Removing leading `/' from member names\n");
    let members = untar(&archive);
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].0, "usr/share/nginx/html/index.html");
    assert_eq!(members[0].1, b"Hello World!");
    // kubectl cp ./x pod:/tmp/dir/y  runs `tar -xmf - -C /tmp/dir` with member name `y`.
    sh(&c, "mkdir /tmp/dir").await;
    let upload = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o640);
        h.set_mtime(Utc::now().timestamp() as u64);
        h.set_size(8);
        b.append_data(&mut h, "y", &b"uploaded"[..]).unwrap();
        b.into_inner().unwrap()
    };
    let (code, _, err) = sh_with_stdin(&c, &["tar", "-xmf", "-", "-C", "/tmp/dir"], upload).await;
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(sh(&c, "cat /tmp/dir/y").await.1, "uploaded");
    let (code, _, err) = sh_with_stdin(&c, &["tar", "xf", "-", "-C", "/missing"], vec![]).await;
    assert_eq!(code, 2);
    assert!(err.contains("Cannot open"), "{err}");
    // Directories round-trip too.
    let (code, archive, _) =
        sh_with_stdin(&c, &["tar", "cf", "-", "-C", "/etc", "nginx"], vec![]).await;
    assert_eq!(code, 0);
    let names: Vec<String> = untar(&archive).into_iter().map(|m| m.0).collect();
    assert!(names.contains(&"nginx/".to_string()), "{names:?}");
    assert!(
        names.contains(&"nginx/conf.d/default.conf".to_string()),
        "{names:?}"
    );
}

#[tokio::test]
async fn http_rules_serve_preboot_index() {
    let c = container(serde_json::json!([]));
    let (status, body, ctype) = resolve(&c, "/");
    assert_eq!(
        (status.as_u16(), &body[..], ctype),
        (200, &b"Hello World!"[..], "text/html")
    );
    assert_eq!(resolve(&c, "/50x.html").0.as_u16(), 200);
    assert_eq!(resolve(&c, "/missing").0.as_u16(), 404);
    assert_eq!(resolve(&c, "/../../etc/hostname").0.as_u16(), 404);
}

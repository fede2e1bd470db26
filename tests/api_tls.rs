//! The API's transport defaults: TLS from certificate and key files (checked with curl trusting the test
//! CA), and plain HTTP refused on a non-loopback address unless a proxy is said to terminate TLS.

mod common;

use std::process::Command;

use common::{TestCluster, skip};
use tycho_api::{ApiServer, ServeConfig};

/// Whether `cmd arg` runs (openssl answers `version`, curl `--version`).
fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_from_files_and_no_plain_http_off_loopback() {
    let cluster = TestCluster::start_emulator(common::emulator_config()).await;
    // Plain HTTP off loopback: refused with the reason, unless --allow-plain-http.
    let open = ServeConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..ServeConfig::default()
    };
    let err = ApiServer::bind(&open, cluster.config.clone())
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("plain HTTP"), "{err}");
    let allowed = ServeConfig {
        allow_plain_http: true,
        ..open
    };
    assert!(
        ApiServer::bind(&allowed, cluster.config.clone())
            .await
            .is_ok()
    );

    if !have("openssl", "version") || !have("curl", "--version") {
        skip(
            "tls_from_files_and_no_plain_http_off_loopback",
            "openssl or curl is not installed",
        );
        cluster.cleanup().await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f);
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(p("tls.key"))
        .arg("-out")
        .arg(p("tls.crt"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let cfg = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: Some((p("tls.crt"), p("tls.key"))),
        ..ServeConfig::default()
    };
    let server = ApiServer::bind(&cfg, cluster.config.clone()).await.unwrap();
    let url = server.url().unwrap();
    assert!(url.starts_with("https://"), "{url}");
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    let curl = |extra: &'static [&'static str]| {
        let url = url.clone();
        let ca = p("tls.crt");
        tokio::task::spawn_blocking(move || {
            Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--max-time",
                    "10",
                ])
                .args(extra)
                .arg("--cacert")
                .arg(ca)
                .arg(format!("{url}/healthz"))
                .output()
                .unwrap()
        })
    };
    let out = curl(&[]).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let anon = {
        let url = url.clone();
        let ca = p("tls.crt");
        tokio::task::spawn_blocking(move || {
            Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--max-time",
                    "10",
                    "--cacert",
                ])
                .arg(ca)
                .arg(format!("{url}/v1/whoami"))
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    assert_eq!(String::from_utf8_lossy(&anon.stdout), "401");
    // Without trusting the CA, curl refuses the certificate: the server really speaks TLS with it.
    let plain = tokio::task::spawn_blocking({
        let url = url.replace("https://", "http://");
        move || {
            Command::new("curl")
                .args(["-s", "--max-time", "5", &format!("{url}/healthz")])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("ok"),
        "plain HTTP is not served on the TLS port"
    );
    let _ = stop.send(());
    let _ = task.await;
    cluster.cleanup().await;
}

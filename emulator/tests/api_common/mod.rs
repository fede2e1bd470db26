//! Helpers shared by the emulator's API tests: start an emulator without the simulated cluster,
//! build kube clients, and run the real `kubectl` against it with a fresh cache directory.

#![allow(dead_code)]

use std::time::Duration;

use tycho_emulator::{Emulator, EmulatorConfig};

// The tycho crate's skip facility, one file for both crates' tests.
#[path = "../../../tests/common/skip.rs"]
mod skip;
#[allow(unused_imports)]
pub use skip::{SKIP_LOG_ENV, current_test, skip};

/// An emulator without simulated nodes/controllers (pure API server + garbage collector).
pub async fn start() -> Emulator {
    start_with(EmulatorConfig {
        simulate: false,
        ..EmulatorConfig::default()
    })
    .await
}

/// An emulator with the given config.
pub async fn start_with(cfg: EmulatorConfig) -> Emulator {
    Emulator::start(cfg).await.expect("emulator starts")
}

/// A kube client for the emulator (through its kubeconfig, as a user would).
pub async fn client(emu: &Emulator) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(emu.kubeconfig_path()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

/// Result of one kubectl invocation.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The real kubectl with its own cache directory.
pub struct Kubectl {
    kubeconfig: String,
    cache: tempfile::TempDir,
}

impl Kubectl {
    pub fn new(emu: &Emulator) -> Kubectl {
        Kubectl {
            kubeconfig: emu.kubeconfig_path().display().to_string(),
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .env("KUBECACHEDIR", self.cache.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// Runs kubectl with `stdin` (for `-f -`) and waits (60 s at most).
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Out {
        use tokio::io::AsyncWriteExt;
        let mut child = self.command(args).spawn().expect("kubectl on PATH");
        let mut si = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            si.write_all(s.as_bytes()).await.unwrap();
        }
        drop(si);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finished in time")
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs kubectl and asserts success.
    pub async fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let o = self.run(args, stdin).await;
        assert_eq!(
            o.code, 0,
            "kubectl {args:?} failed: {}\n{}",
            o.stderr, o.stdout
        );
        o.stdout
    }

    /// Spawns a long-running kubectl (e.g. `get -w`).
    pub fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        self.command(args).spawn().expect("kubectl on PATH")
    }
}

/// Polls `f` every 50 ms until it returns Some, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A small namespaced CRD `widgets.test.tycho.dev` (v1 served+storage, v1beta1 served) with a
/// status subresource, printer columns, a selectable field and a structural schema.
pub const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.tycho.dev
spec:
  group: test.tycho.dev
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wdg]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    selectableFields:
    - jsonPath: .spec.color
    additionalPrinterColumns:
    - name: Color
      type: string
      jsonPath: .spec.color
    - name: Size
      type: integer
      jsonPath: .spec.size
    - name: Ready
      type: string
      jsonPath: .status.conditions[?(@.type=="Ready")].status
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [color]
            properties:
              color:
                type: string
                enum: [red, green, blue]
              size:
                type: integer
                minimum: 1
                default: 3
              tags:
                type: array
                items: {type: string}
          status:
            type: object
            properties:
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

/// A raw HTTP/1.1 response.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Raw {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    pub fn header(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n.min(rest.len())]);
        s = rest.get(n + 2..).unwrap_or("");
    }
    out
}

/// One raw HTTP request to the emulator (Connection: close), for checking headers and bodies
/// exactly as they go over the wire.
pub async fn http(
    emu: &Emulator,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Raw {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = emu.url().trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let b = body.unwrap_or("");
    req.push_str(&format!("Content-Length: {}\r\n\r\n{b}", b.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Raw {
        status,
        headers,
        body,
    }
}

/// A raw watch stream: returns a receiver of event lines (as JSON values).
pub async fn watch_lines(
    emu: &Emulator,
    path: &str,
    accept: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<serde_json::Value> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let addr = emu.url().trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut r = BufReader::new(s);
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let t = line.trim();
            if t == "0" {
                return; // last chunk: the server ended the stream
            }
            if t.starts_with('{')
                && let Ok(v) = serde_json::from_str(t)
                && tx.send(v).is_err()
            {
                return;
            }
        }
    });
    rx
}

/// Next item from a channel within `secs` seconds.
pub async fn next<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>, secs: u64) -> Option<T> {
    tokio::time::timeout(Duration::from_secs(secs), rx.recv())
        .await
        .ok()
        .flatten()
}

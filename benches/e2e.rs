//! End-to-end benchmark of Tycho on the Kubernetes API emulator (run by hand, not in CI).
//!
//! ```text
//! cargo bench --bench e2e -- [--systems 1000,10000] [--quick] [--rate 5,20] [--steady-secs 30]
//!                            [--sessions 1000] [--lease-secs 10] [--nodes 50] [--pod-delay-ms 50]
//!                            [--parallel 32] [--concurrency 8] [--touch 1000] [--timeout-secs 600]
//!                            [--no-floor] [--no-steady] [--no-sessions]
//! ```
//!
//! The emulator (API server + simulated nodes, Deployment/ReplicaSet controllers, scheduler, kubelet)
//! runs inside this process; the operator runs as a separate process (`tycho controller`, the binary of
//! this build) so that its peak RSS (`VmHWM`) can be read from `/proc`. Every phase starts a fresh
//! emulator (and controller), so each one begins from a cold, empty cluster:
//!
//! 1. **burst** (for each `--systems` N): create N Systems (like `examples/nginx.yaml`) with `--parallel`
//!    creates in flight; time from the first create until every System's `status.phase` is `Ready`
//!    (watched, not polled); then the API calls of N reconciles of *unchanged* Systems (a no-op
//!    annotation bumps `resourceVersion` but not `generation`), counted from the emulator's request log;
//!    then the controller's peak RSS;
//! 2. **floor** (for each N): the same rendered objects (ConfigMap, Service, Deployment per System, from
//!    `tycho::render::Renderer`) created straight through the API with no operator, until every
//!    Deployment is ready; Tycho's time is reported as a ratio to it;
//! 3. **steady**: create→Ready latency at `--rate` Systems/s for `--steady-secs`;
//! 4. **sessions**: `--sessions` Leases (one System each) renewed until all Systems are Ready, then
//!    renewed one last time together and abandoned; for each System, the delay between its Lease's
//!    expiry (last renewal acknowledged + `leaseDurationSeconds`) and the observed deletion.
//!
//! NodePorts are limited to 2,768 (30000–32767): a run of more Systems than that uses
//! `expose: ClusterIP` for all of them (and for its floor), and says so.
//!
//! Progress goes to stderr; the results table (markdown) to stdout.

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, header};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tycho::model::{Expose, Phase, System};
use tycho::render::{RenderSettings, Renderer, WorkloadObject};
use tycho_emulator::{Emulator, EmulatorConfig, RequestRecord};

type R<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// User agent of this benchmark's own requests (excluded from the controller's counts).
const UA: &str = "tycho-bench";
/// Namespace of every benchmark object.
const NS: &str = "bench";
/// Prefix of the User-Agent of `tycho controller`.
const CONTROLLER_UA: &str = "tycho-controller/";
/// Size of the NodePort range 30000–32767.
const NODEPORT_LIMIT: usize = 2768;

#[derive(Debug, Clone)]
struct Args {
    systems: Vec<usize>,
    rates: Vec<f64>,
    steady_secs: u64,
    sessions: usize,
    lease_secs: u64,
    nodes: usize,
    node_cpu: String,
    node_memory: String,
    pod_delay_ms: u64,
    parallel: usize,
    concurrency: u16,
    touch: usize,
    timeout_secs: u64,
    watch_history: usize,
    floor: bool,
    steady: bool,
    session_phase: bool,
}

impl Args {
    fn parse() -> R<Args> {
        let argv: Vec<String> = std::env::args().skip(1).collect();
        let quick = argv.iter().any(|a| a == "--quick");
        let mut a = Args {
            systems: if quick { vec![200] } else { vec![1000, 10_000] },
            rates: if quick { vec![10.0] } else { vec![5.0, 20.0] },
            steady_secs: if quick { 5 } else { 30 },
            sessions: if quick { 200 } else { 1000 },
            lease_secs: if quick { 5 } else { 10 },
            nodes: 50,
            node_cpu: "64".into(),
            node_memory: "256Gi".into(),
            pod_delay_ms: 50,
            parallel: 32,
            concurrency: 8,
            touch: if quick { 200 } else { 1000 },
            timeout_secs: 600,
            watch_history: 200_000,
            floor: true,
            steady: true,
            session_phase: true,
        };
        let mut it = argv.into_iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .ok_or_else(|| format!("{flag} needs a value").to_string())
            };
            match flag.as_str() {
                "--quick" | "--bench" => {}
                "--systems" => {
                    a.systems = value()?
                        .split(',')
                        .map(|s| s.trim().replace('_', "").parse::<usize>())
                        .collect::<Result<_, _>>()?
                }
                "--rate" => {
                    a.rates = value()?
                        .split(',')
                        .map(|s| s.trim().parse::<f64>())
                        .collect::<Result<_, _>>()?
                }
                "--steady-secs" => a.steady_secs = value()?.parse()?,
                "--sessions" => a.sessions = value()?.parse()?,
                "--lease-secs" => a.lease_secs = value()?.parse()?,
                "--nodes" => a.nodes = value()?.parse()?,
                "--node-cpu" => a.node_cpu = value()?,
                "--node-memory" => a.node_memory = value()?,
                "--pod-delay-ms" => a.pod_delay_ms = value()?.parse()?,
                "--parallel" => a.parallel = value()?.parse()?,
                "--concurrency" => a.concurrency = value()?.parse()?,
                "--touch" => a.touch = value()?.parse()?,
                "--timeout-secs" => a.timeout_secs = value()?.parse()?,
                "--watch-history" => a.watch_history = value()?.parse()?,
                "--no-floor" => a.floor = false,
                "--no-steady" => a.steady = false,
                "--no-sessions" => a.session_phase = false,
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        if a.parallel == 0 || a.rates.iter().any(|r| *r <= 0.0) || a.lease_secs == 0 {
            return Err("--parallel, --rate and --lease-secs must be positive".into());
        }
        Ok(a)
    }

    /// Simulated nodes for a phase of `n` Systems: at least `--nodes`, and enough that the 110 pods a
    /// node holds (the kubelet's default `maxPods`, which the emulator's nodes advertise) never limit it.
    fn nodes_for(&self, n: usize) -> usize {
        self.nodes.max(n.div_ceil(100))
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

fn log(msg: impl AsRef<str>) {
    eprintln!("[e2e] {}", msg.as_ref());
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn commit() -> String {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => "unknown".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Dist {
    p50: f64,
    p99: f64,
    max: f64,
    min: f64,
    n: usize,
}

impl Dist {
    fn of(mut v: Vec<f64>) -> Dist {
        v.sort_by(f64::total_cmp);
        Dist {
            p50: percentile(&v, 0.5),
            p99: percentile(&v, 0.99),
            max: v.last().copied().unwrap_or(f64::NAN),
            min: v.first().copied().unwrap_or(f64::NAN),
            n: v.len(),
        }
    }

    fn ms(&self) -> String {
        format!(
            "p50 {:.0} ms · p99 {:.0} ms · max {:.0} ms (n = {})",
            self.p50, self.p99, self.max, self.n
        )
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ms_between(later: Instant, earlier: Instant) -> f64 {
    if later >= earlier {
        later.duration_since(earlier).as_secs_f64() * 1000.0
    } else {
        -(earlier.duration_since(later).as_secs_f64() * 1000.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Watching: when each object became ready, and when it was deleted

#[derive(Default)]
struct Seen {
    ready: HashMap<String, Instant>,
    deleted: HashMap<String, Instant>,
}

type Shared = Arc<Mutex<Seen>>;

fn track<K>(api: Api<K>, is_ready: fn(&K) -> bool) -> (Shared, JoinHandle<()>)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let seen = Shared::default();
    let out = seen.clone();
    let task = tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = events.next().await {
            let now = Instant::now();
            match ev {
                Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::InitApply(o)) => {
                    if is_ready(&o) {
                        lock(&out).ready.entry(o.name_any()).or_insert(now);
                    }
                }
                Ok(watcher::Event::Delete(o)) => {
                    lock(&out).deleted.entry(o.name_any()).or_insert(now);
                }
                Ok(_) => {}
                Err(e) => log(format!("watch error (retrying): {e}")),
            }
        }
    });
    (seen, task)
}

fn system_ready(s: &System) -> bool {
    s.status.as_ref().and_then(|st| st.phase) == Some(Phase::Ready)
}

fn deployment_ready(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let ready = d
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    ready >= want
}

/// Waits until `count(seen)` reaches `target` or `timeout` passes, printing progress every 5 s;
/// returns the count reached.
async fn wait_for(
    what: &str,
    seen: &Shared,
    count: fn(&Seen) -> usize,
    target: usize,
    timeout: Duration,
) -> usize {
    let start = Instant::now();
    let mut last_print = Instant::now();
    loop {
        let n = count(&lock(seen));
        if n >= target {
            return n;
        }
        if start.elapsed() > timeout {
            log(format!(
                "  gave up waiting after {timeout:?}: {what} {n}/{target}"
            ));
            return n;
        }
        if last_print.elapsed() >= Duration::from_secs(5) {
            log(format!(
                "  {what}: {n}/{target} after {:.0} s (load {})",
                start.elapsed().as_secs_f64(),
                load_average()
            ));
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// A cluster: the emulator in this process, the controller as a child process

struct Controller {
    child: tokio::process::Child,
    pid: u32,
    metrics_port: u16,
    log: PathBuf,
}

struct Cluster {
    emu: Emulator,
    client: Client,
    controller: Option<Controller>,
}

fn free_port() -> R<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

async fn http_get(port: u16, path: &str) -> R<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

fn tail(path: &PathBuf) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl Cluster {
    async fn start(a: &Args, label: &str, with_controller: bool, n: usize) -> R<Cluster> {
        let nodes = a.nodes_for(n);
        let emu = Emulator::start(EmulatorConfig {
            port: 0,
            nodes,
            node_cpu: a.node_cpu.clone(),
            node_memory: a.node_memory.clone(),
            pod_ready_delay: Duration::from_millis(a.pod_delay_ms),
            kubeconfig_path: None,
            watch_history: a.watch_history,
            simulate: true,
            ..EmulatorConfig::default()
        })
        .await?;
        let mut cfg = kube::Config::new(emu.url().parse()?);
        cfg.headers
            .push((header::USER_AGENT, HeaderValue::from_static(UA)));
        let client = Client::try_from(cfg)?;
        tycho::cli::dev::install_crd(&client)
            .await
            .map_err(|e| e.to_string())?;
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        // Wait for the simulated nodes, so that every phase starts with the whole cluster up.
        let start = Instant::now();
        let api_nodes: Api<Node> = Api::all(client.clone());
        while api_nodes.list(&ListParams::default()).await?.items.len() < nodes {
            if start.elapsed() > Duration::from_secs(60) {
                return Err("the simulated nodes did not all register within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let controller = if with_controller {
            Some(Self::spawn_controller(a, &emu, label).await?)
        } else {
            None
        };
        Ok(Cluster {
            emu,
            client,
            controller,
        })
    }

    async fn spawn_controller(a: &Args, emu: &Emulator, label: &str) -> R<Controller> {
        let port = free_port()?;
        let log_path = std::env::temp_dir().join(format!("tycho-bench-controller-{label}.log"));
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tycho"))
            .args([
                "controller",
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
                "--concurrency",
                &a.concurrency.to_string(),
            ])
            .env("KUBECONFIG", emu.kubeconfig_path())
            .env_remove("TYCHO_NAMESPACES")
            .env_remove("TYCHO_METRICS_ADDR")
            .env_remove("TYCHO_CONCURRENCY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log_path)?)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("the controller exited at once")?;
        let mut c = Controller {
            child,
            pid,
            metrics_port: port,
            log: log_path,
        };
        let start = Instant::now();
        loop {
            if let Ok((200, _)) = http_get(port, "/readyz").await {
                break;
            }
            if let Some(status) = c.child.try_wait()? {
                return Err(format!("the controller exited ({status}):\n{}", tail(&c.log)).into());
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "the controller was not ready within 60 s:\n{}",
                    tail(&c.log)
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        log(format!(
            "  controller pid {} ready in {:.2} s (log {})",
            c.pid,
            start.elapsed().as_secs_f64(),
            c.log.display()
        ));
        Ok(c)
    }

    fn systems(&self) -> Api<System> {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn reconciles(&self) -> R<f64> {
        let port = self
            .controller
            .as_ref()
            .ok_or("no controller")?
            .metrics_port;
        let (_, body) = http_get(port, "/metrics").await?;
        body.lines()
            .find_map(|l| l.strip_prefix("tycho_reconciles_total "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| "no tycho_reconciles_total in /metrics".into())
    }

    /// Peak and current RSS of the controller, in KiB.
    fn rss(&self) -> Option<(u64, u64)> {
        let pid = self.controller.as_ref()?.pid;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        Some((field("VmHWM:")?, field("VmRSS:")?))
    }

    async fn stop(mut self) {
        if let Some(c) = self.controller.as_mut() {
            if let Ok(Some(status)) = c.child.try_wait() {
                log(format!(
                    "  the controller had exited ({status}):\n{}",
                    tail(&c.log)
                ));
            }
            let _ = c.child.start_kill();
            let _ = c.child.wait().await;
        }
        self.emu.shutdown().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Systems

fn template() -> R<System> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/nginx.yaml");
    let text = std::fs::read_to_string(&path)?;
    let mut systems = tycho::cli::render::parse_systems("examples/nginx.yaml", &text)
        .map_err(|e| e.to_string())?;
    if systems.is_empty() {
        return Err("examples/nginx.yaml holds no System".into());
    }
    Ok(systems.swap_remove(0))
}

fn make_system(template: &System, name: &str, cluster_ip: bool, session: Option<String>) -> System {
    let mut s = template.clone();
    s.metadata.name = Some(name.to_string());
    s.metadata.namespace = Some(NS.to_string());
    if cluster_ip {
        s.spec.expose = Expose::ClusterIP;
    }
    s.spec.session = session;
    s
}

fn name_of(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:05}")
}

/// Creates the Systems `names` with `parallel` requests in flight; returns when each create was sent.
async fn create_systems(
    api: &Api<System>,
    systems: Vec<System>,
    parallel: usize,
) -> R<HashMap<String, Instant>> {
    let sent: Vec<(String, Instant)> = stream::iter(systems)
        .map(|s| {
            let api = api.clone();
            async move {
                let t = Instant::now();
                api.create(&PostParams::default(), &s).await?;
                Ok::<_, kube::Error>((s.name_any(), t))
            }
        })
        .buffer_unordered(parallel)
        .try_collect()
        .await?;
    Ok(sent.into_iter().collect())
}

fn latencies(sent: &HashMap<String, Instant>, seen: &Seen) -> Vec<f64> {
    sent.iter()
        .filter_map(|(n, t)| seen.ready.get(n).map(|r| ms_between(*r, *t)))
        .collect()
}

fn last_ready(names: impl Iterator<Item = String>, seen: &Seen) -> Option<Instant> {
    names.filter_map(|n| seen.ready.get(&n).copied()).max()
}

/// When the first 25 %, 50 %, 75 % and 100 % of `n` became ready (shows whether throughput holds up).
fn curve(names: impl Iterator<Item = String>, seen: &Seen, t0: Instant, n: usize) -> String {
    let mut at: Vec<Instant> = names.filter_map(|n| seen.ready.get(&n).copied()).collect();
    at.sort();
    [25, 50, 75, 100]
        .iter()
        .map(|pct| {
            let k = (n * pct).div_ceil(100).max(1);
            match at.get(k - 1) {
                Some(t) => format!("{pct}% at {:.1} s", t.duration_since(t0).as_secs_f64()),
                None => format!("{pct}% not reached"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Request classification

/// Requests of the simulated nodes' heartbeats (Leases in kube-node-lease, nodes/status).
fn heartbeat(r: &RequestRecord) -> bool {
    r.namespace == "kube-node-lease" || (r.resource == "nodes" && r.subresource == "status")
}

/// Requests neither from this benchmark nor node heartbeats nor long-running watches: in a quiet
/// cluster these are the controller's (the simulated controllers only act on changes of their objects).
fn relevant(r: &RequestRecord) -> bool {
    r.user_agent != UA && !heartbeat(r) && r.verb != "watch"
}

fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

/// Waits until the controller and the simulated cluster are idle: no relevant request for `quiet`.
async fn settle(cl: &Cluster, quiet: Duration, timeout: Duration) -> R<()> {
    let start = Instant::now();
    cl.emu.clear_requests();
    let mut idle_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let busy = cl.emu.requests().iter().any(relevant);
        if busy {
            cl.emu.clear_requests();
            idle_since = Instant::now();
        } else if idle_since.elapsed() >= quiet {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err("the cluster did not settle".into());
        }
    }
}

struct Unchanged {
    reconciles: f64,
    touched: usize,
    by_call: BTreeMap<String, usize>,
    reads: usize,
    writes: usize,
    baseline: usize,
    baseline_secs: f64,
}

/// API calls of reconciles of unchanged Systems, triggered by a no-op annotation change of `touch` Systems.
async fn unchanged_reconciles(cl: &Cluster, names: &[String], touch: usize) -> R<Unchanged> {
    log("  waiting for the cluster to settle");
    settle(cl, Duration::from_secs(3), Duration::from_secs(300)).await?;
    // Baseline: what happens with no trigger at all.
    cl.emu.clear_requests();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let baseline = cl.emu.requests().iter().filter(|r| relevant(r)).count();
    let baseline_secs = t0.elapsed().as_secs_f64();

    cl.emu.clear_requests();
    let r0 = cl.reconciles().await?;
    let api = cl.systems();
    let touched: Vec<String> = names.iter().take(touch).cloned().collect();
    let n = touched.len();
    log(format!(
        "  annotating {n} Ready Systems (metadata only: generation unchanged)"
    ));
    stream::iter(touched)
        .map(|name| {
            let api = api.clone();
            async move {
                let patch = json!({"metadata": {"annotations": {"bench.tycho.dev/touch": "1"}}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    let start = Instant::now();
    while cl.reconciles().await? - r0 < n as f64 {
        if start.elapsed() > Duration::from_secs(300) {
            return Err("the annotated Systems were not all reconciled within 300 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the last reconciles finish their calls: wait until no new relevant request for 3 s.
    let mut last = usize::MAX;
    let mut stable_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = cl.emu.requests().iter().filter(|r| relevant(r)).count();
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() >= Duration::from_secs(3) {
            break;
        }
    }
    let reconciles = cl.reconciles().await? - r0;
    let mut by_call = BTreeMap::new();
    let (mut reads, mut writes) = (0, 0);
    let requests = cl.emu.requests();
    // `tycho controller` names itself in its User-Agent: count exactly its requests when it does.
    let own_agent = requests
        .iter()
        .any(|r| r.user_agent.starts_with(CONTROLLER_UA));
    if !own_agent {
        log(
            "  the controller sends no tycho-controller User-Agent: counting every non-heartbeat request",
        );
    }
    for r in requests
        .iter()
        .filter(|r| relevant(r) && (!own_agent || r.user_agent.starts_with(CONTROLLER_UA)))
    {
        let res = if r.subresource.is_empty() {
            r.resource.clone()
        } else {
            format!("{}/{}", r.resource, r.subresource)
        };
        *by_call.entry(format!("{} {}", r.verb, res)).or_insert(0) += 1;
        if is_write(&r.verb) {
            writes += 1;
        } else {
            reads += 1;
        }
    }
    Ok(Unchanged {
        reconciles,
        touched: n,
        by_call,
        reads,
        writes,
        baseline,
        baseline_secs,
    })
}

// ---------------------------------------------------------------------------------------------
// Phases

struct Burst {
    ready: usize,
    time: Duration,
    curve: String,
    create_time: Duration,
    latency: Dist,
    reconciles_per_system: f64,
    rss_peak_kib: Option<u64>,
    rss_now_kib: Option<u64>,
    unchanged: Option<Unchanged>,
    load: String,
}

async fn burst(a: &Args, tpl: &System, n: usize) -> R<Burst> {
    let cluster_ip = n > NODEPORT_LIMIT;
    log(format!(
        "burst: {n} Systems{} from an empty cluster",
        if cluster_ip {
            " (expose: ClusterIP — more than the 2,768 NodePorts)"
        } else {
            ""
        }
    ));
    let cl = Cluster::start(a, &format!("burst-{n}"), true, n).await?;
    let result = async {
        let api = cl.systems();
        let (seen, watch) = track(api.clone(), system_ready);
        let systems: Vec<System> = (0..n)
            .map(|i| make_system(tpl, &name_of("sys", i), cluster_ip, None))
            .collect();
        let names: Vec<String> = systems.iter().map(ResourceExt::name_any).collect();
        let t0 = Instant::now();
        let sent = create_systems(&api, systems, a.parallel).await?;
        let create_time = t0.elapsed();
        log(format!("  {n} creates sent in {}", secs(create_time)));
        let ready = wait_for("Systems Ready", &seen, |s| s.ready.len(), n, a.timeout()).await;
        let given_up = t0.elapsed();
        let (time, latency, curve) = {
            let s = lock(&seen);
            let time = if ready >= n {
                let end = last_ready(names.iter().cloned(), &s).ok_or("no System became Ready")?;
                end.duration_since(t0)
            } else {
                given_up
            };
            (
                time,
                Dist::of(latencies(&sent, &s)),
                curve(names.iter().cloned(), &s, t0, n),
            )
        };
        let load = load_average();
        log(format!(
            "  {ready}/{n} Ready in {} ({:.1} Systems/s; load {load}); {curve}",
            secs(time),
            ready as f64 / time.as_secs_f64()
        ));
        let reconciles_per_system = cl.reconciles().await? / ready.max(1) as f64;
        let unchanged = if a.touch > 0 && ready >= n {
            Some(unchanged_reconciles(&cl, &names, a.touch.min(n)).await?)
        } else {
            None
        };
        watch.abort();
        let rss = cl.rss();
        Ok::<_, Box<dyn Error + Send + Sync>>(Burst {
            ready,
            time,
            curve,
            create_time,
            latency,
            reconciles_per_system,
            rss_peak_kib: rss.map(|r| r.0),
            rss_now_kib: rss.map(|r| r.1),
            unchanged,
            load,
        })
    }
    .await;
    cl.stop().await;
    result
}

struct Floor {
    ready: usize,
    time: Duration,
    curve: String,
    load: String,
}

async fn floor(a: &Args, tpl: &System, n: usize) -> R<Floor> {
    let cluster_ip = n > NODEPORT_LIMIT;
    log(format!(
        "floor: the rendered objects of {n} Systems (ConfigMap, Service, Deployment) with no operator"
    ));
    let renderer = Renderer::new(RenderSettings::default())?;
    // Render up front: the floor measures the API and the simulated cluster, not the templates.
    let mut objects = Vec::with_capacity(n);
    for i in 0..n {
        let s = make_system(tpl, &name_of("sys", i), cluster_ip, None);
        let r = renderer.render(&s)?;
        let WorkloadObject::Deployment(d) = r.workload else {
            return Err("the template renders a bare Pod, not a Deployment".into());
        };
        objects.push((r.config_map, r.service, *d));
    }
    let cl = Cluster::start(a, &format!("floor-{n}"), false, n).await?;
    let result = async {
        let deployments: Api<Deployment> = Api::namespaced(cl.client.clone(), NS);
        let (seen, watch) = track(deployments.clone(), deployment_ready);
        let names: Vec<String> = objects.iter().map(|o| o.2.name_any()).collect();
        let client = cl.client.clone();
        let t0 = Instant::now();
        stream::iter(objects)
            .map(|(cm, svc, d)| {
                let client = client.clone();
                async move {
                    let pp = PostParams::default();
                    if let Some(cm) = cm {
                        Api::namespaced(client.clone(), NS).create(&pp, &cm).await?;
                    }
                    if let Some(svc) = svc {
                        Api::namespaced(client.clone(), NS)
                            .create(&pp, &svc)
                            .await?;
                    }
                    Api::<Deployment>::namespaced(client, NS)
                        .create(&pp, &d)
                        .await?;
                    Ok::<_, kube::Error>(())
                }
            })
            .buffer_unordered(a.parallel)
            .try_collect::<Vec<_>>()
            .await?;
        log(format!("  objects created in {}", secs(t0.elapsed())));
        let ready = wait_for(
            "Deployments ready",
            &seen,
            |s| s.ready.len(),
            n,
            a.timeout(),
        )
        .await;
        let given_up = t0.elapsed();
        watch.abort();
        let (time, curve) = {
            let s = lock(&seen);
            let time = if ready >= n {
                last_ready(names.iter().cloned(), &s)
                    .ok_or("no Deployment ready")?
                    .duration_since(t0)
            } else {
                given_up
            };
            (time, curve(names.iter().cloned(), &s, t0, n))
        };
        let load = load_average();
        log(format!(
            "  {ready}/{n} Deployments ready in {} (load {load}); {curve}",
            secs(time)
        ));
        Ok::<_, Box<dyn Error + Send + Sync>>(Floor {
            ready,
            time,
            curve,
            load,
        })
    }
    .await;
    cl.stop().await;
    result
}

struct Steady {
    created: usize,
    ready: usize,
    latency: Dist,
    rss_peak_kib: Option<u64>,
    load: String,
}

async fn steady(a: &Args, tpl: &System, rate: f64) -> R<Steady> {
    let total = (rate * a.steady_secs as f64).round() as usize;
    log(format!(
        "steady: {rate} Systems/s for {} s ({total} Systems)",
        a.steady_secs
    ));
    let cl = Cluster::start(a, &format!("steady-{rate}"), true, total).await?;
    let result = async {
        let api = cl.systems();
        let (seen, watch) = track(api.clone(), system_ready);
        let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut creates = Vec::with_capacity(total);
        for i in 0..total {
            tick.tick().await;
            let s = make_system(tpl, &name_of("steady", i), false, None);
            let api = api.clone();
            let sent = sent.clone();
            creates.push(tokio::spawn(async move {
                let t = Instant::now();
                let r = api.create(&PostParams::default(), &s).await;
                lock(&sent).insert(s.name_any(), t);
                r.map(|_| ())
            }));
        }
        for c in creates {
            c.await??;
        }
        let ready = wait_for(
            "Systems Ready",
            &seen,
            |s| s.ready.len(),
            total,
            a.timeout(),
        )
        .await;
        watch.abort();
        let latency = Dist::of(latencies(&lock(&sent), &lock(&seen)));
        log(format!("  create→Ready {}", latency.ms()));
        Ok::<_, Box<dyn Error + Send + Sync>>(Steady {
            created: total,
            ready,
            latency,
            rss_peak_kib: cl.rss().map(|r| r.0),
            load: load_average(),
        })
    }
    .await;
    cl.stop().await;
    result
}

fn micro_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

async fn renew_all(leases: &Api<Lease>, names: &[String]) -> R<HashMap<String, Instant>> {
    let acked: Vec<(String, Instant)> = stream::iter(names.iter().cloned())
        .map(|name| {
            let leases = leases.clone();
            async move {
                let patch = json!({"spec": {"renewTime": micro_now()}});
                leases
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                Ok::<_, kube::Error>((name, Instant::now()))
            }
        })
        .buffer_unordered(32)
        .try_collect()
        .await?;
    Ok(acked.into_iter().collect())
}

struct Sessions {
    n: usize,
    delay: Dist,
    renew_burst: Duration,
    rss_peak_kib: Option<u64>,
    load: String,
}

async fn sessions(a: &Args, tpl: &System) -> R<Sessions> {
    let n = a.sessions;
    let d = a.lease_secs;
    log(format!(
        "sessions: {n} Leases (leaseDurationSeconds {d}), one System each, expiring together"
    ));
    let cl = Cluster::start(a, "sessions", true, n).await?;
    let result = async {
        let leases: Api<Lease> = Api::namespaced(cl.client.clone(), NS);
        let api = cl.systems();
        let (seen, watch) = track(api.clone(), system_ready);
        let lease_names: Vec<String> = (0..n).map(|i| name_of("lease", i)).collect();
        stream::iter(lease_names.iter().cloned())
            .map(|name| {
                let leases = leases.clone();
                async move {
                    let lease: Lease = serde_json::from_value(json!({
                        "metadata": {"name": name},
                        "spec": {"holderIdentity": UA, "leaseDurationSeconds": d, "renewTime": micro_now()}
                    }))
                    .map_err(kube::Error::SerdeError)?;
                    leases.create(&PostParams::default(), &lease).await
                }
            })
            .buffer_unordered(a.parallel)
            .try_collect::<Vec<_>>()
            .await?;
        // Keep the sessions alive while the Systems start.
        let stop = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (leases, names, stop) = (leases.clone(), lease_names.clone(), stop.clone());
            let every = Duration::from_secs_f64(d as f64 / 3.0);
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let round = Instant::now();
                    if let Err(e) = renew_all(&leases, &names).await {
                        log(format!("  renewal failed: {e}"));
                    }
                    if round.elapsed() > every {
                        log(format!(
                            "  a renewal round took {} (longer than a third of the lease)",
                            secs(round.elapsed())
                        ));
                    }
                    let next = round + every;
                    while !stop.load(Ordering::SeqCst) && Instant::now() < next {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        };
        let systems: Vec<System> = (0..n)
            .map(|i| make_system(tpl, &name_of("sys", i), false, Some(name_of("lease", i))))
            .collect();
        create_systems(&api, systems, a.parallel).await?;
        let ready = wait_for(
            "session Systems Ready",
            &seen,
            |s| s.ready.len(),
            n,
            a.timeout(),
        )
        .await;
        stop.store(true, Ordering::SeqCst);
        renewer.await?;
        if ready < n {
            return Err(format!("only {ready}/{n} session Systems became Ready").into());
        }
        log("  all Ready; renewing every Lease one last time, then abandoning them");
        let t = Instant::now();
        let acked = renew_all(&leases, &lease_names).await?;
        let renew_burst = t.elapsed();
        wait_for(
            "session Systems collected",
            &seen,
            |s| s.deleted.len(),
            n,
            Duration::from_secs(d + 300),
        )
        .await;
        watch.abort();
        let expiry = Duration::from_secs(d);
        let delays: Vec<f64> = {
            let s = lock(&seen);
            (0..n)
                .filter_map(|i| {
                    let at = *acked.get(&name_of("lease", i))? + expiry;
                    let gone = *s.deleted.get(&name_of("sys", i))?;
                    Some(ms_between(gone, at))
                })
                .collect()
        };
        let delay = Dist::of(delays);
        log(format!("  expiry → deletion observed: {} (min {:.0} ms)", delay.ms(), delay.min));
        Ok::<_, Box<dyn Error + Send + Sync>>(Sessions {
            n,
            delay,
            renew_burst,
            rss_peak_kib: cl.rss().map(|r| r.0),
            load: load_average(),
        })
    }
    .await;
    cl.stop().await;
    result
}

// ---------------------------------------------------------------------------------------------
// Report

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

struct Report {
    rows: Vec<(String, String)>,
    calls: Vec<(usize, Unchanged)>,
}

impl Report {
    fn row(&mut self, k: String, v: String) {
        log(format!("RESULT | {k} | {v} |"));
        self.rows.push((k, v));
    }
}

fn rate(k: usize, d: Duration) -> f64 {
    k as f64 / d.as_secs_f64()
}

async fn scale(a: &Args, tpl: &System, n: usize, rep: &mut Report) {
    let label = format!(
        "{} Systems{}",
        thousands(n),
        if n > NODEPORT_LIMIT {
            " (expose: ClusterIP)"
        } else {
            ""
        }
    );
    let b = match burst(a, tpl, n).await {
        Ok(b) => b,
        Err(e) => {
            rep.row(format!("Cold start, {label}"), format!("failed: {e}"));
            return;
        }
    };
    let complete = b.ready >= n;
    rep.row(
        format!("Cold start, {label}: all Ready"),
        if complete {
            format!(
                "{} → **{:.1} Systems/s** ({} nodes; creates sent in {}; {}; load {})",
                secs(b.time),
                rate(n, b.time),
                a.nodes_for(n),
                secs(b.create_time),
                b.curve,
                b.load
            )
        } else {
            format!(
                "**did not finish**: {}/{n} Ready after {} ({:.1} Systems/s; {} nodes; creates sent in {}; {}; load {})",
                b.ready,
                secs(b.time),
                rate(b.ready, b.time),
                a.nodes_for(n),
                secs(b.create_time),
                b.curve,
                b.load
            )
        },
    );
    rep.row(
        format!("Cold start, {label}: create→Ready of the Ready ones"),
        b.latency.ms(),
    );
    rep.row(
        format!("Cold start, {label}: reconciles so far / Ready Systems"),
        format!("{:.2}", b.reconciles_per_system),
    );
    rep.row(
        format!("Operator peak RSS (VmHWM), {label}"),
        format!(
            "{} (RSS at the end {})",
            mib(b.rss_peak_kib),
            mib(b.rss_now_kib)
        ),
    );
    if let Some(u) = b.unchanged {
        let per = |x: usize| x as f64 / u.reconciles.max(1.0);
        rep.row(
            format!("API calls per reconcile of an unchanged System ({label})"),
            format!(
                "**{:.2} reads, {:.2} writes** ({} reconciles after {} no-op annotations; baseline {} calls in {:.0} s without trigger)",
                per(u.reads),
                per(u.writes),
                u.reconciles,
                u.touched,
                u.baseline,
                u.baseline_secs
            ),
        );
        rep.calls.push((n, u));
    }
    if a.floor {
        match floor(a, tpl, n).await {
            Ok(f) => {
                let what = format!(
                    "Floor, {label}: {} objects, no operator, until the Deployments are ready",
                    thousands(3 * n)
                );
                if f.ready >= n {
                    rep.row(
                        what,
                        format!(
                            "{} → {:.1} Systems/s ({}; load {})",
                            secs(f.time),
                            rate(n, f.time),
                            f.curve,
                            f.load
                        ),
                    );
                } else {
                    rep.row(
                        what,
                        format!(
                            "**did not finish**: {}/{n} ready after {} ({:.1}/s; {}; load {})",
                            f.ready,
                            secs(f.time),
                            rate(f.ready, f.time),
                            f.curve,
                            f.load
                        ),
                    );
                }
                let ratio = if complete && f.ready >= n {
                    format!("**{:.2}×**", b.time.as_secs_f64() / f.time.as_secs_f64())
                } else {
                    format!(
                        "≈ {:.2}× by throughput (not both finished)",
                        rate(f.ready, f.time) / rate(b.ready, b.time).max(f64::MIN_POSITIVE)
                    )
                };
                rep.row(format!("Tycho time / floor time, {label}"), ratio);
            }
            Err(e) => rep.row(format!("Floor, {label}"), format!("failed: {e}")),
        }
    }
}

async fn run(a: Args) -> R<()> {
    let tpl = template()?;
    let started = Instant::now();
    let load_start = load_average();
    let mut rep = Report {
        rows: Vec::new(),
        calls: Vec::new(),
    };
    let mut sizes = a.systems.clone();
    sizes.sort_unstable();
    // The smallest scale first, then the steady and session phases, then the larger scales (which may
    // hit the time budget).
    let (first, rest) = match sizes.split_first() {
        Some((f, r)) => (Some(*f), r.to_vec()),
        None => (None, Vec::new()),
    };
    if let Some(n) = first {
        scale(&a, &tpl, n, &mut rep).await;
    }
    for &rate in if a.steady { a.rates.as_slice() } else { &[] } {
        match steady(&a, &tpl, rate).await {
            Ok(s) => {
                rep.row(
                    format!(
                        "Steady {rate} Systems/s × {} s ({} Systems): create→Ready",
                        a.steady_secs, s.created
                    ),
                    format!(
                        "{}{} (load {})",
                        s.latency.ms(),
                        if s.ready < s.created {
                            format!("; only {}/{} Ready", s.ready, s.created)
                        } else {
                            String::new()
                        },
                        s.load
                    ),
                );
                rep.row(
                    format!("Operator peak RSS (VmHWM), steady {rate}/s"),
                    mib(s.rss_peak_kib),
                );
            }
            Err(e) => rep.row(format!("Steady {rate}/s"), format!("failed: {e}")),
        }
    }
    if a.session_phase {
        match sessions(&a, &tpl).await {
            Ok(s) => {
                rep.row(
                    format!(
                        "{} sessions expiring together (leaseDurationSeconds {}): expiry → System deletion observed",
                        thousands(s.n),
                        a.lease_secs
                    ),
                    format!(
                        "{} (min {:.0} ms; {}/{} collected; last renewals spread over {}; load {})",
                        s.delay.ms(),
                        s.delay.min,
                        s.delay.n,
                        s.n,
                        secs(s.renew_burst),
                        s.load
                    ),
                );
                rep.row(
                    "Operator peak RSS (VmHWM), sessions".into(),
                    mib(s.rss_peak_kib),
                );
            }
            Err(e) => rep.row("Sessions".into(), format!("failed: {e}")),
        }
    }
    for n in rest {
        scale(&a, &tpl, n, &mut rep).await;
    }
    let Report { rows, calls } = rep;

    println!();
    println!("## Results");
    println!();
    println!(
        "commit `{}` · {} CPUs · load average at start {} / at end {} · max({}, ⌈N/100⌉) simulated nodes for N Systems (110 pods each) × {} CPU × {} · pod ready delay {} ms · {} creates in flight · controller `--concurrency {}` · total {:.0} s",
        commit(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_start,
        load_average(),
        a.nodes,
        a.node_cpu,
        a.node_memory,
        a.pod_delay_ms,
        a.parallel,
        a.concurrency,
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("| Measure | Result |");
    println!("|---|---|");
    for (k, v) in &rows {
        println!("| {k} | {v} |");
    }
    for (n, u) in &calls {
        println!();
        println!(
            "API calls of {} reconciles of unchanged Systems ({} Systems), by verb and resource (per reconcile):",
            u.reconciles,
            thousands(*n)
        );
        println!();
        println!("| Call | Count | Per reconcile |");
        println!("|---|---|---|");
        for (call, count) in &u.by_call {
            println!(
                "| {call} | {count} | {:.2} |",
                *count as f64 / u.reconciles.max(1.0)
            );
        }
    }
    Ok(())
}

fn main() {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("e2e: {e}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("e2e: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("e2e: {e}");
        std::process::exit(1);
    }
}

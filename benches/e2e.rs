//! End-to-end benchmark of Tycho on the Kubernetes API emulator, or on a real cluster given by its
//! kubeconfig (run by hand, not in CI).
//!
//! ```text
//! cargo bench --bench e2e -- [--systems 1000,10000] [--quick] [--rate 5,20] [--steady-secs 30]
//!                            [--sessions 1000] [--lease-secs 10] [--nodes 50] [--pod-delay-ms 50]
//!                            [--parallel 32] [--concurrency 8] [--touch 1000] [--timeout-secs 600]
//!                            [--no-floor] [--no-steady] [--no-sessions]
//!                            [--kubeconfig PATH] [--audit-log PATH] [--plot-dir DIR]
//! ```
//!
//! With `--kubeconfig PATH` (or `TYCHO_BENCH_KUBECONFIG`) every phase runs on that cluster instead of a
//! fresh emulator: in a fresh namespace (deleted, and waited for, after the phase), with the CRD from
//! `crds/` created or replaced, and `tycho controller --kubeconfig PATH --namespace NS` as the operator.
//! The simulated-node options (`--nodes`, `--node-cpu`, `--node-memory`, `--pod-delay-ms`,
//! `--watch-history`) do not apply there: the cluster's own nodes run the pods. The API calls of unchanged
//! reconciles are counted from the API server's audit log (`--audit-log`, default `audit.log` beside the
//! kubeconfig, as `hack/cluster.sh` writes it with `TYCHO_CLUSTER_AUDIT=1`) by the controller's
//! User-Agent; without an audit log only the writes are known (the controller's own
//! `tycho_api_writes_total`) and the reads are reported as n/a.
//!
//! `TYCHO_BENCH_BIN` names another `tycho` binary to run as the operator (default: this build's).
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
//!    `tycho_operator::render::Renderer`) created straight through the API with no operator, until every
//!    Deployment is ready; Tycho's time is reported as a ratio to it;
//! 3. **steady**: create→Ready latency at `--rate` Systems/s for `--steady-secs`;
//! 4. **sessions**: `--sessions` Leases (one System each) renewed until all Systems are Ready, then
//!    renewed one last time together and abandoned; for each System, the delay between its Lease's
//!    expiry (last renewal acknowledged + `leaseDurationSeconds`) and the observed deletion.
//!
//! NodePorts are limited to 2,768 (30000–32767): a run of more Systems than that uses
//! `expose: ClusterIP` for all of them (and for its floor), and says so.
//!
//! Progress goes to stderr; the results table (markdown) to stdout; for each N with a floor, an SVG plot
//! of Ready over time for Tycho and the floor to `--plot-dir` (default `target/e2e-bench/ready-N.svg`).

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, header};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tycho_emulator::{Emulator, EmulatorConfig, RequestRecord};
use tycho_model::{Expose, Phase, System};
use tycho_operator::render::{RenderSettings, Renderer, WorkloadObject};

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
    /// A real cluster to run on instead of the emulator (`--kubeconfig` or `TYCHO_BENCH_KUBECONFIG`).
    kubeconfig: Option<PathBuf>,
    /// The real API server's audit log (JSON lines), to count the controller's requests.
    audit_log: Option<PathBuf>,
    /// Simulated-node options given on the command line (ignored on a real cluster: said so).
    sim_flags: Vec<String>,
    /// Where the plots of Ready over time go (`--plot-dir`, default `target/e2e-bench`).
    plot_dir: PathBuf,
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
            kubeconfig: std::env::var_os("TYCHO_BENCH_KUBECONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            audit_log: None,
            sim_flags: Vec::new(),
            plot_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/e2e-bench")),
        };
        let mut it = argv.into_iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .ok_or_else(|| format!("{flag} needs a value").to_string())
            };
            if matches!(
                flag.as_str(),
                "--nodes" | "--node-cpu" | "--node-memory" | "--pod-delay-ms" | "--watch-history"
            ) {
                a.sim_flags.push(flag.clone());
            }
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
                "--kubeconfig" => a.kubeconfig = Some(PathBuf::from(value()?)),
                "--plot-dir" => a.plot_dir = PathBuf::from(value()?),
                "--audit-log" => a.audit_log = Some(PathBuf::from(value()?)),
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        if a.parallel == 0 || a.rates.iter().any(|r| *r <= 0.0) || a.lease_secs == 0 {
            return Err("--parallel, --rate and --lease-secs must be positive".into());
        }
        if let Some(kc) = &a.kubeconfig {
            if a.audit_log.is_none() {
                let beside = kc
                    .parent()
                    .map(|d| d.join("audit.log"))
                    .filter(|p| p.is_file());
                a.audit_log = beside;
            }
        } else if a.audit_log.is_some() {
            return Err(
                "--audit-log needs --kubeconfig (the emulator has its own request log)".into(),
            );
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
    /// The emulator of this phase; `None` on a real cluster.
    emu: Option<Emulator>,
    client: Client,
    /// The namespace of the phase's objects.
    ns: String,
    /// The kubeconfig the controller uses.
    kubeconfig: PathBuf,
    /// What runs the pods (for the report).
    nodes: String,
    /// The real API server's audit log, if there is one.
    audit: Option<PathBuf>,
    controller: Option<Controller>,
}

/// The `tycho` binary run as the operator: this build's, or `TYCHO_BENCH_BIN` (a copy pinned for a long
/// run while the working tree is rebuilt by others).
fn tycho_bin() -> PathBuf {
    std::env::var_os("TYCHO_BENCH_BIN")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tycho")), PathBuf::from)
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
        match &a.kubeconfig {
            Some(kc) => Self::start_real(a, kc, label, with_controller, n).await,
            None => Self::start_emulator(a, label, with_controller, n).await,
        }
    }

    async fn start_emulator(a: &Args, label: &str, with_controller: bool, n: usize) -> R<Cluster> {
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
        let kubeconfig = emu.kubeconfig_path().to_path_buf();
        let mut cl = Cluster {
            emu: Some(emu),
            client,
            ns: NS.to_string(),
            kubeconfig,
            nodes: format!("{nodes} simulated nodes"),
            audit: None,
            controller: None,
        };
        if with_controller {
            cl.controller = Some(cl.spawn_controller(a, label).await?);
        }
        Ok(cl)
    }

    /// A phase on a real cluster: a fresh namespace, the CRD from `crds/`, the controller limited to
    /// the namespace.
    async fn start_real(
        a: &Args,
        kubeconfig: &Path,
        label: &str,
        with_controller: bool,
        n: usize,
    ) -> R<Cluster> {
        let client = real_client(kubeconfig).await?;
        install_crd_file(&client).await?;
        let ns = format!(
            "bench-{}-{:06x}",
            label
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                })
                .collect::<String>(),
            rand::random::<u32>() & 0xff_ffff
        );
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await?;
        // Bare pods need the namespace's default ServiceAccount (Deployments' pods too, at admission).
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
        let start = Instant::now();
        while sas.get_opt("default").await?.is_none() {
            if start.elapsed() > Duration::from_secs(60) {
                return Err(
                    format!("namespace {ns}: no default ServiceAccount within 60 s").into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The Systems' resource must be served in the new namespace before anything is created.
        let systems: Api<System> = Api::namespaced(client.clone(), &ns);
        while systems.list(&ListParams::default().limit(1)).await.is_err() {
            if start.elapsed() > Duration::from_secs(60) {
                return Err("the System CRD was not served within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (ready_nodes, pods) = real_nodes(&client).await?;
        if pods < n as u64 {
            log(format!(
                "  warning: the cluster's {ready_nodes} Ready nodes allocate {pods} pods, fewer than {n}"
            ));
        }
        log(format!(
            "  namespace {ns} on the real cluster ({ready_nodes} Ready nodes, {pods} pods allocatable)"
        ));
        let mut cl = Cluster {
            emu: None,
            client,
            ns,
            kubeconfig: kubeconfig.to_path_buf(),
            nodes: format!("the cluster's {ready_nodes} nodes ({pods} pods allocatable)"),
            audit: a.audit_log.clone(),
            controller: None,
        };
        if with_controller {
            match cl.spawn_controller(a, label).await {
                Ok(c) => cl.controller = Some(c),
                Err(e) => {
                    cl.stop().await;
                    return Err(e);
                }
            }
        }
        Ok(cl)
    }

    async fn spawn_controller(&self, a: &Args, label: &str) -> R<Controller> {
        let port = free_port()?;
        let log_path = std::env::temp_dir().join(format!("tycho-bench-controller-{label}.log"));
        let mut cmd = tokio::process::Command::new(tycho_bin());
        cmd.args([
            "controller",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--concurrency",
            &a.concurrency.to_string(),
        ]);
        if self.emu.is_none() {
            // A real cluster is shared by the phases (and maybe others): watch only this namespace.
            cmd.arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["--namespace", &self.ns]);
        }
        let child = cmd
            .env("KUBECONFIG", &self.kubeconfig)
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
            "  controller pid {} ({}) ready in {:.2} s (log {})",
            c.pid,
            tycho_bin().display(),
            start.elapsed().as_secs_f64(),
            c.log.display()
        ));
        Ok(c)
    }

    fn systems(&self) -> Api<System> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// A counter of the controller's `/metrics` (`tycho_<name>`).
    async fn metric(&self, name: &str) -> R<f64> {
        let port = self
            .controller
            .as_ref()
            .ok_or("no controller")?
            .metrics_port;
        let (_, body) = http_get(port, "/metrics").await?;
        let prefix = format!("{name} ");
        body.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("no {name} in /metrics").into())
    }

    async fn reconciles(&self) -> R<f64> {
        self.metric("tycho_reconciles_total").await
    }

    /// Write requests the controller's reconciles sent (its own counter; Events are not counted).
    async fn writes(&self) -> R<f64> {
        self.metric("tycho_api_writes_total").await
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
        match self.emu.take() {
            Some(emu) => emu.shutdown().await,
            None => delete_namespace(&self.client, &self.ns).await,
        }
    }
}

/// A client of the real cluster of `kubeconfig`, sending the benchmark's User-Agent.
async fn real_client(kubeconfig: &Path) -> R<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    cfg.headers
        .push((header::USER_AGENT, HeaderValue::from_static(UA)));
    Ok(Client::try_from(cfg)?)
}

/// Creates the CRDs of `crds/` (System and SystemTemplate: the operator watches both), or replaces the
/// versions installed, and waits until each is Established.
async fn install_crd_file(client: &Client) -> R<()> {
    for file in ["tycho.dev_systems.yaml", "tycho.dev_systemtemplates.yaml"] {
        install_one_crd(client, file).await?;
    }
    Ok(())
}

async fn install_one_crd(client: &Client, file: &str) -> R<()> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("crds")
        .join(file);
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&std::fs::read_to_string(&path)?)?;
    let name = crd
        .metadata
        .name
        .clone()
        .ok_or("the CRD file names no CRD")?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    match crds.get_opt(&name).await? {
        None => {
            crds.create(&PostParams::default(), &crd).await?;
        }
        Some(old) => {
            let mut crd = crd;
            crd.metadata.resource_version = old.metadata.resource_version;
            crds.replace(&name, &PostParams::default(), &crd).await?;
        }
    }
    let start = Instant::now();
    loop {
        let established = crds
            .get(&name)
            .await?
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!("the CRD {name} was not Established within 60 s").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Ready nodes of a real cluster and the pods they allocate.
async fn real_nodes(client: &Client) -> R<(usize, u64)> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let ready: Vec<&Node> = nodes
        .items
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect();
    let pods = ready
        .iter()
        .filter_map(|n| n.status.as_ref()?.allocatable.as_ref()?.get("pods"))
        .filter_map(|q| tycho_model::quantity::Quantity::parse(&q.0).ok()?.value())
        .map(|v| u64::try_from(v).unwrap_or(0))
        .sum();
    Ok((ready.len(), pods))
}

/// Deletes a phase's namespace and waits (up to 10 min) until it is gone, so that the next phase starts
/// on a quiet cluster.
async fn delete_namespace(client: &Client, ns: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let start = Instant::now();
    if let Err(e) = api.delete(ns, &DeleteParams::background()).await {
        log(format!("  could not delete namespace {ns}: {e}"));
        return;
    }
    loop {
        match api.get_opt(ns).await {
            Ok(None) => {
                log(format!(
                    "  namespace {ns} deleted in {} (load {})",
                    secs(start.elapsed()),
                    load_average()
                ));
                return;
            }
            Ok(Some(_)) | Err(_) if start.elapsed() > Duration::from_secs(600) => {
                log(format!(
                    "  namespace {ns} still terminating after 600 s; going on"
                ));
                return;
            }
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
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

fn make_system(
    template: &System,
    name: &str,
    ns: &str,
    cluster_ip: bool,
    session: Option<String>,
) -> System {
    let mut s = template.clone();
    s.metadata.name = Some(name.to_string());
    s.metadata.namespace = Some(ns.to_string());
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

/// Seconds from `t0` at which each of `names` became ready, sorted.
fn ready_times(names: impl Iterator<Item = String>, seen: &Seen, t0: Instant) -> Vec<f64> {
    let mut at: Vec<f64> = names
        .filter_map(|n| {
            seen.ready
                .get(&n)
                .map(|t| t.duration_since(t0).as_secs_f64())
        })
        .collect();
    at.sort_by(f64::total_cmp);
    at
}

/// An SVG line chart of ready objects over time, one step line per series (name, sorted ready times).
fn plot_svg(title: &str, n: usize, series: &[(&str, &str, &[f64])]) -> String {
    let (w, h, left, bottom, top, right) = (720.0, 420.0, 70.0, 50.0, 40.0, 20.0);
    let t_max = series
        .iter()
        .flat_map(|(_, _, t)| t.last().copied())
        .fold(1.0_f64, f64::max)
        * 1.05;
    let x = |t: f64| left + t / t_max * (w - left - right);
    let y = |k: f64| h - bottom - k / n.max(1) as f64 * (h - bottom - top);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{title}</text>\n",
        w / 2.0
    );
    for i in 0..=4 {
        let k = n as f64 * f64::from(i) / 4.0;
        let t = t_max * f64::from(i) / 4.0;
        out += &format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y0:.1}\" y2=\"{y0:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{k:.0}</text>\
             <text x=\"{x0:.1}\" y=\"{}\" text-anchor=\"middle\">{t:.0} s</text>\n",
            w - right,
            left - 6.0,
            y(k) + 4.0,
            h - bottom + 18.0,
            y0 = y(k),
            x0 = x(t),
        );
    }
    out += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">seconds since the first create</text>\n\
         <text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">ready</text>\n",
        (left + w - right) / 2.0,
        h - 10.0,
        h / 2.0,
        h / 2.0
    );
    for (i, (name, color, times)) in series.iter().enumerate() {
        let mut points = format!("{:.1},{:.1}", x(0.0), y(0.0));
        for (k, t) in times.iter().enumerate() {
            points += &format!(
                " {:.1},{:.1} {:.1},{:.1}",
                x(*t),
                y(k as f64),
                x(*t),
                y(k as f64 + 1.0)
            );
        }
        out += &format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{points}\"/>\n\
             <rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\
             <text x=\"{}\" y=\"{}\">{name}</text>\n",
            left + 10.0,
            top + 6.0 + 18.0 * i as f64,
            left + 28.0,
            top + 16.0 + 18.0 * i as f64
        );
    }
    out + "</svg>\n"
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

fn call_name(verb: &str, resource: &str, subresource: &str) -> String {
    if subresource.is_empty() {
        format!("{verb} {resource}")
    } else {
        format!("{verb} {resource}/{subresource}")
    }
}

/// The size of a file (0 when it does not exist).
fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The controller's completed requests (not watches) in the real API server's audit log since byte
/// `offset`, as "verb resource[/subresource]": those whose User-Agent is `tycho-controller/…` and whose
/// namespace is `ns` or none (cluster-scoped). Returns them and the offset after the last whole line.
fn audit_calls(path: &Path, offset: u64, ns: &str) -> R<(Vec<String>, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    // Only whole lines: the server may be writing the last one.
    let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut calls = Vec::new();
    for line in buf[..end].split(|b| *b == b'\n') {
        let Ok(ev) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        let verb = s(&ev["verb"]);
        let namespace = s(&ev["objectRef"]["namespace"]);
        if ev["stage"] != "ResponseComplete"
            || verb == "watch"
            || !s(&ev["userAgent"]).starts_with(CONTROLLER_UA)
            || !(namespace.is_empty() || namespace == ns)
        {
            continue;
        }
        calls.push(call_name(
            &verb,
            &s(&ev["objectRef"]["resource"]),
            &s(&ev["objectRef"]["subresource"]),
        ));
    }
    Ok((calls, offset + end as u64))
}

/// How the controller's requests are observed on a real cluster.
enum Observer {
    /// The audit log, read on from `offset`; `seen` of the controller's calls so far.
    Audit {
        path: PathBuf,
        offset: u64,
        seen: u64,
    },
    /// No request log: the controller's own counters (reconciles + writes) tell whether it is busy.
    Metrics,
}

impl Observer {
    fn new(cl: &Cluster) -> Observer {
        match &cl.audit {
            Some(p) => Observer::Audit {
                path: p.clone(),
                offset: file_len(p),
                seen: 0,
            },
            None => Observer::Metrics,
        }
    }

    /// A number that grows whenever the controller sends requests.
    async fn activity(&mut self, cl: &Cluster) -> R<u64> {
        match self {
            Observer::Audit { path, offset, seen } => {
                let (calls, next) = audit_calls(path, *offset, &cl.ns)?;
                *offset = next;
                *seen += calls.len() as u64;
                Ok(*seen)
            }
            Observer::Metrics => Ok((cl.reconciles().await? + cl.writes().await?) as u64),
        }
    }
}

/// Waits until the controller and the cluster are idle: on the emulator, no relevant request for
/// `quiet`; on a real cluster, no request of the controller in the audit log (or, without one, no change
/// of its reconcile and write counters) for `quiet`.
async fn settle(cl: &Cluster, quiet: Duration, timeout: Duration) -> R<()> {
    let start = Instant::now();
    let mut idle_since = Instant::now();
    let Some(emu) = &cl.emu else {
        let mut obs = Observer::new(cl);
        let mut last = obs.activity(cl).await?;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = obs.activity(cl).await?;
            if now != last {
                last = now;
                idle_since = Instant::now();
            } else if idle_since.elapsed() >= quiet {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err("the controller did not settle".into());
            }
        }
    };
    emu.clear_requests();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let busy = emu.requests().iter().any(relevant);
        if busy {
            emu.clear_requests();
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
    /// Calls by "verb resource"; `None` when no request log exists (real cluster without audit log).
    by_call: Option<BTreeMap<String, usize>>,
    /// Read calls; `None` as above.
    reads: Option<usize>,
    writes: usize,
    /// What happened in the window without trigger.
    baseline: String,
    /// Where the counts come from.
    source: String,
}

/// Merge-patches a no-op annotation onto `names` (bumps `resourceVersion`, not `generation`).
async fn touch_all(api: &Api<System>, names: Vec<String>) -> R<()> {
    stream::iter(names)
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
    Ok(())
}

/// Waits until the controller has reconciled `n` more times than `r0`.
async fn await_reconciles(cl: &Cluster, r0: f64, n: usize) -> R<()> {
    let start = Instant::now();
    while cl.reconciles().await? - r0 < n as f64 {
        if start.elapsed() > Duration::from_secs(300) {
            return Err("the annotated Systems were not all reconciled within 300 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// API calls of reconciles of unchanged Systems, triggered by a no-op annotation change of `touch` Systems.
async fn unchanged_reconciles(cl: &Cluster, names: &[String], touch: usize) -> R<Unchanged> {
    log("  waiting for the cluster to settle");
    settle(cl, Duration::from_secs(3), Duration::from_secs(300)).await?;
    let Some(emu) = &cl.emu else {
        return unchanged_reconciles_real(cl, names, touch).await;
    };
    // Baseline: what happens with no trigger at all.
    emu.clear_requests();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let baseline = emu.requests().iter().filter(|r| relevant(r)).count();
    let baseline_secs = t0.elapsed().as_secs_f64();

    emu.clear_requests();
    let r0 = cl.reconciles().await?;
    let touched: Vec<String> = names.iter().take(touch).cloned().collect();
    let n = touched.len();
    log(format!(
        "  annotating {n} Ready Systems (metadata only: generation unchanged)"
    ));
    touch_all(&cl.systems(), touched).await?;
    await_reconciles(cl, r0, n).await?;
    // Let the last reconciles finish their calls: wait until no new relevant request for 3 s.
    let mut last = usize::MAX;
    let mut stable_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = emu.requests().iter().filter(|r| relevant(r)).count();
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
    let requests = emu.requests();
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
        *by_call
            .entry(call_name(&r.verb, &r.resource, &r.subresource))
            .or_insert(0) += 1;
        if is_write(&r.verb) {
            writes += 1;
        } else {
            reads += 1;
        }
    }
    Ok(Unchanged {
        reconciles,
        touched: n,
        by_call: Some(by_call),
        reads: Some(reads),
        writes,
        baseline: format!("{baseline} calls in {baseline_secs:.0} s without trigger"),
        source: if own_agent {
            "the emulator's request log, by the controller's User-Agent".into()
        } else {
            "the emulator's request log, all but heartbeats and the benchmark's".into()
        },
    })
}

/// [`unchanged_reconciles`] on a real cluster: counted from the audit log by the controller's
/// User-Agent, or — without an audit log — only the writes, from the controller's own counter.
async fn unchanged_reconciles_real(cl: &Cluster, names: &[String], touch: usize) -> R<Unchanged> {
    let mut obs = Observer::new(cl);
    let (r_base, w_base) = (cl.reconciles().await?, cl.writes().await?);
    let a0 = obs.activity(cl).await?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let a1 = obs.activity(cl).await?;
    let baseline_secs = t0.elapsed().as_secs_f64();
    let baseline = match obs {
        Observer::Audit { .. } => {
            format!("{} calls in {baseline_secs:.0} s without trigger", a1 - a0)
        }
        Observer::Metrics => format!(
            "{} reconciles, {} writes in {baseline_secs:.0} s without trigger",
            cl.reconciles().await? - r_base,
            cl.writes().await? - w_base
        ),
    };

    let audit_from = cl.audit.as_deref().map(|p| (p, file_len(p)));
    let (r0, w0) = (cl.reconciles().await?, cl.writes().await?);
    let touched: Vec<String> = names.iter().take(touch).cloned().collect();
    let n = touched.len();
    log(format!(
        "  annotating {n} Ready Systems (metadata only: generation unchanged)"
    ));
    touch_all(&cl.systems(), touched).await?;
    await_reconciles(cl, r0, n).await?;
    // Let the last reconciles finish their calls.
    let mut last = obs.activity(cl).await?;
    let mut stable_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = obs.activity(cl).await?;
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() >= Duration::from_secs(3) {
            break;
        }
    }
    let reconciles = cl.reconciles().await? - r0;
    let own_writes = (cl.writes().await? - w0).round() as usize;
    match audit_from {
        Some((path, offset)) => {
            let (calls, _) = audit_calls(path, offset, &cl.ns)?;
            let mut by_call = BTreeMap::new();
            let (mut reads, mut writes) = (0, 0);
            for c in calls {
                if is_write(c.split(' ').next().unwrap_or_default()) {
                    writes += 1;
                } else {
                    reads += 1;
                }
                *by_call.entry(c).or_insert(0) += 1;
            }
            Ok(Unchanged {
                reconciles,
                touched: n,
                by_call: Some(by_call),
                reads: Some(reads),
                writes,
                baseline,
                source: format!(
                    "the API server's audit log {}, by the controller's User-Agent (tycho_api_writes_total: {own_writes})",
                    path.display()
                ),
            })
        }
        None => Ok(Unchanged {
            reconciles,
            touched: n,
            by_call: None,
            reads: None,
            writes: own_writes,
            baseline,
            source: "the controller's tycho_api_writes_total (apply, delete, status, annotate; Events not counted); reads n/a: a real server without an audit log has no per-client request count".into(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Phases

struct Burst {
    ready: usize,
    time: Duration,
    /// Seconds from the first create at which each System turned Ready, in order.
    ready_at: Vec<f64>,
    curve: String,
    create_time: Duration,
    latency: Dist,
    reconciles_per_system: f64,
    rss_peak_kib: Option<u64>,
    rss_now_kib: Option<u64>,
    unchanged: Option<Unchanged>,
    load: String,
    nodes: String,
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
            .map(|i| make_system(tpl, &name_of("sys", i), &cl.ns, cluster_ip, None))
            .collect();
        let names: Vec<String> = systems.iter().map(ResourceExt::name_any).collect();
        let t0 = Instant::now();
        let sent = create_systems(&api, systems, a.parallel).await?;
        let create_time = t0.elapsed();
        log(format!("  {n} creates sent in {}", secs(create_time)));
        let ready = wait_for("Systems Ready", &seen, |s| s.ready.len(), n, a.timeout()).await;
        let given_up = t0.elapsed();
        let (time, latency, curve, ready_at) = {
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
                ready_times(names.iter().cloned(), &s, t0),
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
            ready_at,
            curve,
            create_time,
            latency,
            reconciles_per_system,
            rss_peak_kib: rss.map(|r| r.0),
            rss_now_kib: rss.map(|r| r.1),
            unchanged,
            load,
            nodes: cl.nodes.clone(),
        })
    }
    .await;
    cl.stop().await;
    result
}

struct Floor {
    ready: usize,
    time: Duration,
    /// Seconds from the first create at which each Deployment turned ready, in order.
    ready_at: Vec<f64>,
    curve: String,
    load: String,
}

async fn floor(a: &Args, tpl: &System, n: usize) -> R<Floor> {
    let cluster_ip = n > NODEPORT_LIMIT;
    log(format!(
        "floor: the rendered objects of {n} Systems (ConfigMap, Service, Deployment) with no operator"
    ));
    let cl = Cluster::start(a, &format!("floor-{n}"), false, n).await?;
    let result = async {
        let renderer = Renderer::new(RenderSettings::default())?;
        // Render up front: the floor measures the API and the cluster, not the templates.
        let mut objects = Vec::with_capacity(n);
        for i in 0..n {
            let s = make_system(tpl, &name_of("sys", i), &cl.ns, cluster_ip, None);
            let r = renderer.render(&s)?;
            let WorkloadObject::Deployment(d) = r.workload else {
                return Err("the template renders a bare Pod, not a Deployment".into());
            };
            objects.push((r.config_map, r.service, *d));
        }
        let ns = cl.ns.clone();
        let deployments: Api<Deployment> = Api::namespaced(cl.client.clone(), &ns);
        let (seen, watch) = track(deployments.clone(), deployment_ready);
        let names: Vec<String> = objects.iter().map(|o| o.2.name_any()).collect();
        let client = cl.client.clone();
        let t0 = Instant::now();
        stream::iter(objects)
            .map(|(cm, svc, d)| {
                let client = client.clone();
                let ns = ns.clone();
                async move {
                    let pp = PostParams::default();
                    if let Some(cm) = cm {
                        Api::namespaced(client.clone(), &ns)
                            .create(&pp, &cm)
                            .await?;
                    }
                    if let Some(svc) = svc {
                        Api::namespaced(client.clone(), &ns)
                            .create(&pp, &svc)
                            .await?;
                    }
                    Api::<Deployment>::namespaced(client, &ns)
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
        let (time, curve, ready_at) = {
            let s = lock(&seen);
            let time = if ready >= n {
                last_ready(names.iter().cloned(), &s)
                    .ok_or("no Deployment ready")?
                    .duration_since(t0)
            } else {
                given_up
            };
            (
                time,
                curve(names.iter().cloned(), &s, t0, n),
                ready_times(names.iter().cloned(), &s, t0),
            )
        };
        let load = load_average();
        log(format!(
            "  {ready}/{n} Deployments ready in {} (load {load}); {curve}",
            secs(time)
        ));
        Ok::<_, Box<dyn Error + Send + Sync>>(Floor {
            ready,
            time,
            ready_at,
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
    let cluster_ip = total > NODEPORT_LIMIT;
    log(format!(
        "steady: {rate} Systems/s for {} s ({total} Systems{})",
        a.steady_secs,
        if cluster_ip {
            "; expose: ClusterIP"
        } else {
            ""
        }
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
            // More Systems than NodePorts: all ClusterIP, as in the burst phase.
            let s = make_system(tpl, &name_of("steady", i), &cl.ns, cluster_ip, None);
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
        let leases: Api<Lease> = Api::namespaced(cl.client.clone(), &cl.ns);
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
            .map(|i| {
                make_system(
                    tpl,
                    &name_of("sys", i),
                    &cl.ns,
                    false,
                    Some(name_of("lease", i)),
                )
            })
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
                "{} → **{:.1} Systems/s** ({}; creates sent in {}; {}; load {})",
                secs(b.time),
                rate(n, b.time),
                b.nodes,
                secs(b.create_time),
                b.curve,
                b.load
            )
        } else {
            format!(
                "**did not finish**: {}/{n} Ready after {} ({:.1} Systems/s; {}; creates sent in {}; {}; load {})",
                b.ready,
                secs(b.time),
                rate(b.ready, b.time),
                b.nodes,
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
        let reads = u
            .reads
            .map_or("reads n/a".into(), |r| format!("{:.2} reads", per(r)));
        rep.row(
            format!("API calls per reconcile of an unchanged System ({label})"),
            format!(
                "**{reads}, {:.2} writes** ({} reconciles after {} no-op annotations; baseline {}; counted from {})",
                per(u.writes),
                u.reconciles,
                u.touched,
                u.baseline,
                u.source
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
                let svg = plot_svg(
                    &format!("Ready over time, {label}"),
                    n,
                    &[
                        ("Tycho: Systems Ready", "#d62728", &b.ready_at),
                        (
                            "floor: Deployments ready, no operator",
                            "#1f77b4",
                            &f.ready_at,
                        ),
                    ],
                );
                let path = a.plot_dir.join(format!("ready-{n}.svg"));
                match std::fs::create_dir_all(&a.plot_dir).and_then(|()| std::fs::write(&path, svg))
                {
                    Ok(()) => log(format!("  plot written to {}", path.display())),
                    Err(e) => log(format!("  cannot write the plot {}: {e}", path.display())),
                }
            }
            Err(e) => rep.row(format!("Floor, {label}"), format!("failed: {e}")),
        }
    }
}

/// What a real cluster is, checked once before the phases; and the ServiceCIDR the benchmark added.
struct RealTarget {
    describe: String,
    added_cidr: bool,
    client: Client,
}

/// The ServiceCIDRs (`networking.k8s.io/v1`) of a real cluster.
fn service_cidrs(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("networking.k8s.io", "v1", "ServiceCIDR");
    Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk))
}

/// ClusterIPs the IPv4 CIDRs of the cluster's ServiceCIDRs hold (network and broadcast excluded).
async fn service_ips(client: &Client) -> R<u64> {
    let list = service_cidrs(client).list(&ListParams::default()).await?;
    let mut total = 0u64;
    for o in list.items {
        for cidr in o.data["spec"]["cidrs"].as_array().into_iter().flatten() {
            let c = cidr.as_str().unwrap_or_default();
            if let Some((ip, bits)) = c.split_once('/')
                && ip.contains('.')
                && let Ok(bits) = bits.parse::<u32>()
                && bits <= 30
            {
                total += (1u64 << (32 - bits)) - 2;
            }
        }
    }
    Ok(total)
}

/// Connects to the real cluster, describes it, says which options do not apply, and makes sure that it
/// has a ClusterIP for each of the `services` Services a phase creates (a small service range, like the
/// /24 of `hack/cluster.sh`, holds 254: the benchmark then adds a ServiceCIDR `tycho-bench` 10.96.0.0/16,
/// and deletes it at the end).
async fn prepare_real(a: &Args, kubeconfig: &Path, services: usize) -> R<RealTarget> {
    let client = real_client(kubeconfig).await?;
    let version = client.apiserver_version().await?;
    let (nodes, pods) = real_nodes(&client).await?;
    let server = Kubeconfig::read_from(kubeconfig)
        .ok()
        .and_then(|kc| kc.clusters.first()?.cluster.as_ref()?.server.clone())
        .unwrap_or_else(|| "?".into());
    log(format!(
        "real cluster {server}: Kubernetes {}, {nodes} Ready nodes, {pods} pods allocatable",
        version.git_version
    ));
    if !a.sim_flags.is_empty() {
        log(format!(
            "  {} only configure the emulator's simulated nodes: ignored on a real cluster",
            a.sim_flags.join(", ")
        ));
    }
    match &a.audit_log {
        Some(p) => log(format!(
            "  counting the controller's requests from the audit log {}",
            p.display()
        )),
        None => log(
            "  no audit log (TYCHO_CLUSTER_AUDIT=1 / --audit-log): API reads per reconcile are n/a, writes come from tycho_api_writes_total",
        ),
    }
    let have = service_ips(&client).await?;
    let mut added_cidr = false;
    if have < services as u64 + 16 {
        log(format!(
            "  the cluster's ServiceCIDRs hold {have} ClusterIPs, fewer than the {services} Services of a phase: adding ServiceCIDR tycho-bench 10.96.0.0/16"
        ));
        let cidr: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "ServiceCIDR",
            "metadata": {"name": "tycho-bench"},
            "spec": {"cidrs": ["10.96.0.0/16"]}
        }))?;
        match service_cidrs(&client)
            .create(&PostParams::default(), &cidr)
            .await
        {
            Ok(_) => added_cidr = true,
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        // Wait until the new range is Ready (the allocator uses it only then).
        let start = Instant::now();
        loop {
            let o = service_cidrs(&client).get("tycho-bench").await?;
            let ready = o.data["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            if ready {
                break;
            }
            if start.elapsed() > Duration::from_secs(30) {
                log("  ServiceCIDR tycho-bench not Ready after 30 s; going on");
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(RealTarget {
        describe: format!(
            "real control plane at {server} (Kubernetes {}; {nodes} Ready nodes, {pods} pods allocatable), a fresh namespace per phase, `tycho controller --namespace NS`; API calls counted from {}",
            version.git_version,
            a.audit_log.as_ref().map_or(
                "the controller's own write counter (no audit log: reads n/a)".to_string(),
                |p| format!("the audit log {}", p.display())
            )
        ),
        added_cidr,
        client,
    })
}

async fn run(a: Args) -> R<()> {
    let tpl = template()?;
    let started = Instant::now();
    let load_start = load_average();
    // At the start: others may commit to the working tree while a long run goes on.
    let commit_start = commit();
    let most_services = a
        .systems
        .iter()
        .copied()
        .chain(a.session_phase.then_some(a.sessions))
        .chain(
            a.rates
                .iter()
                .filter(|_| a.steady)
                .map(|r| (r * a.steady_secs as f64).round() as usize),
        )
        .max()
        .unwrap_or(0);
    let real = match &a.kubeconfig {
        Some(kc) => Some(prepare_real(&a, kc, most_services).await?),
        None => None,
    };
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
    if let Some(r) = &real
        && r.added_cidr
    {
        // Finalized by the API server once no Service holds one of its addresses (the namespaces are gone).
        let _ = service_cidrs(&r.client)
            .delete("tycho-bench", &DeleteParams::default())
            .await;
    }

    let target = match &real {
        Some(r) => format!(
            "{} · simulated-node options (`--nodes`, `--node-cpu`, `--node-memory`, `--pod-delay-ms`, `--watch-history`) do not apply",
            r.describe
        ),
        None => format!(
            "emulator: max({}, ⌈N/100⌉) simulated nodes for N Systems (110 pods each) × {} CPU × {} · pod ready delay {} ms",
            a.nodes, a.node_cpu, a.node_memory, a.pod_delay_ms
        ),
    };
    println!();
    println!("## Results");
    println!();
    println!(
        "commit `{}` at the start · {} CPUs · load average at start {} / at end {} · {target} · {} creates in flight · controller `--concurrency {}` · total {:.0} s",
        commit_start,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_start,
        load_average(),
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
        let Some(by_call) = &u.by_call else {
            continue;
        };
        println!();
        println!(
            "API calls of {} reconciles of unchanged Systems ({} Systems), by verb and resource (per reconcile):",
            u.reconciles,
            thousands(*n)
        );
        println!();
        println!("| Call | Count | Per reconcile |");
        println!("|---|---|---|");
        for (call, count) in by_call {
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

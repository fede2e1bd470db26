//! The state of one simulated container: its filesystem (seeded from the image catalogue and the
//! pod's volumes), environment, process table, listening ports and log.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use tokio::sync::{broadcast, mpsc, watch};

use super::fs::{self, Fs};

/// Most log lines kept per container (the oldest are dropped, as log rotation would).
pub const MAX_LOG_LINES: usize = 20_000;

/// Prefix of the log lines the simulator writes itself (a real image would log other things).
pub const SIM_PREFIX: &str = "[tycho-sim]";

/// One line of a container log.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// When it was written.
    pub time: DateTime<Utc>,
    /// The text, without the trailing newline.
    pub text: String,
}

/// Where the access-log lines of a listening process go.
#[derive(Debug, Clone)]
pub enum AccessSink {
    /// The container log (the main process: its stdout is the log).
    ContainerLog,
    /// The stdout of an exec'd process.
    Stdout(mpsc::Sender<Bytes>),
}

/// A process in the container's process table.
#[derive(Debug)]
pub struct ProcInfo {
    /// Command line as `ps` shows it.
    pub cmdline: String,
    /// Start time.
    pub started: DateTime<Utc>,
    /// Set to true to terminate the process (SIGTERM); `None` for PID 1.
    pub kill: Option<watch::Sender<bool>>,
}

#[derive(Debug, Default)]
struct Procs {
    next_pid: u32,
    table: BTreeMap<u32, ProcInfo>,
    /// port → (pid, sink) of the process listening on it.
    listeners: BTreeMap<u16, (u32, AccessSink)>,
}

/// A running simulated container.
#[derive(Debug)]
pub struct SimContainer {
    /// Namespace of the pod.
    pub namespace: String,
    /// Name of the pod.
    pub pod_name: String,
    /// UID of the pod.
    pub pod_uid: String,
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Command line of PID 1.
    pub main_cmdline: String,
    /// Whether PID 1 is an idle process (a shell or `sleep`) that serves nothing.
    pub idle: bool,
    /// Working directory.
    pub workdir: String,
    /// Hostname (the pod name).
    pub hostname: String,
    /// Environment of processes started in the container.
    pub env: Vec<(String, String)>,
    /// Declared container ports (TCP).
    pub declared_ports: Vec<u16>,
    /// Paths of the files mounted from ConfigMap/Secret volumes (pre-boot files), in mount order.
    pub mounted_files: Vec<String>,
    /// When the container started.
    pub started: DateTime<Utc>,
    fs: Mutex<Fs>,
    procs: Mutex<Procs>,
    log: Mutex<Vec<LogLine>>,
    log_tx: broadcast::Sender<LogLine>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data inconsistent in a way
    // that matters for a simulation, so recover from poisoning.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The last path segment of an image reference without tag or digest (`docker.io/library/nginx:1.27` → `nginx`).
pub fn image_short_name(image: &str) -> String {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    last.split(':').next().unwrap_or(last).to_string()
}

/// Shell-like quoting of one word for display.
pub fn quote_word(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// Files the simulated images carry, so that the seed's examples behave as with the real image.
fn image_files(short: &str) -> Vec<(&'static str, &'static str)> {
    match short {
        "nginx" => vec![
            (
                "/usr/share/nginx/html/index.html",
                "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n<p>If you see this page, the nginx web server is successfully installed and\nworking. (Simulated by the Tycho emulator.)</p>\n</body>\n</html>\n",
            ),
            (
                "/usr/share/nginx/html/50x.html",
                "<!DOCTYPE html>\n<html>\n<head>\n<title>Error</title>\n</head>\n<body>\n<h1>An error occurred.</h1>\n</body>\n</html>\n",
            ),
            (
                "/etc/nginx/nginx.conf",
                "user  nginx;\nworker_processes  auto;\n\nerror_log  /var/log/nginx/error.log notice;\npid        /var/run/nginx.pid;\n\nevents {\n    worker_connections  1024;\n}\n\nhttp {\n    include       /etc/nginx/mime.types;\n    default_type  application/octet-stream;\n    access_log  /var/log/nginx/access.log  main;\n    sendfile        on;\n    keepalive_timeout  65;\n    include /etc/nginx/conf.d/*.conf;\n}\n",
            ),
            (
                "/etc/nginx/conf.d/default.conf",
                "server {\n    listen       80;\n    server_name  localhost;\n    location / {\n        root   /usr/share/nginx/html;\n        index  index.html index.htm;\n    }\n}\n",
            ),
        ],
        _ => Vec::new(),
    }
}

/// What the kubelet resolved from the API before creating a container: the ConfigMaps and
/// Secrets the pod refers to (missing ones are simply absent).
#[derive(Debug, Default, Clone)]
pub struct PodObjects {
    /// ConfigMaps by name.
    pub config_maps: HashMap<String, ConfigMap>,
    /// Secrets by name.
    pub secrets: HashMap<String, Secret>,
}

/// Default command line of an image when the pod names none.
fn image_default_cmdline(short: &str) -> Vec<String> {
    match short {
        "nginx" => vec!["nginx".into(), "-g".into(), "daemon off;".into()],
        other => vec![other.to_string()],
    }
}

/// Whether a command line is an idle process: a shell, `sleep`, `pause` or `tail`.
pub fn is_idle_command(argv: &[String]) -> bool {
    argv.first().is_some_and(|a0| {
        matches!(
            fs::basename(a0),
            "sh" | "bash" | "ash" | "dash" | "sleep" | "pause" | "tail"
        )
    })
}

/// Volume file: path relative to the volume root, content, mode.
type VolumeFile = (String, Bytes, u32);

fn volume_files(pod: &Pod, volume: &str, objs: &PodObjects) -> Option<Vec<VolumeFile>> {
    let spec = pod.spec.as_ref()?;
    let vol = spec.volumes.as_ref()?.iter().find(|v| v.name == volume)?;
    let mut out = Vec::new();
    if let Some(cm) = &vol.config_map {
        let default_mode = cm.default_mode.unwrap_or(0o644) as u32;
        let obj = objs.config_maps.get(&cm.name)?;
        let mut data: BTreeMap<String, Bytes> = BTreeMap::new();
        for (k, v) in obj.data.iter().flatten() {
            data.insert(k.clone(), Bytes::from(v.clone().into_bytes()));
        }
        for (k, v) in obj.binary_data.iter().flatten() {
            data.insert(k.clone(), Bytes::from(v.0.clone()));
        }
        match &cm.items {
            Some(items) if !items.is_empty() => {
                for it in items {
                    if let Some(d) = data.get(&it.key) {
                        let mode = it.mode.map(|m| m as u32).unwrap_or(default_mode);
                        out.push((it.path.clone(), d.clone(), mode));
                    }
                }
            }
            _ => {
                for (k, d) in data {
                    out.push((k, d, default_mode));
                }
            }
        }
        return Some(out);
    }
    if let Some(sec) = &vol.secret {
        let default_mode = sec.default_mode.unwrap_or(0o644) as u32;
        let name = sec.secret_name.as_deref()?;
        let obj = objs.secrets.get(name)?;
        let mut data: BTreeMap<String, Bytes> = BTreeMap::new();
        for (k, v) in obj.data.iter().flatten() {
            data.insert(k.clone(), Bytes::from(v.0.clone()));
        }
        for (k, v) in obj.string_data.iter().flatten() {
            data.insert(k.clone(), Bytes::from(v.clone().into_bytes()));
        }
        match &sec.items {
            Some(items) if !items.is_empty() => {
                for it in items {
                    if let Some(d) = data.get(&it.key) {
                        let mode = it.mode.map(|m| m as u32).unwrap_or(default_mode);
                        out.push((it.path.clone(), d.clone(), mode));
                    }
                }
            }
            _ => {
                for (k, d) in data {
                    out.push((k, d, default_mode));
                }
            }
        }
        return Some(out);
    }
    // emptyDir, PVCs and anything else: an empty directory.
    Some(out)
}

fn field_ref(pod: &Pod, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()),
        p => {
            let key = p
                .strip_prefix("metadata.labels['")
                .or_else(|| p.strip_prefix("metadata.annotations['"))?
                .strip_suffix("']")?;
            if p.starts_with("metadata.labels") {
                meta.labels.as_ref()?.get(key).cloned()
            } else {
                meta.annotations.as_ref()?.get(key).cloned()
            }
        }
    }
}

fn resolve_env(pod: &Pod, c: &Container, objs: &PodObjects) -> Vec<(String, String)> {
    let hostname = pod.metadata.name.clone().unwrap_or_default();
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
        ("HOSTNAME".into(), hostname),
        ("HOME".into(), "/root".into()),
    ];
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(e) = env.iter_mut().find(|(n, _)| *n == k) {
            e.1 = v;
        } else {
            env.push((k, v));
        }
    };
    for src in c.env_from.iter().flatten() {
        let prefix = src.prefix.clone().unwrap_or_default();
        if let Some(r) = &src.config_map_ref
            && let Some(cm) = objs.config_maps.get(&r.name)
        {
            for (k, v) in cm.data.iter().flatten() {
                set(&mut env, format!("{prefix}{k}"), v.clone());
            }
        }
        if let Some(r) = &src.secret_ref
            && let Some(s) = objs.secrets.get(&r.name)
        {
            for (k, v) in s.data.iter().flatten() {
                set(
                    &mut env,
                    format!("{prefix}{k}"),
                    String::from_utf8_lossy(&v.0).into_owned(),
                );
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            Some(v.clone())
        } else if let Some(from) = &e.value_from {
            if let Some(r) = &from.config_map_key_ref {
                objs.config_maps
                    .get(&r.name)
                    .and_then(|cm| cm.data.as_ref()?.get(&r.key).cloned())
            } else if let Some(r) = &from.secret_key_ref {
                objs.secrets.get(&r.name).and_then(|s| {
                    s.data
                        .as_ref()?
                        .get(&r.key)
                        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                })
            } else if let Some(f) = &from.field_ref {
                field_ref(pod, &f.field_path)
            } else {
                None
            }
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            set(&mut env, e.name.clone(), v);
        }
    }
    env
}

impl SimContainer {
    /// Build the container `container` of `pod` as the runtime would start it: base directories,
    /// the image's files, then the pod's volume mounts (ConfigMap/Secret files with `subPath`,
    /// `items` and modes), and PID 1.
    pub fn new(
        pod: &Pod,
        container: &Container,
        objs: &PodObjects,
        started: DateTime<Utc>,
    ) -> SimContainer {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let image = container.image.clone().unwrap_or_default();
        let short = image_short_name(&image);
        let mut fs = Fs::new();
        for dir in [
            "/bin",
            "/dev",
            "/etc",
            "/home",
            "/proc",
            "/root",
            "/run",
            "/sbin",
            "/srv",
            "/usr/bin",
            "/usr/local/bin",
            "/usr/share",
            "/var/log",
            "/var/run",
        ] {
            let _ = fs.mkdir_all(dir, 0o755);
        }
        let _ = fs.mkdir_all("/tmp", 0o1777);
        let etc: [(&str, String); 4] = [
            ("/etc/hostname", format!("{pod_name}\n")),
            (
                "/etc/hosts",
                format!(
                    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{}\t{pod_name}\n",
                    pod.status
                        .as_ref()
                        .and_then(|s| s.pod_ip.clone())
                        .unwrap_or_else(|| "10.244.0.1".into())
                ),
            ),
            (
                "/etc/resolv.conf",
                format!(
                    "search {}.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
                    pod.metadata.namespace.clone().unwrap_or_default()
                ),
            ),
            (
                "/etc/os-release",
                "NAME=\"Tycho simulated container\"\nID=tycho-sim\nPRETTY_NAME=\"Simulated by the Tycho emulator (not a real image)\"\n".to_string(),
            ),
        ];
        for (p, c) in etc {
            let _ = fs.write_all(p, Bytes::from(c), Some(0o644));
        }
        for (p, c) in image_files(&short) {
            let _ = fs.write_all(p, Bytes::from_static(c.as_bytes()), Some(0o644));
        }

        let mut mounted_files = Vec::new();
        for m in container.volume_mounts.iter().flatten() {
            let Some(files) = volume_files(pod, &m.name, objs) else {
                continue;
            };
            let mount = fs::normalize("/", &m.mount_path);
            match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => {
                    let sub = sub.trim_matches('/');
                    let mut any = false;
                    for (rel, data, mode) in &files {
                        if rel == sub {
                            // A single file mounted at the mount path.
                            let _ = fs.write_all(&mount, data.clone(), Some(*mode));
                            mounted_files.push(mount.clone());
                            any = true;
                        } else if let Some(rest) = rel.strip_prefix(&format!("{sub}/")) {
                            let path = fs::normalize(&mount, rest);
                            let _ = fs.write_all(&path, data.clone(), Some(*mode));
                            mounted_files.push(path);
                            any = true;
                        }
                    }
                    if !any {
                        // A missing subPath is created as an empty directory, as the kubelet does.
                        let _ = fs.mkdir_all(&mount, 0o755);
                    }
                }
                None => {
                    let _ = fs.mkdir_all(&mount, 0o755);
                    for (rel, data, mode) in &files {
                        let path = fs::normalize(&mount, rel);
                        let _ = fs.write_all(&path, data.clone(), Some(*mode));
                        mounted_files.push(path);
                    }
                }
            }
        }
        for p in &mounted_files {
            fs.set_mtime(p, started);
        }

        let workdir = container
            .working_dir
            .clone()
            .filter(|w| w.starts_with('/'))
            .unwrap_or_else(|| "/".into());
        let _ = fs.mkdir_all(&workdir, 0o755);

        let mut argv: Vec<String> = Vec::new();
        argv.extend(container.command.iter().flatten().cloned());
        argv.extend(container.args.iter().flatten().cloned());
        if argv.is_empty() {
            argv = image_default_cmdline(&short);
        }
        let idle = is_idle_command(&argv);
        let main_cmdline = argv
            .iter()
            .map(|w| quote_word(w))
            .collect::<Vec<_>>()
            .join(" ");
        let declared_ports: Vec<u16> = container
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .filter_map(|p| u16::try_from(p.container_port).ok())
            .collect();

        let mut procs = Procs {
            next_pid: 2,
            ..Procs::default()
        };
        procs.table.insert(
            1,
            ProcInfo {
                cmdline: main_cmdline.clone(),
                started,
                kill: None,
            },
        );
        let mut log = vec![LogLine {
            time: started,
            text: format!(
                "{SIM_PREFIX} starting container {} (image {image}): {main_cmdline}",
                container.name
            ),
        }];
        if !idle {
            for p in &declared_ports {
                procs.listeners.insert(*p, (1, AccessSink::ContainerLog));
                log.push(LogLine {
                    time: started,
                    text: format!("{SIM_PREFIX} listening on port {p}/TCP"),
                });
            }
        }
        let (log_tx, _) = broadcast::channel(1024);
        SimContainer {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            pod_name: pod_name.clone(),
            pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
            name: container.name.clone(),
            image,
            main_cmdline,
            idle,
            workdir,
            hostname: pod_name,
            env: resolve_env(pod, container, objs),
            declared_ports,
            mounted_files,
            started,
            fs: Mutex::new(fs),
            procs: Mutex::new(procs),
            log: Mutex::new(log),
            log_tx,
        }
    }

    /// The container's filesystem, locked. Keep the guard for short, synchronous work only.
    pub fn fs(&self) -> MutexGuard<'_, Fs> {
        lock(&self.fs)
    }

    /// Append a line to the container log (stamped now) and wake followers.
    pub fn log_line(&self, text: impl Into<String>) {
        let line = LogLine {
            time: Utc::now(),
            text: text.into(),
        };
        {
            let mut log = lock(&self.log);
            log.push(line.clone());
            if log.len() > MAX_LOG_LINES {
                let excess = log.len() - MAX_LOG_LINES;
                log.drain(..excess);
            }
        }
        let _ = self.log_tx.send(line);
    }

    /// A snapshot of the log and a receiver of the lines written after it (no line lost or doubled).
    pub fn log_snapshot(&self) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let log = lock(&self.log);
        let rx = self.log_tx.subscribe();
        (log.clone(), rx)
    }

    /// Register a process; returns its pid and the receiver of its kill signal.
    pub fn start_process(&self, cmdline: String) -> (u32, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        let mut procs = lock(&self.procs);
        let pid = procs.next_pid;
        procs.next_pid += 1;
        procs.table.insert(
            pid,
            ProcInfo {
                cmdline,
                started: Utc::now(),
                kill: Some(tx),
            },
        );
        (pid, rx)
    }

    /// Remove a process that exited (and whatever it listened on).
    pub fn end_process(&self, pid: u32) {
        let mut procs = lock(&self.procs);
        procs.table.remove(&pid);
        procs.listeners.retain(|_, (p, _)| *p != pid);
    }

    /// Stop `pid` listening on any port (its sockets are closed).
    pub fn end_process_listeners(&self, pid: u32) {
        lock(&self.procs).listeners.retain(|_, (p, _)| *p != pid);
    }

    /// Send SIGTERM to a process; false when there is no such (killable) process.
    pub fn kill(&self, pid: u32) -> bool {
        let procs = lock(&self.procs);
        match procs.table.get(&pid).and_then(|p| p.kill.as_ref()) {
            Some(tx) => {
                let _ = tx.send(true);
                true
            }
            None => false,
        }
    }

    /// Terminate every process except PID 1 (when the container goes away).
    pub fn kill_all(&self) {
        let procs = lock(&self.procs);
        for p in procs.table.values() {
            if let Some(tx) = &p.kill {
                let _ = tx.send(true);
            }
        }
    }

    /// `(pid, cmdline, start)` of every process, by pid.
    pub fn processes(&self) -> Vec<(u32, String, DateTime<Utc>)> {
        lock(&self.procs)
            .table
            .iter()
            .map(|(pid, p)| (*pid, p.cmdline.clone(), p.started))
            .collect()
    }

    /// Make `pid` listen on `port`; false (EADDRINUSE) when another process listens there.
    pub fn listen(&self, port: u16, pid: u32, sink: AccessSink) -> bool {
        let mut procs = lock(&self.procs);
        if procs.listeners.contains_key(&port) {
            return false;
        }
        procs.listeners.insert(port, (pid, sink));
        true
    }

    /// Where the access log of the process listening on `port` goes; `None` when nothing listens.
    pub fn listener(&self, port: u16) -> Option<AccessSink> {
        lock(&self.procs)
            .listeners
            .get(&port)
            .map(|(_, s)| s.clone())
    }

    /// The document root the simulated HTTP server serves from, and the index file for `/`:
    /// the first of `/usr/share/nginx/html`, `/var/www/html` and the working directory that holds
    /// an `index.html`; otherwise the first pre-boot file whose name ends in `index.html`
    /// (served for `/`, its directory being the root); otherwise the working directory.
    pub fn doc_root(&self) -> (String, Option<String>) {
        let fs = self.fs();
        for root in [
            "/usr/share/nginx/html",
            "/var/www/html",
            self.workdir.as_str(),
        ] {
            let index = fs::normalize(root, "index.html");
            if fs.is_file(&index) {
                return (root.to_string(), Some(index));
            }
        }
        if let Some(f) = self
            .mounted_files
            .iter()
            .find(|f| f.ends_with("index.html") && fs.is_file(f))
        {
            return (fs::parent(f).to_string(), Some(f.clone()));
        }
        (self.workdir.clone(), None)
    }
}

/// Key of a container in the kubelet's runtime table.
pub type ContainerKey = (String, String);

/// Shared handle to a container.
pub type ContainerRef = Arc<SimContainer>;

//! `Location` (a cluster, namespace and session) and `Node`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use tycho_sdk::{ConnectOptions, ContainerSpec, SessionOptions};

use crate::container::{Container, TunnelSlot};
use crate::errors::closed;
use crate::process::ProcState;
use crate::runtime::{block_on, drop_in_runtime, info, lock, seconds};

/// What a Location owns on the Python side: the SDK location (and so the session), and the
/// tunnels and processes that live as long as the session unless destroyed first (as in 20ft,
/// dropping the Python object of a tunnel or process does not end it).
pub(crate) struct SessionState {
    id: u64,
    location: Mutex<Option<tycho_sdk::Location>>,
    tunnels: Mutex<Vec<Arc<TunnelSlot>>>,
    processes: Mutex<Vec<Arc<ProcState>>>,
}

/// Every Location not closed yet, closed at interpreter exit.
static OPEN: Mutex<Vec<Arc<SessionState>>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl SessionState {
    /// The SDK location, or `SessionLostError` once closed.
    pub(crate) fn location(&self) -> PyResult<tycho_sdk::Location> {
        lock(&self.location).clone().ok_or_else(closed)
    }

    /// Keep `slot` open until it is destroyed or the session ends.
    pub(crate) fn keep_tunnel(&self, slot: Arc<TunnelSlot>) {
        let mut tunnels = lock(&self.tunnels);
        tunnels.retain(|t| t.is_open());
        tunnels.push(slot);
    }

    /// Keep `process` running until it is destroyed or the session ends.
    pub(crate) fn keep_process(&self, process: Arc<ProcState>) {
        let mut processes = lock(&self.processes);
        processes.retain(|p| p.is_running());
        processes.push(process);
    }

    /// End everything: processes, tunnels, then the session (the controller deletes its Systems).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let processes = std::mem::take(&mut *lock(&self.processes));
        for p in processes {
            p.destroy();
        }
        let tunnels = std::mem::take(&mut *lock(&self.tunnels));
        for t in tunnels {
            t.close();
        }
        let location = lock(&self.location).take();
        lock(&OPEN).retain(|s| s.id != self.id);
        let Some(location) = location else {
            return Ok(());
        };
        info(
            py,
            &format!(
                "Ending session {} (namespace {})",
                location.session_name(),
                location.namespace()
            ),
        );
        let loc = location.clone();
        let result = block_on(py, async move { loc.close().await });
        drop_in_runtime(location);
        result
    }
}

/// Close every open Location (at interpreter exit).
pub(crate) fn close_all(py: Python<'_>) -> PyResult<()> {
    let open: Vec<Arc<SessionState>> = lock(&OPEN).clone();
    let mut first_error = None;
    for s in open {
        if let Err(e) = s.close(py) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A connection to a Kubernetes cluster with an open session: the 20ft Location.
///
/// `Location()` connects the way kubectl does (`$KUBECONFIG`, else `~/.kube/config`, else the
/// in-cluster configuration); `location` may name a kubeconfig file or a context of the default
/// kubeconfig. The session (a Lease renewed in the background) ends with `close()`, at the end of
/// a `with` block, or when the interpreter exits; the controller then deletes everything spawned
/// in it.
#[pyclass(frozen, module = "tycho")]
pub struct Location {
    pub(crate) state: Arc<SessionState>,
    server: String,
}

#[pymethods]
impl Location {
    #[new]
    #[pyo3(signature = (location=None, *, kubeconfig=None, context=None, namespace=None, debug_log=None, lease_duration=30.0))]
    fn new(
        py: Python<'_>,
        location: Option<String>,
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
        namespace: Option<String>,
        debug_log: Option<bool>,
        lease_duration: f64,
    ) -> PyResult<Location> {
        if let Some(debug) = debug_log {
            configure_logging(py, debug)?;
        }
        let lease_duration = seconds("lease_duration", lease_duration)?;
        let (kubeconfig, context) = resolve_location(location, kubeconfig, context)?;
        let options = ConnectOptions {
            kubeconfig,
            context,
            namespace,
            session: SessionOptions {
                lease_duration,
                ..SessionOptions::default()
            },
        };
        let (config, _) = {
            let o = options.clone();
            block_on(py, async move { o.config().await })?
        };
        let server = config.cluster_url.to_string();
        info(py, &format!("Connecting to: {server}"));
        let loc = block_on(py, async move {
            tycho_sdk::Location::connect_with(options).await
        })?;
        info(
            py,
            &format!(
                "Session {} open in namespace {}",
                loc.session_name(),
                loc.namespace()
            ),
        );
        let state = Arc::new(SessionState {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            location: Mutex::new(Some(loc)),
            tunnels: Mutex::new(Vec::new()),
            processes: Mutex::new(Vec::new()),
        });
        lock(&OPEN).push(Arc::clone(&state));
        Ok(Location { state, server })
    }

    /// The API server's URL.
    #[getter]
    fn server(&self) -> &str {
        &self.server
    }

    /// The namespace containers are spawned in.
    #[getter]
    fn namespace(&self) -> PyResult<String> {
        Ok(self.state.location()?.namespace().to_string())
    }

    /// Name of the session Lease.
    #[getter]
    fn session(&self) -> PyResult<String> {
        Ok(self.state.location()?.session_name().to_string())
    }

    /// Whether the session is gone (closed, or lost: deleted, collected, not renewed in time).
    #[getter]
    fn closed(&self) -> bool {
        match lock(&self.state.location).as_ref() {
            Some(l) => l.session_lost(),
            None => true,
        }
    }

    /// Ready, schedulable nodes, best first (most free memory, then CPU).
    fn ranked_nodes(&self, py: Python<'_>) -> PyResult<Vec<Node>> {
        let loc = self.state.location()?;
        let nodes = block_on(py, async move { loc.nodes().await })?;
        Ok(nodes
            .into_iter()
            .map(|n| Node {
                state: Arc::clone(&self.state),
                inner: n,
            })
            .collect())
    }

    /// The node with the most free memory and CPU.
    fn best_node(&self, py: Python<'_>) -> PyResult<Node> {
        let loc = self.state.location()?;
        let node = block_on(py, async move { loc.best_node().await })?;
        Ok(Node {
            state: Arc::clone(&self.state),
            inner: node,
        })
    }

    /// Spawn a container wherever the scheduler puts it (see `Node.spawn`).
    #[pyo3(signature = (image, *, pre_boot_files=None, sleep=false, env=None, ports=None, command=None, cpus=None, memory=None, name=None, no_image_check=false))]
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        &self,
        py: Python<'_>,
        image: String,
        pre_boot_files: Option<Bound<'_, PyAny>>,
        sleep: bool,
        env: Option<Bound<'_, PyAny>>,
        ports: Option<Vec<u16>>,
        command: Option<Bound<'_, PyAny>>,
        cpus: Option<String>,
        memory: Option<String>,
        name: Option<String>,
        no_image_check: bool,
    ) -> PyResult<Container> {
        let _ = no_image_check;
        let spec = build_spec(
            image,
            pre_boot_files,
            sleep,
            env,
            ports,
            command,
            cpus,
            memory,
            name,
        )?;
        let loc = self.state.location()?;
        let c = block_on(py, async move { loc.spawn(spec).await })?;
        info(py, &format!("Spawning container: {}", c.name()));
        Ok(Container::new(Arc::clone(&self.state), c))
    }

    /// 20ft uploaded images to the location; a Kubernetes node pulls them from their registry
    /// itself, so there is nothing to do. Kept so 20ft scripts run unchanged.
    fn ensure_image_uploaded(&self, py: Python<'_>, image: &str) -> PyResult<()> {
        if image.trim().is_empty() {
            return Err(PyValueError::new_err("the image is empty"));
        }
        info(
            py,
            &format!("Nodes pull images themselves; nothing to upload for: {image}"),
        );
        Ok(())
    }

    /// End the session now: stop tunnels and processes, delete the Lease; the controller deletes
    /// every container spawned in it. Closing twice does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.state.close(py)
    }

    /// The 20ft name of `close()`.
    fn disconnect(&self, py: Python<'_>) -> PyResult<()> {
        self.state.close(py)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.state.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        match lock(&self.state.location).as_ref() {
            Some(l) => format!(
                "<tycho.Location {} namespace={} session={}>",
                self.server,
                l.namespace(),
                l.session_name()
            ),
            None => format!("<tycho.Location {} closed>", self.server),
        }
    }
}

/// A Ready node of the cluster with its free resources when listed.
#[pyclass(frozen, module = "tycho")]
pub struct Node {
    state: Arc<SessionState>,
    inner: tycho_sdk::Node,
}

#[pymethods]
impl Node {
    /// The node's name.
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// Allocatable minus requested CPU, in CPUs.
    #[getter]
    fn free_cpu(&self) -> f64 {
        self.inner.free_cpu_millis as f64 / 1000.0
    }

    /// Allocatable minus requested memory, in bytes.
    #[getter]
    fn free_memory(&self) -> i128 {
        self.inner.free_memory_bytes
    }

    /// Allocatable CPU, in CPUs.
    #[getter]
    fn cpu(&self) -> f64 {
        self.inner.allocatable_cpu_millis as f64 / 1000.0
    }

    /// Allocatable memory, in bytes.
    #[getter]
    fn memory(&self) -> i128 {
        self.inner.allocatable_memory_bytes
    }

    /// Spawn a container on this node. Returns at once: boot is asynchronous, so spawning many
    /// and then waiting boots them in parallel.
    #[pyo3(signature = (image, *, pre_boot_files=None, sleep=false, env=None, ports=None, command=None, cpus=None, memory=None, name=None, no_image_check=false))]
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        &self,
        py: Python<'_>,
        image: String,
        pre_boot_files: Option<Bound<'_, PyAny>>,
        sleep: bool,
        env: Option<Bound<'_, PyAny>>,
        ports: Option<Vec<u16>>,
        command: Option<Bound<'_, PyAny>>,
        cpus: Option<String>,
        memory: Option<String>,
        name: Option<String>,
        no_image_check: bool,
    ) -> PyResult<Container> {
        let _ = no_image_check;
        let spec = build_spec(
            image,
            pre_boot_files,
            sleep,
            env,
            ports,
            command,
            cpus,
            memory,
            name,
        )?;
        // Fails once the Location is closed, though the SDK node still holds the session.
        self.state.location()?;
        let node = self.inner.clone();
        let c = block_on(py, async move { node.spawn(spec).await })?;
        info(
            py,
            &format!(
                "Spawning container: {} on node {}",
                c.name(),
                self.inner.name
            ),
        );
        Ok(Container::new(Arc::clone(&self.state), c))
    }

    fn __repr__(&self) -> String {
        format!(
            "<tycho.Node {} free_cpu={} free_memory={}>",
            self.inner.name,
            self.free_cpu(),
            self.inner.free_memory_bytes
        )
    }
}

/// `location` → (kubeconfig, context): a path when it names a file (or looks like one), else a
/// context of the default kubeconfig.
fn resolve_location(
    location: Option<String>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
) -> PyResult<(Option<PathBuf>, Option<String>)> {
    let Some(loc) = location else {
        return Ok((kubeconfig, context));
    };
    let expanded = match (loc.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(&loc),
    };
    let looks_like_path = loc.contains('/') || expanded.exists();
    if looks_like_path {
        if kubeconfig.is_some() {
            return Err(PyValueError::new_err(
                "give the kubeconfig either as `location` or as `kubeconfig`, not both",
            ));
        }
        if !expanded.is_file() {
            return Err(PyValueError::new_err(format!(
                "no kubeconfig file at {}",
                expanded.display()
            )));
        }
        Ok((Some(expanded), context))
    } else {
        if context.is_some() {
            return Err(PyValueError::new_err(
                "give the context either as `location` or as `context`, not both",
            ));
        }
        Ok((kubeconfig, Some(loc)))
    }
}

/// 20ft's `debug_log`: False sets Python logging to INFO, True to DEBUG, in 20ft's format.
fn configure_logging(py: Python<'_>, debug: bool) -> PyResult<()> {
    let logging = py.import("logging")?;
    let level = logging.getattr(if debug { "DEBUG" } else { "INFO" })?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("level", &level)?;
    kwargs.set_item(
        "format",
        "%(asctime)s.%(msecs)03d %(levelname)-8s %(message)s",
    )?;
    kwargs.set_item("datefmt", "%m%d%H%M%S")?;
    logging.call_method("basicConfig", (), Some(&kwargs))?;
    logging
        .call_method0("getLogger")?
        .call_method1("setLevel", (level,))?;
    Ok(())
}

/// Bytes from `str` (UTF-8) or `bytes`.
fn content(what: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes().to_vec());
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    Err(PyValueError::new_err(format!(
        "{what} must be str or bytes, not {}",
        v.get_type().name()?
    )))
}

/// `(key, value)` pairs from a mapping or an iterable of pairs.
fn pairs<'py>(v: &Bound<'py, PyAny>) -> PyResult<Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
    let items = if let Ok(d) = v.cast::<PyDict>() {
        d.items().into_any()
    } else if v.hasattr("items")? {
        v.call_method0("items")?
    } else {
        v.clone()
    };
    let mut out = Vec::new();
    for item in items.try_iter()? {
        let (k, val): (Bound<'py, PyAny>, Bound<'py, PyAny>) = item?.extract()?;
        out.push((k, val));
    }
    Ok(out)
}

/// The SDK spec from `spawn`'s arguments.
#[allow(clippy::too_many_arguments)]
fn build_spec(
    image: String,
    pre_boot_files: Option<Bound<'_, PyAny>>,
    sleep: bool,
    env: Option<Bound<'_, PyAny>>,
    ports: Option<Vec<u16>>,
    command: Option<Bound<'_, PyAny>>,
    cpus: Option<String>,
    memory: Option<String>,
    name: Option<String>,
) -> PyResult<ContainerSpec> {
    if image.trim().is_empty() {
        return Err(PyValueError::new_err("the image is empty"));
    }
    let mut spec = ContainerSpec::new(image).sleep(sleep);
    if let Some(files) = pre_boot_files {
        for (path, data) in pairs(&files)? {
            let path: String = path.extract()?;
            let data = content(&format!("pre-boot file {path}"), &data)?;
            spec = spec.file(path, data);
        }
    }
    if let Some(env) = env {
        for (k, v) in pairs(&env)? {
            let k: String = k.extract()?;
            spec = spec.env(k, v.str()?.to_str()?.to_string());
        }
    }
    for p in ports.into_iter().flatten() {
        if p == 0 {
            return Err(PyValueError::new_err("port 0 cannot be exposed"));
        }
        spec = spec.port(p);
    }
    if let Some(cmd) = command {
        if let Ok(line) = cmd.cast::<PyString>() {
            spec = spec.command(["sh", "-c", line.to_str()?]);
        } else {
            let argv: Vec<String> = cmd.extract().map_err(|_| {
                PyValueError::new_err("command must be a shell command line (str) or a list of str")
            })?;
            spec = spec.command(argv);
        }
    }
    if let Some(c) = cpus {
        spec = spec.cpus(c);
    }
    if let Some(m) = memory {
        spec = spec.memory(m);
    }
    if let Some(n) = name {
        spec = spec.name(n);
    }
    Ok(spec)
}

/// The newest image of the local Docker engine, as 20ft's `last_image()`: its `repository:tag`,
/// or its ID when untagged (usable only by a cluster that shares that engine, e.g. minikube's
/// `docker-env`). Raises `ValueError` when Docker is not there or has no image.
#[pyfunction]
pub fn last_image() -> PyResult<String> {
    let out = std::process::Command::new("docker")
        .args([
            "image",
            "ls",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}",
        ])
        .output()
        .map_err(|e| PyValueError::new_err(format!("cannot run docker: {e}")))?;
    if !out.status.success() {
        return Err(PyValueError::new_err(format!(
            "docker image ls failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| PyValueError::new_err("the local Docker engine has no image"))?;
    Ok(pick_image(first))
}

/// `repository:tag`, or the ID when untagged, from a line of `docker image ls`.
fn pick_image(line: &str) -> String {
    let (name, id) = line.trim().rsplit_once(' ').unwrap_or((line.trim(), ""));
    if name.contains("<none>") && !id.is_empty() {
        id.to_string()
    } else {
        name.to_string()
    }
}

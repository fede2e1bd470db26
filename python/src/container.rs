//! `Container` and `Tunnel`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::location::SessionState;
use crate::process::{self, Process};
use crate::runtime::{block_on, drop_in_runtime, info, lock, seconds};
use crate::wait::Wait;

/// Default timeout of the waits (boot, HTTP 200), in seconds.
const DEFAULT_TIMEOUT: f64 = 120.0;

/// A spawned container: a session-owned System with one container.
#[pyclass(frozen, module = "tycho")]
pub struct Container {
    state: Arc<SessionState>,
    inner: tycho_sdk::Container,
}

impl Container {
    pub(crate) fn new(state: Arc<SessionState>, inner: tycho_sdk::Container) -> Container {
        Container { state, inner }
    }

    /// The SDK container, or `SessionLostError` once the Location is closed.
    fn sdk(&self) -> PyResult<tycho_sdk::Container> {
        self.state.location()?;
        Ok(self.inner.clone())
    }

    /// The port to use: the one given, else the first of the spec, else 80 (20ft's default).
    fn port_or_default(&self, port: Option<u16>) -> u16 {
        port.or_else(|| self.inner.ports().first().copied())
            .unwrap_or(80)
    }

    fn keep(&self, py: Python<'_>, tunnel: tycho_sdk::Tunnel) -> Tunnel {
        info(
            py,
            &format!(
                "Created tunnel object onto: {} ({} -> {})",
                self.inner.name(),
                tunnel.local_port(),
                tunnel.remote_port()
            ),
        );
        let slot = Arc::new(TunnelSlot {
            localport: tunnel.local_port(),
            port: tunnel.remote_port(),
            bind: tunnel.local_addr().ip().to_string(),
            system: self.inner.name().to_string(),
            base_url: tunnel.url(None, "/"),
            tunnel: Mutex::new(Some(tunnel)),
            open: AtomicBool::new(true),
        });
        self.state.keep_tunnel(Arc::clone(&slot));
        Tunnel { slot }
    }
}

/// A path for an HTTP request: `/` first.
fn http_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

#[pymethods]
impl Container {
    /// Name of the System (unique in the namespace).
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// The 20ft name of `name`.
    #[getter]
    fn uuid(&self) -> &str {
        self.inner.name()
    }

    /// The exposed ports (given to spawn, or the image's).
    #[getter]
    fn ports(&self) -> Vec<u16> {
        self.inner.ports().to_vec()
    }

    /// Wait until the container runs (its System Ready, a pod Running and Ready). Returns self.
    #[pyo3(signature = (timeout=DEFAULT_TIMEOUT))]
    fn wait_ready(slf: Py<Self>, py: Python<'_>, timeout: f64) -> PyResult<Py<Self>> {
        let c = slf.get().sdk()?;
        let t = seconds("timeout", timeout)?;
        block_on(py, async move { c.wait_ready(t).await })?;
        info(
            py,
            &format!("Container is running: {}", slf.get().inner.name()),
        );
        Ok(slf)
    }

    /// A TCP tunnel from `bind:localport` (a free port when not given) to `port` of the container;
    /// it lives until destroyed or the session ends. Waits for the container to run first.
    #[pyo3(signature = (port, localport=None, bind=None, timeout=DEFAULT_TIMEOUT))]
    fn attach_tunnel(
        &self,
        py: Python<'_>,
        port: u16,
        localport: Option<u16>,
        bind: Option<String>,
        timeout: f64,
    ) -> PyResult<Tunnel> {
        let bind: IpAddr = match bind.as_deref() {
            None | Some("") | Some("localhost") => IpAddr::from([127, 0, 0, 1]),
            Some(b) => b
                .parse()
                .map_err(|_| PyValueError::new_err(format!("bind {b:?} is not an IP address")))?,
        };
        let c = self.sdk()?;
        let t = seconds("timeout", timeout)?;
        let tunnel = block_on(py, async move {
            c.wait_ready(t).await?;
            c.attach_tunnel(port, localport, bind).await
        })?;
        Ok(self.keep(py, tunnel))
    }

    /// Tunnel to `port` (default: the first exposed port, else 80) and poll `path` until it answers
    /// HTTP 200, sending `fqdn` as the Host header when given. Returns the tunnel.
    #[pyo3(signature = (port=None, fqdn=None, path="/", timeout=DEFAULT_TIMEOUT))]
    fn wait_http_200(
        &self,
        py: Python<'_>,
        port: Option<u16>,
        fqdn: Option<String>,
        path: &str,
        timeout: f64,
    ) -> PyResult<Tunnel> {
        let tunnel = self.http_200(py, port, fqdn.clone(), path, timeout)?;
        let url = lock(&tunnel.slot.tunnel)
            .as_ref()
            .map(|t| t.url(fqdn.as_deref(), &http_path(path)))
            .unwrap_or_default();
        info(py, &format!("Connected onto: {url}"));
        Ok(tunnel)
    }

    /// Like `wait_http_200`, then open a web browser on the tunnel (`$BROWSER`, else `xdg-open` or
    /// `open`). Returns the tunnel.
    #[pyo3(signature = (port=None, fqdn=None, path="/", timeout=DEFAULT_TIMEOUT))]
    fn attach_browser(
        &self,
        py: Python<'_>,
        port: Option<u16>,
        fqdn: Option<String>,
        path: &str,
        timeout: f64,
    ) -> PyResult<Tunnel> {
        let tunnel = self.http_200(py, port, fqdn.clone(), path, timeout)?;
        let url = lock(&tunnel.slot.tunnel)
            .as_ref()
            .map(|t| t.url(fqdn.as_deref(), &http_path(path)))
            .unwrap_or_default();
        info(py, &format!("Connected onto: {url}"));
        tycho_sdk::open_browser(&url).map_err(crate::errors::to_py)?;
        Ok(tunnel)
    }

    /// The container's log so far: a list of dicts `{"time": ISO 8601 str, "log": str}`.
    fn logs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let c = self.sdk()?;
        let lines = block_on(py, async move { c.logs().await })?;
        let out = PyList::empty(py);
        for l in lines {
            let d = PyDict::new(py);
            d.set_item("time", l.time.to_rfc3339())?;
            d.set_item("log", l.text)?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// The content of the file at `filename` (held in memory). Raises ValueError when it does not
    /// exist or is too large.
    fn fetch<'py>(&self, py: Python<'py>, filename: String) -> PyResult<Bound<'py, PyBytes>> {
        let c = self.sdk()?;
        let data = block_on(py, async move { c.fetch(&filename).await })?;
        Ok(PyBytes::new(py, &data))
    }

    /// Write `data` (bytes, or str as UTF-8) to the file at `filename`, creating missing
    /// directories. Raises ValueError for a relative path or too much data.
    fn put(&self, py: Python<'_>, filename: String, data: Bound<'_, PyAny>) -> PyResult<()> {
        let data: Vec<u8> = if let Ok(s) = data.cast::<PyString>() {
            s.to_str()?.as_bytes().to_vec()
        } else if let Ok(b) = data.cast::<PyBytes>() {
            b.as_bytes().to_vec()
        } else {
            return Err(PyValueError::new_err("data must be bytes or str"));
        };
        let c = self.sdk()?;
        block_on(py, async move { c.put(&filename, &data).await })
    }

    /// Start `cmd` (a shell command line) in the container. With callbacks, `data_callback(process,
    /// data)` gets its output (stdout and stderr, as bytes, as it comes) and
    /// `termination_callback(process)` runs when it ends (`process.returncode` is then set); they run
    /// on a thread of their own. The process runs until it ends, is destroyed, or the session ends.
    #[pyo3(signature = (cmd, data_callback=None, termination_callback=None))]
    fn spawn_process(
        &self,
        py: Python<'_>,
        cmd: String,
        data_callback: Option<Py<PyAny>>,
        termination_callback: Option<Py<PyAny>>,
    ) -> PyResult<Py<Process>> {
        let c = self.sdk()?;
        process::spawn(py, &self.state, c, cmd, data_callback, termination_callback)
    }

    /// Wait until `strategy` (a `tycho.Wait`) holds, for at most `timeout` seconds. Returns self.
    #[pyo3(signature = (strategy, timeout=60.0))]
    fn wait_for(
        slf: Py<Self>,
        py: Python<'_>,
        strategy: PyRef<'_, Wait>,
        timeout: f64,
    ) -> PyResult<Py<Self>> {
        let c = slf.get().sdk()?;
        let t = seconds("timeout", timeout)?;
        let w = strategy.inner.clone();
        crate::runtime::debug(py, &format!("Waiting for {w} on {}", c.name()));
        block_on(py, async move { c.wait_for(&w, t).await })?;
        Ok(slf)
    }

    /// Delete the container (its System; the pod and files go with it).
    fn destroy(&self, py: Python<'_>) -> PyResult<()> {
        let c = self.sdk()?;
        info(py, &format!("Destroying container: {}", c.name()));
        block_on(py, async move { c.destroy().await })
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        if self.state.location().is_ok() {
            self.destroy(py)?;
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "<tycho.Container {} ports={:?}>",
            self.inner.name(),
            self.inner.ports()
        )
    }
}

impl Container {
    fn http_200(
        &self,
        py: Python<'_>,
        port: Option<u16>,
        fqdn: Option<String>,
        path: &str,
        timeout: f64,
    ) -> PyResult<Tunnel> {
        let port = self.port_or_default(port);
        let c = self.sdk()?;
        let t = seconds("timeout", timeout)?;
        let path = http_path(path);
        info(py, &format!("Waiting on http 200: {}", c.name()));
        let tunnel = block_on(py, async move {
            c.wait_http_200(Some(port), fqdn.as_deref(), &path, t).await
        })?;
        Ok(self.keep(py, tunnel))
    }
}

/// A tunnel kept by the session until destroyed.
pub(crate) struct TunnelSlot {
    localport: u16,
    port: u16,
    bind: String,
    system: String,
    base_url: String,
    tunnel: Mutex<Option<tycho_sdk::Tunnel>>,
    open: AtomicBool,
}

impl TunnelSlot {
    /// Stop listening.
    pub(crate) fn close(&self) {
        self.open.store(false, Ordering::Relaxed);
        if let Some(t) = lock(&self.tunnel).take() {
            drop_in_runtime(t);
        }
    }

    /// Whether it still listens.
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }
}

/// A TCP tunnel from a local port to a container port (through the API server's port-forward).
#[pyclass(frozen, module = "tycho")]
pub struct Tunnel {
    slot: Arc<TunnelSlot>,
}

#[pymethods]
impl Tunnel {
    /// The local port.
    #[getter]
    fn localport(&self) -> u16 {
        self.slot.localport
    }

    /// The container port.
    #[getter]
    fn port(&self) -> u16 {
        self.slot.port
    }

    /// The 20ft name of `port`.
    #[getter]
    fn dest_port(&self) -> u16 {
        self.slot.port
    }

    /// The local address the tunnel listens on.
    #[getter]
    fn bind(&self) -> &str {
        &self.slot.bind
    }

    /// Whether the tunnel still listens.
    #[getter]
    fn open(&self) -> bool {
        self.slot.is_open()
    }

    /// `http://HOST:LOCALPORT/PATH` (HOST: `fqdn`, else the bound address).
    #[pyo3(signature = (fqdn=None, path="/"))]
    fn url(&self, fqdn: Option<&str>, path: &str) -> String {
        match lock(&self.slot.tunnel).as_ref() {
            Some(t) => t.url(fqdn, &http_path(path)),
            None => self.slot.base_url.clone(),
        }
    }

    /// Stop listening (connections in progress finish).
    fn destroy(&self) {
        self.slot.close();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.slot.close();
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<tycho.Tunnel {}:{} -> {}:{}{}>",
            self.slot.bind,
            self.slot.localport,
            self.slot.system,
            self.slot.port,
            if self.slot.is_open() { "" } else { " closed" }
        )
    }
}

/// The Duration of an optional timeout in seconds.
pub(crate) fn optional_seconds(what: &str, s: Option<f64>) -> PyResult<Option<Duration>> {
    s.map(|s| seconds(what, s)).transpose()
}

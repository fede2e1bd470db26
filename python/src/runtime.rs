//! The module's Tokio runtime, and running SDK futures from Python: the GIL released while they
//! run, Python's signal handlers run every [`SIGNAL_CHECK`] so Ctrl-C interrupts a wait.

use std::future::Future;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use tokio::runtime::Runtime;
use tycho_sdk::SdkError;

use crate::errors::to_py;

/// How often a wait gives Python the chance to run its signal handlers (a KeyboardInterrupt then
/// cancels the wait and propagates).
pub(crate) const SIGNAL_CHECK: Duration = Duration::from_millis(100);

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The runtime every SDK future and background task (session renewal, tunnels, processes) runs on:
/// two worker threads, created on first use.
pub(crate) fn runtime() -> PyResult<&'static Runtime> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tycho-io")
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the Tokio runtime: {e}")))?;
    // A racing thread's runtime is dropped here; it has run nothing yet.
    Ok(RUNTIME.get_or_init(|| rt))
}

/// Run `fut` to completion on the runtime with the GIL released, checking for signals (Ctrl-C)
/// every [`SIGNAL_CHECK`]; a signal handler's exception cancels `fut` and is returned.
pub(crate) fn wait<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime()?;
    let mut fut = Box::pin(fut);
    loop {
        // The timeout is made inside the runtime: its timer needs the runtime's context.
        let step = py.detach(|| {
            rt.block_on(async { tokio::time::timeout(SIGNAL_CHECK, fut.as_mut()).await })
        });
        match step {
            Ok(out) => return Ok(out),
            Err(_elapsed) => py.check_signals()?,
        }
    }
}

/// [`wait`] for an SDK call, its error turned into a Python exception.
pub(crate) fn block_on<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = Result<T, SdkError>> + Send,
    T: Send,
{
    wait(py, fut)?.map_err(to_py)
}

/// Drop `value` inside the runtime's context, so whatever its `Drop` spawns (the SDK deletes a
/// session's Lease that way) has a runtime to run on.
pub(crate) fn drop_in_runtime<T>(value: T) {
    match runtime() {
        Ok(rt) => {
            let _guard = rt.enter();
            drop(value);
        }
        Err(_) => drop(value),
    }
}

/// Lock a mutex, also after a panic in another holder (the data here stays consistent: handles
/// and flags, no multi-step invariants).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A timeout in seconds from Python as a `Duration`.
pub(crate) fn seconds(what: &str, s: f64) -> PyResult<Duration> {
    if !(s.is_finite() && s > 0.0) {
        return Err(PyValueError::new_err(format!(
            "{what} must be a positive number of seconds, not {s}"
        )));
    }
    Ok(Duration::from_secs_f64(s.min(1e9)))
}

/// Log `message` at INFO on the `tycho` logger (as 20ft logged its steps); logging errors are ignored.
pub(crate) fn info(py: Python<'_>, message: &str) {
    log(py, "info", message);
}

/// Log `message` at WARNING on the `tycho` logger.
pub(crate) fn warn(py: Python<'_>, message: &str) {
    log(py, "warning", message);
}

/// Log `message` at DEBUG on the `tycho` logger.
pub(crate) fn debug(py: Python<'_>, message: &str) {
    log(py, "debug", message);
}

fn log(py: Python<'_>, level: &str, message: &str) {
    let logged = py
        .import("logging")
        .and_then(|l| l.call_method1("getLogger", ("tycho",)))
        .and_then(|l| l.call_method1(level, (message,)));
    if let Err(e) = logged {
        e.print(py);
    }
}

//! The Python package `tycho`: the Tycho SDK ([`tycho_sdk`]) for Python, with the names and
//! signatures of the 20ft SDK (`Location`, `Node`, `Container`, `Tunnel`, `Process`).
//!
//! Everything here is a binding: each method converts its arguments, runs the SDK's future on the
//! module's Tokio runtime with the GIL released ([`runtime::block_on`], which also lets Ctrl-C
//! interrupt a wait), and converts the answer or error back. Sessions end with
//! `Location.close()`, a `with` block, or at interpreter exit (an `atexit` hook closes every open
//! Location), so a script ended by Ctrl-C leaves nothing running.

use pyo3::prelude::*;

mod container;
mod errors;
mod location;
mod process;
mod runtime;
mod wait;

/// Close every Location still open (the `atexit` hook; also callable by hand). Failures are
/// logged as warnings, not raised: the Leases of sessions that could not be deleted expire.
#[pyfunction]
fn _close_all(py: Python<'_>) {
    if let Err(e) = location::close_all(py) {
        runtime::warn(py, &format!("ending a session at exit failed: {e}"));
    }
}

/// The Tycho SDK for Python: containers as objects on Kubernetes, collected when the session ends.
#[pymodule]
mod tycho {
    use pyo3::prelude::*;

    #[pymodule_export]
    use super::_close_all;
    #[pymodule_export]
    use super::container::{Container, Tunnel};
    #[pymodule_export]
    use super::location::{Location, Node, last_image};
    #[pymodule_export]
    use super::process::Process;
    #[pymodule_export]
    use super::wait::Wait;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        let py = m.py();
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("TychoError", py.get_type::<super::errors::TychoError>())?;
        m.add(
            "SessionLostError",
            py.get_type::<super::errors::SessionLostError>(),
        )?;
        // Sessions end at interpreter exit, also after an uncaught KeyboardInterrupt.
        py.import("atexit")?
            .call_method1("register", (m.getattr("_close_all")?,))?;
        Ok(())
    }
}

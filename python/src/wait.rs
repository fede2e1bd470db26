//! `Wait`: the SDK's wait strategies (`tycho_sdk::wait`) for `Container.wait_for`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use tycho_sdk::wait::WaitFor;

/// A condition to wait for on a container, as Testcontainers' wait strategies; build one with the
/// static methods and pass it to `Container.wait_for(strategy, timeout=...)`.
#[pyclass(frozen, module = "tycho")]
pub struct Wait {
    pub(crate) inner: WaitFor,
}

/// A regular expression's source from `str` or `re.Pattern`.
fn pattern_source(pattern: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = pattern.cast::<PyString>() {
        return Ok(s.to_str()?.to_string());
    }
    if let Ok(src) = pattern.getattr("pattern")
        && let Ok(s) = src.cast::<PyString>()
    {
        return Ok(s.to_str()?.to_string());
    }
    Err(PyValueError::new_err(
        "pattern must be a str or a compiled re.Pattern of str",
    ))
}

#[pymethods]
impl Wait {
    /// A log line matching the regular expression `pattern` (searched anywhere in the line, Rust
    /// `regex` syntax: no look-around or back-references), `times` times; lines logged before the
    /// wait count too.
    #[staticmethod]
    #[pyo3(signature = (pattern, times=1))]
    fn log(pattern: Bound<'_, PyAny>, times: usize) -> PyResult<Wait> {
        let source = pattern_source(&pattern)?;
        let re = regex::Regex::new(&source).map_err(|e| {
            PyValueError::new_err(format!("invalid regular expression {source:?}: {e}"))
        })?;
        Ok(Wait {
            inner: WaitFor::log_line(format!("/{source}/"), move |l| re.is_match(l)).times(times),
        })
    }

    /// Container `port` accepts TCP connections (through a port-forward).
    #[staticmethod]
    fn port(port: u16) -> Wait {
        Wait {
            inner: WaitFor::tcp_port(port),
        }
    }

    /// `GET path` answers `status` (on `port`, default the first exposed; Host `fqdn`).
    #[staticmethod]
    #[pyo3(signature = (path="/", status=200, port=None, fqdn=None))]
    fn http(path: &str, status: u16, port: Option<u16>, fqdn: Option<String>) -> Wait {
        let mut h = WaitFor::http(path).status(status);
        if let Some(p) = port {
            h = h.port(p);
        }
        if let Some(f) = fqdn {
            h = h.host(f);
        }
        Wait { inner: h.into() }
    }

    /// `cmd` (a shell command line run in the container) exits with `exit_code`.
    #[staticmethod]
    #[pyo3(signature = (cmd, exit_code=0))]
    fn command(cmd: String, exit_code: i32) -> Wait {
        Wait {
            inner: WaitFor::command_exit(cmd, exit_code),
        }
    }

    /// The container runs (its System Ready, a pod Running and Ready).
    #[staticmethod]
    fn ready() -> Wait {
        Wait {
            inner: WaitFor::ready(),
        }
    }

    /// Every strategy, one after the other, within one timeout.
    #[staticmethod]
    #[pyo3(signature = (*strategies))]
    fn all(strategies: Vec<PyRef<'_, Wait>>) -> Wait {
        Wait {
            inner: WaitFor::all(strategies.iter().map(|w| w.inner.clone())),
        }
    }

    fn __repr__(&self) -> String {
        format!("<tycho.Wait {}>", self.inner)
    }
}

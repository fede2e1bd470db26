//! SDK errors as Python exceptions.
//!
//! | SDK error | Python exception |
//! |---|---|
//! | `InvalidSpec`, `NotFound` (a file), `TooLarge` | `ValueError` (what 20ft raised for bad arguments and `fetch`/`put`) |
//! | `Timeout` | `TimeoutError` |
//! | `Connect` | `ConnectionError` |
//! | `Io` | `OSError` |
//! | `SessionLost` | `tycho.SessionLostError` (a `tycho.TychoError`) |
//! | anything else (API, exec, stream, failed System) | `tycho.TychoError` |

use pyo3::create_exception;
use pyo3::exceptions::{PyConnectionError, PyException, PyOSError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use tycho_sdk::SdkError;

create_exception!(
    tycho,
    TychoError,
    PyException,
    "An operation of the Tycho SDK failed: the API server refused it, a command in a container failed, a stream broke, or a container cannot run."
);
create_exception!(
    tycho,
    SessionLostError,
    TychoError,
    "The session was lost: its Lease was deleted, collected, or could not be renewed in time (or the Location was closed)."
);

/// The error and its causes, `: `-joined.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

/// The Python exception for an SDK error.
pub(crate) fn to_py(e: SdkError) -> PyErr {
    let msg = chain(&e);
    match e {
        SdkError::InvalidSpec(_) | SdkError::NotFound { .. } | SdkError::TooLarge { .. } => {
            PyValueError::new_err(msg)
        }
        SdkError::Timeout { .. } => PyTimeoutError::new_err(msg),
        SdkError::Connect { .. } => PyConnectionError::new_err(msg),
        SdkError::Io { .. } => PyOSError::new_err(msg),
        SdkError::SessionLost { .. } => SessionLostError::new_err(msg),
        _ => TychoError::new_err(msg),
    }
}

/// The error of using a Location (or what came from it) after it was closed.
pub(crate) fn closed() -> PyErr {
    SessionLostError::new_err("the Location was closed; its session and containers are gone")
}

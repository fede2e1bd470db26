//! `Process`: a command running in a container, with 20ft's data and termination callbacks.
//!
//! Callbacks run on a thread of their own ("tycho-callbacks", one per process with callbacks): the
//! SDK's tasks hand each chunk over a channel and never wait for the GIL, so a callback that is
//! slow, or a main thread that holds the GIL, does not stall any I/O.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::sync::watch;

use crate::container::optional_seconds;
use crate::location::SessionState;
use crate::runtime::{drop_in_runtime, lock, wait};

/// What a callback thread is told.
enum Event {
    Data(Vec<u8>),
    Exit(Result<i32, String>),
}

/// The state of a process, shared by its Python object, its session and its callback thread.
pub(crate) struct ProcState {
    cmd: String,
    process: Mutex<Option<tycho_sdk::Process>>,
    returncode: Mutex<Option<i32>>,
    stdout: Mutex<Option<Vec<u8>>>,
    stderr: Mutex<Option<Vec<u8>>>,
    error: Mutex<Option<String>>,
    with_callbacks: bool,
    /// Set by `destroy()`: its end is then not an error.
    destroyed: AtomicBool,
    /// True once the process ended (for callbacks: once the termination callback returned).
    done: watch::Sender<bool>,
}

impl ProcState {
    /// Terminate it (closes its exec connection; the container ends the command).
    pub(crate) fn destroy(&self) {
        self.destroyed.store(true, Ordering::Relaxed);
        if let Some(p) = lock(&self.process).take() {
            drop_in_runtime(p);
        }
    }

    /// Whether it may still run.
    pub(crate) fn is_running(&self) -> bool {
        !*self.done.borrow() && lock(&self.process).is_some()
    }
}

/// Start `cmd` in `container`, with callbacks when given.
pub(crate) fn spawn(
    py: Python<'_>,
    session: &Arc<SessionState>,
    container: tycho_sdk::Container,
    cmd: String,
    data_callback: Option<Py<PyAny>>,
    termination_callback: Option<Py<PyAny>>,
) -> PyResult<Py<Process>> {
    let with_callbacks = data_callback.is_some() || termination_callback.is_some();
    let (done, _) = watch::channel(false);
    let state = Arc::new(ProcState {
        cmd: cmd.clone(),
        process: Mutex::new(None),
        returncode: Mutex::new(None),
        stdout: Mutex::new(None),
        stderr: Mutex::new(None),
        error: Mutex::new(None),
        with_callbacks,
        destroyed: AtomicBool::new(false),
        done,
    });
    let obj = Py::new(
        py,
        Process {
            state: Arc::clone(&state),
        },
    )?;
    let process = if with_callbacks {
        let (tx, rx) = mpsc::channel::<Event>();
        let thread_obj = obj.clone_ref(py);
        let thread_state = Arc::clone(&state);
        std::thread::Builder::new()
            .name("tycho-callbacks".into())
            .spawn(move || {
                callback_thread(
                    rx,
                    thread_obj,
                    thread_state,
                    data_callback,
                    termination_callback,
                )
            })
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start a callback thread: {e}")))?;
        let data_tx = tx.clone();
        let on_data = move |b: &[u8]| {
            let _ = data_tx.send(Event::Data(b.to_vec()));
        };
        let on_exit = move |r: Result<i32, tycho_sdk::SdkError>| {
            let _ = tx.send(Event::Exit(r.map_err(|e| e.to_string())));
        };
        let started = wait(py, async move {
            container
                .spawn_process_with_callbacks(&cmd, on_data, on_exit)
                .await
        })?;
        started.map_err(crate::errors::to_py)?
    } else {
        crate::runtime::block_on(py, async move { container.spawn_process(&cmd).await })?
    };
    *lock(&state.process) = Some(process);
    session.keep_process(Arc::clone(&state));
    Ok(obj)
}

fn callback_thread(
    rx: mpsc::Receiver<Event>,
    obj: Py<Process>,
    state: Arc<ProcState>,
    data_callback: Option<Py<PyAny>>,
    termination_callback: Option<Py<PyAny>>,
) {
    for event in rx {
        match event {
            Event::Data(bytes) => {
                if let Some(cb) = &data_callback {
                    // `None` when the interpreter is shutting down: the data is dropped.
                    let _ = Python::try_attach(|py| {
                        let data = PyBytes::new(py, &bytes);
                        if let Err(e) = cb.call1(py, (obj.clone_ref(py), data)) {
                            e.print(py);
                        }
                    });
                }
            }
            Event::Exit(result) => {
                match result {
                    Ok(code) => *lock(&state.returncode) = Some(code),
                    Err(e) => *lock(&state.error) = Some(e),
                }
                if let Some(cb) = &termination_callback {
                    let _ = Python::try_attach(|py| {
                        if let Err(e) = cb.call1(py, (obj.clone_ref(py),)) {
                            e.print(py);
                        }
                    });
                }
                state.done.send_replace(true);
                break;
            }
        }
    }
    // The SDK dropped the callbacks without an exit (the runtime stopped): still mark it done.
    state.done.send_replace(true);
    let _ = Python::try_attach(move |_py| drop(obj));
}

/// A process running in a container (20ft's Process).
#[pyclass(frozen, module = "tycho")]
pub struct Process {
    state: Arc<ProcState>,
}

#[pymethods]
impl Process {
    /// The command line.
    #[getter]
    fn cmd(&self) -> &str {
        &self.state.cmd
    }

    /// The exit code once it ended, else None.
    #[getter]
    fn returncode(&self) -> Option<i32> {
        *lock(&self.state.returncode)
    }

    /// What it wrote to stderr, once `wait_until_complete` returned (None with callbacks).
    #[getter]
    fn stderr<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        lock(&self.state.stderr)
            .as_ref()
            .map(|b| PyBytes::new(py, b))
    }

    /// Wait until it ends and return what it wrote to stdout (with callbacks, which received the
    /// output, or after `destroy()`: `b""`); `returncode` is then set. `timeout` in seconds
    /// (default: none) raises TimeoutError: a process without callbacks is then stopped, one with
    /// callbacks keeps running.
    #[pyo3(signature = (timeout=None))]
    fn wait_until_complete<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let timeout = optional_seconds("timeout", timeout)?;
        if let Some(out) = lock(&self.state.stdout).as_ref() {
            return Ok(PyBytes::new(py, out));
        }
        if self.state.with_callbacks {
            let mut done = self.state.done.subscribe();
            let ended = wait(py, async move {
                let waiting = done.wait_for(|d| *d);
                match timeout {
                    Some(t) => tokio::time::timeout(t, waiting).await.is_ok(),
                    None => waiting.await.is_ok(),
                }
            })?;
            if !ended {
                return Err(pyo3::exceptions::PyTimeoutError::new_err(format!(
                    "`{}` still running",
                    self.state.cmd
                )));
            }
            if let Some(e) = lock(&self.state.error).as_ref()
                && !self.state.destroyed.load(Ordering::Relaxed)
            {
                return Err(crate::errors::TychoError::new_err(e.clone()));
            }
            return Ok(PyBytes::new(py, b""));
        }
        let Some(process) = lock(&self.state.process).take() else {
            if self.state.destroyed.load(Ordering::Relaxed) {
                return Ok(PyBytes::new(py, b""));
            }
            return Err(crate::errors::TychoError::new_err(format!(
                "`{}` was stopped by an earlier wait's timeout",
                self.state.cmd
            )));
        };
        // The process is owned by this wait from here; a timeout or Ctrl-C ends it.
        let result = wait(py, async move {
            let waiting = process.wait_until_complete();
            match timeout {
                Some(t) => tokio::time::timeout(t, waiting).await.ok(),
                None => Some(waiting.await),
            }
        })?;
        self.state.done.send_replace(true);
        let Some(output) = result else {
            return Err(pyo3::exceptions::PyTimeoutError::new_err(format!(
                "`{}` did not end in time (it was stopped)",
                self.state.cmd
            )));
        };
        let output = output.map_err(crate::errors::to_py)?;
        *lock(&self.state.returncode) = Some(output.code);
        *lock(&self.state.stderr) = Some(output.stderr);
        *lock(&self.state.stdout) = Some(output.stdout.clone());
        Ok(PyBytes::new(py, &output.stdout))
    }

    /// Terminate it (the termination callback, if any, runs).
    fn destroy(&self) {
        self.state.destroy();
    }

    fn __repr__(&self) -> String {
        let status = match *lock(&self.state.returncode) {
            Some(c) => format!("returncode={c}"),
            None if self.state.is_running() => "running".into(),
            None => "ended".into(),
        };
        format!("<tycho.Process {:?} {status}>", self.state.cmd)
    }
}

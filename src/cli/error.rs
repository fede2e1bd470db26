//! The errors of the command line and how they reach the user.
//!
//! Convention: a [`CliError`]'s `Display` shows only its own level (what was being done), and keeps
//! the error that caused it as its `source()`; [`report`] walks that chain into the one line that
//! `main` prints (`error: outer: cause: root cause`). Errors of other crates often repeat their
//! source in their own message already; [`report`] leaves such a source out instead of printing
//! it twice.

use std::error::Error;
use std::time::Duration;

use tycho_operator::controller::ControllerError;
use tycho_operator::leader::LeaderError;
use tycho_operator::render::RenderError;
use tycho_sdk::SdkError;

/// Any error, boxed, as a source.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Errors of the command line layer.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The input given on the command line is wrong (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The input given on the command line cannot be read or parsed (exit code 2).
    #[error("{context}")]
    Input {
        /// Which input, and what was done with it.
        context: String,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
    /// Reading or writing a local file failed.
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A call of the SDK failed.
    #[error(transparent)]
    Sdk(#[from] SdkError),
    /// A Kubernetes API call failed.
    #[error("{context}")]
    Kube {
        /// What was attempted, e.g. `list Systems in default`.
        context: String,
        /// The client error.
        #[source]
        source: Box<kube::Error>,
    },
    /// No Kubernetes client could be configured.
    #[error("cannot configure a Kubernetes client (kubeconfig or in-cluster config)")]
    ClientConfig(#[source] BoxError),
    /// The System does not exist.
    #[error("systems.tycho.dev \"{name}\" not found")]
    NotFound {
        /// Its name.
        name: String,
    },
    /// The System reached phase Failed while `tycho status --wait` waited.
    #[error("System {name} failed")]
    SystemFailed {
        /// Its name.
        name: String,
    },
    /// The System did not become Ready in time.
    #[error("timed out after {after:?} waiting for System {name} to be Ready")]
    WaitTimeout {
        /// Its name.
        name: String,
        /// How long was waited.
        after: Duration,
    },
    /// The System has no pod to run a command in or read logs of.
    #[error("System {name} has no pod yet")]
    NoPod {
        /// Its name.
        name: String,
    },
    /// The System was deleted while `tycho run` ran.
    #[error("System {name} was deleted")]
    SystemDeleted {
        /// Its name.
        name: String,
    },
    /// The session of `tycho run` was lost.
    #[error("session lost: {reason}")]
    SessionLost {
        /// Why.
        reason: String,
    },
    /// The command of `tycho exec` ended without an exit code (the kubelet's message).
    #[error("{0}")]
    Exec(String),
    /// Streaming a container's log broke off.
    #[error("reading logs")]
    Logs(#[source] std::io::Error),
    /// Turning something into JSON or YAML failed.
    #[error("cannot serialize {what}")]
    Serialize {
        /// What.
        what: &'static str,
        /// The serializer's error.
        #[source]
        source: BoxError,
    },
    /// Loading the templates or rendering failed (a template override that cannot be read is a
    /// usage error, exit code 2).
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Rendering one System of a file failed.
    #[error("{label}: System {name}")]
    RenderSystem {
        /// The file.
        label: String,
        /// The System's name.
        name: String,
        /// Why.
        #[source]
        source: RenderError,
    },
    /// The controller could not start or stopped with an error.
    #[error(transparent)]
    Controller(#[from] ControllerError),
    /// The controller `tycho dev` runs stopped with an error.
    #[error("controller stopped")]
    ControllerStopped(#[source] ControllerError),
    /// The task running the controller of `tycho dev` failed.
    #[error("controller task failed")]
    ControllerTask(#[source] tokio::task::JoinError),
    /// Leader election cannot start.
    #[error(transparent)]
    Leader(#[from] LeaderError),
    /// This replica lost (or never got) leadership and stops.
    #[error("leadership lost, stopping")]
    LeadershipLost(#[source] LeaderError),
    /// The HTTP API could not start or serve.
    #[error("the HTTP API stopped")]
    Api(#[from] tycho_api::ApiError),
    /// The emulator of `tycho dev` / `tycho sim` cannot be started or reached.
    #[cfg(feature = "dev")]
    #[error("{context}")]
    Emulator {
        /// What was attempted.
        context: String,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
}

impl CliError {
    /// Process exit code for this error: 2 for usage errors, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_)
            | CliError::Input { .. }
            | CliError::Render(RenderError::TemplateRead { .. }) => 2,
            _ => 1,
        }
    }

    /// A failed Kubernetes API call, with what was attempted.
    pub fn kube(context: impl Into<String>) -> impl FnOnce(kube::Error) -> CliError {
        let context = context.into();
        move |source| CliError::Kube {
            context,
            source: Box::new(source),
        }
    }

    /// An input that cannot be read or parsed (exit code 2).
    pub fn input<E: Into<BoxError>>(context: impl Into<String>) -> impl FnOnce(E) -> CliError {
        let context = context.into();
        move |source| CliError::Input {
            context,
            source: source.into(),
        }
    }

    /// A local file that cannot be read or written.
    pub fn io(path: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let path = path.into();
        move |source| CliError::Io { path, source }
    }

    /// Something that cannot be serialized.
    pub fn serialize<E: Into<BoxError>>(what: &'static str) -> impl FnOnce(E) -> CliError {
        move |source| CliError::Serialize {
            what,
            source: source.into(),
        }
    }

    /// The message the user sees: this error and all its causes, see [`report`].
    pub fn report(&self) -> String {
        report(self)
    }
}

/// An error and its chain of causes as one line, `outer: cause: root cause`.
///
/// A cause whose message the level above already contains (errors that print their source as part
/// of their own message) is left out, so every message appears once.
pub fn report(err: &(dyn Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut above = out.clone();
    let mut next = err.source();
    while let Some(cause) = next {
        let msg = cause.to_string();
        if !msg.is_empty() && !above.contains(&msg) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&msg);
        }
        above = msg;
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that shows only its own level and keeps its cause as source.
    #[derive(Debug, thiserror::Error)]
    #[error("{msg}")]
    struct Level {
        msg: &'static str,
        #[source]
        source: Option<Box<Level>>,
    }

    fn level(msg: &'static str, source: Option<Level>) -> Level {
        Level {
            msg,
            source: source.map(Box::new),
        }
    }

    #[test]
    fn a_nested_error_prints_its_whole_chain_once() {
        let root = level("root cause", None);
        let cause = level("cause", Some(root));
        let e = CliError::Io {
            path: "state.json".into(),
            source: std::io::Error::other(cause),
        };
        assert_eq!(e.to_string(), "state.json");
        assert_eq!(e.report(), "state.json: cause: root cause");
    }

    #[test]
    fn a_source_already_in_the_message_is_not_repeated() {
        // SdkError prints its source itself ("{context}: {source}").
        let e = CliError::from(SdkError::Io {
            context: "binding 127.0.0.1:8080".into(),
            source: std::io::Error::other(level("address in use", None)),
        });
        assert_eq!(e.report(), "binding 127.0.0.1:8080: address in use");
        // Our own level, then an error of another crate that repeats its source.
        let e = CliError::ControllerStopped(ControllerError::RenderFailed(RenderError::Serialize(
            "bad float".into(),
        )));
        assert_eq!(
            e.report(),
            "controller stopped: rendering failed: serializing rendered objects: bad float"
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
        assert_eq!(
            CliError::input("-f x")(std::io::Error::other("gone")).exit_code(),
            2
        );
        let read = RenderError::TemplateRead {
            path: "t".into(),
            message: "gone".into(),
        };
        assert_eq!(CliError::from(read).exit_code(), 2);
        assert_eq!(CliError::NoPod { name: "w".into() }.exit_code(), 1);
    }
}

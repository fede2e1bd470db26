//! The SDK's error type.

use std::time::Duration;

/// Everything that can go wrong in the SDK, with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// No usable cluster configuration (kubeconfig / in-cluster), or no session could be opened.
    #[error("cannot connect to the cluster: {context}{}", .source.as_ref().map(|s| format!(": {s}")).unwrap_or_default())]
    Connect {
        /// What was being done (the kubeconfig file read, the client built).
        context: String,
        /// The cause, kept for the error chain.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// An API call failed.
    #[error("{action}: {source}")]
    Api {
        /// What was attempted, e.g. `create System web-x1`.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The session Lease was deleted, collected, or could not be renewed within its duration.
    #[error("session {lease} lost: {reason}")]
    SessionLost {
        /// Name of the Lease.
        lease: String,
        /// Why.
        reason: String,
    },
    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long we waited.
        after: Duration,
    },
    /// The System cannot run as specified (its status says why).
    #[error("system {system} failed: {message}")]
    Failed {
        /// System name.
        system: String,
        /// The controller's message.
        message: String,
    },
    /// A path does not exist in the container.
    #[error("{path}: no such file in container {system}")]
    NotFound {
        /// System name.
        system: String,
        /// The path.
        path: String,
    },
    /// A file is larger than the allowed limit.
    #[error("{path}: larger than the limit of {limit} bytes")]
    TooLarge {
        /// The path.
        path: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// A command in the container failed.
    #[error("`{command}` in {system} exited with code {code}: {stderr}")]
    Remote {
        /// System name.
        system: String,
        /// The command.
        command: String,
        /// Exit code.
        code: i32,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Streaming (exec, port-forward) failed.
    #[error("{context}: {message}")]
    Stream {
        /// What was going on.
        context: String,
        /// The error.
        message: String,
    },
    /// Local I/O failed (listener, browser, file).
    #[error("{context}: {source}")]
    Io {
        /// What was going on.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The spec is not usable.
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
}

impl SdkError {
    pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> SdkError {
        let action = action.into();
        move |source| SdkError::Api { action, source }
    }

    pub(crate) fn connect<E: std::error::Error + Send + Sync + 'static>(
        context: impl Into<String>,
    ) -> impl FnOnce(E) -> SdkError {
        let context = context.into();
        move |source| SdkError::Connect {
            context,
            source: Some(Box::new(source)),
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> SdkError {
        let context = context.into();
        move |source| SdkError::Io { context, source }
    }

    /// Whether this is the API server's 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SdkError::Api { source: kube::Error::Api(s), .. } if s.code == 404)
    }
}

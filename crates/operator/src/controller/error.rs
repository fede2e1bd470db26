//! Errors of the controller layer, each with a stable `reason()` used as metric label and Event reason.

use crate::render::RenderError;
use tycho_model::validate::FieldError;

/// Errors of the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The System's spec fails validation; each problem names its field.
    #[error("invalid spec: {}", join(.0))]
    InvalidSpec(Vec<FieldError>),
    /// The System's template is missing, or its parameters or the template itself are wrong.
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    /// Rendering the System failed (names the template and line).
    #[error("rendering failed: {0}")]
    RenderFailed(#[source] RenderError),
    /// A volume names a PersistentVolumeClaim that does not exist.
    #[error(
        "spec.volumes[{index}].claim: PersistentVolumeClaim {claim:?} not found in namespace {namespace}"
    )]
    MissingClaim {
        /// Index in `spec.volumes`.
        index: usize,
        /// Name of the claim.
        claim: String,
        /// Namespace looked in.
        namespace: String,
    },
    /// The System lacks a field the API server always sets (name, namespace or uid).
    #[error("the System has no metadata.{0}")]
    MissingMetadata(&'static str),
    /// The System's namespace is not one the controller watches (so nothing of it is cached).
    #[error("namespace {0} is not watched by this controller")]
    NotWatched(String),
    /// A Kubernetes API call failed.
    #[error("{action} {kind} {namespace}/{name}: {source}")]
    Api {
        /// What was attempted: read, list, apply, delete, patch-status, annotate.
        action: &'static str,
        /// Kind of the object.
        kind: &'static str,
        /// Namespace of the object.
        namespace: String,
        /// Name of the object (or label selector for lists).
        name: String,
        /// The client error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Serializing an object failed.
    #[error("serializing {kind} {name}: {source}")]
    Serialize {
        /// Kind of the object.
        kind: &'static str,
        /// Name of the object.
        name: String,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// A cached object could not be read back (it is packed as JSON when it enters the cache).
    #[error("reading the cached {kind} {name}: {source}")]
    Cached {
        /// Kind of the object.
        kind: &'static str,
        /// Name of the object.
        name: String,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// The templates could not be compiled at start.
    #[error("cannot load templates: {0}")]
    Templates(#[source] RenderError),
    /// The metrics and health server could not start.
    #[error("metrics server on {addr}: {source}")]
    MetricsServer {
        /// Address it tried to listen on.
        addr: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ControllerError {
    /// Stable CamelCase reason, used as the metric label and Event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ControllerError::InvalidSpec(_) => "InvalidSpec",
            ControllerError::Template(e) => e.reason(),
            ControllerError::RenderFailed(_) => "RenderFailed",
            ControllerError::MissingClaim { .. } => "MissingClaim",
            ControllerError::MissingMetadata(_) => "MissingMetadata",
            ControllerError::NotWatched(_) => "NamespaceNotWatched",
            ControllerError::Api { action, source, .. } => match (action, api_code(source)) {
                (_, Some(409)) => "Conflict",
                (_, Some(403)) => "Forbidden",
                (&"apply", Some(422)) => "ApplyRejected",
                (&"apply", _) => "ApplyFailed",
                (&"delete", _) => "DeleteFailed",
                (&"patch-status", _) => "StatusUpdateFailed",
                (&"annotate", _) => "CollectFailed",
                _ => "ApiError",
            },
            ControllerError::Serialize { .. } => "SerializeFailed",
            ControllerError::Cached { .. } => "CacheUnreadable",
            ControllerError::Templates(_) => "TemplatesInvalid",
            ControllerError::MetricsServer { .. } => "MetricsServerFailed",
        }
    }

    /// Whether retrying cannot help until the System (or something it names) changes: such errors become a
    /// condition and a Warning Event, and reconcile waits for a change instead of backing off.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ControllerError::InvalidSpec(_)
                | ControllerError::Template(_)
                | ControllerError::RenderFailed(_)
                | ControllerError::MissingClaim { .. }
                | ControllerError::MissingMetadata(_)
                | ControllerError::NotWatched(_)
                | ControllerError::Serialize { .. }
        )
    }

    /// Build an API error.
    pub fn api(
        action: &'static str,
        kind: &'static str,
        namespace: &str,
        name: &str,
    ) -> impl FnOnce(kube::Error) -> ControllerError {
        let namespace = namespace.to_string();
        let name = name.to_string();
        move |source| ControllerError::Api {
            action,
            kind,
            namespace,
            name,
            source: Box::new(source),
        }
    }
}

/// The HTTP status code of an API error response, if it is one.
pub fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_err(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            ..Default::default()
        }))
    }

    #[test]
    fn reasons_are_stable_and_classified() {
        let e = ControllerError::InvalidSpec(vec![FieldError {
            field: "spec.containers[0].image".into(),
            message: "must not be empty".into(),
        }]);
        assert_eq!(e.reason(), "InvalidSpec");
        assert!(e.is_permanent());
        assert!(
            e.to_string()
                .contains("spec.containers[0].image: must not be empty")
        );
        let e = ControllerError::api("apply", "Deployment", "ns", "web")(api_err(409));
        assert_eq!(e.reason(), "Conflict");
        assert!(!e.is_permanent());
        let e = ControllerError::api("apply", "Deployment", "ns", "web")(api_err(500));
        assert_eq!(e.reason(), "ApplyFailed");
        assert!(e.to_string().starts_with("apply Deployment ns/web"));
        let e = ControllerError::MissingClaim {
            index: 1,
            claim: "data".into(),
            namespace: "ns".into(),
        };
        assert!(e.to_string().starts_with("spec.volumes[1].claim"));
    }
}

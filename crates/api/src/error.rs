//! The API's one error type and its `application/problem+json` form (RFC 9457).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Media type of error bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Everything a request can fail with. Each variant becomes one HTTP status and a problem document.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No bearer token, or the API server did not accept it.
    #[error("{0}")]
    Unauthenticated(String),
    /// The request itself is wrong; `field` names the part at fault (a JSON path of the body or a
    /// query parameter).
    #[error("{detail}")]
    Invalid {
        /// HTTP status (400, 413, 415 or 422).
        status: StatusCode,
        /// What is wrong.
        detail: String,
        /// Where.
        field: Option<String>,
    },
    /// Nothing by that name.
    #[error("{0}")]
    NotFound(String),
    /// The Kubernetes API server refused or failed a call made for this request; its status (403,
    /// 404, 409, 422 …) and field causes pass through.
    #[error("{context}: {message}")]
    Kubernetes {
        /// What the API was doing.
        context: String,
        /// The API server's message.
        message: String,
        /// The API server's status code.
        code: u16,
        /// The API server's reason (Forbidden, Invalid, AlreadyExists …).
        reason: String,
        /// Field causes of a validation error (schema, CEL).
        causes: Vec<Cause>,
    },
    /// The API server could not be reached or answered something unreadable.
    #[error("{context}: {source}")]
    Upstream {
        /// What the API was doing.
        context: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The server could not start or serve.
    #[error("{0}")]
    Server(String),
}

/// One field-level cause of a rejected request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct Cause {
    /// The field at fault, as a path (`spec.containers[0].image`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
    /// What is wrong with it.
    pub message: String,
    /// A machine-readable reason (`FieldValueRequired`, `FieldValueInvalid` …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// An error, as `application/problem+json` (RFC 9457).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` when the status says it all).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What happened, for a person.
    pub detail: String,
    /// The field at fault, when one is (a body path such as `spec.containers[0].image`, or a query
    /// parameter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The Kubernetes reason, when the API server decided (`Forbidden`, `Invalid`, `AlreadyExists` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every field-level cause, when there are several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
}

impl ApiError {
    /// A 400 naming the field.
    pub fn bad_request(field: impl Into<String>, detail: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            status: StatusCode::BAD_REQUEST,
            detail: detail.into(),
            field: Some(field.into()),
        }
    }

    /// A 422 naming the field.
    pub fn unprocessable(field: impl Into<String>, detail: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: detail.into(),
            field: Some(field.into()),
        }
    }

    /// Map a client error of a call made while `context`.
    pub fn kube(context: impl Into<String>) -> impl FnOnce(kube::Error) -> ApiError {
        let context = context.into();
        move |e| match e {
            kube::Error::Api(status) => {
                let causes = status
                    .details
                    .as_ref()
                    .map(|d| {
                        d.causes
                            .iter()
                            .map(|c| Cause {
                                field: c.field.clone(),
                                message: c.message.clone(),
                                reason: c.reason.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                ApiError::Kubernetes {
                    context,
                    message: status.message.clone(),
                    code: status.code,
                    reason: status.reason.clone(),
                    causes,
                }
            }
            source => ApiError::Upstream { context, source },
        }
    }

    /// The Kubernetes status code, when the API server answered.
    pub fn kube_code(&self) -> Option<u16> {
        match self {
            ApiError::Kubernetes { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Invalid { status, .. } => *status,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Kubernetes { code, .. } => match StatusCode::from_u16(*code) {
                // A 5xx of the API server is a failure of the gateway's upstream.
                Ok(s) if s.is_server_error() => StatusCode::BAD_GATEWAY,
                Ok(s) if s.is_client_error() => s,
                _ => StatusCode::BAD_GATEWAY,
            },
            ApiError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Server(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem document of this error.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let title = status.canonical_reason().unwrap_or("Error").to_string();
        let (field, reason, causes) = match self {
            ApiError::Invalid { field, .. } => (field.clone(), None, Vec::new()),
            ApiError::Kubernetes { reason, causes, .. } => {
                let field = causes
                    .iter()
                    .find(|c| !c.field.is_empty())
                    .map(|c| c.field.clone());
                let reason = (!reason.is_empty()).then(|| reason.clone());
                (field, reason, causes.clone())
            }
            _ => (None, None, Vec::new()),
        };
        Problem {
            kind: "about:blank".into(),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            field,
            reason,
            causes,
        }
    }
}

/// A problem document with its status, for responses built outside [`ApiError`].
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tycho\""),
        );
    }
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        problem_response(&self.problem())
    }
}

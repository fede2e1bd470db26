//! The routes, each documented for the OpenAPI document by `utoipa::path`.

pub mod sessions;
pub mod systems;

use crate::error::Problem;

/// The errors any authenticated route can answer with, each an `application/problem+json` document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Problems {
    /// The request is malformed (a body or parameter that cannot be read, a name that is not one).
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No bearer token, or one the API server does not accept.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Kubernetes RBAC does not let the caller do this.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such object (or namespace).
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The request took longer than the request timeout.
    #[response(status = 408, content_type = "application/problem+json")]
    Timeout(Problem),
    /// It exists already, or changed meanwhile.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// The body is larger than the body limit.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not `application/json`.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// The request is well-formed but invalid: the API's checks or the API server's validation
    /// (schema, CEL) name the fields at fault in `causes`.
    #[response(status = 422, content_type = "application/problem+json")]
    Unprocessable(Problem),
    /// The API server is unreachable or failed.
    #[response(status = 502, content_type = "application/problem+json")]
    BadGateway(Problem),
}

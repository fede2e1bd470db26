//! axum's extractors with their rejections as problem documents, so every error the API sends is
//! `application/problem+json`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body.
pub struct Body<T>(pub T);
/// Path parameters.
pub struct PathArgs<T>(pub T);
/// Query parameters.
pub struct QueryArgs<T>(pub T);

/// The field a serde error message names (`spec.replicas: invalid type …` → `spec.replicas`).
fn field_of(message: &str) -> Option<String> {
    let tail = message
        .rsplit_once("target type: ")
        .map(|(_, t)| t)
        .unwrap_or(message);
    let (path, _) = tail.split_once(": ")?;
    (!path.is_empty() && !path.contains(' ') && path != ".").then(|| path.to_string())
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(rejection) => {
                let text = rejection.body_text();
                let field = match &rejection {
                    JsonRejection::JsonDataError(_) => field_of(&text),
                    _ => None,
                };
                Err(ApiError::Invalid {
                    status: rejection.status(),
                    detail: text,
                    field,
                })
            }
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathArgs(p.0))
            .map_err(|r: PathRejection| ApiError::Invalid {
                status: axum::http::StatusCode::BAD_REQUEST,
                detail: r.body_text(),
                field: None,
            })
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryArgs(q.0))
            .map_err(|r: QueryRejection| {
                let text = r.body_text();
                ApiError::Invalid {
                    status: axum::http::StatusCode::BAD_REQUEST,
                    field: field_of(&text).or_else(|| unknown_field(&text)),
                    detail: text,
                }
            })
    }
}

fn unknown_field(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("unknown field `")?;
    rest.split_once('`').map(|(f, _)| f.to_string())
}

/// Check that `value` is a DNS-1123 label (namespaces) or subdomain (names) before it goes into an
/// API server path.
pub fn dns_name(field: &str, value: &str, subdomain: bool) -> Result<(), ApiError> {
    let max = if subdomain { 253 } else { 63 };
    let ok_char = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (subdomain && c == '.')
    };
    let ok = !value.is_empty()
        && value.len() <= max
        && value.chars().all(ok_char)
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            field,
            format!(
                "{field} {value:?} is not a valid Kubernetes name (lowercase letters, digits and '-'{}, at most {max} characters, starting and ending alphanumeric)",
                if subdomain { ", '.'" } else { "" }
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_name_their_field() {
        assert_eq!(
            field_of("Failed to deserialize the JSON body into the target type: replicas: invalid type: string \"x\", expected i32 at line 1 column 16").as_deref(),
            Some("replicas")
        );
        assert_eq!(
            unknown_field(
                "Failed to deserialize query string: unknown field `foo`, expected one of `label`"
            )
            .as_deref(),
            Some("foo")
        );
    }

    #[test]
    fn names_are_checked_before_they_reach_a_path() {
        assert!(dns_name("namespace", "team-a", false).is_ok());
        assert!(dns_name("name", "a.b", true).is_ok());
        assert!(dns_name("namespace", "a.b", false).is_err());
        assert!(dns_name("name", "../x", true).is_err());
        assert!(dns_name("name", "", true).is_err());
        assert!(dns_name("name", "A", true).is_err());
    }
}

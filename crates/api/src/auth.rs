//! Who is calling: the bearer token is checked by the API server (TokenReview) and every call made
//! for the request carries the caller's identity in impersonation headers, so Kubernetes RBAC decides
//! what the caller may do. The API's own credentials only review tokens and impersonate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

/// How long a reviewed token is trusted before it is reviewed again (kube-apiserver's webhook token
/// authenticator caches for 2 minutes; this is shorter, so a deleted ServiceAccount stops working sooner).
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(10);
/// How long an identity's client is kept unused.
const CLIENT_IDLE: Duration = Duration::from_secs(600);
/// The group every authenticated user has; the API server adds it to impersonated users itself.
const AUTHENTICATED: &str = "system:authenticated";

/// The caller, as the API server's TokenReview told it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct Identity {
    /// User name (`system:serviceaccount:team-a:alice` for a ServiceAccount).
    pub username: String,
    /// User id, when the authenticator gives one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A request's caller and a client that acts as them.
#[derive(Clone)]
pub struct Caller {
    /// Who.
    pub identity: Identity,
    /// A client whose every call impersonates `identity`.
    pub client: kube::Client,
}

/// Reviewed tokens and per-identity clients.
#[derive(Default)]
pub struct AuthCache {
    tokens: Mutex<HashMap<[u8; 32], (Identity, Instant)>>,
    clients: Mutex<HashMap<Identity, (kube::Client, Instant)>>,
}

fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The bearer token of a request, if it has one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl AuthCache {
    /// Who holds `token`, asking the API server unless a recent answer is cached.
    pub async fn review(&self, base: &kube::Client, token: &str) -> Result<Identity, ApiError> {
        let key = digest(token);
        let now = Instant::now();
        if let Ok(cache) = self.tokens.lock()
            && let Some((id, at)) = cache.get(&key)
            && now.duration_since(*at) < TOKEN_CACHE_TTL
        {
            return Ok(id.clone());
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(base.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(ApiError::kube("reviewing the bearer token"))?;
        let status = answer.status.unwrap_or_default();
        let user = status.user.unwrap_or_default();
        let username = user.username.unwrap_or_default();
        if !status.authenticated.unwrap_or(false) || username.is_empty() {
            let why = status.error.filter(|e| !e.is_empty());
            return Err(ApiError::Unauthenticated(match why {
                Some(e) => format!("the API server did not accept the bearer token: {e}"),
                None => "the API server did not accept the bearer token".into(),
            }));
        }
        let identity = Identity {
            username,
            uid: user.uid.unwrap_or_default(),
            groups: user.groups.unwrap_or_default(),
        };
        if let Ok(mut cache) = self.tokens.lock() {
            cache.retain(|_, (_, at)| now.duration_since(*at) < TOKEN_CACHE_TTL);
            cache.insert(key, (identity.clone(), now));
        }
        Ok(identity)
    }

    /// A client that impersonates `identity` (user, uid and groups; extra fields are not passed on).
    pub fn client_for(
        &self,
        base: &kube::Config,
        identity: &Identity,
    ) -> Result<kube::Client, ApiError> {
        let now = Instant::now();
        if let Ok(mut cache) = self.clients.lock()
            && let Some((client, used)) = cache.get_mut(identity)
        {
            *used = now;
            return Ok(client.clone());
        }
        let mut config = base.clone();
        config.auth_info.impersonate = Some(identity.username.clone());
        config.auth_info.impersonate_uid = (!identity.uid.is_empty()).then(|| identity.uid.clone());
        let groups: Vec<String> = identity
            .groups
            .iter()
            .filter(|g| g.as_str() != AUTHENTICATED)
            .cloned()
            .collect();
        config.auth_info.impersonate_groups = (!groups.is_empty()).then_some(groups);
        let client = kube::Client::try_from(config).map_err(|source| ApiError::Upstream {
            context: format!("building a client for {}", identity.username),
            source,
        })?;
        if let Ok(mut cache) = self.clients.lock() {
            cache.retain(|_, (_, used)| now.duration_since(*used) < CLIENT_IDLE);
            cache.insert(identity.clone(), (client.clone(), now));
        }
        Ok(client)
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::Unauthenticated(
                "a bearer token is required (Authorization: Bearer TOKEN); anonymous access is not allowed"
                    .into(),
            )
        })?;
        let identity = state.auth.review(&state.base_client, token).await?;
        let client = state.auth.client_for(&state.base_config, &identity)?;
        Ok(Caller { identity, client })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(header: Option<&str>) -> Parts {
        let mut b = axum::http::Request::builder();
        if let Some(h) = header {
            b = b.header(AUTHORIZATION, h);
        }
        b.body(())
            .map(|r| r.into_parts().0)
            .unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively_and_blank_ones_refused() {
        assert_eq!(bearer(&parts(Some("Bearer abc"))), Some("abc"));
        assert_eq!(bearer(&parts(Some("bearer  abc "))), Some("abc"));
        assert_eq!(bearer(&parts(Some("Basic abc"))), None);
        assert_eq!(bearer(&parts(Some("Bearer "))), None);
        assert_eq!(bearer(&parts(None)), None);
    }
}

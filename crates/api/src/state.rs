//! What every request shares: the API's own client (for token reviews), the identity clients, and
//! the sessions this API holds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::auth::AuthCache;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Longest time a request that is not a stream may take.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Shared state of the API.
pub struct AppState {
    /// The API's own configuration (impersonating clients are built from it).
    pub base_config: kube::Config,
    /// The API's own client: token reviews and readiness only.
    pub base_client: kube::Client,
    /// Reviewed tokens and identity clients.
    pub auth: AuthCache,
    /// Renewal tasks of the sessions this API holds, by (namespace, name).
    pub held: Mutex<HashMap<(String, String), JoinHandle<()>>>,
    /// Limits.
    pub limits: Limits,
}

impl AppState {
    /// State over the API's own client configuration.
    pub fn new(base_config: kube::Config, limits: Limits) -> Result<AppState, crate::ApiError> {
        let base_client = kube::Client::try_from(base_config.clone()).map_err(|source| {
            crate::ApiError::Upstream {
                context: "building the API's own client".into(),
                source,
            }
        })?;
        Ok(AppState {
            base_config,
            base_client,
            auth: AuthCache::default(),
            held: Mutex::new(HashMap::new()),
            limits,
        })
    }

    /// Whether this API holds the session.
    pub fn holds(&self, namespace: &str, name: &str) -> bool {
        self.held
            .lock()
            .map(|h| h.contains_key(&(namespace.to_string(), name.to_string())))
            .unwrap_or(false)
    }

    /// Stop holding a session (its renewal task ends).
    pub fn release(&self, namespace: &str, name: &str) {
        if let Ok(mut h) = self.held.lock()
            && let Some(task) = h.remove(&(namespace.to_string(), name.to_string()))
        {
            task.abort();
        }
    }
}

impl Drop for AppState {
    fn drop(&mut self) {
        if let Ok(mut h) = self.held.lock() {
            for (_, task) in h.drain() {
                task.abort();
            }
        }
    }
}

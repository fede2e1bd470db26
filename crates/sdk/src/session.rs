//! The client side of the session Lease contract: create a Lease, renew it about every third of
//! its duration, report the session lost when it cannot be renewed in time, delete it at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::SdkError;
use tycho_model::{ANNOTATION_COLLECTED, LABEL_MANAGED_BY, MANAGED_BY};

/// How a session is opened.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// `leaseDurationSeconds` (default 30 s): the controller collects the session this long after
    /// the last renewal it saw.
    pub lease_duration: Duration,
    /// `holderIdentity` (default `user@host:pid`).
    pub holder: Option<String>,
    /// Prefix of the generated Lease name (default `tycho-session`).
    pub name_prefix: String,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            lease_duration: Duration::from_secs(30),
            holder: None,
            name_prefix: "tycho-session".into(),
        }
    }
}

/// The state of a session as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// Renewed in time.
    Active,
    /// Deleted, collected, or not renewed within its duration (the reason says which).
    Lost(String),
    /// Ended by the client.
    Closed,
}

fn holder_identity() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}:{}", std::process::id())
}

pub(crate) fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz0123456789";
    (0..len)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// A session Lease and its renewal task.
pub(crate) struct Session {
    pub name: String,
    pub duration: Duration,
    api: Api<Lease>,
    state_tx: Arc<watch::Sender<SessionState>>,
    renewer: JoinHandle<()>,
}

impl Session {
    /// Create the Lease and start renewing it.
    pub async fn open(
        client: kube::Client,
        namespace: &str,
        opts: &SessionOptions,
    ) -> Result<Session, SdkError> {
        let api: Api<Lease> = Api::namespaced(client, namespace);
        let secs = i32::try_from(opts.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let holder = opts.holder.clone().unwrap_or_else(holder_identity);
        let mut lease = Lease {
            metadata: ObjectMeta {
                labels: Some([(LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder),
                lease_duration_seconds: Some(secs),
                acquire_time: Some(now_micro()),
                renew_time: Some(now_micro()),
                ..LeaseSpec::default()
            }),
        };
        // Generated name, retried on the (unlikely) collision.
        let mut created = None;
        for _ in 0..5 {
            let name = format!("{}-{}", opts.name_prefix, random_suffix(8));
            lease.metadata.name = Some(name.clone());
            match api.create(&PostParams::default(), &lease).await {
                Ok(l) => {
                    created = Some(l);
                    break;
                }
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(SdkError::api(format!("create Lease {name}"))(e)),
            }
        }
        let Some(created) = created else {
            return Err(SdkError::Connect {
                context: "could not find a free session Lease name".into(),
                source: None,
            });
        };
        let name = created.metadata.name.unwrap_or_default();
        tracing::debug!(lease = %name, namespace, duration_s = secs, "session opened");
        let (tx, _) = watch::channel(SessionState::Active);
        let state_tx = Arc::new(tx);
        let renewer = tokio::spawn(renew_loop(
            api.clone(),
            name.clone(),
            opts.lease_duration,
            Arc::clone(&state_tx),
        ));
        Ok(Session {
            name,
            duration: opts.lease_duration,
            api,
            state_tx,
            renewer,
        })
    }

    /// A receiver of the session state.
    pub fn watch(&self) -> watch::Receiver<SessionState> {
        self.state_tx.subscribe()
    }

    /// Current state.
    pub fn state(&self) -> SessionState {
        self.state_tx.borrow().clone()
    }

    /// Stop renewing and delete the Lease (the controller then collects the session's Systems).
    pub async fn close(&self) -> Result<(), SdkError> {
        self.renewer.abort();
        let _ = self.state_tx.send(SessionState::Closed);
        match self.api.delete(&self.name, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::debug!(lease = %self.name, "session closed");
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(SdkError::api(format!("delete Lease {}", self.name))(e)),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.renewer.abort();
        if *self.state_tx.borrow() == SessionState::Closed {
            return;
        }
        let _ = self.state_tx.send(SessionState::Closed);
        // Best effort: only possible while a Tokio runtime is running. If it is shutting down,
        // the Lease simply expires and the controller collects the session.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let api = self.api.clone();
            let name = self.name.clone();
            handle.spawn(async move {
                if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
                    tracing::debug!(lease = %name, error = %e, "deleting the session Lease on drop failed");
                }
            });
        }
    }
}

async fn renew_loop(
    api: Api<Lease>,
    name: String,
    duration: Duration,
    state: Arc<watch::Sender<SessionState>>,
) {
    let period = (duration / 3).max(Duration::from_millis(200));
    let mut last_ok = Instant::now();
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        let patch = serde_json::json!({"spec": {"renewTime": now_micro()}});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(lease) => {
                let collected = lease
                    .metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key(ANNOTATION_COLLECTED));
                if collected {
                    tracing::warn!(lease = %name, "session was collected by the controller");
                    let _ = state.send(SessionState::Lost(
                        "the controller collected the session".into(),
                    ));
                    return;
                }
                last_ok = Instant::now();
                tracing::debug!(lease = %name, "session renewed");
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                tracing::warn!(lease = %name, "session Lease was deleted");
                let _ = state.send(SessionState::Lost("the Lease was deleted".into()));
                return;
            }
            Err(e) => {
                tracing::warn!(lease = %name, error = %e, "renewing the session Lease failed");
                if last_ok.elapsed() >= duration {
                    let _ = state.send(SessionState::Lost(format!(
                        "not renewed for {:?} (last error: {e})",
                        last_ok.elapsed()
                    )));
                    return;
                }
            }
        }
    }
}

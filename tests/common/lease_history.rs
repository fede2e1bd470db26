//! The records the session tests (tests/controller_sessions.rs, tests/e2e_sessions.rs) read instead of a
//! stopwatch: every version of one session Lease that a watch (started at its creation) receives — which
//! renewals came, which version carries the controller's collected mark (written conditionally on the version
//! it was based on), and whether it was deleted — and the `eventTime`s of the controller's Events.
//!
//! Included by path: `#[path = "common/lease_history.rs"] mod lease_history;`.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;
use tycho_model::ANNOTATION_COLLECTED;

/// The Lease's `renewTime` in microseconds.
pub fn renew_time(l: &Lease) -> Option<i64> {
    Some(l.spec.as_ref()?.renew_time.as_ref()?.0.as_microsecond())
}

/// The controller's collected mark on the Lease, if any.
pub fn collected_mark(l: &Lease) -> Option<String> {
    l.metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_COLLECTED)
        .cloned()
}

/// The Events on `object`.
pub async fn events_on(events: &Api<Event>, object: &str) -> Vec<Event> {
    events
        .list(&ListParams::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(object))
        .collect()
}

/// The controller's Events on `object` with `reason`: their `eventTime` in microseconds.
pub async fn event_times(events: &Api<Event>, object: &str, reason: &str) -> Vec<i64> {
    events_on(events, object)
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.event_time.map(|t| t.0.as_microsecond()))
        .collect()
}

/// The versions of one Lease, in the order the watch received them, each with whether it was the deletion.
#[derive(Clone, Default)]
pub struct LeaseHistory(Arc<Mutex<Vec<(bool, Lease)>>>);

impl LeaseHistory {
    /// Watch the Lease `name` of `api` until the returned task is aborted.
    pub fn watch(api: Api<Lease>, name: &str) -> (LeaseHistory, tokio::task::JoinHandle<()>) {
        let history = LeaseHistory::default();
        let h = history.clone();
        let name = name.to_string();
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
            while let Some(ev) = events.next().await {
                let (deleted, lease) = match ev {
                    Ok(watcher::Event::Apply(l) | watcher::Event::InitApply(l)) => (false, l),
                    Ok(watcher::Event::Delete(l)) => (true, l),
                    _ => continue,
                };
                if lease.metadata.name.as_deref() == Some(name.as_str()) {
                    h.0.lock().expect("history lock").push((deleted, lease));
                }
            }
        });
        (history, task)
    }

    /// Every version seen so far.
    pub fn versions(&self) -> Vec<(bool, Lease)> {
        self.0.lock().expect("history lock").clone()
    }

    /// The first version carrying the controller's collected mark.
    pub fn marked(&self) -> Option<Lease> {
        self.versions()
            .into_iter()
            .map(|(_, l)| l)
            .find(|l| collected_mark(l).is_some())
    }

    /// Whether the deletion was seen.
    pub fn deleted(&self) -> bool {
        self.versions().iter().any(|(d, _)| *d)
    }

    /// How many distinct `renewTime`s were seen.
    pub fn renewals(&self) -> usize {
        let mut times: Vec<i64> = self
            .versions()
            .iter()
            .filter_map(|(_, l)| renew_time(l))
            .collect();
        times.dedup();
        times.len()
    }

    /// One line per version, for failure messages.
    pub fn describe(&self) -> String {
        self.versions()
            .iter()
            .map(|(d, l)| {
                format!(
                    "{}rv={} renewTime={:?} collected={:?}",
                    if *d { "DELETED " } else { "" },
                    l.metadata.resource_version.as_deref().unwrap_or("?"),
                    renew_time(l),
                    collected_mark(l)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

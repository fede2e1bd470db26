//! A work queue in the manner of client-go's `workqueue`: keys are de-duplicated, a key is never
//! processed by two workers at once (a key added while it is processed is queued again when the
//! worker is done), delayed re-adds, and per-key exponential backoff on failure.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::SimError;

/// The key of a namespaced (or, with an empty namespace, cluster-scoped) object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Key {
    /// A key from its parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Key {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Key>,
    dirty: HashSet<Key>,
    processing: HashSet<Key>,
    failures: HashMap<Key, u32>,
    shut_down: bool,
}

/// A de-duplicating work queue of object keys.
#[derive(Default)]
pub struct WorkQueue {
    state: Mutex<State>,
    notify: Notify,
}

/// First retry delay after a failed reconcile.
const BACKOFF_BASE: Duration = Duration::from_millis(50);
/// Longest retry delay after repeated failures.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

impl WorkQueue {
    /// An empty queue.
    pub fn new() -> Arc<Self> {
        Arc::new(WorkQueue::default())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a worker panicked mid-update of plain collections; the
        // data is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `key` unless it is already waiting.
    pub fn add(&self, key: Key) {
        let mut s = self.lock();
        if s.shut_down || s.dirty.contains(&key) {
            return;
        }
        s.dirty.insert(key.clone());
        if s.processing.contains(&key) {
            return; // re-queued by done()
        }
        s.queue.push_back(key);
        drop(s);
        self.notify.notify_one();
    }

    /// Queues `key` after `delay`.
    pub fn add_after(self: &Arc<Self>, key: Key, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let q = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(key);
        });
    }

    /// Queues `key` after a delay that doubles with each consecutive failure of that key.
    pub fn add_rate_limited(self: &Arc<Self>, key: Key) {
        let n = {
            let mut s = self.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let delay = BACKOFF_BASE
            .saturating_mul(1u32 << (n - 1).min(16))
            .min(BACKOFF_MAX);
        self.add_after(key, delay);
    }

    /// Forgets the failure count of `key` (after a success).
    pub fn forget(&self, key: &Key) {
        self.lock().failures.remove(key);
    }

    /// Waits for the next key; `None` once the queue is shut down.
    pub async fn get(&self) -> Option<Key> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if s.shut_down {
                    return None;
                }
                if let Some(k) = s.queue.pop_front() {
                    s.dirty.remove(&k);
                    s.processing.insert(k.clone());
                    let more = !s.queue.is_empty();
                    drop(s);
                    if more {
                        self.notify.notify_one();
                    }
                    return Some(k);
                }
            }
            notified.await;
        }
    }

    /// Marks `key` as processed; re-queues it if it was added meanwhile.
    pub fn done(&self, key: &Key) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) && !s.shut_down {
            s.queue.push_back(key.clone());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Stops the queue: waiting and future `get` calls return `None`.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.notify.notify_waiters();
    }

    /// Number of keys waiting (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether no key is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a successful reconcile asks for.
pub type Requeue = Option<Duration>;

/// Runs `workers` concurrent workers that take keys from `queue` and run `reconcile` on them,
/// until the queue is shut down: success forgets the key's failures (and re-queues it after the
/// returned delay, if any); failure is logged and retried with per-key exponential backoff.
pub async fn run_workers<F, Fut>(
    name: &'static str,
    queue: Arc<WorkQueue>,
    workers: usize,
    reconcile: F,
) where
    F: Fn(Key) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Requeue, SimError>> + Send + 'static,
{
    let mut all = Vec::new();
    for _ in 0..workers.max(1) {
        let queue = Arc::clone(&queue);
        let reconcile = reconcile.clone();
        all.push(async move {
            while let Some(key) = queue.get().await {
                match reconcile(key.clone()).await {
                    Ok(requeue) => {
                        queue.forget(&key);
                        if let Some(d) = requeue {
                            queue.add_after(key.clone(), d);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(controller = name, %key, error = %e, "reconcile failed, retrying");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
    futures::future::join_all(all).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedups_and_requeues_keys_added_while_processing() {
        let q = WorkQueue::new();
        q.add(Key::new("ns", "a"));
        q.add(Key::new("ns", "a"));
        q.add(Key::new("ns", "b"));
        assert_eq!(q.len(), 2);
        let a = q.get().await.unwrap();
        assert_eq!(a.name, "a");
        // Added while processing: not handed out twice at once, queued again on done().
        q.add(a.clone());
        let b = q.get().await.unwrap();
        assert_eq!(b.name, "b");
        assert!(q.is_empty());
        q.done(&a);
        assert_eq!(q.get().await.unwrap().name, "a");
        q.shut_down();
        assert!(q.get().await.is_none());
    }
}

//! Shared informers: one kube-runtime watcher per kind, feeding an in-memory cache (with an
//! index by controller owner) and the event handlers of the controllers interested in that kind.
//! This is client-go's SharedInformer pattern, as kube-controller-manager uses it: every
//! controller reads from the same cache and each kind is watched once.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::queue::Key;

/// An event handler: called with the previous and the new version of an object (`None` for
/// "did not exist" / "deleted").
pub type Handler<K> = Box<dyn Fn(Option<&Arc<K>>, Option<&Arc<K>>) + Send + Sync>;

/// A change reported to handlers: (previous, new).
type Change<K> = (Option<Arc<K>>, Option<Arc<K>>);

struct Inner<K> {
    objects: HashMap<Key, Arc<K>>,
    by_owner: HashMap<String, HashSet<Key>>,
}

/// The cache of one kind.
pub struct Cache<K> {
    inner: RwLock<Inner<K>>,
    synced: watch::Sender<bool>,
    handlers: RwLock<Vec<Handler<K>>>,
}

/// The key of an object.
pub fn key_of<K: Resource>(obj: &K) -> Key {
    let m = obj.meta();
    Key::new(
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

/// The uid of the controller owner of an object, if any.
pub fn controller_uid<K: Resource>(obj: &K) -> Option<&str> {
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// Whether `new` is at least as recent as `old`, judged by numeric resourceVersions when both
/// are numbers (as with etcd and the emulator); otherwise assumed newer.
fn not_older<K: Resource>(old: &K, new: &K) -> bool {
    match (
        old.meta()
            .resource_version
            .as_deref()
            .map(str::parse::<u64>),
        new.meta()
            .resource_version
            .as_deref()
            .map(str::parse::<u64>),
    ) {
        (Some(Ok(o)), Some(Ok(n))) => n >= o,
        _ => true,
    }
}

impl<K: Resource + Clone + Send + Sync + 'static> Cache<K> {
    /// An empty, not yet synced cache.
    pub fn new() -> Arc<Self> {
        Arc::new(Cache {
            inner: RwLock::new(Inner {
                objects: HashMap::new(),
                by_owner: HashMap::new(),
            }),
            synced: watch::Sender::new(false),
            handlers: RwLock::new(Vec::new()),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner<K>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner<K>> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a handler, called for every change after it is registered.
    pub fn on_change(&self, h: Handler<K>) {
        self.handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(h);
    }

    fn notify(&self, old: Option<&Arc<K>>, new: Option<&Arc<K>>) {
        let hs = self.handlers.read().unwrap_or_else(|p| p.into_inner());
        for h in hs.iter() {
            h(old, new);
        }
    }

    /// The object with this key.
    pub fn get(&self, key: &Key) -> Option<Arc<K>> {
        self.read().objects.get(key).cloned()
    }

    /// Every object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().objects.values().cloned().collect()
    }

    /// The objects whose controller owner has this uid.
    pub fn owned_by(&self, uid: &str) -> Vec<Arc<K>> {
        let g = self.read();
        g.by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|k| g.objects.get(k).cloned())
            .collect()
    }

    fn insert_locked(inner: &mut Inner<K>, obj: Arc<K>) -> Option<Arc<K>> {
        let key = key_of(obj.as_ref());
        let old = inner.objects.insert(key.clone(), Arc::clone(&obj));
        let old_owner = old.as_deref().and_then(controller_uid).map(str::to_string);
        let new_owner = controller_uid(obj.as_ref()).map(str::to_string);
        if old_owner != new_owner
            && let Some(o) = old_owner
        {
            Self::unindex(inner, &o, &key);
        }
        if let Some(n) = new_owner {
            inner.by_owner.entry(n).or_default().insert(key);
        }
        old
    }

    fn unindex(inner: &mut Inner<K>, owner: &str, key: &Key) {
        if let Some(set) = inner.by_owner.get_mut(owner) {
            set.remove(key);
            if set.is_empty() {
                inner.by_owner.remove(owner);
            }
        }
    }

    fn remove_locked(inner: &mut Inner<K>, key: &Key) -> Option<Arc<K>> {
        let old = inner.objects.remove(key)?;
        if let Some(o) = controller_uid(old.as_ref()).map(str::to_string) {
            Self::unindex(inner, &o, key);
        }
        Some(old)
    }

    /// Records an object the controller just wrote (write-through), unless the cache already
    /// holds a newer version. Handlers are not called: the watch event will follow, or, if it is
    /// lost while the watch is down, the relist that follows calls them (see `replace`).
    pub fn observe_write(&self, obj: K) {
        let mut g = self.write();
        let key = key_of(&obj);
        if let Some(cur) = g.objects.get(&key)
            && !not_older(cur.as_ref(), &obj)
        {
            return;
        }
        Self::insert_locked(&mut g, Arc::new(obj));
    }

    /// Applies a watch event to the cache and calls the handlers.
    fn apply(&self, obj: K) {
        let new = Arc::new(obj);
        let old = {
            let mut g = self.write();
            let key = key_of(new.as_ref());
            if let Some(cur) = g.objects.get(&key)
                && !not_older(cur.as_ref(), new.as_ref())
            {
                return; // a write-through already holds a newer version
            }
            Self::insert_locked(&mut g, Arc::clone(&new))
        };
        self.notify(old.as_ref(), Some(&new));
    }

    fn delete(&self, obj: K) {
        let key = key_of(&obj);
        let removed = Self::remove_locked(&mut self.write(), &key);
        let gone = removed.unwrap_or_else(|| Arc::new(obj));
        self.notify(Some(&gone), None);
    }

    /// Replaces the whole content after a (re)list and calls the handlers for every listed object
    /// (and for every cached object that is gone), as client-go's `Replace` does (resync on relist).
    ///
    /// Handlers run even when the cached version equals the listed one: the cached version may
    /// come from [`Cache::observe_write`], which does not call handlers, and its watch event may
    /// have been lost while the watch was down — comparing versions would then hide that change
    /// from every other controller for good. Handlers only enqueue keys, so a relist costs one
    /// idempotent reconcile per object, and relists are rare (410 Gone, not a timed-out watch).
    fn replace(&self, listed: HashMap<Key, K>) {
        let mut changes: Vec<Change<K>> = Vec::new();
        {
            let mut g = self.write();
            let gone: Vec<Key> = g
                .objects
                .keys()
                .filter(|k| !listed.contains_key(*k))
                .cloned()
                .collect();
            for k in gone {
                if let Some(old) = Self::remove_locked(&mut g, &k) {
                    changes.push((Some(old), None));
                }
            }
            for (_, obj) in listed {
                let new = Arc::new(obj);
                let old = Self::insert_locked(&mut g, Arc::clone(&new));
                changes.push((old, Some(new)));
            }
        }
        for (old, new) in changes {
            self.notify(old.as_ref(), new.as_ref());
        }
        self.synced.send_replace(true);
    }

    /// Waits until the first list has been loaded (or shutdown).
    pub async fn wait_synced(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let mut rx = self.synced.subscribe();
        tokio::select! {
            r = rx.wait_for(|s| *s) => r.is_ok(),
            _ = shutdown.wait_for(|s| *s) => false,
        }
    }

    /// Whether the first list has been loaded.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }
}

/// Runs the watcher of one kind into `cache` until shutdown. Watch errors are retried by the
/// watcher with kube-runtime's default exponential backoff.
pub async fn run<K>(
    api: Api<K>,
    config: watcher::Config,
    cache: Arc<Cache<K>>,
    mut shutdown: watch::Receiver<bool>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let stream = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    let mut buffer: Option<HashMap<Key, K>> = None;
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        match item {
            None => return,
            Some(Err(e)) => {
                tracing::debug!(kind = std::any::type_name::<K>(), error = %e, "watch error, backing off");
            }
            Some(Ok(Event::Init)) => buffer = Some(HashMap::new()),
            Some(Ok(Event::InitApply(obj))) => {
                buffer
                    .get_or_insert_with(HashMap::new)
                    .insert(key_of(&obj), obj);
            }
            Some(Ok(Event::InitDone)) => cache.replace(buffer.take().unwrap_or_default()),
            Some(Ok(Event::Apply(obj))) => cache.apply(obj),
            Some(Ok(Event::Delete(obj))) => cache.delete(obj),
        }
    }
}

/// Helper for handlers: name, namespace and uid of an object.
pub fn describe<K: Resource>(obj: &K) -> (String, String) {
    (obj.name_any(), obj.namespace().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use std::sync::Mutex;

    fn pod(name: &str, rv: &str, owner: Option<&str>) -> Pod {
        let mut v = serde_json::json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}});
        if let Some(o) = owner {
            v["metadata"]["ownerReferences"] = serde_json::json!([{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": o, "controller": true
            }]);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn indexes_by_owner_and_reports_changes() {
        let cache = Cache::<Pod>::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        cache.on_change(Box::new(move |old, new| {
            s.lock()
                .unwrap()
                .push((old.is_some(), new.map(|p| p.name_any())));
        }));
        cache.apply(pod("a", "1", Some("u1")));
        cache.apply(pod("b", "2", Some("u1")));
        assert_eq!(cache.owned_by("u1").len(), 2);
        // An older version than the cached one is ignored.
        cache.observe_write(pod("a", "5", Some("u2")));
        cache.apply(pod("a", "3", Some("u1")));
        assert_eq!(cache.owned_by("u1").len(), 1);
        assert_eq!(cache.owned_by("u2").len(), 1);
        cache.delete(pod("b", "2", Some("u1")));
        assert!(cache.owned_by("u1").is_empty());
        // A relist drops what is gone.
        let mut listed = HashMap::new();
        listed.insert(Key::new("ns", "c"), pod("c", "9", None));
        cache.replace(listed);
        assert!(cache.get(&Key::new("ns", "a")).is_none());
        assert!(cache.owned_by("u2").is_empty());
        assert!(cache.is_synced());
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0], (false, Some("a".into())));
        assert_eq!(seen[2], (true, None));
    }

    /// A controller's own write is cached without calling handlers; if its watch event is lost
    /// while the watch is down, the relist that lists the very same version must still tell the
    /// handlers (the other controllers) about it.
    #[test]
    fn a_relist_reports_a_write_whose_watch_event_was_lost() {
        let cache = Cache::<Pod>::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        cache.on_change(Box::new(move |_, new| {
            s.lock().unwrap().push(new.map(|p| {
                (
                    p.name_any(),
                    p.metadata.resource_version.clone().unwrap_or_default(),
                )
            }));
        }));
        cache.apply(pod("a", "1", None));
        cache.observe_write(pod("a", "2", None)); // the watch event for rv 2 is lost
        assert_eq!(seen.lock().unwrap().len(), 1);
        let mut listed = HashMap::new();
        listed.insert(Key::new("ns", "a"), pod("a", "2", None));
        cache.replace(listed);
        assert_eq!(
            seen.lock().unwrap().last().cloned(),
            Some(Some(("a".to_string(), "2".to_string())))
        );
    }
}

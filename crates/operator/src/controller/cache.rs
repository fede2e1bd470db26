//! The controller's caches: what `reconcile` reads instead of asking the API server.
//!
//! One reflector per watched kind and scope (as controller-runtime's cached client keeps), fed by the
//! same watches that trigger reconciles, so a reconcile of an unchanged System makes no API call. Objects
//! enter a store with `managedFields` and the `last-applied-configuration` annotation stripped: nothing
//! here reads them, and they are often the larger part of an object.
//!
//! Children are found through [`LabelIndex`], a pure index from `(namespace, tycho.dev/system)` to the
//! names carrying that label, kept from the same watch events as the store (including the atomic swap
//! of a re-list), so finding a System's children costs a map lookup, not a scan of the namespace.
//!
//! A cache may lag the API server. Decisions stay safe: children are written with forced server-side
//! apply (writing an object the cache has not seen yet is idempotent), deletes treat 404 as done, and
//! the watch event of every write triggers the next reconcile, which sees the cache caught up.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use futures::{Stream, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, ContainerStatus, PersistentVolumeClaim, Pod, PodStatus, Service,
};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

use tycho_model::{LABEL_SYSTEM, System};

use super::triggers::DigestFilter;

/// The annotation `kubectl apply` (client-side) leaves on objects: a copy of the whole object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drop what no reconcile reads before an object enters a store.
pub fn strip<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
    if let Some(a) = obj.meta_mut().annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

/// Slim a Lease without losing what the session logic reads: of `managedFields` only the time of each
/// entry stays (the API server's own write time judges a Lease seen for the first time, e.g. after a
/// restart; see `session::LeaseView`), not the field sets.
pub fn slim_lease(lease: &mut Lease) {
    if let Some(a) = lease.metadata.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
    if let Some(entries) = lease.metadata.managed_fields.as_mut() {
        for e in entries.iter_mut() {
            e.fields_v1 = None;
        }
    }
}

/// [`strip`] a Pod, and keep of it only what reconciling reads: a Deployment's Pod loses its spec (only
/// its problems are read), every Pod's status keeps its phase, reason, message, conditions and the
/// name, readiness, restarts and state of its containers.
pub fn slim_pod(pod: &mut Pod) {
    strip(pod);
    if !super::triggers::is_bare(pod) {
        pod.spec = None;
    }
    fn containers(list: Option<Vec<ContainerStatus>>) -> Option<Vec<ContainerStatus>> {
        list.map(|l| {
            l.into_iter()
                .map(|c| ContainerStatus {
                    name: c.name,
                    ready: c.ready,
                    restart_count: c.restart_count,
                    state: c.state,
                    ..Default::default()
                })
                .collect()
        })
    }
    pod.status = pod.status.take().map(|s| PodStatus {
        phase: s.phase,
        reason: s.reason,
        message: s.message,
        conditions: s.conditions,
        container_statuses: containers(s.container_statuses),
        init_container_statuses: containers(s.init_container_statuses),
        ..Default::default()
    });
}

/// Names of objects by `(namespace, value of the tycho.dev/system label)`, kept from watch events.
#[derive(Debug, Default)]
pub struct LabelIndex {
    live: Entries,
    /// Entries gathered since `Init`, swapped in at `InitDone` (as the reflector's store does).
    relisting: Option<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    /// `(namespace, system)` → names.
    by_system: HashMap<(String, String), BTreeSet<String>>,
    /// `(namespace, name)` → system, to move an object whose label changed.
    system_of: HashMap<(String, String), String>,
}

impl Entries {
    fn remove(&mut self, ns: &str, name: &str) {
        let key = (ns.to_string(), name.to_string());
        if let Some(system) = self.system_of.remove(&key) {
            let group = (key.0, system);
            if let Some(names) = self.by_system.get_mut(&group) {
                names.remove(name);
                if names.is_empty() {
                    self.by_system.remove(&group);
                }
            }
        }
    }

    fn upsert<K: Resource>(&mut self, obj: &K) {
        let meta = obj.meta();
        let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
            return;
        };
        self.remove(ns, name);
        let Some(system) = meta.labels.as_ref().and_then(|l| l.get(LABEL_SYSTEM)) else {
            return;
        };
        self.system_of
            .insert((ns.to_string(), name.to_string()), system.clone());
        self.by_system
            .entry((ns.to_string(), system.clone()))
            .or_default()
            .insert(name.to_string());
    }
}

impl LabelIndex {
    /// Fold one watch event into the index.
    pub fn apply<K: Resource>(&mut self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(obj) => self.live.upsert(obj),
            watcher::Event::Delete(obj) => {
                let meta = obj.meta();
                if let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) {
                    self.live.remove(ns, name);
                }
            }
            watcher::Event::Init => self.relisting = Some(Entries::default()),
            watcher::Event::InitApply(obj) => {
                self.relisting
                    .get_or_insert_with(Entries::default)
                    .upsert(obj);
            }
            watcher::Event::InitDone => {
                if let Some(entries) = self.relisting.take() {
                    self.live = entries;
                }
            }
        }
    }

    /// Names of the objects in `ns` labelled `tycho.dev/system=system`, in order.
    pub fn names(&self, ns: &str, system: &str) -> Vec<String> {
        self.live
            .by_system
            .get(&(ns.to_string(), system.to_string()))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// A store and the label index kept beside it.
pub struct Indexed<K: Resource<DynamicType = ()> + 'static> {
    /// The objects.
    pub store: Store<K>,
    /// Their names by System.
    pub index: Arc<RwLock<LabelIndex>>,
}

impl<K> Clone for Indexed<K>
where
    K: Resource<DynamicType = ()> + 'static,
{
    fn clone(&self) -> Self {
        Indexed {
            store: self.store.clone(),
            index: self.index.clone(),
        }
    }
}

impl<K> Indexed<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    /// The cached objects of `ns` labelled for `system`, ordered by name.
    pub fn of_system(&self, ns: &str, system: &str) -> Vec<K> {
        let names = match self.index.read() {
            Ok(i) => i.names(ns, system),
            Err(poisoned) => poisoned.into_inner().names(ns, system),
        };
        names
            .iter()
            .filter_map(|n| self.store.get(&ObjectRef::new(n).within(ns)))
            .map(|o| o.as_ref().clone())
            .collect()
    }
}

/// A watch of `api` (with `config`) feeding a stripped store; returns the store and the stream of
/// touched objects that must be polled (given to the Controller as a trigger) to keep the store filled.
pub fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    slim: fn(&mut K),
) -> (
    Store<K>,
    impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(slim)
        .reflect(writer);
    (store, stream)
}

/// Like [`reflect`], with a [`LabelIndex`] kept from the same events; yields the touched objects
/// whose `digest` changed (see [`super::triggers`]).
pub fn reflect_indexed<K>(
    api: Api<K>,
    config: watcher::Config,
    slim: fn(&mut K),
    digest: fn(&K) -> Option<u64>,
) -> (
    Indexed<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, stream) = reflect(api, config, slim);
    let index = Arc::new(RwLock::new(LabelIndex::default()));
    let writer = index.clone();
    let mut filter = DigestFilter::default();
    let stream = stream
        .inspect_ok(move |event| match writer.write() {
            Ok(mut i) => i.apply(event),
            Err(poisoned) => poisoned.into_inner().apply(event),
        })
        .try_filter(move |event| std::future::ready(filter.admit(event, digest)))
        .touched_objects();
    (Indexed { store, index }, stream)
}

/// Everything `reconcile` reads, for one watched scope (a namespace, or the whole cluster).
#[derive(Clone)]
pub struct Caches {
    /// The namespace watched (None: all).
    pub namespace: Option<String>,
    /// Systems.
    pub systems: Store<System>,
    /// Deployments labelled as Tycho's.
    pub deployments: Indexed<Deployment>,
    /// Pods labelled as Tycho's.
    pub pods: Indexed<Pod>,
    /// Services labelled as Tycho's.
    pub services: Indexed<Service>,
    /// ConfigMaps labelled as Tycho's.
    pub config_maps: Indexed<ConfigMap>,
    /// Leases (sessions).
    pub leases: Store<Lease>,
    /// PersistentVolumeClaims (volumes).
    pub claims: Store<PersistentVolumeClaim>,
    /// Set once every store above has received its first complete list.
    pub synced: Arc<std::sync::atomic::AtomicBool>,
}

impl Caches {
    /// Whether this scope covers namespace `ns`.
    pub fn covers(&self, ns: &str) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == ns)
    }

    /// Look up a namespaced object by name in `store`.
    pub fn get<K>(store: &Store<K>, ns: &str, name: &str) -> Option<Arc<K>>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + 'static,
    {
        store.get(&ObjectRef::new(name).within(ns))
    }

    /// Wait until every store of this scope has received its first complete list (at once after that).
    /// kube-runtime starts reconciling when the Systems store is ready; a reconcile that ran before the
    /// children's stores were would take every child for missing and apply it again.
    pub async fn synced(&self) {
        use std::sync::atomic::Ordering;
        if self.synced.load(Ordering::Acquire) {
            return;
        }
        self.wait_until_ready().await;
        self.synced.store(true, Ordering::Release);
    }

    /// Whether every store of this scope has received its first complete list.
    pub async fn wait_until_ready(&self) {
        // kube-runtime's ready signal wakes only its most recent waiter (the Controller also waits on
        // the Systems store), so poll each one with a short timeout instead of waiting once.
        async fn poll<K: Resource<DynamicType = ()> + Clone + 'static>(s: &Store<K>) {
            loop {
                match tokio::time::timeout(
                    std::time::Duration::from_millis(50),
                    s.wait_until_ready(),
                )
                .await
                {
                    Ok(_) => return,
                    Err(_) => continue,
                }
            }
        }
        poll(&self.systems).await;
        poll(&self.deployments.store).await;
        poll(&self.pods.store).await;
        poll(&self.services.store).await;
        poll(&self.config_maps.store).await;
        poll(&self.leases).await;
        poll(&self.claims).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cm(name: &str, system: Option<&str>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                labels: system.map(|s| [(LABEL_SYSTEM.to_string(), s.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn applies_moves_and_deletes() {
        let mut i = LabelIndex::default();
        i.apply(&watcher::Event::Apply(cm("a-files", Some("a"))));
        i.apply(&watcher::Event::Apply(cm("b-files", Some("b"))));
        i.apply(&watcher::Event::Apply(cm("x", Some("a"))));
        assert_eq!(i.names("ns", "a"), vec!["a-files", "x"]);
        // The label moves x to b; an unlabelled object leaves the index.
        i.apply(&watcher::Event::Apply(cm("x", Some("b"))));
        assert_eq!(i.names("ns", "a"), vec!["a-files"]);
        assert_eq!(i.names("ns", "b"), vec!["b-files", "x"]);
        i.apply(&watcher::Event::Apply(cm("x", None)));
        assert_eq!(i.names("ns", "b"), vec!["b-files"]);
        i.apply(&watcher::Event::Delete(cm("b-files", Some("b"))));
        assert!(i.names("ns", "b").is_empty());
        assert!(i.names("other", "a").is_empty());
    }

    #[test]
    fn a_relist_swaps_atomically_at_init_done() {
        let mut i = LabelIndex::default();
        i.apply(&watcher::Event::Apply(cm("old", Some("a"))));
        i.apply(&watcher::Event::<ConfigMap>::Init);
        i.apply(&watcher::Event::InitApply(cm("new", Some("a"))));
        // Until the list is complete the old view stays.
        assert_eq!(i.names("ns", "a"), vec!["old"]);
        i.apply(&watcher::Event::<ConfigMap>::InitDone);
        assert_eq!(i.names("ns", "a"), vec!["new"]);
    }

    #[test]
    fn a_slim_lease_keeps_the_write_times_the_session_logic_reads() {
        use super::super::session::LeaseView;
        let mut lease: Lease = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s", "namespace": "ns", "managedFields": [
                {"manager": "client", "operation": "Update", "time": "2026-12-06T10:00:00Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:renewTime": {}}}},
                {"manager": "client", "operation": "Update", "time": "2026-12-06T10:00:05Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"holderIdentity": "me", "leaseDurationSeconds": 10},
        }))
        .unwrap();
        let before = LeaseView::from_lease(&lease);
        slim_lease(&mut lease);
        assert!(before.last_write.is_some());
        assert_eq!(LeaseView::from_lease(&lease), before);
        assert!(
            lease
                .metadata
                .managed_fields
                .unwrap()
                .iter()
                .all(|e| e.fields_v1.is_none())
        );
    }

    #[test]
    fn strip_drops_managed_fields_and_last_applied() {
        let mut c = cm("a", Some("a"));
        c.metadata.managed_fields = Some(vec![Default::default()]);
        c.metadata.annotations = Some(
            [
                (LAST_APPLIED.to_string(), "{}".to_string()),
                ("keep".to_string(), "1".to_string()),
            ]
            .into(),
        );
        strip(&mut c);
        assert!(c.metadata.managed_fields.is_none());
        assert_eq!(
            c.metadata.annotations.unwrap().keys().collect::<Vec<_>>(),
            vec!["keep"]
        );
    }
}

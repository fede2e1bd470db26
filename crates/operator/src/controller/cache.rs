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
//! Children are kept packed ([`Packed`]): the object as compact JSON bytes beside a metadata holding only
//! its name and namespace, decoded when a reconcile reads it. A typed k8s-openapi object costs about five
//! times its JSON in memory (every `Option` field of a `PodSpec` or `Container` takes its room whether set
//! or not): a live Deployment of `examples/nginx.yaml` takes 13.3 KB typed and 2.4 KB packed.
//!
//! A cache may lag the API server. Decisions stay safe: children are written with forced server-side
//! apply (writing an object the cache has not seen yet is idempotent), deletes treat 404 as done, and
//! the watch event of every write triggers the next reconcile, which sees the cache caught up.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, RwLock};

use futures::{Stream, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, ContainerStatus, PersistentVolumeClaim, Pod, PodStatus, Service,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::Serialize;
use serde::de::DeserializeOwned;

use tycho_model::{LABEL_SYSTEM, System, SystemTemplate};

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

/// Names of objects by `(namespace, key)`, kept from watch events, where an object's keys come from a
/// function of it: the `tycho.dev/system` label of a child ([`LabelIndex::new`]), or the session and the
/// claims a System names ([`LabelIndex::by`]). Finding the objects of a key is a map lookup, not a scan.
#[derive(Debug)]
pub struct LabelIndex<K> {
    keys: fn(&K) -> Vec<String>,
    live: Entries,
    /// Entries gathered since `Init`, swapped in at `InitDone` (as the reflector's store does).
    relisting: Option<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    /// `(namespace, key)` → names.
    by_key: HashMap<(String, String), BTreeSet<String>>,
    /// `(namespace, name)` → keys, to move an object whose keys changed.
    keys_of: HashMap<(String, String), Vec<String>>,
}

impl Entries {
    fn remove(&mut self, ns: &str, name: &str) {
        let Some(keys) = self.keys_of.remove(&(ns.to_string(), name.to_string())) else {
            return;
        };
        for key in keys {
            let group = (ns.to_string(), key);
            if let Some(names) = self.by_key.get_mut(&group) {
                names.remove(name);
                if names.is_empty() {
                    self.by_key.remove(&group);
                }
            }
        }
    }

    fn upsert<K: Resource>(&mut self, obj: &K, keys: Vec<String>) {
        let meta = obj.meta();
        let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
            return;
        };
        self.remove(ns, name);
        if keys.is_empty() {
            return;
        }
        for key in &keys {
            self.by_key
                .entry((ns.to_string(), key.clone()))
                .or_default()
                .insert(name.to_string());
        }
        self.keys_of
            .insert((ns.to_string(), name.to_string()), keys);
    }
}

/// The `tycho.dev/system` label of an object, as its one key.
fn system_label<K: Resource>(obj: &K) -> Vec<String> {
    obj.meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_SYSTEM))
        .cloned()
        .into_iter()
        .collect()
}

/// The session a System names, as its one key.
pub fn session_of(s: &System) -> Vec<String> {
    s.spec.session.iter().cloned().collect()
}

/// The template a System is made from, as its one key.
pub fn template_of(s: &System) -> Vec<String> {
    s.spec.template.iter().cloned().collect()
}

/// The claims a System mounts.
pub fn claims_of(s: &System) -> Vec<String> {
    let mut c: Vec<String> = s.spec.volumes.iter().map(|v| v.claim.clone()).collect();
    c.sort();
    c.dedup();
    c
}

impl<K: Resource> LabelIndex<K> {
    /// An index by the `tycho.dev/system` label.
    pub fn new() -> Self {
        Self::by(system_label::<K>)
    }

    /// An index by the keys `keys` gives an object.
    pub fn by(keys: fn(&K) -> Vec<String>) -> Self {
        LabelIndex {
            keys,
            live: Entries::default(),
            relisting: None,
        }
    }

    /// Fold one watch event into the index.
    pub fn apply(&mut self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(obj) => self.live.upsert(obj, (self.keys)(obj)),
            watcher::Event::Delete(obj) => {
                let meta = obj.meta();
                if let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) {
                    self.live.remove(ns, name);
                }
            }
            watcher::Event::Init => self.relisting = Some(Entries::default()),
            watcher::Event::InitApply(obj) => {
                let keys = (self.keys)(obj);
                self.relisting
                    .get_or_insert_with(Entries::default)
                    .upsert(obj, keys);
            }
            watcher::Event::InitDone => {
                if let Some(entries) = self.relisting.take() {
                    self.live = entries;
                }
            }
        }
    }

    /// `(namespace, name)` of the objects with key `key` in any namespace.
    pub fn everywhere(&self, key: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .live
            .by_key
            .iter()
            .filter(|((_, k), _)| k == key)
            .flat_map(|((ns, _), names)| names.iter().map(move |n| (ns.clone(), n.clone())))
            .collect();
        out.sort();
        out
    }

    /// Names of the objects in `ns` with key `key`, in order.
    pub fn names(&self, ns: &str, key: &str) -> Vec<String> {
        self.live
            .by_key
            .get(&(ns.to_string(), key.to_string()))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl<K: Resource> Default for LabelIndex<K> {
    fn default() -> Self {
        Self::new()
    }
}

/// Read `index` whether or not a writer panicked while holding it.
fn read<K>(index: &RwLock<LabelIndex<K>>) -> std::sync::RwLockReadGuard<'_, LabelIndex<K>> {
    index
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Fold `event` into `index` whether or not a writer panicked while holding it.
fn write<K: Resource>(index: &RwLock<LabelIndex<K>>, event: &watcher::Event<K>) {
    index
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .apply(event);
}

/// An object of kind `K` kept as compact JSON, with a metadata of its name and namespace only (what a
/// store's key needs). [`Packed::unpack`] gives the object back as it was packed.
pub struct Packed<K> {
    metadata: ObjectMeta,
    json: Box<[u8]>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Packed<K> {
    fn clone(&self) -> Self {
        Packed {
            metadata: self.metadata.clone(),
            json: self.json.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Packed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packed")
            .field("name", &self.metadata.name)
            .field("namespace", &self.metadata.namespace)
            .field("bytes", &self.json.len())
            .finish()
    }
}

impl<K: Resource> Resource for Packed<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<K: Resource + Serialize + DeserializeOwned> Packed<K> {
    /// Pack `obj`. An object that cannot be serialized (it came from JSON, so it always can) is packed
    /// empty, and [`Packed::unpack`] reports it.
    pub fn pack(obj: &K) -> Self {
        Packed {
            json: serde_json::to_vec(obj)
                .unwrap_or_default()
                .into_boxed_slice(),
            ..Packed::key(obj)
        }
    }

    /// Only the name and namespace of `obj` (enough for a store to remove it).
    pub fn key(obj: &K) -> Self {
        let m = obj.meta();
        Packed {
            metadata: ObjectMeta {
                name: m.name.clone(),
                namespace: m.namespace.clone(),
                ..Default::default()
            },
            json: Box::default(),
            kind: PhantomData,
        }
    }

    /// The object as it was packed.
    pub fn unpack(&self) -> Result<K, serde_json::Error> {
        serde_json::from_slice(&self.json)
    }

    /// Pack the object of a watch event.
    pub fn event(event: &watcher::Event<K>) -> watcher::Event<Self> {
        match event {
            watcher::Event::Apply(o) => watcher::Event::Apply(Packed::pack(o)),
            watcher::Event::InitApply(o) => watcher::Event::InitApply(Packed::pack(o)),
            watcher::Event::Delete(o) => watcher::Event::Delete(Packed::key(o)),
            watcher::Event::Init => watcher::Event::Init,
            watcher::Event::InitDone => watcher::Event::InitDone,
        }
    }
}

/// A store of packed objects, the label index kept beside it, and the digests of the last version of
/// each object that woke (or need not wake) its System.
pub struct Indexed<K: Resource<DynamicType = ()> + 'static> {
    /// The objects, packed.
    pub store: Store<Packed<K>>,
    /// Their names by System.
    pub index: Arc<RwLock<LabelIndex<K>>>,
    seen: Arc<Mutex<DigestFilter>>,
    slim: fn(&mut K),
    digest: fn(&K) -> Option<u64>,
}

impl<K> Clone for Indexed<K>
where
    K: Resource<DynamicType = ()> + 'static,
{
    fn clone(&self) -> Self {
        Indexed {
            store: self.store.clone(),
            index: self.index.clone(),
            seen: self.seen.clone(),
            slim: self.slim,
            digest: self.digest,
        }
    }
}

impl<K> Indexed<K>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + 'static,
{
    /// The cached objects of `ns` labelled for `system`, ordered by name, unpacked.
    pub fn of_system(&self, ns: &str, system: &str) -> Result<Vec<K>, (String, serde_json::Error)> {
        read(&self.index)
            .names(ns, system)
            .iter()
            .filter_map(|n| self.store.get(&ObjectRef::new(n).within(ns)))
            .map(|o| {
                o.unpack()
                    .map_err(|e| (kube::ResourceExt::name_any(o.as_ref()), e))
            })
            .collect()
    }

    /// Record `obj`, the API server's answer to one of Tycho's own writes, as seen: the watch event of
    /// that same version then does not wake its System, whose reconcile made the write and already
    /// read the answer. A later version with other digested fields still wakes it; an event that
    /// arrived before this call already did.
    pub fn own_write(&self, obj: &K) {
        let mut obj = obj.clone();
        (self.slim)(&mut obj);
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .admit(&watcher::Event::Apply(obj), self.digest);
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

/// Like [`reflect`], with the objects packed ([`Packed`]) and a [`LabelIndex`] kept from the same
/// events; yields the touched objects whose `digest` changed (see [`super::triggers`]).
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
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, mut packed) = reflector::store::<Packed<K>>();
    let index = Arc::new(RwLock::new(LabelIndex::new()));
    let writer = index.clone();
    let seen = Arc::new(Mutex::new(DigestFilter::default()));
    let filter = seen.clone();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(slim)
        .inspect_ok(move |event| {
            packed.apply_watcher_event(&Packed::event(event));
            write(&writer, event);
        })
        .try_filter(move |event| {
            let admit = filter
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .admit(event, digest);
            std::future::ready(admit)
        })
        .touched_objects();
    let indexed = Indexed {
        store,
        index,
        seen,
        slim,
        digest,
    };
    (indexed, stream)
}

/// The statuses this controller wrote that the Systems cache has not shown yet ("read your own writes").
///
/// A status write's watch event reaches the cache a little later; a reconcile in between (a child's event)
/// would otherwise compare its status with the stale one and write the same status again. Each entry is
/// the status written and the `resourceVersion` the System had when it was written; it is laid over the
/// cached System while the cache still shows that version, and forgotten as soon as the cache moves on
/// or the System goes. So it holds only writes in flight.
#[derive(Debug, Default)]
pub struct OwnStatuses {
    written: Mutex<Written>,
}

/// `(namespace, name)` → (the `resourceVersion` written onto, the status written).
type Written = HashMap<(String, String), (Option<String>, tycho_model::SystemStatus)>;

impl OwnStatuses {
    fn lock(&self) -> std::sync::MutexGuard<'_, Written> {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn key(s: &System) -> (String, String) {
        (
            s.metadata.namespace.clone().unwrap_or_default(),
            s.metadata.name.clone().unwrap_or_default(),
        )
    }

    /// `system` as the cache will show it once it has seen this controller's last status write.
    pub fn overlay(&self, system: Arc<System>) -> Arc<System> {
        let mut written = self.lock();
        let key = Self::key(&system);
        match written.get(&key) {
            Some((rv, status)) if *rv == system.metadata.resource_version => {
                let mut s = system.as_ref().clone();
                s.status = Some(status.clone());
                Arc::new(s)
            }
            Some(_) => {
                written.remove(&key);
                system
            }
            None => system,
        }
    }

    /// Record that `status` was written onto `system` (as the cache had it).
    pub fn wrote(&self, system: &System, status: &tycho_model::SystemStatus) {
        self.lock().insert(
            Self::key(system),
            (system.metadata.resource_version.clone(), status.clone()),
        );
    }

    /// Fold a watch event of the Systems: a newer version or a deletion ends an entry.
    pub fn observe(&self, event: &watcher::Event<System>) {
        let mut written = self.lock();
        if written.is_empty() {
            return;
        }
        match event {
            watcher::Event::Apply(s) | watcher::Event::InitApply(s) => {
                let key = Self::key(s);
                if written
                    .get(&key)
                    .is_some_and(|(rv, _)| *rv != s.metadata.resource_version)
                {
                    written.remove(&key);
                }
            }
            watcher::Event::Delete(s) => {
                written.remove(&Self::key(s));
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }

    /// How many writes are in flight.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// Everything `reconcile` reads, for one watched scope (a namespace, or the whole cluster).
#[derive(Clone)]
pub struct Caches {
    /// The namespace watched (None: all).
    pub namespace: Option<String>,
    /// Systems.
    pub systems: Store<System>,
    /// Systems by the session they name.
    pub by_session: Arc<RwLock<LabelIndex<System>>>,
    /// Systems by the claims they mount.
    pub by_claim: Arc<RwLock<LabelIndex<System>>>,
    /// Systems by the template they are made from.
    pub by_template: Arc<RwLock<LabelIndex<System>>>,
    /// SystemTemplates (cluster-scoped).
    pub templates: Store<SystemTemplate>,
    /// Deployments labelled as Tycho's.
    pub deployments: Indexed<Deployment>,
    /// Pods labelled as Tycho's.
    pub pods: Indexed<Pod>,
    /// Services labelled as Tycho's.
    pub services: Indexed<Service>,
    /// ConfigMaps labelled as Tycho's.
    pub config_maps: Indexed<ConfigMap>,
    /// NetworkPolicies labelled as Tycho's.
    pub network_policies: Indexed<NetworkPolicy>,
    /// Leases (sessions).
    pub leases: Store<Lease>,
    /// PersistentVolumeClaims (volumes).
    pub claims: Store<PersistentVolumeClaim>,
    /// Set once every store above has received its first complete list.
    pub synced: Arc<std::sync::atomic::AtomicBool>,
}

impl Caches {
    /// A stream of System events that keeps the System indexes (given empty) up to date.
    pub fn index_systems(
        indexes: Vec<Arc<RwLock<LabelIndex<System>>>>,
        events: impl Stream<Item = Result<watcher::Event<System>, watcher::Error>> + Send + 'static,
    ) -> impl Stream<Item = Result<watcher::Event<System>, watcher::Error>> + Send + 'static {
        events.inspect_ok(move |event| {
            for index in &indexes {
                write(index, event);
            }
        })
    }

    /// The cached template of that name.
    pub fn template(&self, name: &str) -> Option<Arc<SystemTemplate>> {
        self.templates.get(&ObjectRef::new(name))
    }

    /// `(namespace, name)` of the cached Systems made from template `name`.
    pub fn systems_of_template(
        index: &RwLock<LabelIndex<System>>,
        name: &str,
    ) -> Vec<(String, String)> {
        read(index).everywhere(name)
    }

    /// The cached Systems of `ns` that `index` files under `key`, by name.
    pub fn systems_under(
        systems: &Store<System>,
        index: &RwLock<LabelIndex<System>>,
        ns: &str,
        key: &str,
    ) -> Vec<Arc<System>> {
        read(index)
            .names(ns, key)
            .iter()
            .filter_map(|n| systems.get(&ObjectRef::new(n).within(ns)))
            .collect()
    }

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
        poll(&self.network_policies.store).await;
        poll(&self.leases).await;
        poll(&self.claims).await;
        poll(&self.templates).await;
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
        let mut i = LabelIndex::<ConfigMap>::new();
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
    fn systems_are_indexed_by_session_and_by_every_claim_they_mount() {
        let sys = |name: &str, session: Option<&str>, claims: &[&str]| -> System {
            let volumes: Vec<serde_json::Value> = claims
                .iter()
                .map(|c| serde_json::json!({"claim": c, "mountPath": format!("/{c}"), "container": "c"}))
                .collect();
            serde_json::from_value(serde_json::json!({
                "apiVersion": "tycho.dev/v1alpha1", "kind": "System",
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {"containers": [{"name": "c", "image": "nginx"}],
                         "session": session, "volumes": volumes},
            }))
            .unwrap()
        };
        let mut by_session = LabelIndex::by(session_of);
        let mut by_claim = LabelIndex::by(claims_of);
        for e in [
            watcher::Event::Apply(sys("a", Some("s1"), &["data", "home"])),
            watcher::Event::Apply(sys("b", Some("s1"), &["data"])),
            watcher::Event::Apply(sys("c", None, &[])),
        ] {
            by_session.apply(&e);
            by_claim.apply(&e);
        }
        assert_eq!(by_session.names("ns", "s1"), vec!["a", "b"]);
        assert_eq!(by_claim.names("ns", "data"), vec!["a", "b"]);
        assert_eq!(by_claim.names("ns", "home"), vec!["a"]);
        // a drops a claim and changes session; b goes.
        let moved = watcher::Event::Apply(sys("a", Some("s2"), &["home"]));
        by_session.apply(&moved);
        by_claim.apply(&moved);
        let gone = watcher::Event::Delete(sys("b", Some("s1"), &["data"]));
        by_session.apply(&gone);
        by_claim.apply(&gone);
        assert!(by_session.names("ns", "s1").is_empty());
        assert_eq!(by_session.names("ns", "s2"), vec!["a"]);
        assert!(by_claim.names("ns", "data").is_empty());
        assert_eq!(by_claim.names("ns", "home"), vec!["a"]);
    }

    #[test]
    fn a_packed_object_unpacks_as_it_was_and_keys_by_name_only() {
        let mut c = cm("a-files", Some("a"));
        c.data = Some([("index.html".to_string(), "<h1>hi</h1>".to_string())].into());
        c.metadata.uid = Some("uid-1".into());
        let packed = Packed::pack(&c);
        assert_eq!(packed.unpack().unwrap(), c);
        assert_eq!(packed.meta().name.as_deref(), Some("a-files"));
        assert_eq!(packed.meta().namespace.as_deref(), Some("ns"));
        assert!(packed.meta().labels.is_none() && packed.meta().uid.is_none());
        // A store of packed objects applies, replaces and deletes by name.
        let (store, mut w) = reflector::store::<Packed<ConfigMap>>();
        w.apply_watcher_event(&Packed::event(&watcher::Event::Apply(c.clone())));
        c.data = None;
        w.apply_watcher_event(&Packed::event(&watcher::Event::Apply(c.clone())));
        let key = ObjectRef::new("a-files").within("ns");
        assert_eq!(store.get(&key).unwrap().unpack().unwrap().data, None);
        w.apply_watcher_event(&Packed::event(&watcher::Event::Delete(c)));
        assert!(store.get(&key).is_none());
        // Bytes that are not the object are an error, not a panic.
        let broken = Packed::<ConfigMap> {
            json: b"{".to_vec().into_boxed_slice(),
            ..Packed::key(&cm("b", None))
        };
        assert!(broken.unpack().is_err());
    }

    #[test]
    fn the_echo_of_an_own_write_does_not_wake_but_a_later_change_does() {
        let (store, _writer) = reflector::store::<Packed<ConfigMap>>();
        let indexed = Indexed {
            store,
            index: Arc::new(RwLock::new(LabelIndex::new())),
            seen: Arc::new(Mutex::new(DigestFilter::default())),
            slim: strip,
            digest: super::super::triggers::object::<ConfigMap>,
        };
        let admit = |obj: &ConfigMap| {
            indexed
                .seen
                .lock()
                .unwrap()
                .admit(&watcher::Event::Apply(obj.clone()), indexed.digest)
        };
        let mut c = cm("a-files", Some("a"));
        // Someone else's object wakes its System the first time it is seen.
        assert!(admit(&cm("b-files", Some("b"))));
        // Tycho applied c and read the answer: its watch event is an echo.
        indexed.own_write(&c);
        assert!(!admit(&c));
        // An outside edit of the data is not.
        c.data = Some([("k".to_string(), "v".to_string())].into());
        assert!(admit(&c));
        // A deletion always wakes.
        assert!(
            indexed
                .seen
                .lock()
                .unwrap()
                .admit(&watcher::Event::Delete(c), indexed.digest)
        );
    }

    #[test]
    fn an_own_status_write_is_read_back_until_the_cache_shows_a_newer_version() {
        use tycho_model::{Phase, SystemStatus};
        let sys = |rv: &str, phase: Option<Phase>| -> Arc<System> {
            let mut s: System = serde_json::from_value(serde_json::json!({
                "apiVersion": "tycho.dev/v1alpha1", "kind": "System",
                "metadata": {"name": "web", "namespace": "ns", "resourceVersion": rv},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            }))
            .unwrap();
            s.status = phase.map(|p| SystemStatus {
                phase: Some(p),
                ..Default::default()
            });
            Arc::new(s)
        };
        let phase = |s: &System| s.status.as_ref().and_then(|st| st.phase);
        let own = OwnStatuses::default();
        let stale = sys("5", Some(Phase::Pending));
        assert_eq!(phase(&own.overlay(stale.clone())), Some(Phase::Pending));
        let ready = SystemStatus {
            phase: Some(Phase::Ready),
            ..Default::default()
        };
        own.wrote(&stale, &ready);
        // The cache still shows version 5: the written status is laid over it.
        assert_eq!(phase(&own.overlay(stale.clone())), Some(Phase::Ready));
        // Another object's events change nothing.
        let mut other = sys("9", None).as_ref().clone();
        other.metadata.name = Some("other".into());
        own.observe(&watcher::Event::Apply(other));
        assert_eq!(own.len(), 1);
        // The cache catches up (version 6): the entry goes, and the cache is what counts.
        own.observe(&watcher::Event::Apply(
            sys("6", Some(Phase::Ready)).as_ref().clone(),
        ));
        assert!(own.is_empty());
        assert_eq!(
            phase(&own.overlay(sys("5", Some(Phase::Pending)))),
            Some(Phase::Pending)
        );
        // A deletion ends an entry too, and so does a read of a newer version.
        own.wrote(&stale, &ready);
        own.observe(&watcher::Event::Delete(stale.as_ref().clone()));
        assert!(own.is_empty());
        own.wrote(&stale, &ready);
        assert_eq!(phase(&own.overlay(sys("7", None))), None);
        assert!(own.is_empty());
    }

    #[test]
    fn a_relist_swaps_atomically_at_init_done() {
        let mut i = LabelIndex::<ConfigMap>::new();
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

//! The in-memory object store: one table per resource (group, plural) with objects keyed by
//! (namespace, name), one increasing resourceVersion for the whole store, a uid index and an
//! owner-reference index (for garbage collection), a label index (for lists and watches by
//! label selector, as kube-apiserver's watch cache indexes), a bounded history ring of change
//! events for watch resume, and a broadcast channel that fans events out to open watches.
//!
//! The store knows nothing of API semantics beyond resourceVersion and uid bookkeeping; the
//! server implements create/update/patch/delete rules on top of it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

pub use crate::selector::{
    FieldTerm, Requirement, field_value, fields_match, labels_match, parse_field_selector,
    parse_label_selector,
};

/// Full key of a stored object: (group, plural, namespace, name). Namespace is "" for
/// cluster-scoped objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// API group.
    pub group: String,
    /// Plural resource name.
    pub plural: String,
    /// Namespace ("" when cluster-scoped).
    pub namespace: String,
    /// Object name.
    pub name: String,
}

/// Kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventType {
    /// `ADDED`, `MODIFIED`, `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change of the store.
#[derive(Debug, Clone)]
pub struct Event {
    /// resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// The object's key.
    pub key: ObjectKey,
    /// The object after the change (for Deleted: its last state, with the deletion's rv).
    pub object: Arc<Value>,
    /// The object before the change (Modified and Deleted).
    pub old: Option<Arc<Value>>,
}

/// Store failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Create of an existing key.
    #[error("already exists")]
    AlreadyExists,
    /// Update/delete of a missing key.
    #[error("not found")]
    NotFound,
    /// The stored resourceVersion differs from the expected one.
    #[error("resourceVersion conflict")]
    Conflict,
    /// A watch or continue from a resourceVersion older than the history window.
    #[error("too old resource version: {requested} ({oldest})")]
    Gone {
        /// The resourceVersion asked for.
        requested: u64,
        /// The oldest resourceVersion still resumable.
        oldest: u64,
    },
}

/// Objects of one resource keyed by (namespace, name).
type Table = BTreeMap<(String, String), Arc<Value>>;

/// The label index of one resource: (label key, label value) → the (namespace, name) of the
/// objects carrying that label, in key order.
type LabelIndex = HashMap<(String, String), BTreeSet<(String, String)>>;

/// Events after a resourceVersion plus a receiver for later ones.
pub type Resume = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

#[derive(Default)]
struct Inner {
    rv: u64,
    tables: HashMap<(String, String), Table>,
    /// (group, plural) → label index.
    labels: HashMap<(String, String), LabelIndex>,
    uids: HashMap<String, ObjectKey>,
    /// owner uid → dependents
    dependents: HashMap<String, HashSet<ObjectKey>>,
    history: VecDeque<Arc<Event>>,
    /// Events with rv > `compacted` are all in `history`.
    compacted: u64,
}

/// The object store. Cheap to share behind an `Arc`.
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Event>>,
    history_cap: usize,
}

/// Result of a (possibly paged) list.
#[derive(Debug, Clone)]
pub struct ListResult {
    /// Matching objects in (namespace, name) order.
    pub items: Vec<Arc<Value>>,
    /// The store's resourceVersion at list time.
    pub rv: u64,
    /// Set when more items remain: the key to continue after.
    pub next: Option<(String, String)>,
    /// Estimated number of remaining items (when paged).
    pub remaining: usize,
}

fn uid_of(v: &Value) -> Option<String> {
    v["metadata"]["uid"].as_str().map(str::to_string)
}

fn owner_uids(v: &Value) -> Vec<String> {
    v["metadata"]["ownerReferences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o["uid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The object's labels as (key, value) pairs.
fn labels_of(v: &Value) -> impl Iterator<Item = (&String, &str)> {
    v["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k, v)))
}

fn set_rv(v: &mut Value, rv: u64) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), Value::String(rv.to_string()));
    } else if let Some(m) = v.as_object_mut() {
        let mut meta = serde_json::Map::new();
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        m.insert("metadata".into(), Value::Object(meta));
    }
}

/// Parses a stored object's `metadata.resourceVersion`.
pub fn object_rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Adds the objects of `objs` (in key order, starting at the list's lower bound) that are in
/// `ns` and that `filter` accepts to `res`, at most `limit` (0 = all); counts the rest and sets
/// the key to continue after.
fn collect<'a>(
    res: &mut ListResult,
    objs: impl Iterator<Item = (&'a (String, String), &'a Arc<Value>)>,
    ns: Option<&str>,
    limit: usize,
    filter: &dyn Fn(&Value) -> bool,
) {
    for (k, v) in objs {
        if let Some(n) = ns
            && k.0 != n
        {
            if k.0.as_str() > n {
                break;
            }
            continue;
        }
        if !filter(v) {
            continue;
        }
        if limit > 0 && res.items.len() >= limit {
            res.remaining += 1;
            continue;
        }
        res.items.push(v.clone());
    }
    if res.remaining > 0 {
        res.next = res.items.last().map(|v| {
            (
                v["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                v["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        });
    }
}

impl Store {
    /// An empty store that keeps `history` events for watch resume.
    pub fn new(history: usize) -> Store {
        let (tx, _) = broadcast::channel(history.saturating_mul(2).clamp(4096, 1 << 18));
        Store {
            inner: Mutex::new(Inner::default()),
            tx,
            history_cap: history.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current (latest) resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Forgets the change history up to now, as etcd's compaction does: a watch resuming from
    /// an older resourceVersion gets 410 Gone. (The emulator compacts once, after bootstrap, so
    /// that a resourceVersion such as "1" is too old as on a real cluster.)
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.compacted = inner.rv;
        inner.history.clear();
    }

    /// The oldest resourceVersion a watch can still resume from.
    pub fn oldest_resumable_rv(&self) -> u64 {
        self.lock().compacted
    }

    /// Fetches one object.
    pub fn get(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
        let inner = self.lock();
        inner
            .tables
            .get(&(group.to_string(), plural.to_string()))?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Fetches an object by uid.
    pub fn get_by_uid(&self, uid: &str) -> Option<(ObjectKey, Arc<Value>)> {
        let inner = self.lock();
        let key = inner.uids.get(uid)?.clone();
        let obj = inner
            .tables
            .get(&(key.group.clone(), key.plural.clone()))?
            .get(&(key.namespace.clone(), key.name.clone()))?
            .clone();
        Some((key, obj))
    }

    /// Lists objects of a resource, optionally in one namespace, starting after `after`, keeping
    /// those `filter` accepts, at most `limit` (0 = all).
    pub fn list(
        &self,
        group: &str,
        plural: &str,
        ns: Option<&str>,
        after: Option<&(String, String)>,
        limit: usize,
        filter: &dyn Fn(&Value) -> bool,
    ) -> ListResult {
        self.list_labelled(group, plural, ns, after, limit, &[], filter)
    }

    /// As [`Store::list`], for objects that also carry every label of `labels` (the equality
    /// requirements of a label selector): only the objects the label index gives for the
    /// rarest of those labels are looked at, so the cost follows the number of matching
    /// objects, not the size of the namespace. `filter` must still check the whole selector.
    #[allow(clippy::too_many_arguments)]
    pub fn list_labelled(
        &self,
        group: &str,
        plural: &str,
        ns: Option<&str>,
        after: Option<&(String, String)>,
        limit: usize,
        labels: &[(String, String)],
        filter: &dyn Fn(&Value) -> bool,
    ) -> ListResult {
        let inner = self.lock();
        let rv = inner.rv;
        let tk = (group.to_string(), plural.to_string());
        let mut res = ListResult {
            items: Vec::new(),
            rv,
            next: None,
            remaining: 0,
        };
        let Some(table) = inner.tables.get(&tk) else {
            return res;
        };
        use std::ops::Bound;
        let lower = match (after, ns) {
            (Some(a), _) => Bound::Excluded(a.clone()),
            (None, Some(n)) => Bound::Included((n.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let range = (lower, Bound::Unbounded);
        match Self::postings(&inner, &tk, labels) {
            None => collect(&mut res, table.range(range), ns, limit, filter),
            Some(keys) => {
                let objs = keys
                    .range(range)
                    .filter_map(|k| table.get(k).map(|v| (k, v)));
                collect(&mut res, objs, ns, limit, filter)
            }
        }
        res
    }

    /// The smallest posting set of the label index among `labels` (None: no labels, scan).
    fn postings<'a>(
        inner: &'a Inner,
        tk: &(String, String),
        labels: &[(String, String)],
    ) -> Option<&'a BTreeSet<(String, String)>> {
        static EMPTY: BTreeSet<(String, String)> = BTreeSet::new();
        if labels.is_empty() {
            return None;
        }
        let index = inner.labels.get(tk);
        labels
            .iter()
            .map(|l| index.and_then(|i| i.get(l)).unwrap_or(&EMPTY))
            .min_by_key(|s| s.len())
    }

    /// Number of objects of a resource.
    pub fn count(&self, group: &str, plural: &str) -> usize {
        self.lock()
            .tables
            .get(&(group.to_string(), plural.to_string()))
            .map_or(0, BTreeMap::len)
    }

    /// Every key in a namespace, across all resources.
    pub fn keys_in_namespace(&self, ns: &str) -> Vec<ObjectKey> {
        let inner = self.lock();
        let mut out = Vec::new();
        for ((g, p), table) in &inner.tables {
            for (k, _) in table.range((ns.to_string(), String::new())..) {
                if k.0 != ns {
                    break;
                }
                out.push(ObjectKey {
                    group: g.clone(),
                    plural: p.clone(),
                    namespace: k.0.clone(),
                    name: k.1.clone(),
                });
            }
        }
        out
    }

    /// Keys of the objects whose ownerReferences name `owner_uid`.
    pub fn dependents(&self, owner_uid: &str) -> Vec<ObjectKey> {
        self.lock()
            .dependents
            .get(owner_uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether an object with this uid exists.
    pub fn uid_exists(&self, uid: &str) -> bool {
        self.lock().uids.contains_key(uid)
    }

    /// Every object (key and value) that has ownerReferences.
    pub fn objects_with_owners(&self) -> Vec<(ObjectKey, Arc<Value>)> {
        let inner = self.lock();
        let mut out = Vec::new();
        for set in inner.dependents.values() {
            for k in set {
                if let Some(v) = inner
                    .tables
                    .get(&(k.group.clone(), k.plural.clone()))
                    .and_then(|t| t.get(&(k.namespace.clone(), k.name.clone())))
                {
                    out.push((k.clone(), v.clone()));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }

    fn emit(&self, inner: &mut Inner, ev: Event) {
        let ev = Arc::new(ev);
        inner.history.push_back(ev.clone());
        while inner.history.len() > self.history_cap {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted = old.rv;
            }
        }
        let _ = self.tx.send(ev);
    }

    fn index_add(inner: &mut Inner, key: &ObjectKey, obj: &Value) {
        if let Some(uid) = uid_of(obj) {
            inner.uids.insert(uid, key.clone());
        }
        let index = inner
            .labels
            .entry((key.group.clone(), key.plural.clone()))
            .or_default();
        for (k, v) in labels_of(obj) {
            index
                .entry((k.clone(), v.to_string()))
                .or_default()
                .insert((key.namespace.clone(), key.name.clone()));
        }
        for o in owner_uids(obj) {
            inner.dependents.entry(o).or_default().insert(key.clone());
        }
    }

    fn index_remove(inner: &mut Inner, key: &ObjectKey, obj: &Value) {
        if let Some(uid) = uid_of(obj)
            && inner.uids.get(&uid) == Some(key)
        {
            inner.uids.remove(&uid);
        }
        if let Some(index) = inner
            .labels
            .get_mut(&(key.group.clone(), key.plural.clone()))
        {
            let ok = (key.namespace.clone(), key.name.clone());
            for (k, v) in labels_of(obj) {
                let lk = (k.clone(), v.to_string());
                if let Some(set) = index.get_mut(&lk) {
                    set.remove(&ok);
                    if set.is_empty() {
                        index.remove(&lk);
                    }
                }
            }
        }
        for o in owner_uids(obj) {
            if let Some(set) = inner.dependents.get_mut(&o) {
                set.remove(key);
                if set.is_empty() {
                    inner.dependents.remove(&o);
                }
            }
        }
    }

    /// Inserts a new object, setting its resourceVersion. Emits ADDED.
    pub fn create(&self, key: &ObjectKey, mut obj: Value) -> Result<Arc<Value>, StoreError> {
        let mut inner = self.lock();
        let tk = (key.group.clone(), key.plural.clone());
        let ok = (key.namespace.clone(), key.name.clone());
        if inner.tables.get(&tk).is_some_and(|t| t.contains_key(&ok)) {
            return Err(StoreError::AlreadyExists);
        }
        inner.rv += 1;
        let rv = inner.rv;
        set_rv(&mut obj, rv);
        let obj = Arc::new(obj);
        Self::index_add(&mut inner, key, &obj);
        inner.tables.entry(tk).or_default().insert(ok, obj.clone());
        self.emit(
            &mut inner,
            Event {
                rv,
                kind: EventType::Added,
                key: key.clone(),
                object: obj.clone(),
                old: None,
            },
        );
        Ok(obj)
    }

    /// Replaces an existing object if its stored resourceVersion equals `expected_rv` (when
    /// given). Sets the new resourceVersion. Emits MODIFIED.
    pub fn update(
        &self,
        key: &ObjectKey,
        mut obj: Value,
        expected_rv: Option<u64>,
    ) -> Result<Arc<Value>, StoreError> {
        let mut inner = self.lock();
        let tk = (key.group.clone(), key.plural.clone());
        let ok = (key.namespace.clone(), key.name.clone());
        let Some(old) = inner.tables.get(&tk).and_then(|t| t.get(&ok)).cloned() else {
            return Err(StoreError::NotFound);
        };
        if let Some(e) = expected_rv
            && object_rv(&old) != e
        {
            return Err(StoreError::Conflict);
        }
        inner.rv += 1;
        let rv = inner.rv;
        set_rv(&mut obj, rv);
        let obj = Arc::new(obj);
        Self::index_remove(&mut inner, key, &old);
        Self::index_add(&mut inner, key, &obj);
        inner.tables.entry(tk).or_default().insert(ok, obj.clone());
        self.emit(
            &mut inner,
            Event {
                rv,
                kind: EventType::Modified,
                key: key.clone(),
                object: obj.clone(),
                old: Some(old),
            },
        );
        Ok(obj)
    }

    /// Removes an object if its stored resourceVersion equals `expected_rv` (when given). Emits
    /// DELETED with the last state carrying the deletion's resourceVersion.
    pub fn delete(
        &self,
        key: &ObjectKey,
        expected_rv: Option<u64>,
    ) -> Result<Arc<Value>, StoreError> {
        let mut inner = self.lock();
        let tk = (key.group.clone(), key.plural.clone());
        let ok = (key.namespace.clone(), key.name.clone());
        let Some(old) = inner.tables.get(&tk).and_then(|t| t.get(&ok)).cloned() else {
            return Err(StoreError::NotFound);
        };
        if let Some(e) = expected_rv
            && object_rv(&old) != e
        {
            return Err(StoreError::Conflict);
        }
        if let Some(t) = inner.tables.get_mut(&tk) {
            t.remove(&ok);
        }
        Self::index_remove(&mut inner, key, &old);
        inner.rv += 1;
        let rv = inner.rv;
        let mut last = (*old).clone();
        set_rv(&mut last, rv);
        let last = Arc::new(last);
        self.emit(
            &mut inner,
            Event {
                rv,
                kind: EventType::Deleted,
                key: key.clone(),
                object: last.clone(),
                old: Some(old),
            },
        );
        Ok(last)
    }

    /// Events after `rv` still in the history window, plus a receiver for later events
    /// (subscribed atomically, so nothing is missed or duplicated). `Gone` when `rv` is older
    /// than the window.
    pub fn watch_from(&self, rv: u64) -> Result<Resume, StoreError> {
        let inner = self.lock();
        if rv < inner.compacted {
            return Err(StoreError::Gone {
                requested: rv,
                oldest: inner.compacted,
            });
        }
        let past: Vec<Arc<Event>> = inner
            .history
            .iter()
            .filter(|e| e.rv > rv)
            .cloned()
            .collect();
        Ok((past, self.tx.subscribe()))
    }

    /// A snapshot of one resource's objects plus a receiver for events after it (atomically).
    pub fn snapshot_and_subscribe(
        &self,
        group: &str,
        plural: &str,
        ns: Option<&str>,
    ) -> (Vec<Arc<Value>>, u64, broadcast::Receiver<Arc<Event>>) {
        self.snapshot_labelled(group, plural, ns, &[])
    }

    /// As [`Store::snapshot_and_subscribe`], limited to objects carrying every label of
    /// `labels` (found through the label index, see [`Store::list_labelled`]).
    pub fn snapshot_labelled(
        &self,
        group: &str,
        plural: &str,
        ns: Option<&str>,
        labels: &[(String, String)],
    ) -> (Vec<Arc<Value>>, u64, broadcast::Receiver<Arc<Event>>) {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        let tk = (group.to_string(), plural.to_string());
        let mut items = Vec::new();
        if let Some(t) = inner.tables.get(&tk) {
            let in_ns = |k: &(String, String)| ns.is_none_or(|n| n == k.0);
            match Self::postings(&inner, &tk, labels) {
                None => items.extend(t.iter().filter(|(k, _)| in_ns(k)).map(|(_, v)| v.clone())),
                Some(keys) => items.extend(
                    keys.iter()
                        .filter(|k| in_ns(k))
                        .filter_map(|k| t.get(k).cloned()),
                ),
            }
        }
        (items, inner.rv, rx)
    }

    /// A receiver of every future event.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            group: String::new(),
            plural: "configmaps".into(),
            namespace: "default".into(),
            name: name.into(),
        }
    }

    /// API concepts: resourceVersion increases on every change; watch resume past the window is 410.
    #[test]
    fn history_window_and_gone() {
        let s = Store::new(2);
        for n in ["a", "b", "c"] {
            s.create(
                &key(n),
                json!({"metadata": {"name": n, "namespace": "default"}}),
            )
            .unwrap();
        }
        assert_eq!(s.current_rv(), 3);
        assert!(matches!(s.watch_from(0), Err(StoreError::Gone { .. })));
        let (past, _) = s.watch_from(1).unwrap();
        assert_eq!(past.iter().map(|e| e.rv).collect::<Vec<_>>(), vec![2, 3]);
        assert!(matches!(
            s.update(&key("a"), json!({"metadata": {"name": "a"}}), Some(99)),
            Err(StoreError::Conflict)
        ));
    }

    /// Names of every page of a list (pages of `limit`, 0 = one page).
    fn pages(
        s: &Store,
        ns: Option<&str>,
        limit: usize,
        labels: &[(String, String)],
        filter: &dyn Fn(&Value) -> bool,
    ) -> Vec<String> {
        let mut names = Vec::new();
        let mut after = None;
        loop {
            let r = s.list_labelled("", "pods", ns, after.as_ref(), limit, labels, filter);
            names.extend(r.items.iter().map(|o| o["metadata"]["name"].to_string()));
            match r.next {
                Some(n) => after = Some(n),
                None => return names,
            }
        }
    }

    /// The label index gives what a scan gives (equality and one-value `in` selectors, with
    /// other requirements, per namespace and across, paged and not, lists and watch
    /// snapshots), through creates, updates that change or drop labels, and deletes. (One
    /// long test: the random history and the checks after each stretch of it read best
    /// together.)
    #[test]
    fn label_index_matches_a_scan() {
        use crate::selector::{equality_labels, labels_match, parse_label_selector};
        let s = Store::new(100);
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let check = |s: &Store| {
            for sel in [
                "app=a1",
                "app=a2,tier=t0",
                "tier=t1",
                "app=a9",
                "app=a3,tier!=t2",
                "app in (a4)",
                "app=a0,x",
            ] {
                let reqs = parse_label_selector(sel).unwrap();
                let indexed = equality_labels(&reqs);
                assert!(!indexed.is_empty());
                let filter = |o: &Value| labels_match(&reqs, o);
                for ns in [None, Some("ns1")] {
                    for limit in [0, 7] {
                        let scan = pages(s, ns, limit, &[], &filter);
                        assert_eq!(pages(s, ns, limit, &indexed, &filter), scan, "{sel}");
                    }
                    let snap = |labels: &[(String, String)]| -> Vec<Arc<Value>> {
                        let (items, _, _) = s.snapshot_labelled("", "pods", ns, labels);
                        items.into_iter().filter(|o| filter(o)).collect()
                    };
                    assert_eq!(snap(&indexed), snap(&[]), "{sel}");
                }
            }
        };
        let mut matched = 0;
        for step in 0..3000 {
            let ns = format!("ns{}", next(3));
            let name = format!("p{}", next(150));
            let k = ObjectKey {
                group: String::new(),
                plural: "pods".into(),
                namespace: ns.clone(),
                name: name.clone(),
            };
            let mut o = json!({"metadata": {"name": name, "namespace": ns}});
            match next(5) {
                0 => {}
                _ => {
                    o["metadata"]["labels"] =
                        json!({"app": format!("a{}", next(6)), "tier": format!("t{}", next(3))});
                    if next(4) == 0 {
                        o["metadata"]["labels"]["x"] = json!("");
                    }
                }
            }
            match next(4) {
                0 | 1 => {
                    if s.create(&k, o.clone()).is_err() {
                        s.update(&k, o, None).unwrap();
                    }
                }
                2 => {
                    let _ = s.update(&k, o, None);
                }
                _ => {
                    let _ = s.delete(&k, None);
                }
            }
            if step % 250 == 0 {
                check(&s);
            }
            matched = s.count("", "pods");
        }
        assert!(matched > 100, "{matched}");
        check(&s);
        // Nothing indexed for a removed label value is left behind.
        let inner = s.lock();
        let index = &inner.labels[&(String::new(), "pods".to_string())];
        let total: usize = index.values().map(BTreeSet::len).sum();
        let labelled: usize = inner.tables[&(String::new(), "pods".to_string())]
            .values()
            .map(|o| labels_of(o).count())
            .sum();
        assert_eq!(total, labelled);
        assert!(index.values().all(|s| !s.is_empty()));
    }

    /// Pagination: limit returns a continue key; listing after it yields the rest.
    #[test]
    fn list_paging() {
        let s = Store::new(100);
        for n in ["a", "b", "c"] {
            s.create(
                &key(n),
                json!({"metadata": {"name": n, "namespace": "default"}}),
            )
            .unwrap();
        }
        let r = s.list("", "configmaps", Some("default"), None, 2, &|_| true);
        assert_eq!(r.items.len(), 2);
        assert_eq!(r.remaining, 1);
        let next = r.next.unwrap();
        let r2 = s.list("", "configmaps", Some("default"), Some(&next), 2, &|_| true);
        assert_eq!(r2.items.len(), 1);
        assert!(r2.next.is_none());
    }
}

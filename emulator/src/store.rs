//! The in-memory object store: one table per resource (group, plural) with objects keyed by
//! (namespace, name), one increasing resourceVersion for the whole store, a uid index and an
//! owner-reference index (for garbage collection), a bounded history ring of change events for
//! watch resume, and a broadcast channel that fans events out to open watches.
//!
//! The store knows nothing of API semantics beyond resourceVersion and uid bookkeeping; the
//! server implements create/update/patch/delete rules on top of it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

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

/// Events after a resourceVersion plus a receiver for later ones.
pub type Resume = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

#[derive(Default)]
struct Inner {
    rv: u64,
    tables: HashMap<(String, String), Table>,
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
        let inner = self.lock();
        let rv = inner.rv;
        let Some(table) = inner.tables.get(&(group.to_string(), plural.to_string())) else {
            return ListResult {
                items: Vec::new(),
                rv,
                next: None,
                remaining: 0,
            };
        };
        use std::ops::Bound;
        let lower = match (after, ns) {
            (Some(a), _) => Bound::Excluded(a.clone()),
            (None, Some(n)) => Bound::Included((n.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let mut items = Vec::new();
        let mut remaining = 0;
        for (k, v) in table.range((lower, Bound::Unbounded)) {
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
            if limit > 0 && items.len() >= limit {
                remaining += 1;
                continue;
            }
            items.push(v.clone());
        }
        let next = if remaining > 0 {
            items.last().map(|v| {
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
            })
        } else {
            None
        };
        ListResult {
            items,
            rv,
            next,
            remaining,
        }
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
        let inner = self.lock();
        let rx = self.tx.subscribe();
        let mut items = Vec::new();
        if let Some(t) = inner.tables.get(&(group.to_string(), plural.to_string())) {
            for (k, v) in t {
                if ns.is_none_or(|n| n == k.0) {
                    items.push(v.clone());
                }
            }
        }
        (items, inner.rv, rx)
    }

    /// A receiver of every future event.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}

// ---------------------------------------------------------------------------------------------
// Label and field selectors
// ---------------------------------------------------------------------------------------------

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `k=v`, `k==v`
    Eq(String, String),
    /// `k!=v`
    NotEq(String, String),
    /// `k in (a,b)`
    In(String, Vec<String>),
    /// `k notin (a,b)`
    NotIn(String, Vec<String>),
    /// `k`
    Exists(String),
    /// `!k`
    NotExists(String),
    /// `k>n`
    Gt(String, i64),
    /// `k<n`
    Lt(String, i64),
}

fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_set(s: &str) -> Result<Vec<String>, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("found '{s}', expected: '('"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

/// Parses a label selector (`a=b,c!=d,e in (x,y),f notin (z),g,!h`).
pub fn parse_label_selector(s: &str) -> Result<Vec<Requirement>, String> {
    let mut reqs = Vec::new();
    for part in split_top_level(s) {
        if let Some(k) = part.strip_prefix('!') {
            reqs.push(Requirement::NotExists(k.trim().to_string()));
        } else if let Some((k, v)) = part.split_once("!=") {
            reqs.push(Requirement::NotEq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = part.split_once("==") {
            reqs.push(Requirement::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = part.split_once('=') {
            reqs.push(Requirement::Eq(k.trim().into(), v.trim().into()));
        } else if let Some(idx) = part.find(" notin ") {
            reqs.push(Requirement::NotIn(
                part[..idx].trim().into(),
                parse_set(&part[idx + 7..])?,
            ));
        } else if let Some(idx) = part.find(" in ") {
            reqs.push(Requirement::In(
                part[..idx].trim().into(),
                parse_set(&part[idx + 4..])?,
            ));
        } else if let Some((k, v)) = part.split_once('>') {
            let n = v
                .trim()
                .parse()
                .map_err(|_| format!("invalid value in '{part}'"))?;
            reqs.push(Requirement::Gt(k.trim().into(), n));
        } else if let Some((k, v)) = part.split_once('<') {
            let n = v
                .trim()
                .parse()
                .map_err(|_| format!("invalid value in '{part}'"))?;
            reqs.push(Requirement::Lt(k.trim().into(), n));
        } else if part.contains(' ') || part.contains('(') {
            return Err(format!("unable to parse requirement: '{part}'"));
        } else {
            reqs.push(Requirement::Exists(part));
        }
    }
    for r in &reqs {
        let (k, vs): (&str, Vec<&str>) = match r {
            Requirement::Eq(k, v) | Requirement::NotEq(k, v) => (k, vec![v.as_str()]),
            Requirement::In(k, vs) | Requirement::NotIn(k, vs) => {
                (k, vs.iter().map(String::as_str).collect())
            }
            Requirement::Exists(k)
            | Requirement::NotExists(k)
            | Requirement::Gt(k, _)
            | Requirement::Lt(k, _) => (k, Vec::new()),
        };
        if !valid_label_key(k) {
            return Err(format!(
                "unable to parse requirement: key: Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
            ));
        }
        for (i, v) in vs.iter().enumerate() {
            if !valid_label_value(v) {
                return Err(format!(
                    "unable to parse requirement: values[{i}][{k}]: Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                ));
            }
        }
    }
    Ok(reqs)
}

/// A label value: empty, or at most 63 of `[-_.A-Za-z0-9]` starting and ending alphanumeric.
fn valid_label_value(v: &str) -> bool {
    v.is_empty() || valid_name_part(v)
}

fn valid_name_part(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && v.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name part.
fn valid_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    valid_name_part(name)
        && prefix.is_none_or(|p| {
            !p.is_empty()
                && p.len() <= 253
                && p.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
        })
}

/// Whether an object's labels satisfy every requirement.
pub fn labels_match(reqs: &[Requirement], obj: &Value) -> bool {
    let labels = &obj["metadata"]["labels"];
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    reqs.iter().all(|r| match r {
        Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
        Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
        Requirement::In(k, vs) => get(k).is_some_and(|h| vs.iter().any(|v| v == h)),
        Requirement::NotIn(k, vs) => !get(k).is_some_and(|h| vs.iter().any(|v| v == h)),
        Requirement::Exists(k) => get(k).is_some(),
        Requirement::NotExists(k) => get(k).is_none(),
        Requirement::Gt(k, n) => get(k)
            .and_then(|h| h.parse::<i64>().ok())
            .is_some_and(|h| h > *n),
        Requirement::Lt(k, n) => get(k)
            .and_then(|h| h.parse::<i64>().ok())
            .is_some_and(|h| h < *n),
    })
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    /// Field path (`metadata.name`, `spec.nodeName`).
    pub field: String,
    /// true for `=`/`==`, false for `!=`.
    pub equal: bool,
    /// Value compared with.
    pub value: String,
}

/// Parses a field selector, checking every field against `supported`.
pub fn parse_field_selector(s: &str, supported: &[String]) -> Result<Vec<FieldTerm>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (field, equal, value) = if let Some((k, v)) = part.split_once("!=") {
            (k, false, v)
        } else if let Some((k, v)) = part.split_once("==") {
            (k, true, v)
        } else if let Some((k, v)) = part.split_once('=') {
            (k, true, v)
        } else {
            return Err(format!(
                "invalid selector: '{part}'; can't understand '{part}'"
            ));
        };
        let field = field.trim().to_string();
        if !supported.contains(&field) {
            return Err(format!("field label not supported: {field}"));
        }
        out.push(FieldTerm {
            field,
            equal,
            value: value.trim().to_string(),
        });
    }
    Ok(out)
}

/// The string value of a dotted field path (`spec.nodeName`) as field selectors compare it.
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for seg in path.trim_start_matches('.').split('.') {
        cur = &cur[seg];
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Whether an object satisfies every field term.
pub fn fields_match(terms: &[FieldTerm], obj: &Value) -> bool {
    terms
        .iter()
        .all(|t| (field_value(obj, &t.field) == t.value) == t.equal)
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

    /// Labels: selector operators =, ==, !=, in, notin, exists, !exists.
    #[test]
    fn label_selector_operators() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}});
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing,app=web", true),
            ("app in (db),tier", false),
        ] {
            let r = parse_label_selector(sel).unwrap();
            assert_eq!(labels_match(&r, &o), want, "{sel}");
        }
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

//! Server-side apply and field management
//! (<https://kubernetes.io/docs/reference/using-api/server-side-apply/>), after
//! sigs.k8s.io/structured-merge-diff (`merge.Updater`) and k8s.io/apiserver's fieldmanager:
//!
//! - a field set is encoded as FieldsV1: `f:<field>` for fields, `k:{"name":"a"}` for items of
//!   associative lists (keys sorted, as Go's `encoding/json` writes maps), `v:<json>` for set
//!   items, `.` for the item itself when it also has owned children;
//! - **Apply**: the config is merged into the live object (associative lists by key, sets by
//!   value, atomic lists and maps replaced, granular maps merged); the applier's set becomes
//!   exactly the fields its config specifies; fields it owned before and no longer specifies
//!   are removed unless another manager owns them; a field owned by another manager whose value
//!   would change is a conflict unless `force`, which moves ownership;
//! - **Update** (create/update/patch): the manager owns every field it changed or added, other
//!   managers lose those fields (updates never conflict).
//!
//! `apiVersion`, `kind`, `metadata.{name,namespace,uid,resourceVersion,generation,
//! creationTimestamp,selfLink,managedFields}` are never part of a field set.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

use crate::merge_keys::{ListType, MergeSchema, SchemaNode};

/// A field owned by another manager whose value the apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// The field path, e.g. `.spec.replicas` or `.spec.containers[name="a"].image`.
    pub field: String,
}

/// Why an apply failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsaError {
    /// Fields owned by other managers would change (HTTP 409, reason Conflict, causes of type
    /// `FieldManagerConflict`).
    #[error("{}", conflict_message(.conflicts))]
    Conflict {
        /// One entry per conflicting field.
        conflicts: Vec<Conflict>,
    },
    /// The apply configuration cannot be applied (HTTP 400/422).
    #[error("{0}")]
    Invalid(String),
}

/// `Apply failed with 1 conflict: conflict with "m": .spec.replicas`, as kube-apiserver words it.
fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            quote(&c.manager),
            c.field
        );
    }
    let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in conflicts {
        by_manager.entry(&c.manager).or_default().push(&c.field);
    }
    let mut lines = Vec::new();
    for (m, fields) in by_manager {
        lines.push(format!("conflicts with {}", quote(m)));
        for f in fields {
            lines.push(format!("- {f}"));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

impl Conflict {
    /// The `StatusCause.message` kube-apiserver sends: `conflict with "manager"`.
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", quote(&self.manager))
    }
}

fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

// ----------------------------------------------------------------------------------------
// Field sets

/// A set of field paths (a FieldsV1 tree).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

type Path = Vec<String>;

impl FieldSet {
    /// Parses a FieldsV1 object.
    pub fn from_fields_v1(v: &Value) -> FieldSet {
        let mut s = FieldSet::default();
        if let Value::Object(m) = v {
            for (k, cv) in m {
                if k == "." {
                    s.member = true;
                    continue;
                }
                let mut c = FieldSet::from_fields_v1(cv);
                if cv.as_object().is_some_and(Map::is_empty) {
                    c.member = true;
                }
                s.children.insert(k.clone(), c);
            }
        }
        s
    }

    /// Encodes the set as FieldsV1.
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in &self.children {
            m.insert(k.clone(), c.to_fields_v1());
        }
        Value::Object(m)
    }

    /// True when the set holds no path.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    fn insert(&mut self, path: &[String]) {
        let mut n = self;
        for p in path {
            n = n.children.entry(p.clone()).or_default();
        }
        n.member = true;
    }

    fn get(&self, path: &[String]) -> Option<&FieldSet> {
        let mut n = self;
        for p in path {
            n = n.children.get(p)?;
        }
        Some(n)
    }

    /// True if `path` is a member.
    fn contains(&self, path: &[String]) -> bool {
        self.get(path).is_some_and(|n| n.member)
    }

    /// True if `path` is a member or the ancestor of a member.
    fn has_node(&self, path: &[String]) -> bool {
        self.get(path).is_some_and(|n| !n.is_empty())
    }

    fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (k, c) in &other.children {
            self.children.entry(k.clone()).or_default().union_with(c);
        }
    }

    fn retain_members(&mut self, keep: &dyn Fn(&[String]) -> bool, prefix: &mut Path) {
        if self.member && !keep(prefix) {
            self.member = false;
        }
        for (k, c) in self.children.iter_mut() {
            prefix.push(k.clone());
            c.retain_members(keep, prefix);
            prefix.pop();
        }
        self.children.retain(|_, c| !c.is_empty());
    }

    fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.retain_members(&|p| !other.contains(p), &mut Vec::new());
        out
    }

    fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.retain_members(&|p| other.contains(p), &mut Vec::new());
        out
    }

    fn members(&self) -> Vec<Path> {
        fn walk(n: &FieldSet, prefix: &mut Path, out: &mut Vec<Path>) {
            if n.member {
                out.push(prefix.clone());
            }
            for (k, c) in &n.children {
                prefix.push(k.clone());
                walk(c, prefix, out);
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    /// Every path of the tree (members and their ancestors), parents before children.
    fn nodes(&self) -> Vec<Path> {
        fn walk(n: &FieldSet, prefix: &mut Path, out: &mut Vec<Path>) {
            for (k, c) in &n.children {
                prefix.push(k.clone());
                out.push(prefix.clone());
                walk(c, prefix, out);
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }
}

/// Renders a FieldsV1 path as structured-merge-diff prints it: `.spec.ports[port=80,protocol="TCP"]`.
pub fn path_string(path: &[String]) -> String {
    let mut s = String::new();
    for p in path {
        if let Some(f) = p.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = p.strip_prefix("k:") {
            let parts: Vec<String> = match serde_json::from_str::<Value>(k) {
                Ok(Value::Object(m)) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                _ => vec![k.to_string()],
            };
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = p.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = p.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        } else {
            s.push_str(p);
        }
    }
    s
}

/// JSON with object keys sorted, as Go's `encoding/json` writes maps.
fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", quote(k), canonical_json(&m[k.as_str()])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical_json).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// The path element of an associative-list item: `k:{"name":"a"}`.
fn item_key(item: &Value, keys: &[String], node: SchemaNode<'_>) -> Result<String, SsaError> {
    let defaults = node.list().map(|l| &l.key_defaults);
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    let mut parts = Vec::new();
    for k in sorted {
        let v = match item.get(k.as_str()) {
            Some(v) if !v.is_null() => v.clone(),
            _ => match defaults.and_then(|d| d.get(k.as_str())) {
                Some(d) => d.clone(),
                None => {
                    return Err(SsaError::Invalid(format!(
                        "associative list with keys has an element that omits key field {} (and doesn't have default value)",
                        quote(k)
                    )));
                }
            },
        };
        parts.push(format!("{}:{}", quote(k), canonical_json(&v)));
    }
    Ok(format!("k:{{{}}}", parts.join(",")))
}

/// The path element of a list item for a granular list, None for atomic lists.
fn item_pe(item: &Value, node: SchemaNode<'_>) -> Result<Option<String>, SsaError> {
    match node.list().map(|l| &l.list_type) {
        Some(ListType::Set) => Ok(Some(format!("v:{}", canonical_json(item)))),
        Some(ListType::Map { keys }) if !keys.is_empty() => {
            if !item.is_object() {
                return Err(SsaError::Invalid(format!(
                    "associative list with keys has an element that is not a map: {item}"
                )));
            }
            item_key(item, keys, node).map(Some)
        }
        _ => Ok(None),
    }
}

fn is_granular_list(node: SchemaNode<'_>) -> bool {
    match node.list().map(|l| &l.list_type) {
        Some(ListType::Set) => true,
        Some(ListType::Map { keys }) => !keys.is_empty(),
        _ => false,
    }
}

/// A leaf (scalar / atomic value) or a container member (list item, map entry).
type Entries = BTreeMap<Path, Option<Value>>;

/// `ToFieldSet` of a value at a field position, recording leaf values for comparison. With
/// `containers`, non-empty maps and structs are members too (what `Compare` reports when a
/// whole map appears or disappears, hence the `.` of maps in Update managers' sets), except
/// fields the schema declares structs.
fn field_entries(
    v: &Value,
    node: SchemaNode<'_>,
    path: &mut Path,
    map_key: bool,
    containers: bool,
    out: &mut Entries,
) -> Result<(), SsaError> {
    match v {
        Value::Object(m) if !node.is_atomic_map() && !m.is_empty() => {
            if map_key || (containers && !node.is_struct()) {
                out.insert(path.clone(), None);
            }
            for (k, cv) in m {
                path.push(format!("f:{k}"));
                field_entries(cv, node.field(k), path, node.is_map_key(k), containers, out)?;
                path.pop();
            }
        }
        Value::Array(a) if is_granular_list(node) => {
            let mut seen = BTreeSet::new();
            for item in a {
                let Some(pe) = item_pe(item, node)? else {
                    continue;
                };
                if !seen.insert(pe.clone()) {
                    continue;
                }
                path.push(pe);
                match item {
                    Value::Object(m) => {
                        out.insert(path.clone(), None);
                        for (k, cv) in m {
                            path.push(format!("f:{k}"));
                            field_entries(
                                cv,
                                node.field(k),
                                path,
                                node.is_map_key(k),
                                containers,
                                out,
                            )?;
                            path.pop();
                        }
                    }
                    other => {
                        out.insert(path.clone(), Some(other.clone()));
                    }
                }
                path.pop();
            }
        }
        other => {
            out.insert(path.clone(), Some(other.clone()));
        }
    }
    Ok(())
}

const STRIPPED_META: [&str; 9] = [
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

/// Paths never recorded in field sets (fieldmanager's stripMetaManager).
fn is_stripped(path: &[String]) -> bool {
    match path {
        [a] => a == "f:apiVersion" || a == "f:kind" || a == "f:metadata",
        [m, f, ..] if m == "f:metadata" => f
            .strip_prefix("f:")
            .is_some_and(|f| STRIPPED_META.contains(&f)),
        _ => false,
    }
}

/// All field entries of an object, without the stripped metadata (`containers`: see
/// [`field_entries`]).
fn object_entries(
    obj: &Value,
    schema: &MergeSchema,
    containers: bool,
) -> Result<Entries, SsaError> {
    let mut out = Entries::new();
    if let Value::Object(m) = obj {
        let root = schema.root();
        let mut path = Vec::new();
        for (k, v) in m {
            path.push(format!("f:{k}"));
            field_entries(v, root.field(k), &mut path, false, containers, &mut out)?;
            path.pop();
        }
    }
    out.retain(|p, _| !is_stripped(p));
    Ok(out)
}

fn set_of(entries: &Entries) -> FieldSet {
    let mut s = FieldSet::default();
    for p in entries.keys() {
        s.insert(p);
    }
    s
}

struct Comparison {
    added: FieldSet,
    removed: FieldSet,
    modified: FieldSet,
}

impl Comparison {
    fn is_same(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.modified.is_empty()
    }

    fn changed(&self) -> FieldSet {
        let mut s = self.added.clone();
        s.union_with(&self.modified);
        s
    }
}

fn compare(old: &Entries, new: &Entries) -> Comparison {
    let mut c = Comparison {
        added: FieldSet::default(),
        removed: FieldSet::default(),
        modified: FieldSet::default(),
    };
    let empty_map = |v: &Option<Value>| {
        v.as_ref()
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    };
    for (p, nv) in new {
        match old.get(p) {
            None => c.added.insert(p),
            // an empty map that gained entries (or lost them all) is not itself modified
            Some(ov) if (ov.is_none() && empty_map(nv)) || (nv.is_none() && empty_map(ov)) => {}
            Some(ov) if ov != nv => c.modified.insert(p),
            _ => {}
        }
    }
    for p in old.keys() {
        if !new.contains_key(p) {
            c.removed.insert(p);
        }
    }
    c
}

// ----------------------------------------------------------------------------------------
// managedFields

#[derive(Debug, Clone)]
struct Manager {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    set: FieldSet,
}

impl Manager {
    /// fieldmanager's BuildManagerIdentifier: appliers are identified without apiVersion.
    fn same_identity(&self, other: &Manager) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == "Apply" || self.api_version == other.api_version)
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), Value::from(self.manager.clone()));
        m.insert("operation".into(), Value::from(self.operation.clone()));
        m.insert("apiVersion".into(), Value::from(self.api_version.clone()));
        if let Some(t) = &self.time {
            m.insert("time".into(), Value::from(t.clone()));
        }
        m.insert("fieldsType".into(), Value::from("FieldsV1"));
        m.insert("fieldsV1".into(), self.set.to_fields_v1());
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), Value::from(s.clone()));
        }
        Value::Object(m)
    }
}

fn decode_managers(obj: Option<&Value>) -> Vec<Manager> {
    let Some(list) = obj
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let s = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
    list.iter()
        .filter(|e| s(e, "fieldsType").is_none_or(|t| t == "FieldsV1"))
        .filter_map(|e| {
            Some(Manager {
                manager: s(e, "manager").unwrap_or_default(),
                operation: s(e, "operation")?,
                api_version: s(e, "apiVersion").unwrap_or_default(),
                time: s(e, "time"),
                subresource: s(e, "subresource").filter(|s| !s.is_empty()),
                set: e
                    .get("fieldsV1")
                    .map(FieldSet::from_fields_v1)
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Writes `metadata.managedFields` sorted as fieldmanager does (operation, time, manager,
/// apiVersion, subresource); entries with empty sets are dropped.
fn encode_managers(obj: &mut Value, mut managers: Vec<Manager>) {
    managers.retain(|m| !m.set.is_empty());
    managers.sort_by(|p, q| {
        p.operation
            .cmp(&q.operation)
            .then_with(|| p.time.cmp(&q.time))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
    let Value::Object(o) = obj else { return };
    let meta = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(meta) = meta else { return };
    if managers.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(managers.iter().map(Manager::to_json).collect()),
        );
    }
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(Value::Object(meta)) = o.get_mut("metadata") {
        meta.remove("managedFields");
    }
    o
}

// ----------------------------------------------------------------------------------------
// Merge (structured-merge-diff mergingWalker)

fn merge_value(lhs: Option<&Value>, rhs: &Value, node: SchemaNode<'_>) -> Result<Value, SsaError> {
    match rhs {
        Value::Object(rm) if !node.is_atomic_map() => {
            let mut out = match lhs {
                Some(Value::Object(lm)) => lm.clone(),
                _ => Map::new(),
            };
            for (k, rv) in rm {
                if rv.is_null() {
                    out.remove(k);
                    continue;
                }
                let merged = merge_value(out.get(k), rv, node.field(k))?;
                out.insert(k.clone(), merged);
            }
            Ok(Value::Object(out))
        }
        Value::Array(ra) if is_granular_list(node) => {
            let la = match lhs {
                Some(Value::Array(la)) => la.as_slice(),
                _ => &[],
            };
            merge_list(la, ra, node).map(Value::Array)
        }
        other => Ok(other.clone()),
    }
}

/// `visitListItems`: items merge by path element; shared items keep the config's order and
/// live-only items stay where they were.
fn merge_list(lhs: &[Value], rhs: &[Value], node: SchemaNode<'_>) -> Result<Vec<Value>, SsaError> {
    let pe_of =
        |v: &Value| -> Result<String, SsaError> { Ok(item_pe(v, node)?.unwrap_or_default()) };
    let rhs_pes: Vec<String> = rhs.iter().map(pe_of).collect::<Result<_, _>>()?;
    let lhs_pes: Vec<String> = lhs.iter().map(pe_of).collect::<Result<_, _>>()?;
    let mut observed_rhs: BTreeMap<&str, &Value> = BTreeMap::new();
    for (pe, v) in rhs_pes.iter().zip(rhs) {
        if observed_rhs.insert(pe, v).is_some() {
            return Err(SsaError::Invalid(format!(
                "duplicate entries for key {}",
                path_string(std::slice::from_ref(pe))
            )));
        }
    }
    let mut observed_lhs: BTreeMap<&str, &Value> = BTreeMap::new();
    for (pe, v) in lhs_pes.iter().zip(lhs) {
        observed_lhs.entry(pe).or_insert(v);
    }
    let mut shared: std::collections::VecDeque<&str> = rhs_pes
        .iter()
        .filter(|pe| observed_lhs.contains_key(pe.as_str()))
        .map(String::as_str)
        .collect();
    let mut next_shared = shared.pop_front();
    let mut merged_rhs: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let (mut li, mut ri) = (0, 0);
    while li < lhs.len() || ri < rhs.len() {
        if li < lhs.len() && ri < rhs.len() {
            let pe = lhs_pes[li].as_str();
            if pe == rhs_pes[ri] {
                merged_rhs.insert(pe);
                out.push(merge_value(observed_lhs.get(pe).copied(), &rhs[ri], node)?);
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if observed_rhs.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < lhs.len() {
            let pe = lhs_pes[li].as_str();
            if !observed_rhs.contains_key(pe) {
                out.push(lhs[li].clone());
                li += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                li += 1;
                continue;
            }
        }
        if ri < rhs.len() {
            let pe = rhs_pes[ri].as_str();
            merged_rhs.insert(pe);
            out.push(merge_value(observed_lhs.get(pe).copied(), &rhs[ri], node)?);
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    Ok(out)
}

/// Removes the value at `path` (FieldsV1 elements) from `obj`, if present.
fn remove_path(obj: &mut Value, path: &[String], node: SchemaNode<'_>) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if let Some(f) = first.strip_prefix("f:") {
        let Value::Object(m) = obj else { return };
        if rest.is_empty() {
            m.remove(f);
        } else if let Some(c) = m.get_mut(f) {
            remove_path(c, rest, node.field(f));
        }
        return;
    }
    let Value::Array(items) = obj else { return };
    let pos = items
        .iter()
        .position(|it| item_pe(it, node).ok().flatten().as_deref() == Some(first.as_str()));
    let Some(pos) = pos else { return };
    if rest.is_empty() {
        items.remove(pos);
    } else {
        remove_path(&mut items[pos], rest, node.item());
    }
}

// ----------------------------------------------------------------------------------------
// Apply and Update

fn api_version_of(obj: &Value) -> String {
    obj.get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Server-side apply of `config` by `manager` on the main resource. See [`apply_subresource`].
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    schema: &MergeSchema,
    now: &str,
) -> Result<Value, SsaError> {
    apply_subresource(live, config, manager, None, force, schema, now)
}

/// Server-side apply of `config` by `manager` (operation Apply, `subresource` e.g. "status").
/// Returns the new object with `metadata.managedFields`; if nothing changes the result equals
/// `live` (managedFields included). The caller bumps resourceVersion/generation and sets uid,
/// creationTimestamp, etc. `now` is the RFC 3339 time written into changed entries.
pub fn apply_subresource(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    subresource: Option<&str>,
    force: bool,
    schema: &MergeSchema,
    now: &str,
) -> Result<Value, SsaError> {
    if !config.is_object() {
        return Err(SsaError::Invalid(
            "apply configuration must be a JSON object".into(),
        ));
    }
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(SsaError::Invalid(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let live_obj = live
        .map(without_managed_fields)
        .unwrap_or_else(|| Value::Object(Map::new()));
    let mut managers = decode_managers(live);
    let me = Manager {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: api_version_of(config),
        time: Some(now.to_string()),
        subresource: subresource.map(str::to_string),
        set: FieldSet::default(),
    };
    let config_set = set_of(&object_entries(config, schema, false)?);
    let mut merged = merge_value(Some(&live_obj), config, schema.root())?;

    // Prune what this applier owned before and no longer specifies, unless owned by others.
    let pos = managers.iter().position(|m| m.same_identity(&me));
    let (last_set, last_time) = match pos {
        Some(i) => {
            let m = managers.remove(i);
            (m.set, m.time)
        }
        None => (FieldSet::default(), None),
    };
    let mut owned = config_set.clone();
    for m in &managers {
        owned.union_with(&m.set);
    }
    let mut removed_prefixes: Vec<Path> = Vec::new();
    for p in last_set.nodes() {
        if removed_prefixes.iter().any(|r| p.starts_with(r)) || is_stripped(&p) {
            continue;
        }
        if !owned.has_node(&p) {
            remove_path(&mut merged, &p, schema.root());
            removed_prefixes.push(p);
        }
    }

    let live_entries = object_entries(&live_obj, schema, true)?;
    let new_entries = object_entries(&merged, schema, true)?;
    let cmp = compare(&live_entries, &new_entries);
    let changed = cmp.changed();
    let mut conflicts = Vec::new();
    for m in &managers {
        for p in m.set.intersection(&changed).members() {
            conflicts.push(Conflict {
                manager: m.manager.clone(),
                field: path_string(&p),
            });
        }
    }
    if !force && !conflicts.is_empty() {
        return Err(SsaError::Conflict { conflicts });
    }
    for m in managers.iter_mut() {
        m.set = m.set.difference(&changed).difference(&cmp.removed);
    }
    let set_changed = config_set != last_set;
    let same = cmp.is_same();
    let mut me = me;
    me.set = config_set;
    if same && !set_changed {
        me.time = last_time;
    }
    managers.push(me);
    let mut out = if same { live_obj } else { merged };
    encode_managers(&mut out, managers);
    Ok(out)
}

/// Records a create/update/patch by `manager` (operation Update): it owns every field whose
/// value it changed or set, other managers lose those fields and any removed ones. Uses the
/// managedFields of `new` when the client sent a non-empty list (a single empty entry `[{}]`
/// resets them), otherwise those of `old`.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    schema: &MergeSchema,
    now: &str,
) {
    let sent = new
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned();
    let mut managers = match &sent {
        Some(list) if list.len() == 1 && list[0].as_object().is_some_and(Map::is_empty) => {
            Vec::new()
        }
        Some(list) if !list.is_empty() => {
            let decoded = decode_managers(Some(new));
            if decoded.len() == list.len() {
                decoded
            } else {
                decode_managers(old)
            }
        }
        _ => decode_managers(old),
    };
    let old_entries = old
        .map(|o| object_entries(&without_managed_fields(o), schema, true))
        .transpose()
        .ok()
        .flatten()
        .unwrap_or_default();
    let Ok(new_entries) = object_entries(&without_managed_fields(new), schema, true) else {
        return;
    };
    let cmp = compare(&old_entries, &new_entries);
    let changed = cmp.changed();
    let me_proto = Manager {
        manager: manager.to_string(),
        operation: "Update".into(),
        api_version: api_version_of(new),
        time: Some(now.to_string()),
        subresource: subresource.map(str::to_string),
        set: FieldSet::default(),
    };
    let pos = managers.iter().position(|m| m.same_identity(&me_proto));
    let mut me = match pos {
        Some(i) => managers.remove(i),
        None => me_proto,
    };
    for m in managers.iter_mut() {
        m.set = m.set.difference(&changed).difference(&cmp.removed);
    }
    me.set = me.set.difference(&cmp.removed);
    if !changed.is_empty() {
        me.set.union_with(&changed);
        me.time = Some(now.to_string());
    }
    managers.push(me);
    encode_managers(new, managers);
}

#[cfg(test)]
mod tests;

//! The registry of served resources: the built-in kinds (with their typed validation through
//! k8s-openapi, defaults, create-time status and immutable fields, as kube-apiserver's strategies
//! enforce them) and every kind a CustomResourceDefinition defines.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::error::Cause;

/// The verbs every served resource supports.
pub const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The verbs of a review resource (`TokenReview`): created, answered and never stored.
pub const REVIEW_VERBS: [&str; 1] = ["create"];

/// What a custom resource's CRD says about one served version.
#[derive(Debug, Clone)]
pub struct CustomInfo {
    /// Name of the CRD (`<plural>.<group>`).
    pub crd_name: String,
    /// The version's `schema.openAPIV3Schema` (Null if none).
    pub schema: Value,
    /// `additionalPrinterColumns` of the version.
    pub printer_columns: Vec<Value>,
    /// `selectableFields[*].jsonPath` of the version (e.g. `.spec.color`).
    pub selectable_fields: Vec<String>,
    /// Whether this is the storage version.
    pub storage: bool,
}

/// One served resource (group, version, plural) and what the server knows about it.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    /// API group ("" for core).
    pub group: String,
    /// Version (`v1`, `v1alpha1`).
    pub version: String,
    /// Kind (`ConfigMap`).
    pub kind: String,
    /// Plural resource name (`configmaps`).
    pub plural: String,
    /// Singular name (`configmap`).
    pub singular: String,
    /// Namespace-scoped or cluster-scoped.
    pub namespaced: bool,
    /// Short names for kubectl (`cm`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Whether the `status` subresource exists (the main resource then ignores `.status` changes).
    pub status_subresource: bool,
    /// Whether `metadata.generation` is maintained (bumped on spec changes).
    pub has_generation: bool,
    /// Whether DELETE returns the deleted object (true) or a `Status` Success (false).
    pub return_deleted_object: bool,
    /// Set for resources defined by a CRD.
    pub custom: Option<CustomInfo>,
}

impl ResourceInfo {
    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `ConfigMapList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether this is a custom resource.
    pub fn is_custom(&self) -> bool {
        self.custom.is_some()
    }

    /// The store key of this resource (group, plural): all versions share one store, and
    /// events.k8s.io/v1 Events are a view of the core/v1 Event storage (as in kube-apiserver).
    pub fn store_key(&self) -> (String, String) {
        if self.is_events_v1() {
            return (String::new(), "events".into());
        }
        (self.group.clone(), self.plural.clone())
    }

    /// Whether objects of this resource are stored: false for a review (`TokenReview`), which
    /// is answered and forgotten, and serves `create` alone.
    pub fn persisted(&self) -> bool {
        !(self.custom.is_none()
            && self.group == "authentication.k8s.io"
            && self.kind == "TokenReview")
    }

    /// The verbs the resource serves: [`VERBS`], or [`REVIEW_VERBS`] for a review.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.persisted() {
            &VERBS
        } else {
            &REVIEW_VERBS
        }
    }

    /// Whether this is the events.k8s.io/v1 view of core Events.
    pub fn is_events_v1(&self) -> bool {
        self.group == "events.k8s.io" && self.plural == "events"
    }
}

struct B {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    cats: &'static [&'static str],
    status: bool,
    generation: bool,
    return_obj: bool,
}

const BUILTINS: &[B] = &[
    B {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
        short: &["ns"],
        cats: &[],
        status: true,
        generation: false,
        return_obj: true,
    },
    B {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        namespaced: false,
        short: &["no"],
        cats: &[],
        status: true,
        generation: false,
        return_obj: false,
    },
    B {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        namespaced: true,
        short: &["po"],
        cats: &["all"],
        status: true,
        generation: false,
        return_obj: true,
    },
    B {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        namespaced: true,
        short: &["svc"],
        cats: &["all"],
        status: true,
        generation: false,
        return_obj: true,
    },
    B {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        namespaced: true,
        short: &["cm"],
        cats: &[],
        status: false,
        generation: false,
        return_obj: false,
    },
    B {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
        short: &[],
        cats: &[],
        status: false,
        generation: false,
        return_obj: false,
    },
    B {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        namespaced: true,
        short: &["sa"],
        cats: &[],
        status: false,
        generation: false,
        return_obj: false,
    },
    B {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short: &["ev"],
        cats: &[],
        status: false,
        generation: false,
        return_obj: false,
    },
    B {
        group: "",
        version: "v1",
        kind: "PersistentVolumeClaim",
        plural: "persistentvolumeclaims",
        namespaced: true,
        short: &["pvc"],
        cats: &[],
        status: true,
        generation: false,
        return_obj: true,
    },
    B {
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short: &["ev"],
        cats: &[],
        status: false,
        generation: false,
        return_obj: false,
    },
    B {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        namespaced: true,
        short: &["deploy"],
        cats: &["all"],
        status: true,
        generation: true,
        return_obj: false,
    },
    B {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        namespaced: true,
        short: &["rs"],
        cats: &["all"],
        status: true,
        generation: true,
        return_obj: false,
    },
    B {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        namespaced: true,
        short: &[],
        cats: &[],
        status: false,
        generation: false,
        return_obj: false,
    },
    B {
        group: "networking.k8s.io",
        version: "v1",
        kind: "NetworkPolicy",
        plural: "networkpolicies",
        namespaced: true,
        short: &["netpol"],
        cats: &[],
        status: false,
        generation: true,
        return_obj: false,
    },
    B {
        group: "policy",
        version: "v1",
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        namespaced: true,
        short: &["pdb"],
        cats: &[],
        status: true,
        generation: true,
        return_obj: false,
    },
    B {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "Role",
        plural: "roles",
        namespaced: true,
        short: &[],
        cats: &[],
        status: false,
        generation: false,
        return_obj: false,
    },
    B {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        namespaced: true,
        short: &[],
        cats: &[],
        status: false,
        generation: false,
        return_obj: false,
    },
    B {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        namespaced: false,
        short: &[],
        cats: &[],
        status: false,
        generation: false,
        return_obj: false,
    },
    B {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        namespaced: false,
        short: &[],
        cats: &[],
        status: false,
        generation: false,
        return_obj: false,
    },
    B {
        group: "authentication.k8s.io",
        version: "v1",
        kind: "TokenReview",
        plural: "tokenreviews",
        namespaced: false,
        short: &[],
        cats: &[],
        status: false,
        generation: false,
        return_obj: false,
    },
    B {
        group: "apiextensions.k8s.io",
        version: "v1",
        kind: "CustomResourceDefinition",
        plural: "customresourcedefinitions",
        namespaced: false,
        short: &["crd", "crds"],
        cats: &["api-extensions"],
        status: true,
        generation: true,
        return_obj: true,
    },
];

fn builtin_infos() -> Vec<ResourceInfo> {
    BUILTINS
        .iter()
        .map(|b| ResourceInfo {
            group: b.group.into(),
            version: b.version.into(),
            kind: b.kind.into(),
            plural: b.plural.into(),
            singular: b.kind.to_lowercase(),
            namespaced: b.namespaced,
            short_names: b.short.iter().map(|s| s.to_string()).collect(),
            categories: b.cats.iter().map(|s| s.to_string()).collect(),
            status_subresource: b.status,
            has_generation: b.generation,
            return_deleted_object: b.return_obj,
            custom: None,
        })
        .collect()
}

/// All served resources: built-ins plus the versions served by existing CRDs.
#[derive(Debug, Clone)]
pub struct Registry {
    by_gvr: HashMap<(String, String, String), Arc<ResourceInfo>>,
    /// Ordered (group, version) list for discovery, core first.
    order: Vec<(String, String)>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new(&[])
    }
}

impl Registry {
    /// The registry for the built-in kinds plus the given CRD objects.
    pub fn new(crds: &[Value]) -> Registry {
        let mut all = builtin_infos();
        for crd in crds {
            all.extend(infos_from_crd(crd));
        }
        let mut by_gvr = HashMap::new();
        let mut order: Vec<(String, String)> = Vec::new();
        for info in all {
            let gv = (info.group.clone(), info.version.clone());
            if !order.contains(&gv) {
                order.push(gv);
            }
            by_gvr.insert(
                (
                    info.group.clone(),
                    info.version.clone(),
                    info.plural.clone(),
                ),
                Arc::new(info),
            );
        }
        Registry { by_gvr, order }
    }

    /// Looks a resource up by group, version and plural.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.by_gvr
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// Looks a resource up by apiVersion and kind.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        let (group, version) = split_api_version(api_version);
        self.by_gvr
            .values()
            .find(|i| i.group == group && i.version == version && i.kind == kind)
            .cloned()
    }

    /// Every served group/version, in discovery order (core first, then groups as registered).
    pub fn group_versions(&self) -> Vec<(String, String)> {
        self.order.clone()
    }

    /// Every resource of one group/version, sorted by plural.
    pub fn resources(&self, group: &str, version: &str) -> Vec<Arc<ResourceInfo>> {
        let mut v: Vec<Arc<ResourceInfo>> = self
            .by_gvr
            .values()
            .filter(|i| i.group == group && i.version == version)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.plural.cmp(&b.plural));
        v
    }

    /// Every resource (all versions).
    pub fn all(&self) -> Vec<Arc<ResourceInfo>> {
        self.by_gvr.values().cloned().collect()
    }

    /// Every distinct store key (group, plural) with one representative info (the storage
    /// version for custom resources).
    pub fn store_resources(&self) -> Vec<Arc<ResourceInfo>> {
        let mut m: BTreeMap<(String, String), Arc<ResourceInfo>> = BTreeMap::new();
        for i in self.by_gvr.values() {
            let key = i.store_key();
            let better = match m.get(&key) {
                None => true,
                Some(prev) => {
                    (i.custom.as_ref().is_some_and(|c| c.storage)
                        && !prev.custom.as_ref().is_some_and(|c| c.storage))
                        || (prev.is_events_v1() && !i.is_events_v1())
                }
            };
            if better {
                m.insert(key, i.clone());
            }
        }
        m.into_values().collect()
    }
}

/// Splits `apps/v1` into ("apps", "v1") and `v1` into ("", "v1").
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The served versions of a CRD object as resource infos (empty if the CRD is malformed).
pub fn infos_from_crd(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let kind = names["kind"].as_str().unwrap_or_default();
    let plural = names["plural"].as_str().unwrap_or_default();
    if group.is_empty() || kind.is_empty() || plural.is_empty() {
        return Vec::new();
    }
    let singular = names["singular"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let crd_name = crd["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut out = Vec::new();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"].as_bool() == Some(false) {
            continue;
        }
        let Some(version) = v["name"].as_str() else {
            continue;
        };
        let selectable = v["selectableFields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["jsonPath"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        out.push(ResourceInfo {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: singular.clone(),
            namespaced,
            short_names: strs(&names["shortNames"]),
            categories: strs(&names["categories"]),
            status_subresource: v["subresources"]["status"].is_object(),
            has_generation: true,
            return_deleted_object: true,
            custom: Some(CustomInfo {
                crd_name: crd_name.clone(),
                schema: v["schema"]["openAPIV3Schema"].clone(),
                printer_columns: v["additionalPrinterColumns"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                selectable_fields: selectable,
                storage: v["storage"].as_bool().unwrap_or(false),
            }),
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// events.k8s.io/v1 <-> core/v1 Event (kube-apiserver's conversion; one storage)
// ---------------------------------------------------------------------------------------------

const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("related", "related"),
    ("message", "note"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn convert_event(v: &Value, from_core: bool) -> Value {
    let mut out = Map::new();
    out.insert(
        "apiVersion".into(),
        json!(if from_core { "events.k8s.io/v1" } else { "v1" }),
    );
    out.insert("kind".into(), json!("Event"));
    if let Some(m) = v.get("metadata") {
        out.insert("metadata".into(), m.clone());
    }
    for (core, ev) in EVENT_FIELDS {
        let (src, dst) = if from_core { (core, ev) } else { (ev, core) };
        if let Some(x) = v.get(*src).filter(|x| !x.is_null()) {
            out.insert((*dst).to_string(), x.clone());
        }
    }
    Value::Object(out)
}

/// A stored core/v1 Event as events.k8s.io/v1 shows it (unchanged if already converted).
pub fn core_event_to_v1(v: &Value) -> Value {
    if v["apiVersion"].as_str() == Some("v1") {
        convert_event(v, true)
    } else {
        v.clone()
    }
}

/// An events.k8s.io/v1 Event in its core/v1 storage form (unchanged if already core).
pub fn v1_event_to_core(v: &Value) -> Value {
    if v["apiVersion"].as_str() == Some("events.k8s.io/v1") {
        convert_event(v, false)
    } else {
        v.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Typed decoding (unknown fields) through k8s-openapi
// ---------------------------------------------------------------------------------------------

fn roundtrip<T>(obj: &Value) -> Result<Vec<String>, String>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut unknown = Vec::new();
    diff_keys(obj, &back, "", &mut unknown);
    Ok(unknown)
}

fn diff_keys(input: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    match (input, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    None => out.push(p),
                    Some(bv) => diff_keys(v, bv, &p, out),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                diff_keys(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Decodes a built-in object into its k8s-openapi type. Returns the paths of fields the type does
/// not know (`spec.foo`), or the decoding error when the body does not fit the type.
pub fn typed_unknown_fields(group: &str, kind: &str, obj: &Value) -> Result<Vec<String>, String> {
    use k8s_openapi::api::{
        apps, authentication, coordination, core, events, networking, policy, rbac,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    match (group, kind) {
        ("", "Namespace") => roundtrip::<core::v1::Namespace>(obj),
        ("", "Node") => roundtrip::<core::v1::Node>(obj),
        ("", "Pod") => roundtrip::<core::v1::Pod>(obj),
        ("", "Service") => roundtrip::<core::v1::Service>(obj),
        ("", "ConfigMap") => roundtrip::<core::v1::ConfigMap>(obj),
        ("", "Secret") => roundtrip::<core::v1::Secret>(obj),
        ("", "ServiceAccount") => roundtrip::<core::v1::ServiceAccount>(obj),
        ("", "Event") => roundtrip::<core::v1::Event>(obj),
        ("", "PersistentVolumeClaim") => roundtrip::<core::v1::PersistentVolumeClaim>(obj),
        ("", "Binding") => roundtrip::<core::v1::Binding>(obj),
        ("events.k8s.io", "Event") => roundtrip::<events::v1::Event>(obj),
        ("apps", "Deployment") => roundtrip::<apps::v1::Deployment>(obj),
        ("apps", "ReplicaSet") => roundtrip::<apps::v1::ReplicaSet>(obj),
        ("coordination.k8s.io", "Lease") => roundtrip::<coordination::v1::Lease>(obj),
        ("networking.k8s.io", "NetworkPolicy") => roundtrip::<networking::v1::NetworkPolicy>(obj),
        ("policy", "PodDisruptionBudget") => roundtrip::<policy::v1::PodDisruptionBudget>(obj),
        ("rbac.authorization.k8s.io", "Role") => roundtrip::<rbac::v1::Role>(obj),
        ("rbac.authorization.k8s.io", "RoleBinding") => roundtrip::<rbac::v1::RoleBinding>(obj),
        ("rbac.authorization.k8s.io", "ClusterRole") => roundtrip::<rbac::v1::ClusterRole>(obj),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            roundtrip::<rbac::v1::ClusterRoleBinding>(obj)
        }
        ("authentication.k8s.io", "TokenReview") => {
            roundtrip::<authentication::v1::TokenReview>(obj)
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            roundtrip::<apiext::CustomResourceDefinition>(obj)
        }
        _ => Ok(Vec::new()),
    }
}

// ---------------------------------------------------------------------------------------------
// Names and labels
// ---------------------------------------------------------------------------------------------

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && s.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric)
}

fn is_label_key(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(k),
    }
}

/// Why `s` is not a valid path segment name (`path.IsValidPathSegmentName`), if it is not.
fn path_segment_problem(s: &str) -> Option<&'static str> {
    match s {
        "" => Some("name or generateName is required"),
        "." => Some("may not be '.'"),
        ".." => Some("may not be '..'"),
        _ if s.contains('/') => Some("may not contain '/'"),
        _ if s.contains('%') => Some("may not contain '%'"),
        _ => None,
    }
}

fn is_label_value(v: &str) -> bool {
    v.is_empty() || is_qualified_name_part(v)
}

/// Validates metadata as ObjectMeta validation does: name format for the kind, label keys and
/// values, annotation keys.
pub fn validate_metadata(info: &ResourceInfo, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    let label_names =
        info.group.is_empty() && matches!(info.kind.as_str(), "Namespace" | "Service");
    if info.group == "rbac.authorization.k8s.io" && !info.is_custom() {
        // RBAC objects are named by path segments (`system:controller:foo` is valid).
        if let Some(why) = path_segment_problem(name) {
            causes.push(Cause::new(
                "FieldValueInvalid",
                "metadata.name",
                format!("Invalid value: \"{name}\": {why}"),
            ));
        }
    } else if !(if label_names {
        is_dns_label(name)
    } else {
        is_dns_subdomain(name)
    }) {
        let what = if label_names {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        } else {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        };
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": {what}"),
        ));
    }
    if let Some(labels) = meta["labels"].as_object() {
        for (k, v) in labels {
            if !is_label_key(k) {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "metadata.labels",
                    format!("Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
                ));
            }
            match v.as_str() {
                Some(s) if is_label_value(s) => {}
                _ => causes.push(Cause::new(
                    "FieldValueInvalid",
                    "metadata.labels",
                    format!("Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
                )),
            }
        }
    } else if !meta["labels"].is_null() {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.labels",
            "Invalid value: labels must be a map of strings",
        ));
    }
    // ValidateFinalizers: a qualified name, and (ValidateObjectMeta) a standard finalizer or a
    // fully qualified (domain/name) one.
    if let Some(fins) = meta["finalizers"].as_array() {
        for (i, f) in fins.iter().enumerate() {
            let f = f.as_str().unwrap_or_default();
            if !is_label_key(f) {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "metadata.finalizers",
                    format!("Invalid value: \"{f}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
                ));
            }
            if !f.contains('/') && !matches!(f, "kubernetes" | "orphan" | "foregroundDeletion") {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    &format!("metadata.finalizers[{i}]"),
                    format!("Invalid value: \"{f}\": name is neither a standard finalizer name nor is it fully qualified"),
                ));
            }
        }
    }
    if let Some(ann) = meta["annotations"].as_object() {
        let total: usize = ann
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if total > 256 * 1024 {
            causes.push(Cause::new(
                "FieldValueTooLong",
                "metadata.annotations",
                format!("Too long: may not be more than 262144 bytes (got {total})"),
            ));
        }
        for (k, v) in ann {
            if !is_label_key(k) {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "metadata.annotations",
                    format!("Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
                ));
            }
            if !v.is_string() {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "metadata.annotations",
                    format!("Invalid value: annotation {k} must be a string"),
                ));
            }
        }
    }
    causes
}

// ---------------------------------------------------------------------------------------------
// Defaults and create-time status
// ---------------------------------------------------------------------------------------------

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let m = v.as_object_mut()?;
    let e = m.entry(key.to_string()).or_insert_with(|| json!({}));
    if e.is_null() {
        *e = json!({});
    }
    e.as_object_mut()
}

fn default_field(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), value);
    }
}

fn default_pod_spec(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    default_field(m, "restartPolicy", json!("Always"));
    default_field(m, "terminationGracePeriodSeconds", json!(30));
    default_field(m, "dnsPolicy", json!("ClusterFirst"));
    default_field(m, "schedulerName", json!("default-scheduler"));
    default_field(m, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                let Some(cm) = c.as_object_mut() else {
                    continue;
                };
                let image = cm
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let latest = image.ends_with(":latest")
                    || (!image.contains('@')
                        && !image.rsplit('/').next().unwrap_or_default().contains(':'));
                default_field(
                    cm,
                    "imagePullPolicy",
                    json!(if latest { "Always" } else { "IfNotPresent" }),
                );
                default_field(cm, "terminationMessagePath", json!("/dev/termination-log"));
                default_field(cm, "terminationMessagePolicy", json!("File"));
                default_field(cm, "resources", json!({}));
                if let Some(ports) = cm.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        if let Some(pm) = p.as_object_mut() {
                            default_field(pm, "protocol", json!("TCP"));
                        }
                    }
                }
            }
        }
    }
}

/// Applies the defaults kube-apiserver's defaulting functions set for the built-in kinds (the
/// subset that controllers commonly read back).
pub fn apply_defaults(info: &ResourceInfo, obj: &mut Value) {
    if info.is_custom() {
        return;
    }
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => {
            if let Some(spec) = obj.get_mut("spec") {
                default_pod_spec(spec);
                // SetDefaults_Pod (not the pod templates').
                if let Some(m) = spec.as_object_mut() {
                    default_field(m, "enableServiceLinks", json!(true));
                }
            }
        }
        ("", "Namespace") => {
            // The namespace's own name label (kube-apiserver's defaulting sets it).
            let name = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if !name.is_empty()
                && let Some(meta) = obj_mut(obj, "metadata")
            {
                let labels = meta
                    .entry("labels".to_string())
                    .or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("kubernetes.io/metadata.name".into(), json!(name));
                }
            }
        }
        ("apps", "Deployment") | ("apps", "ReplicaSet") => {
            let deploy = info.kind == "Deployment";
            if let Some(spec) = obj_mut(obj, "spec") {
                default_field(spec, "replicas", json!(1));
                if deploy {
                    default_field(spec, "revisionHistoryLimit", json!(10));
                    default_field(spec, "progressDeadlineSeconds", json!(600));
                    let strategy = spec
                        .entry("strategy".to_string())
                        .or_insert_with(|| json!({}));
                    if let Some(s) = strategy.as_object_mut() {
                        default_field(s, "type", json!("RollingUpdate"));
                        if s.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                            let ru = s
                                .entry("rollingUpdate".to_string())
                                .or_insert_with(|| json!({}));
                            if let Some(r) = ru.as_object_mut() {
                                default_field(r, "maxUnavailable", json!("25%"));
                                default_field(r, "maxSurge", json!("25%"));
                            }
                        }
                    }
                }
                if let Some(pspec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    default_pod_spec(pspec);
                }
            }
        }
        ("", "Service") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default_field(spec, "type", json!("ClusterIP"));
                default_field(spec, "sessionAffinity", json!("None"));
                let ty = spec
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if ty != "ExternalName" {
                    default_field(spec, "internalTrafficPolicy", json!("Cluster"));
                    default_field(spec, "ipFamilies", json!(["IPv4"]));
                    default_field(spec, "ipFamilyPolicy", json!("SingleStack"));
                }
                if ty == "NodePort" || ty == "LoadBalancer" {
                    default_field(spec, "externalTrafficPolicy", json!("Cluster"));
                }
                if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        if let Some(pm) = p.as_object_mut() {
                            default_field(pm, "protocol", json!("TCP"));
                            if let Some(port) = pm.get("port").cloned() {
                                default_field(pm, "targetPort", port);
                            }
                        }
                    }
                }
            }
        }
        ("", "Secret") => {
            if let Some(m) = obj.as_object_mut() {
                default_field(m, "type", json!("Opaque"));
                // stringData is write-only: merged into data (base64) and dropped.
                if let Some(Value::Object(sd)) = m.remove("stringData") {
                    use base64::Engine as _;
                    let data = m.entry("data".to_string()).or_insert_with(|| json!({}));
                    if data.is_null() {
                        *data = json!({});
                    }
                    if let Some(d) = data.as_object_mut() {
                        for (k, v) in sd {
                            let text = v.as_str().unwrap_or_default();
                            d.insert(
                                k,
                                json!(base64::engine::general_purpose::STANDARD.encode(text)),
                            );
                        }
                    }
                }
            }
        }
        ("", "PersistentVolumeClaim") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default_field(spec, "volumeMode", json!("Filesystem"));
            }
        }
        ("coordination.k8s.io", "Lease") | ("", "ConfigMap") => {}
        _ => {}
    }
}

/// What kube-apiserver's admission plugins add to a new object after its fields were recorded in
/// managedFields (so the creator does not own them): a Pod's priority and preemption policy
/// (Priority) and the not-ready/unreachable tolerations (DefaultTolerationSeconds).
pub fn admit_create(info: &ResourceInfo, obj: &mut Value) {
    if info.is_custom() || !(info.group.is_empty() && info.kind == "Pod") {
        return;
    }
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("priorityClassName").is_none_or(Value::is_null) {
        default_field(spec, "priority", json!(0));
    }
    default_field(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    let tolerations = spec
        .entry("tolerations".to_string())
        .or_insert_with(|| json!([]));
    if tolerations.is_null() {
        *tolerations = json!([]);
    }
    if let Some(list) = tolerations.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let tolerated = list.iter().any(|t| {
                (t["key"] == key || (t["key"].is_null() && t["operator"] == "Exists"))
                    && (t["effect"].is_null() || t["effect"] == "NoExecute")
            });
            if !tolerated {
                list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
}

/// Resets or initialises `status` on create as the kind's strategy does (PrepareForCreate).
pub fn prepare_for_create(info: &ResourceInfo, obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    if info.is_custom() {
        if info.status_subresource {
            m.remove("status");
        }
        return;
    }
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => {
            let qos = pod_qos(m.get("spec").unwrap_or(&Value::Null));
            m.insert(
                "status".into(),
                json!({"phase": "Pending", "qosClass": qos}),
            );
        }
        ("apps", "Deployment") | ("apps", "ReplicaSet") => {
            m.insert("status".into(), json!({}));
        }
        ("", "Service") => {
            m.insert("status".into(), json!({"loadBalancer": {}}));
        }
        ("", "Namespace") => {
            m.insert("status".into(), json!({"phase": "Active"}));
            let spec = m.entry("spec".to_string()).or_insert_with(|| json!({}));
            if let Some(s) = spec.as_object_mut() {
                s.insert("finalizers".into(), json!(["kubernetes"]));
            }
        }
        ("", "PersistentVolumeClaim") => {
            m.insert("status".into(), json!({"phase": "Pending"}));
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            m.remove("status");
        }
        ("policy", "PodDisruptionBudget") => {
            // The zero PodDisruptionBudgetStatus: its counters are not omitempty.
            m.insert(
                "status".into(),
                json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}),
            );
        }
        _ => {}
    }
}

fn pod_qos(spec: &Value) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for c in spec["containers"].as_array().into_iter().flatten() {
        let req = &c["resources"]["requests"];
        let lim = &c["resources"]["limits"];
        for r in ["cpu", "memory"] {
            let has_req = !req[r].is_null();
            let has_lim = !lim[r].is_null();
            if has_req || has_lim {
                any = true;
            }
            if !has_lim || (has_req && req[r] != lim[r]) {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

// ---------------------------------------------------------------------------------------------
// Kind-specific validation on create and update
// ---------------------------------------------------------------------------------------------

fn selector_matches_labels(selector: &Value, labels: &Value) -> bool {
    if let Some(ml) = selector["matchLabels"].as_object() {
        for (k, v) in ml {
            if labels.get(k) != Some(v) {
                return false;
            }
        }
    }
    for e in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or_default();
        let vals: Vec<&str> = e["values"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let have = labels.get(key).and_then(Value::as_str);
        let ok = match e["operator"].as_str().unwrap_or_default() {
            "In" => have.is_some_and(|h| vals.contains(&h)),
            "NotIn" => !have.is_some_and(|h| vals.contains(&h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

fn validate_containers(path: &str, list: &Value, required: bool, causes: &mut Vec<Cause>) {
    let empty = list.as_array().is_none_or(Vec::is_empty);
    if empty {
        if required {
            causes.push(Cause::new("FieldValueRequired", path, "Required value"));
        }
        return;
    }
    let mut names = Vec::new();
    for (i, c) in list.as_array().into_iter().flatten().enumerate() {
        let name = c["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            causes.push(Cause::new(
                "FieldValueRequired",
                &format!("{path}[{i}].name"),
                "Required value",
            ));
        } else if !is_dns_label(name) {
            causes.push(Cause::new(
                "FieldValueInvalid",
                &format!("{path}[{i}].name"),
                format!("Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"),
            ));
        } else if names.contains(&name) {
            causes.push(Cause::new(
                "FieldValueDuplicate",
                &format!("{path}[{i}].name"),
                format!("Duplicate value: \"{name}\""),
            ));
        }
        names.push(name);
        if c["image"].as_str().unwrap_or_default().trim().is_empty() {
            causes.push(Cause::new(
                "FieldValueRequired",
                &format!("{path}[{i}].image"),
                "Required value",
            ));
        }
    }
}

fn validate_pod_template(path: &str, selector: &Value, template: &Value, causes: &mut Vec<Cause>) {
    if selector.is_null() || selector.as_object().is_some_and(Map::is_empty) {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.selector",
            "Required value",
        ));
    } else if !selector_matches_labels(selector, &template["metadata"]["labels"]) {
        causes.push(Cause::new(
            "FieldValueInvalid",
            &format!("{path}.metadata.labels"),
            format!(
                "Invalid value: {}: `selector` does not match template `labels`",
                template["metadata"]["labels"]
            ),
        ));
    }
    validate_containers(
        &format!("{path}.spec.containers"),
        &template["spec"]["containers"],
        true,
        causes,
    );
}

/// Validation of a built-in object on create and update (the fields kube-apiserver requires).
pub fn validate_object(info: &ResourceInfo, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if info.is_custom() {
        return causes;
    }
    let spec = &obj["spec"];
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => {
            validate_containers("spec.containers", &spec["containers"], true, &mut causes);
            validate_containers(
                "spec.initContainers",
                &spec["initContainers"],
                false,
                &mut causes,
            );
        }
        ("apps", "Deployment") | ("apps", "ReplicaSet") => {
            if let Some(r) = spec["replicas"].as_i64()
                && r < 0
            {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "spec.replicas",
                    format!("Invalid value: {r}: must be greater than or equal to 0"),
                ));
            }
            validate_pod_template(
                "spec.template",
                &spec["selector"],
                &spec["template"],
                &mut causes,
            );
        }
        ("", "Service") => {
            let ty = spec["type"].as_str().unwrap_or("ClusterIP");
            let headless = spec["clusterIP"].as_str() == Some("None");
            let ports = spec["ports"].as_array().cloned().unwrap_or_default();
            if ports.is_empty() && !headless && ty != "ExternalName" {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    "spec.ports",
                    "Required value",
                ));
            }
            if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&ty) {
                causes.push(Cause::new(
                    "FieldValueNotSupported",
                    "spec.type",
                    format!("Unsupported value: \"{ty}\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
                ));
            }
            let mut seen = Vec::new();
            for (i, p) in ports.iter().enumerate() {
                let port = p["port"].as_i64().unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    causes.push(Cause::new(
                        "FieldValueInvalid",
                        &format!("spec.ports[{i}].port"),
                        format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
                    ));
                }
                if ports.len() > 1 && p["name"].as_str().unwrap_or_default().is_empty() {
                    causes.push(Cause::new(
                        "FieldValueRequired",
                        &format!("spec.ports[{i}].name"),
                        "Required value",
                    ));
                }
                let key = (port, p["protocol"].as_str().unwrap_or("TCP").to_string());
                if seen.contains(&key) {
                    causes.push(Cause::new(
                        "FieldValueDuplicate",
                        &format!("spec.ports[{i}]"),
                        format!("Duplicate value: {{{port} {}}}", key.1),
                    ));
                }
                seen.push(key);
                if ty != "NodePort"
                    && ty != "LoadBalancer"
                    && p["nodePort"].as_i64().unwrap_or(0) != 0
                {
                    causes.push(Cause::new(
                        "FieldValueForbidden",
                        &format!("spec.ports[{i}].nodePort"),
                        "Forbidden: may not be used when `type` is 'ClusterIP'",
                    ));
                }
            }
        }
        ("", "ConfigMap") | ("", "Secret") => {
            for field in ["data", "binaryData", "stringData"] {
                for k in obj[field].as_object().into_iter().flatten().map(|(k, _)| k) {
                    let ok = !k.is_empty()
                        && k.len() <= 253
                        && k.bytes().all(|b| {
                            b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
                        });
                    if !ok {
                        causes.push(Cause::new(
                            "FieldValueInvalid",
                            &format!("{field}[{k}]"),
                            format!("Invalid value: \"{k}\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'"),
                        ));
                    }
                }
            }
        }
        ("rbac.authorization.k8s.io", "Role") => validate_rules(obj, true, &mut causes),
        ("rbac.authorization.k8s.io", "ClusterRole") => validate_rules(obj, false, &mut causes),
        ("rbac.authorization.k8s.io", "RoleBinding") => validate_binding(obj, true, &mut causes),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            validate_binding(obj, false, &mut causes)
        }
        ("policy", "PodDisruptionBudget") => validate_pdb(spec, &mut causes),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let group = spec["group"].as_str().unwrap_or_default();
            let plural = spec["names"]["plural"].as_str().unwrap_or_default();
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            if name != format!("{plural}.{group}") {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "metadata.name",
                    format!(
                        "Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
                    ),
                ));
            }
            if spec["names"]["kind"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
            {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    "spec.names.kind",
                    "Required value",
                ));
            }
            let versions = spec["versions"].as_array().cloned().unwrap_or_default();
            if versions.is_empty() {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    "spec.versions",
                    "Required value",
                ));
            }
            let storage = versions
                .iter()
                .filter(|v| v["storage"].as_bool() == Some(true))
                .count();
            if !versions.is_empty() && storage != 1 {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "spec.versions",
                    format!("Invalid value: must have exactly one version marked as storage version (found {storage})"),
                ));
            }
            let scope = spec["scope"].as_str().unwrap_or_default();
            if scope != "Namespaced" && scope != "Cluster" {
                causes.push(Cause::new(
                    "FieldValueNotSupported",
                    "spec.scope",
                    format!("Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""),
                ));
            }
        }
        _ => {}
    }
    causes
}

fn non_empty_list(v: &Value) -> bool {
    v.as_array().is_some_and(|a| !a.is_empty())
}

/// `ValidatePolicyRule` for every rule of a Role (`namespaced`) or ClusterRole.
fn validate_rules(obj: &Value, namespaced: bool, causes: &mut Vec<Cause>) {
    for (i, rule) in obj["rules"].as_array().into_iter().flatten().enumerate() {
        let at = format!("rules[{i}]");
        if !non_empty_list(&rule["verbs"]) {
            causes.push(Cause::new(
                "FieldValueRequired",
                &format!("{at}.verbs"),
                "Required value: verbs must contain at least one value",
            ));
        }
        if non_empty_list(&rule["nonResourceURLs"]) {
            let urls = &rule["nonResourceURLs"];
            if namespaced {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    &format!("{at}.nonResourceURLs"),
                    format!(
                        "Invalid value: {urls}: namespaced rules cannot apply to non-resource URLs"
                    ),
                ));
            }
            if ["apiGroups", "resources", "resourceNames"]
                .iter()
                .any(|f| non_empty_list(&rule[*f]))
            {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    &format!("{at}.nonResourceURLs"),
                    format!("Invalid value: {urls}: rules cannot apply to both regular resources and non-resource URLs"),
                ));
            }
            continue;
        }
        if !non_empty_list(&rule["apiGroups"]) {
            causes.push(Cause::new(
                "FieldValueRequired",
                &format!("{at}.apiGroups"),
                "Required value: resource rules must supply at least one api group",
            ));
        }
        if !non_empty_list(&rule["resources"]) {
            causes.push(Cause::new(
                "FieldValueRequired",
                &format!("{at}.resources"),
                "Required value: resource rules must supply at least one resource",
            ));
        }
    }
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// `ValidateRoleBinding` / `ValidateClusterRoleBinding`: the roleRef and every subject.
fn validate_binding(obj: &Value, namespaced: bool, causes: &mut Vec<Cause>) {
    let role_ref = &obj["roleRef"];
    let group = role_ref["apiGroup"].as_str().unwrap_or_default();
    if group != RBAC_GROUP {
        causes.push(Cause::new(
            "FieldValueNotSupported",
            "roleRef.apiGroup",
            format!("Unsupported value: \"{group}\": supported values: \"{RBAC_GROUP}\""),
        ));
    }
    let kind = role_ref["kind"].as_str().unwrap_or_default();
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&kind) {
        let supported: Vec<String> = kinds.iter().map(|k| format!("\"{k}\"")).collect();
        causes.push(Cause::new(
            "FieldValueNotSupported",
            "roleRef.kind",
            format!(
                "Unsupported value: \"{kind}\": supported values: {}",
                supported.join(", ")
            ),
        ));
    }
    let name = role_ref["name"].as_str().unwrap_or_default();
    if name.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "roleRef.name",
            "Required value",
        ));
    } else if let Some(why) = path_segment_problem(name) {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "roleRef.name",
            format!("Invalid value: \"{name}\": {why}"),
        ));
    }
    for (i, sub) in obj["subjects"].as_array().into_iter().flatten().enumerate() {
        let at = format!("subjects[{i}]");
        let name = sub["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            causes.push(Cause::new(
                "FieldValueRequired",
                &format!("{at}.name"),
                "Required value",
            ));
        }
        let group = sub["apiGroup"].as_str().unwrap_or_default();
        match sub["kind"].as_str().unwrap_or_default() {
            "ServiceAccount" => {
                if !group.is_empty() {
                    causes.push(Cause::new(
                        "FieldValueNotSupported",
                        &format!("{at}.apiGroup"),
                        format!("Unsupported value: \"{group}\": supported values: \"\""),
                    ));
                }
                if !name.is_empty() && !is_dns_subdomain(name) {
                    causes.push(Cause::new(
                        "FieldValueInvalid",
                        &format!("{at}.name"),
                        format!("Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
                    ));
                }
                if !namespaced && sub["namespace"].as_str().unwrap_or_default().is_empty() {
                    causes.push(Cause::new(
                        "FieldValueRequired",
                        &format!("{at}.namespace"),
                        "Required value",
                    ));
                }
            }
            "User" | "Group" => {
                if group != RBAC_GROUP {
                    causes.push(Cause::new(
                        "FieldValueNotSupported",
                        &format!("{at}.apiGroup"),
                        format!(
                            "Unsupported value: \"{group}\": supported values: \"{RBAC_GROUP}\""
                        ),
                    ));
                }
            }
            other => causes.push(Cause::new(
                "FieldValueNotSupported",
                &format!("{at}.kind"),
                format!("Unsupported value: \"{other}\": supported values: \"ServiceAccount\", \"User\", \"Group\""),
            )),
        }
    }
}

/// An int-or-string that must be a non-negative integer or a percentage of at most 100%.
fn validate_int_or_percent(field: &str, v: &Value, causes: &mut Vec<Cause>) {
    let ok = match v {
        Value::Null => true,
        Value::Number(n) => n.as_i64().is_some_and(|x| x >= 0),
        Value::String(p) => p
            .strip_suffix('%')
            .and_then(|x| x.parse::<i64>().ok())
            .is_some_and(|x| (0..=100).contains(&x)),
        _ => false,
    };
    if !ok {
        causes.push(Cause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {v}: must be a non-negative integer or a percentage between 0% and 100%"),
        ));
    }
}

/// `ValidatePodDisruptionBudgetSpec`.
fn validate_pdb(spec: &Value, causes: &mut Vec<Cause>) {
    let min = &spec["minAvailable"];
    let max = &spec["maxUnavailable"];
    if !min.is_null() && !max.is_null() {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.minAvailable",
            format!("Invalid value: {min}: minAvailable and maxUnavailable cannot be both set"),
        ));
    }
    validate_int_or_percent("spec.minAvailable", min, causes);
    validate_int_or_percent("spec.maxUnavailable", max, causes);
    if let Some(p) = spec["unhealthyPodEvictionPolicy"].as_str()
        && !["IfHealthyBudget", "AlwaysAllow"].contains(&p)
    {
        causes.push(Cause::new(
            "FieldValueNotSupported",
            "spec.unhealthyPodEvictionPolicy",
            format!(
                "Unsupported value: \"{p}\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\""
            ),
        ));
    }
}

fn immutable(field: &str, value: &Value) -> Cause {
    Cause::new(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {value}: field is immutable"),
    )
}

/// The update rules of the built-in kinds' strategies (ValidateUpdate): immutable fields.
pub fn validate_update(info: &ResourceInfo, old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if info.is_custom() {
        return causes;
    }
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => {
            let (os, ns) = (&old["spec"], &new["spec"]);
            let mut allowed = os.clone();
            if let Some(m) = allowed.as_object_mut() {
                for list in ["containers", "initContainers"] {
                    if let (Some(a), Some(b)) = (
                        m.get_mut(list).and_then(Value::as_array_mut),
                        ns[list].as_array(),
                    ) && a.len() == b.len()
                    {
                        for (x, y) in a.iter_mut().zip(b) {
                            if let Some(xm) = x.as_object_mut() {
                                xm.insert("image".into(), y["image"].clone());
                            }
                        }
                    }
                }
                for f in ["activeDeadlineSeconds", "terminationGracePeriodSeconds"] {
                    match ns.get(f) {
                        Some(v) => {
                            m.insert(f.into(), v.clone());
                        }
                        None => {
                            m.remove(f);
                        }
                    }
                }
                let old_tol = os["tolerations"].as_array().cloned().unwrap_or_default();
                let new_tol = ns["tolerations"].as_array().cloned().unwrap_or_default();
                if old_tol.iter().all(|t| new_tol.contains(t)) {
                    match ns.get("tolerations") {
                        Some(v) => {
                            m.insert("tolerations".into(), v.clone());
                        }
                        None => {
                            m.remove("tolerations");
                        }
                    }
                }
                if os["nodeName"].is_null() || os["nodeName"] == json!("") {
                    // nodeName is set by binding; an update may carry it unchanged only.
                }
            }
            if &allowed != ns {
                causes.push(Cause::new(
                    "FieldValueForbidden",
                    "spec",
                    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                ));
            }
        }
        ("apps", "Deployment") | ("apps", "ReplicaSet")
            if old["spec"]["selector"] != new["spec"]["selector"] =>
        {
            causes.push(immutable("spec.selector", &new["spec"]["selector"]));
        }
        ("", "Service") => {
            let oc = &old["spec"]["clusterIP"];
            let nc = &new["spec"]["clusterIP"];
            if !oc.is_null() && oc != &json!("") && oc != nc {
                let ty = new["spec"]["type"].as_str().unwrap_or_default();
                if ty != "ExternalName" {
                    causes.push(Cause::new(
                        "FieldValueInvalid",
                        "spec.clusterIPs[0]",
                        format!("Invalid value: {nc}: may not change once set"),
                    ));
                }
            }
            let oips = &old["spec"]["clusterIPs"];
            let nips = &new["spec"]["clusterIPs"];
            if oips.is_array() && nips.is_array() && oips != nips && causes.is_empty() {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "spec.clusterIPs[0]",
                    format!("Invalid value: {nips}: may not change once set"),
                ));
            }
        }
        ("", "ConfigMap") | ("", "Secret") => {
            if old["immutable"].as_bool() == Some(true) {
                if old["data"] != new["data"] || old["binaryData"] != new["binaryData"] {
                    causes.push(Cause::new(
                        "FieldValueForbidden",
                        "data",
                        "Forbidden: field is immutable when `immutable` is set",
                    ));
                }
                if new["immutable"].as_bool() != Some(true) {
                    causes.push(Cause::new(
                        "FieldValueForbidden",
                        "immutable",
                        "Forbidden: field is immutable when `immutable` is set",
                    ));
                }
            }
            if info.kind == "Secret" && old["type"] != new["type"] {
                causes.push(immutable("type", &new["type"]));
            }
        }
        ("", "PersistentVolumeClaim") => {
            let mut a = old["spec"].clone();
            let mut b = new["spec"].clone();
            for s in [&mut a, &mut b] {
                if let Some(m) = s.get_mut("resources").and_then(Value::as_object_mut) {
                    m.remove("requests");
                }
                if let Some(m) = s.as_object_mut() {
                    m.remove("volumeName");
                    m.remove("volumeAttributesClassName");
                }
            }
            if a != b {
                causes.push(Cause::new(
                    "FieldValueForbidden",
                    "spec",
                    "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                ));
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding")
            if old["roleRef"] != new["roleRef"] =>
        {
            causes.push(Cause::new(
                "FieldValueInvalid",
                "roleRef",
                format!("Invalid value: {}: cannot change roleRef", new["roleRef"]),
            ));
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            for (field, a, b) in [
                ("spec.group", &old["spec"]["group"], &new["spec"]["group"]),
                ("spec.scope", &old["spec"]["scope"], &new["spec"]["scope"]),
                (
                    "spec.names.kind",
                    &old["spec"]["names"]["kind"],
                    &new["spec"]["names"]["kind"],
                ),
                (
                    "spec.names.plural",
                    &old["spec"]["names"]["plural"],
                    &new["spec"]["names"]["plural"],
                ),
            ] {
                if a != b {
                    causes.push(immutable(field, b));
                }
            }
        }
        _ => {}
    }
    causes
}

/// The CRD status the apiextensions controllers set: accepted names and the `NamesAccepted` and
/// `Established` conditions.
pub fn crd_status(crd: &Value, now: &str) -> Value {
    let names = crd["spec"]["names"].clone();
    let mut accepted = names.clone();
    if let Some(m) = accepted.as_object_mut()
        && m.get("singular").is_none_or(Value::is_null)
    {
        let kind = names["kind"].as_str().unwrap_or_default().to_lowercase();
        m.insert("singular".into(), json!(kind));
    }
    if let Some(m) = accepted.as_object_mut()
        && m.get("listKind").is_none_or(Value::is_null)
    {
        let kind = names["kind"].as_str().unwrap_or_default();
        m.insert("listKind".into(), json!(format!("{kind}List")));
    }
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .map(|v| v["name"].clone())
        .collect();
    json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": stored,
    })
}

/// Whether `spec` changed in the sense of `metadata.generation`: for custom resources any change
/// outside `metadata` and `status`; for built-ins a change of `spec` (and for ConfigMap-like kinds
/// nothing, since they carry no generation).
pub fn spec_changed(info: &ResourceInfo, old: &Value, new: &Value) -> bool {
    if info.is_custom() {
        let strip = |v: &Value| -> Value {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("status");
            }
            v
        };
        strip(old) != strip(new)
    } else {
        old["spec"] != new["spec"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// API conventions: unknown fields are found by decoding into the typed object.
    #[test]
    fn typed_unknown_fields_are_reported_with_paths() {
        let cm = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"x":"1"},"foo":1});
        assert_eq!(
            typed_unknown_fields("", "ConfigMap", &cm).unwrap(),
            vec!["foo".to_string()]
        );
        let pod = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},
            "spec":{"containers":[{"name":"a","image":"x","bogus":true}]}});
        assert_eq!(
            typed_unknown_fields("", "Pod", &pod).unwrap(),
            vec!["spec.containers[0].bogus".to_string()]
        );
        let bad = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"},"spec":{"replicas":"x"}});
        assert!(typed_unknown_fields("apps", "Deployment", &bad).is_err());
    }

    /// ObjectMeta validation: annotations may total at most 256 KiB (kubectl's client-side apply
    /// of a very large object fails this way on a real cluster).
    #[test]
    fn annotations_size_limit() {
        let reg = Registry::default();
        let info = reg.get("", "v1", "configmaps").unwrap();
        let ok = json!({"metadata": {"name": "a", "annotations": {"x": "y".repeat(1000)}}});
        assert!(validate_metadata(&info, &ok).is_empty());
        let big = json!({"metadata": {"name": "a", "annotations": {"x": "y".repeat(300 * 1024)}}});
        assert_eq!(
            validate_metadata(&info, &big)[0].reason,
            "FieldValueTooLong"
        );
    }

    /// Pod update validation: only image, activeDeadlineSeconds, tolerations additions and
    /// terminationGracePeriodSeconds may change.
    #[test]
    fn pod_spec_is_mostly_immutable() {
        let reg = Registry::default();
        let info = reg.get("", "v1", "pods").unwrap();
        let old = json!({"spec":{"containers":[{"name":"a","image":"x:1"}]}});
        let img = json!({"spec":{"containers":[{"name":"a","image":"x:2"}]}});
        assert!(validate_update(&info, &old, &img).is_empty());
        let cmd = json!({"spec":{"containers":[{"name":"a","image":"x:1","command":["sh"]}]}});
        assert_eq!(validate_update(&info, &old, &cmd).len(), 1);
    }
}

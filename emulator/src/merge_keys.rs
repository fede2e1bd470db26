//! Merge keys and list/map types: the schema knowledge that strategic merge patch and
//! server-side apply share.
//!
//! Kubernetes keeps this knowledge in two places:
//! - for strategic merge patch, in the Go struct tags `patchStrategy` / `patchMergeKey`
//!   (e.g. `Containers []Container ... patchStrategy:"merge" patchMergeKey:"name"`);
//! - for server-side apply, in the `+listType` / `+listMapKey` / `+mapType` / `+structType`
//!   markers, published in OpenAPI as `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`
//!   and `x-kubernetes-map-type` (the same extensions a CRD's structural schema uses).
//!
//! A [`MergeSchema`] is a tree of field names. Items of a list are collapsed into the list's
//! node: the fields of a container live under the `containers` node itself, so
//! `spec.template.spec.containers.ports` names the `ports` list of every container.

use std::collections::BTreeMap;

use serde_json::Value;

/// How server-side apply treats a list (`x-kubernetes-list-type`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ListType {
    /// The list is one value, replaced wholesale and owned as a whole (`atomic`, the default).
    #[default]
    Atomic,
    /// A set of scalars; each item is owned separately (`set`, FieldsV1 `v:<json>`).
    Set,
    /// A list of objects identified by the values of `keys` (`map`, FieldsV1 `k:{...}`).
    Map {
        /// The `x-kubernetes-list-map-keys`, in declaration order.
        keys: Vec<String>,
    },
}

/// How strategic merge patch treats a list (the Go `patchStrategy` / `patchMergeKey` tags).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SmpStrategy {
    /// No `patchStrategy:"merge"`: the patch list replaces the live list.
    #[default]
    Replace,
    /// `patchStrategy:"merge"`: lists of objects are merged by `merge_key`; lists of scalars
    /// (`merge_key` None, e.g. `metadata.finalizers`) are merged as sets.
    Merge {
        /// The `patchMergeKey`, None for lists of scalars.
        merge_key: Option<String>,
    },
}

/// Everything known about one list field.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListSchema {
    /// Server-side apply list type.
    pub list_type: ListType,
    /// Strategic merge patch strategy.
    pub smp: SmpStrategy,
    /// Defaults of map keys (e.g. `protocol: TCP` for ports): server-side apply fills a missing
    /// key field with its schema default when it identifies an item.
    pub key_defaults: BTreeMap<String, Value>,
}

impl ListSchema {
    /// `+listType=atomic` without a merge strategy.
    pub fn atomic() -> Self {
        Self::default()
    }

    /// `+listType=set`; `smp_merge` when the field also has `patchStrategy:"merge"`.
    pub fn set(smp_merge: bool) -> Self {
        Self {
            list_type: ListType::Set,
            smp: if smp_merge {
                SmpStrategy::Merge { merge_key: None }
            } else {
                SmpStrategy::Replace
            },
            key_defaults: BTreeMap::new(),
        }
    }

    /// `+listType=map` with `keys`, and `patchMergeKey=smp_key` when Some.
    pub fn map(smp_key: Option<&str>, keys: &[&str]) -> Self {
        Self {
            list_type: ListType::Map {
                keys: keys.iter().map(|k| (*k).to_string()).collect(),
            },
            smp: match smp_key {
                Some(k) => SmpStrategy::Merge {
                    merge_key: Some(k.to_string()),
                },
                None => SmpStrategy::Replace,
            },
            key_defaults: BTreeMap::new(),
        }
    }

    /// Adds a default for a key field.
    pub fn with_key_default(mut self, key: &str, value: Value) -> Self {
        self.key_defaults.insert(key.to_string(), value);
        self
    }

    /// The list map keys, empty unless the list type is `map`.
    pub fn map_keys(&self) -> &[String] {
        match &self.list_type {
            ListType::Map { keys } => keys,
            _ => &[],
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Node {
    list: Option<ListSchema>,
    /// `x-kubernetes-map-type: atomic` / `+structType=atomic`: owned and replaced as one value.
    atomic: bool,
    /// A struct (a Go struct field, not a map): never a member of a field set of its own.
    structure: bool,
    fields: BTreeMap<String, Node>,
    /// Schema of the values of a map with arbitrary keys (`additionalProperties`).
    additional: Option<Box<Node>>,
}

static EMPTY: Node = Node {
    list: None,
    atomic: false,
    structure: false,
    fields: BTreeMap::new(),
    additional: None,
};

/// Per-field list types, merge keys and map types for one kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeSchema {
    root: Node,
}

/// A position in a [`MergeSchema`]; unknown fields yield an empty node (atomic lists,
/// granular maps — the Kubernetes defaults).
#[derive(Debug, Clone, Copy)]
pub struct SchemaNode<'a> {
    node: &'a Node,
}

impl<'a> SchemaNode<'a> {
    /// The node of field `name` of this object (or of this list's items, which are collapsed
    /// into the list's node).
    pub fn field(self, name: &str) -> SchemaNode<'a> {
        let node = match self.node.fields.get(name) {
            Some(n) => n,
            None => match &self.node.additional {
                Some(a) => a,
                None => &EMPTY,
            },
        };
        SchemaNode { node }
    }

    /// The list schema if this field is a list the schema knows about.
    pub fn list(self) -> Option<&'a ListSchema> {
        self.node.list.as_ref()
    }

    /// The list schema, defaulting to atomic / replace for unknown lists.
    pub fn list_or_atomic(self) -> ListSchema {
        self.node.list.clone().unwrap_or_default()
    }

    /// True for `x-kubernetes-map-type: atomic` maps and `+structType=atomic` structs.
    pub fn is_atomic_map(self) -> bool {
        self.node.atomic
    }

    /// True for a field declared a struct ([`MergeSchema::set_struct`]): managedFields record
    /// its fields but not the struct itself (no `.` entry), as for Go structs.
    pub fn is_struct(self) -> bool {
        self.node.structure
    }

    /// True when `name` is a key of a map with arbitrary keys (`additionalProperties`) rather
    /// than a declared field; server-side apply owns such entries as a whole.
    pub fn is_map_key(self, name: &str) -> bool {
        self.node.additional.is_some() && !self.node.fields.contains_key(name)
    }

    /// The node for items of this list (items are collapsed into the list node).
    pub fn item(self) -> SchemaNode<'a> {
        self
    }
}

impl MergeSchema {
    /// An empty schema: every list atomic, every map granular (what Kubernetes assumes for
    /// fields without markers).
    pub fn empty() -> MergeSchema {
        MergeSchema::default()
    }

    /// The root (the object itself).
    pub fn root(&self) -> SchemaNode<'_> {
        SchemaNode { node: &self.root }
    }

    /// Looks up a dotted path (field names only, list items collapsed).
    pub fn node(&self, path: &str) -> SchemaNode<'_> {
        let mut n = self.root();
        for seg in path.split('.').filter(|s| !s.is_empty()) {
            n = n.field(seg);
        }
        n
    }

    fn node_mut(&mut self, path: &str) -> &mut Node {
        let mut n = &mut self.root;
        for seg in path.split('.').filter(|s| !s.is_empty()) {
            n = n.fields.entry(seg.to_string()).or_default();
        }
        n
    }

    /// Declares a list at `path`.
    pub fn set_list(&mut self, path: &str, list: ListSchema) {
        self.node_mut(path).list = Some(list);
    }

    /// Declares an atomic map or struct at `path`.
    pub fn set_atomic(&mut self, path: &str) {
        self.node_mut(path).atomic = true;
    }

    /// Declares a struct at `path` (see [`SchemaNode::is_struct`]).
    pub fn set_struct(&mut self, path: &str) {
        self.node_mut(path).structure = true;
    }

    /// Merge keys / list types of built-in kinds, as in the Go types' `patchMergeKey` /
    /// `listType` tags (k8s.io/api v0.33). Unknown kinds (and custom resources) get only the
    /// ObjectMeta knowledge.
    pub fn builtin(group: &str, kind: &str) -> MergeSchema {
        let mut s = MergeSchema::default();
        s.object_meta("metadata");
        let group = if group == "core" { "" } else { group };
        match (group, kind) {
            ("", "Pod") => {
                s.pod_spec("spec");
                s.pod_status("status");
            }
            ("", "PodTemplate") => s.pod_template("template"),
            ("", "ReplicationController") => {
                s.pod_template("spec.template");
                s.conditions("status.conditions");
            }
            ("apps", "Deployment")
            | ("apps", "ReplicaSet")
            | ("apps", "DaemonSet")
            | ("apps", "StatefulSet") => {
                s.pod_template("spec.template");
                s.set_atomic("spec.selector");
                s.conditions("status.conditions");
                if kind == "StatefulSet" {
                    s.set_list("spec.volumeClaimTemplates", ListSchema::atomic());
                }
            }
            ("batch", "Job") => {
                s.pod_template("spec.template");
                s.set_atomic("spec.selector");
                s.set_list("status.conditions", ListSchema::atomic());
            }
            ("batch", "CronJob") => {
                s.pod_template("spec.jobTemplate.spec.template");
                s.object_meta("spec.jobTemplate.metadata");
                s.set_atomic("spec.jobTemplate.spec.selector");
                s.set_list("status.active", ListSchema::atomic());
            }
            ("", "Service") => {
                s.set_list(
                    "spec.ports",
                    ListSchema::map(Some("port"), &["port", "protocol"])
                        .with_key_default("protocol", Value::from("TCP")),
                );
                s.set_atomic("spec.selector");
                for f in [
                    "spec.clusterIPs",
                    "spec.externalIPs",
                    "spec.ipFamilies",
                    "spec.loadBalancerSourceRanges",
                    "status.loadBalancer.ingress",
                ] {
                    s.set_list(f, ListSchema::atomic());
                }
                s.conditions("status.conditions");
            }
            ("", "Node") => {
                s.set_list("spec.podCIDRs", ListSchema::set(true));
                s.set_list("spec.taints", ListSchema::atomic());
                s.conditions("status.conditions");
                s.set_list("status.addresses", ListSchema::map(Some("type"), &["type"]));
                s.set_list("status.images", ListSchema::atomic());
                s.set_list("status.volumesInUse", ListSchema::atomic());
                s.set_list("status.volumesAttached", ListSchema::atomic());
            }
            ("", "Namespace") => {
                s.set_list("spec.finalizers", ListSchema::atomic());
                s.conditions("status.conditions");
            }
            ("", "ServiceAccount") => {
                s.set_list("secrets", ListSchema::map(Some("name"), &["name"]));
                s.set_list("imagePullSecrets", ListSchema::atomic());
            }
            ("", "PersistentVolumeClaim") => {
                s.set_list("spec.accessModes", ListSchema::atomic());
                s.set_atomic("spec.selector");
                s.conditions("status.conditions");
                s.set_list("status.accessModes", ListSchema::atomic());
            }
            ("", "Endpoints") => s.set_list("subsets", ListSchema::atomic()),
            ("networking.k8s.io", "NetworkPolicy") => {
                s.set_atomic("spec.podSelector");
                s.set_list("spec.ingress", ListSchema::atomic());
                s.set_list("spec.egress", ListSchema::atomic());
                s.set_list("spec.policyTypes", ListSchema::atomic());
                s.set_list(
                    "status.conditions",
                    ListSchema::map(Some("type"), &["type"]),
                );
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                s.set_list("spec.versions", ListSchema::atomic());
                s.set_list("spec.names.shortNames", ListSchema::atomic());
                s.set_list("spec.names.categories", ListSchema::atomic());
                s.conditions("status.conditions");
                s.set_list("status.storedVersions", ListSchema::atomic());
            }
            ("authentication.k8s.io", "TokenReview") => {
                for f in ["spec", "status", "status.user"] {
                    s.set_struct(f);
                }
            }
            ("policy", "PodDisruptionBudget") => {
                s.set_atomic("spec.selector");
                s.conditions("status.conditions");
            }
            _ => {}
        }
        s
    }

    /// From a CRD version's `openAPIV3Schema`: `x-kubernetes-list-type` (atomic|set|map),
    /// `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`. Lists without annotation are
    /// atomic (as for CRDs in Kubernetes). `metadata` gets the ObjectMeta knowledge.
    pub fn from_openapi(schema: &Value) -> MergeSchema {
        let mut s = MergeSchema {
            root: node_from_openapi(schema),
        };
        s.object_meta("metadata");
        s
    }

    fn object_meta(&mut self, at: &str) {
        self.set_list(&join(at, "finalizers"), ListSchema::set(true));
        self.set_list(
            &join(at, "ownerReferences"),
            ListSchema::map(Some("uid"), &["uid"]),
        );
        self.set_list(&join(at, "managedFields"), ListSchema::atomic());
    }

    fn conditions(&mut self, at: &str) {
        self.set_list(at, ListSchema::map(Some("type"), &["type"]));
    }

    fn pod_template(&mut self, at: &str) {
        self.object_meta(&join(at, "metadata"));
        self.pod_spec(&join(at, "spec"));
    }

    fn container(&mut self, at: &str) {
        self.set_list(
            &join(at, "ports"),
            ListSchema::map(Some("containerPort"), &["containerPort", "protocol"])
                .with_key_default("protocol", Value::from("TCP")),
        );
        self.set_list(&join(at, "env"), ListSchema::map(Some("name"), &["name"]));
        self.set_list(&join(at, "envFrom"), ListSchema::atomic());
        self.set_list(
            &join(at, "volumeMounts"),
            ListSchema::map(Some("mountPath"), &["mountPath"]),
        );
        self.set_list(
            &join(at, "volumeDevices"),
            ListSchema::map(Some("devicePath"), &["devicePath"]),
        );
        self.set_list(&join(at, "command"), ListSchema::atomic());
        self.set_list(&join(at, "args"), ListSchema::atomic());
        self.set_list(&join(at, "resizePolicy"), ListSchema::atomic());
        self.set_list(
            &join(at, "resources.claims"),
            ListSchema::map(None, &["name"]),
        );
    }

    fn pod_spec(&mut self, at: &str) {
        for c in ["containers", "initContainers", "ephemeralContainers"] {
            let p = join(at, c);
            self.set_list(&p, ListSchema::map(Some("name"), &["name"]));
            self.container(&p);
        }
        self.set_list(
            &join(at, "volumes"),
            ListSchema::map(Some("name"), &["name"]),
        );
        self.set_list(
            &join(at, "imagePullSecrets"),
            ListSchema::map(Some("name"), &["name"]),
        );
        self.set_list(&join(at, "tolerations"), ListSchema::atomic());
        self.set_list(
            &join(at, "hostAliases"),
            ListSchema::map(Some("ip"), &["ip"]),
        );
        self.set_list(
            &join(at, "topologySpreadConstraints"),
            ListSchema::map(Some("topologyKey"), &["topologyKey", "whenUnsatisfiable"]),
        );
        self.set_list(&join(at, "readinessGates"), ListSchema::atomic());
        self.set_list(
            &join(at, "resourceClaims"),
            ListSchema::map(Some("name"), &["name"]),
        );
        self.set_list(
            &join(at, "schedulingGates"),
            ListSchema::map(Some("name"), &["name"]),
        );
        self.set_list(
            &join(at, "securityContext.supplementalGroups"),
            ListSchema::atomic(),
        );
        self.set_list(&join(at, "securityContext.sysctls"), ListSchema::atomic());
    }

    fn pod_status(&mut self, at: &str) {
        self.conditions(&join(at, "conditions"));
        for l in [
            "containerStatuses",
            "initContainerStatuses",
            "ephemeralContainerStatuses",
        ] {
            self.set_list(&join(at, l), ListSchema::atomic());
        }
        self.set_list(&join(at, "podIPs"), ListSchema::map(Some("ip"), &["ip"]));
        self.set_list(&join(at, "hostIPs"), ListSchema::map(Some("ip"), &["ip"]));
    }
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}.{b}")
    }
}

fn node_from_openapi(schema: &Value) -> Node {
    let mut node = Node::default();
    fill_from_openapi(&mut node, schema);
    node
}

fn fill_from_openapi(node: &mut Node, schema: &Value) {
    let Some(obj) = schema.as_object() else {
        return;
    };
    if obj.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic") {
        node.atomic = true;
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            let child = node.fields.entry(name.clone()).or_default();
            fill_from_openapi(child, sub);
        }
    }
    if let Some(add) = obj.get("additionalProperties")
        && add.is_object()
    {
        let mut child = Node::default();
        fill_from_openapi(&mut child, add);
        node.additional = Some(Box::new(child));
    }
    let is_array = obj.get("type").and_then(Value::as_str) == Some("array");
    if is_array || obj.contains_key("items") {
        let list_type = match obj.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map {
                keys: obj
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            _ => ListType::Atomic,
        };
        let mut key_defaults = BTreeMap::new();
        if let (ListType::Map { keys }, Some(items)) = (&list_type, obj.get("items")) {
            for k in keys {
                if let Some(d) = items.pointer(&format!("/properties/{k}/default")) {
                    key_defaults.insert(k.clone(), d.clone());
                }
            }
        }
        let smp = match &list_type {
            ListType::Map { keys } if keys.len() == 1 => SmpStrategy::Merge {
                merge_key: keys.first().cloned(),
            },
            ListType::Set => SmpStrategy::Merge { merge_key: None },
            _ => SmpStrategy::Replace,
        };
        node.list = Some(ListSchema {
            list_type,
            smp,
            key_defaults,
        });
        if let Some(items) = obj.get("items") {
            fill_from_openapi(node, items);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Pod containers merge by name (`patchMergeKey:"name"`) and are a map list keyed by
    /// name (`+listMapKey=name`) — k8s.io/api core/v1 types.go, PodSpec.Containers.
    #[test]
    fn builtin_pod_containers_by_name() {
        let s = MergeSchema::builtin("", "Pod");
        let l = s.node("spec.containers").list().cloned().unwrap();
        assert_eq!(
            l.smp,
            SmpStrategy::Merge {
                merge_key: Some("name".into())
            }
        );
        assert_eq!(l.map_keys(), ["name".to_string()]);
    }

    /// Container ports: SMP merge key containerPort, SSA keys containerPort+protocol with
    /// protocol defaulting to TCP — k8s.io/api core/v1 Container.Ports.
    #[test]
    fn builtin_deployment_container_ports() {
        let s = MergeSchema::builtin("apps", "Deployment");
        let l = s
            .node("spec.template.spec.containers.ports")
            .list()
            .cloned()
            .unwrap();
        assert_eq!(
            l.smp,
            SmpStrategy::Merge {
                merge_key: Some("containerPort".into())
            }
        );
        assert_eq!(l.map_keys(), ["containerPort", "protocol"]);
        assert_eq!(l.key_defaults.get("protocol"), Some(&json!("TCP")));
        assert!(s.node("spec.selector").is_atomic_map());
    }

    /// Service spec.ports: patchMergeKey port, listMapKeys port+protocol — core/v1 ServiceSpec.
    #[test]
    fn builtin_service_ports_and_finalizers() {
        let s = MergeSchema::builtin("", "Service");
        let l = s.node("spec.ports").list().cloned().unwrap();
        assert_eq!(
            l.smp,
            SmpStrategy::Merge {
                merge_key: Some("port".into())
            }
        );
        let f = s.node("metadata.finalizers").list().cloned().unwrap();
        assert_eq!(f.list_type, ListType::Set);
        assert_eq!(f.smp, SmpStrategy::Merge { merge_key: None });
        // tolerations are atomic (no patchStrategy): unknown paths give no list info
        assert!(s.node("spec.tolerations").list().is_none());
    }

    /// CRD lists without x-kubernetes-list-type are atomic; map lists and atomic maps are read
    /// from the structural schema — CRD docs, "x-kubernetes-list-type".
    #[test]
    fn from_openapi_reads_extensions() {
        let schema = json!({"type":"object","properties":{"spec":{"type":"object","properties":{
            "ports":{"type":"array","x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["name"],
                "items":{"type":"object","properties":{"name":{"type":"string"},
                    "tags":{"type":"array","x-kubernetes-list-type":"set","items":{"type":"string"}}}}},
            "plain":{"type":"array","items":{"type":"string"}},
            "sel":{"type":"object","x-kubernetes-map-type":"atomic","additionalProperties":{"type":"string"}},
            "byName":{"type":"object","additionalProperties":{"type":"object","properties":{
                "xs":{"type":"array","x-kubernetes-list-type":"set","items":{"type":"integer"}}}}}
        }}}});
        let s = MergeSchema::from_openapi(&schema);
        assert_eq!(s.node("spec.ports").list().unwrap().map_keys(), ["name"]);
        assert_eq!(
            s.node("spec.ports.tags").list().unwrap().list_type,
            ListType::Set
        );
        assert_eq!(
            s.node("spec.plain").list().unwrap().list_type,
            ListType::Atomic
        );
        assert!(s.node("spec.sel").is_atomic_map());
        assert_eq!(
            s.node("spec.byName.anything.xs").list().unwrap().list_type,
            ListType::Set
        );
        assert_eq!(
            s.node("metadata.finalizers").list().unwrap().list_type,
            ListType::Set
        );
    }
}

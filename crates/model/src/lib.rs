//! The `System` custom resource: the single source of truth for the CRD.
//!
//! This crate is Tycho's model: the types, their validation ([`validate`]) and resource
//! quantities ([`quantity`]). It does no I/O and pulls in no client, renderer or CLI, so the
//! SDK, the operator and the `tycho` binary all build on it.
//!
//! Every field carries a doc comment because it becomes the field's description in the CRD and
//! is what `kubectl explain system.spec...` prints. Schema bounds and CEL rules reject bad input
//! at admission; what the schema cannot express is checked by [`crate::validate`].

#![deny(missing_docs)]

pub mod compose;
pub mod quantity;
pub mod validate;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSecurityContext, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the System resource.
pub const GROUP: &str = "tycho.dev";
/// API version of the System resource.
pub const VERSION: &str = "v1alpha1";
/// Longest allowed System name, so that every child name (`<name>-files`) is a valid DNS label.
pub const MAX_NAME_LEN: usize = 57;
/// Most bytes of pre-boot file content one System may carry (a ConfigMap holds at most 1 MiB).
pub const MAX_FILE_BYTES: usize = 1_000_000;

/// Label naming the manager of every child object.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "tycho";
/// Label carrying the System name on every child.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
/// Label carrying the System name on every child and pod (the Service selector).
pub const LABEL_SYSTEM: &str = "tycho.dev/system";
/// Label carrying the session Lease name on children of a session-owned System.
pub const LABEL_SESSION: &str = "tycho.dev/session";
/// Annotation put on a Lease once its collection has begun: later renewals resurrect nothing.
pub const ANNOTATION_COLLECTED: &str = "tycho.dev/collected";
/// Annotation on a System asking for its pods to be restarted: its value (a time) becomes the pods'
/// `kubectl.kubernetes.io/restartedAt`, so a Deployment rolls out as after `kubectl rollout restart`
/// and a bare Pod is replaced. `tycho restart` and the HTTP API set it.
pub const ANNOTATION_RESTARTED_AT: &str = "tycho.dev/restartedAt";
/// The pod template annotation `kubectl rollout restart` sets.
pub const POD_RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// The merge patch that asks for a System's pods to be restarted as of `at` (RFC 3339), as
/// `tycho restart`, the SDK's `Container::restart` and the HTTP API send it.
pub fn restart_patch(at: &str) -> serde_json::Value {
    serde_json::json!({ "metadata": { "annotations": { ANNOTATION_RESTARTED_AT: at } } })
}

/// A whole stack — one or more containers with their files, ports and limits — launched as a unit
/// and, when it names a session, removed when that session ends.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "tycho.dev",
    version = "v1alpha1",
    kind = "System",
    plural = "systems",
    singular = "system",
    shortname = "sys",
    namespaced,
    status = "SystemStatus",
    category = "tycho",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase","description":"Summary of the System's state"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.ready","description":"Ready replicas out of desired"}"#,
    printcolumn = r#"{"name":"Node-Ports","type":"string","jsonPath":".status.nodePorts","description":"Node ports of exposed container ports"}"#,
    printcolumn = r#"{"name":"Session","type":"string","jsonPath":".spec.session","description":"Lease that owns this System"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("self.metadata.name.size() <= 57 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name: must be a DNS-1035 label of at most 57 characters (lowercase letters, digits and '-', starting with a letter), so that every child name fits")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.template) || (has(self.containers) && size(self.containers) >= 1)").message("spec.containers: at least one container is required (or a spec.template that gives them)").field_path(".containers"),
    validation = Rule::new("!has(self.containers) || self.containers.all(c, !has(c.ports) || c.ports.all(p, self.containers.map(d, has(d.ports) ? d.ports.filter(q, q.port == p.port && (has(q.protocol) ? q.protocol : 'TCP') == (has(p.protocol) ? p.protocol : 'TCP')).size() : 0).sum() == 1))").message("spec.containers[].ports: a port and protocol may appear only once in the whole System"),
    validation = Rule::new("!has(self.containers) || self.containers.map(c, has(c.files) ? c.files.map(f, has(f.content) ? f.content.size() : (has(f.binaryContent) ? f.binaryContent.size() * 3 / 4 : 0)).sum() : 0).sum() <= 1000000").message("spec.containers[].files: the total size of all pre-boot files must be at most 1000000 bytes (one ConfigMap)"),
    validation = Rule::new("!has(self.workload) || self.workload != 'Pod' || !has(self.replicas) || self.replicas <= 1").message("spec.replicas: a bare Pod workload runs exactly one replica"),
    validation = Rule::new("!has(self.volumes) || has(self.template) || self.volumes.all(v, !has(v.container) || (has(self.containers) && self.containers.exists(c, c.name == v.container)))").message("spec.volumes[].container: must name a container of this System")
)]
pub struct SystemSpec {
    /// The containers of the stack; they share one pod (network, volumes, lifecycle). At least one,
    /// unless `template` gives them; with a template, a container of the same name changes the
    /// template's container (its own fields win) and others are added.
    #[serde(default)]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub containers: Vec<ContainerSpec>,

    /// Name of a `SystemTemplate` (cluster-scoped, `kubectl get systemtemplates`) this System is made
    /// from: the controller starts from the template's `system`, fills in `parameters`, and lays this
    /// System's own fields over it (a field left at its default takes the template's value). A change
    /// of the template re-renders its Systems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub template: Option<String>,

    /// Values of the template's declared parameters, by name (strings, numbers or booleans, as each
    /// parameter's `type` says). Unknown names and wrong types, and parameters without a `template`, are
    /// refused with a condition and an Event (the values are untyped here, so CEL cannot see them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    #[schemars(schema_with = "parameter_values_schema")]
    pub parameters: BTreeMap<String, serde_json::Value>,

    /// Who the System belongs to (a user name; the HTTP API sets the caller's). Every child object carries
    /// it as the label `tycho.dev/owner` (in a label-safe form) and every container as `TYCHO_OWNER`; a
    /// template's `maxPerOwner` counts by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub owner: Option<String>,

    /// How the stack runs: `Deployment` (default; restarted and rolled out by Kubernetes) or a bare `Pod`
    /// (replaced by Tycho whenever its spec changes).
    #[serde(default)]
    pub workload: Workload,

    /// Number of pod replicas for a `Deployment` workload (0–100, default 1).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,

    /// Scale the stack to zero without deleting anything; set back to `false` to resume.
    #[serde(default)]
    pub paused: bool,

    /// How exposed ports are published: `NodePort` (default when a port is exposed), `ClusterIP` or `None`.
    #[serde(default)]
    pub expose: Expose,

    /// Name of a `coordination.k8s.io/v1` Lease in this namespace that owns the System: when the Lease
    /// stops being renewed or is deleted, the System and everything it created are deleted.
    /// At most 63 characters: it is also the value of the `tycho.dev/session` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub session: Option<String>,

    /// Hard lifetime in seconds after the System's creation, after which it is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 31_536_000))]
    pub lifetime: Option<i64>,

    /// Existing PersistentVolumeClaims mounted into the containers. Tycho never deletes a claim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["claim".into(), "mountPath".into()]))]
    pub volumes: Vec<VolumeSpec>,

    /// Node labels the pods must match to be scheduled (Kubernetes `nodeSelector`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Tolerations of the pods (Kubernetes `tolerations`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub tolerations: Vec<Toleration>,

    /// ServiceAccount the pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: Option<String>,

    /// Pod-level security context (Kubernetes `securityContext` of a PodSpec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,

    /// Labels added to every child object and pod. Keys under `tycho.dev/` and
    /// `app.kubernetes.io/managed-by` / `app.kubernetes.io/name` are reserved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('tycho.dev/') && k != 'app.kubernetes.io/managed-by' && k != 'app.kubernetes.io/name')").message("spec.labels: keys under tycho.dev/ and app.kubernetes.io/managed-by, app.kubernetes.io/name are reserved"))]
    pub labels: BTreeMap<String, String>,

    /// Annotations added to every child object and pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Network isolation: who may reach the System's pods (`isolated`, `allowFrom`) and, with `egress`,
    /// where they may connect to. Enforced by a `networking.k8s.io/v1` NetworkPolicy named like the
    /// System (it needs a network plugin that implements NetworkPolicies). Unset: no NetworkPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,
}

fn default_replicas() -> i32 {
    1
}

/// A map of parameter values: any JSON scalar per name (checked against the template's declared types by
/// the controller, since the template is another object).
fn parameter_values_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": { "x-kubernetes-preserve-unknown-fields": true }
    })
}

/// Any JSON value (a parameter's default or allowed value).
fn any_value_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// A list of any JSON values.
fn any_values_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "maxItems": 64,
        "items": { "x-kubernetes-preserve-unknown-fields": true }
    })
}

/// Annotation on a `SystemTemplate`: the default `lifetime` of Systems made from it, as seconds or a
/// duration (`90m`, `8h`, `2d`); a System's own `lifetime` wins.
pub const ANNOTATION_MAX_AGE: &str = "tycho.dev/max-age";
/// Label on every child of a System with an owner: the owner in a label-safe form.
pub const LABEL_OWNER: &str = "tycho.dev/owner";
/// Environment variable with the System's owner, in every container of a System with an owner.
pub const ENV_OWNER: &str = "TYCHO_OWNER";

/// A stack in the catalog: a System spec with defaults and declared parameters that Systems name in
/// `spec.template` (`tycho run TEMPLATE`, the SDK and the HTTP API take a template name too).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "tycho.dev",
    version = "v1alpha1",
    kind = "SystemTemplate",
    plural = "systemtemplates",
    singular = "systemtemplate",
    shortname = "systpl",
    category = "tycho",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Description","type":"string","jsonPath":".spec.description","description":"What the stack is"}"#,
    printcolumn = r#"{"name":"Max-Per-Owner","type":"integer","jsonPath":".spec.maxPerOwner","description":"Most running Systems per owner"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SystemTemplateSpec {
    /// What the stack is, for catalogs (`kubectl get systemtemplates`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,

    /// Parameters a System may give (`spec.parameters`); `${name}` in any string of `system` is replaced
    /// by the value (given, else the default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub parameters: Vec<TemplateParameter>,

    /// Most Systems made from this template that one owner (`spec.owner`) may run in a namespace; extra
    /// ones are refused (`Ready=False`, reason `QuotaExceeded`, no children) and admitted in creation
    /// order as others go. Unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10_000))]
    pub max_per_owner: Option<i32>,

    /// The System spec that Systems naming this template start from.
    pub system: SystemSpec,
}

/// A declared parameter of a template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TemplateParameter {
    /// Name, as `${name}` in the template's strings and as a key of a System's `spec.parameters`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$")
    )]
    pub name: String,
    /// Type of the value: `string` (default), `integer`, `number` or `boolean`.
    #[serde(default, rename = "type")]
    pub kind: ParameterType,
    /// What it means, for catalogs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Value when a System gives none. A parameter without a default must be given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value_schema")]
    pub default: Option<serde_json::Value>,
    /// The only values allowed (any, when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "any_values_schema")]
    pub allowed: Vec<serde_json::Value>,
}

/// Type of a template parameter.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParameterType {
    /// Any text.
    #[default]
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// `true` or `false`.
    Boolean,
}

/// Network isolation of a System.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// Accept traffic only from the System's own pods, from the peers of `allowFrom` (all ports) and,
    /// when the System is exposed (`expose` not `None`), to its exposed ports from anywhere. Default
    /// false: any pod may connect.
    #[serde(default)]
    pub isolated: bool,

    /// Peers allowed in (on every port) when `isolated` is true; each names exactly one of
    /// `namespace`, `namespaceSelector` or `cidr`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub allow_from: Vec<NetworkPeer>,

    /// Restrict outgoing traffic to these destinations (and DNS, unless `allowDNS` is false). Unset:
    /// outgoing traffic is unrestricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressSpec>,
}

/// A peer that may connect to a System: exactly one of `namespace`, `namespaceSelector` or `cidr`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.__namespace__) ? 1 : 0) + (has(self.namespaceSelector) ? 1 : 0) + (has(self.cidr) ? 1 : 0) == 1").message("exactly one of namespace, namespaceSelector and cidr must be set"),
    validation = Rule::new("!has(self.cidr) || isCIDR(self.cidr)").message("cidr: must be an IPv4 or IPv6 CIDR such as 10.0.0.0/8 or 2001:db8::/32").field_path(".cidr"),
    validation = Rule::new("!has(self.except) || (has(self.cidr) && isCIDR(self.cidr) && self.except.all(e, isCIDR(e) && cidr(self.cidr).containsCIDR(e)))").message("except: only with cidr, and each must be a CIDR inside it")
)]
pub struct NetworkPeer {
    /// All pods of the namespace of this name (matched by its `kubernetes.io/metadata.name` label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,
    /// All pods of the namespaces carrying these labels (`matchLabels`; `{}` is every namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 32))]
    pub namespace_selector: Option<BTreeMap<String, String>>,
    /// An IP block, IPv4 or IPv6 (`10.0.0.0/8`, `2001:db8::/32`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub cidr: Option<String>,
    /// Blocks inside `cidr` that are not allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 64)))]
    pub except: Vec<String>,
}

/// Where a System's pods may connect to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressSpec {
    /// Destinations allowed (with `ports`, only those); empty: none but DNS and the System's own pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub to: Vec<EgressPeer>,
    /// Allow DNS (UDP and TCP port 53) to any namespace, so names still resolve (default true).
    #[serde(default = "default_true", rename = "allowDNS")]
    pub allow_dns: bool,
}

impl Default for EgressSpec {
    fn default() -> Self {
        EgressSpec {
            to: Vec::new(),
            allow_dns: true,
        }
    }
}

/// A destination of outgoing traffic: exactly one of `namespace`, `namespaceSelector` or `cidr`,
/// optionally only on `ports`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.__namespace__) ? 1 : 0) + (has(self.namespaceSelector) ? 1 : 0) + (has(self.cidr) ? 1 : 0) == 1").message("exactly one of namespace, namespaceSelector and cidr must be set"),
    validation = Rule::new("!has(self.cidr) || isCIDR(self.cidr)").message("cidr: must be an IPv4 or IPv6 CIDR such as 10.0.0.0/8 or 2001:db8::/32").field_path(".cidr"),
    validation = Rule::new("!has(self.except) || (has(self.cidr) && isCIDR(self.cidr) && self.except.all(e, isCIDR(e) && cidr(self.cidr).containsCIDR(e)))").message("except: only with cidr, and each must be a CIDR inside it")
)]
pub struct EgressPeer {
    /// All pods of the namespace of this name (matched by its `kubernetes.io/metadata.name` label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,
    /// All pods of the namespaces carrying these labels (`matchLabels`; `{}` is every namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 32))]
    pub namespace_selector: Option<BTreeMap<String, String>>,
    /// An IP block, IPv4 or IPv6 (`10.0.0.0/8`, `2001:db8::/32`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub cidr: Option<String>,
    /// Blocks inside `cidr` that are not allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 64)))]
    pub except: Vec<String>,
    /// Only these destination ports (all ports when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub ports: Vec<NetworkPort>,
}

impl EgressPeer {
    /// The peer without its ports.
    pub fn peer(&self) -> NetworkPeer {
        NetworkPeer {
            namespace: self.namespace.clone(),
            namespace_selector: self.namespace_selector.clone(),
            cidr: self.cidr.clone(),
            except: self.except.clone(),
        }
    }
}

/// A destination port.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPort {
    /// Port number (1–65535).
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Protocol: `TCP` (default), `UDP` or `SCTP`.
    #[serde(default)]
    #[schemars(transform = no_schema_default)]
    pub protocol: Protocol,
}

/// Leave the `default` out of a field's schema (Tycho still fills it in). A default inside a list the API
/// server treats as atomic (`egress.to[].ports`) makes the stored list differ from the manifest, so a
/// server-side apply of an unchanged manifest conflicts with the list's other field manager (kube-apiserver
/// 1.37: `kubectl apply --server-side` after a client-side `kubectl apply` of examples/isolated.yaml).
fn no_schema_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

/// The kind of workload that runs the System's pod.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Workload {
    /// A Deployment (restarts, rollouts, replicas).
    #[default]
    Deployment,
    /// A single bare Pod.
    Pod,
}

/// How exposed ports are published.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Expose {
    /// A NodePort Service: reachable on every node's address.
    #[default]
    NodePort,
    /// A ClusterIP Service: reachable inside the cluster only.
    ClusterIP,
    /// No Service at all.
    None,
}

/// One container of a System.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.ports) || self.ports.all(p, !has(p.name) || self.ports.exists_one(q, has(q.name) && q.name == p.name))").message("ports[].name: port names must be unique within a container"),
    validation = Rule::new("!has(self.readiness) || !has(self.readiness.http) || (has(self.ports) && self.ports.exists(p, p.port == self.readiness.http.port))").message("readiness.http.port: must be one of the container's ports"),
    validation = Rule::new("!has(self.limits) || !has(self.requests) || ((!has(self.limits.cpus) || !has(self.requests.cpus) || quantity(self.limits.cpus).compareTo(quantity(self.requests.cpus)) >= 0) && (!has(self.limits.memory) || !has(self.requests.memory) || quantity(self.limits.memory).compareTo(quantity(self.requests.memory)) >= 0) && (!has(self.limits.ephemeralStorage) || !has(self.requests.ephemeralStorage) || quantity(self.limits.ephemeralStorage).compareTo(quantity(self.requests.ephemeralStorage)) >= 0) && (!has(self.limits.gpus) || !has(self.requests.gpus) || self.limits.gpus >= self.requests.gpus))").message("limits: every limit must be at least the matching request")
)]
pub struct ContainerSpec {
    /// Name of the container, unique in the System (a DNS label).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Container image reference, e.g. `nginx:1.27` or `jupyter/base-notebook`.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,

    /// Entrypoint override (the image's ENTRYPOINT when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub command: Vec<String>,

    /// Arguments to the entrypoint (the image's CMD when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub args: Vec<String>,

    /// Environment variables: literal values or references to Secret / ConfigMap keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub env: Vec<EnvVar>,

    /// Working directory of the container's process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096), regex(pattern = r"^/"))]
    pub working_dir: Option<String>,

    /// Ports the container listens on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["port".into(), "protocol".into()]))]
    pub ports: Vec<PortSpec>,

    /// Resource limits (the most the container may use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Resources>,

    /// Resource requests (what the scheduler reserves for the container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<Resources>,

    /// Files written into the container before its process starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["path".into()]))]
    pub files: Vec<FileSpec>,

    /// Start the container with an idle process instead of its own, so processes can be started in it later.
    #[serde(default)]
    pub sleep: bool,

    /// How Kubernetes decides the container is ready to serve (an HTTP GET or a TCP connect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Readiness>,
}

/// An environment variable.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)").message("env[]: exactly one of value and valueFrom must be set"))]
pub struct EnvVar {
    /// Variable name.
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    )]
    pub name: String,
    /// Literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub value: Option<String>,
    /// Take the value from a key of a Secret or ConfigMap in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvSource>,
}

/// Where an environment variable's value comes from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretKeyRef) != has(self.configMapKeyRef)").message("valueFrom: exactly one of secretKeyRef and configMapKeyRef must be set"))]
pub struct EnvSource {
    /// A key of a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyRef>,
    /// A key of a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
}

/// A key of a Secret or ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    /// Name of the Secret or ConfigMap.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within it.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
    /// Start the container even if the object or key is missing.
    #[serde(default)]
    pub optional: bool,
}

/// A port a container listens on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortSpec {
    /// Port number (1–65535).
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Optional name (an IANA service name: at most 15 lowercase letters, digits and '-').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 15),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: Option<String>,
    /// Protocol: `TCP` (default), `UDP` or `SCTP`.
    #[serde(default)]
    pub protocol: Protocol,
    /// Whether the port is published through the System's Service (default true).
    #[serde(default = "default_true")]
    pub expose: bool,
    /// A fixed node port (30000–32767); allocated by Kubernetes when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port: Option<i32>,
}

fn default_true() -> bool {
    true
}

/// A network protocol.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Protocol {
    /// TCP.
    #[default]
    TCP,
    /// UDP.
    UDP,
    /// SCTP.
    SCTP,
}

impl Protocol {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::TCP => "TCP",
            Protocol::UDP => "UDP",
            Protocol::SCTP => "SCTP",
        }
    }
}

/// Amounts of compute resources, as Kubernetes quantities.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// CPUs, e.g. `500m` or `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 32),
        regex(pattern = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|[kMGTPE]i?|e[0-9]+)?$")
    )]
    pub cpus: Option<String>,
    /// Memory, e.g. `512Mi` or `2Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 32),
        regex(pattern = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|[kMGTPE]i?|e[0-9]+)?$")
    )]
    pub memory: Option<String>,
    /// Whole GPUs, mapped to the extended resource the operator is configured with (default `nvidia.com/gpu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 64))]
    pub gpus: Option<i32>,
    /// Ephemeral (scratch) storage, e.g. `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 32),
        regex(pattern = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|[kMGTPE]i?|e[0-9]+)?$")
    )]
    pub ephemeral_storage: Option<String>,
}

/// A file written into the container before its process starts.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.content) != has(self.binaryContent)").message("files[]: exactly one of content and binaryContent must be set"),
    validation = Rule::new("!self.path.endsWith('/') && !self.path.contains('/../') && !self.path.endsWith('/..') && !self.path.contains('//')").message("files[].path: must be a clean absolute file path (no '..', '//' or trailing '/')")
)]
pub struct FileSpec {
    /// Absolute path of the file inside the container.
    #[schemars(length(min = 2, max = 4096), regex(pattern = r"^/[^\x00]*$"))]
    pub path: String,
    /// Text content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000000))]
    pub content: Option<String>,
    /// Binary content, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1333336), regex(pattern = r"^[A-Za-z0-9+/]*={0,2}$"))]
    pub binary_content: Option<String>,
    /// File mode bits, e.g. 420 (0644) or 493 (0755); default 0644.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 511))]
    pub mode: Option<i32>,
}

/// A readiness check: exactly one of `http` and `tcp`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.http) != has(self.tcp)").message("readiness: exactly one of http and tcp must be set"))]
pub struct Readiness {
    /// Ready when an HTTP GET answers 2xx or 3xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    /// Ready when a TCP connection succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
}

/// An HTTP readiness check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpCheck {
    /// Request path (default `/`).
    #[serde(default = "default_path")]
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^/"))]
    pub path: String,
    /// Port to probe; one of the container's ports.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Host header to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub host: Option<String>,
}

fn default_path() -> String {
    "/".to_string()
}

/// A TCP readiness check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpCheck {
    /// Port to connect to.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

/// A mount of an existing PersistentVolumeClaim.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSpec {
    /// Name of the PersistentVolumeClaim in this namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub claim: String,
    /// Absolute path where the claim is mounted.
    #[schemars(length(min = 2, max = 4096), regex(pattern = r"^/"))]
    pub mount_path: String,
    /// Sub-path of the volume to mount instead of its root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096), regex(pattern = r"^[^/]"))]
    pub sub_path: Option<String>,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Mount into this container only (all containers when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub container: Option<String>,
}

/// Observed state of a System, written by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemStatus {
    /// One-word summary: Pending, Progressing, Ready, Degraded, Failed or Expiring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Detailed conditions (Ready, Progressing, Degraded, SessionValid), Kubernetes-style.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the exposed ports can be reached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// Pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods wanted (0 when paused).
    #[serde(default)]
    pub replicas: i32,
    /// `ready/desired`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// Comma-separated node ports, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_ports: Option<String>,
    /// The template the System was made from, as `name@resourceVersion` of the version last rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// When the System will be collected (session expiry or lifetime), as last observed; RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// Summary phase of a System.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Accepted; nothing running yet (or waiting for its session).
    Pending,
    /// Children applied; pods are starting or rolling out.
    Progressing,
    /// Every wanted pod is ready.
    Ready,
    /// Was ready, or should be, but some pods are not.
    Degraded,
    /// The spec cannot be run as written (see the conditions).
    Failed,
    /// Its session or lifetime ended; it is being deleted.
    Expiring,
}

impl Phase {
    /// The spelling used in status and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Progressing => "Progressing",
            Phase::Ready => "Ready",
            Phase::Degraded => "Degraded",
            Phase::Failed => "Failed",
            Phase::Expiring => "Expiring",
        }
    }
}

/// One reachable port of the System.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Container that listens.
    pub container: String,
    /// Container port.
    pub port: i32,
    /// Protocol of the port.
    pub protocol: String,
    /// Service that publishes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Node port, when published as NodePort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i32>,
    /// A URL to reach it, when a node reports an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl System {
    /// The System's namespace ("default" when unset, as the API server would assign).
    pub fn namespace_or_default(&self) -> String {
        self.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string())
    }

    /// The System's name (empty when unset, which validation rejects).
    pub fn name_or_empty(&self) -> String {
        self.metadata.name.clone().unwrap_or_default()
    }
}

/// The CRD of [`System`] as YAML, exactly as committed under `crds/`.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    use kube::CustomResourceExt;
    let body = serde_saphyr::to_string(&System::crd())?;
    Ok(format!(
        "# Generated by `tycho crd system` from crates/model/src/lib.rs. Do not edit by hand.\n---\n{body}"
    ))
}

/// The CRD of [`SystemTemplate`] as YAML, exactly as committed under `crds/`.
pub fn template_crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    use kube::CustomResourceExt;
    let body = serde_saphyr::to_string(&SystemTemplate::crd())?;
    Ok(format!(
        "# Generated by `tycho crd systemtemplate` from crates/model/src/lib.rs. Do not edit by hand.\n---\n{body}"
    ))
}

/// Container name for an image: its last path segment without tag or digest, as a DNS label
/// (`docker.io/library/nginx:1.27` → `nginx`; `main` when nothing is left).
pub fn container_name_for_image(image: &str) -> String {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    let short = last.split(':').next().unwrap_or(last);
    let s = dns_chars(short);
    let s = s.get(..63).unwrap_or(&s).trim_end_matches('-').to_string();
    if s.is_empty() { "main".into() } else { s }
}

/// A System name prefix made from any text (a name or an image's short name): lowercase letters,
/// digits and '-', starting with a letter, at most 40 characters, so a generated suffix still fits.
pub fn system_name_prefix(base: &str) -> String {
    let mut s = dns_chars(base);
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s = format!("c-{s}");
    }
    s.truncate(40);
    s.trim_end_matches('-').to_string()
}

/// A label value for a user name: characters outside `[A-Za-z0-9._-]` become `.`, at most 63
/// characters, starting and ending alphanumeric (`system:serviceaccount:a:b` → `system.serviceaccount.a.b`).
pub fn owner_label(user: &str) -> String {
    let s: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '.'
            }
        })
        .collect();
    let s = s.get(..63).unwrap_or(&s);
    s.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

fn dns_chars(text: &str) -> String {
    let s: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.trim_matches('-').to_string()
}

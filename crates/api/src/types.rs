//! What the API takes and gives. The OpenAPI document is generated from these types; the System's
//! `spec` and `status` schemas are the CRD's own, generated from `tycho_model`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Identity;

/// The System's `spec` in the OpenAPI document: a component named `SystemSpec` that
/// [`crate::openapi::document`] fills with the System CRD's own `spec` schema.
pub struct SystemSpecDoc;

/// The System's `status` in the OpenAPI document: a component named `SystemStatus` that
/// [`crate::openapi::document`] fills with the System CRD's own `status` schema.
pub struct SystemStatusDoc;

macro_rules! crd_component {
    ($ty:ty, $name:literal) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new().into()
            }
        }
        impl ToSchema for $ty {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }
        }
    };
}
crd_component!(SystemSpecDoc, "SystemSpec");
crd_component!(SystemStatusDoc, "SystemStatus");

/// A System: its identity, spec and status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemView {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Unique id Kubernetes gave it.
    pub uid: String,
    /// Version of the object, changes with every write.
    pub resource_version: String,
    /// When it was created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who it belongs to (`spec.owner`; the API sets the caller's identity on create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Whether it is being deleted.
    pub deleting: bool,
    /// Whether every wanted pod is ready (the `Ready` condition is `True` for the current spec).
    pub ready: bool,
    /// The System's spec, as stored.
    #[schema(value_type = SystemSpecDoc)]
    pub spec: serde_json::Value,
    /// The System's status, as the controller last wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<SystemStatusDoc>)]
    pub status: Option<serde_json::Value>,
}

/// A list of Systems.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SystemList {
    /// The Systems, by name.
    pub items: Vec<SystemView>,
}

/// Resources of a container in the short form.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShortResources {
    /// CPUs, as a Kubernetes quantity (`500m`, `2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    /// Memory, as a Kubernetes quantity (`512Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// GPUs (`nvidia.com/gpu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<i32>,
}

/// Hold a new session on the caller's behalf or let the caller renew it.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Hold {
    /// The caller renews it (`POST …/sessions/{name}/renew`) within every `durationSeconds`.
    #[default]
    Caller,
    /// This API renews it until it is closed; it ends when the API stops.
    Api,
}

/// A session to open.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenSession {
    /// Seconds without renewal after which the session ends and everything it owns is deleted
    /// (10 to 86400; default 60).
    #[serde(default = "default_duration")]
    #[schema(minimum = 10, maximum = 86400, default = 60)]
    pub duration_seconds: i64,
    /// Who renews it (default `caller`).
    #[serde(default)]
    pub hold: Hold,
}

fn default_duration() -> i64 {
    60
}

impl Default for OpenSession {
    fn default() -> Self {
        OpenSession {
            duration_seconds: default_duration(),
            hold: Hold::Caller,
        }
    }
}

/// A System to create: either `spec` (a whole System spec, as `kubectl apply` takes it) or the short
/// form (`image` and the fields beside it), not both.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSystem {
    /// Name (a DNS-1035 label of at most 57 characters); generated from the image when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels of the System.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// A whole System spec (the full form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<SystemSpecDoc>)]
    pub spec: Option<serde_json::Value>,
    /// Image of the one container (the short form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Ports the container listens on; exposed as node ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<u16>)]
    pub ports: Vec<u16>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Files written into the container before it starts: absolute path → text content.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// Command (replaces the image's entrypoint).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Resource limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ShortResources>,
    /// Number of pods (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 100)]
    pub replicas: Option<i32>,
    /// An open session (Lease name) that owns the System: it is deleted when the session ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Open a new session for this System (instead of `session`); it is removed again if the System
    /// cannot be created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_session: Option<OpenSession>,
}

/// A System and the session opened for it, when one was.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    /// The System.
    pub system: SystemView,
    /// The session opened with it (`newSession`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionView>,
}

/// Fields to change. Only those given change (a server-side apply of just them); the rest stays.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeSystem {
    /// Number of pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 100)]
    pub replicas: Option<i32>,
    /// Scale to zero (true) or back (false), keeping everything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// The container the fields below apply to (default: the only one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// New image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Environment variables to set (others are kept).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Resource limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ShortResources>,
    /// Resource requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ShortResources>,
}

/// Filters of a System list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// A Kubernetes label selector (`app=web,tier!=db`).
    pub label: Option<String>,
    /// Only Systems created through this API by this user (`me` for the caller).
    pub owner: Option<String>,
    /// Only Systems owned by this session.
    pub session: Option<String>,
}

/// Options of a System get.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetQuery {
    /// `ready`: answer once the System is ready, or when `timeout` passes (then `ready` is false).
    pub wait: Option<WaitFor>,
    /// Seconds to wait (1 to 300; default 60).
    #[param(minimum = 1, maximum = 300)]
    pub timeout: Option<u64>,
}

/// What a get can wait for.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WaitFor {
    /// The `Ready` condition.
    Ready,
}

/// Options of a log request.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct LogQuery {
    /// Container (default: the System's first).
    pub container: Option<String>,
    /// Keep the stream open and send new lines as they come.
    pub follow: Option<bool>,
    /// Only the last N lines.
    #[param(minimum = 0)]
    pub tail_lines: Option<i64>,
}

/// Options of a System watch.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WatchQuery {
    /// Only this System.
    pub name: Option<String>,
    /// A Kubernetes label selector.
    pub label: Option<String>,
}

/// A session: a Lease that owns Systems; when it is not renewed in time, or closed, they go.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// Lease name (what a System's `spec.session` names).
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Who holds it (`holderIdentity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// Seconds without renewal before it ends.
    pub duration_seconds: i64,
    /// Last renewal (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed: Option<String>,
    /// When it ends unless renewed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Whether this API renews it.
    pub held_by_api: bool,
}

/// A list of sessions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    /// The sessions.
    pub items: Vec<SessionView>,
}

/// What a delete or close started.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// Kind of the object (`System`, `Session`).
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// What happens now.
    pub message: String,
}

/// The data of a `synced` event of a System watch: the Systems there were are all sent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Synced {
    /// Always true.
    pub synced: bool,
}

/// The data of one event of a System watch: a System (`system`, `deleted`), the end of the first
/// batch (`synced`), or why the stream stops (`problem`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum WatchEvent {
    /// A System as it is now (`system`) or was when deleted (`deleted`).
    System(Box<SystemView>),
    /// Every System there was is sent (`synced`).
    Synced(Synced),
    /// The stream cannot go on (`problem`).
    Problem(crate::error::Problem),
}

/// The kinds of watch events.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WatchKind {
    /// A System as it is now.
    System,
    /// A System that was deleted, as it was.
    Deleted,
    /// Every System there was is sent.
    Synced,
    /// The stream stops; `data` is a problem document.
    Problem,
}

/// One server-sent event of a System watch (`event:` and `data:` lines; `data` is the JSON of a
/// [`WatchEvent`]).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WatchSse {
    /// What happened.
    pub event: WatchKind,
    /// JSON of a WatchEvent.
    pub data: String,
}

/// The caller.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// Identity the API server gave the token.
    pub identity: Identity,
}

//! Pure translations between the API's types and Kubernetes objects: a create request → a System,
//! a change request → the apply patch of just those fields, a System → its view. No I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::Lease;
use serde_json::{Value, json};
use tycho_model::{self as model, GROUP, LABEL_MANAGED_BY, MANAGED_BY, System, VERSION};

use crate::error::ApiError;
use crate::types::{ChangeSystem, CreateSystem, SessionView, ShortResources, SystemView};

/// Label of a System created through the API: a label-safe form of `spec.owner`, for selecting by owner.
pub const LABEL_OWNER: &str = tycho_model::LABEL_OWNER;
/// Field manager of every write this API makes.
pub const FIELD_MANAGER: &str = "tycho-api";

pub use tycho_model::owner_label;

fn resources(r: &ShortResources) -> Value {
    let mut m = serde_json::Map::new();
    if let Some(c) = &r.cpus {
        m.insert("cpus".into(), json!(c));
    }
    if let Some(c) = &r.memory {
        m.insert("memory".into(), json!(c));
    }
    if let Some(g) = r.gpus {
        m.insert("gpus".into(), json!(g));
    }
    Value::Object(m)
}

/// The System object to create for `req` in `namespace` on behalf of `owner`; `session` is the
/// session it joins (given or newly opened). Errors name the field at fault.
pub fn system_for(
    req: &CreateSystem,
    namespace: &str,
    owner: &str,
    session: Option<&str>,
) -> Result<Value, ApiError> {
    if req.session.is_some() && req.new_session.is_some() {
        return Err(ApiError::unprocessable(
            "newSession",
            "give either session (an open session) or newSession, not both",
        ));
    }
    let mut spec = match (&req.spec, &req.image) {
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "image",
                "give either spec (the full form) or image (the short form), not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::unprocessable(
                "image",
                "an image (the short form) or a whole spec (the full form) is required",
            ));
        }
        (Some(spec), None) => {
            let short_fields = [
                ("ports", !req.ports.is_empty()),
                ("env", !req.env.is_empty()),
                ("files", !req.files.is_empty()),
                ("command", !req.command.is_empty()),
                ("args", !req.args.is_empty()),
                ("limits", req.limits.is_some()),
                ("replicas", req.replicas.is_some()),
            ];
            if let Some((field, _)) = short_fields.iter().find(|(_, set)| *set) {
                return Err(ApiError::unprocessable(
                    *field,
                    format!("{field} belongs to the short form; with a whole spec, put it in spec"),
                ));
            }
            if !spec.is_object() {
                return Err(ApiError::unprocessable("spec", "spec must be an object"));
            }
            spec.clone()
        }
        (None, Some(image)) => short_spec(req, image)?,
    };
    if let Some(obj) = spec.as_object_mut() {
        if let Some(s) = session {
            obj.insert("session".into(), json!(s));
        }
        // The caller's identity, whatever the body said: the API does not create for someone else.
        obj.insert("owner".into(), json!(owner));
    }
    let mut labels: BTreeMap<String, String> = req.labels.clone();
    labels.insert(LABEL_OWNER.into(), owner_label(owner));
    let mut metadata = json!({
        "namespace": namespace,
        "labels": labels,
    });
    match &req.name {
        Some(name) => metadata["name"] = json!(name),
        None => {
            let base = req
                .image
                .as_deref()
                .map(model::container_name_for_image)
                .unwrap_or_else(|| "system".into());
            metadata["generateName"] = json!(format!("{}-", model::system_name_prefix(&base)));
        }
    }
    Ok(json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "System",
        "metadata": metadata,
        "spec": spec,
    }))
}

fn short_spec(req: &CreateSystem, image: &str) -> Result<Value, ApiError> {
    if image.trim().is_empty() {
        return Err(ApiError::unprocessable("image", "the image is empty"));
    }
    if let Some(path) = req.files.keys().find(|p| !p.starts_with('/')) {
        return Err(ApiError::unprocessable(
            format!("files[{path}]"),
            format!("file path {path:?} must be absolute"),
        ));
    }
    if let Some(p) = req.ports.iter().find(|p| **p == 0) {
        return Err(ApiError::unprocessable(
            "ports",
            format!("port {p} is not a port (1 to 65535)"),
        ));
    }
    let mut container = json!({
        "name": model::container_name_for_image(image),
        "image": image,
    });
    if !req.command.is_empty() {
        container["command"] = json!(req.command);
    }
    if !req.args.is_empty() {
        container["args"] = json!(req.args);
    }
    if !req.env.is_empty() {
        container["env"] = req
            .env
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
    }
    if !req.ports.is_empty() {
        let mut ports = req.ports.clone();
        ports.sort_unstable();
        ports.dedup();
        container["ports"] = ports
            .iter()
            .map(|p| json!({"port": p, "expose": true}))
            .collect();
    }
    if !req.files.is_empty() {
        container["files"] = req
            .files
            .iter()
            .map(|(path, content)| json!({"path": path, "content": content}))
            .collect();
    }
    if let Some(l) = &req.limits {
        container["limits"] = resources(l);
    }
    let mut spec = json!({ "containers": [container] });
    if let Some(r) = req.replicas {
        spec["replicas"] = json!(r);
    }
    if req.ports.is_empty() {
        spec["expose"] = json!("None");
    }
    Ok(spec)
}

/// The server-side apply body that changes only the fields `req` gives, for a System whose
/// containers are `containers` (names in order).
pub fn change_patch(
    req: &ChangeSystem,
    name: &str,
    containers: &[String],
) -> Result<Value, ApiError> {
    let mut spec = serde_json::Map::new();
    if let Some(r) = req.replicas {
        if !(0..=100).contains(&r) {
            return Err(ApiError::unprocessable(
                "replicas",
                "replicas must be 0 to 100",
            ));
        }
        spec.insert("replicas".into(), json!(r));
    }
    if let Some(p) = req.paused {
        spec.insert("paused".into(), json!(p));
    }
    let touches_container = req.image.is_some()
        || !req.env.is_empty()
        || req.limits.is_some()
        || req.requests.is_some();
    if touches_container {
        let target = match &req.container {
            Some(c) if containers.iter().any(|n| n == c) => c.clone(),
            Some(c) => {
                return Err(ApiError::unprocessable(
                    "container",
                    format!(
                        "System {name} has no container {c:?} (it has {})",
                        containers.join(", ")
                    ),
                ));
            }
            None if containers.len() == 1 => containers[0].clone(),
            None => {
                return Err(ApiError::unprocessable(
                    "container",
                    format!(
                        "System {name} has {} containers ({}); say which one to change",
                        containers.len(),
                        containers.join(", ")
                    ),
                ));
            }
        };
        let mut c = json!({ "name": target });
        if let Some(image) = &req.image {
            if image.trim().is_empty() {
                return Err(ApiError::unprocessable("image", "the image is empty"));
            }
            c["image"] = json!(image);
        }
        if !req.env.is_empty() {
            c["env"] = req
                .env
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
        }
        if let Some(l) = &req.limits {
            c["limits"] = resources(l);
        }
        if let Some(r) = &req.requests {
            c["requests"] = resources(r);
        }
        spec.insert("containers".into(), json!([c]));
    } else if req.container.is_some() {
        return Err(ApiError::unprocessable(
            "container",
            "container names which container image, env, limits or requests change; none was given",
        ));
    }
    if spec.is_empty() {
        return Err(ApiError::unprocessable(
            "replicas",
            "nothing to change: give replicas, paused, image, env, limits or requests",
        ));
    }
    Ok(json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "System",
        "metadata": { "name": name },
        "spec": spec,
    }))
}

/// Whether a System's `Ready` condition is true for its current generation.
pub fn is_ready(sys: &System) -> bool {
    let Some(status) = &sys.status else {
        return false;
    };
    let current = match (status.observed_generation, sys.metadata.generation) {
        (Some(o), Some(g)) => o >= g,
        _ => true,
    };
    current
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The API's view of a System.
pub fn view(sys: &System) -> SystemView {
    let m = &sys.metadata;
    SystemView {
        name: m.name.clone().unwrap_or_default(),
        namespace: m.namespace.clone().unwrap_or_default(),
        uid: m.uid.clone().unwrap_or_default(),
        resource_version: m.resource_version.clone().unwrap_or_default(),
        created: m.creation_timestamp.as_ref().map(|t| t.0.to_string()),
        owner: sys.spec.owner.clone(),
        labels: m.labels.clone().unwrap_or_default(),
        deleting: m.deletion_timestamp.is_some(),
        ready: is_ready(sys),
        spec: serde_json::to_value(&sys.spec).unwrap_or(Value::Null),
        status: sys
            .status
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok()),
    }
}

/// The API's view of a session Lease; `held` says whether this API renews it.
pub fn session_view(lease: &Lease, held: bool) -> SessionView {
    let spec = lease.spec.clone().unwrap_or_default();
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref());
    let expires = renewed.and_then(|t| {
        t.0.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(duration))
            .ok()
            .map(|e| e.to_string())
    });
    SessionView {
        name: lease.metadata.name.clone().unwrap_or_default(),
        namespace: lease.metadata.namespace.clone().unwrap_or_default(),
        holder: spec.holder_identity,
        duration_seconds: duration,
        renewed: renewed.map(|t| t.0.to_string()),
        expires,
        held_by_api: held,
    }
}

/// The Lease of a new session held by `holder`.
pub fn session_lease(
    namespace: &str,
    holder: &str,
    duration_seconds: i64,
) -> Result<Lease, ApiError> {
    if !(10..=86_400).contains(&duration_seconds) {
        return Err(ApiError::unprocessable(
            "durationSeconds",
            "durationSeconds must be 10 to 86400",
        ));
    }
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    );
    let secs = i32::try_from(duration_seconds).unwrap_or(i32::MAX);
    Ok(Lease {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            generate_name: Some("tycho-session-".into()),
            namespace: Some(namespace.into()),
            labels: Some([(LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string())].into()),
            ..Default::default()
        },
        spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(secs),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..Default::default()
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::OpenSession;

    fn short(image: &str) -> CreateSystem {
        CreateSystem {
            image: Some(image.into()),
            ..CreateSystem::default()
        }
    }

    #[test]
    fn owner_labels_are_label_safe() {
        // (tycho_model::owner_label, re-exported)
        assert_eq!(
            owner_label("system:serviceaccount:team-a:alice"),
            "system.serviceaccount.team-a.alice"
        );
        assert_eq!(owner_label("alice@example.com"), "alice.example.com");
        assert_eq!(owner_label(":x:"), "x");
        assert_eq!(owner_label(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn the_short_form_becomes_one_exposed_container() {
        let mut req = short("docker.io/library/nginx:1.27");
        req.ports = vec![80, 80, 443];
        req.env = [("A".into(), "1".into())].into();
        req.files = [("/etc/x".into(), "hi".into())].into();
        req.limits = Some(ShortResources {
            cpus: Some("1".into()),
            ..ShortResources::default()
        });
        let sys = system_for(&req, "ns", "alice", Some("lease-1")).unwrap();
        assert_eq!(sys["metadata"]["generateName"], "nginx-");
        assert_eq!(sys["spec"]["owner"], "alice");
        assert_eq!(sys["metadata"]["labels"][LABEL_OWNER], "alice");
        let c = &sys["spec"]["containers"][0];
        assert_eq!(c["name"], "nginx");
        assert_eq!(c["ports"].as_array().unwrap().len(), 2);
        assert_eq!(c["env"][0]["name"], "A");
        assert_eq!(c["files"][0]["path"], "/etc/x");
        assert_eq!(c["limits"]["cpus"], "1");
        assert_eq!(sys["spec"]["session"], "lease-1");
        assert!(sys["spec"].get("expose").is_none());
        // It is a valid System.
        let parsed: System = serde_json::from_value(sys).unwrap();
        assert_eq!(
            parsed.spec.containers[0].image,
            "docker.io/library/nginx:1.27"
        );
    }

    #[test]
    fn bad_create_requests_name_the_field() {
        let field = |e: ApiError| e.problem().field.unwrap_or_default();
        let none = CreateSystem::default();
        assert_eq!(
            field(system_for(&none, "ns", "u", None).unwrap_err()),
            "image"
        );
        let mut both = short("nginx");
        both.spec = Some(json!({"containers": []}));
        assert_eq!(
            field(system_for(&both, "ns", "u", None).unwrap_err()),
            "image"
        );
        let mut mixed = CreateSystem {
            spec: Some(json!({"containers": []})),
            ..CreateSystem::default()
        };
        mixed.ports = vec![80];
        assert_eq!(
            field(system_for(&mixed, "ns", "u", None).unwrap_err()),
            "ports"
        );
        let mut two_sessions = short("nginx");
        two_sessions.session = Some("s".into());
        two_sessions.new_session = Some(OpenSession::default());
        assert_eq!(
            field(system_for(&two_sessions, "ns", "u", None).unwrap_err()),
            "newSession"
        );
        let mut rel = short("nginx");
        rel.files = [("etc/x".into(), String::new())].into();
        assert_eq!(
            field(system_for(&rel, "ns", "u", None).unwrap_err()),
            "files[etc/x]"
        );
    }

    #[test]
    fn a_change_applies_only_the_given_fields() {
        let req = ChangeSystem {
            image: Some("nginx:1.28".into()),
            env: [("B".into(), "2".into())].into(),
            ..ChangeSystem::default()
        };
        let p = change_patch(&req, "web", &["nginx".into()]).unwrap();
        assert_eq!(
            p["spec"],
            json!({"containers": [{"name": "nginx", "image": "nginx:1.28", "env": [{"name": "B", "value": "2"}]}]})
        );
        let scale = ChangeSystem {
            replicas: Some(3),
            ..ChangeSystem::default()
        };
        assert_eq!(
            change_patch(&scale, "web", &[]).unwrap()["spec"],
            json!({"replicas": 3})
        );
    }

    #[test]
    fn an_ambiguous_or_empty_change_is_refused() {
        let img = ChangeSystem {
            image: Some("x".into()),
            ..ChangeSystem::default()
        };
        let two = ["a".to_string(), "b".to_string()];
        let e = change_patch(&img, "web", &two).unwrap_err();
        assert_eq!(e.problem().field.as_deref(), Some("container"));
        let e = change_patch(&ChangeSystem::default(), "web", &two).unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn a_session_view_says_when_it_expires() {
        let lease = session_lease("ns", "alice", 60).unwrap();
        let v = session_view(&lease, true);
        assert_eq!(v.duration_seconds, 60);
        assert!(v.held_by_api);
        assert!(v.expires.unwrap() > v.renewed.unwrap());
        assert!(session_lease("ns", "alice", 5).is_err());
    }
}

//! The tests' fixtures: the repository's System files ([`yaml_files`], [`good_system_files`]), and Systems
//! from one builder — [`system`]`(name)` and the fields a test cares about, the spec written as a user writes
//! it (JSON, so that unset fields take the defaults the API server's users get: one replica, a Deployment,
//! exposed ports), then [`SystemBuilder::build`]:
//!
//! ```ignore
//! let s = system("web")
//!     .container(json!({ "name": "web", "image": "nginx:1.27" }))
//!     .session("my-lease")
//!     .build();
//! ```
//!
//! Shared by `common` (`mod fixtures;`, re-exported as `common::system` etc.) and, by path, the tests that
//! do not include `common` (`#[path = "common/fixtures.rs"] mod fixtures;`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use serde_json::{Value, json};
use tycho_model::System;

/// The `.yaml` files of the repository's folder `dir`, in name order.
pub fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("a folder entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Every file of valid Systems: the examples, then tests/corpus/good.
pub fn good_system_files() -> Vec<PathBuf> {
    let mut files = yaml_files("examples");
    files.extend(yaml_files("tests/corpus/good"));
    files
}

/// A System named `name`, with an empty spec until containers (or a whole spec) are given.
pub fn system(name: &str) -> SystemBuilder {
    SystemBuilder {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        spec: json!({ "containers": [] }),
    }
}

/// A System under construction: its metadata and its spec as JSON.
#[derive(Clone, Debug)]
pub struct SystemBuilder {
    metadata: ObjectMeta,
    spec: Value,
}

impl SystemBuilder {
    /// The whole spec (JSON, as in a manifest), replacing what was set before.
    pub fn spec(mut self, spec: Value) -> Self {
        self.spec = spec;
        self
    }

    /// One more container (JSON, as in a manifest).
    pub fn container(mut self, container: Value) -> Self {
        let containers = self
            .spec
            .as_object_mut()
            .expect("the spec is an object")
            .entry("containers")
            .or_insert_with(|| json!([]));
        containers
            .as_array_mut()
            .expect("spec.containers is a list")
            .push(container);
        self
    }

    /// The image of the first container.
    pub fn image(self, image: &str) -> Self {
        self.set_first_container("image", json!(image))
    }

    /// `spec.session`: the Lease that owns the System.
    pub fn session(self, lease: &str) -> Self {
        self.set("session", json!(lease))
    }

    /// `spec.lifetime`, in seconds.
    pub fn lifetime(self, seconds: i64) -> Self {
        self.set("lifetime", json!(seconds))
    }

    /// `spec.replicas`.
    pub fn replicas(self, replicas: i32) -> Self {
        self.set("replicas", json!(replicas))
    }

    /// `spec.paused`.
    pub fn paused(self, paused: bool) -> Self {
        self.set("paused", json!(paused))
    }

    /// Any other spec field (camelCase, as in a manifest).
    pub fn set(mut self, field: &str, value: Value) -> Self {
        self.spec
            .as_object_mut()
            .expect("the spec is an object")
            .insert(field.to_string(), value);
        self
    }

    /// `metadata.namespace`.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.metadata.namespace = Some(namespace.to_string());
        self
    }

    /// `metadata.generation`, as the API server would have counted it.
    pub fn generation(mut self, generation: i64) -> Self {
        self.metadata.generation = Some(generation);
        self
    }

    /// `metadata.uid`, as the API server would have assigned it.
    pub fn uid(mut self, uid: &str) -> Self {
        self.metadata.uid = Some(uid.to_string());
        self
    }

    /// `metadata.creationTimestamp`.
    pub fn created(mut self, at: Timestamp) -> Self {
        self.metadata.creation_timestamp = Some(Time(at));
        self
    }

    /// The System (no status). Panics when the spec does not deserialise.
    pub fn build(self) -> System {
        let spec = serde_json::from_value(self.spec.clone())
            .unwrap_or_else(|e| panic!("a System spec: {e}: {}", self.spec));
        System {
            metadata: self.metadata,
            spec,
            status: None,
        }
    }

    fn set_first_container(mut self, field: &str, value: Value) -> Self {
        let first = self
            .spec
            .pointer_mut("/containers/0")
            .and_then(Value::as_object_mut)
            .expect("a container to set the field of");
        first.insert(field.to_string(), value);
        self
    }
}

//! The HTTP API server (axum) and the object lifecycle rules of kube-apiserver's generic
//! registry, in modules:
//!
//! - [`http`]: routing of Kubernetes API paths (one handler per verb in `handlers`), the request
//!   log, fault injection, discovery and the emulator's admin endpoints;
//! - lifecycle: `create`, `update` (PUT, status subresource split, finalizer-driven removal),
//!   `patch` (merge, JSON, strategic, server-side apply), `delete` (preconditions, propagation
//!   policy, graceful deletion, namespace termination, finalizers), with `admission` (type
//!   checks, field validation and pruning, managedFields, custom resource validation);
//! - [`encoding`]: request body decoding and output formats (JSON, Table,
//!   PartialObjectMetadata), responses;
//! - `list_watch`: list with selectors and paging, watch;
//! - `subresource`: `pods/binding` and `*/scale`;
//! - `review`: `TokenReview`, answered from [`crate::auth`] and never stored.
//!
//! Label and field selectors are parsed and matched by [`crate::selector`].

use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde_json::{Value, json};

use crate::alloc::Allocator;
use crate::builtin::{Registry, ResourceInfo};
use crate::error::ApiError;
use crate::faults::{Faults, RequestLog};
use crate::store::{ObjectKey, Store};

mod admission;
mod create;
mod delete;
pub mod encoding;
mod handlers;
pub mod http;
mod list_watch;
mod object;
mod patch;
mod review;
mod subresource;
mod update;

pub use admission::ApplyFailure;
pub use encoding::{Output, as_version};
pub use http::router;

/// The finalizer apiextensions-apiserver puts on a deleted CRD until its resources are gone.
pub const CRD_CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Shared state of the running server.
pub struct AppState {
    /// The object store.
    pub store: Arc<Store>,
    registry: RwLock<Arc<Registry>>,
    /// Fault injection settings.
    pub faults: Faults,
    /// The request log.
    pub log: RequestLog,
    alloc: Mutex<Allocator>,
    /// Becomes true when the emulator shuts down.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    crd_lock: Mutex<()>,
    /// The simulated kubelet serving `pods/{log,exec,portforward}` (set at start).
    pub kubelet: std::sync::OnceLock<crate::kubelet::Kubelet>,
    event_ttl: Mutex<std::time::Duration>,
    /// The static bearer tokens `TokenReview` authenticates.
    pub tokens: crate::auth::Tokens,
}

/// How long an Event lives after its last write: kube-apiserver's `--event-ttl` default.
pub const DEFAULT_EVENT_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The current time as a Kubernetes `Time` (RFC 3339, seconds, `Z`).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Field validation directive (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Drop unknown fields silently.
    Ignore,
    /// Drop unknown fields with a `Warning` header (the default).
    Warn,
    /// Reject unknown fields (400).
    Strict,
}

/// Per-request write options.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    /// Field manager for managedFields.
    pub manager: String,
    /// Unknown-field handling.
    pub validation: Validation,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// Warnings to return in `Warning` headers.
    pub warnings: Vec<String>,
    /// Whether managedFields were already computed (server-side apply).
    pub applied: bool,
}

impl WriteCtx {
    /// Options for internal writes (controllers of the emulator itself).
    pub fn internal(manager: &str) -> WriteCtx {
        WriteCtx {
            manager: manager.to_string(),
            validation: Validation::Ignore,
            dry_run: false,
            warnings: Vec::new(),
            applied: false,
        }
    }
}

/// `DeleteOptions` as far as the emulator honours them.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// `Background`, `Foreground`, `Orphan`.
    pub propagation: Option<String>,
    /// `gracePeriodSeconds`.
    pub grace_period: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// The outcome of a delete.
pub struct Deleted {
    /// The object (its last state, or the terminating object).
    pub object: Arc<Value>,
    /// Whether it is gone (false: pending finalizers or graceful deletion).
    pub gone: bool,
}

/// Why one attempt of a read-modify-write failed: an API error (final) or a lost race with
/// another writer (the caller retries with the new state).
enum Retry {
    Api(ApiError),
    Race,
}

impl From<ApiError> for Retry {
    fn from(e: ApiError) -> Self {
        Retry::Api(e)
    }
}

/// How many times a read-modify-write is retried after lost races before answering 409.
const RETRIES: usize = 16;

impl AppState {
    /// New state around a store.
    pub fn new(
        store: Arc<Store>,
        faults: Faults,
        shutdown: tokio::sync::watch::Receiver<bool>,
        addr: String,
    ) -> AppState {
        AppState {
            store,
            registry: RwLock::new(Arc::new(Registry::default())),
            faults,
            log: RequestLog::default(),
            alloc: Mutex::new(Allocator::new()),
            shutdown,
            addr,
            crd_lock: Mutex::new(()),
            kubelet: std::sync::OnceLock::new(),
            event_ttl: Mutex::new(DEFAULT_EVENT_TTL),
            tokens: crate::auth::Tokens::default(),
        }
    }

    /// How long an Event lives after its last write (the garbage collector removes older ones,
    /// as etcd's lease on an Event does).
    pub fn event_ttl(&self) -> std::time::Duration {
        *self.event_ttl.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the Event TTL.
    pub fn set_event_ttl(&self, ttl: std::time::Duration) {
        *self.event_ttl.lock().unwrap_or_else(|e| e.into_inner()) = ttl;
    }

    /// The current registry.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn alloc(&self) -> MutexGuard<'_, Allocator> {
        self.alloc.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuilds the registry from the stored CRDs (after a CRD changed).
    fn rebuild_registry(&self) {
        let _g = self.crd_lock.lock().unwrap_or_else(|e| e.into_inner());
        let crds = self.store.list(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            None,
            None,
            0,
            &|_| true,
        );
        let values: Vec<Value> = crds.items.iter().map(|v| (**v).clone()).collect();
        let reg = Registry::new(&values);
        *self.registry.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(reg);
    }

    /// The resource info of a store key (group, plural), preferring the storage version.
    pub fn info_for(&self, group: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.registry()
            .store_resources()
            .into_iter()
            .find(|i| i.group == group && i.plural == plural)
    }

    /// The store key of an object of `info` (the namespace is dropped for cluster-scoped
    /// resources).
    fn key(info: &ResourceInfo, ns: &str, name: &str) -> ObjectKey {
        let (group, plural) = info.store_key();
        ObjectKey {
            group,
            plural,
            namespace: if info.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    /// The stored object of `info` named `name` in `ns`.
    fn current(&self, info: &ResourceInfo, ns: &str, name: &str) -> Option<Arc<Value>> {
        let key = Self::key(info, ns, name);
        self.store
            .get(&key.group, &key.plural, &key.namespace, &key.name)
    }

    /// Creates the namespaces every cluster starts with.
    pub fn bootstrap(&self) -> Result<(), ApiError> {
        self.rebuild_registry();
        let reg = self.registry();
        let Some(ns_info) = reg.get("", "v1", "namespaces") else {
            return Err(ApiError::internal("namespaces not registered"));
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let mut ctx = WriteCtx::internal("kube-apiserver");
            let obj = json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}});
            match self.create_object(&ns_info, None, obj, &mut ctx) {
                Ok(_) => {}
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(svc) = reg.get("", "v1", "services") {
            let mut ctx = WriteCtx::internal("kube-apiserver");
            let obj = json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}});
            self.alloc()
                .release(&json!({"spec": {"clusterIP": "10.96.0.1"}}));
            match self.create_object(&svc, Some("default"), obj, &mut ctx) {
                Ok(_) => {}
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        self.store.compact();
        Ok(())
    }
}

//! The Tycho SDK: containers as ordinary code, on Kubernetes.
//!
//! Connect to a cluster with [`Location::connect`], which opens a *session* (a
//! `coordination.k8s.io/v1` Lease renewed in the background); spawn containers with
//! [`Location::spawn`] or [`Node::spawn`] (or from a catalog template with [`Location::spawn_template`]),
//! which create session-owned [`System`](tycho_model::System)s
//! and return at once; then wait for them, tunnel to them, read their logs, put and fetch files
//! and run processes in them. When the session ends — [`Location::close`], dropping the last
//! handle, or the client dying so the Lease stops being renewed — the Tycho controller deletes
//! everything the session created.
//!
//! ```no_run
//! use std::time::Duration;
//! use tycho_sdk::{ContainerSpec, Location};
//!
//! # async fn demo() -> Result<(), tycho_sdk::SdkError> {
//! let location = Location::connect().await?;
//! let node = location.best_node().await?;
//! let spec = ContainerSpec::new("nginx")
//!     .port(80)
//!     .file("/usr/share/nginx/html/index.html", "Hello World!");
//! let container = node.spawn(spec).await?;
//! let tunnel = container
//!     .wait_http_200(None, None, "/", Duration::from_secs(120))
//!     .await?;
//! println!("serving on http://127.0.0.1:{}/", tunnel.local_port());
//! let index = container.fetch("/usr/share/nginx/html/index.html").await?;
//! assert_eq!(index, b"Hello World!");
//! location.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Everything talks to the Kubernetes API only (exec, logs and port-forward go through the API
//! server), so the same code runs against a real cluster and against the `tycho-emulator`.
#![deny(missing_docs)]

mod container;
mod error;
mod location;
mod process;
pub mod registry;
mod session;
mod spec;
mod template;
mod tunnel;
pub mod wait;

pub use container::{Container, LogLine};
pub use error::SdkError;
pub use location::{ConnectOptions, Location, Node};
pub use process::{Output, Process, exit_code as exit_code_of};
pub use session::{SessionOptions, SessionState};
pub use spec::ContainerSpec;
pub use template::{TemplateSpec, template_ports};
pub use tunnel::{Tunnel, open_browser};

/// Largest file [`Container::fetch`] and [`Container::put`] move by default (64 MiB): files are
/// held in memory, as in the seed SDK.
pub const DEFAULT_FILE_LIMIT: usize = 64 * 1024 * 1024;

//! The Tycho HTTP API: start, watch, change and stop Systems and sessions over REST, as the identity
//! of the caller.
//!
//! Every request carries a bearer token; the API asks the API server who it is (TokenReview) and makes
//! every call for the request as that identity (impersonation headers), so Kubernetes RBAC — not this
//! API — decides who may do what. The API's own credentials only review tokens and impersonate.
//!
//! - [`server`]: routes, limits, TLS, the docs page and the launcher page;
//! - [`routes`]: the handlers, each documented for the OpenAPI document ([`openapi`]);
//! - [`build`]: pure translations between the API's types ([`types`]) and Kubernetes objects;
//! - [`auth`]: token review and per-identity clients; [`error`]: problem documents.

pub mod auth;
pub mod build;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod state;
pub mod types;

pub use error::{ApiError, Problem};
pub use server::{ApiServer, ServeConfig};
pub use state::Limits;

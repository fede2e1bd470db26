//! The Tycho operator: renders [`System`](tycho_model::System)s through Tera templates
//! ([`render`]), reconciles them into Deployments or Pods, Services and ConfigMaps with server-side
//! apply ([`controller`]), collects the Systems of ended sessions, and elects a leader among its
//! replicas ([`leader`]).
#![deny(missing_docs)]

pub mod controller;
pub mod leader;
pub mod render;
pub mod template;

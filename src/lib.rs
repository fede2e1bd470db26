//! Tycho: launch whole stacks on Kubernetes from a `System` resource, and collect them when the
//! session that started them ends.
#![deny(missing_docs)]

pub mod cli;
pub mod controller;
pub mod leader;
pub mod model;
pub mod quantity;
pub mod render;
pub mod sdk;
pub mod validate;

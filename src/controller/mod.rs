//! The reconciling controller: a kube-runtime Controller on System that applies what [`crate::render`]
//! produces, prunes what it no longer produces, writes a deterministic status, and collects the Systems of
//! expired sessions.

pub mod backoff;
pub mod diff;
pub mod error;
pub mod session;
pub mod status;

pub use error::ControllerError;

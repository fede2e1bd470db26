//! The reconciling controller (being written).

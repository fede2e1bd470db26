//! Simulated cluster (being written)

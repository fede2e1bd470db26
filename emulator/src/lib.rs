//! An in-process Kubernetes API server emulator with a simulated cluster (in the manner of kwok),
//! for end-to-end tests, benchmarks and demos where no real cluster can run.
//!
//! It stands in for kube-apiserver, kube-controller-manager (Deployment, ReplicaSet, garbage
//! collector), kube-scheduler and the kubelet. It is not a container runtime.

pub mod kubelet;
pub mod merge_keys;
pub mod patch;
pub mod schema;
pub mod sim;
pub mod ssa;

//! The I/O driver: kube-runtime wiring, observing the cluster, running the analysis, applying
//! the rollout core's plan and writing status.

pub mod observe;
pub mod stores;
pub mod workloads;

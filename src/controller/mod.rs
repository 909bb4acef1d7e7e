//! The I/O driver: kube-runtime wiring, observing the cluster, running the analysis, applying
//! the rollout core's plan and writing status.

pub mod alerts;
pub mod backends;
pub mod context;
pub mod effects;
pub mod events;
pub mod gather;
pub mod git;
pub mod index;
pub mod observe;
pub mod reconcile;
pub mod run;
pub mod secrets;
pub mod shard;
pub mod status;
pub mod stores;
pub mod workloads;

#[cfg(test)]
mod tests;

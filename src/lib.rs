//! Serin: a progressive-delivery canary controller for Kubernetes. It shifts traffic to a new
//! version step by step, judges every step with metrics and webhooks, then promotes it or rolls
//! back — and on rollback reverts the change in Git so the GitOps agent does not re-apply it.

#![forbid(unsafe_code)]

pub mod analysis;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod gitops;
pub mod inspect;
pub mod loadtester;
pub mod manifest;
pub mod notify;
pub mod ops;
pub mod rollout;
pub mod router;
pub mod telemetry;
pub mod webhook;
pub mod workload;

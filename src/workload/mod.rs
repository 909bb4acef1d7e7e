//! The workloads Serin manages around a target Deployment: the `-primary` copy, the apex /
//! primary / canary Services, tracked ConfigMaps and Secrets, the revision identity and
//! readiness. The builders here are pure; the controller applies their output.

pub mod autoscaler;
pub mod config_refs;
pub mod primary;
pub mod readiness;
pub mod revision;
pub mod services;

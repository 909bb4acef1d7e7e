//! Serin's integration tests in one binary (one link instead of one per file keeps the target
//! small): CRDs, `serin validate`, built-in metrics, Prometheus, Git, routers and the controller
//! against the Kubernetes API stand-in.

mod argocd_health;
mod builtin_metrics;
mod check_cluster;
mod check_replay;
mod controller_blue_green;
mod controller_limits;
mod crds;
mod deploy_manifests;
mod events_stand_in;
mod gitops_git_server;
mod prometheus;
mod rbac;
mod routers_stand_in;
mod validate;

//! The test bed's tests in one binary (one link instead of one per file keeps the target small):
//! the Kubernetes API stand-in (`api_*`) and the test bed pieces (`bed_*`).

mod common;

mod api_binary;
mod api_crd;
mod api_crud;
mod api_delete;
mod api_objects;
mod api_patch;
mod api_watch;
mod bed_binary;
mod bed_git;
mod bed_prometheus;
mod bed_proxy;
mod bed_simulator;
mod bed_startup;

//! A Kubernetes API stand-in for Serin's end-to-end test bed.
//!
//! [`ApiServer`] serves the Kubernetes wire protocol over plain HTTP on 127.0.0.1: discovery,
//! get/list/create/update/patch/delete with optimistic concurrency, server-side apply with
//! field managers, status subresources, finalizers, owner garbage collection, CRD registration
//! and schema validation, and watches with resourceVersions, bookmarks and 410 Gone. The
//! unmodified kube-rs client, watcher, reflector and Controller run against it.
//!
//! Around it (issue 9): the demo app ([`demo`], binary `serin-demo-app`), the Deployment
//! simulator ([`simulator`]), the weighted proxy ([`proxy`]), real Prometheus ([`prometheus`]),
//! a real Git server ([`git`]) with a Flux-like sync loop ([`sync`]), an alert receiver
//! ([`alerts`]), and [`bed::TestBed`], which starts all of them with one call.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alerts;
pub mod apply;
pub mod audit;
pub mod bed;
pub mod bench;
pub mod builtin_rules;
pub mod delete;
pub mod demo;
pub mod discovery;
pub mod error;
pub mod gc;
pub mod git;
pub mod kubeconfig;
pub mod load;
pub mod manifests;
pub mod metrics;
pub mod ops;
pub mod patch;
pub mod prometheus;
pub mod proxy;
pub mod resource;
pub mod scenario;
pub mod schema;
pub mod selector;
pub mod server;
pub mod simulator;
pub mod store;
pub mod sync;
pub mod util;
pub mod watch;

pub use bed::{BedConfig, TestBed};
pub use error::{ApiError, BedError, ServerError};
pub use server::{ApiServer, ServerConfig};

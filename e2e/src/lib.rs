//! A Kubernetes API stand-in for Serin's end-to-end test bed.
//!
//! [`ApiServer`] serves the Kubernetes wire protocol over plain HTTP on 127.0.0.1: discovery,
//! get/list/create/update/patch/delete with optimistic concurrency, server-side apply with
//! field managers, status subresources, finalizers, owner garbage collection, CRD registration
//! and schema validation, and watches with resourceVersions, bookmarks and 410 Gone. The
//! unmodified kube-rs client, watcher, reflector and Controller run against it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod apply;
pub mod delete;
pub mod discovery;
pub mod error;
pub mod gc;
pub mod kubeconfig;
pub mod ops;
pub mod patch;
pub mod resource;
pub mod schema;
pub mod selector;
pub mod server;
pub mod store;
pub mod watch;

pub use error::{ApiError, ServerError};
pub use server::{ApiServer, ServerConfig};

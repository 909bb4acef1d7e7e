//! What the controller tells the outside world about itself: Prometheus metrics, health and
//! readiness endpoints, and logs.

pub mod logging;
pub mod metrics;
pub mod server;

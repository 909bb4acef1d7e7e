//! Benchmarks of the real `serin controller` on the API stand-in (issue 10): how many canaries
//! one replica keeps on time, what an idle canary costs the API server, memory and CPU, and the
//! rollback latency. Binary `serin-bench`; method and results in `BENCHMARKS.md`.
//!
//! No pods run: [`fleet::RolloutWriter`] reports every Deployment rolled out, and
//! [`responder::Responder`] answers the Prometheus queries (a real Prometheus holding series
//! for 10,000 canaries is a benchmark of Prometheus).

pub mod controller;
pub mod fleet;
pub mod procstat;
pub mod responder;
pub mod rollback;
pub mod setup;
pub mod ticks;

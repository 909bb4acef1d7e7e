//! Metric analysis: query templates, metrics providers, and the judges that turn a query
//! result into a verdict (pass / fail / no data).

pub mod builtin;
pub mod comparative;
pub mod prometheus;
pub mod provider;
pub mod run;
pub mod template;
pub mod verdict;

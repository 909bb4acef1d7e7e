//! Metric analysis: query templates and (in later work) providers and judges.

pub mod template;

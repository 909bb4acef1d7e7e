//! Calling webhooks with Flagger's payload, and reading their answers with Flagger's semantics
//! (FLAGGER.md §3): [`payload`] builds the JSON, [`caller`] makes one call (timeout, retries,
//! headers, secret headers, TLS), [`gates`] runs all hooks of one kind under one deadline and
//! turns their outcomes into plain answers for the state machine; [`fake`] is a scripted caller
//! for tests of the code that uses them.

pub mod caller;
pub mod fake;
pub mod gates;
pub mod payload;

#[cfg(test)]
mod http_tests;

pub use caller::{
    Backoff, CallReport, HookCall, HookError, HookResponse, HttpCaller, SecretHeaders, WebhookCaller,
};
pub use fake::FakeCaller;
pub use gates::{
    CheckAnswer, ConfirmRolloutBudget, ConfirmRolloutState, GateAnswer, HookOutcome, KindAnswer,
    RollbackAnswer,
};
pub use payload::{CanaryRef, CanaryWebhookPayload, EventType};

//! A scripted [`WebhookCaller`] for tests of code that calls webhooks (the reconciler): it
//! records every call and answers from a table keyed by hook name.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::webhook::caller::{CallReport, HookCall, HookError, HookResponse, WebhookCaller};

/// Answers hooks by name (default: 200) and records the calls.
#[derive(Debug, Default)]
pub struct FakeCaller {
    answers: Mutex<BTreeMap<String, Result<u16, HookError>>>,
    calls: Mutex<Vec<HookCall>>,
}

impl FakeCaller {
    /// A caller answering 200 to every hook.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers hook `name` with HTTP `status` (2xx is success) or with an error.
    pub fn answer(&self, name: &str, answer: Result<u16, HookError>) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.insert(name.to_string(), answer);
        }
    }

    /// The calls made so far, in order.
    pub fn calls(&self) -> Vec<HookCall> {
        self.calls.lock().map(|calls| calls.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl WebhookCaller for FakeCaller {
    async fn call(&self, call: &HookCall) -> CallReport {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call.clone());
        }
        let answer =
            self.answers.lock().ok().and_then(|answers| answers.get(&call.name).cloned()).unwrap_or(Ok(200));
        let result = match answer {
            Ok(status) if (200..300).contains(&status) => Ok(HookResponse { status, body: String::new() }),
            Ok(status) => Err(HookError::Status { status, body: String::new() }),
            Err(err) => Err(err),
        };
        CallReport { attempts: 1, elapsed: Duration::ZERO, result }
    }
}

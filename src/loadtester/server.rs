//! The load tester's HTTP endpoints, compatible with flagger-loadtester:
//!
//! | endpoint | answer |
//! |---|---|
//! | `POST /` | runs the task in the payload's `metadata` (see [`crate::loadtester::task`]): loads and `cmd` → 202 at once; `load-result` → 200/500 with a JSON summary, 404 when no such load appears within [`LOAD_RESULT_GRACE`]; `bash`/`helm`/`kubectl` → 200/500; shell without `--allow-shell` → 403 |
//! | `/gate/approve` | always 200 |
//! | `/gate/halt` | always 403 |
//! | `POST /gate/check` | payload → 200 when the gate `<name>.<namespace>` is open for this release, else 403 |
//! | `POST /gate/open`, `/gate/close` | `{"name","namespace"}` → 202 |
//! | `POST /rollback/check`, `/rollback/open`, `/rollback/close` | the same for `rollback.<name>.<namespace>` |
//! | `/healthz` | 200 |
//! | `/metrics` | OpenMetrics text |
//!
//! With `--namespace-regexp`, payloads whose namespace does not match (the whole name) get 403.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use prometheus_client::encoding::text::encode;
use serde_json::json;

use crate::loadtester::LoadTester;
use crate::loadtester::gates::{gate_key, rollback_key};
use crate::loadtester::runs::Started;
use crate::loadtester::shell;
use crate::loadtester::task::{self, ShellMode, Task};
use crate::webhook::payload::CanaryWebhookPayload;

type Shared = State<Arc<LoadTester>>;

/// How long `load-result` waits for an unknown load to appear before answering 404.
pub const LOAD_RESULT_GRACE: Duration = Duration::from_secs(2);

fn reply(status: StatusCode, text: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text.into()).into_response()
}

/// The endpoint routes.
pub fn router(tester: Arc<LoadTester>) -> Router {
    Router::new()
        .route("/", post(run_task))
        .route("/gate/approve", any(|| async { reply(StatusCode::OK, "Approved") }))
        .route("/gate/halt", any(|| async { reply(StatusCode::FORBIDDEN, "Forbidden") }))
        .route("/gate/check", post(|s: Shared, b: Bytes| check(s, b, Gate::Promotion)))
        .route("/gate/open", post(|s: Shared, b: Bytes| set(s, b, Gate::Promotion, true)))
        .route("/gate/close", post(|s: Shared, b: Bytes| set(s, b, Gate::Promotion, false)))
        .route("/rollback/check", post(|s: Shared, b: Bytes| check(s, b, Gate::Rollback)))
        .route("/rollback/open", post(|s: Shared, b: Bytes| set(s, b, Gate::Rollback, true)))
        .route("/rollback/close", post(|s: Shared, b: Bytes| set(s, b, Gate::Rollback, false)))
        .route("/healthz", get(|| async { reply(StatusCode::OK, "OK") }))
        .route("/metrics", get(metrics))
        .with_state(tester)
}

#[derive(Clone, Copy)]
enum Gate {
    Promotion,
    Rollback,
}

impl Gate {
    fn key(self, payload: &CanaryWebhookPayload) -> String {
        match self {
            Gate::Promotion => gate_key(&payload.name, &payload.namespace),
            Gate::Rollback => rollback_key(&payload.name, &payload.namespace),
        }
    }
}

/// Why a request was refused before its task ran.
type Refusal = (StatusCode, String);

fn payload(tester: &LoadTester, body: &[u8]) -> Result<CanaryWebhookPayload, Refusal> {
    let payload: CanaryWebhookPayload = serde_json::from_slice(body)
        .map_err(|err| (StatusCode::BAD_REQUEST, format!("invalid payload: {err}")))?;
    if payload.name.is_empty() || payload.namespace.is_empty() {
        return Err((StatusCode::BAD_REQUEST, "invalid payload: name and namespace are required".into()));
    }
    if let Some(allowed) = &tester.config.namespace_regexp
        && !allowed.is_match(&payload.namespace)
    {
        return Err((
            StatusCode::FORBIDDEN,
            format!("namespace {:?} is not allowed by --namespace-regexp", payload.namespace),
        ));
    }
    Ok(payload)
}

async fn check(State(tester): Shared, body: Bytes, gate: Gate) -> Response {
    let payload = match payload(&tester, &body) {
        Ok(payload) => payload,
        Err((status, text)) => return reply(status, text),
    };
    let key = gate.key(&payload);
    match tester.gates.check(&key, &payload.checksum) {
        Ok(open) => {
            tracing::info!(gate = %key, open, "gate check");
            if open { reply(StatusCode::OK, "Approved") } else { reply(StatusCode::FORBIDDEN, "Forbidden") }
        }
        Err(err) => reply(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}

async fn set(State(tester): Shared, body: Bytes, gate: Gate, open: bool) -> Response {
    let payload = match payload(&tester, &body) {
        Ok(payload) => payload,
        Err((status, text)) => return reply(status, text),
    };
    let key = gate.key(&payload);
    match tester.gates.set(&key, open) {
        Ok(()) => {
            tracing::info!(gate = %key, open, "gate set");
            reply(StatusCode::ACCEPTED, if open { "Gate opened" } else { "Gate closed" })
        }
        Err(err) => reply(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}

async fn metrics(State(tester): Shared) -> Response {
    let mut body = String::new();
    match encode(&mut body, &tester.registry) {
        Ok(()) => {
            ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
                .into_response()
        }
        Err(_) => reply(StatusCode::INTERNAL_SERVER_ERROR, "encoding metrics failed"),
    }
}

async fn run_task(State(tester): Shared, body: Bytes) -> Response {
    let payload = match payload(&tester, &body) {
        Ok(payload) => payload,
        Err((status, text)) => {
            tester.metrics.task("invalid", "invalid");
            return reply(status, text);
        }
    };
    if payload.metadata.is_empty() {
        tester.metrics.task("invalid", "invalid");
        return reply(StatusCode::BAD_REQUEST, "metadata not found in payload");
    }
    let task = match task::parse(&payload.metadata, &tester.config.limits) {
        Ok(task) => task,
        Err(err) => {
            tester.metrics.task("invalid", "invalid");
            return reply(StatusCode::BAD_REQUEST, err.to_string());
        }
    };
    let canary = payload.gate_key();
    match task {
        Task::Load { task, spec, max_error_rate } => {
            let client = match spec.client() {
                Ok(client) => client,
                Err(err) => return reply(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
            };
            let metrics = tester.metrics.for_canary(&payload.name, &payload.namespace);
            let started = tester.runs.start(
                &canary,
                &task,
                &payload.checksum,
                *spec,
                client,
                max_error_rate,
                Some(metrics),
                tester.config.limits.max_duration,
            );
            match started {
                Started::Started => {
                    tester.metrics.task("load", "started");
                    tracing::info!(%canary, %task, "load started");
                    reply(StatusCode::ACCEPTED, format!("load {task} started"))
                }
                Started::AlreadyRunning => {
                    tester.metrics.task("load", "duplicate");
                    reply(StatusCode::ACCEPTED, format!("load {task} is already running"))
                }
                Started::Busy => {
                    tester.metrics.task("load", "busy");
                    reply(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!("{} loads are running already (--max-loads)", tester.config.max_loads),
                    )
                }
            }
        }
        Task::LoadResult { task, max_error_rate } => {
            // Hooks of one kind run concurrently, so in the first tick the result request can
            // arrive just before the load's own request: wait a moment for it.
            let mut report = tester.runs.report(&canary, task.as_deref(), &payload.checksum, max_error_rate);
            for _ in 0..(LOAD_RESULT_GRACE.as_millis() / 50) {
                if report.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                report = tester.runs.report(&canary, task.as_deref(), &payload.checksum, max_error_rate);
            }
            match report {
                None => {
                    tester.metrics.task("load-result", "not_found");
                    let which = task.map(|t| format!("load {t}")).unwrap_or_else(|| "no load".into());
                    let text = if which == "no load" {
                        format!("no load has run for {canary} (revision {:?})", payload.checksum)
                    } else {
                        format!("{which} has not run for {canary} (revision {:?})", payload.checksum)
                    };
                    reply(StatusCode::NOT_FOUND, text)
                }
                Some(report) => {
                    let failed = report.verdict.is_err();
                    tester.metrics.task("load-result", if failed { "failed" } else { "succeeded" });
                    let body = json!({
                        "task": report.task,
                        "verdict": if failed { "failed" } else { "passed" },
                        "reason": report.verdict.err(),
                        "summary": report.summary,
                        "running": report.running,
                    });
                    let status = if failed { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK };
                    (status, axum::Json(body)).into_response()
                }
            }
        }
        Task::Shell(shell_task) if !tester.config.allow_shell => {
            tester.metrics.task(&shell_task.kind, "refused");
            reply(
                StatusCode::FORBIDDEN,
                format!(
                    "shell tasks are disabled: start `serin loadtester --allow-shell` to run {} tasks \
                     (hey commands and type: load run natively without it)",
                    shell_task.kind
                ),
            )
        }
        Task::Shell(shell_task) if shell_task.mode == ShellMode::Background => {
            let kind = shell_task.kind.clone();
            if tester.background.start(&canary, shell_task, tester.config.exec_timeout) {
                tester.metrics.task(&kind, "started");
                reply(StatusCode::ACCEPTED, "command started")
            } else {
                tester.metrics.task(&kind, "duplicate");
                reply(StatusCode::ACCEPTED, "command is already running")
            }
        }
        Task::Shell(shell_task) => match shell::run(&shell_task, tester.config.exec_timeout).await {
            Ok(output) => {
                tester.metrics.task(&shell_task.kind, "succeeded");
                if shell_task.log_output {
                    tracing::info!(%canary, %output, "command finished");
                }
                reply(StatusCode::OK, if shell_task.return_output { output } else { "ok".into() })
            }
            Err(err) => {
                tester.metrics.task(&shell_task.kind, "failed");
                tracing::warn!(%canary, error = %err, "command failed");
                reply(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
            }
        },
    }
}

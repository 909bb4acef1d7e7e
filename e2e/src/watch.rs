//! Watch streams: newline-delimited `{"type", "object"}` events from a resourceVersion,
//! bookmarks, selector transitions, `sendInitialEvents`, timeouts and 410 Gone.

use std::{
    convert::Infallible,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use bytes::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::{
    error::ApiError,
    ops::{Target, present},
    selector::Selectors,
    server::AppState,
    store::{Change, EventType},
};

/// Parameters of one watch request.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    /// What to watch.
    pub target: Target,
    /// Label and field selectors applied to events.
    pub selectors: Selectors,
    /// `resourceVersion`; empty or `0` means "current state as ADDED, then changes".
    pub resource_version: String,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
    /// `sendInitialEvents=true` (streaming list): initial ADDED events, then a bookmark
    /// annotated `k8s.io/initial-events-end`.
    pub send_initial_events: bool,
}

/// Counts an open watch for as long as it lives.
struct OpenWatch(Arc<AppState>);

impl OpenWatch {
    fn new(state: Arc<AppState>) -> Self {
        state.open_watches.fetch_add(1, Ordering::SeqCst);
        OpenWatch(state)
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One watch event as kube-apiserver writes it: `type` before `object`, the field order of
/// Go's `metav1.WatchEvent` (a JSON map would sort `object` first). Clients that read the tag
/// first, like kube's adjacently tagged `WatchEvent`, decode the object in one pass; with
/// `object` first they must buffer it, so the order matters for what a client spends.
fn line(kind: &str, object: &Value) -> Result<Bytes, Infallible> {
    Ok(Bytes::from(format!("{{\"type\":{},\"object\":{object}}}\n", Value::from(kind))))
}

fn gone(requested: &str, oldest: u64) -> Value {
    ApiError::Gone(format!("too old resource version: {requested} ({oldest})")).to_status()
}

fn bookmark(t: &Target, rv: u64, initial_end: bool) -> Value {
    let mut m = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        m["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    json!({ "kind": t.info.kind, "apiVersion": t.info.api_version(), "metadata": m })
}

/// Whether a (stored) object is in the watch's scope and selection.
fn selected(req: &WatchRequest, obj: &Value) -> bool {
    let ns_ok = match (&req.target.namespace, req.target.info.namespaced) {
        (Some(ns), true) => obj["metadata"]["namespace"].as_str() == Some(ns.as_str()),
        _ => true,
    };
    ns_ok && req.selectors.matches(obj)
}

/// The event a change produces for this watch, if any (selector transitions become ADDED/DELETED).
fn translate(req: &WatchRequest, c: &Change) -> Option<(EventType, Value)> {
    if c.group != req.target.info.group || c.plural != req.target.info.plural {
        return None;
    }
    let now = selected(req, &c.object);
    let kind = match c.kind {
        EventType::Modified => match (c.old.as_deref().map(|o| selected(req, o)).unwrap_or(false), now) {
            (true, true) => EventType::Modified,
            (false, true) => EventType::Added,
            (true, false) => EventType::Deleted,
            (false, false) => return None,
        },
        other if now => other,
        _ => return None,
    };
    Some((kind, present(&req.target.info, &c.object)))
}

/// Starts a watch; the stream ends on timeout, server shutdown, expiry or a lagging consumer.
pub fn start(
    state: Arc<AppState>,
    req: WatchRequest,
) -> Result<impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static, ApiError> {
    if req.send_initial_events && !req.bookmarks {
        return Err(ApiError::Invalid {
            message: "sendInitialEvents requires allowWatchBookmarks=true".into(),
            causes: Vec::new(),
        });
    }
    let initial_state =
        req.resource_version.is_empty() || req.resource_version == "0" || req.send_initial_events;
    let requested: Option<u64> = if initial_state {
        None
    } else {
        Some(req.resource_version.parse().map_err(|_| {
            ApiError::BadRequest(format!("invalid resourceVersion {:?}", req.resource_version))
        })?)
    };
    let mut shutdown = state.shutdown.subscribe();
    let mut expire = state.expire.subscribe();
    let (mut rx, start_rv, initial, backlog, too_old) = {
        let store = state.lock();
        let rx = store.subscribe();
        let cur = store.current_rv();
        match requested {
            None => {
                let ns = if req.target.info.namespaced { req.target.namespace.as_deref() } else { None };
                let objs: Vec<Value> = store
                    .list(&req.target.info.group, &req.target.info.plural, ns)
                    .into_iter()
                    .filter(|o| req.selectors.matches(o))
                    .map(|o| present(&req.target.info, o))
                    .collect();
                (rx, cur, objs, Vec::new(), None)
            }
            Some(r) if r < store.compacted_rv() => {
                (rx, cur, Vec::new(), Vec::new(), Some(store.compacted_rv()))
            }
            Some(r) => (rx, r, Vec::new(), store.history_after(r), None),
        }
    };
    let interval = state.bookmark_interval;
    let deadline = req.timeout.map(|t| tokio::time::Instant::now() + t);
    let open = OpenWatch::new(state.clone());
    Ok(async_stream::stream! {
        let _open = open;
        if let Some(oldest) = too_old {
            yield line("ERROR", &gone(&req.resource_version, oldest));
            return;
        }
        for obj in &initial {
            yield line("ADDED", obj);
        }
        if req.send_initial_events {
            yield line("BOOKMARK", &bookmark(&req.target, start_rv, true));
        }
        let mut last_rv = start_rv;
        for c in &backlog {
            if c.rv > last_rv {
                last_rv = c.rv;
                if let Some((kind, obj)) = translate(&req, c) {
                    yield line(kind.as_str(), &obj);
                }
            }
        }
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        let far = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let sleep = tokio::time::sleep_until(deadline.unwrap_or(far));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(c) => {
                        if c.rv > last_rv {
                            last_rv = c.rv;
                            if let Some((kind, obj)) = translate(&req, &c) {
                                yield line(kind.as_str(), &obj);
                            }
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        yield line("ERROR", &gone(&last_rv.to_string(), last_rv));
                        break;
                    }
                    Err(RecvError::Closed) => break,
                },
                _ = ticker.tick(), if req.bookmarks => {
                    // Drain under the lock: afterwards every change up to `cur` has been seen.
                    let (drained, cur, lagged) = {
                        let store = state.lock();
                        let mut v = Vec::new();
                        let mut lagged = false;
                        loop {
                            match rx.try_recv() {
                                Ok(c) => v.push(c),
                                Err(TryRecvError::Lagged(_)) => { lagged = true; break; }
                                Err(_) => break,
                            }
                        }
                        (v, store.current_rv(), lagged)
                    };
                    if lagged {
                        yield line("ERROR", &gone(&last_rv.to_string(), last_rv));
                        break;
                    }
                    for c in &drained {
                        if c.rv > last_rv {
                            last_rv = c.rv;
                            if let Some((kind, obj)) = translate(&req, c) {
                                yield line(kind.as_str(), &obj);
                            }
                        }
                    }
                    last_rv = last_rv.max(cur);
                    yield line("BOOKMARK", &bookmark(&req.target, last_rv, false));
                }
                _ = &mut sleep => break,
                _ = shutdown.changed() => break,
                _ = expire.changed() => {
                    yield line("ERROR", &gone(&last_rv.to_string(), last_rv + 1));
                    break;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_written_type_first_like_the_api_server() {
        let object = json!({"kind": "Canary", "metadata": {"name": "a \"quoted\" name"}});
        let Ok(bytes) = line("MODIFIED", &object);
        let text = std::str::from_utf8(&bytes).expect("utf-8");
        assert!(text.starts_with(r#"{"type":"MODIFIED","object":{"#), "{text}");
        assert!(text.ends_with("}\n") && text.matches('\n').count() == 1, "{text}");
        let parsed: Value = serde_json::from_str(text).expect("one JSON value");
        assert_eq!(parsed, json!({"type": "MODIFIED", "object": object}));
    }
}

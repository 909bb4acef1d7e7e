//! Manual gates (`/gate/*`, `/rollback/*`) with state that survives restarts.
//!
//! Keys are Flagger's: `<name>.<namespace>` for gates, `rollback.<name>.<namespace>` for
//! rollback gates. With `--state-file`, every change is written to that JSON file (temporary
//! file + rename, so a crash never leaves half a file) before it is acknowledged, and the file is
//! read at start; a file that cannot be read stops the start instead of silently resetting
//! gates. A file on a volume was chosen over annotations on the Canary: the load tester stays
//! deployable on its own, with no RBAC and no Kubernetes client.
//!
//! A gate closes again when its release finishes: an open gate is bound to the revision
//! (payload `checksum`) of the first check that finds it open, and a check for another revision
//! closes it and answers "closed". Flagger's gates stay open forever and vanish on restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Reading or writing the state file failed.
#[derive(Debug, Error)]
pub enum GateError {
    /// The file could not be read or written.
    #[error("gate state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid JSON of the expected shape.
    #[error("gate state file {path}: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The state lock was poisoned by a panic elsewhere.
    #[error("gate state is unavailable")]
    Poisoned,
}

/// One gate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRecord {
    /// Open (checks answer 200) or closed (403).
    pub open: bool,
    /// The revision the open gate was used for first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    gates: BTreeMap<String, GateRecord>,
}

/// The gate key of a canary: `<name>.<namespace>`.
pub fn gate_key(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}")
}

/// The rollback gate key of a canary: `rollback.<name>.<namespace>`.
pub fn rollback_key(name: &str, namespace: &str) -> String {
    format!("rollback.{name}.{namespace}")
}

/// All gates, optionally persisted.
#[derive(Debug)]
pub struct GateStore {
    path: Option<PathBuf>,
    state: Mutex<StateFile>,
}

impl GateStore {
    /// Opens the store, reading `path` when it exists.
    pub fn open(path: Option<PathBuf>) -> Result<Self, GateError> {
        let state = match &path {
            Some(path) if path.exists() => {
                let text =
                    std::fs::read(path).map_err(|source| GateError::Io { path: path.clone(), source })?;
                serde_json::from_slice(&text)
                    .map_err(|source| GateError::Format { path: path.clone(), source })?
            }
            _ => StateFile { version: 1, gates: BTreeMap::new() },
        };
        Ok(Self { path, state: Mutex::new(state) })
    }

    fn persist(path: &Path, state: &StateFile) -> Result<(), GateError> {
        let io = |source| GateError::Io { path: path.to_path_buf(), source };
        let text = serde_json::to_vec_pretty(state)
            .map_err(|source| GateError::Format { path: path.into(), source })?;
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        std::fs::write(&temporary, text).map_err(io)?;
        std::fs::rename(&temporary, path).map_err(io)
    }

    /// Applies `change` to a copy, persists it, then keeps it; returns what `change` returned.
    fn update<T>(&self, change: impl FnOnce(&mut StateFile) -> T) -> Result<T, GateError> {
        let mut state = self.state.lock().map_err(|_| GateError::Poisoned)?;
        let mut next = state.clone();
        let result = change(&mut next);
        if next != *state {
            if let Some(path) = &self.path {
                Self::persist(path, &next)?;
            }
            *state = next;
        }
        Ok(result)
    }

    /// Opens or closes a gate.
    pub fn set(&self, key: &str, open: bool) -> Result<(), GateError> {
        self.update(|state| {
            state.gates.insert(key.to_string(), GateRecord { open, checksum: None });
        })
    }

    /// Whether the gate is open for revision `checksum` (see the module docs for binding).
    pub fn check(&self, key: &str, checksum: &str) -> Result<bool, GateError> {
        self.update(|state| {
            let Some(record) = state.gates.get_mut(key) else { return false };
            if !record.open {
                return false;
            }
            if checksum.is_empty() {
                return true;
            }
            match &record.checksum {
                None => {
                    record.checksum = Some(checksum.to_string());
                    true
                }
                Some(bound) if bound == checksum => true,
                Some(_) => {
                    *record = GateRecord { open: false, checksum: None };
                    false
                }
            }
        })
    }

    /// The record of a gate, if it was ever set.
    pub fn get(&self, key: &str) -> Option<GateRecord> {
        self.state.lock().ok()?.gates.get(key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_are_closed_until_opened_and_bind_to_a_release() {
        let store = GateStore::open(None).expect("store");
        let key = gate_key("podinfo", "test");
        assert!(!store.check(&key, "rev1").expect("check"));
        store.set(&key, true).expect("open");
        assert!(store.check(&key, "rev1").expect("check"));
        assert!(store.check(&key, "rev1").expect("still open for the same release"));
        assert!(store.check(&key, "").expect("no checksum: plain open"));
        assert!(!store.check(&key, "rev2").expect("next release finds it closed"));
        assert_eq!(store.get(&key), Some(GateRecord { open: false, checksum: None }));
        store.set(&key, true).expect("open");
        store.set(&key, false).expect("close");
        assert!(!store.check(&key, "rev2").expect("closed"));
        assert_eq!(rollback_key("podinfo", "test"), "rollback.podinfo.test");
    }

    #[test]
    fn state_survives_reopening_and_bad_files_refuse_to_load() {
        let dir = std::env::temp_dir().join(format!("serin-gates-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("gates.json");
        let _ = std::fs::remove_file(&path);
        {
            let store = GateStore::open(Some(path.clone())).expect("store");
            store.set("podinfo.test", true).expect("open");
            assert!(store.check("podinfo.test", "rev1").expect("check"));
        }
        let reopened = GateStore::open(Some(path.clone())).expect("reopen");
        assert_eq!(
            reopened.get("podinfo.test"),
            Some(GateRecord { open: true, checksum: Some("rev1".into()) })
        );
        std::fs::write(&path, "{not json").expect("write");
        assert!(matches!(GateStore::open(Some(path.clone())), Err(GateError::Format { .. })));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}

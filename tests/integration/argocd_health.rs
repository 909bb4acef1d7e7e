//! The Argo CD health check for `serin.dev/Canary` (deploy/examples/argocd/argocd-cm.yaml),
//! run by a real Lua 5.4 interpreter (Argo CD runs these snippets with gopher-lua, a Lua 5.1
//! dialect; the snippet uses only what both have) against Canary statuses.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

/// The snippet from the example ConfigMap.
fn snippet() -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/argocd/argocd-cm.yaml");
    let text = std::fs::read_to_string(&file).expect("argocd-cm.yaml");
    let doc: Value = serde_norway::from_str(&text).expect("argocd-cm.yaml parses");
    doc["data"]["resource.customizations.health.serin.dev_Canary"].as_str().expect("health key").to_string()
}

/// A JSON value as a Lua table constructor (what Argo CD hands the snippet as `obj`).
fn lua(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!("{{{}}}", items.iter().map(lua).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => {
            let fields: Vec<String> = map.iter().map(|(k, v)| format!("[{k:?}] = {}", lua(v))).collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// Runs the snippet on `canary`; returns `(status, message)`.
fn health(canary: &Value) -> (String, String) {
    let script = format!(
        "local function health(obj)\n{}\nend\nlocal hs = health({})\nio.write(hs.status, '\\n', hs.message)",
        snippet(),
        lua(canary)
    );
    let output = Command::new("lua5.4")
        .args(["-e", &script])
        .output()
        .expect("lua5.4 runs (scripts/install-deps.sh installs it)");
    assert!(output.status.success(), "lua failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (status, message) = text.split_once('\n').expect("status and message");
    (status.to_string(), message.to_string())
}

fn canary(status: Value) -> Value {
    json!({"apiVersion": "serin.dev/v1alpha1", "kind": "Canary", "metadata": {"name": "podinfo"}, "status": status})
}

#[test]
fn argo_cd_health_follows_the_phase_and_the_stalled_condition() {
    let promoted =
        json!({"type": "Promoted", "status": "True", "message": "Canary analysis completed successfully"});
    let stalled =
        json!({"type": "Stalled", "status": "True", "message": "revision abc failed before: quarantined"});
    let cases = [
        (json!(null), "Progressing", "Waiting for Serin to initialise the canary"),
        (json!({}), "Progressing", "Waiting for Serin to initialise the canary"),
        (json!({"phase": "Initializing"}), "Progressing", "Canary is Initializing"),
        (
            json!({"phase": "Initialized", "conditions": [promoted]}),
            "Healthy",
            "Canary analysis completed successfully",
        ),
        (
            json!({"phase": "Succeeded", "conditions": [promoted]}),
            "Healthy",
            "Canary analysis completed successfully",
        ),
        (json!({"phase": "Progressing"}), "Progressing", "Canary is Progressing"),
        (json!({"phase": "Promoting"}), "Progressing", "Canary is Promoting"),
        (json!({"phase": "Finalising"}), "Progressing", "Canary is Finalising"),
        (json!({"phase": "Waiting"}), "Suspended", "Canary is Waiting"),
        (json!({"phase": "WaitingPromotion"}), "Suspended", "Canary is WaitingPromotion"),
        (json!({"phase": "Failed"}), "Degraded", "Canary is Failed"),
        (
            json!({"phase": "Succeeded", "conditions": [promoted, stalled]}),
            "Degraded",
            "revision abc failed before: quarantined",
        ),
        (
            json!({"phase": "Progressing", "conditions": [{"type": "Stalled", "status": "False", "message": "ok"}]}),
            "Progressing",
            "Canary is Progressing",
        ),
    ];
    for (status, want_status, want_message) in cases {
        let (got_status, got_message) = health(&canary(status.clone()));
        assert_eq!(
            (got_status.as_str(), got_message.as_str()),
            (want_status, want_message),
            "status {status}"
        );
    }
}

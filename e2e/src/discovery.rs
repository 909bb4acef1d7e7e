//! Legacy (non-aggregated) discovery documents: `/version`, `/api`, `/apis`, group and resource lists.

use serde_json::{Value, json};

use crate::resource::{Registry, VERBS};

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-serin-testbed",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api` (APIVersions).
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }],
    })
}

/// One APIGroup entry.
fn group_entry(name: &str, versions: &[String]) -> Value {
    let gvs: Vec<Value> =
        versions.iter().map(|v| json!({ "groupVersion": format!("{name}/{v}"), "version": v })).collect();
    let preferred = gvs.first().cloned().unwrap_or(Value::Null);
    json!({ "name": name, "versions": gvs, "preferredVersion": preferred })
}

/// `/apis` (APIGroupList).
pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry.groups().iter().map(|(g, vs)| group_entry(g, vs)).collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `/apis/<group>` (APIGroup), if the group is served.
pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    registry.groups().into_iter().find(|(g, _)| g == name).map(|(g, vs)| {
        let mut entry = group_entry(&g, &vs);
        if let Some(o) = entry.as_object_mut() {
            o.insert("kind".into(), "APIGroup".into());
            o.insert("apiVersion".into(), "v1".into());
        }
        entry
    })
}

/// `/api/v1` or `/apis/<group>/<version>` (APIResourceList), if served.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in registry.all().iter().filter(|r| r.group == group && r.version == version) {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
            "shortNames": r.short_names,
            "storageVersionHash": "",
        }));
        if r.has_status {
            resources.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() && !(group.is_empty() && version == "v1") {
        return None;
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources }))
}

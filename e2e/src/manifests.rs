//! Manifest builders for tests and scenarios: the demo Deployment and its Service, as YAML
//! (for Git) or JSON (for the API).

use serde_json::{Value, json};

/// A Deployment of the demo app: label `app: <name>`, one container `demo` running `image`.
pub fn deployment(namespace: &str, name: &str, image: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "demo",
                    "image": image,
                    "ports": [{"name": "http", "containerPort": 8080}],
                }]},
            },
        },
    })
}

/// A ClusterIP Service selecting `app: <app>` on port 80.
pub fn service(namespace: &str, name: &str, app: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"app": app},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    })
}

/// A Namespace.
pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// Renders objects as one multi-document YAML file.
pub fn to_yaml(objects: &[Value]) -> String {
    objects.iter().map(|o| serde_norway::to_string(o).unwrap_or_default()).collect::<Vec<_>>().join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_round_trips() {
        let objs = vec![namespace("demo"), deployment("demo", "podinfo", "demo:1.0.0", 2)];
        let text = to_yaml(&objs);
        let back: Vec<Value> = serde_norway::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        assert_eq!(back, objs);
    }
}

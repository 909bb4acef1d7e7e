//! The revision of a workload: a hash of its pod template plus the content of the ConfigMaps
//! and Secrets it references. A new revision is what starts an analysis; a revision that
//! failed is remembered by this identity.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// 64-bit FNV-1a: small, stable across versions and platforms, and good enough to tell
/// revisions apart (not a security boundary).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Hash of a pod template (Flagger's `lastAppliedSpec`), from its canonical JSON form:
/// struct fields in declaration order and maps sorted by key, so equal templates always hash
/// equal.
pub fn pod_template_hash(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    format!("{:016x}", fnv1a(&json))
}

/// Checksum of a ConfigMap's or Secret's data, as stored in `status.trackedConfigs`.
pub fn config_checksum<V: AsRef<[u8]>>(data: &BTreeMap<String, V>) -> String {
    let mut hash_input = Vec::new();
    for (key, value) in data {
        hash_input.extend_from_slice(key.as_bytes());
        hash_input.push(0);
        hash_input.extend_from_slice(value.as_ref());
        hash_input.push(0);
    }
    format!("{:016x}", fnv1a(&hash_input))
}

/// The revision: the pod-template hash combined with every tracked config's checksum, so a
/// changed ConfigMap is a new revision even when the Deployment did not change.
pub fn revision(template_hash: &str, tracked_configs: &BTreeMap<String, String>) -> String {
    if tracked_configs.is_empty() {
        return template_hash.to_string();
    }
    let mut input = template_hash.as_bytes().to_vec();
    for (key, checksum) in tracked_configs {
        input.push(0);
        input.extend_from_slice(key.as_bytes());
        input.push(b'=');
        input.extend_from_slice(checksum.as_bytes());
    }
    format!("{:016x}", fnv1a(&input))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn template(image: &str, labels: serde_json::Value) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": image}]}
        }))
        .expect("template")
    }

    #[test]
    fn equal_templates_hash_equal_and_changes_show() {
        let a = template("demo:1.0.0", json!({"app": "demo", "tier": "web"}));
        let same_other_order = template("demo:1.0.0", json!({"tier": "web", "app": "demo"}));
        let new_image = template("demo:2.0.0", json!({"app": "demo", "tier": "web"}));
        assert_eq!(pod_template_hash(&a), pod_template_hash(&same_other_order));
        assert_ne!(pod_template_hash(&a), pod_template_hash(&new_image));
        assert_eq!(pod_template_hash(&a).len(), 16);
    }

    #[test]
    fn known_fnv_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn config_content_changes_the_revision() {
        let data = |v: &str| BTreeMap::from([("key".to_string(), v.to_string())]);
        assert_eq!(config_checksum(&data("a")), config_checksum(&data("a")));
        assert_ne!(config_checksum(&data("a")), config_checksum(&data("b")));
        // Key/value boundaries matter: {"ab": "c"} is not {"a": "bc"}.
        let ab = BTreeMap::from([("ab".to_string(), "c".to_string())]);
        let a = BTreeMap::from([("a".to_string(), "bc".to_string())]);
        assert_ne!(config_checksum(&ab), config_checksum(&a));

        let hash = "0123456789abcdef";
        assert_eq!(revision(hash, &BTreeMap::new()), hash);
        let v1 = BTreeMap::from([("ConfigMap/app".to_string(), config_checksum(&data("a")))]);
        let v2 = BTreeMap::from([("ConfigMap/app".to_string(), config_checksum(&data("b")))]);
        assert_ne!(revision(hash, &v1), revision(hash, &v2));
        assert_ne!(revision(hash, &v1), hash);
    }
}

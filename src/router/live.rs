//! A routing object as Serin reads it: the JSON the API server sent, decoded once (per watch
//! event or live read) and shared. Routers read the split in force on every tick; with the
//! object held as JSON behind an `Arc`, such a read is a reference-count increment, where a
//! [`kube::api::DynamicObject`] had to be converted to JSON on each read. The decoding skips
//! `managedFields` without building it (routers never read it; it is most of an object's size).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ApiResource;
use kube::core::{DynamicResourceScope, Resource};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// The metadata field the API server keeps for server-side apply.
const MANAGED_FIELDS: &str = "managedFields";

/// An object of any kind, as JSON; usable with `Api`, watchers and reflector stores (its
/// dynamic type is the [`ApiResource`], like `DynamicObject`'s).
#[derive(Clone, Debug)]
pub struct LiveObject {
    /// The identity the reflector and the cache go by: name, namespace, uid, resourceVersion.
    /// Everything else of the metadata is in `json` only.
    identity: ObjectMeta,
    json: Arc<Value>,
}

impl LiveObject {
    /// The object as the API server sent it, without `metadata.managedFields`.
    pub fn json(&self) -> &Arc<Value> {
        &self.json
    }

    /// Builds one from JSON (e.g. in tests); `managedFields` is dropped as in decoding.
    pub fn from_json(mut json: Value) -> Self {
        if let Some(metadata) = json.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove(MANAGED_FIELDS);
        }
        Self { identity: identity(&json), json: Arc::new(json) }
    }
}

fn identity(json: &Value) -> ObjectMeta {
    let field = |key: &str| json["metadata"][key].as_str().map(str::to_string);
    ObjectMeta {
        name: field("name"),
        namespace: field("namespace"),
        uid: field("uid"),
        resource_version: field("resourceVersion"),
        ..ObjectMeta::default()
    }
}

impl<'de> Deserialize<'de> for LiveObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = Level::Object.deserialize(deserializer)?;
        Ok(Self { identity: identity(&json), json: Arc::new(json) })
    }
}

impl Serialize for LiveObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

/// A JSON object, built as is except for one level down: the object's `metadata`, decoded by
/// the same visitor with `managedFields` skipped unbuilt.
#[derive(Clone, Copy)]
enum Level {
    /// The object itself.
    Object,
    /// Its `metadata`.
    Metadata,
}

impl<'de> DeserializeSeed<'de> for Level {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Level {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Level::Object => "a Kubernetes object",
            Level::Metadata => "object metadata",
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = match (self, key.as_str()) {
                (Level::Object, "metadata") => map.next_value_seed(Level::Metadata)?,
                (Level::Metadata, MANAGED_FIELDS) => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                _ => map.next_value()?,
            };
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

impl Resource for LiveObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.identity
    }

    /// Changes only the identity kept beside the JSON, not the JSON: nothing in Serin mutates
    /// a read object's metadata.
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.identity
    }
}

#[cfg(test)]
mod tests {
    use kube::ResourceExt;
    use serde_json::json;

    use super::*;

    fn served() -> Value {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {
                "name": "podinfo", "namespace": "test", "uid": "u-1", "resourceVersion": "42",
                "labels": {"app": "podinfo"},
                "managedFields": [{"manager": "serin-router", "operation": "Apply",
                                   "fieldsV1": {"f:spec": {"f:rules": {}}}}],
            },
            "spec": {"rules": [{"backendRefs": [{"name": "podinfo-primary", "weight": 90}]}]},
            "status": {"parents": []},
        })
    }

    #[test]
    fn decodes_the_whole_object_but_managed_fields() {
        let text = served().to_string();
        let object: LiveObject = serde_json::from_str(&text).expect("decodes");
        let mut expected = served();
        expected["metadata"].as_object_mut().expect("metadata").remove("managedFields");
        assert_eq!(**object.json(), expected);
        assert_eq!(object.name_any(), "podinfo");
        assert_eq!(object.namespace().as_deref(), Some("test"));
        assert_eq!(object.uid().as_deref(), Some("u-1"));
        assert_eq!(object.resource_version().as_deref(), Some("42"));
        assert_eq!(serde_json::to_value(&object).expect("encodes"), expected);
        assert_eq!(**LiveObject::from_json(served()).json(), expected, "same as decoding");
    }

    #[test]
    fn decodes_inside_lists_and_watch_events() {
        let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "7"},
                          "items": [served()]})
        .to_string();
        let list: kube::core::ObjectList<LiveObject> = serde_json::from_str(&list).expect("list");
        assert_eq!(list.items[0].resource_version().as_deref(), Some("42"));
        for text in [
            json!({"type": "MODIFIED", "object": served()}).to_string(),
            format!(r#"{{"type":"MODIFIED","object":{}}}"#, served()),
        ] {
            let event: kube::core::WatchEvent<LiveObject> = serde_json::from_str(&text).expect("event");
            let kube::core::WatchEvent::Modified(object) = event else { panic!("{text}") };
            assert!(object.json()["metadata"].get("managedFields").is_none());
            assert_eq!(object.json()["spec"]["rules"][0]["backendRefs"][0]["weight"], 90);
        }
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        for text in [r#"[]"#, r#""HTTPRoute""#, r#"{"metadata": 5}"#, r#"{"metadata": [1]}"#] {
            assert!(serde_json::from_str::<LiveObject>(text).is_err(), "{text}");
        }
    }
}

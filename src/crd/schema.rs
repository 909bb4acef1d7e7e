//! Hand-written schema fragments for fields the derive cannot describe.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object copied through as given (e.g. Istio `trafficPolicy`): the API server keeps every
/// field, and Serin's validation does not look inside.
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true
    })
}

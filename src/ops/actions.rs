//! `serin promote|abort|retry|pause|resume NAME`: set the annotation the controller honours.

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::OpsError;
use crate::crd::Canary;
use crate::crd::annotations::{ACTION, Action};

/// The merge patch that carries a request.
pub fn patch_for(action: Action) -> Value {
    json!({"metadata": {"annotations": {ACTION: action.as_str()}}})
}

/// Sends `action` for the Canary `namespace/name`.
pub async fn send(client: Client, namespace: &str, name: &str, action: Action) -> Result<(), OpsError> {
    let api: Api<Canary> = Api::namespaced(client, namespace);
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch_for(action)))
        .await
        .map(|_| ())
        .map_err(|source| OpsError::Api { action: format!("annotating canary {namespace}/{name}"), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_is_one_annotation_change() {
        let cases = [
            (Action::Promote, "promote"),
            (Action::Abort, "abort"),
            (Action::Retry, "retry"),
            (Action::Pause, "pause"),
            (Action::Resume, "resume"),
        ];
        for (action, value) in cases {
            assert_eq!(patch_for(action), json!({"metadata": {"annotations": {"serin.dev/action": value}}}));
        }
    }
}

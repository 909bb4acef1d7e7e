//! `serin promote|abort|retry|pause|resume NAME`: set the annotation the controller honours.

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::OpsError;
use crate::crd::Canary;
use crate::crd::annotations::{ACTION, Action, PAUSED};

/// An operator request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// A one-shot action the controller clears once handled.
    Action(Action),
    /// Stop taking steps.
    Pause,
    /// Take steps again.
    Resume,
}

/// The merge patch that carries a request.
pub fn patch_for(request: Request) -> Value {
    match request {
        Request::Action(action) => json!({"metadata": {"annotations": {ACTION: action.as_str()}}}),
        Request::Pause => json!({"metadata": {"annotations": {PAUSED: "true"}}}),
        Request::Resume => json!({"metadata": {"annotations": {PAUSED: null}}}),
    }
}

/// Sends `request` for the Canary `namespace/name`.
pub async fn send(client: Client, namespace: &str, name: &str, request: Request) -> Result<(), OpsError> {
    let api: Api<Canary> = Api::namespaced(client, namespace);
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch_for(request)))
        .await
        .map(|_| ())
        .map_err(|source| OpsError::Api { action: format!("annotating canary {namespace}/{name}"), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_is_one_annotation_change() {
        assert_eq!(
            patch_for(Request::Action(Action::Promote)),
            json!({"metadata": {"annotations": {"serin.dev/action": "promote"}}})
        );
        assert_eq!(
            patch_for(Request::Action(Action::Retry)),
            json!({"metadata": {"annotations": {"serin.dev/action": "retry"}}})
        );
        assert_eq!(
            patch_for(Request::Pause),
            json!({"metadata": {"annotations": {"serin.dev/paused": "true"}}})
        );
        assert_eq!(
            patch_for(Request::Resume),
            json!({"metadata": {"annotations": {"serin.dev/paused": null}}})
        );
    }
}

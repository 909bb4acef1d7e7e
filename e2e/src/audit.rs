//! The request log of the API stand-in, like a kube-apiserver audit log: every resource request
//! with the authorization attributes RBAC would check (user, verb, API group, resource,
//! subresource, namespace, name). Tests use it to check that a ClusterRole allows everything a
//! client did. The user is the `Impersonate-User` header (kube-rs sends it for
//! `auth_info.impersonate`), since the stand-in has no authentication.

use axum::http::{HeaderMap, Method};

/// One resource request as RBAC sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// The impersonated user, when the client sent `Impersonate-User`.
    pub user: Option<String>,
    /// The Kubernetes verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete` or
    /// `deletecollection`.
    pub verb: String,
    /// API group (empty for the core group).
    pub group: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource (`status`), if any.
    pub subresource: Option<String>,
    /// Namespace of a namespaced request.
    pub namespace: Option<String>,
    /// Object name, if the request names one.
    pub name: Option<String>,
    /// HTTP status code of the answer.
    pub code: u16,
}

impl AuditRecord {
    /// `resource` or `resource/subresource`, the form RBAC rules use.
    pub fn resource_path(&self) -> String {
        match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.clone(),
        }
    }

    /// Whether the request created an object (a server-side apply or other patch answered 201).
    /// The kube-apiserver authorizes such a patch as `create` too.
    pub fn created(&self) -> bool {
        self.code == 201
    }
}

/// The Kubernetes verb of a request (the kube-apiserver's `RequestInfo` rules).
pub fn verb(method: &Method, named: bool, watch: bool) -> &'static str {
    match *method {
        Method::GET if watch => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

/// The impersonated user of a request.
pub fn user(headers: &HeaderMap) -> Option<String> {
    headers.get("impersonate-user").and_then(|v| v.to_str().ok()).map(str::to_string)
}

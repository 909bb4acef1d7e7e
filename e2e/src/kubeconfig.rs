//! Kubeconfig documents pointing kube clients (kube-rs, kubectl) at the stand-in.

/// Name used for the cluster, user and context entries.
pub const CONTEXT: &str = "serin-testbed";

/// Renders a kubeconfig for `server_url` (plain `http://`, no credentials, namespace `default`).
pub fn render(server_url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: {server_url}
users:
- name: {CONTEXT}
  user: {{}}
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: {CONTEXT}
    namespace: default
current-context: {CONTEXT}
preferences: {{}}
"
    )
}

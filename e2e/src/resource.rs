//! The resource registry: built-in kinds plus kinds registered by CustomResourceDefinitions.

use serde_json::Value;

/// Verbs served for every resource.
pub const VERBS: &[&str] =
    &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// One served resource (group, version, plural) and what the server knows about it.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    /// API group; empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Plural resource name, e.g. `deployments`.
    pub plural: String,
    /// Singular name, e.g. `deployment`.
    pub singular: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names, e.g. `deploy`.
    pub short_names: Vec<String>,
    /// Whether a `/status` subresource exists (status is then separate from the main resource).
    pub has_status: bool,
    /// OpenAPI v3 schema of a CRD version, when registered from a CRD.
    pub schema: Option<Value>,
    /// Whether the kind came from a CRD (strategic merge patch is then unsupported).
    pub custom: bool,
    /// The schema's `x-kubernetes-validations`, compiled once at registration.
    pub cel: Option<std::sync::Arc<kube::core::cel::CompiledSchema>>,
}

impl ResourceInfo {
    /// Whether an update (PUT) may leave out `metadata.resourceVersion`. The built-in kinds
    /// served here allow it (their registry strategies' `AllowUnconditionalUpdate` is true);
    /// custom resources never do (`customResourceStrategy.AllowUnconditionalUpdate` is false,
    /// status subresource included): such an update is rejected with 422 Invalid.
    pub fn allows_unconditional_update(&self) -> bool {
        !self.custom
    }

    /// `apiVersion` string for objects of this resource.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `plural.group` (or just `plural` for core) as used in error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// `kind.group` as used in validation error messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() { self.kind.clone() } else { format!("{}.{}", self.kind, self.group) }
    }
}

/// Builds a built-in resource description.
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    has_status: bool,
) -> ResourceInfo {
    ResourceInfo {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        has_status,
        schema: None,
        custom: false,
        cel: None,
    }
}

/// The built-in kinds Serin uses.
pub fn builtins() -> Vec<ResourceInfo> {
    vec![
        builtin("", "v1", "namespaces", "Namespace", false, &["ns"], true),
        builtin("", "v1", "services", "Service", true, &["svc"], true),
        builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"], false),
        builtin("", "v1", "secrets", "Secret", true, &[], false),
        builtin("", "v1", "events", "Event", true, &["ev"], false),
        builtin("", "v1", "pods", "Pod", true, &["po"], true),
        builtin("apps", "v1", "deployments", "Deployment", true, &["deploy"], true),
        builtin("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"], true),
        builtin(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            true,
            &["hpa"],
            true,
        ),
        builtin("coordination.k8s.io", "v1", "leases", "Lease", true, &[], false),
        builtin("networking.k8s.io", "v1", "ingresses", "Ingress", true, &["ing"], true),
        builtin("events.k8s.io", "v1", "events", "Event", true, &["ev"], false),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
        ),
    ]
}

/// Whether `info` is the CustomResourceDefinition resource.
pub fn is_crd(info: &ResourceInfo) -> bool {
    info.group == "apiextensions.k8s.io" && info.plural == "customresourcedefinitions"
}

/// Resources described by a CRD object (one per served version). Malformed CRDs yield nothing.
pub fn from_crd(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let (Some(group), Some(plural), Some(kind)) =
        (spec["group"].as_str(), spec["names"]["plural"].as_str(), spec["names"]["kind"].as_str())
    else {
        return Vec::new();
    };
    let singular =
        spec["names"]["singular"].as_str().map(str::to_string).unwrap_or_else(|| kind.to_lowercase());
    let short_names: Vec<String> = spec["names"]["shortNames"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    spec["versions"]
        .as_array()
        .map(|versions| {
            versions
                .iter()
                .filter(|v| v["served"].as_bool().unwrap_or(true))
                .filter_map(|v| {
                    let schema = v["schema"].get("openAPIV3Schema").cloned();
                    let cel = schema
                        .as_ref()
                        .filter(|s| s.to_string().contains("x-kubernetes-validations"))
                        .map(|s| std::sync::Arc::new(kube::core::cel::compile_schema(s)));
                    Some(ResourceInfo {
                        group: group.into(),
                        version: v["name"].as_str()?.into(),
                        plural: plural.into(),
                        singular: singular.clone(),
                        kind: kind.into(),
                        namespaced,
                        short_names: short_names.clone(),
                        has_status: v["subresources"].get("status").is_some(),
                        schema,
                        custom: true,
                        cel,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// All resources the server currently serves.
#[derive(Debug, Clone)]
pub struct Registry {
    resources: Vec<ResourceInfo>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry { resources: builtins() }
    }
}

impl Registry {
    /// Finds a resource by group, version and plural.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceInfo> {
        self.resources.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// All resources, in registration order.
    pub fn all(&self) -> &[ResourceInfo] {
        &self.resources
    }

    /// Registers (or replaces) the resources of a CRD; returns the CRD's group and plural.
    pub fn register_crd(&mut self, crd: &Value) {
        let infos = from_crd(crd);
        if let Some(first) = infos.first() {
            let (g, p) = (first.group.clone(), first.plural.clone());
            self.resources.retain(|r| !(r.custom && r.group == g && r.plural == p));
        }
        self.resources.extend(infos);
    }

    /// Removes the resources of a CRD.
    pub fn unregister_crd(&mut self, crd: &Value) {
        let group = crd["spec"]["group"].as_str().unwrap_or_default();
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
        self.resources.retain(|r| !(r.custom && r.group == group && r.plural == plural));
    }

    /// Served group/versions, core excluded, in first-seen order: `(group, [versions])`.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in self.resources.iter().filter(|r| !r.group.is_empty()) {
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version.clone()),
                Some(_) => {}
                None => out.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        out
    }
}

//! The `Canary` custom resource: how one workload is released. Field names and meanings follow
//! Flagger's `flagger.app/v1beta1` Canary so that migrating means changing `apiVersion`; Serin's
//! additions are marked as such.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    CrossNamespaceObjectReference, CustomMetadata, HttpMatchRequest, SecretReference, StringMatch,
    UnmanagedMetadata,
};
use super::status::CanaryStatus;

/// Go-style duration such as `30s`, `1m`, `1m30s` or `500ms`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

/// Desired state of a Canary: the workload under release, how traffic reaches it and how each
/// step is judged.
// Each `printcolumn(...)` repeats `type_`/`priority` keys, which clippy mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.provider) || self.provider != 'nginx' || has(self.ingressRef)")
        .message("provider nginx needs ingressRef").field_path(".ingressRef"),
    validation = Rule::new("!has(self.provider) || !self.provider.startsWith('gatewayapi') || (has(self.service.gatewayRefs) && size(self.service.gatewayRefs) > 0)")
        .message("provider gatewayapi needs service.gatewayRefs").field_path(".service.gatewayRefs")
)]
#[kube(
    group = "serin.dev",
    version = "v1alpha1",
    kind = "Canary",
    plural = "canaries",
    singular = "canary",
    shortname = "canary",
    category = "all",
    namespaced,
    status = "CanaryStatus",
    printcolumn(name = "Status", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Weight", type_ = "integer", json_path = ".status.canaryWeight"),
    printcolumn(name = "FailedChecks", type_ = "integer", json_path = ".status.failedChecks"),
    printcolumn(name = "Revision", type_ = "string", json_path = ".status.revision"),
    printcolumn(name = "Suspended", type_ = "boolean", json_path = ".spec.suspend", priority = 1),
    printcolumn(name = "Interval", type_ = "string", json_path = ".spec.analysis.interval", priority = 1),
    printcolumn(
        name = "StepWeight",
        type_ = "integer",
        json_path = ".spec.analysis.stepWeight",
        priority = 1
    ),
    printcolumn(name = "MaxWeight", type_ = "integer", json_path = ".spec.analysis.maxWeight", priority = 1),
    printcolumn(name = "LastTransitionTime", type_ = "date", json_path = ".status.lastTransitionTime")
)]
#[serde(rename_all = "camelCase")]
pub struct CanarySpec {
    /// Traffic router for this canary; overrides the controller's `--provider` flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// Prometheus URL for the builtin metrics; overrides the controller's `--metrics-server` flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_server: Option<String>,
    /// The workload under release.
    pub target_ref: TargetRef,
    /// HorizontalPodAutoscaler (`autoscaling/v2`) or KEDA ScaledObject of the target; Serin
    /// copies it to `<name>-primary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler_ref: Option<AutoscalerRef>,
    /// The Ingress to canary (required for `nginx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_ref: Option<KindedRef>,
    /// The APISIX route to canary (accepted for Flagger compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_ref: Option<KindedRef>,
    /// The Gloo Upstream whose settings are copied (accepted for Flagger compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ref: Option<KindedRef>,
    /// How the ClusterIP Services and routing objects are generated.
    pub service: CanaryServiceSpec,
    /// How each release is analysed.
    pub analysis: AnalysisSpec,
    /// Seconds the canary (or the primary) may go without progress before the release fails.
    /// Default 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub progress_deadline_seconds: Option<i32>,
    /// Promote without metrics or webhooks (the progress deadline still applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_analysis: Option<bool>,
    /// On deletion, restore the target's replicas, the apex Service and the routing objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_on_deletion: Option<bool>,
    /// Pause every run of this canary; a run in progress freezes with its weights untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Serin: revert the change in Git when a release is rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitops: Option<GitOpsSpec>,
}

/// Traffic routers, with Flagger's provider strings. Parsing accepts every Flagger value so a
/// migrated manifest is understood; `validate` says which ones Serin does not route.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Provider {
    /// Kubernetes Services only: blue/green by switching the apex Service selector.
    #[serde(rename = "kubernetes")]
    Kubernetes,
    /// Istio VirtualService and DestinationRules.
    #[serde(rename = "istio")]
    Istio,
    /// Linkerd (2.12+ through Gateway API HTTPRoute).
    #[serde(rename = "linkerd")]
    Linkerd,
    /// Gateway API HTTPRoute, `gateway.networking.k8s.io/v1`.
    #[serde(rename = "gatewayapi:v1")]
    GatewayApiV1,
    /// Gateway API HTTPRoute, `gateway.networking.k8s.io/v1beta1`.
    #[serde(rename = "gatewayapi:v1beta1")]
    GatewayApiV1Beta1,
    /// SMI TrafficSplit v1alpha1.
    #[serde(rename = "smi:v1alpha1")]
    SmiV1Alpha1,
    /// SMI TrafficSplit v1alpha2.
    #[serde(rename = "smi:v1alpha2")]
    SmiV1Alpha2,
    /// SMI TrafficSplit v1alpha3.
    #[serde(rename = "smi:v1alpha3")]
    SmiV1Alpha3,
    /// NGINX Ingress canary annotations.
    #[serde(rename = "nginx")]
    Nginx,
    /// Traefik weighted TraefikService.
    #[serde(rename = "traefik")]
    Traefik,
    /// Contour HTTPProxy.
    #[serde(rename = "contour")]
    Contour,
    /// Flagger's APISIX router (not supported by Serin).
    #[serde(rename = "apisix")]
    Apisix,
    /// Flagger's App Mesh router (not supported by Serin; App Mesh is end-of-life).
    #[serde(rename = "appmesh")]
    AppMesh,
    /// Flagger's App Mesh v1beta2 router (not supported by Serin).
    #[serde(rename = "appmesh:v1beta2")]
    AppMeshV1Beta2,
    /// Flagger's Gloo Edge router (not supported by Serin).
    #[serde(rename = "gloo")]
    Gloo,
    /// Flagger's Knative router (not supported by Serin).
    #[serde(rename = "knative")]
    Knative,
    /// Flagger's Kuma router (not supported by Serin).
    #[serde(rename = "kuma")]
    Kuma,
    /// Flagger's Open Service Mesh router (not supported by Serin; OSM is archived).
    #[serde(rename = "osm")]
    Osm,
    /// Flagger's Skipper router (not supported by Serin).
    #[serde(rename = "skipper")]
    Skipper,
}

impl Provider {
    /// Every provider, in declaration order.
    pub const ALL: [Provider; 19] = [
        Provider::Kubernetes,
        Provider::Istio,
        Provider::Linkerd,
        Provider::GatewayApiV1,
        Provider::GatewayApiV1Beta1,
        Provider::SmiV1Alpha1,
        Provider::SmiV1Alpha2,
        Provider::SmiV1Alpha3,
        Provider::Nginx,
        Provider::Traefik,
        Provider::Contour,
        Provider::Apisix,
        Provider::AppMesh,
        Provider::AppMeshV1Beta2,
        Provider::Gloo,
        Provider::Knative,
        Provider::Kuma,
        Provider::Osm,
        Provider::Skipper,
    ];

    /// The provider string as written in a manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Kubernetes => "kubernetes",
            Provider::Istio => "istio",
            Provider::Linkerd => "linkerd",
            Provider::GatewayApiV1 => "gatewayapi:v1",
            Provider::GatewayApiV1Beta1 => "gatewayapi:v1beta1",
            Provider::SmiV1Alpha1 => "smi:v1alpha1",
            Provider::SmiV1Alpha2 => "smi:v1alpha2",
            Provider::SmiV1Alpha3 => "smi:v1alpha3",
            Provider::Nginx => "nginx",
            Provider::Traefik => "traefik",
            Provider::Contour => "contour",
            Provider::Apisix => "apisix",
            Provider::AppMesh => "appmesh",
            Provider::AppMeshV1Beta2 => "appmesh:v1beta2",
            Provider::Gloo => "gloo",
            Provider::Knative => "knative",
            Provider::Kuma => "kuma",
            Provider::Osm => "osm",
            Provider::Skipper => "skipper",
        }
    }

    /// Whether Serin has a traffic router for this provider.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            Provider::Kubernetes
                | Provider::Istio
                | Provider::Linkerd
                | Provider::GatewayApiV1
                | Provider::GatewayApiV1Beta1
                | Provider::SmiV1Alpha1
                | Provider::SmiV1Alpha2
                | Provider::SmiV1Alpha3
                | Provider::Nginx
                | Provider::Traefik
                | Provider::Contour
        )
    }

    /// Whether the router can mirror (shadow) traffic to the canary.
    pub fn supports_mirroring(self) -> bool {
        matches!(
            self,
            Provider::Istio | Provider::GatewayApiV1 | Provider::GatewayApiV1Beta1 | Provider::Traefik
        )
    }

    /// Whether the router can send the requests matching `analysis.match` to the canary (A/B
    /// testing); SMI TrafficSplits and TraefikServices have no request matching.
    pub fn supports_ab_testing(self) -> bool {
        matches!(
            self,
            Provider::Istio
                | Provider::Linkerd
                | Provider::GatewayApiV1
                | Provider::GatewayApiV1Beta1
                | Provider::Nginx
                | Provider::Contour
        )
    }

    /// Whether the router can pin sessions to the canary with a cookie.
    pub fn supports_session_affinity(self) -> bool {
        matches!(self, Provider::Istio | Provider::GatewayApiV1 | Provider::GatewayApiV1Beta1)
    }

    /// Whether the router shifts traffic by weight (every router except plain Kubernetes).
    pub fn supports_weights(self) -> bool {
        self != Provider::Kubernetes
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Workload kinds a Canary can release.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TargetKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` DaemonSet: accepted by the schema (Flagger's field), refused by Serin's
    /// validation until DaemonSet releases are implemented.
    DaemonSet,
    /// A plain Kubernetes Service (or Knative Service in Flagger).
    Service,
}

/// The workload under release.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// API version of the workload, e.g. `apps/v1`.
    pub api_version: String,
    /// Kind of the workload.
    pub kind: TargetKind,
    /// Name of the workload, in the Canary's namespace.
    #[schemars(length(min = 1))]
    pub name: String,
}

impl TargetRef {
    /// The kind as written in a manifest.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            TargetKind::Deployment => "Deployment",
            TargetKind::DaemonSet => "DaemonSet",
            TargetKind::Service => "Service",
        }
    }
}

/// Autoscaler kinds Serin copies for the primary.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AutoscalerKind {
    /// `autoscaling/v2` HorizontalPodAutoscaler.
    HorizontalPodAutoscaler,
    /// KEDA `keda.sh/v1alpha1` ScaledObject.
    ScaledObject,
}

/// The autoscaler of the target.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerRef {
    /// API version of the autoscaler, e.g. `autoscaling/v2`.
    pub api_version: String,
    /// Kind of the autoscaler.
    pub kind: AutoscalerKind,
    /// Name of the autoscaler.
    #[schemars(length(min = 1))]
    pub name: String,
    /// KEDA: replacement queries for the primary's ScaledObject, keyed by trigger name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_scaler_queries: Option<BTreeMap<String, String>>,
    /// Replica bounds for the primary's copy of the autoscaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_scaler_replicas: Option<ScalerReplicas>,
}

/// Replica bounds for a copied autoscaler.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas")
        .message("minReplicas must not exceed maxReplicas")
)]
pub struct ScalerReplicas {
    /// Minimum replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_replicas: Option<i32>,
    /// Maximum replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_replicas: Option<i32>,
}

/// A reference to an object of a given kind in the Canary's namespace (`ingressRef`, `routeRef`,
/// `upstreamRef`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KindedRef {
    /// API version of the referent.
    pub api_version: String,
    /// Kind of the referent.
    pub kind: String,
    /// Name of the referent.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Namespace of the referent (Gloo upstreams only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// How Services and routing objects are generated for the canary.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryServiceSpec {
    /// Apex Service name; defaults to `targetRef.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port of the generated Services.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Name of the port; default `http` (use `grpc` for gRPC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    /// Container port number or name; defaults to `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    /// Application protocol of the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    /// Also expose every other container port of the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_discovery: Option<bool>,
    /// Generate headless Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headless: Option<bool>,
    /// Traffic distribution copied to the generated Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_distribution: Option<TrafficDistribution>,
    /// Request timeout on the generated route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
    /// Gateway API: backend request timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub backend_timeout: Option<String>,
    /// Retry policy on the generated route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Istio Gateways attached to the VirtualService (default: the mesh gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<Vec<String>>,
    /// Gateway API parent references of the HTTPRoute (required for `gatewayapi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub gateway_refs: Option<Vec<ParentReference>>,
    /// Host names of the VirtualService or HTTPRoute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Istio: generate a delegate VirtualService (no hosts or gateways).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<bool>,
    /// Istio DestinationRule traffic policy, copied as given to both DestinationRules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::crd::schema::preserve_unknown_object")]
    pub traffic_policy: Option<serde_json::Value>,
    /// Request match conditions of the generated route.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<Vec<HttpMatchRequest>>,
    /// URI and authority rewrite on the generated route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    /// Header operations on the generated route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<HeaderOperations>,
    /// Istio CORS policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,
    /// Gateway API request mirror filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Vec<HttpRequestMirror>>,
    /// App Mesh mesh name (accepted for Flagger compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_name: Option<String>,
    /// App Mesh backends (accepted for Flagger compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends: Option<Vec<String>>,
    /// Metadata for the apex Service and routing objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apex: Option<CustomMetadata>,
    /// Metadata for the primary Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<CustomMetadata>,
    /// Metadata for the canary Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CustomMetadata>,
    /// Metadata keys Serin leaves alone on generated objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmanaged_metadata: Option<UnmanagedMetadata>,
}

/// Service traffic distribution preference.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TrafficDistribution {
    /// Prefer endpoints close to the client.
    PreferClose,
    /// Prefer endpoints in the same zone.
    PreferSameZone,
    /// Prefer endpoints on the same node.
    PreferSameNode,
}

/// Retry policy for HTTP requests.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRetry {
    /// Number of retries for a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub attempts: Option<i32>,
    /// Timeout per attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub per_try_timeout: Option<String>,
    /// Conditions under which a retry happens, e.g. `gateway-error,connect-failure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
}

/// URI and authority rewrite.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct HttpRewrite {
    /// Replacement URI (or prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Replacement authority (Host header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Gateway API rewrite type: `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

/// Request and response header operations.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct HeaderOperations {
    /// Operations on request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperation>,
    /// Operations on response headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderOperation>,
}

/// One set of header operations.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct HeaderOperation {
    /// Headers to set, replacing existing values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<BTreeMap<String, String>>,
    /// Headers to append.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<BTreeMap<String, String>>,
    /// Header names to remove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<Vec<String>>,
}

/// Istio CORS policy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CorsPolicy {
    /// Allowed origins (deprecated by Istio in favour of `allowOrigins`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_origin: Option<Vec<String>>,
    /// Origin patterns allowed to make CORS requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_origins: Option<Vec<StringMatch>>,
    /// Allowed methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_methods: Option<Vec<String>>,
    /// Allowed request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_headers: Option<Vec<String>>,
    /// Headers the browser may read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose_headers: Option<Vec<String>>,
    /// How long preflight results may be cached, e.g. `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// Whether credentials may be sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
}

/// Gateway API `ParentReference`: a Gateway (or Service, for mesh routing) the HTTPRoute attaches to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// API group of the parent; default `gateway.networking.k8s.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the parent; default `Gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the parent.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the parent; defaults to the route's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Listener name on the parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// Port on the parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// Gateway API `HTTPRequestMirrorFilter`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestMirror {
    /// Where mirrored requests go.
    pub backend_ref: MirrorBackendRef,
    /// Percentage of requests to mirror.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<i32>,
}

/// Backend of a mirror filter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(
    cel,
    validation = Rule::new("(has(self.group) && self.group != '') || (has(self.kind) && self.kind != 'Service') || has(self.port)")
        .message("a Service backend needs a port")
)]
pub struct MirrorBackendRef {
    /// API group; empty for core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind; default `Service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the backend.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Port of the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// How a release is analysed: the schedule, the strategy inputs and the checks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("[has(self.stepWeight), has(self.stepWeights), has(self.iterations)].filter(x, x).size() == 1")
        .message("set exactly one strategy input: stepWeight or stepWeights (canary), or iterations (blue/green, A/B)"),
    validation = Rule::new("!has(self.maxWeight) || !has(self.stepWeight) || self.maxWeight >= self.stepWeight")
        .message("maxWeight must be at least stepWeight").field_path(".maxWeight"),
    validation = Rule::new("!has(self.mirrorWeight) || (has(self.mirror) && self.mirror)")
        .message("mirrorWeight needs mirror: true").field_path(".mirrorWeight"),
    validation = Rule::new("!has(self.match) || has(self.iterations)")
        .message("match (A/B testing) needs iterations").field_path(".match"),
    validation = Rule::new("!has(self.stepWeightPromotion) || !has(self.iterations)")
        .message("stepWeightPromotion applies to weighted canaries, not to iterations").field_path(".stepWeightPromotion")
)]
pub struct AnalysisSpec {
    /// Time between analysis steps, e.g. `1m` (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: Option<String>,
    /// Failed checks tolerated before rollback (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub threshold: Option<i32>,
    /// Highest canary weight before promotion (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_weight: Option<i32>,
    /// Weight added at each step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub step_weight: Option<i32>,
    /// Explicit weight schedule, ascending; the last entry is the effective maxWeight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), inner(range(min = 1, max = 100)))]
    pub step_weights: Option<Vec<i32>>,
    /// When set, promotion moves traffic back to the primary in steps of this weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub step_weight_promotion: Option<i32>,
    /// Number of analysis steps for blue/green and A/B testing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub iterations: Option<i32>,
    /// Mirror (shadow) traffic to the canary: for blue/green during every iteration, for
    /// canaries as one step before the first weight step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<bool>,
    /// Percentage of traffic mirrored (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub mirror_weight: Option<i32>,
    /// Percentage of primary pods that must be available for the primary to count as ready
    /// (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub primary_ready_threshold: Option<i32>,
    /// Percentage of canary pods that must be available for the canary to count as ready
    /// (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub canary_ready_threshold: Option<i32>,
    /// A/B testing: requests matching these conditions go to the canary.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<Vec<HttpMatchRequest>>,
    /// Metric checks run at every step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<MetricCheck>>,
    /// Webhooks: load tests, smoke tests, gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Vec<Webhook>>,
    /// Where alerts for this canary go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Vec<Alert>>,
    /// Pin users who reached the canary to it with a cookie (Istio, Gateway API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
}

/// One metric check of the analysis.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("!(has(self.templateRef) && has(self.query))")
        .message("set templateRef or query, not both"),
    validation = Rule::new("has(self.templateRef) || has(self.query) || self.name in ['request-success-rate', 'request-duration']")
        .message("a metric other than the builtin request-success-rate and request-duration needs templateRef or query")
        .field_path(".name"),
    validation = Rule::new("!(has(self.threshold) && has(self.thresholdRange))")
        .message("set thresholdRange or the deprecated threshold, not both")
        .field_path(".threshold"),
    validation = Rule::new("!has(self.comparative) || (has(self.judge) && self.judge == 'comparative')")
        .message("comparative settings need judge: comparative")
        .field_path(".comparative")
)]
pub struct MetricCheck {
    /// Name of the check; `request-success-rate` and `request-duration` are builtin.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Query window, rendered as `{{ interval }}` (default `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: Option<String>,
    /// Accepted range of the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_range: Option<ThresholdRange>,
    /// Deprecated: the maximum accepted value (use `thresholdRange.max`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Deprecated: an inline PromQL query against the global Prometheus (use `templateRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The MetricTemplate that holds the query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<CrossNamespaceObjectReference>,
    /// Values for `{{ variables.KEY }}` in the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_variables: Option<BTreeMap<String, String>>,
    /// Serin: what an empty, NaN or too-small result means (default `hold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_no_data: Option<OnNoData>,
    /// Serin: below this many requests in the window a result is "no data".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_requests: Option<i64>,
    /// Serin: how the value is judged (default `threshold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<Judge>,
    /// Serin: settings of `judge: comparative`; Kayenta's defaults where left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparative: Option<ComparativeSettings>,
}

/// Settings of the comparative judge (canary against primary, Mann–Whitney U plus the mean
/// ratio as effect size). A change fails the check only when it is statistically significant
/// at `confidence` **and** the mean ratio canary/primary lies beyond `allowedIncrease` (or below
/// `allowedDecrease`) in a watched `direction`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.confidence) || (double(self.confidence) > 0.0 && double(self.confidence) < 1.0)")
        .message("confidence must lie strictly between 0 and 1, e.g. 0.98")
        .field_path(".confidence"),
    validation = Rule::new("!has(self.allowedDecrease) || (double(self.allowedDecrease) > 0.0 && double(self.allowedDecrease) <= 1.0)")
        .message("allowedDecrease is a ratio in (0, 1], e.g. 0.9 tolerates 10% less")
        .field_path(".allowedDecrease")
)]
pub struct ComparativeSettings {
    /// Which change fails the canary: `increase` (latency, errors), `decrease` (success rate,
    /// throughput) or `either` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<ComparisonDirection>,
    /// Confidence level of the two-sided test, strictly between 0 and 1 (default 0.98).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Largest tolerated mean ratio canary/primary, at least 1 (default 1: any significant
    /// increase fails; 1.1 tolerates +10%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0))]
    pub allowed_increase: Option<f64>,
    /// Smallest tolerated mean ratio canary/primary, in (0, 1] (default 1: any significant
    /// decrease fails; 0.9 tolerates -10%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_decrease: Option<f64>,
    /// Fewer samples than this on either side is no data (default 10, at least 3). The samples
    /// are the range query's points over the metric's interval (60 steps per interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3))]
    pub min_samples: Option<i32>,
}

/// Which change of a compared metric is bad.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ComparisonDirection {
    /// Higher is worse.
    Increase,
    /// Lower is worse.
    Decrease,
    /// Any significant change is bad.
    Either,
}

/// Accepted range of a metric value; either bound may be left out.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max")
        .message("min must not exceed max")
)]
pub struct ThresholdRange {
    /// Lowest accepted value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest accepted value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// What a check with no data (empty result, NaN, fewer than `minRequests`) does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnNoData {
    /// Do not advance, and count it against the no-data budget (the default).
    Hold,
    /// Count it as a failed check.
    Fail,
    /// Let the step pass, with a warning Event.
    PassWithWarning,
}

/// How a metric value is judged.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Judge {
    /// The value must lie within `thresholdRange` (the default).
    Threshold,
    /// Canary against primary: Mann-Whitney U with effect size, as Kayenta does.
    Comparative,
}

/// Webhook kinds, with Flagger's timing and semantics.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum WebhookType {
    /// Flagger's empty type, treated as `rollout`.
    #[serde(rename = "")]
    Unset,
    /// Gate before the canary is scaled up.
    #[serde(rename = "confirm-rollout")]
    ConfirmRollout,
    /// Once per run, before any traffic reaches the canary; failure counts as a failed check.
    #[serde(rename = "pre-rollout")]
    PreRollout,
    /// At every analysis step, before the metric checks; failure counts as a failed check.
    #[serde(rename = "rollout")]
    Rollout,
    /// Gate before each weight increase.
    #[serde(rename = "confirm-traffic-increase")]
    ConfirmTrafficIncrease,
    /// Gate before promotion.
    #[serde(rename = "confirm-promotion")]
    ConfirmPromotion,
    /// After success or rollback; failure is logged only.
    #[serde(rename = "post-rollout")]
    PostRollout,
    /// A 2xx answer rolls the canary back.
    #[serde(rename = "rollback")]
    Rollback,
    /// Receives every event Serin records.
    #[serde(rename = "event")]
    Event,
}

impl WebhookType {
    /// The type string as written in a manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookType::Unset => "",
            WebhookType::ConfirmRollout => "confirm-rollout",
            WebhookType::PreRollout => "pre-rollout",
            WebhookType::Rollout => "rollout",
            WebhookType::ConfirmTrafficIncrease => "confirm-traffic-increase",
            WebhookType::ConfirmPromotion => "confirm-promotion",
            WebhookType::PostRollout => "post-rollout",
            WebhookType::Rollback => "rollback",
            WebhookType::Event => "event",
        }
    }

    /// The effective type: Flagger treats an empty type as `rollout`.
    pub fn effective(self) -> WebhookType {
        match self {
            WebhookType::Unset => WebhookType::Rollout,
            other => other,
        }
    }
}

/// A webhook called during the analysis, with Flagger's payload.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Name of the webhook, unique within the canary.
    #[schemars(length(min = 1))]
    pub name: String,
    /// When the webhook runs (default `rollout`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<WebhookType>,
    /// URL the payload is POSTed to.
    #[schemars(length(min = 1))]
    pub url: String,
    /// Request timeout (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
    /// Retries after a failed call (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub retries: Option<i32>,
    /// Key-value pairs sent as the payload's `metadata`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Send no alerts for this webhook's failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mute_alert: Option<bool>,
    /// Skip TLS certificate verification.
    #[serde(default, rename = "disableTLS", skip_serializing_if = "Option::is_none")]
    pub disable_tls: Option<bool>,
    /// Serin: extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Serin: a Secret whose keys are sent as request headers (e.g. `Authorization`); never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

/// Alert severities, from most to least chatty.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub enum AlertSeverity {
    /// Flagger's empty severity, treated as `info`.
    #[serde(rename = "")]
    Unset,
    /// Everything.
    #[serde(rename = "info")]
    Info,
    /// Waiting for approval, and failures.
    #[serde(rename = "warn")]
    Warn,
    /// Failures only.
    #[serde(rename = "error")]
    Error,
}

/// Where alerts of one severity go.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Name of the alert.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Lowest severity sent (default `info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<AlertSeverity>,
    /// The AlertProvider to send to.
    pub provider_ref: CrossNamespaceObjectReference,
}

/// Cookie-based session affinity for a canary run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.primaryCookieName) || self.primaryCookieName != self.cookieName")
        .message("primaryCookieName must differ from cookieName").field_path(".primaryCookieName")
)]
pub struct SessionAffinity {
    /// Cookie that pins users to the canary.
    #[schemars(length(min = 1))]
    pub cookie_name: String,
    /// Cookie that pins users to the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_cookie_name: Option<String>,
    /// Cookie lifetime in seconds (default 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_age: Option<i64>,
    /// Cookie domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Cookie path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Forbid JavaScript access to the cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_only: Option<bool>,
    /// Send the cookie over HTTPS only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
    /// Cross-site policy of the cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<SameSite>,
    /// Store the cookie in partitioned storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioned: Option<bool>,
}

/// Cookie SameSite policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SameSite {
    /// Same-site requests only.
    Strict,
    /// Same-site requests and top-level navigation.
    Lax,
    /// All requests (needs `secure`).
    None,
}

/// Serin: what happens in Git when a release is rolled back.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitOpsSpec {
    /// Revert the commits that introduced a failed release.
    pub revert: bool,
    /// Where the manifests live (default: discovered from Flux or Argo CD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<GitSource>,
    /// Push the revert to the branch, or open a pull request (default `push`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<GitMode>,
    /// Author of revert commits (default `Serin <serin@serin.dev>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<GitAuthor>,
}

/// The Git repository holding the target's manifests: either `auto: true` (find it from Flux's
/// or Argo CD's labels on the target) or an explicit `url`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("(has(self.auto) && self.auto) != has(self.url)")
        .message("set either auto: true or url")
)]
pub struct GitSource {
    /// Discover the repository from the GitOps agent that applied the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<bool>,
    /// Clone URL (`https://…`, `ssh://…`, `git@host:path` or `git://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Branch the GitOps agent syncs (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Directory of the target's manifests inside the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Secret with credentials: `username`/`password` or `token` (HTTPS), or `identity` and
    /// `known_hosts` (SSH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

/// How a revert reaches the repository.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum GitMode {
    /// Push the revert commit to the branch.
    Push,
    /// Open a pull request with the revert commit.
    PullRequest,
}

/// Author of revert commits.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct GitAuthor {
    /// Author name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Author email.
    #[schemars(length(min = 3))]
    pub email: String,
}

/// Release strategies, chosen the way Flagger chooses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Weighted traffic steps.
    Canary,
    /// `iterations` without `match`: a full switch after the iterations.
    BlueGreen,
    /// `iterations` with `match`: matched requests go to the canary.
    ABTesting,
}

impl CanarySpec {
    /// The provider in effect, given the controller's default.
    pub fn provider_or(&self, default: Provider) -> Provider {
        self.provider.unwrap_or(default)
    }

    /// The release strategy: A/B testing when `match` and `iterations` are set, blue/green
    /// when only `iterations` is, weighted canary otherwise.
    pub fn strategy(&self) -> Strategy {
        let has_match = self.analysis.match_.as_ref().is_some_and(|m| !m.is_empty());
        match (self.analysis.iterations.is_some(), has_match) {
            (true, true) => Strategy::ABTesting,
            (true, false) => Strategy::BlueGreen,
            (false, _) => Strategy::Canary,
        }
    }

    /// The apex Service name: `service.name`, or the target's name.
    pub fn service_name(&self) -> &str {
        self.service.name.as_deref().unwrap_or(&self.target_ref.name)
    }

    /// Seconds without progress before a release fails (default 600).
    pub fn progress_deadline_seconds(&self) -> i32 {
        self.progress_deadline_seconds.unwrap_or(600)
    }
}

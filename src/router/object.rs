//! Plumbing shared by the routers that write one custom routing object (HTTPRoute,
//! VirtualService, TrafficSplit, TraefikService, HTTPProxy): reading and server-side applying
//! untyped objects, the metadata Serin puts on what it owns, and [`ObjectRouter`], which turns a
//! pure [`Shape`] (object bodies from spec + routes, routes from a live object) into a
//! [`TrafficRouter`].
//!
//! Ownership rules:
//! - an object Serin creates carries an owner reference to the Canary (when its UID is known)
//!   and the Flux/Helm drift annotations; Serin server-side applies the whole body;
//! - an object that already exists without Serin's owner reference is *adopted*: its spec is
//!   recorded in [`ORIGINAL_SPEC_ANNOTATION`] first, then, for shapes that can adopt, only the
//!   routes Serin manages are changed (the user's other rules and filters stay); `finalize`
//!   applies the recorded spec back.

use std::sync::Arc;

use async_trait::async_trait;
use kube::api::{Api, ApiResource, GroupVersionKind, Patch, PatchParams};
use kube::core::Request;
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tracing::{debug, info};

use super::cache::RoutingCache;
use super::live::LiveObject;
use super::{ROUTER_FIELD_MANAGER, RouteContext, RouterError, Routes, TrafficRouter};
use crate::crd::{API_VERSION, CanarySpec, Provider};

/// Stops Flux's kustomize-controller from reverting the weights Serin sets.
pub const FLUX_RECONCILE_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/reconcile";
/// Stops Helm drift detection from reverting the weights Serin sets.
pub const HELM_DRIFT_ANNOTATION: &str = "helm.toolkit.fluxcd.io/driftDetection";
/// On objects Serin created: the name of the Canary they route for (recognised even when no
/// owner reference could be set).
pub const CREATED_FOR_ANNOTATION: &str = "serin.dev/created-for";
/// The `spec` (JSON) of an adopted object as it was before Serin first changed it.
pub const ORIGINAL_SPEC_ANNOTATION: &str = "serin.dev/original-spec";

/// An API kind a router writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RoutingKind {
    /// API group (empty for core).
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Plural resource name.
    pub plural: &'static str,
}

impl RoutingKind {
    /// `apiVersion` of the kind.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The kube `ApiResource` for dynamic access.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group, self.version, self.kind),
            self.plural,
        )
    }
}

/// One object a router wants in the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// Its kind.
    pub kind: RoutingKind,
    /// Its full body (apiVersion, kind, metadata, spec).
    pub body: Value,
}

impl Desired {
    /// The object's name, from its body.
    pub fn name(&self) -> &str {
        self.body["metadata"]["name"].as_str().unwrap_or_default()
    }
}

/// The metadata of an object Serin creates: name, namespace, the apex metadata of the Canary,
/// the drift annotations and, when the Canary's UID is known, a controller owner reference.
pub fn owned_metadata(ctx: &RouteContext<'_>, name: &str) -> Value {
    let mut labels = Map::new();
    let mut annotations = Map::new();
    if let Some(apex) = &ctx.spec.service.apex {
        for (k, v) in apex.labels.iter().flatten() {
            labels.insert(k.clone(), json!(v));
        }
        for (k, v) in apex.annotations.iter().flatten() {
            annotations.insert(k.clone(), json!(v));
        }
    }
    annotations.insert(FLUX_RECONCILE_ANNOTATION.into(), json!("disabled"));
    annotations.insert(HELM_DRIFT_ANNOTATION.into(), json!("disabled"));
    annotations.insert(CREATED_FOR_ANNOTATION.into(), json!(ctx.name));
    let mut meta = json!({"name": name, "namespace": ctx.namespace, "annotations": annotations});
    if !labels.is_empty() {
        meta["labels"] = Value::Object(labels);
    }
    if let Some(uid) = ctx.uid {
        meta["ownerReferences"] = json!([{
            "apiVersion": API_VERSION,
            "kind": "Canary",
            "name": ctx.name,
            "uid": uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }]);
    }
    meta
}

/// The metadata Serin applies on an object it adopted: the drift annotations only (no owner
/// reference: deleting the Canary must not delete the user's object).
pub fn adopted_metadata(ctx: &RouteContext<'_>, name: &str) -> Value {
    json!({
        "name": name,
        "namespace": ctx.namespace,
        "annotations": {FLUX_RECONCILE_ANNOTATION: "disabled", HELM_DRIFT_ANNOTATION: "disabled"},
    })
}

/// Whether `object` was created by Serin for this Canary (it has the Canary as owner, or Serin's
/// created-for annotation naming it).
pub fn is_owned_by_canary(ctx: &RouteContext<'_>, object: &Value) -> bool {
    object["metadata"]["annotations"][CREATED_FOR_ANNOTATION] == ctx.name
        || object["metadata"]["ownerReferences"].as_array().is_some_and(|refs| {
            refs.iter().any(|r| {
                r["kind"] == "Canary"
                    && r["name"] == ctx.name
                    && r["apiVersion"].as_str().is_some_and(|v| v.starts_with("serin.dev/"))
            })
        })
}

/// Turns two raw weights into a percentage split; `None` when both are zero or negative.
pub fn percentages(primary: i64, canary: i64, mirrored: bool) -> Option<Routes> {
    let (p, c) = (primary.max(0), canary.max(0));
    let total = p + c;
    if total == 0 {
        return None;
    }
    let canary = if total == 100 { c } else { (c * 100 + total / 2) / total };
    let canary = i32::try_from(canary).ok()?;
    Some(Routes { primary: 100 - canary, canary, mirrored })
}

/// The spec with the run-specific routing removed: no A/B match, no mirroring. Used by
/// `finalize`, which sends every request to the target's own pods.
pub fn without_run_routing(spec: &CanarySpec) -> CanarySpec {
    let mut spec = spec.clone();
    spec.analysis.match_ = None;
    spec.analysis.mirror = None;
    spec.analysis.mirror_weight = None;
    spec
}

/// Session affinity for this run: the `<name>=<value>` cookie and the `Set-Cookie` value that
/// hands it out, when `analysis.sessionAffinity` is set and the run has a cookie.
pub fn affinity(ctx: &RouteContext<'_>) -> Option<(String, String)> {
    let config = ctx.spec.analysis.session_affinity.as_ref()?;
    let cookie = ctx.affinity_cookie?;
    let cookie =
        if cookie.contains('=') { cookie.to_string() } else { format!("{}={cookie}", config.cookie_name) };
    let mut set = format!("{cookie}; Max-Age={}", config.max_age.unwrap_or(86_400));
    if let Some(domain) = &config.domain {
        set.push_str(&format!("; Domain={domain}"));
    }
    if let Some(path) = &config.path {
        set.push_str(&format!("; Path={path}"));
    }
    if config.http_only == Some(true) {
        set.push_str("; HttpOnly");
    }
    if config.secure == Some(true) {
        set.push_str("; Secure");
    }
    if let Some(Value::String(same_site)) =
        config.same_site.as_ref().and_then(|s| serde_json::to_value(s).ok())
    {
        set.push_str(&format!("; SameSite={same_site}"));
    }
    if config.partitioned == Some(true) {
        set.push_str("; Partitioned");
    }
    Some((cookie, set))
}

/// The header regex that matches requests carrying `cookie`.
pub fn cookie_regex(cookie: &str) -> String {
    format!(".*{}.*", regex::escape(cookie))
}

/// Whether the spec asks for A/B testing (`analysis.match`).
pub fn is_ab(spec: &CanarySpec) -> bool {
    spec.analysis.match_.as_ref().is_some_and(|m| !m.is_empty())
}

/// Of the splits read from each managed rule or route, in order, the one in force: the first
/// (the A/B rule in front) for A/B testing, else the last (the default rule; A/B rules left from
/// an earlier spec do not count, so a spec that drops `analysis.match` never keeps "all matching
/// requests on the canary" as a split for everyone).
pub fn pick_split(spec: &CanarySpec, mut splits: Vec<Routes>) -> Option<Routes> {
    if is_ab(spec) { splits.drain(..).next() } else { splits.pop() }
}

/// Every request to the canary Service (`<svc>-canary` selects the target's own pods).
pub const ALL_TO_CANARY: Routes = Routes { primary: 0, canary: 100, mirrored: false };

/// `Unsupported` for `provider`.
pub fn unsupported(provider: Provider, routes: Routes, reason: &'static str) -> RouterError {
    RouterError::Unsupported { provider, routes, reason }
}

/// Dynamic reads and server-side applies with Serin's router field manager; reads come from a
/// [`RoutingCache`] when one is attached and can vouch for the object.
#[derive(Clone)]
pub struct Objects {
    client: Client,
    cache: Option<Arc<RoutingCache>>,
}

impl Objects {
    /// Access through `client`, every read live.
    pub fn new(client: Client) -> Self {
        Self { client, cache: None }
    }

    /// Reads through `cache` (see [`RoutingCache`]).
    pub fn with_cache(mut self, cache: Arc<RoutingCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    fn api(&self, kind: RoutingKind, namespace: &str) -> Api<LiveObject> {
        Api::namespaced_with(self.client.clone(), namespace, &kind.api_resource())
    }

    /// The object as JSON (shared, see [`LiveObject`]), `None` when it does not exist.
    pub async fn get(
        &self,
        kind: RoutingKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Value>>, RouterError> {
        if let Some(object) = self.cache.as_ref().and_then(|c| c.get(kind, namespace, name)) {
            return Ok(Some(object.json().clone()));
        }
        let found = self.api(kind, namespace).get_opt(name).await.map_err(|source| RouterError::Api {
            action: format!("reading {} {namespace}/{name}", kind.kind),
            source,
        })?;
        // The kind is served: from now on it can be watched.
        if let Some(cache) = &self.cache {
            cache.read_live(kind, namespace, name, found.as_ref().and_then(|o| o.resource_version()));
            cache.start(&self.client, kind);
        }
        Ok(found.map(|object| object.json().clone()))
    }

    /// Server-side applies `body` (forced, field manager [`ROUTER_FIELD_MANAGER`]).
    pub async fn apply(&self, kind: RoutingKind, namespace: &str, body: &Value) -> Result<(), RouterError> {
        let name = body["metadata"]["name"].as_str().unwrap_or_default();
        debug!(kind = kind.kind, namespace, name, "applying routing object");
        let params = PatchParams::apply(ROUTER_FIELD_MANAGER).force();
        let request = Request::new(self.api(kind, namespace).resource_url())
            .patch(name, &params, &Patch::Apply(body))
            .map_err(|e| RouterError::Invalid {
                object: format!("{} {namespace}/{name}", kind.kind),
                reason: e.to_string(),
            })?;
        // Only the new resourceVersion is read back (the answer's managedFields are not parsed).
        self.client
            .request::<Written>(request)
            .await
            .map(|applied| {
                if let Some(cache) = &self.cache {
                    cache.wrote(kind, namespace, name, applied.metadata.resource_version);
                }
            })
            .map_err(|source| match &source {
                kube::Error::Api(status) if status.code == 404 => {
                    RouterError::MissingKind { kind: format!("{} ({})", kind.kind, kind.api_version()) }
                }
                _ => {
                    RouterError::Api { action: format!("applying {} {namespace}/{name}", kind.kind), source }
                }
            })
    }
}

/// The answer to a write, as far as Serin reads it: the object's new resourceVersion. Everything
/// else in the answer (spec, managedFields) is skipped without being built.
#[derive(Debug, Default, Deserialize)]
pub struct Written {
    /// The written object's metadata.
    #[serde(default)]
    pub metadata: WrittenMeta,
}

/// The metadata of a [`Written`] answer.
#[derive(Debug, Default, Deserialize)]
pub struct WrittenMeta {
    /// The object's resourceVersion after the write (its watch event carries the same one).
    #[serde(rename = "resourceVersion", default)]
    pub resource_version: Option<String>,
}

/// The pure part of a router that writes custom objects: what to write and how to read back.
pub trait Shape: Send + Sync {
    /// The provider, for errors.
    fn provider(&self) -> Provider;
    /// The kind of the main object (the one holding the weights).
    fn kind(&self) -> RoutingKind;
    /// Name of the main object.
    fn name<'a>(&self, ctx: &'a RouteContext<'_>) -> &'a str {
        ctx.spec.service_name()
    }
    /// Every object for `routes`, the main object first.
    fn build(&self, ctx: &RouteContext<'_>, routes: Routes) -> Result<Vec<Desired>, RouterError>;
    /// The split a live main object holds.
    fn read(&self, ctx: &RouteContext<'_>, object: &Value) -> Result<Routes, RouterError>;
    /// For an adopted (user-owned) main object: the apply body that changes only the routes
    /// Serin manages, or `None` if this shape takes the whole object over.
    fn adopt(
        &self,
        _ctx: &RouteContext<'_>,
        _existing: &Value,
        _routes: Routes,
    ) -> Option<Result<Value, RouterError>> {
        None
    }
}

/// A [`TrafficRouter`] for any [`Shape`].
pub struct ObjectRouter<S> {
    objects: Objects,
    shape: S,
}

impl<S: Shape> ObjectRouter<S> {
    /// A router writing `shape` through `client`.
    pub fn new(client: Client, shape: S) -> Self {
        Self { objects: Objects::new(client), shape }
    }

    /// Reads through `cache` (see [`RoutingCache`]).
    pub fn with_cache(mut self, cache: Arc<RoutingCache>) -> Self {
        self.objects = self.objects.with_cache(cache);
        self
    }

    async fn live(&self, ctx: &RouteContext<'_>) -> Result<Option<Arc<Value>>, RouterError> {
        self.objects.get(self.shape.kind(), ctx.namespace, self.shape.name(ctx)).await
    }

    async fn apply_all(&self, ctx: &RouteContext<'_>, routes: Routes) -> Result<(), RouterError> {
        self.apply_built(ctx, self.shape.build(ctx, routes)?).await
    }

    async fn apply_built(&self, ctx: &RouteContext<'_>, built: Vec<Desired>) -> Result<(), RouterError> {
        for desired in built {
            self.objects.apply(desired.kind, ctx.namespace, &desired.body).await?;
        }
        Ok(())
    }

    /// Writes `routes` into a live main object: whole body when Serin owns it, only the managed
    /// routes when adopted.
    async fn write(&self, ctx: &RouteContext<'_>, live: &Value, routes: Routes) -> Result<(), RouterError> {
        if is_owned_by_canary(ctx, live) {
            return self.apply_all(ctx, routes).await;
        }
        match self.shape.adopt(ctx, live, routes) {
            Some(body) => {
                let mut body = body?;
                record_original(&mut body, live);
                self.objects.apply(self.shape.kind(), ctx.namespace, &body).await?;
                // The secondary objects (e.g. DestinationRules) are Serin's own.
                for desired in self.shape.build(ctx, routes)?.into_iter().skip(1) {
                    self.objects.apply(desired.kind, ctx.namespace, &desired.body).await?;
                }
                Ok(())
            }
            None => {
                let mut built = self.shape.build(ctx, routes)?;
                if let Some(main) = built.first_mut() {
                    record_original(&mut main.body, live);
                    // Taken over, not created: no owner reference, or deleting the Canary
                    // would delete the user's object.
                    if let Some(meta) = main.body["metadata"].as_object_mut() {
                        meta.remove("ownerReferences");
                    }
                    if let Some(annotations) = main.body["metadata"]["annotations"].as_object_mut() {
                        annotations.remove(CREATED_FOR_ANNOTATION);
                    }
                }
                for desired in built {
                    self.objects.apply(desired.kind, ctx.namespace, &desired.body).await?;
                }
                Ok(())
            }
        }
    }
}

/// Whether `live` holds everything in `wanted` (objects: every key, recursively; lists: same
/// length, item by item; scalars: equal). Fields the server or other managers added to `live`
/// do not count.
pub fn contains(live: &Value, wanted: &Value) -> bool {
    match (live, wanted) {
        (Value::Object(l), Value::Object(w)) => {
            w.iter().all(|(k, v)| l.get(k).is_some_and(|lv| contains(lv, v)))
        }
        (Value::Array(l), Value::Array(w)) => {
            l.len() == w.len() && l.iter().zip(w).all(|(a, b)| contains(a, b))
        }
        (l, w) => l == w,
    }
}

/// Puts the live object's original spec on an apply body: the one recorded earlier if any, else
/// the live spec itself (first adoption).
fn record_original(body: &mut Value, live: &Value) {
    let recorded = live["metadata"]["annotations"][ORIGINAL_SPEC_ANNOTATION].as_str().map(str::to_string);
    let original = recorded.unwrap_or_else(|| live["spec"].to_string());
    if !body["metadata"]["annotations"].is_object() {
        body["metadata"]["annotations"] = json!({});
    }
    body["metadata"]["annotations"][ORIGINAL_SPEC_ANNOTATION] = json!(original);
}

/// The apply body that puts an adopted object back: its recorded spec, none of Serin's
/// annotations (server-side apply drops what the field manager no longer sends).
fn restore_body(kind: RoutingKind, live: &Value, original: &str) -> Result<Value, RouterError> {
    let spec: Value = serde_json::from_str(original).map_err(|e| RouterError::Invalid {
        object: format!("{} {}", kind.kind, live["metadata"]["name"]),
        reason: format!("annotation {ORIGINAL_SPEC_ANNOTATION}: {e}"),
    })?;
    Ok(json!({
        "apiVersion": kind.api_version(),
        "kind": kind.kind,
        "metadata": {"name": live["metadata"]["name"], "namespace": live["metadata"]["namespace"]},
        "spec": spec,
    }))
}

#[async_trait]
impl<S: Shape> TrafficRouter for ObjectRouter<S> {
    async fn reconcile(&self, ctx: &RouteContext<'_>) -> Result<(), RouterError> {
        match self.live(ctx).await? {
            None => {
                info!(kind = self.shape.kind().kind, name = self.shape.name(ctx), "creating routing object");
                self.apply_all(ctx, Routes::STABLE).await
            }
            Some(live) => {
                // Keep the split in force; a live object whose weights Serin cannot read gets
                // the stable split.
                let routes = self.shape.read(ctx, &live).unwrap_or(Routes::STABLE);
                self.write(ctx, &live, routes).await
            }
        }
    }

    async fn set_routes(&self, ctx: &RouteContext<'_>, routes: Routes) -> Result<(), RouterError> {
        // Refuse what the shape cannot express before touching the cluster.
        let built = self.shape.build(ctx, routes)?;
        let live = self.live(ctx).await?.ok_or_else(|| self.not_found(ctx))?;
        let in_force = |wanted: &Value| contains(&live["spec"], &wanted["spec"]);
        if is_owned_by_canary(ctx, &live) {
            // What `write` would apply is what was just built: applied as is, not built again.
            if built.first().is_some_and(|d| in_force(&d.body)) {
                debug!(name = self.shape.name(ctx), ?routes, "routes already in force");
                return Ok(());
            }
            return self.apply_built(ctx, built).await;
        }
        let wanted = self
            .shape
            .adopt(ctx, &live, routes)
            .transpose()?
            .or_else(|| built.into_iter().next().map(|d| d.body));
        if wanted.is_some_and(|w| in_force(&w)) {
            debug!(name = self.shape.name(ctx), ?routes, "routes already in force");
            return Ok(());
        }
        self.write(ctx, &live, routes).await
    }

    async fn get_routes(&self, ctx: &RouteContext<'_>) -> Result<Routes, RouterError> {
        let live = self.live(ctx).await?.ok_or_else(|| self.not_found(ctx))?;
        self.shape.read(ctx, &live)
    }

    async fn finalize(&self, ctx: &RouteContext<'_>) -> Result<(), RouterError> {
        let Some(live) = self.live(ctx).await? else { return Ok(()) };
        if let Some(original) = live["metadata"]["annotations"][ORIGINAL_SPEC_ANNOTATION].as_str() {
            info!(name = self.shape.name(ctx), "restoring the adopted routing object");
            let body = restore_body(self.shape.kind(), &live, original)?;
            return self.objects.apply(self.shape.kind(), ctx.namespace, &body).await;
        }
        let spec = without_run_routing(ctx.spec);
        let plain = RouteContext { spec: &spec, ..*ctx };
        self.apply_all(&plain, ALL_TO_CANARY).await
    }
}

impl<S: Shape> ObjectRouter<S> {
    fn not_found(&self, ctx: &RouteContext<'_>) -> RouterError {
        RouterError::NotFound(format!(
            "{} {}/{}",
            self.shape.kind().kind,
            ctx.namespace,
            self.shape.name(ctx)
        ))
    }
}

#[cfg(test)]
mod tests {
    use http::{Method, Request, Response};
    use kube::client::Body;
    use tower_test::mock;

    use super::*;
    use crate::router::testkit::{ctx, label, spec};
    use crate::router::traefik::TraefikShape;

    type Handle = mock::Handle<Request<Body>, Response<Body>>;

    const PATH: &str = "/apis/traefik.io/v1alpha1/namespaces/test/traefikservices/podinfo";

    /// Answers one request with `body`; returns the method and the request body.
    async fn answer(handle: &mut Handle, body: &Value) -> (Method, Value) {
        let (request, send) = handle.next_request().await.expect("a request");
        assert!(request.uri().path().ends_with(PATH), "{}", request.uri());
        let method = request.method().clone();
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let sent = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("json") };
        send.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(body.to_string().into_bytes()))
                .expect("response"),
        );
        (method, sent)
    }

    fn live(ctx: &RouteContext<'_>, routes: Routes) -> Value {
        let mut body = TraefikShape.traefik_service(ctx, routes).expect("body");
        body["metadata"]["resourceVersion"] = json!("7");
        body
    }

    #[tokio::test]
    async fn set_routes_twice_writes_once() {
        let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let router = ObjectRouter::new(Client::new(service, "default"), TraefikShape);
        let spec = spec("traefik", json!({}), json!({}));
        let label = label();
        let ctx = ctx(&spec, &label);
        let (before, after) =
            (live(&ctx, Routes::STABLE), live(&ctx, Routes { primary: 90, canary: 10, mirrored: false }));
        let server = tokio::spawn(async move {
            assert_eq!(answer(&mut handle, &before).await.0, Method::GET);
            let (method, sent) = answer(&mut handle, &after).await;
            assert_eq!(method, Method::PATCH);
            assert_eq!(sent["spec"]["weighted"]["services"][1]["weight"], 10);
            assert_eq!(answer(&mut handle, &after).await.0, Method::GET);
            assert!(handle.next_request().await.is_none(), "no second write");
        });
        let routes = Routes { primary: 90, canary: 10, mirrored: false };
        router.set_routes(&ctx, routes).await.expect("first");
        router.set_routes(&ctx, routes).await.expect("second");
        drop(router);
        server.await.expect("one write");
    }

    #[tokio::test]
    async fn unsupported_routes_are_refused_before_any_request() {
        let (service, _handle) = mock::pair::<Request<Body>, Response<Body>>();
        let router = ObjectRouter::new(Client::new(service, "default"), TraefikShape);
        let spec = spec("traefik", json!({}), crate::router::testkit::ab_analysis());
        let label = label();
        let err = router.set_routes(&ctx(&spec, &label), Routes::STABLE).await.expect_err("a/b");
        assert!(matches!(err, RouterError::Unsupported { .. }), "{err}");
    }

    #[test]
    fn percentages_normalise_raw_weights() {
        assert_eq!(percentages(90, 10, false), Some(Routes { primary: 90, canary: 10, mirrored: false }));
        assert_eq!(percentages(1, 1, true), Some(Routes { primary: 50, canary: 50, mirrored: true }));
        assert_eq!(percentages(1, 0, false), Some(Routes::STABLE));
        assert_eq!(percentages(0, 0, false), None);
    }

    #[test]
    fn contains_ignores_extra_fields_but_not_list_changes() {
        let live = json!({"rules": [{"a": 1, "defaulted": true}], "x": 2});
        assert!(contains(&live, &json!({"rules": [{"a": 1}]})));
        assert!(!contains(&live, &json!({"rules": [{"a": 2}]})));
        assert!(!contains(&live, &json!({"rules": [{"a": 1}, {"a": 1}]})));
        assert!(!contains(&live, &json!({"y": 1})));
    }
}

//! Every traffic router against the Kubernetes API stand-in (`serin-e2e`): the routing CRDs are
//! registered with permissive schemas, then each router creates its objects with the stable
//! split, moves weights, reads them back, and restores on finalize. Also: adoption of a
//! user-owned HTTPRoute / VirtualService keeps the user's rules and fields, and a provider whose
//! CRD is missing gives a clear error.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use serin::crd::{CanarySpec, Provider};
use serin::router::cache::RoutingCache;
use serin::router::{RouteContext, RouterError, Routes, TrafficRouter, for_provider, for_provider_with};
use serin::workload::primary::SelectorLabel;
use serin_e2e::{ApiServer, ServerConfig};

const NS: &str = "test";

pub(crate) async fn start() -> (ApiServer, Client) {
    let server = ApiServer::start(ServerConfig::default()).await.expect("server starts");
    let client = server.client().expect("client");
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).expect("ns");
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("namespace");
    (server, client)
}

/// Registers a permissive CRD serving `versions` (the first is stored).
pub(crate) async fn crd(client: &Client, group: &str, kind: &str, plural: &str, versions: &[&str]) {
    let versions: Vec<Value> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            json!({"name": v, "served": true, "storage": i == 0, "schema": {"openAPIV3Schema":
                {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}})
        })
        .collect();
    let body: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "versions": versions},
    }))
    .expect("crd");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &body).await.expect("crd created");
    let name = format!("{plural}.{group}");
    let established = await_condition(crds, &name, conditions::is_crd_established());
    tokio::time::timeout(Duration::from_secs(5), established).await.expect("in time").expect("established");
}

fn api(client: &Client, group: &str, version: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    Api::namespaced_with(client.clone(), NS, &ar)
}

async fn get(api: &Api<DynamicObject>, name: &str) -> Value {
    serde_json::to_value(api.get(name).await.expect("object exists")).expect("json")
}

fn spec(provider: &str, service: Value, analysis: Value) -> CanarySpec {
    let mut s = json!({"port": 9898});
    if let (Some(s), Value::Object(extra)) = (s.as_object_mut(), service) {
        s.extend(extra);
    }
    let mut a = json!({"interval": "1m", "threshold": 5, "stepWeight": 10, "maxWeight": 50});
    if let (Some(a), Value::Object(extra)) = (a.as_object_mut(), analysis) {
        a.extend(extra);
    }
    serde_json::from_value(json!({
        "provider": provider,
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo"},
        "service": s,
        "analysis": a,
    }))
    .expect("spec")
}

fn label() -> SelectorLabel {
    SelectorLabel { key: "app".into(), value: "podinfo".into() }
}

fn ctx<'a>(spec: &'a CanarySpec, label: &'a SelectorLabel) -> RouteContext<'a> {
    RouteContext {
        namespace: NS,
        name: "podinfo",
        uid: Some("canary-uid"),
        spec,
        affinity_cookie: None,
        selector: label,
    }
}

fn split(primary: i32, canary: i32) -> Routes {
    Routes { primary, canary, mirrored: false }
}

/// The drift annotations and the owner reference of an object Serin created.
fn assert_owned(object: &Value) {
    let a = &object["metadata"]["annotations"];
    assert_eq!(a["kustomize.toolkit.fluxcd.io/reconcile"], "disabled", "{object}");
    assert_eq!(a["helm.toolkit.fluxcd.io/driftDetection"], "disabled", "{object}");
    let owner = &object["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["uid"].as_str()),
        (Some("Canary"), Some("canary-uid")),
        "{object}"
    );
}

/// reconcile creates with 100/0 and keeps a split, set_routes/get_routes round-trip, finalize
/// sends everything to the canary Service (the target's own pods).
async fn lifecycle(
    router: &dyn TrafficRouter,
    ctx: &RouteContext<'_>,
    api: &Api<DynamicObject>,
    name: &str,
) -> Value {
    assert!(matches!(router.get_routes(ctx).await, Err(RouterError::NotFound(_))));
    router.reconcile(ctx).await.expect("reconcile creates");
    assert_eq!(router.get_routes(ctx).await.expect("routes"), Routes::STABLE);
    let created = get(api, name).await;
    assert_owned(&created);
    for canary in [10, 50, 100, 0, 30] {
        router.set_routes(ctx, split(100 - canary, canary)).await.expect("set");
        assert_eq!(router.get_routes(ctx).await.expect("routes"), split(100 - canary, canary));
    }
    // Twice with the same weights: the second is a no-op (no new resourceVersion).
    let rv = get(api, name).await["metadata"]["resourceVersion"].clone();
    router.set_routes(ctx, split(70, 30)).await.expect("same again");
    assert_eq!(get(api, name).await["metadata"]["resourceVersion"], rv);
    // reconcile keeps the split in force.
    router.reconcile(ctx).await.expect("reconcile again");
    assert_eq!(router.get_routes(ctx).await.expect("routes"), split(70, 30));
    let mid = get(api, name).await;
    router.finalize(ctx).await.expect("finalize");
    assert_eq!(router.get_routes(ctx).await.expect("routes"), split(0, 100));
    mid
}

#[tokio::test]
async fn gateway_api_v1_and_v1beta1_lifecycle() {
    let (_server, client) = start().await;
    crd(&client, "gateway.networking.k8s.io", "HTTPRoute", "httproutes", &["v1", "v1beta1"]).await;
    let service = json!({"gatewayRefs": [{"name": "public", "namespace": "gw"}], "hosts": ["app.example.com"], "timeout": "30s"});
    let label = label();
    for (provider, version, name) in
        [("gatewayapi:v1", "v1", "podinfo"), ("gatewayapi:v1beta1", "v1beta1", "other")]
    {
        let mut spec = spec(provider, service.clone(), json!({}));
        spec.service.name = Some(name.into());
        let ctx = ctx(&spec, &label);
        let router = for_provider(spec.provider.expect("provider"), client.clone()).expect("router");
        let api = api(&client, "gateway.networking.k8s.io", version, "HTTPRoute", "httproutes");
        let mid = lifecycle(router.as_ref(), &ctx, &api, name).await;
        assert_eq!(mid["apiVersion"], format!("gateway.networking.k8s.io/{version}"));
        assert_eq!(mid["spec"]["parentRefs"], json!([{"name": "public", "namespace": "gw"}]));
        assert_eq!(mid["spec"]["hostnames"], json!(["app.example.com"]));
        assert_eq!(mid["spec"]["rules"][0]["timeouts"], json!({"request": "30s"}));
        assert_eq!(
            mid["spec"]["rules"][0]["backendRefs"],
            json!([{"name": format!("{name}-primary"), "port": 9898, "weight": 70},
                   {"name": format!("{name}-canary"), "port": 9898, "weight": 30}])
        );
    }
}

#[tokio::test]
async fn a_user_owned_http_route_keeps_its_rules_and_fields() {
    let (_server, client) = start().await;
    crd(&client, "gateway.networking.k8s.io", "HTTPRoute", "httproutes", &["v1"]).await;
    let api = api(&client, "gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes");
    let user_spec = json!({
        "parentRefs": [{"name": "public"}],
        "hostnames": ["shop.example.com"],
        "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/static"}}], "backendRefs": [{"name": "cdn", "port": 80}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
             "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-shop", "value": "1"}]}}],
             "backendRefs": [{"name": "podinfo", "port": 9898}]},
        ],
    });
    let user = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "podinfo", "namespace": NS, "labels": {"team": "shop"}}, "spec": user_spec});
    api.patch("podinfo", &PatchParams::apply("flux"), &Patch::Apply(&user)).await.expect("user applies");

    let spec = spec("gatewayapi:v1", json!({"gatewayRefs": [{"name": "other"}]}), json!({}));
    let label = label();
    let ctx = ctx(&spec, &label);
    let router = for_provider(Provider::GatewayApiV1, client.clone()).expect("router");
    router.reconcile(&ctx).await.expect("adopted");
    assert_eq!(router.get_routes(&ctx).await.expect("routes"), Routes::STABLE);
    router.set_routes(&ctx, split(80, 20)).await.expect("set");
    let live = get(&api, "podinfo").await;
    assert!(live["metadata"].get("ownerReferences").is_none(), "no owner on a user's object: {live}");
    assert_eq!(live["metadata"]["labels"], json!({"team": "shop"}));
    assert_eq!(
        live["spec"]["parentRefs"], user_spec["parentRefs"],
        "Serin's gatewayRefs do not replace the user's"
    );
    assert_eq!(live["spec"]["hostnames"], user_spec["hostnames"]);
    assert_eq!(live["spec"]["rules"][0], user_spec["rules"][0]);
    assert_eq!(live["spec"]["rules"][1]["filters"], user_spec["rules"][1]["filters"]);
    assert_eq!(
        live["spec"]["rules"][1]["backendRefs"],
        json!([{"name": "podinfo-primary", "port": 9898, "weight": 80}, {"name": "podinfo-canary", "port": 9898, "weight": 20}])
    );
    let managers: Vec<String> = live["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str().map(String::from))
        .collect();
    assert!(
        managers.contains(&"serin-router".to_string()) && managers.contains(&"flux".to_string()),
        "{managers:?}"
    );
    // Mirroring and A/B cannot be grafted onto a user's route.
    let err = router.set_routes(&ctx, Routes { mirrored: true, ..Routes::STABLE }).await.expect_err("mirror");
    assert!(matches!(err, RouterError::Unsupported { .. }), "{err}");

    router.finalize(&ctx).await.expect("restored");
    let restored = get(&api, "podinfo").await;
    assert_eq!(restored["spec"], user_spec);
    assert_eq!(restored["metadata"]["labels"], json!({"team": "shop"}));
    let annotations = restored["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
    assert!(
        annotations.keys().all(|k| !k.starts_with("serin.dev/") && !k.contains("fluxcd")),
        "{annotations:?}"
    );
}

#[tokio::test]
async fn istio_lifecycle_and_adoption() {
    let (_server, client) = start().await;
    crd(&client, "networking.istio.io", "VirtualService", "virtualservices", &["v1beta1", "v1"]).await;
    crd(&client, "networking.istio.io", "DestinationRule", "destinationrules", &["v1beta1", "v1"]).await;
    let vs = api(&client, "networking.istio.io", "v1beta1", "VirtualService", "virtualservices");
    let dr = api(&client, "networking.istio.io", "v1beta1", "DestinationRule", "destinationrules");
    let service = json!({"hosts": ["app.example.com"], "gateways": ["gw"], "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}});
    let spec = spec("istio", service, json!({}));
    let label = label();
    let ctx = ctx(&spec, &label);
    let router = for_provider(Provider::Istio, client.clone()).expect("router");
    let mid = lifecycle(router.as_ref(), &ctx, &vs, "podinfo").await;
    assert_eq!(mid["spec"]["hosts"], json!(["podinfo", "app.example.com"]));
    assert_eq!(mid["spec"]["gateways"], json!(["gw"]));
    for host in ["podinfo-primary", "podinfo-canary"] {
        let rule = get(&dr, host).await;
        assert_owned(&rule);
        assert_eq!(rule["spec"], json!({"host": host, "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}));
    }

    // A user's VirtualService with an extra route.
    let user_spec = json!({"hosts": ["shop"], "http": [
        {"match": [{"uri": {"prefix": "/legacy"}}], "route": [{"destination": {"host": "legacy"}}]},
        {"timeout": "5s", "route": [{"destination": {"host": "shop"}}]},
    ]});
    let user = json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": {"name": "shop", "namespace": NS}, "spec": user_spec});
    vs.patch("shop", &PatchParams::apply("argocd"), &Patch::Apply(&user)).await.expect("user applies");
    let mut shop = self::spec("istio", json!({}), json!({}));
    shop.service.name = Some("shop".into());
    let ctx = self::ctx(&shop, &label);
    router.reconcile(&ctx).await.expect("adopted");
    router.set_routes(&ctx, split(60, 40)).await.expect("set");
    let live = get(&vs, "shop").await;
    assert_eq!(live["spec"]["hosts"], json!(["shop"]));
    assert_eq!(live["spec"]["http"][0], user_spec["http"][0]);
    assert_eq!(live["spec"]["http"][1]["timeout"], "5s");
    assert_eq!(router.get_routes(&ctx).await.expect("routes"), split(60, 40));
    router.finalize(&ctx).await.expect("restored");
    assert_eq!(get(&vs, "shop").await["spec"], user_spec);
}

#[tokio::test]
async fn linkerd_smi_traefik_contour_lifecycles() {
    let (_server, client) = start().await;
    crd(&client, "gateway.networking.k8s.io", "HTTPRoute", "httproutes", &["v1"]).await;
    crd(&client, "split.smi-spec.io", "TrafficSplit", "trafficsplits", &["v1alpha2", "v1alpha1", "v1alpha3"])
        .await;
    crd(&client, "traefik.io", "TraefikService", "traefikservices", &["v1alpha1"]).await;
    crd(&client, "projectcontour.io", "HTTPProxy", "httpproxies", &["v1"]).await;
    let label = label();
    let cases = [
        ("linkerd", "svc-linkerd", ("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes")),
        ("smi:v1alpha1", "svc-smi1", ("split.smi-spec.io", "v1alpha1", "TrafficSplit", "trafficsplits")),
        ("smi:v1alpha2", "svc-smi2", ("split.smi-spec.io", "v1alpha2", "TrafficSplit", "trafficsplits")),
        ("smi:v1alpha3", "svc-smi3", ("split.smi-spec.io", "v1alpha3", "TrafficSplit", "trafficsplits")),
        ("traefik", "svc-traefik", ("traefik.io", "v1alpha1", "TraefikService", "traefikservices")),
        ("contour", "svc-contour", ("projectcontour.io", "v1", "HTTPProxy", "httpproxies")),
    ];
    for (provider, name, (group, version, kind, plural)) in cases {
        let mut spec = spec(provider, json!({"timeout": "9s"}), json!({}));
        spec.service.name = Some(name.into());
        let ctx = ctx(&spec, &label);
        let router = for_provider(spec.provider.expect("provider"), client.clone()).expect("router");
        let api = api(&client, group, version, kind, plural);
        let mid = lifecycle(router.as_ref(), &ctx, &api, name).await;
        let weights = match provider {
            "linkerd" => {
                assert_eq!(mid["spec"]["parentRefs"][0]["kind"], "Service");
                mid["spec"]["rules"][0]["backendRefs"].clone()
            }
            "smi:v1alpha1" | "smi:v1alpha2" | "smi:v1alpha3" => mid["spec"]["backends"].clone(),
            "traefik" => mid["spec"]["weighted"]["services"].clone(),
            _ => mid["spec"]["routes"][0]["services"].clone(),
        };
        let w: Vec<Value> = weights.as_array().expect("list").iter().map(|b| b["weight"].clone()).collect();
        let expected = if provider == "smi:v1alpha1" {
            vec![json!("70"), json!("30")]
        } else {
            vec![json!(70), json!(30)]
        };
        assert_eq!(w, expected, "{provider}: {mid}");
    }
}

#[tokio::test]
async fn traefik_mirrors_through_the_stand_in() {
    let (_server, client) = start().await;
    crd(&client, "traefik.io", "TraefikService", "traefikservices", &["v1alpha1"]).await;
    let spec = spec("traefik", json!({}), json!({"mirror": true, "mirrorWeight": 25}));
    let label = label();
    let ctx = ctx(&spec, &label);
    let router = for_provider(Provider::Traefik, client.clone()).expect("router");
    router.reconcile(&ctx).await.expect("created");
    let mirrored = Routes { mirrored: true, ..Routes::STABLE };
    router.set_routes(&ctx, mirrored).await.expect("mirror");
    assert_eq!(router.get_routes(&ctx).await.expect("routes"), mirrored);
    let live =
        get(&api(&client, "traefik.io", "v1alpha1", "TraefikService", "traefikservices"), "podinfo").await;
    // The weighted services are gone (the stand-in keeps an empty `weighted: {}` parent map).
    assert!(live["spec"]["weighted"].get("services").is_none(), "SSA dropped the weighted form: {live}");
    assert_eq!(live["spec"]["mirroring"]["mirrors"][0]["percent"], 25);
}

#[tokio::test]
async fn nginx_clones_the_ingress_and_leaves_it_alone() {
    let (_server, client) = start().await;
    let ingresses = api(&client, "networking.k8s.io", "v1", "Ingress", "ingresses");
    let source = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "podinfo", "namespace": NS, "annotations": {"kubernetes.io/ingress.class": "nginx"}},
        "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}}]}}]}});
    ingresses
        .patch("podinfo", &PatchParams::apply("user"), &Patch::Apply(&source))
        .await
        .expect("user ingress");
    let before = get(&ingresses, "podinfo").await;
    let spec = spec("nginx", json!({}), json!({}));
    let label = label();
    let ctx = ctx(&spec, &label);
    let router = for_provider(Provider::Nginx, client.clone()).expect("router");
    let mid = lifecycle(router.as_ref(), &ctx, &ingresses, "podinfo-canary").await;
    assert_eq!(mid["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary"], "true");
    assert_eq!(mid["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"], "30");
    assert_eq!(mid["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"], "podinfo-canary");
    assert_eq!(get(&ingresses, "podinfo").await, before, "the original Ingress is untouched");

    // A/B by header.
    let ab = self::spec(
        "nginx",
        json!({}),
        json!({"stepWeight": null, "iterations": 5,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}]}),
    );
    let ctx = self::ctx(&ab, &label);
    router.set_routes(&ctx, split(0, 100)).await.expect("a/b on");
    let live = get(&ingresses, "podinfo-canary").await;
    assert_eq!(live["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-by-header"], "x-canary");
    router.set_routes(&ctx, Routes::STABLE).await.expect("a/b off");
    let live = get(&ingresses, "podinfo-canary").await;
    assert!(
        live["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/canary-by-header").is_none(),
        "{live}"
    );
    let err = router.set_routes(&ctx, Routes { mirrored: true, ..Routes::STABLE }).await.expect_err("mirror");
    assert!(matches!(err, RouterError::Unsupported { .. }));
}

#[tokio::test]
async fn a_missing_crd_is_a_clear_error() {
    let (_server, client) = start().await;
    let spec = spec("istio", json!({}), json!({}));
    let label = label();
    let ctx = ctx(&spec, &label);
    let router = for_provider(Provider::Istio, client.clone()).expect("router");
    let err = router.reconcile(&ctx).await.expect_err("no Istio");
    assert!(matches!(err, RouterError::MissingKind { .. }), "{err:?}");
    assert!(err.to_string().contains("VirtualService (networking.istio.io/v1beta1) is not served"), "{err}");
}

/// Drives one release through the rollout engine (`decide`, passing fake metrics), applying
/// `Initialize` with `reconcile` and `SetRoutes` with `set_routes` against the stand-in, and
/// reading `Observed::routes` back with `get_routes` every tick. Returns the splits the cluster
/// held after each `SetRoutes`.
async fn engine_run(router: &dyn TrafficRouter, ctx: &RouteContext<'_>, provider: Provider) -> Vec<Routes> {
    use serin::crd::CanaryStatus;
    use serin::crd::status::Verdict;
    use serin::rollout::{
        AnalysisReport, CheckKind, CheckResult, Effect, Observed, Operations, Readiness, decide,
    };

    let report = AnalysisReport {
        checks: vec![CheckResult::new(CheckKind::Metric, "request-success-rate", Verdict::Pass, None)],
        ..AnalysisReport::default()
    };
    let mut world = Observed {
        generation: Some(1),
        revision: "r1".into(),
        tracked_configs: Default::default(),
        initialized: false,
        canary: Readiness::Ready,
        primary: Readiness::Ready,
        routes: None,
        operations: Operations::default(),
        deleting: false,
        provider,
    };
    let mut status = CanaryStatus::default();
    let mut seen = Vec::new();
    for tick in 0..40 {
        if tick == 1 {
            world.initialized = true;
        }
        if tick == 3 {
            world.revision = "r2".into();
        }
        world.routes = router.get_routes(ctx).await.ok();
        let now = serin::rollout::Timestamp::from_second(1_000_000 + tick * 60).expect("time");
        let plan = decide(ctx.spec, &status, &world, &report, now);
        for effect in &plan.effects {
            match effect {
                Effect::Initialize => router.reconcile(ctx).await.expect("initialize"),
                Effect::SetRoutes { primary, canary, mirrored } => {
                    let routes = Routes { primary: *primary, canary: *canary, mirrored: *mirrored };
                    router.set_routes(ctx, routes).await.expect("set routes");
                    seen.push(router.get_routes(ctx).await.expect("routes"));
                }
                _ => {}
            }
        }
        status = plan.status;
        if status.phase.map(|p| p.as_str()) == Some("Succeeded") && tick > 5 {
            break;
        }
    }
    assert_eq!(status.phase.map(|p| p.as_str()), Some("Succeeded"), "{provider}: {status:?}");
    seen
}

#[tokio::test]
async fn every_router_carries_a_release_driven_by_the_engine() {
    let (_server, client) = start().await;
    every_router_release(&client, &client).await;
}

/// Registers every routing CRD with `client`, then drives a weighted release (and A/B and
/// mirroring where the router has them) through every router, which talks to the API with
/// `router_client` (the RBAC test passes one that impersonates Serin's ServiceAccount).
pub(crate) async fn every_router_release(client: &Client, router_client: &Client) {
    crd(client, "gateway.networking.k8s.io", "HTTPRoute", "httproutes", &["v1", "v1beta1"]).await;
    crd(client, "networking.istio.io", "VirtualService", "virtualservices", &["v1beta1"]).await;
    crd(client, "networking.istio.io", "DestinationRule", "destinationrules", &["v1beta1"]).await;
    crd(client, "split.smi-spec.io", "TrafficSplit", "trafficsplits", &["v1alpha2", "v1alpha1", "v1alpha3"])
        .await;
    crd(client, "traefik.io", "TraefikService", "traefikservices", &["v1alpha1"]).await;
    crd(client, "projectcontour.io", "HTTPProxy", "httpproxies", &["v1"]).await;
    let ingresses = api(client, "networking.k8s.io", "v1", "Ingress", "ingresses");
    let label = label();
    let canary = |primary, canary| split(primary, canary);
    let weighted = json!({"stepWeight": 10, "maxWeight": 30,
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}]});
    let ab = json!({"stepWeight": null, "maxWeight": null, "iterations": 2,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}],
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}]});
    let mirror = json!({"stepWeight": null, "maxWeight": null, "iterations": 2, "mirror": true,
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}]});
    let weighted_steps = vec![canary(90, 10), canary(80, 20), canary(70, 30), Routes::STABLE];
    // As in the controller: one cache for every router, so reads right after writes are
    // checked against the watch-backed copies too.
    let cache = RoutingCache::new();
    let providers = [
        "gatewayapi:v1",
        "gatewayapi:v1beta1",
        "istio",
        "linkerd",
        "smi:v1alpha1",
        "smi:v1alpha2",
        "smi:v1alpha3",
        "nginx",
        "traefik",
        "contour",
    ];
    for (i, provider) in providers.iter().enumerate() {
        let name = format!("app{i}");
        if *provider == "nginx" {
            let source = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]}});
            ingresses
                .patch(&name, &PatchParams::apply("user"), &Patch::Apply(&source))
                .await
                .expect("ingress");
        }
        let mut runs = vec![(weighted.clone(), weighted_steps.clone())];
        if matches!(*provider, "gatewayapi:v1" | "istio" | "nginx" | "contour" | "linkerd") {
            runs.push((ab.clone(), vec![canary(0, 100), Routes::STABLE]));
        }
        if matches!(*provider, "gatewayapi:v1" | "istio" | "traefik") {
            // Blue/green with mirroring: shadow first, then switch, then promote.
            let mirrored = Routes { mirrored: true, ..Routes::STABLE };
            runs.push((mirror.clone(), vec![mirrored, canary(0, 100), Routes::STABLE]));
        }
        for (analysis, want) in runs {
            let mut spec = spec(provider, json!({}), analysis);
            spec.service.name = Some(name.clone());
            spec.ingress_ref.as_mut().expect("ref").name = name.clone();
            let ctx = ctx(&spec, &label);
            let provider = spec.provider.expect("provider");
            let router =
                for_provider_with(provider, router_client.clone(), Some(cache.clone())).expect("router");
            let mut seen = engine_run(router.as_ref(), &ctx, provider).await;
            // The engine repeats an idempotent SetRoutes while it iterates at the same split.
            seen.dedup();
            assert_eq!(seen, want, "{provider}");
        }
    }
}

#[tokio::test]
async fn without_a_uid_serin_still_knows_its_own_objects() {
    let (_server, client) = start().await;
    crd(&client, "gateway.networking.k8s.io", "HTTPRoute", "httproutes", &["v1"]).await;
    let spec = spec("gatewayapi:v1", json!({"gatewayRefs": [{"name": "gw"}]}), json!({"mirror": true}));
    let label = label();
    let ctx = RouteContext { uid: None, ..ctx(&spec, &label) };
    let router = for_provider(Provider::GatewayApiV1, client.clone()).expect("router");
    router.reconcile(&ctx).await.expect("created");
    let mirrored = Routes { mirrored: true, ..Routes::STABLE };
    router.set_routes(&ctx, mirrored).await.expect("mirroring on Serin's own route");
    assert_eq!(router.get_routes(&ctx).await.expect("routes"), mirrored);
    let live =
        get(&api(&client, "gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes"), "podinfo").await;
    assert!(live["metadata"].get("ownerReferences").is_none(), "{live}");
    assert_eq!(live["metadata"]["annotations"]["serin.dev/created-for"], "podinfo");
}

#[tokio::test]
async fn a_user_owned_traffic_split_is_taken_over_and_restored() {
    let (_server, client) = start().await;
    crd(&client, "split.smi-spec.io", "TrafficSplit", "trafficsplits", &["v1alpha2"]).await;
    let splits = api(&client, "split.smi-spec.io", "v1alpha2", "TrafficSplit", "trafficsplits");
    let user_spec = json!({"service": "podinfo", "backends": [{"service": "podinfo-v1", "weight": 100}]});
    let user = json!({"apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
        "metadata": {"name": "podinfo", "namespace": NS}, "spec": user_spec});
    splits.patch("podinfo", &PatchParams::apply("user"), &Patch::Apply(&user)).await.expect("user applies");
    let spec = spec("smi:v1alpha2", json!({}), json!({}));
    let label = label();
    let ctx = ctx(&spec, &label);
    let router = for_provider(Provider::SmiV1Alpha2, client.clone()).expect("router");
    router.reconcile(&ctx).await.expect("taken over");
    router.set_routes(&ctx, split(90, 10)).await.expect("set");
    router.set_routes(&ctx, split(80, 20)).await.expect("set again");
    let live = get(&splits, "podinfo").await;
    assert!(live["metadata"].get("ownerReferences").is_none(), "not owned: {live}");
    assert_eq!(router.get_routes(&ctx).await.expect("routes"), split(80, 20));
    router.finalize(&ctx).await.expect("restored");
    assert_eq!(get(&splits, "podinfo").await["spec"], user_spec);
}

/// With the routing cache (as the controller runs routers), reading the split of a settled
/// Canary costs the API server no request once the watch is in, and a read right after
/// Serin's own write still sees that write (for an HTTPRoute and for the apex Service of the
/// `kubernetes` router).
#[tokio::test]
async fn cached_routes_cost_no_request_and_never_lag_behind_serin_s_writes() {
    let (server, client) = start().await;
    crd(&client, "gateway.networking.k8s.io", "HTTPRoute", "httproutes", &["v1"]).await;
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), NS);
    let apex: k8s_openapi::api::core::v1::Service =
        serde_json::from_value(json!({"metadata": {"name": "bg"}, "spec": {"ports": [{"port": 80}]}}))
            .expect("service");
    services.create(&PostParams::default(), &apex).await.expect("apex service");
    let cache = RoutingCache::new();
    let label = label();
    let weighted = json!({"stepWeight": 10, "maxWeight": 30,
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}]});
    let blue_green = json!({"stepWeight": null, "maxWeight": null, "iterations": 2,
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}]});
    let gateway = spec("gatewayapi:v1", json!({"gatewayRefs": [{"name": "gw"}]}), weighted);
    let mut kubernetes = spec("kubernetes", json!({}), blue_green);
    kubernetes.service.name = Some("bg".into());
    for (spec, switch) in [(&gateway, split(70, 30)), (&kubernetes, split(0, 100))] {
        let provider = spec.provider.expect("provider");
        let router = for_provider_with(provider, client.clone(), Some(cache.clone())).expect("router");
        let ctx = ctx(spec, &label);
        router.reconcile(&ctx).await.expect("reconcile");
        assert_eq!(router.get_routes(&ctx).await.expect("routes"), Routes::STABLE, "{provider}");
        // Wait until the watch serves reads: a read that makes no request.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let before = server.audit_len();
            assert_eq!(router.get_routes(&ctx).await.expect("routes"), Routes::STABLE, "{provider}");
            let gets = server.audit_since(before).iter().filter(|r| r.verb == "get").count();
            if gets == 0 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{provider}: the cache never served a read");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let before = server.audit_len();
        for _ in 0..5 {
            assert_eq!(router.get_routes(&ctx).await.expect("routes"), Routes::STABLE, "{provider}");
        }
        assert!(server.audit_since(before).is_empty(), "{provider}: idle reads made requests");
        // Read right after writing: never the cache's older copy.
        router.set_routes(&ctx, switch).await.expect("switch");
        assert_eq!(router.get_routes(&ctx).await.expect("routes"), switch, "{provider}");
        router.set_routes(&ctx, Routes::STABLE).await.expect("back");
        assert_eq!(router.get_routes(&ctx).await.expect("routes"), Routes::STABLE, "{provider}");
    }
}

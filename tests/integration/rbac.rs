//! `deploy/base/rbac.yaml` against what Serin really does: the controller (`run`, leader
//! election on) and every traffic router run against the Kubernetes API stand-in with a client
//! that impersonates Serin's ServiceAccount; the stand-in's audit log then holds every request
//! they made. Each request must be allowed by the roles bound to that ServiceAccount (a
//! server-side apply that created its object needs `create` too, as on a real API server), and
//! each granted (group, resource, verb) must have been used by a scenario or be on the short
//! list of grants no scenario reaches, each with its reason.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use serin::analysis::builtin::GatewayMetrics;
use serin::controller::context::Settings;
use serin::controller::run::{RunConfig, run};
use serin::crd::{Canary, CanaryPhase, Provider};
use serin_e2e::audit::AuditRecord;
use serin_e2e::{ApiServer, ServerConfig};

use crate::controller_blue_green::{
    deployment_status_loop, hook_server, install_crds, phase, set_image, wait_for,
};
use crate::routers_stand_in::{crd, every_router_release};

/// Serin's ServiceAccount as the API server names it.
const SERVICE_ACCOUNT: &str = "system:serviceaccount:serin-system:serin";
const SA_NAME: &str = "serin";
const SA_NAMESPACE: &str = "serin-system";

/// Granted but not reached by the scenarios, with the reason each is still needed.
const NOT_EXERCISED: &[(&str, &str, &str, &str)] = &[
    (
        "serin.dev",
        "canaries/finalizers",
        "update",
        "no request: the OwnerReferencesPermissionEnforcement admission plugin checks it when Serin sets blockOwnerDeletion",
    ),
    ("argoproj.io", "applications", "get", "Argo CD source discovery; the scenario's target is Flux-managed"),
];

/// A client acting as Serin's ServiceAccount (the stand-in records the impersonated user).
fn client_as_serin(server: &ApiServer) -> Client {
    let mut config = server.client_config().expect("client config");
    config.auth_info.impersonate = Some(SERVICE_ACCOUNT.into());
    Client::try_from(config).expect("client")
}

fn docs<T: DeserializeOwned>(kind: &str) -> Vec<T> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/base/rbac.yaml");
    let text = std::fs::read_to_string(&file).expect("deploy/base/rbac.yaml");
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("yaml"))
        .filter(|doc: &Value| doc["kind"] == kind)
        .map(|doc| serde_json::from_value(doc).unwrap_or_else(|e| panic!("{kind}: {e}")))
        .collect()
}

/// The rules that apply to the ServiceAccount: cluster-wide ones (ClusterRoles bound by a
/// ClusterRoleBinding) and per-namespace ones (Roles bound by a RoleBinding in their namespace).
struct Grants {
    cluster: Vec<PolicyRule>,
    namespaced: Vec<(String, PolicyRule)>,
}

fn is_serin(subjects: &Option<Vec<Subject>>) -> bool {
    subjects.iter().flatten().any(|s| {
        s.kind == "ServiceAccount" && s.name == SA_NAME && s.namespace.as_deref() == Some(SA_NAMESPACE)
    })
}

fn grants() -> Grants {
    let cluster_roles: Vec<ClusterRole> = docs("ClusterRole");
    let roles: Vec<Role> = docs("Role");
    let mut grants = Grants { cluster: Vec::new(), namespaced: Vec::new() };
    for binding in docs::<ClusterRoleBinding>("ClusterRoleBinding") {
        if !is_serin(&binding.subjects) {
            continue;
        }
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        let role = cluster_roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(&binding.role_ref.name))
            .unwrap_or_else(|| panic!("ClusterRole {} is bound but not defined", binding.role_ref.name));
        grants.cluster.extend(role.rules.clone().unwrap_or_default());
    }
    for binding in docs::<RoleBinding>("RoleBinding") {
        if !is_serin(&binding.subjects) {
            continue;
        }
        let namespace = binding.metadata.namespace.clone().expect("RoleBinding namespace");
        let rules = match binding.role_ref.kind.as_str() {
            "Role" => roles
                .iter()
                .find(|r| {
                    r.metadata.name.as_deref() == Some(&binding.role_ref.name)
                        && r.metadata.namespace.as_deref() == Some(&namespace)
                })
                .unwrap_or_else(|| {
                    panic!("Role {namespace}/{} is bound but not defined", binding.role_ref.name)
                })
                .rules
                .clone()
                .unwrap_or_default(),
            _ => panic!("RoleBindings of Serin bind Roles"),
        };
        grants.namespaced.extend(rules.into_iter().map(|r| (namespace.clone(), r)));
    }
    assert!(!grants.cluster.is_empty(), "no ClusterRole is bound to {SERVICE_ACCOUNT}");
    grants
}

fn matches(list: &Option<Vec<String>>, value: &str) -> bool {
    list.iter().flatten().any(|v| v == "*" || v == value)
}

/// RBAC's rule match for a resource request.
fn rule_allows(rule: &PolicyRule, group: &str, resource: &str, verb: &str, name: Option<&str>) -> bool {
    let names_ok = match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => name.is_some_and(|n| names.iter().any(|x| x == n)),
    };
    rule.verbs.iter().any(|v| v == "*" || v == verb)
        && matches(&rule.api_groups, group)
        && matches(&rule.resources, resource)
        && names_ok
}

impl Grants {
    fn allows(&self, record: &AuditRecord, verb: &str) -> bool {
        let resource = record.resource_path();
        let name = record.name.as_deref();
        self.cluster.iter().any(|r| rule_allows(r, &record.group, &resource, verb, name))
            || self.namespaced.iter().any(|(ns, r)| {
                record.namespace.as_deref() == Some(ns.as_str())
                    && rule_allows(r, &record.group, &resource, verb, name)
            })
    }

    /// Every (group, resource, verb) granted, names and namespaces aside.
    fn triples(&self) -> BTreeSet<(String, String, String)> {
        let rules = self.cluster.iter().chain(self.namespaced.iter().map(|(_, r)| r));
        let mut out = BTreeSet::new();
        for rule in rules {
            for group in rule.api_groups.iter().flatten() {
                for resource in rule.resources.iter().flatten() {
                    for verb in &rule.verbs {
                        out.insert((group.clone(), resource.clone(), verb.clone()));
                    }
                }
            }
        }
        out
    }
}

/// The verbs RBAC checks for a request: its own, plus `create` for a patch that created.
fn needed(record: &AuditRecord) -> Vec<&str> {
    let mut verbs = vec![record.verb.as_str()];
    if record.verb == "patch" && record.created() {
        verbs.push("create");
    }
    verbs
}

#[test]
fn rule_matching_follows_rbac() {
    let rule: PolicyRule = serde_json::from_value(json!({"apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"], "resourceNames": ["serin-leader"], "verbs": ["get", "patch"]}))
    .expect("rule");
    assert!(rule_allows(&rule, "coordination.k8s.io", "leases", "get", Some("serin-leader")));
    assert!(!rule_allows(&rule, "coordination.k8s.io", "leases", "get", Some("other")));
    assert!(
        !rule_allows(&rule, "coordination.k8s.io", "leases", "list", None),
        "resourceNames never allow a list"
    );
    assert!(!rule_allows(&rule, "coordination.k8s.io", "leases", "create", Some("serin-leader")));
    assert!(!rule_allows(&rule, "", "leases", "get", Some("serin-leader")), "group must match");
    let status = AuditRecord {
        user: Some(SERVICE_ACCOUNT.into()),
        verb: "patch".into(),
        group: "apps".into(),
        resource: "deployments".into(),
        subresource: None,
        namespace: Some("default".into()),
        name: Some("podinfo-primary".into()),
        code: 201,
    };
    assert_eq!(needed(&status), ["patch", "create"], "an apply that creates needs create");
    let grants = grants();
    assert!(grants.allows(&status, "patch") && grants.allows(&status, "create"));
    let delete = AuditRecord { verb: "delete".into(), ..status.clone() };
    assert!(!grants.allows(&delete, "delete"), "Serin deletes nothing");
    let status_write = AuditRecord {
        resource: "canaries".into(),
        group: "serin.dev".into(),
        subresource: Some("status".into()),
        verb: "patch".into(),
        ..status
    };
    assert!(grants.allows(&status_write, "patch"));
    assert!(!grants.allows(&status_write, "update"), "status is merge-patched, never replaced");
}

fn dynamic(
    client: &Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    ns: &str,
) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    Api::namespaced_with(client.clone(), ns, &ar)
}

async fn create<K>(api: &Api<K>, body: Value)
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(body).expect("object");
    api.create(&PostParams::default(), &object).await.expect("created");
}

/// The controller's requests over a whole life: initialisation with a tracked ConfigMap and an
/// HPA, a promotion, a rollback whose Git source is discovered through Flux objects (the push
/// then fails: there is no Git server), an operator action, and deletion with
/// `revertOnDeletion` (finalizer added, then removed). Leader election is on.
async fn controller_requests() -> Vec<AuditRecord> {
    let server = ApiServer::start(ServerConfig {
        bookmark_interval: Duration::from_millis(500),
        ..ServerConfig::default()
    })
    .await
    .expect("API stand-in");
    let admin = server.client().expect("client");
    install_crds(&admin).await;
    crd(&admin, "kustomize.toolkit.fluxcd.io", "Kustomization", "kustomizations", &["v1"]).await;
    crd(&admin, "source.toolkit.fluxcd.io", "GitRepository", "gitrepositories", &["v1"]).await;
    create(&Api::<Namespace>::all(admin.clone()), json!({"metadata": {"name": SA_NAMESPACE}})).await;
    create(&Api::<Namespace>::all(admin.clone()), json!({"metadata": {"name": "flux-system"}})).await;
    tokio::spawn(deployment_status_loop(admin.clone()));

    create(
        &dynamic(&admin, "source.toolkit.fluxcd.io", "v1", "GitRepository", "gitrepositories", "flux-system"),
        json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "fleet", "namespace": "flux-system"},
            "spec": {"url": "http://127.0.0.1:9/fleet.git", "ref": {"branch": "main"}, "interval": "1m"}}),
    )
    .await;
    create(
        &dynamic(
            &admin,
            "kustomize.toolkit.fluxcd.io",
            "v1",
            "Kustomization",
            "kustomizations",
            "flux-system",
        ),
        json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "apps", "namespace": "flux-system"},
            "spec": {"path": "./apps", "interval": "1m", "prune": true,
                "sourceRef": {"kind": "GitRepository", "name": "fleet"}},
            "status": {"lastAppliedRevision": "main@sha1:0123456789abcdef0123456789abcdef01234567"}}),
    )
    .await;
    create(
        &Api::<ConfigMap>::namespaced(admin.clone(), "default"),
        json!({"metadata": {"name": "podinfo-config"}, "data": {"greeting": "hello"}}),
    )
    .await;
    create(
        &Api::<Secret>::namespaced(admin.clone(), "default"),
        json!({"metadata": {"name": "podinfo-secret"}, "stringData": {"token": "t0ken"}}),
    )
    .await;
    create(
        &Api::<HorizontalPodAutoscaler>::namespaced(admin.clone(), "default"),
        json!({"metadata": {"name": "podinfo"}, "spec": {"minReplicas": 2, "maxReplicas": 4,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"}}}),
    )
    .await;
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(admin.clone(), "default");
    create(
        &deployments,
        json!({"metadata": {"name": "podinfo", "labels": {
                "kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "podinfo"}},
                "template": {"metadata": {"labels": {"app": "podinfo"}},
                    "spec": {"containers": [{"name": "app", "image": "demo:1.0.0",
                        "envFrom": [{"configMapRef": {"name": "podinfo-config"}},
                            {"secretRef": {"name": "podinfo-secret"}}]}]}}}}),
    )
    .await;
    let hook_code = Arc::new(AtomicU16::new(200));
    let hook_url = hook_server(hook_code.clone()).await;
    let canaries: Api<Canary> = Api::namespaced(admin.clone(), "default");
    create(
        &canaries,
        json!({"apiVersion": "serin.dev/v1alpha1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "default"},
            "spec": {"provider": "kubernetes", "revertOnDeletion": true,
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"},
                "service": {"port": 80},
                "gitops": {"revert": true},
                "analysis": {"interval": "1s", "threshold": 1, "iterations": 2,
                    "webhooks": [{"name": "smoke", "type": "rollout", "url": hook_url, "timeout": "2s"}]}}}),
    )
    .await;

    let config = RunConfig {
        namespace: None,
        settings: Settings {
            default_provider: Provider::Kubernetes,
            metrics_server: None,
            gateway_metrics: GatewayMetrics::Envoy,
            cluster_name: None,
            max_concurrent_canaries: None,
            default_alert_provider: None,
            shard: None,
        },
        listen: "127.0.0.1:0".parse().expect("addr"),
        leader_election: Some((SA_NAMESPACE.into(), "serin-0".into())),
        git_cache_dir: None,
        workers: serin::cli::DEFAULT_WORKERS,
    };
    let controller = tokio::spawn(run(client_as_serin(&server), config));

    wait_for("Initialized", async || {
        (phase(&canaries).await == Some(CanaryPhase::Initialized)).then_some(())
    })
    .await;
    set_image(&deployments, "demo:2.0.0").await;
    wait_for("Succeeded", async || (phase(&canaries).await == Some(CanaryPhase::Succeeded)).then_some(()))
        .await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(admin.clone(), "default");
    hpas.get("podinfo-primary").await.expect("the HPA is copied to the primary");
    Api::<ConfigMap>::namespaced(admin.clone(), "default")
        .get("podinfo-config-primary")
        .await
        .expect("the ConfigMap is copied to the primary");
    Api::<Secret>::namespaced(admin.clone(), "default")
        .get("podinfo-secret-primary")
        .await
        .expect("the Secret is copied to the primary");

    hook_code.store(500, Ordering::SeqCst);
    set_image(&deployments, "demo:3.0.0").await;
    let gitops =
        wait_for("the revert attempt", async || canaries.get("podinfo").await.ok()?.status?.gitops).await;
    assert!(gitops.message.is_some(), "{gitops:?}");

    // An operator action (`serin retry`) is cleared by the controller.
    let action = json!({"metadata": {"annotations": {"serin.dev/action": "retry"}}});
    canaries
        .patch("podinfo", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&action))
        .await
        .expect("annotated");
    wait_for("the action cleared", async || {
        let canary = canaries.get("podinfo").await.ok()?;
        (!canary.annotations().contains_key("serin.dev/action")).then_some(())
    })
    .await;

    canaries.delete("podinfo", &DeleteParams::default()).await.expect("deleted");
    wait_for("the finalizer removed", async || {
        canaries.get_opt("podinfo").await.ok()?.is_none().then_some(())
    })
    .await;
    controller.abort();
    let log = server.audit_log();
    server.shutdown().await;
    log
}

/// Every router's requests over a weighted release (and A/B and mirroring where supported).
async fn router_requests() -> Vec<AuditRecord> {
    let (server, admin) = crate::routers_stand_in::start().await;
    every_router_release(&admin, &client_as_serin(&server)).await;
    server.audit_log()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_rbac_allows_what_serin_does_and_grants_nothing_unused() {
    let grants = grants();
    let mut records = controller_requests().await;
    records.extend(router_requests().await);
    let serin: Vec<&AuditRecord> =
        records.iter().filter(|r| r.user.as_deref() == Some(SERVICE_ACCOUNT)).collect();
    assert!(serin.len() > 50, "the scenarios ran as the ServiceAccount ({} requests)", serin.len());

    let mut denied = BTreeSet::new();
    let mut used = BTreeSet::new();
    for record in &serin {
        for verb in needed(record) {
            used.insert((record.group.clone(), record.resource_path(), verb.to_string()));
            if !grants.allows(record, verb) {
                denied.insert(format!(
                    "{verb} {}/{} {}/{} ({})",
                    record.group,
                    record.resource_path(),
                    record.namespace.as_deref().unwrap_or("*"),
                    record.name.as_deref().unwrap_or("*"),
                    record.code
                ));
            }
        }
    }
    let verbs: Vec<String> = used.iter().map(|(g, r, v)| format!("{v} {g}/{r}")).collect();
    eprintln!("requests of {SERVICE_ACCOUNT}: {}; verbs used:\n{}", serin.len(), verbs.join("\n"));
    assert!(
        denied.is_empty(),
        "deploy/base/rbac.yaml does not allow:\n{}",
        Vec::from_iter(denied).join("\n")
    );

    let exceptions: BTreeSet<(String, String, String)> =
        NOT_EXERCISED.iter().map(|(g, r, v, _)| (g.to_string(), r.to_string(), v.to_string())).collect();
    let unused: Vec<_> =
        grants.triples().into_iter().filter(|t| !used.contains(t) && !exceptions.contains(t)).collect();
    assert!(
        unused.is_empty(),
        "granted but never used by a scenario (remove, or list with a reason): {unused:?}"
    );
    let stale: Vec<_> = exceptions.iter().filter(|t| used.contains(*t)).collect();
    assert!(stale.is_empty(), "listed as not exercised but used: {stale:?}");
    let exceptions_granted: Vec<_> = exceptions.iter().filter(|t| !grants.triples().contains(*t)).collect();
    assert!(exceptions_granted.is_empty(), "exceptions that are not granted: {exceptions_granted:?}");
}

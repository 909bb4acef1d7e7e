//! Every manifest under `deploy/` (a kubeconform-style check without a cluster): each document
//! is a known kind and is checked against its type. Kubernetes kinds go through k8s-openapi's
//! structs and must come back without losing a field (k8s-openapi ignores unknown fields, so a
//! typo would otherwise vanish); Serin's kinds go through `serin validate`'s schema, CEL and
//! semantic checks; the kustomize, Prometheus Operator, Flux and Argo CD kinds go through strict
//! structs covering the fields these manifests use (an unknown or misspelt field fails). Also:
//! the controller's and load tester's arguments parse with the real CLI, the Pods are hardened,
//! the kustomizations list what exists, the Helm chart agrees with its values and with the
//! base, the Grafana dashboard only queries series the controller exports, and the Argo CD
//! health check maps phases as documented.
//!
//! `helm` is not packaged for Debian, so the chart is not rendered here; `kubectl kustomize`
//! runs when kubectl is on PATH.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serin::cli::{Cli, Command as SerinCommand};
use serin::manifest::{Validators, load};
use serin::telemetry::metrics::{
    AnalysisLabels, CanaryLabels, CategoryLabels, Metrics, NamespaceLabels, OutcomeLabels, ResultLabels,
    RunLabels,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

/// YAML files under `dir`, sorted; Helm templates and the chart's own files are not manifests.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let chart = deploy().join("chart/serin");
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.expect("walk").into_path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| {
            !p.starts_with(chart.join("templates"))
                && !p.starts_with(chart.join("files"))
                && p.parent() != Some(&chart)
        })
        .collect();
    files.sort();
    files
}

fn documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    load::parse_documents(&text)
        .into_iter()
        .map(|d| d.value.unwrap_or_else(|e| panic!("{}:{}: {e}", file.display(), d.index)))
        .collect()
}

/// Where `original` has something `round_trip` lacks or changed (fields the type dropped).
fn lost(original: &Value, round_trip: &Value, path: &str, out: &mut Vec<String>) {
    match (original, round_trip) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                match b.get(key) {
                    Some(other) => lost(value, other, &format!("{path}.{key}"), out),
                    None => out.push(format!("{path}.{key}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                lost(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        _ => out.push(format!("{path} ({original} became {round_trip})")),
    }
}

/// Deserializes into the k8s-openapi type and fails on any field the type does not know.
fn typed<T: DeserializeOwned + serde::Serialize>(doc: &Value) -> Result<T, String> {
    let typed: T = serde_path_to_error::deserialize(doc).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut missing = Vec::new();
    lost(doc, &back, "", &mut missing);
    if missing.is_empty() { Ok(typed) } else { Err(format!("unknown or mistyped fields: {missing:?}")) }
}

fn strict<T: DeserializeOwned>(doc: &Value) -> Result<T, String> {
    serde_path_to_error::deserialize(doc).map_err(|e| e.to_string())
}

// Strict structs for the non-core kinds: the fields these manifests use, as the upstream API
// references define them.

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Kustomize {
    api_version: String,
    kind: String,
    resources: Vec<String>,
    #[serde(default)]
    images: Vec<KustomizeImage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct KustomizeImage {
    name: String,
    new_name: Option<String>,
    new_tag: Option<String>,
    digest: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Object<S> {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: S,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct PodMonitorSpec {
    selector: LabelSelector,
    pod_metrics_endpoints: Vec<PodMetricsEndpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct PodMetricsEndpoint {
    port: String,
    path: Option<String>,
    interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct GitRepositorySpec {
    interval: String,
    url: String,
    #[serde(rename = "ref")]
    reference: Option<GitRef>,
    secret_ref: Option<NameRef>,
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct GitRef {
    branch: Option<String>,
    tag: Option<String>,
    semver: Option<String>,
    commit: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct NameRef {
    name: String,
    namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct FluxKustomizationSpec {
    interval: String,
    source_ref: SourceRef,
    path: String,
    prune: bool,
    wait: Option<bool>,
    timeout: Option<String>,
    #[serde(default)]
    depends_on: Vec<NameRef>,
    target_namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SourceRef {
    kind: String,
    name: String,
    namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct ApplicationSpec {
    project: String,
    source: AppSource,
    destination: AppDestination,
    sync_policy: Option<SyncPolicy>,
    #[serde(default)]
    ignore_differences: Vec<IgnoreDifference>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct AppSource {
    #[serde(rename = "repoURL")]
    repo_url: String,
    target_revision: String,
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct AppDestination {
    server: String,
    namespace: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct SyncPolicy {
    automated: Option<Automated>,
    #[serde(default)]
    sync_options: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Automated {
    prune: bool,
    self_heal: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct IgnoreDifference {
    group: String,
    kind: String,
    json_pointers: Vec<String>,
}

/// Checks one document; returns its `apiVersion kind`.
fn check(doc: &Value, validators: &Validators) -> Result<String, String> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    match (api_version, kind) {
        ("v1", "Namespace") => typed::<Namespace>(doc).map(drop),
        ("v1", "ServiceAccount") => typed::<ServiceAccount>(doc).map(drop),
        ("v1", "Service") => typed::<Service>(doc).map(drop),
        ("v1", "ConfigMap") => typed::<ConfigMap>(doc).map(drop),
        ("apps/v1", "Deployment") => typed::<Deployment>(doc).map(drop),
        ("policy/v1", "PodDisruptionBudget") => typed::<PodDisruptionBudget>(doc).map(drop),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => typed::<ClusterRole>(doc).map(drop),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => typed::<ClusterRoleBinding>(doc).map(drop),
        ("rbac.authorization.k8s.io/v1", "Role") => typed::<Role>(doc).map(drop),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => typed::<RoleBinding>(doc).map(drop),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            typed::<CustomResourceDefinition>(doc).map(drop)
        }
        ("kustomize.config.k8s.io/v1beta1", "Kustomization") => strict::<Kustomize>(doc).map(drop),
        ("monitoring.coreos.com/v1", "PodMonitor") => strict::<Object<PodMonitorSpec>>(doc).map(drop),
        ("source.toolkit.fluxcd.io/v1", "GitRepository") => {
            strict::<Object<GitRepositorySpec>>(doc).map(drop)
        }
        ("kustomize.toolkit.fluxcd.io/v1", "Kustomization") => {
            strict::<Object<FluxKustomizationSpec>>(doc).map(drop)
        }
        ("argoproj.io/v1alpha1", "Application") => strict::<Object<ApplicationSpec>>(doc).map(drop),
        (v, _) if v.starts_with("serin.dev/") => match validators.validate(doc) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err("not recognised as a Serin resource".into()),
            Err(errors) => Err(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")),
        },
        _ => Err("unknown kind: add a check for it to tests/integration/deploy_manifests.rs".into()),
    }
    .map(|()| format!("{api_version} {kind}"))
}

#[test]
fn every_manifest_under_deploy_checks_against_its_type() {
    let validators = Validators::new(None);
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    let files = yaml_files(&deploy());
    assert!(files.len() >= 15, "{files:?}");
    for file in &files {
        for (i, doc) in documents(file).iter().enumerate() {
            match check(doc, &validators) {
                Ok(kind) => *kinds.entry(kind).or_default() += 1,
                Err(e) => problems.push(format!("{}:{}: {e}", file.display(), i + 1)),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for (kind, at_least) in [
        ("apps/v1 Deployment", 3),
        ("serin.dev/v1alpha1 Canary", 1),
        ("argoproj.io/v1alpha1 Application", 2),
        ("kustomize.toolkit.fluxcd.io/v1 Kustomization", 2),
        ("apiextensions.k8s.io/v1 CustomResourceDefinition", 3),
        ("monitoring.coreos.com/v1 PodMonitor", 1),
    ] {
        assert!(kinds.get(kind).copied().unwrap_or(0) >= at_least, "expected {at_least}× {kind}: {kinds:?}");
    }
}

#[test]
fn the_type_check_catches_a_misspelt_field() {
    let doc: Value = serde_norway::from_str(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: 2\n  selector: {matchLabels: {a: b}}\n  template:\n    spec:\n      containers: [{name: c, image: i, readinesProbe: {}}]\n",
    )
    .expect("yaml");
    let err = typed::<Deployment>(&doc).expect_err("rejected");
    assert!(err.contains("readinesProbe"), "{err}");
    let monitor: Value = serde_norway::from_str(
        "apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata: {name: x}\nspec:\n  selector: {}\n  podMetricEndpoints: []\n",
    )
    .expect("yaml");
    assert!(check(&monitor, &Validators::new(None)).is_err());
}

fn base_docs<T: DeserializeOwned + serde::Serialize>(file: &str, kind: &str) -> Vec<T> {
    documents(&deploy().join("base").join(file))
        .into_iter()
        .filter(|d| d["kind"] == kind)
        .map(|d| typed::<T>(&d).expect("typed"))
        .collect()
}

fn args(d: &Deployment) -> Vec<String> {
    let pod = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod spec");
    pod.containers[0].args.clone().expect("args")
}

fn assert_hardened(d: &Deployment) {
    let name = d.metadata.name.clone().unwrap_or_default();
    let pod = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod spec");
    let pod_sc = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(pod_sc.run_as_non_root, Some(true), "{name}");
    assert!(pod_sc.run_as_user.is_some_and(|u| u != 0), "{name}");
    for c in &pod.containers {
        let sc = c.security_context.as_ref().expect("container securityContext");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{name}");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{name}");
        assert_eq!(
            sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_string()]),
            "{name}"
        );
        let resources = c.resources.as_ref().expect("resources");
        assert!(
            resources.requests.as_ref().is_some_and(|r| r.contains_key("cpu") && r.contains_key("memory"))
        );
        assert!(resources.limits.as_ref().is_some_and(|r| r.contains_key("memory")), "{name}");
        assert!(c.liveness_probe.is_some() && c.readiness_probe.is_some(), "{name}");
    }
}

fn probe_path(p: &Option<k8s_openapi::api::core::v1::Probe>) -> Option<String> {
    p.as_ref().and_then(|p| p.http_get.as_ref()).and_then(|h| h.path.clone())
}

#[test]
fn controller_and_load_tester_are_hardened_and_their_flags_parse() {
    let deployments: Vec<Deployment> = [("controller.yaml", "Deployment"), ("loadtester.yaml", "Deployment")]
        .iter()
        .flat_map(|(f, k)| base_docs::<Deployment>(f, k))
        .collect();
    assert_eq!(deployments.len(), 2);
    for d in &deployments {
        assert_hardened(d);
        let mut argv = vec!["serin".to_string()];
        argv.extend(args(d));
        let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        match (d.metadata.name.as_deref(), cli.command) {
            (Some("serin"), SerinCommand::Controller(flags)) => {
                assert!(flags.leader_election, "two replicas need --leader-election");
                assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(2));
                let pod = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod");
                let c = &pod.containers[0];
                assert_eq!(probe_path(&c.liveness_probe).as_deref(), Some("/healthz"));
                assert_eq!(probe_path(&c.readiness_probe).as_deref(), Some("/readyz"));
                let port = c.ports.iter().flatten().find(|p| p.name.as_deref() == Some("http-metrics"));
                assert_eq!(port.map(|p| p.container_port), Some(i32::from(flags.listen.port())));
                let cache = flags.git_cache_dir.expect("--git-cache-dir");
                let mount = c.volume_mounts.iter().flatten().find(|m| Path::new(&m.mount_path) == cache);
                let volume = pod.volumes.iter().flatten().find(|v| Some(&v.name) == mount.map(|m| &m.name));
                assert!(volume.is_some_and(|v| v.empty_dir.is_some()), "--git-cache-dir is an emptyDir");
                let env: BTreeSet<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
                assert!(env.contains("POD_NAME") && env.contains("POD_NAMESPACE"), "{env:?}");
            }
            (Some("serin-loadtester"), SerinCommand::Loadtester(flags)) => {
                let port: u16 = flags.listen.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
                let pod = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod");
                let c = &pod.containers[0];
                assert_eq!(c.ports.iter().flatten().next().map(|p| p.container_port), Some(i32::from(port)));
                assert_eq!(probe_path(&c.liveness_probe).as_deref(), Some("/healthz"));
                assert!(!flags.allow_shell, "shell tasks stay off by default");
            }
            (name, command) => panic!("{name:?} runs {command:?}"),
        }
    }
}

#[test]
fn kustomizations_list_what_exists() {
    let base = deploy().join("base");
    let mut listed = BTreeSet::new();
    for dir in [base.clone(), deploy().join("examples/flux/apps/podinfo")] {
        let k: Kustomize = strict(&documents(&dir.join("kustomization.yaml"))[0]).expect("kustomization");
        for resource in &k.resources {
            let path = dir.join(resource);
            assert!(path.exists(), "{} lists {resource}, which does not exist", dir.display());
            listed.insert(path);
        }
        for file in std::fs::read_dir(&dir).expect("dir").map(|e| e.expect("entry").path()) {
            if file.extension().is_some_and(|e| e == "yaml") && !file.ends_with("kustomization.yaml") {
                assert!(listed.contains(&file), "{} is not in its kustomization", file.display());
            }
        }
    }
    for file in
        std::fs::read_dir(base.join("crds")).expect("deploy/base/crds").map(|e| e.expect("entry").path())
    {
        assert!(listed.contains(&file), "{} is not in deploy/base/kustomization.yaml", file.display());
    }
    // With kubectl, build the base for real.
    match Command::new("kubectl").args(["kustomize"]).arg(&base).output() {
        Ok(out) => {
            assert!(out.status.success(), "kubectl kustomize: {}", String::from_utf8_lossy(&out.stderr));
            let built: Vec<Value> = load::parse_documents(&String::from_utf8_lossy(&out.stdout))
                .into_iter()
                .map(|d| d.value.expect("built YAML"))
                .collect();
            let objects = |docs: &[Value]| -> BTreeSet<String> {
                docs.iter().map(|d| format!("{}/{}", d["kind"], d["metadata"]["name"])).collect()
            };
            let mut from_files = Vec::new();
            for path in &listed {
                if path.starts_with(&base) {
                    from_files.extend(if path.is_dir() { Vec::new() } else { documents(path) });
                }
            }
            assert_eq!(objects(&built), objects(&from_files));
            assert!(built.iter().all(|d| d["kind"] != "Deployment"
                || d["spec"]["template"]["spec"]["containers"][0]["image"]
                    == format!("ghcr.io/serin-dev/serin:{}", env!("CARGO_PKG_VERSION"))));
        }
        Err(e) => eprintln!("kubectl not found ({e}): deploy/base was not built with kustomize"),
    }
}

/// `.Values.a.b` paths used by the chart's templates.
fn values_used(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\.Values((?:\.[A-Za-z0-9_]+)+)").expect("regex");
    re.captures_iter(text).map(|c| c[1].trim_start_matches('.').to_string()).collect()
}

#[test]
fn helm_chart_agrees_with_its_values_and_the_base() {
    let chart = deploy().join("chart/serin");
    let values: Value =
        serde_norway::from_str(&std::fs::read_to_string(chart.join("values.yaml")).expect("values"))
            .expect("yaml");
    let mut templates = String::new();
    for entry in std::fs::read_dir(chart.join("templates")).expect("templates") {
        let path = entry.expect("entry").path();
        templates.push_str(&std::fs::read_to_string(&path).expect("template"));
    }
    let used = values_used(&templates);
    assert!(used.len() > 20, "{used:?}");
    for path in &used {
        let found = path.split('.').try_fold(&values, |v, key| v.get(key));
        assert!(found.is_some(), "templates use .Values.{path}, which values.yaml does not define");
    }
    // Every value is used (a knob that does nothing is a bug).
    fn leaves(v: &Value, prefix: &str, out: &mut Vec<String>) {
        match v.as_object() {
            Some(map) if !map.is_empty() && !prefix.ends_with("resources") && !prefix.ends_with("labels") => {
                for (k, v) in map {
                    leaves(v, &if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    let mut all = Vec::new();
    leaves(&values, "", &mut all);
    let unused: Vec<_> = all.iter().filter(|p| !used.contains(*p)).collect();
    assert!(unused.is_empty(), "values.yaml keys no template uses: {unused:?}");

    let chart_meta: Value =
        serde_norway::from_str(&std::fs::read_to_string(chart.join("Chart.yaml")).expect("Chart.yaml"))
            .expect("yaml");
    assert_eq!(chart_meta["apiVersion"], "v2");
    assert_eq!(chart_meta["appVersion"], env!("CARGO_PKG_VERSION"));

    // The ClusterRole rules and the leader-election Role are the base's.
    let rules: Vec<PolicyRule> = serde_norway::from_str(
        &std::fs::read_to_string(chart.join("files/clusterrole-rules.yaml")).expect("rules"),
    )
    .expect("rules parse");
    let base_role = &base_docs::<ClusterRole>("rbac.yaml", "ClusterRole")[0];
    assert_eq!(
        Some(rules),
        base_role.rules,
        "files/clusterrole-rules.yaml differs from deploy/base/rbac.yaml"
    );
    let rbac = std::fs::read_to_string(chart.join("templates/rbac.yaml")).expect("rbac template");
    let role_block = rbac.split("kind: Role\n").nth(1).expect("Role in the chart");
    let role_rules = role_block.split("rules:\n").nth(1).and_then(|r| r.split("---").next()).expect("rules");
    let role_rules: Vec<PolicyRule> = serde_norway::from_str(role_rules).expect("Role rules parse");
    let base_lease_role = &base_docs::<Role>("rbac.yaml", "Role")[0];
    assert_eq!(
        Some(role_rules),
        base_lease_role.rules,
        "the chart's leader-election Role differs from the base's"
    );

    // Flags the templates pass exist on `serin controller`.
    let re = regex::Regex::new(r"- (--[a-z-]+)").expect("regex");
    let controller = std::fs::read_to_string(chart.join("templates/controller.yaml")).expect("template");
    let help = Cli::try_parse_from(["serin", "controller", "--help"]).expect_err("help").to_string();
    for flag in re.captures_iter(&controller).map(|c| c[1].to_string()) {
        assert!(help.contains(&flag), "the chart passes {flag}, which `serin controller` does not take");
    }
}

/// Sample names a metric family exports, from the `# TYPE` lines of the registry's encoding.
fn exported_series() -> BTreeSet<String> {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    // Families without a series are not encoded: give each one.
    let canary = CanaryLabels { name: "c".into(), namespace: "n".into() };
    let category = CategoryLabels { category: "x".into() };
    let result = ResultLabels { result: "x".into() };
    let run = RunLabels {
        name: "c".into(),
        namespace: "n".into(),
        deployment_strategy: "canary".into(),
        analysis_status: "completed".into(),
    };
    metrics.set_canary("n", "c", "t", serin::crd::CanaryPhase::Progressing, 10);
    metrics.canary_total.get_or_create(&NamespaceLabels { namespace: "n".into() }).set(1);
    metrics.canary_duration.get_or_create(&OutcomeLabels { outcome: "succeeded".into() }).observe(60.0);
    metrics
        .metric_analysis
        .get_or_create(&AnalysisLabels { name: canary.name, namespace: canary.namespace, metric: "m".into() })
        .set(1.0);
    metrics.successes.get_or_create(&run).inc();
    metrics.failures.get_or_create(&run).inc();
    metrics.git_reverts.get_or_create(&result).inc();
    metrics.alerts.get_or_create(&result).inc();
    metrics.reconcile_duration.observe(0.1);
    metrics.reconcile_errors.get_or_create(&category).inc();
    metrics.webhook_duration.get_or_create(&category).observe(0.1);
    metrics.query_duration.get_or_create(&category).observe(0.1);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
    let mut names = BTreeSet::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let mut parts = line.split(' ');
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else { continue };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

#[test]
fn grafana_dashboard_queries_only_exported_series() {
    let file = deploy().join("grafana/serin-controller.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("dashboard")).expect("JSON");
    let exported = exported_series();
    assert!(exported.contains("serin_canary_successes_total"), "{exported:?}");
    let re = regex::Regex::new(r"serin_[a-z_]+").expect("regex");
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            queried.extend(re.find_iter(expr).map(|m| m.as_str().to_string()));
        }
    }
    let unknown: Vec<_> = queried.iter().filter(|q| !exported.contains(*q)).collect();
    assert!(unknown.is_empty(), "the dashboard queries series the controller does not export: {unknown:?}");
    // Every family the controller exports has a panel.
    let families: BTreeSet<String> = exported
        .iter()
        .map(|s| {
            ["_bucket", "_sum", "_count"].iter().fold(s.clone(), |s, x| s.trim_end_matches(x).to_string())
        })
        .collect();
    let shown: BTreeSet<String> = queried.iter().map(|s| s.trim_end_matches("_bucket").to_string()).collect();
    let missing: Vec<_> = families.iter().filter(|f| !shown.contains(*f)).collect();
    assert!(missing.is_empty(), "exported but not on the dashboard: {missing:?}");
}

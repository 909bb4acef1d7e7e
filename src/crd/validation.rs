//! Semantic validation of Serin's resources: the rules the API server cannot express in the
//! schema or in CEL (provider capabilities, duration values, URLs, ordering, uniqueness).
//! Every function returns *all* problems, each naming the field path, so a user fixes a
//! manifest in one round.

use std::collections::BTreeSet;

use crate::analysis::template;

use super::alert_provider::AlertProviderSpec;
use super::canary::{AutoscalerKind, CanarySpec, GitMode, GitOpsSpec, Judge, Provider, Strategy, TargetKind};
use super::duration::parse_duration;
use super::metric_template::MetricTemplateSpec;

/// One problem in a manifest: the field path (e.g. `spec.analysis.stepWeights[2]`) and what
/// is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldError {
    /// Path of the offending field, from the document root.
    pub path: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl FieldError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Longest apex Service name: `<name>-primary` and the `<value>-primary` label must fit in 63.
const MAX_SERVICE_NAME: usize = 63 - "-primary".len();

/// Collects problems while walking a spec.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(path, message));
    }

    fn duration(&mut self, path: &str, value: Option<&str>, allow_zero: bool) {
        let Some(text) = value else { return };
        match parse_duration(text) {
            Ok(d) if d.is_zero() && !allow_zero => self.push(path, "must be longer than zero"),
            Ok(_) => {}
            Err(e) => self.push(path, e.to_string()),
        }
    }

    fn http_url(&mut self, path: &str, value: Option<&str>) {
        let Some(text) = value else { return };
        if let Err(message) = check_http_url(text) {
            self.push(path, message);
        }
    }

    fn unique<'a>(&mut self, path: &str, names: impl Iterator<Item = &'a str>) {
        let mut seen = BTreeSet::new();
        for (i, name) in names.enumerate() {
            if !seen.insert(name) {
                self.push(format!("{path}[{i}].name"), format!("duplicate name {name:?}"));
            }
        }
    }
}

/// Checks that `text` is an absolute `http` or `https` URL with a host.
fn check_http_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("URL {text:?} must use http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("URL {text:?} has no host"));
    }
    Ok(())
}

/// Whether `name` is a DNS-1035 label (what a Service name must be).
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// Validates a Canary spec. `default_provider` is the controller's `--provider`, used when the
/// spec names none; when both are absent, provider-specific rules are skipped.
pub fn validate_canary(spec: &CanarySpec, default_provider: Option<Provider>) -> Vec<FieldError> {
    let mut p = Problems::default();
    if let Some(provider) = spec.provider.or(default_provider) {
        validate_provider_fit(&mut p, spec, provider);
    }
    let analysis = &spec.analysis;

    p.http_url("spec.metricsServer", spec.metrics_server.as_deref());

    // Target and references.
    let target = &spec.target_ref;
    match target.kind {
        TargetKind::Deployment | TargetKind::DaemonSet if target.api_version != "apps/v1" => {
            p.push("spec.targetRef.apiVersion", format!("must be apps/v1 for a {:?}", target.kind))
        }
        TargetKind::Service => p.push(
            "spec.targetRef.kind",
            "Service targets (Knative) are not supported by Serin; release the Deployment",
        ),
        // Flagger "scales" a DaemonSet by a nodeSelector matching no node; Serin's workload
        // code (primary copy, readiness, scaling, caches) handles Deployments only, so a
        // DaemonSet would otherwise stall as "target deployment not found".
        TargetKind::DaemonSet if target.api_version == "apps/v1" => p.push(
            "spec.targetRef.kind",
            "DaemonSet targets are not supported by Serin yet; release a Deployment",
        ),
        _ => {}
    }
    if let Some(scaler) = &spec.autoscaler_ref {
        let want = match scaler.kind {
            AutoscalerKind::HorizontalPodAutoscaler => "autoscaling/v2",
            AutoscalerKind::ScaledObject => "keda.sh/v1alpha1",
        };
        if scaler.api_version != want {
            p.push("spec.autoscalerRef.apiVersion", format!("must be {want} for a {:?}", scaler.kind));
        }
        if scaler.primary_scaler_queries.is_some() && scaler.kind != AutoscalerKind::ScaledObject {
            p.push("spec.autoscalerRef.primaryScalerQueries", "applies to KEDA ScaledObjects only");
        }
    }
    if let Some(ingress) = &spec.ingress_ref
        && (ingress.kind != "Ingress" || ingress.api_version != "networking.k8s.io/v1")
    {
        p.push("spec.ingressRef", "must reference a networking.k8s.io/v1 Ingress");
    }

    // Service.
    let service_name = spec.service_name();
    let service_path = if spec.service.name.is_some() { "spec.service.name" } else { "spec.targetRef.name" };
    if !is_dns_label(service_name) {
        p.push(service_path, format!("{service_name:?} is not a valid Service name (lower-case letters, digits and '-', starting with a letter)"));
    } else if service_name.len() > MAX_SERVICE_NAME {
        p.push(
            service_path,
            format!("{service_name:?} is longer than {MAX_SERVICE_NAME} characters, so {service_name}-primary would not be a valid name"),
        );
    }
    p.duration("spec.service.timeout", spec.service.timeout.as_deref(), false);
    p.duration("spec.service.backendTimeout", spec.service.backend_timeout.as_deref(), false);
    if let Some(retries) = &spec.service.retries {
        p.duration("spec.service.retries.perTryTimeout", retries.per_try_timeout.as_deref(), false);
    }
    for (i, host) in spec.service.hosts.iter().flatten().enumerate() {
        if host.trim().is_empty() {
            p.push(format!("spec.service.hosts[{i}]"), "must not be empty");
        }
    }

    // Analysis schedule and strategy.
    p.duration("spec.analysis.interval", analysis.interval.as_deref(), false);
    if let Some(weights) = &analysis.step_weights {
        for (i, pair) in weights.windows(2).enumerate() {
            if pair[1] <= pair[0] {
                p.push(
                    format!("spec.analysis.stepWeights[{}]", i + 1),
                    format!("step weights must increase: {} follows {}", pair[1], pair[0]),
                );
            }
        }
        if let (Some(max), Some(last)) = (analysis.max_weight, weights.iter().max())
            && *last > max
        {
            p.push("spec.analysis.stepWeights", format!("weight {last} exceeds maxWeight {max}"));
        }
    }
    // Metrics.
    let metrics = analysis.metrics.as_deref().unwrap_or_default();
    p.unique("spec.analysis.metrics", metrics.iter().map(|m| m.name.as_str()));
    for (i, metric) in metrics.iter().enumerate() {
        let path = format!("spec.analysis.metrics[{i}]");
        p.duration(&format!("{path}.interval"), metric.interval.as_deref(), false);
        let judge = metric.judge.unwrap_or(Judge::Threshold);
        let has_bound = metric.threshold.is_some()
            || metric.threshold_range.as_ref().is_some_and(|r| r.min.is_some() || r.max.is_some());
        if judge == Judge::Threshold && !has_bound {
            p.push(
                format!("{path}.thresholdRange"),
                "set min and/or max: a check without bounds always passes",
            );
        }
        if metric.template_variables.is_some() && metric.template_ref.is_none() {
            p.push(format!("{path}.templateVariables"), "variables need a templateRef");
        }
        if let Some(query) = &metric.query
            && let Err(e) = template::check(query)
        {
            p.push(format!("{path}.query"), e.to_string());
        }
    }

    // Webhooks and alerts.
    let webhooks = analysis.webhooks.as_deref().unwrap_or_default();
    p.unique("spec.analysis.webhooks", webhooks.iter().map(|w| w.name.as_str()));
    for (i, hook) in webhooks.iter().enumerate() {
        let path = format!("spec.analysis.webhooks[{i}]");
        p.http_url(&format!("{path}.url"), Some(&hook.url));
        p.duration(&format!("{path}.timeout"), hook.timeout.as_deref(), false);
        for name in hook.headers.iter().flat_map(|h| h.keys()) {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
                p.push(format!("{path}.headers"), format!("{name:?} is not a valid HTTP header name"));
            }
        }
    }
    let alerts = analysis.alerts.as_deref().unwrap_or_default();
    p.unique("spec.analysis.alerts", alerts.iter().map(|a| a.name.as_str()));

    if let Some(gitops) = &spec.gitops {
        validate_gitops(&mut p, gitops);
    }
    p.0
}

/// Rules that depend on what the chosen traffic router can do.
fn validate_provider_fit(p: &mut Problems, spec: &CanarySpec, provider: Provider) {
    let strategy = spec.strategy();
    let analysis = &spec.analysis;
    if !provider.is_supported() {
        let supported: Vec<&str> =
            Provider::ALL.iter().filter(|p| p.is_supported()).map(|p| p.as_str()).collect();
        p.push(
            "spec.provider",
            format!(
                "provider \"{provider}\" is not supported by Serin; use one of: {}",
                supported.join(", ")
            ),
        );
    }
    if spec.service.backend_timeout.is_some()
        && !matches!(provider, Provider::GatewayApiV1 | Provider::GatewayApiV1Beta1)
    {
        p.push("spec.service.backendTimeout", "applies to the gatewayapi providers only");
    }
    if provider == Provider::Kubernetes && strategy != Strategy::BlueGreen {
        let field =
            if analysis.match_.is_some() { "spec.analysis.match" } else { "spec.analysis.stepWeight" };
        p.push(
            field,
            "provider kubernetes cannot split traffic: use blue/green (analysis.iterations without match)",
        );
    }
    if strategy == Strategy::ABTesting && provider != Provider::Kubernetes && !provider.supports_ab_testing()
    {
        p.push(
            "spec.analysis.match",
            format!(
                "provider {provider} cannot match requests (A/B testing needs istio, linkerd, gatewayapi, nginx or contour)"
            ),
        );
    }
    if analysis.mirror == Some(true) {
        if !provider.supports_mirroring() {
            p.push(
                "spec.analysis.mirror",
                format!("provider {provider} cannot mirror traffic (istio, gatewayapi and traefik can)"),
            );
        } else if strategy == Strategy::ABTesting {
            p.push(
                "spec.analysis.mirror",
                "mirroring applies to canary and blue/green releases, not A/B testing",
            );
        }
    }
    if analysis.session_affinity.is_some() {
        if !provider.supports_session_affinity() {
            p.push(
                "spec.analysis.sessionAffinity",
                format!("provider {provider} has no cookie routing (istio and gatewayapi have)"),
            );
        } else if strategy != Strategy::Canary {
            p.push(
                "spec.analysis.sessionAffinity",
                "session affinity applies to weighted canary releases only",
            );
        }
    }
}

fn validate_gitops(p: &mut Problems, gitops: &GitOpsSpec) {
    let Some(source) = &gitops.source else { return };
    if let Some(url) = &source.url {
        if let Err(message) = check_git_url(url) {
            p.push("spec.gitops.source.url", message);
        } else if gitops.mode == Some(GitMode::PullRequest) && !url.starts_with("https://") {
            p.push(
                "spec.gitops.mode",
                "pullRequest needs an https source url (a GitHub or GitLab repository)",
            );
        }
    }
    if let Some(branch) = &source.branch
        && !is_valid_branch(branch)
    {
        p.push("spec.gitops.source.branch", format!("{branch:?} is not a valid branch name"));
    }
    if let Some(path) = &source.path
        && (path.starts_with('/') || path.split('/').any(|part| part == ".."))
    {
        p.push("spec.gitops.source.path", "must be a path inside the repository (relative, without '..')");
    }
}

/// Accepts the URL forms git understands: `https://`, `http://`, `ssh://`, `git://`, `file://`
/// and scp-like `user@host:path`.
fn check_git_url(text: &str) -> Result<(), String> {
    if let Some((user_host, path)) = text.split_once(':') {
        let scp_like = !user_host.contains('/') && user_host.contains('@') && !path.starts_with("//");
        if scp_like {
            return if path.is_empty() { Err(format!("git URL {text:?} has no path")) } else { Ok(()) };
        }
    }
    let url = url::Url::parse(text).map_err(|e| format!("invalid git URL {text:?}: {e}"))?;
    match url.scheme() {
        "https" | "http" | "ssh" | "git" | "file" => Ok(()),
        other => Err(format!("git URL scheme {other:?} is not supported (https, http, ssh, git, file)")),
    }
}

/// A conservative check of git's ref-name rules for a branch.
fn is_valid_branch(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['-', '/'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && !name.chars().any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c))
}

/// Validates a MetricTemplate spec.
pub fn validate_metric_template(spec: &MetricTemplateSpec) -> Vec<FieldError> {
    let mut p = Problems::default();
    if !spec.provider.type_.is_supported() {
        p.push(
            "spec.provider.type",
            format!(
                "\"{}\" is not supported by Serin; use prometheus (or any Prometheus-compatible API)",
                spec.provider.type_.as_str()
            ),
        );
    }
    p.http_url("spec.provider.address", spec.provider.address.as_deref());
    for (name, values) in spec.provider.headers.iter().flatten() {
        if values.is_empty() {
            p.push(format!("spec.provider.headers.{name}"), "needs at least one value");
        }
    }
    if let Err(e) = template::check(&spec.query) {
        p.push("spec.query", e.to_string());
    }
    if let Some(count) = &spec.request_count_query
        && let Err(e) = template::check(count)
    {
        p.push("spec.requestCountQuery", e.to_string());
    }
    p.0
}

/// Validates an AlertProvider spec.
pub fn validate_alert_provider(spec: &AlertProviderSpec) -> Vec<FieldError> {
    let mut p = Problems::default();
    p.http_url("spec.address", spec.address.as_deref());
    p.http_url("spec.proxy", spec.proxy.as_deref());
    p.0
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::crd::AlertProviderSpec;

    fn canary_spec(patch: impl FnOnce(&mut Value)) -> CanarySpec {
        let mut spec = json!({
            "provider": "istio",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {
                "interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10,
                "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
                "webhooks": [{"name": "load", "url": "http://loadtester.test/"}],
                "alerts": [{"name": "slack", "providerRef": {"name": "slack"}}]
            }
        });
        patch(&mut spec);
        serde_json::from_value(spec).expect("test spec deserializes")
    }

    fn lines(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn the_base_spec_is_valid() {
        assert_eq!(lines(validate_canary(&canary_spec(|_| {}), None)), Vec::<String>::new());
    }

    #[test]
    fn canary_rules() {
        type Patch = fn(&mut Value);
        let cases: Vec<(&str, Patch, Vec<&str>)> = vec![
            (
                "unsupported provider",
                |s| s["provider"] = json!("kuma"),
                vec![
                    "spec.provider: provider \"kuma\" is not supported by Serin; use one of: kubernetes, istio, linkerd, gatewayapi:v1, gatewayapi:v1beta1, smi:v1alpha1, smi:v1alpha2, smi:v1alpha3, nginx, traefik, contour",
                ],
            ),
            (
                "metrics server URL",
                |s| s["metricsServer"] = json!("prometheus:9090"),
                vec!["spec.metricsServer: URL \"prometheus:9090\" must use http or https"],
            ),
            (
                "deployment apiVersion",
                |s| s["targetRef"]["apiVersion"] = json!("apps/v1beta1"),
                vec!["spec.targetRef.apiVersion: must be apps/v1 for a Deployment"],
            ),
            (
                "service target",
                |s| s["targetRef"]["kind"] = json!("Service"),
                vec![
                    "spec.targetRef.kind: Service targets (Knative) are not supported by Serin; release the Deployment",
                ],
            ),
            (
                "daemonset target",
                |s| s["targetRef"]["kind"] = json!("DaemonSet"),
                vec![
                    "spec.targetRef.kind: DaemonSet targets are not supported by Serin yet; release a Deployment",
                ],
            ),
            (
                "hpa apiVersion",
                |s| {
                    s["autoscalerRef"] = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "name": "h"})
                },
                vec!["spec.autoscalerRef.apiVersion: must be autoscaling/v2 for a HorizontalPodAutoscaler"],
            ),
            (
                "keda queries on hpa",
                |s| s["autoscalerRef"] = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "h", "primaryScalerQueries": {"a": "b"}}),
                vec!["spec.autoscalerRef.primaryScalerQueries: applies to KEDA ScaledObjects only"],
            ),
            (
                "ingress kind",
                |s| s["ingressRef"] = json!({"apiVersion": "v1", "kind": "Service", "name": "x"}),
                vec!["spec.ingressRef: must reference a networking.k8s.io/v1 Ingress"],
            ),
            (
                "service name format",
                |s| s["service"]["name"] = json!("Pod_Info"),
                vec![
                    "spec.service.name: \"Pod_Info\" is not a valid Service name (lower-case letters, digits and '-', starting with a letter)",
                ],
            ),
            (
                "target name used as service name",
                |s| s["targetRef"]["name"] = json!("9lives"),
                vec![
                    "spec.targetRef.name: \"9lives\" is not a valid Service name (lower-case letters, digits and '-', starting with a letter)",
                ],
            ),
            (
                "zero timeout",
                |s| s["service"]["timeout"] = json!("0s"),
                vec!["spec.service.timeout: must be longer than zero"],
            ),
            (
                "per-try timeout",
                |s| s["service"]["retries"] = json!({"perTryTimeout": "5"}),
                vec![
                    "spec.service.retries.perTryTimeout: invalid duration \"5\": expected a number and unit (ms, s, m, h), e.g. 30s or 1m30s",
                ],
            ),
            (
                "backendTimeout off gatewayapi",
                |s| s["service"]["backendTimeout"] = json!("5s"),
                vec!["spec.service.backendTimeout: applies to the gatewayapi providers only"],
            ),
            (
                "empty host",
                |s| s["service"]["hosts"] = json!(["a.example.com", " "]),
                vec!["spec.service.hosts[1]: must not be empty"],
            ),
            (
                "interval too long",
                |s| s["analysis"]["interval"] = json!("10000h"),
                vec!["spec.analysis.interval: duration \"10000h\" is too long"],
            ),
            (
                "stepWeights above maxWeight",
                |s| {
                    s["analysis"]["stepWeight"] = Value::Null;
                    s["analysis"]["stepWeights"] = json!([10, 60]);
                },
                vec!["spec.analysis.stepWeights: weight 60 exceeds maxWeight 50"],
            ),
            (
                "stepWeights not increasing",
                |s| {
                    s["analysis"]["stepWeight"] = Value::Null;
                    s["analysis"]["maxWeight"] = Value::Null;
                    s["analysis"]["stepWeights"] = json!([10, 10, 5]);
                },
                vec![
                    "spec.analysis.stepWeights[1]: step weights must increase: 10 follows 10",
                    "spec.analysis.stepWeights[2]: step weights must increase: 5 follows 10",
                ],
            ),
            (
                "kubernetes with A/B match",
                |s| {
                    s["provider"] = json!("kubernetes");
                    s["analysis"]["stepWeight"] = Value::Null;
                    s["analysis"]["iterations"] = json!(5);
                    s["analysis"]["match"] = json!([{"headers": {"x": {"exact": "1"}}}]);
                },
                vec![
                    "spec.analysis.match: provider kubernetes cannot split traffic: use blue/green (analysis.iterations without match)",
                ],
            ),
            (
                "mirror on A/B",
                |s| {
                    s["analysis"]["stepWeight"] = Value::Null;
                    s["analysis"]["iterations"] = json!(5);
                    s["analysis"]["mirror"] = json!(true);
                    s["analysis"]["match"] = json!([{"headers": {"x": {"exact": "1"}}}]);
                },
                vec![
                    "spec.analysis.mirror: mirroring applies to canary and blue/green releases, not A/B testing",
                ],
            ),
            (
                "session affinity on contour",
                |s| {
                    s["provider"] = json!("contour");
                    s["analysis"]["sessionAffinity"] = json!({"cookieName": "c"});
                },
                vec![
                    "spec.analysis.sessionAffinity: provider contour has no cookie routing (istio and gatewayapi have)",
                ],
            ),
            (
                "session affinity on blue/green",
                |s| {
                    s["analysis"]["stepWeight"] = Value::Null;
                    s["analysis"]["maxWeight"] = Value::Null;
                    s["analysis"]["iterations"] = json!(5);
                    s["analysis"]["sessionAffinity"] = json!({"cookieName": "c"});
                },
                vec![
                    "spec.analysis.sessionAffinity: session affinity applies to weighted canary releases only",
                ],
            ),
            (
                "duplicate metric",
                |s| {
                    s["analysis"]["metrics"] = json!([
                        {"name": "request-success-rate", "thresholdRange": {"min": 99}},
                        {"name": "request-success-rate", "thresholdRange": {"min": 98}}
                    ])
                },
                vec!["spec.analysis.metrics[1].name: duplicate name \"request-success-rate\""],
            ),
            (
                "metric without bounds",
                |s| s["analysis"]["metrics"] = json!([{"name": "request-duration"}]),
                vec![
                    "spec.analysis.metrics[0].thresholdRange: set min and/or max: a check without bounds always passes",
                ],
            ),
            (
                "comparative needs no bounds",
                |s| {
                    s["analysis"]["metrics"] =
                        json!([{"name": "lat", "templateRef": {"name": "t"}, "judge": "comparative"}])
                },
                vec![],
            ),
            (
                "deprecated threshold is a bound",
                |s| s["analysis"]["metrics"] = json!([{"name": "request-duration", "threshold": 500}]),
                vec![],
            ),
            (
                "variables without template",
                |s| s["analysis"]["metrics"] = json!([{"name": "x", "query": "up", "thresholdRange": {"min": 1}, "templateVariables": {"a": "b"}}]),
                vec!["spec.analysis.metrics[0].templateVariables: variables need a templateRef"],
            ),
            (
                "inline query placeholder",
                |s| {
                    s["analysis"]["metrics"] =
                        json!([{"name": "x", "query": "up{ns=\"{{ ns }}\"}", "thresholdRange": {"min": 1}}])
                },
                vec![
                    "spec.analysis.metrics[0].query: unknown placeholder {{ ns }}: use name, namespace, target, service, ingress, route, interval, primary or variables.KEY",
                ],
            ),
            (
                "metric zero interval",
                |s| s["analysis"]["metrics"][0]["interval"] = json!("0m"),
                vec!["spec.analysis.metrics[0].interval: must be longer than zero"],
            ),
            (
                "webhook scheme",
                |s| s["analysis"]["webhooks"][0]["url"] = json!("ftp://loadtester/"),
                vec!["spec.analysis.webhooks[0].url: URL \"ftp://loadtester/\" must use http or https"],
            ),
            (
                "webhook header name",
                |s| s["analysis"]["webhooks"][0]["headers"] = json!({"X Bad": "1"}),
                vec!["spec.analysis.webhooks[0].headers: \"X Bad\" is not a valid HTTP header name"],
            ),
            (
                "duplicate alert",
                |s| {
                    s["analysis"]["alerts"] = json!([
                        {"name": "a", "providerRef": {"name": "x"}}, {"name": "a", "providerRef": {"name": "y"}}
                    ])
                },
                vec!["spec.analysis.alerts[1].name: duplicate name \"a\""],
            ),
            (
                "git url scheme",
                |s| s["gitops"] = json!({"revert": true, "source": {"url": "svn://x/y"}}),
                vec![
                    "spec.gitops.source.url: git URL scheme \"svn\" is not supported (https, http, ssh, git, file)",
                ],
            ),
            (
                "scp-like git url",
                |s| s["gitops"] = json!({"revert": true, "source": {"url": "git@github.com:org/repo.git"}}),
                vec![],
            ),
            (
                "pull request over ssh",
                |s| s["gitops"] = json!({"revert": true, "mode": "pullRequest", "source": {"url": "ssh://git@host/repo.git"}}),
                vec![
                    "spec.gitops.mode: pullRequest needs an https source url (a GitHub or GitLab repository)",
                ],
            ),
            (
                "git path escapes",
                |s| {
                    s["gitops"] = json!({"revert": true, "source": {"url": "https://h/r.git", "path": "apps/../../etc"}})
                },
                vec![
                    "spec.gitops.source.path: must be a path inside the repository (relative, without '..')",
                ],
            ),
            (
                "git branch",
                |s| {
                    s["gitops"] =
                        json!({"revert": true, "source": {"url": "https://h/r.git", "branch": "feature/x"}})
                },
                vec![],
            ),
        ];
        for (name, patch, want) in cases {
            let got = lines(validate_canary(&canary_spec(patch), None));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn provider_rules_use_the_default_provider_when_the_spec_has_none() {
        let spec = canary_spec(|s| {
            s["provider"] = Value::Null;
        });
        assert_eq!(lines(validate_canary(&spec, None)), Vec::<String>::new());
        assert_eq!(
            lines(validate_canary(&spec, Some(Provider::Kubernetes))),
            vec![
                "spec.analysis.stepWeight: provider kubernetes cannot split traffic: use blue/green (analysis.iterations without match)",
            ]
        );
    }

    #[test]
    fn ab_testing_needs_a_router_that_matches_requests() {
        let ab = |provider: &str| {
            let spec = canary_spec(|s| {
                s["analysis"]["stepWeight"] = Value::Null;
                s["analysis"]["maxWeight"] = Value::Null;
                s["analysis"]["iterations"] = json!(5);
                s["analysis"]["match"] = json!([{"headers": {"x-canary": {"exact": "1"}}}]);
            });
            let mut spec = spec;
            spec.provider = serde_json::from_value(json!(provider)).expect("provider");
            spec.ingress_ref = serde_json::from_value(
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo"}),
            )
            .expect("ref");
            lines(validate_canary(&spec, None))
        };
        for ok in ["istio", "linkerd", "gatewayapi:v1", "nginx", "contour"] {
            assert_eq!(ab(ok), Vec::<String>::new(), "{ok}");
        }
        assert_eq!(
            ab("traefik"),
            vec![
                "spec.analysis.match: provider traefik cannot match requests (A/B testing needs istio, linkerd, gatewayapi, nginx or contour)"
            ]
        );
        assert_eq!(ab("smi:v1alpha3").len(), 1);
    }

    #[test]
    fn returns_every_problem_not_just_the_first() {
        let spec = canary_spec(|s| {
            s["provider"] = json!("gloo");
            s["analysis"]["interval"] = json!("0s");
            s["analysis"]["webhooks"][0]["url"] = json!("nope");
        });
        assert_eq!(validate_canary(&spec, None).len(), 3);
    }

    #[test]
    fn metric_template_and_alert_provider_rules() {
        let template = |patch: fn(&mut Value)| {
            let mut t = json!({"provider": {"type": "prometheus", "address": "http://prometheus:9090"}, "query": "up"});
            patch(&mut t);
            lines(validate_metric_template(&serde_json::from_value(t).expect("template")))
        };
        assert_eq!(template(|_| {}), Vec::<String>::new());
        assert_eq!(
            template(|t| t["provider"]["type"] = json!("graphite")),
            vec![
                "spec.provider.type: \"graphite\" is not supported by Serin; use prometheus (or any Prometheus-compatible API)",
            ]
        );
        assert_eq!(
            template(|t| t["provider"]["address"] = json!("prometheus")),
            vec!["spec.provider.address: invalid URL \"prometheus\": relative URL without a base",]
        );
        assert_eq!(
            template(|t| t["provider"]["headers"] = json!({"X-Scope-OrgID": []})),
            vec!["spec.provider.headers.X-Scope-OrgID: needs at least one value",]
        );
        assert_eq!(
            template(|t| t["query"] = json!("up{a=\"{{ target }\"}")),
            vec!["spec.query: unclosed placeholder starting at byte 6: expected }}",]
        );
        assert_eq!(
            template(|t| t["requestCountQuery"] = json!("sum(x{a=\"{{ tagret }}\"})")),
            vec![
                "spec.requestCountQuery: unknown placeholder {{ tagret }}: use name, namespace, target, service, ingress, route, interval, primary or variables.KEY",
            ]
        );

        let provider = |value: Value| {
            lines(validate_alert_provider(
                &serde_json::from_value::<AlertProviderSpec>(value).expect("provider"),
            ))
        };
        assert_eq!(
            provider(json!({"type": "slack", "address": "https://hooks.slack.com/x"})),
            Vec::<String>::new()
        );
        assert_eq!(
            provider(json!({"type": "slack", "address": "https://h/x", "proxy": "proxy:3128"})),
            vec!["spec.proxy: URL \"proxy:3128\" must use http or https",]
        );
    }
}

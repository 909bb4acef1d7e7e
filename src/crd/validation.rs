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
            "Service targets (Knative) are not supported by Serin; release the Deployment or DaemonSet",
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
    p.0
}

/// Validates an AlertProvider spec.
pub fn validate_alert_provider(spec: &AlertProviderSpec) -> Vec<FieldError> {
    let mut p = Problems::default();
    p.http_url("spec.address", spec.address.as_deref());
    p.http_url("spec.proxy", spec.proxy.as_deref());
    p.0
}

//! Query templates in Flagger's syntax: `{{ namespace }}`, `{{ target }}`, `{{ variables.KEY }}`…
//! Parsing and rendering are pure; an unknown placeholder or a missing variable is an error that
//! names it, never an empty string in the query.

use std::collections::BTreeMap;

use thiserror::Error;

/// A problem with a query template.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    /// `{{` without a matching `}}`.
    #[error("unclosed placeholder starting at byte {0}: expected }}}}")]
    Unclosed(usize),
    /// `{{ }}` with nothing inside.
    #[error("empty placeholder at byte {0}")]
    Empty(usize),
    /// A placeholder Serin does not know.
    #[error(
        "unknown placeholder {{{{ {0} }}}}: use name, namespace, target, service, ingress, route, interval, primary or variables.KEY"
    )]
    Unknown(String),
    /// `{{ variables.KEY }}` without a value for KEY.
    #[error("variable {0:?} is used by the query but not set in templateVariables")]
    MissingVariable(String),
}

/// One placeholder of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placeholder {
    /// The Canary's name.
    Name,
    /// The Canary's namespace.
    Namespace,
    /// `targetRef.name`.
    Target,
    /// The apex Service name.
    Service,
    /// `ingressRef.name`, or the target's name.
    Ingress,
    /// `routeRef.name`, or the target's name.
    Route,
    /// The metric's query window.
    Interval,
    /// Serin: the primary workload's name (`<target>-primary`), for comparisons.
    Primary,
    /// `variables.KEY`.
    Variable(String),
}

/// A template split into literal text and placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Text copied as is.
    Text(&'a str),
    /// A value filled in at render time.
    Placeholder(Placeholder),
}

/// Values for every placeholder of a template.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateContext {
    /// The Canary's name.
    pub name: String,
    /// The Canary's namespace.
    pub namespace: String,
    /// `targetRef.name`.
    pub target: String,
    /// The apex Service name.
    pub service: String,
    /// `ingressRef.name`, or the target's name.
    pub ingress: String,
    /// `routeRef.name`, or the target's name.
    pub route: String,
    /// The metric's query window, e.g. `1m`.
    pub interval: String,
    /// The primary workload's name.
    pub primary: String,
    /// `templateVariables` of the metric check.
    pub variables: BTreeMap<String, String>,
}

fn placeholder(expr: &str) -> Result<Placeholder, TemplateError> {
    Ok(match expr {
        "name" => Placeholder::Name,
        "namespace" => Placeholder::Namespace,
        "target" => Placeholder::Target,
        "service" => Placeholder::Service,
        "ingress" => Placeholder::Ingress,
        "route" => Placeholder::Route,
        "interval" => Placeholder::Interval,
        "primary" => Placeholder::Primary,
        _ => match expr.strip_prefix("variables.") {
            Some(key) if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                Placeholder::Variable(key.to_string())
            }
            _ => return Err(TemplateError::Unknown(expr.to_string())),
        },
    })
}

/// Splits a template into text and placeholders.
pub fn parse(template: &str) -> Result<Vec<Segment<'_>>, TemplateError> {
    let mut segments = Vec::new();
    let mut offset = 0;
    while let Some(start) = template[offset..].find("{{") {
        let open = offset + start;
        if open > offset {
            segments.push(Segment::Text(&template[offset..open]));
        }
        let inner_start = open + 2;
        let close = template[inner_start..].find("}}").ok_or(TemplateError::Unclosed(open))? + inner_start;
        let expr = template[inner_start..close].trim();
        if expr.is_empty() {
            return Err(TemplateError::Empty(open));
        }
        segments.push(Segment::Placeholder(placeholder(expr)?));
        offset = close + 2;
    }
    if offset < template.len() {
        segments.push(Segment::Text(&template[offset..]));
    }
    Ok(segments)
}

/// Checks that a template parses, without values.
pub fn check(template: &str) -> Result<(), TemplateError> {
    parse(template).map(|_| ())
}

/// Renders a template with the given values.
pub fn render(template: &str, ctx: &TemplateContext) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 64);
    for segment in parse(template)? {
        let value = match &segment {
            Segment::Text(text) => text,
            Segment::Placeholder(p) => match p {
                Placeholder::Name => ctx.name.as_str(),
                Placeholder::Namespace => &ctx.namespace,
                Placeholder::Target => &ctx.target,
                Placeholder::Service => &ctx.service,
                Placeholder::Ingress => &ctx.ingress,
                Placeholder::Route => &ctx.route,
                Placeholder::Interval => &ctx.interval,
                Placeholder::Primary => &ctx.primary,
                Placeholder::Variable(key) => {
                    ctx.variables.get(key).ok_or_else(|| TemplateError::MissingVariable(key.clone()))?
                }
            },
        };
        out.push_str(value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> TemplateContext {
        TemplateContext {
            name: "podinfo".into(),
            namespace: "test".into(),
            target: "podinfo".into(),
            service: "podinfo-svc".into(),
            ingress: "podinfo-ing".into(),
            route: "podinfo-route".into(),
            interval: "1m".into(),
            primary: "podinfo-primary".into(),
            variables: BTreeMap::from([("direction".into(), "inbound".into())]),
        }
    }

    #[test]
    fn renders_every_placeholder() {
        let cases = [
            ("{{ name }}", "podinfo"),
            ("{{namespace}}", "test"),
            ("{{  target  }}", "podinfo"),
            ("{{ service }}", "podinfo-svc"),
            ("{{ ingress }}", "podinfo-ing"),
            ("{{ route }}", "podinfo-route"),
            ("[{{ interval }}]", "[1m]"),
            ("{{ primary }}", "podinfo-primary"),
            ("dir={{ variables.direction }}", "dir=inbound"),
            ("no placeholders", "no placeholders"),
            ("", ""),
            ("a{{ name }}b{{ namespace }}c", "apodinfobtestc"),
        ];
        for (template, want) in cases {
            assert_eq!(render(template, &ctx()).as_deref(), Ok(want), "{template}");
        }
    }

    #[test]
    fn reports_bad_templates_by_name() {
        let cases = [
            ("{{ namespace", TemplateError::Unclosed(0)),
            ("x {{ }}", TemplateError::Empty(2)),
            ("{{ .namespace }}", TemplateError::Unknown(".namespace".into())),
            ("{{ namespace | quote }}", TemplateError::Unknown("namespace | quote".into())),
            ("{{ variables. }}", TemplateError::Unknown("variables.".into())),
            ("{{ variables.missing }}", TemplateError::MissingVariable("missing".into())),
        ];
        for (template, want) in cases {
            assert_eq!(render(template, &ctx()), Err(want), "{template}");
        }
    }

    #[test]
    fn check_accepts_variables_without_values() {
        assert_eq!(check("{{ variables.anything }}"), Ok(()));
    }
}

//! Command-line interface: `serin crds`, `serin validate`, `serin check`, `serin replay`,
//! `serin status`, the operator actions (`promote`, `abort`, `retry`, `pause`, `resume`),
//! `serin loadtester` and `serin version`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::analysis::builtin::GatewayMetrics;
use crate::controller::{
    self,
    context::{AlertProviderKey, Settings},
    run::{RunConfig, RunError},
    shard::Shard,
};
use crate::crd::annotations::Action;
use crate::crd::duration::parse_duration;
use crate::crd::{self, Provider};
use crate::inspect::check::{self as checking, Options};
use crate::inspect::replay::{self, ReplayError};
use crate::inspect::source::{self, Loaded, SourceError};
use crate::inspect::table;
use crate::loadtester::bench::{self, BenchError, BenchPlan};
use crate::loadtester::{self, LoadtesterError, load::Limits};
use crate::manifest;
use crate::ops::{self, OpsError, status::Selection};
use crate::telemetry::logging::{self, LogFormat};

/// Serin: progressive delivery for Kubernetes with Git rollback.
#[derive(Debug, Parser)]
#[command(name = "serin", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions as YAML (or write one file per CRD).
    Crds {
        /// Write `<crd-name>.yaml` files into this directory instead of printing.
        #[arg(long, value_name = "DIR", conflicts_with = "reference")]
        output_dir: Option<PathBuf>,
        /// Print the field reference as Markdown instead of the CRDs.
        #[arg(long)]
        reference: bool,
    },
    /// Check Canary, MetricTemplate and AlertProvider manifests offline: schema, CEL rules and
    /// semantic rules. Prints `file:doc: field.path: message` per problem; exits 1 on any.
    Validate {
        /// Files or directories (walked for .yaml, .yml and .json files).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Provider assumed for canaries without `spec.provider` (the controller's
        /// `--provider`); when not given, provider-specific rules apply only to canaries that name one.
        #[arg(long, value_parser = parse_provider)]
        default_provider: Option<Provider>,
    },
    /// Run every metric check of a Canary against Prometheus now and print a table (metric,
    /// value, threshold, verdict, rendered query, and a hint for empty results). Exit code 0:
    /// all passed; 1: a check failed; 2: no data or errors (or the command could not run).
    Check(AnalysisArgs),
    /// Re-evaluate a Canary's analysis over a past window, tick by tick: each metric's value
    /// and verdict, and the decision (advance, hold, failed check, promote, roll back). Exit
    /// code 0: no rollback in the window; 1: it would have rolled back; 2: could not run.
    Replay {
        /// The Canary and where to query.
        #[command(flatten)]
        source: AnalysisArgs,
        /// Start of the window: RFC 3339, Unix seconds, `now` or `now-DURATION`.
        #[arg(long)]
        from: String,
        /// End of the window (same forms; default `now`).
        #[arg(long, default_value = "now")]
        to: String,
        /// Time between evaluations (default: the Canary's `analysis.interval`).
        #[arg(long, value_name = "DURATION")]
        step: Option<String>,
    },
    /// Run the controller: watch Canaries and their targets, shift traffic, judge, promote or
    /// roll back (and revert in Git).
    Controller(ControllerArgs),
    /// Show canaries: phase, weight, failed checks, revision and the last metric results.
    Status {
        /// Namespace (default: all namespaces).
        #[arg(short, long)]
        namespace: Option<String>,
        /// Show only this canary.
        name: Option<String>,
        /// Redraw on every change.
        #[arg(short, long)]
        watch: bool,
    },
    /// Promote a canary now, skipping the rest of its analysis.
    Promote(Target),
    /// Roll a canary back now.
    Abort(Target),
    /// Run a failed or quarantined revision again.
    Retry(Target),
    /// Stop taking steps for a canary (traffic stays where it is).
    Pause(Target),
    /// Take steps again after `pause`.
    Resume(Target),
    /// Run the load tester: flagger-loadtester compatible webhooks, native HTTP load, manual
    /// gates persisted across restarts.
    Loadtester(LoadtesterArgs),
    /// Print the version.
    Version,
}

/// Settings of `serin controller`. The cluster comes from `KUBECONFIG`, `~/.kube/config` or
/// the in-cluster service account.
#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "SERIN_NAMESPACE")]
    pub namespace: Option<String>,
    /// Traffic router for canaries without `spec.provider`.
    #[arg(long, env = "SERIN_PROVIDER", default_value = "kubernetes", value_parser = parse_provider)]
    pub provider: Provider,
    /// Prometheus URL for builtin metrics and inline queries.
    #[arg(long, env = "SERIN_METRICS_SERVER")]
    pub metrics_server: Option<String>,
    /// Which metrics the builtins read for Gateway API canaries: `envoy` or `istio`.
    #[arg(long, default_value = "envoy", value_parser = ["envoy", "istio"])]
    pub gateway_metrics: String,
    /// Cluster name added to alerts.
    #[arg(long, env = "SERIN_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: std::net::SocketAddr,
    /// Elect a leader through a Lease, so several replicas can run (only the leader acts).
    #[arg(long)]
    pub leader_election: bool,
    /// Namespace of the leader Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "serin-system")]
    pub lease_namespace: String,
    /// This replica's identity in the election (default: the pod or host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Directory for cached Git clones (default: a temporary directory per revert).
    #[arg(long)]
    pub git_cache_dir: Option<PathBuf>,
    /// At most this many canaries progress at once; the others wait in their phase with a
    /// `Queued` condition and start as others finish (default: no limit). Counted per shard.
    #[arg(long, env = "SERIN_MAX_CONCURRENT_CANARIES", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_canaries: Option<u32>,
    /// AlertProvider that gets every alert (severity info) of canaries without `analysis.alerts`.
    #[arg(long, env = "SERIN_DEFAULT_ALERT_PROVIDER", value_name = "NAMESPACE/NAME")]
    pub default_alert_provider: Option<AlertProviderKey>,
    /// Act only on the canaries of shard N of M (by a hash of namespace/name); run one
    /// controller Deployment per shard. Each shard elects its own leader.
    #[arg(long, env = "SERIN_SHARD", value_name = "N/M")]
    pub shard: Option<Shard>,
    /// Canaries reconciled at once. A reconcile waiting on a blocking webhook or a slow
    /// Prometheus holds its worker, so raise it when many canaries do; each busy worker may
    /// hold one connection to the API server.
    #[arg(long, env = "SERIN_WORKERS", default_value_t = DEFAULT_WORKERS, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
    /// Threads running the controller's tasks. 1 (the default) runs everything on one thread,
    /// which costs the least CPU per tick: the work is mostly waiting on the network, and
    /// Git operations run on a separate blocking pool either way. Raise it when one core is
    /// not enough (tens of thousands of canaries per replica).
    #[arg(long, env = "SERIN_THREADS", default_value_t = DEFAULT_THREADS, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

/// Default of `serin controller --workers`: far above the tick rate of 10,000 canaries at
/// `interval: 60s` (about 170 ticks a second of a few milliseconds each), far below the
/// thousands of connections an unbounded start-up burst opens.
pub const DEFAULT_WORKERS: u16 = 64;

/// Default of `serin controller --threads`.
pub const DEFAULT_THREADS: u16 = 1;

impl Cli {
    /// The async runtime this command runs on: `serin controller` gets `--threads` threads
    /// (one: a current-thread runtime); every other command tokio's default, a worker per core.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        match &self.command {
            Command::Controller(args) if args.threads == 1 => {
                tokio::runtime::Builder::new_current_thread().enable_all().build()
            }
            Command::Controller(args) => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(usize::from(args.threads))
                .enable_all()
                .build(),
            _ => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
        }
    }
}

/// Which Canary `serin check` and `serin replay` analyse, and where they query.
#[derive(Debug, clap::Args)]
pub struct AnalysisArgs {
    /// A Canary manifest (file, or directory holding one Canary), or the name of a Canary in
    /// the cluster of the kubeconfig when no such path exists.
    #[arg(long, value_name = "FILE|NAME")]
    pub canary: String,
    /// Namespace: of the Canary in the cluster (default: the kubeconfig's), or for a
    /// manifest without one (default `default`).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// MetricTemplate manifests (files or directories), besides those next to the Canary.
    #[arg(long, num_args = 1.., value_name = "PATH")]
    pub templates: Vec<PathBuf>,
    /// Prometheus URL that every query goes to (e.g. a port-forward), instead of
    /// `spec.metricsServer` and the templates' addresses.
    #[arg(long, env = "SERIN_PROMETHEUS", value_name = "URL")]
    pub prometheus: Option<String>,
    /// Traffic router for a Canary without `spec.provider` (picks the builtin queries).
    #[arg(long, default_value = "kubernetes", value_parser = parse_provider)]
    pub provider: Provider,
    /// Which metrics the builtins read for Gateway API canaries: `envoy` or `istio`.
    #[arg(long, default_value = "envoy", value_parser = ["envoy", "istio"])]
    pub gateway_metrics: String,
}

impl AnalysisArgs {
    fn options(&self) -> Options {
        Options {
            prometheus: self.prometheus.clone(),
            default_provider: self.provider,
            gateway: gateway_metrics(&self.gateway_metrics),
        }
    }

    /// Loads the Canary from files, or from the cluster when `--canary` is not a path.
    async fn load(&self) -> Result<Loaded, CliError> {
        let path = std::path::Path::new(&self.canary);
        if path.exists() {
            return Ok(source::load_files(path, &self.templates, self.namespace.as_deref())?);
        }
        let client = ops::client().await?;
        let namespace = self.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
        Ok(source::load_cluster(client, &self.canary, &namespace, &self.templates).await?)
    }
}

fn gateway_metrics(text: &str) -> GatewayMetrics {
    match text {
        "istio" => GatewayMetrics::Istio,
        _ => GatewayMetrics::Envoy,
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Settings of `serin loadtester`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LoadtesterArgs {
    /// Instead of serving: measure the load generator.
    #[command(subcommand)]
    pub command: Option<LoadtesterCommand>,
    /// Address to listen on (in a pod: `0.0.0.0:9090`).
    #[arg(long, env = "SERIN_LOADTESTER_LISTEN", default_value = "127.0.0.1:9090")]
    pub listen: String,
    /// Run `bash`, `cmd` (other than `hey`), `helm` and `kubectl` tasks. Off by default: such
    /// requests get 403.
    #[arg(long)]
    pub allow_shell: bool,
    /// Accept only payloads whose namespace matches this regular expression (whole name).
    #[arg(long, value_name = "RE")]
    pub namespace_regexp: Option<String>,
    /// Persist gate state in this JSON file (put it on a volume) so restarts keep gates.
    #[arg(long, env = "SERIN_LOADTESTER_STATE_FILE", value_name = "PATH")]
    pub state_file: Option<PathBuf>,
    /// Longest load (Go duration).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub max_duration: std::time::Duration,
    /// Highest total rate of one load, requests per second.
    #[arg(long, default_value_t = 5000.0)]
    pub max_rate: f64,
    /// Most requests in flight for one load.
    #[arg(long, default_value_t = 256)]
    pub max_concurrency: u32,
    /// Most loads running at once.
    #[arg(long, default_value_t = 32)]
    pub max_loads: usize,
    /// Longest shell command (Go duration).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

/// Load tester tools.
#[derive(Debug, Subcommand)]
pub enum LoadtesterCommand {
    /// Drive load at a local target (127.0.0.1) and print requested vs achieved rate, latency
    /// percentiles and the maximum rate of one client thread (plus `wrk`/`hey`, when on PATH).
    Bench {
        /// Requested rates, requests per second.
        #[arg(long, value_delimiter = ',', default_values_t = [10.0, 100.0, 1000.0, 5000.0])]
        rates: Vec<f64>,
        /// Length of each step (Go duration).
        #[arg(long, default_value = "3s", value_parser = parse_duration)]
        duration: std::time::Duration,
        /// Workers of the maximum-rate step.
        #[arg(long, default_value_t = 64)]
        concurrency: u32,
    },
}

impl LoadtesterArgs {
    /// The load tester configuration these flags describe.
    pub fn config(&self) -> Result<loadtester::Config, LoadtesterError> {
        Ok(loadtester::Config {
            allow_shell: self.allow_shell,
            namespace_regexp: self
                .namespace_regexp
                .as_deref()
                .map(loadtester::namespace_regexp)
                .transpose()?,
            state_file: self.state_file.clone(),
            limits: Limits {
                max_duration: self.max_duration,
                max_rate: self.max_rate,
                max_concurrency: self.max_concurrency,
            },
            exec_timeout: self.timeout,
            max_loads: self.max_loads,
        })
    }
}

/// The canary an operator action applies to.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// Name of the Canary.
    pub name: String,
    /// Namespace (default: the kubeconfig's current namespace).
    #[arg(short, long)]
    pub namespace: Option<String>,
}

fn parse_provider(text: &str) -> Result<Provider, String> {
    Provider::ALL.into_iter().find(|p| p.as_str() == text).ok_or_else(|| {
        let names: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
        format!("unknown provider {text:?}; one of: {}", names.join(", "))
    })
}

/// Failures of a command itself (not problems found in manifests).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Writing output or files failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A CRD could not be rendered as YAML.
    #[error("rendering YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    /// A cluster command failed.
    #[error("{0}")]
    Ops(#[from] OpsError),
    /// The load tester failed.
    #[error("loadtester: {0}")]
    Loadtester(#[from] LoadtesterError),
    /// The benchmark failed.
    #[error("bench: {0}")]
    Bench(#[from] BenchError),
    /// The controller failed.
    #[error("controller: {0}")]
    Controller(#[from] RunError),
    /// The Canary or its templates could not be loaded.
    #[error("{0}")]
    Source(#[from] SourceError),
    /// The replay window is not usable.
    #[error("replay: {0}")]
    Replay(#[from] ReplayError),
}

async fn request(target: Target, action: Action) -> Result<ExitCode, CliError> {
    let client = ops::client().await?;
    let namespace = target.namespace.unwrap_or_else(|| client.default_namespace().to_string());
    ops::actions::send(client, &namespace, &target.name, action).await?;
    println!("canary {namespace}/{}: {} requested", target.name, action.as_str());
    Ok(ExitCode::SUCCESS)
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Crds { reference: true, .. } => {
            print!("{}", crd::reference::markdown());
            Ok(ExitCode::SUCCESS)
        }
        Command::Crds { output_dir, reference: false } => {
            let crds = crd::all_crds();
            match output_dir {
                Some(dir) => {
                    std::fs::create_dir_all(&dir)?;
                    for crd in &crds {
                        let name = crd.metadata.name.as_deref().unwrap_or("crd");
                        std::fs::write(dir.join(format!("{name}.yaml")), crd::render_crd_yaml(crd)?)?;
                    }
                }
                None => {
                    let mut out = std::io::stdout().lock();
                    for crd in &crds {
                        write!(out, "---\n{}", crd::render_crd_yaml(crd)?)?;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { paths, default_provider } => {
            let report = manifest::validate_paths(&paths, default_provider);
            let mut out = std::io::stdout().lock();
            for line in &report.problems {
                writeln!(out, "{line}")?;
            }
            Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Status { namespace, name, watch } => {
            let client = ops::client().await?;
            let selection = Selection { namespace, name };
            let mut out = std::io::stdout();
            if watch {
                ops::status::watch(client, &selection, &mut out).await?;
            } else {
                ops::status::show(client, &selection, &mut out).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => {
            logging::init(LogFormat::Text);
            let loaded = args.load().await?;
            let mut out = std::io::stdout().lock();
            for note in &loaded.notes {
                writeln!(out, "note: {note}")?;
            }
            let rows = checking::check(&loaded, &args.options(), now_unix()).await;
            writeln!(out, "canary {}/{}", loaded.namespace(), loaded.name())?;
            write!(out, "{}", table::check_table(&rows))?;
            let verdicts: Vec<_> = rows.iter().map(|r| r.result.verdict).collect();
            Ok(ExitCode::from(table::check_exit_code(&verdicts)))
        }
        Command::Replay { source, from, to, step } => {
            logging::init(LogFormat::Text);
            let now = now_unix();
            let (from, to) = (replay::parse_time(&from, now)?, replay::parse_time(&to, now)?);
            let loaded = source.load().await?;
            let step = replay::step_of(&loaded, step.as_deref())?;
            let times = replay::ticks(from, to, step)?;
            let report = replay::replay(&loaded, &source.options(), &times).await;
            let mut out = std::io::stdout().lock();
            for note in &loaded.notes {
                writeln!(out, "note: {note}")?;
            }
            writeln!(
                out,
                "canary {}/{}: {} evaluations {}s apart; assumes webhooks pass and workloads stay ready",
                loaded.namespace(),
                loaded.name(),
                times.len(),
                step.as_secs()
            )?;
            write!(out, "{}", report.render())?;
            Ok(ExitCode::from(if report.rollback().is_some() { table::EXIT_FAIL } else { table::EXIT_PASS }))
        }
        Command::Promote(target) => request(target, Action::Promote).await,
        Command::Abort(target) => request(target, Action::Abort).await,
        Command::Retry(target) => request(target, Action::Retry).await,
        Command::Pause(target) => request(target, Action::Pause).await,
        Command::Resume(target) => request(target, Action::Resume).await,
        Command::Loadtester(LoadtesterArgs {
            command: Some(LoadtesterCommand::Bench { rates, duration, concurrency }),
            ..
        }) => {
            let plan =
                BenchPlan { rates, duration: duration.min(std::time::Duration::from_secs(60)), concurrency };
            tokio::task::spawn_blocking(move || bench::run(&plan, &mut std::io::stdout().lock()))
                .await
                .map_err(|err| BenchError::Setup(err.to_string()))??;
            Ok(ExitCode::SUCCESS)
        }
        Command::Loadtester(args) => {
            logging::init(args.log_format);
            loadtester::run(&args.listen, args.config()?).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Controller(args) => {
            logging::init(args.log_format);
            let client = ops::client().await?;
            let identity = args
                .identity
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(|| format!("serin-{}", std::process::id()));
            let gateway_metrics = gateway_metrics(&args.gateway_metrics);
            let config = RunConfig {
                namespace: args.namespace,
                settings: Settings {
                    default_provider: args.provider,
                    metrics_server: args.metrics_server,
                    gateway_metrics,
                    cluster_name: args.cluster_name,
                    max_concurrent_canaries: args.max_concurrent_canaries.map(|n| n as usize),
                    default_alert_provider: args.default_alert_provider,
                    shard: args.shard,
                },
                listen: args.listen,
                leader_election: args.leader_election.then_some((args.lease_namespace, identity)),
                git_cache_dir: args.git_cache_dir,
                workers: args.workers,
            };
            controller::run::run(client, config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("serin {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use tokio::runtime::RuntimeFlavor;

    use super::Cli;

    #[test]
    fn the_controller_runs_on_threads_flag_threads_and_other_commands_on_the_default() {
        let cases: [(&[&str], RuntimeFlavor); 4] = [
            (&["serin", "controller"], RuntimeFlavor::CurrentThread),
            (&["serin", "controller", "--threads", "1"], RuntimeFlavor::CurrentThread),
            (&["serin", "controller", "--threads", "3"], RuntimeFlavor::MultiThread),
            (&["serin", "crds"], RuntimeFlavor::MultiThread),
        ];
        for (argv, flavor) in cases {
            let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            let runtime = cli.runtime().unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            assert_eq!(runtime.handle().runtime_flavor(), flavor, "{argv:?}");
        }
        assert!(Cli::try_parse_from(["serin", "controller", "--threads", "0"]).is_err(), "at least one");
    }
}

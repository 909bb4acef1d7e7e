//! What the analysis would have decided, tick by tick, pure: `serin replay` feeds it the metric
//! results of every past evaluation time and prints its decisions.
//!
//! The model follows the rollout core's Progressing phase (`rollout::progressing`) for the
//! metric part of a run:
//! - the tick's outcome: any failed or errored metric (or no data with `onNoData: fail`) is a
//!   failed check; otherwise any no data with `onNoData: hold` (the default) holds; otherwise
//!   it passes (`pass-with-warning` passes);
//! - a failed check increments the count, and the tick where it reaches `analysis.threshold`
//!   rolls back; failed checks are never forgiven within a run;
//! - a hold does not advance; the first hold after progress starts a wait, and a hold more than
//!   `progressDeadlineSeconds` after that start rolls back (no data is never a pass); progress
//!   ends the wait, a failed check does not;
//! - a pass takes one strategy step: weighted canary → next weight, and at the maximum weight
//!   promote; A/B testing → next iteration, and after `iterations` promote; blue/green →
//!   `iterations`, then one tick with all traffic on the canary, then promote.
//!
//! Assumptions, stated in the output: the run starts at the first evaluation time with the
//! pre-rollout tick already done (the canary at its first weight, or iteration 1); webhooks and
//! gates pass; workloads stay ready; mirroring is not modelled.

use crate::analysis::verdict::{Effect, effect_of};
use crate::crd::canary::{CanarySpec, Provider, Strategy};
use crate::crd::status::MetricResult;
use crate::rollout::{iterations, next_weight, strategy, threshold};

/// The combined outcome of one tick's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TickOutcome {
    /// Every metric passed (or had no data with `pass-with-warning`).
    Pass,
    /// No failure, but a metric had no data with `onNoData: hold`.
    Hold,
    /// A metric failed or errored, or had no data with `onNoData: fail`.
    Fail,
}

/// Combines one tick's results under the spec's `onNoData` settings (matched by name). A
/// metric of the spec without a result counts as failed, as in the controller.
pub fn tick_outcome(spec: &CanarySpec, results: &[MetricResult]) -> TickOutcome {
    let mut hold = false;
    for check in spec.analysis.metrics.iter().flatten() {
        let effect = results
            .iter()
            .find(|r| r.name == check.name)
            .map_or(Effect::CountFailure, |r| effect_of(r.verdict, check.on_no_data));
        match effect {
            Effect::CountFailure => return TickOutcome::Fail,
            Effect::Hold => hold = true,
            Effect::Advance | Effect::AdvanceWithWarning => {}
        }
    }
    if hold { TickOutcome::Hold } else { TickOutcome::Pass }
}

/// Why the run would have been rolled back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RollbackCause {
    /// `failedChecks` reached `analysis.threshold`.
    FailedChecks {
        /// Failed checks counted.
        count: i32,
        /// `analysis.threshold`.
        threshold: i32,
    },
    /// No data held the run past `progressDeadlineSeconds`.
    NoDataDeadline {
        /// Seconds since the wait started.
        waited: i64,
        /// The deadline, seconds.
        deadline: i64,
    },
}

impl std::fmt::Display for RollbackCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RollbackCause::FailedChecks { count, threshold } => {
                write!(f, "failed checks {count}/{threshold}")
            }
            RollbackCause::NoDataDeadline { waited, deadline } => {
                write!(f, "no data for {waited}s, past the {deadline}s progress deadline")
            }
        }
    }
}

/// What the analysis decides at one tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Weighted canary: the weight goes up to `weight`.
    Advance {
        /// The new canary weight.
        weight: i32,
    },
    /// A/B testing or blue/green: the next iteration.
    Iterate {
        /// Iterations done after this tick.
        done: i32,
        /// `analysis.iterations`.
        total: i32,
    },
    /// Blue/green: all traffic to the canary for one more checked tick.
    AllTrafficToCanary,
    /// The analysis completed: promote.
    Promote,
    /// No data: do not advance.
    Hold {
        /// Seconds since the wait started.
        waited: i64,
        /// `progressDeadlineSeconds`.
        deadline: i64,
    },
    /// A failed check below the threshold: do not advance.
    FailedCheck {
        /// Failed checks so far.
        count: i32,
        /// `analysis.threshold`.
        threshold: i32,
    },
    /// Roll back.
    RollBack(RollbackCause),
    /// The run already ended (promoted or rolled back) before this tick.
    Ended,
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Advance { weight } => write!(f, "advance to weight {weight}"),
            Decision::Iterate { done, total } => write!(f, "advance to iteration {done}/{total}"),
            Decision::AllTrafficToCanary => f.write_str("route all traffic to the canary"),
            Decision::Promote => f.write_str("PROMOTE"),
            Decision::Hold { waited, deadline } => {
                write!(f, "hold (no data, {waited}s of the {deadline}s progress deadline)")
            }
            Decision::FailedCheck { count, threshold } => write!(f, "failed check {count}/{threshold}"),
            Decision::RollBack(cause) => write!(f, "ROLL BACK ({cause})"),
            Decision::Ended => f.write_str("-"),
        }
    }
}

/// The state of a replayed run.
#[derive(Clone, Debug, PartialEq)]
pub struct Simulation {
    strategy: Strategy,
    weight: i32,
    iterations: i32,
    failed: i32,
    threshold: i32,
    total_iterations: i32,
    deadline: i64,
    /// Since when the run holds without progress.
    waiting_since: Option<i64>,
    ended: bool,
}

impl Simulation {
    /// A run of `spec` on `provider`, right after its pre-rollout tick.
    pub fn new(spec: &CanarySpec, provider: Provider) -> Self {
        let strategy = strategy(spec, provider);
        let (weight, done) = match strategy {
            Strategy::Canary => (next_weight(spec, 0).unwrap_or(0), 0),
            Strategy::ABTesting | Strategy::BlueGreen => (0, 1),
        };
        Self {
            strategy,
            weight,
            iterations: done,
            failed: 0,
            threshold: threshold(spec),
            total_iterations: iterations(spec),
            deadline: i64::from(spec.progress_deadline_seconds().max(0)),
            waiting_since: None,
            ended: false,
        }
    }

    /// The canary weight the next tick runs at.
    pub fn weight(&self) -> i32 {
        self.weight
    }

    /// Whether the run has ended (promoted or rolled back).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// One analysis tick at `time` (Unix seconds) with its metrics' combined outcome.
    pub fn step(&mut self, spec: &CanarySpec, time: i64, outcome: TickOutcome) -> Decision {
        if self.ended {
            return Decision::Ended;
        }
        match outcome {
            TickOutcome::Fail => {
                self.failed += 1;
                if self.failed >= self.threshold {
                    self.ended = true;
                    return Decision::RollBack(RollbackCause::FailedChecks {
                        count: self.failed,
                        threshold: self.threshold,
                    });
                }
                Decision::FailedCheck { count: self.failed, threshold: self.threshold }
            }
            TickOutcome::Hold => {
                let waited = time - *self.waiting_since.get_or_insert(time);
                if waited > self.deadline {
                    self.ended = true;
                    return Decision::RollBack(RollbackCause::NoDataDeadline {
                        waited,
                        deadline: self.deadline,
                    });
                }
                Decision::Hold { waited, deadline: self.deadline }
            }
            TickOutcome::Pass => {
                self.waiting_since = None;
                self.advance(spec)
            }
        }
    }

    fn advance(&mut self, spec: &CanarySpec) -> Decision {
        let total = self.total_iterations;
        match self.strategy {
            Strategy::Canary => match next_weight(spec, self.weight) {
                Some(weight) => {
                    self.weight = weight;
                    Decision::Advance { weight }
                }
                None => self.promote(),
            },
            Strategy::ABTesting if self.iterations < total => {
                self.iterations += 1;
                Decision::Iterate { done: self.iterations, total }
            }
            Strategy::ABTesting => self.promote(),
            Strategy::BlueGreen if self.iterations < total => {
                self.iterations += 1;
                Decision::Iterate { done: self.iterations, total }
            }
            Strategy::BlueGreen if self.iterations == total => {
                self.iterations += 1;
                self.weight = 100;
                Decision::AllTrafficToCanary
            }
            Strategy::BlueGreen => self.promote(),
        }
    }

    fn promote(&mut self) -> Decision {
        self.ended = true;
        Decision::Promote
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crd::status::Verdict;

    fn spec(analysis: serde_json::Value) -> CanarySpec {
        let mut analysis = analysis;
        analysis["metrics"] = json!([
            {"name": "ok-rate", "query": "x", "thresholdRange": {"min": 99}},
            {"name": "strict", "query": "y", "thresholdRange": {"max": 1}, "onNoData": "fail"},
            {"name": "lenient", "query": "z", "thresholdRange": {"max": 1}, "onNoData": "pass-with-warning"}
        ]);
        serde_json::from_value(json!({
            "provider": "istio",
            "progressDeadlineSeconds": 120,
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 80},
            "analysis": analysis
        }))
        .expect("spec")
    }

    fn result(name: &str, verdict: Verdict) -> MetricResult {
        MetricResult {
            name: name.into(),
            value: None,
            threshold_min: None,
            threshold_max: None,
            verdict,
            query: None,
            message: None,
            time: None,
        }
    }

    #[test]
    fn tick_outcome_follows_on_no_data() {
        use Verdict::*;
        let s = spec(json!({"stepWeight": 10}));
        let cases: Vec<(&str, Vec<MetricResult>, TickOutcome)> = vec![
            (
                "all pass",
                vec![result("ok-rate", Pass), result("strict", Pass), result("lenient", Pass)],
                TickOutcome::Pass,
            ),
            (
                "hold by default",
                vec![result("ok-rate", NoData), result("strict", Pass), result("lenient", Pass)],
                TickOutcome::Hold,
            ),
            (
                "onNoData fail",
                vec![result("ok-rate", Pass), result("strict", NoData), result("lenient", Pass)],
                TickOutcome::Fail,
            ),
            (
                "pass with warning",
                vec![result("ok-rate", Pass), result("strict", Pass), result("lenient", NoData)],
                TickOutcome::Pass,
            ),
            (
                "fail beats hold",
                vec![result("ok-rate", NoData), result("strict", Fail), result("lenient", Pass)],
                TickOutcome::Fail,
            ),
            (
                "error fails",
                vec![result("ok-rate", Error), result("strict", Pass), result("lenient", Pass)],
                TickOutcome::Fail,
            ),
            (
                "missing result fails",
                vec![result("ok-rate", Pass), result("strict", Pass)],
                TickOutcome::Fail,
            ),
        ];
        for (name, results, want) in cases {
            assert_eq!(tick_outcome(&s, &results), want, "{name}");
        }
    }

    fn run(analysis: serde_json::Value, provider: Provider, outcomes: &[TickOutcome]) -> Vec<Decision> {
        let s = spec(analysis);
        let mut sim = Simulation::new(&s, provider);
        outcomes.iter().enumerate().map(|(i, o)| sim.step(&s, 60 * i as i64, *o)).collect()
    }

    /// name, analysis, router, tick outcomes → decisions.
    type Case = (&'static str, serde_json::Value, Provider, Vec<TickOutcome>, Vec<Decision>);

    #[test]
    fn decisions_per_strategy() {
        use Decision::*;
        use TickOutcome::{Fail as F, Hold as H, Pass as P};
        let fc = |count, threshold| FailedCheck { count, threshold };
        let back = |count, threshold| RollBack(RollbackCause::FailedChecks { count, threshold });
        let cases: Vec<Case> = vec![
            (
                "weights to promotion",
                json!({"stepWeight": 20, "maxWeight": 60}),
                Provider::Istio,
                vec![P, P, P, P],
                vec![Advance { weight: 40 }, Advance { weight: 60 }, Promote, Ended],
            ),
            (
                "failures accumulate to the threshold",
                json!({"stepWeight": 10, "threshold": 3}),
                Provider::Istio,
                vec![F, P, F, P, F, P],
                vec![fc(1, 3), Advance { weight: 20 }, fc(2, 3), Advance { weight: 30 }, back(3, 3), Ended],
            ),
            (
                "default threshold is one",
                json!({"stepWeight": 10}),
                Provider::Istio,
                vec![F, P],
                vec![back(1, 1), Ended],
            ),
            (
                "explicit weights",
                json!({"stepWeights": [5, 50, 80]}),
                Provider::Istio,
                vec![P, P, P],
                vec![Advance { weight: 50 }, Advance { weight: 80 }, Promote],
            ),
            (
                "hold then no-data deadline (a failed check does not stop the wait)",
                json!({"stepWeight": 10, "threshold": 2}),
                Provider::Istio,
                vec![P, H, H, F, H, H],
                vec![
                    Advance { weight: 20 },
                    Hold { waited: 0, deadline: 120 },
                    Hold { waited: 60, deadline: 120 },
                    FailedCheck { count: 1, threshold: 2 },
                    RollBack(RollbackCause::NoDataDeadline { waited: 180, deadline: 120 }),
                    Ended,
                ],
            ),
            (
                "progress restarts the no-data clock",
                json!({"stepWeight": 10}),
                Provider::Istio,
                vec![H, H, P, H],
                vec![
                    Hold { waited: 0, deadline: 120 },
                    Hold { waited: 60, deadline: 120 },
                    Advance { weight: 20 },
                    Hold { waited: 0, deadline: 120 },
                ],
            ),
            (
                "a/b testing",
                json!({"iterations": 3, "match": [{"headers": {"x": {"exact": "1"}}}]}),
                Provider::Istio,
                vec![P, P, P, P],
                vec![Iterate { done: 2, total: 3 }, Iterate { done: 3, total: 3 }, Promote, Ended],
            ),
            (
                "blue/green",
                json!({"iterations": 2}),
                Provider::Istio,
                vec![P, P, P],
                vec![Iterate { done: 2, total: 2 }, AllTrafficToCanary, Promote],
            ),
            (
                "kubernetes forces blue/green with 10 iterations",
                json!({"stepWeight": 10}),
                Provider::Kubernetes,
                vec![P],
                vec![Iterate { done: 2, total: 10 }],
            ),
        ];
        for (name, analysis, provider, outcomes, want) in cases {
            assert_eq!(run(analysis, provider, &outcomes), want, "{name}");
        }
    }

    #[test]
    fn decisions_read_well() {
        assert_eq!(Decision::Advance { weight: 20 }.to_string(), "advance to weight 20");
        assert_eq!(
            Decision::RollBack(RollbackCause::FailedChecks { count: 2, threshold: 2 }).to_string(),
            "ROLL BACK (failed checks 2/2)"
        );
        assert_eq!(
            Decision::Hold { waited: 60, deadline: 600 }.to_string(),
            "hold (no data, 60s of the 600s progress deadline)"
        );
    }
}

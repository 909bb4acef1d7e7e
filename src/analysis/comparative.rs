//! The comparative judge, pure: canary samples against primary (or baseline) samples of the
//! same metric over the same window, as Kayenta's NetflixACAJudge does, so time of day,
//! traffic mix and shared incidents cancel out instead of tripping a fixed threshold.
//!
//! # Method
//! 1. NaN samples are dropped (Kayenta's `nanStrategy: remove`). Fewer than `min_samples`
//!    left on either side is **no data**, never a pass.
//! 2. **Mann–Whitney U** (Wilcoxon rank-sum), two-sided, on the canary's U (pairs where the
//!    canary sample is larger, ties counting one half). The p-value is exact (the U
//!    distribution from the Gaussian binomial coefficient, in integers) when there are no ties
//!    and both samples have fewer than 50 values — R's `wilcox.test` rule — and otherwise the
//!    normal approximation with tie correction and continuity correction (R's `correct=TRUE`,
//!    scipy's `use_continuity=True`, Kayenta's port of R).
//! 3. **Effect size**, for practical significance: the mean ratio `mean(canary)/mean(primary)`
//!    as in Kayenta (undefined when the primary's mean is 0, which leaves the decision to the
//!    test alone, as Kayenta does with NaN). Also reported: Cliff's delta (`2U/(n·m) − 1`,
//!    −1…1, 0 = no shift) and the Hodges–Lehmann shift (median of pairwise differences).
//! 4. **Verdict**: `High` if the direction watches increases, the test is significant at
//!    `1 − confidence`, the canary ranks higher, and the mean ratio exceeds `allowed_increase`;
//!    `Low` symmetrically with `allowed_decrease`; otherwise `Pass`.
//!
//! Kayenta's defaults are kept: confidence 0.98, allowed increase and decrease 1.0 (any
//! significant change in a watched direction fails). Kayenta's extra "CI must clear
//! tolerance·|estimate|" precision band is not copied; the effect-size gate does that job.
//! Samples of a time series are autocorrelated, so the p-value is optimistic; require enough
//! samples and a meaningful `allowed_*` rather than trusting tiny p-values.

use std::cmp::Ordering;

use thiserror::Error;

use crate::crd::canary::{ComparativeSettings, ComparisonDirection, OnNoData};
use crate::crd::status::{MetricResult, Verdict};

use super::verdict::{Judgement, effect_of};

/// Largest number of pairwise differences computed for the Hodges–Lehmann shift; beyond it the
/// shift is not reported (the test itself is O(n log n)).
const MAX_PAIRS: usize = 4_000_000;

/// Both samples must be smaller than this (and tie-free) for the exact p-value.
const EXACT_LIMIT: usize = 50;

/// Smallest `minSamples` honoured (the CRD's minimum too): fewer samples cannot show anything.
const MIN_SAMPLES_FLOOR: i32 = 3;

/// Which change of the metric is bad.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    /// Higher is worse (latency, error rate).
    Increase,
    /// Lower is worse (success rate, throughput).
    Decrease,
    /// Any significant change is bad (Kayenta's default).
    #[default]
    Either,
}

/// Settings of the comparative judge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ComparativeConfig {
    /// Which change fails the canary.
    pub direction: Direction,
    /// Confidence level of the two-sided test; significant when `p < 1 − confidence`.
    pub confidence: f64,
    /// Largest tolerated mean ratio canary/primary for an increase (1.1: up to +10 % passes).
    pub allowed_increase: f64,
    /// Smallest tolerated mean ratio for a decrease (0.9: down to −10 % passes).
    pub allowed_decrease: f64,
    /// Fewer (non-NaN) samples than this on either side is no data.
    pub min_samples: usize,
}

impl Default for ComparativeConfig {
    /// Kayenta's NetflixACAJudge defaults, and ten samples per side.
    fn default() -> Self {
        Self {
            direction: Direction::Either,
            confidence: 0.98,
            allowed_increase: 1.0,
            allowed_decrease: 1.0,
            min_samples: 10,
        }
    }
}

/// A configuration the judge cannot work with.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum ComparativeError {
    /// `confidence` must lie strictly between 0 and 1.
    #[error("confidence must be between 0 and 1 (exclusive), got {0}")]
    Confidence(f64),
    /// The allowed ratios must be finite, positive, and `allowed_decrease <= 1 <= allowed_increase`.
    #[error(
        "allowed increase/decrease must satisfy 0 < decrease <= 1 <= increase, got {decrease} and {increase}"
    )]
    Allowed {
        /// `allowed_increase`.
        increase: f64,
        /// `allowed_decrease`.
        decrease: f64,
    },
}

/// How the p-value was computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PValueMethod {
    /// The exact distribution of U (no ties, both samples smaller than 50).
    Exact,
    /// Normal approximation with tie and continuity correction.
    Normal,
}

/// Mann–Whitney U test result, two-sided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MannWhitney {
    /// The canary's U: pairs where the canary is larger, ties counting ½.
    pub u: f64,
    /// The z statistic (normal approximation only).
    pub z: Option<f64>,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Exact or normal approximation.
    pub method: PValueMethod,
}

/// Everything the judge measured, for the report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ComparisonStats {
    /// Canary samples used (NaN dropped).
    pub canary_count: usize,
    /// Primary samples used (NaN dropped).
    pub primary_count: usize,
    /// The test.
    pub test: MannWhitney,
    /// `mean(canary) / mean(primary)`; `None` when the primary's mean is 0 or not finite.
    pub mean_ratio: Option<f64>,
    /// Cliff's delta, −1…1: P(canary > primary) − P(canary < primary).
    pub cliffs_delta: f64,
    /// Hodges–Lehmann shift: median of canary − primary over all pairs (`None` above 4 M pairs).
    pub hodges_lehmann: Option<f64>,
    /// Median of the canary samples.
    pub canary_median: f64,
    /// Median of the primary samples.
    pub primary_median: f64,
}

/// The judge's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No significant, large enough change in a watched direction.
    Pass,
    /// The canary is significantly and materially higher.
    High,
    /// The canary is significantly and materially lower.
    Low,
    /// Too few samples to judge.
    NoData,
}

/// The outcome, why, and the numbers behind it.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Pass, high, low or no data.
    pub outcome: Outcome,
    /// One sentence for status and Events.
    pub message: String,
    /// The statistics; `None` for no data.
    pub stats: Option<ComparisonStats>,
}

impl ComparativeConfig {
    /// The judge's settings for a check: its `comparative` block, Kayenta's defaults (see
    /// [`ComparativeConfig::default`]) for whatever is left out. Call [`Self::validate`] on
    /// the result: the CRD's rules reject bad values, but a manifest may bypass them.
    pub fn from_settings(settings: Option<&ComparativeSettings>) -> Self {
        let defaults = Self::default();
        let Some(s) = settings else { return defaults };
        Self {
            direction: match s.direction {
                None => defaults.direction,
                Some(ComparisonDirection::Increase) => Direction::Increase,
                Some(ComparisonDirection::Decrease) => Direction::Decrease,
                Some(ComparisonDirection::Either) => Direction::Either,
            },
            confidence: s.confidence.unwrap_or(defaults.confidence),
            allowed_increase: s.allowed_increase.unwrap_or(defaults.allowed_increase),
            allowed_decrease: s.allowed_decrease.unwrap_or(defaults.allowed_decrease),
            min_samples: s
                .min_samples
                .map_or(defaults.min_samples, |n| usize::try_from(n.max(MIN_SAMPLES_FLOOR)).unwrap_or(10)),
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ComparativeError> {
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(ComparativeError::Confidence(self.confidence));
        }
        let (inc, dec) = (self.allowed_increase, self.allowed_decrease);
        if !(inc.is_finite() && dec.is_finite() && dec > 0.0 && dec <= 1.0 && inc >= 1.0) {
            return Err(ComparativeError::Allowed { increase: inc, decrease: dec });
        }
        Ok(())
    }
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn sort(values: &mut [f64]) {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Standard normal upper tail, P(Z > z).
fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// Counts of U = 0..=n·m over all C(n+m, n) arrangements without ties: the coefficients of the
/// Gaussian binomial [n+m choose n]_q, built as Π (1 − q^(m+i)) / (1 − q^i) in exact integers.
fn u_distribution(n: usize, m: usize) -> Vec<i128> {
    let mut poly: Vec<i128> = vec![1];
    for i in 1..=n {
        // Multiply by (1 − q^(m+i)).
        let shift = m + i;
        let mut next = vec![0i128; poly.len() + shift];
        for (k, &c) in poly.iter().enumerate() {
            next[k] += c;
            next[k + shift] -= c;
        }
        // Divide by (1 − q^i): c'[k] = c[k] + c'[k − i]; the quotient is [m+i choose i]_q.
        for k in i..next.len() {
            next[k] += next[k - i];
        }
        next.truncate(m * i + 1);
        poly = next;
    }
    poly
}

/// Two-sided exact p-value of U for sample sizes n and m (no ties).
fn exact_p(u: f64, n: usize, m: usize) -> f64 {
    let counts = u_distribution(n, m);
    let total: i128 = counts.iter().sum();
    // Without ties U is an integer.
    let u = u.round().max(0.0) as usize;
    let lower: i128 = counts.iter().take(u + 1).sum();
    let upper: i128 = counts.iter().skip(u).sum();
    let tail = lower.min(upper) as f64 / total as f64;
    (2.0 * tail).min(1.0)
}

/// Mann–Whitney U test of `canary` against `primary`, two-sided. Neither sample may contain
/// NaN or be empty (the judge removes NaN and checks sizes first).
pub fn mann_whitney(canary: &[f64], primary: &[f64]) -> MannWhitney {
    let (n, m) = (canary.len(), primary.len());
    let mut all: Vec<(f64, bool)> =
        canary.iter().map(|&v| (v, true)).chain(primary.iter().map(|&v| (v, false))).collect();
    all.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
    // Average ranks over tie groups; Σ(t³ − t) for the variance correction.
    let mut canary_rank_sum = 0.0;
    let mut tie_term = 0.0;
    let mut start = 0;
    while start < all.len() {
        let mut end = start + 1;
        while end < all.len() && all[end].0 == all[start].0 {
            end += 1;
        }
        let t = (end - start) as f64;
        let average_rank = (start + end + 1) as f64 / 2.0; // ranks start at 1
        canary_rank_sum +=
            average_rank * all[start..end].iter().filter(|(_, is_canary)| *is_canary).count() as f64;
        tie_term += t * t * t - t;
        start = end;
    }
    let (nf, mf) = (n as f64, m as f64);
    let u = canary_rank_sum - nf * (nf + 1.0) / 2.0;
    if tie_term == 0.0 && n < EXACT_LIMIT && m < EXACT_LIMIT {
        return MannWhitney { u, z: None, p_value: exact_p(u, n, m), method: PValueMethod::Exact };
    }
    let total = nf + mf;
    let variance = nf * mf / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0)));
    let deviation = u - nf * mf / 2.0;
    if variance <= 0.0 {
        // Every value identical: no evidence of any shift.
        return MannWhitney { u, z: Some(0.0), p_value: 1.0, method: PValueMethod::Normal };
    }
    // Continuity correction towards zero (R: `sign(z) * 0.5`, and sign(0) = 0).
    let correction = match deviation.partial_cmp(&0.0) {
        Some(Ordering::Greater) => 0.5,
        Some(Ordering::Less) => -0.5,
        _ => 0.0,
    };
    let z = (deviation - correction) / variance.sqrt();
    let p_value = (2.0 * normal_sf(z.abs())).min(1.0);
    MannWhitney { u, z: Some(z), p_value, method: PValueMethod::Normal }
}

/// Four decimals, or scientific notation for p-values too small for that.
fn format_p(p: f64) -> String {
    if p < 1e-3 { format!("{p:.2e}") } else { format!("{p:.4}") }
}

fn hodges_lehmann(canary: &[f64], primary: &[f64]) -> Option<f64> {
    let pairs = canary.len().checked_mul(primary.len())?;
    if pairs == 0 || pairs > MAX_PAIRS {
        return None;
    }
    let mut diffs: Vec<f64> = canary.iter().flat_map(|c| primary.iter().map(move |p| c - p)).collect();
    sort(&mut diffs);
    Some(median_of_sorted(&diffs))
}

/// Compares canary samples with primary samples (see the module docs for the method).
pub fn compare(
    canary: &[f64],
    primary: &[f64],
    config: &ComparativeConfig,
) -> Result<Comparison, ComparativeError> {
    config.validate()?;
    let mut canary: Vec<f64> = canary.iter().copied().filter(|v| !v.is_nan()).collect();
    let mut primary: Vec<f64> = primary.iter().copied().filter(|v| !v.is_nan()).collect();
    let min = config.min_samples.max(1);
    if canary.len() < min || primary.len() < min {
        return Ok(Comparison {
            outcome: Outcome::NoData,
            message: format!(
                "{} canary and {} primary samples (NaN dropped), fewer than the {min} needed on each side",
                canary.len(),
                primary.len()
            ),
            stats: None,
        });
    }
    sort(&mut canary);
    sort(&mut primary);
    let test = mann_whitney(&canary, &primary);
    let pairs = canary.len() as f64 * primary.len() as f64;
    let primary_mean = mean(&primary);
    let mean_ratio = (primary_mean != 0.0 && primary_mean.is_finite()).then(|| mean(&canary) / primary_mean);
    let stats = ComparisonStats {
        canary_count: canary.len(),
        primary_count: primary.len(),
        test,
        mean_ratio,
        cliffs_delta: 2.0 * test.u / pairs - 1.0,
        hodges_lehmann: hodges_lehmann(&canary, &primary),
        canary_median: median_of_sorted(&canary),
        primary_median: median_of_sorted(&primary),
    };
    let alpha = 1.0 - config.confidence;
    let significant = test.p_value < alpha;
    let higher = test.u > pairs / 2.0;
    let lower = test.u < pairs / 2.0;
    let watches_increase = matches!(config.direction, Direction::Increase | Direction::Either);
    let watches_decrease = matches!(config.direction, Direction::Decrease | Direction::Either);
    let ratio_text =
        mean_ratio.map_or_else(|| "undefined (primary mean 0)".to_string(), |r| format!("{r:.4}"));
    let summary = format!(
        "canary median {} vs primary median {}, mean ratio {ratio_text}, Cliff's delta {:.3}, U {}, p {} ({:?}, n {}/{})",
        stats.canary_median,
        stats.primary_median,
        stats.cliffs_delta,
        test.u,
        format_p(test.p_value),
        test.method,
        stats.canary_count,
        stats.primary_count
    );
    let (outcome, why) = if watches_increase
        && significant
        && higher
        && mean_ratio.is_none_or(|r| r > config.allowed_increase)
    {
        (
            Outcome::High,
            format!(
                "canary is higher than primary (p < {alpha:.4}, beyond allowed ratio {})",
                config.allowed_increase
            ),
        )
    } else if watches_decrease
        && significant
        && lower
        && mean_ratio.is_none_or(|r| r < config.allowed_decrease)
    {
        (
            Outcome::Low,
            format!(
                "canary is lower than primary (p < {alpha:.4}, beyond allowed ratio {})",
                config.allowed_decrease
            ),
        )
    } else if significant && (higher || lower) {
        (Outcome::Pass, "difference is within the allowed ratio or in a direction not watched".to_string())
    } else {
        (Outcome::Pass, format!("no significant difference at confidence {}", config.confidence))
    };
    Ok(Comparison { outcome, message: format!("{why}: {summary}"), stats: Some(stats) })
}

impl Comparison {
    /// The comparison as a check result: the value is the mean ratio, the bounds are the
    /// allowed ratios of the watched directions; High and Low are failures, and no data
    /// follows the check's `onNoData`.
    pub fn judgement(
        &self,
        name: &str,
        query: &str,
        config: &ComparativeConfig,
        on_no_data: Option<OnNoData>,
    ) -> Judgement {
        let verdict = match self.outcome {
            Outcome::Pass => Verdict::Pass,
            Outcome::High | Outcome::Low => Verdict::Fail,
            Outcome::NoData => Verdict::NoData,
        };
        let watches = |d: Direction| config.direction == d || config.direction == Direction::Either;
        Judgement {
            effect: effect_of(verdict, on_no_data),
            result: MetricResult {
                name: name.to_string(),
                value: self.stats.and_then(|s| s.mean_ratio),
                threshold_min: watches(Direction::Decrease).then_some(config.allowed_decrease),
                threshold_max: watches(Direction::Increase).then_some(config.allowed_increase),
                verdict,
                query: Some(query.to_string()),
                message: Some(self.message.clone()),
                time: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::verdict::Effect;

    #[test]
    fn settings_override_the_defaults_field_by_field() {
        assert_eq!(ComparativeConfig::from_settings(None), ComparativeConfig::default());
        assert_eq!(
            ComparativeConfig::from_settings(Some(&ComparativeSettings::default())),
            ComparativeConfig::default()
        );
        let settings = ComparativeSettings {
            direction: Some(ComparisonDirection::Decrease),
            confidence: Some(0.9),
            allowed_increase: None,
            allowed_decrease: Some(0.8),
            min_samples: Some(25),
        };
        assert_eq!(
            ComparativeConfig::from_settings(Some(&settings)),
            ComparativeConfig {
                direction: Direction::Decrease,
                confidence: 0.9,
                allowed_increase: 1.0,
                allowed_decrease: 0.8,
                min_samples: 25,
            }
        );
        let tiny = ComparativeSettings { min_samples: Some(-4), ..Default::default() };
        assert_eq!(ComparativeConfig::from_settings(Some(&tiny)).min_samples, 3);
        let bad = ComparativeSettings { confidence: Some(1.5), ..Default::default() };
        assert_eq!(
            ComparativeConfig::from_settings(Some(&bad)).validate(),
            Err(ComparativeError::Confidence(1.5))
        );
    }

    /// name, canary, primary → scipy's U and two-sided p, and the method used.
    type ScipyCase = (&'static str, Vec<f64>, Vec<f64>, f64, f64, PValueMethod);

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1e-300)
    }

    /// Expected values from scipy 1.17.1:
    /// `mannwhitneyu(canary, primary, alternative='two-sided', method=M, use_continuity=True)`.
    #[test]
    fn mann_whitney_matches_scipy() {
        let big_canary: Vec<f64> =
            (0..60).map(|i| 10.0 + ((i * 7919) % 101) as f64 / 10.0 + i as f64 / 1000.0).collect();
        let big_primary: Vec<f64> =
            (0..60).map(|i| 9.0 + ((i * 104729) % 97) as f64 / 10.0 + i as f64 / 1000.0 + 0.0005).collect();
        #[rustfmt::skip]
        let cases: Vec<ScipyCase> = vec![
            ("small, exact", vec![1.1, 2.3, 3.5, 4.2, 5.9], vec![0.5, 0.9, 1.0, 1.8, 2.0, 2.2],
             27.0, 0.030303030303030304, PValueMethod::Exact),
            ("ties, normal", vec![1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0], vec![1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 4.0],
             38.0, 0.2561796261420456, PValueMethod::Normal),
            ("ten, exact", vec![3.1, 4.7, 2.2, 5.5, 6.1, 3.3, 4.4, 5.0, 2.9, 3.8],
             vec![2.0, 1.5, 3.0, 2.5, 1.1, 2.8, 3.6, 1.9, 2.4, 1.7],
             91.0, 0.001050033557773496, PValueMethod::Exact),
            ("twelve, exact", (5..=16).map(f64::from).collect(), (1..=12).map(|x| f64::from(x) + 0.5).collect(),
             108.0, 0.03872113886920726, PValueMethod::Exact),
            ("sixty, normal", big_canary, big_primary, 2269.0, 0.013932955312510228, PValueMethod::Normal),
            ("thirty, exact, far apart", latency(130.0, 30), latency(100.0, 30), 900.0, 1.691123389214474e-17, PValueMethod::Exact),
            ("thirty, exact, close", latency(100.5, 30), latency(100.0, 30), 472.0, 0.7523511627918321, PValueMethod::Exact),
        ];
        for (name, canary, primary, u, p, method) in cases {
            let test = mann_whitney(&canary, &primary);
            assert_eq!(test.method, method, "{name}");
            assert_eq!(test.u, u, "{name}");
            assert!(close(test.p_value, p, 1e-9), "{name}: p {} != {p}", test.p_value);
            // Swapping the samples mirrors U and keeps the two-sided p-value.
            let swapped = mann_whitney(&primary, &canary);
            assert_eq!(swapped.u, canary.len() as f64 * primary.len() as f64 - u, "{name}");
            assert!(close(swapped.p_value, p, 1e-9), "{name} swapped");
        }
    }

    #[test]
    fn exact_distribution_is_a_distribution() {
        // C(n+m, n) arrangements, symmetric around n·m/2.
        for (n, m, total) in [
            (1, 1, 2i128),
            (2, 3, 10),
            (5, 6, 462),
            (10, 10, 184_756),
            (49, 49, 25_477_612_258_980_856_902_730_428_600),
        ] {
            let counts = u_distribution(n, m);
            assert_eq!(counts.len(), n * m + 1);
            assert_eq!(counts.iter().sum::<i128>(), total, "{n} {m}");
            assert!(counts.iter().all(|&c| c > 0));
            assert!(counts.iter().eq(counts.iter().rev()), "{n} {m} symmetric");
        }
        // n = m = 3: U = 0 has one arrangement of 20, so P(two-sided) = 2/20.
        assert!(close(exact_p(0.0, 3, 3), 0.1, 1e-12));
        assert_eq!(exact_p(4.5, 3, 3), 1.0);
    }

    #[test]
    fn identical_samples_pass_with_p_one() {
        let same = vec![5.0; 20];
        let test = mann_whitney(&same, &same);
        assert_eq!((test.u, test.p_value), (200.0, 1.0));
        let c = compare(&same, &same, &ComparativeConfig::default()).expect("valid");
        assert_eq!(c.outcome, Outcome::Pass);
        let stats = c.stats.expect("stats");
        assert_eq!((stats.cliffs_delta, stats.mean_ratio, stats.hodges_lehmann), (0.0, Some(1.0), Some(0.0)));
    }

    fn latency(base: f64, n: usize) -> Vec<f64> {
        (0..n).map(|i| base + ((i * 37) % 23) as f64 + i as f64 * 1e-3).collect()
    }

    #[test]
    fn verdict_table() {
        let primary = latency(100.0, 30);
        let slower = latency(130.0, 30); // +~27 %
        let faster = latency(70.0, 30);
        let noisy_same = latency(100.5, 30);
        let config = |direction, allowed_increase, allowed_decrease| ComparativeConfig {
            direction,
            allowed_increase,
            allowed_decrease,
            ..ComparativeConfig::default()
        };
        use Direction::*;
        #[rustfmt::skip]
        let cases: Vec<(&str, &Vec<f64>, ComparativeConfig, Outcome)> = vec![
            ("slower, watching increase", &slower, config(Increase, 1.0, 1.0), Outcome::High),
            ("slower, watching either", &slower, config(Either, 1.0, 1.0), Outcome::High),
            ("slower, watching decrease", &slower, config(Decrease, 1.0, 1.0), Outcome::Pass),
            ("slower but within allowed 1.5", &slower, config(Increase, 1.5, 1.0), Outcome::Pass),
            ("slower beyond allowed 1.2", &slower, config(Increase, 1.2, 1.0), Outcome::High),
            ("faster, watching decrease", &faster, config(Decrease, 1.0, 1.0), Outcome::Low),
            ("faster, watching either", &faster, config(Either, 1.0, 1.0), Outcome::Low),
            ("faster, watching increase", &faster, config(Increase, 1.0, 1.0), Outcome::Pass),
            ("faster within allowed 0.5", &faster, config(Decrease, 1.0, 0.5), Outcome::Pass),
            ("same distribution", &noisy_same, config(Either, 1.0, 1.0), Outcome::Pass),
        ];
        for (name, canary, config, outcome) in cases {
            let c = compare(canary, &primary, &config).expect("valid config");
            assert_eq!(c.outcome, outcome, "{name}: {}", c.message);
        }
        let c = compare(&slower, &primary, &ComparativeConfig::default()).expect("valid");
        let stats = c.stats.expect("stats");
        assert!(stats.cliffs_delta > 0.9 && stats.test.p_value < 1e-6, "{stats:?}");
        assert!(stats.hodges_lehmann.is_some_and(|h| (h - 30.0).abs() < 1.0), "{stats:?}");
        assert!(c.message.starts_with("canary is higher than primary"), "{}", c.message);
        assert!(c.message.contains("p 1.69e-17 (Exact, n 30/30)"), "{}", c.message);
        assert_eq!(format_p(0.25), "0.2500");
    }

    #[test]
    fn no_data_and_nan_handling() {
        let primary = latency(100.0, 30);
        let mut canary = latency(130.0, 12);
        canary.extend([f64::NAN; 20]);
        let config = ComparativeConfig {
            min_samples: 12,
            direction: Direction::Increase,
            ..ComparativeConfig::default()
        };
        let c = compare(&canary, &primary, &config).expect("valid");
        assert_eq!(c.outcome, Outcome::High, "NaN dropped, 12 real samples remain");
        assert_eq!(c.stats.expect("stats").canary_count, 12);
        let c = compare(&canary[..11], &primary, &config).expect("valid");
        assert_eq!(c.outcome, Outcome::NoData);
        assert!(c.message.contains("11 canary and 30 primary samples"), "{}", c.message);
        let c = compare(&[], &[], &ComparativeConfig::default()).expect("valid");
        assert_eq!((c.outcome, c.stats), (Outcome::NoData, None));
    }

    #[test]
    fn zero_primary_mean_leaves_the_decision_to_the_test() {
        // Error rate: the primary never fails, the canary often does.
        let primary = vec![0.0; 20];
        let canary: Vec<f64> = (0..20).map(|i| if i % 2 == 0 { 0.05 } else { 0.0 }).collect();
        let c = compare(
            &canary,
            &primary,
            &ComparativeConfig { direction: Direction::Increase, ..Default::default() },
        )
        .expect("valid");
        let stats = c.stats.expect("stats");
        assert_eq!(stats.mean_ratio, None);
        assert!(stats.test.p_value < 0.02, "{stats:?}");
        assert_eq!(c.outcome, Outcome::High, "{}", c.message);
        assert!(c.message.contains("undefined (primary mean 0)"));
    }

    #[test]
    fn rejects_bad_settings() {
        let bad = [
            ComparativeConfig { confidence: 1.0, ..Default::default() },
            ComparativeConfig { confidence: 0.0, ..Default::default() },
            ComparativeConfig { confidence: f64::NAN, ..Default::default() },
            ComparativeConfig { allowed_increase: 0.9, ..Default::default() },
            ComparativeConfig { allowed_decrease: 1.1, ..Default::default() },
            ComparativeConfig { allowed_decrease: 0.0, ..Default::default() },
            ComparativeConfig { allowed_increase: f64::INFINITY, ..Default::default() },
        ];
        for config in bad {
            assert!(compare(&[1.0], &[1.0], &config).is_err(), "{config:?}");
        }
    }

    #[test]
    fn judgement_maps_outcomes_to_results() {
        let primary = latency(100.0, 30);
        let config =
            ComparativeConfig { direction: Direction::Increase, allowed_increase: 1.1, ..Default::default() };
        let c = compare(&latency(130.0, 30), &primary, &config).expect("valid");
        let j = c.judgement("latency", "q", &config, None);
        assert_eq!((j.result.verdict, j.effect), (Verdict::Fail, Effect::CountFailure));
        assert_eq!((j.result.threshold_min, j.result.threshold_max), (None, Some(1.1)));
        assert!(j.result.value.is_some_and(|r| r > 1.2));
        let none = compare(&[], &primary, &config).expect("valid");
        for (on_no_data, want) in [
            (None, Effect::Hold),
            (Some(OnNoData::Fail), Effect::CountFailure),
            (Some(OnNoData::PassWithWarning), Effect::AdvanceWithWarning),
        ] {
            let j = none.judgement("latency", "q", &config, on_no_data);
            assert_eq!((j.result.verdict, j.effect), (Verdict::NoData, want));
        }
    }
}

//! The scenarios of issue 9. Each drives a [`Harness`] through a release and checks what a
//! user could check: the Canary's status, which version answers real requests through the
//! proxy, the Git history, the Deployment the sync loop applied, and the alerts received.

use std::time::Duration;

use serde_json::Value;

use super::{Harness, RELEASE_TIMEOUT, observe::Snapshot, tag};
use crate::error::BedError;

/// Requests sent through the proxy to check who serves the app.
const PROBE_REQUESTS: usize = 40;

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), BedError> {
    if ok { Ok(()) } else { Err(BedError::Process(format!("check failed: {}", what()))) }
}

/// What a promoted release looked like.
#[derive(Debug, Clone)]
pub struct Promotion {
    /// The release commit.
    pub commit: String,
    /// Canary weights seen while progressing, in order.
    pub weights: Vec<i64>,
    /// Time from the release commit's sync to `Succeeded`.
    pub duration: Duration,
}

/// What a rolled-back release looked like.
#[derive(Debug, Clone)]
pub struct Rollback {
    /// The release commit.
    pub commit: String,
    /// Serin's revert commit.
    pub revert: String,
    /// From the first failed check to all traffic back on the primary (`Failed`, weight 0).
    pub rollback_time: Duration,
    /// From the first request routed to the bad version to all traffic back on the primary.
    pub exposure: Duration,
    /// The failing metric as the status reported it (`name=value verdict`).
    pub failing_metric: String,
}

/// Scenario 1: a healthy release walks every step and is promoted; traffic ends 100 % on the
/// new primary.
pub async fn healthy_release_is_promoted(h: &mut Harness, image: &str) -> Result<Promotion, BedError> {
    let from = h.observer.elapsed();
    let commit = h.release(image).await?;
    let started = h.observer.elapsed();
    let done = release_outcome(h, from).await?;
    check(done.phase == "Succeeded", || {
        format!("release {image} ended {}:\n{}", done.phase, h.observer.render())
    })?;
    let run: Vec<Snapshot> = h.observer.timeline().into_iter().filter(|s| s.at >= from).collect();
    let weights = progressing_weights(&run);
    let analysis = h.app.analysis.clone();
    let step = analysis["stepWeight"].as_i64().unwrap_or(0);
    let max = analysis["maxWeight"].as_i64().unwrap_or(0);
    let expected: Vec<i64> = (1..).map(|i| i * step).take_while(|w| *w <= max).collect();
    check(expected.iter().all(|w| weights.contains(w)), || {
        format!("weights {weights:?} miss a step of {expected:?}:\n{}", h.observer.render())
    })?;
    check(run.iter().any(|s| s.phase == "Promoting" || s.phase == "Finalising"), || {
        format!("no Promoting/Finalising phase seen:\n{}", h.observer.render())
    })?;
    h.step("promoted: every request goes to the new primary");
    expect_primary_serves(h, tag(image)).await?;
    let log = h.bed.git().log().await?;
    check(log.first().is_some_and(|c| c.sha == commit), || {
        format!("Git changed after a successful release: head is {:?}", log.first().map(|c| &c.subject))
    })?;
    h.commit = commit.clone();
    Ok(Promotion { commit, weights, duration: done.at.saturating_sub(started) })
}

/// Scenario 2 (and 3): a bad release is rolled back on `metric`: traffic back on the primary,
/// a revert commit with Serin's trailers in Git, the sync loop applies it and the Canary
/// settles on the old version, the alert names the metric, its value and the revert commit,
/// and the failed revision is quarantined.
pub async fn bad_release_is_rolled_back(
    h: &mut Harness,
    image: &str,
    metric: &str,
) -> Result<Rollback, BedError> {
    let good_image = h.image.clone();
    let from = h.observer.elapsed();
    let commit = h.release(image).await?;
    let failed = release_outcome(h, from).await?;
    check(failed.phase == "Failed", || {
        format!("release {image} ended {}:\n{}", failed.phase, h.observer.render())
    })?;
    check(failed.weight == 0, || format!("Failed with weight {}", failed.weight))?;
    let run: Vec<Snapshot> = h.observer.timeline().into_iter().filter(|s| s.at >= from).collect();
    let first_failure = run.iter().find(|s| s.failed_checks > 0).map(|s| s.at).unwrap_or(failed.at);
    let first_traffic =
        run.iter().find(|s| s.phase == "Progressing" && s.weight > 0).map_or(failed.at, |s| s.at);
    // Issue 9's bound: interval × threshold plus one scrape (1 s), plus the observer's polling.
    let interval = parse_seconds(h.app.analysis["interval"].as_str().unwrap_or("0s"));
    let threshold = h.app.analysis["threshold"].as_u64().unwrap_or(1) as u32;
    let bound = interval * threshold + Duration::from_secs(1) + 2 * super::observe::POLL;
    let rollback_time = failed.at.saturating_sub(first_failure);
    check(rollback_time <= bound, || {
        format!(
            "rollback took {rollback_time:?} after the first failed check (bound {bound:?}):\n{}",
            h.observer.render()
        )
    })?;
    let failing_metric = run
        .iter()
        .flat_map(|s| s.analysis.iter())
        .find(|m| m.starts_with(metric) && m.ends_with(" fail"))
        .cloned()
        .ok_or_else(|| {
            BedError::Process(format!("no failed {metric} check in the timeline:\n{}", h.observer.render()))
        })?;
    h.step(&format!("rolled back on {failing_metric}: the primary serves {}", tag(&good_image)));
    expect_primary_serves(h, tag(&good_image)).await?;

    h.step("Serin reverts the release in Git; the sync loop applies the revert");
    let revert = wait_for_revert(h, &commit).await?;
    h.bed.sync().wait_for_revision(&revert.sha, Duration::from_secs(20)).await?;
    let deployed = h.deployed_image().await?;
    check(deployed == good_image, || {
        format!("after the revert the Deployment runs {deployed}, not {good_image}")
    })?;
    h.image = good_image.clone();
    h.commit = revert.sha.clone();
    let settled = h
        .observer
        .wait_for("to settle on the reverted version", Duration::from_secs(30), |s| {
            s.phase == "Initialized" || s.phase == "Succeeded"
        })
        .await
        .map_err(|e| h.with_log(e))?;
    check(settled.weight == 0, || format!("settled with weight {}", settled.weight))?;
    expect_primary_serves(h, tag(&good_image)).await?;

    h.step("the alert receiver got the rollback with the metric and the revert commit");
    let alert_text = wait_for_alert(h, &[metric, &revert.sha]).await?;
    check(alert_text.contains("Rolled back") || alert_text.contains("rolled back"), || {
        format!("the alert does not say it rolled back: {alert_text}")
    })?;
    let quarantined = quarantined_revisions(&h.observer.latest().map(|s| s.status).unwrap_or_default());
    check(!failed.revision.is_empty() && quarantined.contains(&failed.revision), || {
        format!("revision {} not in status.failedRevisions {quarantined:?}", failed.revision)
    })?;
    Ok(Rollback {
        commit,
        revert: revert.sha,
        rollback_time,
        exposure: failed.at.saturating_sub(first_traffic),
        failing_metric,
    })
}

/// Waits for the release that started after `from` to end: the first `Progressing` after
/// `from`, then the first `Succeeded` or `Failed` after that.
pub async fn release_outcome(h: &Harness, from: Duration) -> Result<Snapshot, BedError> {
    let started = h
        .observer
        .wait_for_after(from, "to start the release", Duration::from_secs(30), |s| s.phase == "Progressing")
        .await
        .map_err(|e| h.with_log(e))?;
    h.observer
        .wait_for_after(started.at, "to finish the release", RELEASE_TIMEOUT, |s| {
            s.phase == "Succeeded" || s.phase == "Failed"
        })
        .await
        .map_err(|e| h.with_log(e))
}

/// `2s` / `1m` style durations of the analysis (seconds and minutes are all scenarios use).
fn parse_seconds(text: &str) -> Duration {
    let (number, unit) = text.split_at(text.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len());
    let n: u64 = number.parse().unwrap_or(0);
    match unit {
        "m" => Duration::from_secs(n * 60),
        "ms" => Duration::from_millis(n),
        _ => Duration::from_secs(n),
    }
}

fn progressing_weights(run: &[Snapshot]) -> Vec<i64> {
    let mut weights: Vec<i64> = Vec::new();
    for s in run.iter().filter(|s| s.phase == "Progressing" && s.weight > 0) {
        if weights.last() != Some(&s.weight) {
            weights.push(s.weight);
        }
    }
    weights
}

/// Sends requests through the proxy: every one must be a 200 from `<app>-primary` running
/// `version`.
pub async fn expect_primary_serves(h: &Harness, version: &str) -> Result<(), BedError> {
    let primary = format!("{}-primary", h.app.name);
    let traffic = h.bed.send_traffic(&h.app.namespace, &h.app.name, PROBE_REQUESTS).await;
    let ok = traffic.by_workload.get(&primary) == Some(&PROBE_REQUESTS)
        && traffic.by_version.get(version) == Some(&PROBE_REQUESTS)
        && traffic.by_status.get(&200) == Some(&PROBE_REQUESTS);
    check(ok, || format!("expected every request on {primary} {version} with 200, got {traffic:?}"))
}

/// The revert commit Serin pushed for `release`: exactly one commit whose trailers say it
/// reverts `release`.
async fn wait_for_revert(h: &Harness, release: &str) -> Result<crate::git::CommitInfo, BedError> {
    let trailer = format!("Serin-Reverts: {release}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = h.bed.git().log().await?;
        let reverts: Vec<_> = log.iter().filter(|c| c.message.contains(&trailer)).collect();
        if let [one] = reverts.as_slice() {
            let canary = format!("Serin-Canary: {}/{}", h.app.namespace, h.app.name);
            check(one.message.contains(&canary) && one.message.contains("Serin-Action: revert"), || {
                format!("revert commit without Serin's trailers:\n{}", one.message)
            })?;
            return Ok((*one).clone());
        }
        check(reverts.len() < 2, || format!("{} revert commits for {release}", reverts.len()))?;
        if std::time::Instant::now() >= deadline {
            let subjects: Vec<&str> = log.iter().map(|c| c.subject.as_str()).collect();
            return Err(h.with_log(BedError::Timeout(
                Duration::from_secs(30),
                format!("no revert commit of {release}; log: {subjects:?}"),
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for an alert whose body mentions every one of `needles`; returns its text.
async fn wait_for_alert(h: &Harness, needles: &[&str]) -> Result<String, BedError> {
    let alert = h
        .bed
        .alerts()
        .wait_for(Duration::from_secs(20), |a| {
            let text = a.body.to_string();
            needles.iter().all(|n| text.contains(n))
        })
        .await?;
    Ok(alert.body.to_string())
}

fn quarantined_revisions(status: &Value) -> Vec<String> {
    status["failedRevisions"]
        .as_array()
        .map(|items| items.iter().filter_map(|r| r["revision"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

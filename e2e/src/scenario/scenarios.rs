//! The scenarios of issue 9. Each drives a [`Harness`] through a release and checks what a
//! user could check: the Canary's status, which version answers real requests through the
//! proxy, the Git history, the Deployment the sync loop applied, and the alerts received.

use std::time::Duration;

use serde_json::Value;

use super::{
    Harness, RELEASE_TIMEOUT,
    observe::{POLL, Snapshot},
    tag,
};
use crate::{error::BedError, util::poll_until};

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
    if h.app.gitops {
        // Recorded at promotion from the sync loop's Kustomization status, as on Flux.
        let recorded = done.status["lastPromotedCommit"].as_str().unwrap_or_default().to_string();
        check(recorded == commit, || format!("status.lastPromotedCommit is {recorded:?}, not {commit}"))?;
    }
    let log = h.bed.git().log().await?;
    check(log.first().is_some_and(|c| c.sha == commit), || {
        format!("Git changed after a successful release: head is {:?}", log.first().map(|c| &c.subject))
    })?;
    h.commit = commit.clone();
    Ok(Promotion { commit, weights, duration: done.at.saturating_sub(started) })
}

/// Scenario 1 with the `kubernetes` router (blue/green; call after installing an app with
/// `provider: kubernetes` and `iterations`): during the analysis every request to the app
/// still reaches the old primary while load on `<app>-canary` feeds the builtin metrics from
/// the pods' own histograms; after the iterations all traffic goes to the canary while the
/// primary is promoted, then the apex Service selects the new primary.
pub async fn blue_green_release_is_promoted(h: &mut Harness, image: &str) -> Result<Promotion, BedError> {
    let old = h.image.clone();
    let canary_service = format!("{}-canary", h.app.name);
    h.add_load(&canary_service)?;
    let from = h.observer.elapsed();
    let commit = h.release(image).await?;
    h.observer
        .wait_for_after(from, "to analyse the new version", Duration::from_secs(30), |s| {
            s.phase == "Progressing" && s.analysis.iter().any(|m| m.ends_with(" pass"))
        })
        .await
        .map_err(|e| h.with_log(e))?;
    h.step("blue/green: the analysis runs on the canary Service while users stay on the primary");
    expect_primary_serves(h, tag(&old)).await?;
    let done = release_outcome(h, from).await?;
    check(done.phase == "Succeeded", || {
        format!("release {image} ended {}:\n{}", done.phase, h.observer.render())
    })?;
    let run: Vec<Snapshot> = h.observer.timeline().into_iter().filter(|s| s.at >= from).collect();
    // Like Flagger: no split while analysing; all traffic to the canary only once the
    // iterations passed, while the primary is promoted.
    check(run.iter().all(|s| s.weight == 0 || s.weight == 100), || {
        format!("blue/green split traffic:\n{}", h.observer.render())
    })?;
    h.step("promoted: the apex Service selects the new primary");
    expect_primary_serves(h, tag(image)).await?;
    h.commit = commit.clone();
    Ok(Promotion { commit, weights: Vec::new(), duration: done.at.saturating_sub(from) })
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
    let rollback_time = failed.at.saturating_sub(first_failure);
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
    let canary = format!("Serin-Canary: {}/{}", h.app.namespace, h.app.name);
    let what = || format!("a revert commit of {release}");
    let found = poll_until(Duration::from_secs(30), Duration::from_millis(200), what, || async {
        let log = h.bed.git().log().await?;
        let reverts: Vec<_> = log.into_iter().filter(|c| c.message.contains(&trailer)).collect();
        check(reverts.len() < 2, || format!("{} revert commits for {release}", reverts.len()))?;
        Ok(reverts.into_iter().next())
    })
    .await
    .map_err(|e| h.with_log(e))?;
    check(found.message.contains(&canary) && found.message.contains("Serin-Action: revert"), || {
        format!("revert commit without Serin's trailers:\n{}", found.message)
    })?;
    Ok(found)
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

/// Checks issue 9's bound on a rollback: all traffic back on the primary within
/// `interval × threshold` plus one scrape (1 s) of the first failed check, plus the observer's
/// polling. Not for runs where the controller is being killed.
pub fn check_rollback_time(h: &Harness, rollback: &Rollback) -> Result<(), BedError> {
    let interval = parse_seconds(h.app.analysis["interval"].as_str().unwrap_or("0s"));
    let threshold = h.app.analysis["threshold"].as_u64().unwrap_or(1) as u32;
    let bound = interval * threshold + Duration::from_secs(1) + 2 * POLL;
    check(rollback.rollback_time <= bound, || {
        format!(
            "rollback took {:?} after the first failed check (bound {bound:?}):\n{}",
            rollback.rollback_time,
            h.observer.render()
        )
    })
}

/// Scenario 7: Prometheus stops while the canary is at its first step. The canary does not
/// advance (every check errors and counts as failed), then Prometheus comes back and the
/// release is promoted. The analysis threshold is raised to 8 so the outage (3 intervals)
/// stays below it.
pub async fn prometheus_outage_holds_the_canary(h: &mut Harness, image: &str) -> Result<Promotion, BedError> {
    h.app.analysis["threshold"] = serde_json::json!(8);
    h.configure("threshold 8").await?;
    let interval = parse_seconds(h.app.analysis["interval"].as_str().unwrap_or("2s"));
    let from = h.observer.elapsed();
    let commit = h.release(image).await?;
    let first_step = h
        .observer
        .wait_for_after(from, "to route traffic to the canary", Duration::from_secs(30), |s| {
            s.phase == "Progressing" && s.weight > 0
        })
        .await
        .map_err(|e| h.with_log(e))?;
    h.step("stop Prometheus in the middle of the analysis");
    h.bed.prometheus_mut().stop();
    let stopped = h.observer.elapsed();
    tokio::time::sleep(interval * 3).await;
    // A tick already running when Prometheus stopped may still use its last answer.
    let settled = stopped + interval;
    let during: Vec<Snapshot> = h.observer.timeline().into_iter().filter(|s| s.at >= settled).collect();
    let held = h.observer.timeline().into_iter().filter(|s| s.at <= settled).map(|s| s.weight).max();
    let held = held.unwrap_or(first_step.weight);
    check(during.iter().all(|s| s.weight <= held && s.phase == "Progressing"), || {
        format!("the canary moved while Prometheus was down (held weight {held}):\n{}", h.observer.render())
    })?;
    let errored =
        during.iter().any(|s| s.failed_checks > 0 && s.analysis.iter().any(|m| m.ends_with(" error")));
    check(errored, || {
        format!("no errored, counted check while Prometheus was down:\n{}", h.observer.render())
    })?;
    h.step("start Prometheus again: the analysis resumes and the release is promoted");
    h.bed.prometheus_mut().restart().await?;
    let done = release_outcome(h, from).await?;
    check(done.phase == "Succeeded", || format!("release ended {}:\n{}", done.phase, h.observer.render()))?;
    expect_primary_serves(h, tag(image)).await?;
    h.commit = commit.clone();
    let run: Vec<Snapshot> = h.observer.timeline().into_iter().filter(|s| s.at >= from).collect();
    Ok(Promotion { commit, weights: progressing_weights(&run), duration: done.at.saturating_sub(from) })
}

/// Scenario 9: bad input. A Canary breaking a CEL rule is refused by the API with the field
/// path; a Canary the API accepts but Serin cannot run (weights on the blue/green-only
/// `kubernetes` router), committed to Git, is reported in its status and a Warning Event with
/// the field path; meanwhile the healthy app is still released and promoted.
pub async fn bad_input_is_reported_and_others_keep_going(
    h: &mut Harness,
    image: &str,
) -> Result<(), BedError> {
    h.step("apply a Canary with both stepWeight and iterations: the API refuses it");
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(h.bed.client(), &h.app.namespace, &super::observe::canary_resource());
    let mut broken = h.app.clone();
    broken.name = "broken".into();
    broken.analysis["iterations"] = serde_json::json!(5);
    let object: kube::api::DynamicObject = serde_json::from_value(broken.canary())
        .map_err(|e| BedError::Parse(format!("canary manifest: {e}")))?;
    match api.create(&kube::api::PostParams::default(), &object).await {
        Err(kube::Error::Api(status)) => {
            check(status.code == 422 && status.message.contains("spec.analysis"), || {
                format!("expected 422 naming spec.analysis, got {} {}", status.code, status.message)
            })?
        }
        Err(e) => return Err(e.into()),
        Ok(_) => {
            return Err(BedError::Process("the API accepted a Canary with stepWeight and iterations".into()));
        }
    }

    h.step("commit a Canary with weights on the kubernetes (blue/green) router: Serin reports it");
    let mut legacy = super::app::App::new(&h.app.namespace, "legacy", &h.bed.alerts().url());
    legacy.provider = "kubernetes".into();
    legacy.replicas = 1;
    legacy.gitops = false;
    let manifests = legacy.manifests("demo:1.0.0");
    h.bed
        .commit_and_sync(
            &[(&legacy.path(), Some(&manifests))],
            "deploy legacy 1.0.0",
            Duration::from_secs(20),
        )
        .await?;
    let observer =
        super::observe::CanaryObserver::start(h.bed.client(), &legacy.namespace, &legacy.name, false);
    let reported = observer
        .wait_for("to report its invalid spec", Duration::from_secs(30), |s| {
            conditions_mention(&s.status, "InvalidSpec", "spec.analysis")
        })
        .await
        .map_err(|e| h.with_log(e))?;
    check(reported.weight == 0, || "the invalid canary routed traffic".into())?;
    wait_for_warning_event(h, &legacy.name, "InvalidSpec").await?;

    h.step("the other canary is still released");
    healthy_release_is_promoted(h, image).await?;
    Ok(())
}

fn conditions_mention(status: &Value, reason: &str, text: &str) -> bool {
    status["conditions"].as_array().is_some_and(|conditions| {
        conditions.iter().any(|c| {
            c["reason"].as_str() == Some(reason) && c["message"].as_str().is_some_and(|m| m.contains(text))
        })
    })
}

/// Waits for a Warning Event about Canary `name` with `reason`.
async fn wait_for_warning_event(h: &Harness, name: &str, reason: &str) -> Result<(), BedError> {
    use k8s_openapi::api::events::v1::Event;
    let events: kube::Api<Event> = kube::Api::namespaced(h.bed.client(), &h.app.namespace);
    let what = || format!("Warning Event {reason} for {name}");
    poll_until(Duration::from_secs(20), Duration::from_millis(200), what, || async {
        let list = events.list(&kube::api::ListParams::default()).await?;
        let found = list.items.iter().any(|e| {
            e.reason.as_deref() == Some(reason)
                && e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        });
        Ok(found.then_some(()))
    })
    .await
}

/// Every revert commit Serin made (Git commits with its `Serin-Action: revert` trailer).
pub async fn revert_commits(h: &Harness) -> Result<Vec<crate::git::CommitInfo>, BedError> {
    let log = h.bed.git().log().await?;
    Ok(log.into_iter().filter(|c| c.message.contains("Serin-Action: revert")).collect())
}

/// How many "Promoted" alerts the receiver got for the app.
pub fn promoted_alerts(h: &Harness) -> usize {
    let header = format!("{}.{}: Promoted", h.app.name, h.app.namespace);
    h.bed
        .alerts()
        .received()
        .iter()
        .filter(|a| a.body["blocks"][0]["text"]["text"].as_str() == Some(&header))
        .count()
}

/// Scenario 6: the controller is SIGKILLed at random moments (and restarted) during a
/// healthy release and a bad one. Same outcomes: the good one promoted once, the bad one
/// never promoted, rolled back, and exactly one revert commit. Returns the number of kills.
pub async fn crashes_change_nothing(
    h: &mut Harness,
    good: &str,
    bad: &str,
    seed: u64,
) -> Result<u32, BedError> {
    h.step(&format!("SIGKILL the controller at random moments (seed {seed})"));
    let chaos = super::chaos::Chaos::start(h.controllers[0].clone(), seed);
    let promoted = healthy_release_is_promoted(h, good).await;
    let from = h.observer.elapsed();
    let rolled_back = match &promoted {
        Ok(_) => Some(bad_release_is_rolled_back(h, bad, "request-success-rate").await),
        Err(_) => None,
    };
    let kills = chaos.stop().await;
    promoted?;
    let rollback = rolled_back.transpose()?.ok_or_else(|| BedError::Process("no rollback ran".into()))?;
    let bad_run: Vec<Snapshot> = h.observer.timeline().into_iter().filter(|s| s.at >= from).collect();
    check(!bad_run.iter().any(|s| s.phase == "Promoting" || s.phase == "Succeeded"), || {
        format!("the failing release was promoted:\n{}", h.observer.render())
    })?;
    // Let a restarted controller finish anything it had in flight, then count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reverts = revert_commits(h).await?;
    check(reverts.len() == 1 && reverts[0].sha == rollback.revert, || {
        format!(
            "expected exactly the revert {}, got {:?}",
            rollback.revert,
            reverts.iter().map(|c| &c.sha).collect::<Vec<_>>()
        )
    })?;
    let promotions = promoted_alerts(h);
    check(promotions <= 1, || format!("{promotions} Promoted alerts for one promotion"))?;
    Ok(kills)
}

/// Scenario 4: a confirm-promotion gate on the load tester holds the release at
/// `WaitingPromotion` until the gate is opened, then it is promoted.
pub async fn manual_gate_holds_promotion(h: &mut Harness, image: &str) -> Result<(), BedError> {
    let tester = super::loadtester::LoadTester::start(&h.serin, &h.bed.dir().join("loadtester.log")).await?;
    h.app.analysis["webhooks"] = serde_json::json!([
        {"name": "approval", "type": "confirm-promotion", "url": format!("{}/gate/check", tester.url())}
    ]);
    h.configure("confirm-promotion gate").await?;
    let interval = parse_seconds(h.app.analysis["interval"].as_str().unwrap_or("2s"));
    let from = h.observer.elapsed();
    let commit = h.release(image).await?;
    let waiting = h
        .observer
        .wait_for_after(from, "to wait for approval", RELEASE_TIMEOUT, |s| s.phase == "WaitingPromotion")
        .await
        .map_err(|e| h.with_log(e))?;
    h.step("the gate is closed: the release waits");
    tokio::time::sleep(interval * 3).await;
    let held: Vec<Snapshot> = h.observer.timeline().into_iter().filter(|s| s.at >= waiting.at).collect();
    check(held.iter().all(|s| s.phase == "WaitingPromotion"), || {
        format!("the release moved on while the gate was closed:\n{}", h.observer.render())
    })?;
    h.step("open the gate through the load tester");
    let opened = h.observer.elapsed();
    tester.open_gate(&h.app.namespace, &h.app.name).await?;
    let done = h
        .observer
        .wait_for_after(opened, "to be promoted after approval", RELEASE_TIMEOUT, |s| {
            s.phase == "Succeeded" || s.phase == "Failed"
        })
        .await
        .map_err(|e| h.with_log(e))?;
    check(done.phase == "Succeeded", || format!("release ended {}:\n{}", done.phase, h.observer.render()))?;
    expect_primary_serves(h, tag(image)).await?;
    h.commit = commit;
    h.app.analysis["webhooks"] = Value::Null;
    Ok(())
}

/// Scenario 5: a failing pre-rollout webhook fails a release before it gets any traffic;
/// a rollback webhook that starts answering 200 aborts a release in progress.
pub async fn failing_webhooks_fail_the_release(
    h: &mut Harness,
    first: &str,
    second: &str,
) -> Result<(), BedError> {
    let tester = super::loadtester::LoadTester::start(&h.serin, &h.bed.dir().join("loadtester.log")).await?;
    let good = h.image.clone();
    h.app.analysis["webhooks"] = serde_json::json!([
        {"name": "smoke", "type": "pre-rollout", "url": format!("{}/gate/halt", tester.url())}
    ]);
    h.configure("pre-rollout smoke test").await?;
    let from = h.observer.elapsed();
    let commit = h.release(first).await?;
    let done = release_outcome(h, from).await?;
    check(done.phase == "Failed", || format!("release ended {}:\n{}", done.phase, h.observer.render()))?;
    let run: Vec<Snapshot> = h.observer.timeline().into_iter().filter(|s| s.at >= from).collect();
    check(run.iter().all(|s| s.weight == 0), || {
        format!("traffic reached a release whose pre-rollout hook failed:\n{}", h.observer.render())
    })?;
    expect_primary_serves(h, tag(&good)).await?;
    let revert = wait_for_revert(h, &commit).await?;
    h.bed.sync().wait_for_revision(&revert.sha, Duration::from_secs(20)).await?;
    h.image = good.clone();
    h.observer
        .wait_for("to settle after the revert", Duration::from_secs(30), |s| s.phase == "Initialized")
        .await
        .map_err(|e| h.with_log(e))?;

    h.step("a rollback webhook aborts a release in progress");
    h.app.analysis["webhooks"] = serde_json::json!([
        {"name": "abort", "type": "rollback", "url": format!("{}/gate/check", tester.url())}
    ]);
    h.configure("rollback webhook").await?;
    let from = h.observer.elapsed();
    h.release(second).await?;
    h.observer
        .wait_for_after(from, "to route traffic to the canary", Duration::from_secs(30), |s| {
            s.phase == "Progressing" && s.weight > 0
        })
        .await
        .map_err(|e| h.with_log(e))?;
    tester.open_gate(&h.app.namespace, &h.app.name).await?;
    let done = release_outcome(h, from).await?;
    check(done.phase == "Failed" && done.weight == 0, || {
        format!("the rollback hook did not abort the release:\n{}", h.observer.render())
    })?;
    expect_primary_serves(h, tag(&good)).await?;
    h.app.analysis["webhooks"] = Value::Null;
    Ok(())
}

/// Scenario 8: two controller replicas with leader election. Only the lease holder acts
/// (every Event comes from it); SIGKILL it mid-release and the other takes the lease and
/// finishes the release.
pub async fn leader_failover(h: &mut Harness, image: &str) -> Result<(), BedError> {
    let leader = wait_for_leader(h, None).await?;
    let before = events_by_instance(h).await?;
    check(before.iter().all(|i| *i == leader), || {
        format!("Events from {before:?} while {leader} held the lease")
    })?;
    let from = h.observer.elapsed();
    h.release(image).await?;
    h.observer
        .wait_for_after(from, "to route traffic to the canary", Duration::from_secs(30), |s| {
            s.phase == "Progressing" && s.weight > 0
        })
        .await
        .map_err(|e| h.with_log(e))?;
    let index: usize = leader.trim_start_matches("serin-").parse().unwrap_or(0);
    h.step(&format!("SIGKILL the leader {leader}"));
    h.controllers[index].kill();
    let successor = wait_for_leader(h, Some(&leader)).await?;
    h.step(&format!("{successor} took the lease"));
    let done = release_outcome(h, from).await?;
    check(done.phase == "Succeeded", || format!("release ended {}:\n{}", done.phase, h.observer.render()))?;
    expect_primary_serves(h, tag(image)).await?;
    let after = events_by_instance(h).await?;
    check(after.iter().all(|i| *i == leader || *i == successor) && after.contains(&successor), || {
        format!("Events from {after:?}; expected {leader} then {successor}")
    })?;
    Ok(())
}

/// The holder of the `serin-leader` Lease once it is someone other than `not`.
async fn wait_for_leader(h: &Harness, not: Option<&str>) -> Result<String, BedError> {
    use k8s_openapi::api::coordination::v1::Lease;
    let leases: kube::Api<Lease> = kube::Api::namespaced(h.bed.client(), "serin-system");
    let what = || format!("a lease holder other than {not:?}");
    poll_until(Duration::from_secs(45), Duration::from_millis(200), what, || async {
        let lease = leases.get_opt("serin-leader").await?;
        Ok(lease
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            .filter(|id| !id.is_empty() && Some(id.as_str()) != not))
    })
    .await
    .map_err(|e| h.with_log(e))
}

/// `reportingInstance` of every Event about the app's Canary.
async fn events_by_instance(h: &Harness) -> Result<Vec<String>, BedError> {
    use k8s_openapi::api::events::v1::Event;
    let events: kube::Api<Event> = kube::Api::namespaced(h.bed.client(), &h.app.namespace);
    let list = events.list(&kube::api::ListParams::default()).await?;
    Ok(list
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Canary"))
        .map(|e| e.reporting_instance.unwrap_or_default())
        .collect())
}

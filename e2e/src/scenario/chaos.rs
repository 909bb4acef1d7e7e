//! Crashes on purpose (scenario 6): a task that SIGKILLs a controller process at random
//! moments and starts it again, so a scenario can check that outcomes survive restarts.

use std::time::Duration;

use tokio::{sync::watch, task::JoinHandle};

use super::controller::ControllerProcess;

/// Longest time between two kills.
const MAX_UPTIME: Duration = Duration::from_millis(3000);
/// Shortest time between two kills.
const MIN_UPTIME: Duration = Duration::from_millis(500);
/// Longest time the controller stays down.
const MAX_DOWNTIME: Duration = Duration::from_millis(1000);

/// A running chaos task.
pub struct Chaos {
    stop: watch::Sender<bool>,
    task: JoinHandle<u32>,
}

impl Chaos {
    /// Starts killing `controller`; `seed` makes the moments reproducible (print it).
    pub fn start(controller: ControllerProcess, seed: u64) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut rng = XorShift(seed.max(1));
            let mut kills = 0;
            loop {
                let uptime = rng.between(MIN_UPTIME, MAX_UPTIME);
                if tokio::time::timeout(uptime, stopped.changed()).await.is_ok() {
                    break;
                }
                controller.kill();
                kills += 1;
                tracing::info!(kills, "chaos: controller killed");
                tokio::time::sleep(rng.between(Duration::ZERO, MAX_DOWNTIME)).await;
                if let Err(e) = controller.restart() {
                    tracing::warn!(error = %e, "chaos: restart failed");
                }
            }
            kills
        });
        Chaos { stop, task }
    }

    /// Stops the chaos, leaving the controller running; returns how many kills there were.
    pub async fn stop(self) -> u32 {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(0)
    }
}

/// A tiny deterministic generator (xorshift64): no randomness crate for one use.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A duration in `[low, high]`.
    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = high.saturating_sub(low).as_millis() as u64;
        low + Duration::from_millis(if span == 0 { 0 } else { self.next() % (span + 1) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_stay_in_range_and_repeat_for_a_seed() {
        let draw = |seed| {
            let mut rng = XorShift(seed);
            (0..200).map(|_| rng.between(MIN_UPTIME, MAX_UPTIME)).collect::<Vec<_>>()
        };
        let a = draw(42);
        assert!(a.iter().all(|d| (MIN_UPTIME..=MAX_UPTIME).contains(d)));
        assert_eq!(a, draw(42));
        assert_ne!(a, draw(43));
        assert!(a.iter().collect::<std::collections::BTreeSet<_>>().len() > 50, "spread out");
    }
}

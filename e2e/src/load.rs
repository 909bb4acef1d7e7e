//! A bounded background load generator: sends GETs to one or more URLs in a loop (one request
//! per URL per round, then a pause) until stopped or until its time limit, and tallies who
//! answered ([`crate::bed::Traffic`]).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{sync::watch, task::JoinHandle};
use tracing::debug;

use crate::{bed::Traffic, demo, error::BedError, proxy, util};

/// A running load generator; stops on [`LoadGenerator::stop`], at its time limit, or on drop.
#[derive(Debug)]
pub struct LoadGenerator {
    stop: watch::Sender<bool>,
    traffic: Arc<Mutex<Traffic>>,
    task: Option<JoinHandle<()>>,
}

impl LoadGenerator {
    /// Starts sending to every URL in `urls`, pausing `pause` between rounds, for at most
    /// `limit` (at most 10 minutes).
    pub fn start(urls: Vec<String>, pause: Duration, limit: Duration) -> Result<Self, BedError> {
        let http = util::http_client()?;
        let (stop, mut stop_rx) = watch::channel(false);
        let traffic = Arc::new(Mutex::new(Traffic::default()));
        let tally = traffic.clone();
        let limit = limit.min(Duration::from_secs(600));
        let task = tokio::spawn(async move {
            let deadline = Instant::now() + limit;
            while !*stop_rx.borrow() && Instant::now() < deadline {
                for url in &urls {
                    let result = http.get(url).timeout(Duration::from_secs(10)).send().await;
                    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                    match result {
                        Ok(resp) => {
                            let header = |name: &str| {
                                resp.headers()
                                    .get(name)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_string()
                            };
                            *t.by_workload.entry(header(proxy::WORKLOAD_HEADER)).or_default() += 1;
                            *t.by_version.entry(header(demo::VERSION_HEADER)).or_default() += 1;
                            *t.by_status.entry(resp.status().as_u16()).or_default() += 1;
                        }
                        Err(err) => {
                            debug!(%url, %err, "load: request failed");
                            t.failed += 1;
                        }
                    }
                }
                tokio::select! {
                    _ = stop_rx.changed() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        });
        Ok(LoadGenerator { stop, traffic, task: Some(task) })
    }

    /// What has been seen so far.
    pub fn traffic(&self) -> Traffic {
        self.traffic.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops (waiting at most 15 s for the request in flight) and returns the tally.
    pub async fn stop(mut self) -> Traffic {
        self.stop.send_replace(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(15), &mut task).await.is_err()
        {
            task.abort();
        }
        self.traffic()
    }
}

impl Drop for LoadGenerator {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

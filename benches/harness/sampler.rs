//! Samplers that run beside a scenario: the server's peak RSS while a phase runs.

use std::time::Duration;

use super::server::rss_mib;

/// Samples the server's RSS every 200 ms until stopped; `stop` returns the maximum seen.
pub struct RssSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<f64>,
}

impl RssSampler {
    pub async fn stop(self) -> f64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0.0)
    }
}

pub fn rss_sampler(pid: i32) -> RssSampler {
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut max = 0.0f64;
        loop {
            max = max.max(rss_mib(pid));
            tokio::select! {
                _ = &mut stopped => return max,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    });
    RssSampler { stop, task }
}

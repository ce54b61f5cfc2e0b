//! Open-model load: each stream sends requests at a constant arrival rate; a request's latency
//! runs from its *intended* send time to its completion, so time spent queued behind a slow
//! server counts (no coordinated omission). At most 20,000 requests are in flight per stream (a
//! request due beyond that counts as an error). The ceiling is a closed loop at maximum rate.
//! Latencies go into HDR histograms (1 µs to 60 s, 3 significant digits).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// One request of a stream: gets its sequence number, answers whether it succeeded.
pub type RequestFn = Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// A constant-rate stream.
pub struct Stream {
    pub name: &'static str,
    pub rate_per_sec: f64,
    pub request: RequestFn,
}

/// What a stream measured.
pub struct StreamResult {
    pub name: &'static str,
    pub target_rate: f64,
    pub sent: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Latency in microseconds from the intended send time.
    pub histogram: Histogram<u64>,
}

impl StreamResult {
    pub fn achieved_rate(&self) -> f64 {
        (self.sent - self.errors) as f64 / self.seconds
    }
    pub fn error_rate(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.errors as f64 / self.sent as f64
        }
    }
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.histogram.value_at_quantile(q) as f64 / 1000.0
    }
}

/// At most this many requests in flight per stream; beyond it a request counts as an error
/// (the server is not keeping up) rather than growing memory without bound.
const MAX_IN_FLIGHT: u64 = 20_000;

/// Runs every stream for `duration` at once and returns their results.
pub async fn run_open(streams: Vec<Stream>, duration: Duration) -> Vec<StreamResult> {
    let mut handles = Vec::new();
    for stream in streams {
        handles.push(tokio::spawn(run_stream(stream, duration)));
    }
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.expect("stream task"));
    }
    results
}

async fn run_stream(stream: Stream, duration: Duration) -> StreamResult {
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap()));
    let errors = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(1.0 / stream.rate_per_sec);
    let started = Instant::now();
    let total = (duration.as_secs_f64() * stream.rate_per_sec) as u64;
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let intended = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(intended.into()).await;
        if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (request, histogram, errors, in_flight) =
            (stream.request.clone(), histogram.clone(), errors.clone(), in_flight.clone());
        tasks.push(tokio::spawn(async move {
            let ok = request(n).await;
            let micros = intended.elapsed().as_micros().max(1) as u64;
            if ok {
                let _ = histogram.lock().unwrap().record(micros.min(60_000_000));
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            in_flight.fetch_sub(1, Ordering::Relaxed);
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let histogram = histogram.lock().unwrap().clone();
    StreamResult {
        name: stream.name,
        target_rate: stream.rate_per_sec,
        sent: total,
        errors: errors.load(Ordering::Relaxed),
        seconds,
        histogram,
    }
}

/// The ceiling: `concurrency` closed-loop callers as fast as they can for `duration`.
pub async fn run_ceiling(request: RequestFn, concurrency: usize, duration: Duration) -> StreamResult {
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap()));
    let errors = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for caller in 0..concurrency {
        let (request, histogram, errors, sent) = (request.clone(), histogram.clone(), errors.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = caller as u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = request(n).await;
                sent.fetch_add(1, Ordering::Relaxed);
                if ok {
                    let _ = histogram.lock().unwrap().record(t.elapsed().as_micros().max(1) as u64);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                n += concurrency as u64;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let histogram = histogram.lock().unwrap().clone();
    StreamResult {
        name: "ceiling GET /health",
        target_rate: 0.0,
        sent: sent.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        seconds,
        histogram,
    }
}

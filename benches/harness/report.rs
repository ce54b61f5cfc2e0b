//! Reporting: per-stream numbers, verdicts against certctl's threshold contract and our goal,
//! ratios to the ceiling measured in the same run, server CPU and RSS; text on stdout and a JSON
//! file per run under `$CARGO_TARGET_TMPDIR/bench-results/`.

use serde_json::{json, Value};

use super::load::StreamResult;

/// A latency/error threshold on one stream.
pub struct Threshold {
    pub stream: &'static str,
    pub label: &'static str,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_error_rate: f64,
    /// Minimum achieved rate (successful requests per second).
    pub min_rate: Option<f64>,
}

impl Threshold {
    fn verdict(&self, r: &StreamResult) -> (bool, String) {
        let mut failures = Vec::new();
        if let Some(p95) = self.p95_ms {
            if r.quantile_ms(0.95) >= p95 {
                failures.push(format!("p95 {:.2} ms ≥ {p95} ms", r.quantile_ms(0.95)));
            }
        }
        if let Some(p99) = self.p99_ms {
            if r.quantile_ms(0.99) >= p99 {
                failures.push(format!("p99 {:.2} ms ≥ {p99} ms", r.quantile_ms(0.99)));
            }
        }
        if r.error_rate() > self.max_error_rate {
            failures.push(format!("errors {:.3}% > {:.3}%", r.error_rate() * 100.0, self.max_error_rate * 100.0));
        }
        if let Some(rate) = self.min_rate {
            if r.achieved_rate() < rate {
                failures.push(format!("rate {:.0}/s < {rate}/s", r.achieved_rate()));
            }
        }
        (failures.is_empty(), failures.join("; "))
    }
}

/// Prints a stream line.
pub fn print_stream(r: &StreamResult, ceiling_rate: f64) {
    println!(
        "  {:<34} target {:>7.0}/s  achieved {:>7.0}/s  ({:>5.1}% of ceiling)  p50 {:>8.2} ms  p95 {:>8.2} ms  p99 {:>8.2} ms  max {:>9.2} ms  errors {}/{}",
        r.name,
        r.target_rate,
        r.achieved_rate(),
        100.0 * r.achieved_rate() / ceiling_rate.max(1.0),
        r.quantile_ms(0.50),
        r.quantile_ms(0.95),
        r.quantile_ms(0.99),
        r.histogram.max() as f64 / 1000.0,
        r.errors,
        r.sent
    );
}

/// The JSON form of a stream.
pub fn stream_json(r: &StreamResult, ceiling_rate: f64) -> Value {
    json!({
        "name": r.name,
        "target_rate": r.target_rate,
        "achieved_rate": r.achieved_rate(),
        "ratio_to_ceiling": r.achieved_rate() / ceiling_rate.max(1.0),
        "sent": r.sent,
        "errors": r.errors,
        "error_rate": r.error_rate(),
        "seconds": r.seconds,
        "p50_ms": r.quantile_ms(0.50),
        "p95_ms": r.quantile_ms(0.95),
        "p99_ms": r.quantile_ms(0.99),
        "max_ms": r.histogram.max() as f64 / 1000.0,
    })
}

/// Prints and returns the verdicts of `thresholds` over `results`.
pub fn verdicts(title: &str, thresholds: &[Threshold], results: &[StreamResult]) -> Vec<Value> {
    println!("  {title}:");
    thresholds
        .iter()
        .filter_map(|t| {
            let r = results.iter().find(|r| r.name == t.stream)?;
            let (pass, why) = t.verdict(r);
            println!(
                "    {:<6} {} {}",
                if pass { "PASS" } else { "MISS" },
                t.label,
                if pass { String::new() } else { format!("({why})") }
            );
            Some(json!({"threshold": t.label, "stream": t.stream, "pass": pass, "detail": why}))
        })
        .collect()
}

/// Writes `report` as JSON to `$CARGO_TARGET_TMPDIR/bench-results/<scenario>-<unix time>.json`.
pub fn write_json(scenario: &str, report: &Value) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-results");
    std::fs::create_dir_all(&dir).unwrap();
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let path = dir.join(format!("{scenario}-{stamp}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(report).unwrap()).unwrap();
    path
}

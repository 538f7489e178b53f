//! Server metrics in the Prometheus text format: requests by endpoint and status, prompt
//! (admitted and found in the prefix cache) and generated tokens, running and queued sequences, cancelled sequences, and histograms of
//! time-to-first-token and inter-token latency.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket upper bounds, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A cumulative latency histogram (Prometheus semantics: `le` buckets, `_sum`, `_count`).
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket of [`LATENCY_BUCKETS`]: observations ≤ its bound (not cumulative here).
    buckets: [AtomicU64; 12],
    /// Sum of observations, in microseconds.
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| s <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us.fetch_add(
            d.as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (b, c) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cum += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cum}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Every metric of the server.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests answered, by (endpoint, status code).
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Prompt tokens admitted (once per choice).
    pub prompt_tokens: AtomicU64,
    /// Prompt tokens found in the prefix cache (not prefilled).
    pub cached_prompt_tokens: AtomicU64,
    /// Tokens generated.
    pub generated_tokens: AtomicU64,
    /// Sequences running in the batch now.
    pub running: AtomicU64,
    /// Sequences waiting for a slot now.
    pub queued: AtomicU64,
    /// Sequences cancelled because their client went away.
    pub cancelled: AtomicU64,
    /// Time from a request's arrival to its first generated token.
    pub ttft: Histogram,
    /// Time between two tokens of one sequence.
    pub inter_token: Histogram,
}

impl Metrics {
    /// Counts one answered request.
    pub fn count_request(&self, endpoint: &str, status: u16) {
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((endpoint.to_string(), status)).or_default() += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP adasamp_requests_total HTTP requests answered, by endpoint and status.\n\
             # TYPE adasamp_requests_total counter\n",
        );
        for ((ep, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "adasamp_requests_total{{endpoint=\"{ep}\",status=\"{status}\"}} {n}"
            );
        }
        let counters = [
            (
                "adasamp_prompt_tokens_total",
                "Prompt tokens admitted.",
                &self.prompt_tokens,
            ),
            (
                "adasamp_cached_prompt_tokens_total",
                "Prompt tokens found in the prefix cache (not prefilled).",
                &self.cached_prompt_tokens,
            ),
            (
                "adasamp_generated_tokens_total",
                "Tokens generated.",
                &self.generated_tokens,
            ),
            (
                "adasamp_cancelled_sequences_total",
                "Sequences cancelled because the client went away.",
                &self.cancelled,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let gauges = [
            (
                "adasamp_running_sequences",
                "Sequences in the running batch.",
                &self.running,
            ),
            (
                "adasamp_queued_sequences",
                "Sequences waiting for a slot.",
                &self.queued,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        self.ttft.write(
            &mut out,
            "adasamp_time_to_first_token_seconds",
            "Time from a request's arrival to its first generated token.",
        );
        self.inter_token.write(
            &mut out,
            "adasamp_inter_token_latency_seconds",
            "Time between two generated tokens of one sequence.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.count_request("/v1/completions", 200);
        m.count_request("/v1/completions", 200);
        m.count_request("/v1/completions", 400);
        m.ttft.observe(Duration::from_millis(20));
        m.ttft.observe(Duration::from_millis(200));
        m.ttft.observe(Duration::from_secs(100));
        let t = m.render();
        assert!(t.contains("adasamp_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 2"));
        assert!(t.contains("adasamp_requests_total{endpoint=\"/v1/completions\",status=\"400\"} 1"));
        assert!(t.contains("adasamp_time_to_first_token_seconds_bucket{le=\"0.025\"} 1"));
        assert!(t.contains("adasamp_time_to_first_token_seconds_bucket{le=\"0.25\"} 2"));
        assert!(t.contains("adasamp_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(t.contains("adasamp_time_to_first_token_seconds_count 3"));
        assert!(t.contains("adasamp_running_sequences 0"));
    }
}

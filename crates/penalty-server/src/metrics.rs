//! Counters and latency histograms, rendered in the Prometheus text format.
//!
//! The ingest counters are plain atomics, bumped by the ingest sink as each
//! block becomes durable, so `/metrics` read during a long upload shows its
//! progress. Request counts and latencies are kept per route template (such
//! as `/shops/{id}`, never the raw path, so a client cannot grow the label set)
//! under one short mutex; on this scale that costs far less than a request.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS_SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    /// Per bucket, not cumulative; summed when rendered.
    counts: [u64; BUCKETS_SECONDS.len()],
    /// Requests slower than the last bucket.
    overflow: u64,
    sum_seconds: f64,
    count: u64,
}

/// Per (method, route): requests by status, and a latency histogram.
#[derive(Default)]
struct RouteStats {
    statuses: BTreeMap<u16, u64>,
    latency: Histogram,
}

/// Everything `/metrics` reports.
#[derive(Default)]
pub struct Metrics {
    /// Lines received by `POST /events`.
    pub lines_read: AtomicU64,
    /// Events appended to the log.
    pub events_appended: AtomicU64,
    /// Lines rejected.
    pub events_rejected: AtomicU64,
    /// Lines that were already in the log.
    pub events_duplicate: AtomicU64,
    /// `POST /events` requests that completed.
    pub ingest_requests: AtomicU64,
    /// `known_at` questions answered by folding the log again.
    pub known_at_replays: AtomicU64,
    /// `known_at` questions answered from the last replay, kept.
    pub known_at_replays_reused: AtomicU64,
    /// Bytes of CSV downloads computed and not yet taken by their clients
    /// (at most `download::AHEAD_CHUNKS` chunks a download).
    pub download_bytes_queued: AtomicU64,
    routes: Mutex<BTreeMap<(&'static str, String), RouteStats>>,
}

impl Metrics {
    /// Records one request.
    pub fn observe(&self, method: &'static str, route: &str, status: u16, elapsed: Duration) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        let stats = routes.entry((method, route.to_string())).or_default();
        *stats.statuses.entry(status).or_default() += 1;
        let seconds = elapsed.as_secs_f64();
        let latency = &mut stats.latency;
        match BUCKETS_SECONDS.iter().position(|bound| seconds <= *bound) {
            Some(index) => latency.counts[index] += 1,
            None => latency.overflow += 1,
        }
        latency.sum_seconds += seconds;
        latency.count += 1;
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &AtomicU64); 7] = [
            (
                "penalty_ingest_lines_read_total",
                "Lines received by POST /events.",
                &self.lines_read,
            ),
            (
                "penalty_events_appended_total",
                "Events appended durably to the log.",
                &self.events_appended,
            ),
            (
                "penalty_events_rejected_total",
                "Lines rejected (written to the rejects file).",
                &self.events_rejected,
            ),
            (
                "penalty_events_duplicates_total",
                "Lines already in the log with the same content.",
                &self.events_duplicate,
            ),
            (
                "penalty_ingest_requests_total",
                "POST /events requests completed.",
                &self.ingest_requests,
            ),
            (
                "penalty_known_at_replays_total",
                "known_at questions answered by replaying the log.",
                &self.known_at_replays,
            ),
            (
                "penalty_known_at_replays_reused_total",
                "known_at questions answered from the last replay, kept while the log did not grow.",
                &self.known_at_replays_reused,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP penalty_download_bytes_queued Bytes of CSV downloads computed and not yet read by their clients.\n# TYPE penalty_download_bytes_queued gauge\npenalty_download_bytes_queued {}",
            self.download_bytes_queued.load(Ordering::Relaxed)
        );
        let Ok(routes) = self.routes.lock() else {
            return out;
        };
        out.push_str("# HELP penalty_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE penalty_http_requests_total counter\n");
        for ((method, route), stats) in routes.iter() {
            for (status, count) in &stats.statuses {
                let _ = writeln!(
                    out,
                    "penalty_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {count}",
                    escape(route)
                );
            }
        }
        out.push_str("# HELP penalty_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE penalty_http_request_duration_seconds histogram\n");
        for ((method, route), stats) in routes.iter() {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
            let latency = &stats.latency;
            let mut cumulative = 0;
            for (bound, count) in BUCKETS_SECONDS.iter().zip(latency.counts) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "penalty_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "penalty_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                latency.count
            );
            let _ = writeln!(
                out,
                "penalty_http_request_duration_seconds_sum{{{labels}}} {}",
                latency.sum_seconds
            );
            let _ = writeln!(
                out,
                "penalty_http_request_duration_seconds_count{{{labels}}} {}",
                latency.count
            );
        }
        out
    }
}

/// Label values escape backslash, quote and newline (the text format's rule).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::default();
        metrics.observe("GET", "/shops", 200, Duration::from_micros(300));
        metrics.observe("GET", "/shops", 200, Duration::from_millis(3));
        metrics.observe("GET", "/shops", 404, Duration::from_secs(30));
        let text = metrics.render();
        assert!(text.contains(
            "penalty_http_request_duration_seconds_bucket{method=\"GET\",route=\"/shops\",le=\"0.0005\"} 1"
        ));
        assert!(text.contains(
            "penalty_http_request_duration_seconds_bucket{method=\"GET\",route=\"/shops\",le=\"0.005\"} 2"
        ));
        assert!(text.contains(
            "penalty_http_request_duration_seconds_bucket{method=\"GET\",route=\"/shops\",le=\"+Inf\"} 3"
        ));
        assert!(text.contains(
            "penalty_http_requests_total{method=\"GET\",route=\"/shops\",status=\"404\"} 1"
        ));
    }
}

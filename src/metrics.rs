//! Prometheus metrics: a process-wide registry that the parts count into (ticks, runs, items,
//! 429s, waits, callbacks), rendered as text at `/metrics` when `[daemon] metrics_listen` is set.
//! Process-wide on purpose: like any Prometheus registry it describes this process.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Upper bounds of the fire-lateness histogram, in seconds.
const BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

struct Registry {
    counters: Mutex<BTreeMap<(&'static str, String), f64>>,
    lateness: Mutex<([u64; BUCKETS.len()], u64, f64)>,
    in_flight: AtomicI64,
}

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Registry {
        counters: Mutex::default(),
        lateness: Mutex::new(([0; BUCKETS.len()], 0, 0.0)),
        in_flight: AtomicI64::new(0),
    })
}

/// The help line of each counter.
const HELP: &[(&str, &str)] = &[
    (
        "watchbell_ticks_total",
        "Nominal ticks, by outcome (fired or skipped) and skip reason.",
    ),
    (
        "watchbell_runs_total",
        "Runs that reached a final status, by job and status.",
    ),
    (
        "watchbell_items_stored_total",
        "Result items stored, by job.",
    ),
    (
        "watchbell_rate_limited_total",
        "HTTP 429 answers received from the API.",
    ),
    (
        "watchbell_rate_limit_wait_seconds_total",
        "Seconds spent waiting because of 429 answers.",
    ),
    (
        "watchbell_callback_deliveries_total",
        "Webhook delivery attempts, by outcome.",
    ),
];

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Adds `by` to the counter `name` with `labels`.
pub fn count(name: &'static str, labels: &[(&str, &str)], by: f64) {
    let labels = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect::<Vec<_>>()
        .join(",");
    if let Ok(mut c) = registry().counters.lock() {
        *c.entry((name, labels)).or_default() += by;
    }
}

/// Records how late a tick fired.
pub fn observe_lateness(seconds: f64) {
    if let Ok(mut h) = registry().lateness.lock() {
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.0[i] += 1;
            }
        }
        h.1 += 1;
        h.2 += seconds.max(0.0);
    }
}

/// Sets the number of runs in flight.
pub fn set_in_flight(n: usize) {
    registry().in_flight.store(n as i64, Ordering::Relaxed);
}

/// The Prometheus text exposition of everything counted so far.
pub fn render() -> String {
    let r = registry();
    let mut out = String::new();
    let counters = r.counters.lock().map(|c| c.clone()).unwrap_or_default();
    for (name, help) in HELP {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for ((n, labels), v) in &counters {
            if n == name {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
        }
    }
    let (buckets, n, sum) = r
        .lateness
        .lock()
        .map_or(([0; BUCKETS.len()], 0, 0.0), |h| *h);
    let name = "watchbell_fire_lateness_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} How long after its instant each tick fired.\n# TYPE {name} histogram"
    );
    for (b, c) in BUCKETS.iter().zip(buckets) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {c}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {n}\n{name}_sum {sum}\n{name}_count {n}"
    );
    let name = "watchbell_runs_in_flight";
    let _ = writeln!(
        out,
        "# HELP {name} Runs queued or running.\n# TYPE {name} gauge\n{name} {}",
        r.in_flight.load(Ordering::Relaxed)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_the_histogram_render_as_prometheus_text() {
        count(
            "watchbell_runs_total",
            &[("job", "unit-a"), ("status", "SUCCEEDED")],
            1.0,
        );
        count(
            "watchbell_runs_total",
            &[("job", "unit-a"), ("status", "SUCCEEDED")],
            1.0,
        );
        observe_lateness(0.003);
        let text = render();
        assert!(
            text.contains("watchbell_runs_total{job=\"unit-a\",status=\"SUCCEEDED\"} 2"),
            "{text}"
        );
        assert!(text.contains("# TYPE watchbell_fire_lateness_seconds histogram"));
        assert!(text.contains("watchbell_fire_lateness_seconds_bucket{le=\"0.005\"}"));
    }
}

//! Prometheus metrics: a registry the parts count into (ticks, runs, items, 429s, waits,
//! deliveries, lanes), rendered as text at `/metrics` when `[daemon] metrics_listen` is set.
//! Each client owns one (the daemon's is the daemon's), so two daemons or tests in one process
//! never count into each other's; per-job gauges come from the database at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The label that names a job. Not `job`: Prometheus attaches `job` (the scrape target) and
/// `instance` itself and renames a scraped label of the same name to `exported_job`, which
/// folded every job into one series.
pub const JOB_LABEL: &str = "job_name";

/// Upper bounds of the fire-lateness histogram, in seconds.
const BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// One registry: counters, the fire-lateness histogram, runs in flight.
#[derive(Debug)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String), f64>>,
    lateness: Mutex<([u64; BUCKETS.len()], u64, f64)>,
    in_flight: AtomicI64,
    /// A cluster node's role: 1 leading, 0 standing by, -1 not in a cluster (not shown).
    leader: AtomicI64,
    /// Terms this node began after another node's, counted by the lead loop.
    failovers: Arc<AtomicU64>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics {
            counters: Mutex::default(),
            lateness: Mutex::new(([0; BUCKETS.len()], 0, 0.0)),
            in_flight: AtomicI64::new(0),
            leader: AtomicI64::new(-1),
            failovers: Arc::default(),
        })
    }
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
    (
        "watchbell_lane_waits_total",
        "Requests that waited for their identity lane (a request in flight, or the gap).",
    ),
    (
        "watchbell_lane_wait_seconds_total",
        "Seconds requests spent waiting for their identity lanes.",
    ),
    (
        "watchbell_lane_cap_blocks_total",
        "Requests refused by an identity lane's daily cap.",
    ),
    (
        "watchbell_callbacks_received_total",
        "Callbacks accepted by the receiver, by outcome (stored, or repeat: stored before).",
    ),
    (
        "watchbell_callbacks_refused_total",
        "Callbacks the receiver refused unstored, by reason.",
    ),
];

/// The per-job gauges `/metrics` reads from the database at scrape time, with their help.
pub const JOB_GAUGES: [(&str, &str); 4] = [
    (
        "watchbell_job_last_success_timestamp_seconds",
        "When the job's last SUCCEEDED run finished.",
    ),
    (
        "watchbell_job_last_finish_timestamp_seconds",
        "When the job's last run finished, whatever its status.",
    ),
    (
        "watchbell_job_consecutive_failures",
        "FAILED or INVALID runs of the job since its last SUCCEEDED one.",
    ),
    (
        "watchbell_job_next_tick_timestamp_seconds",
        "The job's next nominal tick (enabled local jobs).",
    ),
];

/// The account's gauges, from the credits last read (`GET /workspaces`), with their help.
pub const ACCOUNT_GAUGES: [(&str, &str); 2] = [
    (
        "watchbell_credits_left",
        "Credits left on the account, as last read from the API.",
    ),
    (
        "watchbell_credits_max",
        "Credits of the account's billing period, as last read from the API.",
    ),
];

/// A cluster node's series (`[store]` on `PostgreSQL`), with their help.
pub const CLUSTER: [(&str, &str); 2] = [
    (
        "watchbell_leader",
        "1 while this node leads its cluster, 0 while it stands by.",
    ),
    (
        "watchbell_failovers_total",
        "Times this node took the lead after another node's term (or its own, restarted).",
    ),
];

/// Every series name `/metrics` can show (for dashboards and their check).
pub fn exported() -> Vec<String> {
    let mut names: Vec<String> = HELP.iter().map(|(n, _)| (*n).to_string()).collect();
    for suffix in ["_bucket", "_sum", "_count"] {
        names.push(format!("watchbell_fire_lateness_seconds{suffix}"));
    }
    names.push("watchbell_runs_in_flight".into());
    names.extend(JOB_GAUGES.iter().map(|(n, _)| (*n).to_string()));
    names.extend(ACCOUNT_GAUGES.iter().map(|(n, _)| (*n).to_string()));
    names.extend(CLUSTER.iter().map(|(n, _)| (*n).to_string()));
    names
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Adds `by` to the counter `name` with `labels`.
    pub fn count(&self, name: &'static str, labels: &[(&str, &str)], by: f64) {
        let labels = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect::<Vec<_>>()
            .join(",");
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((name, labels)).or_default() += by;
        }
    }

    /// Counts a run that reached its final status.
    pub fn run_finished(&self, job: &str, status: &str) {
        self.count(
            "watchbell_runs_total",
            &[(JOB_LABEL, job), ("status", status)],
            1.0,
        );
    }

    /// Counts result items stored by a run of `job`.
    pub fn items_stored(&self, job: &str, n: u64) {
        self.count(
            "watchbell_items_stored_total",
            &[(JOB_LABEL, job)],
            n as f64,
        );
    }

    /// Records how late a tick fired.
    pub fn observe_lateness(&self, seconds: f64) {
        if let Ok(mut h) = self.lateness.lock() {
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
    pub fn set_in_flight(&self, n: usize) {
        self.in_flight.store(n as i64, Ordering::Relaxed);
    }

    /// Marks this registry's node as a cluster's leader or standby.
    pub fn set_leads(&self, leads: bool) {
        self.leader.store(i64::from(leads), Ordering::Relaxed);
    }

    /// Whether this node leads its cluster; `None` outside one.
    pub fn leads(&self) -> Option<bool> {
        match self.leader.load(Ordering::Relaxed) {
            -1 => None,
            v => Some(v == 1),
        }
    }

    /// The failover counter, for the lead loop to count into.
    pub fn failovers(&self) -> Arc<AtomicU64> {
        self.failovers.clone()
    }

    /// The Prometheus text exposition of everything counted so far.
    pub fn render(&self) -> String {
        let r = self;
        let mut out = String::new();
        let counters = r.counters.lock().map(|c| c.clone()).unwrap_or_default();
        for entry in HELP {
            let samples = counters
                .iter()
                .filter(|((n, _), _)| *n == entry.0)
                .map(|((_, labels), v)| (labels.as_str(), *v));
            family(&mut out, "counter", *entry, samples);
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
        family(
            &mut out,
            "gauge",
            ("watchbell_runs_in_flight", "Runs queued or running."),
            [("", r.in_flight.load(Ordering::Relaxed) as f64)],
        );
        if let Some(leads) = r.leads() {
            let [leader, failovers] = CLUSTER;
            family(
                &mut out,
                "gauge",
                leader,
                [("", f64::from(u8::from(leads)))],
            );
            let n = r.failovers.load(Ordering::Relaxed) as f64;
            family(&mut out, "counter", failovers, [("", n)]);
        }
        out
    }
}

/// One per-job sample's labels, for [`family`].
pub fn job_labels(job: &str) -> String {
    format!("{JOB_LABEL}=\"{}\"", escape(job))
}

/// Writes one metric family in the text exposition: its help, its type, then each sample with
/// its labels (`job_name="a",status="b"`; empty for none).
pub fn family<L: AsRef<str>>(
    out: &mut String,
    kind: &str,
    (name, help): (&str, &str),
    samples: impl IntoIterator<Item = (L, f64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, v) in samples {
        let labels = labels.as_ref();
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_the_histogram_render_as_prometheus_text() {
        let m = Metrics::new();
        m.run_finished("unit-a", "SUCCEEDED");
        m.run_finished("unit-a", "SUCCEEDED");
        m.observe_lateness(0.003);
        let text = m.render();
        assert!(
            !Metrics::new().render().contains("unit-a"),
            "registries are apart"
        );
        for name in HELP.iter().map(|(n, _)| *n) {
            assert!(text.contains(&format!("# TYPE {name} counter")), "{name}");
        }
        assert!(
            text.contains("watchbell_runs_total{job_name=\"unit-a\",status=\"SUCCEEDED\"} 2"),
            "{text}"
        );
        assert!(text.contains("# TYPE watchbell_fire_lateness_seconds histogram"));
        assert!(text.contains("watchbell_fire_lateness_seconds_bucket{le=\"0.005\"}"));
    }

    #[test]
    fn a_cluster_node_shows_its_role_and_failovers_and_others_show_neither() {
        let m = Metrics::new();
        assert_eq!(m.leads(), None);
        assert!(!m.render().contains("watchbell_leader"));
        m.set_leads(false);
        assert!(m.render().contains("\nwatchbell_leader 0\n"));
        m.failovers().fetch_add(1, Ordering::Relaxed);
        m.set_leads(true);
        let text = m.render();
        assert!(text.contains("\nwatchbell_leader 1\n"), "{text}");
        assert!(
            text.contains(
                "# TYPE watchbell_failovers_total counter\nwatchbell_failovers_total 1\n"
            ),
            "{text}"
        );
        assert_eq!(m.leads(), Some(true));
    }

    /// The label names of every sample in an exposition.
    fn label_names(text: &str) -> Vec<String> {
        let mut names = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((_, rest)) = line.split_once('{') else {
                continue;
            };
            let labels = &rest[..rest.rfind('}').unwrap()];
            // Values are quoted and may hold commas; names are what precedes `="`.
            for part in labels.split("\",") {
                names.push(part.split_once('=').unwrap().0.to_string());
            }
        }
        names
    }

    /// Prometheus attaches `job` and `instance` itself and renames scraped labels of those names:
    /// no family may carry them, and each per-job family carries `job_name`.
    #[test]
    fn no_family_carries_a_label_prometheus_reserves() {
        let m = Metrics::new();
        m.run_finished("a", "FAILED");
        m.items_stored("a", 3);
        m.count("watchbell_ticks_total", &[("outcome", "fired")], 1.0);
        m.count(
            "watchbell_callback_deliveries_total",
            &[("outcome", "ok")],
            1.0,
        );
        m.observe_lateness(0.2);
        let mut text = m.render();
        for gauge in JOB_GAUGES {
            family(&mut text, "gauge", gauge, [(job_labels("a"), 1.0)]);
        }
        let names = label_names(&text);
        assert!(names.len() >= 10, "{names:?}");
        for reserved in ["job", "instance"] {
            assert!(!names.iter().any(|n| n == reserved), "{reserved}: {text}");
        }
        for family in ["watchbell_runs_total", "watchbell_items_stored_total"]
            .into_iter()
            .chain(JOB_GAUGES.iter().map(|(n, _)| *n))
        {
            assert!(
                text.contains(&format!("{family}{{job_name=\"a\"")),
                "{family}: {text}"
            );
        }
        assert_eq!(label_names("x{a=\"1,b\",job=\"2\"} 1"), ["a", "job"]);
    }

    /// The Grafana dashboard under contrib/ queries only series the daemon exports.
    #[test]
    fn the_dashboard_queries_only_exported_metrics() {
        let dashboard = include_str!("../contrib/grafana/watchbell.json");
        let v: serde_json::Value = serde_json::from_str(dashboard).unwrap();
        let exported = exported();
        let mut queried = 0;
        for panel in v["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                let legend = target["legendFormat"].as_str().unwrap_or("");
                // Per job means by `job_name`: Prometheus's own `job` is the scrape target.
                let by_job = ["(job,", "(job)", " job,", " job)"]
                    .iter()
                    .any(|b| expr.contains(b));
                assert!(!legend.contains("{{job}}") && !by_job, "{expr} {legend}");
                for (i, _) in expr.match_indices("watchbell_") {
                    let name: String = expr[i..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    assert!(
                        exported.contains(&name),
                        "the dashboard queries {name}, which /metrics does not export"
                    );
                    queried += 1;
                }
            }
        }
        assert!(queried >= 10, "{queried}");
    }
}

//! What a node shows about itself over HTTP (`[daemon] metrics_listen`): Prometheus text at
//! `/metrics` (the registry, per-job gauges and the account's credits read from the database at
//! scrape time) and `/healthz`, which names the node's role. A cluster's standby serves them
//! too, before it leads: its health is the database's, as it has no schedule of its own.

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Config;
use crate::scheduler::Heartbeat;
/// Serves Prometheus text at `/metrics` and `/healthz`, until `stop`. The health fails when the
/// database refuses writes (busy, full) or, on a node that schedules (`heartbeat`), when the
/// scheduler loop has not made a pass for five seconds; a standby (`None`) is healthy while its
/// database is. Its body names the role: `ok`, or `ok: leader` / `ok: standby` in a cluster.
pub fn serve(
    listener: tokio::net::TcpListener,
    heartbeat: Option<Heartbeat>,
    (store, config, registry): (
        crate::store::Store,
        tokio::sync::watch::Receiver<std::sync::Arc<Config>>,
        std::sync::Arc<crate::metrics::Metrics>,
    ),
    clock: crate::clock::Clock,
    stop: CancellationToken,
) {
    use axum::http::StatusCode;
    use axum::routing::get;
    let (s, c, k, r) = (store.clone(), config, clock.clone(), registry.clone());
    let metrics = move || {
        let (store, config, clock, registry) =
            (s.clone(), c.borrow().clone(), k.clone(), r.clone());
        async move {
            let mut text = registry.render();
            text.push_str(&job_gauges(&store, &config, clock.now()).await);
            text.push_str(&account_gauges(&store).await);
            text
        }
    };
    let health = move || {
        let (heartbeat, clock, store) = (heartbeat.clone(), clock.clone(), store.clone());
        let role = match registry.leads() {
            None => "ok\n",
            Some(true) => "ok: leader\n",
            Some(false) => "ok: standby\n",
        };
        async move {
            if let Some((what, since)) = store.health().fault() {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "database unavailable: {what} (for {}s); writes are retried\n",
                        (clock.now() - since).num_seconds()
                    ),
                );
            }
            match heartbeat.map(|h| h.alive(clock.now())) {
                None | Some(Ok(())) => (StatusCode::OK, role.to_string()),
                Some(Err(Some(secs))) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("scheduler stalled: last pass {secs}s ago\n"),
                ),
                Some(Err(None)) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "scheduler not started\n".to_string(),
                ),
            }
        }
    };
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(health));
    if let Ok(addr) = listener.local_addr() {
        info!(addr = %addr, "metrics listening");
    }
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
}

/// The account's credits as last read, when they have been.
async fn account_gauges(store: &crate::store::Store) -> String {
    let Ok(Some(a)) = store.account().await else {
        return String::new();
    };
    let [left, max] = crate::metrics::ACCOUNT_GAUGES;
    let mut out = String::new();
    crate::metrics::family(&mut out, "gauge", left, [("", a.credits_left as f64)]);
    crate::metrics::family(&mut out, "gauge", max, [("", a.credits_max as f64)]);
    out
}

/// Per-job gauges read from the database at scrape time, for every job in the file: they
/// survive restarts and count runs made by `trigger` too.
async fn job_gauges(
    store: &crate::store::Store,
    config: &Config,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let names: Vec<String> = config.jobs.iter().map(|j| j.name.clone()).collect();
    let Ok(health) = store.job_health(names).await else {
        return String::new();
    };
    let mut out = String::new();
    let mut family = |entry: (&str, &str), rows: Vec<(String, f64)>| {
        let samples = rows
            .into_iter()
            .map(|(job, v)| (crate::metrics::job_labels(&job), v));
        crate::metrics::family(&mut out, "gauge", entry, samples);
    };
    let secs =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.timestamp_millis() as f64 / 1000.0);
    family(
        crate::metrics::JOB_GAUGES[0],
        health
            .iter()
            .filter_map(|(j, h)| Some((j.clone(), secs(h.last_success)?)))
            .collect(),
    );
    family(
        crate::metrics::JOB_GAUGES[1],
        health
            .iter()
            .filter_map(|(j, h)| Some((j.clone(), secs(h.last_finish)?)))
            .collect(),
    );
    family(
        crate::metrics::JOB_GAUGES[2],
        health
            .iter()
            .map(|(j, h)| (j.clone(), h.consecutive_failures as f64))
            .collect(),
    );
    family(
        crate::metrics::JOB_GAUGES[3],
        config
            .jobs
            .iter()
            .filter(|j| j.enabled && j.runner != crate::config::Runner::Remote)
            .filter_map(|j| {
                Some((
                    j.name.clone(),
                    secs(j.schedule.as_ref()?.next_after(now).map(|f| f.at))?,
                ))
            })
            .collect(),
    );
    out
}

//! `watchbell run [--sandbox]`: the daemon in the foreground, with signals wired to it.

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::cluster::Cluster;
use super::{Cli, Failure, Outcome, database_path};
use crate::api::{ApiKey, Client, Pacer, key};
use crate::clock::Clock;
use crate::config::Config;
use crate::daemon::Daemon;
use crate::runner::Runner;
use crate::sandbox::{Options, Sandbox};
use crate::scheduler::Heartbeat;
use crate::store::{Store, files};

/// How long one database write keeps retrying a busy or full database before the daemon's own
/// retry (the tick batch, the run's page) takes over; short, so signals and the watchdog are
/// never kept waiting long.
const DAEMON_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

pub fn run(cli: &Cli, with_sandbox: bool) -> Outcome {
    let mut config = Config::load(&cli.config)?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    super::check_secrets(&config)?;
    // What the cluster compares between nodes: the file as written, before the sandbox.
    let hash = config
        .store
        .as_ref()
        .map(|_| config.cluster_hash(cli.config.parent().unwrap_or(std::path::Path::new("."))));
    // SQLite: the file, its owner and the lock that keeps a second daemon off it. PostgreSQL:
    // the cluster's lead, taken inside the runtime (the file is where a state left behind is).
    let db = database_path(cli, Some(&config));
    let _lock = match &config.store {
        None => {
            if let Some(why) = files::foreign_owner(&db) {
                return Err(Failure::usage(why));
            }
            // Held until the process ends: a second daemon on this database exits 2 at once.
            Some(files::daemon_lock(&db).map_err(Failure::usage)?)
        }
        Some(_) => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::runtime)?;
    rt.block_on(async {
        // Before anything waits (a standby waits to lead): SIGHUP's default would end the
        // process. Reloads asked meanwhile are applied once the daemon runs.
        let (reload_tx, reloads) = mpsc::channel(4);
        let mut hup = signal(SignalKind::hangup()).map_err(Failure::runtime)?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                info!("SIGHUP: reloading the job file");
                if reload_tx.send(()).await.is_err() {
                    break;
                }
            }
        });
        let (key, sandbox) = api_key(&mut config, with_sandbox).await?;
        // Bound before the lead is waited for: a standby serves them too.
        let listeners = Listeners {
            receiver: bind_receiver(&mut config).await?,
            metrics: bind_metrics(&config).await?,
        };
        let pacer = Arc::new(Pacer::new(config.api.per_second()));
        let mut client = Client::for_config(&config.api, key, Some(pacer), Clock::System)
            .map_err(Failure::runtime)?
            .with_v1(config.v1_base());
        let (store, cluster) = match &config.store {
            None => (Store::open_with(&db, DAEMON_PATIENCE)?, None),
            Some(source) => {
                let standby = (&config, &client, &listeners);
                let Some((c, epoch)) = lead(hash.clone(), source, &db, standby).await? else {
                    return Ok(()); // stopped while a standby
                };
                (c.store.clone(), Some((c, epoch)))
            }
        };
        if let Some((c, epoch)) = &cluster {
            client = client.with_lease(c.lease());
            c.exit_when_lost(*epoch);
        }
        let runner = Runner {
            store,
            client,
            clock: Clock::System,
            safety: config.safety.clone(),
            receiver: config.receiver.clone(),
        };
        let handover = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let daemon = Daemon {
            metrics: listeners.metrics,
            receiver: listeners.receiver,
            credits_every: crate::daemon::credits::EVERY,
            handover: handover.clone(),
            missed: if cluster.as_ref().is_some_and(|(_, epoch)| *epoch > 1) {
                crate::store::SkipReason::Failover
            } else {
                crate::store::SkipReason::DaemonDown
            },
            config,
            config_path: cli.config.clone(),
            runner,
            reloads,
            heartbeat: Heartbeat::default(),
        };
        let shutdown = stopping(cluster.as_ref().map(|(c, _)| c), &handover)?;
        Box::pin(daemon.run(shutdown)).await?;
        if let Some((c, _)) = cluster {
            c.stop().await;
        }
        if let Some(sb) = sandbox {
            sb.stop().await;
        }
        Ok(())
    })
}

/// The API key, or with `--sandbox` the simulator's (started here, the job file pointed at it).
async fn api_key(
    config: &mut Config,
    with_sandbox: bool,
) -> Result<(ApiKey, Option<Sandbox>), Failure> {
    if with_sandbox {
        // The simulator stands in for the remote API: it serves from the run threads,
        // below the tick path (`daemon::workers`).
        let sb = crate::daemon::workers::handle()
            .spawn(Sandbox::start(Options {
                // Each search finds something new, so chained jobs have work.
                new_per_run: 2,
                fire_schedules: true,
                ..sandbox_options(config)
            }))
            .await
            .map_err(Failure::runtime)?
            .map_err(|e| Failure::runtime(format!("cannot start the sandbox: {e}")))?;
        info!(url = %sb.base_url(), "sandbox listening; the daemon talks to it instead of the API");
        for dropped in config.use_sandbox(sb.base_url(), sb.v1_url()) {
            warn!("{dropped}");
        }
        Ok((ApiKey::new(sb.api_key()), Some(sb)))
    } else {
        let k = key::resolve(&config.api.key).map_err(|e| Failure::usage(e.to_string()))?;
        Ok((k, None))
    }
}

/// `[receiver]`'s listener, bound, its public URL filled in when the file left it out.
async fn bind_receiver(config: &mut Config) -> Result<Option<tokio::net::TcpListener>, Failure> {
    match &mut config.receiver {
        Some(r) => {
            let l = tokio::net::TcpListener::bind(r.listen)
                .await
                .map_err(|e| Failure::runtime(format!("[receiver] listen {}: {e}", r.listen)))?;
            let addr = l.local_addr().map_err(Failure::runtime)?;
            if r.public_url.is_none() {
                r.public_url = reqwest::Url::parse(&format!("http://{addr}")).ok();
            }
            info!(listen = %addr, public_url = %r.callback_url("r", ""), "receiver listening");
            Ok(Some(l))
        }
        None => Ok(None),
    }
}

/// The simulator of `run --sandbox` and `trigger --sandbox`: paced like the plan's API.
pub(super) fn sandbox_options(config: &Config) -> Options {
    Options {
        rate_limit: Some(config.api.plan.limits().0.into()),
        ..Options::default()
    }
}

/// The daemon's listeners, bound at start.
struct Listeners {
    receiver: Option<tokio::net::TcpListener>,
    metrics: Option<tokio::net::TcpListener>,
}

/// `[daemon] metrics_listen`'s listener, bound.
async fn bind_metrics(config: &Config) -> Result<Option<tokio::net::TcpListener>, Failure> {
    match config.daemon.metrics_listen {
        Some(addr) => tokio::net::TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|e| Failure::runtime(format!("metrics_listen {addr}: {e}"))),
        None => Ok(None),
    }
}

/// Another handle on `l`'s socket: serving from it while the original waits loses no
/// connection when one hands over to the other.
fn same_socket(l: &tokio::net::TcpListener) -> Result<tokio::net::TcpListener, Failure> {
    let fd = rustix::io::dup(l).map_err(Failure::runtime)?;
    tokio::net::TcpListener::from_std(std::net::TcpListener::from(fd)).map_err(Failure::runtime)
}

/// Joins the cluster and waits to lead, serving the receiver, `/metrics` and `/healthz`
/// meanwhile: `None` when stopped first.
async fn lead(
    hash: Option<String>,
    source: &crate::store::pg::UrlSource,
    sqlite: &std::path::Path,
    (config, client, listeners): (&Config, &Client, &Listeners),
) -> Result<Option<(Cluster, i64)>, Failure> {
    let metrics = client.metrics().clone();
    let mut c = Cluster::open(
        hash.unwrap_or_default(),
        source,
        sqlite,
        DAEMON_PATIENCE,
        metrics.clone(),
    )
    .await?;
    let standby = tokio_util::sync::CancellationToken::new();
    // A standby sends no API request: its client's lease never holds.
    let never = crate::api::LeaseCheck(Arc::new(|| false));
    let runner = Arc::new(Runner {
        store: c.store.clone(),
        client: client.clone().with_lease(never),
        clock: Clock::System,
        safety: config.safety.clone(),
        receiver: config.receiver.clone(),
    });
    let (_file, watched) = tokio::sync::watch::channel(Arc::new(config.clone()));
    if let Some(l) = &listeners.receiver {
        crate::receiver::callbacks(runner.clone(), same_socket(l)?, watched.clone(), &standby);
    }
    if let Some(l) = &listeners.metrics {
        let shown = (c.store.clone(), watched, metrics);
        crate::daemon::observe::serve(same_socket(l)?, None, shown, Clock::System, standby.clone());
    }
    let led = c.lead(shutdown_signal()?).await;
    standby.cancel();
    if let Some(epoch) = led {
        return Ok(Some((c, epoch)));
    }
    c.stop().await;
    Ok(None)
}

/// [`shutdown_signal`], then for a cluster's leader whether a live node will take over (the
/// runs are then stopped for it, not drained: `handover`).
fn stopping<'a>(
    cluster: Option<&'a Cluster>,
    handover: &'a std::sync::atomic::AtomicBool,
) -> Result<impl Future<Output = ()> + 'a, Failure> {
    let signal = shutdown_signal()?;
    Ok(async move {
        signal.await;
        if let Some(c) = cluster
            && c.has_live_peer().await
        {
            handover.store(true, std::sync::atomic::Ordering::Release);
        }
    })
}

/// Resolves at the first SIGTERM or SIGINT; a second one exits at once.
fn shutdown_signal() -> Result<impl Future<Output = ()>, Failure> {
    let mut term = signal(SignalKind::terminate()).map_err(Failure::runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Failure::runtime)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: draining"),
            _ = int.recv() => info!("SIGINT: draining"),
        }
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            warn!("second signal: exiting now");
            std::process::exit(1);
        });
    })
}

//! `weir run`: wires sources → engine → outbox → uplink and runs until SIGTERM or Ctrl-C,
//! reloading its rules on SIGHUP.
//!
//! Start order follows the data backwards (outbox, uplink, engine, then sources) so nothing
//! produces into a stage that is not there yet. Stop order follows it forwards: sources stop
//! and drop their senders, the engine drains what is queued and commits it, the uplink gets
//! a moment for outstanding acknowledgements, and the outbox writer commits and closes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weir_drivers::{SourceCounters, modbus, mqtt, serial, simulator};
use weir_rules::{Engine, Limits};

use crate::cli::ConfigArgs;
use crate::config::{DEFAULT_CONFIG_PATH, Loaded, SourceConfig};
use crate::outbox::{Lane, Outbox};
use crate::pipeline::{Pipeline, PipelineCounters};
use crate::reload::{Outcome, Reloader};
use crate::runtime_store::RuntimeStore;
use crate::signals::{Signal, Signals};
use crate::uplink::{self, UplinkConfig};

/// Reads the config named on the command line, else the installed one, else the demo.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Loaded> {
    let loaded = match path {
        Some(path) => Loaded::from_path(path)?,
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
            Loaded::from_path(Path::new(DEFAULT_CONFIG_PATH))?
        }
        None => Loaded::builtin_demo()?,
    };
    Ok(loaded)
}

pub fn main(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let loaded = load_config(args.config.as_deref())?;
    crate::logging::init(&loaded.config.log.level);
    if args.config.is_none() {
        tracing::info!(config = %loaded.origin.name(), "no --config given");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(loaded, args.config))?;
    Ok(ExitCode::SUCCESS)
}

async fn run(loaded: Loaded, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let rules = {
        let outcome = crate::rules::load(&loaded);
        for rejected in &outcome.rejected {
            tracing::error!(file = %rejected.file, "rule file rejected; the other rules keep running");
            for problem in &rejected.problems {
                tracing::error!("  {problem}");
            }
        }
        tracing::info!(
            rules = outcome.rules.len(),
            files = outcome.files_loaded,
            "rules loaded"
        );
        outcome.rules
    };
    let settings = crate::reload::settings_of(&loaded.config);
    // Validated with the config: an error here cannot happen, and would only mean no labels.
    let device_labels = loaded.config.device_labels().unwrap_or_default();
    let config = loaded.config;
    let gateway_id = config.gateway_id.as_str().to_owned();

    // Opening runs an integrity check and may quarantine a bad file: blocking work.
    let outbox_config = config.outbox.clone();
    let (outbox, outbox_thread) = tokio::task::spawn_blocking(move || Outbox::open(&outbox_config))
        .await
        .context("the outbox opener panicked")?
        .with_context(|| format!("cannot open the outbox {}", config.outbox.path.display()))?;
    tracing::info!(path = %config.outbox.path.display(), "outbox open");

    let shutdown = CancellationToken::new();
    let topic_prefix = config.uplink.as_ref().map_or_else(
        || UplinkConfig::default().topic_prefix,
        |u| u.topic_prefix.clone(),
    );
    let uplink_counters = config
        .uplink
        .as_ref()
        .map(|_| Arc::new(uplink::UplinkCounters::default()));
    let uplink_task: Option<JoinHandle<()>> = config.uplink.map(|cfg| {
        let outbox = outbox.clone();
        let counters = uplink_counters.clone().unwrap_or_default();
        let gateway_id = gateway_id.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = uplink::run(cfg, gateway_id, outbox, counters, shutdown).await {
                tracing::error!("uplink stopped: {e}");
            }
        })
    });
    if uplink_task.is_none() {
        tracing::warn!("no uplink configured: events are kept in the outbox only");
    }

    let (tx, rx) = mpsc::channel(config.engine.channel.get());
    let pipeline_counters = Arc::new(PipelineCounters::default());
    let mut engine = Engine::with_limits(
        rules,
        Limits {
            max_series: config.engine.max_series.get(),
            max_state_bytes: config.engine.max_state_bytes,
        },
    );
    engine.set_labels(device_labels);
    let runtime = RuntimeStore::beside(&config.outbox.path);
    let saved = runtime.load();
    if !saved.is_empty() {
        let restored = engine.restore_runtime(&saved);
        tracing::info!(path = %runtime.path().display(), restored, saved = saved.len(), "run-time counters restored");
    }
    let actions = match &config.actions {
        Some(cfg) => crate::actions::start(cfg, &gateway_id, shutdown.clone()),
        None => crate::actions::Actions::disabled(),
    };
    let pipeline = Pipeline {
        engine,
        runtime,
        actions,
        outbox: outbox.clone(),
        topics: crate::pipeline::lane_topics(&topic_prefix, &gateway_id),
        idle_close: config.engine.idle_close,
        clock_guard: config.engine.clock_guard.clone(),
        counters: pipeline_counters.clone(),
    };
    let (reload_tx, reload_rx) = mpsc::channel(1);
    let pipeline_task = tokio::spawn(pipeline.run(rx, reload_rx));

    let mut sources = Vec::new();
    for source in config.sources.into_iter().map(|s| s.value) {
        let counters = Arc::new(SourceCounters::default());
        let name = source.name().to_owned();
        let tx = tx.clone();
        let shutdown = shutdown.clone();
        let task = tokio::spawn({
            let counters = counters.clone();
            let name = name.clone();
            async move {
                let result = match source {
                    SourceConfig::Simulator(cfg) => {
                        simulator::run(cfg, tx, counters, shutdown).await
                    }
                    SourceConfig::Mqtt(cfg) => mqtt::run(cfg, tx, counters, shutdown).await,
                    SourceConfig::Serial(cfg) => serial::run(cfg, tx, counters, shutdown).await,
                    SourceConfig::Modbus(cfg) => modbus::run(cfg, tx, counters, shutdown).await,
                };
                if let Err(e) = result {
                    tracing::error!(source = %name, "source stopped: {e}");
                }
            }
        });
        sources.push((name, counters, task));
    }
    // Only the sources hold senders now, so the engine's input closes when they stop.
    drop(tx);
    let source_counters: Vec<(String, Arc<SourceCounters>)> = sources
        .iter()
        .map(|(n, c, _)| (n.clone(), c.clone()))
        .collect();
    // Listening before READY: see `metrics::bind`.
    let listener = match config.metrics.listen {
        Some(addr) => crate::metrics::bind(addr).await,
        None => None,
    };
    let metrics_task = listener.map(|listener| {
        tokio::spawn(crate::metrics::serve(
            listener,
            crate::metrics::Sources {
                outbox: outbox.clone(),
                pipeline: pipeline_counters.clone(),
                sources: source_counters.clone(),
                uplink: uplink_counters.clone(),
            },
            shutdown.clone(),
        ))
    });
    tracing::info!(gateway = %gateway_id, sources = sources.len(), "pipeline ready");
    crate::notify::ready(&format!("running: {} sources", sources.len()));
    let watchdog = tokio::spawn(crate::notify::watchdog(
        pipeline_counters.turns.clone(),
        outbox.clone(),
        shutdown.clone(),
    ));

    let status = tokio::spawn(status_loop(
        outbox.clone(),
        pipeline_counters.clone(),
        source_counters,
        config.log.status_interval,
    ));

    let reloader = Reloader {
        config_path,
        settings,
        engine: reload_tx,
    };
    let mut signals = Signals::install();
    while signals.next().await == Signal::Reload {
        crate::notify::reloading();
        let status = match reloader.reload().await {
            Outcome::Applied(r) => format!(
                "running: {} sources; rules reloaded: {} kept, {} restarted, {} added, {} removed",
                sources.len(),
                r.kept.len(),
                r.restarted.len(),
                r.added.len(),
                r.removed.len()
            ),
            Outcome::Rejected => format!(
                "running: {} sources; reload rejected, the old rules keep running (see the log)",
                sources.len()
            ),
        };
        crate::notify::ready(&status);
    }
    drop(reloader);
    tracing::info!("stopping: draining sources into the outbox");
    crate::notify::stopping();
    shutdown.cancel();
    watchdog.abort();
    for (name, _, task) in sources {
        if tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .is_err()
        {
            tracing::warn!(source = %name, "source did not stop within 5 s");
        }
    }
    status.abort();
    if let Some(task) = metrics_task {
        task.abort();
    }
    let pipeline_result = pipeline_task.await.context("the engine task panicked")?;
    if let Some(task) = uplink_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    drop(outbox);
    tokio::task::spawn_blocking(move || outbox_thread.join())
        .await
        .context("the outbox thread panicked")?
        .context("the outbox did not close cleanly")?;
    pipeline_result.context("the engine could not commit to the outbox")?;
    tracing::info!("stopped");
    Ok(())
}

/// One line every `log.status_interval`: what an operator checks first.
async fn status_loop(
    outbox: Outbox,
    pipeline: Arc<PipelineCounters>,
    sources: Vec<(String, Arc<SourceCounters>)>,
    every: Duration,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let committed = outbox.counters();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let received: u64 = sources.iter().map(|(_, c)| c.readings.load(Relaxed)).sum();
        let sum = |f: fn(&SourceCounters) -> &std::sync::atomic::AtomicU64| -> u64 {
            sources.iter().map(|(_, c)| f(c).load(Relaxed)).sum()
        };
        let bad = sum(|c| &c.decode_errors);
        // Device health: a port or slave that is gone, a slave that does not answer in time
        // or answers with an exception.
        let transport_errors = sum(|c| &c.transport_errors);
        let timeouts = sum(|c| &c.timeouts);
        let exceptions = sum(|c| &c.exceptions);
        match outbox.stats().await {
            Ok(stats) => {
                tracing::info!(
                    pending = stats.count,
                    bytes = stats.bytes,
                    alerts = stats.lanes[Lane::Alerts as usize].count,
                    committed = committed.appended.load(Relaxed),
                    evicted = stats.evicted,
                    samples = received,
                    bad_payloads = bad,
                    transport_errors,
                    timeouts,
                    exceptions,
                    events = pipeline.events.load(Relaxed),
                    "outbox"
                );
                let stalled = crate::metrics::stalled_sources(&sources);
                let stalled = if stalled.is_empty() {
                    String::new()
                } else {
                    format!("; STALLED source(s): {}", stalled.join(", "))
                };
                crate::notify::status(&format!(
                    "{received} samples, {} events, {} pending in the outbox{stalled}",
                    pipeline.events.load(Relaxed),
                    stats.count
                ));
            }
            Err(e) => tracing::error!("outbox stats unavailable: {e}"),
        }
    }
}

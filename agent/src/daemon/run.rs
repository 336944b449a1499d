//! `weir run`: wires sources → engine → outbox → uplink and runs until SIGTERM or Ctrl-C,
//! reloading on SIGHUP (rules, labels and changed sources; see [`crate::daemon::reload`]).
//!
//! Start order follows the data backwards (outbox, uplink, engine, then sources) so nothing
//! produces into a stage that is not there yet. Stop order follows it forwards: sources stop
//! and drop their senders, the engine drains what is queued and commits it, the uplink gets
//! a moment for outstanding acknowledgements, and the outbox writer commits and closes.
//!
//! Every long-lived task is supervised (see [`supervise`]): a source, the uplink or the
//! metrics endpoint that ends is logged and restarted with backoff; if the pipeline or the
//! outbox writer ends, the agent stops in order and exits 1 for systemd to restart it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weir_drivers::SourceCounters;
use weir_rules::{Engine, Limits};

use crate::config::Loaded;
use crate::daemon::pipeline::{Pipeline, PipelineCounters};
use crate::daemon::reload::{Outcome, Reloader};
use crate::daemon::signals::{Signal, Signals};
use crate::daemon::sources::Running as Sources;
use crate::daemon::supervise;
use crate::outbox::{Lane, Outbox};
use crate::support::fault;
use crate::uplink::{self, UplinkConfig};

/// `weir run` with the config at `config` (default: the installed one, else the demo).
pub fn main(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut loaded = crate::config::load(config.as_deref())?;
    crate::daemon::logging::init(&loaded.config.log.level);
    // A version left on trial by a stop or crash is rolled back before anything else loads;
    // its config may have been the one just read.
    if let Some(fleet) = &loaded.config.fleet
        && crate::daemon::fleet::recover(fleet)
    {
        loaded = crate::config::load(config.as_deref())?;
    }
    if config.is_none() {
        tracing::info!(config = %loaded.origin.name(), "no --config given");
    }
    // Before the runtime starts its threads (each keeps the arena it was given).
    crate::daemon::allocator::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(loaded, config))?;
    Ok(ExitCode::SUCCESS)
}

async fn run(loaded: Loaded, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let (rules, page_rule_files) = {
        let outcome = crate::config::rule_files::load(&loaded);
        let page_rule_files = crate::daemon::page::RuleFiles::of(&loaded, &outcome);
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
        (outcome.rules, page_rule_files)
    };
    // Parsed again rather than cloned (the config types are not `Clone`); it parsed above.
    let started = crate::config::Loaded::from_str(&loaded.text, loaded.origin.clone())
        .context("the config no longer parses")?
        .config;
    let applied = crate::config::Loaded::from_str(&loaded.text, loaded.origin.clone())
        .context("the config no longer parses")?
        .config;
    let loaded_text = loaded.text.clone();
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
    // What `weir check --diff` compares with (beside the outbox, whose directory now exists).
    // Without it only `--diff` suffers.
    match crate::config::running::save(&config.outbox.path, &loaded_text) {
        Ok(path) => tracing::debug!(path = %path.display(), "running config recorded"),
        Err(e) => tracing::warn!("cannot record the running config for `weir check --diff`: {e}"),
    }
    // Joined from the start, so that the writer's end is noticed whenever it comes.
    let mut writer_task = tokio::task::spawn_blocking(move || outbox_thread.join());

    let shutdown = CancellationToken::new();
    let topic_prefix = config.uplink.as_ref().map_or_else(
        || UplinkConfig::default().topic_prefix,
        |u| u.topic_prefix.clone(),
    );
    let uplink_counters = config
        .uplink
        .as_ref()
        .map(|_| Arc::new(uplink::UplinkCounters::default()));
    let pipeline_counters = Arc::new(PipelineCounters::default());
    let (reload_tx, reload_rx) = mpsc::channel(1);
    let (tx, rx) = mpsc::channel(config.engine.channel.get());
    // Started last (below), after the engine; the reloader needs the handle now.
    let sources = Arc::new(Sources::new(tx, shutdown.clone()));
    // For the agent's life: a reload may turn it on or off (module `page`).
    let page = crate::daemon::page::Page::new(
        &config.metrics.page,
        config.metrics.listen.is_some(),
        &gateway_id,
        page_rule_files,
    );
    let (publisher, actions) = crate::daemon::actions::Publisher::start(
        config.actions.as_ref(),
        &gateway_id,
        shutdown.clone(),
    );
    let reloader = Arc::new(Reloader {
        actions: tokio::sync::Mutex::new(publisher),
        config_path: config_path.clone(),
        started,
        applied: tokio::sync::Mutex::new(applied),
        engine: reload_tx,
        sources: sources.clone(),
        uplink: std::sync::OnceLock::new(),
        on_metrics: std::sync::OnceLock::new(),
        outbox: outbox.clone(),
        on_rule_files: Some({
            let page = page.clone();
            Box::new(move |loaded: &Loaded, outcome: &_| page.reloaded(loaded, outcome))
                as crate::daemon::reload::RuleFilesHook
        }),
    });
    // Bundles arrive on the uplink's connection; the fleet task applies them with reloads.
    let fleet_counters = config
        .fleet
        .as_ref()
        .map(|_| Arc::new(crate::daemon::fleet::FleetCounters::default()));
    let (fleet_control, mut fleet_task) = match config.fleet.clone() {
        Some(cfg) => {
            let health = crate::daemon::fleet::Health {
                pipeline: pipeline_counters.clone(),
            };
            let (control, task) = crate::daemon::fleet::Fleet::start(
                cfg,
                &gateway_id,
                &topic_prefix,
                reloader.clone(),
                health,
                fleet_counters.clone().unwrap_or_default(),
                shutdown.clone(),
            );
            (Some(control), Some(task))
        }
        None => (None, None),
    };
    let uplink_task = config.uplink.map(|cfg| {
        let outbox = outbox.clone();
        let counters = uplink_counters.clone().unwrap_or_default();
        let gateway_id = gateway_id.clone();
        let fleet_control = fleet_control.clone();
        let start: crate::daemon::uplink_task::Start = Box::new(move |cfg, stop| {
            let (outbox, counters, gateway_id, fleet_control) = (
                outbox.clone(),
                counters.clone(),
                gateway_id.clone(),
                fleet_control.clone(),
            );
            supervise::restarting("uplink".to_owned(), stop.clone(), move || {
                let run = uplink::run_with_control(
                    cfg.clone(),
                    gateway_id.clone(),
                    outbox.clone(),
                    counters.clone(),
                    stop.clone(),
                    fleet_control.clone(),
                );
                async move {
                    fault::inject("uplink");
                    run.await
                }
            })
        });
        crate::daemon::uplink_task::Uplink::start(cfg, shutdown.clone(), start)
    });
    if let Some(uplink) = &uplink_task {
        // Set once, here: the reloader was built before (the fleet task needs it first).
        let _ = reloader.uplink.set(uplink.clone());
    }
    if uplink_task.is_none() {
        tracing::warn!("no uplink configured: events are kept in the outbox only");
    }

    let mut engine = Engine::with_limits(
        rules,
        Limits {
            max_series: config.engine.max_series.get(),
            max_state_bytes: config.engine.max_state_bytes,
        },
    );
    engine.set_labels(device_labels);
    if !config.engine.checkpoint_interval.is_zero() {
        crate::daemon::pipeline::restore_engine(&mut engine, &outbox).await;
    }
    let old_run_hours = crate::daemon::run_hours::OldFile::beside(&config.outbox.path);
    crate::daemon::run_hours::restore(
        &mut engine,
        &outbox,
        &old_run_hours,
        !config.engine.checkpoint_interval.is_zero(),
    )
    .await;
    let pipeline = Pipeline {
        watch: Some(Arc::new(page.clone()) as Arc<dyn crate::daemon::pipeline::Watch>),
        engine,
        actions,
        outbox: outbox.clone(),
        topics: crate::daemon::pipeline::lane_topics(&topic_prefix, &gateway_id),
        idle_close: config.engine.idle_close,
        checkpoint_interval: config.engine.checkpoint_interval,
        clock_guard: config.engine.clock_guard.clone(),
        counters: pipeline_counters.clone(),
    };
    let mut pipeline_task = tokio::spawn(pipeline.run(rx, reload_rx));

    sources
        .add(config.sources.into_iter().map(|s| s.value).collect())
        .await;
    let source_counters = sources.list();
    // Listening before READY: see `endpoint::bind`. A port that is taken is retried.
    let metrics = Arc::new(
        crate::daemon::metrics_listener::Listener::start(
            config.metrics.listen,
            crate::daemon::metrics::Sources {
                outbox: outbox.clone(),
                pipeline: pipeline_counters.clone(),
                sources: source_counters.clone(),
                uplink: uplink_counters.clone(),
                fleet: fleet_counters.clone(),
            },
            page.clone(),
            shutdown.clone(),
        )
        .await,
    );
    // Set once, here: the reloader was built before (the fleet task needs it first).
    let _ = reloader.on_metrics.set({
        let (metrics, page) = (metrics.clone(), page.clone());
        Box::new(move |cfg: &crate::config::MetricsConfig| {
            page.apply(&cfg.page, cfg.listen.is_some());
            let (metrics, listen) = (metrics.clone(), cfg.listen);
            Box::pin(async move { metrics.restart(listen).await })
        })
    });
    let source_count = sources.count().await;
    tracing::info!(gateway = %gateway_id, sources = source_count, "pipeline ready");
    crate::daemon::systemd::ready(&format!("running: {source_count} sources"));
    let watchdog = tokio::spawn(crate::daemon::systemd::watchdog(
        pipeline_counters.turns.clone(),
        outbox.clone(),
        shutdown.clone(),
    ));

    let summaries = tokio::spawn(summary_loop(
        outbox.clone(),
        pipeline_counters.clone(),
        source_counters,
        config.log.status_interval,
    ));

    let mut signals = Signals::install();
    // Set when a vital task ended: the agent then stops in order and exits with it.
    let mut vital_end = None;
    let mut pipeline_ended = false;
    let mut writer_ended = false;
    loop {
        let signal = tokio::select! {
            signal = signals.next() => signal,
            ended = &mut pipeline_task => {
                pipeline_ended = true;
                vital_end = Some(supervise::vital_end("pipeline", ended));
                break;
            }
            ended = &mut writer_task => {
                writer_ended = true;
                vital_end = Some(supervise::vital_end("outbox writer", ended));
                break;
            }
            // It ends only on shutdown; before, it is a bug (a panic): stop loudly rather than
            // claim health while no bundle is taken or a version on trial is not watched.
            ended = async {
                match fleet_task.as_mut() {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            } => {
                fleet_task = None;
                let ended = ended.map(Ok::<(), std::convert::Infallible>);
                vital_end = Some(supervise::vital_end("fleet task", ended));
                break;
            }
        };
        if signal != Signal::Reload {
            break;
        }
        crate::daemon::systemd::reloading();
        let outcome = reloader.reload().await;
        let source_count = sources.count().await;
        let summary = match outcome {
            Outcome::Applied(r) => format!(
                "running: {} sources; rules reloaded: {} kept, {} restarted, {} added, {} removed",
                source_count,
                r.kept.len(),
                r.restarted.len(),
                r.added.len(),
                r.removed.len()
            ),
            Outcome::Rejected(_) => format!(
                "running: {source_count} sources; reload rejected, the old config keeps running (see the log)"
            ),
        };
        crate::daemon::systemd::ready(&summary);
    }
    if let Some(task) = fleet_task {
        // It holds a reloader (an engine sender): it must end for the engine's input to close.
        shutdown.cancel();
        let _ = task.await;
    }
    drop(reloader);
    tracing::info!("stopping: draining sources into the outbox");
    crate::daemon::systemd::stopping();
    shutdown.cancel();
    watchdog.abort();
    // The engine's input closes once every source and the set's own sender are gone.
    sources.stop_all().await;
    summaries.abort();
    // It holds an outbox handle: the writer ends once every handle is gone.
    metrics.stop().await;
    drop(metrics);
    let pipeline_result = match pipeline_ended {
        true => Ok(()),
        false => pipeline_task.await.context("the engine task panicked")?,
    };
    if let Some(uplink) = uplink_task {
        uplink.stopped(Duration::from_secs(5)).await;
    }
    drop(outbox);
    if !writer_ended {
        writer_task
            .await
            .context("the outbox thread panicked")?
            .context("the outbox did not close cleanly")?;
    }
    if let Some(e) = vital_end {
        return Err(e);
    }
    pipeline_result.context("the engine could not commit to the outbox")?;
    tracing::info!("stopped");
    Ok(())
}

/// One line every `log.status_interval`: what an operator checks first.
async fn summary_loop(
    outbox: Outbox,
    pipeline: Arc<PipelineCounters>,
    sources: crate::daemon::sources::SourceList,
    every: Duration,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let committed = outbox.counters();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let sources = sources.get();
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
                let blocked = outbox.blocked_since().map_or(String::new(), |since| {
                    format!(
                        "BLOCKED for {}s: outbox full (overflow: block), waiting for the uplink; ",
                        (weir_drivers::now_us() - since).max(0) / 1_000_000
                    )
                });
                let stalled = crate::daemon::metrics::stalled_sources(&sources);
                let stalled = if stalled.is_empty() {
                    String::new()
                } else {
                    format!("; STALLED source(s): {}", stalled.join(", "))
                };
                crate::daemon::systemd::summary(&format!(
                    "{blocked}{received} samples, {} events, {} pending in the outbox{stalled}",
                    pipeline.events.load(Relaxed),
                    stats.count
                ));
            }
            Err(e) => tracing::error!("outbox stats unavailable: {e}"),
        }
    }
}

//! Talking to systemd: readiness, a status line, reloading, stopping, and a watchdog that
//! proves progress.
//!
//! With `Type=notify` systemd considers the agent started only once it says `READY=1`, which it
//! does after the outbox, the uplink and every source are up. The watchdog is the point of this
//! module: a keep-alive sent from a timer would keep a wedged agent alive forever, so
//! `WATCHDOG=1` is sent only when the engine loop has turned since the last ping (it turns at
//! least every 250 ms while healthy) *and* the outbox writer answered a round trip in time. A
//! pipeline stuck on a dead disk or a deadlock stops the pings, and systemd restarts the agent.
//! An engine that waits for room under `overflow: block` is not stuck but held back by
//! design (the uplink is down and nothing may be dropped): the pings go on, since a restart
//! would not make room, and the state is reported instead (STATUS=, `/healthz`, metrics).
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::outbox::Outbox;

/// Sends `states`; a failure is logged, never fatal (the agent works without systemd).
fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd: {e}");
    }
}

/// Ready, with a one-line summary (systemd's `STATUS=`, shown by `systemctl status`).
pub fn ready(summary: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(summary)]);
}

/// A new one-line summary (`STATUS=`).
pub fn summary(summary: &str) {
    send(&[NotifyState::Status(summary)]);
}

/// Before a reload; [`ready`] ends it, whatever its outcome. `MONOTONIC_USEC` lets systemd
/// (`Type=notify-reload`, v253+) tell this reload from an earlier one.
pub fn reloading() {
    let mut states = vec![
        NotifyState::Reloading,
        NotifyState::Status("reloading rules"),
    ];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Runs the watchdog until `shutdown`, if systemd asked for one (`WATCHDOG_USEC`).
///
/// `progress` is the engine loop's turn counter; `outbox` is probed with a stats round trip.
pub async fn watchdog(progress: Arc<AtomicU64>, outbox: Outbox, shutdown: CancellationToken) {
    let Some(timeout) = sd_notify::watchdog_enabled() else {
        return;
    };
    // Ping at half the timeout, as sd_watchdog_enabled(3) recommends.
    let every = (timeout / 2).max(Duration::from_millis(100));
    tracing::info!(timeout = ?timeout, "systemd watchdog enabled");
    let mut tick = tokio::time::interval(every);
    let mut last = progress.load(Ordering::Relaxed);
    let mut stalled_logged = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = progress.load(Ordering::Relaxed);
        let engine_turned = now != last;
        last = now;
        let outbox_answers = matches!(tokio::time::timeout(every, outbox.stats()).await, Ok(Ok(_)));
        // An engine waiting for room under `overflow: block` is in a reported state (STATUS=,
        // /healthz, metrics, an ERROR line), not wedged: a restart would not make room.
        let blocked = outbox.blocked_since().is_some();
        if (engine_turned || blocked) && outbox_answers {
            send(&[NotifyState::Watchdog]);
            stalled_logged = false;
        } else if !stalled_logged {
            // ERROR: systemd will restart the agent if this persists for the whole timeout.
            tracing::error!(
                engine_turned,
                outbox_answers,
                "pipeline stalled: withholding the systemd watchdog ping"
            );
            stalled_logged = true;
        }
    }
}

//! Supervision of the daemon's long-lived tasks: none may end silently while the agent
//! reports itself healthy (DESIGN.md, guarantee 7).
//!
//! Two kinds, by what a restart can fix:
//! - **Restarted with backoff** ([`restarting`]): a source, the uplink and the metrics
//!   endpoint hold no state the rest depends on, and each already retries what it knows (a
//!   broker that refuses, a port that is taken). If one ends anyway (it returned, failed, or
//!   panicked) the cause is logged at ERROR and it is started again after
//!   `weir_drivers::backoff` (1 s doubling to 60 s, back to 1 s after a minute of running).
//! - **Vital** ([`vital_end`]): the pipeline (engine) and the outbox writer. Without either
//!   nothing is stored, and their state (windows, the writer's queue) cannot be rebuilt
//!   underneath the others. Their end is logged with its cause and the agent stops with an
//!   error (exit 1), so systemd (`Restart=on-failure`) starts a fresh process: the outbox
//!   keeps what was committed, unacknowledged device messages are redelivered.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;
use weir_drivers::backoff::Backoff;

/// First and longest wait before a restart.
const RESTART_MIN: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(60);
/// A task that ran this long before ending starts over from [`RESTART_MIN`].
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// What a panic said, if it said it as text.
fn panic_text(e: JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned()),
        Err(e) => e.to_string(),
    }
}

/// Why a task ended, from its join result.
fn cause<E: Display>(ended: Result<Result<(), E>, JoinError>) -> String {
    match ended {
        Ok(Ok(())) => "it returned while the agent was running".to_owned(),
        Ok(Err(e)) => e.to_string(),
        Err(e) if e.is_panic() => format!("it panicked: {}", panic_text(e)),
        Err(e) => e.to_string(),
    }
}

/// Runs `start()` as a task until `shutdown`, starting it again with backoff whenever it
/// ends before that. `task` names it in the log (`source simulator`, `uplink`, `metrics`).
pub fn restarting<F, Fut, E>(
    task: String,
    shutdown: CancellationToken,
    mut start: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display + Send + 'static,
{
    tokio::spawn(async move {
        let mut backoff = Backoff::new(RESTART_MIN, RESTART_MAX);
        loop {
            let started = tokio::time::Instant::now();
            let ended = tokio::spawn(start()).await;
            if shutdown.is_cancelled() {
                return;
            }
            if started.elapsed() >= HEALTHY_RUN {
                backoff.proven();
            }
            let delay = backoff.failed();
            tracing::error!(
                task = %task,
                cause = %cause(ended),
                restart_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "task ended unexpectedly; restarting it"
            );
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            tracing::info!(task = %task, "task restarted");
        }
    })
}

/// The error a vital task's end stops the agent with, logged at ERROR first.
pub fn vital_end<E: Display>(task: &str, ended: Result<Result<(), E>, JoinError>) -> anyhow::Error {
    let cause = cause(ended);
    tracing::error!(
        task,
        cause = %cause,
        "vital task ended unexpectedly; stopping the agent with an error so systemd restarts it"
    );
    anyhow::anyhow!("the {task} ended unexpectedly: {cause}")
}

/// A task under its own stop signal, as a reload restarts it (the uplink, the metrics
/// listener): [`Running::stop`] cancels the signal and waits for the task to end.
pub struct Running {
    pub stop: CancellationToken,
    pub task: JoinHandle<()>,
}

impl Running {
    /// Cancels the stop signal and waits at most `within` for the task to end; false when it
    /// had not (it is left to end on its own).
    pub async fn stop(self, within: Duration) -> bool {
        self.stop.cancel();
        tokio::time::timeout(within, self.task).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_is_restarted_with_backoff_until_shutdown() {
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let shutdown = CancellationToken::new();
        let supervisor = restarting("test".to_owned(), shutdown.clone(), {
            let runs = runs.clone();
            move || {
                let n = runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    match n {
                        0 => panic!("first run fails"),
                        1 => Err("second run errs"),
                        _ => Ok(()),
                    }
                }
            }
        });
        // Backoff 0.5-1 s, then 1-2 s: three runs within 3 s.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while runs.load(std::sync::atomic::Ordering::SeqCst) < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not restarted after a panic and an error"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), supervisor)
            .await
            .expect("ends on shutdown")
            .expect("no panic escapes");
    }

    #[tokio::test]
    async fn causes_name_what_happened() {
        let panicked = tokio::spawn(async { panic!("boom") }).await;
        assert_eq!(
            cause::<String>(panicked.map(|()| Ok(()))),
            "it panicked: boom"
        );
        assert_eq!(cause::<&str>(Ok(Err("refused"))), "refused");
        assert!(cause::<&str>(Ok(Ok(()))).contains("returned"));
    }
}

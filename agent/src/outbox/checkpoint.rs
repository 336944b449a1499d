//! WAL checkpoints on their own thread, off the writer's path.
//!
//! SQLite's automatic checkpoint runs inside the commit that pushes the WAL past 1,000 pages:
//! that commit copies 4 MB into the database and (with `synchronous = normal`) waits for two
//! fsyncs, while every source waits on the writer. Measured with the outbox bench, the
//! checkpoints took a quarter to a third of the ingest's wall time. Here a wal hook on the
//! writer's connection only wakes a checkpointer thread, which copies the pages through a
//! second connection while the writer goes on appending (a PASSIVE checkpoint never blocks
//! the writer, and SQLite's WAL allows one writer beside a checkpoint). The bytes written are
//! the same; only who waits for them changes.
//!
//! Bounded: if the checkpointer falls behind and the WAL reaches [`INLINE_PAGES`], the writer
//! checkpoints in its own commit as SQLite would, so the WAL cannot grow without limit on a
//! small flash. If the second connection cannot be opened, the writer keeps SQLite's
//! automatic checkpoint. On a full disk `Store::relieve_disk` sets `wal_autocheckpoint`,
//! which replaces the hook: from then on the writer checkpoints every 64 pages itself and
//! the thread sleeps until the connection closes.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

use super::config::Synchronous;

/// WAL pages after which the checkpointer is woken (SQLite's own default threshold).
const WAKE_PAGES: i32 = 1_000;
/// WAL pages after which the writer checkpoints itself (16 MB of 4 KiB pages): how far the
/// WAL may outgrow SQLite's own bound while the thread is behind.
const INLINE_PAGES: i32 = 4_000;

/// The checkpointer thread. Must be dropped after the writer's connection has closed:
/// dropping this drops the last wake-up sender, which ends the thread, and waits for it, so
/// the thread's connection is the last to close and checkpoints the rest and deletes the WAL.
///
/// The wal hook holds a sender too, but it cannot be what ends the thread: rusqlite drops
/// hooks *before* `sqlite3_close`, so the two connections would close at once, each would
/// see the other's lock, neither would delete the WAL, and the next start would take the
/// leftover WAL for an unclean shutdown (ids jump by a million; seen in CI).
pub(super) struct Checkpointer {
    keep_alive: Option<mpsc::SyncSender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.keep_alive.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Moves checkpoints of `conn` (the writer's connection to `path`) to a new thread; `None`
/// (with a warning, and SQLite's automatic checkpoint left in place) if that fails.
pub(super) fn start(conn: &mut Connection, path: &Path, sync: Synchronous) -> Option<Checkpointer> {
    let other = match open(path, sync) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "outbox: checkpoints stay on the writer thread");
            return None;
        }
    };
    // Capacity 1: a wake-up already pending covers every commit until it is taken.
    let (wake, woken) = mpsc::sync_channel::<()>(1);
    let keep_alive = wake.clone();
    let handle = std::thread::Builder::new()
        .name("weir-checkpoint".into())
        .spawn(move || run(&other, &woken))
        .map_err(|e| tracing::warn!(error = %e, "outbox: checkpoints stay on the writer thread"))
        .ok()?;
    let hook = move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
        if pages >= INLINE_PAGES {
            // Never `?`: an error returned from a wal hook fails the commit that called it,
            // and a PASSIVE checkpoint is refused (BUSY) while the thread is running one.
            let _ = wal.checkpoint_v2(CheckpointMode::PASSIVE);
        } else if pages >= WAKE_PAGES {
            let _ = wake.try_send(());
        }
        Ok(())
    };
    if let Err(e) = conn.wal_hook(Some(hook)) {
        tracing::warn!(error = %e, "outbox: checkpoints stay on the writer thread");
        // The hook's sender went with the refused hook; this ends the thread.
        drop(keep_alive);
        let _ = handle.join();
        return None;
    }
    Some(Checkpointer {
        keep_alive: Some(keep_alive),
        handle: Some(handle),
    })
}

fn open(path: &Path, sync: Synchronous) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // The checkpoint's fsyncs follow this connection's level.
    conn.pragma_update(None, "synchronous", sync.pragma_value())?;
    Ok(conn)
}

fn run(conn: &Connection, woken: &mpsc::Receiver<()>) {
    while woken.recv().is_ok() {
        // Errors (a busy database, a full disk) leave the WAL as it is; the next wake-up
        // tries again, and the writer's inline checkpoint bounds the WAL meanwhile.
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "outbox checkpoint failed; retried at the next wake-up");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::outbox::{Lane, NewRecord, Outbox, OutboxConfig};

    /// SQLite's automatic checkpoint is replaced by the hook, and the inline threshold is
    /// not reached: pages reach the database file only if the thread copied them.
    #[tokio::test]
    async fn the_wal_is_checkpointed_by_the_thread_and_the_thread_ends_with_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = OutboxConfig {
            path: dir.path().join("outbox.db"),
            max_bytes: 1 << 30,
            ..OutboxConfig::default()
        };
        let (outbox, thread) = Outbox::open(&cfg).unwrap();
        // About 8 MB in the WAL (2,000 pages): past the wake-up, below the inline threshold.
        let body = format!(r#"{{"pad":"{}"}}"#, "x".repeat(200));
        for batch in 0..24 {
            let records = (0..1_000)
                .map(|n| {
                    let at = batch * 1_000 + n;
                    NewRecord::json(Lane::Aggregates, "weir/gw/a", at, body.as_bytes())
                })
                .collect();
            outbox.append(records, vec![]).await.unwrap();
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let hook: crate::outbox::AfterCommit = Box::new(move || {
            let _ = tx.send(());
        });
        outbox.append_with(vec![], vec![hook]).await.unwrap();
        rx.await.unwrap();
        let start = Instant::now();
        let db_len = || std::fs::metadata(&cfg.path).map_or(0, |m| m.len());
        while db_len() < 2 << 20 && start.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(db_len() >= 2 << 20, "database file {} B", db_len());
        // Joining returns: the thread saw the writer's connection close.
        drop(outbox);
        thread.join().unwrap();
    }
}

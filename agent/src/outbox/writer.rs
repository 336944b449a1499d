//! The dedicated SQLite thread. Every operation goes through its bounded queue, so SQLite is
//! only ever touched by one thread and async tasks never block on disk.
//!
//! Appends are grouped: the writer takes an append, keeps taking appends that are already
//! queued (or arrive within `batch_delay`) up to `batch_max` records, commits them as ONE
//! transaction, and only then runs their after-commit hooks (the transport acks). A read or
//! delete found while grouping ends the group first, so it never sees uncommitted rows.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::store::Store;
use super::{Lane, LaneCursor, NewRecord, OutboxCounters, OutboxError, OutboxStats, Record};

/// Runs on the writer thread once the records queued with it are committed. The agent uses it
/// to fire transport acks; tests use it to observe ordering.
pub(crate) type AfterCommit = Box<dyn FnOnce() + Send + 'static>;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, OutboxError>>;

pub(crate) enum Command {
    Append {
        records: Vec<NewRecord>,
        after_commit: Vec<AfterCommit>,
    },
    Fetch {
        limit: usize,
        after: LaneCursor,
        reply: Reply<Vec<Record>>,
    },
    Delete {
        ids: Vec<u64>,
        reply: Reply<u64>,
    },
    Stats {
        reply: Reply<OutboxStats>,
    },
}

pub(crate) struct Writer {
    pub store: Store,
    pub rx: flume::Receiver<Command>,
    pub batch_max: usize,
    pub batch_delay: Duration,
    pub changes: watch::Sender<u64>,
    pub counters: Arc<OutboxCounters>,
}

impl Writer {
    /// Serves commands until every sender is gone; what was queued before that is committed.
    pub(crate) fn run(mut self) -> Result<(), OutboxError> {
        let mut next = None;
        loop {
            let cmd = match next.take() {
                Some(cmd) => cmd,
                None => match self.rx.recv() {
                    Ok(cmd) => cmd,
                    Err(flume::RecvError::Disconnected) => return Ok(()),
                },
            };
            match cmd {
                Command::Append {
                    records,
                    after_commit,
                } => next = self.append_group(records, after_commit),
                other => self.serve(other),
            }
        }
    }

    /// Gathers queued appends behind the first, commits them together, fires their hooks.
    /// Returns a non-append command met while gathering, to be served next.
    fn append_group(
        &mut self,
        mut records: Vec<NewRecord>,
        mut hooks: Vec<AfterCommit>,
    ) -> Option<Command> {
        let deadline = Instant::now() + self.batch_delay;
        let mut next = None;
        while records.len() < self.batch_max {
            let got = match self.rx.try_recv() {
                Ok(cmd) => Some(cmd),
                Err(_) if self.batch_delay.is_zero() => None,
                Err(_) => self.rx.recv_deadline(deadline).ok(),
            };
            match got {
                Some(Command::Append {
                    records: more,
                    after_commit,
                }) => {
                    records.extend(more);
                    hooks.extend(after_commit);
                }
                Some(other) => {
                    next = Some(other);
                    break;
                }
                None => break,
            }
        }
        self.commit(records, hooks);
        next
    }

    fn commit(&mut self, records: Vec<NewRecord>, hooks: Vec<AfterCommit>) {
        if records.is_empty() {
            // Nothing to write: everything queued before was committed already.
            hooks.into_iter().for_each(|h| h());
            return;
        }
        match self.store.append(records.iter()) {
            Ok(outcome) => {
                let c = &self.counters;
                c.appended
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                c.committed_batches.fetch_add(1, Ordering::Relaxed);
                for lane in Lane::ALL {
                    let n = outcome.evicted[lane as usize];
                    if n > 0 {
                        c.evicted.fetch_add(n, Ordering::Relaxed);
                        tracing::error!(
                            evicted = n,
                            lane = lane.as_str(),
                            max_bytes = self.store.max_bytes(),
                            "outbox full: evicted oldest records (data lost)"
                        );
                    }
                }
                self.changes.send_modify(|n| *n = n.wrapping_add(1));
                hooks.into_iter().for_each(|h| h());
            }
            Err(e) => {
                // Not committed, so the acks are dropped unfired: sources that support acks
                // get their messages redelivered; others lose these records.
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    error = %e,
                    records = records.len(),
                    "outbox commit failed: records not stored"
                );
            }
        }
    }

    fn serve(&mut self, cmd: Command) {
        // A dropped reply receiver just means the caller stopped waiting.
        match cmd {
            Command::Append { .. } => {}
            Command::Fetch {
                limit,
                after,
                reply,
            } => {
                let r = self
                    .store
                    .fetch(limit, after)
                    .map_err(|source| OutboxError::Sqlite {
                        op: "fetch",
                        source,
                    });
                let _ = reply.send(r);
            }
            Command::Delete { ids, reply } => {
                let r = self
                    .store
                    .delete(&ids)
                    .map_err(|source| OutboxError::Sqlite {
                        op: "delete",
                        source,
                    });
                if let Ok(n) = r {
                    self.counters.deleted.fetch_add(n, Ordering::Relaxed);
                }
                let _ = reply.send(r);
            }
            Command::Stats { reply } => {
                let r = self
                    .store
                    .lane_stats()
                    .map(|lanes| OutboxStats::new(lanes, self.store.max_bytes(), &self.counters))
                    .map_err(|source| OutboxError::Sqlite {
                        op: "stats",
                        source,
                    });
                let _ = reply.send(r);
            }
        }
    }
}

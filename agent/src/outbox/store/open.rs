//! Opening the outbox database: the pragmas, the integrity check, creating or migrating the
//! schema, and moving a file that is not a usable outbox aside (with its WAL) so that a fresh
//! one can start. The agent must never refuse to start because of its buffer, so everything
//! that can go wrong here is sorted into "unusable file" (quarantined) and "anything else"
//! (returned: a missing directory or a permission problem is the operator's to fix).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};

use super::super::OutboxError;
use super::super::checkpoint;
use super::super::config::Synchronous;
use super::super::schema::{MIGRATE_FROM_1, SCHEMA};
use super::{ID_GAP_AFTER_UNCLEAN_SHUTDOWN, SCHEMA_VERSION, Store, TotalsError, read_totals};

/// Why an open attempt failed: unusable files are quarantined, anything else is returned.
enum OpenFailure {
    Unusable(String),
    Other(OutboxError),
}

fn classify(op: &'static str, e: rusqlite::Error) -> OpenFailure {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            OpenFailure::Unusable(format!("{op}: {e}"))
        }
        _ => OpenFailure::Other(OutboxError::Sqlite { op, source: e }),
    }
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

impl Store {
    /// Opens or creates the database at `path`, quarantining a file that is not a usable outbox.
    pub(crate) fn open(
        path: &Path,
        max_bytes: u64,
        synchronous: Synchronous,
    ) -> Result<Store, OutboxError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| OutboxError::CreateDir {
                path: parent.to_owned(),
                source,
            })?;
        }
        match Self::try_open(path, max_bytes, synchronous) {
            Ok(store) => Ok(store),
            Err(OpenFailure::Other(e)) => Err(e),
            Err(OpenFailure::Unusable(reason)) => {
                let moved_to = quarantine(path)?;
                tracing::error!(
                    path = %path.display(),
                    moved_to = %moved_to.display(),
                    %reason,
                    "outbox database unusable: moved aside, starting an empty outbox \
                     (its records are not forwarded)"
                );
                let mut store = match Self::try_open(path, max_bytes, synchronous) {
                    Ok(store) => store,
                    Err(OpenFailure::Other(e)) => return Err(e),
                    Err(OpenFailure::Unusable(reason)) => {
                        return Err(OutboxError::Unusable {
                            path: path.to_owned(),
                            reason,
                        });
                    }
                };
                // The lost file's ids may have reached consumers; start past any of them
                // (µs since the epoch) so consumers deduplicating by id keep new records.
                let now_us = weir_drivers::now_us().max(0);
                store.raise_sequence_to(now_us)?;
                Ok(store)
            }
        }
    }

    fn try_open(
        path: &Path,
        max_bytes: u64,
        synchronous: Synchronous,
    ) -> Result<Store, OpenFailure> {
        let existed = path.exists();
        // A leftover non-empty WAL means the last process did not close cleanly.
        let unclean = std::fs::metadata(sidecar(path, "-wal")).is_ok_and(|m| m.len() > 0);
        let mut conn = Connection::open(path).map_err(|e| classify("open", e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| classify("busy_timeout", e))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| classify("journal_mode", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(OpenFailure::Other(OutboxError::Unusable {
                path: path.to_owned(),
                reason: format!("could not enable WAL (journal_mode is {mode})"),
            }));
        }
        conn.pragma_update(None, "synchronous", synchronous.pragma_value())
            .map_err(|e| classify("synchronous", e))?;
        // Keeps the WAL file from growing without bound on flash after a burst.
        conn.pragma_update(None, "journal_size_limit", 4 * 1024 * 1024)
            .map_err(|e| classify("journal_size_limit", e))?;

        if existed {
            let check: String = conn
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .map_err(|e| classify("quick_check", e))?;
            if check != "ok" {
                return Err(OpenFailure::Unusable(format!("quick_check: {check}")));
            }
        }
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| classify("user_version", e))?;
        match version {
            0 => conn
                .execute_batch(&format!(
                    "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(|e| classify("create schema", e))?,
            1 => {
                conn.execute_batch(&format!(
                    "BEGIN; {MIGRATE_FROM_1} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(|e| {
                    // Leave no half-open transaction behind; the error tells what failed.
                    let _ = conn.execute_batch("ROLLBACK");
                    classify("migrate schema 1 to 2", e)
                })?;
                tracing::info!(path = %path.display(), "outbox migrated to schema version 2 (records clustered by lane)");
            }
            SCHEMA_VERSION => {}
            v => {
                return Err(OpenFailure::Unusable(format!(
                    "schema version {v} is not {SCHEMA_VERSION} (written by another weir version)"
                )));
            }
        }
        conn.execute_batch(super::super::engine_state::SCHEMA)
            .map_err(|e| classify("create engine state tables", e))?;
        // A `records` table of another shape makes the file unusable, not fatal.
        conn.prepare(
            "SELECT id, lane, topic, created_at, payload, \
             (SELECT last_id FROM sequence) FROM records LIMIT 0",
        )
        .map_err(|e| match e.sqlite_error_code() {
            Some(ErrorCode::Unknown) | None => {
                OpenFailure::Unusable(format!("unexpected schema: {e}"))
            }
            _ => classify("check schema", e),
        })?;
        let totals = read_totals(&conn).map_err(|e| match e {
            TotalsError::Sqlite(e) => classify("read totals", e),
            TotalsError::UnknownLane(lane) => OpenFailure::Unusable(format!("unknown lane {lane}")),
        })?;
        let data_version = conn
            .pragma_query_value(None, "data_version", |r| r.get(0))
            .map_err(|e| classify("data_version", e))?;
        let last_id = conn
            .query_row("SELECT MAX(last_id) FROM sequence", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .map_err(|e| classify("read sequence", e))?
            .unwrap_or(0);
        let checkpointer = checkpoint::start(&mut conn, path, synchronous);
        let mut store = Store {
            conn,
            _checkpointer: checkpointer,
            totals,
            max_bytes,
            disk_bound: None,
            data_version,
            last_id,
        };
        if unclean && existed {
            store
                .bump_sequence(ID_GAP_AFTER_UNCLEAN_SHUTDOWN)
                .map_err(OpenFailure::Other)?;
        }
        Ok(store)
    }
}

/// Moves `path` and its WAL/SHM sidecars to `<path>.corrupt-<unix-secs>[-wal|-shm]`. The
/// sidecars must move too: a stale WAL beside a fresh database would be replayed into it.
fn quarantine(path: &Path) -> Result<PathBuf, OutboxError> {
    let secs = weir_drivers::now_us().max(0) / 1_000_000;
    let mut target = sidecar(path, &format!(".corrupt-{secs}"));
    let mut n = 1;
    while target.exists() {
        target = sidecar(path, &format!(".corrupt-{secs}.{n}"));
        n += 1;
    }
    let err = |source| OutboxError::Quarantine {
        path: path.to_owned(),
        source,
    };
    std::fs::rename(path, &target).map_err(err)?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let side = sidecar(path, suffix);
        if side.exists() {
            std::fs::rename(&side, sidecar(&target, suffix)).map_err(err)?;
        }
    }
    Ok(target)
}

//! `weir outbox stats | export | purge`: operator commands on the outbox file named by the
//! config (`outbox.path`), safe to run while the agent runs.
//!
//! They open their own SQLite connection (WAL lets readers and a second writer work beside the
//! agent's writer thread; a busy database is waited for up to 5 s) and never create, migrate
//! or quarantine anything: a missing or foreign file is an error. `stats` and `export` read a
//! consistent snapshot. `purge` deletes in one transaction; the running agent notices through
//! `PRAGMA data_version` before its next append or age check and reads its byte totals again,
//! so its bound is not enforced on stale totals, and a purged record that was in flight on
//! the uplink is simply not found when its PUBACK arrives. Purged records are gone for good;
//! `purge` prints how many it removed per lane.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rusqlite::{Connection, OpenFlags, params};
use weir_drivers::now_us;

use crate::outbox::{Lane, SCHEMA_VERSION, json_body};

#[derive(Debug, Args)]
pub struct OutboxArgs {
    /// The agent's YAML config (its `outbox.path` is used); default as for `run`.
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: OutboxCommand,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Records, bytes and the oldest record's age, per lane.
    Stats,
    /// Every record as JSON lines on stdout, in delivery order (progress on stderr).
    Export,
    /// Delete records for good: of one lane, and/or created before now minus a duration.
    Purge {
        /// Only this lane's records
        #[arg(long, value_enum)]
        lane: Option<LaneArg>,
        /// Only records created longer ago than this, e.g. 30m, 2h, 7d
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        older_than: Option<std::time::Duration>,
    },
}

pub fn main(args: OutboxArgs) -> anyhow::Result<ExitCode> {
    let loaded = crate::config::load(args.config.as_deref())?;
    let path = loaded.config.outbox.path;
    match args.command {
        OutboxCommand::Stats => stats(&path),
        OutboxCommand::Export => export(&path),
        OutboxCommand::Purge { lane, older_than } => purge(&path, lane, older_than),
    }
}

fn open(path: &Path, write: bool) -> anyhow::Result<Connection> {
    if !path.exists() {
        bail!("no outbox at {}", path.display());
    }
    let flags = if write {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .with_context(|| format!("cannot open the outbox {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .with_context(|| format!("{} is not a readable outbox", path.display()))?;
    // Version 1 (before the agent migrates it) has the same columns, so it is read too.
    if !(1..=SCHEMA_VERSION).contains(&version) {
        bail!(
            "{}: outbox schema version {version}, this weir reads {SCHEMA_VERSION}",
            path.display()
        );
    }
    Ok(conn)
}

fn stats(path: &Path) -> anyhow::Result<ExitCode> {
    let mut conn = open(path, false)?;
    let tx = conn.transaction()?; // one snapshot for every lane
    let now = now_us();
    let mut out = std::io::stdout().lock();
    writeln!(out, "outbox {}", path.display())?;
    writeln!(
        out,
        "{:<12} {:>10} {:>14} {:>12}",
        "lane", "records", "bytes", "oldest_age"
    )?;
    let (mut count, mut bytes) = (0u64, 0u64);
    for lane in Lane::ALL {
        let (n, b, oldest): (i64, i64, Option<i64>) = tx.query_row(
            "SELECT COUNT(*), COALESCE(SUM(octet_length(topic) + length(payload)), 0), \
             MIN(created_at) FROM records WHERE lane = ?1",
            [lane as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let age = oldest.map_or_else(
            || "-".to_owned(),
            |t| {
                let secs = u64::try_from(now.saturating_sub(t) / 1_000_000).unwrap_or(0);
                weir_drivers::duration::format(Duration::from_secs(secs))
            },
        );
        writeln!(out, "{:<12} {n:>10} {b:>14} {age:>12}", lane.as_str())?;
        count += n.max(0) as u64;
        bytes += b.max(0) as u64;
    }
    writeln!(out, "{:<12} {count:>10} {bytes:>14}", "total")?;
    match crate::outbox::checkpoint_info(&tx)? {
        Some(c) => {
            let secs = u64::try_from(now.saturating_sub(c.written_at) / 1_000_000).unwrap_or(0);
            let age = weir_drivers::duration::format(Duration::from_secs(secs));
            writeln!(
                out,
                "engine checkpoint: age {age}, {} series, {} bytes",
                c.series, c.bytes
            )?;
        }
        None => writeln!(out, "engine checkpoint: none")?,
    }
    Ok(ExitCode::SUCCESS)
}

/// One JSON object per line, lane order then id order (the order the uplink sends in):
/// `{"id":42,"lane":"alerts","topic":"…","created_at":…,"payload":{…}}`. A payload that is
/// not a version-1 JSON object is written as `"payload_hex"` instead.
fn export(path: &Path) -> anyhow::Result<ExitCode> {
    let mut conn = open(path, false)?;
    let tx = conn.transaction()?;
    let total: i64 = tx.query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))?;
    let total = u64::try_from(total).unwrap_or(0);
    let mut progress = crate::support::progress::Progress::records(
        total,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    let mut stmt =
        tx.prepare("SELECT id, lane, topic, created_at, payload FROM records ORDER BY lane, id")?;
    let mut rows = stmt.query([])?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut n = 0u64;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let lane = Lane::from_i64(row.get(1)?).map_or("unknown", Lane::as_str);
        let topic: String = row.get(2)?;
        let created_at: i64 = row.get(3)?;
        let payload: Vec<u8> = row.get(4)?;
        write!(
            out,
            "{{\"id\":{id},\"lane\":\"{lane}\",\"topic\":{},\"created_at\":{created_at},",
            serde_json::Value::String(topic)
        )?;
        match json_body(&payload) {
            Ok(body)
                if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok()
                    && body.trim_ascii_start().first() == Some(&b'{') =>
            {
                out.write_all(b"\"payload\":")?;
                out.write_all(body.trim_ascii())?;
            }
            _ => {
                let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
                write!(out, "\"payload_hex\":\"{hex}\"")?;
            }
        }
        out.write_all(b"}\n")?;
        n += 1;
        progress.update(n);
        if !progress.enabled() && n.is_multiple_of(100_000) {
            eprintln!("weir outbox export: {n} records");
        }
    }
    out.flush()?;
    progress.finish();
    eprintln!("weir outbox export: {n} records from {}", path.display());
    Ok(ExitCode::SUCCESS)
}

fn purge(
    path: &Path,
    lane: Option<LaneArg>,
    older_than: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    if lane.is_none() && older_than.is_none() {
        bail!("purge needs --lane and/or --older-than (refusing to empty the whole outbox)");
    }
    let mut conn = open(path, true)?;
    let cutoff = older_than.map_or(i64::MAX, |d| {
        now_us().saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    });
    let lanes: Vec<Lane> = match lane {
        Some(l) => vec![l.into()],
        None => Lane::ALL.to_vec(),
    };
    let tx = conn.transaction()?;
    let mut removed = Vec::new();
    for lane in lanes {
        let n = tx.execute(
            "DELETE FROM records WHERE lane = ?1 AND created_at < ?2",
            params![lane as i64, cutoff],
        )?;
        removed.push((lane, n));
    }
    tx.commit().context("purge not committed")?;
    for (lane, n) in removed {
        println!("purged {n} {} record(s)", lane.as_str());
    }
    Ok(ExitCode::SUCCESS)
}

/// `--lane` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LaneArg {
    Alerts,
    Predictions,
    Aggregates,
}

impl From<LaneArg> for Lane {
    fn from(l: LaneArg) -> Lane {
        match l {
            LaneArg::Alerts => Lane::Alerts,
            LaneArg::Predictions => Lane::Predictions,
            LaneArg::Aggregates => Lane::Aggregates,
        }
    }
}

/// `--older-than 2h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    weir_drivers::duration::parse(s).map_err(|e| e.to_string())
}

//! Harness for Weir's black-box tests: real processes, real sockets, no mocks.
//!
//! Every test gets its own [`TestDir`], its own [`Mosquitto`] brokers on free ports and its
//! own [`Agent`] (the real `weir` binary). Tests observe the agent only from the outside: what
//! it logs, what reaches the cloud broker ([`Collector`]) and its exit status. That is what an
//! operator sees, so that is what the guarantees in DESIGN.md are checked against.
//!
//! Readiness is always a signal — a log line, a SUBACK, a broker log line, a port that accepts
//! — never a fixed sleep; every wait has a deadline and its error says what it waited for and
//! shows the relevant log tail, because a black-box failure is otherwise undebuggable.
//!
//! The design follows ripgrep's `tests/util.rs`: one test binary, a per-test temp dir, and a
//! command wrapper ([`weir_command`]) that can run the binary under an emulator (`WEIR_RUNNER`).
//!
//! Environment: `WEIR_BIN` (use this binary instead of building `weir`), `WEIR_RUNNER` (e.g.
//! `qemu-aarch64 -L /usr/aarch64-linux-gnu`), `MOSQUITTO` (broker binary, default
//! `/usr/sbin/mosquitto`).

mod agent;
mod browser;
mod mosquitto;
mod mqtt;
mod pki;
pub mod schema;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub use agent::{Agent, weir_bin, weir_command};
pub use browser::Browser;
pub use mosquitto::{Mosquitto, MosquittoBuilder, TlsListener};
pub use mqtt::{Collector, Message, Publisher, distinct_records};
pub use pki::Pki;

/// A per-test scratch directory, removed when dropped.
pub struct TestDir {
    dir: tempfile::TempDir,
    /// Numbers the agent log files so a restarted agent does not overwrite its predecessor's.
    next_log: AtomicU32,
}

impl TestDir {
    /// Creates a fresh directory whose name starts with `weir-<name>-`.
    pub fn new(name: &str) -> Result<TestDir> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("weir-{name}-"))
            .tempdir()
            .context("creating the test's temp dir")?;
        Ok(TestDir {
            dir,
            next_log: AtomicU32::new(1),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `rel` (creating parent directories) and returns the full path.
    pub fn write(&self, rel: &str, contents: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// A path for the next log file called `<stem>-<n>.log`.
    pub(crate) fn next_log_path(&self, stem: &str) -> PathBuf {
        let n = self.next_log.fetch_add(1, Ordering::Relaxed);
        self.dir.path().join(format!("{stem}-{n}.log"))
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Bind to port 0, read the port, drop the listener. Another process could take it in between;
/// in practice the kernel does not hand the same ephemeral port out again that quickly. Tests
/// need this when a port must be known before its broker runs (the agent's uplink in test c).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener
        .local_addr()
        .context("reading the bound port")?
        .port())
}

/// Polls `probe` every 50 ms until it returns `Some`, or fails after `timeout` with an error
/// naming `what`. `probe` may fail early (e.g. the process under test died).
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe()? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `lines` lines of `text`, for error messages.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

/// Reads a log file that may not exist yet; a missing file reads as empty.
pub(crate) fn read_log(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

/// Sends SIGTERM through `kill(1)`, which keeps the harness free of `unsafe` FFI.
pub(crate) fn sigterm(pid: u32) -> Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .context("running `kill -TERM` (procps' kill must be on PATH)")?;
    if !status.success() {
        bail!("`kill -TERM {pid}` failed: {status}");
    }
    Ok(())
}

/// Waits for a child to exit, up to `timeout`.
pub(crate) fn wait_child(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().context("waiting for a child process")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

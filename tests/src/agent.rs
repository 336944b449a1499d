//! Finding, building and running the real `weir` binary.
//!
//! Cargo hands `CARGO_BIN_EXE_weir` only to the package that owns the binary, and this crate
//! is not it, so [`weir_bin`] builds `weir` once per test run (or takes `WEIR_BIN`). Asking
//! cargo for the artifact path (`--message-format=json`) instead of guessing `target/debug`
//! keeps `CARGO_TARGET_DIR`, `build.target-dir` and friends working.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::{TestDir, read_log, sigterm, tail, wait_child, wait_until};

/// How many log lines an error shows.
const TAIL_LINES: usize = 60;

/// Path of the `weir` binary under test: `WEIR_BIN` if set, else built once with cargo.
pub fn weir_bin() -> Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("WEIR_BIN") {
            return Ok(PathBuf::from(path));
        }
        build_weir().map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

fn build_weir() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the tests crate lives inside the workspace")?;
    let output = Command::new(&cargo)
        .args([
            "build",
            "-p",
            "weir-agent",
            "--bin",
            "weir",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(workspace)
        .stdin(Stdio::null())
        .output()
        .context("running `cargo build -p weir-agent --bin weir`")?;
    if !output.status.success() {
        bail!(
            "`cargo build -p weir-agent --bin weir` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "weir")
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .context("cargo built weir-agent but reported no `weir` executable")
}

/// A `Command` for `weir`, run through `WEIR_RUNNER` (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`)
/// when that is set, so the same tests check a cross-compiled binary.
pub fn weir_command() -> Result<Command> {
    let bin = weir_bin()?;
    let runner = std::env::var("WEIR_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    let mut cmd = match words.next() {
        Some(program) => {
            let mut cmd = Command::new(program);
            cmd.args(words).arg(&bin);
            cmd
        }
        None => Command::new(&bin),
    };
    cmd.stdin(Stdio::null());
    Ok(cmd)
}

/// A running `weir run --config <dir>/weir.yaml`; killed when dropped.
pub struct Agent {
    child: Child,
    config: PathBuf,
    log: PathBuf,
    exit: Option<ExitStatus>,
}

impl Agent {
    /// Writes `config_yaml` to `<dir>/weir.yaml` and starts the agent on it, stdout and stderr
    /// going to a fresh `<dir>/agent-<n>.log`. Rule files are the test's to write beforehand.
    pub fn start(dir: &TestDir, config_yaml: &str) -> Result<Agent> {
        Agent::start_with_env(dir, config_yaml, &[])
    }

    /// [`Agent::start`] with extra environment variables (e.g. `NOTIFY_SOCKET`).
    pub fn start_with_env(
        dir: &TestDir,
        config_yaml: &str,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Result<Agent> {
        let config = dir.write("weir.yaml", config_yaml)?;
        let log = dir.next_log_path("agent");
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file handle")?;
        let child = weir_command()?
            .arg("run")
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("spawning `weir run`")?;
        Ok(Agent {
            child,
            config,
            log,
            exit: None,
        })
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_contents(&self) -> String {
        read_log(&self.log)
    }

    pub fn log_tail(&self) -> String {
        format!(
            "--- agent log tail ({}) ---\n{}",
            self.log.display(),
            tail(&self.log_contents(), TAIL_LINES)
        )
    }

    /// `Some(status)` once the process has exited.
    pub fn exit_status(&mut self) -> Result<Option<ExitStatus>> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().context("polling the agent")?;
        }
        Ok(self.exit)
    }

    /// Fails (with the log tail) if the agent is no longer running.
    pub fn assert_running(&mut self) -> Result<()> {
        match self.exit_status()? {
            None => Ok(()),
            Some(status) => Err(anyhow!("the agent exited ({status})\n{}", self.log_tail())),
        }
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        self.wait_for_line(
            &format!("log line containing {needle:?}"),
            timeout,
            |line| line.contains(needle),
        )
        .map(drop)
    }

    /// Waits until a log line satisfies `pred` and returns the first such line.
    ///
    /// Fails early if the agent exits first; either way the error carries the log tail.
    pub fn wait_for_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let result = wait_until(what, timeout, || {
            // Check the exit status first so lines written just before exiting are still seen.
            let exited = self.exit_status()?;
            let log = self.log_contents();
            if let Some(line) = log.lines().find(|line| pred(line)) {
                return Ok(Some(line.to_owned()));
            }
            match exited {
                Some(status) => bail!("the agent exited ({status}) before logging {what}"),
                None => Ok(None),
            }
        });
        result.map_err(|e| self.explain(e))
    }

    /// Like [`Agent::wait_for_line`], but for the *newest* matching line, polled until `accept`
    /// (given the line) returns `Some` — for periodic status lines whose values change.
    pub fn wait_for_latest_line<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        accept: impl Fn(&str) -> Option<T>,
    ) -> Result<T> {
        let result = wait_until(what, timeout, || {
            let exited = self.exit_status()?;
            let log = self.log_contents();
            if let Some(value) = log.lines().rev().find_map(&accept) {
                return Ok(Some(value));
            }
            match exited {
                Some(status) => bail!("the agent exited ({status}) before logging {what}"),
                None => Ok(None),
            }
        });
        result.map_err(|e| self.explain(e))
    }

    /// Adds the agent's log tail to an error from any wait that depends on the agent.
    /// The cause comes first and the log after it, in one message, so the report reads top-down.
    pub fn explain(&self, err: anyhow::Error) -> anyhow::Error {
        anyhow!("{err:#}\n{}", self.log_tail())
    }

    /// SIGKILL: no chance to flush, close or say goodbye (`Child::kill` is SIGKILL on Unix).
    pub fn kill9(&mut self) -> Result<()> {
        if self.exit_status()?.is_none() {
            self.child.kill().context("SIGKILL to the agent")?;
        }
        self.exit = Some(self.child.wait().context("reaping the agent")?);
        Ok(())
    }

    /// SIGTERM, then waits up to `timeout` for a graceful exit and returns its status.
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.exit_status()? {
            return Ok(status);
        }
        sigterm(self.child.id())?;
        match wait_child(&mut self.child, timeout)? {
            Some(status) => {
                self.exit = Some(status);
                Ok(status)
            }
            None => Err(self.explain(anyhow!(
                "the agent did not exit within {timeout:?} of SIGTERM"
            ))),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

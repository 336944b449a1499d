//! Fleet operations end to end: `weir keygen`, `weir push` and gateways (the real binary)
//! talking through a real mosquitto, observed through the retained status messages, the
//! gateways' logs and what their rules send.
//!
//! Every gateway here watches a new version for 2 s (`fleet.watch`) and rolls back after 1 s
//! of bad health, so a rollout's outcome is known within seconds.

mod apply;
mod refuse;
mod rollout;
mod tls;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result};
use weir_tests::{Agent, Collector, Message, Mosquitto, TestDir, weir_command};

use crate::common::{PLANT_FILTER, PLANT_PATTERN, STARTUP};

/// Long enough for a push, a 2 s watch and a loaded machine.
pub const ROLLOUT: Duration = Duration::from_secs(40);

/// An operator's key pair (`weir keygen`) in `<dir>/operator`, its public half copied into
/// `<dir>/trusted` (the gateways' trusted-keys directory).
pub fn operator_key(dir: &TestDir) -> Result<PathBuf> {
    let operator = dir.path().join("operator");
    let out = weir_command()?
        .args(["keygen", "--name", "ops", "--dir"])
        .arg(&operator)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trusted = dir.path().join("trusted");
    std::fs::create_dir_all(&trusted)?;
    std::fs::copy(operator.join("ops.pub"), trusted.join("ops.pub"))?;
    Ok(operator.join("ops.key"))
}

/// One gateway's config: rules from `rules/`, devices on an MQTT broker (or the simulator),
/// an uplink to `cloud` and a `fleet:` section with `labels`.
pub struct Gateway<'a> {
    pub id: &'a str,
    pub cloud: u16,
    /// `None`: the simulator (3 devices, every 100 ms).
    pub devices: Option<u16>,
    pub rules: &'a [&'a str],
    pub labels: &'a str,
    pub engine: &'a str,
}

impl Gateway<'_> {
    pub fn yaml(&self, trusted: &Path) -> String {
        let rules: Vec<String> = self.rules.iter().map(|r| format!("{r:?}")).collect();
        let source = match self.devices {
            Some(port) => format!(
                "  - mqtt:\n      host: 127.0.0.1\n      port: {port}\n      subscriptions:\n        - topic: {PLANT_PATTERN:?}\n"
            ),
            None => "  - simulator: { interval: 100ms }\n".to_owned(),
        };
        format!(
            "gateway_id: {id}\n\
             rules: [{rules}]\n\
             sources:\n{source}\
             outbox: {{ path: outbox.db }}\n\
             uplink: {{ host: 127.0.0.1, port: {cloud} }}\n\
             engine: {{ {engine} }}\n\
             log: {{ level: info }}\n\
             metrics: {{ listen: ~ }}\n\
             fleet:\n  trusted_keys: {trusted:?}\n  dir: fleet\n  labels: {{ {labels} }}\n  watch: 2s\n  unhealthy_for: 1s\n",
            id = self.id,
            rules = rules.join(", "),
            cloud = self.cloud,
            engine = self.engine,
            labels = self.labels,
            trusted = trusted.display().to_string(),
        )
    }

    /// Starts it in `dir` (rule files already written) and waits until it takes bundles.
    pub fn start(&self, dir: &TestDir, trusted: &Path) -> Result<Agent> {
        let mut agent = Agent::start(dir, &self.yaml(trusted))?;
        agent.wait_for_log("pipeline ready", STARTUP)?;
        agent.wait_for_log("uplink connected", STARTUP)?;
        Ok(agent)
    }
}

/// Waits for the devices broker to see the gateway's subscription.
pub fn wait_devices(devices: &Mosquitto, agent: &Agent) -> Result<()> {
    devices
        .wait_for_subscription(PLANT_FILTER, STARTUP)
        .map_err(|e| agent.explain(e))
}

/// Writes `rules` (name, text) into a fresh directory `<dir>/<name>` for `weir push`.
pub fn bundle_dir(dir: &TestDir, name: &str, rules: &[(&str, &str)]) -> Result<PathBuf> {
    for (file, text) in rules {
        dir.write(&format!("{name}/{file}"), text)?;
    }
    Ok(dir.path().join(name))
}

/// Runs `weir push <from> --key <key> <target...> --version <v>` against `cloud`.
pub fn push(from: &Path, key: &Path, cloud: u16, version: u64, target: &[&str]) -> Result<Output> {
    weir_command()?
        .arg("push")
        .arg(from)
        .arg("--key")
        .arg(key)
        .args([
            "--port",
            &cloud.to_string(),
            "--version",
            &version.to_string(),
            "--wait",
            "40s",
        ])
        .args(target)
        .output()
        .context("running weir push")
}

/// stdout and stderr of a command, for assertions and failure messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A collector of every gateway's retained fleet status.
pub fn statuses(cloud: u16) -> Result<Collector> {
    Collector::start(cloud, "weir/fleet/status/+")
}

/// The newest status of `gateway` satisfying `pred`, waiting for it.
pub fn wait_status(
    statuses: &Collector,
    gateway: &str,
    what: &str,
    pred: impl Fn(&Message) -> bool,
) -> Result<Message> {
    let topic = format!("weir/fleet/status/{gateway}");
    let messages = statuses.wait_for(what, ROLLOUT, |m| {
        m.iter().rev().find(|m| m.topic == topic).is_some_and(&pred)
    })?;
    messages
        .into_iter()
        .rev()
        .find(|m| m.topic == topic)
        .context("status vanished")
}

/// `last.outcome` of a status message.
pub fn outcome(status: &Message) -> Option<&str> {
    status.field("last")?.get("outcome")?.as_str()
}

/// `refused.<kind>` of a status message (0 when absent).
pub fn refused(status: &Message, kind: &str) -> u64 {
    status
        .field("refused")
        .and_then(|r| r.get(kind))
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
}

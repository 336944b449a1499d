//! Agent configs and device traffic shared by the tests.
//!
//! Windows close when a later sample passes the window end or when the agent advances event
//! time on processing time (wall clock minus `engine.idle_close`). The tests publish samples
//! stamped with their scheduled time (`{"value": v, "ts": ms}`), so the windows a sample lands
//! in are fixed by the schedule, not by delivery delays on a loaded machine, and keep
//! publishing across more than one window so every expected window closes.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use weir_tests::{Agent, Collector, Message, Mosquitto, Publisher, TestDir};

/// Generous bound for an agent to start (building is done before the clock starts).
pub const STARTUP: Duration = Duration::from_secs(15);

/// The topic pattern the MQTT source subscribes with, and the filter the broker sees.
pub const PLANT_PATTERN: &str = "plant/{device}/{metric}";
pub const PLANT_FILTER: &str = "plant/+/+";

/// What varies between the tests' agent configs.
pub struct AgentConfig<'a> {
    pub gateway: &'a str,
    pub devices_port: u16,
    /// `None`: no `uplink` section, the agent only buffers.
    pub cloud_port: Option<u16>,
    /// Rule files, relative to the config file.
    pub rules: &'a [&'a str],
    pub outbox: &'a Path,
    /// Topic patterns besides [`PLANT_PATTERN`].
    pub extra_topics: &'a [&'a str],
}

impl AgentConfig<'_> {
    pub fn yaml(&self) -> String {
        let rules: Vec<String> = self.rules.iter().map(|r| format!("{r:?}")).collect();
        let mut subscriptions = format!("        - topic: {PLANT_PATTERN:?}\n");
        for topic in self.extra_topics {
            subscriptions.push_str(&format!("        - topic: {topic:?}\n"));
        }
        let uplink = match self.cloud_port {
            Some(port) => format!("uplink:\n  host: 127.0.0.1\n  port: {port}\n"),
            None => String::new(),
        };
        format!(
            "gateway_id: {gw}\n\
             rules: [{rules}]\n\
             sources:\n  - mqtt:\n      host: 127.0.0.1\n      port: {devices}\n      subscriptions:\n{subscriptions}\
             outbox:\n  path: {outbox:?}\n\
             {uplink}\
             engine: {{ idle_close: 5s }}\n\
             log: {{ level: info }}\n\
             metrics: {{ listen: ~ }}\n",
            gw = self.gateway,
            rules = rules.join(", "),
            devices = self.devices_port,
            outbox = self.outbox.display().to_string(),
        )
    }
}

/// A rule raising `severity` when a 1 s tumbling window's mean of `metric` on `device` exceeds
/// `threshold`.
pub fn mean_above_rule(
    name: &str,
    device: &str,
    metric: &str,
    threshold: f64,
    severity: &str,
) -> String {
    format!(
        "rules:\n\
         \x20 - name: {name}\n\
         \x20   select: {{ device: {device:?}, metric: {metric} }}\n\
         \x20   window: {{ tumbling: 1s }}\n\
         \x20   alert:\n\
         \x20     when: \"mean > {threshold}\"\n\
         \x20     severity: {severity}\n"
    )
}

/// Publishes `value(elapsed)` to `topic` every `every` for `duration`, on an absolute schedule
/// so publishing delays do not stretch the phases a test relies on.
pub fn publish_series(
    publisher: &mut Publisher,
    topic: &str,
    every: Duration,
    duration: Duration,
    value: impl Fn(Duration) -> f64,
) -> Result<usize> {
    let start = Instant::now();
    let start_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let mut sent = 0;
    loop {
        let due = every * u32::try_from(sent)?;
        if due >= duration {
            return Ok(sent);
        }
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        // Stamped with its scheduled time, so which window a sample falls in does not depend
        // on how late a loaded machine delivers it.
        let ts = start_ms + due.as_millis();
        publisher.publish(
            topic,
            format!("{{\"value\": {}, \"ts\": {ts}}}", value(due)),
        )?;
        sent += 1;
    }
}

/// Alert records among `messages`, first arrival of each id, in arrival order.
pub fn distinct_alerts(messages: &[Message]) -> Vec<Message> {
    weir_tests::distinct_records(messages)
        .into_iter()
        .filter(|m| m.str("kind") == Some("alert"))
        .collect()
}

/// Checks the fields every record on the wire carries: `id == "<gateway>:<seq>"`, `seq > 0`,
/// `gateway`, and the topic `weir/<gateway>/<lane>`.
pub fn assert_envelope(message: &Message, gateway: &str, lane: &str) {
    let seq = message
        .u64("seq")
        .unwrap_or_else(|| panic!("no numeric seq: {}", message.summary()));
    assert!(seq > 0, "seq must be positive: {}", message.summary());
    assert_eq!(
        message.id(),
        Some(format!("{gateway}:{seq}").as_str()),
        "{}",
        message.summary()
    );
    assert_eq!(
        message.str("gateway"),
        Some(gateway),
        "{}",
        message.summary()
    );
    assert_eq!(
        message.topic,
        format!("weir/{gateway}/{lane}"),
        "{}",
        message.summary()
    );
}

/// A device broker, a cloud broker with a collector on `weir/#`, and an agent running one
/// rule file between them — started, connected and subscribed.
pub struct Running {
    pub dir: TestDir,
    pub devices: Mosquitto,
    pub cloud: Mosquitto,
    pub collector: Collector,
    pub agent: Agent,
}

/// Starts [`Running`] with `cloud` (plain or persistent, as the test needs) and the rule
/// file `rules/<rule_name>.yaml` holding `rule`. Returns once the agent is subscribed.
pub fn start_with_cloud(
    test: &str,
    gateway: &str,
    cloud: Mosquitto,
    rule_name: &str,
    rule: &str,
) -> Result<Running> {
    let dir = TestDir::new(test)?;
    let devices = Mosquitto::start()?;
    let collector = Collector::start(cloud.port(), "weir/#")?;
    let rule_file = format!("rules/{rule_name}.yaml");
    dir.write(&rule_file, rule)?;
    let outbox = dir.path().join("outbox.db");
    let config = AgentConfig {
        gateway,
        devices_port: devices.port(),
        cloud_port: Some(cloud.port()),
        rules: &[&rule_file],
        outbox: &outbox,
        extra_topics: &[],
    };
    let mut agent = Agent::start(&dir, &config.yaml())?;
    agent.wait_for_log("pipeline ready", STARTUP)?;
    agent.wait_for_log("uplink connected", STARTUP)?;
    devices
        .wait_for_subscription(PLANT_FILTER, STARTUP)
        .map_err(|e| agent.explain(e))?;
    Ok(Running {
        dir,
        devices,
        cloud,
        collector,
        agent,
    })
}

/// Runs `weir replay --rules RULES DATA`, requires success, and returns its events (one JSON
/// object per stdout line) and its stderr (the summary).
pub fn replay_events(rules: &Path, data: &Path) -> Result<(Vec<serde_json::Value>, String)> {
    let out = weir_tests::weir_command()?
        .arg("replay")
        .arg("--rules")
        .arg(rules)
        .arg(data)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    anyhow::ensure!(out.status.success(), "weir replay failed: {stderr}");
    let events = String::from_utf8(out.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    Ok((events, stderr))
}

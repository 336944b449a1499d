//! `weir push`: signs a directory of rule files as a bundle, publishes it (retained) to one
//! gateway or a group on the fleet's broker, then waits for and prints each gateway's outcome
//! from their retained status messages.
//!
//! Exit code: 0 when every gateway that answered applied the bundle (and, with `--expect`,
//! that many answered), 1 when any rejected it, rolled it back or refused it, 3 when the wait
//! ended before enough answered.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use rumqttc::{AsyncClient, Event, Packet, QoS};

use crate::fleet::{Bundle, Outcome, Status, Target};

#[derive(Debug, Args)]
pub struct PushArgs {
    /// A directory of rule files (*.yaml, *.yml; not recursive).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The private key (from `weir keygen`).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The key's name as gateways know it (default: the key file's stem).
    #[arg(long)]
    pub key_name: Option<String>,
    /// One gateway, by its gateway_id.
    #[arg(long, conflicts_with = "group", required_unless_present = "group")]
    pub gateway: Option<String>,
    /// Every gateway with this label (`fleet.labels`), as key=value.
    #[arg(long, value_name = "KEY=VALUE")]
    pub group: Option<String>,
    /// The bundle's version: must be higher than what the gateways run (default: the current
    /// Unix time in seconds, which grows by itself).
    #[arg(long)]
    pub version: Option<u64>,
    /// An agent config to carry in the bundle (validated by each gateway like `weir check`).
    #[arg(long, value_name = "FILE")]
    pub agent_config: Option<PathBuf>,
    /// Connect as this config's `uplink:` section does (host, port, TLS with client
    /// certificates, topic_prefix); its other sections are ignored.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["host", "port", "topic_prefix"])]
    pub config: Option<PathBuf>,
    /// The broker the gateways' uplinks use (plain MQTT; use --config for TLS).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// The gateways' `uplink.topic_prefix`.
    #[arg(long, default_value = "weir")]
    pub topic_prefix: String,
    /// How long to wait for outcomes (a gateway watches a new version for `fleet.watch`).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub wait: Duration,
    /// Stop waiting once this many gateways reported a final outcome (default: 1 for
    /// `--gateway`; for `--group`, wait the whole `--wait`).
    #[arg(long)]
    pub expect: Option<usize>,
    /// Write the signed bundle to this file instead of publishing it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    weir_drivers::duration::parse(s).map_err(|e| e.to_string())
}

pub fn main(args: PushArgs) -> anyhow::Result<ExitCode> {
    let target = match (&args.gateway, &args.group) {
        (Some(id), _) => Target::Gateway(id.clone()),
        (None, Some(label)) => Target::group(label)
            .with_context(|| format!("--group `{label}`: want key=value without / + # ="))?,
        (None, None) => bail!("name a --gateway or a --group"),
    };
    let key = crate::fleet::keys::load_signing_key(&args.key)?;
    let key_name = match &args.key_name {
        Some(name) => name.clone(),
        None => args
            .key
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .context("--key has no file name")?,
    };
    let version = match args.version {
        Some(v) => v,
        None => u64::try_from(weir_drivers::now_us() / 1_000_000).unwrap_or(0),
    };
    let mut bundle = Bundle::new(version, target.name(), read_rules(&args.dir)?);
    if let Some(path) = &args.agent_config {
        bundle.config = Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        );
    }
    bundle.sign(&key, &key_name);
    let json = bundle.to_json();
    let hash = bundle.hash();
    eprintln!(
        "bundle: version {version}, {} rule file(s), {} bytes, hash {hash}, for {}",
        bundle.rules.len(),
        json.len(),
        target.name()
    );
    if json.len() > crate::fleet::bundle::MAX_BYTES {
        bail!(
            "the bundle is {} bytes; at most {} (gateways take MQTT packets up to 1 MiB)",
            json.len(),
            crate::fleet::bundle::MAX_BYTES
        );
    }
    if let Some(out) = &args.out {
        std::fs::write(out, &json).with_context(|| format!("cannot write {}", out.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let expect = args.expect.or(match target {
        Target::Gateway(_) => Some(1),
        Target::Group { .. } => None,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(publish_and_wait(&args, &target, json, &hash, expect))
}

/// The rule files of `dir`, by file name.
fn read_rules(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut rules = BTreeMap::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if !path.is_file() || !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        crate::fleet::bundle::check_name(&name).map_err(anyhow::Error::msg)?;
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        rules.insert(name, text);
    }
    if rules.is_empty() {
        bail!("{}: no rule files (*.yaml, *.yml)", dir.display());
    }
    Ok(rules)
}

/// Only the `uplink:` section of a config file, for `--config`.
#[derive(serde::Deserialize)]
struct UplinkOnly {
    uplink: crate::uplink::UplinkConfig,
}

/// The broker connection: from `--config`'s `uplink:` section, else `--host`/`--port`.
fn connection(args: &PushArgs) -> anyhow::Result<(rumqttc::MqttOptions, String)> {
    let mut uplink = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let file = path.display().to_string();
            let mut only: UplinkOnly = serde_saphyr::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}", crate::config::yaml_problem(&file, &e)))?;
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            if let Some(tls) = only.uplink.tls.as_mut() {
                tls.resolve_paths(|p| {
                    if p.is_absolute() {
                        p.to_path_buf()
                    } else {
                        base.join(p)
                    }
                });
            }
            only.uplink
        }
        None => crate::uplink::UplinkConfig {
            host: args.host.clone(),
            port: args.port,
            topic_prefix: args.topic_prefix.clone(),
            ..Default::default()
        },
    };
    // Not a gateway: no presence, no last will on a gateway's status topic.
    uplink.status = false;
    uplink.client_id = Some(format!("weir-push-{}", std::process::id()));
    let mut opts = crate::uplink::mqtt_options(&uplink, "push")?;
    opts.set_max_packet_size(4 << 20, 4 << 20);
    Ok((opts, uplink.topic_prefix))
}

async fn publish_and_wait(
    args: &PushArgs,
    target: &Target,
    bundle: Vec<u8>,
    hash: &str,
    expect: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let (opts, prefix) = connection(args)?;
    let (client, mut events) = AsyncClient::new(opts, 8);
    let status_topics = format!("{prefix}/fleet/status/+");
    let deadline = tokio::time::Instant::now() + args.wait;
    let mut started: Option<Instant> = None;
    let mut finals: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut on_trial: BTreeSet<String> = BTreeSet::new();
    loop {
        let event = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            e = events.poll() => e,
        };
        match event {
            // Clean session: subscribe on every connection.
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                client.try_subscribe(&status_topics, QoS::AtLeastOnce)?;
            }
            Ok(Event::Incoming(Packet::SubAck(_))) if started.is_none() => {
                // Subscribed first, so no status written after the publish is missed.
                client.try_publish(
                    target.topic(&prefix),
                    QoS::AtLeastOnce,
                    true,
                    bundle.clone(),
                )?;
                started = Some(Instant::now());
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                if let Some(t) = started {
                    eprintln!(
                        "published to {} in {} ms; waiting for gateways",
                        target.topic(&prefix),
                        t.elapsed().as_millis()
                    );
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Ok(status) = serde_json::from_slice::<Status>(&p.payload) else {
                    continue;
                };
                let Some(last) = status.last.as_ref().filter(|a| a.hash == hash) else {
                    continue;
                };
                let secs = started.map_or(0.0, |t| t.elapsed().as_secs_f64());
                let gw = &status.gateway;
                match last.outcome {
                    Outcome::Trial => {
                        if on_trial.insert(gw.clone()) {
                            println!(
                                "{gw}: switched to version {} after {secs:.2} s; watching health",
                                last.version
                            );
                        }
                        continue;
                    }
                    outcome => {
                        if finals.contains_key(gw) {
                            continue;
                        }
                        let what = serde_json::to_string(&outcome).unwrap_or_default();
                        println!(
                            "{gw}: {} version {} after {secs:.2} s",
                            what.trim_matches('"'),
                            last.version
                        );
                        for e in &last.errors {
                            println!("  {e}");
                        }
                        finals.insert(gw.clone(), outcome);
                    }
                }
                if expect.is_some_and(|n| finals.len() >= n) {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("broker connection: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let _ = client.try_disconnect();
    let failed = finals.values().filter(|o| **o != Outcome::Applied).count();
    let applied = finals.len() - failed;
    println!(
        "{applied} applied, {failed} not applied, {} answered",
        finals.len()
    );
    if started.is_none() {
        bail!(
            "could not publish to the broker at {}:{}",
            args.host,
            args.port
        );
    }
    if failed > 0 {
        return Ok(ExitCode::FAILURE);
    }
    if finals.is_empty() || expect.is_some_and(|n| finals.len() < n) {
        eprintln!(
            "weir push: timed out after {} s waiting for gateways",
            args.wait.as_secs()
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

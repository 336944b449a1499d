//! Disk full: the outbox lives on a small tmpfs that fills up. The agent keeps running and
//! committing, the overflow policy (`drop_oldest`) evicts the oldest aggregates to make room,
//! every step is counted, and once space returns the outbox grows again.
//!
//! Needs root (or CAP_SYS_ADMIN) to mount the tmpfs; without it the test says so loudly and
//! passes without checking anything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use weir_tests::{Agent, Collector, Mosquitto, TestDir, free_port, wait_until};

use crate::observability::{get, sample};

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Option<Tmpfs>> {
        std::fs::create_dir_all(path)?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .context("running mount")?;
        if !out.status.success() {
            eprintln!(
                "\n*** SKIPPED disk_full: cannot mount a tmpfs (needs root): {}***\n",
                String::from_utf8_lossy(&out.stderr)
            );
            return Ok(None);
        }
        Ok(Some(Tmpfs(path.to_owned())))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn scrape(port: u16) -> Result<String> {
    let (code, body) = get(port, "/metrics")?;
    anyhow::ensure!(code == 200, "/metrics answered {code}");
    Ok(body)
}

fn value(metrics: &str, series: &str) -> f64 {
    sample(metrics, series).unwrap_or(0.0)
}

/// Waits until the agent has counted a full disk; returns that scrape.
fn wait_for_full_disk(agent: &mut Agent, port: u16) -> Result<String> {
    wait_until("the disk to fill", Duration::from_secs(90), || {
        let m = scrape(port)?;
        Ok((value(&m, "weir_outbox_disk_full_total") >= 1.0).then_some(m))
    })
    .map_err(|e| agent.explain(e))
}

#[test]
fn a_full_disk_keeps_the_agent_running_evicting_by_policy_and_it_recovers() -> Result<()> {
    let dir = TestDir::new("disk-full")?;
    let disk = dir.path().join("disk");
    // 4 MiB: 2 for the filler, 1 for the outbox's reserve, 1 for the outbox.
    let Some(_tmpfs) = Tmpfs::mount(&disk, "4m")? else {
        return Ok(());
    };
    // Most of the space taken by something else; removing it is "space returns".
    let filler = disk.join("filler");
    std::fs::write(&filler, vec![0u8; 2 << 20]).context("writing the filler file")?;

    dir.write(
        "rules.yaml",
        "rules:\n\
         \x20 - name: flood\n\
         \x20   window: { count: 2 }\n\
         \x20   aggregates: [count, mean, min, max, sum, first, last]\n\
         \x20 - name: flood-2\n\
         \x20   window: { count: 2 }\n\
         \x20   aggregates: [count, mean, min, max, sum, first, last]\n",
    )?;
    let metrics_port = free_port()?;
    let yaml = format!(
        "gateway_id: gw-full\nrules: [rules.yaml]\nsources: [{{simulator: {{interval: 5ms}}}}]\n\
         outbox: {{path: {:?}, overflow: drop_oldest}}\n\
         metrics: {{listen: \"127.0.0.1:{metrics_port}\"}}\n",
        disk.join("outbox.db").display().to_string()
    );
    let mut agent = Agent::start(&dir, &yaml)?;
    agent.wait_for_log("metrics endpoint listening", Duration::from_secs(20))?;
    let scrape = || scrape(metrics_port);
    let stored = |m: &str| value(m, "weir_outbox_bytes{lane=\"aggregates\"}");

    let full = wait_for_full_disk(&mut agent, metrics_port)?;
    agent.wait_for_line(
        "an ERROR about the full disk",
        Duration::from_secs(5),
        |l| l.contains("ERROR") && l.contains("disk full"),
    )?;
    // Still full, still running: new records keep being committed, old ones evicted.
    let committed = value(&full, "weir_outbox_committed_total");
    let evicted = value(&full, "weir_outbox_evicted_full_total");
    let mut held = 0.0f64;
    let m = wait_until(
        "commits and evictions to go on while the disk is full",
        Duration::from_secs(60),
        || {
            let m = scrape()?;
            held = held.max(stored(&m));
            Ok(
                (value(&m, "weir_outbox_committed_total") >= committed + 1000.0
                    && value(&m, "weir_outbox_evicted_full_total") >= evicted + 500.0)
                    .then_some(m),
            )
        },
    )
    .map_err(|e| agent.explain(e))?;
    assert_eq!(get(metrics_port, "/healthz")?.0, 200, "healthy while full");
    // Issue 15: the held bound used to shrink on every full append until nothing was left.
    assert!(
        stored(&m) >= stored(&full) / 2.0,
        "what was stored must be held: {} bytes now, {} when the disk filled",
        stored(&m),
        stored(&full)
    );
    assert_eq!(
        value(&m, "weir_outbox_evicted_total"),
        value(&m, "weir_outbox_evicted_full_total"),
        "every loss is by the overflow policy, counted\n{m}"
    );
    let failed = value(&m, "weir_outbox_write_errors_total");
    agent.assert_running()?;

    std::fs::remove_file(&filler)?;
    wait_until(
        "the outbox to grow past what it held while full",
        Duration::from_secs(60),
        || Ok((stored(&scrape()?) > held * 1.5).then_some(())),
    )
    .map_err(|e| agent.explain(e))?;
    let m = scrape()?;
    eprintln!(
        "disk full: held at {held} bytes, {} disk-full appends, {failed} failed commits, {} evicted; \
         after space returned: {} bytes",
        value(&m, "weir_outbox_disk_full_total"),
        value(&m, "weir_outbox_evicted_full_total"),
        stored(&m)
    );
    let status = agent.terminate(Duration::from_secs(20))?;
    assert!(status.success(), "{status}\n{}", agent.log_tail());
    Ok(())
}

/// Regression for issue 15 item 2: with the uplink down, a full disk used to commit and evict
/// every batch at once (0 records left in every lane). Now what was stored before the disk
/// filled stays, new records are dropped by the policy and counted, the WAL stays bounded, and
/// once the uplink comes up the stored records arrive.
#[test]
fn a_full_disk_with_the_uplink_down_keeps_what_it_stored_and_delivers_it_later() -> Result<()> {
    let dir = TestDir::new("disk-full-down")?;
    let disk = dir.path().join("disk");
    let Some(_tmpfs) = Tmpfs::mount(&disk, "3m")? else {
        return Ok(());
    };
    dir.write(
        "rules.yaml",
        "rules:\n\
         \x20 - name: flood\n\
         \x20   window: { count: 2 }\n\
         \x20   aggregates: [count, mean, min, max, sum, first, last]\n",
    )?;
    let metrics_port = free_port()?;
    // Nothing listens here until the test starts a broker: the uplink is down.
    let cloud_port = free_port()?;
    let yaml = format!(
        "gateway_id: gw-held\nrules: [rules.yaml]\nsources: [{{simulator: {{interval: 5ms}}}}]\n\
         outbox: {{path: {:?}, overflow: drop_newest}}\n\
         uplink: {{host: 127.0.0.1, port: {cloud_port}}}\n\
         metrics: {{listen: \"127.0.0.1:{metrics_port}\"}}\n",
        disk.join("outbox.db").display().to_string()
    );
    let mut agent = Agent::start(&dir, &yaml)?;
    agent.wait_for_log("metrics endpoint listening", Duration::from_secs(20))?;
    let scrape = || scrape(metrics_port);
    let records = |m: &str| value(m, "weir_outbox_records{lane=\"aggregates\"}");

    let full = wait_for_full_disk(&mut agent, metrics_port)?;
    let held = records(&full);
    assert!(
        held >= 100.0,
        "only {held} records stored before the disk filled"
    );
    let refused = value(&full, "weir_outbox_refused_full_total");
    // The flood goes on: new records are dropped and counted, the stored ones stay.
    let m = wait_until(
        "new records to be dropped (counted) while the disk is full",
        Duration::from_secs(60),
        || {
            let m = scrape()?;
            Ok((value(&m, "weir_outbox_refused_full_total") >= refused + 2000.0).then_some(m))
        },
    )
    .map_err(|e| agent.explain(e))?;
    assert!(
        records(&m) >= held,
        "stored records lost: {} now, {held} when the disk filled\n{m}",
        records(&m)
    );
    assert_eq!(value(&m, "weir_outbox_evicted_full_total"), 0.0, "{m}");
    assert_eq!(
        value(&m, "weir_outbox_evicted_total"),
        value(&m, "weir_outbox_refused_full_total"),
        "every loss is counted by reason\n{m}"
    );
    let wal = std::fs::metadata(disk.join("outbox.db-wal")).map_or(0, |m| m.len());
    assert!(wal <= 1 << 20, "WAL not bounded: {wal} bytes");
    agent.wait_for_line(
        "the ERROR naming the bound in force",
        Duration::from_secs(5),
        |l| l.contains("ERROR") && l.contains("disk full") && l.contains("bound_bytes"),
    )?;
    assert!(
        !agent.log_contents().contains("max_bytes=67108864"),
        "the ERROR must report the bound in force, not max_bytes"
    );
    agent.assert_running()?;

    // The uplink comes up: the records stored before the disk filled arrive, oldest first.
    let cloud = Mosquitto::builder().port(cloud_port).start()?;
    let collector = Collector::start(cloud.port(), "weir/#")?;
    let got = collector
        .wait_for(
            "the held records on the uplink",
            Duration::from_secs(90),
            |msgs| weir_tests::distinct_records(msgs).len() as f64 >= held,
        )
        .map_err(|e| agent.explain(e))?;
    let first = got
        .iter()
        .filter_map(|m| m.u64("seq"))
        .min()
        .context("no seq on the wire")?;
    assert_eq!(first, 1, "the first record stored must arrive");
    eprintln!(
        "disk full with the uplink down: {held} records held, {} new ones dropped (counted), \
         WAL {wal} bytes; {} delivered once the uplink came up",
        value(&m, "weir_outbox_refused_full_total"),
        weir_tests::distinct_records(&got).len()
    );
    Ok(())
}

//! `weir replay` as a user runs it: a rule file and a recording in, JSON lines out, on the
//! real binary. The engine's own behaviour is unit- and property-tested in `weir-rules`; this
//! checks the command's contract: exit codes, where output and diagnostics go, and how a
//! grouped rule's events are named.

use anyhow::Result;
use weir_tests::{TestDir, weir_command};

use crate::common::replay_events;

const RULES: &str = "rules:\n  - name: high\n    select: { metric: \"*\" }\n    window: { tumbling: 1h }\n    aggregates: [count]\n    alert: { when: \"count > 2\", severity: info }\n";

#[test]
fn replay_prints_one_json_event_per_line_and_a_summary_on_stderr() -> Result<()> {
    let dir = TestDir::new("replay")?;
    let rules = dir.write("rules.yaml", RULES)?;
    let data = dir.write(
        "pump-7.csv",
        "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:10:00,2\n2014-04-01 00:20:00,3\nnot,a,row\n2014-04-01 01:00:00,4\n",
    )?;
    let (events, stderr) = replay_events(&rules, &data)?;
    // Hour 0: 3 samples → window + raised. Hour 1 holds one sample when the file ends: a
    // partial window, not judged and never stamped after the last sample, but counted.
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[0]["device"], "pump-7", "named after the file");
    assert_eq!(events[0]["values"]["count"], 3.0);
    assert_eq!(events[1]["state"], "raised");
    assert!(stderr.contains("pump-7.csv:5: skipped"), "{stderr}");
    assert!(
        stderr.contains("4 samples, 2 events (1 alerts), 1 lines skipped"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 partial windows at the end not judged"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn replay_with_a_broken_rule_file_exits_2_and_names_file_line_col() -> Result<()> {
    let dir = TestDir::new("replay-bad-rules")?;
    let rules = dir.write(
        "rules.yaml",
        "rules:\n  - name: x\n    window: { tumbling: 1h }\n    alert: { when: \"mean >> 3\" }\n",
    )?;
    let data = dir.write("d.csv", "timestamp,value\n1,1\n")?;
    let out = weir_command()?
        .arg("replay")
        .arg("--rules")
        .arg(&rules)
        .arg(&data)
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:4:", rules.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(out.stdout.is_empty());
    Ok(())
}

#[test]
fn replay_runs_a_grouped_rule_with_one_window_per_device_over_its_series() -> Result<()> {
    let dir = TestDir::new("replay-group-by")?;
    let rules = dir.write(
        "rules.yaml",
        "rules:\n  - name: bearing-max\n    select: { device: \"pump-*\", metric: \"bearing_temp_*\" }\n    group_by: device\n    window: { tumbling: 1h }\n    aggregates: [max, count]\n    alert: { when: \"max > 85\", message: \"{device} {metric} {value:.1}\" }\n",
    )?;
    // Two pumps' bearings interleaved, plus a flow reading the rule does not select.
    let data = dir.write(
        "pumps.csv",
        "timestamp,device,metric,value\n\
         2014-04-01 00:00:00,pump-1,bearing_temp_de,70\n\
         2014-04-01 00:01:00,pump-2,bearing_temp_de,60\n\
         2014-04-01 00:02:00,pump-1,bearing_temp_nde,91\n\
         2014-04-01 00:03:00,pump-1,flow,500\n\
         2014-04-01 00:04:00,pump-2,bearing_temp_nde,61\n\
         2014-04-01 00:05:00,pump-1,bearing_temp_de,72\n\
         2014-04-01 01:00:00,pump-1,bearing_temp_de,70\n\
         2014-04-01 01:00:00,pump-2,bearing_temp_de,60\n",
    )?;
    let (events, _) = replay_events(&rules, &data)?;
    // One window per pump (closed by the samples at 01:00), and pump-1's alert; the hour
    // from 01:00 is partial when the file ends.
    assert_eq!(events.len(), 3, "{events:#?}");
    let window = |device: &str| {
        events
            .iter()
            .find(|e| e["device"] == device && e["kind"] == "window")
            .cloned()
    };
    let one = window("pump-1").expect("a window for pump-1");
    assert_eq!(one["metric"], "bearing_temp_*");
    assert_eq!(one["rule"], "bearing-max");
    assert_eq!(one["values"]["max"], 91.0);
    assert_eq!(one["values"]["count"], 3.0);
    let two = window("pump-2").expect("a window for pump-2");
    assert_eq!(two["values"]["max"], 61.0);
    assert_eq!(two["values"]["count"], 2.0);
    let alert = events
        .iter()
        .find(|e| e["state"] == "raised")
        .expect("pump-1's alert");
    assert_eq!(alert["device"], "pump-1");
    assert_eq!(alert["message"], "pump-1 bearing_temp_* 91.0");
    Ok(())
}

#[test]
fn replay_with_a_config_gives_devices_its_labels_for_select_and_group_by() -> Result<()> {
    let dir = TestDir::new("replay-labels")?;
    // A gateway's config as is: only `labels:` is read, the sources are not.
    let config = dir.write(
        "weir.yaml",
        "gateway_id: gw-1\nsources:\n  - simulator: { devices: 1 }\nlabels:\n  - { devices: \"pump-*\", set: { site: north } }\n  - { devices: \"fan-*\", set: { site: south } }\n  - { devices: \"pump-2\", set: { kind: spare } }\n",
    )?;
    let rules = dir.write(
        "rules.yaml",
        "rules:\n  - name: site-max\n    select: { metric: temp }\n    group_by: label.site\n    window: { tumbling: 1h }\n    aggregates: [max, count]\n  - name: spares\n    select: { metric: temp, labels: { kind: spare } }\n    window: { tumbling: 1h }\n    aggregates: [count]\n",
    )?;
    let data = dir.write(
        "plant.csv",
        "timestamp,device,metric,value\n\
         2014-04-01 00:00:00,pump-1,temp,70\n\
         2014-04-01 00:01:00,pump-2,temp,75\n\
         2014-04-01 00:02:00,fan-9,temp,40\n\
         2014-04-01 00:03:00,valve-3,temp,99\n\
         2014-04-01 00:04:00,pump-1,temp,72\n\
         2014-04-01 01:00:00,pump-2,temp,70\n\
         2014-04-01 01:00:00,fan-9,temp,40\n",
    )?;
    // The samples at 01:00 close hour 0; hour 1 is partial at the end of the file.
    let out = weir_command()?
        .arg("replay")
        .arg("--rules")
        .arg(&rules)
        .arg("--config")
        .arg(&config)
        .arg(&data)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events: Vec<serde_json::Value> = String::from_utf8(out.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let window = |rule: &str, device: &str| {
        events
            .iter()
            .find(|e| e["rule"] == rule && e["device"] == device)
            .cloned()
    };
    // valve-3 has no site: no group takes it, so its 99 shows nowhere.
    let north = window("site-max", "site=north").expect("north's window");
    assert_eq!(north["values"]["max"], 75.0);
    assert_eq!(north["values"]["count"], 3.0);
    let south = window("site-max", "site=south").expect("south's window");
    assert_eq!(south["values"]["count"], 1.0);
    let spare = window("spares", "pump-2").expect("the spare pump's window");
    assert_eq!(spare["values"]["count"], 1.0);
    assert_eq!(events.len(), 3, "{events:#?}");

    // Without the config no device has labels: neither rule sees anything.
    let out = weir_command()?
        .arg("replay")
        .arg("--rules")
        .arg(&rules)
        .arg(&data)
        .output()?;
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}

#[test]
fn replay_with_a_broken_labels_section_exits_2_and_names_file_line_col() -> Result<()> {
    let dir = TestDir::new("replay-bad-labels")?;
    let config = dir.write(
        "weir.yaml",
        "labels:\n  - { devices: \"pump-*\", sett: { site: north } }\n",
    )?;
    let rules = dir.write("rules.yaml", RULES)?;
    let data = dir.write("d.csv", "timestamp,value\n1,1\n")?;
    let out = weir_command()?
        .arg("replay")
        .arg("--rules")
        .arg(&rules)
        .arg("--config")
        .arg(&config)
        .arg(&data)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("weir.yaml:2:"), "{stderr}");
    assert!(stderr.contains("sett"), "{stderr}");
    assert!(out.stdout.is_empty());
    Ok(())
}

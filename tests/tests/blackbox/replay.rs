//! `weir replay` as a user runs it: a rule file and a recording in, JSON lines out, on the
//! real binary. The engine's own behaviour is unit- and property-tested in `weir-rules`; this
//! checks the command's contract: exit codes, where output and diagnostics go.

use anyhow::Result;
use weir_tests::{TestDir, weir_command};

const RULES: &str = "rules:\n  - name: high\n    select: { metric: \"*\" }\n    window: { tumbling: 1h }\n    aggregates: [count]\n    alert: { when: \"count > 2\", severity: info }\n";

#[test]
fn replay_prints_one_json_event_per_line_and_a_summary_on_stderr() -> Result<()> {
    let dir = TestDir::new("replay")?;
    let rules = dir.write("rules.yaml", RULES)?;
    let data = dir.write(
        "pump-7.csv",
        "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:10:00,2\n2014-04-01 00:20:00,3\nnot,a,row\n2014-04-01 01:00:00,4\n",
    )?;
    let out = weir_command()?
        .arg("replay")
        .arg("--rules")
        .arg(&rules)
        .arg(&data)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events: Vec<serde_json::Value> = String::from_utf8(out.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    // Hour 0: 3 samples → window + raised. Hour 1, closed at the end of the file: 1 sample
    // → window + cleared.
    assert_eq!(events.len(), 4, "{events:#?}");
    assert_eq!(events[0]["device"], "pump-7", "named after the file");
    assert_eq!(events[0]["values"]["count"], 3.0);
    assert_eq!(events[1]["state"], "raised");
    assert_eq!(events[3]["state"], "cleared");
    assert!(stderr.contains("pump-7.csv:5: skipped"), "{stderr}");
    assert!(
        stderr.contains("4 samples, 4 events (2 alerts), 1 lines skipped"),
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

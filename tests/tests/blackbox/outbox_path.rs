//! An outbox path the agent cannot write is refused by `weir check` (exit 2, a clear message)
//! before `weir run` would refuse it: a directory, and a directory on a read-only mount.

use std::process::Command;

use anyhow::{Context, Result};
use weir_tests::{TestDir, weir_command};

fn check(dir: &TestDir, outbox: &str) -> Result<(i32, String)> {
    dir.write(
        "rules.yaml",
        "rules:\n  - name: m\n    window: { tumbling: 1s }\n    aggregates: [mean]\n",
    )?;
    let config = dir.write(
        "weir.yaml",
        &format!(
            "gateway_id: g\nrules: [rules.yaml]\nsources: [{{simulator: {{interval: 1s}}}}]\n\
             outbox: {{path: {outbox:?}}}\nmetrics: {{listen: ~}}\n"
        ),
    )?;
    let out = weir_command()?
        .arg("check")
        .arg("-c")
        .arg(&config)
        .output()?;
    Ok((
        out.status.code().context("killed")?,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn an_outbox_path_that_is_a_directory_is_refused_by_check() -> Result<()> {
    let dir = TestDir::new("outbox-dir")?;
    std::fs::create_dir_all(dir.path().join("buffer"))?;
    let (code, err) = check(&dir, "buffer")?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is a directory"), "{err}");
    assert!(err.contains("buffer/outbox.db"), "{err}");
    Ok(())
}

#[test]
fn an_outbox_on_a_read_only_mount_is_refused_by_check() -> Result<()> {
    let dir = TestDir::new("outbox-ro")?;
    let ro = dir.path().join("ro");
    std::fs::create_dir_all(&ro)?;
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(&ro)
        .output()?;
    if !mounted.status.success() {
        eprintln!(
            "\n*** SKIPPED outbox_on_a_read_only_mount: cannot mount (needs root): {}***\n",
            String::from_utf8_lossy(&mounted.stderr)
        );
        return Ok(());
    }
    let result = check(&dir, "ro/outbox.db");
    let _ = Command::new("umount").arg("-l").arg(&ro).status();
    let (code, err) = result?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot write"), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    Ok(())
}

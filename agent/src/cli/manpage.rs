//! `weir(1)`, generated from the clap definitions in [`crate::cli`], so the manual cannot
//! drift from `weir --help`.
//!
//! The page is a committed file, `packaging/weir.1`, which the Debian package installs. It is
//! written by a test rather than a build script: a build script would have to compile the CLI
//! module outside the crate, and a committed page can be read and reviewed in a diff. The
//! test fails when the file is stale; `WEIR_BLESS=1 cargo test -p weir-agent man_page`
//! rewrites it.

use std::path::Path;

use clap::CommandFactory;

/// Sections clap does not know: what the exit codes, files and signals mean.
const EXTRA: &str = r#".SH "EXIT STATUS"
0 success; 1 runtime failure; 2 invalid configuration or rules (\fBweir check\fR, and
\fBweir run\fR or \fBweir replay\fR refusing to start); 3 \fBweir check \-\-diff\fR: a change
needs a restart.
.SH SIGNALS
SIGTERM or SIGINT stops cleanly: sources stop, queued samples are processed and committed,
the outbox is closed, exit 0. SIGHUP reloads: rules, labels, sources, the uplink connection,
local actions, the metrics listener and status page, and the outbox's bounds, overflow policy
and batching are applied live; \fBgateway_id\fR, \fBoutbox.path\fR, \fBoutbox.synchronous\fR,
\fBuplink.client_id\fR, \fBuplink.topic_prefix\fR, adding or removing \fBuplink\fR, the
engine's budgets, channel and checkpoint interval, \fBlog\fR and \fBfleet\fR are named in the
log and wait for a restart (\fBweir check \-\-diff\fR says which before).
.SH FILES
.TP
\fI/etc/weir/weir.yaml\fR
the configuration used when \fB\-\-config\fR is not given (a conffile of the package).
.TP
\fI/var/lib/weir/outbox.db\fR
the outbox (SQLite, WAL): results waiting for the uplink.
.TP
\fI/usr/lib/systemd/system/weir.service\fR
the systemd unit (Type=notify, watchdog, hardening).
.TP
\fI/usr/share/doc/weir/README.md\fR
the configuration, rule language, metrics and operations reference, with examples.
.SH "SEE ALSO"
\fBsystemctl\fR(1), \fBjournalctl\fR(1)
"#;

/// The page as `packaging/weir.1` should hold it.
fn render() -> std::io::Result<Vec<u8>> {
    let cmd = crate::cli::Cli::command();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    // One page: each command gets a section with its synopsis, options and own commands
    // (clap_mangen's command list would point at weir-run(1) and the like, which do not exist).
    out.extend_from_slice(b".SH COMMANDS\n");
    entries(&mut out, "weir", &cmd);
    sections(&mut out, "weir", &cmd)?;
    out.extend_from_slice(EXTRA.as_bytes());
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// A section per command under `cmd`, named `<prefix> <command>`, with its synopsis, options
/// and own commands; then the same for those, at any depth (`weir outbox purge` has options
/// of its own).
fn sections(out: &mut Vec<u8>, prefix: &str, cmd: &clap::Command) -> std::io::Result<()> {
    for sub in cmd.get_subcommands() {
        let name = format!("{prefix} {}", sub.get_name());
        let page = clap_mangen::Man::new(sub.clone().bin_name(name.clone()));
        let mut section = Vec::new();
        page.render_synopsis_section(&mut section)?;
        page.render_options_section(&mut section)?;
        let heading = format!(".SH \"{}\"", name.to_uppercase());
        let text = String::from_utf8_lossy(&section)
            .replace(".SH SYNOPSIS", &heading)
            .replace(".SH OPTIONS\n", "");
        out.extend_from_slice(text.as_bytes());
        entries(out, &name, sub);
        sections(out, &name, sub)?;
    }
    Ok(())
}

/// `.TP` entries for the commands under `cmd`, named `<prefix> <command>`.
fn entries(out: &mut Vec<u8>, prefix: &str, cmd: &clap::Command) {
    for sub in cmd.get_subcommands() {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let name = format!("{prefix} {}", sub.get_name()).replace('-', "\\-");
        out.extend_from_slice(format!(".TP\n\\fB{name}\\fR\n{about}\n").as_bytes());
    }
}

#[test]
fn man_page_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/weir.1");
    let want = render().expect("rendering to memory cannot fail");
    if std::env::var_os("WEIR_BLESS").is_some() {
        std::fs::write(&path, &want).expect("packaging/ is writable");
        return;
    }
    let have = std::fs::read(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale (the CLI changed): run `WEIR_BLESS=1 cargo test -p weir-agent man_page` \
         and commit it",
        path.display()
    );
}

/// Every command at every depth has its own section listing each of its long options, so a
/// nested command's options (`weir outbox purge --older-than`) cannot go missing again.
#[test]
fn every_command_has_a_section_with_its_options() {
    fn check(page: &str, prefix: &str, cmd: &clap::Command) {
        for sub in cmd.get_subcommands() {
            let name = format!("{prefix} {}", sub.get_name());
            let heading = format!(".SH \"{}\"\n", name.to_uppercase());
            let start = page
                .find(&heading)
                .unwrap_or_else(|| panic!("no section for {name}"));
            let body = &page[start + heading.len()..];
            let body = &body[..body.find(".SH ").unwrap_or(body.len())];
            for arg in sub.get_arguments() {
                if let Some(long) = arg.get_long() {
                    let flag = format!("\\fB\\-\\-{}\\fR", long.replace('-', "\\-"));
                    assert!(
                        body.contains(&flag),
                        "{name}: {flag} missing from its section"
                    );
                }
            }
            check(page, &name, sub);
        }
    }
    let page = String::from_utf8(render().unwrap()).unwrap();
    check(&page, "weir", &crate::cli::Cli::command());
    assert!(
        page.contains(".SH \"WEIR OUTBOX PURGE\""),
        "the nested command is reached"
    );
}

//! What changed between two configs, and whether a reload (SIGHUP) applies each change live
//! or it waits for a restart.
//!
//! One table for both sides: `weir check --diff` prints it before the operator reloads, and
//! the daemon's reload logs the same lines and applies the live ones. So what `--diff` says
//! a reload will do is what the reload does.
//!
//! A setting is live when the agent can take it without losing data or state:
//! - `rules` (and the rule files' contents): swapped between two batches, unchanged rules keep
//!   their state (`weir_rules::Engine::reload`);
//! - `labels`: the engine's label map is replaced before the rules are matched again, so a
//!   `select.labels` or `group_by: label.x` rule sees the new labels at once;
//! - `sources.<name>` whose settings changed: that source alone is stopped (a device message
//!   it had not acknowledged is redelivered by its broker) and started with the new settings;
//!   the others keep running. A source added is started, one removed is stopped (by name: a
//!   renamed source is one removed and one added);
//! - `engine.idle_close` and `engine.clock_guard`: handed to the engine's task with the rules
//!   and used from the next sample and tick on (the reload is checkpointed, so the input log
//!   never has to replay across the change);
//! - `uplink.host`, `port`, `tls`, `keep_alive`, `inflight`, `status`, `format`, `batch`:
//!   the uplink is stopped and started with them (`crate::daemon::uplink_task`); the outbox
//!   keeps every record until the broker acknowledges it, so nothing is lost;
//! - `actions`: a new local publisher is started and the engine switched to it, then the old
//!   one stopped (local actions are best effort; the uplink carries every alert anyway);
//! - `outbox.max_bytes`, `max_age`, `overflow`, `batch_max`, `batch_delay`: handed to the
//!   outbox's writer, which applies them between two commands; a lowered `max_bytes` evicts
//!   what is stored above it at once, counted, and `block`'s free-byte permits are resized
//!   (`crate::outbox::LiveSettings`, module `outbox::live`);
//! - `metrics.listen`: the listener is stopped and started on the new address, with the same
//!   counters and status page (`crate::daemon::metrics_listener`); `metrics.page.*`: the
//!   page takes them in place (`crate::daemon::page::Page::apply`).
//!
//! Everything else waits for a restart, because applying it live would move something other
//! parts hold on to: the outbox file (`outbox.path`: ids, checkpoint and input log live in
//! it) and its `synchronous` mode (set on the writer's connection and on the WAL checkpoint
//! thread's), the uplink's identity (`client_id`, `topic_prefix`, and whether there is an
//! uplink at all), the gateway id in every record's id, the engine's channel, budgets and
//! checkpoint interval, the log filter, the fleet store.
//!
//! Settings are compared by value (their `Debug` form, which shows every field), never by
//! YAML text, so comments, key order and moved lines are not changes.

use std::fmt;

use super::{Config, EngineConfig, PageConfig, SourceConfig};
use crate::outbox::OutboxConfig;
use crate::uplink::UplinkConfig;

/// How a change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// A reload (SIGHUP, or a fleet bundle) applies it while the agent runs.
    Live,
    /// The agent must be restarted for it.
    Restart,
}

/// One changed setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The setting as written in the config (`outbox.max_bytes`, `sources.line-1`).
    pub setting: String,
    /// `changed`, `added` or `removed`.
    pub what: &'static str,
    pub applies: Applies,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.applies {
            Applies::Live => "applied live by a reload",
            Applies::Restart => "needs a restart",
        };
        write!(f, "{} {}: {how}", self.setting, self.what)
    }
}

/// Compares a section field by field, in the order listed, each field named `<prefix><field>`
/// and taking effect as its [`Applies`] says. The section is destructured without `..`, so a
/// field added to its type does not compile until it is listed here: compared, or under
/// `skip` (not a setting, or compared on its own below).
macro_rules! section {
    ($changes:ident, $prefix:literal, $ty:path, $old:expr, $new:expr,
     [$($field:ident: $applies:ident),* $(,)?] $(, skip [$($skip:ident),* $(,)?])?) => {{
        let (old, new): (&$ty, &$ty) = ($old, $new);
        let $ty { $($field: _,)* $($($skip: _,)*)? } = old;
        $($changes.compare(
            concat!($prefix, stringify!($field)),
            &old.$field,
            &new.$field,
            Applies::$applies,
        );)*
    }};
}

/// Every setting that differs between `old` and `new`, in the order of the config's sections.
pub fn diff(old: &Config, new: &Config) -> Vec<Change> {
    use Applies::{Live, Restart};
    let mut changes = Changes(Vec::new());
    // Exhaustive: a new section does not compile until it is compared here.
    let Config {
        gateway_id: _,
        rules: _,
        labels: _,
        sources: _, // by name, after the other sections
        outbox: _,
        uplink: _,
        actions: _,
        engine: _,
        metrics: _,
        log: _,
        fleet: _,
    } = old;
    changes.compare("gateway_id", &old.gateway_id, &new.gateway_id, Restart);
    changes.compare("rules", &old.rules, &new.rules, Live);
    changes.compare("labels", &old.labels, &new.labels, Live);
    section!(changes, "outbox.", OutboxConfig, &old.outbox, &new.outbox, [
        path: Restart,
        max_bytes: Live,
        max_age: Live,
        overflow: Live,
        batch_max: Live,
        batch_delay: Live,
        synchronous: Restart,
    ], skip [cache_kib]); // not a setting (never read from YAML)
    match (&old.uplink, &new.uplink) {
        (Some(o), Some(n)) => section!(changes, "uplink.", UplinkConfig, o, n, [
            client_id: Restart,
            topic_prefix: Restart,
            host: Live,
            port: Live,
            tls: Live,
            keep_alive: Live,
            inflight: Live,
            status: Live,
            format: Live,
            batch: Live,
        ]),
        // Added or removed: the lanes' topics, the fleet and the overflow check depend on it.
        (o, n) => changes.compare("uplink", o, n, Restart),
    }
    changes.compare("actions", &old.actions, &new.actions, Live);
    section!(changes, "engine.", EngineConfig, &old.engine, &new.engine, [
        max_series: Restart,
        max_state_bytes: Restart,
        idle_close: Live,
        checkpoint_interval: Restart,
        channel: Restart,
        clock_guard: Live,
    ]);
    section!(changes, "metrics.", super::MetricsConfig, &old.metrics, &new.metrics,
        [listen: Live], skip [page]); // field by field next
    section!(changes, "metrics.page.", PageConfig, &old.metrics.page, &new.metrics.page, [
        enabled: Live,
        token: Live,
        max_series: Live,
    ]);
    changes.compare("log", &old.log, &new.log, Restart);
    changes.compare("fleet", &old.fleet, &new.fleet, Restart);
    let names = |c: &Config| -> Vec<String> { sources(c).map(|s| s.name().to_owned()).collect() };
    let (old_names, new_names) = (names(old), names(new));
    let added = new_names.iter().filter(|n| !old_names.contains(n));
    let removed = old_names.iter().filter(|n| !new_names.contains(n));
    for (what, names) in [
        ("changed", changed_sources(old, new)),
        ("added", added.cloned().collect()),
        ("removed", removed.cloned().collect()),
    ] {
        for name in names {
            changes.0.push(Change {
                setting: format!("sources.{name}"),
                what,
                applies: Live,
            });
        }
    }
    changes.0
}

/// The changes found so far, in the order the settings were compared.
struct Changes(Vec<Change>);

impl Changes {
    /// Notes `setting` as changed when `old` and `new` differ by value (their `Debug` form).
    fn compare(
        &mut self,
        setting: &str,
        old: &dyn fmt::Debug,
        new: &dyn fmt::Debug,
        applies: Applies,
    ) {
        if format!("{old:?}") != format!("{new:?}") {
            self.0.push(Change {
                setting: setting.to_owned(),
                what: "changed",
                applies,
            });
        }
    }
}

/// Names of the sources in both configs whose settings differ (their YAML location aside).
fn changed_sources(old: &Config, new: &Config) -> Vec<String> {
    sources(new)
        .filter_map(|n| {
            let o = sources(old).find(|o| o.name() == n.name())?;
            (format!("{o:?}") != format!("{n:?}")).then(|| n.name().to_owned())
        })
        .collect()
}

fn sources(c: &Config) -> impl Iterator<Item = &SourceConfig> {
    c.sources.iter().map(|s| &s.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Loaded, Origin};

    fn config(text: &str) -> Config {
        Loaded::from_str(text, Origin::BuiltinDemo)
            .expect("test config loads")
            .config
    }

    const BASE: &str = "
gateway_id: gw-1
labels: [{ devices: 'p-*', set: { site: north } }]
outbox: { path: /tmp/weir-diff-test/outbox.db, max_bytes: 1MiB }
sources:
  - simulator: { name: a, seed: 1, interval: 1s }
  - simulator: { name: b, seed: 1, interval: 1s }
";

    fn changed(new: &str) -> Vec<String> {
        diff(&config(BASE), &config(new))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_same_settings_written_differently_are_no_change() {
        let moved = "# a comment moves every line\n\
            gateway_id: gw-1\n\
            sources:\n  - simulator: { interval: 1s, seed: 1, name: a }\n  - simulator: { name: b, seed: 1, interval: 1s }\n\
            outbox: { max_bytes: 1048576, path: /tmp/weir-diff-test/outbox.db }\n\
            labels: [{ devices: 'p-*', set: { site: north } }]\n";
        assert_eq!(changed(moved), Vec::<String>::new());
    }

    #[test]
    fn each_change_says_whether_a_reload_applies_it() {
        let new = BASE
            .replace("site: north", "site: south")
            .replace("max_bytes: 1MiB", "max_bytes: 2MiB")
            .replace(
                "name: b, seed: 1, interval: 1s",
                "name: b, seed: 2, interval: 1s",
            )
            .replace("gw-1", "gw-2");
        assert_eq!(
            changed(&new),
            [
                "gateway_id changed: needs a restart",
                "labels changed: applied live by a reload",
                "outbox.max_bytes changed: applied live by a reload",
                "sources.b changed: applied live by a reload",
            ]
        );
    }

    #[test]
    fn an_uplink_connection_change_is_live_and_its_identity_needs_a_restart() {
        let with =
            |extra: &str| format!("{BASE}uplink: {{ host: 127.0.0.1, port: 1883{extra} }}\n");
        let old = config(&with(""));
        let moved = config(&with(", keep_alive: 10s").replace("1883", "8883"));
        let renamed = config(&with(", topic_prefix: other"));
        let said = |new: &Config| {
            diff(&old, new)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            said(&moved),
            [
                "uplink.port changed: applied live by a reload",
                "uplink.keep_alive changed: applied live by a reload"
            ]
        );
        assert_eq!(
            said(&renamed),
            ["uplink.topic_prefix changed: needs a restart"]
        );
        assert_eq!(
            diff(&config(BASE), &old)[0].to_string(),
            "uplink changed: needs a restart"
        );
    }

    #[test]
    fn metrics_and_outbox_bounds_are_live_and_the_outbox_file_needs_a_restart() {
        let new = BASE
            .replace(
                "max_bytes: 1MiB }",
                "max_bytes: 512KiB, max_age: 1d, overflow: drop_newest, batch_max: 10, synchronous: full }",
            )
            .replace("outbox.db", "other.db")
            + "metrics: { listen: 127.0.0.1:9999, page: { max_series: 10, token: abcdefghijklmnop } }\n";
        assert_eq!(
            changed(&new),
            [
                "outbox.path changed: needs a restart",
                "outbox.max_bytes changed: applied live by a reload",
                "outbox.max_age changed: applied live by a reload",
                "outbox.overflow changed: applied live by a reload",
                "outbox.batch_max changed: applied live by a reload",
                "outbox.synchronous changed: needs a restart",
                "metrics.listen changed: applied live by a reload",
                "metrics.page.token changed: applied live by a reload",
                "metrics.page.max_series changed: applied live by a reload",
            ]
        );
    }

    #[test]
    fn added_and_removed_sources_are_applied_live() {
        let new = BASE.replace("name: b,", "name: c,");
        assert_eq!(
            changed(&new),
            [
                "sources.c added: applied live by a reload",
                "sources.b removed: applied live by a reload"
            ]
        );
    }
}

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

use super::{Config, SourceConfig};

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

/// Every setting that differs between `old` and `new`, in the order of the config's sections.
pub fn diff(old: &Config, new: &Config) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut cmp = |setting: &str, a: String, b: String, applies: Applies| {
        if a != b {
            changes.push(Change {
                setting: setting.to_owned(),
                what: "changed",
                applies,
            });
        }
    };
    let d = |v: &dyn fmt::Debug| format!("{v:?}");
    use Applies::{Live, Restart};
    cmp(
        "gateway_id",
        d(&old.gateway_id),
        d(&new.gateway_id),
        Restart,
    );
    cmp("rules", d(&old.rules), d(&new.rules), Live);
    cmp("labels", d(&old.labels), d(&new.labels), Live);
    let (o, n) = (&old.outbox, &new.outbox);
    // Exhaustive: a new outbox field does not compile until it is classified here.
    let crate::outbox::OutboxConfig {
        path: _,
        max_bytes: _,
        batch_max: _,
        batch_delay: _,
        synchronous: _,
        max_age: _,
        overflow: _,
        cache_kib: _, // not a setting (never read from YAML)
    } = o;
    cmp("outbox.path", d(&o.path), d(&n.path), Restart);
    cmp("outbox.max_bytes", d(&o.max_bytes), d(&n.max_bytes), Live);
    cmp("outbox.max_age", d(&o.max_age), d(&n.max_age), Live);
    cmp("outbox.overflow", d(&o.overflow), d(&n.overflow), Live);
    cmp("outbox.batch_max", d(&o.batch_max), d(&n.batch_max), Live);
    cmp(
        "outbox.batch_delay",
        d(&o.batch_delay),
        d(&n.batch_delay),
        Live,
    );
    cmp(
        "outbox.synchronous",
        d(&o.synchronous),
        d(&n.synchronous),
        Restart,
    );
    match (&old.uplink, &new.uplink) {
        (Some(o), Some(n)) => {
            // Exhaustive: a new uplink field does not compile until it is classified here.
            let crate::uplink::UplinkConfig {
                host: _,
                port: _,
                client_id: _,
                topic_prefix: _,
                inflight: _,
                keep_alive: _,
                status: _,
                tls: _,
                format: _,
                batch: _,
            } = o;
            cmp(
                "uplink.client_id",
                d(&o.client_id),
                d(&n.client_id),
                Restart,
            );
            cmp(
                "uplink.topic_prefix",
                d(&o.topic_prefix),
                d(&n.topic_prefix),
                Restart,
            );
            cmp("uplink.host", d(&o.host), d(&n.host), Live);
            cmp("uplink.port", d(&o.port), d(&n.port), Live);
            cmp("uplink.tls", d(&o.tls), d(&n.tls), Live);
            cmp(
                "uplink.keep_alive",
                d(&o.keep_alive),
                d(&n.keep_alive),
                Live,
            );
            cmp("uplink.inflight", d(&o.inflight), d(&n.inflight), Live);
            cmp("uplink.status", d(&o.status), d(&n.status), Live);
            cmp("uplink.format", d(&o.format), d(&n.format), Live);
            cmp("uplink.batch", d(&o.batch), d(&n.batch), Live);
        }
        // Added or removed: the lanes' topics, the fleet and the overflow check depend on it.
        (o, n) => cmp("uplink", d(o), d(n), Restart),
    }
    cmp("actions", d(&old.actions), d(&new.actions), Live);
    let (o, n) = (&old.engine, &new.engine);
    cmp(
        "engine.max_series",
        d(&o.max_series),
        d(&n.max_series),
        Restart,
    );
    cmp(
        "engine.max_state_bytes",
        d(&o.max_state_bytes),
        d(&n.max_state_bytes),
        Restart,
    );
    cmp(
        "engine.idle_close",
        d(&o.idle_close),
        d(&n.idle_close),
        Live,
    );
    cmp(
        "engine.checkpoint_interval",
        d(&o.checkpoint_interval),
        d(&n.checkpoint_interval),
        Restart,
    );
    cmp("engine.channel", d(&o.channel), d(&n.channel), Restart);
    cmp(
        "engine.clock_guard",
        d(&o.clock_guard),
        d(&n.clock_guard),
        Live,
    );
    let (o, n) = (&old.metrics, &new.metrics);
    let super::PageConfig {
        enabled: _,
        token: _,
        max_series: _,
    } = &o.page;
    cmp("metrics.listen", d(&o.listen), d(&n.listen), Live);
    cmp(
        "metrics.page.enabled",
        d(&o.page.enabled),
        d(&n.page.enabled),
        Live,
    );
    cmp(
        "metrics.page.token",
        d(&o.page.token),
        d(&n.page.token),
        Live,
    );
    cmp(
        "metrics.page.max_series",
        d(&o.page.max_series),
        d(&n.page.max_series),
        Live,
    );
    cmp("log", d(&old.log), d(&new.log), Restart);
    cmp("fleet", d(&old.fleet), d(&new.fleet), Restart);
    for name in changed_sources(old, new) {
        changes.push(Change {
            setting: format!("sources.{name}"),
            what: "changed",
            applies: Live,
        });
    }
    let names = |c: &Config| -> Vec<String> { sources(c).map(|s| s.name().to_owned()).collect() };
    let (old_names, new_names) = (names(old), names(new));
    for name in new_names.iter().filter(|n| !old_names.contains(n)) {
        changes.push(Change {
            setting: format!("sources.{name}"),
            what: "added",
            applies: Live,
        });
    }
    for name in old_names.iter().filter(|n| !new_names.contains(n)) {
        changes.push(Change {
            setting: format!("sources.{name}"),
            what: "removed",
            applies: Live,
        });
    }
    changes
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

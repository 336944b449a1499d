//! The checks serde cannot make: values that depend on each other or on the machine.
//!
//! Its own file because it runs on a parsed [`Config`], after serde has refused every value
//! that is wrong on its own, and it needs a second view of the text ([`Locations`]) to point
//! at the values it concerns.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Config, Problem, SourceConfig};

/// Where the values that checks across sections look at are written: a second, lenient parse
/// of the same text, so the runtime types need not carry locations.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Locations {
    #[serde(default)]
    outbox: Option<OutboxLocations>,
    #[serde(default)]
    metrics: Option<MetricsLocations>,
}

#[derive(Debug, Default, Deserialize)]
struct MetricsLocations {
    #[serde(default)]
    listen: Option<Spanned<serde::de::IgnoredAny>>,
}

#[derive(Debug, Default, Deserialize)]
struct OutboxLocations {
    #[serde(default)]
    path: Option<Spanned<serde::de::IgnoredAny>>,
    #[serde(default)]
    overflow: Option<Spanned<serde::de::IgnoredAny>>,
}

impl Locations {
    fn outbox(
        &self,
        field: fn(&OutboxLocations) -> Option<&Spanned<serde::de::IgnoredAny>>,
    ) -> Option<&serde_saphyr::Location> {
        self.outbox.as_ref().and_then(field).map(|s| &s.referenced)
    }
}

/// Checks what serde cannot: values that depend on each other or on the machine, names,
/// patterns. Collects every problem. Values that are wrong on their own are refused while
/// parsing (see the `deserialize_with` of each field), where their location is exact.
pub(super) fn validate(config: &Config, at: &Locations, file: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |at: Option<&serde_saphyr::Location>, message: String| {
        let (line, column) = at.map_or((0, 0), |l| (l.line(), l.column()));
        problems.push(Problem {
            file: file.to_owned(),
            line,
            column,
            message,
        })
    };
    if let Err(e) = config.device_labels() {
        problem(None, format!("labels: {e}"));
    }
    let mut names = std::collections::HashSet::new();
    for (i, source) in config.sources.iter().enumerate() {
        let at = Some(&source.referenced);
        let source = &source.value;
        if !names.insert(source.name()) {
            problem(
                at,
                format!(
                    "sources[{i}]: the name `{}` is used twice; give each source its own `name`",
                    source.name()
                ),
            );
        }
        let checked = match source {
            SourceConfig::Mqtt(c) => c.validate(),
            SourceConfig::Simulator(c) => c.validate(),
            SourceConfig::Serial(c) => c.validate(),
            SourceConfig::Modbus(c) => c.validate(),
        };
        if let Err(e) = checked {
            problem(at, format!("sources[{i}]: {e}"));
        }
    }
    if config.outbox.overflow == crate::outbox::Overflow::Block && config.uplink.is_none() {
        problem(
            at.outbox(|o| o.overflow.as_ref()),
            "outbox.overflow: `block` needs an `uplink`: without one nothing ever makes room \
             and the sources would wait forever (use drop_oldest or drop_newest)"
                .to_owned(),
        );
    }
    if config.outbox.path.is_dir() {
        problem(
            at.outbox(|o| o.path.as_ref()),
            format!(
                "outbox.path {} is a directory; name the database file in it, e.g. {}",
                config.outbox.path.display(),
                config.outbox.path.join("outbox.db").display()
            ),
        );
    }
    if let Some(fleet) = &config.fleet {
        if config.uplink.is_none() {
            problem(
                None,
                "fleet: bundles arrive over the uplink; add an `uplink`".to_owned(),
            );
        }
        for (field, message) in fleet.problems() {
            problem(None, format!("fleet.{field}: {message}"));
        }
    }
    if let Some(addr) = config.metrics.listen
        && !addr.ip().is_loopback()
        && config.metrics.page.enabled
        && config.metrics.page.token.is_none()
    {
        problem(
            at.metrics
                .as_ref()
                .and_then(|m| m.listen.as_ref())
                .map(|s| &s.referenced),
            format!(
                "metrics.listen: {addr} is not a loopback address, so the status page would \
                 show this gateway to its whole network; set metrics.page.token (or \
                 metrics.page.enabled: false)"
            ),
        );
    }
    if config.sources.is_empty() {
        problem(
            None,
            "no sources: add a `simulator` or an `mqtt` source".to_owned(),
        );
    }
    // In the order of the file, as an editor would walk them.
    problems.sort_by_key(|p| (p.line, p.column));
    problems
}

//! Device labels: what a gateway's config says about its devices (site, line, kind...), so
//! a rule can select `labels: { kind: pump }` instead of listing device names.
//!
//! Labels are assigned to device-name patterns in order; a device gets the labels of every
//! pattern it matches, a later pattern overriding an earlier one's value for the same key.
//! They are looked up once, when a series is interned, so they cost nothing per sample.

use crate::schema::Glob;

/// `(name, value)` pairs.
type Labels = Vec<(Box<str>, Box<str>)>;

/// Labels by device-name pattern, in the order given.
#[derive(Debug, Clone, Default)]
pub struct DeviceLabels {
    entries: Vec<(Glob, Labels)>,
}

/// A pattern that is not a valid glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("device pattern `{pattern}`: {message}")]
pub struct LabelError {
    pub pattern: String,
    pub message: String,
}

impl DeviceLabels {
    /// `(device pattern, labels)` pairs, in priority order (later wins).
    pub fn new<I, L>(entries: I) -> Result<DeviceLabels, LabelError>
    where
        I: IntoIterator<Item = (String, L)>,
        L: IntoIterator<Item = (String, String)>,
    {
        let entries = entries
            .into_iter()
            .map(|(pattern, labels)| {
                let glob = Glob::new(&pattern).map_err(|(_, message)| LabelError {
                    pattern: pattern.clone(),
                    message,
                })?;
                let labels = labels
                    .into_iter()
                    .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                    .collect();
                Ok((glob, labels))
            })
            .collect::<Result<_, _>>()?;
        Ok(DeviceLabels { entries })
    }

    /// The labels of `device`.
    pub fn of(&self, device: &str) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = Vec::new();
        for (glob, labels) in &self.entries {
            if !glob.matches(device) {
                continue;
            }
            for (k, v) in labels {
                match out.iter_mut().find(|(key, _)| *key == &**k) {
                    Some(slot) => slot.1 = v,
                    None => out.push((k, v)),
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn later_patterns_override_earlier_ones() {
        let labels = DeviceLabels::new([
            ("*".to_owned(), pairs(&[("site", "north")])),
            ("pump-*".to_owned(), pairs(&[("kind", "pump")])),
            ("pump-9".to_owned(), pairs(&[("site", "south")])),
        ])
        .unwrap();
        assert_eq!(labels.of("fan-1"), [("site", "north")]);
        assert_eq!(labels.of("pump-1"), [("site", "north"), ("kind", "pump")]);
        assert_eq!(labels.of("pump-9"), [("site", "south"), ("kind", "pump")]);
    }

    #[test]
    fn a_bad_pattern_is_named() {
        let e = DeviceLabels::new([("pump-[1]".to_owned(), pairs(&[]))]).unwrap_err();
        assert_eq!(e.pattern, "pump-[1]");
    }
}

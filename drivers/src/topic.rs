//! Topic patterns: how an MQTT topic names the device and metric a payload belongs to.
//!
//! Devices rarely agree on a topic layout, so the layout is configuration, not code:
//! `plant/{device}/{metric}` captures two levels, `+` matches one level without capturing, `#`
//! (last only) matches the rest, and any other level is a literal. A pattern is parsed and
//! validated once, when the configuration is loaded, so a typo is reported with the config
//! file's location instead of silently matching nothing at runtime. The broker-side filter is
//! derived from the pattern ([`TopicPattern::filter`]), so the two cannot drift apart.
//!
//! ```
//! use weir_drivers::topic::TopicPattern;
//! let p = TopicPattern::parse("plant/{device}/{metric}").unwrap();
//! assert_eq!(p.filter(), "plant/+/+");
//! assert_eq!(p.captures("plant/pump-1/temperature"), Some(("pump-1", Some("temperature"))));
//! assert_eq!(p.captures("plant/pump-1"), None);
//! ```

use std::fmt;

/// MQTT limits a topic (and so a filter) to 65,535 bytes of UTF-8.
const MAX_TOPIC_LEN: usize = 65_535;

/// A validated topic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    source: String,
    filter: String,
    levels: Vec<Level>,
    has_metric: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Literal(Box<str>),
    Device,
    Metric,
    /// `+`
    Any,
    /// `#`, always last.
    Rest,
}

/// Why a topic pattern was rejected. `level` is 1-based, counted from the left.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    #[error("topic pattern is empty")]
    Empty,
    #[error("topic pattern is {len} bytes long; MQTT allows at most 65535")]
    TooLong { len: usize },
    #[error("topic pattern `{pattern}` contains a NUL character, which MQTT forbids")]
    Nul { pattern: String },
    #[error("topic pattern `{pattern}`: level {level} is empty (leading, trailing or doubled `/`)")]
    EmptyLevel { pattern: String, level: usize },
    #[error("topic pattern `{pattern}` has no `{{device}}` level; it is needed to name the device")]
    MissingDevice { pattern: String },
    #[error(
        "topic pattern `{pattern}`: `{{{name}}}` appears more than once (levels {first} and {second})"
    )]
    DuplicateCapture {
        pattern: String,
        name: &'static str,
        first: usize,
        second: usize,
    },
    #[error("topic pattern `{pattern}`: `#` must be the last level (found at level {level})")]
    HashNotLast { pattern: String, level: usize },
    #[error(
        "topic pattern `{pattern}`: level {level} `{text}` mixes `+` or `#` with other characters; a wildcard must be a whole level"
    )]
    PartialWildcard {
        pattern: String,
        level: usize,
        text: String,
    },
    #[error(
        "topic pattern `{pattern}`: level {level} `{text}` is not a valid capture; use `{{device}}` or `{{metric}}` as a whole level"
    )]
    BadCapture {
        pattern: String,
        level: usize,
        text: String,
    },
}

impl TopicPattern {
    /// Parses and validates a pattern: `{device}` exactly once, `{metric}` at most once, `#`
    /// only as the last level, no empty levels, wildcards and captures only as whole levels.
    pub fn parse(pattern: &str) -> Result<TopicPattern, TopicError> {
        if pattern.is_empty() {
            return Err(TopicError::Empty);
        }
        if pattern.len() > MAX_TOPIC_LEN {
            return Err(TopicError::TooLong { len: pattern.len() });
        }
        let owned = || pattern.to_owned();
        if pattern.contains('\0') {
            return Err(TopicError::Nul { pattern: owned() });
        }
        let texts: Vec<&str> = pattern.split('/').collect();
        let mut levels = Vec::with_capacity(texts.len());
        let mut device_at: Option<usize> = None;
        let mut metric_at: Option<usize> = None;
        let mut filter = String::with_capacity(pattern.len());
        for (i, text) in texts.iter().enumerate() {
            let level = i + 1;
            let parsed = match *text {
                "" => {
                    return Err(TopicError::EmptyLevel {
                        pattern: owned(),
                        level,
                    });
                }
                "+" => Level::Any,
                "#" if level == texts.len() => Level::Rest,
                "#" => {
                    return Err(TopicError::HashNotLast {
                        pattern: owned(),
                        level,
                    });
                }
                "{device}" | "{metric}" => {
                    let (slot, name, kind) = if *text == "{device}" {
                        (&mut device_at, "device", Level::Device)
                    } else {
                        (&mut metric_at, "metric", Level::Metric)
                    };
                    if let Some(first) = *slot {
                        return Err(TopicError::DuplicateCapture {
                            pattern: owned(),
                            name,
                            first,
                            second: level,
                        });
                    }
                    *slot = Some(level);
                    kind
                }
                t if t.contains(['+', '#']) => {
                    return Err(TopicError::PartialWildcard {
                        pattern: owned(),
                        level,
                        text: t.to_owned(),
                    });
                }
                t if t.contains(['{', '}']) => {
                    return Err(TopicError::BadCapture {
                        pattern: owned(),
                        level,
                        text: t.to_owned(),
                    });
                }
                t => Level::Literal(t.into()),
            };
            if i > 0 {
                filter.push('/');
            }
            filter.push_str(match &parsed {
                Level::Literal(t) => t,
                Level::Device | Level::Metric | Level::Any => "+",
                Level::Rest => "#",
            });
            levels.push(parsed);
        }
        if device_at.is_none() {
            return Err(TopicError::MissingDevice { pattern: owned() });
        }
        Ok(TopicPattern {
            source: pattern.to_owned(),
            filter,
            levels,
            has_metric: metric_at.is_some(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The MQTT subscription filter: captures become `+`.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Whether the pattern captures the metric name (otherwise the payload must name it).
    pub fn has_metric(&self) -> bool {
        self.has_metric
    }

    /// Matches a concrete topic; returns the captured device and, when the pattern has
    /// `{metric}`, the metric. `None` when the topic does not match or a capture would be
    /// empty (an empty device name is never useful).
    pub fn captures<'t>(&self, topic: &'t str) -> Option<(&'t str, Option<&'t str>)> {
        let mut device = None;
        let mut metric = None;
        let mut parts = topic.split('/');
        for level in &self.levels {
            let part = match level {
                // `#` also matches the parent level itself (MQTT 3.1.1 §4.7.1.2).
                Level::Rest => return device.map(|d| (d, metric)),
                _ => parts.next()?,
            };
            match level {
                Level::Literal(t) if **t == *part => {}
                Level::Literal(_) => return None,
                Level::Device if !part.is_empty() => device = Some(part),
                Level::Metric if !part.is_empty() => metric = Some(part),
                Level::Device | Level::Metric => return None,
                Level::Any | Level::Rest => {}
            }
        }
        if parts.next().is_some() {
            return None;
        }
        device.map(|d| (d, metric))
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for TopicPattern {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopicPattern::parse(s)
    }
}

impl TryFrom<String> for TopicPattern {
    type Error = TopicError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        TopicPattern::parse(&s)
    }
}

/// Deserialised from a string and validated there, so a bad pattern is reported with the
/// configuration file's line and column.
impl<'de> serde::Deserialize<'de> for TopicPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        TopicPattern::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> TopicPattern {
        TopicPattern::parse(s).unwrap()
    }

    #[test]
    fn filter_replaces_captures_with_plus() {
        assert_eq!(p("plant/{device}/{metric}").filter(), "plant/+/+");
        assert_eq!(p("{device}").filter(), "+");
        assert_eq!(
            p("site/+/{device}/telemetry/#").filter(),
            "site/+/+/telemetry/#"
        );
        assert_eq!(p("a/{metric}/b/{device}").filter(), "a/+/b/+");
    }

    #[test]
    fn captures_device_and_metric() {
        let pat = p("plant/{device}/{metric}");
        assert!(pat.has_metric());
        assert_eq!(
            pat.captures("plant/pump-1/temp"),
            Some(("pump-1", Some("temp")))
        );
        assert_eq!(pat.captures("plant/pump-1"), None);
        assert_eq!(pat.captures("plant/pump-1/temp/extra"), None);
        assert_eq!(pat.captures("other/pump-1/temp"), None);
        assert_eq!(pat.captures("plant//temp"), None);
        assert_eq!(pat.captures("plant/pump-1/"), None);
    }

    #[test]
    fn captures_device_only() {
        let pat = p("devices/{device}/state");
        assert!(!pat.has_metric());
        assert_eq!(pat.captures("devices/m-7/state"), Some(("m-7", None)));
        assert_eq!(pat.captures("devices/m-7/status"), None);
    }

    #[test]
    fn plus_matches_exactly_one_level() {
        let pat = p("site/+/{device}");
        assert_eq!(pat.captures("site/hall-a/dev"), Some(("dev", None)));
        assert_eq!(pat.captures("site/dev"), None);
        assert_eq!(pat.captures("site/a/b/dev"), None);
        // `+` matches an empty level, as in MQTT.
        assert_eq!(pat.captures("site//dev"), Some(("dev", None)));
    }

    #[test]
    fn hash_matches_rest_including_parent() {
        let pat = p("plant/{device}/#");
        assert_eq!(pat.captures("plant/d1"), Some(("d1", None)));
        assert_eq!(pat.captures("plant/d1/a"), Some(("d1", None)));
        assert_eq!(pat.captures("plant/d1/a/b/c"), Some(("d1", None)));
        assert_eq!(pat.captures("plant"), None);
        assert_eq!(pat.captures("other/d1/a"), None);
    }

    #[test]
    fn metric_before_device() {
        let pat = p("{metric}/of/{device}");
        assert_eq!(pat.captures("rpm/of/fan"), Some(("fan", Some("rpm"))));
    }

    #[test]
    fn display_and_from_str_round_trip() {
        let pat: TopicPattern = "plant/{device}/{metric}".parse().unwrap();
        assert_eq!(pat.to_string(), "plant/{device}/{metric}");
        assert_eq!(pat.as_str(), "plant/{device}/{metric}");
    }

    #[test]
    fn rejects_bad_patterns() {
        use TopicError as E;
        let err = |s: &str| TopicPattern::parse(s).unwrap_err();
        assert_eq!(err(""), E::Empty);
        assert!(matches!(err("plant/temp"), E::MissingDevice { .. }));
        assert!(matches!(err("plant/+/#"), E::MissingDevice { .. }));
        assert!(matches!(
            err("{device}/{device}"),
            E::DuplicateCapture {
                name: "device",
                first: 1,
                second: 2,
                ..
            }
        ));
        assert!(matches!(
            err("{device}/{metric}/x/{metric}"),
            E::DuplicateCapture {
                name: "metric",
                first: 2,
                second: 4,
                ..
            }
        ));
        assert!(matches!(
            err("/plant/{device}"),
            E::EmptyLevel { level: 1, .. }
        ));
        assert!(matches!(
            err("plant//{device}"),
            E::EmptyLevel { level: 2, .. }
        ));
        assert!(matches!(
            err("plant/{device}/"),
            E::EmptyLevel { level: 3, .. }
        ));
        assert!(matches!(
            err("plant/#/{device}"),
            E::HashNotLast { level: 2, .. }
        ));
        assert!(matches!(
            err("plant/a+/{device}"),
            E::PartialWildcard { level: 2, .. }
        ));
        assert!(matches!(
            err("plant/{device}/x#"),
            E::PartialWildcard { level: 3, .. }
        ));
        assert!(matches!(
            err("plant/{dev}/x"),
            E::BadCapture { level: 2, .. }
        ));
        assert!(matches!(
            err("plant/{device}x"),
            E::BadCapture { level: 2, .. }
        ));
        assert!(matches!(
            err("plant/{device"),
            E::BadCapture { level: 2, .. }
        ));
        assert!(matches!(err("a\0/{device}"), E::Nul { .. }));
        let long = format!("{}/{{device}}", "a".repeat(MAX_TOPIC_LEN));
        assert!(matches!(err(&long), E::TooLong { .. }));
    }

    #[test]
    fn error_messages_name_the_problem() {
        let e = TopicPattern::parse("plant/#/{device}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "topic pattern `plant/#/{device}`: `#` must be the last level (found at level 2)"
        );
        let e = TopicPattern::parse("plant/{metric}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "topic pattern `plant/{metric}` has no `{device}` level; it is needed to name the device"
        );
        let e = TopicPattern::parse("{device}/{device}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "topic pattern `{device}/{device}`: `{device}` appears more than once (levels 1 and 2)"
        );
    }

    #[test]
    fn deserializes_with_validation() {
        let pat: TopicPattern = serde_json::from_str(r#""x/{device}""#).unwrap();
        assert_eq!(pat.filter(), "x/+");
        let e = serde_json::from_str::<TopicPattern>(r#""x/y""#).unwrap_err();
        assert!(e.to_string().contains("no `{device}` level"), "{e}");
    }
}

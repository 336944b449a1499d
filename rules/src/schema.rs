//! The rule file as written: raw serde structs, durations and globs.
//!
//! These types mirror the YAML one to one and reject unknown keys, so a typo such as
//! `agregates:` is an error rather than a silently ignored line. Values that need checking
//! (durations, globs, aggregate names, the `when` expression) stay strings here: validation in
//! `ruleset` turns them into runtime types and reports every problem with its location.

use serde::Deserialize;

/// One entry of the top-level `rules:` list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub name: String,
    #[serde(default)]
    pub select: RawSelect,
    /// `device`, `label.<name>` or `all`: one window per group instead of per series.
    #[serde(default)]
    pub group_by: Option<String>,
    /// Required unless the rule has `detect` (a detector may judge every sample).
    #[serde(default)]
    pub window: Option<RawWindow>,
    #[serde(default)]
    pub aggregates: Option<Vec<String>>,
    #[serde(default)]
    pub alert: Option<RawAlert>,
    /// Named numeric expressions usable in `when`, in the order written (the order is
    /// read from the located tree; this map only checks the shape).
    #[serde(default, rename = "let")]
    pub lets: Option<std::collections::BTreeMap<String, String>>,
    /// Smoothing factor of the `ewma` aggregate, in (0, 1].
    #[serde(default)]
    pub ewma_alpha: Option<f64>,
    /// Spectrum of the window's samples, for `band_energy.<band>`.
    #[serde(default)]
    pub fft: Option<RawFft>,
    /// An anomaly detector that raises and clears the alert instead of `alert.when`.
    #[serde(default)]
    pub detect: Option<crate::detect::spec::RawDetect>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFft {
    /// Samples per frame: a power of two.
    pub size: u64,
    /// Samples per second the device sends (spacing assumed even).
    pub sample_rate: f64,
    /// Band name → `[low_hz, high_hz]`, inclusive (the order is read from the located tree).
    pub bands: std::collections::BTreeMap<String, Vec<f64>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSelect {
    #[serde(default = "match_all")]
    pub device: String,
    #[serde(default = "match_all")]
    pub metric: String,
    /// Label name → value pattern; every one must match the device's labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

impl Default for RawSelect {
    fn default() -> Self {
        Self {
            device: match_all(),
            metric: match_all(),
            labels: Default::default(),
        }
    }
}

fn match_all() -> String {
    "*".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWindow {
    #[serde(default)]
    pub tumbling: Option<String>,
    #[serde(default)]
    pub hopping: Option<RawHopping>,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub sliding: Option<String>,
    #[serde(default)]
    pub session: Option<String>,
    /// For `sliding`: the most samples kept within the window.
    #[serde(default)]
    pub max_samples: Option<u64>,
    /// For `tumbling` and `hopping`: how long after its end a window still takes samples.
    #[serde(default)]
    pub lateness: Option<String>,
    /// What becomes of a sample too late for every window: `drop` (counted) or `emit`.
    #[serde(default)]
    pub late: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHopping {
    pub size: String,
    pub hop: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlert {
    /// Required unless the rule has `detect`.
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    /// At most one raise per this duration on a series.
    #[serde(default)]
    pub suppress: Option<String>,
    /// No raise for this long after a clear on a series.
    #[serde(default)]
    pub cooldown: Option<String>,
    /// A template filled into each transition, e.g. `"pressure {value:.1} bar"`.
    #[serde(default)]
    pub message: Option<String>,
    /// Also publish each transition on the gateway's local broker, on this topic
    /// (`{device}`, `{metric}` and `{rule}` are filled in).
    #[serde(default)]
    pub local_topic: Option<String>,
}

/// A rule file's duration (a window, `for`, a cooldown) in microseconds, read by the shared
/// parser ([`crate::duration::parse`]: `"500ms"`, `"10 s"`, `"5m"`, `"1h"`, `"1d"`). Zero is
/// refused here, not by the parser: a zero-length window would never contain a sample.
pub(crate) fn parse_duration(text: &str) -> Result<i64, String> {
    let d = crate::duration::parse(text).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err(format!(
            "invalid duration `{text}`: must be greater than zero"
        ));
    }
    i64::try_from(d.as_micros()).map_err(|_| format!("invalid duration `{text}`: too long"))
}

/// A device or metric name pattern: `*` matches any run of characters (including none), `?`
/// exactly one; everything else matches itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    pattern: Box<[char]>,
}

/// Characters reserved so a later version can add classes or alternatives (`[a-z]`, `{a,b}`)
/// without silently changing what existing patterns mean.
const RESERVED: &[char] = &['[', ']', '{', '}', '\\'];

impl Glob {
    /// Compiles a pattern; on error returns the character offset of the problem and a message.
    pub fn new(pattern: &str) -> Result<Glob, (usize, String)> {
        if pattern.is_empty() {
            return Err((0, "empty pattern (use `*` to match everything)".to_owned()));
        }
        if let Some((i, c)) = pattern
            .chars()
            .enumerate()
            .find(|(_, c)| RESERVED.contains(c))
        {
            return Err((
                i,
                format!(
                    "unsupported character `{c}` in pattern `{pattern}` (only `*` and `?` are special)"
                ),
            ));
        }
        Ok(Glob {
            pattern: pattern.chars().collect(),
        })
    }

    /// Whether some name could match both patterns. Exact for two literal patterns; a pattern
    /// with a wildcard is assumed to overlap a literal one it matches, and any other pattern
    /// with a wildcard (a conservative answer, for worst-case estimates).
    pub fn may_overlap(&self, other: &Glob) -> bool {
        let literal = |g: &Glob| !g.pattern.iter().any(|c| matches!(c, '*' | '?'));
        match (literal(self), literal(other)) {
            (true, true) => self.pattern == other.pattern,
            (true, false) => other.matches(&self.pattern.iter().collect::<String>()),
            (false, true) => self.matches(&other.pattern.iter().collect::<String>()),
            (false, false) => true,
        }
    }

    /// Classic linear-time wildcard matching with a single backtrack point.
    pub fn matches(&self, text: &str) -> bool {
        let p = &self.pattern;
        let t: Vec<char> = text.chars().collect();
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(&c) if c == '?' || c == t[ti] => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|&c| c == '*')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(500_000));
        assert_eq!(parse_duration("10s"), Ok(10_000_000));
        assert_eq!(parse_duration("5m"), Ok(300_000_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000_000));
        assert_eq!(parse_duration("1d"), Ok(86_400_000_000));
        // The shared parser's spelling: a space between number and unit.
        assert_eq!(parse_duration("10 s"), Ok(10_000_000));
        for bad in [
            "0s",
            "0",
            "10",
            "s",
            "10x",
            "1.5s",
            "-1s",
            "",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn glob_matching() {
        let g = |p: &str| Glob::new(p).unwrap();
        assert!(g("*").matches(""));
        assert!(g("*").matches("anything"));
        assert!(g("pump-*").matches("pump-1"));
        assert!(g("pump-*").matches("pump-"));
        assert!(!g("pump-*").matches("motor-1"));
        assert!(g("pump-?").matches("pump-7"));
        assert!(!g("pump-?").matches("pump-12"));
        assert!(g("*-temp").matches("a-b-temp"));
        assert!(g("a*b*c").matches("aXXbYYc"));
        assert!(!g("a*b*c").matches("aXXbYY"));
        assert!(g("temperature").matches("temperature"));
        assert!(!g("temperature").matches("temperature2"));
        assert!(g("ü?").matches("üx"));
    }

    #[test]
    fn bad_globs() {
        assert_eq!(Glob::new("").unwrap_err().0, 0);
        assert_eq!(Glob::new("pump-[12]").unwrap_err().0, 5);
        assert_eq!(Glob::new("a{b").unwrap_err().0, 1);
    }
}

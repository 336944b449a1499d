//! The one error type a source's `run` returns. Kept small: once a source is running, bad input
//! and transport trouble are counted, logged and retried, never returned; only a configuration
//! the source cannot start with, or a pipeline that went away, ends it.

/// Why a source stopped or could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("source `{name}`: invalid `{field}`: {reason}")]
    Config {
        /// The source's configured name.
        name: String,
        /// The configuration field at fault (dotted path for nested fields).
        field: String,
        reason: String,
    },
    #[error("source `{name}`: the pipeline channel closed while the source was running")]
    PipelineClosed { name: String },
}

impl SourceError {
    pub(crate) fn config(name: &str, field: impl Into<String>, reason: impl Into<String>) -> Self {
        SourceError::Config {
            name: name.to_owned(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Wall-clock time in µs since the Unix epoch (negative before it, saturating far out).
pub(crate) fn now_us() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |us| -us),
    }
}

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

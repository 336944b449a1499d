//! Errors the crate returns, shaped for the people who read them.
//!
//! Rule files are edited by field engineers, so a rejected file must say exactly where each
//! problem is. A [`RuleError`] therefore carries *every* [`Diagnostic`] found in one pass
//! (a `cargo check`-style list), each with `file:line:column` and the rule's name, instead of
//! stopping at the first problem.

use std::fmt;

/// One problem in a rule file, located as precisely as the parser allows.
///
/// Lines and columns are 1-based and count characters (not bytes), like editors do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Diagnostic {
    /// The file (or other origin) the rule text came from, as given by the caller.
    pub file: String,
    pub line: u64,
    pub column: u64,
    /// The rule the problem belongs to, when it is known.
    pub rule: Option<String>,
    pub message: String,
}

impl Diagnostic {
    pub fn new(
        file: impl Into<String>,
        line: u64,
        column: u64,
        rule: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            line,
            column,
            rule,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(rule) = &self.rule {
            write!(f, "rule `{rule}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Rule files were rejected. Holds every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct RuleError {
    pub diagnostics: Vec<Diagnostic>,
}

impl RuleError {
    pub fn new(diagnostics: Vec<Diagnostic>) -> Self {
        Self { diagnostics }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The engine refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Interning one more `(device, metric)` pair would exceed [`crate::Limits::max_series`].
    /// Per-series state is bounded so a misbehaving device inventing metric names cannot
    /// exhaust the gateway's memory.
    #[error("too many series: the limit is {limit}")]
    TooManySeries { limit: usize },
}

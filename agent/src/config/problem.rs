//! How a problem in a config is told: `file:line:column: message`, every problem at once.
//!
//! Its own file because every stage reports through it (parsing, the checks across sections,
//! reading rule files, the running config's record), and `weir push` words YAML errors
//! with [`yaml_problem`] too.

use std::fmt;

/// A problem in the config file, located where the parser could locate it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl Problem {
    /// A problem with the file as a whole (it cannot be read, it is not the file expected):
    /// no line or column to point at, printed as `file: message`.
    pub fn unlocated(file: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            file: file.into(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// Every problem found in a config file. The agent exits with code 2 on this error.
#[derive(Debug, thiserror::Error)]
#[error("{}", display_problems(.problems))]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

fn display_problems(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Turns a serde-saphyr error into `file:line:col: message` (its own text repeats the
/// location as a suffix, which is dropped here so it is said once).
pub fn yaml_problem(file: &str, e: &serde_saphyr::Error) -> Problem {
    let text = e.without_snippet().to_string();
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let message = match text.rfind(" at line ") {
        Some(i) if line > 0 => text[..i].to_owned(),
        _ => text,
    };
    Problem {
        file: file.to_owned(),
        line,
        column,
        message,
    }
}

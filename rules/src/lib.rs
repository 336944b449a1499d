//! Weir's rule engine: pure, deterministic, sans-I/O.
//!
//! Field engineers write rules in YAML; [`RuleSet::parse_str`] compiles them once (every problem
//! reported at once, with `file:line:column` and the rule's name). An [`Engine`] then takes
//! [`Sample`]s with [`Engine::push`] and is told how far event time has moved with
//! [`Engine::advance`]; both append the [`Event`]s they cause to a caller-owned `Vec`.
//!
//! A rule selects series by glob (`select: { device, metric }`), groups them per series, and
//! runs one window kind over each — `tumbling`, `hopping`, `count`, `sliding` or `session`
//! (module `window`, with the memory each keeps per series) — feeding an online accumulator
//! of every aggregate (module `agg`). When a window closes the rule emits the aggregates it
//! lists (percentiles from a bounded sketch, module `sketch`; FFT band energies, module
//! `spectrum`) and evaluates its `when` condition: a small typed expression language (module
//! `expr`) with arithmetic, comparisons, `and`/`or`/`not`, functions and `prev(...)`,
//! compiled once when the rules are loaded.
//!
//! Instead of a `when` condition a rule may name an online anomaly detector (`detect:`,
//! module `detect`: thresholds with hysteresis, z-scores, control charts, CUSUM, rate,
//! flatline, range/NaN, missing data, and `trend`, which predicts the time to a limit). Every
//! alert transition then goes through one lifecycle (module `alert`): deduplication,
//! `suppress`/`cooldown` storm control and a `message` template.
//!
//! [`Engine::checkpoint`] encodes the state that changed since the last checkpoint (module
//! `snapshot`), [`Engine::restore`] puts a checkpoint back into a fresh engine, and
//! [`InputLog`] with [`Engine::replay`] carries the input since: how the agent keeps window,
//! detector and alert state across restarts.
//!
//! The engine never reads the clock, never logs and never does I/O: the same samples in the
//! same order give the same events, byte for byte. That is what makes `weir replay` exact and
//! lets the engine be checked against a brute-force reference model.
//!
//! ```
//! use weir_rules::{Engine, RuleSet, Sample, EventKind, AlertState};
//!
//! let rules = RuleSet::parse_str(r#"
//! rules:
//!   - name: hot
//!     select: { device: "pump-*", metric: temp }
//!     window: { tumbling: 10s }
//!     alert: { when: "mean > 80", severity: critical }
//! "#, "example.yaml").unwrap();
//! let mut engine = Engine::new(rules);
//! let temp = engine.series("pump-1", "temp").unwrap();
//! let mut events = Vec::new();
//! for i in 0..10 {
//!     engine.push(Sample { series: temp, ts: i * 1_000_000, value: 90.0 }, &mut events);
//! }
//! engine.advance(10_000_000, &mut events); // event time reached the window's end
//! assert!(matches!(events[0].kind, EventKind::Alert { state: AlertState::Raised, .. }));
//! ```

mod agg;
mod alert;
mod budget;
mod detect;
pub mod duration;
mod engine;
mod error;
mod event;
mod expr;
mod incident;
mod input_log;
mod interned;
mod labels;
pub mod learned;
mod panes;
mod ruleset;
mod schema;
mod sketch;
mod sliding;
mod snapshot;
mod spectrum;
mod tree;
mod window;

pub use budget::DEFAULT_MAX_STATE_BYTES;
pub use engine::{CheckpointChunks, Engine, EngineStats, Limits, ReloadReport, RuntimeCounter};
pub use error::{Diagnostic, EngineError, RuleError};
pub use event::{
    Aggregate, AlertState, ChangeKind, Contributor, Event, EventKind, Sample, SeriesId, Severity,
};
pub use input_log::InputLog;
pub use labels::{DeviceLabels, LabelError};
pub use ruleset::RuleSet;
pub use snapshot::{Checkpoint, FORMAT as CHECKPOINT_FORMAT, RestoreReport, SnapshotError};

#[cfg(test)]
mod agg_tests;
#[cfg(test)]
mod budget_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod snapshot_tests;

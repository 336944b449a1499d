//! What "the new version is making the agent unhealthy" means, read from the pipeline's own
//! counters: the engine loop stopped turning (no progress: it turns 4 times a second while
//! healthy, so 5 s without a turn is a stuck engine), or the rules have started refusing
//! series over `engine.max_state_bytes` or failing to encode events since the switch (rules
//! that do not run for some devices). Everything else (a device that went quiet, an uplink
//! outage) is not the new rules' doing and never triggers a rollback.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::daemon::pipeline::PipelineCounters;

/// The engine loop must turn at least this often.
const STUCK: Duration = Duration::from_secs(5);

/// Reads the pipeline's counters.
#[derive(Clone)]
pub struct Health {
    pub pipeline: Arc<PipelineCounters>,
}

/// The counters at the switch, and when the engine last turned.
pub struct Baseline {
    turns: u64,
    turned_at: Instant,
    budget_refused: u64,
    encode_errors: u64,
}

impl Health {
    pub fn baseline(&self) -> Baseline {
        let p = &self.pipeline;
        Baseline {
            turns: p.turns.load(Relaxed),
            turned_at: Instant::now(),
            budget_refused: p.budget_refused.load(Relaxed),
            encode_errors: p.encode_errors.load(Relaxed),
        }
    }

    /// Why health is bad now compared with `base`, or `None` while healthy.
    pub fn problem(&self, base: &mut Baseline, now: Instant) -> Option<String> {
        let p = &self.pipeline;
        let turns = p.turns.load(Relaxed);
        if turns != base.turns {
            base.turns = turns;
            base.turned_at = now;
        }
        if now.duration_since(base.turned_at) >= STUCK {
            return Some(format!(
                "no progress: the engine has not turned for {} s",
                now.duration_since(base.turned_at).as_secs()
            ));
        }
        let refused = p.budget_refused.load(Relaxed);
        if refused > base.budget_refused {
            return Some(format!(
                "the rules refused {} rule slot(s) over engine.max_state_bytes",
                refused - base.budget_refused
            ));
        }
        let encode = p.encode_errors.load(Relaxed);
        if encode > base.encode_errors {
            return Some(format!(
                "{} event(s) could not be encoded",
                encode - base.encode_errors
            ));
        }
        None
    }
}

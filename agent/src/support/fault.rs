//! Fault injection for the black-box tests of supervision, in debug builds only.
//!
//! No real input makes the pipeline, the outbox writer, a source or the uplink end: each
//! retries or counts every failure it knows of. What is left is a bug (a panic), and the
//! supervision that must catch it (see `daemon::supervise`) has to be proved on the real
//! process. `WEIR_FAULT=pipeline,writer,source,uplink,fleet` (any of them) makes each named task
//! panic once, the first time it reaches its injection point. Release builds compile
//! [`inject`] to nothing and never read the variable.

/// Panics the first time it is called for `task`, if `WEIR_FAULT` names it (debug builds).
#[cfg(debug_assertions)]
pub fn inject(task: &'static str) {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static FIRED: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let named = std::env::var("WEIR_FAULT").is_ok_and(|v| v.split(',').any(|t| t.trim() == task));
    if !named {
        return;
    }
    let first = FIRED
        .get_or_init(Mutex::default)
        .lock()
        .is_ok_and(|mut fired| fired.insert(task));
    if first {
        panic!("injected fault (WEIR_FAULT={task})");
    }
}

/// Release builds: nothing.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn inject(_task: &'static str) {}

//! Names of computed aggregates (`band_energy.<band>`, a published `let` value) as
//! `&'static str`, so an [`crate::Aggregate`] stays `Copy` and carries its name like the
//! built-in ones do.
//!
//! Each distinct name is leaked once and reused by every later rule load (reloading the same
//! rules allocates nothing); past [`MAX_NAMES`] distinct names the answer is `None` (a load
//! error asking for a restart), which bounds the leak to a few hundred KB however often rule
//! files are edited and reloaded.

use std::sync::Mutex;

/// Most distinct names a process interns.
const MAX_NAMES: usize = 4_096;

/// `full` as a `&'static str`, the same pointer for the same text.
pub(crate) fn name(full: String) -> Option<&'static str> {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    // A panic while holding the lock cannot leave the list inconsistent: push is the only write.
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.iter().find(|n| **n == full) {
        return Some(n);
    }
    if names.len() >= MAX_NAMES {
        return None;
    }
    let leaked: &'static str = Box::leak(full.into_boxed_str());
    names.push(leaked);
    Some(leaked)
}

//! Hands freed heap memory back to the system, so the agent's resident memory is what it
//! holds, not what it once held.
//!
//! Why this module exists: glibc's allocator keeps memory a program frees inside its heaps
//! for reuse and returns only the free space at a heap's top. The agent's heap churns — every
//! batch of MQTT messages, every outbox transaction, every engine checkpoint (the changed
//! series' state encoded a chunk at a time) allocates and frees — and long-lived engine state
//! is allocated in between, so the free space ends up in holes that no top trim reaches.
//! Measured at 10,000 series (`scripts/memory-footprint`, docs/footprint.md "Memory, fourth
//! round"): a third of the heaps' memory was free, about 3.5 MiB, most of it resident, spread
//! over several per-thread arenas, each keeping its own holes.
//!
//! Three settings, all glibc's own:
//! - [`limit_arenas`]: one arena for every thread of `weir run` (glibc's default is up to
//!   8 per core). A hole one thread leaves is reused by the next allocation of any thread;
//!   the per-thread caches in front of the arena (tcache) keep most small allocations off its
//!   lock.
//! - with it, a fixed mmap threshold ([`MMAP_FROM`]): a block of 128 KiB or more is a mapping
//!   of its own, returned when freed, never a hole in the heap.
//! - [`release`]: `malloc_trim(0)`, called by the pipeline every [`RELEASE_EVERY`] and as
//!   soon as a burst of records is over ([`Releases`]), returns every whole free page inside
//!   the heap (`MADV_DONTNEED`) as well as its top. A page given back and needed again costs
//!   one minor fault.
//!
//! Elsewhere (musl's allocator returns memory itself) both are no-ops.

use std::time::Duration;

/// How often `weir run` hands free heap pages back: often enough that the free space a
/// checkpoint (every 60 s by default) leaves does not stay resident for long; rare enough
/// that its cost (a walk of the heap's free chunks under its lock, well under a millisecond
/// at 10,000 series) is nothing.
pub const RELEASE_EVERY: Duration = Duration::from_secs(10);

/// A burst of at least this many outbox records since the last release (a gateway's windows
/// closing together: 10,000 records at once every 10 s in issue 19's workload) makes the
/// next release come as soon as the burst is over, not up to [`RELEASE_EVERY`] later: the
/// burst's records, rows and encodings, freed, were about 0.8 MiB of that workload's
/// resident memory for most of every 10 s.
pub const BURST_RECORDS: u64 = 1024;

/// The least time between two releases a burst asks for.
pub const BURST_GAP: Duration = Duration::from_secs(1);

/// When `weir run` releases (see [`release`]): asked once per pipeline tick with the time
/// since the last release and the records flushed so far.
#[derive(Debug, Default)]
pub struct Releases {
    /// Records flushed when last released, and when last asked.
    at_release: u64,
    at_tick: u64,
}

impl Releases {
    /// Whether to release now: every [`RELEASE_EVERY`]; or, [`BURST_GAP`] after the last
    /// release, once [`BURST_RECORDS`] records have been flushed and the last tick added
    /// fewer than an eighth of that (the burst is over, its memory freed).
    pub fn due(&mut self, since_release: Duration, flushed: u64) -> bool {
        let burst = flushed.saturating_sub(self.at_release);
        let last_tick = flushed.saturating_sub(self.at_tick);
        self.at_tick = flushed;
        let due = since_release >= RELEASE_EVERY
            || (since_release >= BURST_GAP
                && burst >= BURST_RECORDS
                && last_tick < BURST_RECORDS / 8);
        if due {
            self.at_release = flushed;
        }
        due
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::ffi::c_int;

    /// `mallopt`'s parameter for the most arenas (malloc.h).
    pub const M_ARENA_MAX: c_int = -8;
    /// `mallopt`'s parameter for the size from which an allocation is its own mapping.
    pub const M_MMAP_THRESHOLD: c_int = -3;

    // SAFETY: both are glibc functions with these exact C signatures (malloc.h); they take
    // no pointers, are thread-safe, and only change how the allocator manages its own memory.
    unsafe extern "C" {
        pub safe fn mallopt(param: c_int, value: c_int) -> c_int;
        pub safe fn malloc_trim(pad: usize) -> c_int;
    }
}

/// Blocks of at least this many bytes are mappings of their own, returned to the system
/// when freed (glibc's own starting value, kept fixed: see [`limit_arenas`]).
pub const MMAP_FROM: usize = 128 * 1024;

/// One heap arena for the whole process, and blocks from [`MMAP_FROM`] up in mappings of
/// their own. Call before the threads that allocate are started (a thread keeps the arena it
/// was given). Returns whether the allocator took both settings.
pub fn limit_arenas() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc raises its mmap threshold to the size of every mapped block freed (up to
        // 32 MiB), so after the first outbox transaction of a burst of closing windows the
        // next ones (hundreds of KiB of records and rows) were carved out of the heap and
        // left holes there between the engine's long-lived blocks. Set, it stays.
        let arenas = glibc::mallopt(glibc::M_ARENA_MAX, 1) == 1;
        let mmap = glibc::mallopt(glibc::M_MMAP_THRESHOLD, MMAP_FROM as std::ffi::c_int) == 1;
        arenas && mmap
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Returns free heap memory to the system (see the module docs). Returns whether any was.
pub fn release() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        glibc::malloc_trim(0) == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests;

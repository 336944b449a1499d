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
//! Two settings, both glibc's own:
//! - [`limit_arenas`]: one arena for every thread of `weir run` (glibc's default is up to
//!   8 per core). A hole one thread leaves is reused by the next allocation of any thread;
//!   the per-thread caches in front of the arena (tcache) keep most small allocations off its
//!   lock.
//! - [`release`]: `malloc_trim(0)`, called every [`RELEASE_EVERY`] by the pipeline, returns
//!   every whole free page inside the heap (`MADV_DONTNEED`) as well as its top. A page
//!   given back and needed again costs one minor fault.
//!
//! Elsewhere (musl's allocator returns memory itself) both are no-ops.

use std::time::Duration;

/// How often `weir run` hands free heap pages back: often enough that the free space a
/// checkpoint (every 60 s by default) leaves does not stay resident for long; rare enough
/// that its cost (a walk of the heap's free chunks under its lock, well under a millisecond
/// at 10,000 series) is nothing.
pub const RELEASE_EVERY: Duration = Duration::from_secs(10);

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::ffi::c_int;

    /// `mallopt`'s parameter for the most arenas (malloc.h).
    pub const M_ARENA_MAX: c_int = -8;

    // SAFETY: both are glibc functions with these exact C signatures (malloc.h); they take
    // no pointers, are thread-safe, and only change how the allocator manages its own memory.
    unsafe extern "C" {
        pub safe fn mallopt(param: c_int, value: c_int) -> c_int;
        pub safe fn malloc_trim(pad: usize) -> c_int;
    }
}

/// One heap arena for the whole process. Call before the threads that allocate are started
/// (a thread keeps the arena it was given). Returns whether the allocator took the setting.
pub fn limit_arenas() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        glibc::mallopt(glibc::M_ARENA_MAX, 1) == 1
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

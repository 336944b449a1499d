//! The clock the benches time with, shared by the bench binaries (`#[path]`-included).

use std::time::Instant;

/// This thread's CPU time where Linux tells it (`/proc/thread-self/schedstat`, ns), else wall
/// time: on a shared build machine the time other processes run is not this engine's.
pub struct CpuClock {
    wall: Instant,
    cpu: Option<u64>,
}

impl CpuClock {
    fn read() -> Option<u64> {
        let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        text.split_whitespace().next()?.parse().ok()
    }

    pub fn now() -> CpuClock {
        CpuClock {
            wall: Instant::now(),
            cpu: CpuClock::read(),
        }
    }

    pub fn elapsed_secs(&self) -> f64 {
        match (self.cpu, CpuClock::read()) {
            (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
            _ => self.wall.elapsed().as_secs_f64(),
        }
    }
}

//! `weir run`: the long-running agent. [`run`] wires sources → engine → outbox → uplink;
//! the other modules are the parts it wires (the pipeline, reload, signals, systemd,
//! metrics and health (and the listener as a reload moves it), the status page, actions, the clock guard, the run-hours store, the outbox handed
//! to the uplink as its queue, and the allocator's settings).

pub mod actions;
pub mod allocator;
pub mod clock_guard;
mod endpoint;
pub mod fleet;
pub mod logging;
pub mod metrics;
pub mod metrics_listener;
pub mod page;
pub mod pipeline;
pub mod reload;
pub mod run;
pub mod run_hours;
pub mod signals;
pub mod sources;
pub mod supervise;
pub mod systemd;
mod uplink_queue;
pub mod uplink_task;

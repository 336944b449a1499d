//! Weir's black-box tests: one binary (one link step, one place to look), real `mosquitto`
//! brokers and the real `weir` binary, observed only from the outside.
//!
//! Each test owns its temp dir and brokers, so tests run in parallel. The harness lives in the
//! `weir-tests` library (`tests/src`); `common` holds what only these tests share.

mod actions;
mod bad_input;
mod clock;
mod common;
mod config_check;
mod consumer;
mod crash_recovery;
mod detectors;
mod devices;
mod disk_full;
mod end_to_end;
mod engine_budget;
mod eval;
mod eval_beyond_nab;
mod fleet;
mod harness;
mod health_index;
mod incidents;
mod kill_loop;
mod learn;
mod metrics_endpoint;
mod observability;
mod outbox_ops;
mod outbox_path;
mod overflow_block;
mod oversized;
mod reconnect_storm;
mod reload;
mod reload_settings;
mod replay;
mod runtime;
mod schemas;
mod status_page;
mod supervision;
mod systemd;
mod uplink_outage;
mod uplink_status;
mod uplink_tls;

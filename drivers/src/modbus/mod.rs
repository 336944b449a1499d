//! The Modbus source.

pub mod map;

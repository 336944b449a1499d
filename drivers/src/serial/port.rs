//! Opening a serial port: the one place that turns line settings (device, baud, data bits,
//! parity, stop bits) into an open `tokio-serial` stream, for the serial source and for Modbus
//! RTU lines alike.

use std::path::Path;

use tokio_serial::{DataBits, FlowControl, SerialPortBuilderExt, SerialStream, StopBits};

use super::Parity;

/// A serial line's settings, as both the serial source's and Modbus RTU's configs give them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub path: &'a Path,
    pub baud: u32,
    /// 5 to 8; anything else opens with 8 (the configs validate the range).
    pub data_bits: u8,
    pub parity: Parity,
    /// 1 or 2; anything but 2 opens with 1.
    pub stop_bits: u8,
}

/// Opens the port, 8N1-style, no flow control.
pub(crate) fn open(line: Line<'_>) -> tokio_serial::Result<SerialStream> {
    let data_bits = match line.data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let stop_bits = if line.stop_bits == 2 {
        StopBits::Two
    } else {
        StopBits::One
    };
    tokio_serial::new(line.path.to_string_lossy(), line.baud)
        .data_bits(data_bits)
        .parity(line.parity.into())
        .stop_bits(stop_bits)
        .flow_control(FlowControl::None)
        .open_native_async()
}

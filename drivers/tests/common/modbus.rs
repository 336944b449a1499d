//! What the Modbus source tests share, over TCP (`modbus_source.rs`) and over a pty
//! (`modbus_rtu.rs`): register maps, the running source, and a delivery's values and
//! qualities.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weir_drivers::modbus::map::{DataType, Order, RegisterConfig, Table};
use weir_drivers::modbus::{self, ModbusConfig};
use weir_drivers::{Delivery, SourceCounters};

pub const WAIT: Duration = Duration::from_secs(20);

pub fn reg(
    name: &str,
    table: Table,
    address: u16,
    ty: DataType,
    word_order: Order,
) -> RegisterConfig {
    RegisterConfig {
        name: name.into(),
        table,
        address,
        data_type: Some(ty),
        byte_order: Order::Big,
        word_order,
        scale: 1.0,
        offset: 0.0,
    }
}

pub fn every_type() -> Vec<RegisterConfig> {
    use DataType::*;
    use Order::{Big as B, Little as L};
    use Table::*;
    let mut byte_little = reg("u16_byte_little", Holding, 20, U16, B);
    byte_little.byte_order = L;
    let mut scaled = reg("i16_scaled", Holding, 21, I16, B);
    scaled.scale = 0.1;
    scaled.offset = -40.0;
    vec![
        reg("u16", Holding, 0, U16, B),
        reg("i16", Holding, 1, I16, B),
        reg("u32_big", Holding, 2, U32, B),
        reg("u32_little", Holding, 4, U32, L),
        reg("i32", Holding, 6, I32, B),
        reg("f32_big", Holding, 8, F32, B),
        reg("f32_little", Holding, 10, F32, L),
        reg("f64_big", Holding, 12, F64, B),
        reg("f64_little", Holding, 16, F64, L),
        byte_little,
        scaled,
        reg("i32_little", Holding, 22, I32, L),
        reg("input_f32", Input, 0, F32, B),
        reg("coil0", Coil, 0, Bool, B),
        reg("coil1", Coil, 1, Bool, B),
        reg("coil2", Coil, 2, Bool, B),
        reg("di0", DiscreteInput, 0, Bool, B),
    ]
}

pub struct Running {
    pub rx: mpsc::Receiver<Delivery>,
    pub counters: Arc<SourceCounters>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), weir_drivers::SourceError>>,
}

pub fn start(cfg: ModbusConfig) -> Running {
    let (tx, rx) = mpsc::channel(64);
    let counters = Arc::new(SourceCounters::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(modbus::run(cfg, tx, counters.clone(), shutdown.clone()));
    Running {
        rx,
        counters,
        shutdown,
        task,
    }
}

/// A delivery's values by metric, without the quality samples.
pub fn values(d: &Delivery) -> BTreeMap<String, f64> {
    d.readings
        .iter()
        .filter(|r| !r.metric.ends_with(".quality"))
        .map(|r| (r.metric.to_string(), r.value))
        .collect()
}

/// A delivery's quality samples, by the metric they qualify.
pub fn qualities(d: &Delivery) -> BTreeMap<String, f64> {
    d.readings
        .iter()
        .filter_map(|r| Some((r.metric.strip_suffix(".quality")?.to_owned(), r.value)))
        .collect()
}

impl Running {
    pub async fn next(&mut self) -> Delivery {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("a delivery in time")
            .expect("source running")
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

//! Register maps: what to read from a slave, how to batch it, how to turn words into values.
//! Pure (no I/O), so every data type, byte and word order and every batching decision is
//! tested on plain words.

use serde::Deserialize;

/// The four Modbus tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    Coil,
    DiscreteInput,
    Holding,
    Input,
}

impl Table {
    /// Bit tables hold booleans; register tables hold 16-bit words.
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::DiscreteInput)
    }

    /// Most items one read may ask for (Modbus application protocol v1.1b3, §6).
    pub fn max_per_read(self) -> u16 {
        if self.is_bits() { 2000 } else { 125 }
    }
}

/// How a value is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    Bool,
    U16,
    I16,
    U32,
    I32,
    F32,
    F64,
}

impl DataType {
    /// Registers (or bits, for `bool`) the value occupies.
    pub fn width(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::F64 => 4,
        }
    }
}

/// Order of bytes within a register, or of registers within a value. Modbus itself is
/// big-endian; many devices store 32-bit values low word first (`word_order: little`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    #[default]
    Big,
    Little,
}

/// One value in a slave's map.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterConfig {
    /// The reading's metric name.
    pub name: String,
    pub table: Table,
    /// Zero-based address (the "40001" convention's register 1 is address 0).
    pub address: u16,
    /// Default: `bool` in bit tables, `u16` in register tables.
    #[serde(default, rename = "type")]
    pub data_type: Option<DataType>,
    #[serde(default)]
    pub byte_order: Order,
    #[serde(default)]
    pub word_order: Order,
    /// value = raw × scale + offset.
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
}

const fn one() -> f64 {
    1.0
}

impl RegisterConfig {
    pub fn data_type(&self) -> DataType {
        self.data_type.unwrap_or(if self.table.is_bits() {
            DataType::Bool
        } else {
            DataType::U16
        })
    }

    /// Why this entry cannot be read, if it cannot.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let ty = self.data_type();
        if self.name.is_empty() {
            return Some(("name", "must not be empty".into()));
        }
        if self.table.is_bits() != (ty == DataType::Bool) {
            return Some((
                "type",
                format!("{ty:?} does not fit table {:?}", self.table).to_lowercase(),
            ));
        }
        if u32::from(self.address) + u32::from(ty.width()) > 0x1_0000 {
            return Some(("address", "value runs past address 65535".into()));
        }
        if !(self.scale.is_finite() && self.offset.is_finite()) {
            return Some(("scale", "scale and offset must be finite".into()));
        }
        None
    }

    /// Decodes this value from its words (or bits as 0/1), already scaled.
    pub fn decode(&self, words: &[u16]) -> Option<f64> {
        decode_raw(self.data_type(), self.byte_order, self.word_order, words)
            .map(|raw| raw * self.scale + self.offset)
    }
}

/// Decodes `words` (exactly the type's width) as `ty`; `None` on a wrong length.
pub fn decode_raw(
    ty: DataType,
    byte_order: Order,
    word_order: Order,
    words: &[u16],
) -> Option<f64> {
    if words.len() != usize::from(ty.width()) {
        return None;
    }
    // Big-endian bytes of the value, whatever the device's layout.
    let mut bytes = [0u8; 8];
    let n = words.len();
    for (i, &w) in words.iter().enumerate() {
        let w = match byte_order {
            Order::Big => w,
            Order::Little => w.swap_bytes(),
        };
        let slot = match word_order {
            Order::Big => i,
            Order::Little => n - 1 - i,
        };
        bytes[2 * slot..2 * slot + 2].copy_from_slice(&w.to_be_bytes());
    }
    let b2 = [bytes[0], bytes[1]];
    let b4 = [bytes[0], bytes[1], bytes[2], bytes[3]];
    Some(match ty {
        DataType::Bool => f64::from(u8::from(words[0] != 0)),
        DataType::U16 => f64::from(u16::from_be_bytes(b2)),
        DataType::I16 => f64::from(i16::from_be_bytes(b2)),
        DataType::U32 => f64::from(u32::from_be_bytes(b4)),
        DataType::I32 => f64::from(i32::from_be_bytes(b4)),
        DataType::F32 => f64::from(f32::from_be_bytes(b4)),
        DataType::F64 => f64::from_be_bytes(bytes),
    })
}

/// One read request and the values it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub table: Table,
    pub start: u16,
    pub count: u16,
    /// Indices into the register list, each with its offset from `start`.
    pub items: Vec<(usize, u16)>,
}

/// Groups `registers` into as few reads as the layout allows: values of one table whose
/// addresses are at most `max_gap` apart share a read, up to the table's per-read limit.
/// Gaps are read and thrown away, so `max_gap: 0` (the default) never touches an address the
/// map does not name (some devices answer "illegal address" for holes).
pub fn plan(registers: &[RegisterConfig], max_gap: u16) -> Vec<Batch> {
    let mut order: Vec<usize> = (0..registers.len()).collect();
    order.sort_by_key(|&i| (registers[i].table, registers[i].address));
    let mut batches: Vec<Batch> = Vec::new();
    for i in order {
        let r = &registers[i];
        let end = u32::from(r.address) + u32::from(r.data_type().width());
        if let Some(b) = batches.last_mut()
            && b.table == r.table
        {
            let b_end = u32::from(b.start) + u32::from(b.count);
            let fits = end - u32::from(b.start) <= u32::from(r.table.max_per_read());
            if u32::from(r.address) <= b_end + u32::from(max_gap) && fits {
                b.count = u16::try_from(end.max(b_end) - u32::from(b.start)).unwrap_or(u16::MAX);
                b.items.push((i, r.address - b.start));
                continue;
            }
        }
        batches.push(Batch {
            table: r.table,
            start: r.address,
            count: r.data_type().width(),
            items: vec![(i, 0)],
        });
    }
    batches
}

#[cfg(test)]
#[path = "map_tests.rs"]
mod tests;

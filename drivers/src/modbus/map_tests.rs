use super::*;

fn reg(name: &str, table: Table, address: u16, ty: DataType) -> RegisterConfig {
    RegisterConfig {
        name: name.into(),
        table,
        address,
        data_type: Some(ty),
        byte_order: Order::Big,
        word_order: Order::Big,
        scale: 1.0,
        offset: 0.0,
    }
}

#[test]
fn every_type_and_order_decodes() {
    use DataType::*;
    use Order::{Big as B, Little as L};
    let cases: &[(DataType, Order, Order, &[u16], f64)] = &[
        (U16, B, B, &[0xFFFE], 65534.0),
        (U16, L, B, &[0xFEFF], 65534.0),
        (I16, B, B, &[0xFFFE], -2.0),
        (U32, B, B, &[0x0001, 0x0002], 65538.0),
        (U32, B, L, &[0x0002, 0x0001], 65538.0),
        (U32, L, L, &[0x0200, 0x0100], 65538.0),
        (I32, B, B, &[0xFFFF, 0xFFFE], -2.0),
        (I32, B, L, &[0xFFFE, 0xFFFF], -2.0),
        (F32, B, B, &[0x41AC, 0x0000], 21.5),
        (F32, B, L, &[0x0000, 0x41AC], 21.5),
        (F32, L, B, &[0xAC41, 0x0000], 21.5),
        (F64, B, B, &[0x4035, 0x8000, 0x0000, 0x0000], 21.5),
        (F64, B, L, &[0x0000, 0x0000, 0x8000, 0x4035], 21.5),
        (F64, L, L, &[0x0000, 0x0000, 0x0080, 0x3540], 21.5),
        (Bool, B, B, &[1], 1.0),
    ];
    for &(ty, bo, wo, words, want) in cases {
        assert_eq!(
            decode_raw(ty, bo, wo, words),
            Some(want),
            "{ty:?} {bo:?} {wo:?} {words:04x?}"
        );
    }
    assert_eq!(decode_raw(U32, B, B, &[1]), None);
}

#[test]
fn scale_and_offset_apply() {
    let mut r = reg("t", Table::Holding, 0, DataType::I16);
    r.scale = 0.1;
    r.offset = -40.0;
    let v = r.decode(&[0xFFF6]).expect("one word"); // -10 × 0.1 − 40
    assert!((v - -41.0).abs() < 1e-9, "{v}");
}

#[test]
fn batches_merge_adjacent_values_of_one_table() {
    let regs = vec![
        reg("b", Table::Holding, 2, DataType::F32), // 2..4
        reg("a", Table::Holding, 0, DataType::U16), // 0
        reg("c", Table::Holding, 4, DataType::F64), // 4..8
        reg("gap", Table::Holding, 10, DataType::U16),
        reg("i", Table::Input, 4, DataType::U16),
        reg("x", Table::Coil, 7, DataType::Bool),
        reg("y", Table::Coil, 8, DataType::Bool),
    ];
    let b = plan(&regs, 0);
    let summary: Vec<_> = b
        .iter()
        .map(|b| (b.table, b.start, b.count, b.items.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Table::Coil, 7, 2, vec![(5, 0), (6, 1)]),
            (Table::Holding, 0, 1, vec![(1, 0)]),
            (Table::Holding, 2, 6, vec![(0, 0), (2, 2)]),
            (Table::Holding, 10, 1, vec![(3, 0)]),
            (Table::Input, 4, 1, vec![(4, 0)]),
        ]
    );
    // Allowing gaps of up to 2 registers joins the holding reads into one.
    let b = plan(&regs, 2);
    let holding: Vec<_> = b.iter().filter(|b| b.table == Table::Holding).collect();
    assert_eq!(holding.len(), 1);
    assert_eq!((holding[0].start, holding[0].count), (0, 11));
}

#[test]
fn batches_respect_the_per_read_limit() {
    let regs: Vec<_> = (0..200)
        .map(|i| reg(&format!("r{i}"), Table::Input, i, DataType::U16))
        .collect();
    let b = plan(&regs, 0);
    assert_eq!(
        b.iter().map(|b| (b.start, b.count)).collect::<Vec<_>>(),
        vec![(0, 125), (125, 75)]
    );
    // A 4-register value never straddles two reads.
    let mut regs: Vec<_> = (0..124)
        .map(|i| reg(&format!("r{i}"), Table::Holding, i, DataType::U16))
        .collect();
    regs.push(reg("f", Table::Holding, 124, DataType::F64));
    let b = plan(&regs, 0);
    assert_eq!(
        b.iter().map(|b| (b.start, b.count)).collect::<Vec<_>>(),
        vec![(0, 124), (124, 4)]
    );
}

#[test]
fn problems_are_named() {
    let r = reg("x", Table::Coil, 0, DataType::U16);
    assert_eq!(r.problem().map(|p| p.0), Some("type"));
    let r = reg("x", Table::Holding, 65535, DataType::F32);
    assert_eq!(r.problem().map(|p| p.0), Some("address"));
    assert_eq!(
        reg("x", Table::Holding, 65534, DataType::U16).problem(),
        None
    );
}

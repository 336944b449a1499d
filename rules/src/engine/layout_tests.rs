//! The engine's own tables stay small: names shared, slots of a fixed size (issue 19's memory
//! work; a regression here costs every series).

use super::tests::{S, engine, push, raises};
use super::*;
use std::sync::Arc;

/// A device's series share its name, a metric's series share theirs, and the index keys are
/// those same copies: one allocation per distinct name, not three per series.
#[test]
fn series_names_are_shared_not_copied() {
    let mut e = engine(
        "rules:\n  - name: r\n    select: { metric: \"*\" }\n    window: { tumbling: 10s }\n    aggregates: [mean]\n",
    );
    let ids: Vec<SeriesId> = [("gw-1", "temp"), ("gw-1", "rpm"), ("gw-2", "temp")]
        .iter()
        .map(|(d, m)| e.series(d, m).unwrap())
        .collect();
    let s = |id: SeriesId| &e.series[id.0 as usize];
    assert!(Arc::ptr_eq(&s(ids[0]).device.0, &s(ids[1]).device.0));
    assert!(Arc::ptr_eq(&s(ids[0]).metric.0, &s(ids[2]).metric.0));
    assert!(!Arc::ptr_eq(&s(ids[0]).device.0, &s(ids[2]).device.0));
    assert_eq!(e.names.len(), 4);
    assert_eq!(e.index.len(), 3);
    assert_eq!(e.index.get(&e.series, "gw-1", "rpm"), Some(ids[1]));
    // The pair, not either name alone: `gw-2` has no `rpm`, and names do not run together.
    assert_eq!(e.index.get(&e.series, "gw-2", "rpm"), None);
    assert_eq!(e.index.get(&e.series, "gw-1r", "pm"), None);
    assert_eq!(e.series_name(ids[2]), Some(("gw-2", "temp")));
    // A name is one pointer, and the redelivery guard a flag, so a series is 56 bytes on
    // 64-bit targets (80 with `Arc<str>`, 64 with the guard's own time).
    assert_eq!(size_of::<Name>(), size_of::<usize>());
    if size_of::<usize>() == 8 {
        assert_eq!(size_of::<Series>(), 56);
    }
}

/// A slot is three indices and four flags (16 bytes on every target): what only some rules
/// keep (`prev`, `let` memory, storm control) is in the engine's table by slot index, held
/// only for those rules, and a slot without it reads as empty.
#[test]
fn a_slot_is_16_bytes_and_keeps_more_only_when_its_rule_needs_it() {
    assert_eq!(size_of::<Slot>(), 3 * 4 + 4);
    let mut e = engine(
        r#"
rules:
  - name: plain
    window: { tumbling: 10s }
    alert: { when: "max > 80" }
  - name: reads_prev
    window: { tumbling: 10s }
    alert: { when: "mean > prev(mean) + 5" }
  - name: storm
    window: { tumbling: 10s }
    alert: { when: "max > 80", cooldown: 1m }
"#,
    );
    let id = e.series("pump-1", "temp").unwrap();
    let more: Vec<bool> = (0..e.slots.len() as u32)
        .map(|at| e.mores.contains_key(&at))
        .collect();
    assert_eq!(more, [false, true, true]);
    // `prev(mean)` is read from the kept window: 10 → 20 raises (20 > 10 + 5).
    push(&mut e, id, 0, 10.0);
    push(&mut e, id, 10 * S, 20.0);
    let out = push(&mut e, id, 20 * S, 20.0);
    let raised: Vec<&str> = raises(&out).map(|ev| &*ev.rule).collect();
    assert_eq!(raised, ["reads_prev"]);
}

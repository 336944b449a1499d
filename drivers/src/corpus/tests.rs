use std::path::PathBuf;

use super::*;

fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/sim")
}

/// The corpus in the repository is exactly what the generator writes for [`SEED`]: anyone
/// can regenerate it, and a change to the physics cannot slip in without updating it.
#[test]
fn shipped_corpus_regenerates_byte_for_byte() {
    let dir = shipped();
    let recordings = generate(SEED);
    for r in &recordings {
        let on_disk = std::fs::read_to_string(dir.join(&r.file)).unwrap();
        assert!(on_disk == r.csv, "{} differs from the generator's", r.file);
    }
    let labels = std::fs::read_to_string(dir.join("labels.json")).unwrap();
    assert_eq!(labels, labels_json(&recordings));
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let a = generate(3);
    let b = generate(3);
    let c = generate(4);
    assert!(
        a.iter()
            .zip(&b)
            .all(|(x, y)| x.csv == y.csv && x.labels == y.labels)
    );
    assert!(a.iter().zip(&c).all(|(x, y)| x.csv != y.csv));
}

#[test]
fn labels_lie_in_their_recording_and_each_faulty_file_has_its_fault() {
    for r in generate(SEED) {
        let rows = r.csv.lines().count() - 1;
        let hours = if r.file.contains("healthy") { 6 } else { 3 };
        assert_eq!(rows as i64, hours * 3600 / STEP * 6, "{}", r.file);
        for l in &r.labels {
            assert!(START <= l.start && l.start < l.end, "{}: {l:?}", r.file);
            assert!(l.end <= START + hours * 3600 + 120, "{}: {l:?}", r.file);
        }
        let faults: Vec<_> = r
            .labels
            .iter()
            .filter(|l| l.fault)
            .map(|l| l.kind)
            .collect();
        match r.file.rsplit('-').next() {
            Some("healthy.csv") => assert!(faults.is_empty()),
            Some("bearing.csv") => assert_eq!(faults, ["bearing_wear"]),
            Some("process.csv") => assert_eq!(faults, [r.machine.process_fault().as_str()]),
            Some("sensor.csv") => assert_eq!(faults, ["sensor_drift", "stuck_sensor"]),
            other => panic!("unexpected file {other:?}"),
        }
        assert!(
            r.labels.iter().any(|l| l.kind == "load_change"),
            "{}",
            r.file
        );
    }
}

/// The values of `metric` in `csv` between `from` and `to` (epoch seconds).
fn values(csv: &str, metric: &str, from: i64, to: i64) -> Vec<f64> {
    csv.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let t: i64 = f[0].parse().unwrap();
            (f[2] == metric && (from..to).contains(&t)).then(|| f[3].parse().unwrap())
        })
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Cavitation lowers suction pressure and makes flow noisy; a stuck sensor repeats itself;
/// the quantised sensor only takes multiples of its step.
#[test]
fn faults_do_what_their_labels_say() {
    let all = generate(SEED);
    let pump = |s: &str| {
        all.iter()
            .find(|r| r.file == format!("pump-{s}.csv"))
            .unwrap()
    };
    let p = pump("process");
    let cav = p.labels.iter().find(|l| l.fault).unwrap();
    let before = values(&p.csv, "suction_pressure", cav.start - 1800, cav.start);
    let during = values(&p.csv, "suction_pressure", cav.start + 600, cav.end);
    assert!(
        mean(&before) - mean(&during) > 0.5,
        "{} {}",
        mean(&before),
        mean(&during)
    );

    let s = pump("sensor");
    let stuck = s.labels.iter().find(|l| l.kind == "stuck_sensor").unwrap();
    let v = values(&s.csv, stuck.sensors[0], stuck.start, stuck.end);
    assert!(v.len() > 100 && v.iter().all(|x| *x == v[0]));

    let h = pump("healthy");
    let flow = values(&h.csv, "flow", START, START + 3600);
    assert!(flow.iter().all(|x| x % 2.0 == 0.0));
}

//! Noise floors and the charts' restart after an alarm (modules `baseline` and `chart`), on
//! signals where the right answer is known, through the real engine like `tests`.

use super::tests::{Rig, level, noise, raised_at};

const S: i64 = 1_000_000;

/// The pump rig's flow meter: 1 l/min steps, resting on one step most of the time (MAD = 0),
/// dithering to the next now and then. No detector may call one step 1000σ or ∞.
#[test]
fn a_quantised_flow_sensor_does_not_alarm_on_one_step() {
    let flow: Vec<f64> = (0..3_000)
        .map(|i| {
            if i % 17 == 0 || i % 29 == 0 {
                51.0
            } else {
                50.0
            }
        })
        .collect();
    for detect in [
        "detect: { robust_zscore: {} }",
        "detect: { zscore: {} }",
        "detect: { ewma_chart: {} }",
        "detect: { cusum: {} }",
    ] {
        let trs = Rig::new(detect).run(&flow);
        assert!(trs.is_empty(), "{detect}: {trs:?}");
    }
    // Two steps for a while is a real change, reported with a finite score.
    let mut moved = flow.clone();
    moved[2_000..2_100].iter_mut().for_each(|x| *x = 52.0);
    for detect in ["detect: { cusum: {} }", "detect: { ewma_chart: {} }"] {
        let trs = Rig::new(detect).run(&moved);
        assert_eq!(raised_at(&trs).len(), 1, "{detect}: {trs:?}");
        assert!(
            trs.iter().all(|t| t.3.is_finite() && t.3.abs() < 100.0),
            "{trs:?}"
        );
    }
}

/// Restart after an alarm (module `chart`): a step up that lasts is a raise and, one warm-up
/// later, a clear that adopts the new level (score: the shift in σ); the step back down is a
/// raise and a clear in turn. Before the restart, `exclude_anomalies` stayed raised for good
/// and `learn: all` absorbed the shift so the return was no event.
#[test]
fn charts_restart_after_an_alarm_step_up_new_level_then_step_back_down() {
    // σ of the noise is 0.577: a step of 2 is 3.5σ.
    let mut v = level(10.0, 300, 30);
    v.extend(level(12.0, 400, 31));
    v.extend(level(10.0, 400, 32));
    for learn in ["exclude_anomalies", "all"] {
        for detect in [
            format!("detect: {{ cusum: {{ baseline: 100, learn: {learn} }} }}"),
            format!("detect: {{ ewma_chart: {{ baseline: 100, learn: {learn} }} }}"),
        ] {
            let trs = Rig::new(&detect).run(&v);
            let states: Vec<bool> = trs.iter().map(|t| t.1).collect();
            assert_eq!(states, [true, false, true, false], "{detect}: {trs:?}");
            let at: Vec<i64> = trs.iter().map(|t| t.0 / S).collect();
            assert!((300..310).contains(&at[0]), "{detect}: {at:?}");
            // New level adopted after one warm-up of re-learning: clear with the shift in σ.
            assert!((400..440).contains(&at[1]), "{detect}: {at:?}");
            assert!((2.5..4.5).contains(&trs[1].3), "{detect}: {trs:?}");
            // Back down: a shift from the adopted level, raised and then adopted in turn.
            assert!((700..710).contains(&at[2]), "{detect}: {at:?}");
            assert!((800..840).contains(&at[3]), "{detect}: {at:?}");
            assert!((-4.5..-2.5).contains(&trs[3].3), "{detect}: {trs:?}");
        }
    }
}

/// A slow drift: the chart raises once the drift is clear of the noise, then adopts a level
/// per warm-up while the drift goes on, and stops raising once it stops: never raised to the
/// end of the recording.
#[test]
fn charts_on_a_slow_drift_raise_and_do_not_stay_raised_after_it_stops() {
    let mut v = level(10.0, 300, 33);
    // 0.02 per value for 300 values: 6 units (10σ) in all, while a baseline of 100 lags
    // about 50 values (1 unit, 1.7σ) behind.
    let drift = noise(300, 34);
    v.extend(
        drift
            .iter()
            .enumerate()
            .map(|(i, e)| 10.0 + i as f64 * 0.02 + e),
    );
    v.extend(level(16.0, 600, 35));
    for detect in [
        "detect: { cusum: { baseline: 100 } }",
        "detect: { ewma_chart: { baseline: 100 } }",
    ] {
        let trs = Rig::new(detect).run(&v);
        assert!(
            trs.first().is_some_and(|t| t.1 && t.0 / S > 300),
            "{detect}: {trs:?}"
        );
        assert!(
            trs.last().is_some_and(|t| !t.1),
            "{detect} ends raised: {trs:?}"
        );
        assert!(trs.iter().all(|t| t.0 / S < 1_200), "{detect}: {trs:?}");
    }
    // `learn: frozen` keeps the textbook chart: raised while the drift lasts.
    let trs = Rig::new("detect: { cusum: { baseline: 100, learn: frozen } }").run(&v);
    assert_eq!(trs.len(), 1, "{trs:?}");
}

#[test]
fn detector_state_sizes_are_as_documented() {
    use super::{Detector, chart, zscore};
    assert_eq!(size_of::<zscore::ZState>(), 40);
    assert_eq!(size_of::<chart::EwmaState>(), 96);
    assert_eq!(size_of::<chart::CusumState>(), 104);
    assert_eq!(size_of::<Detector>(), 104);
}

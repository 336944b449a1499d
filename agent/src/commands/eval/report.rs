//! What `weir eval` prints: NAB's normalised scores first (the figure to compare with the
//! published table), then the per-category breakdown and plain event counts a field engineer
//! reads without knowing NAB (windows caught, false alarms, how early).

use std::collections::BTreeMap;
use std::io::Write;

use super::{Evaluation, Series, Tally, Throughput};

/// Event-level figures at one profile's threshold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Events {
    pub windows: u64,
    pub detected: u64,
    pub false_alarms: u64,
    /// Labelled anomaly time minus first detection time, µs, per detected window: positive
    /// when the alert came before the anomaly.
    pub leads: Vec<i64>,
}

impl Events {
    pub fn median_lead(&self) -> Option<i64> {
        let mut leads = self.leads.clone();
        leads.sort_unstable();
        match leads.len() {
            0 => None,
            n if n % 2 == 1 => Some(leads[n / 2]),
            n => Some((leads[n / 2 - 1] + leads[n / 2]) / 2),
        }
    }
}

/// Counts windows, detections and leads. The anomaly time of a window is the earliest raw
/// label inside it, or its middle when there are no raw labels (NAB centres windows on them).
pub fn events(
    series: &[Series],
    tallies: &[Tally],
    anomalies: Option<&BTreeMap<String, Vec<i64>>>,
) -> Events {
    let mut out = Events::default();
    for (s, tally) in series.iter().zip(tallies) {
        out.windows += tally.windows;
        out.detected += tally.detected;
        out.false_alarms += tally.fp;
        for (window, first) in s.windows.iter().zip(&tally.first_detections) {
            let Some(row) = first else { continue };
            let (start, end) = (s.timestamps[window.first], s.timestamps[window.last]);
            let anomaly = anomalies
                .and_then(|a| a.get(&s.name))
                .and_then(|times| times.iter().find(|&&t| t >= start && t <= end))
                .copied()
                .unwrap_or(start + (end - start) / 2);
            out.leads.push(anomaly - s.timestamps[*row]);
        }
    }
    out
}

/// Writes the report. The breakdown and the event figures are at `detail` when given (for
/// rules: every raised alert, which is what a user will see on the gateway), else at the
/// standard profile's corpus-wide threshold (NAB's view, which may switch a poor detector off).
pub fn write(
    out: &mut impl Write,
    series: &[Series],
    evaluation: &Evaluation,
    anomalies: Option<&BTreeMap<String, Vec<i64>>>,
    throughput: Option<&Throughput>,
    detail: Option<f64>,
    per_file: bool,
) -> std::io::Result<()> {
    let rows: usize = series.iter().map(|s| s.timestamps.len()).sum();
    writeln!(
        out,
        "NAB scores: {} files, {} windows, {rows} rows",
        series.len(),
        evaluation.total_windows
    )?;
    writeln!(
        out,
        "  {:<20} {:>10} {:>10} {:>8} {:>8} {:>10}",
        "profile", "threshold", "raw score", "null", "perfect", "normalised"
    )?;
    for p in &evaluation.profiles {
        writeln!(
            out,
            "  {:<20} {:>10} {:>10.3} {:>8.1} {:>8.1} {:>10.1}",
            p.profile.name,
            threshold(p.best.threshold),
            p.best.score,
            p.null,
            p.perfect,
            p.normalised
        )?;
    }
    let Some(standard) = evaluation.profiles.first() else {
        return Ok(());
    };
    let (files, at) = match detail {
        Some(threshold) => (
            series
                .iter()
                .map(|s| super::nab::score(s, standard.profile.costs, threshold))
                .collect(),
            "every raised alert",
        ),
        None => (standard.files.clone(), "the standard threshold"),
    };
    writeln!(out)?;
    writeln!(out, "per category (standard profile, {at}):")?;
    writeln!(
        out,
        "  {:<24} {:>5} {:>7} {:>8} {:>12} {:>9} {:>10}",
        "category", "files", "windows", "detected", "false alarms", "raw score", "normalised"
    )?;
    let mut categories: BTreeMap<&str, (usize, Tally, f64)> = BTreeMap::new();
    for (s, tally) in series.iter().zip(&files) {
        let category = s.name.rsplit_once('/').map_or("", |(c, _)| c);
        let entry = categories.entry(category).or_default();
        entry.0 += 1;
        entry.1.add(tally);
        entry.2 += s.windows.len() as f64;
    }
    let mut all = (0, Tally::default(), 0.0);
    for (files, tally, windows) in categories.values() {
        all.0 += files;
        all.1.add(tally);
        all.2 += windows;
    }
    for (category, (files, tally, windows)) in categories.iter().chain([(&"all", &all)]) {
        let costs = standard.profile.costs;
        let null = -(tally.windows as f64) * costs.fn_;
        let normalised = super::nab::normalise(tally.score, null, windows * costs.tp);
        writeln!(
            out,
            "  {:<24} {:>5} {:>7} {:>8} {:>12} {:>9.3} {:>10}",
            category,
            files,
            tally.windows,
            tally.detected,
            tally.fp,
            tally.score,
            if normalised.is_finite() {
                format!("{normalised:.1}")
            } else {
                "-".to_owned()
            }
        )?;
    }
    if per_file {
        writeln!(out)?;
        writeln!(out, "per file (standard profile, {at}):")?;
        for (s, tally) in series.iter().zip(&files) {
            writeln!(
                out,
                "  {:<60} windows {:>2} detected {:>2} false alarms {:>4} raw score {:>8.3}",
                s.name, tally.windows, tally.detected, tally.fp, tally.score
            )?;
        }
    }
    let events = events(series, &files, anomalies);
    writeln!(out)?;
    writeln!(
        out,
        "events ({at}, after probation): {} of {} windows detected, {} false alarms (detections outside every window)",
        events.detected, events.windows, events.false_alarms
    )?;
    if let Some(lead) = events.median_lead() {
        writeln!(
            out,
            "median lead: {} the labelled anomaly (first detection of each detected window)",
            lead_text(lead)
        )?;
    }
    if let Some(t) = throughput {
        let cpu = t.cpu_seconds.map_or(String::new(), |cpu| {
            format!(
                ", {:.0} values per CPU-second",
                t.values as f64 / cpu.max(1e-9)
            )
        });
        writeln!(
            out,
            "throughput: {} values in {:.2} s: {:.0} values/s{cpu} (read, rules, events; one thread); {} lines skipped, {} late, {} alerts after the last row",
            t.values,
            t.seconds,
            t.values as f64 / t.seconds.max(1e-9),
            t.skipped,
            t.late,
            t.after_end
        )?;
    }
    Ok(())
}

/// Random alarms at the same rate beside each profile's score, and the healthy files'
/// false-alarm rate.
pub fn write_chance(
    out: &mut impl Write,
    evaluation: &Evaluation,
    chance: &[super::chance::Chance],
    healthy: Option<&super::chance::Healthy>,
) -> std::io::Result<()> {
    let seeds = chance.first().map_or(0, |c| c.scores.len());
    if seeds > 0 {
        writeln!(
            out,
            "\nbeside chance (random alarms, as many per file as the detector's, {seeds} seeds):"
        )?;
        for (p, c) in evaluation.profiles.iter().zip(chance) {
            writeln!(
                out,
                "  {:<20} {:>6.1}   random {:>6.1} ± {:.1} (min {:.1}, max {:.1})",
                p.profile.name,
                p.normalised,
                c.mean(),
                c.spread(),
                c.scores.iter().copied().fold(f64::INFINITY, f64::min),
                c.scores.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            )?;
        }
    }
    if let Some(h) = healthy.filter(|h| h.files > 0) {
        writeln!(
            out,
            "healthy files (no labelled window): {} files, {:.1} h after probation, {} raises: {:.4} false alarms per hour",
            h.files,
            h.hours,
            h.alarms,
            h.per_hour()
        )?;
    }
    Ok(())
}

fn threshold(t: f64) -> String {
    if t.is_finite() {
        format!("{t}")
    } else {
        "none".to_owned()
    }
}

/// `3h 05m before` / `40m after`.
pub fn lead_text(lead_us: i64) -> String {
    let minutes = lead_us.unsigned_abs() / 60_000_000;
    let when = if lead_us >= 0 { "before" } else { "after" };
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m {when}"),
        (h, m) => format!("{h}h {m:02}m {when}"),
    }
}

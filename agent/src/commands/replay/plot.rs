//! `weir replay --plot out.svg`: draws (with `support::plot`, as the status page does) what the rules did, so an engineer tuning a rule can
//! see it at a glance instead of reading JSON lines.
//!
//! One panel per series: the samples (their min–max envelope and mean), each rule's window
//! results (the first aggregate the rule lists, at the window's end) and its alerts (a red line
//! where one is raised, a green one where it clears, shaded in between).
//!
//! A replay reads each value once with bounded memory, and the plot must not undo that on a
//! recording of a year of 1 Hz data. Each line is therefore kept in a [`Pyramid`]: a fixed
//! number of time buckets, all as wide, holding min, max and sum; when a value falls past the
//! last bucket, neighbouring buckets merge pairwise and the width doubles. The file's length
//! or time span is never needed up front, and a bucket is never narrower than a pixel-ish
//! share of the final picture (at most twice that). Alert marks are capped and the cap is
//! reported in the picture.

use std::io::Write;

use weir_rules::{AlertState, Engine, Event, EventKind, SeriesId};

use crate::support::plot::{Bucket, Line, Mark, Panel, document};

/// Buckets per line: about one per horizontal pixel of a panel.
const BUCKETS: usize = 1024;
/// Series drawn; later ones are counted and named in the footer.
const MAX_PANELS: usize = 12;
/// Alert marks kept per series.
const MAX_MARKS: usize = 2_000;

/// A time series reduced to at most [`BUCKETS`] equal-width buckets.
#[derive(Debug, Default)]
struct Pyramid {
    origin: i64,
    /// Bucket width in µs; doubles as the series grows.
    width: i64,
    buckets: Vec<Bucket>,
    last: i64,
}

impl Pyramid {
    fn add(&mut self, ts: i64, value: f64) {
        if !value.is_finite() {
            return;
        }
        if self.buckets.is_empty() {
            self.origin = ts;
            self.width = 1;
            self.last = ts;
            self.buckets = vec![Bucket::EMPTY; BUCKETS];
        }
        // A sample older than the first one is drawn in the first bucket: replays are
        // mostly in order, and the engine reports the late ones anyway.
        let offset = ts.saturating_sub(self.origin).max(0);
        while offset / self.width >= BUCKETS as i64 {
            for i in 0..BUCKETS / 2 {
                self.buckets[i] = Bucket::merge(self.buckets[2 * i], self.buckets[2 * i + 1]);
            }
            self.buckets[BUCKETS / 2..].fill(Bucket::EMPTY);
            self.width = self.width.saturating_mul(2);
        }
        self.buckets[(offset / self.width) as usize].add(value);
        self.last = self.last.max(ts);
    }

    /// `(bucket midpoint, bucket)` of every non-empty bucket, in time order.
    fn points(&self) -> impl Iterator<Item = (i64, Bucket)> {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| b.n > 0)
            .map(|(i, b)| {
                let mid = self.origin + i as i64 * self.width + self.width / 2;
                (mid.min(self.last), *b)
            })
    }

    #[cfg(test)]
    fn range(&self) -> Option<(f64, f64)> {
        self.points().fold(None, |acc, (_, b)| match acc {
            None => Some((b.min, b.max)),
            Some((lo, hi)) => Some((lo.min(b.min), hi.max(b.max))),
        })
    }
}

/// One rule's window results on one series.
#[derive(Debug)]
struct RuleLine {
    rule: Box<str>,
    aggregate: String,
    line: Pyramid,
}

#[derive(Debug)]
struct Track {
    name: String,
    raw: Pyramid,
    rules: Vec<RuleLine>,
    marks: Vec<Mark>,
    marks_dropped: u64,
}

/// What `--plot` collects during a replay; [`Plot::write_svg`] draws it at the end.
#[derive(Debug, Default)]
pub struct Plot {
    tracks: Vec<Track>,
    /// Series beyond [`MAX_PANELS`], not drawn.
    hidden: u64,
}

impl Plot {
    fn track(&mut self, engine: &Engine, series: SeriesId) -> Option<&mut Track> {
        let i = series.0 as usize;
        if i >= MAX_PANELS {
            return None;
        }
        // Series ids are dense and issued in order, so a new one is always the next index.
        while self.tracks.len() <= i {
            let id = SeriesId(self.tracks.len() as u32);
            let (device, metric) = engine.series_name(id).unwrap_or(("?", "?"));
            self.tracks.push(Track {
                name: format!("{device} / {metric}"),
                raw: Pyramid::default(),
                rules: Vec::new(),
                marks: Vec::new(),
                marks_dropped: 0,
            });
        }
        self.tracks.get_mut(i)
    }

    pub fn sample(&mut self, engine: &Engine, series: SeriesId, ts: i64, value: f64) {
        match self.track(engine, series) {
            Some(track) => track.raw.add(ts, value),
            // Ids are dense, so the highest one seen tells how many series were left out.
            None => self.hidden = self.hidden.max(u64::from(series.0) + 1 - MAX_PANELS as u64),
        }
    }

    pub fn event(&mut self, engine: &Engine, event: &Event) {
        let Some(track) = self.track(engine, event.series) else {
            return;
        };
        match &event.kind {
            EventKind::Window { end, values, .. } => {
                let Some((aggregate, value)) = values.first() else {
                    return;
                };
                let line = match track.rules.iter().position(|r| *r.rule == *event.rule) {
                    Some(i) => &mut track.rules[i],
                    None => {
                        track.rules.push(RuleLine {
                            rule: event.rule.as_ref().into(),
                            aggregate: aggregate.as_str().to_owned(),
                            line: Pyramid::default(),
                        });
                        let last = track.rules.len() - 1;
                        &mut track.rules[last]
                    }
                };
                // A window's result is known at its end; sliding windows end just after
                // their sample.
                line.line.add(end.saturating_sub(1), *value);
            }
            EventKind::Alert { state, .. } => {
                if track.marks.len() < MAX_MARKS {
                    track.marks.push(Mark {
                        ts: event.ts,
                        raised: *state == AlertState::Raised,
                        rule: event.rule.as_ref().into(),
                    });
                } else {
                    track.marks_dropped += 1;
                }
            }
            // Kinds added later are not drawn until the plot learns them.
            _ => {}
        }
    }

    /// Draws every panel as one SVG document.
    pub fn write_svg(&self, mut out: impl Write) -> std::io::Result<()> {
        out.write_all(self.svg().as_bytes())?;
        out.flush()
    }

    fn svg(&self) -> String {
        let panels: Vec<Panel> = self
            .tracks
            .iter()
            .map(|t| Panel {
                name: &t.name,
                samples: t.raw.points().collect(),
                lines: t
                    .rules
                    .iter()
                    .map(|r| Line {
                        label: format!("{} ({})", r.rule, r.aggregate),
                        points: r.line.points().map(|(ts, b)| (ts, b.mean())).collect(),
                    })
                    .collect(),
                marks: &t.marks,
                marks_dropped: t.marks_dropped,
            })
            .collect();
        let footer = (self.hidden > 0).then(|| {
            format!(
                "{} more series not drawn (the first {MAX_PANELS} are)",
                self.hidden
            )
        });
        document(&panels, None, footer.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pyramid_stays_bounded_and_keeps_the_extremes() {
        let mut p = Pyramid::default();
        // A year of 1 Hz data, with one spike in the middle.
        let n = 365 * 86_400i64;
        for i in (0..n).step_by(97) {
            let v = if i == 97 * 162_000 {
                1e6
            } else {
                (i % 1000) as f64
            };
            p.add(1_400_000_000_000_000 + i * 1_000_000, v);
        }
        assert_eq!(p.buckets.len(), BUCKETS);
        assert_eq!(p.range(), Some((0.0, 1e6)));
        let used = p.points().count();
        assert!(
            used > BUCKETS / 2,
            "{used} buckets used: the width doubled once too often"
        );
        let total: u32 = p.buckets.iter().map(|b| b.n).sum();
        assert_eq!(i64::from(total), (n + 96) / 97);
    }
}

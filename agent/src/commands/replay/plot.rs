//! `weir replay --plot out.svg`: draws what the rules did, so an engineer tuning a rule can
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

use std::fmt::Write as _;
use std::io::Write;

use weir_rules::{AlertState, Engine, Event, EventKind, SeriesId};

mod axes;
use axes::axes;

/// Buckets per line: about one per horizontal pixel of a panel.
const BUCKETS: usize = 1024;
/// Series drawn; later ones are counted and named in the footer.
const MAX_PANELS: usize = 12;
/// Alert marks kept per series.
const MAX_MARKS: usize = 2_000;
const WIDTH: f64 = 1100.0;
const PANEL: f64 = 220.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
/// Line colours of successive rules in a panel.
const PALETTE: [&str; 6] = [
    "#d95f02", "#7570b3", "#1b9e77", "#e7298a", "#66a61e", "#a6761d",
];

#[derive(Debug, Clone, Copy)]
struct Bucket {
    n: u32,
    min: f64,
    max: f64,
    sum: f64,
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        n: 0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        sum: 0.0,
    };

    fn merge(a: Bucket, b: Bucket) -> Bucket {
        Bucket {
            n: a.n + b.n,
            min: a.min.min(b.min),
            max: a.max.max(b.max),
            sum: a.sum + b.sum,
        }
    }
}

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
        let b = &mut self.buckets[(offset / self.width) as usize];
        b.n += 1;
        b.min = b.min.min(value);
        b.max = b.max.max(value);
        b.sum += value;
        self.last = self.last.max(ts);
    }

    /// `(bucket midpoint, bucket)` of every non-empty bucket, in time order.
    fn points(&self) -> impl Iterator<Item = (i64, &Bucket)> {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| b.n > 0)
            .map(|(i, b)| {
                let mid = self.origin + i as i64 * self.width + self.width / 2;
                (mid.min(self.last), b)
            })
    }

    fn span(&self) -> Option<(i64, i64)> {
        (!self.buckets.is_empty()).then_some((self.origin, self.last))
    }

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
struct Mark {
    ts: i64,
    raised: bool,
    rule: Box<str>,
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
        let mut svg = String::new();
        let panels = self.tracks.len().max(1);
        let footer = 30.0;
        let height = panels as f64 * PANEL + footer;
        let _ = write!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
             viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        let span = self
            .tracks
            .iter()
            .flat_map(|t| {
                std::iter::once(t.raw.span()).chain(t.rules.iter().map(|r| r.line.span()))
            })
            .flatten()
            .fold(None, |acc: Option<(i64, i64)>, (lo, hi)| match acc {
                None => Some((lo, hi)),
                Some((a, b)) => Some((a.min(lo), b.max(hi))),
            });
        match span {
            None => {
                let _ = writeln!(svg, "<text x=\"{LEFT}\" y=\"40\">no samples</text>");
            }
            Some(span) => {
                for (i, track) in self.tracks.iter().enumerate() {
                    draw_panel(&mut svg, track, span, i as f64 * PANEL);
                }
            }
        }
        if self.hidden > 0 {
            let _ = writeln!(
                svg,
                "<text x=\"{LEFT}\" y=\"{}\">{} more series not drawn (the first {MAX_PANELS} are)</text>",
                height - 10.0,
                self.hidden
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// Maps event time and values to the pixels of one panel.
struct Frame {
    t0: i64,
    t1: i64,
    v0: f64,
    v1: f64,
    top: f64,
    bottom: f64,
}

impl Frame {
    fn x(&self, ts: i64) -> f64 {
        let span = (self.t1 - self.t0).max(1) as f64;
        LEFT + (ts - self.t0) as f64 / span * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, v: f64) -> f64 {
        self.bottom - (v - self.v0) / (self.v1 - self.v0) * (self.bottom - self.top)
    }
}

fn draw_panel(svg: &mut String, track: &Track, (t0, t1): (i64, i64), offset: f64) {
    let (mut v0, mut v1) = std::iter::once(track.raw.range())
        .chain(track.rules.iter().map(|r| r.line.range()))
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (lo, hi)| {
            (a.min(lo), b.max(hi))
        });
    if !(v0.is_finite() && v1.is_finite()) {
        (v0, v1) = (0.0, 1.0);
    }
    let pad = if v1 > v0 { (v1 - v0) * 0.05 } else { 1.0 };
    let f = Frame {
        t0,
        t1,
        v0: v0 - pad,
        v1: v1 + pad,
        top: offset + 28.0,
        bottom: offset + PANEL - 36.0,
    };
    let _ = writeln!(
        svg,
        "<text x=\"{LEFT}\" y=\"{}\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        offset + 18.0,
        escape(&track.name)
    );
    let _ = writeln!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#999\"/>",
        f.top,
        WIDTH - LEFT - RIGHT,
        f.bottom - f.top
    );
    axes(svg, &f);
    alerts(svg, track, &f);

    // The samples: min–max envelope, then the bucket means.
    let points: Vec<(i64, &Bucket)> = track.raw.points().collect();
    if !points.is_empty() {
        let mut d = String::from("M");
        for (ts, b) in &points {
            let _ = write!(d, " {:.1},{:.1}", f.x(*ts), f.y(b.max));
        }
        for (ts, b) in points.iter().rev() {
            let _ = write!(d, " {:.1},{:.1}", f.x(*ts), f.y(b.min));
        }
        let _ = writeln!(
            svg,
            "<path class=\"envelope\" d=\"{d} Z\" fill=\"#9ecae1\" stroke=\"#9ecae1\" stroke-width=\"0.5\"/>"
        );
        polyline(
            svg,
            "samples",
            "#3182bd",
            points.iter().map(|(ts, b)| (*ts, b.sum / f64::from(b.n))),
            &f,
        );
    }
    let mut legend = vec![("#3182bd", "samples (mean, min–max)".to_owned())];
    for (i, rule) in track.rules.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        polyline(
            svg,
            "window",
            colour,
            rule.line
                .points()
                .map(|(ts, b)| (ts, b.sum / f64::from(b.n))),
            &f,
        );
        legend.push((colour, format!("{} ({})", rule.rule, rule.aggregate)));
    }
    if !track.marks.is_empty() {
        legend.push(("#d62728", "alert raised".to_owned()));
        legend.push(("#2ca02c", "alert cleared".to_owned()));
    }
    if track.marks_dropped > 0 {
        legend.push(("#000", format!("{} alerts not drawn", track.marks_dropped)));
    }
    // Past the title, whose width is estimated from its length (no font metrics here).
    let mut x = LEFT + 24.0 + 8.0 * track.name.chars().count() as f64;
    for (colour, text) in legend {
        let _ = writeln!(
            svg,
            "<rect x=\"{x:.0}\" y=\"{:.0}\" width=\"10\" height=\"10\" fill=\"{colour}\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\">{}</text>",
            offset + 9.0,
            x + 14.0,
            offset + 18.0,
            escape(&text)
        );
        x += 24.0 + 6.5 * text.chars().count() as f64;
    }
}

fn polyline(
    svg: &mut String,
    class: &str,
    colour: &str,
    points: impl Iterator<Item = (i64, f64)>,
    f: &Frame,
) {
    let mut p = String::new();
    for (ts, v) in points {
        let _ = write!(p, "{:.1},{:.1} ", f.x(ts), f.y(v));
    }
    let _ = writeln!(
        svg,
        "<polyline class=\"{class}\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"/>",
        p.trim_end()
    );
}

/// Red line where an alert is raised, green where it clears, shaded while it is raised.
fn alerts(svg: &mut String, track: &Track, f: &Frame) {
    let mut open: Vec<(&str, i64)> = Vec::new();
    let shade = |svg: &mut String, from: i64, to: i64| {
        let _ = writeln!(
            svg,
            "<rect class=\"raised\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#d62728\" fill-opacity=\"0.08\"/>",
            f.x(from),
            f.top,
            (f.x(to) - f.x(from)).max(0.5),
            f.bottom - f.top
        );
    };
    for mark in &track.marks {
        if mark.raised {
            open.push((&mark.rule, mark.ts));
        } else if let Some(i) = open.iter().position(|(r, _)| *r == &*mark.rule) {
            let (_, from) = open.swap_remove(i);
            shade(svg, from, mark.ts);
        }
    }
    for (_, from) in open {
        shade(svg, from, f.t1);
    }
    // Clears first, so that a raise and a clear a pixel apart still show the raise.
    for raised in [false, true] {
        for mark in track.marks.iter().filter(|m| m.raised == raised) {
            let x = f.x(mark.ts);
            let (class, colour, extra) = if raised {
                ("raise", "#d62728", "stroke-width=\"1.5\"")
            } else {
                ("clear", "#2ca02c", "stroke-dasharray=\"3,2\"")
            };
            let _ = writeln!(
                svg,
                "<line class=\"{class}\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" {extra}><title>{}</title></line>",
                f.top,
                f.bottom,
                escape(&mark.rule)
            );
            if raised {
                let y = f.top;
                let _ = writeln!(
                    svg,
                    "<path d=\"M {:.1},{:.1} L {:.1},{:.1} L {x:.1},{:.1} Z\" fill=\"{colour}\"/>",
                    x - 4.0,
                    y - 6.0,
                    x + 4.0,
                    y - 6.0,
                    y
                );
            }
        }
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

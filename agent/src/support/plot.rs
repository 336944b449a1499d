//! SVG panels of series: what `weir replay --plot` draws over a recording and what the status
//! page (`daemon::page`) draws over the last minutes, one drawing for both so an engineer
//! reads the same picture in the office and at the machine.
//!
//! A panel is one series: its samples already reduced to time buckets (min–max envelope and
//! mean), each rule's window results as a line, and alert marks (a red line where one is
//! raised, a green one where it clears, shaded in between). How the buckets are kept is the
//! caller's business (a doubling pyramid for a replay, a sliding ring on the gateway); this
//! module only draws.

use std::fmt::Write as _;

mod axes;
use axes::axes;

const WIDTH: f64 = 1100.0;
/// Height of one panel.
pub const PANEL: f64 = 220.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
/// Line colours of successive rules in a panel.
const PALETTE: [&str; 6] = [
    "#d95f02", "#7570b3", "#1b9e77", "#e7298a", "#66a61e", "#a6761d",
];

/// Values that fell in one time bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub n: u32,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
}

impl Bucket {
    pub const EMPTY: Bucket = Bucket {
        n: 0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        sum: 0.0,
    };

    pub fn merge(a: Bucket, b: Bucket) -> Bucket {
        Bucket {
            n: a.n + b.n,
            min: a.min.min(b.min),
            max: a.max.max(b.max),
            sum: a.sum + b.sum,
        }
    }

    pub fn add(&mut self, value: f64) {
        self.n += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += value;
    }

    pub fn mean(&self) -> f64 {
        self.sum / f64::from(self.n.max(1))
    }
}

/// An alert transition on a panel.
#[derive(Debug, Clone)]
pub struct Mark {
    pub ts: i64,
    pub raised: bool,
    pub rule: Box<str>,
}

/// One rule's window results: `(time, value)` in time order.
#[derive(Debug)]
pub struct Line {
    /// `rule (aggregate)`, for the legend.
    pub label: String,
    pub points: Vec<(i64, f64)>,
}

/// One series to draw.
#[derive(Debug)]
pub struct Panel<'a> {
    pub name: &'a str,
    /// `(bucket time, bucket)` of the non-empty buckets, in time order.
    pub samples: Vec<(i64, Bucket)>,
    pub lines: Vec<Line>,
    /// In time order.
    pub marks: &'a [Mark],
    /// Marks not kept (a cap), said in the legend.
    pub marks_dropped: u64,
}

impl Panel<'_> {
    /// The time span of its samples, lines and marks.
    pub fn span(&self) -> Option<(i64, i64)> {
        self.samples
            .iter()
            .map(|(t, _)| *t)
            .chain(self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)))
            .chain(self.marks.iter().map(|m| m.ts))
            .fold(None, |acc, t| match acc {
                None => Some((t, t)),
                Some((a, b)) => Some((a.min(t), b.max(t))),
            })
    }

    fn range(&self) -> (f64, f64) {
        let (v0, v1) = self
            .samples
            .iter()
            .map(|(_, b)| (b.min, b.max))
            .chain(
                self.lines
                    .iter()
                    .flat_map(|l| l.points.iter().map(|p| (p.1, p.1))),
            )
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (lo, hi)| {
                (a.min(lo), b.max(hi))
            });
        if v0.is_finite() && v1.is_finite() {
            (v0, v1)
        } else {
            (0.0, 1.0)
        }
    }
}

/// Every panel stacked in one SVG document, all over the time span `span` (`None`: the
/// union of theirs), with `footer` under them when given.
pub fn document(panels: &[Panel], span: Option<(i64, i64)>, footer: Option<&str>) -> String {
    let mut svg = String::new();
    let height = panels.len().max(1) as f64 * PANEL + 30.0;
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let span = span.or_else(|| {
        panels
            .iter()
            .filter_map(Panel::span)
            .reduce(|(a, b), (lo, hi)| (a.min(lo), b.max(hi)))
    });
    match span {
        None => {
            let _ = writeln!(svg, "<text x=\"{LEFT}\" y=\"40\">no samples</text>");
        }
        Some(span) => {
            for (i, panel) in panels.iter().enumerate() {
                draw_panel(&mut svg, panel, span, i as f64 * PANEL);
            }
        }
    }
    if let Some(footer) = footer {
        let _ = writeln!(
            svg,
            "<text x=\"{LEFT}\" y=\"{}\">{}</text>",
            height - 10.0,
            escape(footer)
        );
    }
    svg.push_str("</svg>\n");
    svg
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

fn draw_panel(svg: &mut String, panel: &Panel, (t0, t1): (i64, i64), offset: f64) {
    let (v0, v1) = panel.range();
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
        escape(panel.name)
    );
    let _ = writeln!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#999\"/>",
        f.top,
        WIDTH - LEFT - RIGHT,
        f.bottom - f.top
    );
    axes(svg, &f);
    alerts(svg, panel, &f);

    // The samples: min–max envelope, then the bucket means.
    let points = &panel.samples;
    if !points.is_empty() {
        let mut d = String::from("M");
        for (ts, b) in points {
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
            points.iter().map(|(ts, b)| (*ts, b.mean())),
            &f,
        );
    }
    let mut legend = vec![("#3182bd", "samples (mean, min–max)".to_owned())];
    for (i, line) in panel.lines.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        polyline(svg, "window", colour, line.points.iter().copied(), &f);
        legend.push((colour, line.label.clone()));
    }
    if !panel.marks.is_empty() {
        legend.push(("#d62728", "alert raised".to_owned()));
        legend.push(("#2ca02c", "alert cleared".to_owned()));
    }
    if panel.marks_dropped > 0 {
        legend.push(("#000", format!("{} alerts not drawn", panel.marks_dropped)));
    }
    // Past the title, whose width is estimated from its length (no font metrics here).
    let mut x = LEFT + 24.0 + 8.0 * panel.name.chars().count() as f64;
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
/// Marks outside the panel's time span are left out (a live panel slides past them).
fn alerts(svg: &mut String, panel: &Panel, f: &Frame) {
    let mut open: Vec<(&str, i64)> = Vec::new();
    let shade = |svg: &mut String, from: i64, to: i64| {
        let (from, to) = (from.max(f.t0), to.min(f.t1));
        if to < from {
            return;
        }
        let _ = writeln!(
            svg,
            "<rect class=\"raised\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#d62728\" fill-opacity=\"0.08\"/>",
            f.x(from),
            f.top,
            (f.x(to) - f.x(from)).max(0.5),
            f.bottom - f.top
        );
    };
    for mark in panel.marks {
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
        let visible = |m: &&Mark| m.raised == raised && (f.t0..=f.t1).contains(&m.ts);
        for mark in panel.marks.iter().filter(visible) {
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

/// Text made safe inside SVG or HTML elements and attribute values.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

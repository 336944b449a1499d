//! Validation of a rule's `fft:` section into an [`FftPlan`] and its `band_energy.<band>`
//! aggregates, kept apart from the rest of the rule compiler because it only concerns the
//! vibration rules.

use std::sync::Arc;

use super::Compiler;
use crate::event::Aggregate;
use crate::schema::RawFft;
use crate::spectrum::{FftPlan, MAX_BANDS, MAX_SIZE, MIN_SIZE, band_name};
use crate::tree::{Node, NodeKind};

impl Compiler<'_> {
    /// The plan and the band aggregates, in the order the bands are written; `None` after
    /// reporting every problem found.
    pub(super) fn fft(
        &mut self,
        node: &Node,
        rule: &str,
        raw: &RawFft,
    ) -> Option<(Arc<FftPlan>, Vec<Aggregate>)> {
        let before = self.diagnostics.len();
        let size = usize::try_from(raw.size).unwrap_or(0);
        if !size.is_power_of_two() || !(MIN_SIZE..=MAX_SIZE).contains(&size) {
            let msg = format!(
                "`fft.size` must be a power of two from {MIN_SIZE} to {MAX_SIZE}, found {}",
                raw.size
            );
            self.report(node.locate(&["fft", "size"]), Some(rule), msg);
        }
        let fs = raw.sample_rate;
        if !(fs.is_finite() && fs > 0.0) {
            let msg = format!("`fft.sample_rate` must be a positive number, found {fs}");
            self.report(node.locate(&["fft", "sample_rate"]), Some(rule), msg);
        }
        let entries = match node
            .get("fft")
            .and_then(|f| f.get("bands"))
            .map(|b| &b.kind)
        {
            Some(NodeKind::Map(entries)) => entries.as_slice(),
            _ => &[],
        };
        if entries.is_empty() || entries.len() > MAX_BANDS {
            let msg = format!("`fft.bands` needs 1 to {MAX_BANDS} bands");
            self.report(node.locate(&["fft", "bands"]), Some(rule), msg);
        }
        let mut ranges = Vec::with_capacity(entries.len());
        let mut aggregates = Vec::with_capacity(entries.len());
        for (i, (key, value)) in entries.iter().enumerate() {
            let Some(name) = key.as_str() else { continue };
            let ident = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ident {
                let msg = format!(
                    "band name `{name}` must be letters, digits and `_`, not starting with a digit"
                );
                self.report(key.loc, Some(rule), msg);
                continue;
            }
            let range = match raw.bands.get(name).map(Vec::as_slice) {
                Some(&[lo, hi]) if lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi => {
                    (lo, hi)
                }
                _ => {
                    let msg =
                        format!("band `{name}` must be `[low_hz, high_hz]` with 0 ≤ low ≤ high");
                    self.report(value.loc, Some(rule), msg);
                    continue;
                }
            };
            if fs.is_finite() && range.1 > fs / 2.0 {
                let msg = format!(
                    "band `{name}` reaches {} Hz, above the Nyquist frequency {} Hz (sample_rate / 2)",
                    range.1,
                    fs / 2.0
                );
                self.report(value.loc, Some(rule), msg);
                continue;
            }
            let Some(full) = band_name(name) else {
                let msg = "too many distinct band names in this process; restart the agent";
                self.report(key.loc, Some(rule), msg);
                continue;
            };
            // Checked above: at most MAX_BANDS (16) entries.
            let index = u8::try_from(i).unwrap_or(u8::MAX);
            ranges.push(range);
            aggregates.push(Aggregate::BandEnergy { index, name: full });
        }
        if self.diagnostics.len() != before {
            return None;
        }
        match FftPlan::new(size, fs, &ranges) {
            Ok(plan) => Some((Arc::new(plan), aggregates)),
            Err((i, msg)) => {
                let at = entries.get(i).map_or(node.loc, |(_, v)| v.loc);
                self.report(at, Some(rule), msg);
                None
            }
        }
    }
}

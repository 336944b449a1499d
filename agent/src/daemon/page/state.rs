//! `/api/state`: one JSON document with everything the page shows, read from the same
//! counters `/metrics` reads (nothing is counted twice) and from the page's [`Board`].
//! One page of series (searched by name) is included, with its plot already drawn.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde_json::{Value, json};
use weir_drivers::now_us;

use super::Page;
use super::board::{AlertEntry, BUCKET_US, BUCKETS, SeriesView};
use crate::daemon::metrics::Sources;
use crate::outbox::Lane;
use crate::support::plot;

/// Series listed and drawn per page.
pub const PER_PAGE: usize = 6;
/// Raised alerts, cleared alerts and predictions sent per response (newest or soonest
/// first); the totals are sent beside them. A fault on 10,000 devices is 1,000 raised
/// alerts on the board: 200 KB every 2 s would be the page's whole budget.
pub const LISTED: usize = 50;

/// The rule files as loaded at start (or by the last reload).
#[derive(Debug, Clone, Default)]
pub struct RuleFiles {
    pub loaded: Vec<String>,
    /// `(file, problems as file:line:col: message)`.
    pub rejected: Vec<(String, Vec<String>)>,
    pub rules: usize,
    /// The last reload found these files and refused them all: the rules loaded before keep
    /// running.
    pub reload_rejected: bool,
}

impl RuleFiles {
    /// What `outcome` loaded of the rule files `loaded` names.
    pub fn of(
        loaded: &crate::config::Loaded,
        outcome: &crate::config::rule_files::Outcome,
    ) -> Self {
        let rejected: Vec<(String, Vec<String>)> = outcome
            .rejected
            .iter()
            .map(|r| (r.file.clone(), r.problems.clone()))
            .collect();
        let loaded = loaded
            .rule_files()
            .into_iter()
            .filter_map(Result::ok)
            .map(|f| f.name)
            .filter(|name| rejected.iter().all(|(file, _)| file != name))
            .collect();
        RuleFiles {
            loaded,
            rejected,
            rules: outcome.rules.len(),
            reload_rejected: false,
        }
    }
}

/// The mean of a latency histogram (seconds) in ms; `None` before the first observation.
/// `prometheus-client` exposes a histogram's sum and count only through its encoding.
fn mean_ms(h: &prometheus_client::metrics::histogram::Histogram) -> Option<f64> {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register("l", "", h.clone());
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).ok()?;
    let value = |suffix: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(suffix)?.trim().parse().ok())
    };
    let (sum, count) = (value("l_sum ")?, value("l_count ")?);
    (count > 0.0).then(|| sum / count * 1e3)
}

fn seconds(us: i64) -> f64 {
    us as f64 / 1e6
}

fn alert_json(a: &AlertEntry) -> Value {
    json!({
        "rule": &*a.rule,
        "series": a.series,
        "severity": a.severity,
        "condition": &*a.condition,
        "message": a.message.as_deref(),
        "value": a.value,
        "raised_at": a.raised_at,
        "cleared_at": a.cleared_at,
    })
}

pub async fn render(page: &Page, sources: &Sources, filter: &str, page_no: usize) -> String {
    let now = now_us();
    let outbox = tokio::time::timeout(Duration::from_secs(2), sources.outbox.stats())
        .await
        .ok()
        .and_then(Result::ok);
    let source_list: Vec<Value> = sources
        .sources
        .get()
        .iter()
        .map(|(name, c)| {
            let last = c.last_reading_us.load(Relaxed);
            json!({
                "name": name,
                "connected": c.is_connected(),
                "stalled": c.is_stalled(),
                "last_reading_age_s": (last != 0).then(|| seconds((now - last).max(0))),
                "readings": c.readings.load(Relaxed),
                "decode_errors": c.decode_errors.load(Relaxed),
                "transport_errors": c.transport_errors.load(Relaxed),
                "timeouts": c.timeouts.load(Relaxed),
                "connects": c.connects.load(Relaxed),
            })
        })
        .collect();
    let p = &sources.pipeline;
    let outbox_json = outbox.map(|o| {
        json!({
            "lanes": Lane::ALL.iter().map(|lane| {
                let l = &o.lanes[*lane as usize];
                json!({
                    "lane": lane.as_str(),
                    "records": l.count,
                    "bytes": l.bytes,
                    "oldest_age_s": l.oldest_created_at.map(|t| seconds((now - t).max(0))),
                })
            }).collect::<Vec<_>>(),
            "bytes": o.bytes,
            "max_bytes": o.max_bytes,
            "evicted": o.evicted,
            "blocked_s": sources.outbox.blocked_since().map(|t| seconds((now - t).max(0))),
        })
    });
    let uplink = sources.uplink.as_ref().map(|u| {
        let published = u.published.load(Relaxed);
        let acked = u.acked.load(Relaxed);
        json!({
            "connected": u.connected.load(Relaxed),
            "connects": u.connects.load(Relaxed),
            "connection_errors": u.connection_errors.load(Relaxed),
            "published": published,
            "acked": acked,
            "in_flight": published.saturating_sub(acked),
            "latency_ms_mean": mean_ms(&u.latency),
        })
    });
    let rules = {
        let files = page
            .rule_files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        json!({
            "rules": files.rules,
            "reload_rejected": files.reload_rejected,
            "loaded": files.loaded,
            "rejected": files.rejected.iter().map(|(file, problems)| json!({
                "file": file, "problems": problems,
            })).collect::<Vec<_>>(),
        })
    };
    let since = now - BUCKETS as i64 * BUCKET_US;
    // Copied under the lock, drawn after it: the pipeline waits for the copy only.
    let board = page.board();
    let (total, indices) = board.find(filter, page_no.saturating_mul(PER_PAGE), PER_PAGE);
    let views: Vec<SeriesView> = indices
        .iter()
        .filter_map(|i| board.view(*i, since))
        .collect();
    let counts = (board.series_count(), board.series_untracked);
    let mut active = board.active();
    let active_total = active.len();
    active.truncate(LISTED);
    let cleared: Vec<AlertEntry> = board.cleared().cloned().collect();
    let untracked_alerts = board.active_untracked;
    let mut predictions = board.predictions();
    let predictions_total = predictions.len();
    predictions.truncate(LISTED);
    drop(board);
    let (series, svg) = series_page(&views, total, counts, filter, page_no, (since, now));
    let doc = json!({
        "now": now,
        "gateway": &*page.gateway_id,
        "sources": source_list,
        "engine": {
            "samples": p.samples.load(Relaxed),
            "events": p.events.load(Relaxed),
            "alerts": p.alerts.load(Relaxed),
            "series_rejected": p.series_rejected.load(Relaxed),
            "late_dropped": p.late_dropped.load(Relaxed),
        },
        "alerts": {
            "active": active.iter().map(alert_json).collect::<Vec<_>>(),
            "active_total": active_total,
            "cleared": cleared.iter().map(alert_json).collect::<Vec<_>>(),
            "untracked": untracked_alerts,
        },
        "predictions_total": predictions_total,
        "predictions": predictions.iter().map(|p| json!({
            "rule": &*p.rule,
            "series": p.series,
            "ts": p.ts,
            "eta": p.eta,
            "early": p.early,
            "late": p.late,
            "threshold": p.threshold,
            "level": p.level,
            "r2": p.r2,
            "model": p.model,
        })).collect::<Vec<_>>(),
        "outbox": outbox_json,
        "uplink": uplink,
        "rules": rules,
        "series": series,
        "plot": svg,
    });
    doc.to_string()
}

/// The list of page `page_no` (`views`, of `total` matching `filter`; `(tracked,
/// untracked)` series in all) and their plot over `(since, now)`.
fn series_page(
    views: &[SeriesView],
    total: usize,
    (tracked, untracked): (usize, u64),
    filter: &str,
    page_no: usize,
    (since, now): (i64, i64),
) -> (Value, String) {
    let items: Vec<Value> = views
        .iter()
        .map(|v| {
            json!({
                "name": v.name,
                "last": v.last_value,
                "age_s": (v.last_ts != i64::MIN).then(|| seconds((now - v.last_ts).max(0))),
                "buckets": v.samples.len(),
            })
        })
        .collect();
    let panels: Vec<plot::Panel> = views
        .iter()
        .map(|v| plot::Panel {
            name: &v.name,
            samples: v.samples.clone(),
            lines: v
                .lines
                .iter()
                .map(|l| plot::Line {
                    label: l.label.clone(),
                    points: l.points.clone(),
                })
                .collect(),
            marks: &v.marks,
            marks_dropped: 0,
        })
        .collect();
    let svg = if panels.is_empty() {
        String::new()
    } else {
        plot::document(&panels, Some((since, now)), None)
    };
    let json = json!({
        "total": total,
        "tracked": tracked,
        "untracked": untracked,
        "page": page_no,
        "per_page": PER_PAGE,
        "query": filter,
        "items": items,
    });
    (json, svg)
}

//! The live status page at `/` on the metrics listener: what an engineer with a laptop on the
//! gateway's Ethernet port wants to *see* (sources and their health, each series' last
//! minutes with its window results and alerts, the alerts with their conditions, predictions
//! counting down, the outbox lanes and the uplink, the rule files loaded and rejected).
//!
//! Why it is built this way:
//! - Gateways are offline: every asset is compiled in ([`ASSETS`], `include_str!`), the page
//!   fetches nothing but its own `/api/state`, and its Content-Security-Policy forbids any
//!   other origin. Plain JavaScript polls `/api/state` every 2 s; no build step.
//! - The plots are the SVG `weir replay --plot` draws (`support::plot`), rendered here from
//!   the [`board::Board`]'s buckets, so the browser draws nothing of its own.
//! - Memory is bounded whatever the number of series (see [`board`]: at most
//!   [`board::BYTES_PER_SERIES`] per series, `metrics.page.max_series` series); a request
//!   shows one page of series (searched by name), so a response is bounded too.
//! - Read-only, and behind `metrics.page.token` when one is set (required off loopback; see
//!   [`auth`]). `/metrics` and `/healthz` stay open for scrapers and probes.
//! - Its settings change with a reload ([`Page::apply`]): the page exists for the agent's
//!   life, and `metrics.page.enabled` (with a listener) only decides whether it records and
//!   answers. Turned off, its board is emptied (its memory given back); a new token answers
//!   from the next request; a lowered `max_series` drops the tracks above it at once, a
//!   raised one tracks the series above the old bound from their next sample.

mod auth;
pub mod board;
mod state;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use weir_rules::{Event, Sample};

use crate::daemon::pipeline::{Names, Watch};

use crate::config::PageConfig;
use board::Board;

pub use state::RuleFiles;

/// The page's HTML, script and style, compiled in.
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
    (
        "/page.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/page.js"),
    ),
    (
        "/page.css",
        "text/css; charset=utf-8",
        include_str!("assets/page.css"),
    ),
];

/// Sent with every page response: nothing may be loaded from elsewhere, nothing framed.
const HEADERS: &str = "Content-Security-Policy: default-src 'self'; img-src 'self' data:; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'\r\nX-Content-Type-Options: \
    nosniff\r\nReferrer-Policy: no-referrer\r\nCache-Control: no-store\r\n";

/// The page's state, shared by the pipeline (which records into it) and the listener.
#[derive(Clone)]
pub struct Page {
    /// `metrics.page.enabled` and a listener: whether it records and answers.
    enabled: Arc<AtomicBool>,
    board: Arc<Mutex<Board>>,
    rule_files: Arc<Mutex<RuleFiles>>,
    token: Arc<Mutex<Option<Arc<str>>>>,
    gateway_id: Arc<str>,
}

/// A response of the page.
pub struct Response {
    pub status: &'static str,
    pub content_type: &'static str,
    /// Extra header lines, each ending in CRLF.
    pub headers: &'static str,
    pub body: String,
}

/// What the listener read of a request.
pub struct Request<'a> {
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub authorization: Option<&'a str>,
}

impl Page {
    /// On when `metrics.page.enabled` and `listening` (a `metrics.listen` is set).
    pub fn new(
        config: &PageConfig,
        listening: bool,
        gateway_id: &str,
        rule_files: RuleFiles,
    ) -> Page {
        Page {
            enabled: Arc::new(AtomicBool::new(config.enabled && listening)),
            board: Arc::new(Mutex::new(Board::new(config.max_series))),
            rule_files: Arc::new(Mutex::new(rule_files)),
            token: Arc::new(Mutex::new(config.token.as_deref().map(Arc::from))),
            gateway_id: Arc::from(gateway_id),
        }
    }

    /// Whether the page records what flows and answers its paths.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Takes new `metrics.page` settings (a reload; see the module docs).
    pub fn apply(&self, config: &PageConfig, listening: bool) {
        let on = config.enabled && listening;
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) =
            config.token.as_deref().map(Arc::from);
        let mut board = self.board();
        if on {
            board.set_max_series(config.max_series);
        } else {
            *board = Board::new(config.max_series);
        }
        self.enabled.store(on, Ordering::Release);
    }

    /// The board, for a batch of recordings. A poisoned lock (a panic while recording) is
    /// taken over: the board holds pictures, not records.
    pub fn board(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Shows what a reload found in the rule files: when it refuses them, the rules loaded
    /// before keep running (and their count stays).
    pub fn reloaded(
        &self,
        loaded: &crate::config::Loaded,
        outcome: &crate::config::rule_files::Outcome,
    ) {
        let mut files = RuleFiles::of(loaded, outcome);
        let mut shown = self.rule_files.lock().unwrap_or_else(|e| e.into_inner());
        files.reload_rejected = !outcome.rejected.is_empty();
        if files.reload_rejected {
            files.rules = shown.rules;
        }
        *shown = files;
    }
}

/// The pipeline shows the page what flows through the engine.
impl Watch for Page {
    fn watching(&self) -> bool {
        self.enabled()
    }

    fn samples(&self, samples: &[Sample], names: &Names<'_>) {
        let names = |id| full_name(names, id);
        let mut board = self.board();
        for s in samples {
            board.sample(s.series, s.ts, s.value, &names);
        }
    }

    fn events(&self, events: &[Event], names: &Names<'_>) {
        let names = |id| full_name(names, id);
        let mut board = self.board();
        for event in events {
            board.event(event, &names);
        }
    }
}

/// `device/metric`.
fn full_name(names: &Names<'_>, id: weir_rules::SeriesId) -> String {
    let (device, metric) = names(id);
    format!("{device}/{metric}")
}

impl Page {
    /// Whether `path` is the page's (so the listener routes it here).
    pub fn serves(path: &str) -> bool {
        ASSETS.iter().any(|(p, ..)| *p == path) || path == "/api/state"
    }

    /// Answers a request for one of [`Page::serves`]'s paths; `sources` is what the metrics
    /// read (counters, outbox, uplink).
    pub async fn respond(
        &self,
        request: &Request<'_>,
        sources: &crate::daemon::metrics::Sources,
    ) -> Response {
        // The script and the style hold no data: served to anyone, so the 401 form is styled.
        if let Some((_, content_type, body)) = ASSETS
            .iter()
            .find(|(p, ..)| *p == request.path && *p != "/")
        {
            return Response {
                status: "200 OK",
                content_type,
                headers: HEADERS,
                body: (*body).to_owned(),
            };
        }
        let token = self.token.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if !auth::allowed(token.as_deref(), request.authorization, request.query) {
            return Response {
                status: "401 Unauthorized",
                content_type: "text/html; charset=utf-8",
                headers: "WWW-Authenticate: Bearer realm=\"weir\"\r\nContent-Security-Policy: \
                          default-src 'self'; form-action 'self'\r\nCache-Control: no-store\r\n",
                body: include_str!("assets/unauthorized.html").to_owned(),
            };
        }
        if request.path == "/" {
            return Response {
                status: "200 OK",
                content_type: ASSETS[0].1,
                headers: HEADERS,
                body: ASSETS[0].2.to_owned(),
            };
        }
        let query = request.query.unwrap_or("");
        let filter = auth::param(query, "q")
            .and_then(auth::decode)
            .unwrap_or_default();
        let page = auth::param(query, "page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0usize);
        let json = state::render(self, sources, &filter, page).await;
        Response {
            status: "200 OK",
            content_type: "application/json",
            headers: HEADERS,
            body: json,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    /// The budget: the first load (HTML, script, style) well under 100 KB.
    #[test]
    fn the_page_weighs_well_under_100_kb() {
        let total: usize = ASSETS.iter().map(|(_, _, body)| body.len()).sum();
        assert!(total < 40_000, "{total} bytes");
    }

    /// Gateways are offline: the page must not refer to any other origin.
    #[test]
    fn the_assets_load_nothing_from_elsewhere() {
        for (path, _, body) in ASSETS {
            for needle in ["http://", "https://", "//cdn", "@import"] {
                assert!(!body.contains(needle), "{path} contains {needle}");
            }
        }
    }
}

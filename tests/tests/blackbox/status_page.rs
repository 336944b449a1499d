//! The status page (issue 21) in a real headless Chromium against the real agent running the
//! demo (simulated pump, motor and compressor, the demo rules, whose motor alert is the
//! simulator's injected vibration fault): the page loads with no network but loopback,
//! shows the sources, the series and the fault's alert, and updates without a reload. A
//! screenshot is kept under `target/test-artifacts/`. Off loopback the page and its data
//! need the token while `/metrics` and `/healthz` do not; with the page off there is none.
//! Rejected rule files are listed with `file:line:col`, at start and after a reload.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use weir_tests::{Agent, Browser, TestDir, free_port, wait_until};

const DEMO_RULES: &str = include_str!("../../../examples/rules/demo.yaml");
/// Added to the demo rules for the browser: the pump's temperature rises 2 °C/s from 5 s on
/// (the simulator's degradation), so a trend towards 95 °C is forecast within seconds.
const TREND_RULE: &str = "
  - name: pump-temperature-trend
    select: { device: \"pump-*\", metric: temperature }
    window: { tumbling: 1s }
    detect: { trend: { above: 95, over: 20s, horizon: 1h, min_r2: 0.5, min_points: 6 } }
    alert: { severity: warning }
";
const TOKEN: &str = "page-token-0123456789";

/// The demo config (with `extra_rules` after the demo's) with the metrics listener at
/// `listen` and `page` as `metrics.page`.
fn start_demo(dir: &TestDir, listen: &str, page: &str, extra_rules: &str) -> Result<Agent> {
    dir.write("rules/demo.yaml", &format!("{DEMO_RULES}{extra_rules}"))?;
    let config = format!(
        "gateway_id: demo-gw\nrules: [rules/demo.yaml]\n\
         sources: [{{simulator: {{seed: 42, interval: 500ms}}}}]\n\
         outbox: {{path: outbox.db}}\nengine: {{idle_close: 1s}}\n\
         metrics: {{listen: \"{listen}\"{page}}}\n"
    );
    let mut agent = Agent::start(dir, &config)?;
    agent.wait_for_log("metrics endpoint listening", Duration::from_secs(30))?;
    Ok(agent)
}

fn artifacts() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("test-artifacts")
}

/// Polls `script` in the page until it returns something other than null/false.
fn wait_for(browser: &Browser, what: &str, secs: u64, script: &str) -> Result<Value> {
    wait_until(what, Duration::from_secs(secs), || {
        let v = browser.execute(script)?;
        Ok((!v.is_null() && v != Value::Bool(false)).then_some(v))
    })
}

#[test]
fn the_page_shows_sources_series_and_the_fault_alert_live_in_chromium_offline() -> Result<()> {
    let dir = TestDir::new("status-page")?;
    let port = free_port()?;
    let mut agent = start_demo(&dir, &format!("127.0.0.1:{port}"), "", TREND_RULE)?;
    let browser = Browser::start(&dir)?;
    // The browser really has no network: a public site does not load.
    let outside = browser
        .navigate("http://example.com/")
        .and_then(|()| browser.execute("return document.body.innerText"));
    // (A refused proxy gives net::ERR_PROXY_CONNECTION_FAILED; a slow one, the load timeout.)
    assert!(
        outside.is_err() && !format!("{outside:?}").contains("Example Domain"),
        "the browser reached the internet: {outside:?}"
    );
    let url = format!("http://127.0.0.1:{port}/");
    browser.navigate(&url)?;

    // Loaded: the first poll of /api/state has been drawn.
    wait_for(
        &browser,
        "the first update",
        30,
        "return Number(document.documentElement.dataset.updates) >= 1",
    )
    .map_err(|e| agent.explain(e))?;
    let loaded_at = browser.execute("return document.documentElement.dataset.loadedAt")?;
    let sources = browser.execute(
        "return [...document.querySelectorAll('#sources tbody tr')].map(r => r.dataset.name)",
    )?;
    assert_eq!(sources, serde_json::json!(["simulator"]));
    let series = wait_for(
        &browser,
        "the demo's three series",
        30,
        "const s = [...document.querySelectorAll('#series tbody tr')].map(r => r.dataset.name); \
         return s.length === 3 ? s : null",
    )?;
    for name in [
        "pump-1/temperature",
        "motor-1/vibration",
        "compressor-1/pressure",
    ] {
        assert!(series.to_string().contains(name), "{series}");
    }
    let readings = |b: &Browser| -> Result<u64> {
        b.execute("return Number(document.querySelector('#sources tbody tr').dataset.readings)")?
            .as_u64()
            .context("no readings count")
    };
    let first = readings(&browser)?;

    // The simulator's vibration fault raises the motor alert at about 8 s: it appears
    // without a reload, with its condition, and its mark is drawn on the motor's plot.
    let alert = wait_for(
        &browser,
        "the motor's vibration alert",
        60,
        "const r = document.querySelector('#alerts tbody tr[data-rule=\"motor-vibration-spike\"]'); \
         return r ? r.textContent : null",
    )
    .map_err(|e| agent.explain(e))?;
    assert!(alert.to_string().contains("max > 7"), "{alert}");
    assert!(alert.to_string().contains("motor-1/vibration"), "{alert}");
    let marks = browser.execute("return document.querySelectorAll('#plot line.raise').length")?;
    assert!(marks.as_u64() >= Some(1), "no alert mark drawn: {marks}");
    // The pump's trend is forecast, and its countdown runs.
    let countdown = "const r = document.querySelector('#predictions tbody tr[data-eta]'); \
                     return r && r.dataset.eta ? r.cells[2].textContent : null";
    let first_count = wait_for(&browser, "the pump's trend forecast", 60, countdown)?;
    assert!(
        first_count.as_str().is_some_and(|t| t.ends_with('s')),
        "{first_count}"
    );
    wait_until("the countdown to move", Duration::from_secs(10), || {
        let now = browser.execute(countdown)?;
        Ok((now != first_count).then_some(()))
    })?;
    // It went on updating, and the page was never reloaded.
    let later = wait_until("the readings to grow", Duration::from_secs(20), || {
        let n = readings(&browser)?;
        Ok((n > first).then_some(n))
    })?;
    assert!(later > first);
    assert_eq!(
        browser.execute("return document.documentElement.dataset.loadedAt")?,
        loaded_at,
        "the page reloaded"
    );
    assert_eq!(
        browser.execute("return document.getElementById('live').textContent")?,
        "live"
    );

    // No network: everything the page loaded came from the agent, and weighs under 100 KB.
    let resources = browser.execute(
        "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')) \
         .map(e => [e.name, e.transferSize, e.encodedBodySize])",
    )?;
    let mut first_load = 0;
    for entry in resources.as_array().context("resource list")? {
        let name = entry[0].as_str().unwrap_or("");
        assert!(name.starts_with(&url), "loaded from elsewhere: {name}");
        if !name.contains("/api/") {
            first_load += entry[2].as_u64().unwrap_or(0);
        }
    }
    eprintln!("page weight (first load, HTML + script + style): {first_load} bytes");
    assert!(first_load > 5_000 && first_load < 100_000, "{first_load}");

    let shot = artifacts().join("status-page.png");
    browser.screenshot(&shot)?;
    eprintln!("screenshot: {}", shot.display());
    // A search narrows the list (and the plot) without a reload.
    browser.execute(
        "const f = document.getElementById('filter'); f.value = 'pump'; \
         f.dispatchEvent(new Event('input')); return true",
    )?;
    wait_for(
        &browser,
        "the search to narrow the series to the pump",
        20,
        "const s = [...document.querySelectorAll('#series tbody tr')].map(r => r.dataset.name); \
         return s.length === 1 && s[0] === 'pump-1/temperature'",
    )?;
    agent.assert_running()
}

/// `GET path` with extra header lines; the status code.
fn status(port: u16, path: &str, headers: &str) -> Result<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status in {text:?}"))
}

#[test]
fn off_loopback_the_page_and_its_data_need_the_token_and_metrics_do_not() -> Result<()> {
    let dir = TestDir::new("status-page-token")?;
    let port = free_port()?;
    let page = format!(", page: {{token: {TOKEN}}}");
    let mut agent = start_demo(&dir, &format!("0.0.0.0:{port}"), &page, "")?;
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
    assert_eq!(status(port, "/", "")?, 401);
    assert_eq!(status(port, "/api/state", "")?, 401);
    assert_eq!(
        status(port, "/api/state?token=wrong-token-0123456789", "")?,
        401
    );
    assert_eq!(
        status(port, "/api/state", "Authorization: Bearer nope\r\n")?,
        401
    );
    assert_eq!(status(port, &format!("/?token={TOKEN}"), "")?, 200);
    assert_eq!(status(port, "/api/state", &bearer)?, 200);
    // Scrapers and probes are unchanged.
    assert_eq!(status(port, "/metrics", "")?, 200);
    wait_until("/healthz to answer 200", Duration::from_secs(20), || {
        Ok((status(port, "/healthz", "")? == 200).then_some(()))
    })?;
    // Malformed and oversized requests are still refused.
    assert_eq!(status(port, "/api/state", "")?, 401);
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"POST /api/state HTTP/1.1\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    let padding = "x".repeat(9 * 1024);
    let oversized = status(port, "/", &format!("{bearer}X-Pad: {padding}\r\n"));
    assert!(matches!(oversized, Ok(431) | Err(_)), "{oversized:?}");
    agent.assert_running()
}

#[test]
fn rejected_rule_files_are_listed_with_file_line_col_at_start_and_after_a_reload() -> Result<()> {
    let dir = TestDir::new("status-page-rules")?;
    let port = free_port()?;
    // A second rule file with a typo in a key: rejected at start, the demo rules run.
    dir.write(
        "rules/bad.yaml",
        "rules:\n  - name: typo\n    selcet: { device: x, metric: y }\n",
    )?;
    dir.write("rules/demo.yaml", DEMO_RULES)?;
    let config = format!(
        "gateway_id: demo-gw\nrules: [rules/demo.yaml, rules/bad.yaml]\n\
         sources: [{{simulator: {{interval: 500ms}}}}]\noutbox: {{path: outbox.db}}\n\
         metrics: {{listen: \"127.0.0.1:{port}\"}}\n"
    );
    let mut agent = Agent::start(&dir, &config)?;
    agent.wait_for_log("metrics endpoint listening", Duration::from_secs(30))?;
    let rules = |agent: &Agent| -> Result<Value> {
        let (code, body) = crate::observability::get(port, "/api/state")?;
        assert_eq!(code, 200, "{body}");
        let state: Value = serde_json::from_str(&body).map_err(|e| agent.explain(e.into()))?;
        Ok(state["rules"].clone())
    };
    let at_start = rules(&agent)?;
    assert_eq!(at_start["rules"], 3, "{at_start}");
    assert_eq!(at_start["reload_rejected"], false, "{at_start}");
    let problem = at_start["rejected"][0]["problems"][0].to_string();
    assert!(problem.contains("bad.yaml:3:5"), "{at_start}");
    assert!(
        at_start["loaded"].to_string().contains("demo.yaml"),
        "{at_start}"
    );

    // Broken demo rules on reload: refused, the old three rules keep running, and the page
    // says so with the new problem's location.
    dir.write("rules/demo.yaml", "rules:\n  - name: [\n")?;
    let pid = agent.pid().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()?;
    assert!(hup.success());
    agent.wait_for_log("reload rejected", Duration::from_secs(20))?;
    let after = rules(&agent)?;
    assert_eq!(after["reload_rejected"], true, "{after}");
    assert_eq!(after["rules"], 3, "{after}");
    assert!(after.to_string().contains("demo.yaml:"), "{after}");
    agent.assert_running()
}

#[test]
fn with_the_page_off_a_non_loopback_listener_serves_metrics_only() -> Result<()> {
    let dir = TestDir::new("status-page-off")?;
    let port = free_port()?;
    let mut agent = start_demo(
        &dir,
        &format!("0.0.0.0:{port}"),
        ", page: {enabled: false}",
        "",
    )?;
    assert_eq!(status(port, "/", "")?, 404);
    assert_eq!(status(port, "/api/state", "")?, 404);
    assert_eq!(status(port, "/page.js", "")?, 404);
    assert_eq!(status(port, "/metrics", "")?, 200);
    agent.assert_running()
}

//! The metrics endpoint runs inside the agent, so it bounds what a client can make it hold:
//! slow clients (slowloris) get at most 16 connections and lose them after the head timeout,
//! an oversized request head is refused, and the endpoint answers normally again afterwards.
//! Query strings route like the bare path.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use weir_tests::{Agent, TestDir, free_port};

use crate::observability::get;

fn start(dir: &TestDir) -> Result<(Agent, u16)> {
    let port = free_port()?;
    let config = format!(
        "gateway_id: gw-http\nsources: [{{simulator: {{interval: 100ms}}}}]\noutbox: {{path: {:?}}}\nmetrics: {{listen: \"127.0.0.1:{port}\"}}\n",
        dir.path().join("outbox.db").display().to_string()
    );
    let mut agent = Agent::start(dir, &config)?;
    agent.wait_for_log("metrics endpoint listening", Duration::from_secs(20))?;
    Ok((agent, port))
}

/// Everything the server sends until it closes (or `limit` passes: then an error).
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Result<String> {
    stream.set_read_timeout(Some(limit))?;
    let mut text = Vec::new();
    stream
        .read_to_end(&mut text)
        .context("the server did not close the connection in time")?;
    Ok(String::from_utf8_lossy(&text).into_owned())
}

#[test]
fn query_strings_route_like_the_bare_path() -> Result<()> {
    let dir = TestDir::new("http-query")?;
    let (mut agent, port) = start(&dir)?;
    let (code, body) = get(port, "/metrics?x=1")?;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("weir_outbox"), "{body}");
    let (code, body) = get(port, "/healthz?probe=1")?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(get(port, "/nowhere?x=1")?.0, 404);
    agent.assert_running()
}

#[test]
fn an_oversized_request_head_is_refused() -> Result<()> {
    let dir = TestDir::new("http-big")?;
    let (mut agent, port) = start(&dir)?;
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    let padding = "x".repeat(9 * 1024);
    // The server may answer and close before it has read it all: a failed write is fine.
    let _ = write!(stream, "GET /metrics HTTP/1.1\r\nX-Pad: {padding}\r\n\r\n");
    let answer = read_until_closed(&mut stream, Duration::from_secs(10))?;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(get(port, "/healthz")?.0, 200);
    agent.assert_running()
}

#[test]
fn slow_clients_get_at_most_16_connections_and_lose_them_after_the_head_timeout() -> Result<()> {
    let dir = TestDir::new("http-slowloris")?;
    let (mut agent, port) = start(&dir)?;
    // Sixteen clients that start a request and never finish its head.
    let mut slow = Vec::new();
    for _ in 0..16 {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ")?;
        slow.push(s);
    }
    let opened = Instant::now();
    // The seventeenth is turned away at once: 503 and closed, not queued behind them. The
    // server accepts in order, so once it has answered this one it holds all sixteen. (It
    // sends nothing: the server closes without reading, and a request left unread would turn
    // the close into a reset that can overtake the 503.)
    let mut extra = TcpStream::connect(("127.0.0.1", port))?;
    let answer = read_until_closed(&mut extra, Duration::from_secs(4))?;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    // The slow ones are dropped after the head timeout (5 s), each with a 408.
    for s in &mut slow {
        let answer = read_until_closed(s, Duration::from_secs(15))?;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    }
    let held = opened.elapsed();
    assert!(
        held >= Duration::from_secs(4),
        "slow clients were dropped after {held:?}, before the head timeout"
    );
    // And the endpoint serves again.
    assert_eq!(get(port, "/healthz")?.0, 200);
    agent.assert_running()
}

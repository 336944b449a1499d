//! The small HTTP listener that serves `/metrics` (rendered by [`super::metrics`]),
//! `/healthz` and the status page (`/`, `/api/state`, its assets: [`super::page`]): one `GET`
//! per connection, nothing else.
//!
//! It runs inside the agent, so it must not become a way to hurt it: at most
//! [`MAX_CONNECTIONS`] connections are served at once (more are answered 503 and closed), a
//! request head is read only up to [`MAX_HEAD`] bytes (431 beyond) and only for
//! [`HEAD_TIMEOUT`] (408 after: a slowloris client that sends a byte at a time loses its
//! slot), and a whole exchange is bounded by [`EXCHANGE_TIMEOUT`]. A query string is ignored
//! for routing (`/metrics?x=1` is `/metrics`), as scrapers and probes add them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use weir_drivers::now_us;

use super::metrics::{Sources, render, stalled_sources};
use super::page::{self, Page};

/// Listens on `addr`, before the agent reports itself ready, so that a health check made as
/// soon as systemd sees READY finds the endpoint. A bind failure (a port that is taken) is
/// logged and `None` returned: the agent runs on, and its supervisor tries [`listen`] again
/// with backoff.
pub async fn bind(addr: SocketAddr) -> Option<TcpListener> {
    match listen(addr).await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::error!(%addr, "metrics endpoint not available: {e}; retrying");
            None
        }
    }
}

/// Listens on `addr` and says so.
pub async fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    tracing::info!(%addr, "metrics endpoint listening (/metrics, /healthz)");
    Ok(listener)
}

/// Connections served at once; more are answered 503 and closed. A scraper and a health
/// check need two; the bound keeps a flood of slow clients from costing the agent memory.
const MAX_CONNECTIONS: usize = 16;
/// The longest request head read (request line and headers); nothing here needs more.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head (a slowloris holds a connection open
/// by sending it a byte at a time).
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole exchange may take, the scrape's outbox round trip included.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `listener` (from [`bind`]) until `shutdown`, one request per connection, within
/// the bounds the module docs give (16 connections, 8 KiB heads read within 5 s).
pub async fn serve(
    listener: TcpListener,
    sources: Sources,
    page: Option<Page>,
    shutdown: CancellationToken,
) {
    let health = Health::default();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("metrics endpoint: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Best effort and without waiting: the client may not even read.
            let _ = stream.try_write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            continue;
        };
        let sources = sources.clone();
        let health = health.clone();
        let page = page.clone();
        tokio::spawn(async move {
            // One request per connection, bounded in time: a stuck client costs a slot, briefly.
            let exchange = respond(stream, &sources, &health, page.as_ref());
            let _ = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await;
            drop(slot);
        });
    }
}

/// The engine loop's progress as last seen by `/healthz`.
#[derive(Clone, Default)]
struct Health {
    last: Arc<std::sync::Mutex<(u64, i64)>>,
}

impl Health {
    /// Healthy when the engine loop turned within the last 5 s (it turns 4 times a second).
    fn engine_turning(&self, turns: u64) -> bool {
        let now = now_us();
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        if turns != last.0 || last.1 == 0 {
            *last = (turns, now);
            return true;
        }
        now - last.1 < 5_000_000
    }
}

/// How reading a request head ended.
enum Head {
    /// The request line and headers, once the head is complete (or the client stopped
    /// sending).
    Complete(String),
    TooLarge,
    TimedOut,
}

/// Reads the request head only (nothing here needs a body): at most [`MAX_HEAD`] bytes within
/// [`HEAD_TIMEOUT`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Head> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    let complete = |b: &[u8]| b.windows(4).any(|w| w == b"\r\n\r\n");
    let read = async {
        while !complete(&buf[..len]) {
            if len == buf.len() {
                return Ok(false);
            }
            let n = stream.read(&mut buf[len..]).await?;
            if n == 0 {
                break;
            }
            len += n;
        }
        Ok::<_, std::io::Error>(true)
    };
    match tokio::time::timeout(HEAD_TIMEOUT, read).await {
        Err(_) => Ok(Head::TimedOut),
        Ok(Err(e)) => Err(e),
        Ok(Ok(false)) => Ok(Head::TooLarge),
        Ok(Ok(true)) => Ok(Head::Complete(
            String::from_utf8_lossy(&buf[..len]).into_owned(),
        )),
    }
}

/// The path a `GET` asks for, without its query string (`/metrics?x=1` is `/metrics`).
fn get_path(request_line: &str) -> Option<&str> {
    get_target(request_line).map(|(path, _)| path)
}

/// The path and query string (after `?`) a `GET` asks for.
fn get_target(request_line: &str) -> Option<(&str, Option<&str>)> {
    let target = request_line
        .strip_prefix("GET ")?
        .split_whitespace()
        .next()?;
    Some(match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    })
}

/// The value of header `name` (case-insensitive) in a request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

async fn respond(
    mut stream: TcpStream,
    sources: &Sources,
    health: &Health,
    page: Option<&Page>,
) -> std::io::Result<()> {
    let head = match read_head(&mut stream).await? {
        Head::Complete(head) => head,
        Head::TooLarge => {
            return reply(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request head over 8 KiB\n",
            )
            .await;
        }
        Head::TimedOut => {
            return reply(&mut stream, "408 Request Timeout", "text/plain", "").await;
        }
    };
    let request_line = head.lines().next().unwrap_or("");
    if let (Some(page), Some((path, query))) =
        (page.filter(|p| p.enabled()), get_target(request_line))
        && Page::serves(path)
    {
        let request = page::Request {
            path,
            query,
            authorization: header(&head, "authorization"),
        };
        let r = page.respond(&request, sources).await;
        return reply_with(&mut stream, r.status, r.content_type, r.headers, &r.body).await;
    }
    let (status, content_type, body) = match get_path(request_line) {
        Some("/metrics") => match render(sources).await {
            Some(text) => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", text),
            None => (
                "503 Service Unavailable",
                "text/plain",
                "outbox not answering\n".to_owned(),
            ),
        },
        Some("/healthz") => {
            let turning = health.engine_turning(sources.pipeline.turns.load(Relaxed));
            let outbox = tokio::time::timeout(Duration::from_secs(2), sources.outbox.stats())
                .await
                .is_ok_and(|r| r.is_ok());
            let stalled = stalled_sources(&sources.sources.get());
            if let Some(since) = sources.outbox.blocked_since() {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    format!(
                        "blocked: the outbox is full (overflow: block) and the engine has waited \
                         {}s for the uplink to make room\n",
                        (now_us() - since).max(0) / 1_000_000
                    ),
                )
            } else if turning && outbox && stalled.is_empty() {
                ("200 OK", "text/plain", "ok\n".to_owned())
            } else if turning && outbox {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    format!("stalled sources: {}\n", stalled.join(", ")),
                )
            } else {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    format!(
                        "stalled: engine turning={turning}, outbox answering={outbox}, \
                         stalled sources=[{}]\n",
                        stalled.join(", ")
                    ),
                )
            }
        }
        Some(_) => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /healthz\n".to_owned(),
        ),
        None => ("400 Bad Request", "text/plain", "GET only\n".to_owned()),
    };
    reply(&mut stream, status, content_type, &body).await
}

async fn reply(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    reply_with(stream, status, content_type, "", body).await
}

/// [`reply`] with extra header lines (each ending in CRLF).
async fn reply_with(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    headers: &str,
    body: &str,
) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{headers}Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::{get_path, header};

    #[test]
    fn headers_are_found_whatever_their_case() {
        let head = "GET / HTTP/1.1\r\nHost: x\r\nauthorization:  Bearer abc \r\n\r\n";
        assert_eq!(header(head, "Authorization"), Some("Bearer abc"));
        assert_eq!(header(head, "cookie"), None);
        assert_eq!(header("GET /x: y HTTP/1.1\r\n\r\n", "GET /x"), None);
    }

    #[test]
    fn a_query_string_routes_like_the_bare_path() {
        assert_eq!(get_path("GET /metrics HTTP/1.1"), Some("/metrics"));
        assert_eq!(get_path("GET /metrics?x=1 HTTP/1.1"), Some("/metrics"));
        assert_eq!(
            get_path("GET /healthz?probe=a?b HTTP/1.1"),
            Some("/healthz")
        );
        assert_eq!(get_path("POST /metrics HTTP/1.1"), None);
        assert_eq!(get_path("GET"), None);
    }
}

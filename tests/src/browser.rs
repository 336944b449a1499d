//! A real headless Chromium driven through `chromedriver`'s W3C WebDriver HTTP API, for the
//! status page's tests. The client is the few requests those tests need, over a plain
//! `TcpStream`: new session, navigate, run a script,
//! screenshot, delete the session.
//!
//! The browser runs with no network but loopback: a proxy that does not exist takes every
//! request for another host (loopback bypasses proxies), and the host resolver answers
//! NOTFOUND for every name but `127.0.0.1`. A page that fetched anything from the internet
//! would show it as a failed resource.
//!
//! Environment: `CHROMEDRIVER` (default `/usr/bin/chromedriver`), `CHROMIUM` (default
//! `/usr/bin/chromium`); Debian's `chromium` and `chromium-driver` packages.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{TestDir, free_port, wait_until};

/// A chromedriver process with one browser session; both end when dropped.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile under `dir`.
    pub fn start(dir: &TestDir) -> Result<Browser> {
        let driver_bin =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".to_owned());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        for bin in [&driver_bin, &chromium] {
            if !Path::new(bin).exists() {
                bail!("{bin} not found: install Debian's `chromium` and `chromium-driver`");
            }
        }
        let port = free_port()?;
        let log = dir.path().join("chromedriver.log");
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {driver_bin}"))?;
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
        };
        wait_until("chromedriver to be ready", Duration::from_secs(20), || {
            Ok(browser
                .call("GET", "/status", None)
                .ok()
                .filter(|v| v["value"]["ready"] == json!(true)))
        })?;
        let profile = dir.path().join("chromium-profile");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "timeouts": { "pageLoad": 15_000, "script": 15_000 },
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1400,1800",
                    format!("--user-data-dir={}", profile.display()),
                    // No network but loopback (see the module docs).
                    "--proxy-server=http://127.0.0.1:9",
                    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                ],
            },
        }}});
        let created = browser.call("POST", "/session", Some(&capabilities))?;
        browser.session = created["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("no session id in {created}"))?
            .to_owned();
        Ok(browser)
    }

    /// Opens `url` and waits for its load event.
    pub fn navigate(&self, url: &str) -> Result<()> {
        self.session_call("POST", "url", Some(&json!({ "url": url })))
            .map(drop)
    }

    /// Runs `script` (a function body; `return` gives the result) in the page.
    pub fn execute(&self, script: &str) -> Result<Value> {
        let v = self.session_call(
            "POST",
            "execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )?;
        Ok(v["value"].clone())
    }

    /// Saves a PNG of the viewport at `path` (its directory is created).
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let v = self.session_call("GET", "screenshot", None)?;
        let png = decode_base64(v["value"].as_str().context("no screenshot data")?)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    fn session_call(&self, method: &str, what: &str, body: Option<&Value>) -> Result<Value> {
        self.call(method, &format!("/session/{}/{what}", self.session), body)
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        // chromedriver may keep the connection open: read the head, then Content-Length bytes.
        let mut raw = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        let head_end = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut buf)?;
            if n == 0 {
                bail!("chromedriver closed before its reply's head ended");
            }
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
        let length = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .with_context(|| format!("no Content-Length in {head}"))?;
        while raw.len() < head_end + length {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                bail!("chromedriver closed before its reply's body ended");
            }
            raw.extend_from_slice(&buf[..n]);
        }
        let reply = String::from_utf8_lossy(&raw[head_end..head_end + length]).into_owned();
        let reply = reply.as_str();
        let value: Value = serde_json::from_str(reply)
            .with_context(|| format!("chromedriver answered {head}: {reply}"))?;
        if !head.contains(" 200 ") {
            bail!("chromedriver {method} {path}: {head}: {value}");
        }
        Ok(value)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (what WebDriver sends screenshots in).
fn decode_base64(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("not base64: {:?}", c as char),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

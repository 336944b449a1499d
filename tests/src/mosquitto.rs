//! One real Mosquitto broker per test, on a port nobody else uses.
//!
//! DESIGN.md rules out mocked brokers: QoS 1 redelivery, persistent sessions and what happens
//! when a broker goes away are exactly what the tests are about, so they run Debian's broker.
//!
//! Two flavours matter:
//! - *non-persistent* (the default, like the devices side): a restart forgets every session;
//! - *persistent*: Mosquitto writes its sessions and queued QoS 1 messages to disk on SIGTERM
//!   and restores them on start. A test that restarts the cloud broker needs this, because the
//!   agent and the [`crate::Collector`] reconnect in an unknown order: without the collector's
//!   session surviving, whatever the agent publishes before the collector resubscribes is
//!   delivered to nobody, acknowledged, deleted from the outbox — and the test flakes.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{free_port, read_log, sigterm, tail, wait_child, wait_until};

const DEFAULT_BINARY: &str = "/usr/sbin/mosquitto";
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Options for [`Mosquitto`]; see [`Mosquitto::builder`].
#[derive(Debug, Default, Clone)]
pub struct MosquittoBuilder {
    port: Option<u16>,
    persistent: bool,
    tls: Option<TlsListener>,
}

/// A second, TLS listener beside the plain one (which the tests' own clients keep using).
#[derive(Debug, Clone)]
pub struct TlsListener {
    /// CA that client certificates must chain to (with `require_certificate`).
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Refuse clients without a certificate signed by `ca` (mutual TLS).
    pub require_certificate: bool,
}

impl MosquittoBuilder {
    /// Listen on this port instead of a fresh free one (for a port the agent already knows).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Keep sessions and queued messages across [`Mosquitto::restart`].
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// Also listen with TLS on a free port ([`Mosquitto::tls_port`]).
    pub fn tls(mut self, tls: TlsListener) -> Self {
        self.tls = Some(tls);
        self
    }

    pub fn start(self) -> Result<Mosquitto> {
        let binary = std::env::var_os("MOSQUITTO")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BINARY));
        if !binary.exists() {
            bail!(
                "mosquitto not found at {}: install Debian's `mosquitto` package \
                 (apt-get install mosquitto) or point MOSQUITTO at the broker binary",
                binary.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("weir-mosquitto-")
            .tempdir()
            .context("creating the broker's temp dir")?;
        let port = match self.port {
            Some(port) => port,
            None => free_port()?,
        };
        let conf = dir.path().join("mosquitto.conf");
        let log = dir.path().join("mosquitto.log");
        let mut text = config_text(port, self.persistent, dir.path(), &log);
        let tls_port = match &self.tls {
            Some(tls) => {
                let tls_port = free_port()?;
                text.push_str(&format!(
                    "listener {tls_port} 127.0.0.1\n\
                     cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}\n",
                    tls.ca.display(),
                    tls.cert.display(),
                    tls.key.display(),
                    tls.require_certificate
                ));
                Some(tls_port)
            }
            None => None,
        };
        std::fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;
        let mut broker = Mosquitto {
            binary,
            dir,
            port,
            tls_port,
            conf,
            log,
            child: None,
        };
        broker.start_again()?;
        Ok(broker)
    }
}

fn config_text(port: u16, persistent: bool, dir: &Path, log: &Path) -> String {
    let mut text = format!(
        "listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         log_dest file {log}\n\
         # Not `all`: logging every PUBLISH would make the broker, not the code under test,\n\
         # the bottleneck in benchmarks. `subscribe` gives the lines tests wait for.\n\
         log_type error\n\
         log_type warning\n\
         log_type notice\n\
         log_type information\n\
         log_type subscribe\n\
         connection_messages true\n\
         # No per-client queue limit: a subscriber that lags (or is disconnected with a\n\
         # persistent session) must not lose QoS 1 messages in a test or a benchmark.\n\
         max_queued_messages 0\n",
        log = log.display()
    );
    if persistent {
        text.push_str(&format!(
            "persistence true\npersistence_location {}/\n",
            dir.display()
        ));
    } else {
        text.push_str("persistence false\n");
    }
    if running_as_root() {
        // As root, Mosquitto drops to the `mosquitto` user, which cannot write our temp dir.
        text.push_str("user root\n");
    }
    text
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A running (or deliberately stopped) broker; killed when dropped.
pub struct Mosquitto {
    binary: PathBuf,
    /// Holds config, log and persistence file; kept for the broker's whole life.
    dir: tempfile::TempDir,
    port: u16,
    /// The TLS listener's port, if [`MosquittoBuilder::tls`] asked for one.
    tls_port: Option<u16>,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    /// A non-persistent broker on a free port, ready to accept connections.
    pub fn start() -> Result<Mosquitto> {
        MosquittoBuilder::default().start()
    }

    pub fn builder() -> MosquittoBuilder {
        MosquittoBuilder::default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS listener's port; `None` unless built with [`MosquittoBuilder::tls`].
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The broker's process id while it runs (benchmarks read its CPU time from `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the broker with SIGTERM (a persistent broker saves its sessions) and waits.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if child.try_wait().context("polling mosquitto")?.is_none() {
            sigterm(child.id())?;
        }
        if wait_child(&mut child, STOP_TIMEOUT)?.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "mosquitto on port {} ignored SIGTERM for {STOP_TIMEOUT:?}; killed it\n{}",
                self.port,
                self.log_tail()
            );
        }
        Ok(())
    }

    /// Starts the broker again on the same port and waits until it accepts connections.
    ///
    /// The port may linger for a moment after a stop, so a start that fails to bind is retried
    /// until [`START_TIMEOUT`].
    pub fn start_again(&mut self) -> Result<()> {
        if self.is_running() {
            bail!("mosquitto on port {} is already running", self.port);
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let mut child = Command::new(&self.binary)
                .arg("-c")
                .arg(&self.conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("spawning {}", self.binary.display()))?;
            loop {
                if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    if child.try_wait().context("polling mosquitto")?.is_none() {
                        self.child = Some(child);
                        return Ok(());
                    }
                    // Someone else answers on our port; our broker died trying to bind.
                    break;
                }
                if child.try_wait().context("polling mosquitto")?.is_some() {
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "mosquitto did not accept connections on port {} within {START_TIMEOUT:?}\n{}",
                        self.port,
                        self.log_tail()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if Instant::now() >= deadline {
                bail!(
                    "mosquitto could not start on port {} within {START_TIMEOUT:?}\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// [`Mosquitto::stop`] then [`Mosquitto::start_again`] on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// The broker's log, every start appended.
    pub fn log_contents(&self) -> String {
        read_log(&self.log)
    }

    pub fn log_tail(&self) -> String {
        format!(
            "--- mosquitto :{} log tail ---\n{}",
            self.port,
            tail(&self.log_contents(), 40)
        )
    }

    /// Waits until the broker has logged a subscription to exactly `filter`, by any client.
    ///
    /// This is how a test knows the agent's MQTT source is listening before it publishes:
    /// the agent has no log line for that, the broker does (`<client> <qos> <filter>`).
    pub fn wait_for_subscription(&self, filter: &str, timeout: Duration) -> Result<()> {
        let what = format!("a subscription to `{filter}` on mosquitto :{}", self.port);
        wait_until(&what, timeout, || {
            let log = self.log_contents();
            let found = log.lines().any(|line| {
                let mut words = line.split_whitespace().skip(1);
                matches!(
                    (words.next(), words.next(), words.next(), words.next()),
                    (Some(_client), Some("0" | "1" | "2"), Some(f), None) if f == filter
                )
            });
            Ok(found.then_some(()))
        })
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", self.log_tail()))
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

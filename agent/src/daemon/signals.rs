//! The signals `weir run` acts on: SIGTERM and Ctrl-C stop it, SIGHUP reloads its rules.
//!
//! SIGHUP must be handled even when reloading is impossible: its default action would
//! terminate the agent, and `systemctl reload weir` sends it.

use tokio::signal::unix::{Signal as Stream, SignalKind, signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Stop,
    Reload,
}

pub struct Signals {
    term: Option<Stream>,
    hup: Option<Stream>,
}

impl Signals {
    /// Installs the handlers. One that cannot be installed is logged and left out: Ctrl-C
    /// still stops the agent.
    pub fn install() -> Signals {
        let open = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!("cannot listen for {name} ({e})");
                None
            }
        };
        Signals {
            term: open(SignalKind::terminate(), "SIGTERM"),
            hup: open(SignalKind::hangup(), "SIGHUP"),
        }
    }

    pub async fn next(&mut self) -> Signal {
        async fn recv(stream: &mut Option<Stream>) {
            match stream {
                Some(s) => {
                    if s.recv().await.is_none() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.term) => Signal::Stop,
            _ = tokio::signal::ctrl_c() => Signal::Stop,
            _ = recv(&mut self.hup) => Signal::Reload,
        }
    }
}

//! `weir status`: a running agent's health and numbers, read from its metrics endpoint.
//!
//! It asks the agent rather than opening its files, so it shows what the agent itself sees
//! (and works while the agent holds the outbox), and it needs no privileges beyond reaching
//! localhost. The summary is what an engineer on a gateway wants first: is it healthy, is data
//! coming in, is anything being lost, how much is waiting to go out.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The agent's config, for the metrics address (default: as for `run`).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The metrics address instead of the config's, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "config")]
    pub addr: Option<std::net::SocketAddr>,
}

pub fn main(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let addr = match args.addr {
        Some(addr) => addr,
        None => crate::config::load(args.config.as_deref())?
            .config
            .metrics
            .listen
            .context("the config turns the metrics endpoint off (metrics.listen: null)")?,
    };
    let (health_code, health) = get(addr, "/healthz")
        .with_context(|| format!("no agent answering on http://{addr} (is it running?)"))?;
    let (_, metrics) = get(addr, "/metrics")?;
    let m = Metrics::parse(&metrics);
    println!(
        "weir at http://{addr}: {}",
        if health_code == 200 {
            "healthy".to_owned()
        } else {
            format!("UNHEALTHY ({})", health.trim())
        }
    );
    println!(
        "  in:     {:.0} readings from {} source(s), {:.0} undecodable",
        m.sum("weir_source_readings_total"),
        m.count("weir_source_readings_total"),
        m.sum("weir_source_decode_errors_total"),
    );
    let stalled: Vec<&str> = m
        .matching("weir_source_stalled")
        .filter(|(_, v)| *v > 0.0)
        .filter_map(|(series, _)| series.split('"').nth(1))
        .collect();
    if !stalled.is_empty() {
        println!(
            "  STALLED source(s): {} (connections keep failing before a message gets through: see the log)",
            stalled.join(", ")
        );
    }
    println!(
        "  rules:  {:.0} samples, {:.0} windows, {:.0} events ({:.0} alerts), {:.0} late, {:.0} over the series limit",
        m.sum("weir_engine_samples_total"),
        m.sum("weir_engine_windows_closed_total"),
        m.sum("weir_engine_events_total"),
        m.sum("weir_engine_alerts_total"),
        m.sum("weir_engine_late_dropped_total"),
        m.sum("weir_engine_series_rejected_total"),
    );
    print!("  outbox: {:.0} waiting (", m.sum("weir_outbox_records"));
    for (i, lane) in ["alerts", "predictions", "aggregates"].iter().enumerate() {
        let label = format!("lane=\"{lane}\"");
        print!(
            "{}{lane} {:.0}, oldest {:.0} s",
            if i > 0 { "; " } else { "" },
            m.labelled("weir_outbox_records", &label),
            m.labelled("weir_outbox_oldest_age_seconds", &label),
        );
    }
    println!(
        "), {:.0} of {:.0} bytes",
        m.sum("weir_outbox_bytes"),
        m.sum("weir_outbox_max_bytes")
    );
    let lost = m.sum("weir_outbox_evicted_total")
        + m.sum("weir_outbox_discarded_total")
        + m.sum("weir_engine_encode_errors_total");
    println!(
        "  out:    {:.0} delivered, {:.0} lost{}",
        m.sum("weir_outbox_deleted_total"),
        lost,
        if lost > 0.0 {
            " (evicted by the bound or undeliverable: see the log)"
        } else {
            ""
        }
    );
    Ok(if health_code == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A minimal HTTP/1.1 GET on localhost: status code and body.
fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        bail!("malformed HTTP response from {addr}{path}");
    };
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status code from {addr}{path}"))?;
    Ok((code, body.to_owned()))
}

/// Samples of the Prometheus text format, by series line.
struct Metrics<'a> {
    samples: Vec<(&'a str, f64)>,
}

impl<'a> Metrics<'a> {
    fn parse(text: &'a str) -> Metrics<'a> {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series, value.parse().ok()?))
            })
            .collect();
        Metrics { samples }
    }

    fn matching(&self, name: &'a str) -> impl Iterator<Item = &(&'a str, f64)> {
        self.samples.iter().filter(move |(series, _)| {
            series
                .strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
        })
    }

    fn sum(&self, name: &'a str) -> f64 {
        self.matching(name).map(|(_, v)| v).sum()
    }

    fn count(&self, name: &'a str) -> usize {
        self.matching(name).count()
    }

    fn labelled(&self, name: &'a str, label: &str) -> f64 {
        self.matching(name)
            .filter(|(series, _)| series.contains(label))
            .map(|(_, v)| v)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_summed_by_name_and_picked_by_label() {
        let text = "# HELP x\nweir_outbox_records{lane=\"alerts\"} 2.0\nweir_outbox_records{lane=\"aggregates\"} 5\nweir_outbox_records_total 100\nweir_engine_samples_total 7\n";
        let m = Metrics::parse(text);
        assert_eq!(m.sum("weir_outbox_records"), 7.0);
        assert_eq!(m.labelled("weir_outbox_records", "lane=\"alerts\""), 2.0);
        assert_eq!(m.sum("weir_engine_samples_total"), 7.0);
        assert_eq!(m.count("weir_outbox_records"), 2);
        assert_eq!(m.sum("missing"), 0.0);
    }
}

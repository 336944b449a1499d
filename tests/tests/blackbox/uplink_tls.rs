//! The uplink over TLS: the broker's certificate is verified against the configured CA and
//! the agent presents a client certificate (mutual TLS). A broker whose certificate another
//! CA signed is refused, loudly (an ERROR line, a metric) and without losing anything: the
//! records wait in the outbox. Certificate files that are missing or wrong are configuration
//! errors naming the file.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use weir_tests::{
    Agent, Collector, Mosquitto, Pki, TestDir, TlsListener, distinct_records, free_port,
    wait_until, weir_command,
};

use crate::observability::{get, promtool_check, sample};

/// A simulator agent whose rule publishes a `count` aggregate per series and second, uplinked
/// over TLS to `port` with the given `tls:` mapping, metrics on `metrics_port`.
fn config(dir: &TestDir, gateway: &str, port: u16, tls: &str, metrics_port: u16) -> Result<String> {
    dir.write(
        "rules.yaml",
        "rules:\n  - name: r\n    window: { tumbling: 1s }\n    aggregates: [count]\n",
    )?;
    Ok(format!(
        "gateway_id: {gateway}\n\
         rules: [rules.yaml]\n\
         sources: [{{simulator: {{interval: 100ms}}}}]\n\
         outbox: {{path: {:?}}}\n\
         uplink: {{host: 127.0.0.1, port: {port}, keep_alive: 5s, tls: {tls}}}\n\
         metrics: {{listen: \"127.0.0.1:{metrics_port}\"}}\n",
        dir.path().join("outbox.db").display().to_string()
    ))
}

fn mtls(pki: &Pki) -> String {
    format!(
        "{{ca_file: {:?}, client_cert_file: {:?}, client_key_file: {:?}}}",
        pki.ca.display().to_string(),
        pki.client_cert.display().to_string(),
        pki.client_key.display().to_string()
    )
}

/// Polls `/metrics` until `accept` holds, returning the text.
fn metrics_when(
    agent: &Agent,
    port: u16,
    what: &str,
    accept: impl Fn(&str) -> bool,
) -> Result<String> {
    wait_until(what, Duration::from_secs(20), || {
        // Refused until the endpoint listens: it starts beside the uplink, not before it.
        let Ok((code, body)) = get(port, "/metrics") else {
            return Ok(None);
        };
        Ok((code == 200 && accept(&body)).then_some(body))
    })
    .map_err(|e| agent.explain(e))
}

#[test]
fn records_arrive_over_mutual_tls() -> Result<()> {
    let dir = TestDir::new("uplink-mtls")?;
    let pki = Pki::generate(&dir.path().join("pki"))?;
    let cloud = Mosquitto::builder()
        .tls(TlsListener {
            ca: pki.ca.clone(),
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
            require_certificate: true,
        })
        .start()?;
    let collector = Collector::start(cloud.port(), "weir/#")?;
    let metrics_port = free_port()?;
    let tls_port = cloud.tls_port().context("a TLS listener")?;
    let yaml = config(&dir, "gw-tls", tls_port, &mtls(&pki), metrics_port)?;
    let mut agent = Agent::start(&dir, &yaml)?;
    agent.wait_for_log("uplink connected", Duration::from_secs(20))?;

    let messages = collector
        .wait_for("5 records over TLS", Duration::from_secs(30), |m| {
            distinct_records(m).len() >= 5
        })
        .map_err(|e| agent.explain(e))?;
    for record in distinct_records(&messages) {
        assert_eq!(record.str("kind"), Some("window"), "{}", record.summary());
        assert_eq!(
            record.str("gateway"),
            Some("gw-tls"),
            "{}",
            record.summary()
        );
    }
    assert!(
        messages
            .iter()
            .any(|m| m.topic == "weir/gw-tls/status" && m.str("status") == Some("online")),
        "the birth message came over TLS too"
    );
    // The broker saw a client certificate: mosquitto logs the connection with its CN only
    // when `use_identity_as_username` is set, so the proof is that `require_certificate`
    // let it in at all. The uplink's metrics say the same from the agent's side.
    let metrics = metrics_when(&agent, metrics_port, "acknowledged records", |m| {
        sample(m, "weir_uplink_acked_total").unwrap_or(0.0) >= 5.0
    })?;
    promtool_check(&metrics)?;
    assert_eq!(
        sample(&metrics, "weir_uplink_connected"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "weir_uplink_tls_errors_total"),
        Some(0.0),
        "{metrics}"
    );
    assert!(
        sample(&metrics, "weir_uplink_publish_latency_seconds_count").unwrap_or(0.0) >= 5.0,
        "{metrics}"
    );
    let status = agent.terminate(Duration::from_secs(20))?;
    assert!(status.success(), "{status}\n{}", agent.log_tail());
    Ok(())
}

#[test]
fn a_broker_certificate_from_another_ca_is_refused_and_records_stay_in_the_outbox() -> Result<()> {
    let dir = TestDir::new("uplink-rogue")?;
    let pki = Pki::generate(&dir.path().join("pki"))?;
    let rogue = Mosquitto::builder()
        .tls(TlsListener {
            ca: pki.rogue_ca.clone(),
            cert: pki.rogue_server_cert.clone(),
            key: pki.rogue_server_key.clone(),
            require_certificate: false,
        })
        .start()?;
    let collector = Collector::start(rogue.port(), "#")?;
    let metrics_port = free_port()?;
    let tls_port = rogue.tls_port().context("a TLS listener")?;
    let yaml = config(&dir, "gw-rogue", tls_port, &mtls(&pki), metrics_port)?;
    let mut agent = Agent::start(&dir, &yaml)?;
    let line = agent.wait_for_line(
        "an ERROR naming the rejected broker certificate",
        Duration::from_secs(20),
        |l| l.contains("ERROR") && l.contains("uplink TLS failed"),
    )?;
    assert!(
        line.contains("certificate was rejected") && line.contains("uplink.tls.ca_file"),
        "{line}"
    );
    eprintln!("{line}");
    let metrics = metrics_when(&agent, metrics_port, "records waiting, TLS errors", |m| {
        sample(m, "weir_uplink_tls_errors_total").unwrap_or(0.0) >= 1.0
            && sample(m, "weir_outbox_records{lane=\"aggregates\"}").unwrap_or(0.0) >= 3.0
    })?;
    assert_eq!(
        sample(&metrics, "weir_uplink_connected"),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "weir_uplink_connects_total"),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "weir_outbox_deleted_total"),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "weir_outbox_evicted_total"),
        Some(0.0),
        "{metrics}"
    );
    // Nothing reached the impostor, not even the birth message.
    assert!(
        collector.messages().is_empty(),
        "{:?}",
        collector.messages()
    );
    agent.assert_running()?;
    Ok(())
}

/// `weir check` on `yaml`: exit code and stderr.
fn check(dir: &TestDir, yaml: &str) -> Result<(Option<i32>, String)> {
    let path = dir.write("check.yaml", yaml)?;
    let out = weir_command()?
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn missing_or_wrong_certificate_files_are_config_errors_naming_the_file() -> Result<()> {
    let dir = TestDir::new("uplink-tls-config")?;
    let pki = Pki::generate(&dir.path().join("pki"))?;
    let base = |tls: &str| {
        format!(
            "gateway_id: gw\nsources: [{{simulator: {{}}}}]\noutbox: {{path: o.db}}\n\
             uplink: {{port: 8883, tls: {tls}}}\n"
        )
    };
    let name = |p: &Path| p.display().to_string();

    let (code, err) = check(&dir, &base("{ca_file: pki/nope.pem}"))?;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("uplink.tls.ca_file") && err.contains("pki/nope.pem"),
        "{err}"
    );

    // A key where the CA should be: no certificate in it.
    let (code, err) = check(&dir, &base("{ca_file: pki/ca.key}"))?;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("holds no PEM certificate") && err.contains("ca.key"),
        "{err}"
    );

    let (code, err) = check(
        &dir,
        &base(&format!(
            "{{ca_file: {:?}, client_cert_file: {:?}}}",
            name(&pki.ca),
            name(&pki.client_cert)
        )),
    )?;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("must be given together"), "{err}");

    // A certificate where the key should be.
    let (code, err) = check(
        &dir,
        &base(
            "{ca_file: pki/ca.pem, client_cert_file: pki/client.pem, client_key_file: pki/client.pem}",
        ),
    )?;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("uplink.tls.client_key_file") && err.contains("client.pem"),
        "{err}"
    );

    // A key that does not belong to the certificate.
    let (code, err) = check(
        &dir,
        &base(
            "{ca_file: pki/ca.pem, client_cert_file: pki/client.pem, client_key_file: pki/server.key}",
        ),
    )?;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot be used together"), "{err}");

    let (code, err) = check(&dir, &base(&mtls(&pki)))?;
    assert_eq!(code, Some(0), "{err}");
    Ok(())
}

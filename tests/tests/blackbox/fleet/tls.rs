//! A rollout over mutual TLS: the gateway's uplink and `weir push --config` (the same `uplink:`
//! section, client certificate included) both reach a broker that requires certificates.

use anyhow::{Context, Result};
use weir_tests::{Mosquitto, Pki, TestDir, TlsListener, weir_command};

use super::{Gateway, bundle_dir, operator_key, text};
use crate::common::STARTUP;

#[test]
fn fleet_push_reaches_a_gateway_over_mutual_tls() -> Result<()> {
    let dir = TestDir::new("fleet-tls")?;
    let key = operator_key(&dir)?;
    let pki = Pki::generate(&dir.path().join("pki"))?;
    let cloud = Mosquitto::builder()
        .tls(TlsListener {
            ca: pki.ca.clone(),
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
            require_certificate: true,
        })
        .start()?;
    let tls_port = cloud.tls_port().context("a TLS listener")?;
    let rule = "rules:\n  - name: ticks\n    window: { tumbling: 1s }\n    aggregates: [count]\n";
    dir.write("rules/ticks.yaml", rule)?;
    let gateway = Gateway {
        id: "gw-tls",
        cloud: tls_port,
        devices: None,
        rules: &["rules/ticks.yaml"],
        labels: "",
        engine: "idle_close: 1s",
    };
    let tls = format!(
        "tls: {{ca_file: {:?}, client_cert_file: {:?}, client_key_file: {:?}}}",
        pki.ca.display().to_string(),
        pki.client_cert.display().to_string(),
        pki.client_key.display().to_string()
    );
    let yaml = gateway.yaml(&dir.path().join("trusted")).replace(
        &format!("port: {tls_port} }}"),
        &format!("port: {tls_port}, {tls} }}"),
    );
    let mut agent = weir_tests::Agent::start(&dir, &yaml)?;
    agent.wait_for_log("uplink connected", STARTUP)?;
    let from = bundle_dir(&dir, "b", &[("ticks.yaml", rule)])?;
    let out = weir_command()?
        .arg("push")
        .arg(&from)
        .arg("--key")
        .arg(&key)
        .arg("--config")
        .arg(agent.config_path())
        .args(["--gateway", "gw-tls", "--version", "1", "--wait", "40s"])
        .output()?;
    let said = text(&out);
    assert!(out.status.success(), "{said}\n{}", agent.log_tail());
    assert!(said.contains("gw-tls: applied version 1"), "{said}");
    Ok(())
}

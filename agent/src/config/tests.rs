use super::*;
use std::path::Path;

fn parse(text: &str) -> Result<Loaded, ConfigError> {
    Loaded::from_str(
        text,
        Origin::File {
            path: PathBuf::from("/etc/weir/weir.yaml"),
            base: PathBuf::from("/etc/weir"),
        },
    )
}

fn only_problem(text: &str) -> Problem {
    let err = parse(text).expect_err("config should be rejected");
    assert_eq!(err.problems.len(), 1, "{err}");
    err.problems[0].clone()
}

#[test]
fn minimal_config_gets_gateway_defaults() {
    let loaded = parse("gateway_id: gw-1\nsources:\n  - simulator: {}\n").unwrap();
    let c = &loaded.config;
    assert_eq!(c.gateway_id.as_str(), "gw-1");
    assert!(c.uplink.is_none(), "no uplink unless configured");
    assert_eq!(c.engine.max_series.get(), 10_000);
    assert_eq!(c.engine.idle_close, Duration::from_secs(2));
    assert_eq!(c.log.status_interval, Duration::from_secs(5));
    // An absolute default path is kept as is.
    assert_eq!(c.outbox.path, PathBuf::from("/var/lib/weir/outbox.db"));
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let loaded = parse(
        "gateway_id: gw-1\nrules: [rules/a.yaml]\nsources: [{simulator: {}}]\noutbox: {path: data/o.db}\n",
    )
    .unwrap();
    assert_eq!(
        loaded.config.outbox.path,
        PathBuf::from("/etc/weir/data/o.db")
    );
    let files = loaded.rule_files();
    let err = files[0].as_ref().unwrap_err();
    assert_eq!(err.file, "/etc/weir/rules/a.yaml");
    assert!(err.message.contains("cannot read rule file"), "{err}");
}

#[test]
fn unknown_top_level_key_names_line_and_column() {
    let p = only_problem("gateway_id: gw-1\nsources: [{simulator: {}}]\nuplnk: {}\n");
    assert_eq!((p.line, p.column), (3, 1));
    assert_eq!(p.file, "/etc/weir/weir.yaml");
    assert!(p.message.contains("unknown field `uplnk`"), "{}", p.message);
    assert!(
        p.to_string()
            .starts_with("/etc/weir/weir.yaml:3:1: unknown field")
    );
}

#[test]
fn unknown_key_inside_a_source_points_at_the_key() {
    let p = only_problem(
        "gateway_id: gw-1\nsources:\n  - mqtt:\n      port: 1883\n      subscriptons: []\n",
    );
    assert_eq!((p.line, p.column), (5, 7), "{p}");
    assert!(p.message.contains("subscriptons"), "{p}");
}

#[test]
fn wrong_type_names_line_and_column() {
    let p =
        only_problem("gateway_id: gw-1\nsources: [{simulator: {}}]\nengine:\n  max_series: lots\n");
    assert_eq!((p.line, p.column), (4, 15), "{p}");
}

#[test]
fn missing_gateway_id_is_an_error() {
    let p = only_problem("sources: [{simulator: {}}]\n");
    assert!(p.message.contains("gateway_id"), "{p}");
}

#[test]
fn bad_values_are_reported_at_their_exact_location() {
    let p = only_problem("gateway_id: 'gw 1/x'\nsources: [{simulator: {}}]\n");
    assert_eq!((p.line, p.column), (1, 13), "{p}");
    assert!(p.message.contains("gateway_id `gw 1/x`"), "{p}");

    let p = only_problem("gateway_id: gw\nsources: [{simulator: {}}]\nengine:\n  max_series: 0\n");
    assert_eq!((p.line, p.column), (4, 3), "{p}");
    assert!(p.message.contains("nonzero"), "{p}");

    let p =
        only_problem("gateway_id: gw\nsources: [{simulator: {}}]\nlog:\n  level: 'weir=loud'\n");
    assert_eq!((p.line, p.column), (4, 10), "{p}");
    assert!(p.message.contains("log.level"), "{p}");

    let p =
        only_problem("gateway_id: gw\nsources: [{simulator: {}}]\nlog: {status_interval: 0s}\n");
    assert!(p.message.contains("longer than 0"), "{p}");
    assert_eq!(p.line, 3, "{p}");

    let p = only_problem(
        "gateway_id: gw\nsources: [{simulator: {}}]\nuplink:\n  topic_prefix: 'a/#'\n",
    );
    assert_eq!(p.line, 4, "{p}");
    assert!(p.message.contains("wildcards"), "{p}");

    let p = only_problem("gateway_id: gw\nsources: [{simulator: {}}]\noutbox:\n  max_bytes: 100\n");
    assert_eq!(p.line, 4, "{p}");
    assert!(p.message.contains("64KiB"), "{p}");
}

#[test]
fn source_problems_are_all_reported_and_point_at_the_source() {
    let err = parse(
        "gateway_id: gw\nsources:\n  - mqtt: {subscriptions: []}\n  - mqtt: {subscriptions: [{topic: 'a/{device}/{metric}'}]}\n",
    )
    .expect_err("invalid");
    let text = err.to_string();
    assert_eq!(err.problems.len(), 2, "{text}");
    let (first, second) = (&err.problems[0], &err.problems[1]);
    assert_eq!((first.line, first.column), (3, 5), "{text}");
    assert!(
        first
            .message
            .contains("sources[0]: source `mqtt`: invalid `subscriptions`"),
        "{text}"
    );
    assert_eq!((second.line, second.column), (4, 5), "{text}");
    assert!(second.message.contains("used twice"), "{text}");
}

#[test]
fn no_sources_is_an_error() {
    let p = only_problem("gateway_id: gw-1\n");
    assert!(p.message.contains("no sources"), "{p}");
}

#[test]
fn builtin_demo_config_and_rules_are_valid() {
    let demo = Loaded::builtin_demo().unwrap();
    let files = demo.rule_files();
    assert!(!files.is_empty());
    for f in files {
        let f = f.unwrap();
        weir_rules::RuleSet::parse_str(&f.text, &f.name).unwrap();
    }
}

/// The examples in docs/devices.md for the serial and Modbus sources parse and validate.
const SERIAL_AND_MODBUS: &str = "\
gateway_id: gw-1
sources:
  - serial:
      name: bench-uart
      path: /dev/serial/by-id/usb-FTDI_FT232R-if00-port0
      baud: 115200
      parity: none
      stop_bits: 1
      protocol: frames
      device: bench-1
  - serial:
      name: scale
      path: /dev/ttyUSB1
      baud: 9600
      data_bits: 7
      parity: even
      protocol: csv
  - modbus:
      name: plant-modbus
      timeout: 500ms
      retries: 1
      slaves:
        - device: boiler-1
          tcp: 192.168.1.20:502
          unit: 1
          groups:
            - interval: 1s
              registers:
                - { name: temperature, table: holding, address: 0, type: i16, scale: 0.1 }
                - { name: flow, table: input, address: 10, type: f32, word_order: little }
                - { name: running, table: coil, address: 0 }
            - interval: 1m
              registers:
                - { name: alarm, table: discrete_input, address: 3 }
        - device: meter-7
          rtu: { path: /dev/ttyUSB0, baud: 19200, parity: even, stop_bits: 1 }
          unit: 7
          groups:
            - interval: 10s
              registers:
                - { name: energy, table: input, address: 0, type: u32, word_order: little, scale: 0.01 }
";

#[test]
fn serial_and_modbus_sources_parse() {
    use weir_drivers::modbus::map::{DataType, Order, Table};
    use weir_drivers::serial::{Parity, Protocol};
    let loaded = parse(SERIAL_AND_MODBUS).unwrap();
    let sources: Vec<&SourceConfig> = loaded.config.sources.iter().map(|s| &s.value).collect();
    let [
        SourceConfig::Serial(a),
        SourceConfig::Serial(b),
        SourceConfig::Modbus(m),
    ] = sources.as_slice()
    else {
        panic!("unexpected sources: {sources:?}");
    };
    assert_eq!(
        (a.protocol, a.baud, a.device.as_deref()),
        (Protocol::Frames, 115_200, Some("bench-1"))
    );
    assert_eq!(
        (b.protocol, b.data_bits, b.parity, b.stop_bits),
        (Protocol::Csv, 7, Parity::Even, 1)
    );
    assert_eq!(m.timeout, Duration::from_millis(500));
    let groups = &m.slaves[0].groups;
    assert_eq!(groups[1].interval, Duration::from_secs(60));
    let flow = &groups[0].registers[1];
    assert_eq!(
        (flow.table, flow.data_type(), flow.word_order),
        (Table::Input, DataType::F32, Order::Little)
    );
    assert_eq!(groups[0].registers[2].data_type(), DataType::Bool);
    assert_eq!(groups[0].registers[0].scale, 0.1);
    let rtu = m.slaves[1].rtu.as_ref().expect("an RTU slave");
    assert_eq!(
        (rtu.baud, rtu.parity, m.slaves[1].unit),
        (19_200, Parity::Even, 7)
    );
    assert_eq!(m.slaves[1].tcp, None);
}

#[test]
fn serial_and_modbus_problems_point_at_the_source() {
    let p = only_problem(
        "gateway_id: gw\nsources:\n  - serial: {path: /dev/ttyS0, protocol: frames, stop_bits: 3}\n",
    );
    assert_eq!(p.line, 3, "{p}");
    assert!(p.message.contains("stop_bits"), "{p}");
    let p =
        only_problem("gateway_id: gw\nsources:\n  - serial: {path: /dev/ttyS0, protocol: morse}\n");
    assert!(p.message.contains("morse"), "{p}");
    let p = only_problem(
        "gateway_id: gw\nsources:\n  - modbus:\n      slaves:\n        - {device: d, tcp: 'h:502', groups: [{interval: 1s, registers: [{name: x, table: coil, address: 0, type: f32}]}]}\n",
    );
    assert_eq!(p.line, 3, "{p}");
    assert!(
        p.message.contains("slaves[0].groups[0].registers[0].type"),
        "{p}"
    );
}

#[test]
fn shipped_example_configs_and_rules_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for name in ["demo.yaml", "gateway.yaml"] {
        let loaded = Loaded::from_path(&root.join(name)).unwrap();
        let outcome = crate::config::rule_files::load(&loaded);
        assert!(
            outcome.rejected.is_empty(),
            "{name}: {:?}",
            outcome.rejected
        );
        assert!(outcome.rules.len() >= 3, "{name}");
    }
}

#[test]
fn device_labels_are_read_and_a_bad_pattern_is_a_config_error() {
    let ok = parse(
        "gateway_id: gw\nsources: [{simulator: {}}]\nlabels:\n  - { devices: \"pump-*\", set: { site: north, kind: pump } }\n",
    )
    .unwrap();
    let labels = ok.config.device_labels().unwrap();
    assert_eq!(labels.of("pump-2"), [("kind", "pump"), ("site", "north")]);
    let p = only_problem(
        "gateway_id: gw\nsources: [{simulator: {}}]\nlabels:\n  - { devices: \"pump-[\", set: {} }\n",
    );
    assert!(p.message.contains("labels: device pattern `pump-[`"), "{p}");
}

/// The README's tour: its config and its rule file are what a reader copies first.
#[test]
fn the_readme_tour_config_and_rules_are_valid() {
    let readme = include_str!("../../../README.md");
    let tour = &readme[readme.find("## A tour").expect("the tour")..];
    let mut blocks = tour
        .split("```yaml\n")
        .skip(1)
        .map(|b| &b[..b.find("```").unwrap()]);
    let (config, rules) = (blocks.next().unwrap(), blocks.next().unwrap());
    // The CA file it names does not exist here; everything else must load.
    let config = config.replace(", tls: { ca_file: certs/ca.pem }", "");
    parse(&config).unwrap();
    weir_rules::RuleSet::parse_str(rules, "README.md").unwrap();
}

#[test]
fn checks_across_sections_point_at_the_value_they_concern() {
    let err = parse(
        "gateway_id: gw\nsources: [{simulator: {}}]\noutbox:\n  path: /tmp\n  overflow: block\n",
    )
    .expect_err("block without an uplink, and a directory for a file");
    let located: Vec<(u64, u64)> = err.problems.iter().map(|p| (p.line, p.column)).collect();
    assert_eq!(located, [(4, 9), (5, 13)], "{err}");
    assert!(err.problems[0].message.contains("is a directory"), "{err}");
    assert!(
        err.problems[1].message.contains("needs an `uplink`"),
        "{err}"
    );
    let with_uplink =
        "gateway_id: gw\nsources: [{simulator: {}}]\noutbox:\n  overflow: block\nuplink: {}\n";
    assert!(parse(with_uplink).is_ok());
}

#[test]
fn the_uplink_of_issue_14_is_refused_at_load() {
    let p = only_problem(
        "gateway_id: gw\nsources: [{simulator: {}}]\nuplink: { host: \"\", inflight: 0, keep_alive: 500ms }\n",
    );
    assert_eq!((p.line, p.column), (3, 17), "{p}");
    assert!(p.message.contains("host must not be empty"), "{p}");
    for (field, value, says) in [
        ("inflight", "0", "between 1 and 65535"),
        ("inflight", "65536", "between 1 and 65535"),
        ("keep_alive", "500ms", "between 1s and 65535s"),
        ("port", "0", "port 0"),
        ("client_id", "''", "must not be empty"),
    ] {
        let p = only_problem(&format!(
            "gateway_id: gw\nsources: [{{simulator: {{}}}}]\nuplink:\n  {field}: {value}\n"
        ));
        assert_eq!(p.line, 4, "{p}");
        assert!(p.message.contains(says), "{field}: {p}");
    }
}

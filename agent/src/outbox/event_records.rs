//! Engine events as outbox records: which lane, which topic, which bytes.
//!
//! The stored payload is versioned (byte 0 is the format) so an agent upgraded in the field
//! can still drain an outbox written by the previous version. Format 1 is a UTF-8 JSON object;
//! the uplink adds the record's `id`, `seq` and `gateway` in front when it publishes, because
//! the sequence number is only known once SQLite has assigned it.

use std::sync::Arc;

use serde::Serialize;
use weir_rules::{Event, EventKind};

use crate::outbox::{Lane, NewRecord, PAYLOAD_V1};
use crate::support::payload::compacted;

#[derive(Serialize)]
struct Body<'a> {
    kind: &'static str,
    rule: &'a str,
    device: &'a str,
    metric: &'a str,
    /// Event time, µs since the Unix epoch.
    ts: i64,
    #[serde(flatten)]
    detail: Detail<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Detail<'a> {
    Alert {
        state: &'static str,
        severity: &'static str,
        value: f64,
        condition: &'a str,
        /// The detector's statistic; absent for `when` conditions.
        #[serde(skip_serializing_if = "is_nan")]
        score: f64,
        /// The rule's message template filled in; absent when the rule has none.
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<&'a str>,
        /// A multivariate detector's per-metric contributions (metric → share of `score`);
        /// absent for every other rule.
        #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
        contributions: serde_json::Map<String, serde_json::Value>,
    },
    Window {
        start: i64,
        end: i64,
        values: serde_json::Map<String, serde_json::Value>,
    },
    Late {
        value: f64,
    },
    Incident {
        state: &'static str,
        severity: &'static str,
        /// Event time of the first contributor's raise: with the device, the incident's id.
        opened: i64,
        contributors: Vec<ContributorBody<'a>>,
    },
    Prediction {
        threshold: f64,
        /// `null` when the trend never reaches the threshold (infinity).
        seconds_to_threshold: serde_json::Value,
        slope: f64,
        r2: f64,
        points: u32,
        /// The fitted level now, the interval of the time to threshold (`null`: never), and
        /// the model.
        level: serde_json::Value,
        early_seconds: serde_json::Value,
        late_seconds: serde_json::Value,
        model: &'static str,
    },
    Changepoint {
        /// `onset` or `return`.
        change: &'static str,
        /// When the level moved (µs), before `ts` (when it was detected).
        onset: i64,
        before: f64,
        after: f64,
        score: f64,
    },
}

/// One alert of an incident, as sent.
#[derive(Serialize)]
struct ContributorBody<'a> {
    rule: &'a str,
    metric: &'a str,
    /// Event time of its first raise within the incident (µs since the Unix epoch).
    raised: i64,
    severity: &'static str,
}

/// The lane an event travels in: alerts first, window aggregates last.
pub fn lane_of(event: &Event) -> Lane {
    match event.kind {
        EventKind::Alert { .. } | EventKind::Changepoint { .. } | EventKind::Incident { .. } => {
            Lane::Alerts
        }
        EventKind::Prediction { .. } => Lane::Predictions,
        _ => Lane::Aggregates,
    }
}

/// Buffers [`record`] reuses from one record to the next: the record's JSON, and its packed
/// form. Kept by the caller, so that a burst of records allocates nothing but their payloads.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Format 1: the version byte, then the JSON body.
    json: Vec<u8>,
    packed: Vec<u8>,
}

impl Scratch {
    /// The JSON body of the record [`record`] encoded last.
    pub fn json_body(&self) -> &[u8] {
        self.json.get(1..).unwrap_or_default()
    }
}

/// Encodes `event` for the outbox, in its stored form (`support::payload::compacted`: format
/// 2 when smaller, in a vector of exactly its length). `created_at` is wall time (µs), used
/// for age bounds.
pub fn record(
    event: &Event,
    device: &str,
    metric: &str,
    topic: Arc<str>,
    created_at: i64,
    scratch: &mut Scratch,
) -> Result<NewRecord, serde_json::Error> {
    scratch.json.clear();
    scratch.json.push(PAYLOAD_V1);
    write_json(&mut scratch.json, event, device, metric)?;
    Ok(NewRecord {
        lane: lane_of(event),
        topic,
        created_at,
        payload: compacted(&scratch.json, &mut scratch.packed),
    })
}

/// Writes `event` as one JSON object (the record body, without id/seq/gateway): the form
/// both the uplink and `weir replay` emit.
pub fn write_json(
    out: &mut impl std::io::Write,
    event: &Event,
    device: &str,
    metric: &str,
) -> Result<(), serde_json::Error> {
    let detail = match &event.kind {
        EventKind::Alert {
            state,
            severity,
            value,
            condition,
            score,
            message,
            contributions,
        } => Detail::Alert {
            state: state.as_str(),
            severity: severity.as_str(),
            value: *value,
            condition,
            score: *score,
            message: message.as_deref(),
            contributions: contributions
                .iter()
                .map(|(metric, c)| (metric.to_string(), json_number(*c)))
                .collect(),
        },
        EventKind::Window { start, end, values } => Detail::Window {
            start: *start,
            end: *end,
            values: values
                .iter()
                .map(|(agg, v)| (agg.as_str().to_owned(), json_number(*v)))
                .collect(),
        },
        EventKind::Late { value } => Detail::Late { value: *value },
        EventKind::Incident {
            state,
            severity,
            opened,
            contributors,
        } => Detail::Incident {
            state: state.as_str(),
            severity: severity.as_str(),
            opened: *opened,
            contributors: contributors
                .iter()
                .map(|c| ContributorBody {
                    rule: &c.rule,
                    metric: &c.metric,
                    raised: c.raised,
                    severity: c.severity.as_str(),
                })
                .collect(),
        },
        EventKind::Prediction {
            threshold,
            seconds_to_threshold,
            slope,
            r2,
            points,
            level,
            early_seconds,
            late_seconds,
            model,
        } => Detail::Prediction {
            threshold: *threshold,
            seconds_to_threshold: json_number(*seconds_to_threshold),
            slope: *slope,
            r2: *r2,
            points: *points,
            level: json_number(*level),
            early_seconds: json_number(*early_seconds),
            late_seconds: json_number(*late_seconds),
            model,
        },
        EventKind::Changepoint {
            change,
            onset,
            before,
            after,
            score,
        } => Detail::Changepoint {
            change: change.as_str(),
            onset: *onset,
            before: *before,
            after: *after,
            score: *score,
        },
        // `EventKind` is non-exhaustive and grows with later rule features; a kind this
        // agent does not know yet is still shipped rather than dropped.
        other => Detail::Window {
            start: event.ts,
            end: event.ts,
            values: std::iter::once((
                "debug".to_owned(),
                serde_json::Value::String(format!("{other:?}")),
            ))
            .collect(),
        },
    };
    let body = Body {
        kind: match event.kind {
            EventKind::Alert { .. } => "alert",
            EventKind::Incident { .. } => "incident",
            EventKind::Late { .. } => "late",
            EventKind::Prediction { .. } => "prediction",
            EventKind::Changepoint { .. } => "changepoint",
            _ => "window",
        },
        rule: &event.rule,
        device,
        metric,
        ts: event.ts,
        detail,
    };
    serde_json::to_writer(out, &body)
}

fn is_nan(v: &f64) -> bool {
    v.is_nan()
}

/// JSON has no NaN or infinity; they are sent as `null` rather than failing the record.
fn json_number(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use weir_rules::{Aggregate, AlertState, SeriesId, Severity};

    fn decode(r: &NewRecord) -> serde_json::Value {
        let body = crate::outbox::json_body(&r.payload).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    fn record(
        event: &Event,
        device: &str,
        metric: &str,
        topic: &str,
        created_at: i64,
    ) -> Result<NewRecord, serde_json::Error> {
        super::record(
            event,
            device,
            metric,
            topic.into(),
            created_at,
            &mut Scratch::default(),
        )
    }

    #[test]
    fn alert_goes_to_the_alert_lane_with_every_field() {
        let event = Event {
            rule: Arc::from("hot"),
            series: SeriesId(3),
            ts: 1_700_000_000_000_000,
            kind: EventKind::Alert {
                state: AlertState::Raised,
                severity: Severity::Critical,
                value: 85.5,
                condition: Arc::from("mean > 80"),
                score: f64::NAN,
                message: None,
                contributions: Vec::new(),
            },
        };
        let r = record(&event, "pump-1", "temp", "weir/gw/alerts", 7).unwrap();
        assert_eq!(r.lane, Lane::Alerts);
        assert_eq!(r.created_at, 7);
        let v = decode(&r);
        assert_eq!(
            v,
            serde_json::json!({"kind":"alert","rule":"hot","device":"pump-1","metric":"temp",
                "ts":1_700_000_000_000_000i64,"state":"raised","severity":"critical",
                "value":85.5,"condition":"mean > 80"})
        );
    }

    #[test]
    fn an_incident_goes_to_the_alert_lane_with_its_contributors() {
        let event = Event {
            rule: Arc::from("incident"),
            series: SeriesId(9),
            ts: 5_000_000,
            kind: EventKind::Incident {
                state: AlertState::Cleared,
                severity: Severity::Critical,
                opened: 1_000_000,
                contributors: vec![weir_rules::Contributor {
                    rule: Arc::from("pump-device"),
                    metric: "*".into(),
                    raised: 1_000_000,
                    severity: Severity::Warning,
                }],
            },
        };
        let r = record(&event, "pump-1", "*", "t", 0).unwrap();
        assert_eq!(r.lane, Lane::Alerts);
        assert_eq!(
            decode(&r),
            serde_json::json!({"kind":"incident","rule":"incident","device":"pump-1","metric":"*",
                "ts":5_000_000,"state":"cleared","severity":"critical","opened":1_000_000,
                "contributors":[{"rule":"pump-device","metric":"*","raised":1_000_000,
                    "severity":"warning"}]})
        );
    }

    #[test]
    fn detector_alert_carries_its_score_and_a_missing_value_is_null() {
        let event = Event {
            rule: Arc::from("silent"),
            series: SeriesId(0),
            ts: 30_000_000,
            kind: EventKind::Alert {
                state: AlertState::Raised,
                severity: Severity::Warning,
                value: f64::NAN,
                condition: Arc::from("missing(no sample for 30s)"),
                score: 30.0,
                message: Some(Arc::from("pump d silent for 30 s")),
                contributions: vec![(Arc::from("flow"), 1.5)],
            },
        };
        let r = record(&event, "d", "m", "t", 0).unwrap();
        assert_eq!(r.lane, Lane::Alerts);
        let v = decode(&r);
        assert_eq!(v["score"], 30.0);
        assert_eq!(v["contributions"], serde_json::json!({"flow": 1.5}));
        assert!(v["value"].is_null());
        assert_eq!(v["condition"], "missing(no sample for 30s)");
        assert_eq!(v["message"], "pump d silent for 30 s");
    }

    #[test]
    fn prediction_goes_to_the_prediction_lane_and_never_is_null() {
        let event = |secs: f64| Event {
            rule: Arc::from("bearing-trend"),
            series: SeriesId(1),
            ts: 5,
            kind: EventKind::Prediction {
                threshold: 90.0,
                seconds_to_threshold: secs,
                slope: 0.001,
                r2: 0.93,
                points: 60,
                level: 80.0,
                early_seconds: secs / 2.0,
                late_seconds: f64::INFINITY,
                model: "quadratic",
            },
        };
        let r = record(&event(3600.0), "pump-1", "temp", "t", 0).unwrap();
        assert_eq!(r.lane, Lane::Predictions);
        assert_eq!(
            decode(&r),
            serde_json::json!({"kind":"prediction","rule":"bearing-trend","device":"pump-1",
                "metric":"temp","ts":5,"threshold":90.0,"seconds_to_threshold":3600.0,
                "slope":0.001,"r2":0.93,"points":60,"level":80.0,"early_seconds":1800.0,
                "late_seconds":null,"model":"quadratic"})
        );
        let r = record(&event(f64::INFINITY), "pump-1", "temp", "t", 0).unwrap();
        assert!(decode(&r)["seconds_to_threshold"].is_null());
    }

    #[test]
    fn changepoint_is_an_instantaneous_event_in_the_alert_lane() {
        let event = Event {
            rule: Arc::from("flow-level"),
            series: SeriesId(0),
            ts: 20,
            kind: EventKind::Changepoint {
                change: weir_rules::ChangeKind::Onset,
                onset: 12,
                before: 50.0,
                after: 53.0,
                score: 3.0,
            },
        };
        let r = record(&event, "pump-1", "flow", "t", 0).unwrap();
        assert_eq!(r.lane, Lane::Alerts);
        assert_eq!(
            decode(&r),
            serde_json::json!({"kind":"changepoint","rule":"flow-level","device":"pump-1",
                "metric":"flow","ts":20,"change":"onset","onset":12,"before":50.0,
                "after":53.0,"score":3.0})
        );
    }

    #[test]
    fn window_goes_to_the_aggregate_lane_and_nan_becomes_null() {
        let event = Event {
            rule: Arc::from("avg"),
            series: SeriesId(0),
            ts: 10,
            kind: EventKind::Window {
                start: 0,
                end: 10,
                values: vec![(Aggregate::Mean, 2.5), (Aggregate::Max, f64::NAN)],
            },
        };
        let r = record(&event, "d", "m", "t", 0).unwrap();
        assert_eq!(r.lane, Lane::Aggregates);
        let v = decode(&r);
        assert_eq!(v["kind"], "window");
        assert_eq!(v["start"], 0);
        assert_eq!(v["end"], 10);
        assert_eq!(v["values"]["mean"], 2.5);
        assert!(v["values"]["max"].is_null());
    }

    #[test]
    fn a_late_sample_travels_with_the_aggregates_as_its_own_kind() {
        let event = Event {
            rule: Arc::from("avg"),
            series: SeriesId(0),
            ts: 5,
            kind: EventKind::Late { value: 1.5 },
        };
        let r = record(&event, "d", "m", "t", 0).unwrap();
        assert_eq!(r.lane, Lane::Aggregates);
        assert_eq!(
            decode(&r),
            serde_json::json!({"kind":"late","rule":"avg","device":"d","metric":"m","ts":5,"value":1.5})
        );
    }
}

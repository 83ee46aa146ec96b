//! Wait: how long, from Seconds, Timestamp, SecondsPath or TimestampPath: parsed, then resolved.
use crate::choice::parse_timestamp;
use crate::definition::Cx;
use crate::executor::engine::{Failure, StateRun, Thread};
use crate::executor::io::{quoted, select};
use crate::jsonpath::JsonPath;
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value};
use std::time::Duration;

#[derive(Debug)]
pub(crate) enum WaitSpec {
    Seconds(u64),
    Timestamp(DateTime<FixedOffset>),
    SecondsPath(JsonPath),
    TimestampPath(JsonPath),
}

impl Cx {
    pub(crate) fn wait(&mut self, obj: &Map<String, Value>, at: &str) -> Option<WaitSpec> {
        let present: Vec<&str> =
            ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"].into_iter().filter(|k| obj.contains_key(*k)).collect();
        if present.len() != 1 {
            self.err(at, "a Wait state needs exactly one of Seconds, Timestamp, SecondsPath, TimestampPath");
            return None;
        }
        let here = format!("{at}/{}", present[0]);
        let v = &obj[present[0]];
        match present[0] {
            "Seconds" => match v.as_u64() {
                Some(s) => Some(WaitSpec::Seconds(s)),
                None => {
                    self.err(&here, "expected a non-negative integer");
                    None
                }
            },
            "Timestamp" => match v.as_str().and_then(parse_timestamp) {
                Some(t) => Some(WaitSpec::Timestamp(t)),
                None => {
                    self.err(&here, "expected an ISO-8601 extended offset date-time such as 2016-03-14T01:59:00Z");
                    None
                }
            },
            "SecondsPath" => self.path(v, &here).map(WaitSpec::SecondsPath),
            _ => self.path(v, &here).map(WaitSpec::TimestampPath),
        }
    }
}

pub(crate) fn wait_delay(th: &Thread, run: &StateRun, spec: &WaitSpec, input: &Value) -> Result<Duration, Failure> {
    let until = |t: DateTime<chrono::FixedOffset>| (t.with_timezone(&Utc) - th.now()).to_std().unwrap_or(Duration::ZERO);
    match spec {
        WaitSpec::Seconds(s) => Ok(Duration::from_secs(*s)),
        WaitSpec::Timestamp(t) => Ok(until(*t)),
        WaitSpec::SecondsPath(p) => {
            let v = select(th, run, p, input)?;
            match v.as_i64() {
                Some(n) if n < 0 => {
                    Err(run.runtime(format!("The SecondsPath parameter references a negative value: {p} == {}", quoted(&v))))
                }
                Some(n) => Ok(Duration::from_secs(n as u64)),
                None => Err(run.runtime(format!("The SecondsPath parameter cannot be parsed as a long value: {p} == {}", quoted(&v)))),
            }
        }
        WaitSpec::TimestampPath(p) => {
            let v = select(th, run, p, input)?;
            match v.as_str().and_then(parse_timestamp) {
                Some(t) => Ok(until(t)),
                None => Err(run.runtime(format!(
                    "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {p} == {}",
                    quoted(&v)
                ))),
            }
        }
    }
}

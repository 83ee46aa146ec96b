//! Wait: how long, from Seconds, Timestamp, SecondsPath or TimestampPath.
use crate::choice::parse_timestamp;
use crate::definition::WaitSpec;
use crate::executor::engine::{Failure, StateRun, Thread};
use crate::executor::io::{quoted, select};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;

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

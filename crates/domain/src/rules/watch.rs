//! When a wave is judged: its gates are sampled from the end of its deploy until its bake ends.
//! The first gate that shows `failures` unhealthy samples in a row fails the wave at once; the
//! wave is healthy when the bake is over and every gate has shown `consecutive` healthy samples
//! in a row (the watch goes on past the bake until they have).

use crate::catalog::GateSpec;
use crate::ports::GateReading;
use crate::release::{GateRecord, GateSample};
use chrono::{DateTime, Utc};

/// Step Functions' limit on an execution's history (a Standard workflow's quota).
pub const HISTORY_QUOTA: u64 = 25_000;
/// What one sample adds to the history: the Task's five events, the Choice's two, the Wait's two.
pub const EVENTS_PER_SAMPLE: u64 = 9;
/// The samples a release's bakes may take in all: 18,000 events, the rest of the quota left to
/// the builds, deploys, retries and rollback.
pub const MAX_WATCH_SAMPLES: u64 = 2_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// Sample again after this many seconds.
    Continue {
        wait_seconds: u64,
    },
    Healthy,
    /// The first gate, in the catalog's order, that failed, and what it saw last.
    Unhealthy {
        gate: String,
        saw: String,
    },
}

/// Adds one sample to a gate's record (its history keeps the latest [`GateSample::KEPT`]).
pub fn record_sample(record: &mut GateRecord, reading: &GateReading, now: DateTime<Utc>) {
    record.samples = record.samples.saturating_add(1);
    let healthy = matches!(reading, GateReading::Healthy { .. });
    record.history.push(GateSample { at: now, healthy });
    let over = record.history.len().saturating_sub(GateSample::KEPT);
    record.history.drain(..over);
    let saw = match reading {
        GateReading::Healthy { saw } => {
            record.healthy_in_a_row = record.healthy_in_a_row.saturating_add(1);
            record.unhealthy_in_a_row = 0;
            saw
        }
        GateReading::Unhealthy { saw } => {
            record.unhealthy_in_a_row = record.unhealthy_in_a_row.saturating_add(1);
            record.healthy_in_a_row = 0;
            saw
        }
    };
    record.last = Some(saw.clone());
    record.last_at = Some(now);
}

/// Judges the wave from its gates' records (paired with their specs, in the catalog's order).
pub fn judge(
    gates: &[(&GateRecord, &GateSpec)],
    bake_started_at: DateTime<Utc>,
    bake_seconds: u64,
    interval_seconds: u64,
    now: DateTime<Utc>,
) -> Watch {
    if let Some((record, _)) = gates.iter().find(|(record, spec)| record.unhealthy_in_a_row >= spec.failures.max(1)) {
        return Watch::Unhealthy { gate: record.gate.clone(), saw: record.last.clone().unwrap_or_default() };
    }
    let bake = i64::try_from(bake_seconds).ok().and_then(chrono::TimeDelta::try_seconds).unwrap_or(chrono::TimeDelta::MAX);
    let bake_ends = bake_started_at.checked_add_signed(bake).unwrap_or(DateTime::<Utc>::MAX_UTC);
    let settled = gates.iter().all(|(record, spec)| record.healthy_in_a_row >= spec.consecutive.max(1));
    let interval = interval_seconds.max(1);
    if now >= bake_ends {
        return if settled { Watch::Healthy } else { Watch::Continue { wait_seconds: interval } };
    }
    // Round up, so the sample after the last wait falls at or after the bake's end.
    let left_ms = u64::try_from((bake_ends - now).num_milliseconds()).unwrap_or(u64::MAX);
    let left = left_ms.div_ceil(1000).max(1);
    Watch::Continue { wait_seconds: interval.min(left) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ProviderBlock;

    fn spec(consecutive: u32, failures: u32) -> GateSpec {
        let gate = ProviderBlock::new("http", serde_json::json!({ "url": "http://web/health" }));
        GateSpec { gate, consecutive, failures }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    /// A record after `readings` (true = healthy), the last one saying `last`.
    fn after(gate: &str, readings: &[bool]) -> GateRecord {
        let mut record = GateRecord { gate: gate.into(), ..GateRecord::default() };
        for (i, healthy) in readings.iter().enumerate() {
            let saw = format!("sample {}", i + 1);
            let reading = if *healthy { GateReading::Healthy { saw } } else { GateReading::Unhealthy { saw } };
            record_sample(&mut record, &reading, at(i as i64));
        }
        record
    }

    #[test]
    fn samples_keep_streaks_and_what_was_seen() {
        let record = after("alarms", &[true, true, false, true]);
        assert_eq!((record.samples, record.healthy_in_a_row, record.unhealthy_in_a_row), (4, 1, 0));
        assert_eq!((record.last.as_deref(), record.last_at), (Some("sample 4"), Some(at(3))));
        let record = after("alarms", &[true, false, false]);
        assert_eq!((record.healthy_in_a_row, record.unhealthy_in_a_row), (0, 2));
        let kept: Vec<(DateTime<Utc>, bool)> = record.history.iter().map(|s| (s.at, s.healthy)).collect();
        assert_eq!(kept, [(at(0), true), (at(1), false), (at(2), false)], "each sample, oldest first");
    }

    #[test]
    fn a_long_watch_keeps_only_its_latest_samples() {
        let readings: Vec<bool> = (0..GateSample::KEPT + 30).map(|i| i % 7 != 0).collect();
        let record = after("alarms", &readings);
        assert_eq!(record.samples as usize, GateSample::KEPT + 30, "the count covers every sample");
        assert_eq!(record.history.len(), GateSample::KEPT);
        assert_eq!(record.history.first().map(|s| s.at), Some(at(30)), "the oldest are dropped");
        assert_eq!(
            record.history.last().map(|s| (s.at, s.healthy)),
            Some((at(GateSample::KEPT as i64 + 29), readings[GateSample::KEPT + 29]))
        );
        let healthy = record.history.iter().filter(|s| s.healthy).count();
        assert_eq!(healthy, readings[30..].iter().filter(|h| **h).count());
    }

    #[test]
    fn the_watch_follows_the_bake_and_the_streaks() {
        // (case, gates as (readings, consecutive, failures), bake, interval, now, expected)
        type Case = (&'static str, Vec<(Vec<bool>, u32, u32)>, u64, u64, i64, Watch);
        let unhealthy = |gate: &str, saw: &str| Watch::Unhealthy { gate: gate.into(), saw: saw.into() };
        let wait = |wait_seconds| Watch::Continue { wait_seconds };
        let cases: Vec<Case> = vec![
            ("healthy mid-bake: sample again an interval later", vec![(vec![true], 1, 1)], 300, 30, 10, wait(30)),
            ("the last wait ends with the bake", vec![(vec![true], 1, 1)], 300, 30, 290, wait(10)),
            ("a part second left waits a whole second", vec![(vec![true], 1, 1)], 300, 30, 299, wait(1)),
            ("bake over, every gate settled", vec![(vec![true], 1, 1), (vec![true, true], 2, 1)], 300, 30, 300, Watch::Healthy),
            ("no bake: one healthy sample is enough", vec![(vec![true], 1, 1)], 0, 30, 0, Watch::Healthy),
            ("bake over but a gate not settled: watch on", vec![(vec![true], 1, 1), (vec![false, true], 2, 3)], 60, 30, 90, wait(30)),
            ("the first unhealthy sample fails mid-bake", vec![(vec![true, false], 1, 1)], 300, 30, 10, unhealthy("gate 0", "sample 2")),
            ("failures tolerates blips", vec![(vec![true, false], 1, 2)], 300, 30, 10, wait(30)),
            ("until they run in a row", vec![(vec![false, false], 1, 2)], 300, 30, 10, unhealthy("gate 0", "sample 2")),
            (
                "the first failing gate in catalog order names the wave's failure",
                vec![(vec![true], 1, 1), (vec![false], 1, 1), (vec![false], 1, 1)],
                0,
                30,
                0,
                unhealthy("gate 1", "sample 1"),
            ),
            ("a zero interval is one second", vec![(vec![true], 1, 1)], 300, 0, 0, wait(1)),
            ("an absurd bake does not overflow", vec![(vec![true], 1, 1)], u64::MAX, 30, 0, wait(30)),
        ];
        for (case, gates, bake, interval, now, expected) in cases {
            let records: Vec<(GateRecord, GateSpec)> = gates
                .iter()
                .enumerate()
                .map(|(i, (readings, consecutive, failures))| (after(&format!("gate {i}"), readings), spec(*consecutive, *failures)))
                .collect();
            let pairs: Vec<(&GateRecord, &GateSpec)> = records.iter().map(|(r, s)| (r, s)).collect();
            assert_eq!(judge(&pairs, at(0), bake, interval, at(now)), expected, "{case}");
        }
    }
}

//! Durations kept as a mergeable quantile sketch: DDSketch's logarithmic mapping, with each
//! bucket a plain counter.
//!
//! A duration of `v` seconds adds one to the bucket `ceil(log_γ v)`, γ = (1 + α) / (1 − α); a
//! bucket's value is read back as `2γ^k / (γ + 1)`, within α of every duration it holds. Merging
//! two sketches adds their buckets, so a team's 90-day p90 is the merge of its services' daily
//! sketches, as exact as one sketch of every duration. The buckets are counters like the rollups'
//! others, so a store adds to them in the same write, without reading first; an opaque serialised
//! sketch (what the DDSketch crates offer) would need a read, a merge and a conditional write.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every quantile read from a sketch is within 1 % of the exact one (relative to the value).
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// Durations shorter than this (a millisecond) count as zero: they have no bucket of their own.
const SMALLEST: f64 = 1e-3;

/// The bucket of durations below [`SMALLEST`]; below every other bucket.
pub const ZERO_BUCKET: i32 = i32::MIN;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// Counts of durations by bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sketch {
    buckets: BTreeMap<i32, u64>,
}

impl Sketch {
    /// The bucket a duration of `seconds` falls in; negative durations (a clock that went back) count as zero.
    pub fn bucket(seconds: f64) -> i32 {
        // NaN lands here too.
        if seconds.is_nan() || seconds < SMALLEST {
            return ZERO_BUCKET;
        }
        // Durations are at most centuries long, so the key stays far inside i32.
        (seconds.ln() / gamma().ln()).ceil() as i32
    }

    /// The duration a bucket stands for.
    pub fn value(bucket: i32) -> f64 {
        if bucket == ZERO_BUCKET {
            return 0.0;
        }
        let gamma = gamma();
        2.0 * gamma.powi(bucket) / (gamma + 1.0)
    }

    pub fn of(seconds: f64) -> Sketch {
        let mut sketch = Sketch::default();
        sketch.add(seconds);
        sketch
    }

    pub fn add(&mut self, seconds: f64) {
        self.add_count(Sketch::bucket(seconds), 1);
    }

    /// Adds `count` durations to `bucket` (a store reading its counters back).
    pub fn add_count(&mut self, bucket: i32, count: u64) {
        if count > 0 {
            let slot = self.buckets.entry(bucket).or_default();
            *slot = slot.saturating_add(count);
        }
    }

    pub fn merge(&mut self, other: &Sketch) {
        for (&bucket, &count) in &other.buckets {
            self.add_count(bucket, count);
        }
    }

    /// The buckets that hold anything, lowest first.
    pub fn buckets(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.buckets.iter().map(|(&bucket, &count)| (bucket, count))
    }

    pub fn count(&self) -> u64 {
        self.buckets.values().fold(0, |sum, &count| sum.saturating_add(count))
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The `q`-quantile by nearest rank (the smallest duration with at least `q` of the durations
    /// at or below it), within [`RELATIVE_ACCURACY`]; `None` when empty. `q` is clamped to [0, 1].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        self.buckets.iter().find_map(|(&bucket, &count)| {
            seen = seen.saturating_add(count);
            (seen >= rank).then(|| Sketch::value(bucket))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The exact nearest-rank quantile of `values`.
    fn exact(values: &[f64], q: f64) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    fn within_accuracy(estimate: f64, exact: f64) -> bool {
        if exact < SMALLEST {
            return estimate == 0.0;
        }
        (estimate - exact).abs() <= RELATIVE_ACCURACY * exact * (1.0 + 1e-9)
    }

    #[test]
    fn quantiles_of_known_durations() {
        // (durations in seconds, q, exact nearest-rank answer)
        let cases: &[(&[f64], f64, f64)] = &[
            (&[60.0], 0.5, 60.0),
            (&[60.0, 120.0, 180.0, 240.0], 0.5, 120.0),
            (&[60.0, 120.0, 180.0, 240.0], 0.9, 240.0),
            (&[3600.0, 60.0, 86_400.0], 0.5, 3600.0),
            (&[0.0, 0.0, 10.0], 0.5, 0.0),
            (&[-5.0, 10.0], 0.5, 0.0),
            (&[1.0; 10], 0.9, 1.0),
        ];
        for (values, q, expected) in cases {
            let mut sketch = Sketch::default();
            values.iter().for_each(|&v| sketch.add(v));
            let estimate = sketch.quantile(*q).unwrap();
            assert!(within_accuracy(estimate, *expected), "{values:?} q={q}: {estimate} is not within 1 % of {expected}");
        }
        assert_eq!(Sketch::default().quantile(0.5), None);
    }

    #[test]
    fn each_bucket_reads_back_within_the_accuracy_of_what_it_holds() {
        for seconds in [0.001, 0.5, 1.0, 59.0, 60.0, 61.0, 3599.9, 86_400.0, 31_536_000.0, 3.2e9] {
            let value = Sketch::value(Sketch::bucket(seconds));
            assert!(within_accuracy(value, seconds), "{seconds}: {value}");
        }
    }

    proptest! {
        /// Daily sketches merged answer as one sketch of every duration would, within the accuracy
        /// of the exact quantile, however the durations were split.
        #[test]
        fn merged_sketches_stay_within_the_accuracy_of_the_exact_quantile(
            days in prop::collection::vec(prop::collection::vec(0.0f64..5_000_000.0, 0..40), 1..20),
            q in 0.01f64..=1.0,
        ) {
            let mut merged = Sketch::default();
            for day in &days {
                let mut sketch = Sketch::default();
                day.iter().for_each(|&v| sketch.add(v));
                merged.merge(&sketch);
            }
            let all: Vec<f64> = days.concat();
            prop_assert_eq!(merged.count(), all.len() as u64);
            match merged.quantile(q) {
                None => prop_assert!(all.is_empty()),
                Some(estimate) => {
                    let exact = exact(&all, q);
                    prop_assert!(within_accuracy(estimate, exact), "q={} estimate={} exact={}", q, estimate, exact);
                }
            }
        }
    }
}

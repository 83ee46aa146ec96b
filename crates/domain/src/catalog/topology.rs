//! The model of waves computed from a topology: `deploy.targets` with failure-domain labels and
//! `deploy.waves: {from: topology, ...}`. The computation is [`crate::rules::topology`].

use super::Seconds;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The label whose domains the region rule keeps apart (see [`crate::rules::topology`]).
pub const REGION_LABEL: &str = "region";

/// A target and its failure-domain labels (`region`, `az`, `cell`, `account`, or any the team
/// names), written flat: `{name: web-1, region: eu-west-1, az: eu-west-1a}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabeledTarget {
    pub name: String,
    #[serde(flatten)]
    pub labels: BTreeMap<String, String>,
}

/// Targets with labels and the policy that turns them into waves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub targets: Vec<LabeledTarget>,
    pub policy: WavePolicy,
}

/// `waves: {from: topology, order: [...], max-share: ..., bake: ..., deploy-timeout: ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct WavePolicy {
    pub from: WaveSource,
    /// Growing steps (`[one, az, region, rest]`) or cumulative shares (`[1%, 10%, 50%, 100%]`).
    pub order: Vec<Step>,
    /// The most of any failure domain one wave may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_share: Option<MaxShare>,
    /// Every computed wave's bake.
    #[serde(default)]
    pub bake: Seconds,
    /// Every computed wave's deploy timeout.
    #[serde(default = "super::WaveSpec::default_deploy_timeout")]
    pub deploy_timeout: Seconds,
}

/// Where the waves come from: only a topology for now (a list of waves is written as a list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaveSource {
    Topology,
}

/// One item of a policy's `order`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// `one`: one target.
    One,
    /// A label (`az`, `region`, `cell`): the rest of one domain of that label.
    Domain(String),
    /// `rest`: every target left.
    Rest,
    /// `10%`: targets up to this share of all of them, counted from the first wave.
    Share(Percent),
}

impl Step {
    pub const ONE: &'static str = "one";
    pub const REST: &'static str = "rest";

    pub fn parse(text: &str) -> Result<Step, String> {
        match text {
            Step::ONE => Ok(Step::One),
            Step::REST => Ok(Step::Rest),
            share if share.ends_with('%') => Percent::parse(share).map(Step::Share),
            label => Ok(Step::Domain(label.to_owned())),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::One => f.write_str(Step::ONE),
            Step::Domain(label) => f.write_str(label),
            Step::Rest => f.write_str(Step::REST),
            Step::Share(share) => share.fmt(f),
        }
    }
}

/// `max-share: 50%` (every label) or `max-share: {region: 50%, az: 100%}` (the labels named).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MaxShare {
    Every(Percent),
    Labels(BTreeMap<String, Percent>),
}

impl MaxShare {
    /// The share of `label`'s domains one wave may hold, when the policy bounds it.
    pub fn of(&self, label: &str) -> Option<Percent> {
        match self {
            MaxShare::Every(share) => Some(*share),
            MaxShare::Labels(shares) => shares.get(label).copied(),
        }
    }
}

/// A share from 0.01% to 100%, kept in hundredths of a percent (`12.5%` is 1250), so shares
/// of target counts are exact integer arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(pub u32);

impl Percent {
    pub const WHOLE: Percent = Percent(10_000);

    /// Parses `1%`, `12.5%`, `0.25%`, `100%`.
    pub fn parse(text: &str) -> Result<Percent, String> {
        const EXPECTED: &str = "a percentage from 0.01% to 100%, such as 10% or 12.5%";
        let number = text.trim().strip_suffix('%').ok_or_else(|| format!("{EXPECTED} (with its `%`)"))?;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits = |s: &str| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !(fraction.is_empty() || (fraction.len() <= 2 && digits(fraction))) {
            return Err(format!("{EXPECTED} (at most two decimals)"));
        }
        let hundredths = whole.parse::<u32>().expect("digits") * 100 + format!("{fraction:0<2}").parse::<u32>().expect("digits");
        match hundredths {
            1..=10_000 => Ok(Percent(hundredths)),
            _ => Err(EXPECTED.to_owned()),
        }
    }

    /// The most of `n` this share allows, rounded down: "never more than the share".
    pub fn floor_of(self, n: usize) -> usize {
        n * self.0 as usize / Percent::WHOLE.0 as usize
    }

    /// This share of `n`, rounded up: a share of a fleet reaches at least that many targets.
    pub fn ceil_of(self, n: usize) -> usize {
        (n * self.0 as usize).div_ceil(Percent::WHOLE.0 as usize)
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, fraction) = (self.0 / 100, self.0 % 100);
        match fraction {
            0 => write!(f, "{whole}%"),
            _ if fraction % 10 == 0 => write!(f, "{whole}.{}%", fraction / 10),
            _ => write!(f, "{whole}.{fraction:02}%"),
        }
    }
}

/// Steps and shares are written as strings in the catalog and in the kept entry alike.
macro_rules! through_text {
    ($type:ty, $parse:path) => {
        impl Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}
through_text!(Step, Step::parse);
through_text!(Percent, Percent::parse);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_read_and_print_exactly() {
        for (text, hundredths, shown) in
            [("1%", 100, "1%"), ("12.5%", 1250, "12.5%"), ("0.25%", 25, "0.25%"), ("100%", 10_000, "100%"), ("0.01%", 1, "0.01%")]
        {
            let share = Percent::parse(text).unwrap();
            assert_eq!((share.0, share.to_string()), (hundredths, shown.to_owned()), "{text}");
        }
        for bad in ["0%", "101%", "10", "1.234%", "-5%", "%", ".5%", "1e2%", "1000%"] {
            assert!(Percent::parse(bad).is_err(), "{bad} is refused");
        }
        assert_eq!((Percent(5000).floor_of(3), Percent(5000).ceil_of(3)), (1, 2));
        assert_eq!((Percent(100).floor_of(500), Percent(100).ceil_of(50)), (5, 1));
    }

    #[test]
    fn steps_read_as_written() {
        assert_eq!(Step::parse("one"), Ok(Step::One));
        assert_eq!(Step::parse("rest"), Ok(Step::Rest));
        assert_eq!(Step::parse("az"), Ok(Step::Domain("az".into())));
        assert_eq!(Step::parse("50%"), Ok(Step::Share(Percent(5000))));
        let policy: WavePolicy = serde_json::from_value(serde_json::json!({
            "from": "topology", "order": ["one", "az", "region", "rest"], "max-share": {"region": "50%"}, "bake": "5m"
        }))
        .unwrap();
        assert_eq!(policy.max_share.as_ref().and_then(|m| m.of("region")), Some(Percent(5000)));
        assert_eq!(policy.deploy_timeout, super::super::WaveSpec::DEFAULT_DEPLOY_TIMEOUT);
        let again: WavePolicy = serde_json::from_value(serde_json::to_value(&policy).unwrap()).unwrap();
        assert_eq!(again, policy);
    }
}

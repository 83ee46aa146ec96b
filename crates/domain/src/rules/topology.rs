//! Waves computed from a topology: targets with failure-domain labels and a [`WavePolicy`].
//!
//! The policy's `order` is a list of steps, each taking the next targets:
//! - `one`: the next target;
//! - a label (`az`, `region`, `cell`, ...): what is left of the next target's domain of that label;
//! - `rest`: every target left;
//! - a share (`10%`): targets until that share of the fleet (rounded up) has been taken.
//!
//! A step becomes one wave, or several when these rules hold it back:
//! - **Regions**: no wave holds two regions (label `region`) until a region has been
//!   completed by earlier waves, and so has been deployed and baked.
//! - **Shares**: no wave holds more of any domain than `max-share` allows for its label (rounded
//!   down; a domain so small that its share is less than one target is refused).
//!
//! Each target lands in exactly one wave. **Order and tie-break**: targets are kept together by
//! their labels, the label with the fewest domains first (`region` before `az` before `cell`;
//! equal counts by label name); within a label, domains come in the order the catalog first names
//! them, and targets within a domain in catalog order. So the catalog's first target is the first
//! wave (with `order: [one, ...]`), its zone and region come next, and the same catalog always
//! gives the same waves. A wave held back takes, in that order, every target of its step that
//! fits, and the next wave of the step the rest.
//!
//! Wave names are the step's (`one`, `az`, `region`, `rest`, `percent-10`), numbered `-1`, `-2`
//! where a name would repeat.

use crate::catalog::WaveSpec;
use crate::catalog::topology::{LabeledTarget, MaxShare, Percent, REGION_LABEL, Step, Topology, WavePolicy};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Why a topology cannot be turned into waves under its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Under the deploy block: `targets[3].az`, `waves.order[1]`, `waves.max-share.region`.
    pub path: String,
    pub message: String,
}

impl Refusal {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Refusal {
        Refusal { path: path.into(), message: message.into() }
    }
}

/// The waves of `topology`, or why its policy cannot be satisfied.
pub fn compute(topology: &Topology) -> Result<Vec<WaveSpec>, Refusal> {
    let Topology { targets, policy } = topology;
    let labels = check_targets(targets)?;
    check_order(policy, &labels)?;
    let shares = shares(policy, &labels, targets)?;
    let order = kept_together(targets, &labels);
    let mut plan = Planner::new(targets, shares);
    for step in &policy.order {
        let taken: Vec<usize> = match step {
            Step::One => plan.left(&order).take(1).collect(),
            Step::Domain(label) => match plan.left(&order).next() {
                Some(first) => plan.left(&order).filter(|&t| targets[t].labels[label] == targets[first].labels[label]).collect(),
                None => Vec::new(),
            },
            Step::Rest => plan.left(&order).collect(),
            Step::Share(share) => {
                let due = share.ceil_of(targets.len()).saturating_sub(plan.deployed);
                plan.left(&order).take(due).collect()
            }
        };
        plan.split(&step_name(step), taken);
    }
    Ok(named(targets, plan.waves, policy))
}

/// The label names every target carries, checked to be the same for all and unique in name.
fn check_targets(targets: &[LabeledTarget]) -> Result<BTreeSet<&str>, Refusal> {
    let Some(first) = targets.first() else {
        return Err(Refusal::new("targets", "expected at least one target"));
    };
    let labels: BTreeSet<&str> = first.labels.keys().map(String::as_str).collect();
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, target) in targets.iter().enumerate() {
        if let Some(earlier) = names.insert(&target.name, i) {
            return Err(Refusal::new(format!("targets[{i}].name"), format!("target `{}` is already targets[{earlier}]", target.name)));
        }
        if let Some(missing) = labels.iter().find(|label| !target.labels.contains_key(**label)) {
            let message =
                format!("target `{}` has no `{missing}` label: every target carries the same labels, as targets[0] does", target.name);
            return Err(Refusal::new(format!("targets[{i}]"), message));
        }
        if let Some(extra) = target.labels.keys().find(|label| !labels.contains(label.as_str())) {
            let message = format!("label `{extra}` is not on targets[0]: every target carries the same labels");
            return Err(Refusal::new(format!("targets[{i}].{extra}"), message));
        }
    }
    Ok(labels)
}

fn label_list(labels: &BTreeSet<&str>) -> String {
    if labels.is_empty() {
        return "none".into();
    }
    labels.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ")
}

/// Steps in one form (shares growing), ending with every target.
fn check_order(policy: &WavePolicy, labels: &BTreeSet<&str>) -> Result<(), Refusal> {
    let at = |i: usize| format!("waves.order[{i}]");
    let Some(last) = policy.order.last() else {
        return Err(Refusal::new("waves.order", "expected at least one step, such as [one, az, region, rest] or [1%, 10%, 100%]"));
    };
    let shares = matches!(policy.order[0], Step::Share(_));
    let mut previous = None;
    for (i, step) in policy.order.iter().enumerate() {
        match step {
            Step::Share(_) if !shares => {
                return Err(Refusal::new(at(i), "expected steps (`one`, a label, `rest`): the order mixes steps and percentages"));
            }
            Step::Share(share) if previous.is_some_and(|p| p >= *share) => {
                return Err(Refusal::new(at(i), format!("expected a share above the one before it; found {share}")));
            }
            Step::Share(share) => previous = Some(*share),
            _ if shares => return Err(Refusal::new(at(i), "expected a percentage: the order mixes percentages and steps")),
            Step::Rest if i + 1 != policy.order.len() => return Err(Refusal::new(at(i), "`rest` takes every target left: it comes last")),
            Step::Domain(label) if !labels.contains(label.as_str()) => {
                let message = format!("no target carries a label `{label}`; the targets' labels are {}", label_list(labels));
                return Err(Refusal::new(at(i), message));
            }
            _ => {}
        }
    }
    match last {
        Step::Share(share) if *share != Percent::WHOLE => Err(Refusal::new(
            at(policy.order.len() - 1),
            format!("expected the last share to be 100%, so every target is deployed; found {share}"),
        )),
        Step::One | Step::Domain(_) => {
            Err(Refusal::new(at(policy.order.len() - 1), "expected the order to end with `rest`, so every target is deployed"))
        }
        _ => Ok(()),
    }
}

/// The most targets of each of a label's domains one wave may hold, for a label the policy bounds.
struct Bound {
    label: String,
    most: HashMap<String, usize>,
}

/// For each bounded label, the most targets of each of its domains one wave may hold; a domain
/// whose share is less than one target can never be deployed and is refused.
fn shares(policy: &WavePolicy, labels: &BTreeSet<&str>, targets: &[LabeledTarget]) -> Result<Vec<Bound>, Refusal> {
    let Some(max_share) = &policy.max_share else { return Ok(Vec::new()) };
    if let MaxShare::Labels(named) = max_share
        && let Some(unknown) = named.keys().find(|label| !labels.contains(label.as_str()))
    {
        let message = format!("no target carries a label `{unknown}`; the targets' labels are {}", label_list(labels));
        return Err(Refusal::new(format!("waves.max-share.{unknown}"), message));
    }
    let mut bounds = Vec::new();
    for label in labels {
        let Some(share) = max_share.of(label) else { continue };
        let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
        targets.iter().for_each(|t| *sizes.entry(&t.labels[*label]).or_default() += 1);
        let mut most = HashMap::new();
        for (domain, size) in sizes {
            let cap = share.floor_of(size);
            if cap == 0 {
                let path = match max_share {
                    MaxShare::Every(_) => "waves.max-share".to_owned(),
                    MaxShare::Labels(_) => format!("waves.max-share.{label}"),
                };
                let plural = if size == 1 { "" } else { "s" };
                let message = format!(
                    "{label} `{domain}` has {size} target{plural}: a wave holding any of it holds {}, above the max-share of {share}; \
                     give it more targets or allow a larger share",
                    Percent(Percent::WHOLE.0 / size as u32),
                );
                return Err(Refusal::new(path, message));
            }
            most.insert(domain.to_owned(), cap);
        }
        bounds.push(Bound { label: (*label).to_owned(), most });
    }
    Ok(bounds)
}

/// Target indices kept together by their labels (see the module's doc).
fn kept_together(targets: &[LabeledTarget], labels: &BTreeSet<&str>) -> Vec<usize> {
    let mut first_seen: BTreeMap<&str, HashMap<&str, usize>> = BTreeMap::new();
    for (i, target) in targets.iter().enumerate() {
        for (label, value) in &target.labels {
            first_seen.entry(label).or_default().entry(value).or_insert(i);
        }
    }
    let mut by_size: Vec<&str> = labels.iter().copied().collect();
    by_size.sort_by_key(|label| (first_seen[label].len(), *label));
    let key =
        |t: usize| -> Vec<usize> { by_size.iter().map(|label| first_seen[label][targets[t].labels[*label].as_str()]).chain([t]).collect() };
    let mut order: Vec<usize> = (0..targets.len()).collect();
    order.sort_by_cached_key(|&t| key(t));
    order
}

/// Waves so far, and what they deployed.
struct Planner<'t> {
    targets: &'t [LabeledTarget],
    shares: Vec<Bound>,
    deployed_target: Vec<bool>,
    deployed: usize,
    /// Targets of each region not deployed yet; empty when the targets carry no region.
    region_left: HashMap<&'t str, usize>,
    region_done: bool,
    /// (step name, targets) per wave.
    waves: Vec<(String, Vec<usize>)>,
}

impl<'t> Planner<'t> {
    fn new(targets: &'t [LabeledTarget], shares: Vec<Bound>) -> Planner<'t> {
        let mut region_left = HashMap::new();
        for region in targets.iter().filter_map(|t| t.labels.get(REGION_LABEL)) {
            *region_left.entry(region.as_str()).or_default() += 1;
        }
        Planner {
            targets,
            shares,
            deployed_target: vec![false; targets.len()],
            deployed: 0,
            region_left,
            region_done: false,
            waves: Vec::new(),
        }
    }

    /// Targets not deployed yet, in `order`.
    fn left<'a>(&'a self, order: &'a [usize]) -> impl Iterator<Item = usize> + 'a {
        order.iter().copied().filter(|&t| !self.deployed_target[t])
    }

    fn region(&self, t: usize) -> Option<&'t str> {
        self.targets[t].labels.get(REGION_LABEL).map(String::as_str)
    }

    /// Turns a step's targets into as many waves as the region and share rules need.
    fn split(&mut self, step: &str, mut taken: Vec<usize>) {
        while !taken.is_empty() {
            let mut wave = Vec::new();
            let mut held: HashMap<(usize, &str), usize> = HashMap::new();
            let mut region = None;
            taken.retain(|&t| {
                if !self.region_done && region.is_some() && self.region(t) != region {
                    return true;
                }
                let domains: Vec<(usize, &str)> =
                    self.shares.iter().enumerate().map(|(l, bound)| (l, self.targets[t].labels[&bound.label].as_str())).collect();
                if domains.iter().any(|&(l, domain)| held.get(&(l, domain)).copied().unwrap_or(0) >= self.shares[l].most[domain]) {
                    return true;
                }
                domains.into_iter().for_each(|key| *held.entry(key).or_default() += 1);
                region = self.region(t);
                wave.push(t);
                false
            });
            assert!(!wave.is_empty(), "the first target of a step always fits: every domain's share is at least one target");
            for &t in &wave {
                self.deployed_target[t] = true;
                if let Some(left) = self.region(t).and_then(|r| self.region_left.get_mut(r)) {
                    *left -= 1;
                }
            }
            self.deployed += wave.len();
            self.region_done = self.region_done || self.region_left.values().any(|&left| left == 0);
            self.waves.push((step.to_owned(), wave));
        }
    }
}

fn step_name(step: &Step) -> String {
    match step {
        Step::Share(share) => format!("percent-{}", share.to_string().trim_end_matches('%')),
        other => other.to_string(),
    }
}

/// The waves as specs, a name that would repeat numbered `-1`, `-2`, ...
fn named(targets: &[LabeledTarget], waves: Vec<(String, Vec<usize>)>, policy: &WavePolicy) -> Vec<WaveSpec> {
    let mut uses: HashMap<String, usize> = HashMap::new();
    waves.iter().for_each(|(name, _)| *uses.entry(name.clone()).or_default() += 1);
    let mut numbered: HashMap<String, usize> = HashMap::new();
    waves
        .into_iter()
        .map(|(step, wave)| {
            let name = match uses[&step] {
                1 => step,
                _ => {
                    let n = numbered.entry(step.clone()).or_default();
                    *n += 1;
                    format!("{step}-{n}")
                }
            };
            let targets = wave.into_iter().map(|t| targets[t].name.clone()).collect();
            WaveSpec { name, targets, bake: policy.bake, deploy_timeout: policy.deploy_timeout, approval: None }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Seconds;
    use crate::catalog::shape::NAME;
    use proptest::prelude::*;

    fn target(name: &str, labels: &[(&str, &str)]) -> LabeledTarget {
        LabeledTarget { name: name.into(), labels: labels.iter().map(|(l, v)| ((*l).to_owned(), (*v).to_owned())).collect() }
    }

    /// Regions `r1`, `r2`, ..., each a list of zone sizes; targets `r1-a1-t1`, ... in catalog order.
    fn fleet(regions: &[&[usize]]) -> Vec<LabeledTarget> {
        let mut targets = Vec::new();
        for (r, zones) in regions.iter().enumerate() {
            for (a, &size) in zones.iter().enumerate() {
                let (region, az) = (format!("r{}", r + 1), format!("r{}-a{}", r + 1, a + 1));
                targets.extend((1..=size).map(|t| target(&format!("{az}-t{t}"), &[("region", &region), ("az", &az)])));
            }
        }
        targets
    }

    fn policy(order: &[&str], max_share: Option<MaxShare>) -> WavePolicy {
        WavePolicy {
            from: crate::catalog::topology::WaveSource::Topology,
            order: order.iter().map(|s| Step::parse(s).unwrap()).collect(),
            max_share,
            bake: Seconds(300),
            deploy_timeout: Seconds(900),
        }
    }

    fn share_of(label: &str, percent: u32) -> Option<MaxShare> {
        Some(MaxShare::Labels([(label.to_owned(), Percent(percent * 100))].into()))
    }

    fn waves_of(targets: Vec<LabeledTarget>, policy: WavePolicy) -> Vec<WaveSpec> {
        compute(&Topology { targets, policy }).unwrap()
    }

    fn shape(waves: &[WaveSpec]) -> Vec<(&str, usize)> {
        waves.iter().map(|w| (w.name.as_str(), w.targets.len())).collect()
    }

    const GROWING: &[&str] = &["one", "az", "region", "rest"];

    #[test]
    fn hand_checked_waves_from_1_to_500_targets_over_1_to_6_regions() {
        let six_regions: &[&[usize]] = &[&[50, 50], &[50, 50], &[50, 50], &[50, 50], &[25, 25], &[25, 25]];
        // (what, regions and zone sizes, order, max-share, expected waves and sizes)
        type Case<'a> = (&'a str, &'a [&'a [usize]], &'a [&'a str], Option<MaxShare>, Vec<(&'a str, usize)>);
        let cases: Vec<Case> = vec![
            ("one target", &[&[1]], GROWING, None, vec![("one", 1)]),
            ("one target, percentages", &[&[1]], &["1%", "10%", "100%"], None, vec![("percent-1", 1)]),
            (
                "two regions of one target: the second region's zone once the first is done",
                &[&[1], &[1]],
                GROWING,
                None,
                vec![("one", 1), ("az", 1)],
            ),
            (
                "3 regions, 3 zones of 2",
                &[&[2, 2, 2], &[2, 2, 2], &[2, 2, 2]],
                GROWING,
                None,
                vec![("one", 1), ("az", 1), ("region", 4), ("rest", 12)],
            ),
            (
                "6 regions of one target: no wave holds two regions before one is done",
                &[&[1], &[1], &[1], &[1], &[1], &[1]],
                GROWING,
                None,
                vec![("one", 1), ("az", 1), ("region", 1), ("rest", 3)],
            ),
            (
                "`rest` before any region is done holds one region",
                &[&[4], &[4], &[4]],
                &["one", "rest"],
                None,
                vec![("one", 1), ("rest-1", 3), ("rest-2", 8)],
            ),
            (
                "a zone at most half a zone per wave",
                &[&[4, 4]],
                &["one", "az", "rest"],
                share_of("az", 50),
                vec![("one", 1), ("az-1", 2), ("az-2", 1), ("rest-1", 2), ("rest-2", 2)],
            ),
            ("500 targets, 6 regions", six_regions, GROWING, None, vec![("one", 1), ("az", 49), ("region", 50), ("rest", 400)]),
            (
                "500 targets, 6 regions, at most half a region per wave",
                six_regions,
                GROWING,
                share_of("region", 50),
                vec![("one", 1), ("az", 49), ("region", 50), ("rest-1", 200), ("rest-2", 200)],
            ),
            (
                "500 targets, 6 regions, percentages: the 50% step waits for the first region",
                six_regions,
                &["1%", "10%", "50%", "100%"],
                None,
                vec![("percent-1", 5), ("percent-10", 45), ("percent-50-1", 50), ("percent-50-2", 150), ("percent-100", 250)],
            ),
        ];
        for (what, regions, order, max_share, expected) in cases {
            let waves = waves_of(fleet(regions), policy(order, max_share));
            assert_eq!(shape(&waves), expected, "{what}");
            assert!(
                waves.iter().all(|w| w.bake == Seconds(300) && w.deploy_timeout == Seconds(900)),
                "{what}: the policy's bake and timeout"
            );
        }
        let waves = waves_of(fleet(six_regions), policy(GROWING, share_of("region", 50)));
        assert_eq!(waves[0].targets, ["r1-a1-t1"], "the catalog's first target comes first");
        assert!(waves[3].targets.iter().filter(|t| t.starts_with("r2-")).all(|t| t.starts_with("r2-a1-")), "half of r2: its first zone");
    }

    #[test]
    fn targets_are_kept_together_by_label_in_the_order_the_catalog_names_them() {
        let targets = vec![
            target("b1", &[("region", "eu"), ("az", "eu-b")]),
            target("a1", &[("region", "us"), ("az", "us-a")]),
            target("b2", &[("region", "eu"), ("az", "eu-a")]),
            target("a2", &[("region", "us"), ("az", "us-a")]),
            target("b3", &[("region", "eu"), ("az", "eu-b")]),
        ];
        let waves = waves_of(targets, policy(GROWING, None));
        let listed: Vec<(&str, Vec<&str>)> =
            waves.iter().map(|w| (w.name.as_str(), w.targets.iter().map(String::as_str).collect())).collect();
        assert_eq!(listed, [("one", vec!["b1"]), ("az", vec!["b3"]), ("region", vec!["b2"]), ("rest", vec!["a1", "a2"])]);
    }

    #[test]
    fn topologies_that_cannot_satisfy_their_policy_are_refused_saying_why() {
        let mut unlabeled = fleet(&[&[2]]);
        unlabeled[1].labels.remove("az");
        let mut twice = fleet(&[&[2]]);
        twice[1].name = twice[0].name.clone();
        // (what, targets, order, max-share, path, words of the message)
        type Case<'a> = (&'a str, Vec<LabeledTarget>, &'a [&'a str], Option<MaxShare>, &'a str, &'a [&'a str]);
        let cases: Vec<Case> = vec![
            (
                "a region too small for its share",
                fleet(&[&[2, 2], &[1]]),
                GROWING,
                share_of("region", 50),
                "waves.max-share.region",
                &["region `r2` has 1 target", "holds 100%", "max-share of 50%"],
            ),
            (
                "every label bounded: a zone of 3 at 30%",
                fleet(&[&[4, 3]]),
                GROWING,
                Some(MaxShare::Every(Percent(3000))),
                "waves.max-share",
                &["az `r1-a2` has 3 targets", "holds 33.33%", "max-share of 30%"],
            ),
            (
                "a share of a label nobody carries",
                fleet(&[&[2]]),
                GROWING,
                share_of("cell", 50),
                "waves.max-share.cell",
                &["no target carries a label `cell`", "`az`, `region`"],
            ),
            (
                "an order naming a label nobody carries",
                fleet(&[&[2]]),
                &["one", "zone", "rest"],
                None,
                "waves.order[1]",
                &["no target carries a label `zone`"],
            ),
            ("a target without a label the others carry", unlabeled, GROWING, None, "targets[1]", &["`r1-a1-t2` has no `az` label"]),
            ("a target named twice", twice, GROWING, None, "targets[1].name", &["already targets[0]"]),
            ("no targets", Vec::new(), GROWING, None, "targets", &["at least one target"]),
            ("shares not reaching 100%", fleet(&[&[2]]), &["1%", "50%"], None, "waves.order[1]", &["last share to be 100%", "found 50%"]),
            ("shares going down", fleet(&[&[2]]), &["10%", "5%", "100%"], None, "waves.order[1]", &["above the one before"]),
            ("steps and shares mixed", fleet(&[&[2]]), &["one", "50%", "100%"], None, "waves.order[1]", &["mixes"]),
            ("`rest` before the end", fleet(&[&[2]]), &["one", "rest", "az"], None, "waves.order[1]", &["comes last"]),
            ("an order not ending with `rest`", fleet(&[&[2]]), &["one", "az"], None, "waves.order[1]", &["end with `rest`"]),
            ("no step", fleet(&[&[2]]), &[], None, "waves.order", &["at least one step"]),
        ];
        for (what, targets, order, max_share, path, words) in cases {
            let refusal = compute(&Topology { targets, policy: policy(order, max_share) }).unwrap_err();
            assert_eq!(refusal.path, path, "{what}");
            for word in words {
                assert!(refusal.message.contains(word), "{what}: `{}` says {word}", refusal.message);
            }
        }
    }

    /// Topologies of 1 to 6 regions, 1 to 4 zones each, 1 to 8 targets a zone, two cells a zone,
    /// listed in any order.
    fn topologies() -> impl Strategy<Value = Vec<LabeledTarget>> {
        prop::collection::vec(prop::collection::vec(1usize..=8, 1..=4), 1..=6).prop_flat_map(|regions| {
            let mut targets = Vec::new();
            for (r, zones) in regions.iter().enumerate() {
                for (a, &size) in zones.iter().enumerate() {
                    let (region, az) = (format!("r{r}"), format!("r{r}-a{a}"));
                    for t in 0..size {
                        let cell = format!("{az}-c{}", t % 2);
                        targets.push(target(&format!("{az}-t{t}"), &[("region", &region), ("az", &az), ("cell", &cell)]));
                    }
                }
            }
            Just(targets).prop_shuffle()
        })
    }

    fn policies() -> impl Strategy<Value = WavePolicy> {
        let orders: &[&[&str]] = &[
            GROWING,
            &["one", "rest"],
            &["one", "region", "rest"],
            &["az", "rest"],
            &["one", "cell", "az", "region", "rest"],
            &["1%", "10%", "50%", "100%"],
            &["25%", "100%"],
            &["rest"],
        ];
        let share = prop::sample::select(vec![1000u32, 2500, 3400, 5000, 10_000]).prop_map(Percent);
        let max_share = prop_oneof![
            Just(None),
            share.clone().prop_map(|s| Some(MaxShare::Every(s))),
            (prop::sample::select(vec!["region", "az", "cell"]), share)
                .prop_map(|(l, s)| Some(MaxShare::Labels([(l.to_owned(), s)].into()))),
        ];
        (prop::sample::select(orders.to_vec()), max_share).prop_map(|(order, max_share)| policy(order, max_share))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Every rule, on any topology: each target in exactly one wave, the first wave one target
        /// when the order starts with `one`, no two regions in a wave before a region is done, no
        /// wave above the share of any domain, a label's wave within one domain of it, shares
        /// reached step by step, valid unique names, the same waves every time; or a refusal
        /// naming a domain whose share is less than one target.
        #[test]
        fn computed_waves_keep_every_rule(targets in topologies(), policy in policies()) {
            let topology = Topology { targets: targets.clone(), policy: policy.clone() };
            let label_of = |name: &str, label: &str| targets.iter().find(|t| t.name == name).unwrap().labels[label].clone();
            let size_of = |label: &str, domain: &str| targets.iter().filter(|t| t.labels[label] == domain).count();
            let waves = match compute(&topology) {
                Ok(waves) => waves,
                Err(refusal) => {
                    let bound = policy.max_share.as_ref().expect("only a share can refuse these topologies");
                    let too_small = ["region", "az", "cell"].iter().any(|label| bound.of(label).is_some_and(|share| {
                        targets.iter().any(|t| share.floor_of(size_of(label, &t.labels[*label])) == 0 && refusal.message.contains(&format!("{label} `{}`", t.labels[*label])))
                    }));
                    prop_assert!(too_small, "refused without a domain too small for its share: {:?}", refusal);
                    return Ok(());
                }
            };
            prop_assert_eq!(&compute(&topology).unwrap(), &waves);
            let mut seen: Vec<&str> = waves.iter().flat_map(|w| w.targets.iter().map(String::as_str)).collect();
            seen.sort_unstable();
            let mut all: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
            all.sort_unstable();
            prop_assert_eq!(seen, all, "each target in exactly one wave");
            prop_assert!(waves.iter().all(|w| !w.targets.is_empty()));
            if policy.order[0] == Step::One {
                prop_assert_eq!(waves[0].targets.len(), 1, "the first wave is one target");
            }
            let mut names: Vec<&str> = waves.iter().map(|w| w.name.as_str()).collect();
            prop_assert!(names.iter().all(|n| NAME.check(n).is_ok()));
            names.sort_unstable();
            names.dedup();
            prop_assert_eq!(names.len(), waves.len(), "wave names are unique");
            let mut deployed: Vec<&str> = Vec::new();
            for wave in &waves {
                let regions: BTreeSet<String> = wave.targets.iter().map(|t| label_of(t, "region")).collect();
                if regions.len() > 1 {
                    let region_done = targets.iter().map(|t| &t.labels["region"]).any(|region| {
                        targets.iter().filter(|t| &t.labels["region"] == region).all(|t| deployed.contains(&t.name.as_str()))
                    });
                    prop_assert!(region_done, "wave `{}` holds {:?} before any region is done", wave.name, regions);
                }
                for label in ["region", "az", "cell"] {
                    let Some(share) = policy.max_share.as_ref().and_then(|m| m.of(label)) else { continue };
                    let mut held: BTreeMap<String, usize> = BTreeMap::new();
                    wave.targets.iter().for_each(|t| *held.entry(label_of(t, label)).or_default() += 1);
                    for (domain, count) in held {
                        prop_assert!(count <= share.floor_of(size_of(label, &domain)), "wave `{}` holds {count} of {label} `{domain}`, above {share}", wave.name);
                    }
                }
                let step = wave.name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
                if ["region", "az", "cell"].contains(&step) {
                    let domains: BTreeSet<String> = wave.targets.iter().map(|t| label_of(t, step)).collect();
                    prop_assert_eq!(domains.len(), 1, "wave `{}` stays within one {}", &wave.name, step);
                }
                prop_assert_eq!((wave.bake, wave.deploy_timeout), (policy.bake, policy.deploy_timeout));
                deployed.extend(wave.targets.iter().map(String::as_str));
                for step in &policy.order {
                    let Step::Share(share) = step else { continue };
                    let name = step_name(step);
                    let last_of_step = waves.iter().rposition(|w| w.name == name || w.name.strip_prefix(&format!("{name}-")).is_some_and(|n| n.parse::<usize>().is_ok()));
                    if last_of_step.is_some_and(|i| waves[i].name == wave.name) {
                        prop_assert_eq!(deployed.len(), share.ceil_of(targets.len()), "after the waves of {}", share);
                    }
                }
            }
        }
    }
}

//! When a wave has reached all of its targets.

use crate::flow::WavePlan;
use crate::release::{EventKind, Stage, StageEvent};

/// A wave is deployed once every one of its targets has a deploy that succeeded in the
/// release's timeline (targets deploy in parallel, so each finishing one asks).
pub fn all_targets_deployed(wave: &WavePlan, timeline: &[StageEvent]) -> bool {
    wave.targets.iter().all(|target| {
        timeline.iter().any(|event| {
            event.stage == Stage::Deploy
                && event.kind == EventKind::Succeeded
                && event.wave.as_deref() == Some(wave.name.as_str())
                && event.target.as_ref() == Some(target)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::ReleaseId;
    use crate::rules::fixtures::t0;

    fn event(stage: Stage, kind: EventKind, wave: &str, target: &str) -> StageEvent {
        StageEvent {
            release_id: ReleaseId("rel-1".into()),
            at: t0(),
            stage,
            wave: Some(wave.into()),
            target: Some(target.into()),
            kind,
            message: String::new(),
        }
    }

    #[test]
    fn a_wave_is_deployed_when_each_target_succeeded_in_it() {
        let wave = WavePlan { index: 1, total: 2, name: "rest".into(), targets: vec!["b".into(), "c".into()], bake_seconds: 0 };
        let ok = |target| event(Stage::Deploy, EventKind::Succeeded, "rest", target);
        let cases: Vec<(Vec<StageEvent>, bool)> = vec![
            (vec![], false),
            (vec![ok("b")], false),
            (vec![ok("b"), ok("c")], true),
            (vec![ok("c"), event(Stage::Deploy, EventKind::Started, "rest", "b"), ok("b")], true),
            (vec![ok("b"), event(Stage::Deploy, EventKind::Failed, "rest", "c")], false),
            // A target of the same name in another wave, or a rollback of it, does not count.
            (vec![ok("b"), event(Stage::Deploy, EventKind::Succeeded, "canary", "c")], false),
            (vec![ok("b"), event(Stage::Rollback, EventKind::Succeeded, "rest", "c")], false),
        ];
        for (timeline, expected) in cases {
            assert_eq!(all_targets_deployed(&wave, &timeline), expected, "{timeline:#?}");
        }
    }
}

//! Notifiers, and what they say about a release: the same facts rendered as one console line
//! or as a Slack Block Kit message; and the pagers that wake the on-call when someone must act.

pub(crate) mod console;
pub(crate) mod pager;
pub(crate) mod slack;
pub(crate) mod slack_directory;
pub(crate) mod slack_interactions;

use baton_domain::ports::Notification;
use baton_domain::release::{Release, Via, WaveRecord, WaveStatus};
use baton_domain::rules::approval;

/// "abc1234 on main", or just the branch before the commit is known.
fn commit(release: &Release) -> String {
    let sha = release.sha.as_deref().or(release.artifact.as_ref().map(|artifact| artifact.sha.as_str()));
    match sha {
        Some(sha) => format!("{} on {}", sha.get(..7).unwrap_or(sha), release.branch),
        None => release.branch.clone(),
    }
}

fn wave_line(wave: &WaveRecord) -> String {
    format!("{} {}", wave.name, WaveStatus::as_str(wave.status))
}

/// The whole notification on one line, for a terminal or a log file.
pub(crate) fn console_line(notification: &Notification) -> String {
    let release = &notification.release;
    let mut parts = vec![
        format!("{} {} [{}]: {}", release.id, release.service, release.environment, notification.headline),
        format!("{} ({})", release.status, commit(release)),
    ];
    if !release.waves.is_empty() {
        parts.push(format!("waves: {}", release.waves.iter().map(wave_line).collect::<Vec<_>>().join(", ")));
    }
    if let Some(action) = &notification.action_needed {
        parts.push(format!("action needed: {action}"));
    }
    if !notification.links.is_empty() {
        let links = notification.links.iter().map(|(label, url)| format!("{label}: {url}"));
        parts.push(links.collect::<Vec<_>>().join(", "));
    }
    // Headlines and failure reasons may hold command output: keep it to one line.
    parts.join(" | ").replace(['\r', '\n'], " ")
}

/// Slack limits a text object to 3000 characters.
const SLACK_TEXT_LIMIT: usize = 3000;

/// `&`, `<` and `>` are Slack's control characters; everything else is sent as is.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn truncate(text: String) -> String {
    match text.char_indices().nth(SLACK_TEXT_LIMIT - 1) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn mrkdwn(text: String) -> serde_json::Value {
    serde_json::json!({ "type": "mrkdwn", "text": truncate(text) })
}

fn wave_emoji(status: WaveStatus) -> &'static str {
    match status {
        WaveStatus::Pending => ":white_circle:",
        WaveStatus::Deploying => ":arrows_counterclockwise:",
        WaveStatus::Baking => ":hourglass_flowing_sand:",
        WaveStatus::Healthy => ":white_check_mark:",
        WaveStatus::Unhealthy => ":warning:",
        WaveStatus::Failed => ":x:",
        WaveStatus::RolledBack => ":rewind:",
    }
}

/// The `action_id`s of the release message's approval buttons; their `value` is the release id.
pub const APPROVE_ACTION: &str = "baton-approve";
pub const REJECT_ACTION: &str = "baton-reject";

/// Who answered each approval (never the token), and, while one waits, its Approve / Reject
/// buttons: Slack sends a press to the interactions function.
fn approval_blocks(release: &Release) -> Vec<serde_json::Value> {
    let mut blocks = Vec::new();
    let answered: Vec<String> = release
        .approvals
        .iter()
        .filter_map(|approval| approval.decision.as_ref().map(|decision| (approval, decision)))
        .map(|(approval, decision)| {
            let line = approval::describe(&approval.wave, decision);
            let who = decision.by.as_deref().filter(|_| decision.via == Via::Slack).map(|by| format!(" ({})", mention(by)));
            format!(":ballot_box_with_check: {}{}", escape(&line), who.unwrap_or_default())
        })
        .collect();
    if !answered.is_empty() {
        blocks.push(serde_json::json!({ "type": "context", "elements": [mrkdwn(answered.join("\n"))] }));
    }
    if let Some(pending) = release.pending_approval() {
        let button = |text: &str, action: &str, style: &str| {
            serde_json::json!({
                "type": "button",
                "text": { "type": "plain_text", "text": text },
                "action_id": action,
                "value": release.id.as_str(),
                "style": style,
            })
        };
        blocks.push(serde_json::json!({
            "type": "section",
            "text": mrkdwn(format!(
                ":raised_hand: *Wave {} waits for approval* until {}",
                escape(&pending.wave),
                pending.deadline.format("%Y-%m-%d %H:%M UTC")
            )),
        }));
        blocks.push(serde_json::json!({
            "type": "actions",
            "block_id": format!("baton-approval-{}", escape(&pending.wave)),
            "elements": [button("Approve", APPROVE_ACTION, "primary"), button("Reject", REJECT_ACTION, "danger")],
        }));
    }
    blocks
}

/// How a message names a person or a group. A Slack user-group id (`S…`, what Slack shows
/// under a group's "Copy group ID") becomes a group mention, which notifies its members; a user id
/// (`U…`, `W…`) a user mention; anything else `@name` as plain text, since Slack does not turn
/// names into mentions in messages sent through the API.
pub(crate) fn mention(name: &str) -> String {
    let is_id = |prefixes: &[char]| {
        name.len() >= 9 && name.starts_with(prefixes) && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    };
    if is_id(&['S']) {
        format!("<!subteam^{name}>")
    } else if is_id(&['U', 'W']) {
        format!("<@{name}>")
    } else {
        format!("@{}", escape(name.trim_start_matches('@')))
    }
}

/// The fallback `text` (shown in notifications) and the Block Kit `blocks` of a release message.
pub(crate) fn slack_message(notification: &Notification) -> serde_json::Value {
    let release = &notification.release;
    let mut blocks = vec![
        serde_json::json!({ "type": "section", "text": mrkdwn(format!("*{}*", escape(&notification.headline))) }),
        serde_json::json!({ "type": "context", "elements": [mrkdwn(escape(&format!(
            "{} → {} · {} · {} · {}",
            release.service,
            release.environment,
            release.status,
            commit(release),
            release.id
        )))] }),
    ];
    if !release.waves.is_empty() {
        let lines = release.waves.iter().map(|wave| {
            let mut line = format!(
                "{} *{}* {} · {}",
                wave_emoji(wave.status),
                escape(&wave.name),
                WaveStatus::as_str(wave.status),
                escape(&wave.targets.join(", "))
            );
            // What each gate saw last: on a failed wave, the reason; on a baking one, the progress.
            for gate in &wave.gates {
                let saw = gate.last.as_deref().unwrap_or("not sampled yet");
                line.push_str(&format!("\n      _{}_: {}", escape(&gate.gate), escape(saw)));
            }
            line
        });
        blocks.push(serde_json::json!({ "type": "section", "text": mrkdwn(lines.collect::<Vec<_>>().join("\n")) }));
    }
    if let Some(reason) = &release.trigger.freeze_override {
        let who = release.trigger.actor.as_deref().unwrap_or("an unnamed sender");
        let line = format!(":snowflake: *Freeze overridden* by {}: {}", escape(who), escape(reason));
        blocks.push(serde_json::json!({ "type": "section", "text": mrkdwn(line) }));
    }
    if let Some(action) = &notification.action_needed {
        blocks.push(
            serde_json::json!({ "type": "section", "text": mrkdwn(format!(":rotating_light: *Action needed:* {}", escape(action))) }),
        );
    }
    blocks.extend(approval_blocks(release));
    if !notification.links.is_empty() {
        let links = notification.links.iter().map(|(label, url)| format!("<{}|{}>", escape(url).replace('|', "%7C"), escape(label)));
        blocks.push(serde_json::json!({ "type": "context", "elements": [mrkdwn(links.collect::<Vec<_>>().join(" · "))] }));
    }
    let text = format!("{} · {} → {}", notification.headline, release.service, release.environment);
    serde_json::json!({ "text": truncate(escape(&text)), "blocks": blocks })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use baton_domain::release::{Artifact, GateRecord, ReleaseStatus, Stage, Trigger, TriggerKind};

    /// A release in its second wave, with links and something to do.
    pub fn notification() -> Notification {
        let wave = |name: &str, status| WaveRecord {
            name: name.into(),
            targets: vec![format!("{name}-1"), format!("{name}-2")],
            status,
            started_at: None,
            finished_at: None,
            deploy_url: None,
            deploys: Vec::new(),
            bake_started_at: None,
            gates: Vec::new(),
        };
        Notification {
            release: Release {
                id: crate::test_support::release_id(),
                service: "web".into(),
                environment: "production".into(),
                status: ReleaseStatus::Running,
                stage: Stage::Deploy,
                trigger: Trigger::new(TriggerKind::Merge, "pr-42".into(), None),
                branch: "main".into(),
                sha: Some("0123456789abcdef".into()),
                changed_at: None,
                artifact: Some(Artifact {
                    reference: "web:2".into(),
                    sha: "0123456789abcdef".into(),
                    branch: "main".into(),
                    build_url: None,
                }),
                build: None,
                previous_artifact: None,
                waves: vec![wave("canary", WaveStatus::Healthy), wave("eu", WaveStatus::Unhealthy), wave("us", WaveStatus::Pending)],
                created_at: chrono::DateTime::UNIX_EPOCH,
                heartbeat_at: None,
                started_at: None,
                finished_at: None,
                failure: None,
                execution: None,
                cancel_requested: None,
                approvals: Vec::new(),
                changes: None,
                cost: None,
                notifier_state: Default::default(),
                version: 0,
            },
            headline: "Wave eu unhealthy (2/3) & rolling back".into(),
            action_needed: Some("Check <eu> dashboards\nbefore retrying".into()),
            links: vec![("build".into(), "http://ci.local/build/7?a=1&b=2".into()), ("deploy".into(), "http://cd.local/web".into())],
        }
    }

    #[test]
    fn the_console_line_says_everything_on_one_line() {
        assert_eq!(
            console_line(&notification()),
            "rel-web-20260101120000-0123abcd web [production]: Wave eu unhealthy (2/3) & rolling back | running (0123456 on main) \
             | waves: canary healthy, eu unhealthy, us pending | action needed: Check <eu> dashboards before retrying \
             | build: http://ci.local/build/7?a=1&b=2, deploy: http://cd.local/web"
        );
    }

    #[test]
    fn a_freeze_override_is_shown_with_who_and_why() {
        let mut hotfix = notification();
        hotfix.release.trigger.actor = Some("ada".into());
        hotfix.release.trigger.freeze_override = Some("INC-42 <payments>".into());
        let text = slack_message(&hotfix).to_string();
        assert!(text.contains("*Freeze overridden* by ada: INC-42 &lt;payments&gt;"), "{text}");
        assert!(!slack_message(&notification()).to_string().contains("Freeze overridden"));
    }

    #[test]
    fn slack_messages_escape_control_characters_and_link_the_providers() {
        let message = slack_message(&notification());
        assert_eq!(message["text"], "Wave eu unhealthy (2/3) &amp; rolling back · web → production");
        let blocks = message["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["text"]["text"], "*Wave eu unhealthy (2/3) &amp; rolling back*");
        assert_eq!(blocks[1]["elements"][0]["text"], "web → production · running · 0123456 on main · rel-web-20260101120000-0123abcd");
        assert_eq!(
            blocks[2]["text"]["text"],
            ":white_check_mark: *canary* healthy · canary-1, canary-2\n:warning: *eu* unhealthy · eu-1, eu-2\n:white_circle: *us* pending · us-1, us-2"
        );
        assert_eq!(blocks[3]["text"]["text"], ":rotating_light: *Action needed:* Check &lt;eu&gt; dashboards\nbefore retrying");
        assert_eq!(blocks[4]["elements"][0]["text"], "<http://ci.local/build/7?a=1&amp;b=2|build> · <http://cd.local/web|deploy>");
    }

    #[test]
    fn each_wave_shows_what_its_gates_saw_last() {
        let mut failed = notification();
        failed.release.waves[1].gates = vec![
            GateRecord {
                gate: "CloudWatch alarms eu-5xx".into(),
                samples: 4,
                unhealthy_in_a_row: 1,
                last: Some("eu-5xx ALARM (Threshold Crossed: 1 datapoint > 5)".into()),
                ..GateRecord::default()
            },
            GateRecord { gate: "HTTP <https://eu/health>".into(), samples: 4, ..GateRecord::default() },
        ];
        let message = slack_message(&failed);
        let waves = message["blocks"][2]["text"]["text"].as_str().unwrap();
        assert!(
            waves.contains(
                ":warning: *eu* unhealthy · eu-1, eu-2\n      _CloudWatch alarms eu-5xx_: eu-5xx ALARM (Threshold Crossed: 1 datapoint &gt; 5)\n      _HTTP &lt;https://eu/health&gt;_: not sampled yet\n:white_circle: *us*"
            ),
            "{waves}"
        );
    }

    #[test]
    fn long_texts_are_cut_to_slacks_limit() {
        let mut long = notification();
        long.action_needed = Some("é".repeat(5000));
        let message = slack_message(&long);
        let action = message["blocks"][3]["text"]["text"].as_str().unwrap();
        assert_eq!(action.chars().count(), SLACK_TEXT_LIMIT);
        assert!(action.ends_with("é…"));
    }
}

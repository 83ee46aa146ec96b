//! Slack's interactivity requests (a press on the release message's Approve / Reject buttons),
//! verified as Slack documents request signing: `X-Slack-Signature` is `v0=` and the hex
//! HMAC-SHA256, under the app's signing secret, of `v0:{X-Slack-Request-Timestamp}:{body}`.
//! A timestamp more than 5 minutes from now is refused, and so is a signature seen before
//! (a replay) within that window.

use super::{APPROVE_ACTION, REJECT_ACTION};
use baton_domain::ports::{InboundInteractions, InboundRefused, InboundRequest, Interaction};
use baton_domain::release::{ReleaseId, Verdict};
use baton_domain::rules::approval::Person;
use baton_domain::signing::hmac_sha256_matches;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::VecDeque;
use std::sync::Mutex;

/// How far a request's timestamp may be from now, either way.
pub const SLACK_MAX_AGE_SECONDS: i64 = 5 * 60;

pub struct SlackInteractions {
    signing_secret: Vec<u8>,
    /// Signatures accepted within the last [`SLACK_MAX_AGE_SECONDS`], oldest first, with their
    /// timestamps: a replay inside the window is refused here, one outside it by its age.
    seen: Mutex<VecDeque<(i64, String)>>,
}

impl SlackInteractions {
    pub fn new(signing_secret: impl Into<Vec<u8>>) -> Result<SlackInteractions, String> {
        let signing_secret = signing_secret.into();
        if signing_secret.is_empty() {
            return Err("the Slack signing secret is empty".into());
        }
        Ok(SlackInteractions { signing_secret, seen: Mutex::new(VecDeque::new()) })
    }

    /// Remembers `signature`; false when it was already seen within the window.
    fn first_sight(&self, timestamp: i64, signature: &str, now: i64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while seen.front().is_some_and(|(at, _)| now - at > SLACK_MAX_AGE_SECONDS) {
            seen.pop_front();
        }
        if seen.iter().any(|(_, known)| known == signature) {
            return false;
        }
        seen.push_back((timestamp, signature.to_owned()));
        true
    }
}

impl std::fmt::Debug for SlackInteractions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlackInteractions(..)")
    }
}

/// The parts of a `block_actions` payload an approval needs.
#[derive(Deserialize)]
struct BlockActions {
    #[serde(rename = "type")]
    kind: String,
    user: SlackUser,
    #[serde(default)]
    actions: Vec<Action>,
    #[serde(default)]
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct SlackUser {
    id: String,
}

#[derive(Deserialize)]
struct Action {
    action_id: String,
    #[serde(default)]
    value: Option<String>,
}

impl InboundInteractions for SlackInteractions {
    fn verify(&self, request: &InboundRequest, now: DateTime<Utc>) -> Result<Interaction, InboundRefused> {
        let refuse = |why: &str| InboundRefused::Unauthenticated(why.to_owned());
        let timestamp_text =
            request.header("x-slack-request-timestamp").ok_or_else(|| refuse("missing X-Slack-Request-Timestamp header"))?;
        let timestamp: i64 = timestamp_text.trim().parse().map_err(|_| refuse("X-Slack-Request-Timestamp is not a Unix time"))?;
        if (now.timestamp() - timestamp).abs() > SLACK_MAX_AGE_SECONDS {
            return Err(refuse("X-Slack-Request-Timestamp is more than 5 minutes from now (stale or replayed)"));
        }
        let signature = request.header("x-slack-signature").ok_or_else(|| refuse("missing X-Slack-Signature header"))?;
        let hex = signature.trim().strip_prefix("v0=").ok_or_else(|| refuse("X-Slack-Signature is not a v0 signature"))?;
        let signed: [&[u8]; 4] = [b"v0:", timestamp_text.trim().as_bytes(), b":", &request.body];
        if !hmac_sha256_matches(&self.signing_secret, &signed, hex) {
            return Err(refuse("X-Slack-Signature does not match the request"));
        }
        if !self.first_sight(timestamp, hex, now.timestamp()) {
            return Err(refuse("this request was already received (a replay)"));
        }
        interaction(&request.body)
    }
}

/// What a signed body asks: the form field `payload`, a `block_actions` press on one of Baton's buttons.
fn interaction(body: &[u8]) -> Result<Interaction, InboundRefused> {
    let malformed = |why: &str| InboundRefused::Malformed(why.to_owned());
    let payload = form_urlencoded::parse(body)
        .find(|(name, _)| name == "payload")
        .map(|(_, value)| value.into_owned())
        .ok_or_else(|| malformed("no `payload` form field"))?;
    let actions: BlockActions = serde_json::from_str(&payload).map_err(|_| malformed("`payload` is not a block_actions payload"))?;
    if actions.kind != "block_actions" {
        return Err(malformed("not a block_actions payload"));
    }
    let action = actions.actions.first().ok_or_else(|| malformed("no action in the payload"))?;
    let verdict = match action.action_id.as_str() {
        APPROVE_ACTION => Verdict::Granted,
        REJECT_ACTION => Verdict::Rejected,
        _ => return Err(malformed("not one of Baton's approval buttons")),
    };
    let release = action.value.clone().filter(|value| !value.is_empty()).ok_or_else(|| malformed("the button names no release"))?;
    Ok(Interaction {
        release: ReleaseId(release),
        verdict,
        person: Person::new(actions.user.id),
        reason: None,
        respond_to: actions.response_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_domain::signing::hmac_sha256_hex;

    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    fn body(action: &str) -> Vec<u8> {
        let payload = serde_json::json!({
            "type": "block_actions",
            "user": {"id": "U0ANN", "username": "ann"},
            "actions": [{"action_id": action, "value": "rel-web-1", "type": "button"}],
            "response_url": "https://hooks.slack.com/actions/T1/1/x",
        });
        form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload.to_string()).finish().into_bytes()
    }

    fn signed(body: &[u8], timestamp: i64, secret: &[u8]) -> InboundRequest {
        let signature = hmac_sha256_hex(secret, &[b"v0:", timestamp.to_string().as_bytes(), b":", body]);
        InboundRequest {
            path: String::new(),
            headers: vec![
                ("x-slack-request-timestamp".into(), timestamp.to_string()),
                ("x-slack-signature".into(), format!("v0={signature}")),
            ],
            body: body.to_vec(),
        }
    }

    #[test]
    fn a_signed_fresh_press_is_read() {
        let slack = SlackInteractions::new(SECRET).unwrap();
        let got = slack.verify(&signed(&body(REJECT_ACTION), 1_000, SECRET), at(1_010)).unwrap();
        assert_eq!((got.release.as_str(), got.verdict, got.person.id.as_str()), ("rel-web-1", Verdict::Rejected, "U0ANN"));
        assert_eq!(got.respond_to.as_deref(), Some("https://hooks.slack.com/actions/T1/1/x"));
    }

    #[test]
    fn bad_stale_replayed_or_unsigned_requests_are_refused() {
        let slack = SlackInteractions::new(SECRET).unwrap();
        let good = signed(&body(APPROVE_ACTION), 1_000, SECRET);
        let mut tampered = good.clone();
        tampered.body = body(REJECT_ACTION);
        let mut unsigned = good.clone();
        unsigned.headers.retain(|(name, _)| name != "x-slack-signature");
        let cases = [
            ("another secret", signed(&body(APPROVE_ACTION), 1_000, b"not the secret"), 1_000, "does not match"),
            ("a body changed after signing", tampered, 1_000, "does not match"),
            ("no signature", unsigned, 1_000, "missing X-Slack-Signature"),
            ("older than 5 minutes", good.clone(), 1_000 + 301, "more than 5 minutes"),
            ("from the future", good.clone(), 1_000 - 301, "more than 5 minutes"),
        ];
        for (name, request, now, expected) in cases {
            let refused = slack.verify(&request, at(now)).expect_err(name);
            assert!(matches!(&refused, InboundRefused::Unauthenticated(why) if why.contains(expected)), "{name}: {refused}");
        }
        slack.verify(&good, at(1_000)).expect("the first sight of a good request");
        let replayed = slack.verify(&good, at(1_100)).unwrap_err();
        assert!(replayed.to_string().contains("a replay"), "{replayed}");
    }

    #[test]
    fn signed_requests_that_are_not_a_baton_button_are_malformed() {
        let slack = SlackInteractions::new(SECRET).unwrap();
        let form = |payload: &str| form_urlencoded::Serializer::new(String::new()).append_pair("payload", payload).finish().into_bytes();
        let other_button = String::from_utf8(body("someone-elses")).unwrap();
        let cases = [
            (b"token=x".to_vec(), "no `payload`"),
            (form("{}"), "not a block_actions payload"),
            (form(r#"{"type": "view_submission", "user": {"id": "U1"}}"#), "not a block_actions"),
            (other_button.into_bytes(), "not one of Baton's approval buttons"),
        ];
        for (n, (body, expected)) in cases.into_iter().enumerate() {
            let refused = slack.verify(&signed(&body, 2_000 + n as i64, SECRET), at(2_000)).unwrap_err();
            assert!(matches!(&refused, InboundRefused::Malformed(why) if why.contains(expected)), "{refused}");
        }
    }
}

//! Approval gates: what a wave's request for approval records, who may answer it, and what the
//! deadline does. The handlers (notify, interactions) and `baton approve` read the record, call
//! these, and write the record.

use crate::catalog::ApprovalSpec;
use crate::release::{Approval, ApprovalDecision, Release, TaskToken, Verdict, Via};
use crate::rules::deadline_after;
use chrono::{DateTime, Utc};

/// The person answering an approval, as the channel they answer through knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// A Slack user id, an IAM principal ARN, or a local user name.
    pub id: String,
    /// The Slack user groups the person belongs to (matched against group ids in `approvers`).
    pub groups: Vec<String>,
    /// The person's email as the chat tool knows it (Slack's profile), which four-eyes compares
    /// with the release's author too.
    pub email: Option<String>,
}

impl Person {
    pub fn new(id: impl Into<String>) -> Person {
        Person { id: id.into(), groups: Vec::new(), email: None }
    }

    /// Whether this person is `author` (a trigger's actor: a Slack id, a local user name, an
    /// email, an IAM principal ARN, a Git host login) under any identity they are known by: the
    /// id; the email, whole or its local part (a local user name); an assumed-role session's name
    /// (SSO sessions are named by email), as ARN or as the author's. Case does not matter in
    /// names and emails. Four-eyes errs on refusing: a namesake is taken for the author.
    pub fn is(&self, author: &str) -> bool {
        let author = session_name(author).unwrap_or(author);
        let mine = session_name(&self.id).unwrap_or(&self.id);
        if mine.eq_ignore_ascii_case(author) {
            return true;
        }
        self.email.as_deref().is_some_and(|email| {
            let local = email.split('@').next().unwrap_or(email);
            email.eq_ignore_ascii_case(author) || local.eq_ignore_ascii_case(author)
        })
    }
}

/// The session name of an assumed-role ARN (`arn:aws:sts::A:assumed-role/R/S`).
fn session_name(principal: &str) -> Option<&str> {
    let resource = principal.strip_prefix("arn:")?.splitn(5, ':').nth(4)?;
    resource.strip_prefix("assumed-role/")?.split('/').nth(1)
}

/// Why an answer changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("release {0} waits for no approval")]
    NothingPending(String),
    #[error("the approval of wave {wave} expired at {deadline}")]
    Expired { wave: String, deadline: DateTime<Utc> },
    #[error("{person} is not among the approvers of wave {wave} ({approvers})")]
    NotAnApprover { person: String, wave: String, approvers: String },
    #[error("{person} started this release and wave {wave} needs a second person (four-eyes)")]
    Author { person: String, wave: String },
}

/// Records that the wave `wave` waits for approval under `token`: a new request, or the same
/// one asked again (a retried or resumed task) with its new token. An answer already recorded
/// for it stays and is marked undelivered, so the waiting task hears it again.
pub fn request(release: &mut Release, wave: &str, spec: &ApprovalSpec, token: TaskToken, now: DateTime<Utc>) {
    if let Some(approval) = release.approvals.iter_mut().rev().find(|approval| approval.wave == wave) {
        approval.token = Some(token);
        if let Some(decision) = &mut approval.decision {
            decision.delivered = false;
        }
        return;
    }
    release.approvals.push(Approval {
        wave: wave.to_owned(),
        requested_at: now,
        deadline: deadline_after(now, spec.timeout.0),
        approvers: spec.approvers.clone(),
        four_eyes: spec.four_eyes,
        token: Some(token),
        decision: None,
    });
}

/// Whether `person` is one of `approvers`: by id, by one of their groups, or, for an IAM
/// role's session (`arn:aws:sts::A:assumed-role/R/S`), by the role (`arn:aws:iam::A:role/R`).
pub fn is_approver(approvers: &[String], person: &Person) -> bool {
    let role = assumed_role(&person.id);
    approvers.iter().any(|approver| {
        *approver == person.id || person.groups.iter().any(|group| group == approver) || role.as_deref() == Some(approver.as_str())
    })
}

/// Whether an approver names a Slack user group (`S` and upper-case letters and digits, as
/// Slack's ids are), whose members only Slack knows.
pub fn is_user_group(approver: &str) -> bool {
    approver.len() > 1 && approver.starts_with('S') && approver.bytes().all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit())
}

/// The role ARN of an assumed-role session ARN.
fn assumed_role(principal: &str) -> Option<String> {
    let rest = principal.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let (partition, service, _region, account, resource) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let role = resource.strip_prefix("assumed-role/")?.split('/').next()?;
    (service == "sts").then(|| format!("arn:{partition}:iam::{account}:role/{role}"))
}

/// A person's answer to the release's pending approval, or why it changes nothing. `author` is
/// who started the release (the trigger's actor).
pub fn decide(
    release: &Release,
    person: &Person,
    verdict: Verdict,
    via: Via,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<ApprovalDecision, Refusal> {
    let approval = release.pending_approval().ok_or_else(|| Refusal::NothingPending(release.id.to_string()))?;
    if now > approval.deadline {
        return Err(Refusal::Expired { wave: approval.wave.clone(), deadline: approval.deadline });
    }
    if !is_approver(&approval.approvers, person) {
        let approvers = approval.approvers.join(", ");
        return Err(Refusal::NotAnApprover { person: person.id.clone(), wave: approval.wave.clone(), approvers });
    }
    if approval.four_eyes && release.trigger.actor.as_deref().is_some_and(|author| person.is(author)) {
        return Err(Refusal::Author { person: person.id.clone(), wave: approval.wave.clone() });
    }
    Ok(ApprovalDecision { verdict, by: Some(person.id.clone()), via, at: now, reason, delivered: false })
}

/// The deadline's answer to the wave's approval: recorded when nobody answered in time, or when
/// an answer came too late to reach the waiting task.
pub fn expire(release: &mut Release, wave: &str, now: DateTime<Utc>) {
    let Some(approval) = release.approvals.iter_mut().rev().find(|approval| approval.wave == wave) else { return };
    let undelivered = approval.decision.as_ref().is_none_or(|decision| !decision.delivered);
    if undelivered {
        approval.decision =
            Some(ApprovalDecision { verdict: Verdict::Expired, by: None, via: Via::Deadline, at: now, reason: None, delivered: true });
    }
    approval.token = None;
}

/// One line for the timeline, Slack and `baton show`: "approved by U1 via Slack: looks good".
pub fn describe(wave: &str, decision: &ApprovalDecision) -> String {
    let by = decision.by.as_deref().map(|by| format!(" by {by}")).unwrap_or_default();
    let why = decision.reason.as_deref().map(|why| format!(": {why}")).unwrap_or_default();
    match decision.verdict {
        Verdict::Expired => format!("approval of wave {wave} expired: nobody answered before its deadline"),
        verdict => format!("wave {wave} {}{by} via {}{why}", verdict.as_str(), decision.via.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Seconds;
    use crate::release::{ReleaseStatus, Trigger, TriggerKind};
    use crate::rules::fixtures::release;

    fn at(minute: u32) -> DateTime<Utc> {
        format!("2026-12-06T10:{minute:02}:00Z").parse().unwrap()
    }

    fn spec(four_eyes: bool) -> ApprovalSpec {
        ApprovalSpec {
            required: true,
            approvers: vec!["U1".into(), "S-RELEASERS".into(), "arn:aws:iam::123:role/Releaser".into()],
            timeout: Seconds(30 * 60),
            on_timeout: Default::default(),
            four_eyes,
        }
    }

    fn waiting(four_eyes: bool) -> Release {
        let mut release = release("rel-1", 0, ReleaseStatus::Running, None, false);
        release.trigger = Trigger::new(TriggerKind::Cli, "cli-1".into(), Some("U1".into()));
        request(&mut release, "prod", &spec(four_eyes), TaskToken("t-1".into()), at(0));
        release
    }

    fn person(id: &str, groups: &[&str]) -> Person {
        Person { id: id.into(), groups: groups.iter().map(|g| (*g).to_owned()).collect(), email: None }
    }

    #[test]
    fn who_may_answer_and_when() {
        // (case, four-eyes, who answers, at minute, Ok or a part of the refusal)
        type Case = (&'static str, bool, Person, u32, Result<(), &'static str>);
        let cases: &[Case] = &[
            ("an approver by id", false, person("U1", &[]), 5, Ok(())),
            ("a member of an approving group", false, person("U9", &["S-RELEASERS"]), 5, Ok(())),
            ("a session of an approving role", false, person("arn:aws:sts::123:assumed-role/Releaser/ann", &[]), 5, Ok(())),
            ("a session of another role", false, person("arn:aws:sts::123:assumed-role/Dev/ann", &[]), 5, Err("not among")),
            ("a stranger", false, person("U9", &["S-OTHERS"]), 5, Err("not among")),
            ("the author under four-eyes", true, person("U1", &[]), 5, Err("four-eyes")),
            ("another approver under four-eyes", true, person("U9", &["S-RELEASERS"]), 5, Ok(())),
            ("on the deadline", false, person("U1", &[]), 30, Ok(())),
            ("after the deadline", false, person("U1", &[]), 31, Err("expired")),
        ];
        for (name, four_eyes, who, minute, expected) in cases {
            let decided = decide(&waiting(*four_eyes), who, Verdict::Granted, Via::Slack, None, at(*minute));
            match (expected, decided) {
                (Ok(()), Ok(decision)) => assert_eq!(decision.by.as_deref(), Some(who.id.as_str()), "{name}"),
                (Err(part), Err(refusal)) => assert!(refusal.to_string().contains(part), "{name}: {refusal}"),
                (expected, got) => panic!("{name}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn four_eyes_knows_the_author_under_each_of_their_identities() {
        let slack = |id: &str, email: Option<&str>| Person { email: email.map(str::to_owned), ..Person::new(id) };
        // (who answers, the release's author, whether they are the author)
        let cases = [
            (slack("U0ANN", None), "U0ANN", true),
            (slack("U0ANN", Some("ann@example.com")), "ann@example.com", true),
            (slack("U0ANN", Some("Ann@Example.com")), "ann@example.com", true),
            (slack("U0ANN", Some("ann@example.com")), "ann", true),
            (slack("U0ANN", Some("ann@example.com")), "arn:aws:sts::123:assumed-role/Releaser/ann@example.com", true),
            (Person::new("arn:aws:sts::123:assumed-role/Releaser/ann@example.com"), "ann@example.com", true),
            (Person::new("ann"), "ann", true),
            (slack("U0BOB", Some("bob@example.com")), "ann@example.com", false),
            (slack("U0BOB", Some("bob@example.com")), "ann", false),
            (slack("U0BOB", None), "arn:aws:sts::123:assumed-role/Releaser/ann@example.com", false),
            (Person::new("arn:aws:sts::123:assumed-role/Releaser/bob"), "arn:aws:sts::123:assumed-role/Releaser/ann", false),
        ];
        for (person, author, is) in cases {
            assert_eq!(person.is(author), is, "{person:?} vs {author}");
        }
    }

    #[test]
    fn user_groups_are_told_from_people_and_roles() {
        let cases = [("S0RELEASERS", true), ("S1", true), ("U0ANN", false), ("S", false), ("Sam", false), ("arn:aws:iam::1:role/S", false)];
        for (approver, group) in cases {
            assert_eq!(is_user_group(approver), group, "{approver}");
        }
    }

    #[test]
    fn an_answered_approval_takes_no_second_answer() {
        let mut release = waiting(false);
        let decision = decide(&release, &person("U1", &[]), Verdict::Rejected, Via::Cli, Some("not today".into()), at(1)).unwrap();
        assert_eq!(describe("prod", &decision), "wave prod rejected by U1 via the CLI: not today");
        release.approvals[0].decision = Some(decision);
        let again = decide(&release, &person("U1", &[]), Verdict::Granted, Via::Slack, None, at(2));
        assert_eq!(again, Err(Refusal::NothingPending("rel-1".into())));
    }

    #[test]
    fn asking_again_keeps_the_request_and_its_answer_with_the_new_token() {
        let mut release = waiting(false);
        let decision = decide(&release, &person("U1", &[]), Verdict::Granted, Via::Cli, None, at(1)).unwrap();
        release.approvals[0].decision = Some(ApprovalDecision { delivered: true, ..decision });
        request(&mut release, "prod", &spec(false), TaskToken("t-2".into()), at(9));
        assert_eq!(release.approvals.len(), 1);
        assert_eq!(release.approvals[0].requested_at, at(0), "the deadline runs from the first request");
        assert_eq!(release.approvals[0].token, Some(TaskToken("t-2".into())));
        assert!(!release.approvals[0].decision.as_ref().unwrap().delivered, "the new task hears the answer again");
    }

    #[test]
    fn the_deadline_answers_what_nobody_delivered() {
        let mut release = waiting(false);
        expire(&mut release, "prod", at(30));
        let decision = release.approvals[0].decision.clone().unwrap();
        assert_eq!((decision.verdict, decision.via, decision.by), (Verdict::Expired, Via::Deadline, None));
        assert_eq!(release.approvals[0].token, None, "an expired token answers nothing");
        assert_eq!(release.for_display().approvals[0].token, None);
        assert!(!format!("{:?}", TaskToken("secret-token".into())).contains("secret-token"));
    }
}

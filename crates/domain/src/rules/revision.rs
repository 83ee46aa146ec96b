//! Which commit a release deploys: the commit id the provider says it built, else the one Baton
//! asked it to build (never an echo such as `HEAD`), and never an unknown one to a deployer that
//! takes a revision (an Argo CD sync, an image tag from `{sha}`).

use crate::release::UNKNOWN_SHA;

/// Whether `text` is a full git object id (SHA-1 or SHA-256, in hex).
pub fn is_commit_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit a build built: what the provider reports when that is a commit id (a dispatch
/// builds the branch head, which may have moved since the release was cut), else the one the
/// release asked for. `None` when neither names a commit (the provider echoed `HEAD` back, and
/// the release named none).
pub fn built_sha(requested: Option<&str>, reported: &str) -> Option<String> {
    let reported = reported.trim();
    if is_commit_id(reported) {
        return Some(reported.to_owned());
    }
    requested.map(str::trim).filter(|sha| !sha.is_empty()).map(str::to_owned)
}

/// Whether an artifact of commit `sha` may be deployed by a deployer that does (`takes_revision`)
/// or does not take a revision; `Err` says what to do.
pub fn deployable(sha: &str, takes_revision: bool) -> Result<(), String> {
    if !takes_revision || !(sha.trim().is_empty() || sha == UNKNOWN_SHA) {
        return Ok(());
    }
    Err("the commit this release built is unknown (the build named none and ran outside a git checkout), and the \
         deploy provider deploys a revision: release again with --sha <commit>"
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "4f2a9c1e0b7d5a3c4f2a9c1e0b7d5a3c4f2a9c1e";

    #[test]
    fn a_reported_commit_id_wins_and_an_echo_never_does() {
        let cases: &[(Option<&str>, &str, Option<&str>)] = &[
            // The branch moved after the release was cut: the commit built is the one to deploy.
            (Some("abc123"), SHA, Some(SHA)),
            (Some("abc123"), "HEAD", Some("abc123")),
            (Some("abc123"), "", Some("abc123")),
            (None, SHA, Some(SHA)),
            (Some(" "), SHA, Some(SHA)),
            // An echo of what Baton sent is no commit.
            (None, "HEAD", None),
            (None, "", None),
            (None, "main", None),
            (None, &SHA[..7], None),
        ];
        for (requested, reported, expected) in cases {
            assert_eq!(built_sha(*requested, reported).as_deref(), *expected, "{requested:?} {reported}");
        }
    }

    #[test]
    fn an_unknown_commit_is_refused_only_where_a_revision_is_deployed() {
        let cases = [(SHA, true, true), (SHA, false, true), (UNKNOWN_SHA, false, true), (UNKNOWN_SHA, true, false), ("", true, false)];
        for (sha, takes_revision, ok) in cases {
            let verdict = deployable(sha, takes_revision);
            assert_eq!(verdict.is_ok(), ok, "{sha} {takes_revision}");
            if let Err(why) = verdict {
                assert!(why.contains("--sha"), "{why}");
            }
        }
    }
}

//! Git's rules for a branch name (`git check-ref-format --branch`), checked before a name from a
//! signal or the command line reaches a build provider, a URL or a log line.

/// Longer names are refused although git has no limit: every branch name Baton handles travels in
/// execution inputs, provider requests and release records, and 255 bytes is what a ref file's
/// name may take on common filesystems.
pub const MAX_BRANCH_NAME_BYTES: usize = 255;

/// Checks `name` as the branch part of `refs/heads/<name>`; the error says which rule it breaks.
pub fn check_branch_name(name: &str) -> Result<(), String> {
    let rule = |why: &str| Err(why.to_owned());
    if name.is_empty() {
        return rule("is empty");
    }
    if name.len() > MAX_BRANCH_NAME_BYTES {
        return rule(&format!("is longer than {MAX_BRANCH_NAME_BYTES} bytes"));
    }
    if name == "@" {
        return rule("is '@' alone, git's name for HEAD");
    }
    // `git branch` refuses it: it would shadow the symbolic ref.
    if name == "HEAD" {
        return rule("is 'HEAD'");
    }
    // Would read as an option on a git command line.
    if name.starts_with('-') {
        return rule("begins with '-'");
    }
    if name.starts_with('/') || name.ends_with('/') {
        return rule("begins or ends with '/'");
    }
    if name.ends_with('.') {
        return rule("ends with '.'");
    }
    for (needle, why) in [("..", "contains '..'"), ("//", "contains '//'"), ("@{", "contains '@{'")] {
        if name.contains(needle) {
            return rule(why);
        }
    }
    if let Some(c) = name.chars().find(|c| c.is_ascii_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')) {
        return rule(&format!("contains {c:?}, which git forbids in ref names"));
    }
    for component in name.split('/') {
        if component.starts_with('.') {
            return rule(&format!("has the component '{component}' beginning with '.'"));
        }
        if component.ends_with(".lock") {
            return rule(&format!("has the component '{component}' ending with '.lock'"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_follow_gits_check_ref_format() {
        // (name, None when git accepts it, or part of the reason it is refused)
        let cases: &[(&str, Option<&str>)] = &[
            ("main", None),
            ("release/2026.11", None),
            ("feature/checkout-v2", None),
            ("user@host", None),
            ("fix_#42", None),
            ("café", None),
            ("a.lockb", None),
            ("", Some("is empty")),
            ("@", Some("'@' alone")),
            ("HEAD", Some("'HEAD'")),
            ("-rf", Some("begins with '-'")),
            ("/main", Some("begins or ends with '/'")),
            ("main/", Some("begins or ends with '/'")),
            ("main.", Some("ends with '.'")),
            ("a..b", Some("contains '..'")),
            ("a//b", Some("contains '//'")),
            ("main@{1}", Some("contains '@{'")),
            ("has space", Some("' '")),
            ("tab\there", Some("'\\t'")),
            ("nul\0", Some("'\\0'")),
            ("del\u{7f}", Some("'\\u{7f}'")),
            ("a~1", Some("'~'")),
            ("a^2", Some("'^'")),
            ("a:b", Some("':'")),
            ("wild?", Some("'?'")),
            ("glob*", Some("'*'")),
            ("br[ack", Some("'['")),
            ("back\\slash", Some("'\\\\'")),
            (".hidden", Some("component '.hidden' beginning with '.'")),
            ("a/.b", Some("component '.b' beginning with '.'")),
            ("main.lock", Some("component 'main.lock' ending with '.lock'")),
            ("x.lock/y", Some("component 'x.lock' ending with '.lock'")),
        ];
        for (name, expected) in cases {
            match (check_branch_name(name), expected) {
                (Ok(()), None) => {}
                (Err(why), Some(part)) => assert!(why.contains(part), "{name:?}: {why:?} lacks {part:?}"),
                (got, want) => panic!("{name:?}: got {got:?}, want {want:?}"),
            }
        }
        assert!(check_branch_name(&"a".repeat(MAX_BRANCH_NAME_BYTES)).is_ok());
        assert_eq!(check_branch_name(&"a".repeat(MAX_BRANCH_NAME_BYTES + 1)), Err("is longer than 255 bytes".into()));
    }
}

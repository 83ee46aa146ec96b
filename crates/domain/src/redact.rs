//! Secret values never leave the process: every value Baton resolves as a secret is remembered
//! here, and text on its way out (log lines, task failures, records, messages, command output)
//! passes through [`scrub`], which blanks each remembered value.
//!
//! Process-wide on purpose: log lines are written by a global subscriber, and a secret resolved
//! by one provider must not appear in the output of another (a build that prints a file holding
//! the Slack token, say). The values live in memory only, as they already do in the providers.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{PoisonError, RwLock};

/// What a secret becomes in text.
pub const MASK: &str = "***";
/// Shorter values are not masked: blanking every `ab` in every log line would make the logs
/// unreadable while protecting nothing a guess would not find. Credentials are longer.
pub const MIN_SECRET_CHARS: usize = 6;
/// A bound on the registry: a process resolves a handful of secrets per service it serves, but
/// a long-lived one also meets every hourly GitHub App token. Past the bound the oldest values
/// go: they are the expired ones, and the value just resolved is the one in use.
const MAX_SECRETS: usize = 4096;

struct Registry {
    /// Oldest first, for eviction.
    by_age: VecDeque<String>,
    /// Longest first, so a secret that contains another is masked whole.
    longest_first: Vec<String>,
}

impl Registry {
    const fn new() -> Registry {
        Registry { by_age: VecDeque::new(), longest_first: Vec::new() }
    }

    fn insert(&mut self, form: String, bound: usize) {
        if self.by_age.contains(&form) {
            return;
        }
        if self.by_age.len() >= bound
            && let Some(oldest) = self.by_age.pop_front()
        {
            self.longest_first.retain(|secret| *secret != oldest);
        }
        self.by_age.push_back(form.clone());
        self.longest_first.push(form);
        self.longest_first.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    }
}

static SECRETS: RwLock<Registry> = RwLock::new(Registry::new());

/// Remembers `value` so that [`scrub`] masks it from now on, including its JSON-escaped form
/// (records and JSON log lines hold strings escaped) and, for a URL, its path and query: the
/// secret part of a webhook, which a server's error page echoes without the host.
pub fn remember(value: &str) {
    if value.chars().count() < MIN_SECRET_CHARS {
        return;
    }
    let mut plain = vec![value];
    if let Some((_, rest)) = value.split_once("://")
        && let Some(at) = rest.find('/')
        && rest[at..].chars().count() >= MIN_SECRET_CHARS
    {
        plain.push(&rest[at..]);
    }
    let mut registry = SECRETS.write().unwrap_or_else(PoisonError::into_inner);
    for form in plain {
        let escaped = serde_json::to_string(form).expect("a string serialises");
        let escaped = &escaped[1..escaped.len() - 1];
        if escaped != form {
            registry.insert(escaped.to_owned(), MAX_SECRETS);
        }
        registry.insert(form.to_owned(), MAX_SECRETS);
    }
}

/// `text` with every remembered secret replaced by [`MASK`]; borrowed when there was none.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let registry = SECRETS.read().unwrap_or_else(PoisonError::into_inner);
    let mut text = Cow::Borrowed(text);
    for secret in &registry.longest_first {
        if text.contains(secret.as_str()) {
            text = Cow::Owned(text.replace(secret.as_str(), MASK));
        }
    }
    text
}

/// The shortest piece of a secret masked where text was cut through it: shorter ones match too
/// much ordinary text.
const MIN_CUT_PIECE: usize = 4;

/// [`scrub`] for text that was cut (a tail of output, a line cut at its length cap): besides
/// whole secrets, masks a start of the text (`cut_front`) that is the end of a secret, and an end
/// (`cut_back`) that is the start of one, as a cut through a secret leaves.
pub fn scrub_cut(text: &str, cut_front: bool, cut_back: bool) -> String {
    let mut text = scrub(text).into_owned();
    let registry = SECRETS.read().unwrap_or_else(PoisonError::into_inner);
    for secret in &registry.longest_first {
        let pieces = |from_end: bool| {
            secret
                .char_indices()
                .map(|(at, _)| at)
                .filter(move |&at| at > 0)
                .map(move |at| if from_end { &secret[at..] } else { &secret[..at] })
                .filter(|piece| piece.len() >= MIN_CUT_PIECE)
        };
        // Longest first: the suffixes start early in the secret, the prefixes end late.
        if cut_front && let Some(piece) = pieces(true).find(|piece| text.starts_with(piece)) {
            text.replace_range(..piece.len(), MASK);
        }
        if cut_back && let Some(piece) = pieces(false).rev().find(|piece| text.ends_with(piece)) {
            let at = text.len() - piece.len();
            text.replace_range(at.., MASK);
        }
    }
    text
}

/// [`scrub`] for text that is owned already: the same `String` back when it holds no secret.
pub fn scrub_owned(text: String) -> String {
    match scrub(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(clean) => clean,
    }
}

/// `value` with every remembered secret masked in each of its texts, through its JSON form: for
/// structures that leave the process whole (a notification, an execution's history).
pub fn scrubbed<T: Serialize + DeserializeOwned>(value: &T) -> Result<T, serde_json::Error> {
    serde_json::from_str(&scrub(&serde_json::to_string(value)?))
}

/// [`scrub`] for a byte buffer that may not be UTF-8 (a command's output, a log line being
/// written): left as it is when it holds no secret.
pub fn scrub_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    match std::str::from_utf8(bytes) {
        Ok(text) => match scrub(text) {
            Cow::Borrowed(_) => Cow::Borrowed(bytes),
            Cow::Owned(clean) => Cow::Owned(clean.into_bytes()),
        },
        Err(_) => match scrub(&String::from_utf8_lossy(bytes)) {
            Cow::Borrowed(_) => Cow::Borrowed(bytes),
            Cow::Owned(clean) => Cow::Owned(clean.into_bytes()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The registry is process-wide: each test uses values no other test remembers.

    #[test]
    fn remembered_values_are_masked_wherever_they_appear() {
        remember("tok-3f9a-remembered");
        assert_eq!(scrub("Bearer tok-3f9a-remembered, again tok-3f9a-remembered."), "Bearer ***, again ***.");
        assert!(matches!(scrub("nothing secret here"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_escaped_forms_are_masked_too() {
        remember("pa\"ss\\word-77");
        let record = serde_json::json!({ "cause": "login with pa\"ss\\word-77 failed" }).to_string();
        assert!(!scrub(&record).contains("word-77"), "{record}");
        assert_eq!(scrub("raw pa\"ss\\word-77"), "raw ***");
    }

    #[test]
    fn structures_are_scrubbed_field_by_field() {
        remember("struct-secret-93");
        let links = vec![("build".to_string(), "https://ci/struct-secret-93/run".to_string())];
        assert_eq!(scrubbed(&links).unwrap(), vec![("build".to_string(), "https://ci/***/run".to_string())]);
    }

    #[test]
    fn past_the_bound_the_oldest_value_goes_and_the_newest_is_kept() {
        // A registry of its own: the process's one is shared by the other tests.
        let mut registry = Registry::new();
        for token in ["token-1-old", "token-2", "token-3-newest"] {
            registry.insert(token.into(), 2);
        }
        assert_eq!(registry.by_age, ["token-2", "token-3-newest"]);
        assert_eq!(registry.longest_first, ["token-3-newest", "token-2"]);
        registry.insert("token-2".into(), 2);
        assert_eq!(registry.by_age.len(), 2, "a value remembered twice is kept once");
    }

    #[test]
    fn short_values_are_not_secrets_worth_masking() {
        remember("abc12");
        assert_eq!(scrub("abc12 stays"), "abc12 stays");
    }

    #[test]
    fn a_secret_containing_another_is_masked_whole() {
        remember("inner-8c1d");
        remember("outer-inner-8c1d-tail");
        assert_eq!(scrub("x outer-inner-8c1d-tail y inner-8c1d"), "x *** y ***");
    }

    #[test]
    fn a_url_secret_masks_its_path_alone_too() {
        remember("https://hooks.example/services/T0/B0/url-secret-61");
        assert_eq!(scrub("404 for /services/T0/B0/url-secret-61"), "404 for ***");
        assert_eq!(scrub("POST https://hooks.example/services/T0/B0/url-secret-61"), "POST ***");
    }

    #[test]
    fn a_secret_cut_at_either_end_of_cut_text_is_masked() {
        remember("cut-secret-0a7e");
        assert_eq!(scrub_cut("secret-0a7e and more", true, false), "*** and more");
        assert_eq!(scrub_cut("some text cut-secr", false, true), "some text ***");
        assert_eq!(scrub_cut("cut-secret-0a7e cut-se", true, true), "*** ***");
        assert_eq!(scrub_cut("secret-0a7e uncut", false, false), "secret-0a7e uncut", "only where a cut was made");
        assert_eq!(scrub_cut("e7 short", true, false), "e7 short", "pieces too short to tell are left");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_scrubbed_too() {
        remember("bytes-secret-41");
        let mut line = b"\xff bytes-secret-41".to_vec();
        assert!(!String::from_utf8_lossy(&scrub_bytes(&line)).contains("bytes-secret-41"));
        line = b"plain".to_vec();
        assert!(matches!(scrub_bytes(&line), Cow::Borrowed(_)));
    }
}

//! AWS resource names built from catalog text: restricted alphabets, bounded lengths.

use sha2::{Digest, Sha256};

/// Hex digits of a SHA-256 appended to a shortened name: 64 bits, no practical collisions.
const HASH_LEN: usize = 16;

/// `text` with characters outside `allowed` replaced by `-`. When that changed or shortened
/// anything, or `always_hash` is set, a hash of the original text is appended so distinct
/// inputs keep distinct names; the result is at most `max_len` characters.
pub(crate) fn bounded_name(text: &str, max_len: usize, always_hash: bool, allowed: impl Fn(char) -> bool) -> String {
    let sanitised: String = text.chars().map(|c| if allowed(c) { c } else { '-' }).collect();
    if !always_hash && sanitised == text && text.len() <= max_len {
        return sanitised;
    }
    let digest = hex::encode(Sha256::digest(text.as_bytes()));
    let readable: String = sanitised.chars().take(max_len - HASH_LEN - 1).collect();
    format!("{readable}-{}", &digest[..HASH_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alnum(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '-'
    }

    #[test]
    fn valid_short_names_pass_through_unless_hashing_is_asked() {
        assert_eq!(bounded_name("baton-web", 64, false, alnum), "baton-web");
        assert!(bounded_name("baton-web", 64, true, alnum).starts_with("baton-web-"));
    }

    #[test]
    fn changed_or_long_names_get_a_hash_and_stay_bounded() {
        let a = bounded_name("web:1", 64, false, alnum);
        let b = bounded_name("web/1", 64, false, alnum);
        assert_ne!(a, b);
        assert!(a.starts_with("web-1-"));
        let long = bounded_name(&"x".repeat(300), 64, false, alnum);
        assert_eq!(long.len(), 64);
    }
}

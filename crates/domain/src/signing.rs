//! Signed requests from outside (GitHub's webhooks, Slack's interactivity requests): one check of
//! an HMAC-SHA256 signature, in constant time, for every sender.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Whether `signature_hex` is the HMAC-SHA256 under `key` of `parts` joined end to end. The
/// comparison takes the same time wherever the first difference is; a signature that is not hex
/// matches nothing.
pub fn hmac_sha256_matches(key: &[u8], parts: &[&[u8]], signature_hex: &str) -> bool {
    let Ok(signature) = hex::decode(signature_hex.trim()) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(&signature).is_ok()
}

/// The hex HMAC-SHA256 of `parts` under `key`: what a sender signs with (tests, tools).
pub fn hmac_sha256_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_their_message_and_key_only() {
        // Slack's documented example: signing secret, timestamp and body give this signature.
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let expected = "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        let parts: [&[u8]; 3] = [b"v0:1531420618:", body, b""];
        assert!(hmac_sha256_matches(secret, &parts, expected));
        assert_eq!(hmac_sha256_hex(secret, &parts), expected);
        assert!(!hmac_sha256_matches(b"another secret", &parts, expected));
        assert!(!hmac_sha256_matches(secret, &[b"v0:1531420619:", body], expected), "another timestamp");
        assert!(!hmac_sha256_matches(secret, &parts, &expected[..62]), "a truncated signature");
        assert!(!hmac_sha256_matches(secret, &parts, "not hex"));
    }
}

//! The body is `baton_github_webhook::fuzzing::request`, which the stable replay test
//! (functions/github-webhook/tests/fuzz_corpus.rs) runs over this target's corpus too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| baton_github_webhook::fuzzing::request(data));

//! The body is `baton_asl::fuzzing::intrinsic`, which the stable replay test (crates/asl/tests/fuzz_corpus.rs)
//! runs over this target's corpus too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| baton_asl::fuzzing::intrinsic(data));

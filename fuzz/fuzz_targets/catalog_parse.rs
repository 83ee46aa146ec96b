//! Any text given to the catalog parser yields diagnostics, never a panic, a stack
//! overflow or unbounded memory (run with `-rss_limit_mb`, `-timeout`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = baton_domain::catalog::CatalogLoader::new(baton_providers::registry()).parse("fuzz.yaml", text);
    }
});

//! Property tests: whatever text the catalog parser is given (arbitrary bytes, YAML-ish
//! noise, generated trees with anchors and aliases, a valid definition with a piece
//! spliced in), it returns diagnostics, quickly, and never panics.

use baton_domain::catalog::{CatalogLoader, Diagnostic};
use proptest::prelude::*;
use std::time::{Duration, Instant};

const BASE: &str = "schema-version: v2.2
dd-service: shop
extensions:
  baton:
    environment: production
    release-branch: main
    build: {provider: command, command: [sh, build.sh]}
    deploy:
      provider: command
      command: [sh, deploy.sh]
      waves:
        - {name: canary, targets: [c1], bake: 5s}
        - {name: rest, targets: [r1, r2]}
    health: {gates: [{provider: http, url: \"https://shop.example.com/health\"}]}
";

/// Parses `text`, checking the time it took and that each diagnostic names a line of it.
fn parse_bounded(text: &str) -> Vec<Diagnostic> {
    let started = Instant::now();
    let (_, diagnostics) = CatalogLoader::new(baton_providers::registry()).parse("prop.yaml", text);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?} for {} bytes", started.elapsed(), text.len());
    // YAML breaks lines at `\n`, `\r\n` and a lone `\r`.
    let lines = 1 + text.matches('\n').count() + text.matches('\r').count() - text.matches("\r\n").count();
    for d in &diagnostics {
        assert_eq!(d.file, "prop.yaml");
        assert!(d.line.is_none_or(|line| (1..=lines).contains(&line)), "{d} is past the text's {lines} lines");
        assert!(!d.path.is_empty() && !d.message.is_empty(), "{d:?}");
    }
    diagnostics
}

/// A YAML node as text, in block or flow style, with anchors and aliases to names
/// earlier generated nodes may have used.
fn node(depth: u32) -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        "[a-z]{1,8}",
        any::<i64>().prop_map(|n| n.to_string()),
        Just("~".to_string()),
        Just("\"quoted: [text]\"".to_string()),
        Just("!!int x".to_string()),
        "[&*][a-c]".prop_map(|anchor| if anchor.starts_with('&') { format!("{anchor} v") } else { anchor }),
    ];
    scalar.prop_recursive(depth, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|items| format!("[{}]", items.join(", "))),
            prop::collection::vec(("[a-z]{1,4}", inner.clone()), 0..6)
                .prop_map(|entries| format!("{{{}}}", entries.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "))),
            ("[&][a-c]", inner.clone()).prop_map(|(anchor, value)| format!("{anchor} {value}")),
            prop::collection::vec(inner, 1..4).prop_map(|items| items.iter().map(|i| format!("\n- {i}")).collect::<String>()),
        ]
    })
}

// 256 cases each by default; `PROPTEST_CASES=100000` for a longer hunt.
proptest! {
    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        parse_bounded(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn yaml_punctuation_noise(text in "[-\\[\\]{}:,&*!|>'\"#?%@` \n\ta-c0-9.]{0,2048}") {
        parse_bounded(&text);
    }

    #[test]
    fn generated_trees(root in node(8), key in "[a-z]{1,6}") {
        parse_bounded(&format!("{key}: {root}\n"));
        parse_bounded(&format!("schema-version: v2.2\ndd-service: s\nextensions:\n  baton: {root}\n"));
    }

    #[test]
    fn a_valid_definition_with_a_splice(at in 0..BASE.len(), cut in 0..64usize, piece in "[-\\[\\]{}:,&*!|>'\"# \na-z0-9]{0,32}") {
        let at = (0..=at).rev().find(|i| BASE.is_char_boundary(*i)).unwrap_or(0);
        let end = (at + cut).min(BASE.len());
        let spliced = format!("{}{piece}{}", &BASE[..at], &BASE[end..]);
        parse_bounded(&spliced);
    }
}

#[test]
fn the_base_definition_is_valid() {
    assert_eq!(parse_bounded(BASE), vec![]);
}

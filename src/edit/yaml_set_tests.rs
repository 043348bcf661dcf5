//! Tests of `yaml_set.rs`, kept apart so the editor itself stays readable.

use super::*;
use crate::edit::test_util::{changed_lines, keys, sets};

const CONFIG: &str = include_str!("testdata/agent_config.yaml");

fn edit(set: &[(&str, &str)], unset: &[&str]) -> Result<String, DocError> {
    edit_yaml(CONFIG, &sets(set), &keys(unset))
}

#[test]
fn changes_values_keeping_comments_and_quotes() {
    let out = edit(
        &[
            ("model.name", r#""claude-sonnet-4-5""#),
            ("model.provider", r#""openai""#),
            ("model.fallback.name", r#""claude-haiku-4-5""#),
            ("agent.log_level", r#""yes""#),
            ("limits.max_concurrent", "16"),
        ],
        &[],
    )
    .unwrap();
    let (removed, added) = changed_lines(CONFIG, &out);
    assert_eq!(
        removed,
        [
            "  log_level: info",
            "  name: claude-3-5-sonnet   # swapped after eval",
            "  provider: 'anthropic'",
            "    name: \"claude-3-haiku\"",
            "  max_concurrent: 8",
        ]
    );
    assert_eq!(
        added,
        [
            "  log_level: \"yes\"",
            "  name: claude-sonnet-4-5   # swapped after eval",
            "  provider: 'openai'",
            "    name: \"claude-haiku-4-5\"",
            "  max_concurrent: 16",
        ]
    );
}

#[test]
fn adds_missing_keys_at_the_right_indentation() {
    let out = edit(
        &[
            ("model.max_tokens", "4096"),
            ("model.fallback.provider", r#""anthropic""#),
            ("cache.redis.url", r#""redis://x:6379""#),
        ],
        &[],
    )
    .unwrap();
    let (removed, added) = changed_lines(CONFIG, &out);
    assert!(removed.is_empty(), "{removed:?}");
    assert_eq!(
        added,
        [
            "    provider: anthropic",
            "  max_tokens: 4096",
            "cache:",
            "  redis:",
            "    url: redis://x:6379"
        ]
    );
    assert!(
        out.contains("    name: \"claude-3-haiku\"\n    provider: anthropic\n  max_tokens: 4096\n\ntools:"),
        "{out}"
    );
    assert!(
        out.ends_with("  labels: {team: agents}\ncache:\n  redis:\n    url: redis://x:6379\n\n# trailing comment\n"),
        "{out}"
    );
}

#[test]
fn unset_removes_key_lines_and_own_comment() {
    let out = edit(&[], &["model.name", "model.fallback", "agent.nothing"]).unwrap();
    let (removed, added) = changed_lines(CONFIG, &out);
    assert!(added.is_empty(), "{added:?}");
    assert_eq!(
        removed,
        [
            "  # primary model",
            "  name: claude-3-5-sonnet   # swapped after eval",
            "  fallback:",
            "    name: \"claude-3-haiku\""
        ]
    );
    let out = edit_yaml("a:\n  b: 1\nc: 2", &[], &keys(&["a.b", "c"])).unwrap();
    assert_eq!(out, "a: {}");
}

#[test]
fn refuses_what_it_does_not_understand() {
    for (key, value, needle) in [
        ("tools", r#""x""#, "block sequence"),
        ("limits.banner", r#""x""#, "block scalar"),
        ("limits.labels.team", r#""x""#, "flow collection"),
        ("agent.id.x", "1", "not a mapping"),
        ("model", "1", "is a mapping"),
    ] {
        let err = edit(&[(key, value)], &[]).unwrap_err();
        assert!(err.message.contains(needle), "{key}: {}", err.message);
    }
    let err = edit_yaml("b: 2\n? a\n: 1\n", &sets(&[("b", "3")]), &[]).unwrap_err();
    assert!(err.message.contains("line 2: a line that is not"), "{}", err.message);
    let err = edit_yaml("a: 1\n---\nb: 2\n", &sets(&[("a", "2")]), &[]).unwrap_err();
    assert!(err.message.contains("more than one document"), "{}", err.message);
    let err = edit_yaml("- a\n", &sets(&[("a", "2")]), &[]).unwrap_err();
    assert!(err.message.contains("not a mapping"), "{}", err.message);
    let err = edit_yaml("a: [1,\n", &[], &[]).unwrap_err();
    assert!(err.message.contains("not valid YAML"), "{}", err.message);
}

#[test]
fn verification_catches_aliases() {
    let text = "base: &b\n  x: 1\nother: *b\n";
    let err = edit_yaml(text, &sets(&[("base.x", "2")]), &[]).unwrap_err();
    assert!(err.message.contains("anchor"), "{}", err.message);
}

#[test]
fn empty_files_crlf_and_null_values() {
    assert_eq!(edit_yaml("", &sets(&[("a.b", "1")]), &[]).unwrap(), "a:\n  b: 1\n");
    let out = edit_yaml("a: 1\r\nb:\r\n", &sets(&[("b.c", "true"), ("a", "2")]), &[]).unwrap();
    assert_eq!(out, "a: 2\r\nb:\r\n  c: true\r\n");
    let out = edit_yaml("a: 1\nb:   # later\n", &sets(&[("b", "\"x\"")]), &[]).unwrap();
    assert_eq!(out, "a: 1\nb: x   # later\n");
    let out = edit_yaml("a: 1", &sets(&[("b", "2")]), &[]).unwrap();
    assert_eq!(out, "a: 1\nb: 2");
}

#[test]
fn sequences_of_mappings_are_skipped_not_misread() {
    let text = "services:\n  agent:\n    image: hermes:1.2\n    environment:\n      - MODEL=x\n      - name: a\n        value: b\n    ports:\n    - \"8080:8080\"\n  other:\n    image: y\n";
    let out = edit_yaml(
        text,
        &sets(&[
            ("services.agent.image", r#""hermes:1.3""#),
            ("services.agent.restart", r#""always""#),
            ("services.other.image", r#""z""#),
        ]),
        &[],
    )
    .unwrap();
    assert_eq!(
        out,
        "services:\n  agent:\n    image: hermes:1.3\n    environment:\n      - MODEL=x\n      - name: a\n        value: b\n    ports:\n    - \"8080:8080\"\n    restart: always\n  other:\n    image: z\n"
    );
    let err = edit_yaml(text, &sets(&[("services.agent.environment.name", "1")]), &[]).unwrap_err();
    assert!(err.message.contains("block sequence"), "{}", err.message);
}

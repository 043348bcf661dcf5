//! Tests of `toml_set.rs`, kept apart so the editor itself stays readable.

use super::*;
use crate::edit::test_util::{changed_lines, keys, sets};

const CONFIG: &str = include_str!("testdata/agent_config.toml");

fn edit(set: &[(&str, &str)], unset: &[&str]) -> String {
    edit_toml(CONFIG, &sets(set), &keys(unset)).unwrap()
}

#[test]
fn model_swap_changes_only_the_value_lines() {
    let out = edit(
        &[
            ("model.name", r#""claude-sonnet-4-5""#),
            ("model.provider", r#""anthropic""#),
            ("model.temperature", "0.3"),
            ("provider.openai.base_url", r#""https://proxy.internal/v1""#),
            ("model.fallback.name", r#""claude-haiku-4-5""#),
            ("tools.mcp.1.url", r#""http://127.0.0.1:7003""#),
            ("log_level", r#""debug""#),
        ],
        &[],
    );
    let (removed, added) = changed_lines(CONFIG, &out);
    assert_eq!(
        removed,
        [
            "log_level = 'info'",
            r#"name = "claude-3-5-sonnet"     # swapped 2025-01 after eval"#,
            "temperature = 0.2",
            r#"fallback = { name = "claude-3-haiku", provider = "anthropic" }"#,
            r#"  base_url = "https://api.openai.com/v1""#,
            r#"url = "http://127.0.0.1:7002"   # read-only"#,
        ]
    );
    assert_eq!(
        added,
        [
            "log_level = 'debug'",
            r#"name = "claude-sonnet-4-5"     # swapped 2025-01 after eval"#,
            "temperature = 0.3",
            r#"fallback = { name = "claude-haiku-4-5", provider = "anthropic" }"#,
            r#"  base_url = "https://proxy.internal/v1""#,
            r#"url = "http://127.0.0.1:7003"   # read-only"#,
        ]
    );
}

#[test]
fn unchanged_values_keep_their_spelling() {
    let out = edit(
        &[
            ("model.max_output_tokens", "4096"),
            ("limits.max_context_tokens", "200000"),
            ("log_level", r#""info""#),
            ("tools.enabled", r#"["shell", "browser", "files"]"#),
        ],
        &["model.no_such_key", "nothing.here"],
    );
    assert_eq!(out, CONFIG);
}

#[test]
fn new_keys_follow_their_neighbours() {
    let out = edit(
        &[
            ("limits.max_tokens_per_day", "1000000"),
            ("provider.openai.organization", r#""org-1""#),
        ],
        &[],
    );
    let (removed, added) = changed_lines(CONFIG, &out);
    assert!(removed.is_empty(), "{removed:?}");
    assert_eq!(added, [r#"  organization = "org-1""#, "max_tokens_per_day = 1000000"]);
    assert!(out.contains("retry_base_ms  = 250\nmax_tokens_per_day = 1000000\n"));
    assert!(out.contains("api_key_ref = \"env:OPENAI_API_KEY\"\n  organization"));
}

#[test]
fn new_tables_get_a_section() {
    let out = edit(&[("cache.ttl_secs", "60"), ("tools.browser.proxy.url", r#""x""#)], &[]);
    let (removed, added) = changed_lines(CONFIG, &out);
    assert!(removed.is_empty(), "{removed:?}");
    assert!(added.contains(&"[cache]".to_string()), "{out}");
    assert!(added.contains(&"ttl_secs = 60".to_string()), "{out}");
    assert!(out.contains("headless = true\nproxy.url = \"x\"\n# proxy ="), "{out}");
    let reparsed: toml::Table = toml::from_str(&out).unwrap();
    assert_eq!(reparsed["cache"]["ttl_secs"].as_integer(), Some(60));
    assert_eq!(reparsed["tools"]["browser"]["proxy"]["url"].as_str(), Some("x"));
    assert_eq!(reparsed["tools"]["browser"]["headless"].as_bool(), Some(true));
}

#[test]
fn unset_removes_the_line_and_its_own_comment_only() {
    let out = edit(&[], &["limits.retry_attempts", "model.fallback", "agent_id"]);
    let (removed, added) = changed_lines(CONFIG, &out);
    assert!(added.is_empty(), "{added:?}");
    assert_eq!(
        removed,
        [
            r#"agent_id = "use1-a"   # must match the inventory name"#,
            "",
            "# Fallback is only used when the primary errors 3x in a row.",
            r#"fallback = { name = "claude-3-haiku", provider = "anthropic" }"#,
            "# Retries: exponential backoff",
            "retry_attempts = 3",
        ],
        "{out}"
    );
    // The blank line that separated the retry block survives before the next key.
    assert!(out.contains("max_context_tokens = 200_000\n\nretry_base_ms"), "{out}");
}

#[test]
fn conflicts_are_clear_errors() {
    let err = edit_toml(CONFIG, &sets(&[("agent_id.x", "1")]), &[]).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("agent_id.x"));
    assert!(err.message.contains("not a table"), "{}", err.message);
    let err = edit_toml(CONFIG, &sets(&[("model", "1")]), &[]).unwrap_err();
    assert!(err.message.contains("is a table"), "{}", err.message);
    let err = edit_toml("a = [", &[], &[]).unwrap_err();
    assert!(err.message.contains("not valid TOML"), "{}", err.message);
}

#[test]
fn a_host_file_that_is_not_toml_is_reported_without_its_secret_line() {
    let err = edit_toml("[provider]\napi_key = sk_live_abcdef123456\n", &[], &[]).unwrap_err();
    assert!(err.message.contains("not valid TOML"), "{}", err.message);
    assert!(err.message.contains("api_key = ••••"), "{}", err.message);
    assert!(!err.message.contains("sk_live_abc"), "{}", err.message);
}

#[test]
fn empty_document_gets_created_content() {
    let out = edit_toml("", &sets(&[("model.name", r#""m""#), ("top", "true")]), &[]).unwrap();
    let reparsed: toml::Table = toml::from_str(&out).unwrap();
    assert_eq!(reparsed["model"]["name"].as_str(), Some("m"));
    assert_eq!(reparsed["top"].as_bool(), Some(true));
}

//! The process-wide secret redactor: the default key patterns plus the playbook's `redact`
//! list, applied to everything bellwether writes for people (progress lines, errors, event
//! strings, summaries, diffs, matched log lines). Snapshots are exempt: they are the
//! operator's own bytes, kept to put them back.

use crate::edit::Redactor;
use std::sync::{Arc, RwLock};

static CURRENT: RwLock<Option<Arc<Redactor>>> = RwLock::new(None);

/// Secret values known by value (fleet vars named like secrets): masked wherever they appear,
/// even without a `key = ` in front (e.g. spliced into a command line by a template).
static VALUES: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remember values to mask wherever they appear (short values are ignored: masking "on" or
/// "1" everywhere would garble every message).
pub fn add_values<I: IntoIterator<Item = String>>(values: I) {
    if let Ok(mut v) = VALUES.write() {
        for s in values {
            if s.chars().count() >= 6 && !v.contains(&s) {
                v.push(s);
            }
        }
        // Longest first, so a value containing another is masked whole.
        v.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

fn mask_values(text: String) -> String {
    let Ok(v) = VALUES.read() else { return text };
    let mut out = text;
    for s in v.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), crate::edit::MASK);
        }
    }
    out
}

/// Use the defaults plus `extra` key-name regexes from now on.
pub fn configure(extra: &[String]) -> Result<(), regex::Error> {
    let r = Arc::new(Redactor::with_defaults(extra)?);
    if let Ok(mut g) = CURRENT.write() {
        *g = Some(r);
    }
    Ok(())
}

/// The redactor in force.
pub fn redactor() -> Arc<Redactor> {
    if let Ok(g) = CURRENT.read() {
        if let Some(r) = g.as_ref() {
            return r.clone();
        }
    }
    Arc::new(Redactor::default())
}

/// Redact one text.
pub fn redact(text: &str) -> String {
    mask_values(redactor().redact_text(text))
}

/// Redact every string inside a JSON value (structure is kept, so the JSON stays valid).
pub fn redact_json(v: &mut serde_json::Value) {
    let r = redactor();
    walk(v, &r);
}

fn walk(v: &mut serde_json::Value, r: &Redactor) {
    match v {
        serde_json::Value::String(s) => {
            let red = mask_values(r.redact_text(s));
            if red != *s {
                *s = red;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, r)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| walk(x, r)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_redacted_and_stay_valid_json() {
        let mut v = serde_json::json!({"detail": "api_key = \"sk-ant-abc123456789\" failed", "n": 3, "list": ["token: hunter2"]});
        redact_json(&mut v);
        let text = v.to_string();
        assert!(
            !text.contains("sk-ant-abc123456789") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
        assert_eq!(v["n"], 3);
    }

    #[test]
    fn known_values_are_masked_anywhere() {
        add_values(["tok-VERYSECRET-42".to_string(), "on".to_string()]);
        assert_eq!(
            redact("curl --auth tok-VERYSECRET-42 -v on"),
            format!("curl --auth {} -v on", crate::edit::MASK)
        );
    }

    #[test]
    fn extra_patterns_apply() {
        configure(&["(?i)^internal_id$".to_string()]).unwrap();
        assert!(!redact("internal_id = \"abc-123\"").contains("abc-123"));
        configure(&[]).unwrap();
    }
}

//! The process-wide secret redactor: the default key patterns plus the playbook's `redact`
//! list, applied to everything bellwether writes for people (progress lines, errors, event
//! strings, summaries, diffs, matched log lines). Snapshots are exempt: they are the
//! operator's own bytes, kept to put them back.

use crate::edit::Redactor;
use std::sync::{Arc, RwLock};

static CURRENT: RwLock<Option<Arc<Redactor>>> = RwLock::new(None);

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
    redactor().redact_text(text)
}

/// Redact every string inside a JSON value (structure is kept, so the JSON stays valid).
pub fn redact_json(v: &mut serde_json::Value) {
    let r = redactor();
    walk(v, &r);
}

fn walk(v: &mut serde_json::Value, r: &Redactor) {
    match v {
        serde_json::Value::String(s) => {
            let red = r.redact_text(s);
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
    fn extra_patterns_apply() {
        configure(&["(?i)^internal_id$".to_string()]).unwrap();
        assert!(!redact("internal_id = \"abc-123\"").contains("abc-123"));
        configure(&[]).unwrap();
    }
}

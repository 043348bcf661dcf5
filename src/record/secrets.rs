//! A run's secret masker: the default key patterns, the playbook's `redact` list and the
//! fleet's secret values (vars named like secrets), applied to FREE TEXT only — progress
//! lines, errors, diff lines, log lines, command output, summaries. Identifiers the machine
//! reads back (hosts, paths, hashes, ids, modes, owners) are never masked: a host var named
//! `tls_key_dir = "/etc/agent"` must not turn the recorded path into `••••/config.toml`, or
//! revert would read back a path that does not exist. Snapshots are exempt too: they are the
//! operator's own bytes, kept to put them back.
//!
//! One value per run (held by the run's sink), not process-wide state: two runs in one
//! process (tests, the demo) cannot leak each other's patterns.

use crate::edit::Redactor;
use std::sync::Arc;

/// Masks secrets in free text.
#[derive(Debug, Clone)]
pub struct Secrets {
    keys: Arc<Redactor>,
    /// Known secret values, longest first (so a value containing another is masked whole).
    values: Arc<Vec<String>>,
}

impl Default for Secrets {
    fn default() -> Self {
        Secrets {
            keys: Arc::new(Redactor::default()),
            values: Arc::new(Vec::new()),
        }
    }
}

impl Secrets {
    /// The default key patterns plus `extra`, and `values` masked wherever they appear
    /// (values shorter than 6 characters are ignored: masking "on" or "1" everywhere would
    /// garble every message).
    pub fn new<I: IntoIterator<Item = String>>(extra: &[String], values: I) -> Result<Secrets, regex::Error> {
        let mut v: Vec<String> = Vec::new();
        for s in values {
            if s.chars().count() >= 6 && !v.contains(&s) {
                v.push(s);
            }
        }
        v.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Ok(Secrets {
            keys: Arc::new(Redactor::with_defaults(extra)?),
            values: Arc::new(v),
        })
    }

    /// The secrets of a fleet (its secret-named vars) and, when given, a playbook's patterns.
    pub fn for_run(lf: &crate::config::LoadedFleet, pb: Option<&crate::config::Playbook>) -> Secrets {
        let keys = Redactor::default();
        let values = lf
            .fleet
            .hosts
            .iter()
            .flat_map(|h| h.vars.iter())
            .filter(|(k, _)| keys.is_secret_key(k))
            .map(|(_, v)| v.clone());
        let extra = pb.map(|p| p.redact.clone()).unwrap_or_default();
        // The playbook's patterns were compiled when it was loaded, so this cannot fail; fall
        // back to the defaults (never to no masking) if it ever does.
        Secrets::new(&extra, values).unwrap_or_default()
    }

    /// The key-pattern redactor (for diffs of structured files).
    pub fn redactor(&self) -> &Redactor {
        &self.keys
    }

    /// Mask one free text.
    pub fn text(&self, text: &str) -> String {
        let mut out = self.keys.redact_text(text);
        for s in self.values.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), crate::edit::MASK);
            }
        }
        out
    }

    /// Mask a free-text field in place.
    pub fn mask(&self, s: &mut String) {
        let red = self.text(s);
        if red != *s {
            *s = red;
        }
    }

    /// Mask every string inside a JSON value that is free text as a whole (a verdict with
    /// its log lines); the structure is kept, so the JSON stays valid.
    pub fn json(&self, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => self.mask(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.json(x)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| self.json(x)),
            _ => {}
        }
    }

    /// A unified diff of one file, masked (key patterns inside structured files, then tokens
    /// and known values in every line).
    pub fn diff(&self, path: &str, before: Option<&[u8]>, after: &[u8]) -> String {
        self.text(&crate::edit::unified_diff(path, before, after, &self.keys, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_redacted_and_stay_valid_json() {
        let s = Secrets::default();
        let mut v = serde_json::json!({"detail": "api_key = \"sk-ant-abc123456789\" failed", "n": 3, "list": ["token: hunter2"]});
        s.json(&mut v);
        let text = v.to_string();
        assert!(
            !text.contains("sk-ant-abc123456789") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
        assert_eq!(v["n"], 3);
    }

    #[test]
    fn known_values_are_masked_anywhere_in_text() {
        let s = Secrets::new(&[], ["tok-VERYSECRET-42".to_string(), "on".to_string()]).unwrap();
        assert_eq!(
            s.text("curl --auth tok-VERYSECRET-42 -v on"),
            format!("curl --auth {} -v on", crate::edit::MASK)
        );
    }

    #[test]
    fn log_lines_mask_mid_line_secrets_and_diffs_mask_pem_hunks() {
        let s = Secrets::default();
        assert_eq!(
            s.text("ERROR db login failed user=bob password=hunter2 retry=3"),
            format!("ERROR db login failed user=bob password={} retry=3", crate::edit::MASK)
        );
        let body: String = (0..12)
            .map(|i| format!("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC{i:02}\n"))
            .collect();
        let pem = |b: &str| format!("-----BEGIN PRIVATE KEY-----\n{b}-----END PRIVATE KEY-----\n");
        let after = pem(&body.replace("ASC06", "XYZ06"));
        let d = s.diff("/etc/agent/tls.key", Some(pem(&body).as_bytes()), after.as_bytes());
        assert!(d.contains("@@") && !d.contains("MIIEvQ") && !d.contains("XYZ06"), "{d}");
    }

    #[test]
    fn extra_patterns_apply_and_do_not_leak_into_other_values() {
        let s = Secrets::new(&["(?i)^internal_id$".to_string()], []).unwrap();
        assert!(!s.text("internal_id = \"abc-123\"").contains("abc-123"));
        assert!(Secrets::default().text("internal_id = \"abc-123\"").contains("abc-123"));
    }
}

//! Helpers shared by the edit tests.

use similar::{ChangeTag, TextDiff};

/// The lines removed and added between two texts, in order, without line endings.
pub fn changed_lines(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
    let diff = TextDiff::from_lines(before, after);
    let mut removed = Vec::new();
    let mut added = Vec::new();
    for change in diff.iter_all_changes() {
        let line = change.value().trim_end_matches(['\n', '\r']).to_string();
        match change.tag() {
            ChangeTag::Delete => removed.push(line),
            ChangeTag::Insert => added.push(line),
            ChangeTag::Equal => {}
        }
    }
    (removed, added)
}

/// Parses `(key, TOML value)` pairs as written in a playbook.
pub fn sets(pairs: &[(&str, &str)]) -> Vec<(super::keypath::KeyPath, toml::Value)> {
    pairs
        .iter()
        .map(|(k, v)| {
            let doc: toml::Table = toml::from_str(&format!("v = {v}")).unwrap();
            (super::keypath::KeyPath::parse(k).unwrap(), doc["v"].clone())
        })
        .collect()
}

/// Parses dotted keys.
pub fn keys(list: &[&str]) -> Vec<super::keypath::KeyPath> {
    list.iter()
        .map(|k| super::keypath::KeyPath::parse(k).unwrap())
        .collect()
}

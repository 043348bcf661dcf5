//! Turning parse and validation problems into `file:line:column: field: message` errors.
//!
//! serde reports a byte span for syntax and type errors; semantic checks report a field path,
//! which is mapped back to a span by walking a span-keeping `toml_edit` parse of the same text.

use super::error::Invalid;
use crate::value::{FieldPath, Seg};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml_edit::{Document, Item, Value};

/// An input-file error located for a person: exit code 2 territory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 for an error about the whole file (missing, unreadable), which has no
    /// position to point at.
    pub line: usize,
    pub column: usize,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: ", self.file.display())?;
        } else {
            write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        }
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error about a whole file (unreadable, missing): no line or column is invented for
    /// a file that may not even exist.
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            field: None,
            message: message.into(),
        }
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|s| s.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

fn value_span(v: &Value, rest: &[Seg]) -> Option<Range<usize>> {
    let here = v.span();
    let Some((first, tail)) = rest.split_first() else {
        return here;
    };
    let deeper = match (first, v) {
        (Seg::Key(k), Value::InlineTable(t)) => t
            .get_key_value(k)
            .and_then(|(key, val)| val.as_value().and_then(|v| value_span(v, tail)).or_else(|| key.span())),
        (Seg::Index(i), Value::Array(a)) => a.get(*i).and_then(|val| value_span(val, tail)),
        _ => None,
    };
    deeper.or(here)
}

fn item_span(item: &Item, rest: &[Seg]) -> Option<Range<usize>> {
    let Some((first, tail)) = rest.split_first() else {
        return item.span();
    };
    let deeper = match (first, item) {
        (Seg::Key(k), Item::Table(t)) => t
            .get_key_value(k)
            .and_then(|(key, val)| item_span(val, tail).or_else(|| key.span())),
        (Seg::Index(i), Item::ArrayOfTables(a)) => a.get(*i).and_then(|t| {
            let ti = Item::Table(t.clone());
            item_span(&ti, tail).or_else(|| t.span())
        }),
        (_, Item::Value(v)) => value_span(v, rest),
        _ => None,
    };
    deeper.or_else(|| item.span())
}

/// The best span for `path` in `text` (the deepest part of the path that exists).
pub fn span_of(text: &str, path: &FieldPath) -> Option<Range<usize>> {
    let doc = Document::parse(text).ok()?;
    let Some((Seg::Key(k), tail)) = path.0.split_first() else {
        return None;
    };
    let (key, val) = doc.as_table().get_key_value(k)?;
    item_span(val, tail).or_else(|| key.span())
}

/// Locate a validation problem.
pub fn locate(file: &Path, text: &str, inv: &Invalid) -> ConfigError {
    let (line, column) = span_of(text, &inv.path)
        .map(|s| line_col(text, s.start))
        .unwrap_or((1, 1));
    ConfigError {
        file: file.to_path_buf(),
        line,
        column,
        field: Some(inv.path.to_string()).filter(|s| !s.is_empty()),
        message: inv.message.clone(),
    }
}

/// Add "did you mean" to serde's "unknown field `x`, expected one of `a`, `b`".
fn did_you_mean(msg: &str) -> String {
    let Some(rest) = msg.strip_prefix("unknown field `") else {
        return msg.to_string();
    };
    let Some((name, tail)) = rest.split_once('`') else {
        return msg.to_string();
    };
    let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    let best = expected
        .iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min();
    match best {
        Some((_, c)) => format!("{msg}; did you mean `{c}`?"),
        None => msg.to_string(),
    }
}

/// Parse TOML text into `T`, turning serde's error into a located [`ConfigError`].
pub fn parse_toml<T: serde::de::DeserializeOwned>(file: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str::<T>(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        let msg = e.message().trim();
        let field = e
            .span()
            .and_then(|s| key_at(text, s.start))
            .or_else(|| {
                msg.strip_prefix("missing field `")
                    .and_then(|r| r.split('`').next())
                    .map(String::from)
            })
            .map(|k| match e.span().and_then(|s| table_at(text, s.start)) {
                Some(t) if !k.contains('.') => format!("{t}.{k}"),
                _ => k,
            });
        let message = masked(&did_you_mean(e.message().trim()), text, e.span(), field.as_deref());
        ConfigError {
            file: file.to_path_buf(),
            line,
            column,
            field,
            message,
        }
    })
}

/// A parse error's text fit to print. serde quotes the offending value in some messages
/// (`invalid type: string "sk_live_…", expected u16`, ``unknown variant `…` ``) and toml_edit
/// quotes the offending line (`3 | api_key = sk_live_…`): a secret typed into the wrong
/// place, or not quite in TOML syntax, would land on the terminal, in cron mail and in CI
/// logs. The value under a secret-looking key is masked, then anything that still looks
/// like a secret.
pub fn masked(msg: &str, text: &str, span: Option<Range<usize>>, field: Option<&str>) -> String {
    let red = crate::edit::Redactor::default();
    let mut msg = red.redact_source_snippet(msg);
    if let (Some(span), Some(field)) = (span, field) {
        let value = text.get(span).unwrap_or("").trim().trim_matches(['"', '\'']);
        if red.is_secret_key(field) && !value.is_empty() && msg.contains(value) {
            msg = msg.replace(value, crate::edit::MASK);
        }
    }
    msg
}

/// The table header in force at `offset` (`rollout`, or `host[3]` for the 4th `[[host]]`).
fn table_at(text: &str, offset: usize) -> Option<String> {
    let before = &text[..offset.min(text.len())];
    let mut current: Option<String> = None;
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    for line in before.lines() {
        let l = line.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let n = counts.entry(name.clone()).or_insert(0);
            current = Some(format!("{name}[{n}]"));
            *n += 1;
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
            current = Some(name.trim().to_string());
        }
    }
    current
}

/// The key named on the line at `offset` (`name = ...`), for messages about values.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())].rfind('\n').map(|p| p + 1).unwrap_or(0);
    let line = text[start..].lines().next()?;
    let (k, _) = line.split_once('=')?;
    let k = k.trim().trim_matches('"');
    (!k.is_empty() && !k.starts_with('[')).then(|| k.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_lines() {
        let text =
            "a = 1\n\n[[host]]\nname = \"x\"\n\n[[host]]\nname = \"y\"\naddress = \"1.2.3.4\"\nvars = { k = [1, 2] }\n";
        let p = FieldPath::root().key("host").index(1).key("address");
        let s = span_of(text, &p).unwrap();
        assert_eq!(line_col(text, s.start).0, 8);
        let p = FieldPath::root().key("host").index(1).key("vars").key("k").index(1);
        let s = span_of(text, &p).unwrap();
        assert_eq!(line_col(text, s.start), (9, 18));
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Doc {
        api_key: Option<String>,
        port: Option<u16>,
        provider: Option<Provider>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Provider {
        auth: Option<u8>,
    }

    #[test]
    fn parse_errors_never_print_a_secret() {
        let f = Path::new("fleet.toml");
        for (text, secret) in [
            ("api_key = sk_live_abcdef123456\n", "sk_live_abcdef123456"),
            ("api_key = \"sk_live_abcdef123456\" junk\n", "sk_live_abcdef123456"),
            ("port = \"sk_live_abcdef123456\"\n", "sk_live_abcdef123456"),
            ("[provider]\nauth = \"hunter2-opaque\"\n", "hunter2-opaque"),
        ] {
            let e = parse_toml::<Doc>(f, text).unwrap_err();
            let shown = e.to_string();
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.starts_with("fleet.toml:"), "{shown}");
        }
        let e = parse_toml::<Doc>(f, "port = \"eighty\"\n").unwrap_err();
        assert!(e.to_string().contains("\"eighty\""), "only secrets are masked: {e}");
    }

    #[test]
    fn unknown_field_suggests() {
        let m = did_you_mean("unknown field `adress`, expected one of `name`, `address`, `port`");
        assert!(m.ends_with("did you mean `address`?"), "{m}");
        let m = did_you_mean("unknown field `zzz`, expected `name`");
        assert!(!m.contains("did you mean"));
    }
}

//! Writing playbook values as YAML scalars, quoting exactly when a plain scalar would be read
//! back as something else.
//!
//! "Something else" includes YAML 1.1 readings (`yes`, `on`, `0755`, dates) because agents are
//! often configured through PyYAML or Go's yaml.v2, which still use them.

/// Renders a value for the right-hand side of `key: `; `old_quote` keeps the existing quoting
/// style (`'` or `"`) when the new value can use it.
pub(crate) fn render(value: &toml::Value, old_quote: Option<char>) -> Result<String, String> {
    Ok(match value {
        toml::Value::String(s) => render_str(s, old_quote),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => render_float(*f)?,
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => double_quoted(&d.to_string()),
        toml::Value::Array(items) => {
            let parts: Result<Vec<String>, String> = items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) if needs_quotes(s) || s.contains([',', '[', ']', '{', '}']) => {
                        Ok(double_quoted(s))
                    }
                    toml::Value::Array(_) | toml::Value::Table(_) => {
                        Err("nested arrays and tables cannot be written to YAML".to_string())
                    }
                    other => render(other, None),
                })
                .collect();
            format!("[{}]", parts?.join(", "))
        }
        toml::Value::Table(_) => {
            return Err("set the keys inside the table one by one".to_string());
        }
    })
}

/// A key for a new `key:` line.
pub(crate) fn render_key(key: &str) -> String {
    if needs_quotes(key) {
        double_quoted(key)
    } else {
        key.to_string()
    }
}

fn render_str(s: &str, old_quote: Option<char>) -> String {
    let printable = !s.chars().any(|c| c.is_control());
    match old_quote {
        Some('\'') if printable => format!("'{}'", s.replace('\'', "''")),
        Some('"') => double_quoted(s),
        _ if !needs_quotes(s) => s.to_string(),
        _ => double_quoted(s),
    }
}

fn render_float(f: f64) -> Result<String, String> {
    if !f.is_finite() {
        return Err(format!("{f} cannot be written to YAML"));
    }
    // `{:?}` always keeps a `.0` or exponent, so the value reads back as a float.
    Ok(format!("{f:?}"))
}

/// A double-quoted YAML string with the escapes YAML defines.
pub(crate) fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// True when `s` written plain would not read back as the same string.
pub(crate) fn needs_quotes(s: &str) -> bool {
    const WORDS: [&str; 12] = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", ".inf", ".nan",
    ];
    let Some(first) = s.chars().next() else {
        return true;
    };
    let lower = s.to_ascii_lowercase();
    let numberish = first.is_ascii_digit()
        || (matches!(first, '+' | '-' | '.') && s[1..].starts_with(|c: char| c.is_ascii_digit()));
    s.trim() != s
        || "-?:,[]{}#&*!|>'\"%@`".contains(first)
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.chars().any(|c| c.is_control())
        || WORDS.contains(&lower.as_str())
        || numberish
        || serde_norway::from_str::<serde_norway::Value>(s).ok() != Some(serde_norway::Value::String(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: toml::Value) -> String {
        render(&v, None).unwrap()
    }

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(r("claude-sonnet-4-5".into()), "claude-sonnet-4-5");
        assert_eq!(r("https://api.example.com/v1".into()), "https://api.example.com/v1");
        for s in [
            "",
            "yes",
            "On",
            "null",
            "0755",
            "1.5",
            "-3",
            "a: b",
            "a #b",
            "#x",
            "*x",
            " x",
            "2024-01-01",
            "x:",
        ] {
            assert!(r(s.into()).starts_with('"'), "{s:?} must be quoted");
        }
        assert_eq!(r("say \"hi\"\n".into()), r#""say \"hi\"\n""#);
        assert_eq!(render(&"it's".into(), Some('\'')).unwrap(), "'it''s'");
        assert_eq!(render(&"x".into(), Some('"')).unwrap(), "\"x\"");
    }

    #[test]
    fn numbers_bools_and_arrays() {
        assert_eq!(r(toml::Value::Integer(42)), "42");
        assert_eq!(r(toml::Value::Float(1.0)), "1.0");
        assert_eq!(r(toml::Value::Float(0.25)), "0.25");
        assert_eq!(r(toml::Value::Boolean(false)), "false");
        let arr = toml::Value::Array(vec!["a".into(), "b,c".into(), toml::Value::Integer(1)]);
        assert_eq!(r(arr), r#"[a, "b,c", 1]"#);
    }
}

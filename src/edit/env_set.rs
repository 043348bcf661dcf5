//! `set`/`unset` in `.env` / `KEY=value` files (dotenv, systemd `EnvironmentFile`, shell).
//!
//! A value is replaced where it stands, keeping `export `, the spacing around `=`, the quoting
//! style when the new value allows it, and a ` # comment` after the value (as dotenv and shells
//! read it; note systemd would read an unquoted `# ...` as part of the value). A key defined
//! several times is changed everywhere. Missing keys are appended, with `export ` if every
//! existing assignment uses it. Values spread over several lines are refused, not guessed at.

use super::error::DocError;
use super::keypath::KeyPath;
use super::lines::{join_lines, newline_of, split_lines, Line};

/// One `KEY=value` line: where the value is on the line.
struct Assignment {
    line: usize,
    key: String,
    /// Byte range of the value (quotes included); `None` if it continues on later lines.
    value: Option<(usize, usize)>,
    /// Written as `export KEY=...`.
    exported: bool,
}

/// Splits `[export ]KEY = ` off a line: (key, exported, offset where the value starts).
fn parse_assignment(text: &str) -> Option<(String, bool, usize)> {
    let skip_ws = |from: usize| from + (text[from..].len() - text[from..].trim_start().len());
    let mut i = skip_ws(0);
    let exported = text[i..].starts_with("export") && text[i + 6..].starts_with([' ', '\t']);
    if exported {
        i = skip_ws(i + 6);
    }
    let key_len = text[i..]
        .char_indices()
        .take_while(|&(n, c)| c == '_' || c.is_ascii_alphabetic() || (n > 0 && c.is_ascii_digit()))
        .count();
    if key_len == 0 {
        return None;
    }
    let key = text[i..i + key_len].to_string();
    let eq = skip_ws(i + key_len);
    text[eq..].starts_with('=').then(|| (key, exported, skip_ws(eq + 1)))
}

/// Finds every assignment, skipping the continuation lines of multi-line quoted values.
fn assignments(lines: &[Line]) -> Vec<Assignment> {
    let mut out = Vec::new();
    let mut open_quote: Option<char> = None;
    for (i, l) in lines.iter().enumerate() {
        if let Some(q) = open_quote {
            if unescaped_quote(&l.text, q).is_some() {
                open_quote = None;
            }
            continue;
        }
        let Some((key, exported, start)) = parse_assignment(&l.text) else {
            continue;
        };
        let rest = &l.text[start..];
        let value = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => match unescaped_quote(&rest[1..], q) {
                Some(end) => Some((start, start + end + 2)),
                None => {
                    open_quote = Some(q);
                    None
                }
            },
            _ => {
                let end = rest.find(" #").or_else(|| rest.find("\t#")).unwrap_or(rest.len());
                Some((start, start + rest[..end].trim_end().len()))
            }
        };
        out.push(Assignment {
            line: i,
            key,
            value,
            exported,
        });
    }
    out
}

/// Offset of the first quote `q` in `s` not preceded by a backslash (double quotes only).
fn unescaped_quote(s: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if q == '"' && !escaped => escaped = true,
            c if c == q && !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

/// Applies `set` then `unset` to an env file and returns the new text.
pub fn edit_env(text: &str, set: &[(KeyPath, toml::Value)], unset: &[KeyPath]) -> Result<String, DocError> {
    let mut lines = split_lines(text);
    for (key, value) in set {
        let name = key.0.join(".");
        let plain = plain_value(value).map_err(|m| DocError::at(&name, m))?;
        set_one(&mut lines, &name, &plain)?;
    }
    for key in unset {
        unset_one(&mut lines, &key.0.join("."))?;
    }
    Ok(join_lines(&lines))
}

/// The value of `key` as a shell or dotenv reads it (the last assignment wins; quotes taken
/// off, `\"`-style escapes undone in double quotes); `None` when it is not assigned, or its
/// value spans several lines (not read, like `set` refuses to write it).
pub(crate) fn read_env(text: &str, key: &str) -> Option<String> {
    let lines = split_lines(text);
    let a = assignments(&lines).into_iter().rfind(|a| a.key == key)?;
    let (from, to) = a.value?;
    let raw = &lines[a.line].text[from..to];
    Some(match raw.chars().next() {
        Some('\'') => raw[1..raw.len() - 1].to_string(),
        Some('"') => {
            let mut out = String::new();
            let mut inner = raw[1..raw.len() - 1].chars();
            while let Some(c) = inner.next() {
                if c != '\\' {
                    out.push(c);
                    continue;
                }
                match inner.next() {
                    Some('n') => out.push('\n'),
                    Some(e) => out.push(e),
                    None => out.push('\\'),
                }
            }
            out
        }
        _ => raw.to_string(),
    })
}

fn plain_value(v: &toml::Value) -> Result<String, String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Datetime(d) => Ok(d.to_string()),
        _ => Err(".env values must be strings, numbers or booleans".to_string()),
    }
}

fn set_one(lines: &mut Vec<Line>, key: &str, value: &str) -> Result<(), DocError> {
    let found = assignments(lines);
    let mine: Vec<&Assignment> = found.iter().filter(|a| a.key == key).collect();
    for a in &mine {
        let Some((start, end)) = a.value else {
            return Err(multi_line(key, a.line));
        };
        let text = &mut lines[a.line].text;
        let old_quote = text[start..end].chars().next().filter(|c| matches!(c, '"' | '\''));
        let new = render(value, old_quote);
        text.replace_range(start..end, &new);
    }
    if mine.is_empty() {
        let export = !found.is_empty() && found.iter().all(|a| a.exported);
        let nl = newline_of(lines);
        if let Some(last) = lines.last_mut().filter(|l| l.ending.is_empty()) {
            last.ending = nl.to_string();
        }
        let prefix = if export { "export " } else { "" };
        lines.push(Line {
            text: format!("{prefix}{key}={}", render(value, None)),
            ending: nl.to_string(),
        });
    }
    Ok(())
}

fn unset_one(lines: &mut Vec<Line>, key: &str) -> Result<(), DocError> {
    let found = assignments(lines);
    // Remove from the bottom so earlier line numbers stay valid.
    for a in found.iter().rev().filter(|a| a.key == key) {
        if a.value.is_none() {
            return Err(multi_line(key, a.line));
        }
        let mut first = a.line;
        while first > 0 && lines[first - 1].text.trim_start().starts_with('#') {
            first -= 1;
        }
        lines.drain(first..=a.line);
    }
    Ok(())
}

fn multi_line(key: &str, line: usize) -> DocError {
    DocError::at(
        key,
        format!(
            "line {}: the value continues over several lines; use `replace` or `source` for this file",
            line + 1
        ),
    )
}

/// Writes a value so dotenv, systemd and `sh` all read it back unchanged where possible:
/// bare when it is only safe characters, single quotes when it has `$`, `` ` `` or `\`
/// (no expansion anywhere), else double quotes with escapes.
fn render(value: &str, old_quote: Option<char>) -> String {
    let safe = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-./:@%+,=".contains(c));
    let single_ok = !value.contains('\'') && !value.chars().any(|c| c.is_control());
    match old_quote {
        Some('\'') if single_ok => format!("'{value}'"),
        Some('"') => double_quoted(value),
        _ if safe => value.to_string(),
        _ if single_ok && value.contains(['$', '`', '\\']) => format!("'{value}'"),
        _ => double_quoted(value),
    }
}

fn double_quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' | '"' | '$' | '`' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::test_util::{changed_lines, keys, sets};

    const ENV: &str = "# provider settings\nexport MODEL=claude-3-5-sonnet   # swapped after eval\nPROVIDER=\"anthropic\"\n\nTIMEOUT = 30\nGREETING='hello there'\n# the key reference\nAPI_KEY_REF=env:ANTHROPIC_KEY\nCERT=\"-----BEGIN\nabc\n-----END\"\n";

    fn edit(set: &[(&str, &str)], unset: &[&str]) -> Result<String, DocError> {
        edit_env(ENV, &sets(set), &keys(unset))
    }

    #[test]
    fn replaces_in_place_keeping_export_comments_and_quotes() {
        let out = edit(
            &[
                ("MODEL", r#""claude-sonnet-4-5""#),
                ("PROVIDER", r#""openai""#),
                ("TIMEOUT", "60"),
                ("GREETING", r#""it works""#),
            ],
            &[],
        )
        .unwrap();
        let (removed, added) = changed_lines(ENV, &out);
        assert_eq!(
            removed,
            [
                "export MODEL=claude-3-5-sonnet   # swapped after eval",
                "PROVIDER=\"anthropic\"",
                "TIMEOUT = 30",
                "GREETING='hello there'"
            ]
        );
        assert_eq!(
            added,
            [
                "export MODEL=claude-sonnet-4-5   # swapped after eval",
                "PROVIDER=\"openai\"",
                "TIMEOUT = 60",
                "GREETING='it works'"
            ]
        );
    }

    #[test]
    fn quotes_when_needed_and_appends_missing_keys() {
        let out = edit(
            &[
                ("NEW_ONE", r#""two words""#),
                ("PRICE", r#""$5""#),
                ("PLAIN", r#""a/b:c""#),
            ],
            &[],
        )
        .unwrap();
        assert!(
            out.ends_with("-----END\"\nNEW_ONE=\"two words\"\nPRICE='$5'\nPLAIN=a/b:c\n"),
            "{out}"
        );
        let out = edit_env("export A=1", &sets(&[("B", "true")]), &[]).unwrap();
        assert_eq!(out, "export A=1\nexport B=true\n");
        assert_eq!(parse_assignment("  export\tK_1 =  v"), Some(("K_1".into(), true, 16)));
        assert_eq!(parse_assignment("exported=1"), Some(("exported".into(), false, 9)));
        assert_eq!(parse_assignment("1A=x"), None);
        assert_eq!(parse_assignment("# A=x"), None);
        assert_eq!(render("say \"hi\" it's $HOME", None), r#""say \"hi\" it's \$HOME""#);
    }

    #[test]
    fn unset_and_multi_line_values() {
        let out = edit(&[], &["API_KEY_REF", "MISSING"]).unwrap();
        let (removed, _) = changed_lines(ENV, &out);
        assert_eq!(removed, ["# the key reference", "API_KEY_REF=env:ANTHROPIC_KEY"]);
        let err = edit(&[("CERT", r#""x""#)], &[]).unwrap_err();
        assert!(
            err.message.contains("line 9") && err.message.contains("several lines"),
            "{}",
            err.message
        );
        // A `KEY=` inside a multi-line value is not an assignment.
        let out = edit_env("A=\"x\nB=2\"\n", &sets(&[("B", "3")]), &[]).unwrap();
        assert_eq!(out, "A=\"x\nB=2\"\nB=3\n");
    }
}

//! `set`/`unset` in JSON files, keeping key order, indentation and the trailing newline.
//!
//! JSON has no comments, so layout is all there is to keep. A changed value that already
//! exists is replaced in place, leaving every other byte alone (hand-aligned arrays, spacing,
//! key order). Adding or removing keys re-serializes the document with the indentation found
//! in the file (2 or 4 spaces, tabs, or one line), its line endings and its final newline;
//! key order is kept (serde_json `preserve_order`).

use serde_json::{Map, Number, Value};

use super::error::DocError;
use super::json_span::value_span;
use super::keypath::KeyPath;

/// Applies `set` then `unset` to a JSON document and returns the new text.
pub fn edit_json(text: &str, set: &[(KeyPath, toml::Value)], unset: &[KeyPath]) -> Result<String, DocError> {
    let empty = text.trim().is_empty();
    let old: Value = if empty {
        Value::Object(Map::new())
    } else {
        serde_json::from_str(text).map_err(|e| DocError::whole(format!("the file is not valid JSON: {e}")))?
    };
    let mut new = old.clone();
    let mut in_place = !empty && unset.is_empty();
    for (key, value) in set {
        let value = to_json(value).map_err(|m| DocError::at(key, m))?;
        in_place &= lookup(&old, &key.0).is_some();
        set_path(&mut new, &key.0, key, value)?;
    }
    for key in unset {
        unset_path(&mut new, &key.0);
    }
    if new == old && !empty {
        return Ok(text.to_string());
    }
    if in_place {
        if let Some(out) = replace_in_place(text, set, &new) {
            return Ok(out);
        }
    }
    serialize(&new, text)
}

fn lookup<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(v, |cur, seg| match cur {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn set_path(root: &mut Value, path: &[String], full: &KeyPath, value: Value) -> Result<(), DocError> {
    let Some((last, parents)) = path.split_last() else {
        return Err(DocError::at(full, "empty key"));
    };
    let mut cur = root;
    for seg in parents {
        cur = match cur {
            Value::Object(m) => m.entry(seg.clone()).or_insert_with(|| Value::Object(Map::new())),
            Value::Array(a) => {
                let len = a.len();
                seg.parse::<usize>()
                    .ok()
                    .and_then(|i| a.get_mut(i))
                    .ok_or_else(|| DocError::at(full, index_msg(seg, len)))?
            }
            other => return Err(DocError::at(full, not_container(seg, other))),
        };
    }
    match cur {
        Value::Object(m) => {
            // `insert` keeps an existing key where it is; new keys go last.
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let len = a.len();
            match last.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(slot) => {
                    *slot = value;
                    Ok(())
                }
                None => Err(DocError::at(full, index_msg(last, len))),
            }
        }
        other => Err(DocError::at(full, not_container(last, other))),
    }
}

fn unset_path(root: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = root;
    for seg in parents {
        let next = match cur {
            Value::Object(m) => m.get_mut(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            // Already absent: unsetting is idempotent.
            None => return,
        }
    }
    match cur {
        Value::Object(m) => {
            m.shift_remove(last);
        }
        Value::Array(a) => {
            if let Some(i) = last.parse::<usize>().ok().filter(|i| *i < a.len()) {
                a.remove(i);
            }
        }
        _ => {}
    }
}

fn index_msg(seg: &str, len: usize) -> String {
    format!("`{seg}` is not an index of this array (it has {len} entries: 0..{len})")
}

fn not_container(seg: &str, v: &Value) -> String {
    format!(
        "the value before `{seg}` is {v}, not an object, so a key inside it cannot be set; \
         `unset` it first or fix the key"
    )
}

/// Converts a playbook value to JSON (dates become strings).
pub(crate) fn to_json(v: &toml::Value) -> Result<Value, String> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::Number((*i).into()),
        toml::Value::Float(f) => {
            Value::Number(Number::from_f64(*f).ok_or_else(|| format!("{f} cannot be written as JSON"))?)
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// Replaces each set value's text where it stands; `None` if the result does not parse back
/// to exactly `expected` (then the caller re-serializes).
fn replace_in_place(text: &str, set: &[(KeyPath, toml::Value)], expected: &Value) -> Option<String> {
    let mut edits = Vec::new();
    for (key, _) in set {
        let span = value_span(text, &key.0)?;
        let new = serde_json::to_string(lookup(expected, &key.0)?).ok()?;
        edits.push((span, new));
    }
    edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    let mut out = text.to_string();
    for (span, new) in edits {
        out.replace_range(span, &new);
    }
    let reparsed: Value = serde_json::from_str(&out).ok()?;
    (&reparsed == expected).then_some(out)
}

/// Pretty-prints with the file's own indentation, line endings and final newline.
fn serialize(v: &Value, original: &str) -> Result<String, DocError> {
    let trimmed = original.trim();
    let one_line = !trimmed.is_empty() && !trimmed.contains('\n');
    let body = if one_line {
        serde_json::to_string(v)
    } else {
        let indent = detect_indent(original);
        let mut buf = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        serde::Serialize::serialize(v, &mut ser).map(|_| String::from_utf8_lossy(&buf).into_owned())
    }
    .map_err(|e| DocError::whole(format!("cannot write JSON: {e}")))?;
    let newline = if original.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = body.replace('\n', newline);
    if original.ends_with('\n') || original.trim().is_empty() {
        out.push_str(newline);
    }
    Ok(out)
}

/// The whitespace before the first indented line: one level of nesting. Two spaces if none.
fn detect_indent(text: &str) -> String {
    text.lines()
        .skip(1)
        .find_map(|l| {
            let ws_len = l.len() - l.trim_start().len();
            (ws_len > 0 && !l.trim().is_empty()).then(|| l[..ws_len].to_string())
        })
        .unwrap_or_else(|| "  ".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::test_util::{changed_lines, keys, sets};

    const HAND: &str = r#"{
  "model": {"name": "claude-3-5-sonnet", "provider": "anthropic"},
  "mcpServers": {
    "search": { "command": "npx", "args": ["-y", "@acme/search"] }
  },
  "temperature": 0.2,
  "zeta": 1,
  "alpha": 2
}
"#;

    #[test]
    fn existing_values_change_in_place() {
        let out = edit_json(
            HAND,
            &sets(&[("model.name", r#""claude-sonnet-4-5""#), ("temperature", "0.3")]),
            &[],
        )
        .unwrap();
        let (removed, added) = changed_lines(HAND, &out);
        assert_eq!(
            removed,
            [
                r#"  "model": {"name": "claude-3-5-sonnet", "provider": "anthropic"},"#,
                r#"  "temperature": 0.2,"#
            ]
        );
        assert_eq!(
            added,
            [
                r#"  "model": {"name": "claude-sonnet-4-5", "provider": "anthropic"},"#,
                r#"  "temperature": 0.3,"#
            ]
        );
    }

    #[test]
    fn keeps_order_and_detected_indent_when_adding() {
        for indent in ["  ", "    ", "\t"] {
            let text = format!(
                "{{\n{indent}\"zeta\": 1,\n{indent}\"alpha\": {{\n{indent}{indent}\"b\": true\n{indent}}}\n}}\n"
            );
            let out = edit_json(
                &text,
                &sets(&[("alpha.c", "\"x\""), ("new", "[1, 2]")]),
                &keys(&["zeta"]),
            )
            .unwrap();
            let i = indent;
            assert_eq!(
                out,
                format!("{{\n{i}\"alpha\": {{\n{i}{i}\"b\": true,\n{i}{i}\"c\": \"x\"\n{i}}},\n{i}\"new\": [\n{i}{i}1,\n{i}{i}2\n{i}]\n}}\n")
            );
        }
    }

    #[test]
    fn trailing_newline_crlf_and_one_line_files() {
        let out = edit_json("{\"a\": 1, \"b\": 2}", &sets(&[("c", "3")]), &[]).unwrap();
        assert_eq!(out, r#"{"a":1,"b":2,"c":3}"#);
        let out = edit_json("{\r\n  \"a\": 1\r\n}", &sets(&[("b", "2")]), &[]).unwrap();
        assert_eq!(out, "{\r\n  \"a\": 1,\r\n  \"b\": 2\r\n}");
        let out = edit_json("", &sets(&[("model.name", "\"m\"")]), &[]).unwrap();
        assert_eq!(out, "{\n  \"model\": {\n    \"name\": \"m\"\n  }\n}\n");
    }

    #[test]
    fn unchanged_document_is_returned_as_is() {
        let out = edit_json(HAND, &sets(&[("zeta", "1")]), &keys(&["nope.nothing"])).unwrap();
        assert_eq!(out, HAND);
    }

    #[test]
    fn arrays_and_errors() {
        let out = edit_json(HAND, &sets(&[("mcpServers.search.args.1", "\"@acme/search@2\"")]), &[]).unwrap();
        assert!(out.contains(r#""args": ["-y", "@acme/search@2"]"#), "{out}");
        let e = edit_json(HAND, &sets(&[("temperature.x", "1")]), &[]).unwrap_err();
        assert!(e.message.contains("not an object"), "{}", e.message);
        let e = edit_json(HAND, &sets(&[("mcpServers.search.args.5", "1")]), &[]).unwrap_err();
        assert!(e.message.contains("not an index"), "{}", e.message);
        let e = edit_json("{\"a\": }", &[], &[]).unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
    }
}

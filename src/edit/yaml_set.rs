//! `set`/`unset` in YAML by editing lines, so comments and layout survive.
//!
//! Kept: every comment (including ` # comment` after a changed value, with its spacing),
//! blank lines, key order, indentation, the quoting style of a replaced string when the new
//! value allows it, line endings and the final newline. A missing key is added after the last
//! line of its parent mapping at the parent's child indentation (missing parents included).
//! `unset` removes the key's lines and the comment lines directly above it.
//!
//! Not handled, reported as an error instead of risking a corrupt file: values that are
//! sequences, flow collections (`{...}`, `[...]`), block scalars (`|`, `>`), multi-line
//! scalars, anchors/aliases/tags; keys inside sequences; several documents, directives,
//! complex keys, tab indentation. As a last guard the result is parsed again and must equal
//! the original document with exactly the requested changes, else the edit is refused.
//! Use `replace` or `source` for such files.
//!
//! Parsing (for that guard and for `pins`) uses `serde_norway`, the maintained fork of the
//! deprecated `serde_yaml` with the same API; Cargo.toml says why this fork.

use serde_norway::{Mapping, Value as Yaml};

use super::error::DocError;
use super::keypath::KeyPath;
use super::lines::{join_lines, newline_of, split_lines, Line};
use super::yaml_scalar::{render, render_key};
use super::yaml_scan::{scan, Entry, Kind, Scan};

const FALLBACK: &str = "use `replace` or `source` for this file";

/// Applies `set` then `unset` to a YAML document and returns the new text.
pub fn edit_yaml(text: &str, set: &[(KeyPath, toml::Value)], unset: &[KeyPath]) -> Result<String, DocError> {
    let before = parse(text)?;
    if !matches!(before, Yaml::Mapping(_) | Yaml::Null) {
        return Err(DocError::whole(format!(
            "the document is not a mapping of keys; {FALLBACK}"
        )));
    }
    let mut lines = split_lines(text);
    let mut expected = before.clone();
    for (key, value) in set {
        set_key(&mut lines, key, value)?;
        expect_set(&mut expected, &key.0, to_yaml(value));
    }
    for key in unset {
        unset_key(&mut lines, key)?;
        expect_unset(&mut expected, &key.0);
    }
    let out = join_lines(&lines);
    let after = parse(&out)?;
    let empty_map = |v: &Yaml| v.is_null() || v.as_mapping().is_some_and(Mapping::is_empty);
    if after != expected && !(empty_map(&after) && empty_map(&expected)) {
        return Err(DocError::whole(format!(
            "refusing to edit: the edited file would not read back as the original plus the \
             requested change (it uses YAML this line editor does not handle); {FALLBACK}"
        )));
    }
    Ok(out)
}

fn parse(text: &str) -> Result<Yaml, DocError> {
    if text.trim().is_empty() {
        return Ok(Yaml::Null);
    }
    serde_norway::from_str(text).map_err(|e| DocError::whole(format!("the file is not valid YAML: {e}")))
}

fn scan_for(lines: &[Line], key: &KeyPath) -> Result<Scan, DocError> {
    let sc = scan(lines);
    match &sc.problem {
        Some((line, why)) => Err(DocError::at(
            key,
            format!(
                "line {}: {why}; this line editor only understands block mappings; {FALLBACK}",
                line + 1
            ),
        )),
        None => Ok(sc),
    }
}

fn set_key(lines: &mut Vec<Line>, key: &KeyPath, value: &toml::Value) -> Result<(), DocError> {
    let sc = scan_for(lines, key)?;
    if let Some(e) = sc.find(&key.0) {
        return replace_value(&mut lines[e.line], e, key, value);
    }
    // Deepest existing ancestor; `None` is the document root.
    let ancestor = (1..key.0.len()).rev().find_map(|n| sc.find(&key.0[..n]));
    let missing = &key.0[ancestor.map_or(0, |a| a.path.len())..];
    let (at, indent) = match ancestor {
        Some(a) => match a.kind {
            Kind::Empty { .. } => (a.last_line + 1, a.child_indent.unwrap_or(a.indent + sc.indent_unit())),
            Kind::Scalar { start, end } => {
                return Err(DocError::at(
                    key,
                    format!(
                        "`{}` holds the value `{}`, not a mapping, so a key inside it cannot be set; \
                         `unset` it first or fix the key",
                        a.path.join("."),
                        &lines[a.line].text[start..end]
                    ),
                ))
            }
            other => return Err(unsupported(key, &a.path, other)),
        },
        None => (
            sc.last_content.map_or(lines.len(), |l| l + 1),
            sc.root_indent.unwrap_or(0),
        ),
    };
    let rendered = render(value, None).map_err(|m| DocError::at(key, m))?;
    let nl = newline_of(lines);
    let mut new_lines = Vec::new();
    for (depth, seg) in missing.iter().enumerate() {
        let pad = " ".repeat(indent + depth * sc.indent_unit());
        let text = if depth + 1 == missing.len() {
            format!("{pad}{}: {rendered}", render_key(seg))
        } else {
            format!("{pad}{}:", render_key(seg))
        };
        new_lines.push(Line {
            text,
            ending: nl.to_string(),
        });
    }
    if at > 0 && at <= lines.len() && lines[at - 1].ending.is_empty() {
        // Appending after a last line without a newline: keep the file without one.
        lines[at - 1].ending = nl.to_string();
        if let Some(last) = new_lines.last_mut() {
            last.ending.clear();
        }
    }
    lines.splice(at..at, new_lines);
    Ok(())
}

fn replace_value(line: &mut Line, e: &Entry, key: &KeyPath, value: &toml::Value) -> Result<(), DocError> {
    match e.kind {
        Kind::Scalar { start, end } => {
            let old_quote = line.text[start..].chars().next().filter(|c| matches!(c, '"' | '\''));
            let new = render(value, old_quote).map_err(|m| DocError::at(key, m))?;
            line.text.replace_range(start..end, &new);
            Ok(())
        }
        Kind::Empty { colon } if e.child_indent.is_none() => {
            let new = render(value, None).map_err(|m| DocError::at(key, m))?;
            let rest = &line.text[colon + 1..];
            // Keep ` # comment` after an empty value, separated by its original spacing.
            let tail = if rest.trim().is_empty() {
                String::new()
            } else {
                rest.to_string()
            };
            line.text = format!("{}: {new}{tail}", &line.text[..colon]);
            Ok(())
        }
        Kind::Empty { .. } => Err(DocError::at(
            key,
            "this is a mapping; set the keys inside it one by one (e.g. `key.name`)",
        )),
        other => Err(unsupported(key, &e.path, other)),
    }
}

fn unsupported(key: &KeyPath, path: &[String], kind: Kind) -> DocError {
    DocError::at(
        key,
        format!(
            "`{}` holds {}, which this line editor does not change; {FALLBACK}",
            path.join("."),
            kind.describe()
        ),
    )
}

fn unset_key(lines: &mut Vec<Line>, key: &KeyPath) -> Result<(), DocError> {
    let Some((_, parent)) = key.0.split_last() else {
        return Err(DocError::at(key, "empty key"));
    };
    let sc = scan_for(lines, key)?;
    // Already absent: unsetting is idempotent.
    let Some(e) = sc.find(&key.0) else {
        return Ok(());
    };
    let mut first = e.line;
    let own_comment = |l: &Line| {
        let t = l.text.trim_start_matches(' ');
        t.starts_with('#') && l.text.len() - t.len() == e.indent
    };
    while first > 0 && own_comment(&lines[first - 1]) {
        first -= 1;
    }
    let last = e.last_line;
    let no_final_newline = last + 1 == lines.len() && lines[last].ending.is_empty();
    lines.drain(first..=last);
    if no_final_newline && first > 0 {
        lines[first - 1].ending.clear();
    }
    // A mapping left without keys would read back as null; write it as `{}` instead.
    let siblings = sc
        .entries
        .iter()
        .filter(|o| o.path.len() == key.0.len() && o.path.starts_with(parent))
        .count();
    if let (Some(p), 1) = (sc.find(parent).filter(|_| !parent.is_empty()), siblings) {
        if let Kind::Empty { colon } = p.kind {
            lines[p.line].text.insert_str(colon + 1, " {}");
        }
    }
    Ok(())
}

fn to_yaml(v: &toml::Value) -> Yaml {
    match v {
        toml::Value::String(s) => Yaml::String(s.clone()),
        toml::Value::Integer(i) => Yaml::Number((*i).into()),
        toml::Value::Float(f) => Yaml::Number((*f).into()),
        toml::Value::Boolean(b) => Yaml::Bool(*b),
        toml::Value::Datetime(d) => Yaml::String(d.to_string()),
        toml::Value::Array(items) => Yaml::Sequence(items.iter().map(to_yaml).collect()),
        toml::Value::Table(t) => Yaml::Mapping(t.iter().map(|(k, v)| (Yaml::String(k.clone()), to_yaml(v))).collect()),
    }
}

fn expect_set(root: &mut Yaml, path: &[String], value: Yaml) {
    let mut cur = root;
    for seg in path {
        if !cur.is_mapping() {
            *cur = Yaml::Mapping(Mapping::new());
        }
        let Yaml::Mapping(m) = cur else { return };
        cur = m.entry(Yaml::String(seg.clone())).or_insert(Yaml::Null);
    }
    *cur = value;
}

fn expect_unset(root: &mut Yaml, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = root;
    for seg in parents {
        match cur.get_mut(seg.as_str()) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Yaml::Mapping(m) = cur {
        m.shift_remove(last.as_str());
    }
}

#[cfg(test)]
#[path = "yaml_set_tests.rs"]
mod tests;

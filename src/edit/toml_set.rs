//! `set`/`unset` in TOML with toml_edit, so an operator's hand-written config comes back
//! byte-identical except for the values that changed.
//!
//! Kept: comments (above a key and after a value), key and table order, blank lines,
//! whitespace around `=`, indentation, literal-vs-basic string quoting where the new value
//! allows it, and the exact text of values that do not change (`1_000` stays `1_000` when the
//! playbook sets 1000). New keys copy the indentation and `=` spacing of their siblings. A
//! missing top-level table becomes a `[name]` section at the end; a missing table inside an
//! existing section becomes dotted keys (`proxy.url = ...`) in that section.

use toml_edit::{DocumentMut, InlineTable, Item, Table, TableLike, Value};

use super::error::DocError;
use super::keypath::KeyPath;

/// Applies `set` then `unset` to a TOML document and returns the new text.
pub fn edit_toml(text: &str, set: &[(KeyPath, toml::Value)], unset: &[KeyPath]) -> Result<String, DocError> {
    let mut doc: DocumentMut = text
        .parse()
        // toml_edit quotes the offending line, which may hold a secret: mask it.
        .map_err(|e: toml_edit::TomlError| {
            let e = super::Redactor::default().redact_source_snippet(&e.to_string());
            DocError::whole(format!("the file is not valid TOML: {e}"))
        })?;
    for (key, value) in set {
        set_in(doc.as_table_mut(), Kind::Root, &key.0, key, value)?;
    }
    for key in unset {
        unset_key(&mut doc, key)?;
    }
    Ok(doc.to_string())
}

/// How a table is written, which decides how a missing child table must be written.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// The document root: a missing table becomes a `[header]` section at the end.
    Root,
    /// A `[header]` table: a missing table becomes dotted keys inside its section, so the
    /// addition stays next to its parent instead of landing among the next section's comments.
    Standard,
    /// A table with no header of its own (only sub-tables): a missing table becomes a section.
    Implicit,
    /// `a.b = 1` dotted keys.
    Dotted,
    /// `{ a = 1 }`.
    Inline,
}

fn set_in(
    table: &mut dyn TableLike,
    kind: Kind,
    segs: &[String],
    full: &KeyPath,
    value: &toml::Value,
) -> Result<(), DocError> {
    let (seg, rest) = match segs {
        [] => return Err(DocError::at(full, "empty key")),
        [seg, rest @ ..] => (seg.as_str(), rest),
    };
    if rest.is_empty() {
        return set_leaf(table, seg, full, value);
    }
    if table.get(seg).is_none_or(|i| i.is_none()) {
        table.insert(seg, new_table(kind));
    }
    match table.get_mut(seg) {
        Some(Item::Table(t)) => {
            let k = if t.is_dotted() {
                Kind::Dotted
            } else if t.is_implicit() && t.iter().all(|(_, i)| !i.is_value()) {
                Kind::Implicit
            } else {
                Kind::Standard
            };
            set_in(t, k, rest, full, value)
        }
        Some(Item::Value(Value::InlineTable(t))) => set_in(t, Kind::Inline, rest, full, value),
        Some(Item::ArrayOfTables(a)) => {
            let (idx, rest) = array_index(rest, full, a.len())?;
            match a.get_mut(idx) {
                Some(t) => set_in(t, Kind::Standard, rest, full, value),
                None => Err(DocError::at(full, "array index out of range")),
            }
        }
        Some(Item::Value(v)) => Err(DocError::at(
            full,
            format!(
                "`{seg}` is not a table (it holds the {} `{}`), so a key inside it cannot be \
                 set; `unset` it first or fix the key",
                v.type_name(),
                short(&v.to_string())
            ),
        )),
        _ => Err(DocError::at(full, format!("`{seg}` could not be created"))),
    }
}

/// A value's text cut to one readable line for messages.
fn short(text: &str) -> String {
    let one_line = text.trim().replace('\n', " ");
    match one_line.char_indices().nth(60) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

fn array_index<'s>(rest: &'s [String], full: &KeyPath, len: usize) -> Result<(usize, &'s [String]), DocError> {
    match rest {
        [idx, tail @ ..] if !tail.is_empty() => match idx.parse::<usize>() {
            Ok(i) if i < len => Ok((i, tail)),
            _ => Err(DocError::at(
                full,
                format!("an array of tables ({len} entries) needs an index 0..{len} here, then a key"),
            )),
        },
        _ => Err(DocError::at(
            full,
            "this is an array of tables; name an entry and a key, e.g. `tools.0.name`",
        )),
    }
}

fn new_table(kind: Kind) -> Item {
    match kind {
        Kind::Inline => Item::Value(Value::InlineTable(InlineTable::new())),
        Kind::Root | Kind::Implicit | Kind::Standard | Kind::Dotted => {
            let mut t = Table::new();
            // Implicit: a table that only holds sub-tables gets no `[header]` of its own.
            t.set_implicit(true);
            t.set_dotted(matches!(kind, Kind::Standard | Kind::Dotted));
            Item::Table(t)
        }
    }
}

fn set_leaf(table: &mut dyn TableLike, seg: &str, full: &KeyPath, value: &toml::Value) -> Result<(), DocError> {
    match table.get_mut(seg) {
        Some(Item::Value(old)) => {
            if !same(old, value) {
                let mut new = to_edit_value(value, Some(old));
                *new.decor_mut() = old.decor().clone();
                *old = new;
            }
            Ok(())
        }
        Some(Item::Table(_)) | Some(Item::ArrayOfTables(_)) => Err(DocError::at(
            full,
            "this is a table; set the keys inside it one by one (e.g. `key.name`)",
        )),
        _ => {
            let style = sibling_style(table);
            table.insert(seg, Item::Value(to_edit_value(value, None)));
            if let (Some((indent, before_eq, after_eq)), Some((mut key, item))) = (style, table.get_key_value_mut(seg))
            {
                key.leaf_decor_mut().set_prefix(indent);
                key.leaf_decor_mut().set_suffix(before_eq);
                if let Some(v) = item.as_value_mut() {
                    v.decor_mut().set_prefix(after_eq);
                }
            }
            Ok(())
        }
    }
}

/// Indentation of the last plain `key = value` in the table and the most common spacing
/// around `=`, so an added key looks like its neighbours (but not like one that is padded to
/// line up with a longer name).
fn sibling_style(table: &dyn TableLike) -> Option<(String, String, String)> {
    let raw = |r: Option<&toml_edit::RawString>| r.and_then(|r| r.as_str()).map(str::to_string);
    let mut indent = None;
    let mut spacing: Vec<(String, String)> = Vec::new();
    for (name, item) in table.iter() {
        let (Some(key), Some(value)) = (table.key(name), item.as_value()) else {
            continue;
        };
        let prefix = raw(key.leaf_decor().prefix()).unwrap_or_default();
        indent = Some(prefix.rsplit('\n').next().unwrap_or("").to_string());
        spacing.push((
            raw(key.leaf_decor().suffix()).unwrap_or_else(|| " ".into()),
            raw(value.decor().prefix()).unwrap_or_else(|| " ".into()),
        ));
    }
    let indent = indent.filter(|i| i.chars().all(|c| c == ' ' || c == '\t'))?;
    let most_common = spacing
        .iter()
        .max_by_key(|s| spacing.iter().filter(|t| t == s).count())?
        .clone();
    Some((indent, most_common.0, most_common.1))
}

/// Semantic equality, so an unchanged value keeps its exact spelling.
fn same(old: &Value, new: &toml::Value) -> bool {
    use toml::Value as T;
    match (old, new) {
        (Value::String(a), T::String(b)) => a.value() == b,
        (Value::Integer(a), T::Integer(b)) => a.value() == b,
        (Value::Float(a), T::Float(b)) => a.value().to_bits() == b.to_bits() || a.value() == b,
        (Value::Boolean(a), T::Boolean(b)) => a.value() == b,
        (Value::Datetime(a), T::Datetime(b)) => a.value() == b,
        (Value::Array(a), T::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y)),
        (Value::InlineTable(a), T::Table(b)) => {
            a.len() == b.len() && b.iter().all(|(k, v)| a.get(k).is_some_and(|x| same(x, v)))
        }
        _ => false,
    }
}

/// Converts a playbook value; a string replacing a `'literal'` string stays literal when it can.
fn to_edit_value(value: &toml::Value, old: Option<&Value>) -> Value {
    use toml::Value as T;
    match value {
        T::String(s) => {
            let was_literal = old.and_then(|o| o.as_str().and(o.to_string().trim_start().chars().next())) == Some('\'');
            let literal_ok = !s.contains('\'') && !s.chars().any(|c| c.is_control());
            if was_literal && literal_ok {
                if let Ok(v) = format!("'{s}'").parse::<Value>() {
                    return v;
                }
            }
            Value::from(s.as_str())
        }
        T::Integer(i) => Value::from(*i),
        T::Float(f) => Value::from(*f),
        T::Boolean(b) => Value::from(*b),
        T::Datetime(d) => Value::from(*d),
        T::Array(items) => Value::Array(items.iter().map(|v| to_edit_value(v, None)).collect()),
        T::Table(t) => {
            let mut inline = InlineTable::new();
            for (k, v) in t {
                inline.insert(k, to_edit_value(v, None));
            }
            Value::InlineTable(inline)
        }
    }
}

fn unset_key(doc: &mut DocumentMut, key: &KeyPath) -> Result<(), DocError> {
    let Some((last, parents)) = key.0.split_last() else {
        return Err(DocError::at(key, "empty key"));
    };
    let mut table: &mut dyn TableLike = doc.as_table_mut();
    let mut i = 0;
    while i < parents.len() {
        let seg = parents[i].as_str();
        table = match table.get_mut(seg) {
            Some(Item::ArrayOfTables(a)) => {
                i += 1;
                let idx = parents.get(i).and_then(|s| s.parse::<usize>().ok());
                match idx.and_then(|n| a.get_mut(n)) {
                    Some(t) => t,
                    None => return Ok(()),
                }
            }
            Some(item) => match item.as_table_like_mut() {
                Some(t) => t,
                None => return Ok(()),
            },
            // Already absent: unsetting is idempotent.
            None => return Ok(()),
        };
        i += 1;
    }
    remove_keeping_spacing(table, last);
    Ok(())
}

/// Removes a key. The comment lines directly above it go with it, but blank lines and any
/// comment block separated from it by a blank line belong to what follows, so they move to
/// the next key.
fn remove_keeping_spacing(table: &mut dyn TableLike, name: &str) {
    let prefix = table
        .key(name)
        .and_then(|k| k.leaf_decor().prefix())
        .and_then(|p| p.as_str())
        .unwrap_or("")
        .to_string();
    let next = {
        let mut names = table.iter().map(|(k, _)| k.to_string());
        names.find(|k| k == name);
        names.next()
    };
    let Some(removed) = table.remove(name) else {
        return;
    };
    let keep = match prefix.rfind("\n\n") {
        Some(pos) => &prefix[..pos + 2],
        None if prefix.starts_with('\n') => "\n",
        None => "",
    };
    if keep.is_empty() || !removed.is_value() {
        return;
    }
    if let Some(mut next_key) = next.as_deref().and_then(|n| table.key_mut(n)) {
        let decor = next_key.leaf_decor_mut();
        let old = decor.prefix().and_then(|p| p.as_str()).unwrap_or("").to_string();
        decor.set_prefix(format!("{keep}{old}"));
    }
}

#[cfg(test)]
#[path = "toml_set_tests.rs"]
mod tests;

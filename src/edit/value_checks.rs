//! Checks on the values an edit or a pin holds, shared by the edit's validation and the pins'
//! (one place, so both reject the same things with the same words).

use super::keypath::KeyPath;
use super::spec::Format;
use crate::config::error::Invalid;
use crate::value::FieldPath;

pub(crate) fn check_env_key(key: &KeyPath, at: &FieldPath, out: &mut Vec<Invalid>) {
    let name = key.0.join(".");
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        out.push(Invalid::new(
            at.clone(),
            format!("`{name}` is not a valid .env variable name (letters, digits, `_`)"),
        ));
    }
}

/// Which values each format can hold: TOML takes anything, JSON no dates, YAML and .env
/// scalars (YAML also flat arrays of scalars).
pub(crate) fn check_value(format: Format, value: &toml::Value) -> Result<(), String> {
    use toml::Value as V;
    match (format, value) {
        (Format::Toml, _) => Ok(()),
        (_, V::Datetime(_)) => Err(format!(
            "dates cannot be written to a {format} file; quote the value to make it a string"
        )),
        (Format::Env, V::Array(_)) | (Format::Env, V::Table(_)) => {
            Err(".env values must be strings, numbers or booleans".to_string())
        }
        (Format::Yaml, V::Array(items)) => {
            if items
                .iter()
                .all(|v| matches!(v, V::String(_) | V::Integer(_) | V::Float(_) | V::Boolean(_)))
            {
                Ok(())
            } else {
                Err("YAML arrays may only hold strings, numbers and booleans".to_string())
            }
        }
        (_, V::Float(f)) if !f.is_finite() => Err(format!("{f} cannot be written to a {format} file")),
        (_, V::Array(items)) => items.iter().try_for_each(|v| check_value(format, v)),
        (_, V::Table(t)) => t.values().try_for_each(|v| check_value(format, v)),
        _ => Ok(()),
    }
}

/// Calls `f` on every string inside `value` (the strings that get template-rendered).
pub(crate) fn each_string<'a>(value: &'a toml::Value, f: &mut dyn FnMut(&'a str)) {
    match value {
        toml::Value::String(s) => f(s),
        toml::Value::Array(items) => items.iter().for_each(|v| each_string(v, f)),
        toml::Value::Table(t) => t.values().for_each(|v| each_string(v, f)),
        _ => {}
    }
}

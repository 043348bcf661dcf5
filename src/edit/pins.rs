//! Pins: values that must hold in a file after the change — `pins = { "model.name" = "x" }`
//! on an `[[edit]]` (a key path per value, read with the same key-path rules as `set`), and
//! `pin_sha256` for the whole file.
//!
//! Pure like the rest of `edit`: the caller hands in bytes it already has (the bytes a write
//! put on the host and read back, or a file `drift` read), so checking a pin never costs a
//! remote command of its own.

use serde::Serialize;
use serde_json::Value as Json;

use super::apply::{render_value, sha256_hex};
use super::error::EditError;
use super::keypath::KeyPath;
use super::spec::{Action, EditSpec, Format};
use super::template::{render, variables, TemplateCtx};
use super::value_checks::{check_env_key, check_value, each_string};
use crate::config::error::Invalid;
use crate::value::FieldPath;

/// One thing a file must hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Pin {
    /// The value at a key path of a structured file.
    Key(KeyPath, toml::Value),
    /// The sha256 (lowercase hex) of the whole file.
    Sha256(String),
}

impl Pin {
    /// The pin's name in events and reports: the key path, or `sha256`.
    pub fn name(&self) -> String {
        match self {
            Pin::Key(k, _) => k.to_string(),
            Pin::Sha256(_) => "sha256".to_string(),
        }
    }
}

/// The pins of one file, rendered for one host.
#[derive(Debug, Clone, PartialEq)]
pub struct FilePins {
    /// The rendered path (as `[[edit]]` `path` renders for the host).
    pub path: String,
    /// How key pins read the file (explicit `format`, else from the path).
    pub format: Option<Format>,
    pub pins: Vec<Pin>,
}

/// How one pin fared against a file's bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PinResult {
    /// The key path, or `sha256`.
    pub pin: String,
    pub held: bool,
    /// The pinned value, as JSON text (`"claude-sonnet-4-5"`, `8`), or the hash.
    pub want: String,
    /// What the file holds there: JSON text, `(absent)`, or why it could not be read.
    pub found: String,
}

impl FilePins {
    /// Check every pin against the file's bytes (`None`: the file does not exist).
    pub fn check(&self, bytes: Option<&[u8]>) -> Vec<PinResult> {
        self.pins.iter().map(|p| check_one(p, self.format, bytes)).collect()
    }
}

impl PinResult {
    /// The result with the values hidden when the pinned key names a secret (`api_key`, a
    /// playbook `redact` pattern): what is shown or recorded must not carry it.
    pub fn redacted(&self, r: &super::Redactor) -> PinResult {
        let mut out = self.clone();
        if self.pin != "sha256" && r.is_secret_key(&self.pin) {
            out.want = super::MASK.to_string();
            if !self.found.starts_with('(') {
                out.found = super::MASK.to_string();
            }
        }
        out
    }
}

/// `key = "found" (pinned "want")` for each pin that does not hold, `; `-separated: free
/// text (redact the results first).
pub fn describe_broken(results: &[PinResult]) -> String {
    results
        .iter()
        .filter(|r| !r.held)
        .map(|r| format!("{} = {} (pinned {})", r.pin, r.found, r.want))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The pins of every file `specs` pin, for one host: paths and string values rendered with
/// `ctx`, the pins of several `[[edit]]` tables of one file together, in playbook order.
pub fn for_host(specs: &[EditSpec], ctx: &TemplateCtx) -> Result<Vec<FilePins>, EditError> {
    let mut out: Vec<FilePins> = Vec::new();
    for spec in specs.iter().filter(|s| s.has_pins()) {
        let template = |place: String| {
            let path = spec.path.clone();
            move |source| EditError::Template {
                path,
                place,
                source: Box::new(source),
            }
        };
        let path = render(&spec.path, ctx).map_err(template("`path`".into()))?;
        let format = spec.effective_format();
        let mut pins = Vec::new();
        if let Some(f) = format {
            let entries = spec.pin_entries(f).map_err(|message| EditError::Spec {
                path: spec.path.clone(),
                message,
            })?;
            for (key, value) in entries {
                let value = render_value(&value, ctx).map_err(template(format!("the pin `{key}`")))?;
                pins.push(Pin::Key(key, value));
            }
        }
        pins.extend(spec.pin_sha256.iter().map(|s| Pin::Sha256(s.to_ascii_lowercase())));
        match out.iter_mut().find(|f| f.path == path) {
            Some(f) => f.pins.extend(pins),
            None => out.push(FilePins { path, format, pins }),
        }
    }
    Ok(out)
}

fn check_one(pin: &Pin, format: Option<Format>, bytes: Option<&[u8]>) -> PinResult {
    let (name, want) = match pin {
        Pin::Key(k, v) => (k.to_string(), toml_to_json(v)),
        Pin::Sha256(s) => ("sha256".to_string(), Json::String(s.clone())),
    };
    let result = |held: bool, found: String| PinResult {
        pin: name.clone(),
        held,
        want: show(&want),
        found,
    };
    let Some(bytes) = bytes else {
        return result(false, "(the file does not exist)".into());
    };
    let key = match pin {
        Pin::Sha256(s) => {
            let sha = sha256_hex(bytes);
            return result(sha == *s, sha);
        }
        Pin::Key(k, _) => k,
    };
    let Some(format) = format else {
        return result(false, "(the file's format is unknown)".into());
    };
    let found = std::str::from_utf8(bytes)
        .map_err(|_| "the file is not UTF-8 text".to_string())
        .and_then(|text| read(format, text, key));
    match found {
        Err(why) => result(false, format!("({why})")),
        Ok(None) => result(false, "(absent)".into()),
        Ok(Some(v)) => {
            let held = if format == Format::Env {
                Json::String(plain(&want)) == v
            } else {
                same(&want, &v)
            };
            result(held, show(&v))
        }
    }
}

/// The value at `key`, as JSON (`None`: absent).
fn read(format: Format, text: &str, key: &KeyPath) -> Result<Option<Json>, String> {
    let segs = key.segments();
    match format {
        Format::Toml => {
            let doc: toml::Table = toml::from_str(text).map_err(|e| format!("not valid TOML: {}", e.message()))?;
            let root = toml::Value::Table(doc);
            Ok(walk_toml(&root, segs).map(toml_to_json))
        }
        Format::Json => {
            let doc: Json = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
            Ok(walk_json(&doc, segs).cloned())
        }
        Format::Yaml => {
            let doc: serde_norway::Value = serde_norway::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
            walk_yaml(&doc, segs)
                .map(|v| serde_json::to_value(v).map_err(|e| format!("cannot read the value: {e}")))
                .transpose()
        }
        Format::Env => Ok(super::env_set::read_env(text, &segs.join(".")).map(Json::String)),
    }
}

fn walk_toml<'v>(v: &'v toml::Value, segs: &[String]) -> Option<&'v toml::Value> {
    segs.iter().try_fold(v, |cur, seg| match cur {
        toml::Value::Table(t) => t.get(seg),
        toml::Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn walk_json<'v>(v: &'v Json, segs: &[String]) -> Option<&'v Json> {
    segs.iter().try_fold(v, |cur, seg| match cur {
        Json::Object(m) => m.get(seg),
        Json::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn walk_yaml<'v>(v: &'v serde_norway::Value, segs: &[String]) -> Option<&'v serde_norway::Value> {
    segs.iter().try_fold(v, |cur, seg| match cur {
        serde_norway::Value::Mapping(m) => m.get(seg.as_str()),
        serde_norway::Value::Sequence(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// TOML values as JSON; dates as their TOML text.
fn toml_to_json(v: &toml::Value) -> Json {
    match v {
        toml::Value::String(s) => Json::String(s.clone()),
        toml::Value::Integer(i) => Json::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        toml::Value::Boolean(b) => Json::Bool(*b),
        toml::Value::Datetime(d) => Json::String(d.to_string()),
        toml::Value::Array(a) => Json::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Json::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}

/// Equal values; numbers by value, so a pin of `1` holds for `1.0`.
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Json::Array(x), Json::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// A `.env` file holds text: a pinned number or boolean is compared as it would be written.
fn plain(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn show(v: &Json) -> String {
    v.to_string()
}

/// Load-time checks of an edit's `pins` and `pin_sha256` (called by `EditSpec::validate`).
pub(crate) fn validate(spec: &EditSpec, at: &FieldPath) -> Vec<Invalid> {
    let mut out = Vec::new();
    if let Some(sha) = &spec.pin_sha256 {
        if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
            out.push(Invalid::new(
                at.key("pin_sha256"),
                format!("{sha:?} is not a sha256: expected 64 hex digits (`sha256sum FILE` prints it)"),
            ));
        }
    }
    if matches!(spec.action(), Ok(Action::Verify)) && spec.create {
        out.push(Invalid::new(
            at.key("create"),
            "an [[edit]] with only pins never writes the file; drop `create`",
        ));
    }
    let Some(pins) = &spec.pins else { return out };
    let pat = at.key("pins");
    if pins.is_empty() {
        out.push(Invalid::new(pat, "`pins` is empty; pin a key or drop it"));
        return out;
    }
    let Some(format) = spec.effective_format() else {
        out.push(Invalid::new(
            pat,
            format!(
                "cannot tell the format of `{}` from its name, so its keys cannot be read; add \
                 `format = \"toml\"` (or \"json\", \"yaml\", \"env\"), or pin the whole file with `pin_sha256`",
                spec.path
            ),
        ));
        return out;
    };
    for (written, value) in pins {
        out.extend(check_pin(spec, format, written, value, &pat.key(written)));
    }
    out
}

/// One `pins` entry as written (`"model.name" = "x"`, or an inline table of them).
fn check_pin(spec: &EditSpec, format: Format, written: &str, value: &toml::Value, at: &FieldPath) -> Vec<Invalid> {
    let mut out = Vec::new();
    let one = EditSpec {
        pins: Some([(written.to_string(), value.clone())].into_iter().collect()),
        ..spec.clone()
    };
    let entries = match one.pin_entries(format) {
        Ok(e) => e,
        Err(message) => return vec![Invalid::new(at.clone(), message)],
    };
    for (key, v) in &entries {
        if format == Format::Env {
            check_env_key(key, at, &mut out);
        }
        if let Err(message) = check_value(format, v) {
            out.push(Invalid::new(at.clone(), message));
        }
        each_string(v, &mut |s| {
            if let Err(e) = variables(s) {
                out.push(Invalid::new(at.clone(), e.to_string()));
            }
        });
        if let Some(m) = contradiction(spec, format, key, v) {
            out.push(Invalid::new(at.clone(), m));
        }
    }
    out
}

/// A pin this very edit makes false: the key unset, or set to another literal value.
fn contradiction(spec: &EditSpec, format: Format, key: &KeyPath, pinned: &toml::Value) -> Option<String> {
    let Ok(Action::Structured { set, unset, .. }) = spec.action() else {
        return None;
    };
    if unset.iter().any(|u| key.starts_with(u)) {
        return Some(format!("`{key}` is pinned but this edit unsets it; keep one"));
    }
    let (_, set_to) = set.iter().find(|(k, _)| k == key)?;
    let mut templated = false;
    each_string(set_to, &mut |s| templated |= s.contains("{{"));
    each_string(pinned, &mut |s| templated |= s.contains("{{"));
    let differs = !templated && !same(&toml_to_json(set_to), &toml_to_json(pinned));
    let env_same = format == Format::Env && plain(&toml_to_json(set_to)) == plain(&toml_to_json(pinned));
    (differs && !env_same).then(|| {
        format!(
            "this edit sets `{key}` to {}, so a pin of {} can never hold; keep one value",
            show(&toml_to_json(set_to)),
            show(&toml_to_json(pinned))
        )
    })
}

#[cfg(test)]
#[path = "pins_tests.rs"]
mod tests;

//! `[[edit]]`: one file change described in a playbook.
//!
//! The type is plain serde so the playbook loader can deserialize it directly; semantic checks
//! live in `validate.rs` so the loader can report every problem with its field path at once.

use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::keypath::KeyPath;

/// The structured formats a `set`/`unset` edit understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// TOML, edited with toml_edit.
    Toml,
    /// JSON.
    Json,
    /// YAML block mappings, edited line by line.
    Yaml,
    /// `KEY=value` lines.
    Env,
}

impl Format {
    /// Guesses the format from a file name: `.toml`, `.json`, `.yaml`/`.yml`, and `.env`
    /// (also `prod.env` and `.env.local`-style names).
    pub fn infer(path: &str) -> Option<Format> {
        let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
        if name == ".env" || name.starts_with(".env.") {
            return Some(Format::Env);
        }
        let ext = name.rsplit_once('.')?.1;
        match ext {
            "toml" => Some(Format::Toml),
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            "env" => Some(Format::Env),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Toml => "TOML",
            Format::Json => "JSON",
            Format::Yaml => "YAML",
            Format::Env => ".env",
        })
    }
}

/// A regex replacement over the whole file text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceSpec {
    /// Rust `regex` syntax; use `(?m)` for `^`/`$` at line boundaries.
    pub pattern: String,
    /// Replacement; `$1`/`${name}` refer to captures, `{{ ... }}` to template variables.
    pub with: String,
    /// When given, the number of matches must be exactly this, else the edit fails.
    #[serde(default)]
    pub expect: Option<usize>,
}

/// One `[[edit]]` table of a playbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditSpec {
    /// Path of the file on the host; may use `{{ vars.NAME }}`-style templates, which the
    /// caller renders per host (see [`crate::edit::apply::group_by_path`]).
    pub path: String,
    /// File format for `set`/`unset`; inferred from `path` when absent.
    #[serde(default)]
    pub format: Option<Format>,
    /// Dotted key -> new value. String values may use `{{ host.name }}`-style templates.
    #[serde(default)]
    pub set: Option<IndexMap<String, toml::Value>>,
    /// Dotted keys to remove (absent keys are fine: unsetting is idempotent).
    #[serde(default)]
    pub unset: Option<Vec<String>>,
    /// Local file (relative to the playbook's folder) whose rendered contents replace the file.
    #[serde(default)]
    pub source: Option<String>,
    /// A regex replacement over the whole file.
    #[serde(default)]
    pub replace: Option<ReplaceSpec>,
    /// Whether a missing file is created (treated as empty) instead of failing.
    #[serde(default)]
    pub create: bool,
    /// Octal mode such as `"0640"` for a file this edit creates; existing files keep theirs.
    #[serde(default)]
    pub mode: Option<String>,
    /// Whether `source` contents are rendered as a template (default true); `false` copies a
    /// file that has its own `{{ ... }}` syntax (Go templates, Jinja) as it is.
    #[serde(default = "default_true")]
    pub template: bool,
    /// Values that must hold in the file after the change (`"model.name" = "x"`), checked
    /// after each host's write, at the end of the run and by `bellwether drift`; string
    /// values may use templates like `set`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pins: Option<IndexMap<String, toml::Value>>,
    /// The sha256 (lowercase hex) the whole file must have after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_sha256: Option<String>,
}

fn default_true() -> bool {
    true
}

/// Why [`EditSpec::action`] cannot tell what an edit does, and which field is at fault
/// (`""` for the `[[edit]]` table itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionError {
    /// The field at fault (`"format"`, `"set"`, `"unset"`) or `""` for the whole table.
    pub field: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn action_err(field: &'static str, message: String) -> ActionError {
    ActionError { field, message }
}

/// What an edit does, once the either-or fields are sorted out.
#[derive(Debug, Clone, PartialEq)]
pub enum Action<'a> {
    /// Change keys in a structured file.
    Structured {
        format: Format,
        set: Vec<(KeyPath, toml::Value)>,
        unset: Vec<KeyPath>,
    },
    /// Replace the whole file with a rendered local file.
    Source(&'a str),
    /// Regex replacement.
    Replace(&'a ReplaceSpec),
    /// Only `pins`/`pin_sha256`: the file is read and its pins checked, never written.
    Verify,
}

impl EditSpec {
    /// The format to use for `set`/`unset`: explicit, else inferred from `path`.
    pub fn effective_format(&self) -> Option<Format> {
        self.format.or_else(|| Format::infer(&self.path))
    }

    /// The `mode` as permission bits, if given and valid.
    pub fn mode_bits(&self) -> Option<u32> {
        self.mode.as_deref().and_then(|m| parse_mode(m).ok())
    }

    /// Where `source` lives on this machine, relative to the playbook's folder.
    pub fn source_path(&self, base_dir: &Path) -> Option<PathBuf> {
        self.source.as_deref().map(|s| base_dir.join(s))
    }

    /// Sorts out which kind of edit this is; the error says what is wrong in playbook terms.
    pub fn action(&self) -> Result<Action<'_>, ActionError> {
        let structured = self.set.is_some() || self.unset.is_some();
        let mut given = Vec::new();
        if structured {
            given.push("`set`/`unset`");
        }
        if self.source.is_some() {
            given.push("`source`");
        }
        if self.replace.is_some() {
            given.push("`replace`");
        }
        if given.len() > 1 {
            return Err(action_err(
                "",
                format!(
                    "give only one of `set`/`unset`, `source` or `replace` per [[edit]], found {}; \
                 split it into several [[edit]] tables for the same path",
                    given.join(" and ")
                ),
            ));
        }
        if let Some(source) = &self.source {
            return Ok(Action::Source(source));
        }
        if let Some(replace) = &self.replace {
            return Ok(Action::Replace(replace));
        }
        if !structured && self.has_pins() {
            return Ok(Action::Verify);
        }
        if !structured {
            return Err(action_err(
                "",
                "nothing to do: give one of `set`/`unset`, `source` or `replace` (or only \
                 `pins` to check a file without changing it)"
                    .to_string(),
            ));
        }
        let format = self.effective_format().ok_or_else(|| {
            action_err(
                "format",
                format!(
                    "cannot tell the format of `{}` from its name; add `format = \"toml\"` \
                 (or \"json\", \"yaml\", \"env\")",
                    self.path
                ),
            )
        })?;
        Ok(Action::Structured {
            format,
            set: self.set_entries(format).map_err(|m| action_err("set", m))?,
            unset: self.unset_keys(format).map_err(|m| action_err("unset", m))?,
        })
    }

    /// `set` as parsed key paths in playbook order; inline tables are flattened, so
    /// `set = { model = { name = "x" } }` means the same as `set = { "model.name" = "x" }`.
    fn set_entries(&self, format: Format) -> Result<Vec<(KeyPath, toml::Value)>, String> {
        let mut out = Vec::new();
        for (key, value) in self.set.iter().flatten() {
            flatten(parse_key(key, format)?, value, format, &mut out)?;
        }
        Ok(out)
    }

    /// Does this edit pin anything (`pins` or `pin_sha256`)?
    pub fn has_pins(&self) -> bool {
        self.pins.is_some() || self.pin_sha256.is_some()
    }

    /// `pins` as parsed key paths in playbook order, inline tables flattened as in `set`.
    pub fn pin_entries(&self, format: Format) -> Result<Vec<(KeyPath, toml::Value)>, String> {
        let mut out = Vec::new();
        for (key, value) in self.pins.iter().flatten() {
            flatten(parse_key(key, format)?, value, format, &mut out)?;
        }
        Ok(out)
    }

    fn unset_keys(&self, format: Format) -> Result<Vec<KeyPath>, String> {
        self.unset.iter().flatten().map(|k| parse_key(k, format)).collect()
    }
}

fn parse_key(key: &str, format: Format) -> Result<KeyPath, String> {
    if format == Format::Env {
        return Ok(KeyPath::single(key));
    }
    KeyPath::parse(key)
}

fn flatten(
    key: KeyPath,
    value: &toml::Value,
    format: Format,
    out: &mut Vec<(KeyPath, toml::Value)>,
) -> Result<(), String> {
    match value {
        toml::Value::Table(t) if format != Format::Env => {
            if t.is_empty() {
                return Err(format!("`{key}` is an empty table; set keys inside it instead"));
            }
            for (k, v) in t {
                let mut child = key.clone();
                child.0.push(k.clone());
                flatten(child, v, format, out)?;
            }
            Ok(())
        }
        _ => {
            out.push((key, value.clone()));
            Ok(())
        }
    }
}

/// Parses an octal permission string such as `"0640"` or `"755"`.
pub fn parse_mode(mode: &str) -> Result<u32, String> {
    let ok_len = (3..=4).contains(&mode.len());
    match u32::from_str_radix(mode, 8) {
        Ok(bits) if ok_len && bits <= 0o7777 && mode.chars().all(|c| c.is_ascii_digit()) => Ok(bits),
        _ => Err(format!(
            "`mode = \"{mode}\"` is not an octal permission; write it like \"0640\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(src: &str) -> EditSpec {
        toml::from_str(src).unwrap()
    }

    #[test]
    fn infers_format_from_path() {
        assert_eq!(Format::infer("/etc/agent/config.toml"), Some(Format::Toml));
        assert_eq!(Format::infer("a/b.JSON"), Some(Format::Json));
        assert_eq!(Format::infer("x.yml"), Some(Format::Yaml));
        assert_eq!(Format::infer("x.yaml"), Some(Format::Yaml));
        assert_eq!(Format::infer("/srv/app/.env"), Some(Format::Env));
        assert_eq!(Format::infer("/srv/app/prod.env"), Some(Format::Env));
        assert_eq!(Format::infer("/srv/app/.env.local"), Some(Format::Env));
        assert_eq!(Format::infer("/etc/agent/agent.conf"), None);
        assert_eq!(Format::infer("Makefile"), None);
    }

    #[test]
    fn deserializes_and_flattens_set() {
        let s = spec(
            r#"
            path = "/etc/agent/config.toml"
            set = { "model.name" = "sonnet", limits = { max_tokens = 4096 } }
            unset = ["model.legacy"]
            "#,
        );
        let Action::Structured { format, set, unset } = s.action().unwrap() else {
            panic!("expected structured")
        };
        assert_eq!(format, Format::Toml);
        let keys: Vec<String> = set.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(keys, ["model.name", "limits.max_tokens"]);
        assert_eq!(unset[0].to_string(), "model.legacy");
    }

    #[test]
    fn rejects_unknown_fields() {
        let r: Result<EditSpec, _> = toml::from_str("path = \"a.toml\"\nsett = {}\n");
        assert!(r.is_err());
    }

    #[test]
    fn action_reports_conflicts() {
        let s = spec("path = \"a.toml\"\nsource = \"x\"\nset = { a = 1 }\n");
        assert!(s.action().unwrap_err().message.contains("only one"));
        let s = spec("path = \"a.toml\"\n");
        assert!(s.action().unwrap_err().message.contains("nothing to do"));
        let s = spec("path = \"agent.conf\"\nset = { a = 1 }\n");
        assert!(s.action().unwrap_err().message.contains("format = "));
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0640"), Ok(0o640));
        assert_eq!(parse_mode("755"), Ok(0o755));
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("rw-r--r--").is_err());
        assert!(parse_mode("+644").is_err());
        assert!(parse_mode("07777").is_err());
    }
}

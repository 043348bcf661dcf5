//! Computing an edit: the host's current bytes in, the new bytes and their hashes out.
//!
//! Pure apart from reading `source` files: the engine reads the remote file, calls [`compute`]
//! (or [`compute_all`] for several edits of one file), shows or records the diff, and writes
//! `after` only if `changed`. Running the same edit on its own output gives `changed == false`,
//! which is what makes resumed and repeated runs safe.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::env_set::edit_env;
use super::error::{DocError, EditError};
use super::json_set::edit_json;
use super::keypath::KeyPath;
use super::replace::{regex_replace, ReplaceError};
use super::spec::{Action, EditSpec, Format};
use super::template::{render, TemplateCtx};
use super::toml_set::edit_toml;
use super::yaml_set::edit_yaml;

/// The result of computing the edits of one file for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditOutcome {
    /// The current contents (`None`: the file does not exist and will be created).
    pub before: Option<Vec<u8>>,
    /// The contents to write.
    pub after: Vec<u8>,
    /// sha256 (lowercase hex) of `before`, for "changed since the snapshot?" checks.
    pub sha_before: Option<String>,
    /// sha256 (lowercase hex) of `after`, to verify the write by reading it back.
    pub sha_after: String,
    /// Whether anything needs writing (a missing file always does).
    pub changed: bool,
    /// Permission bits for a file being created, from the creating edit's `mode`
    /// (`None`: the engine's default, e.g. 0644 under the remote umask).
    pub create_mode: Option<u32>,
}

/// sha256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Computes one edit. `current` is the file on the host (`None`: missing); `base_dir` is the
/// playbook's folder, where `source` paths are resolved.
pub fn compute(
    spec: &EditSpec,
    current: Option<&[u8]>,
    ctx: &TemplateCtx,
    base_dir: &Path,
) -> Result<EditOutcome, EditError> {
    compute_all([spec], current, ctx, base_dir)
}

/// Computes several edits of the same file in order, each on the previous one's output (a
/// file created by the first edit is there for the next). The edits should share one `path`.
pub fn compute_all<'a>(
    specs: impl IntoIterator<Item = &'a EditSpec>,
    current: Option<&[u8]>,
    ctx: &TemplateCtx,
    base_dir: &Path,
) -> Result<EditOutcome, EditError> {
    let mut state: Option<Vec<u8>> = current.map(<[u8]>::to_vec);
    let mut create_mode = None;
    let mut any = false;
    for spec in specs {
        any = true;
        if state.is_none() {
            create_mode = spec.mode_bits();
        }
        state = Some(apply_one(spec, state.as_deref(), ctx, base_dir)?);
    }
    let after = match (state, any) {
        (Some(after), true) => after,
        _ => {
            return Err(EditError::Spec {
                path: String::new(),
                message: "no edits given".to_string(),
            })
        }
    };
    Ok(EditOutcome {
        sha_before: current.map(sha256_hex),
        sha_after: sha256_hex(&after),
        changed: current != Some(after.as_slice()),
        before: current.map(<[u8]>::to_vec),
        after,
        create_mode: if current.is_none() { create_mode } else { None },
    })
}

/// A rendered path and the edits of that file, in playbook order.
pub type PathGroup<'a> = (String, Vec<&'a EditSpec>);

/// Edits grouped by their rendered path, in playbook order, so each file is read once and its
/// edits applied in turn with [`compute_all`]. Paths are rendered with `ctx`.
pub fn group_by_path<'a>(specs: &'a [EditSpec], ctx: &TemplateCtx) -> Result<Vec<PathGroup<'a>>, EditError> {
    let mut groups: Vec<PathGroup<'a>> = Vec::new();
    for spec in specs {
        let path = render(&spec.path, ctx).map_err(|source| EditError::Template {
            path: spec.path.clone(),
            place: "`path`".to_string(),
            source: Box::new(source),
        })?;
        match groups.iter_mut().find(|(p, _)| *p == path) {
            Some((_, v)) => v.push(spec),
            None => groups.push((path, vec![spec])),
        }
    }
    Ok(groups)
}

fn apply_one(
    spec: &EditSpec,
    current: Option<&[u8]>,
    ctx: &TemplateCtx,
    base_dir: &Path,
) -> Result<Vec<u8>, EditError> {
    let path = spec.path.clone();
    let current: &[u8] = match current {
        Some(bytes) => bytes,
        None if spec.create => &[],
        None if matches!(spec.action(), Ok(Action::Verify)) => return Err(EditError::PinnedMissing { path }),
        None => return Err(EditError::Missing { path }),
    };
    let action = spec.action().map_err(|e| EditError::Spec {
        path: path.clone(),
        message: e.message,
    })?;
    let template_err = |place: String| {
        let path = path.clone();
        move |source| EditError::Template {
            path,
            place,
            source: Box::new(source),
        }
    };
    match action {
        // Only pins: the file is checked against them (see `pins`), never changed.
        Action::Verify => Ok(current.to_vec()),
        Action::Source(source) => {
            let file = base_dir.join(source);
            let bytes = std::fs::read(&file).map_err(|source| EditError::Source {
                file: file.clone(),
                source,
            })?;
            // Binary sources (e.g. model files) are copied as they are: only text is a template.
            match String::from_utf8(bytes) {
                Ok(text) if !spec.template => Ok(text.into_bytes()),
                Ok(text) => Ok(render(&text, ctx)
                    .map_err(template_err(format!("source file {}", file.display())))?
                    .into_bytes()),
                Err(e) => Ok(e.into_bytes()),
            }
        }
        Action::Replace(r) => {
            let text = as_text(current, &path, "text for `replace`")?;
            let with = render(&r.with, ctx).map_err(template_err("`replace.with`".into()))?;
            match regex_replace(text, &r.pattern, &with, r.expect) {
                Ok((out, _)) => Ok(out.into_bytes()),
                Err(ReplaceError::Count {
                    pattern,
                    found,
                    expected,
                }) => Err(EditError::ReplaceCount {
                    path,
                    pattern,
                    found,
                    expected,
                }),
                Err(e @ ReplaceError::Pattern { .. }) => Err(EditError::Spec {
                    path,
                    message: e.to_string(),
                }),
            }
        }
        Action::Structured { format, set, unset } => {
            let text = as_text(current, &path, &format.to_string())?;
            let mut rendered = Vec::with_capacity(set.len());
            for (key, value) in set {
                let place = format!("the `set` value of `{key}`");
                let value = render_value(&value, ctx).map_err(template_err(place))?;
                rendered.push((key, value));
            }
            structured(format, text, &rendered, &unset)
                .map(String::into_bytes)
                .map_err(|DocError { key, message }| EditError::Document {
                    path,
                    format,
                    key,
                    message,
                })
        }
    }
}

fn structured(
    format: Format,
    text: &str,
    set: &[(KeyPath, toml::Value)],
    unset: &[KeyPath],
) -> Result<String, DocError> {
    match format {
        Format::Toml => edit_toml(text, set, unset),
        Format::Json => edit_json(text, set, unset),
        Format::Yaml => edit_yaml(text, set, unset),
        Format::Env => edit_env(text, set, unset),
    }
}

fn as_text<'b>(bytes: &'b [u8], path: &str, what: &str) -> Result<&'b str, EditError> {
    std::str::from_utf8(bytes).map_err(|_| EditError::NotText {
        path: path.to_string(),
        what: what.to_string(),
    })
}

/// Renders the templates in every string of a `set` (or `pins`) value.
pub(crate) fn render_value(
    value: &toml::Value,
    ctx: &TemplateCtx,
) -> Result<toml::Value, super::template::TemplateError> {
    Ok(match value {
        toml::Value::String(s) => toml::Value::String(render(s, ctx)?),
        toml::Value::Array(items) => {
            toml::Value::Array(items.iter().map(|v| render_value(v, ctx)).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(t) => toml::Value::Table(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, ctx)?)))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ctx() -> TemplateCtx {
        TemplateCtx {
            host_name: "use1-a".into(),
            address: "10.0.1.11".into(),
            region: Some("us-east-1".into()),
            groups: vec!["prod".into()],
            vars: BTreeMap::from([("model".to_string(), "claude-sonnet-4-5".to_string())]),
        }
    }

    fn spec(src: &str) -> EditSpec {
        toml::from_str(src).unwrap()
    }

    const CONFIG: &[u8] = b"[model]\nname = \"old\" # note\n";

    #[test]
    fn set_renders_templates_hashes_and_is_idempotent() {
        let s = spec("path = \"/etc/agent/config.toml\"\nset = { \"model.name\" = \"{{ vars.model }}\", \"agent.host\" = \"{{ host.name }}\" }\n");
        let out = compute(&s, Some(CONFIG), &ctx(), Path::new(".")).unwrap();
        let text = String::from_utf8(out.after.clone()).unwrap();
        assert_eq!(
            text,
            "[model]\nname = \"claude-sonnet-4-5\" # note\n\n[agent]\nhost = \"use1-a\"\n"
        );
        assert!(out.changed);
        assert_eq!(out.sha_before.as_deref(), Some(sha256_hex(CONFIG).as_str()));
        assert_eq!(out.sha_after, sha256_hex(&out.after));
        assert_eq!(out.sha_after.len(), 64);
        let again = compute(&s, Some(&out.after), &ctx(), Path::new(".")).unwrap();
        assert!(!again.changed);
        assert_eq!(again.after, out.after);
    }

    #[test]
    fn missing_files_need_create() {
        let s = spec("path = \"/etc/x.env\"\nset = { A = \"1\" }\n");
        let err = compute(&s, None, &ctx(), Path::new(".")).unwrap_err();
        assert!(matches!(err, EditError::Missing { .. }));
        assert!(err.to_string().contains("create = true"), "{err}");
        let s = spec("path = \"/etc/x.env\"\nset = { A = \"1\" }\ncreate = true\nmode = \"0640\"\n");
        let out = compute(&s, None, &ctx(), Path::new(".")).unwrap();
        assert_eq!(
            (out.before, out.after.as_slice(), out.changed),
            (None, &b"A=1\n"[..], true)
        );
        assert_eq!((out.sha_before, out.create_mode), (None, Some(0o640)));
    }

    #[test]
    fn source_is_rendered_relative_to_the_playbook() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("files")).unwrap();
        std::fs::write(dir.path().join("files/agent.toml"), "host = \"{{ host.name }}\"\n").unwrap();
        std::fs::write(dir.path().join("files/model.bin"), [0xff, 0xfe, 0x00]).unwrap();
        let s = spec("path = \"/etc/agent.toml\"\nsource = \"files/agent.toml\"\n");
        let out = compute(&s, Some(b"old"), &ctx(), dir.path()).unwrap();
        assert_eq!(out.after, b"host = \"use1-a\"\n");
        let s = spec("path = \"/m.bin\"\nsource = \"files/model.bin\"\n");
        assert_eq!(
            compute(&s, Some(b""), &ctx(), dir.path()).unwrap().after,
            [0xff, 0xfe, 0x00]
        );
        std::fs::write(dir.path().join("files/go.tmpl"), "{{ .Values.x }}").unwrap();
        let s = spec("path = \"/go.tmpl\"\nsource = \"files/go.tmpl\"\ntemplate = false\n");
        assert_eq!(
            compute(&s, Some(b""), &ctx(), dir.path()).unwrap().after,
            b"{{ .Values.x }}"
        );
        let s = spec("path = \"/go.tmpl\"\nsource = \"files/go.tmpl\"\n");
        let err = compute(&s, Some(b""), &ctx(), dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a variable"), "{err}");
        let s = spec("path = \"/x\"\nsource = \"files/nope\"\n");
        let err = compute(&s, Some(b""), &ctx(), dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("files/nope") && err.to_string().contains("playbook's folder"),
            "{err}"
        );
    }

    #[test]
    fn replace_and_errors_say_what_to_do() {
        let s = spec("path = \"/x.conf\"\nreplace = { pattern = 'name = \"(\\w+)\"', with = 'name = \"{{ vars.model }}\" # was $1', expect = 1 }\n");
        let out = compute(&s, Some(CONFIG), &ctx(), Path::new(".")).unwrap();
        assert_eq!(out.after, b"[model]\nname = \"claude-sonnet-4-5\" # was old # note\n");
        let s = spec("path = \"/x.conf\"\nreplace = { pattern = 'name', with = 'x', expect = 2 }\n");
        let err = compute(&s, Some(CONFIG), &ctx(), Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("matched 1 time(s) but `expect = 2`"), "{err}");
        let s = spec("path = \"/x.toml\"\nset = { a = \"{{ vars.nope }}\" }\n");
        let err = compute(&s, Some(b""), &ctx(), Path::new(".")).unwrap_err();
        assert!(
            err.to_string().contains("`vars.nope`") && err.to_string().contains("vars.model"),
            "{err}"
        );
        let s = spec("path = \"/x.toml\"\nset = { a = 1 }\n");
        let err = compute(&s, Some(&[0xff, 0xfe]), &ctx(), Path::new(".")).unwrap_err();
        assert!(matches!(err, EditError::NotText { .. }), "{err}");
        let err = compute(&s, Some(b"a = ["), &ctx(), Path::new(".")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/x.toml: cannot edit as TOML: the file is not valid TOML"),
            "{err}"
        );
    }

    #[test]
    fn several_edits_of_one_file_apply_in_turn() {
        let specs = [
            spec("path = \"/etc/{{ host.name }}.toml\"\nsource = \"/dev/null\"\ncreate = true\nmode = \"0600\"\n"),
            spec("path = \"/etc/{{ host.name }}.toml\"\nset = { \"model.name\" = \"m\" }\n"),
            spec("path = \"/etc/other.json\"\nset = { a = 1 }\n"),
        ];
        let groups = group_by_path(&specs, &ctx()).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!((groups[0].0.as_str(), groups[0].1.len()), ("/etc/use1-a.toml", 2));
        let out = compute_all(groups[0].1.iter().copied(), None, &ctx(), Path::new(".")).unwrap();
        assert_eq!(out.after, b"[model]\nname = \"m\"\n");
        assert_eq!(out.create_mode, Some(0o600));
    }
}

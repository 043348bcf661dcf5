//! Load-time checks of an `[[edit]]`, reported as [`Invalid`] with field paths so the
//! playbook loader can point at the line. Everything here is static: no host is needed.

use regex::Regex;

use super::keypath::KeyPath;
use super::spec::{parse_mode, Action, EditSpec, Format};
use super::template;
use super::value_checks::{check_env_key, check_value, each_string};
use crate::config::error::Invalid;
use crate::value::{FieldPath, Seg};

impl EditSpec {
    /// Every problem with this edit; `path` is where the edit sits (e.g. `edit[0]`).
    pub fn validate(&self, path: &FieldPath) -> Vec<Invalid> {
        let mut out = Vec::new();
        let at = |field: &str| path.key(field);
        check_path(&self.path, &at("path"), &mut out);
        match self.action() {
            Err(e) => {
                let at = if e.field.is_empty() { path.clone() } else { at(e.field) };
                out.push(Invalid::new(at, e.message));
            }
            Ok(Action::Structured { format, set, unset }) => {
                check_structured(format, &set, &unset, path, &mut out);
                // Point at `set."model.name"` as written, or `set.model.name` for nested tables.
                let written = |p: &FieldPath| {
                    let mut segs = p.0.clone();
                    let set_at = path.0.len() + 1;
                    if let Some(Seg::Key(k)) = segs.get(set_at) {
                        let literal = self.set.iter().flatten().any(|(w, _)| w == k);
                        if !literal {
                            if let Ok(kp) = KeyPath::parse(k) {
                                let keys = kp.0.into_iter().map(Seg::Key);
                                segs.splice(set_at..=set_at, keys);
                            }
                        }
                    }
                    FieldPath(segs)
                };
                for inv in out
                    .iter_mut()
                    .filter(|i| i.path.0.get(path.0.len()) == Some(&Seg::Key("set".into())))
                {
                    inv.path = written(&inv.path);
                }
            }
            Ok(Action::Verify) => {}
            Ok(Action::Source(source)) => {
                if source.trim().is_empty() {
                    out.push(Invalid::new(at("source"), "`source` is empty; name a local file"));
                }
            }
            Ok(Action::Replace(r)) => {
                let rp = at("replace");
                if r.pattern.is_empty() {
                    out.push(Invalid::new(rp.key("pattern"), "`pattern` is empty"));
                } else if let Err(e) = Regex::new(&r.pattern) {
                    out.push(Invalid::new(
                        rp.key("pattern"),
                        format!("`{}` is not a valid regex: {e}", r.pattern),
                    ));
                }
                if let Err(e) = template::variables(&r.with) {
                    out.push(Invalid::new(rp.key("with"), e.to_string()));
                }
            }
        }
        if !self.template && self.source.is_none() {
            out.push(Invalid::new(
                at("template"),
                "`template = false` only applies to `source`; drop it",
            ));
        }
        out.extend(super::pins::validate(self, path));
        if let Some(mode) = &self.mode {
            if let Err(message) = parse_mode(mode) {
                out.push(Invalid::new(at("mode"), message));
            } else if !self.create {
                out.push(Invalid::new(
                    at("mode"),
                    "`mode` only applies to a file this edit creates; add `create = true` or \
                     drop `mode` (existing files keep their mode and owner)",
                ));
            }
        }
        out
    }
}

fn check_path(p: &str, at: &FieldPath, out: &mut Vec<Invalid>) {
    if p.trim().is_empty() {
        out.push(Invalid::new(
            at.clone(),
            "`path` is empty; give the file's path on the host",
        ));
    } else if let Err(e) = template::variables(p) {
        out.push(Invalid::new(at.clone(), e.to_string()));
    } else if p.ends_with('/') {
        out.push(Invalid::new(at.clone(), "`path` names a directory; name a file"));
    }
}

fn check_structured(
    format: Format,
    set: &[(KeyPath, toml::Value)],
    unset: &[KeyPath],
    path: &FieldPath,
    out: &mut Vec<Invalid>,
) {
    if set.is_empty() && unset.is_empty() {
        out.push(Invalid::new(path.key("set"), "`set` and `unset` are both empty"));
    }
    for (key, value) in set {
        let at = path.key("set").key(&key.to_string());
        if format == Format::Env {
            check_env_key(key, &at, out);
        }
        if let Err(message) = check_value(format, value) {
            out.push(Invalid::new(at.clone(), message));
        }
        each_string(value, &mut |s| {
            if let Err(e) = template::variables(s) {
                out.push(Invalid::new(at.clone(), e.to_string()));
            }
        });
        if set.iter().filter(|(k, _)| k == key).count() > 1 {
            out.push(Invalid::new(at.clone(), format!("`{key}` is set more than once")));
        }
        for (other, _) in set {
            if other != key && other.starts_with(key) {
                out.push(Invalid::new(
                    at.clone(),
                    format!("`{key}` is set as a value and `{other}` inside it; keep one"),
                ));
            }
        }
    }
    for (i, key) in unset.iter().enumerate() {
        let at = path.key("unset").index(i);
        if format == Format::Env {
            check_env_key(key, &at, out);
        }
        if let Some((other, _)) = set.iter().find(|(s, _)| s.starts_with(key) || key.starts_with(s)) {
            out.push(Invalid::new(
                at,
                format!("`{key}` is unset while `{other}` is set; keep one"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(src: &str) -> Vec<String> {
        let spec: EditSpec = toml::from_str(src).unwrap();
        spec.validate(&FieldPath::root().key("edit").index(0))
            .into_iter()
            .map(|i| i.to_string())
            .collect()
    }

    #[test]
    fn a_good_edit_has_no_problems() {
        let p = problems("path = \"/etc/agent/config.toml\"\nset = { \"model.name\" = \"{{ vars.model }}\" }\n");
        assert!(p.is_empty(), "{p:?}");
        let p = problems("path = \"/x\"\nreplace = { pattern = 'a(\\d+)', with = 'b$1', expect = 2 }\n");
        assert!(p.is_empty(), "{p:?}");
        let p = problems("path = \"/x\"\nsource = \"files/x\"\ncreate = true\nmode = \"0640\"\n");
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn reports_each_kind_of_problem() {
        let p = problems("path = \"/x\"\nreplace = { pattern = 'a(', with = 'b' }\n");
        assert!(p[0].starts_with("field `edit[0].replace.pattern`"), "{p:?}");
        assert!(p[0].contains("unclosed group"), "{p:?}");

        let p = problems("path = \"/x.toml\"\nsource = \"s\"\nmode = \"999\"\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("octal"));

        let p = problems("path = \"/x.toml\"\nsource = \"s\"\nmode = \"0644\"\n");
        assert!(p[0].contains("create = true"), "{p:?}");

        let p = problems("path = \"/etc/agent.conf\"\nset = { a = 1 }\n");
        assert!(p[0].contains("edit[0].format") && p[0].contains("cannot tell"), "{p:?}");

        let p = problems("path = \"/x.toml\"\nset = { a = 1 }\nsource = \"s\"\n");
        assert!(p[0].contains("only one"), "{p:?}");

        let p = problems("path = \"/x.toml\"\nset = { a = \"{{ oops\" }\n");
        assert!(p[0].contains("not closed"), "{p:?}");

        let p = problems("path = \"/x.env\"\nset = { \"bad-name\" = 1 }\n");
        assert!(p[0].contains("not a valid .env"), "{p:?}");

        let p = problems("path = \"/x.json\"\nset = { a = { b = 1979-05-27 } }\n");
        assert!(
            p[0].starts_with("field `edit[0].set.a.b`") && p[0].contains("dates"),
            "{p:?}"
        );
        let p = problems("path = \"/x.json\"\nset = { \"a.b\" = 1979-05-27 }\n");
        assert!(p[0].starts_with("field `edit[0].set.a.b`"), "{p:?}");

        let p = problems("path = \"/x.toml\"\nset = { \"a.b\" = 1 }\nunset = [\"a\"]\n");
        assert!(p[0].contains("keep one"), "{p:?}");

        assert!(problems("path = \"/etc/{{ vars.x }}.toml\"\nsource = \"s\"\n").is_empty());
        let p = problems("path = \"/etc/{{ var.x }}.toml\"\nsource = \"s\"\n");
        assert!(
            p[0].contains("edit[0].path") && p[0].contains("unknown template variable"),
            "{p:?}"
        );
    }
}

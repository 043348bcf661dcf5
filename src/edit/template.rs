//! A deliberately tiny template language: `{{ host.name }}`, `{{ host.address }}`,
//! `{{ host.region }}`, `{{ host.groups }}` and `{{ vars.NAME }}`, nothing else.
//!
//! No conditionals or escapes: config files and shell commands are rendered with it, and
//! anything richer would make a typo silently render as an empty string. Every unknown name
//! is an error that lists what exists instead. The one filter, `| raw`, belongs to commands
//! (`command_template.rs`), where every other value is shell-quoted.

use std::collections::BTreeMap;

/// What a template can see about the host it is rendered for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateCtx {
    /// `host.name` (the inventory name).
    pub host_name: String,
    /// `host.address` (what SSH connects to).
    pub address: String,
    /// `host.region`; an error to use when the host has none.
    pub region: Option<String>,
    /// `host.groups`, rendered comma-separated.
    pub groups: Vec<String>,
    /// `vars.NAME`: the host's vars (fleet defaults already merged in by the caller).
    pub vars: BTreeMap<String, String>,
}

/// Why a template could not be rendered; `line` is 1-based within the template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A name that is neither a host field nor one of the host's vars.
    #[error(
        "line {line}: unknown template variable `{name}`{}; available: {}",
        .suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(),
        .available.join(", ")
    )]
    Unknown {
        name: String,
        line: usize,
        suggestion: Option<String>,
        available: Vec<String>,
    },
    /// `{{` without a matching `}}`.
    #[error("line {line}: `{{{{` is not closed by `}}}}`")]
    Unclosed { line: usize },
    /// Something between the braces that is not a variable name.
    #[error(
        "line {line}: `{{{{ {expr} }}}}` is not a variable; only `host.name`, `host.address`, \
         `host.region`, `host.groups` and `vars.NAME` can be used (no expressions; the one \
         filter is `| raw`, in commands)"
    )]
    BadExpr { expr: String, line: usize },
    /// `| raw` outside a command: nothing there is shell-quoted, so there is nothing to opt out of.
    #[error(
        "line {line}: `{{{{ {name} | raw }}}}`: `| raw` only applies to commands (apply.command, \
         apply.health, hooks, watch.log.command), where values are otherwise shell-quoted; \
         paths and file contents are never quoted, write `{{{{ {name} }}}}`"
    )]
    RawOutsideCommand { name: String, line: usize },
    /// A value in a command at a spot where no quoting can be trusted.
    #[error(
        "line {line}: `{{{{ {name} }}}}` is {why}, where bellwether cannot quote a value \
         safely; move it out (e.g. into a variable assignment `x={{{{ {name} }}}}` first), or \
         write `{{{{ {name} | raw }}}}` if the value is shell code you trust"
    )]
    Unquotable {
        name: String,
        line: usize,
        why: &'static str,
    },
    /// `host.region` used for a host without a region.
    #[error(
        "line {line}: the template uses `host.region` but host `{host}` has no region; set \
         `region` for it in fleet.toml"
    )]
    NoRegion { host: String, line: usize },
}

pub(crate) const HOST_FIELDS: [&str; 4] = ["host.name", "host.address", "host.region", "host.groups"];

/// One `{{ ... }}` occurrence.
pub(crate) struct Placeholder<'a> {
    /// Byte range of the whole `{{ ... }}` in the template.
    pub start: usize,
    pub end: usize,
    pub name: &'a str,
    pub line: usize,
    /// `{{ NAME | raw }}`: inserted into a command as it is, not quoted.
    pub raw: bool,
}

/// Renders `template` for one host.
pub fn render(template: &str, ctx: &TemplateCtx) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut last = 0;
    for p in placeholders(template)? {
        if p.raw {
            return Err(raw_outside(&p));
        }
        out.push_str(&template[last..p.start]);
        out.push_str(&lookup(&p, ctx)?);
        last = p.end;
    }
    out.push_str(&template[last..]);
    Ok(out)
}

/// Checks that `template` renders for this host without producing the text.
pub fn check(template: &str, ctx: &TemplateCtx) -> Result<(), TemplateError> {
    render(template, ctx).map(|_| ())
}

/// The variable names a template uses, checked for syntax and namespace but not against any
/// host (for load-time validation before the fleet is known).
pub fn variables(template: &str) -> Result<Vec<String>, TemplateError> {
    placeholders(template)?
        .into_iter()
        .map(|p| {
            if p.raw {
                Err(raw_outside(&p))
            } else if known_namespace(p.name) {
                Ok(p.name.to_string())
            } else {
                Err(unknown(p.name, p.line, HOST_FIELDS.iter().map(|s| s.to_string())))
            }
        })
        .collect()
}

fn raw_outside(p: &Placeholder<'_>) -> TemplateError {
    TemplateError::RawOutsideCommand {
        name: p.name.to_string(),
        line: p.line,
    }
}

/// Is `name` one a template may use (before looking at any host)?
pub(crate) fn known_namespace(name: &str) -> bool {
    HOST_FIELDS.contains(&name) || name.starts_with("vars.")
}

/// Every `{{ ... }}` in `template`, checked for syntax.
pub(crate) fn placeholders(template: &str) -> Result<Vec<Placeholder<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(rel) = template[from..].find("{{") {
        let start = from + rel;
        let line = template[..start].matches('\n').count() + 1;
        let inner_start = start + 2;
        let close = template[inner_start..]
            .find("}}")
            .ok_or(TemplateError::Unclosed { line })?;
        let inner = template[inner_start..inner_start + close].trim();
        let (name, raw) = match inner.split_once('|') {
            Some((n, f)) if f.trim() == "raw" => (n.trim(), true),
            Some(_) => ("", false),
            None => (inner, false),
        };
        if !is_name(name) {
            return Err(TemplateError::BadExpr {
                expr: inner.to_string(),
                line,
            });
        }
        let end = inner_start + close + 2;
        out.push(Placeholder {
            start,
            end,
            name,
            line,
            raw,
        });
        from = end;
    }
    Ok(out)
}

/// `ns.name` with identifier-ish characters (vars may contain `-`).
fn is_name(s: &str) -> bool {
    let Some((ns, field)) = s.split_once('.') else {
        return false;
    };
    let ident = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    ident(ns) && ident(field)
}

/// The value of one placeholder for this host.
pub(crate) fn lookup(p: &Placeholder<'_>, ctx: &TemplateCtx) -> Result<String, TemplateError> {
    let line = p.line;
    match p.name {
        "host.name" => Ok(ctx.host_name.clone()),
        "host.address" => Ok(ctx.address.clone()),
        "host.groups" => Ok(ctx.groups.join(",")),
        "host.region" => ctx.region.clone().ok_or_else(|| TemplateError::NoRegion {
            host: ctx.host_name.clone(),
            line,
        }),
        name => {
            let var = name.strip_prefix("vars.").and_then(|v| ctx.vars.get(v));
            var.cloned().ok_or_else(|| {
                let available = HOST_FIELDS
                    .iter()
                    .map(|s| s.to_string())
                    .chain(ctx.vars.keys().map(|k| format!("vars.{k}")));
                unknown(name, line, available)
            })
        }
    }
}

/// An unknown name, with the nearest of `available` suggested.
pub(crate) fn unknown(name: &str, line: usize, available: impl Iterator<Item = String>) -> TemplateError {
    let available: Vec<String> = available.collect();
    let suggestion = available
        .iter()
        .map(|a| (strsim::jaro_winkler(name, a), a))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, a)| a.clone());
    TemplateError::Unknown {
        name: name.to_string(),
        line,
        suggestion,
        available,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> TemplateCtx {
        TemplateCtx {
            host_name: "use1-a".into(),
            address: "10.0.1.11".into(),
            region: Some("us-east-1".into()),
            groups: vec!["prod".into(), "gpu".into()],
            vars: BTreeMap::from([("agent_unit".to_string(), "hermes".to_string())]),
        }
    }

    #[test]
    fn renders_host_fields_and_vars_with_or_without_spaces() {
        let out = render(
            "systemctl restart {{ vars.agent_unit }} # {{host.name}}@{{host.address}} \
             {{  host.region  }} [{{ host.groups }}]",
            &ctx(),
        )
        .unwrap();
        assert_eq!(out, "systemctl restart hermes # use1-a@10.0.1.11 us-east-1 [prod,gpu]");
        assert_eq!(render("no placeholders } {", &ctx()).unwrap(), "no placeholders } {");
    }

    #[test]
    fn unknown_variable_names_it_and_lists_what_exists() {
        let err = render("a\nb {{ vars.agent_unti }}", &ctx()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("line 2: unknown template variable `vars.agent_unti`"),
            "{msg}"
        );
        assert!(msg.contains("did you mean `vars.agent_unit`"), "{msg}");
        assert!(msg.contains("available: host.name, host.address"), "{msg}");
        assert!(msg.contains("vars.agent_unit"), "{msg}");
        let msg = render("{{ host.zone }}", &ctx()).unwrap_err().to_string();
        assert!(msg.contains("`host.zone`"), "{msg}");
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(render("x {{ vars.a ", &ctx()), Err(TemplateError::Unclosed { line: 1 }));
        let e = render("{{ vars.a | upper }}", &ctx()).unwrap_err();
        assert!(matches!(e, TemplateError::BadExpr { .. }), "{e}");
        let mut c = ctx();
        c.region = None;
        assert!(render("{{host.region}}", &c)
            .unwrap_err()
            .to_string()
            .contains("no region"));
    }

    #[test]
    fn variables_checks_without_a_host() {
        assert_eq!(
            variables("{{ vars.x }} {{ host.name }}").unwrap(),
            ["vars.x", "host.name"]
        );
        assert!(variables("{{ hosts.name }}").is_err());
        let e = variables("/etc/{{ vars.x | raw }}").unwrap_err();
        assert!(matches!(e, TemplateError::RawOutsideCommand { .. }), "{e}");
        assert!(e.to_string().contains("only applies to commands"), "{e}");
        assert!(render("{{ vars.agent_unit | raw }}", &ctx()).is_err());
        assert!(matches!(
            variables("{{ vars.x | upper }}"),
            Err(TemplateError::BadExpr { .. })
        ));
        assert!(check("{{ vars.nope }}", &ctx()).is_err());
    }
}

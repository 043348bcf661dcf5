//! Rendering a template into a shell command (`apply.command`, `apply.health`, hooks,
//! `watch.log.command`): every value is quoted for the spot it lands in, so a host var such as
//! `unit = "x; touch pwned"` is one word to the shell, never a second command.
//!
//! The quotes the command has open at each placeholder are followed by
//! [`ShellLexer`](crate::ssh::shell_lex::ShellLexer): outside quotes a value is single-quoted,
//! inside `'...'` or `"..."` it is escaped for those, so a command written the old way, with
//! its own quotes around `{{ ... }}`, still means the same. `{{ vars.cmd | raw }}` inserts a
//! value as it is, for the rare value that is meant to be shell code.

use super::template::{known_namespace, lookup, placeholders, unknown, TemplateCtx, TemplateError, HOST_FIELDS};
use crate::ssh::quote::quote_in;
use crate::ssh::shell_lex::ShellLexer;

/// Render a command template for one host, values shell-quoted unless `| raw`.
pub fn render_command(template: &str, ctx: &TemplateCtx) -> Result<String, TemplateError> {
    render_with(template, |p| lookup(p, ctx))
}

/// Check a command template without a host: syntax, names (`host.` and `vars.` only) and that
/// every quoted value lands where it can be quoted. Returns the names used with `| raw`.
pub fn check_command(template: &str) -> Result<Vec<String>, TemplateError> {
    let mut raw = Vec::new();
    for p in placeholders(template)? {
        if !known_namespace(p.name) {
            return Err(unknown(p.name, p.line, HOST_FIELDS.iter().map(|s| s.to_string())));
        }
        if p.raw {
            raw.push(p.name.to_string());
        }
    }
    // A raw value is unknown here; taken as empty, the quoting context is the template's own.
    render_with(template, |p| Ok(if p.raw { String::new() } else { "x".into() }))?;
    Ok(raw)
}

fn render_with(
    template: &str,
    mut value: impl FnMut(&super::template::Placeholder<'_>) -> Result<String, TemplateError>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut lex = ShellLexer::new();
    let mut last = 0;
    for p in placeholders(template)? {
        let literal = &template[last..p.start];
        lex.feed(literal);
        out.push_str(literal);
        let v = value(&p)?;
        let text = if p.raw {
            v
        } else {
            quote_in(lex.context(), &v).map_err(|why| TemplateError::Unquotable {
                name: p.name.to_string(),
                line: p.line,
                why,
            })?
        };
        // The lexer follows what the shell will read, raw values included.
        lex.feed(&text);
        out.push_str(&text);
        last = p.end;
    }
    out.push_str(&template[last..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::process::Command;

    fn ctx(unit: &str) -> TemplateCtx {
        TemplateCtx {
            host_name: "h01".into(),
            address: "10.0.0.1".into(),
            region: None,
            groups: vec![],
            vars: BTreeMap::from([
                ("unit".to_string(), unit.to_string()),
                ("cmd".to_string(), "echo raw; echo shell".to_string()),
            ]),
        }
    }

    fn sh(cmd: &str, dir: &std::path::Path) -> String {
        let out = Command::new("sh").arg("-c").arg(cmd).current_dir(dir).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    #[test]
    fn a_hostile_var_is_one_word_wherever_it_is_used() {
        let templates = [
            ("printf '[%s]' {{ vars.unit }}", "[{}]"),
            ("printf '[%s]' '{{ vars.unit }}'", "[{}]"),
            (
                "printf '[%s]' 'unit={{vars.unit}} on {{ host.name }}'",
                "[unit={} on h01]",
            ),
            ("printf '[%s]' \"{{ vars.unit }}\"", "[{}]"),
            ("printf '[%s]' \"$(printf %s {{ vars.unit }})\"", "[{}]"),
            ("printf '[%s]' x{{ vars.unit }}y # {{ host.name }}", "[x{}y]"),
        ];
        let values = [
            "x; touch pwned6",
            "$(touch pwned6)",
            "`touch pwned6`",
            "it's",
            "a \"b\" c",
            "back\\slash $HOME",
            "' ; touch pwned6 ; '",
            "\" ; touch pwned6 ; \"",
        ];
        for t in templates {
            for v in values {
                let d = tempfile::tempdir().unwrap();
                let cmd = render_command(t.0, &ctx(v)).unwrap();
                assert_eq!(sh(&cmd, d.path()), t.1.replace("{}", v), "{t:?} with {v:?}: {cmd}");
                assert!(!d.path().join("pwned6").exists(), "{cmd} ran the value");
            }
        }
    }

    #[test]
    fn plain_values_read_as_before() {
        let c = ctx("hermes");
        assert_eq!(
            render_command("systemctl restart {{ vars.unit }}", &c).unwrap(),
            "systemctl restart hermes"
        );
        assert_eq!(
            render_command("logger -t bw 'applied on {{ host.name }}'", &c).unwrap(),
            "logger -t bw 'applied on h01'"
        );
        assert_eq!(
            render_command("agentctl status {{ vars.unit }}", &ctx("x; touch pwned6")).unwrap(),
            "agentctl status 'x; touch pwned6'"
        );
    }

    #[test]
    fn raw_inserts_shell_code_as_it_is() {
        let d = tempfile::tempdir().unwrap();
        let cmd = render_command("{{ vars.cmd | raw }}; echo {{ vars.unit }}", &ctx("a;b")).unwrap();
        assert_eq!(cmd, "echo raw; echo shell; echo 'a;b'");
        assert_eq!(sh(&cmd, d.path()), "raw\nshell\na;b\n");
        assert_eq!(
            check_command("x {{ vars.cmd|raw }} {{ vars.unit }}").unwrap(),
            ["vars.cmd"]
        );
    }

    #[test]
    fn spots_that_cannot_be_quoted_are_errors() {
        for t in [
            "echo `echo {{ vars.unit }}`",
            "echo ${X:-{{ vars.unit }}}",
            "echo $(( {{ vars.unit }} + 1 ))",
            "cat <<EOF\n{{ vars.unit }}\nEOF",
            "echo ${{ vars.unit }}",
        ] {
            let e = check_command(t).unwrap_err();
            assert!(matches!(e, TemplateError::Unquotable { .. }), "{t}: {e}");
            assert!(e.to_string().contains("| raw"), "{e}");
        }
        // Named, but fine once the value is assigned first.
        check_command("u={{ vars.unit }}; echo \"${X:-$u}\"").unwrap();
        assert!(matches!(
            check_command("echo {{ hosts.name }}"),
            Err(TemplateError::Unknown { .. })
        ));
    }
}

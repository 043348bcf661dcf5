//! POSIX shell quoting for remote command lines: the one place a value becomes shell text.
//!
//! SSH carries one command string that the remote login shell parses, so every path or value
//! spliced into it must be quoted; single quotes are the only form with no special characters
//! inside, and an embedded `'` is written as `'\''`. A value reaches a remote script in one of
//! three ways, all of them here:
//!
//! - as a word of a command line: [`quote`], [`join`];
//! - bound to a shell variable ahead of a fixed script body: [`Script`]. The body is source
//!   text (`&'static str`) and refers to the value only as `"$name"`, so no quoting context
//!   in the body (an `echo "..."`, a here-document) can make the shell read a value as code;
//! - into a command the operator wrote (apply, health, hooks, log commands): [`quote_in`],
//!   written for the quotes the command has open at that point ([`super::shell_lex`]).

use super::shell_lex::Context;

/// Quote one word for a POSIX shell. Plain words (letters, digits, `_-./:=@%+,`) stay as they
/// are so logs stay readable; everything else is single-quoted.
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=@%+,".contains(&b));
    if plain {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Quote and join words into one command line.
pub fn join<I, S>(words: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    words
        .into_iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Wrap a shell snippet so it runs under `sh -c`, optionally through `sudo -n` (never prompts:
/// an unattended run must fail clearly rather than hang on a password).
pub fn wrap_sh(script: &str, become_root: bool) -> String {
    if become_root {
        format!("sudo -n sh -c {}", quote(script))
    } else {
        format!("sh -c {}", quote(script))
    }
}

/// `value` written so that, at `ctx` in a command, the shell reads back exactly `value` as
/// part of one word: single-quoted outside quotes, `'\''` for a quote inside single quotes,
/// backslashes before `$`, `` ` ``, `"` and `\` inside double quotes. Err says why a value
/// cannot go there.
pub fn quote_in(ctx: Context, value: &str) -> Result<String, &'static str> {
    match ctx {
        Context::Plain => Ok(quote(value)),
        Context::Single => Ok(value.replace('\'', "'\\''")),
        Context::Double => {
            let mut out = String::with_capacity(value.len());
            for c in value.chars() {
                if matches!(c, '$' | '`' | '"' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            Ok(out)
        }
        // A comment ends at a line break: one in the value would start a command.
        Context::Comment if value.chars().any(char::is_control) => {
            Err("inside a # comment, and the value holds a line break or control character")
        }
        Context::Comment => Ok(value.to_string()),
        Context::Unsupported(why) => Err(why),
    }
}

/// A remote script: values bound to shell variables first, then a body that names them.
///
/// ```text
/// path='/etc/x $(y)'
/// if [ -L "$path" ]; then ...
/// ```
#[derive(Debug, Clone, Default)]
pub struct Script {
    text: String,
}

impl Script {
    /// An empty script.
    pub fn new() -> Script {
        Script::default()
    }

    /// Bind `name` to `value` (quoted here, once). Names are lowercase identifiers chosen in
    /// the source; bind every value before the body that uses it.
    pub fn set(mut self, name: &'static str, value: &str) -> Script {
        debug_assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "shell variable name {name:?}"
        );
        self.text.push_str(name);
        self.text.push('=');
        self.text.push_str(&quote(value));
        self.text.push('\n');
        self
    }

    /// Append script text. It is source text, never formatted: values come in through
    /// [`set`](Self::set) only.
    pub fn body(mut self, code: &'static str) -> Script {
        self.text.push_str(code);
        self
    }

    /// The script's text, for `sh -c`.
    pub fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn plain_words_stay_plain() {
        assert_eq!(quote("/etc/agent/config.toml"), "/etc/agent/config.toml");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn hostile_words_round_trip_through_a_real_shell() {
        for w in [
            "a b",
            "it's",
            "$HOME",
            "`id`",
            "x\"y",
            "semi;colon && rm -rf /",
            "new\nline",
            "back\\slash",
            "'",
            "''",
        ] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(w)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), w, "word {w:?}");
        }
    }

    #[test]
    fn wrap_sh_nests_correctly() {
        let inner = format!("printf %s {}", quote("it's $x"));
        let out = Command::new("sh")
            .arg("-c")
            .arg(wrap_sh(&inner, false))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's $x");
    }

    #[test]
    fn values_quoted_for_their_context_read_back_exactly() {
        use crate::ssh::shell_lex::ShellLexer;
        let values = [
            "plain",
            "a b",
            "it's",
            "$(touch p)",
            "`id`",
            "x\"y",
            "a\\b",
            "'",
            "\\",
            "; | &",
        ];
        // (before, after): printf prints the value between them.
        let contexts = [("", ""), ("'<", ">'"), ("\"<", ">\""), ("\"$(printf %s \"<", ">\")\"")];
        for v in values {
            for (before, after) in contexts {
                let mut lex = ShellLexer::new();
                let head = format!("printf %s {before}");
                lex.feed(&head);
                let cmd = format!("{head}{}{after}", quote_in(lex.context(), v).unwrap());
                let out = Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
                let want = if before.is_empty() {
                    v.to_string()
                } else {
                    format!("<{v}>")
                };
                assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{cmd}");
            }
        }
    }

    #[test]
    fn a_script_binds_values_ahead_of_its_body() {
        let s = Script::new()
            .set("a", "it's $(touch p)")
            .set("b", "x")
            .body("printf '%s|%s' \"$a\" \"$b\"");
        let out = Command::new("sh").arg("-c").arg(s.text()).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's $(touch p)|x");
    }
}

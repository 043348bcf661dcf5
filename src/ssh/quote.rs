//! POSIX shell quoting for remote command lines.
//!
//! SSH carries one command string that the remote login shell parses, so every path or value
//! spliced into it must be quoted; single quotes are the only form with no special characters
//! inside, and an embedded `'` is written as `'\''`.

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
}

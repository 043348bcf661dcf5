//! Dotted key paths such as `model.name` or `servers."api.example.com".port`.
//!
//! Playbooks name keys the way TOML does, so the same quoting rules apply: a segment that
//! contains a dot, a quote or whitespace is written in double (or single) quotes.

use std::fmt;

/// A key path into a structured document: one segment per nesting level.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyPath(pub Vec<String>);

impl KeyPath {
    /// Parses a dotted key; quoted segments may contain dots.
    pub fn parse(s: &str) -> Result<KeyPath, String> {
        let mut segs = Vec::new();
        let mut chars = s.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let seg = match chars.peek() {
                Some('"') | Some('\'') => read_quoted(&mut chars, s)?,
                _ => {
                    let mut bare = String::new();
                    while let Some(c) = chars.next_if(|c| *c != '.') {
                        if c == '"' || c == '\'' {
                            return Err(format!("key `{s}` has a quote inside a bare segment"));
                        }
                        bare.push(c);
                    }
                    let bare = bare.trim_end().to_string();
                    if bare.is_empty() {
                        return Err(format!("key `{s}` has an empty segment"));
                    }
                    bare
                }
            };
            segs.push(seg);
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            match chars.next() {
                None => return Ok(KeyPath(segs)),
                Some('.') => {}
                Some(c) => return Err(format!("key `{s}` has `{c}` after a quoted segment")),
            }
        }
    }

    /// A path of one literal segment (for `.env` files, whose keys are flat).
    pub fn single(s: &str) -> KeyPath {
        KeyPath(vec![s.to_string()])
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// True if `prefix` is this path or one of its ancestors.
    pub fn starts_with(&self, prefix: &KeyPath) -> bool {
        self.0.starts_with(&prefix.0)
    }
}

fn read_quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, whole: &str) -> Result<String, String> {
    let quote = chars.next().unwrap_or('"');
    let mut out = String::new();
    loop {
        match chars.next() {
            None => return Err(format!("key `{whole}` has an unclosed {quote}")),
            Some(c) if c == quote => return Ok(out),
            Some('\\') if quote == '"' => match chars.next() {
                Some(c) => out.push(c),
                None => return Err(format!("key `{whole}` ends inside an escape")),
            },
            Some(c) => out.push(c),
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            let bare = !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| !c.is_whitespace() && !matches!(c, '.' | '"' | '\'' | '\\'));
            if bare {
                f.write_str(seg)?;
            } else {
                write!(f, "\"{}\"", seg.replace('\\', "\\\\").replace('"', "\\\""))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_quoted_segments() {
        assert_eq!(KeyPath::parse("model.name").unwrap().0, ["model", "name"]);
        assert_eq!(
            KeyPath::parse(r#"servers."api.example.com".port"#).unwrap().0,
            ["servers", "api.example.com", "port"]
        );
        assert_eq!(KeyPath::parse("a . 'b c'").unwrap().0, ["a", "b c"]);
        assert!(KeyPath::parse("a..b").is_err());
        assert!(KeyPath::parse("").is_err());
        assert!(KeyPath::parse("a.\"b").is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in ["model.name", r#"servers."api.example.com".port"#] {
            assert_eq!(KeyPath::parse(s).unwrap().to_string(), s);
        }
    }
}

//! Finds the byte range of the value at a key path in JSON text, so a changed scalar can be
//! replaced in place and the rest of a hand-formatted file stays byte-identical.
//!
//! The text has already been parsed by serde_json, so this scanner only needs to be right on
//! valid JSON; the caller re-parses the result and falls back to re-serializing if anything
//! looks off (e.g. duplicate keys, where serde_json keeps the last and this finds the first).

use std::ops::Range;

/// Byte range of the value at `path` (object keys, or decimal indices into arrays).
pub(crate) fn value_span(text: &str, path: &[String]) -> Option<Range<usize>> {
    let mut sc = Scanner {
        s: text.as_bytes(),
        text,
        pos: 0,
    };
    sc.descend(path)
}

struct Scanner<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        self.skip_ws();
        (self.peek() == Some(b)).then(|| self.pos += 1)
    }

    fn descend(&mut self, path: &[String]) -> Option<Range<usize>> {
        self.skip_ws();
        let Some((want, rest)) = path.split_first() else {
            let start = self.pos;
            self.skip_value()?;
            return Some(start..self.pos);
        };
        match self.peek()? {
            b'{' => {
                self.pos += 1;
                loop {
                    self.skip_ws();
                    if self.peek()? == b'}' {
                        return None;
                    }
                    let key = self.string()?;
                    self.eat(b':')?;
                    if &key == want {
                        return self.descend(rest);
                    }
                    self.skip_ws();
                    self.skip_value()?;
                    self.eat(b',')?;
                }
            }
            b'[' => {
                let index: usize = want.parse().ok()?;
                self.pos += 1;
                for i in 0.. {
                    self.skip_ws();
                    if self.peek()? == b']' {
                        return None;
                    }
                    if i == index {
                        return self.descend(rest);
                    }
                    self.skip_value()?;
                    self.eat(b',')?;
                }
                None
            }
            _ => None,
        }
    }

    /// A JSON string at the cursor, unescaped.
    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        self.skip_string()?;
        serde_json::from_str(self.text.get(start..self.pos)?).ok()
    }

    fn skip_string(&mut self) -> Option<()> {
        (self.peek()? == b'"').then_some(())?;
        self.pos += 1;
        loop {
            match self.peek()? {
                b'\\' => self.pos += 2,
                b'"' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => self.pos += 1,
            }
        }
    }

    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.skip_string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                self.pos += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
            }
            _ => {
                let start = self.pos;
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')
                ) {
                    self.pos += 1;
                }
                (self.pos > start).then_some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span<'a>(text: &'a str, path: &[&str]) -> Option<&'a str> {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        value_span(text, &path).map(|r| &text[r])
    }

    #[test]
    fn finds_nested_values() {
        let t = r#"{ "a": {"b\"q": [1, {"c": "x,}]"}, true]}, "d" : -1.5e3 }"#;
        assert_eq!(span(t, &["d"]), Some("-1.5e3"));
        assert_eq!(span(t, &["a", "b\"q", "1", "c"]), Some(r#""x,}]""#));
        assert_eq!(span(t, &["a", "b\"q", "2"]), Some("true"));
        assert_eq!(span(t, &["a"]), Some(r#"{"b\"q": [1, {"c": "x,}]"}, true]}"#));
        assert_eq!(span(t, &["a", "nope"]), None);
        assert_eq!(span(t, &["a", "b\"q", "3"]), None);
        assert_eq!(span(t, &["d", "x"]), None);
    }
}

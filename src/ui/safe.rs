//! Text a host sent, made safe to print on a terminal.
//!
//! Log lines, command output, file contents in diffs and error messages come from hosts
//! bellwether does not trust. Printed as they are, an `ESC [` sequence in a log line could
//! recolour or clear the operator's screen, rewrite the terminal's title, hide the lines
//! above it or (with some terminals) answer back on stdin; a `\r` could overwrite "FAILED"
//! with "ok". So every place that prints host-sent text goes through [`line`] or [`text`]:
//! control characters are shown as escapes (`\x1b`, `\r`, `\u{9b}`), never sent raw.

use std::borrow::Cow;
use std::fmt::Write;

/// One line of host output (`exec`'s lines): every control character escaped, newlines
/// included (a tab is kept).
pub fn line(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// A message or a document that may hold host text (progress lines, errors, a summary, a
/// diff): control characters escaped, newlines and tabs kept.
pub fn text(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\t' && !(keep_newlines && c == '\n');
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if !unsafe_char(c) {
            out.push(c);
            continue;
        }
        // Writing to a String cannot fail.
        let _ = match c {
            '\n' => out.write_str("\\n"),
            '\r' => out.write_str("\\r"),
            c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
            c => write!(out, "\\u{{{:x}}}", c as u32),
        };
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_sent() {
        assert_eq!(line("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
        assert_eq!(line("title\x1b]0;pwned\x07"), "title\\x1b]0;pwned\\x07");
        assert_eq!(line("ok\rFAILED"), "ok\\rFAILED");
        assert_eq!(line("c1 \u{9b}2J"), "c1 \\u{9b}2J");
        assert_eq!(line("a\nb"), "a\\nb");
        assert_eq!(line("\x7f"), "\\x7f");
    }

    #[test]
    fn plain_text_is_borrowed_and_text_keeps_newlines_and_tabs() {
        assert!(matches!(line("plain\ttext é ✓"), Cow::Borrowed(_)));
        assert_eq!(text("one\n\ttwo\x1b[2J\n"), "one\n\ttwo\\x1b[2J\n");
    }
}

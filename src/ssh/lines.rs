//! Splitting a host's output into lines of bounded length. A log watch passes every line of
//! every watched host through here, so a line that lies whole in one chunk (the usual case:
//! `tail -F` writes lines as the agent logs them) is handed on as a slice of that chunk, and
//! only a line split across chunks is gathered in a buffer that is reused: no allocation per
//! line. Memory stays bounded even for a host that never sends `\n`.

use std::borrow::Cow;

/// Longest line passed on from a host (log lines, `exec` output), in bytes: the rest of the
/// line is dropped and [`TRUNCATED`] marks the cut.
pub const MAX_LINE_BYTES: usize = 8 << 10;

/// Marks a line or an output that was cut at its limit.
pub const TRUNCATED: &str = "…[truncated]";

/// Splits byte chunks into complete lines of at most [`MAX_LINE_BYTES`]: a longer line is
/// passed on as soon as it reaches the limit (marked [`TRUNCATED`]) and the rest of it, up to
/// its newline, is dropped.
#[derive(Default, Debug)]
pub struct LineBuf {
    buf: Vec<u8>,
    /// The current line was cut and passed on; drop bytes until its newline.
    skipping: bool,
}

impl LineBuf {
    /// Pass every line that `data` completes to `out` (without its `\n` or a trailing `\r`).
    pub fn push(&mut self, mut data: &[u8], mut out: impl FnMut(&str)) {
        while !data.is_empty() {
            let (part, ended) = match data.iter().position(|b| *b == b'\n') {
                Some(pos) => (&data[..pos], Some(pos + 1)),
                None => (data, None),
            };
            match ended {
                // A whole line in this chunk: handed on in place.
                Some(next) if !self.skipping && self.buf.is_empty() && part.len() <= MAX_LINE_BYTES => {
                    out(&text(part));
                    data = &data[next..];
                }
                _ => data = self.gather(part, ended, data, &mut out),
            }
        }
    }

    /// The slow path: `part` continues a line begun in an earlier chunk, or is too long.
    fn gather<'a>(
        &mut self,
        part: &[u8],
        ended: Option<usize>,
        data: &'a [u8],
        out: &mut impl FnMut(&str),
    ) -> &'a [u8] {
        if !self.skipping {
            let room = MAX_LINE_BYTES - self.buf.len();
            if part.len() > room {
                self.buf.extend_from_slice(&part[..room]);
                out(&format!("{}{TRUNCATED}", text(&self.buf)));
                self.buf.clear();
                self.skipping = true;
            } else {
                self.buf.extend_from_slice(part);
            }
        }
        let Some(next) = ended else { return &[] };
        if !std::mem::take(&mut self.skipping) {
            out(&text(&self.buf));
        }
        self.buf.clear();
        &data[next..]
    }

    /// Pass on a last line that had no newline.
    pub fn flush(&mut self, mut out: impl FnMut(&str)) {
        if !self.buf.is_empty() && !self.skipping {
            out(&text(&self.buf));
        }
        self.buf.clear();
        self.skipping = false;
    }
}

/// A line's bytes as text: borrowed when they are UTF-8 (as log lines are), a trailing `\r`
/// dropped.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    match String::from_utf8_lossy(bytes) {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim_end_matches('\r')),
        Cow::Owned(s) => Cow::Owned(s.trim_end_matches('\r').to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<String> {
        let mut b = LineBuf::default();
        let mut v = Vec::new();
        for c in chunks {
            b.push(c, |l| v.push(l.to_string()));
        }
        b.flush(|l| v.push(l.to_string()));
        v
    }

    #[test]
    fn lines_split_across_chunks_and_crlf() {
        assert_eq!(lines(&[b"a\r\nb", b"c\n", b"tail"]), vec!["a", "bc", "tail"]);
        assert_eq!(lines(&[b"\n\n"]), vec!["", ""]);
        assert_eq!(lines(&[b"x\ny\n", b"z\n"]), vec!["x", "y", "z"]);
        assert_eq!(lines(&[b"bad \xff byte\n"]), vec!["bad \u{fffd} byte"]);
    }

    #[test]
    fn a_long_line_is_cut_at_the_limit_and_marked_and_the_next_line_survives() {
        let long = vec![b'x'; MAX_LINE_BYTES * 3];
        let v = lines(&[&long[..1000], &long[1000..], b"\nnext\n"]);
        assert_eq!(v.len(), 2, "{:?}", v.iter().map(String::len).collect::<Vec<_>>());
        assert_eq!(v[0].len(), MAX_LINE_BYTES + TRUNCATED.len());
        assert!(v[0].ends_with(TRUNCATED));
        assert_eq!(v[1], "next");
        // Whole in one chunk, too long all the same.
        let mut one = long.clone();
        one.extend_from_slice(b"\nafter\n");
        let v = lines(&[&one]);
        assert_eq!((v[0].len(), v[1].as_str()), (MAX_LINE_BYTES + TRUNCATED.len(), "after"));
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_kept_whole() {
        let max = vec![b'y'; MAX_LINE_BYTES];
        assert_eq!(lines(&[&max, b"\n"]), vec![String::from_utf8(max.clone()).unwrap()]);
        let mut one = max.clone();
        one.push(b'\n');
        assert_eq!(lines(&[&one]), vec![String::from_utf8(max).unwrap()]);
    }

    #[test]
    fn a_line_that_never_ends_keeps_memory_bounded() {
        let mut b = LineBuf::default();
        let mut n = 0;
        let chunk = vec![0u8; 64 << 10];
        for _ in 0..64 {
            b.push(&chunk, |_| n += 1);
            assert!(b.buf.len() <= MAX_LINE_BYTES);
        }
        assert_eq!(n, 1, "one cut line, then the rest is dropped");
    }
}

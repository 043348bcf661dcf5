//! Unified diffs of an edit for `plan`, the run record and the terminal.
//!
//! Headers are `--- a/PATH` / `+++ b/PATH` (`/dev/null` for a created file) with 3 lines of
//! context, like `git diff`, so the output can be read with familiar tools. The diff is taken
//! on the real contents and then redacted line by line: a changed secret still shows as a
//! changed line, with its value masked on both sides.

use similar::TextDiff;

use super::redact::Redactor;

/// Unified diff from `before` (`None`: the file does not exist yet) to `after`; empty when
/// nothing changes. `color` adds ANSI colours (only for a terminal).
pub fn unified_diff(path: &str, before: Option<&[u8]>, after: &[u8], redactor: &Redactor, color: bool) -> String {
    if before == Some(after) {
        return String::new();
    }
    let rel = path.trim_start_matches('/');
    let old_header = match before {
        Some(_) => format!("a/{rel}"),
        None => "/dev/null".to_string(),
    };
    let new_header = format!("b/{rel}");
    let (Ok(old), Ok(new)) = (
        std::str::from_utf8(before.unwrap_or_default()),
        std::str::from_utf8(after),
    ) else {
        return format!(
            "Binary file {path} differs ({} -> {} bytes)\n",
            before.map_or(0, <[u8]>::len),
            after.len()
        );
    };
    let diff = TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&old_header, &new_header)
        .to_string();
    let redacted = redactor.redact_text(&diff);
    if color {
        colorize(&redacted)
    } else {
        redacted
    }
}

/// Unified diff of two texts, NOT redacted (callers redact it themselves); prefer
/// [`unified_diff`], which redacts and handles missing and binary files.
pub fn unified(path: &str, before: &str, after: &str, color: bool) -> String {
    unified_diff(
        path,
        Some(before.as_bytes()),
        after.as_bytes(),
        &Redactor::none(),
        color,
    )
}

fn colorize(diff: &str) -> String {
    const RESET: &str = "\x1b[0m";
    let mut out = String::with_capacity(diff.len() + diff.len() / 4);
    for line in diff.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let code = if body.starts_with("---") || body.starts_with("+++") {
            "\x1b[1m"
        } else if body.starts_with("@@") {
            "\x1b[36m"
        } else if body.starts_with('+') {
            "\x1b[32m"
        } else if body.starts_with('-') {
            "\x1b[31m"
        } else {
            ""
        };
        if code.is_empty() {
            out.push_str(line);
        } else {
            out.push_str(code);
            out.push_str(body);
            out.push_str(RESET);
            out.push_str(&line[body.len()..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";

    #[test]
    fn git_style_headers_and_three_lines_of_context() {
        let after = BEFORE.replace("f\n", "F\n");
        let d = unified_diff(
            "/etc/x.toml",
            Some(BEFORE.as_bytes()),
            after.as_bytes(),
            &Redactor::none(),
            false,
        );
        assert_eq!(
            d,
            "--- a/etc/x.toml\n+++ b/etc/x.toml\n@@ -3,7 +3,7 @@\n c\n d\n e\n-f\n+F\n g\n h\n i\n"
        );
        assert_eq!(unified_diff("x", Some(b"same"), b"same", &Redactor::none(), false), "");
    }

    #[test]
    fn created_binary_coloured_and_redacted() {
        let d = unified_diff("/x", None, b"token = \"abc\"\n", &Redactor::default(), false);
        assert_eq!(d, "--- /dev/null\n+++ b/x\n@@ -0,0 +1 @@\n+token = \"••••\"\n");
        let d = unified_diff("/bin", Some(&[0xff, 0]), &[0xfe], &Redactor::none(), false);
        assert!(d.starts_with("Binary file /bin differs"), "{d}");
        let d = unified_diff("/x", Some(b"a\n"), b"b\n", &Redactor::none(), true);
        assert!(
            d.contains("\x1b[31m-a\x1b[0m\n") && d.contains("\x1b[32m+b\x1b[0m\n"),
            "{d:?}"
        );
    }
}

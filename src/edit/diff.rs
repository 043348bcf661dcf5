//! Unified diffs of an edit for `plan`, the run record and the terminal.
//!
//! Headers are `--- a/PATH` / `+++ b/PATH` (`/dev/null` for a created file) with 3 lines of
//! context, like `git diff`, so the output can be read with familiar tools. The diff is taken
//! on the real contents and then redacted line by line: a changed secret still shows as a
//! changed line, with its value masked on both sides.

use similar::TextDiff;

use super::redact::{Redactor, MASK};

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
    let diff = hunks(old, new, &old_header, &new_header, redactor.is_enabled());
    let redacted = redactor.redact_text(&diff);
    if color {
        colorize(&redacted)
    } else {
        redacted
    }
}

/// The unified diff text (3 lines of context, `git diff` format). With `mask_pem`, lines
/// inside a PEM private key block of either file are masked here, where the whole files are
/// known: a hunk that starts inside a block shows neither its `BEGIN` line nor (often) its
/// `END` line, so nothing in the hunk alone says its lines are key material.
fn hunks(old: &str, new: &str, old_header: &str, new_header: &str, mask_pem: bool) -> String {
    let diff = TextDiff::from_lines(old, new);
    let (pem_old, pem_new) = if mask_pem {
        (pem_body_lines(old), pem_body_lines(new))
    } else {
        (Vec::new(), Vec::new())
    };
    let secret = |v: &[bool], i: Option<usize>| i.is_some_and(|i| v.get(i) == Some(&true));
    let mut out = String::new();
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        if out.is_empty() {
            out.push_str(&format!("--- {old_header}\n+++ {new_header}\n"));
        }
        out.push_str(&format!("{}\n", hunk.header()));
        for change in hunk.iter_changes() {
            out.push_str(&change.tag().to_string());
            if secret(&pem_old, change.old_index()) || secret(&pem_new, change.new_index()) {
                out.push_str(MASK);
                if change.value().ends_with('\n') {
                    out.push('\n');
                }
            } else {
                out.push_str(change.value());
            }
            if change.missing_newline() {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
}

/// For each line of `text`: is it inside a PEM private key block (between its `BEGIN` and
/// `END` lines; to the end of the text if it never ends)?
fn pem_body_lines(text: &str) -> Vec<bool> {
    let mut inside = false;
    text.split_inclusive('\n')
        .map(|line| {
            if inside && line.contains("-----END") {
                inside = false;
                false
            } else if !inside && line.contains("-----BEGIN") && line.contains("PRIVATE KEY-----") {
                inside = true;
                false
            } else {
                inside
            }
        })
        .collect()
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
    fn a_hunk_that_starts_inside_a_pem_block_is_masked() {
        let body: String = (0..20)
            .map(|i| format!("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAA{i:02}\n"))
            .collect();
        let key = |body: &str, name: &str| {
            format!(
                "tls = 'x'\npem = \"\"\"\n-----BEGIN OPENSSH PRIVATE KEY-----\n{body}-----END OPENSSH PRIVATE KEY-----\n\"\"\"\nname = '{name}'\n"
            )
        };
        let before = key(&body, "a");
        let red = Redactor::default();
        // One body line changes far from BEGIN and END: the hunk holds only body lines.
        let after = key(&body.replace("AAAA10\n", "ZZZZ10\n"), "a");
        let d = unified_diff("/k.toml", Some(before.as_bytes()), after.as_bytes(), &red, false);
        assert!(d.starts_with("--- a/k.toml\n+++ b/k.toml\n@@ -11,7 +11,7 @@\n"), "{d}");
        assert!(!d.contains("b3Blbn") && !d.contains("ZZZZ"), "{d}");
        assert!(d.contains("\n-••••\n+••••\n"), "{d}");
        // A hunk after the block starts inside it: its body lines are masked, END and the
        // rest are shown.
        let after = key(&body, "b");
        let d = unified_diff("/k.toml", Some(before.as_bytes()), after.as_bytes(), &red, false);
        assert!(
            d.contains(" -----END OPENSSH PRIVATE KEY-----\n") && d.contains("+name = 'b'"),
            "{d}"
        );
        assert!(d.contains(" ••••\n") && !d.contains("b3Blbn"), "{d}");
        // Without redaction the diff is the plain one.
        let plain = unified_diff(
            "/k.toml",
            Some(before.as_bytes()),
            after.as_bytes(),
            &Redactor::none(),
            false,
        );
        assert!(plain.contains("b3Blbn"), "{plain}");
    }

    #[test]
    fn without_masking_the_text_is_similars_own() {
        let texts = [
            "",
            "a",
            "a\n",
            "a\nb\n",
            "a\nb",
            "x\na\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n",
            BEFORE,
        ];
        for old in texts {
            for new in texts {
                let want = TextDiff::from_lines(old, new)
                    .unified_diff()
                    .context_radius(3)
                    .header("a/x", "b/x")
                    .to_string();
                assert_eq!(hunks(old, new, "a/x", "b/x", false), want, "{old:?} -> {new:?}");
                assert_eq!(hunks(old, new, "a/x", "b/x", true), want, "no PEM: {old:?} -> {new:?}");
            }
        }
    }

    #[test]
    fn no_newline_at_end_is_marked_like_git() {
        let d = unified_diff("/x", Some(b"a\nb"), b"a\nc", &Redactor::none(), false);
        assert_eq!(
            d,
            "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"
        );
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

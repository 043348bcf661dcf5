//! Lines with their own endings, for the line-oriented editors (YAML, .env): an edit replaces
//! line text and never touches an ending it did not add, so CRLF files stay CRLF.

/// One line of the document, split from its line ending so endings survive edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub text: String,
    pub ending: String,
}

/// Splits text into lines, keeping each line's own ending (`\n`, `\r\n`, or none at the end).
pub(crate) fn split_lines(text: &str) -> Vec<Line> {
    text.split_inclusive('\n')
        .map(|l| {
            let body = l.trim_end_matches('\n').trim_end_matches('\r');
            Line {
                text: body.to_string(),
                ending: l[body.len()..].to_string(),
            }
        })
        .collect()
}

/// Joins lines back into text.
pub(crate) fn join_lines(lines: &[Line]) -> String {
    lines
        .iter()
        .flat_map(|l| [l.text.as_str(), l.ending.as_str()])
        .collect()
}

/// The line ending new lines should use: the file's own (CRLF if any line has it).
pub(crate) fn newline_of(lines: &[Line]) -> &'static str {
    if lines.iter().any(|l| l.ending == "\r\n") {
        "\r\n"
    } else {
        "\n"
    }
}

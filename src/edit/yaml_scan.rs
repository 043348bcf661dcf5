//! A line-level map of a YAML document's block mappings: which line holds which key path, where
//! its value sits on the line, and where its subtree ends.
//!
//! Only block mappings are walked into. Everything else under a key (sequences, flow
//! collections, block scalars, multi-line scalars, anchored or tagged nodes) is recorded as an
//! opaque kind so the editor can refuse to touch it instead of guessing. Structures that make
//! the whole map unreliable (tabs in indentation, several documents, directives, complex keys,
//! inconsistent indentation) are reported as a `problem`.

#[cfg(test)]
use super::lines::split_lines;
use super::lines::Line;

/// What follows `key:` on an entry's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A one-line scalar; byte range of the value (quotes included) within the line.
    Scalar { start: usize, end: usize },
    /// Nothing (or only a comment): null, or a block mapping below. `colon` is the `:` offset.
    Empty { colon: usize },
    /// A block sequence below the key.
    Sequence,
    /// `|` or `>` block scalar.
    BlockScalar,
    /// `{...}` or `[...]`.
    Flow,
    /// `&anchor`, `*alias` or `!tag`.
    Reference,
    /// A quoted or plain scalar continued on following lines.
    MultiLine,
}

impl Kind {
    /// How the kind is described in error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Scalar { .. } => "a single-line value",
            Kind::Empty { .. } => "a mapping",
            Kind::Sequence => "a block sequence (`- item` lines)",
            Kind::BlockScalar => "a block scalar (`|` or `>`)",
            Kind::Flow => "a flow collection (`{...}` or `[...]`)",
            Kind::Reference => "an anchor, alias or tag",
            Kind::MultiLine => "a scalar spread over several lines",
        }
    }
}

/// A `key:` line and the extent of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub path: Vec<String>,
    pub line: usize,
    pub indent: usize,
    pub kind: Kind,
    /// Last non-blank line belonging to this entry (its own line if it has nothing below).
    pub last_line: usize,
    /// Indentation of its child keys, once one has been seen.
    pub child_indent: Option<usize>,
}

/// The map of one document.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub entries: Vec<Entry>,
    /// The first structure this editor cannot map reliably: (0-based line, why).
    pub problem: Option<(usize, String)>,
    pub root_indent: Option<usize>,
    /// Last line holding document content (not a comment or blank).
    pub last_content: Option<usize>,
}

impl Scan {
    /// The entry at exactly this key path.
    pub fn find(&self, path: &[String]) -> Option<&Entry> {
        self.entries.iter().find(|e| e.path == path)
    }

    /// The usual indentation step of the document (2 if nothing is nested yet).
    pub fn indent_unit(&self) -> usize {
        self.entries
            .iter()
            .filter_map(|e| e.child_indent.map(|c| c.saturating_sub(e.indent)))
            .filter(|u| *u > 0)
            .min()
            .unwrap_or(2)
    }
}

/// Lines under an entry that belong to its value and are not walked into.
struct Skip {
    owner: usize,
    indent: usize,
    /// Sequence items may sit at the owner's own indentation.
    seq: bool,
    /// Deeper lines after a one-line scalar turn it into a multi-line scalar.
    continues_scalar: bool,
}

/// Maps the block mappings of `lines`.
pub(crate) fn scan(lines: &[Line]) -> Scan {
    let mut sc = Scan::default();
    let mut stack: Vec<usize> = Vec::new();
    let mut skip: Option<Skip> = None;
    let mut seen_content = false;
    for (i, line) in lines.iter().enumerate() {
        let text = line.text.as_str();
        let trimmed = text.trim_start_matches(' ');
        if trimmed.trim().is_empty() {
            continue;
        }
        let indent = text.len() - trimmed.len();
        if let Some(s) = &skip {
            let seq_item = s.seq && indent == s.indent && is_seq_item(trimmed);
            if indent > s.indent || seq_item {
                if s.continues_scalar {
                    sc.entries[s.owner].kind = Kind::MultiLine;
                }
                mark(&mut sc, &stack, i);
                continue;
            }
            skip = None;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        let fail = |sc: &mut Scan, why: &str| {
            sc.problem.get_or_insert((i, why.to_string()));
        };
        if trimmed.starts_with('\t') {
            fail(&mut sc, "tab characters in indentation");
            break;
        }
        if trimmed == "---" || trimmed.starts_with("--- ") {
            if seen_content {
                fail(&mut sc, "a second YAML document (`---`)");
                break;
            }
            continue;
        }
        if trimmed.starts_with('%') || trimmed == "..." {
            fail(&mut sc, "YAML directives or document end markers");
            break;
        }
        seen_content = true;
        if is_seq_item(trimmed) {
            while stack.last().is_some_and(|&e| sc.entries[e].indent > indent) {
                stack.pop();
            }
            match stack.last() {
                Some(&e)
                    if matches!(sc.entries[e].kind, Kind::Empty { .. }) && sc.entries[e].child_indent.is_none() =>
                {
                    sc.entries[e].kind = Kind::Sequence;
                    let indent = sc.entries[e].indent;
                    skip = Some(Skip {
                        owner: e,
                        indent,
                        seq: true,
                        continues_scalar: false,
                    });
                    mark(&mut sc, &stack, i);
                    continue;
                }
                _ => {
                    fail(&mut sc, "a sequence item (`- `) where a `key:` was expected");
                    break;
                }
            }
        }
        while stack.last().is_some_and(|&e| sc.entries[e].indent >= indent) {
            stack.pop();
        }
        let Some((key, after_colon)) = parse_key(trimmed) else {
            fail(&mut sc, "a line that is not `key: value`");
            break;
        };
        let expected = match stack.last() {
            Some(&p) => *sc.entries[p].child_indent.get_or_insert(indent),
            None => *sc.root_indent.get_or_insert(indent),
        };
        let parent_ok = stack
            .last()
            .is_none_or(|&p| matches!(sc.entries[p].kind, Kind::Empty { .. }));
        if indent != expected || !parent_ok {
            fail(&mut sc, "indentation that does not line up with the keys around it");
            break;
        }
        let kind = classify(text, indent + after_colon);
        let mut path = stack.last().map(|&p| sc.entries[p].path.clone()).unwrap_or_default();
        path.push(key);
        sc.entries.push(Entry {
            path,
            line: i,
            indent,
            kind,
            last_line: i,
            child_indent: None,
        });
        let me = sc.entries.len() - 1;
        stack.push(me);
        mark(&mut sc, &stack, i);
        if !matches!(kind, Kind::Empty { .. }) {
            let continues_scalar = matches!(kind, Kind::Scalar { .. });
            skip = Some(Skip {
                owner: me,
                indent,
                seq: false,
                continues_scalar,
            });
        }
    }
    sc
}

fn mark(sc: &mut Scan, stack: &[usize], line: usize) {
    for &e in stack {
        sc.entries[e].last_line = line;
    }
    sc.last_content = Some(line);
}

fn is_seq_item(trimmed: &str) -> bool {
    trimmed == "-" || trimmed.starts_with("- ")
}

/// The key of a `key: ...` line (unquoted) and the offset just past its colon.
fn parse_key(t: &str) -> Option<(String, usize)> {
    let colon_ok = |rest: &str| rest.starts_with(':') && rest[1..].chars().next().is_none_or(|c| c == ' ');
    match t.chars().next()? {
        q @ ('"' | '\'') => {
            let end = closing_quote(t, q)?;
            let key: String = serde_norway::from_str(&t[..=end]).ok()?;
            colon_ok(&t[end + 1..]).then_some((key, end + 2))
        }
        c if "-?[]{},!&*|>%@`#".contains(c) => None,
        _ => {
            let colon = t
                .char_indices()
                .find(|&(i, c)| c == ':' && colon_ok(&t[i..]))
                .map(|(i, _)| i)?;
            let key = t[..colon].trim_end();
            (!key.contains(" #")).then(|| (key.to_string(), colon + 1))
        }
    }
}

/// Byte offset of the quote closing the string that opens at offset 0.
pub(crate) fn closing_quote(t: &str, q: char) -> Option<usize> {
    let bytes = t.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if q == '"' => i += 2,
            b'\'' if q == '\'' && bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b if b == q as u8 => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// What the value after the colon is; `from` is the offset just past the colon.
fn classify(text: &str, from: usize) -> Kind {
    let rest = &text[from..];
    let start = from + (rest.len() - rest.trim_start().len());
    let v = &text[start..];
    match v.chars().next() {
        None | Some('#') => Kind::Empty { colon: from - 1 },
        Some('|' | '>') => Kind::BlockScalar,
        Some('{' | '[') => Kind::Flow,
        Some('&' | '*' | '!') => Kind::Reference,
        Some(q @ ('"' | '\'')) => match closing_quote(v, q) {
            Some(end) => Kind::Scalar {
                start,
                end: start + end + 1,
            },
            None => Kind::MultiLine,
        },
        Some(_) => {
            let end = v.find(" #").or_else(|| v.find("\t#")).unwrap_or(v.len());
            Kind::Scalar {
                start,
                end: start + v[..end].trim_end().len(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_str(s: &str) -> Scan {
        scan(&split_lines(s))
    }

    #[test]
    fn maps_nested_keys_and_value_ranges() {
        let text = "a:\n  b: 1 # c\n  'q k': \"x # y\"\n  seq:\n  - 1\n  - 2\nz: |\n  text\n  # not a comment\n";
        let sc = scan_str(text);
        assert!(sc.problem.is_none(), "{:?}", sc.problem);
        let lines = split_lines(text);
        let b = sc.find(&["a".into(), "b".into()]).unwrap();
        let Kind::Scalar { start, end } = b.kind else { panic!() };
        assert_eq!(&lines[b.line].text[start..end], "1");
        let q = sc.find(&["a".into(), "q k".into()]).unwrap();
        let Kind::Scalar { start, end } = q.kind else { panic!() };
        assert_eq!(&lines[q.line].text[start..end], "\"x # y\"");
        let a = sc.find(&["a".into()]).unwrap();
        assert_eq!((a.child_indent, a.last_line), (Some(2), 5));
        assert_eq!(sc.find(&["a".into(), "seq".into()]).unwrap().kind, Kind::Sequence);
        let z = sc.find(&["z".into()]).unwrap();
        assert_eq!((z.kind, z.last_line), (Kind::BlockScalar, 8));
    }

    #[test]
    fn reports_what_it_cannot_map() {
        assert!(scan_str("a: 1\n---\nb: 2\n").problem.is_some());
        assert!(scan_str("a:\n\tb: 1\n").problem.is_some());
        assert!(scan_str("- a\n- b\n").problem.is_some());
        assert!(scan_str("? complex\n: x\n").problem.is_some());
        assert!(scan_str("a:\n    b: 1\n  c: 2\n").problem.is_some());
        let sc = scan_str("a: one\n  two\nb: 2\n");
        assert_eq!(sc.find(&["a".into()]).unwrap().kind, Kind::MultiLine);
    }
}

//! Regex replacement over a whole file, with an optional exact match count.
//!
//! `expect` exists because a replacement that silently matches nothing (or twice as much as
//! intended) is the classic way a config rollout "succeeds" without changing what it should.
//! Without `expect`, any number of matches is accepted, including none (so re-running an
//! already-applied rollout is a no-op).

use regex::Regex;

/// Why a replacement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplaceError {
    /// The pattern does not compile (normally caught by `EditSpec::validate`).
    #[error("`{pattern}` is not a valid regex: {message}")]
    Pattern { pattern: String, message: String },
    /// The number of matches differs from `expect`.
    #[error("pattern `{pattern}` matched {found} time(s), expected {expected}")]
    Count {
        pattern: String,
        found: usize,
        expected: usize,
    },
}

/// Replaces every match of `pattern` in `text` with `with` (`$1`, `${name}` refer to
/// captures; write `${1}x` when a digit or letter follows). Returns the new text and the
/// number of matches.
pub fn regex_replace(
    text: &str,
    pattern: &str,
    with: &str,
    expect: Option<usize>,
) -> Result<(String, usize), ReplaceError> {
    let re = Regex::new(pattern).map_err(|e| ReplaceError::Pattern {
        pattern: pattern.to_string(),
        message: e.to_string(),
    })?;
    let found = re.find_iter(text).count();
    if let Some(expected) = expect.filter(|e| *e != found) {
        return Err(ReplaceError::Count {
            pattern: pattern.to_string(),
            found,
            expected,
        });
    }
    Ok((re.replace_all(text, with).into_owned(), found))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "model=claude-3-5-sonnet\nfallback=claude-3-haiku\n";

    #[test]
    fn replaces_with_captures_and_counts() {
        let (out, n) = regex_replace(TEXT, r"(?m)^model=(.*)$", "model=claude-sonnet-4-5 # was $1", Some(1)).unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            out,
            "model=claude-sonnet-4-5 # was claude-3-5-sonnet\nfallback=claude-3-haiku\n"
        );
        let (out, n) = regex_replace(TEXT, "claude-3", "claude-4", None).unwrap();
        assert_eq!((out.matches("claude-4").count(), n), (2, 2));
    }

    #[test]
    fn expect_mismatch_says_found_and_expected() {
        let err = regex_replace(TEXT, "claude", "x", Some(1)).unwrap_err();
        assert_eq!(err.to_string(), "pattern `claude` matched 2 time(s), expected 1");
        assert!(matches!(
            regex_replace(TEXT, "gpt", "x", Some(1)),
            Err(ReplaceError::Count { found: 0, .. })
        ));
        assert_eq!(regex_replace(TEXT, "gpt", "x", None).unwrap(), (TEXT.to_string(), 0));
        assert!(matches!(
            regex_replace(TEXT, "(", "x", None),
            Err(ReplaceError::Pattern { .. })
        ));
    }
}

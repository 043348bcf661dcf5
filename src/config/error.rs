//! Validation problems located by field path; the loader turns a path into file:line:column.

use crate::value::FieldPath;
use std::fmt;

/// A semantic problem in an input file found after parsing: which field, and what is wrong
/// (the message says what was expected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub path: FieldPath,
    pub message: String,
}

impl Invalid {
    /// A problem at `path` described by `message`.
    pub fn new(path: FieldPath, message: impl Into<String>) -> Self {
        Invalid {
            path,
            message: message.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {}", self.path, self.message)
    }
}

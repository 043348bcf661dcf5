//! A validated `[watch]` table with its regexes compiled once, shared by every observer of a
//! run (regex handles are reference-counted, so cloning one per host is cheap).

use super::spec::{BaselineSpec, MetricSpec, WatchSpec};
use crate::config::error::Invalid;
use crate::value::FieldPath;
use regex::{Regex, RegexSet};
use std::borrow::Cow;
use std::sync::Arc;

/// The `[watch]` table failed validation; each entry names its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid [watch] table:\n{}", render(.0))]
pub struct InvalidWatch(pub Vec<Invalid>);

fn render(problems: &[Invalid]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A metric with its capture regex compiled.
#[derive(Debug, Clone)]
pub struct CompiledMetric {
    /// The metric as written in the playbook.
    pub spec: MetricSpec,
    pub(crate) capture: Regex,
}

/// Masks the secrets in a line kept as evidence (the run's secret masker).
#[derive(Clone)]
pub struct LineMask(Arc<dyn Fn(&str) -> String + Send + Sync>);

impl std::fmt::Debug for LineMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LineMask")
    }
}

/// A validated watch table ready to classify lines.
#[derive(Debug, Clone)]
pub struct CompiledWatch {
    spec: WatchSpec,
    /// Applied to an error line before it is cut to length and kept: cut first, a token
    /// split at the cut no longer looks like one, and its first half would be recorded.
    mask: Option<LineMask>,
    /// One set for all patterns: one pass over the line however many patterns there are.
    pub(crate) errors: RegexSet,
    pub(crate) ignore: RegexSet,
    pub(crate) metrics: Vec<CompiledMetric>,
}

impl WatchSpec {
    /// Validate (fields located under `watch`) and compile every regex once.
    pub fn compiled(&self) -> Result<CompiledWatch, InvalidWatch> {
        let problems = self.validate(&FieldPath::root().key("watch"));
        if !problems.is_empty() {
            return Err(InvalidWatch(problems));
        }
        // validate() compiled each pattern already; a failure here would be a regex crate
        // limit on the combined set (e.g. size), reported on the list it concerns.
        let set = |key: &str, pats: &[String]| {
            RegexSet::new(pats).map_err(|e| {
                InvalidWatch(vec![Invalid::new(
                    FieldPath::root().key("watch").key(key),
                    format!("cannot compile the patterns together: {e}"),
                )])
            })
        };
        let metrics = self
            .metrics
            .iter()
            .enumerate()
            .map(|(i, m)| {
                Regex::new(&m.capture)
                    .map(|capture| CompiledMetric {
                        spec: m.clone(),
                        capture,
                    })
                    .map_err(|e| {
                        let p = FieldPath::root().key("watch").key("metrics").index(i);
                        InvalidWatch(vec![Invalid::new(p.key("capture"), e.to_string())])
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CompiledWatch {
            errors: set("errors", &self.errors)?,
            ignore: set("ignore", &self.ignore)?,
            metrics,
            spec: self.clone(),
            mask: None,
        })
    }
}

impl CompiledWatch {
    /// The table this was compiled from.
    pub fn spec(&self) -> &WatchSpec {
        &self.spec
    }

    /// The baseline comparison, when configured.
    pub fn baseline(&self) -> Option<&BaselineSpec> {
        self.spec.baseline.as_ref()
    }

    /// The compiled metrics, in playbook order.
    pub fn metrics(&self) -> &[CompiledMetric] {
        &self.metrics
    }

    /// The same watch, masking kept lines with `mask` before they are cut.
    pub fn with_mask(mut self, mask: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        self.mask = Some(LineMask(Arc::new(mask)));
        self
    }

    /// `line` with its secrets masked (as it is without a mask).
    pub fn masked<'a>(&self, line: &'a str) -> Cow<'a, str> {
        match &self.mask {
            Some(m) => Cow::Owned((m.0)(line)),
            None => Cow::Borrowed(line),
        }
    }

    /// Whether `line` is an error line: matches an `errors` pattern and no `ignore` pattern.
    pub fn is_error(&self, line: &str) -> bool {
        self.errors.is_match(line) && !self.ignore.is_match(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_a_valid_table_and_classifies_lines() {
        let w = WatchSpec {
            log: Some(super::super::spec::LogSource {
                file: Some("/x".into()),
                command: None,
            }),
            errors: vec!["ERROR".into(), "(?i)traceback".into()],
            ignore: vec!["rate limit".into()],
            ..WatchSpec::default()
        };
        let c = w.compiled().unwrap();
        assert!(c.is_error("ERROR model not found"));
        assert!(c.is_error("TRACEBACK (most recent call last)"));
        assert!(!c.is_error("ERROR 429 retrying after rate limit"));
        assert!(!c.is_error("INFO ok latency_ms=120"));
    }

    #[test]
    fn invalid_table_lists_every_problem() {
        let w = WatchSpec {
            errors: vec!["(".into()],
            ..WatchSpec::default()
        };
        let e = w.compiled().unwrap_err();
        assert_eq!(e.0.len(), 2);
        let text = e.to_string();
        assert!(
            text.starts_with("invalid [watch] table:\n  - field `watch.log`"),
            "{text}"
        );
        assert!(text.contains("field `watch.errors[0]`: invalid regex \"(\""), "{text}");
    }
}

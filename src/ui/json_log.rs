//! `--log-format json`: one JSON object a line on stderr, the same shape for every line —
//! tracing events, a run's progress lines and events, notices and the final error — so a
//! machine can follow a run with `jq` alone.
//!
//! Every line has `ts` (RFC 3339) and `level`; then, where they apply, `run_id`, `phase`,
//! `host`, `event`, `outcome`, `exit` and `message`. Fields of the enclosing tracing spans
//! (`host`, `run_id`) are lifted to the top level rather than nested, so `select(.host ==
//! "h03")` finds a host's lines whatever wrote them.

use serde_json::{Map, Value};
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// A JSON object with `ts` and `level` first.
pub fn object(level: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "ts".into(),
        Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    m.insert("level".into(), Value::String(level.into()));
    m
}

/// Write one line to stderr; a closed stderr is ignored (the run must still finish).
pub fn write_line(m: Map<String, Value>) {
    use std::io::Write;
    let mut line = Value::Object(m).to_string();
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// The tracing formatter for `--log-format json` (span fields are recorded as JSON by
/// `JsonFields`, so they can be read back here).
pub struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let mut m = object(&meta.level().as_str().to_ascii_lowercase());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                let Some(fields) = ext.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(f)) = serde_json::from_str::<Value>(&fields.fields) {
                    m.extend(f);
                }
            }
        }
        event.record(&mut Fields(&mut m));
        m.insert("target".into(), Value::String(meta.target().into()));
        writeln!(w, "{}", Value::Object(m))
    }
}

/// Collects an event's fields into the line.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::String(value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn span_fields_are_lifted_beside_the_event_fields() {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(super::JsonLine)
            .finish();
        tracing::subscriber::with_default(sub, || {
            let _s = tracing::info_span!("host", host = "h03").entered();
            tracing::warn!(attempt = 2, "reconnecting");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["level"], "warn", "{text}");
        assert_eq!(v["host"], "h03", "{text}");
        assert_eq!(v["attempt"], 2, "{text}");
        assert_eq!(v["message"], "reconnecting", "{text}");
        assert!(v["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{text}");
    }
}

//! Test helpers shared by the watch module's unit tests.

use super::compiled::CompiledWatch;
use super::spec::WatchSpec;

/// A compiled watch table from TOML lines under `[watch]`, with a file log source added.
pub(crate) fn watch(toml_src: &str) -> CompiledWatch {
    #[derive(serde::Deserialize)]
    struct Doc {
        watch: WatchSpec,
    }
    let src = format!("[watch]\nlog = {{ file = \"/var/log/agent.log\" }}\n{toml_src}");
    let doc: Doc = toml::from_str(&src).unwrap();
    doc.watch.compiled().unwrap()
}

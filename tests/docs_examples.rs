//! The examples in `docs/playbooks.md` and `docs/fleet.md` are checked here, so the reference
//! cannot drift from the code.
//!
//! Every ```toml block in those pages must parse as TOML and must be preceded by a marker
//! comment that says what else it is (the marker is an HTML comment, invisible on the page):
//!
//! - `<!-- check: fragment -->`: a piece of a file; only parsed as TOML.
//! - `<!-- check: fleet -->`: a whole fleet file, loaded with `config::load_fleet` (next to a
//!   copy of the shipped `calendar.toml`, which it may reference).
//! - `<!-- check: bad-fleet NAME -->` / `<!-- check: bad-playbook NAME -->`: a file the loader
//!   must refuse with exactly the message in the `<!-- check: error NAME -->` block.
//! - `<!-- check: playbook [NAME] -->`: a whole playbook, loaded with `config::load_playbook`
//!   against the shipped `fleet.toml`; with a NAME, its edits are also applied (see below).
//! - `<!-- check: edit NAME [path=P] [mode=M] -->`: `[[edit]]` tables, wrapped into a minimal
//!   playbook, loaded the same way, then applied.
//! - `<!-- check: selects H1,H2,... -->`: a `targets = {...}` line that must select exactly
//!   those hosts of the shipped fleet, in fleet order.
//!
//! Applying an example NAME: the edits are grouped by their rendered path (one file per
//! example), rendered for host `use1-a` of the shipped fleet, and computed with
//! `edit::compute_all` on the `<!-- check: before NAME -->` block (no such block: the file
//! does not exist). The result must equal the `<!-- check: after NAME -->` block byte for
//! byte (so the new values are there and every comment the page shows survived), or the
//! error must read exactly as the `<!-- check: error NAME -->` block. A
//! `<!-- check: diff NAME -->` block must equal the redacted unified diff, and applying the
//! edits again to their own output must change nothing, and every pin of the example
//! (`pins`, `pin_sha256`) must hold on the result. `<!-- check: file PATH -->` blocks are
//! local `source` files, written beside the playbooks first.

use bellwether::config::{load_fleet, load_playbook, LoadedFleet, Playbook, TargetSpec};
use bellwether::edit::{compute_all, group_by_path, pins, unified_diff, Redactor};
use bellwether::rollout::host::template_ctx;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The host every example is rendered for.
const HOST: &str = "use1-a";

/// One fenced code block and the marker in front of it.
struct Block {
    line: usize,
    lang: String,
    text: String,
    /// The words after `check:` (kind first), if a marker precedes the block.
    check: Option<Vec<String>>,
}

impl Block {
    fn kind(&self) -> Option<&str> {
        self.check.as_ref().and_then(|c| c.first()).map(String::as_str)
    }
    fn arg(&self, i: usize) -> Option<&str> {
        self.check.as_ref().and_then(|c| c.get(i)).map(String::as_str)
    }
    /// A `key=value` option of the marker.
    fn opt(&self, key: &str) -> Option<&str> {
        self.check
            .iter()
            .flatten()
            .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }
}

/// The fenced blocks of a Markdown page; a marker applies to the next fence if only blank
/// lines come between them.
fn blocks(doc: &str) -> Result<Vec<Block>, String> {
    let mut out = Vec::new();
    let mut pending: Option<Vec<String>> = None;
    let mut lines = doc.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("<!-- check:").and_then(|r| r.strip_suffix("-->")) {
            pending = Some(rest.split_whitespace().map(String::from).collect());
            continue;
        }
        if let Some(lang) = line.strip_prefix("```") {
            let mut text = String::new();
            let mut closed = false;
            for (_, body) in lines.by_ref() {
                if body == "```" {
                    closed = true;
                    break;
                }
                text.push_str(body);
                text.push('\n');
            }
            if !closed {
                return Err(format!("line {}: the code block is never closed", i + 1));
            }
            out.push(Block {
                line: i + 1,
                lang: lang.trim().to_string(),
                text,
                check: pending.take(),
            });
            continue;
        }
        if !t.is_empty() {
            pending = None;
        }
    }
    Ok(out)
}

/// The state shared by the checks of one page.
struct Page<'a> {
    name: &'static str,
    fleet: &'a LoadedFleet,
    /// Where playbooks and their `source` files are written.
    base: PathBuf,
    befores: BTreeMap<String, String>,
    afters: BTreeMap<String, String>,
    errors: BTreeMap<String, String>,
    diffs: BTreeMap<String, String>,
    /// Example names checked so far.
    examples: BTreeSet<String>,
    failures: Vec<String>,
}

impl Page<'_> {
    fn fail(&mut self, b: &Block, msg: impl std::fmt::Display) {
        self.failures.push(format!("docs/{}:{}: {msg}", self.name, b.line));
    }

    /// Note that example `name` exists; a second example with the same name is a mistake.
    fn example(&mut self, b: &Block, name: &str) {
        if !self.examples.insert(name.to_string()) {
            self.fail(b, format!("example name {name:?} is used twice"));
        }
    }

    /// A loader message with the temporary folder taken out, as the page shows it.
    fn shown(&self, msg: &str, dir: &Path) -> String {
        msg.replace(&format!("{}/", dir.display()), "")
    }

    fn check_fleet(&mut self, b: &Block, n: usize) {
        if b.kind() == Some("bad-fleet") {
            match b.arg(1) {
                Some(name) => self.example(b, name),
                None => return self.fail(b, "this example needs a name"),
            }
        }
        let dir = self.base.join(format!("fleet-{n}"));
        let written = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::copy(Path::new(ROOT).join("calendar.toml"), dir.join("calendar.toml")))
            .and_then(|_| std::fs::write(dir.join("fleet.toml"), &b.text));
        if let Err(e) = written {
            return self.fail(b, format!("cannot write the example: {e}"));
        }
        let result = load_fleet(&dir.join("fleet.toml"));
        match (b.kind(), result) {
            (Some("fleet"), Err(e)) => {
                let m = self.shown(&e.to_string(), &dir);
                self.fail(b, format!("the example fleet does not load: {m}"))
            }
            (Some("bad-fleet"), Ok(_)) => self.fail(b, "this broken fleet loads without an error"),
            (Some("bad-fleet"), Err(e)) => {
                let got = self.shown(&e.to_string(), &dir);
                self.expect_error(b, b.arg(1).unwrap_or_default(), &got);
            }
            _ => {}
        }
    }

    fn expect_error(&mut self, b: &Block, name: &str, got: &str) {
        match self.errors.get(name) {
            Some(want) if want.trim() == got.trim() => {}
            Some(want) => {
                let want = want.trim().to_string();
                self.fail(
                    b,
                    format!("example {name}: the error reads\n  {got}\nbut the page shows\n  {want}"),
                )
            }
            None => self.fail(
                b,
                format!("example {name}: no `check: error {name}` block; the error is\n  {got}"),
            ),
        }
    }

    /// Write a playbook (given whole, or as `[[edit]]` tables to wrap) and load it.
    fn load(&self, file: &str, text: &str) -> Result<Playbook, String> {
        let path = self.base.join(file);
        std::fs::write(&path, text).map_err(|e| format!("cannot write the example: {e}"))?;
        load_playbook(&path, &self.fleet.fleet).map_err(|e| self.shown(&e.to_string(), &self.base))
    }

    fn check_playbook(&mut self, b: &Block) {
        let name = b.arg(1).map(String::from);
        let file = match &name {
            Some(n) => format!("{n}.toml"),
            None => format!("line-{}.toml", b.line),
        };
        let text = match b.kind() {
            Some("edit") => format!(
                "id = \"doc-example\"\ntier = \"T1\"\ncomponent = \"config\"\n\n{}",
                b.text
            ),
            _ => b.text.clone(),
        };
        match &name {
            Some(n) => self.example(b, n),
            None if b.kind() != Some("playbook") => return self.fail(b, "this example needs a name"),
            None => {}
        }
        match (b.kind(), self.load(&file, &text), name) {
            (Some("bad-playbook"), Ok(_), _) => self.fail(b, "this broken playbook loads without an error"),
            (Some("bad-playbook"), Err(got), Some(n)) => self.expect_error(b, &n, &got),
            (_, Err(got), _) => self.fail(b, format!("the example does not load: {got}")),
            (_, Ok(pb), Some(n)) => self.apply(b, &n, &pb),
            (_, Ok(_), None) => {}
        }
    }

    /// Apply the example's edits for [`HOST`] and compare with the page.
    fn apply(&mut self, b: &Block, name: &str, pb: &Playbook) {
        let Some(host) = self.fleet.fleet.host(HOST) else {
            return self.fail(b, format!("the shipped fleet has no host {HOST}"));
        };
        let ctx = template_ctx(host);
        let groups = match group_by_path(&pb.edits, &ctx) {
            Ok(g) => g,
            Err(e) => return self.fail(b, format!("example {name}: {e}")),
        };
        let [(path, specs)] = groups.as_slice() else {
            return self.fail(
                b,
                format!("example {name}: edits one file per example, not {}", groups.len()),
            );
        };
        if let Some(want) = b.opt("path").filter(|p| p != path) {
            self.fail(
                b,
                format!("example {name}: the path renders as {path}, the page says {want}"),
            );
        }
        let before = self.befores.get(name).cloned();
        let result = compute_all(
            specs.iter().copied(),
            before.as_deref().map(str::as_bytes),
            &ctx,
            &self.base,
        );
        let out = match (result, self.errors.get(name).cloned()) {
            (Err(e), Some(_)) => {
                let got = self.shown(&e.to_string(), &self.base);
                return self.expect_error(b, name, &got);
            }
            (Err(e), None) => return self.fail(b, format!("example {name} fails: {e}")),
            (Ok(_), Some(_)) => return self.fail(b, format!("example {name} succeeds, the page shows an error")),
            (Ok(out), None) => out,
        };
        let after = String::from_utf8_lossy(&out.after).into_owned();
        match self.afters.get(name) {
            Some(want) if *want == after => {}
            Some(want) => {
                let want = want.clone();
                self.fail(
                    b,
                    format!("example {name}: the result is\n{after}\nbut the page shows\n{want}"),
                )
            }
            None => self.fail(
                b,
                format!("example {name}: no `check: after {name}` block; the result is\n{after}"),
            ),
        }
        if let Some(mode) = b.opt("mode") {
            let want = u32::from_str_radix(mode, 8).ok();
            if out.create_mode != want {
                self.fail(
                    b,
                    format!("example {name}: create mode {:?}, expected {mode}", out.create_mode),
                );
            }
        }
        if let Some(want) = self.diffs.get(name).cloned() {
            let got = unified_diff(
                path,
                before.as_deref().map(str::as_bytes),
                &out.after,
                &Redactor::default(),
                false,
            );
            if got != want {
                self.fail(
                    b,
                    format!("example {name}: the diff is\n{got}\nbut the page shows\n{want}"),
                );
            }
        }
        let pins = pins::for_host(&pb.edits, &ctx).unwrap_or_default();
        for fp in pins.iter().filter(|f| f.path == *path) {
            let broken = pins::describe_broken(&fp.check(Some(&out.after)));
            if !broken.is_empty() {
                self.fail(
                    b,
                    format!("example {name}: a pin does not hold on the result: {broken}"),
                );
            }
        }
        match compute_all(specs.iter().copied(), Some(&out.after), &ctx, &self.base) {
            Ok(again) if !again.changed => {}
            Ok(_) => self.fail(b, format!("example {name}: applying it twice changes the file again")),
            Err(e) => self.fail(b, format!("example {name}: applying it to its own result fails: {e}")),
        }
    }

    fn check_selects(&mut self, b: &Block) {
        let want: Vec<String> = b
            .arg(1)
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let spec = toml::from_str::<toml::Table>(&b.text)
            .map_err(|e| e.to_string())
            .and_then(|t| t.get("targets").cloned().ok_or_else(|| "no `targets` key".to_string()))
            .and_then(|v| v.try_into::<TargetSpec>().map_err(|e| e.to_string()));
        match spec {
            Err(e) => self.fail(b, format!("not a targets table: {e}")),
            Ok(spec) => {
                let got: Vec<String> = spec.resolve(&self.fleet.fleet).iter().map(|h| h.name.clone()).collect();
                if got != want {
                    self.fail(b, format!("selects {got:?}, the page says {want:?}"));
                }
            }
        }
    }
}

/// Check one page; returns the failures and the example names seen.
fn check_page(name: &'static str, fleet: &LoadedFleet) -> (Vec<String>, BTreeSet<String>) {
    let path = Path::new(ROOT).join("docs").join(name);
    let doc = match std::fs::read_to_string(&path) {
        Ok(d) => d,
        Err(e) => return (vec![format!("cannot read {}: {e}", path.display())], BTreeSet::new()),
    };
    let blocks = match blocks(&doc) {
        Ok(b) => b,
        Err(e) => return (vec![format!("docs/{name}: {e}")], BTreeSet::new()),
    };
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let mut page = Page {
        name,
        fleet,
        base: tmp.path().to_path_buf(),
        befores: BTreeMap::new(),
        afters: BTreeMap::new(),
        errors: BTreeMap::new(),
        diffs: BTreeMap::new(),
        examples: BTreeSet::new(),
        failures: Vec::new(),
    };
    // Inputs, expectations and source files first: examples may come before or after them.
    for b in &blocks {
        let (Some(kind), Some(arg)) = (b.kind(), b.arg(1)) else {
            continue;
        };
        let slot = match kind {
            "before" => &mut page.befores,
            "after" => &mut page.afters,
            "error" => &mut page.errors,
            "diff" => &mut page.diffs,
            "file" => {
                let dest = page.base.join(arg);
                let written = dest
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|_| std::fs::write(&dest, &b.text));
                if let Err(e) = written {
                    page.fail(b, format!("cannot write {arg}: {e}"));
                }
                continue;
            }
            _ => continue,
        };
        if slot.insert(arg.to_string(), b.text.clone()).is_some() {
            page.fail(b, format!("a second `{kind} {arg}` block"));
        }
    }
    let mut fleets = 0;
    for b in &blocks {
        if b.lang == "toml" {
            if let Err(e) = toml::from_str::<toml::Table>(&b.text) {
                page.fail(b, format!("not valid TOML: {e}"));
                continue;
            }
            if b.check.is_none() {
                page.fail(b, "a ```toml block without a `<!-- check: ... -->` marker");
                continue;
            }
        }
        match b.kind() {
            Some("fleet") | Some("bad-fleet") => {
                fleets += 1;
                page.check_fleet(b, fleets);
            }
            Some("playbook") | Some("bad-playbook") | Some("edit") => page.check_playbook(b),
            Some("selects") => page.check_selects(b),
            Some("fragment") | Some("before") | Some("after") | Some("error") | Some("diff") | Some("file") | None => {}
            Some(other) => page.fail(b, format!("unknown check kind {other:?}")),
        }
    }
    // Every expectation must belong to an example that was checked (catches typos in names).
    let named: Vec<(&str, String)> = [
        ("before", &page.befores),
        ("after", &page.afters),
        ("error", &page.errors),
        ("diff", &page.diffs),
    ]
    .iter()
    .flat_map(|(kind, m)| m.keys().map(move |k| (*kind, k.clone())))
    .collect();
    for (kind, n) in named {
        if !page.examples.contains(&n) {
            page.failures
                .push(format!("docs/{name}: `check: {kind} {n}` belongs to no example"));
        }
    }
    (page.failures, page.examples)
}

fn shipped_fleet() -> LoadedFleet {
    match load_fleet(&Path::new(ROOT).join("fleet.toml")) {
        Ok(f) => f,
        Err(e) => panic!("the shipped fleet.toml does not load: {e}"),
    }
}

fn assert_clean(failures: &[String]) {
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n\n"));
}

fn assert_has(seen: &BTreeSet<String>, page: &str, names: &[&str]) {
    let missing: Vec<&&str> = names.iter().filter(|n| !seen.contains(**n)).collect();
    assert!(missing.is_empty(), "docs/{page} lost the checked examples {missing:?}");
}

#[test]
fn playbook_reference_examples_load_and_apply() {
    let fleet = shipped_fleet();
    let (failures, seen) = check_page("playbooks.md", &fleet);
    assert_clean(&failures);
    // One checked example per edit kind, so losing a marker cannot make this pass vacuously.
    assert_has(
        &seen,
        "playbooks.md",
        &[
            "model-swap",
            "toml-set",
            "toml-unset",
            "json-set",
            "json-add",
            "yaml-set",
            "yaml-refused",
            "env-set",
            "source",
            "source-unknown-variable",
            "source-verbatim",
            "replace",
            "replace-expect",
            "create",
            "missing-file",
            "templated-path",
            "redacted-diff",
            "bad-batches",
            "pinned",
            "pins-only",
            "bad-pin",
            "bad-region-plan",
        ],
    );
}

#[test]
fn fleet_reference_examples_load() {
    let fleet = shipped_fleet();
    let (failures, seen) = check_page("fleet.md", &fleet);
    assert_clean(&failures);
    assert_has(&seen, "fleet.md", &["duplicate-address", "unknown-field"]);
}

#[test]
fn marker_parsing_finds_blocks_and_markers() {
    let doc = "text\n<!-- check: edit demo path=/x -->\n\n```toml\na = 1\n```\n<!-- check: fragment -->\nprose\n```text\nb\n```\n";
    let bs = match blocks(doc) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(bs.len(), 2);
    assert_eq!(
        (bs[0].kind(), bs[0].arg(1), bs[0].opt("path")),
        (Some("edit"), Some("demo"), Some("/x"))
    );
    assert_eq!((bs[0].lang.as_str(), bs[0].text.as_str()), ("toml", "a = 1\n"));
    assert!(
        bs[1].check.is_none(),
        "prose between a marker and a block cancels the marker"
    );
    assert!(blocks("```toml\nnever closed\n").is_err());
}

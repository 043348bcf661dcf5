//! `plan`'s diffs grouped by the change itself: hosts whose hunks add and remove the same
//! lines share one block even when the lines around the change differ (an `id = "h07"` next
//! to the edited key would otherwise give every host its own block).

use serde::Serialize;

/// Hosts that get the same change, and how to show it once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffGroup {
    /// In plan order.
    pub hosts: Vec<String>,
    /// The first host's diff; context lines that differ within the group start with `~`
    /// instead of a space, hunk headers whose line numbers differ end with a note.
    pub diff: String,
    /// Hosts whose full diff (context included) is not the first host's.
    pub context_differs: Vec<String>,
}

/// What identifies a change: file headers, removed and added lines, hunk boundaries; not the
/// context lines or the line numbers.
fn change_key(diff: &str) -> Vec<&str> {
    diff.lines()
        .filter(|l| !l.starts_with(' ') && !l.is_empty())
        .map(|l| if l.starts_with("@@") { "@@" } else { l })
        .collect()
}

/// Group `(host, diff)` pairs (in plan order) by their change.
pub fn group(diffs: &[(String, String)]) -> Vec<DiffGroup> {
    let mut groups: Vec<(Vec<&str>, Vec<usize>)> = Vec::new();
    for (i, (_, d)) in diffs.iter().enumerate() {
        let key = change_key(d);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    groups
        .into_iter()
        .map(|(_, members)| {
            let texts: Vec<&str> = members.iter().map(|&i| diffs[i].1.as_str()).collect();
            DiffGroup {
                hosts: members.iter().map(|&i| diffs[i].0.clone()).collect(),
                diff: merged(&texts),
                context_differs: members
                    .iter()
                    .skip(1)
                    .filter(|&&i| diffs[i].1 != texts[0])
                    .map(|&i| diffs[i].0.clone())
                    .collect(),
            }
        })
        .collect()
}

/// The first text, with its lines that are not the same at the same place in every other
/// text marked: a context line gets `~` for its leading space, a hunk header a note.
fn merged(texts: &[&str]) -> String {
    let Some((first, rest)) = texts.split_first() else {
        return String::new();
    };
    let others: Vec<Vec<&str>> = rest.iter().map(|t| t.lines().collect()).collect();
    let mut out: Vec<String> = Vec::new();
    for (i, line) in first.lines().enumerate() {
        let same = others.iter().all(|o| o.get(i) == Some(&line));
        out.push(match line {
            _ if same => line.to_string(),
            l if l.starts_with("@@") => format!("{l}  (line numbers differ per host)"),
            l if l.starts_with(' ') => format!("~{}", &l[1..]),
            l => l.to_string(),
        });
    }
    let mut s = out.join("\n");
    if first.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// The block header: `h01..h12 (12 hosts): same diff`, or `same change` with where the
/// context differs.
pub fn header(g: &DiffGroup, order: &[String]) -> String {
    use crate::ui::hosts::host_range;
    if g.hosts.len() == 1 {
        return g.hosts[0].clone();
    }
    let who = host_range(&g.hosts, order);
    if g.context_differs.is_empty() {
        return format!("{who}: same diff");
    }
    let where_ = if g.context_differs.len() + 1 == g.hosts.len() {
        "per host".to_string()
    } else {
        format!("on {}", host_range(&g.context_differs, order))
    };
    format!(
        "{who}: same change (context differs {where_}; lines marked ~ are {}'s)",
        g.hosts[0]
    )
}

/// Files whose diff only adds lines: nothing that existed is replaced, which is what a
/// misspelt key in `set` (`model.nmae`) looks like. Worth a look before rolling.
pub fn only_additions(diff: &str) -> Vec<String> {
    let mut out = Vec::new();
    for file in diff.split("\n--- ").filter(|f| !f.trim().is_empty()) {
        let name = file
            .lines()
            .find_map(|l| l.strip_prefix("+++ "))
            .unwrap_or("?")
            .trim_start_matches("b/")
            .to_string();
        let body = file.lines().skip_while(|l| !l.starts_with("@@"));
        let (mut plus, mut minus) = (0, 0);
        for l in body {
            if l.starts_with('+') {
                plus += 1;
            } else if l.starts_with('-') {
                minus += 1;
            }
        }
        let existed = !file.contains("/dev/null");
        if plus > 0 && minus == 0 && existed {
            out.push(format!(
                "{name}: the change only adds lines, it replaces no existing value; if you meant to change a key, check its spelling in `set`"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(id: &str, old: &str) -> String {
        format!(
            "--- a/c.toml\n+++ b/c.toml\n@@ -1,3 +1,3 @@\n [model]\n id = \"{id}\"\n-name = \"{old}\"\n+name = \"new\"\n"
        )
    }

    #[test]
    fn the_same_change_with_other_context_is_one_group() {
        let diffs: Vec<(String, String)> = (1..=4)
            .map(|i| (format!("h0{i}"), diff(&format!("h0{i}"), "old")))
            .chain([("h05".to_string(), diff("h05", "other"))])
            .collect();
        let g = group(&diffs);
        assert_eq!(g.len(), 2, "{g:?}");
        assert_eq!(g[0].hosts, ["h01", "h02", "h03", "h04"]);
        assert_eq!(g[0].context_differs, ["h02", "h03", "h04"]);
        assert!(
            g[0].diff.contains("\n [model]\n~id = \"h01\"\n-name = \"old\"\n"),
            "{}",
            g[0].diff
        );
        assert_eq!(g[1].hosts, ["h05"]);
        assert_eq!(g[1].diff, diffs[4].1, "a group of one is shown as it is");
        let order: Vec<String> = (1..=5).map(|i| format!("h0{i}")).collect();
        assert_eq!(
            header(&g[0], &order),
            "h01..h04 (4 hosts): same change (context differs per host; lines marked ~ are h01's)"
        );
        assert_eq!(header(&g[1], &order), "h05");
    }

    #[test]
    fn identical_diffs_are_said_to_be_the_same_and_numbers_are_flagged() {
        let a = diff("x", "old");
        let b = a.replace("@@ -1,3 +1,3 @@", "@@ -9,3 +9,3 @@");
        let g = group(&[("h01".into(), a.clone()), ("h02".into(), a.clone()), ("h03".into(), b)]);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].context_differs, ["h03"]);
        assert!(
            g[0].diff.contains("@@ -1,3 +1,3 @@  (line numbers differ per host)"),
            "{}",
            g[0].diff
        );
        let order = vec!["h01".to_string(), "h02".into(), "h03".into()];
        assert_eq!(
            header(&g[0], &order),
            "h01, h02, h03: same change (context differs on h03; lines marked ~ are h01's)"
        );
        let same = group(&[("h01".into(), a.clone()), ("h02".into(), a)]);
        assert_eq!(header(&same[0], &order), "h01, h02: same diff");
    }
}

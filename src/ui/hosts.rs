//! Host lists for people: `h01..h12 except h05 (11 hosts)` instead of eleven names, and
//! identical per-host texts (errors, slots) said once for the hosts that share them.

/// Compress a list of host names for display, in `order` (the fleet's order).
///
/// Up to three hosts are listed by name. More become a range `first..last (n hosts)`; a
/// range with single hosts missing names them next to it (`h01..h12 except h05 (11
/// hosts)`), since a bare `h01..h12` would claim h05 too. Longer gaps split the list into
/// runs (`h01..h04, h09..h12 (8 hosts)`).
pub fn host_range(hosts: &[String], order: &[String]) -> String {
    let pos = |h: &String| order.iter().position(|o| o == h);
    let mut sorted: Vec<&String> = hosts.iter().collect();
    // Names not in `order` keep their place after the known ones.
    sorted.sort_by_key(|h| pos(h).unwrap_or(usize::MAX));
    if sorted.len() <= 3 || sorted.iter().any(|h| pos(h).is_none()) {
        return join(&sorted);
    }
    let mut runs: Vec<Vec<&String>> = Vec::new();
    for h in sorted.iter().copied() {
        let follows = runs
            .last()
            .and_then(|r| r.last())
            .and_then(|prev| pos(prev))
            .zip(pos(h))
            .is_some_and(|(q, p)| q + 1 == p);
        match runs.last_mut() {
            Some(run) if follows => run.push(h),
            _ => runs.push(vec![h]),
        }
    }
    let n = hosts.len();
    let (first, last) = (sorted[0], sorted[n - 1]);
    let span = pos(first).unwrap_or(0)..=pos(last).unwrap_or(0);
    let missing: Vec<&String> = order[span].iter().filter(|o| !hosts.contains(o)).collect();
    // Every gap a single host: name the exceptions.
    if missing.len() + 1 == runs.len() && missing.len() <= 3 {
        if missing.is_empty() {
            return format!("{first}..{last} ({n} hosts)");
        }
        return format!("{first}..{last} except {} ({n} hosts)", join(&missing));
    }
    let ranged = runs.iter().any(|r| r.len() > 3);
    let parts: Vec<String> = runs
        .iter()
        .map(|r| match r.as_slice() {
            [a, .., b] if r.len() > 3 => format!("{a}..{b}"),
            _ => join(r),
        })
        .collect();
    if ranged {
        format!("{} ({n} hosts)", parts.join(", "))
    } else {
        parts.join(", ")
    }
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// Group `(host, text)` pairs by identical text, in order of first appearance; each group's
/// hosts in the order given.
pub fn group_same(items: &[(String, String)]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (h, text) in items {
        match groups.iter_mut().find(|(t, _)| t == text) {
            Some((_, hs)) => hs.push(h.clone()),
            None => groups.push((text.clone(), vec![h.clone()])),
        }
    }
    groups
}

/// Per-host errors for a message, identical ones said once:
/// `  h01..h12 (12 hosts): same error: agent/config.toml: the file does not exist on the host`.
pub fn grouped_errors(items: &[(String, String)], order: &[String]) -> Vec<String> {
    group_same(items)
        .into_iter()
        .map(|(e, hosts)| match hosts.as_slice() {
            [one] => format!("  {one}: {e}"),
            _ => format!("  {}: same error: {e}", host_range(&hosts, order)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ranges_only_cover_hosts_that_are_really_there() {
        let order: Vec<String> = (1..=10).map(|i| format!("h{i:02}")).collect();
        let all_but = |skip: &[usize]| -> Vec<String> {
            order
                .iter()
                .enumerate()
                .filter(|(i, _)| !skip.contains(&(i + 1)))
                .map(|(_, h)| h.clone())
                .collect()
        };
        assert_eq!(host_range(&all_but(&[]), &order), "h01..h10 (10 hosts)");
        assert_eq!(host_range(&all_but(&[1]), &order), "h02..h10 (9 hosts)");
        assert_eq!(host_range(&all_but(&[5]), &order), "h01..h10 except h05 (9 hosts)");
        assert_eq!(
            host_range(&all_but(&[2, 9]), &order),
            "h01..h10 except h02, h09 (8 hosts)"
        );
        // A longer gap: runs, not a list of exceptions.
        assert_eq!(
            host_range(&all_but(&[5, 6, 7]), &order),
            "h01..h04, h08, h09, h10 (7 hosts)"
        );
        assert_eq!(
            host_range(&all_but(&[2, 4, 6, 8, 10]), &order),
            "h01, h03, h05, h07, h09"
        );
        assert_eq!(host_range(&names(&["h01", "h04"]), &order), "h01, h04");
        assert_eq!(host_range(&names(&["h01", "h02", "h03"]), &order), "h01, h02, h03");
        assert_eq!(host_range(&names(&["h07"]), &order), "h07");
        assert_eq!(
            host_range(&names(&["h04", "h02", "h03", "h01"]), &order),
            "h01..h04 (4 hosts)"
        );
        assert_eq!(host_range(&[], &order), "");
    }

    #[test]
    fn identical_errors_are_said_once() {
        let order = names(&["h01", "h02", "h03", "h04", "h05"]);
        let missing = "agent/config.toml: the file does not exist on the host".to_string();
        let mut items: Vec<(String, String)> = order.iter().map(|h| (h.clone(), missing.clone())).collect();
        items[2].1 = "connection refused".into();
        assert_eq!(
            grouped_errors(&items, &order),
            vec![
                format!("  h01..h05 except h03 (4 hosts): same error: {missing}"),
                "  h03: connection refused".to_string(),
            ]
        );
    }
}

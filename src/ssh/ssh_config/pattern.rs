//! OpenSSH's patterns (`*`, `?`, `!negation`, case-insensitive host names) and the `Match`
//! criteria bellwether evaluates.

/// `*` and `?` wildcards only (no character classes, unlike `glob`), whole-string match.
pub(super) fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matching with one backtrack point: linear in practice, no recursion.
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A `Host` line's patterns against `name`: a matching `!pattern` excludes it whatever else
/// matches; otherwise any matching pattern includes it. Case-insensitive, as ssh lowercases
/// the host name.
pub(super) fn host_line(patterns: &[String], name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let mut hit = false;
    for p in patterns {
        let p = p.to_ascii_lowercase();
        match p.strip_prefix('!') {
            Some(neg) if wildcard(neg, &name) => return false,
            Some(_) => {}
            None => hit |= wildcard(&p, &name),
        }
    }
    hit
}

/// A comma-separated pattern list (`Match host a*,!ab`), same rules as a `Host` line.
pub(super) fn list(patterns: &str, name: &str) -> bool {
    let v: Vec<String> = patterns.split(',').map(str::to_string).collect();
    host_line(&v, name)
}

/// What a `Match` criterion is compared with.
pub(super) struct Subject<'a> {
    /// The host name after any `HostName` so far.
    pub host: &'a str,
    /// The name looked up.
    pub original: &'a str,
    /// The remote user so far.
    pub user: &'a str,
    pub local_user: &'a str,
}

/// How a `Match` line turned out.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum MatchLine {
    Yes,
    No,
    /// Every criterion bellwether evaluates matched, but this one it does not evaluate: the
    /// block is skipped (OpenSSH might have applied it).
    Unsupported(String),
    /// Not a valid `Match` line (the block is skipped).
    Invalid(String),
}

/// Evaluate a `Match` line's arguments. `all` must stand alone; every other criterion takes
/// one argument; `!` negates.
pub(super) fn match_line(args: &[String], s: &Subject<'_>) -> MatchLine {
    if args.is_empty() {
        return MatchLine::Invalid("Match needs criteria (e.g. `Match host web-*` or `Match all`)".into());
    }
    let mut unsupported: Option<String> = None;
    let mut all_true = true;
    let mut i = 0;
    while i < args.len() {
        let raw = args[i].as_str();
        let (negate, word) = match raw.strip_prefix('!') {
            Some(w) => (true, w.to_ascii_lowercase()),
            None => (false, raw.to_ascii_lowercase()),
        };
        i += 1;
        if word == "all" {
            if args.len() > 1 {
                return MatchLine::Invalid("`Match all` cannot be combined with other criteria".into());
            }
            return if negate { MatchLine::No } else { MatchLine::Yes };
        }
        if matches!(word.as_str(), "canonical" | "final") {
            unsupported.get_or_insert(word);
            continue;
        }
        let Some(arg) = args.get(i) else {
            return MatchLine::Invalid(format!("Match {word} needs an argument"));
        };
        i += 1;
        let hit = match word.as_str() {
            "host" => list(arg, s.host),
            "originalhost" => list(arg, s.original),
            "user" => list(arg, s.user),
            "localuser" => list(arg, s.local_user),
            "exec" | "localnetwork" | "tagged" | "version" | "sessiontype" | "command" => {
                unsupported.get_or_insert(word);
                continue;
            }
            other => return MatchLine::Invalid(format!("unknown Match criterion `{other}`")),
        };
        all_true &= hit != negate;
    }
    match (all_true, unsupported) {
        (false, _) => MatchLine::No,
        (true, Some(u)) => MatchLine::Unsupported(u),
        (true, None) => MatchLine::Yes,
    }
}

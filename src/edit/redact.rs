//! Hiding secrets in anything bellwether prints or records: `set` maps, diffs, logs.
//!
//! Conservative on purpose: a value is hidden when its key merely looks secret (`api_key_ref =
//! "env:ANTHROPIC_KEY"` is only a reference, but it is hidden too), and token-shaped strings
//! (`Bearer ...`, `sk-...`, GitHub/Slack/AWS/Google/Hugging Face tokens, JWTs, passwords in
//! URLs, PEM private keys) are hidden wherever they appear. Diffs are redacted line by line
//! after diffing, so a changed secret still shows up as a changed (masked) line.

use std::sync::OnceLock;

use indexmap::IndexMap;
use regex::{Captures, Regex};

/// What a hidden value is replaced with.
pub const MASK: &str = "••••";

/// Key names treated as secret unless the playbook says otherwise.
pub const DEFAULT_SECRET_KEYS: &str = r"(?i)key|token|secret|passw(or)?d|credential|auth";

/// Redacts values of secret-looking keys and token-shaped strings.
#[derive(Debug, Clone)]
pub struct Redactor {
    keys: Vec<Regex>,
    enabled: bool,
}

impl Default for Redactor {
    fn default() -> Self {
        // Both the default pattern and an empty extra list are valid; fall back to "no key
        // patterns, tokens still redacted" rather than panic if that ever changes.
        Redactor::with_defaults(&[] as &[&str]).unwrap_or(Redactor {
            keys: Vec::new(),
            enabled: true,
        })
    }
}

impl Redactor {
    /// Exactly these key-name patterns (plus the built-in token shapes).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, regex::Error> {
        let keys = patterns
            .iter()
            .map(|p| Regex::new(p.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Redactor { keys, enabled: true })
    }

    /// The default key pattern plus `extra` ones (e.g. from a playbook's `redact = [...]`).
    pub fn with_defaults<S: AsRef<str>>(extra: &[S]) -> Result<Self, regex::Error> {
        let mut all = vec![DEFAULT_SECRET_KEYS.to_string()];
        all.extend(extra.iter().map(|s| s.as_ref().to_string()));
        Redactor::new(&all)
    }

    /// A redactor that changes nothing (for an explicit `--show-secrets`).
    pub fn none() -> Self {
        Redactor {
            keys: Vec::new(),
            enabled: false,
        }
    }

    /// Whether this redactor hides anything (false for [`Redactor::none`]).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// True if a key (dotted or not) names a secret.
    pub fn is_secret_key(&self, key: &str) -> bool {
        self.enabled && self.keys.iter().any(|re| re.is_match(key))
    }

    /// A copy of a `set` map fit for display: values under secret keys become [`MASK`].
    pub fn redact_set(&self, set: &IndexMap<String, toml::Value>) -> IndexMap<String, toml::Value> {
        set.iter().map(|(k, v)| (k.clone(), self.redact_value(k, v))).collect()
    }

    fn redact_value(&self, key: &str, v: &toml::Value) -> toml::Value {
        match v {
            _ if self.is_secret_key(key) => toml::Value::String(MASK.to_string()),
            toml::Value::Table(t) => toml::Value::Table(
                t.iter()
                    .map(|(k, v)| (k.clone(), self.redact_value(&format!("{key}.{k}"), v)))
                    .collect(),
            ),
            toml::Value::String(s) => toml::Value::String(self.redact_line(s)),
            other => other.clone(),
        }
    }

    /// Redacts every line of a text (a diff, a log excerpt, a file); PEM private key blocks
    /// are masked whole.
    pub fn redact_text(&self, text: &str) -> String {
        if !self.enabled {
            return text.to_string();
        }
        let mut in_pem = false;
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let body = line.trim_end_matches(['\n', '\r']);
            let ending = &line[body.len()..];
            if in_pem {
                in_pem = !body.contains("-----END");
                let marker = body.chars().next().filter(|c| matches!(c, '+' | '-' | ' '));
                if in_pem {
                    out.extend(marker);
                    out.push_str(MASK);
                    out.push_str(ending);
                    continue;
                }
            } else if body.contains("-----BEGIN") && body.contains("PRIVATE KEY-----") {
                in_pem = true;
            }
            out.push_str(&self.redact_line(body));
            out.push_str(ending);
        }
        out
    }

    /// Redacts one line: `KEY = value`, `KEY: value`, `"KEY": "value"`, `KEY=value` with a
    /// secret key (also after a diff marker, `export ` or `- `), and token-shaped strings.
    pub fn redact_line(&self, line: &str) -> String {
        if !self.enabled {
            return line.to_string();
        }
        let p = patterns();
        let mut out = line.to_string();
        if let Some(re) = &p.quoted {
            out = re
                .replace_all(&out, |c: &Captures<'_>| {
                    if self.is_secret_key(unquote(&c["k"])) {
                        let q = &c["v"][..1];
                        format!("{}{}{q}{MASK}{q}", &c["k"], &c["s"])
                    } else {
                        c[0].to_string()
                    }
                })
                .into_owned();
        }
        if let Some(re) = &p.bare {
            out = re
                .replace(&out, |c: &Captures<'_>| {
                    if self.is_secret_key(unquote(&c["k"])) {
                        let rest = c.name("rest").map_or("", |m| m.as_str());
                        format!("{}{}{}{MASK}{rest}", &c["lead"], &c["k"], &c["s"])
                    } else {
                        c[0].to_string()
                    }
                })
                .into_owned();
        }
        // `password=x` inside a log line (logfmt, a query string, a command line): only the
        // value, up to the next space or separator, is hidden.
        if let Some(re) = &p.mid {
            out = re
                .replace_all(&out, |c: &Captures<'_>| {
                    if self.is_secret_key(&c["k"]) && !c["v"].starts_with(MASK) {
                        format!("{}{}{MASK}", &c["k"], &c["s"])
                    } else {
                        c[0].to_string()
                    }
                })
                .into_owned();
        }
        for (re, with) in &p.tokens {
            out = re.replace_all(&out, *with).into_owned();
        }
        out
    }

    /// Redacts a parser's error text that quotes the source (toml_edit prints the offending
    /// line as `3 | api_key = sk_live_…`): each quoted source line is masked as a line, and as
    /// a whole after a secret key's `=` even when it does not parse (an unterminated string).
    pub fn redact_source_snippet(&self, text: &str) -> String {
        if !self.enabled {
            return text.to_string();
        }
        let Some(re) = &patterns().snippet else {
            return self.redact_text(text);
        };
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let body = line.trim_end_matches(['\n', '\r']);
            match re.captures(body) {
                Some(c) => {
                    out.push_str(&c["gutter"]);
                    out.push_str(&self.redact_assignment(&c["src"]));
                }
                None => out.push_str(&self.redact_line(body)),
            }
            out.push_str(&line[body.len()..]);
        }
        out
    }

    /// One source line that may not parse: after the first secret key and its `=` or `:`,
    /// everything is hidden; otherwise the line is redacted as usual.
    fn redact_assignment(&self, line: &str) -> String {
        let secret_at = patterns().assign.as_ref().and_then(|re| {
            re.captures_iter(line)
                .find(|c| self.is_secret_key(unquote(&c["k"])))
                .and_then(|c| c.get(0))
                .map(|m| m.end())
        });
        match secret_at {
            Some(end) => format!("{}{MASK}", &line[..end]),
            None => self.redact_line(line),
        }
    }
}

fn unquote(k: &str) -> &str {
    k.trim_matches(|c| c == '"' || c == '\'')
}

struct Patterns {
    /// `key <sep> "value"` anywhere on a line.
    quoted: Option<Regex>,
    /// `key <sep> value` for a whole line with an unquoted value.
    bare: Option<Regex>,
    /// `key=value` anywhere in a line, the value up to a space or a separator.
    mid: Option<Regex>,
    /// A source line quoted in a parser's error (`12 | text`).
    snippet: Option<Regex>,
    /// `key <sep>` anywhere, for source lines that may not parse.
    assign: Option<Regex>,
    tokens: Vec<(Regex, &'static str)>,
}

const KEY: &str = r#"(?P<k>"[^"\n]*"|'[^'\n]*'|[A-Za-z_][A-Za-z0-9_.\-]*)(?P<s>[ \t]*[:=][ \t]*)"#;

const TOKENS: [(&str, &str); 10] = [
    (r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=\-]{8,}", "${1} ••••"),
    (r"\bsk-[A-Za-z0-9_\-]{8,}", "sk-••••"),
    (r"\b([sr]k)_(live|test)_[A-Za-z0-9]{8,}", "${1}_${2}_••••"),
    (r"\b(ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{10,}", "${1}_••••"),
    (r"\bxox[abprs]-[A-Za-z0-9\-]{10,}", "••••"),
    (r"\bAKIA[0-9A-Z]{16}\b", "••••"),
    (r"\bAIza[0-9A-Za-z_\-]{30,}", "••••"),
    (r"\bhf_[A-Za-z0-9]{20,}", "hf_••••"),
    (
        r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        "••••",
    ),
    (r"([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]+):[^@/\s]+@", "${1}:••••@"),
];

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        // These are literals covered by tests; one failing to compile would drop only that
        // pattern (the `compiles_every_pattern` test catches it) instead of panicking.
        let re = |s: &str| Regex::new(s).ok();
        Patterns {
            quoted: re(&format!(r#"{KEY}(?P<v>"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"#)),
            bare: re(&format!(
                r#"^(?P<lead>[+\- ]?[ \t]*(?:export[ \t]+|-[ \t]+)?){KEY}(?P<v>[^ \t"'#\n][^\n]*?)(?P<rest>[ \t]+#[^\n]*|,)?[ \t]*$"#
            )),
            mid: re(r#"(?P<k>[A-Za-z_][A-Za-z0-9_.\-]*)(?P<s>[ \t]*=[ \t]*)(?P<v>[^\s"'`,;&)\]}>]+)"#),
            assign: re(KEY),
            snippet: re(r"^(?P<gutter>[ \t]*[0-9]+[ \t]*\|[ \t]?)(?P<src>.*)$"),
            tokens: TOKENS.iter().filter_map(|(p, w)| Regex::new(p).ok().map(|r| (r, *w))).collect(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(line: &str) -> String {
        Redactor::default().redact_line(line)
    }

    #[test]
    fn compiles_every_pattern() {
        let p = patterns();
        assert!(p.quoted.is_some() && p.bare.is_some() && p.mid.is_some() && p.snippet.is_some() && p.assign.is_some());
        assert_eq!(p.tokens.len(), TOKENS.len());
    }

    #[test]
    fn redacts_secret_keys_in_every_syntax() {
        assert_eq!(r(r#"api_key = "sk-ant-abcdef123456""#), r#"api_key = "••••""#);
        assert_eq!(
            r(r#"api_key_ref = "env:ANTHROPIC_KEY"  # never inline"#),
            r#"api_key_ref = "••••"  # never inline"#
        );
        assert_eq!(r(r#"  "apiKey": "abc","#), r#"  "apiKey": "••••","#);
        assert_eq!(r(r#"  "token": 12345,"#), r#"  "token": ••••,"#);
        assert_eq!(r("  password: hunter2 # old"), "  password: •••• # old");
        assert_eq!(r("export GITHUB_TOKEN=abc123"), "export GITHUB_TOKEN=••••");
        assert_eq!(r("  - client_secret: xyz"), "  - client_secret: ••••");
        assert_eq!(
            r(r#"fallback = { name = "m", api_key = 'k' }"#),
            r#"fallback = { name = "m", api_key = '••••' }"#
        );
        assert_eq!(r(r#"model = "claude-sonnet-4-5""#), r#"model = "claude-sonnet-4-5""#);
        assert_eq!(r("name: keyless-but-fine"), "name: keyless-but-fine");
    }

    #[test]
    fn redacts_token_shapes_anywhere() {
        assert_eq!(
            r("curl -H 'Authorization: Bearer abcdefghijkl'"),
            "curl -H 'Authorization: Bearer ••••'"
        );
        assert_eq!(r("error from sk-proj-abcdefghij12 key"), "error from sk-•••• key");
        assert_eq!(
            r("url = https://bob:pa55@db.internal/x"),
            "url = https://bob:••••@db.internal/x"
        );
        assert_eq!(r("hf_abcdefghijklmnopqrstuvwxyz in log"), "hf_•••• in log");
        assert_eq!(r("AKIAABCDEFGHIJKLMNOP"), "••••");
    }

    #[test]
    fn redacts_secret_keys_mid_line() {
        assert_eq!(
            r("ERROR login failed password=hunter2 user=bob"),
            "ERROR login failed password=•••• user=bob"
        );
        assert_eq!(
            r("GET /v1?api_key=abc123&model=m 200"),
            "GET /v1?api_key=••••&model=m 200"
        );
        assert_eq!(r("run --auth-token=xyz --verbose"), "run --auth-token=•••• --verbose");
        assert_eq!(r("set secret = s3cr3t now"), "set secret = •••• now");
        assert_eq!(r("model=claude latency_ms=12"), "model=claude latency_ms=12");
        assert_eq!(r(r#"api_key = "sk-ant-abcdef123456""#), r#"api_key = "••••""#);
        assert_eq!(
            r("stripe sk_live_abcdef123456 rk_test_ABCDEFGH99"),
            "stripe sk_live_•••• rk_test_••••"
        );
    }

    #[test]
    fn redacts_source_lines_quoted_in_parse_errors() {
        let red = Redactor::default();
        let err = "TOML parse error at line 3, column 11\n  |\n3 | api_key = sk_live_abcdef123456\n  |           ^\ninvalid string\n";
        let out = red.redact_source_snippet(err);
        assert!(!out.contains("sk_live_abc"), "{out}");
        assert!(out.contains("3 | api_key = ••••\n"), "{out}");
        let unterminated = "1 | token = \"half a secret\n  |        ^\n";
        assert_eq!(
            red.redact_source_snippet(unterminated),
            "1 | token = ••••\n  |        ^\n"
        );
        let inline = "2 | db = { password = \"pw123\n";
        assert_eq!(red.redact_source_snippet(inline), "2 | db = { password = ••••\n");
        let plain = "4 | model = \"claude\"\nexpected newline\n";
        assert_eq!(red.redact_source_snippet(plain), plain);
    }

    #[test]
    fn redacts_diffs_and_pem_blocks() {
        let diff = "--- a/etc/agent/config.toml\n+++ b/etc/agent/config.toml\n@@ -1,3 +1,3 @@\n [provider]\n-api_key_ref = \"env:ANTHROPIC_KEY\"\n+api_key_ref = \"env:OPENAI_KEY\"\n name = \"x\"\n";
        let out = Redactor::default().redact_text(diff);
        assert!(
            out.contains("-api_key_ref = \"••••\"\n+api_key_ref = \"••••\"\n"),
            "{out}"
        );
        assert!(!out.contains("ANTHROPIC") && !out.contains("OPENAI"), "{out}");
        assert!(out.starts_with("--- a/etc/agent/config.toml\n+++ b/etc/agent/config.toml\n@@ -1,3 +1,3 @@\n"));
        let pem =
            "+-----BEGIN OPENSSH PRIVATE KEY-----\n+b3BlbnNzaC1rZXktdjEAAAAA\n+-----END OPENSSH PRIVATE KEY-----\n";
        assert_eq!(
            Redactor::default().redact_text(pem),
            "+-----BEGIN OPENSSH PRIVATE KEY-----\n+••••\n+-----END OPENSSH PRIVATE KEY-----\n"
        );
        assert_eq!(Redactor::none().redact_text(diff), diff);
    }

    #[test]
    fn redacts_set_maps_and_custom_patterns() {
        let set: IndexMap<String, toml::Value> = toml::from_str(
            "\"provider.api_key_ref\" = \"env:K\"\n\"model.name\" = \"m\"\nprovider = { secret = \"s\", url = \"u\" }\n",
        )
        .unwrap();
        let out = Redactor::default().redact_set(&set);
        assert_eq!(out["provider.api_key_ref"].as_str(), Some(MASK));
        assert_eq!(out["model.name"].as_str(), Some("m"));
        assert_eq!(out["provider"]["secret"].as_str(), Some(MASK));
        assert_eq!(out["provider"]["url"].as_str(), Some("u"));
        let custom = Redactor::with_defaults(&["(?i)^endpoint$"]).unwrap();
        assert_eq!(custom.redact_line("endpoint = \"x\""), "endpoint = \"••••\"");
        assert!(Redactor::new(&["("]).is_err());
    }
}

use super::pattern::wildcard;
use super::*;

fn local(home: &Path) -> Local {
    Local {
        home: home.to_path_buf(),
        user: "me".into(),
        uid: 1000,
        hostname: "laptop.example.com".into(),
    }
}

fn q(alias: &str) -> Query<'_> {
    Query {
        alias,
        address: None,
        user: None,
        default_user: "agent",
        port: None,
        default_port: 22,
    }
}

fn at(text: &str, alias: &str) -> HostConfig {
    resolve_text(text, &q(alias), &local(Path::new("/home/me")))
}

/// A home folder with `~/.ssh/` holding `files` (name, text).
fn home_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = d.path().join(".ssh").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    d
}

fn resolve_home(home: &Path, query: &Query<'_>) -> HostConfig {
    resolve_file(&home.join(".ssh/config"), query, &local(home))
}

#[test]
fn first_match_wins_and_wildcards_apply() {
    let text = "Host bastion\n  HostName 10.0.0.1\n  User ops\n\nHost web-*\n  HostName %h.internal\n  Port 2222\n  ProxyJump bastion\n  IdentityFile ~/.ssh/web\n\nHost *\n  User nobody\n  IdentityFile ~/.ssh/id_ed25519\n";
    let hc = at(text, "web-1");
    assert_eq!(hc.hostname.as_deref(), Some("web-1.internal"));
    assert_eq!(hc.port, Some(2222));
    assert_eq!(hc.user.as_deref(), Some("nobody"));
    assert_eq!(hc.proxy_jump.as_deref(), Some("bastion"));
    assert_eq!(
        hc.identity_files,
        vec![
            PathBuf::from("/home/me/.ssh/web"),
            PathBuf::from("/home/me/.ssh/id_ed25519")
        ]
    );
    let b = at(text, "bastion");
    assert_eq!(b.user.as_deref(), Some("ops"));
    assert_eq!(b.proxy_jump, None);
    assert!(hc.warnings.is_empty() && b.warnings.is_empty());
}

#[test]
fn wildcards_are_star_and_question_mark_only_and_host_names_ignore_case() {
    assert!(wildcard("web-*", "web-1"));
    assert!(wildcard("*.internal", "a.b.internal"));
    assert!(wildcard("10.0.?.1", "10.0.3.1"));
    assert!(!wildcard("10.0.?.1", "10.0.33.1"));
    assert!(wildcard("*a*b*", "xxaxxbxx"));
    assert!(!wildcard("web-[12]", "web-1"), "no character classes in ssh patterns");
    assert!(wildcard("web-[12]", "web-[12]"));
    let text = "Host WEB-* !web-3\n  User ops\n";
    assert_eq!(at(text, "Web-1").user.as_deref(), Some("ops"));
    assert_eq!(at(text, "web-3").user, None, "a matching negation excludes the host");
}

#[test]
fn syntax_equals_quotes_and_trailing_comments() {
    let text =
        "Host=db\nHostName = 10.9.9.9 # the primary\nUser=\"deploy\"\nIdentityFile \"~/.ssh/my key\"\nport 2200\n";
    let hc = at(text, "db");
    assert_eq!(hc.hostname.as_deref(), Some("10.9.9.9"));
    assert_eq!(hc.user.as_deref(), Some("deploy"));
    assert_eq!(hc.port, Some(2200));
    assert_eq!(hc.identity_files, vec![PathBuf::from("/home/me/.ssh/my key")]);
}

#[test]
fn proxyjump_none_stops_later_values_and_bad_ports_warn() {
    let text = "Host inner\n  ProxyJump none\n  Port 70000\nHost *\n  ProxyJump bastion\n  Port 2022\n";
    let hc = at(text, "inner");
    assert_eq!(hc.proxy_jump, None);
    assert_eq!(
        hc.port,
        Some(2022),
        "an invalid port is ignored, so the next one is the first value"
    );
    assert!(
        hc.warnings.iter().any(|w| w.contains(":3: Port \"70000\"")),
        "{:?}",
        hc.warnings
    );
    assert_eq!(at(text, "outer").proxy_jump.as_deref(), Some("bastion"));
}

#[test]
fn include_reads_files_in_place_relative_to_ssh_dir_with_sorted_globs() {
    let home = home_with(&[
        (
            "config",
            "Include conf.d/*.conf\nHost *\n  User fallback\n  IdentityFile ~/.ssh/default\n",
        ),
        // Read before b.conf (sorted); its Host block ends with the file.
        ("conf.d/a.conf", "Host web-*\n  User web\n  IdentityFile ~/.ssh/a\n"),
        ("conf.d/b.conf", "Host web-1\n  User not-first\n  Port 2201\n"),
        ("conf.d/c.txt", "Host *\n  User never\n"),
    ]);
    let hc = resolve_home(home.path(), &q("web-1"));
    assert_eq!(hc.user.as_deref(), Some("web"));
    assert_eq!(hc.port, Some(2201));
    let h = home.path();
    assert_eq!(hc.identity_files, vec![h.join(".ssh/a"), h.join(".ssh/default")]);
    let other = resolve_home(home.path(), &q("db"));
    assert_eq!(
        other.user.as_deref(),
        Some("fallback"),
        "the included Host block did not leak"
    );
    assert!(hc.warnings.is_empty(), "{:?}", hc.warnings);
}

#[test]
fn include_inside_a_block_applies_only_to_its_hosts_and_takes_tilde_and_absolute_paths() {
    let home = home_with(&[("jump.conf", "ProxyJump bastion\n")]);
    let abs = home.path().join(".ssh/abs.conf");
    std::fs::write(&abs, "User abs\n").unwrap();
    let config = format!(
        "Host prod-*\n  Include ~/.ssh/jump.conf\n  Include {}\n  Include missing-*.conf\n",
        abs.display()
    );
    std::fs::write(home.path().join(".ssh/config"), config).unwrap();
    let hc = resolve_home(home.path(), &q("prod-1"));
    assert_eq!(hc.proxy_jump.as_deref(), Some("bastion"));
    assert_eq!(hc.user.as_deref(), Some("abs"));
    assert!(
        hc.warnings.is_empty(),
        "a glob matching nothing is fine: {:?}",
        hc.warnings
    );
    assert_eq!(resolve_home(home.path(), &q("dev-1")).proxy_jump, None);
}

#[test]
fn an_include_loop_stops_with_a_warning() {
    let home = home_with(&[("config", "Include config\nUser me\n")]);
    let hc = resolve_home(home.path(), &q("x"));
    assert_eq!(hc.user.as_deref(), Some("me"));
    assert!(
        hc.warnings.iter().any(|w| w.contains("nested more than 16")),
        "{:?}",
        hc.warnings
    );
}

#[test]
fn match_host_sees_the_hostname_so_far_and_originalhost_the_alias() {
    let text = "Host db\n  HostName db.prod.internal\nMatch host *.prod.internal\n  User prod\n  ProxyJump bastion-prod\nMatch originalhost db\n  Port 5022\n";
    let hc = at(text, "db");
    assert_eq!(hc.user.as_deref(), Some("prod"));
    assert_eq!(hc.proxy_jump.as_deref(), Some("bastion-prod"));
    assert_eq!(hc.port, Some(5022));
    // Without the HostName, `Match host` compares the alias itself.
    let hc = at(text, "web.prod.internal");
    assert_eq!(hc.user.as_deref(), Some("prod"));
    assert_eq!(hc.port, None);
}

#[test]
fn match_all_negation_lists_and_users() {
    let text = "Match host a*,!ab user agent\n  Port 1\nMatch !host c*\n  Port 2\nMatch user deploy localuser me\n  IdentityFile ~/.ssh/deploy\nMatch all\n  Port 3\n  User fallback\nMatch hostname x\n  Port 4\n";
    assert_eq!(at(text, "aa").port, Some(1));
    assert_eq!(at(text, "ab").port, Some(2), "the negated pattern excludes ab");
    assert_eq!(at(text, "cc").port, Some(3));
    assert_eq!(at(text, "cc").user.as_deref(), Some("fallback"));
    let mut deploy = q("cc");
    deploy.user = Some("deploy");
    let hc = resolve_text(text, &deploy, &local(Path::new("/home/me")));
    assert_eq!(hc.identity_files, vec![PathBuf::from("/home/me/.ssh/deploy")]);
    assert!(
        at(text, "cc").identity_files.is_empty(),
        "user is `agent` (the default), not deploy"
    );
    let hc = at(text, "cc");
    assert!(
        hc.warnings
            .iter()
            .any(|w| w.contains(":10: unknown Match criterion `hostname`")),
        "{:?}",
        hc.warnings
    );
    assert_eq!(at("Match all host x\n  Port 9\n", "x").port, None);
}

#[test]
fn match_exec_and_other_unevaluated_criteria_skip_the_block_with_a_warning() {
    let text = "Match host web-* exec \"nc -z vpn 22\"\n  ProxyJump vpn-bastion\nMatch canonical host web-*\n  User c\nHost *\n  ProxyJump public-bastion\n";
    let hc = at(text, "web-1");
    assert_eq!(hc.proxy_jump.as_deref(), Some("public-bastion"));
    assert_eq!(hc.user, None);
    assert_eq!(hc.warnings.len(), 2, "{:?}", hc.warnings);
    assert!(
        hc.warnings[0].contains(":1: `Match exec` is not evaluated"),
        "{:?}",
        hc.warnings
    );
    assert!(hc.warnings[1].contains(":3: `Match canonical`"), "{:?}", hc.warnings);
    // A host the rest of the line does not match: the block could not apply, nothing to say.
    assert!(at(text, "db-1").warnings.is_empty());
}

#[test]
fn tokens_expand_with_the_values_the_connection_uses() {
    let text = "Host web-*\n  HostName %h.internal\n  IdentityFile ~/.ssh/%r@%h-%p\n  IdentityFile %d/keys/%u-%n-%l-%L-%i-100%%\n  ProxyJump %r@jump-%h:%p\n  UserKnownHostsFile ~/.ssh/kh-%n %d/kh2\n  User ops\n  Port 2200\n";
    let hc = at(text, "web-1");
    assert_eq!(hc.hostname.as_deref(), Some("web-1.internal"));
    assert_eq!(
        hc.identity_files,
        vec![
            PathBuf::from("/home/me/.ssh/ops@web-1.internal-2200"),
            PathBuf::from("/home/me/keys/me-web-1-laptop.example.com-laptop-1000-100%"),
        ]
    );
    assert_eq!(hc.proxy_jump.as_deref(), Some("ops@jump-web-1.internal:2200"));
    assert_eq!(
        hc.user_known_hosts,
        vec![PathBuf::from("/home/me/.ssh/kh-web-1"), PathBuf::from("/home/me/kh2")]
    );
    // The fleet's own user, port and address beat the file: %r, %p and %h follow them.
    let fixed = Query {
        address: Some("10.0.0.5"),
        user: Some("root"),
        port: Some(22),
        ..q("web-1")
    };
    let hc = resolve_text(text, &fixed, &local(Path::new("/home/me")));
    assert_eq!(hc.identity_files[0], PathBuf::from("/home/me/.ssh/root@10.0.0.5-22"));
}

#[test]
fn a_token_an_option_does_not_take_drops_that_value_with_a_warning() {
    let text = "Host *\n  HostName %u.example\n  ProxyJump %d\n  IdentityFile ~/.ssh/%C\n  IdentityFile ~/.ssh/ok\n";
    let hc = at(text, "x");
    assert_eq!(hc.hostname, None);
    assert_eq!(hc.proxy_jump, None);
    assert_eq!(hc.identity_files, vec![PathBuf::from("/home/me/.ssh/ok")]);
    assert_eq!(hc.warnings.len(), 3, "{:?}", hc.warnings);
    assert!(hc
        .warnings
        .iter()
        .any(|w| w.contains(":2: HostName \"%u.example\": %u is not a token")));
}

#[test]
fn a_missing_config_is_empty_settings() {
    let home = tempfile::tempdir().unwrap();
    assert_eq!(resolve_home(home.path(), &q("x")), HostConfig::default());
}

/// As `ssh`: the user's file first, then the system-wide one; the first value obtained wins,
/// and a relative `Include` in the system file is under the system file's folder.
#[test]
fn the_system_wide_file_fills_what_the_users_file_leaves_open() {
    let home = home_with(&[("config", "Host web-*\n  User deploy\n")]);
    let etc = tempfile::tempdir().unwrap();
    std::fs::create_dir(etc.path().join("ssh_config.d")).unwrap();
    std::fs::write(
        etc.path().join("ssh_config.d/bastion.conf"),
        "Host web-*\n  ProxyJump bastion.corp\n",
    )
    .unwrap();
    let system = etc.path().join("ssh_config");
    std::fs::write(
        &system,
        "Include ssh_config.d/*.conf\nHost *\n  User ubuntu\n  Port 2222\n",
    )
    .unwrap();
    let q = Query {
        alias: "web-1",
        address: None,
        user: None,
        default_user: "me",
        port: None,
        default_port: 22,
    };
    let hc = resolve_files(&home.path().join(".ssh/config"), &system, &q, &local(home.path()));
    assert_eq!(hc.user.as_deref(), Some("deploy"), "the user's file wins");
    assert_eq!(hc.port, Some(2222), "the system file fills the rest");
    assert_eq!(
        hc.proxy_jump.as_deref(),
        Some("bastion.corp"),
        "its include, under its folder"
    );
    assert!(hc.warnings.is_empty(), "{:?}", hc.warnings);
    // Without a user file, the system file alone.
    let hc = resolve_files(&home.path().join(".ssh/none"), &system, &q, &local(home.path()));
    assert_eq!(hc.user.as_deref(), Some("ubuntu"));
}

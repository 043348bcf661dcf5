//! OpenSSH `known_hosts` verification with OpenSSH's semantics.
//!
//! russh's own checker matches only exact and hashed host fields and ignores markers, so a
//! revoked key or a wildcard entry in an operator's file would be misread. This parser follows
//! sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT": comma-separated patterns with `*`/`?` wildcards and
//! `!` negation, `[host]:port` for non-22 ports, hashed `|1|salt|hmac` names, `@revoked`
//! (refused even if also listed as good) and `@cert-authority` (not used for plain host keys).
//! Host names are looked up lowercased, as ssh(1) does before hashing or matching them.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey};
use sha1::Sha1;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What the known_hosts files say about a host's offered key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// The key is listed for this host.
    Known { file: PathBuf, line: usize },
    /// The key is marked `@revoked`: refuse even if another line lists it.
    Revoked { file: PathBuf, line: usize },
    /// The host is listed with other keys only: a possible man-in-the-middle.
    Mismatch { known: Vec<KnownEntry> },
    /// The host is not listed at all.
    Unknown,
}

/// One key recorded for a host, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownEntry {
    pub file: PathBuf,
    pub line: usize,
    pub fingerprint: String,
    pub text: String,
}

#[derive(Debug)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

struct Line<'a> {
    number: usize,
    marker: Marker,
    hosts: &'a str,
    key: Option<PublicKey>,
    text: &'a str,
}

fn parse_line(number: usize, raw: &str) -> Option<Line<'_>> {
    let text = raw.trim();
    if text.is_empty() || text.starts_with('#') {
        return None;
    }
    let mut fields = text.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        _ => Marker::None,
    };
    if !matches!(marker, Marker::None) {
        first = fields.next()?;
    }
    let _keytype = fields.next()?;
    let b64 = fields.next()?;
    let key = russh::keys::parse_public_key_base64(b64).ok();
    Some(Line {
        number,
        marker,
        hosts: first,
        key,
        text,
    })
}

/// The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise.
pub fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

fn wildcard(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

fn hashed_matches(field: &str, name: &str) -> bool {
    let mut parts = field.split('|');
    let (Some(""), Some("1"), Some(salt), Some(hash)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// Does a host field (pattern list or hashed name) match `name`?
fn hosts_match(field: &str, name: &str) -> bool {
    if field.starts_with("|1|") {
        return hashed_matches(field, name);
    }
    let mut matched = false;
    for pat in field.split(',') {
        if let Some(neg) = pat.strip_prefix('!') {
            if wildcard(neg, name) {
                return false;
            }
        } else if wildcard(pat, name) {
            matched = true;
        }
    }
    matched
}

/// SHA256 fingerprint in OpenSSH's form (`SHA256:...`).
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Check `key` offered by `host:port` against every file in `files` (missing files are empty).
pub fn check(files: &[PathBuf], host: &str, port: u16, key: &PublicKey) -> HostKeyStatus {
    // ssh(1) lowercases the host name before anything else, so `ssh-keygen -H` and ssh's own
    // hashed entries are HMACs of the lowercase name: `Web01.Example.com` must look up
    // `web01.example.com` to find them (plain patterns match case-insensitively anyway).
    let name = lookup_name(&host.to_ascii_lowercase(), port);
    let mut known = None;
    let mut others = Vec::new();
    for file in files {
        let Ok(content) = std::fs::read_to_string(file) else {
            continue;
        };
        for (i, raw) in content.lines().enumerate() {
            let Some(line) = parse_line(i + 1, raw) else {
                continue;
            };
            let Some(lkey) = &line.key else { continue };
            let same = lkey.key_data() == key.key_data();
            match line.marker {
                Marker::Revoked => {
                    if same && (hosts_match(line.hosts, &name) || line.hosts == "*") {
                        return HostKeyStatus::Revoked {
                            file: file.clone(),
                            line: line.number,
                        };
                    }
                }
                Marker::CertAuthority => {}
                Marker::None => {
                    if !hosts_match(line.hosts, &name) {
                        continue;
                    }
                    if same {
                        known.get_or_insert((file.clone(), line.number));
                    } else {
                        others.push(KnownEntry {
                            file: file.clone(),
                            line: line.number,
                            fingerprint: fingerprint(lkey),
                            text: line.text.to_string(),
                        });
                    }
                }
            }
        }
    }
    match (known, others.is_empty()) {
        (Some((file, line)), _) => HostKeyStatus::Known { file, line },
        (None, false) => HostKeyStatus::Mismatch { known: others },
        (None, true) => HostKeyStatus::Unknown,
    }
}

/// Why `file` cannot be consulted, if it cannot: it does not exist (`NotFound`), is a folder,
/// or cannot be opened. [`check`] reads such a file as empty, which is right for looking a
/// key up but wrong for advice: "rerun with --accept-new" for a misspelt path would record
/// every host's key unverified.
pub fn unusable(file: &Path) -> Option<std::io::Error> {
    match std::fs::metadata(file) {
        Err(e) => Some(e),
        Ok(m) if m.is_dir() => Some(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "it is a folder, not a file",
        )),
        Ok(_) => std::fs::File::open(file).err(),
    }
}

/// Record a newly accepted key (OpenSSH `accept-new`): one plain line appended to `file`.
///
/// Appends are serialised with an exclusive lock on the file (hosts are verified in parallel,
/// and two bellwether processes may accept keys at once), the line goes out in one write,
/// and the host is looked up again under the lock: a key another process recorded meanwhile
/// is not written twice, and a *different* key recorded meanwhile is refused, not added.
pub fn append(file: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let openssh = key.to_openssh().map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(file)?;
    // Held until `f` is dropped (flock: also between threads of this process).
    f.lock()?;
    let name = lookup_name(&host.to_ascii_lowercase(), port);
    match check(&[file.to_path_buf()], host, port, key) {
        HostKeyStatus::Known { .. } => return Ok(()),
        HostKeyStatus::Unknown => {}
        HostKeyStatus::Mismatch { .. } | HostKeyStatus::Revoked { .. } => {
            return Err(std::io::Error::other(format!(
                "another key for {name} was recorded in it meanwhile; not adding this one"
            )))
        }
    }
    let ends_in_newline = std::fs::read(file)?.last().is_none_or(|b| *b == b'\n');
    let line = format!("{}{name} {}\n", if ends_in_newline { "" } else { "\n" }, openssh.trim());
    f.write_all(line.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const K2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIGFkaR7z6mRh5tGkAX0PcaIwPsGgmTbtp3hBDvmzfSxG";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    fn file(content: &str) -> (tempfile::TempDir, Vec<PathBuf>) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("known_hosts");
        std::fs::write(&p, content).unwrap();
        (d, vec![p])
    }

    #[test]
    fn plain_port_and_line_numbers_count_comments() {
        let (_d, f) = file(&format!("# comment\n\n[10.0.0.1]:2222 ssh-ed25519 {K1}\n"));
        match check(&f, "10.0.0.1", 2222, &key(K1)) {
            HostKeyStatus::Known { line, .. } => assert_eq!(line, 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(check(&f, "10.0.0.1", 22, &key(K1)), HostKeyStatus::Unknown);
    }

    #[test]
    fn mismatch_names_the_known_key() {
        let (_d, f) = file(&format!("h1,h2 ssh-ed25519 {K1}\n"));
        match check(&f, "h2", 22, &key(K2)) {
            HostKeyStatus::Mismatch { known } => {
                assert_eq!(known[0].line, 1);
                assert!(known[0].fingerprint.starts_with("SHA256:"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wildcards_and_negation() {
        let (_d, f) = file(&format!("*.prod,!db.prod ssh-ed25519 {K1}\n"));
        assert!(matches!(
            check(&f, "web.prod", 22, &key(K1)),
            HostKeyStatus::Known { .. }
        ));
        assert_eq!(check(&f, "db.prod", 22, &key(K1)), HostKeyStatus::Unknown);
    }

    #[test]
    fn hashed_entries_match() {
        // Generated by `ssh-keygen -H` semantics: HMAC-SHA1(salt, "[127.0.0.9]:2200").
        let salt = [7u8; 20];
        let mut mac = Hmac::<Sha1>::new_from_slice(&salt).unwrap();
        mac.update(b"[127.0.0.9]:2200");
        let b64 = base64::engine::general_purpose::STANDARD;
        let field = format!("|1|{}|{}", b64.encode(salt), b64.encode(mac.finalize().into_bytes()));
        let (_d, f) = file(&format!("{field} ssh-ed25519 {K1}\n"));
        assert!(matches!(
            check(&f, "127.0.0.9", 2200, &key(K1)),
            HostKeyStatus::Known { .. }
        ));
        assert_eq!(check(&f, "127.0.0.8", 2200, &key(K1)), HostKeyStatus::Unknown);
    }

    #[test]
    fn hashed_entries_are_matched_on_the_lowercased_host() {
        // What `ssh Web01.Example.COM` records with HashKnownHosts: the lowercase name.
        let salt = [9u8; 20];
        let mut mac = Hmac::<Sha1>::new_from_slice(&salt).unwrap();
        mac.update(b"[web01.example.com]:2222");
        let b64 = base64::engine::general_purpose::STANDARD;
        let field = format!("|1|{}|{}", b64.encode(salt), b64.encode(mac.finalize().into_bytes()));
        let (_d, f) = file(&format!("{field} ssh-ed25519 {K1}\n"));
        assert!(matches!(
            check(&f, "Web01.Example.COM", 2222, &key(K1)),
            HostKeyStatus::Known { .. }
        ));
        assert!(matches!(
            check(&f, "web01.example.com", 2222, &key(K2)),
            HostKeyStatus::Mismatch { .. }
        ));
    }

    #[test]
    fn concurrent_appends_are_whole_lines_and_never_duplicate_a_host() {
        let (_d, f) = file("# existing, no final newline");
        let path = f[0].clone();
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    // Eight threads race for the same host, eight add their own.
                    let host = if i % 2 == 0 {
                        "Shared.Example".to_string()
                    } else {
                        format!("h{i}")
                    };
                    append(&path, &host, 2200, &key(K1)).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 1 + 8, "{text}");
        assert_eq!(lines[0], "# existing, no final newline");
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("[shared.example]:2200 ")).count(),
            1,
            "{text}"
        );
        for l in &lines[1..] {
            assert!(l.ends_with(K1) && l.split_whitespace().count() == 3, "{l:?}");
        }
        // A different key for a host already recorded is refused, not appended.
        let e = append(&path, "shared.example", 2200, &key(K2)).unwrap_err();
        assert!(e.to_string().contains("another key"), "{e}");
    }

    #[test]
    fn revoked_wins_even_when_listed() {
        let (_d, f) = file(&format!("h1 ssh-ed25519 {K1}\n@revoked * ssh-ed25519 {K1}\n"));
        assert!(matches!(
            check(&f, "h1", 22, &key(K1)),
            HostKeyStatus::Revoked { line: 2, .. }
        ));
    }

    #[test]
    fn cert_authority_lines_do_not_count_as_host_keys() {
        let (_d, f) = file(&format!("@cert-authority * ssh-ed25519 {K1}\n"));
        assert_eq!(check(&f, "h1", 22, &key(K1)), HostKeyStatus::Unknown);
    }

    #[test]
    fn append_then_known() {
        let (_d, f) = file("");
        append(&f[0], "127.0.0.5", 2201, &key(K2)).unwrap();
        assert!(matches!(
            check(&f, "127.0.0.5", 2201, &key(K2)),
            HostKeyStatus::Known { .. }
        ));
    }
}

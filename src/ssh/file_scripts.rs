//! The shell scripts behind reading, checking, writing and removing a file on a host.
//!
//! Pure functions from values to script text, so each can be run against a real local `sh`
//! in the tests with hostile paths. Every value is bound by [`Script::set`]; the bodies only
//! say `"$path"`, `"$P"`, never splice text.

use super::quote::Script;

/// What a write must preserve or check.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Mode for the new file; None keeps the existing file's mode (or the umask default).
    pub mode: Option<u32>,
    /// Owner for the new file; None keeps the existing file's owner.
    pub owner: Option<(u32, u32)>,
    /// Refuse unless the current content has this hash (`Some(None)`: the file must not exist).
    pub expect: Option<Option<String>>,
}

/// Printed before a file's bytes so output from the login shell's start-up files (a
/// `.bashrc` that echoes) is never taken for the file.
pub(crate) const MARK: &str = "__bellwether_read__";

/// Exit status of a write or remove refused because the file changed since it was read.
pub(crate) const CHANGED: u32 = 17;

/// Exit status of a write whose file, read back after the rename, does not hold the bytes
/// sent (its hash is the last line printed).
pub(crate) const READ_BACK_DIFFERS: u32 = 22;

/// After a write in [`write_then`]: this, then the write's exit status, on stdout.
pub(crate) const WRITE_DONE: &str = "\nBW-WRITE ";

/// After a write in [`write_then`]: on stderr, between the write's and the next script's.
pub(crate) const THEN_SPLIT: &str = "\u{1e}BW-THEN\n";

/// A [`write`] script, then — only if it replaced the file and read back the bytes sent —
/// `then`, in one remote command. The write runs in a subshell (its `exit`s and traps stay
/// there); its status follows [`WRITE_DONE`] on stdout, and `then`'s stderr follows
/// [`THEN_SPLIT`]. A write that did not complete (refused, cut before the controller's `go`,
/// read back wrong) ends the script there, so `then` never runs on a file left as it was.
pub(crate) fn write_then(write: &str, then: &str) -> String {
    format!(
        "(\n{write}\n); w=$?\nprintf '\\nBW-WRITE %s\\n' \"$w\"\n[ \"$w\" -eq 0 ] || exit 0\nprintf '\\036BW-THEN\\n' >&2\n{then}"
    )
}

/// Sets `$P` to the file to act on: `$path`, or the file it links to (a broken link resolves
/// to where its target would be). A link that cannot be resolved (a loop) is an error.
///
/// Command substitutions end in `&& echo .` and drop the last two characters afterwards:
/// `$(...)` strips every trailing line break, and a file name may end with one.
const RESOLVE: &str = r#"P=$path
if [ -L "$P" ]; then P=$(readlink -f -- "$path" && echo .) || { printf 'cannot resolve the link %s (a loop, or a missing directory)\n' "$path" >&2; exit 3; }; P=${P%??}; fi
"#;

/// Refuses (exit 17, `CHANGED <sha>`) unless `$P` holds `$expect` (`absent`: no file).
const EXPECT: &str = r#"if [ -e "$P" ]; then cur=$(sha256sum < "$P" | cut -c1-64); else cur=absent; fi
if [ "$cur" != "$expect" ]; then echo "CHANGED $cur"; exit 17; fi
"#;

/// Read a file: the marker, then `MODE UID GID` and the bytes, or `MISSING`.
pub(crate) fn read(path: &str, max: usize) -> Script {
    Script::new()
        .set("path", path)
        .set("mark", MARK)
        .set("max", &max.to_string())
        .set("n", &(max + 1).to_string())
        .body(
            r#"echo "$mark"; if [ -e "$path" ]; then s=$(stat -L -c '%a %u %g %s' -- "$path") || exit 3
if [ -f "$path" ]; then echo "$s file"; set -- $s; [ "$4" -gt "$max" ] && exit 0; exec head -c "$n" -- "$path"; fi
t=special-file; [ -d "$path" ] && t=directory; [ -p "$path" ] && t=fifo; [ -c "$path" ] && t=character-device
[ -b "$path" ] && t=block-device; [ -S "$path" ] && t=socket; echo "$s $t"; else echo MISSING; fi"#,
        )
}

/// Remove the temp files that writes left in `path`'s directory (`.bellwether.XXXXXX`,
/// regular files only), printing each one removed. Run in a subshell before a revert reads
/// the file: a write whose session was cut may still be waiting for its `go` (a partition
/// that TCP could heal later); without its temp file its rename can only fail, so what the
/// revert then reads stays true. The host's run marker keeps any other bellwether write away.
pub(crate) fn clear_orphans(path: &str) -> Script {
    Script::new().set("path", path).body("(\n").body(RESOLVE).body(
        r#"d=$(dirname -- "$P" && echo .); d=${d%??}
for t in "$d"/.bellwether.??????; do
  if [ -f "$t" ] && [ ! -L "$t" ]; then rm -f -- "$t" && printf 'removed the temp file of an unfinished write: %s\n' "$t"; fi
done
) || true
"#,
    )
}

/// Replace a file atomically with the bytes on stdin (whose sha256 is `want`); prints the
/// sha256 read back. See docs/ssh.md, "Reading and writing files".
pub(crate) fn write(path: &str, bytes: usize, want: &str, opts: &WriteOptions) -> Script {
    let mut s = Script::new()
        .set("path", path)
        .set("want", want)
        .set("size", &bytes.to_string())
        .set("ready", super::exec::READY);
    if let Some(e) = &opts.expect {
        s = s.set("expect", e.as_deref().unwrap_or("absent"));
    }
    if let Some(m) = opts.mode {
        s = s.set("mode", &format!("{m:o}"));
    }
    if let Some((u, g)) = opts.owner {
        s = s.set("owner", &format!("{u}:{g}"));
    }
    // A symlinked config is edited where it really lives: replacing the link itself would
    // turn it into a regular file (with the link's 0777 "mode") and orphan the target.
    s = s.body("set -e\n").body(RESOLVE).body(
        r#"d=$(dirname -- "$P" && echo .); d=${d%??}
[ -d "$d" ] || { printf 'directory %s does not exist\n' "$d" >&2; exit 3; }
"#,
    );
    if opts.expect.is_some() {
        s = s.body(EXPECT);
    }
    s = s.body(
        r#"t=$(mktemp "$d/.bellwether.XXXXXX")
trap 'rm -f "$t"' EXIT
trap 'exit 21' HUP INT TERM PIPE
head -c "$size" > "$t"
got=$(sha256sum < "$t" | cut -c1-64)
[ "$got" = "$want" ] || { echo "incomplete upload ($got)" >&2; exit 18; }
if [ -e "$P" ]; then
  chmod --reference="$P" "$t"
  had=$(stat -c %u:%g -- "$P")
  if [ "$(stat -c %u:%g -- "$t")" != "$had" ]; then
    chown --reference="$P" "$t" 2>/dev/null || chgrp --reference="$P" "$t" 2>/dev/null || true
    now=$(stat -c %u:%g -- "$t")
    [ "$now" = "$had" ] || { printf 'cannot keep the owner of %s: it is %s (uid:gid), the new file would be %s; not replacing it\n' "$path" "$had" "$now" >&2; exit 19; }
  fi
fi
[ -e "$P" ] || chmod "$(printf %o $(( 0666 & ~$(umask) )))" "$t"
"#,
    );
    if opts.mode.is_some() {
        s = s.body("chmod \"$mode\" \"$t\"\n");
    }
    if opts.owner.is_some() {
        s = s.body("chown \"$owner\" \"$t\" 2>/dev/null || [ \"$(stat -c %u:%g \"$t\")\" = \"$owner\" ]\n");
    }
    // The rename waits for a `go` from the controller after everything else is done: a
    // script whose session was cut (sshd killed, the link gone) reads the end of its input
    // instead, and its temp file is removed; it cannot replace the file later, behind the
    // back of a revert that already looked at it.
    s.body(
        r#"sync "$t"
echo "$ready"
IFS= read -r go || go=
[ "$go" = go ] || { echo "the session ended before the controller confirmed the write; not replacing the file" >&2; exit 20; }
mv -f "$t" "$P"
trap - EXIT
sync "$d" 2>/dev/null || true
got=$(sha256sum < "$P" | cut -c1-64)
echo "$got"
[ "$got" = "$want" ] || exit 22
"#,
    )
}

/// Preflight of a file to be written: exit 0, or a reason on stdout and exit 1.
///
/// - A link is resolved; a link whose target has another owner than the link's directory is
///   refused unless `follow_links` (someone who may write that directory may have planted it,
///   pointing a root write at a file of theirs' choosing).
/// - The directory must exist and be writable (temp file + rename), and an existing file
///   writable too (the operator's signal that it may change).
/// - The rewritten file must be able to keep the owner and group: without root, a file of
///   another owner, or of a group the login user is not in, would silently change hands.
pub(crate) fn check(path: &str, follow_links: bool) -> Script {
    Script::new()
        .set("path", path)
        .set("follow", if follow_links { "yes" } else { "no" })
        .body(
            r#"P=$path
if [ -L "$path" ]; then
  P=$(readlink -f -- "$path" && echo .) || { printf 'cannot resolve the link %s (a loop, or a missing directory)\n' "$path"; exit 1; }
  P=${P%??}
  if [ "$follow" != yes ]; then
    ld=$(dirname -- "$path" && echo .); ld=${ld%??}
    td=$(dirname -- "$P" && echo .); td=${td%??}
    lo=$(stat -L -c %u -- "$ld") || exit 1
    to=$(stat -c %u -- "$P" 2>/dev/null || stat -c %u -- "$td") || exit 1
    if [ "$lo" != "$to" ]; then
      printf '%s is a symlink to %s, which belongs to uid %s, but the directory of the link belongs to uid %s: whoever may write that directory could have planted the link. Not following it: replace the link with the file, or set `follow_links = true` in the playbook if the link is meant\n' "$path" "$P" "$to" "$lo"
      exit 1
    fi
  fi
fi
d=$(dirname -- "$P" && echo .); d=${d%??}
me=$(id -un)
if [ ! -d "$d" ]; then printf 'directory %s does not exist\n' "$d"; exit 1; fi
if [ ! -w "$d" ]; then printf 'directory %s is not writable by %s\n' "$d" "$me"; exit 1; fi
if [ -e "$P" ]; then
  if [ ! -w "$P" ]; then printf '%s is not writable by %s\n' "$path" "$me"; exit 1; fi
  uid=$(id -u)
  if [ "$uid" != 0 ]; then
    set -- $(stat -c '%u %g %U %G' -- "$P")
    if [ "$1" != "$uid" ]; then
      printf '%s belongs to %s (uid %s), and %s (uid %s) cannot give the rewritten file that owner: it would change hands, the agent might not read it, and a revert could not restore it. Set `become = true` (passwordless sudo) for this host in the fleet, or log in as %s\n' "$path" "$3" "$1" "$me" "$uid" "$3"
      exit 1
    fi
    case " $(id -G) " in
      *" $2 "*) ;;
      *) printf '%s has group %s (gid %s), which %s is not a member of, so the rewritten file could not keep it. Set `become = true` (passwordless sudo) for this host in the fleet, or add %s to group %s\n' "$path" "$4" "$2" "$me" "$me" "$4"
         exit 1 ;;
    esac
  fi
fi
exit 0"#,
        )
}

/// Remove a file this run created, refusing (exit 17) unless it still holds `expect`.
pub(crate) fn remove(path: &str, expect: Option<&str>) -> Script {
    let mut s = Script::new().set("path", path);
    if let Some(e) = expect {
        s = s.set("expect", e);
    }
    s = s.body("P=$path\n");
    if expect.is_some() {
        s = s.body(EXPECT);
    }
    s.body("rm -f -- \"$P\"\n[ ! -e \"$P\" ]")
}

#[cfg(test)]
#[path = "file_scripts_tests.rs"]
mod tests;

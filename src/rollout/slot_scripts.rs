//! The shell scripts of the blue/green strategy: inspecting the link and its slots, checking
//! an edited file's directory, staging the idle slot, and repointing the link.
//!
//! Pure functions from values to script text (values bound by [`Script::set`], bodies never
//! formatted), so the tests run each against a real local `sh` with hostile names.

use crate::ssh::quote::Script;

/// Read the link and both slots (see `blue_green::inspect` for the answer's 12 lines).
/// Changes nothing: the `mv -T` probe works in a temporary directory of its own.
pub(crate) fn inspect(link: &str, slots: [&str; 2]) -> Script {
    Script::new().set("l", link).set("a", slots[0]).set("b", slots[1]).body(
        r#"if [ ! -L "$l" ]; then if [ -e "$l" ]; then echo NOTLINK; else echo MISSING; fi; exit 0; fi
echo LINK
readlink -- "$l"
readlink -f -- "$l" || echo
readlink -f -- "$(dirname -- "$l")" || echo
for s in "$a" "$b"; do
  readlink -f -- "$s" || echo
  if [ -L "$s" ]; then echo symlink; elif [ -d "$s" ]; then echo dir; elif [ -e "$s" ]; then echo other; else echo absent; fi
  if [ -w "$(dirname -- "$s")" ]; then echo w; else echo ro; fi
done
if [ -w "$(dirname -- "$l")" ]; then echo w; else echo ro; fi
if d=$(mktemp -d 2>/dev/null); then
  if mkdir "$d/x" && ln -s a "$d/l1" && ln -s x "$d/l2" && mv -Tf "$d/l1" "$d/l2" 2>/dev/null && [ "$(readlink "$d/l2")" = a ]; then echo mvT; else echo nomvT; fi
  rm -rf "$d"
else echo nomvT; fi"#,
    )
}

/// An edited file's directory exists in the live slot and is writable; else the reason on
/// stdout and exit 1.
pub(crate) fn check_dir(live_path: &str) -> Script {
    Script::new().set("p", live_path).body(
        r#"d=$(dirname -- "$p" && echo .); d=${d%??}
if [ ! -d "$d" ]; then printf 'directory %s does not exist\n' "$d"; exit 1; fi
if [ ! -w "$d" ]; then printf 'directory %s is not writable by %s\n' "$d" "$(id -un)"; exit 1; fi"#,
    )
}

/// Rebuild the idle slot as a copy of the live one: copied into a fresh `mktemp -d` beside
/// the idle slot (never a predictable name another user could plant first), synced, then
/// renamed into place; the old idle slot is renamed onto another fresh empty directory and
/// removed. Refuses (exit 19) if the link no longer points at the live slot.
pub(crate) fn stage(link: &str, live: &str, idle: &str) -> Script {
    Script::new().set("l", link).set("live", live).set("idle", idle).body(
        r#"set -e
[ "$(readlink -f -- "$l")" = "$(readlink -f -- "$live")" ] || { printf '%s no longer points at %s\n' "$l" "$live" >&2; exit 19; }
[ "$(readlink -f -- "$idle")" != "$(readlink -f -- "$live")" ] || { printf '%s is the live slot\n' "$idle" >&2; exit 19; }
p=$(dirname -- "$idle" && echo .); p=${p%??}
t=$(mktemp -d "$p/.bellwether-stage.XXXXXX")
trap 'rm -rf -- "$t"' EXIT
cp -a -- "$live/." "$t"
sync -f -- "$t" 2>/dev/null || sync
o=
if [ -e "$idle" ] || [ -L "$idle" ]; then
  o=$(mktemp -d "$p/.bellwether-old.XXXXXX")
  mv -T -- "$idle" "$o"
fi
mv -T -- "$t" "$idle"
trap - EXIT
[ -z "$o" ] || rm -rf -- "$o""#,
    )
}

/// Repoint the link `l` from `expect` to `new` with one rename: `SAME` (already there),
/// `SET` and the target read back, `NOTLINK` (exit 20) or `CHANGED <target>` (exit 17).
pub(crate) fn set_link(link: &str, expect: &str, new: &str) -> Script {
    Script::new().set("l", link).set("new", new).set("expect", expect).body(
        r#"t="$l.bellwether-flip"
if [ ! -L "$l" ]; then echo NOTLINK; exit 20; fi
cur=$(readlink -- "$l")
if [ "$cur" = "$new" ]; then echo SAME; exit 0; fi
if [ "$cur" != "$expect" ]; then printf 'CHANGED %s\n' "$cur"; exit 17; fi
set -e
rm -f -- "$t"
ln -s -- "$new" "$t"
mv -Tf -- "$t" "$l"
sync -- "$(dirname -- "$l")" 2>/dev/null || true
echo SET
readlink -- "$l""#,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::hostile::{assert_clean, names, run, tree};
    use std::os::unix::fs::symlink;

    const SEED: u64 = 0x51075;

    #[test]
    fn slots_with_hostile_names_are_inspected_staged_and_flipped_exactly() {
        // Names with a line break would break the line-per-answer protocol of `inspect`
        // (never a command); they are covered by the file scripts' test.
        for name in names(60, SEED).into_iter().filter(|n| !n.contains('\n')) {
            let what = format!("name {name:?} (seed {SEED:#x})");
            let d = tempfile::tempdir().unwrap();
            let p = |s: &str| d.path().join(format!("{s}{name}")).to_str().unwrap().to_string();
            let (link, blue, green) = (p("cur"), p("blue"), p("green"));
            std::fs::create_dir(&blue).unwrap();
            std::fs::write(format!("{blue}/config"), "live").unwrap();
            symlink(&blue, &link).unwrap();

            let out = run(&inspect(&link, [&blue, &green]), d.path(), b"");
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 12, "{what}: {text}");
            assert_eq!(
                (lines[0], lines[1], lines[2]),
                ("LINK", blue.as_str(), blue.as_str()),
                "{what}"
            );
            assert_eq!((lines[5], lines[8]), ("dir", "absent"), "{what}");

            let out = run(&check_dir(&format!("{blue}/config")), d.path(), b"");
            assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stdout));

            let out = run(&stage(&link, &blue, &green), d.path(), b"");
            assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(
                std::fs::read_to_string(format!("{green}/config")).unwrap(),
                "live",
                "{what}"
            );
            // Staged again over an existing idle slot: replaced, nothing left beside it.
            std::fs::write(format!("{green}/stale"), "x").unwrap();
            let out = run(&stage(&link, &blue, &green), d.path(), b"");
            assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
            let want: std::collections::BTreeSet<String> = [
                format!("cur{name}"),
                format!("blue{name}"),
                format!("blue{name}/config"),
                format!("green{name}"),
                format!("green{name}/config"),
            ]
            .into_iter()
            .collect();
            assert_eq!(tree(d.path()), want, "{what}");

            let out = run(&set_link(&link, &blue, &green), d.path(), b"");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                format!("SET\n{green}\n"),
                "{what}"
            );
            assert_eq!(
                std::fs::read_link(&link).unwrap().to_str(),
                Some(green.as_str()),
                "{what}"
            );
            let out = run(&set_link(&link, &blue, &green), d.path(), b"");
            assert_eq!(String::from_utf8_lossy(&out.stdout), "SAME\n", "{what}");
            // The link moved on: a stage from the old live slot is refused.
            let out = run(&stage(&link, &blue, &green), d.path(), b"");
            assert_eq!(out.status.code(), Some(19), "{what}");
            assert_eq!(tree(d.path()), want, "{what}");
            assert_clean(d.path(), &what);
        }
    }
}

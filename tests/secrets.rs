//! Secrets in input files never reach the terminal through an error: a fleet file with a
//! secret that does not parse, or a secret typed into the wrong field, is reported (exit 2,
//! file:line:column) with the secret masked.

use std::path::Path;
use std::process::Command;

fn check(dir: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .current_dir(dir)
        .arg("check")
        .env_remove("BELLWETHER_FLEET")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn a_fleet_file_parse_error_masks_the_secret_it_quotes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fleet = std::fs::read_to_string(root.join("fleet.toml")).unwrap();
    for (from, to) in [
        // Not TOML at all: an unquoted value.
        ("[defaults]\n", "[defaults]\napi_key = sk_live_abcdef123456\n"),
        // Valid TOML, wrong type: serde quotes the value.
        ("[[host]]\n", "[[host]]\nport = \"sk_live_abcdef123456\"\n"),
    ] {
        let d = tempfile::tempdir().unwrap();
        assert!(fleet.contains(from));
        std::fs::write(d.path().join("fleet.toml"), fleet.replacen(from, to, 1)).unwrap();
        let (code, out, err) = check(d.path());
        assert_eq!(code, 2, "{out}\n{err}");
        assert!(err.contains("fleet.toml:"), "located: {err}");
        assert!(!err.contains("sk_live_abc") && !out.contains("sk_live_abc"), "{err}");
    }
}

use super::*;
use std::collections::BTreeMap;

fn ctx() -> TemplateCtx {
    TemplateCtx {
        host_name: "use1-a".into(),
        address: "10.0.1.11".into(),
        region: Some("us-east-1".into()),
        groups: vec![],
        vars: BTreeMap::from([("model".to_string(), "claude-sonnet-4-5".to_string())]),
    }
}

fn spec(src: &str) -> EditSpec {
    toml::from_str(src).unwrap()
}

fn pins(src: &str) -> FilePins {
    let mut all = for_host(&[spec(src)], &ctx()).unwrap();
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn held(fp: &FilePins, text: &str) -> Vec<(String, bool, String)> {
    fp.check(Some(text.as_bytes()))
        .into_iter()
        .map(|r| (r.pin, r.held, r.found))
        .collect()
}

#[test]
fn toml_pins_read_key_paths_with_templates_and_numbers_by_value() {
    let fp = pins(
        "path = \"/etc/{{ host.name }}.toml\"\nset = { \"model.name\" = \"x\" }\n\
         pins = { \"model.name\" = \"{{ vars.model }}\", limits = { max = 8 }, \"model.t\" = 0.5 }\n",
    );
    assert_eq!(fp.path, "/etc/use1-a.toml");
    let text = "[model]\nname = \"claude-sonnet-4-5\" # note\nt = 0.5\n[limits]\nmax = 8.0\n";
    assert_eq!(
        held(&fp, text),
        vec![
            ("model.name".into(), true, "\"claude-sonnet-4-5\"".into()),
            ("limits.max".into(), true, "8.0".into()),
            ("model.t".into(), true, "0.5".into()),
        ]
    );
    let broken = fp.check(Some(b"[model]\nname = \"claude-opus\"\n"));
    assert_eq!(
        describe_broken(&broken),
        "model.name = \"claude-opus\" (pinned \"claude-sonnet-4-5\"); limits.max = (absent) (pinned 8); \
         model.t = (absent) (pinned 0.5)"
    );
    assert!(fp.check(Some(b"[model\n"))[0].found.starts_with("(not valid TOML"));
    assert_eq!(fp.check(None)[0].found, "(the file does not exist)");
    let secret = pins("path = \"a.toml\"\npins = { \"provider.api_key\" = \"k1\" }\n");
    let r = secret.check(Some(b"[provider]\napi_key = \"k2\"\n"))[0].redacted(&crate::edit::Redactor::default());
    assert_eq!(
        (r.held, r.want.as_str(), r.found.as_str()),
        (false, crate::edit::MASK, crate::edit::MASK)
    );
}

#[test]
fn json_yaml_and_env_pins() {
    let fp = pins("path = \"a.json\"\npins = { \"model.name\" = \"m\", \"tools.1\" = \"web\" }\n");
    let r = held(&fp, r#"{"model": {"name": "m"}, "tools": ["fs", "web"]}"#);
    assert!(r.iter().all(|x| x.1), "{r:?}");
    let fp = pins("path = \"a.yaml\"\npins = { \"model.name\" = \"m\", \"model.max\" = 3 }\n");
    let r = held(&fp, "model:\n  name: m   # comment\n  max: 3\n");
    assert!(r.iter().all(|x| x.1), "{r:?}");
    assert!(
        !held(&fp, "model:\n  name: \"3\"\n  max: \"3\"\n")[1].1,
        "a string is not a number"
    );
    let fp = pins("path = \"/srv/.env\"\npins = { HERMES_PROVIDER = \"bedrock\", WORKERS = 4 }\n");
    let text = "HERMES_PROVIDER=anthropic\nexport HERMES_PROVIDER=\"bed\\rock\" # later wins\nWORKERS='4'\n";
    assert_eq!(
        held(&fp, text),
        vec![
            ("HERMES_PROVIDER".into(), true, "\"bedrock\"".into()),
            ("WORKERS".into(), true, "\"4\"".into())
        ]
    );
}

#[test]
fn a_file_hash_pin_and_a_pins_only_edit() {
    let sha = sha256_hex(b"weights");
    let s = spec(&format!(
        "path = \"/m/model.bin\"\npin_sha256 = \"{}\"\n",
        sha.to_uppercase()
    ));
    assert_eq!(s.action(), Ok(Action::Verify));
    assert!(s.validate(&FieldPath::root()).is_empty());
    let fp = for_host(std::slice::from_ref(&s), &ctx()).unwrap().remove(0);
    assert!(fp.check(Some(b"weights"))[0].held);
    let r = fp.check(Some(b"other"));
    assert_eq!((r[0].held, r[0].found.clone()), (false, sha256_hex(b"other")));
    // Computing a pins-only edit leaves the file as it is; a missing file is an error.
    let out = super::super::compute(&s, Some(b"weights"), &ctx(), std::path::Path::new(".")).unwrap();
    assert!(!out.changed);
    let e = super::super::compute(&s, None, &ctx(), std::path::Path::new(".")).unwrap_err();
    assert!(e.to_string().contains("pinned file does not exist"), "{e}");
}

#[test]
fn validation_names_the_field_and_what_to_do() {
    let errs = |src: &str| -> Vec<String> {
        spec(src)
            .validate(&FieldPath::root().key("edit").index(0))
            .into_iter()
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect()
    };
    let e = errs("path = \"agent.conf\"\nsource = \"x\"\npins = { a = 1 }\n");
    assert!(e[0].starts_with("edit[0].pins: cannot tell the format"), "{e:?}");
    let e = errs("path = \"a.toml\"\nset = { a = 1 }\npin_sha256 = \"abc\"\n");
    assert!(e[0].starts_with("edit[0].pin_sha256: \"abc\" is not a sha256"), "{e:?}");
    let e = errs("path = \"a.toml\"\nset = { \"model.name\" = \"x\" }\npins = { \"model.name\" = \"y\" }\n");
    assert_eq!(
        e,
        vec!["edit[0].pins.model.name: this edit sets `model.name` to \"x\", so a pin of \"y\" can never hold; keep one value"]
    );
    let e = errs("path = \"a.toml\"\nunset = [\"model\"]\npins = { \"model.name\" = \"y\" }\n");
    assert!(e[0].contains("unsets it"), "{e:?}");
    let e = errs("path = \"a.toml\"\nset = { a = 1 }\npins = { \"a..b\" = 1 }\n");
    assert!(e[0].contains("empty segment"), "{e:?}");
    let e = errs("path = \"x.env\"\nset = { A = \"1\" }\npins = { \"B-C\" = \"1\", D = [1] }\n");
    assert_eq!(e.len(), 2, "{e:?}");
    let e = errs("path = \"a.toml\"\npins = { a = \"{{ vars\" }\ncreate = true\n");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("edit[0].create: an [[edit]] with only pins"), "{e:?}");
    let e = errs("path = \"a.toml\"\nset = { a = \"{{ vars.m }}\" }\npins = { a = \"z\" }\n");
    assert!(e.is_empty(), "a templated set value may render to the pin: {e:?}");
}

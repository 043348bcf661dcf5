//! Unit tests of `agent.rs`: the lines and the model match the shell agent's
//! (`tests/fixtures/agentctl`), and the agent's files behave as that agent's do.

use super::agent::*;

fn env() -> Env {
    Env::default()
}

#[test]
fn the_model_is_the_first_quoted_name_line_as_sed_finds_it() {
    let cfg = "[agent]\nid = \"x\"\n[model]\n  name   =  \"claude-sonnet-4\"   # the model\nname = \"second\"\n";
    assert_eq!(model_name(cfg), "claude-sonnet-4");
    assert_eq!(model_name("names = \"no\"\nname = \"yes\"\n"), "yes");
    assert_eq!(model_name("name = \"unterminated\nname=\"ok\""), "ok");
    assert_eq!(model_name("model = \"x\"\n"), "");
}

#[test]
fn a_healthy_model_logs_ok_with_a_latency_that_cycles() {
    assert_eq!(
        line("m", 1, &env()).as_deref(),
        Some("INFO request ok model=m latency_ms=101")
    );
    assert_eq!(
        line("m", 50, &env()).as_deref(),
        Some("INFO request ok model=m latency_ms=100")
    );
}

#[test]
fn broken_and_outage_models_log_errors() {
    let broken = Env { broken: true, ..env() };
    assert_eq!(
        line("claude-broken-9", 3, &broken).as_deref(),
        Some("ERROR model not found: claude-broken-9")
    );
    let outage = Env { outage: true, ..env() };
    assert_eq!(
        line("m", 3, &outage).as_deref(),
        Some("ERROR provider unavailable (503) model=m")
    );
}

#[test]
fn fault_models_follow_the_fixture() {
    assert_eq!(line("silent-1", 1, &env()), None);
    assert!(line("stall-1", 20, &env()).is_some());
    assert_eq!(line("stall-1", 21, &env()), None);
    assert_eq!(line("trickle-1", 4, &env()), None);
    assert_eq!(
        line("trickle-1", 5, &env()).as_deref(),
        Some("INFO request ok model=trickle-1 latency_ms=120")
    );
    assert_eq!(
        line("slow-1", 7, &env()).as_deref(),
        Some("INFO request ok model=slow-1 latency_ms=1500")
    );
    assert_eq!(
        line("flaky-1", 10, &env()).as_deref(),
        Some("ERROR upstream 500 model=flaky-1")
    );
    assert_eq!(
        line("flaky-1", 11, &env()).as_deref(),
        Some("INFO request ok model=flaky-1 latency_ms=111")
    );
}

#[test]
fn an_injected_fault_overrides_every_model() {
    let errors = Env {
        fault: Some(Fault::Errors),
        broken: true,
        ..env()
    };
    assert_eq!(
        line("silent-1", 1, &errors).as_deref(),
        Some("ERROR upstream returned 500 model=silent-1")
    );
    let slow = Env {
        fault: Some(Fault::Slow),
        ..env()
    };
    assert_eq!(
        line("m", 1, &slow).as_deref(),
        Some("INFO request ok model=m latency_ms=2500")
    );
}

#[test]
fn start_reads_the_model_logs_and_follows_the_files_of_its_home() {
    let d = tempfile::tempdir().unwrap();
    let agent_dir = d.path().join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    std::fs::write(agent_dir.join("config.toml"), "[model]\nname = \"good\"\n").unwrap();
    std::fs::write(agent_dir.join("broken_models"), "bad\n").unwrap();
    let a = Agent::new(d.path());
    assert!(!a.running());
    a.start().unwrap();
    assert!(a.running());
    a.tick(false);
    let log = || std::fs::read_to_string(agent_dir.join("agent.log")).unwrap();
    assert_eq!(
        log(),
        "INFO agent started model=good\nINFO request ok model=good latency_ms=101\n\
         INFO request ok model=good latency_ms=102\n"
    );
    // A new model is read at restart; a broken one logs errors.
    std::fs::write(agent_dir.join("config.toml"), "[model]\nname = \"bad\"\n").unwrap();
    a.tick(true);
    assert!(
        log().ends_with("model=good latency_ms=103\n"),
        "no restart, no new model"
    );
    a.start().unwrap();
    assert!(log().ends_with("INFO agent started model=bad\nERROR model not found: bad\n"));
    // The fault file is read on refresh; stopping ends the lines.
    std::fs::write(agent_dir.join("fault"), "slow\n").unwrap();
    a.refresh();
    a.tick(false);
    assert!(log().ends_with("INFO request ok model=bad latency_ms=2500\n"));
    a.stop();
    let before = log();
    a.tick(true);
    assert_eq!(log(), before);
    assert!(!a.running());
}

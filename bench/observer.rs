//! Observer micro-benchmark: the controller's cost per log line once the bytes have arrived —
//! split into lines (`ssh::lines::LineBuf`) and judged by an [`Observer`] with the sandbox
//! playbook's gates (three error patterns, one ignore pattern, a latency metric). The
//! transport's share (TCP, SSH decryption, task wake-ups) is measured end to end by
//! bench/watch.sh; this isolates the part bellwether's own code decides.
//!
//! Run: `cargo bench --bench observer` (BENCH_LINES=N lines, default 2,000,000). Prints CPU
//! nanoseconds per line (getrusage, this process).

use bellwether::ssh::lines::LineBuf;
use bellwether::watch::{Observer, WatchSpec};

const WATCH: &str = r#"
log = { file = "agent/agent.log" }
errors = ["ERROR", "FATAL", "model not found"]
ignore = ["rate limit"]
max_errors = 1000000000
min_lines = 10
metrics = [{ name = "latency_ms", capture = 'latency_ms=(\d+)', p95_max = 800 }]
"#;

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct passed to it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// The lines as a tail sends them: one chunk a line, as `tail -F` writes an agent's log; one
/// line in a hundred an error.
fn chunks(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| match i % 100 {
            0 => format!("ERROR model not found: claude-broken-{i}\n"),
            _ => format!("INFO request ok model=claude-sonnet-4-5 latency_ms={}\n", 100 + i % 400),
        })
        .map(String::into_bytes)
        .collect()
}

fn main() {
    let n: usize = std::env::var("BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let spec: WatchSpec = toml::from_str(WATCH).expect("watch table");
    let watch = spec.compiled().expect("compiles");
    let input = chunks(n);
    // As many observers as a 200-host window, fed in turn.
    let mut obs: Vec<Observer> = (0..200).map(|_| Observer::new(&watch)).collect();
    let mut bufs: Vec<LineBuf> = (0..200).map(|_| LineBuf::default()).collect();
    let mut errors = 0u64;
    let t0 = cpu_seconds();
    for (i, c) in input.iter().enumerate() {
        let h = i % 200;
        let o = &mut obs[h];
        bufs[h].push(c, |l| errors += u64::from(o.feed(l, i as u64)));
    }
    let cpu = cpu_seconds() - t0;
    let lines: u64 = obs.iter().map(|o| o.counts().lines).sum();
    assert_eq!(lines as usize, n);
    println!(
        "{n} lines over 200 observers: {:.0} ns CPU a line ({errors} error lines); 1,000 lines/s would cost {:.3}% of a core",
        cpu * 1e9 / n as f64,
        cpu * 1e9 / n as f64 * 1000.0 / 1e9 * 100.0
    );
}

//! How many hosts a sandbox may have, where their addresses come from, and the descriptors
//! they need.
//!
//! Addresses: Linux routes all of 127.0.0.0/8 to the loopback device, so every host gets its
//! own address without any setup: `127.(200 + pid % 50).(i / 250).(1 + i % 250)`, 250 hosts a
//! /24. Each listener binds port 0 on its own address, so ports never run out either.
//!
//! Descriptors are the real limit. At rest a host holds two (its listener and its agent's
//! log); while a controller talks to it, one more per connection, and every command it runs
//! takes three pipes and an agent socket for as long as it runs.

/// The most hosts a sandbox may have: what has been measured to come up, idle cheaply and
/// take a rollout on a 2-core machine (see docs/sandbox.md).
pub const MAX_HOSTS: usize = 2000;

/// Descriptors the sandbox process needs for `n` hosts: at rest two a host, and while a
/// controller runs one command on every host at once (a rollout's log watch), one connection
/// and four descriptors for the command more; plus some for the process itself.
pub fn descriptors_needed(n: usize) -> libc::rlim_t {
    (n as libc::rlim_t) * 7 + 64
}

/// The loopback address of host `i` (from 0) of a sandbox made by process `pid`.
pub fn address(pid: u32, i: usize) -> String {
    format!("127.{}.{}.{}", 200 + pid % 50, i / 250, 1 + i % 250)
}

/// Raise this process's soft limit on open files to its hard limit (a command running on
/// every host at once needs more than the usual 1,024 from a few hundred hosts on), or say
/// why `n` hosts will not fit.
pub fn raise_fd_limit(n: usize) -> Result<(), String> {
    let need = descriptors_needed(n);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Ok(()); // cannot tell: let the binds say so if it is too low
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    if lim.rlim_cur >= need {
        return Ok(());
    }
    Err(format!(
        "{n} sandbox hosts need about {need} open files, and this shell allows at most {}; \
         raise it (`ulimit -n {need}`, or the hard limit in /etc/security/limits.conf) or use \
         fewer hosts",
        lim.rlim_cur
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_thousand_hosts_have_distinct_loopback_addresses() {
        let all: std::collections::HashSet<String> = (0..MAX_HOSTS).map(|i| address(4321, i)).collect();
        assert_eq!(all.len(), MAX_HOSTS);
        assert_eq!(address(4321, 0), "127.221.0.1");
        assert_eq!(address(4321, 249), "127.221.0.250");
        assert_eq!(address(4321, 250), "127.221.1.1");
        assert_eq!(address(4321, MAX_HOSTS - 1), "127.221.7.250");
    }
}

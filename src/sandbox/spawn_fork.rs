//! Starting a sandbox command where `spawn.rs`'s Linux calls (pidfd, `chdir` as a spawn
//! action) are missing: the same set-up done between fork and exec. Each command then costs a
//! copy of the sandbox's page tables, which is what limits such a sandbox to a few hundred
//! busy hosts.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::Stdio;

/// A started command.
pub struct Child {
    pub stdin: Option<tokio::process::ChildStdin>,
    pub stdout: Option<tokio::process::ChildStdout>,
    pub stderr: Option<tokio::process::ChildStderr>,
    inner: tokio::process::Child,
}

/// Start `sh -c cmd` in `home` with `extra` environment, its own session, piped standard
/// streams and `agent` (if any) as descriptor `agent_fd`.
pub fn spawn(cmd: &str, home: &Path, extra: &[(&str, &OsStr)], agent: Option<(OwnedFd, RawFd)>) -> io::Result<Child> {
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .current_dir(home)
        .envs(extra.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    let agent_fds = agent.as_ref().map(|(fd, target)| (fd.as_raw_fd(), *target));
    // SAFETY: setsid, dup2 and fcntl are async-signal-safe and the only calls made between
    // fork and exec; the agent descriptor stays open in the parent until after the spawn.
    unsafe {
        command.pre_exec(move || {
            // Like an sshd session without a pty: no controlling terminal.
            libc::setsid();
            if let Some((fd, target)) = agent_fds {
                if fd == target {
                    libc::fcntl(fd, libc::F_SETFD, 0);
                } else {
                    libc::dup2(fd, target);
                }
            }
            Ok(())
        });
    }
    let mut inner = command.spawn()?;
    drop(agent);
    Ok(Child {
        stdin: inner.stdin.take(),
        stdout: inner.stdout.take(),
        stderr: inner.stderr.take(),
        inner,
    })
}

impl Child {
    /// Wait for the child to exit: its exit code, or 255 if a signal ended it.
    pub async fn wait(mut self) -> io::Result<i32> {
        Ok(self.inner.wait().await?.code().unwrap_or(255))
    }
}

//! The passphrase of an encrypted identity file: `BELLWETHER_KEY_PASSPHRASE`, else a prompt on
//! the controlling terminal (echo off), never a prompt without one (cron must not hang).

use std::io::{BufRead, Write};
use std::path::Path;

/// The passphrase for `key`, if one can be had without blocking an unattended run.
pub fn for_key(key: &Path) -> Option<String> {
    if let Ok(p) = std::env::var("BELLWETHER_KEY_PASSPHRASE") {
        return Some(p);
    }
    prompt(&format!("Enter passphrase for {}: ", key.display()))
}

/// Ask on /dev/tty with echo switched off; None when there is no terminal.
fn prompt(question: &str) -> Option<String> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()?;
    let fd = std::os::unix::io::AsRawFd::as_raw_fd(&tty);
    // SAFETY: tcgetattr/tcsetattr on a file descriptor we own; the struct is plain data.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut term) } != 0 {
        return None;
    }
    let saved = term;
    term.c_lflag &= !libc::ECHO;
    // SAFETY: as above; restored below on every path.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) };
    let mut w = &tty;
    let _ = w.write_all(question.as_bytes());
    let _ = w.flush();
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    // SAFETY: restoring the attributes read above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    let _ = w.write_all(b"\n");
    read.ok()?;
    Some(line.trim_end_matches(['\n', '\r']).to_string())
}

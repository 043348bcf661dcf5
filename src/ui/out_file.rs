//! Writing a file the operator named (`gate --out`, a run's summary, the sandbox's fleet):
//! `-` means stdout, a symlink or special file is written *through*, and only a regular file
//! or a new path is replaced atomically.
//!
//! A temp file renamed over the path is right for a regular file (a reader never sees half of
//! it) and wrong for anything else: renamed over `/dev/stdout` it replaces the symlink with a
//! regular file and nothing reaches stdout; renamed over a link into a shared folder it cuts
//! the link. So the rename is kept for what it is good at and everything else is opened and
//! written like `>` in a shell would.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Where [`write_output`] put the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// This process's stdout (`-`, `/dev/stdout`, or the very file stdout is redirected to).
    Stdout,
    /// This process's stderr (`/dev/stderr` or the file it is redirected to).
    Stderr,
    /// The named file.
    File,
}

/// Write an output the operator named: `-` (or a path that is this process's stdout or
/// stderr) goes to that stream, anything else to [`write_file`].
pub fn write_output(path: &Path, bytes: &[u8]) -> io::Result<Destination> {
    let stream = if path.as_os_str() == "-" {
        Some(Destination::Stdout)
    } else {
        own_stream(path)
    };
    match stream {
        Some(Destination::Stdout) => write_stream(&mut io::stdout().lock(), bytes).map(|_| Destination::Stdout),
        Some(Destination::Stderr) => write_stream(&mut io::stderr().lock(), bytes).map(|_| Destination::Stderr),
        _ => write_file(path, bytes).map(|_| Destination::File),
    }
}

/// Write `bytes` to `path`: a new path or a regular file is replaced atomically (temp file in
/// the same folder, fsync, rename; an existing file keeps its mode), a symlink or special file
/// (FIFO, device) is opened and written through. Missing parent folders are created.
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => replace(path, bytes, None),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => Err(is_a_folder()),
        Ok(m) if m.is_file() => replace(path, bytes, Some(&m)),
        Ok(_) => write_through(path, bytes),
    }
}

fn is_a_folder() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "it is a folder; give a file name")
}

fn write_stream(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    w.write_all(bytes)?;
    w.flush()
}

/// Is `path` the file this process's stdout or stderr already writes to? Opening it afresh
/// (`/dev/stdout` is `/proc/self/fd/1`) would start a second write position at 0 in a
/// redirected file, so the stream itself is used instead.
fn own_stream(path: &Path) -> Option<Destination> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let target = std::fs::metadata(path).ok().filter(|m| !m.is_dir())?;
    let same = |m: Metadata| m.dev() == target.dev() && m.ino() == target.ino();
    let out = io::stdout().as_fd().try_clone_to_owned().map(File::from);
    if out.and_then(|f| f.metadata()).is_ok_and(same) {
        return Some(Destination::Stdout);
    }
    let err = io::stderr().as_fd().try_clone_to_owned().map(File::from);
    if err.and_then(|f| f.metadata()).is_ok_and(same) {
        return Some(Destination::Stderr);
    }
    None
}

/// Open through the symlink (or the special file itself) and write, as a shell's `>` does.
/// Only a regular file at the end of a link is truncated and synced; a FIFO or a device is
/// just written to. A dangling link gets its target created.
fn write_through(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let target = std::fs::metadata(path);
    if target.as_ref().is_ok_and(Metadata::is_dir) {
        return Err(is_a_folder());
    }
    let regular = target.as_ref().map_or(true, Metadata::is_file);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(regular)
        .open(path)?;
    f.write_all(bytes)?;
    if regular {
        f.sync_all()?;
    }
    Ok(())
}

/// Temp file beside `path`, fsync, rename over it: a reader sees the old bytes or the new,
/// never half. An existing file's permissions are carried over.
fn replace(path: &Path, bytes: &[u8], existing: Option<&Metadata>) -> io::Result<()> {
    let name = path.file_name().ok_or_else(is_a_folder)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    // Left over from a crash of a process with the same id: only litter.
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        if let Some(m) = existing {
            f.set_permissions(m.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        // Best effort: the temp file is only litter; the write's own error is what matters.
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // Makes the rename itself durable; not every filesystem lets a folder be synced.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_new_path_gets_its_folders_and_no_temp_file_is_left() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("logs/deep/out.json");
        assert_eq!(write_output(&p, b"{}\n").unwrap(), Destination::File);
        assert_eq!(std::fs::read(&p).unwrap(), b"{}\n");
        assert_eq!(names(&d.path().join("logs/deep")), ["out.json"]);
    }

    #[test]
    fn a_regular_file_is_replaced_and_keeps_its_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.json");
        std::fs::write(&p, b"old, and longer than the new text").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_file(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(names(d.path()), ["out.json"]);
    }

    #[test]
    fn a_symlink_is_written_through_and_stays_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("shared")).unwrap();
        let target = d.path().join("shared/decision.json");
        std::fs::write(&target, b"old, and longer than the new text").unwrap();
        let link = d.path().join("decision.json");
        symlink(&target, &link).unwrap();
        write_file(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"new");

        // A dangling link gets its target created, the link left in place.
        let dangling = d.path().join("later.json");
        symlink(d.path().join("shared/later.json"), &dangling).unwrap();
        write_file(&dangling, b"x").unwrap();
        assert!(std::fs::symlink_metadata(&dangling).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(d.path().join("shared/later.json")).unwrap(), b"x");
    }

    #[test]
    fn a_fifo_is_written_to_not_replaced() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("pipe");
        let st = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(st.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        let written = write_file(&fifo, b"through the pipe");
        // Should the FIFO never have been opened, let the reader see EOF rather than hang.
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo);
        written.unwrap();
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        assert!(!std::fs::symlink_metadata(&fifo).unwrap().is_file(), "still a FIFO");
    }

    #[test]
    fn a_folder_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = write_file(d.path(), b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let link = d.path().join("to-folder");
        symlink(d.path(), &link).unwrap();
        assert_eq!(write_file(&link, b"x").unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}

//! The exclusive lock on a data directory.
//!
//! sled allows one process per database, and the idempotency index in memory is
//! only right if nobody else appends behind its back, so a data directory has
//! one writer at a time. The lock is an advisory `flock` on `<dir>/LOCK`
//! (`File::try_lock`), which the kernel releases when the holder exits, even
//! on a crash: a stale `LOCK` file never blocks anyone. The holder writes its
//! pid, command line and start time into the file so that a refused process can
//! tell the user who is in the way.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use penalty_core::time::UtcOffset;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// Who holds the lock, as written into the lock file.
#[derive(Serialize, Deserialize)]
struct Holder {
    pid: u32,
    command: String,
    since: String,
}

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock on `dir` (which must exist) without waiting.
    pub fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        DirLock::take(dir, None)
    }

    /// Takes the lock on `dir`, waiting for it while another process holds
    /// it: `on_wait` is told once who is in the way (a
    /// [`StoreError::Locked`]), before the wait begins.
    pub fn acquire_waiting(
        dir: &Path,
        on_wait: &mut dyn FnMut(&StoreError),
    ) -> Result<DirLock, StoreError> {
        DirLock::take(dir, Some(on_wait))
    }

    fn take(
        dir: &Path,
        on_wait: Option<&mut dyn FnMut(&StoreError)>,
    ) -> Result<DirLock, StoreError> {
        let path = dir.join(LOCK_FILE);
        let io_error = |action, source| StoreError::Io {
            action,
            path: path.clone(),
            source,
        };
        // The file is opened without truncating it: when the lock turns out to
        // be held, its content is the holder's description, read below.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error("opening the lock file", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let locked = StoreError::Locked {
                    dir: dir.to_path_buf(),
                    holder: describe_holder(&mut file, &path),
                };
                let Some(on_wait) = on_wait else {
                    return Err(locked);
                };
                on_wait(&locked);
                file.lock()
                    .map_err(|e| io_error("waiting for the lock file", e))?;
            }
            Err(TryLockError::Error(e)) => return Err(io_error("locking the lock file", e)),
        }
        let holder = Holder {
            pid: std::process::id(),
            command: std::env::args_os()
                .map(|arg| arg.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" "),
            since: crate::clock::now().to_rfc3339(UtcOffset { seconds: 0 }),
        };
        // A `Holder` always serialises; the fallback only keeps this path free
        // of panics.
        let text = serde_json::to_string(&holder).unwrap_or_default();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(text.as_bytes()))
            .and_then(|()| file.write_all(b"\n"))
            .map_err(|e| io_error("writing the lock file", e))?;
        tracing::debug!(path = %path.display(), "took the data directory lock");
        Ok(DirLock { _file: file })
    }
}

/// A sentence naming the process that holds the lock, from the lock file.
fn describe_holder(file: &mut File, path: &Path) -> String {
    let mut text = String::new();
    // The holder may be between taking the lock and writing its name, or the
    // file may be damaged: then the message says so instead of failing.
    let read = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| (&mut *file).take(64 * 1024).read_to_string(&mut text));
    match read
        .ok()
        .and_then(|_| serde_json::from_str::<Holder>(text.trim()).ok())
    {
        Some(holder) if holder_running(&holder) == Some(false) => format!(
            "another process: the LOCK file names process {} (`{}`, since {}), which is no \
             longer running, so the lock is held by a process that has not written its name \
             yet or by one the named process left behind (on Linux, `fuser -v {}` shows it)",
            holder.pid,
            holder.command,
            holder.since,
            path.display()
        ),
        Some(holder) => format!(
            "process {} (`{}`, running since {})",
            holder.pid, holder.command, holder.since
        ),
        None => "another process (its details could not be read from the LOCK file)".into(),
    }
}

/// Whether the process the LOCK file names is still the one running under
/// its pid: `Some(false)` when the pid is gone, a zombie, or runs another
/// command line (the pid was reused); `None` where `/proc` cannot tell.
/// The lock itself is the kernel's `flock`, so a stale name is possible
/// whenever the holder has not yet rewritten the file (issue 20).
fn holder_running(holder: &Holder) -> Option<bool> {
    if !Path::new("/proc/self/stat").exists() {
        return None;
    }
    let proc_dir = Path::new("/proc").join(holder.pid.to_string());
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return Some(false);
    };
    // The state follows the command name, which is in parentheses and may
    // itself hold any character: the last `)` ends it.
    let state = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].trim_start().chars().next());
    if matches!(state, Some('Z' | 'X' | 'x')) {
        return Some(false);
    }
    // The command line as the holder wrote it: arguments joined by spaces.
    let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) else {
        return Some(true);
    };
    let cmdline = cmdline.strip_suffix(b"\0").unwrap_or(&cmdline);
    if cmdline.is_empty() {
        return Some(true);
    }
    let running = String::from_utf8_lossy(cmdline).replace('\0', " ");
    Some(running == holder.command)
}

//! The projection snapshot: one file beside the log, `projection.snap`,
//! replaced atomically (write a temporary file, fsync it, rename it over
//! the old one, fsync the directory), so that a reader, which takes no lock,
//! always opens a whole snapshot, old or new, never a torn one.
//!
//! It records where in the blocks file the events it reflects end: the
//! block holding its last event (first sequence number, offset, length and
//! checksum). A reader checks that block's header before trusting the
//! snapshot (a snapshot of another log, or of a log since rebuilt, is
//! ignored), then folds the blocks after it.
//!
//! Format (integers big-endian):
//!
//! ```text
//! 0..4    magic b"PLSN"
//! 4..6    format version (1)
//! 6..8    reserved, zero
//! 8..16   seq: the last sequence number reflected (the last of its block)
//! 16..24  block_first_seq: the first sequence number of that block
//! 24..32  block_offset: where that block starts in the blocks file
//! 32..36  block_len: its length in bytes
//! 36..40  block_crc: the CRC in its header
//! 40..48  payload length
//! 48..52  CRC-32 of bytes 0..48 and the payload
//! 52..    the payload (opaque here: the projection's encoding)
//! ```
//!
//! Only one snapshot is kept: each write replaces the last, and the
//! temporary files of writers that died before their rename are removed by
//! the next writer to open the log, so snapshots never pile up.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::StoreError;

/// The snapshot's file name in the data directory.
pub const SNAPSHOT_FILE: &str = "projection.snap";
/// The prefix of its temporary files, followed by the writer's pid.
const TEMP_PREFIX: &str = "projection.snap.tmp.";
const MAGIC: &[u8; 4] = b"PLSN";
const VERSION: u16 = 1;
const HEADER_BYTES: usize = 52;

/// Where the events a snapshot reflects end in the blocks file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotEnd {
    /// The last sequence number reflected: the last of its block.
    pub seq: u64,
    /// The first sequence number of the block holding `seq`.
    pub block_first_seq: u64,
    /// Where that block starts in the blocks file.
    pub block_offset: u64,
    /// Its length in bytes.
    pub block_len: u32,
    /// The CRC in its header.
    pub block_crc: u32,
}

impl SnapshotEnd {
    /// Where the block after it starts (before any padding).
    pub fn next_offset(&self) -> u64 {
        self.block_offset + u64::from(self.block_len)
    }
}

/// A snapshot as read back, checksum verified.
#[derive(Debug)]
pub struct Snapshot {
    /// Where its events end.
    pub end: SnapshotEnd,
    /// The payload.
    pub payload: Vec<u8>,
}

pub(crate) fn io_error(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

fn header(end: &SnapshotEnd, payload: &[u8]) -> [u8; HEADER_BYTES] {
    let mut crc = crc32fast::Hasher::new();
    crc.update(payload);
    header_of(end, payload.len() as u64, &crc)
}

/// The header of a payload of `len` bytes whose CRC-32 is `payload_crc`
/// (the CRC of the header's first 48 bytes and the payload, combined).
fn header_of(end: &SnapshotEnd, len: u64, payload_crc: &crc32fast::Hasher) -> [u8; HEADER_BYTES] {
    let mut bytes = [0u8; HEADER_BYTES];
    bytes[0..4].copy_from_slice(MAGIC);
    bytes[4..6].copy_from_slice(&VERSION.to_be_bytes());
    bytes[8..16].copy_from_slice(&end.seq.to_be_bytes());
    bytes[16..24].copy_from_slice(&end.block_first_seq.to_be_bytes());
    bytes[24..32].copy_from_slice(&end.block_offset.to_be_bytes());
    bytes[32..36].copy_from_slice(&end.block_len.to_be_bytes());
    bytes[36..40].copy_from_slice(&end.block_crc.to_be_bytes());
    bytes[40..48].copy_from_slice(&len.to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[0..48]);
    crc.combine(payload_crc);
    bytes[48..52].copy_from_slice(&crc.finalize().to_be_bytes());
    bytes
}

/// Writes the snapshot of `dir`, replacing the last one atomically. Any
/// process may call it: a writer, or a reader that folded a long tail (a
/// read-only directory then refuses, which the caller may ignore). Two
/// processes writing at once each rename a whole file; the last rename
/// wins, and either file is a true snapshot of a prefix of the log.
pub fn write(dir: &Path, end: &SnapshotEnd, payload: &[u8]) -> Result<(), StoreError> {
    replace_file(dir, SNAPSHOT_FILE, &[&header(end, payload), payload])?;
    tracing::debug!(seq = end.seq, bytes = payload.len(), "wrote a snapshot");
    Ok(())
}

/// Writes the snapshot of `dir` as [`write`] does (the same bytes for the
/// same payload), the payload streamed into the file by `payload` instead
/// of held in memory: the header, which holds its length and checksum, is
/// written over its place at the file's start once the payload is.
pub fn write_streamed(
    dir: &Path,
    end: &SnapshotEnd,
    payload: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    let mut len = 0;
    replace_file_with(dir, SNAPSHOT_FILE, |file| {
        let mut out = Counted {
            inner: std::io::BufWriter::with_capacity(1 << 20, file),
            len: 0,
            crc: crc32fast::Hasher::new(),
        };
        out.inner.write_all(&[0u8; HEADER_BYTES])?;
        payload(&mut out)?;
        out.inner.flush()?;
        len = out.len;
        file.write_all_at(&header_of(end, out.len, &out.crc), 0)
    })?;
    tracing::debug!(seq = end.seq, bytes = len, "wrote a snapshot");
    Ok(())
}

/// A writer that counts and checksums what goes through it.
struct Counted<W> {
    inner: W,
    len: u64,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.len += n as u64;
        self.crc.update(&bytes[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Replaces `dir/name` atomically by the concatenation of `chunks`: a
/// temporary file (named with [`TEMP_PREFIX`], so that a dead writer's is
/// removed by [`remove_stale_temps`]), fsynced, renamed over it, and the
/// directory fsynced.
pub(crate) fn replace_file(dir: &Path, name: &str, chunks: &[&[u8]]) -> Result<(), StoreError> {
    replace_file_with(dir, name, |file| {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        for chunk in chunks {
            out.write_all(chunk)?;
        }
        out.flush()
    })
}

/// Replaces `dir/name` atomically by what `contents` writes into a
/// temporary file, as [`replace_file`] does.
pub(crate) fn replace_file_with(
    dir: &Path,
    name: &str,
    contents: impl FnOnce(&File) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let number = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("{TEMP_PREFIX}{}.{number}", std::process::id()));
    let path = dir.join(name);
    let written = (|| {
        let file = File::create(&tmp).map_err(io_error("creating a snapshot file", &tmp))?;
        contents(&file).map_err(io_error("writing a snapshot file", &tmp))?;
        file.sync_all()
            .map_err(io_error("writing a snapshot file", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_error("replacing the snapshot", &path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error("syncing the data directory", dir))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Reads the snapshot of `dir`: `None` when there is none, an error
/// ([`StoreError::CorruptCheckpoint`]) when it fails its checksum.
pub fn read(dir: &Path) -> Result<Option<Snapshot>, StoreError> {
    let path = dir.join(SNAPSHOT_FILE);
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error("opening the snapshot", &path)(source)),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(io_error("reading the snapshot", &path))?;
    decode(bytes).map(Some)
}

fn decode(mut bytes: Vec<u8>) -> Result<Snapshot, StoreError> {
    let corrupt = |detail: String| StoreError::CorruptCheckpoint {
        detail: format!("{SNAPSHOT_FILE}: {detail}"),
    };
    if bytes.len() < HEADER_BYTES || &bytes[0..4] != MAGIC {
        return Err(corrupt("it does not start with a snapshot header".into()));
    }
    let u64_at = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
    let u32_at = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if version != VERSION {
        return Err(corrupt(format!("unknown snapshot version {version}")));
    }
    let end = SnapshotEnd {
        seq: u64_at(8),
        block_first_seq: u64_at(16),
        block_offset: u64_at(24),
        block_len: u32_at(32),
        block_crc: u32_at(36),
    };
    let len = u64_at(40);
    if len != (bytes.len() - HEADER_BYTES) as u64 {
        return Err(corrupt(format!(
            "it holds {} bytes of payload where its header says {len}",
            bytes.len() - HEADER_BYTES
        )));
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[0..48]);
    crc.update(&bytes[HEADER_BYTES..]);
    let stored = u32_at(48);
    let actual = crc.finalize();
    if stored != actual {
        return Err(corrupt(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x})"
        )));
    }
    bytes.drain(..HEADER_BYTES);
    Ok(Snapshot {
        end,
        payload: bytes,
    })
}

/// Removes the temporary snapshot files of processes that are gone (killed
/// between creating and renaming one). Called by a writer as it opens the
/// log: the one process sure to come back to a directory.
pub fn remove_stale_temps(dir: &Path) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(io_error("listing the data directory", dir)(source)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
            continue;
        };
        let pid = rest.split('.').next().unwrap_or("");
        let alive = !pid.is_empty() && PathBuf::from("/proc").join(pid).exists();
        if !alive {
            let path = entry.path();
            tracing::info!(path = %path.display(), "removing a snapshot file its writer left unfinished");
            std::fs::remove_file(&path)
                .map_err(io_error("removing an unfinished snapshot file", &path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(seq: u64) -> SnapshotEnd {
        SnapshotEnd {
            seq,
            block_first_seq: 1,
            block_offset: 0,
            block_len: 100,
            block_crc: 7,
        }
    }

    #[test]
    fn round_trip_replace_and_detect_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        write(dir.path(), &end(5), b"first").unwrap();
        write(dir.path(), &end(9), &[3; 100_000]).unwrap();
        let snapshot = read(dir.path()).unwrap().unwrap();
        assert_eq!(snapshot.end, end(9));
        assert_eq!(snapshot.payload, vec![3; 100_000]);
        // One file: the temporary ones were renamed.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let error = read(dir.path()).unwrap_err();
        assert!(error.to_string().contains("checksum mismatch"), "{error}");
        std::fs::write(&path, &bytes[..30]).unwrap();
        assert!(read(dir.path()).is_err());
    }

    #[test]
    fn temporary_files_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // No process has pid 0 in /proc; our own pid is alive.
        let dead = dir.path().join(format!("{TEMP_PREFIX}0.1"));
        let alive = dir
            .path()
            .join(format!("{TEMP_PREFIX}{}.1", std::process::id()));
        std::fs::write(&dead, b"x").unwrap();
        std::fs::write(&alive, b"x").unwrap();
        remove_stale_temps(dir.path()).unwrap();
        assert!(!dead.exists());
        assert!(alive.exists());
    }
}

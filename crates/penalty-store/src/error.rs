//! The one error type of this crate.
//!
//! Every message says what went wrong and what to do about it, because the CLI
//! shows these messages to people as they are.

use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (or another handle in this process) holds the data
    /// directory. Only one writer may use the log at a time.
    #[error(
        "the data directory {dir} is in use by {holder}; wait for that process to finish or stop \
         it, then run this command again (if it is `penalty serve`, send events with POST /events \
         and read through its HTTP API)"
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// Who holds it: pid, command line and since when.
        holder: String,
    },

    /// A read command was pointed at a directory no writer ever created a
    /// log in. Only writers (`ingest`, `serve`, `recover`) create one, so
    /// that a mistyped `--db` is not mistaken for an empty ledger.
    #[error(
        "no event log at {dir}: {reason}, so nothing has been ingested there; check the --db \
         path (or $PENALTY_DB), or create the log with `penalty ingest --db {dir} FILE`",
        dir = dir.display()
    )]
    NoLog {
        /// The data directory asked for.
        dir: PathBuf,
        /// What is missing, such as "the directory does not exist".
        reason: &'static str,
    },

    /// A file system operation outside sled failed.
    #[error("{action} {path}: {source}; check that the path exists, is writable and the disk is not full")]
    Io {
        /// What was being done, such as "creating the data directory".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// sled reported an error.
    #[error("the event log database {path}: {source}; check the disk and the permissions of the data directory")]
    Database {
        /// The sled directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: sled::Error,
    },

    /// A stored block failed its checksum or its structure is wrong. The events
    /// it holds are never returned.
    #[error(
        "the event log is corrupt in the block starting at sequence number {block_seq} (events \
         {first_seq} to {last_seq}): {detail}; restore the data directory from a backup, and run \
         `penalty audit` to see what is damaged"
    )]
    Corrupt {
        /// The key of the block: its first sequence number as stored.
        block_seq: u64,
        /// The first sequence number concerned.
        first_seq: u64,
        /// The last sequence number concerned (equal to `first_seq` for one event).
        last_seq: u64,
        /// What exactly is wrong.
        detail: String,
    },

    /// The stored projection checkpoint failed its checksum or is malformed.
    #[error("the projection snapshot is damaged ({detail}); queries replay the log instead, and `penalty recover` removes it")]
    CorruptCheckpoint {
        /// What exactly is wrong.
        detail: String,
    },

    /// Reading the ingest input failed. The lines before it were handled.
    #[error(
        "reading the input failed after line {line}: {source}; the lines before it were ingested, \
         so fix the input and run ingest again (re-sending lines is safe)"
    )]
    Input {
        /// The last line read completely.
        line: u64,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Writing the rejects file failed. Ingest stops rather than drop a line.
    #[error("writing the rejects file {path}: {source}; check the disk, then run ingest again (re-sending lines is safe)")]
    Rejects {
        /// The rejects file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The caller's [`crate::ingest::IngestSink`] failed; its message says why.
    #[error("{0}")]
    Sink(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// The log holds as many events as it can: its idempotency index keeps
    /// sequence numbers in 32 bits.
    #[error(
        "the log in {dir} is full: it holds at most {max_events} events, and this append would          end at sequence number {wanted}; start a new data directory for further events"
    )]
    Full {
        /// The data directory.
        dir: PathBuf,
        /// The most events a log holds.
        max_events: u64,
        /// The last sequence number the append would have given.
        wanted: u64,
    },
}

impl StoreError {
    pub(crate) fn corrupt_block(
        block_seq: u64,
        count: u64,
        detail: impl Into<String>,
    ) -> StoreError {
        StoreError::Corrupt {
            block_seq,
            first_seq: block_seq,
            last_seq: block_seq.saturating_add(count.max(1) - 1),
            detail: detail.into(),
        }
    }

    /// The first sequence number a [`StoreError::Corrupt`] names.
    pub fn corrupt_seq(&self) -> Option<u64> {
        match self {
            StoreError::Corrupt { first_seq, .. } => Some(*first_seq),
            _ => None,
        }
    }
}

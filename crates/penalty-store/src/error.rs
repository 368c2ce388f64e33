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
    #[error("{}", self.message(penalty_core::labels::Lang::En))]
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

    /// The caller's own [`crate::ingest::RejectsSink`] or
    /// [`crate::ingest::IngestObserver`] failed in a way of its own; its
    /// message says why. The store itself never returns this.
    #[error("{0}")]
    Sink(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// The operating system refused a thread (too many threads, or no
    /// memory for its stack). Nothing is wrong with the input or the log.
    #[error(
        "could not start the {thread} thread: {source}; the machine is short of threads or \
         memory: retry when it is less loaded (what was committed stays, re-sending lines is safe)"
    )]
    Spawn {
        /// Which thread, such as "ingest block writer".
        thread: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A worker thread ended (or panicked) before it finished its work: a
    /// bug in penalty, not in the input.
    #[error(
        "the {thread} thread ended unexpectedly; this is a bug in penalty, please report it with \
         the command you ran (what was committed stays, re-sending lines is safe)"
    )]
    ThreadEnded {
        /// Which thread, such as "replay reader".
        thread: &'static str,
    },

    /// A lock was poisoned: a thread panicked while holding it, a bug in
    /// penalty.
    #[error(
        "the {lock} lock is poisoned (a thread panicked while holding it); this is a bug in \
         penalty, please report it, and restart the server (the log keeps every committed event)"
    )]
    Poisoned {
        /// Which lock, such as "projection".
        lock: &'static str,
    },

    /// Folding events into the projection failed: the ledger refused what
    /// the log holds or what the fold handed it. A bug in penalty or a
    /// damaged log, never the input of a command.
    #[error(
        "folding the log into the projection failed: {detail}; run `penalty audit` to check the \
         log, and report this with its output"
    )]
    Fold {
        /// What the ledger said, or which event could not be rebuilt.
        detail: String,
    },

    /// The log holds as many events as it can: its idempotency index keeps
    /// sequence numbers in 32 bits.
    #[error(
        "the log in {dir} is full: it holds at most {max_events} events, and this append would \
         end at sequence number {wanted}; start a new data directory for further events"
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

    /// The message in `lang` (its `Display` is the English one). The errors
    /// that name the user's input are worded by the core's phrases; the
    /// others, about the machine and the data directory, stay English.
    pub fn message(&self, lang: penalty_core::labels::Lang) -> String {
        use penalty_core::labels::Phrase;
        match self {
            StoreError::Input { line, source } => {
                Phrase::InputReadFailed.fill(lang, &[line, source])
            }
            other => other.to_string(),
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

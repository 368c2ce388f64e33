//! The durable side of the penalty ledger: the event log, projection
//! checkpoints and the streaming ingest pipeline, on sled.
//!
//! `penalty-core` is pure; everything that touches the disk, the clock or a
//! thread lives here, and nothing here prints (logs go through `tracing`).
//!
//! - [`EventLog`] is the append-only log of one data directory: events packed
//!   into checksummed blocks (one per batch, appended to a file and located
//!   through one sled key each, see [`block`]), global
//!   gapless sequence numbers from 1, the permanent idempotency rules of
//!   EVENTS.md, and an exclusive lock on the directory.
//! - [`reader::LogReader`] reads the acknowledged prefix of the log from the
//!   files alone, with no lock and no sled: any number of read commands run
//!   beside each other and beside the one writer.
//! - [`snapshot`] keeps one checksummed projection snapshot in a file next
//!   to the log, replaced atomically.
//! - [`ingest`] streams JSON Lines from any reader into the log in constant
//!   memory, committing a block per batch or per 100 ms, whichever comes first.
//! - [`clock`] is the wall clock, the one place the shell reads it (the
//!   core never does): block stamps and the default `as_of`.
//!
//! Layout of a data directory: `<dir>/LOCK` (the writer's lock file, naming
//! its holder), `<dir>/HEAD` (the head journal, see [`head`]: what is
//! acknowledged), `<dir>/events.log` (the blocks, appended),
//! `<dir>/projection.snap` (the projection snapshot, see [`snapshot`]),
//! `<dir>/tail.index` (where each partition's events lie in the blocks the
//! last ingest appended, see [`tail_index`]),
//! `<dir>/rejects.jsonl` (rejected lines, [`ingest::REJECTS_FILE`]) and
//! `<dir>/log.sled` (the writer's sled database: tree `blocks` locates each
//! block for the writer's own lookups).

pub mod block;
pub mod clock;
mod direct;
mod error;
pub mod head;
pub mod ingest;
mod lock;
mod log;
pub mod parts;
pub mod projection;
pub mod reader;
pub mod recover;
mod scan;
mod slots;
pub mod snapshot;
pub mod tail_index;

pub use error::StoreError;
pub use lock::LOCK_FILE;
pub use log::{
    AppendOutcome, EventLog, LogIter, StoredEvent, VerifyProblem, VerifyReport, BLOCKS_FILE,
    BLOCKS_TREE, MAX_RESERVED_EVENTS, SLED_DIR,
};

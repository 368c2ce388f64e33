//! The ledger partitioned by shop over a NATS JetStream cluster
//! (docs/SCALE-OUT.md).
//!
//! - [`partition`]: the stable hash of a key to a partition, and rendezvous
//!   ownership of partitions by live nodes.
//! - [`wire`]: the messages of the streams, and their subjects.
//! - [`stages`]: the three keyed stages as pure state machines: a message and
//!   its stream sequence in, the messages to publish out.
//! - [`setup`]: connecting, and creating the streams and buckets.
//! - [`ingest`]: publishing lines and collecting each line's decision.
//! - [`node`]: a node's state and life: ownership, the partition workers
//!   with their checkpoints, the ingest, status and metrics handlers, the
//!   graceful stop.
//! - [`serve`]: a node process: its HTTP route table and entry point.
//! - [`replay`]: `known_at` on a node: a partition's shop stage rebuilt
//!   from its stream as of a recording instant, kept and bounded.
//! - [`query`]: a node's routes that merge partitions (`/shops`, order
//!   lists and exports, `/data-range`) or forward a shop's route to its
//!   partition's host, answered in chunks ([`chunks`]) under NATS's
//!   payload limit.

mod chunks;
pub mod ingest;
pub mod node;
pub mod partition;
pub mod query;
pub mod replay;
pub mod serve;
pub mod setup;
pub mod stages;
pub mod wire;

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The NATS servers could not be reached or refused a request.
    #[error("NATS: {0}")]
    Nats(String),
    /// `penalty cluster init` was not run, or was run with other settings.
    #[error("{0}")]
    Config(String),
    /// A local file (a checkpoint, the input) could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A stored or received message could not be decoded: a bug or a foreign
    /// publisher on our subjects.
    #[error("a message could not be decoded: {0}")]
    Decode(String),
    /// No decision came for a published line in time.
    #[error("{0}")]
    Timeout(String),
    /// A `known_at` question would replay more of a partition's shop stream
    /// than a node reads for one question.
    #[error(
        "known_at is answered on a cluster node by replaying the shop's partition (partition \
         {partition}): it holds {events} or more events to read, over this node's limit of \
         {limit} events a replay; start the nodes with a higher --max-replay-events (a replay \
         reads roughly 100,000 events a second), or ask without known_at"
    )]
    ReplayTooLarge {
        /// The partition.
        partition: u32,
        /// The events it holds to read (at least).
        events: u64,
        /// `--max-replay-events`.
        limit: u64,
    },
}

impl ClusterError {
    pub(crate) fn nats(context: &str, error: impl std::fmt::Display) -> ClusterError {
        ClusterError::Nats(format!("{context}: {error}"))
    }
}

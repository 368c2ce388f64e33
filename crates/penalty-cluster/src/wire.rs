//! The messages of the four streams, and their subjects.
//!
//! - `PENALTY_IN`, subjects `in.<p>` by the event id: the lines as ingest
//!   publishes them, and the resolutions of `paid` candidates (stage 1).
//! - `PENALTY_ORD`, subjects `ord.<p>` by the order id: the order events that
//!   stage 1 let through (stage 2).
//! - `PENALTY_SHOP`, subjects `shop.<p>` by the shop id: the log of record,
//!   events of the shops of the partition (stage 3).
//! - `PENALTY_DEC`, subjects `dec.<ingest id>`: each line's decision, for the
//!   ingest that published it.
//!
//! Messages are JSON; the event itself travels as its canonical JSON (keys
//! sorted, the form EVENTS.md's "same content" compares).

use serde::{Deserialize, Serialize};

/// The stream of stage 1.
pub const IN_STREAM: &str = "PENALTY_IN";
/// The stream of stage 2.
pub const ORD_STREAM: &str = "PENALTY_ORD";
/// The stream of stage 3: the log of record.
pub const SHOP_STREAM: &str = "PENALTY_SHOP";
/// The decisions for ingests.
pub const DEC_STREAM: &str = "PENALTY_DEC";
/// The cluster's settings (`config`).
pub const META_BUCKET: &str = "PENALTY_META";
/// Where nodes heartbeat (`penalty.hb.<node>`, core NATS, every second).
pub const HEARTBEAT_SUBJECTS: &str = "penalty.hb.*";

/// One of the three keyed stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Stage {
    /// Keyed by event id: duplicates and conflicts.
    Ids,
    /// Keyed by order id: the first paid, the order's shop, parked orphans.
    Orders,
    /// Keyed by shop id: the ledger.
    Shops,
}

impl Stage {
    /// All three, in pipeline order.
    pub const ALL: [Stage; 3] = [Stage::Ids, Stage::Orders, Stage::Shops];

    /// The stream this stage consumes.
    pub fn stream(self) -> &'static str {
        match self {
            Stage::Ids => IN_STREAM,
            Stage::Orders => ORD_STREAM,
            Stage::Shops => SHOP_STREAM,
        }
    }

    /// The subject of partition `p` of this stage's stream.
    pub fn subject(self, p: u32) -> String {
        match self {
            Stage::Ids => format!("in.{p}"),
            Stage::Orders => format!("ord.{p}"),
            Stage::Shops => format!("shop.{p}"),
        }
    }

    /// A short name, for file names, metrics and status.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Ids => "ids",
            Stage::Orders => "orders",
            Stage::Shops => "shops",
        }
    }
}

/// Where a forwarded message comes from: the stage, its partition, the
/// stream sequence of the message whose handling produced it, and its rank
/// among that handling's outputs. A handling is deterministic, so a replay
/// (a restart, two owners during a hand-over) produces the same origins, and
/// the receiver applies each origin once: it keeps, per source partition,
/// the highest origin applied (a source publishes its outputs in order,
/// each acknowledged before the next).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Origin {
    /// The producing stage.
    pub stage: Stage,
    /// Its partition.
    pub partition: u32,
    /// The stream sequence handled.
    pub seq: u64,
    /// The rank of this output in that handling.
    pub rank: u32,
}

impl Origin {
    /// The `Nats-Msg-Id` of the message: JetStream drops a re-publication
    /// within its window, and the receiver's watermark drops it after.
    pub fn msg_id(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.stage.name(),
            self.partition,
            self.seq,
            self.rank
        )
    }
}

/// A message of `PENALTY_IN`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum InMsg {
    /// A valid line, from an ingest.
    Line {
        /// The ingest, whose decisions go to `dec.<ingest>`.
        ingest: String,
        /// The line number in that ingest.
        line: u64,
        /// The event's canonical JSON.
        json: String,
    },
    /// Stage 2's verdict on a `paid` that stage 1 holds pending.
    Resolve {
        /// The event id, canonical form.
        event_id: String,
        /// The candidate's origin (the stage-1 output that carried it).
        candidate: Origin,
        /// Whether the paid was appended (else `order_already_paid`).
        appended: bool,
    },
}

/// A message of `PENALTY_ORD`: an order event stage 1 let through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrdMsg {
    /// Where it comes from (stage 1).
    pub origin: Origin,
    /// The event's canonical JSON.
    pub json: String,
    /// When stage 1 recorded it (ns since the epoch): the log's recorded_at.
    pub recorded_at_ns: i64,
    /// For a `paid`: who to tell its verdict.
    pub ingest: Option<String>,
    /// The line, for the verdict.
    pub line: u64,
}

/// A message of `PENALTY_SHOP`: an appended event of a shop of the partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopMsg {
    /// Where it comes from (stage 1 for top-ups, stage 2 else).
    pub origin: Origin,
    /// The event's canonical JSON.
    pub json: String,
    /// When stage 1 recorded it (ns since the epoch).
    pub recorded_at_ns: i64,
}

/// A message of `PENALTY_DEC`: what became of one line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The line number in its ingest.
    pub line: u64,
    /// `appended`, `duplicate`, or a reason code (`event_id_conflict`,
    /// `order_already_paid`, `invalid_json`).
    pub outcome: String,
}

/// A message to publish, in order, before the input that produced it is
/// checkpointed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    /// The subject.
    pub subject: String,
    /// The `Nats-Msg-Id` header.
    pub msg_id: String,
    /// The JSON payload.
    pub payload: Vec<u8>,
}

impl Publish {
    pub(crate) fn json(subject: String, msg_id: String, value: &impl Serialize) -> Publish {
        Publish {
            subject,
            msg_id,
            // Serialising these plain structs cannot fail.
            payload: serde_json::to_vec(value).unwrap_or_default(),
        }
    }
}

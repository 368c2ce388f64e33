//! The three keyed stages as pure state machines (docs/SCALE-OUT.md).
//!
//! Each takes one message of its stream with the message's stream sequence
//! and returns what to publish; the caller publishes it, in order, before it
//! checkpoints the state with that sequence. A handling is deterministic, so
//! replaying a stream from a checkpoint gives the same state and the same
//! outputs, which the receivers drop by origin (see [`Origin`]).
//!
//! The first-come decisions of EVENTS.md need two keys for a `paid` (its
//! event id and its order id), held by two stages. One machine records a
//! line's event id only when the line is appended: a `paid` rejected as
//! `order_already_paid` leaves its id unknown (sent again, it is rejected
//! again; another line with that id is new). So stage 1 holds a `paid`'s id
//! *pending* until stage 2's verdict comes back on its own stream, and
//! parks, in order, any line with that id meanwhile.

use std::collections::HashMap;

use penalty_core::event::{format_event_id, parse_stored};
use penalty_core::{Event, Instant, KindRef, Ledger, Policy};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::partition::{partition_of, partition_of_event_id};
use crate::wire::{Decision, InMsg, OrdMsg, Origin, Publish, ShopMsg, Stage};

/// Collects a handling's outputs, ranking their origins.
struct Emitter {
    stage: Stage,
    partition: u32,
    seq: u64,
    rank: u32,
    out: Vec<Publish>,
}

impl Emitter {
    fn new(stage: Stage, partition: u32, seq: u64) -> Emitter {
        Emitter {
            stage,
            partition,
            seq,
            rank: 0,
            out: Vec::new(),
        }
    }

    fn origin(&mut self) -> Origin {
        let origin = Origin {
            stage: self.stage,
            partition: self.partition,
            seq: self.seq,
            rank: self.rank,
        };
        self.rank += 1;
        origin
    }

    fn decision(&mut self, ingest: &str, line: u64, outcome: &str) {
        // Ranked like any output, so that a replay republishes it with the
        // same id (JetStream drops it within its window; ingest drops a
        // line's second decision anyway).
        let _ = self.origin();
        self.out.push(Publish::json(
            format!("dec.{ingest}"),
            format!("d.{ingest}.{line}"),
            &Decision {
                line,
                outcome: outcome.to_string(),
            },
        ));
    }

    fn forward_to_shop(&mut self, partitions: u32, shop_id: &str, json: &str, recorded_at_ns: i64) {
        let origin = self.origin();
        self.out.push(Publish::json(
            Stage::Shops.subject(partition_of(shop_id, partitions)),
            origin.msg_id(),
            &ShopMsg {
                origin,
                json: json.to_string(),
                recorded_at_ns,
            },
        ));
    }
}

/// A line as stage 1 holds it while its event id is pending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Line {
    ingest: String,
    line: u64,
    json: String,
    recorded_at_ns: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum IdState {
    /// In the log, with the SHA-256 of its canonical JSON.
    Known([u8; 32]),
    /// A `paid` with this id awaits stage 2's verdict; `parked` are the
    /// later lines with this id, in stream order.
    Pending {
        hash: [u8; 32],
        candidate: Origin,
        parked: Vec<Line>,
    },
}

/// Stage 1, keyed by event id: duplicates and `event_id_conflict`.
/// Permanent: an id once appended stays known (JetStream's own duplicate
/// window is two minutes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdStage {
    ids: HashMap<u128, IdState>,
}

impl IdStage {
    /// Handles message `seq` of `in.<partition>`, stored by JetStream at
    /// `stored_at_ns` (the event's recorded_at).
    pub fn handle(
        &mut self,
        partitions: u32,
        partition: u32,
        seq: u64,
        stored_at_ns: i64,
        msg: InMsg,
    ) -> Vec<Publish> {
        let mut em = Emitter::new(Stage::Ids, partition, seq);
        match msg {
            InMsg::Line { ingest, line, json } => self.decide(
                partitions,
                &mut em,
                Line {
                    ingest,
                    line,
                    json,
                    recorded_at_ns: stored_at_ns,
                },
            ),
            InMsg::Resolve {
                event_id,
                candidate,
                appended,
            } => {
                let Ok(id) = uuid_of(&event_id) else {
                    tracing::warn!(event_id, "a resolution names no valid event id");
                    return em.out;
                };
                // A resolution repeated (a replay of stage 2) or for an
                // earlier candidate of this id finds no match: ignored.
                let matches = matches!(
                    self.ids.get(&id),
                    Some(IdState::Pending { candidate: c, .. }) if *c == candidate
                );
                if matches {
                    if let Some(IdState::Pending { hash, parked, .. }) = self.ids.remove(&id) {
                        if appended {
                            self.ids.insert(id, IdState::Known(hash));
                        }
                        for line in parked {
                            self.decide(partitions, &mut em, line);
                        }
                    }
                }
            }
        }
        em.out
    }

    fn decide(&mut self, partitions: u32, em: &mut Emitter, line: Line) {
        let event = match parse_stored(line.json.as_bytes()) {
            Ok(event) => event,
            Err(reject) => {
                em.decision(&line.ingest, line.line, &reject.code());
                return;
            }
        };
        let hash: [u8; 32] = Sha256::digest(line.json.as_bytes()).into();
        match self.ids.get_mut(&event.event_id) {
            Some(IdState::Known(known)) => {
                let outcome = if *known == hash {
                    "duplicate"
                } else {
                    "event_id_conflict"
                };
                em.decision(&line.ingest, line.line, outcome);
            }
            Some(IdState::Pending { parked, .. }) => parked.push(line),
            None => match event.kind_ref() {
                KindRef::DepositToppedUp { shop_id, .. } => {
                    self.ids.insert(event.event_id, IdState::Known(hash));
                    em.forward_to_shop(partitions, shop_id, &line.json, line.recorded_at_ns);
                    em.decision(&line.ingest, line.line, "appended");
                }
                kind => {
                    let order_id = kind.order_id().unwrap_or_default();
                    let origin = em.origin();
                    let paid = event.paid_order_id().is_some();
                    let state = if paid {
                        IdState::Pending {
                            hash,
                            candidate: origin,
                            parked: Vec::new(),
                        }
                    } else {
                        IdState::Known(hash)
                    };
                    self.ids.insert(event.event_id, state);
                    em.out.push(Publish::json(
                        Stage::Orders.subject(partition_of(order_id, partitions)),
                        origin.msg_id(),
                        &OrdMsg {
                            origin,
                            json: line.json.clone(),
                            recorded_at_ns: line.recorded_at_ns,
                            ingest: paid.then(|| line.ingest.clone()),
                            line: line.line,
                        },
                    ));
                    if !paid {
                        em.decision(&line.ingest, line.line, "appended");
                    }
                }
            },
        }
    }

    /// How many ids are known or pending.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

fn uuid_of(text: &str) -> Result<u128, uuid::Error> {
    uuid::Uuid::parse_str(text).map(|id| id.as_u128())
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct OrderState {
    shop_id: Option<String>,
    /// Order events before the paid (R13), in stream order: json and
    /// recorded_at.
    parked: Vec<(String, i64)>,
}

/// Stage 2, keyed by order id: the first `paid` of an order wins
/// (`order_already_paid`), and the order's events go to its shop's
/// partition, those before the paid parked until it comes (R13).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStage {
    orders: HashMap<String, OrderState>,
    /// Per stage-1 partition, the last origin applied.
    watermarks: HashMap<u32, Origin>,
}

impl OrderStage {
    /// Handles message `seq` of `ord.<partition>`.
    pub fn handle(
        &mut self,
        partitions: u32,
        partition: u32,
        seq: u64,
        msg: OrdMsg,
    ) -> Vec<Publish> {
        let mut em = Emitter::new(Stage::Orders, partition, seq);
        if self
            .watermarks
            .get(&msg.origin.partition)
            .is_some_and(|last| msg.origin <= *last)
        {
            return em.out;
        }
        self.watermarks.insert(msg.origin.partition, msg.origin);
        let event = match parse_stored(msg.json.as_bytes()) {
            Ok(event) => event,
            Err(reject) => {
                tracing::error!(%reject, "stage 2 received an event it cannot parse");
                return em.out;
            }
        };
        let kind = event.kind_ref();
        let order_id = kind.order_id().unwrap_or_default();
        let state = self.orders.entry(order_id.to_string()).or_default();
        if let KindRef::Paid { shop_id, .. } = kind {
            let appended = state.shop_id.is_none();
            if appended {
                state.shop_id = Some(shop_id.to_string());
                em.forward_to_shop(partitions, shop_id, &msg.json, msg.recorded_at_ns);
                for (json, recorded_at_ns) in std::mem::take(&mut state.parked) {
                    em.forward_to_shop(partitions, shop_id, &json, recorded_at_ns);
                }
            }
            let origin = em.origin();
            em.out.push(Publish::json(
                Stage::Ids.subject(msg.origin.partition),
                origin.msg_id(),
                &InMsg::Resolve {
                    event_id: format_event_id(event.event_id),
                    candidate: msg.origin,
                    appended,
                },
            ));
            if let Some(ingest) = &msg.ingest {
                let outcome = if appended {
                    "appended"
                } else {
                    "order_already_paid"
                };
                em.decision(ingest, msg.line, outcome);
            }
        } else if let Some(shop_id) = state.shop_id.clone() {
            em.forward_to_shop(partitions, &shop_id, &msg.json, msg.recorded_at_ns);
        } else {
            state.parked.push((msg.json, msg.recorded_at_ns));
        }
        em.out
    }

    /// The shop of an order whose paid passed this stage.
    pub fn shop_of(&self, order_id: &str) -> Option<&str> {
        self.orders.get(order_id)?.shop_id.as_deref()
    }

    /// Orders with events parked, waiting for their paid (R13's orphans).
    pub fn parked_orders(&self) -> usize {
        self.orders
            .values()
            .filter(|o| !o.parked.is_empty())
            .count()
    }
}

/// Stage 3, keyed by shop id: the ledger of the partition's shops.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopStage {
    /// The partition's ledger: every event of its shops, exactly once.
    pub ledger: Ledger,
    /// Per source (stage, partition), the last origin applied.
    watermarks: Vec<(Stage, u32, Origin)>,
}

impl ShopStage {
    /// An empty partition under `policy`.
    pub fn new(policy: Policy) -> ShopStage {
        ShopStage {
            ledger: Ledger::new(policy),
            watermarks: Vec::new(),
        }
    }

    /// Applies message `msg` of `shop.<p>` unless its origin was applied.
    pub fn handle(&mut self, msg: ShopMsg) {
        let source = (msg.origin.stage, msg.origin.partition);
        match self
            .watermarks
            .iter_mut()
            .find(|(stage, p, _)| (*stage, *p) == source)
        {
            Some((_, _, last)) if msg.origin <= *last => return,
            Some((_, _, last)) => *last = msg.origin,
            None => self.watermarks.push((source.0, source.1, msg.origin)),
        }
        let event: Event = match parse_stored(msg.json.as_bytes()) {
            Ok(event) => event,
            Err(reject) => {
                tracing::error!(%reject, "stage 3 received an event it cannot parse");
                return;
            }
        };
        if let Err(error) = self.ledger.apply(&event, Instant(msg.recorded_at_ns)) {
            tracing::error!(%error, event_id = %format_event_id(event.event_id), "the ledger refused an event");
        }
    }
}

/// The partition of an event id: where ingest publishes a line.
pub fn line_partition(event_id: u128, partitions: u32) -> u32 {
    partition_of_event_id(event_id, partitions)
}

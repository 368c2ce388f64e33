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
use penalty_core::{Event, KindRef, Ledger, Policy, UnixNs};
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
    /// Order events before the paid (R13), in stream order: json,
    /// recorded_at and their sequence in this stage's stream (the timeline
    /// of `GET /orders/{id}/events` shows them).
    parked: Vec<(String, i64, u64)>,
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
                for (json, recorded_at_ns, _) in std::mem::take(&mut state.parked) {
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
            state.parked.push((msg.json, msg.recorded_at_ns, seq));
        }
        em.out
    }

    /// The shop of an order whose paid passed this stage.
    pub fn shop_of(&self, order_id: &str) -> Option<&str> {
        self.orders.get(order_id)?.shop_id.as_deref()
    }

    /// The first and last instant (`at`) of the events parked here, waiting
    /// for their paid: one machine's ledger holds them in its
    /// `event_span` (`GET /data-range`), a partition's shop ledger not yet.
    pub fn parked_span(&self) -> Option<(UnixNs, UnixNs)> {
        self.orders
            .values()
            .flat_map(|o| &o.parked)
            .filter_map(|(json, _, _)| parse_stored(json.as_bytes()).ok())
            .map(|event| event.at)
            .fold(None, |span, at| match span {
                None => Some((at, at)),
                Some((lo, hi)) => Some((at.min(lo), at.max(hi))),
            })
    }

    /// The events of an order parked here for its paid (R13): sequence in
    /// this stage's stream, recorded_at and JSON, in stream order.
    pub fn parked_of(&self, order_id: &str) -> Vec<(u64, i64, String)> {
        self.orders.get(order_id).map_or_else(Vec::new, |o| {
            o.parked
                .iter()
                .map(|(json, at, seq)| (*seq, *at, json.clone()))
                .collect()
        })
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
    /// Per order, the stream sequences of its events here, in stream order:
    /// the timeline of `GET /orders/{id}/events` (the ledger keeps the rules'
    /// view of an order, not its events; one machine's server keeps the
    /// same index over its log).
    order_events: HashMap<String, Vec<u64>>,
}

impl ShopStage {
    /// An empty partition under `policy`.
    pub fn new(policy: Policy) -> ShopStage {
        ShopStage {
            ledger: Ledger::new(policy),
            watermarks: Vec::new(),
            order_events: HashMap::new(),
        }
    }

    /// The stream sequences of an order's events, in stream order.
    pub fn events_of(&self, order_id: &str) -> &[u64] {
        self.order_events.get(order_id).map_or(&[], Vec::as_slice)
    }

    /// Applies message `msg`, at sequence `seq` of `shop.<p>`, unless its
    /// origin was applied.
    pub fn handle(&mut self, seq: u64, msg: ShopMsg) {
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
        if let Some(order_id) = event.kind_ref().order_id() {
            self.order_events
                .entry(order_id.to_string())
                .or_default()
                .push(seq);
        }
        if let Err(error) = self.ledger.apply(&event, UnixNs(msg.recorded_at_ns)) {
            tracing::error!(%error, event_id = %format_event_id(event.event_id), "the ledger refused an event");
        }
    }
}

/// The partition of an event id: where ingest publishes a line.
pub fn line_partition(event_id: u128, partitions: u32) -> u32 {
    partition_of_event_id(event_id, partitions)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const P: u32 = 4;

    /// The three stages of every partition over in-memory streams: what the
    /// nodes do over JetStream, without the servers.
    #[derive(Default)]
    struct Sim {
        /// subject -> (stream seq, payload); one sequence per stream.
        subjects: BTreeMap<String, Vec<(u64, Vec<u8>)>>,
        seqs: BTreeMap<&'static str, u64>,
        cursors: BTreeMap<String, usize>,
        ids: BTreeMap<u32, IdStage>,
        orders: BTreeMap<u32, OrderStage>,
        shops: BTreeMap<u32, ShopStage>,
        decisions: BTreeMap<u64, String>,
    }

    impl Sim {
        fn append(&mut self, subject: &str, payload: Vec<u8>) {
            let stream = subject.split('.').next().unwrap_or_default();
            let stream: &'static str = match stream {
                "in" => "in",
                "ord" => "ord",
                "shop" => "shop",
                _ => "dec",
            };
            let seq = self.seqs.entry(stream).or_insert(0);
            *seq += 1;
            let seq = *seq;
            if stream == "dec" {
                let decision: Decision = serde_json::from_slice(&payload).expect("a decision");
                self.decisions
                    .entry(decision.line)
                    .or_insert(decision.outcome);
                return;
            }
            self.subjects
                .entry(subject.to_string())
                .or_default()
                .push((seq, payload));
        }

        fn publish(&mut self, line: u64, json: &str) {
            let parsed = penalty_core::parse_line(json.as_bytes()).expect("a valid line");
            let canonical = String::from_utf8(parsed.canonical_json.clone()).expect("UTF-8");
            let msg = InMsg::Line {
                ingest: "t".into(),
                line,
                json: canonical,
            };
            let subject = Stage::Ids.subject(line_partition(parsed.event.event_id, P));
            self.append(&subject, serde_json::to_vec(&msg).expect("JSON"));
        }

        /// Runs every partition's stages until nothing is left to read.
        fn settle(&mut self) {
            loop {
                let mut progressed = false;
                let subjects: Vec<String> = self.subjects.keys().cloned().collect();
                for subject in subjects {
                    let cursor = *self.cursors.get(&subject).unwrap_or(&0);
                    let Some((seq, payload)) = self.subjects[&subject].get(cursor).cloned() else {
                        continue;
                    };
                    self.cursors.insert(subject.clone(), cursor + 1);
                    progressed = true;
                    let (kind, p) = subject.split_once('.').expect("a partition");
                    let p: u32 = p.parse().expect("a number");
                    let outputs = match kind {
                        "in" => self.ids.entry(p).or_default().handle(
                            P,
                            p,
                            seq,
                            seq as i64,
                            serde_json::from_slice(&payload).expect("InMsg"),
                        ),
                        "ord" => self.orders.entry(p).or_default().handle(
                            P,
                            p,
                            seq,
                            serde_json::from_slice(&payload).expect("OrdMsg"),
                        ),
                        _ => {
                            self.shops
                                .entry(p)
                                .or_insert_with(|| ShopStage::new(Policy::default()))
                                .handle(seq, serde_json::from_slice(&payload).expect("ShopMsg"));
                            Vec::new()
                        }
                    };
                    for out in outputs {
                        self.append(&out.subject, out.payload);
                    }
                }
                if !progressed {
                    return;
                }
            }
        }

        fn events_applied(&self) -> u64 {
            self.shops.values().map(|s| s.ledger.events_applied()).sum()
        }
    }

    fn id(n: u32) -> String {
        format!("00000000-0000-4000-8000-{n:012}")
    }

    fn paid(n: u32, order: &str, shop: &str, amount: i64) -> String {
        format!(
            r#"{{"event_id":"{}","type":"paid","at":"2026-03-01T10:00:00+08:00","order_id":"{order}","shop_id":"{shop}","product_id":"P1","amount_fen":{amount}}}"#,
            id(n)
        )
    }

    fn shipped(n: u32, order: &str) -> String {
        format!(
            r#"{{"event_id":"{}","type":"shipped","at":"2026-03-02T10:00:00+08:00","order_id":"{order}","tracking_no":"T{n}"}}"#,
            id(n)
        )
    }

    #[test]
    fn the_first_come_decisions_are_one_machines_line_by_line() {
        let lines = [
            (paid(1, "O1", "S1", 100), "appended"),
            (paid(2, "O1", "S2", 100), "order_already_paid"),
            // Its id stayed free: rejected again, not a duplicate.
            (paid(2, "O1", "S2", 100), "order_already_paid"),
            // Another event may take that id.
            (shipped(2, "O3"), "appended"),
            (paid(2, "O1", "S2", 100), "event_id_conflict"),
            (paid(1, "O1", "S1", 100), "duplicate"),
            (paid(1, "O1", "S1", 999), "event_id_conflict"),
            // An orphan, then its paid (R13).
            (shipped(3, "O9"), "appended"),
            (paid(4, "O9", "S1", 100), "appended"),
        ];
        let mut sim = Sim::default();
        for (n, (line, _)) in lines.iter().enumerate() {
            sim.publish(n as u64 + 1, line);
            sim.settle();
        }
        let got: Vec<&str> = (1..=lines.len() as u64)
            .map(|n| sim.decisions[&n].as_str())
            .collect();
        let want: Vec<&str> = lines.iter().map(|(_, want)| *want).collect();
        assert_eq!(got, want);
        // Appended: 2 paid of O1 and O9, the shipped of O9 (released by its
        // paid); the shipped of O3 waits for a paid that never comes.
        assert_eq!(sim.events_applied(), 3);
    }

    #[test]
    fn a_line_meeting_a_pending_id_is_parked_until_the_verdict() {
        let mut sim = Sim::default();
        sim.publish(1, &paid(1, "O1", "S1", 100));
        sim.settle();
        // Published together: stage 1 sees the paid (pending) and then the
        // shipped with its id before stage 2's verdict.
        sim.publish(2, &paid(2, "O1", "S2", 100));
        sim.publish(3, &shipped(2, "O1"));
        sim.settle();
        assert_eq!(sim.decisions[&2], "order_already_paid");
        assert_eq!(sim.decisions[&3], "appended");
        assert_eq!(sim.events_applied(), 2);
    }

    #[test]
    fn a_message_delivered_again_is_applied_once() {
        let mut sim = Sim::default();
        sim.publish(1, &paid(1, "O1", "S1", 100));
        sim.publish(2, &shipped(2, "O1"));
        sim.settle();
        let applied = sim.events_applied();
        // Every shop message again, as a replaying producer would send it.
        let again: Vec<(String, Vec<u8>)> = sim
            .subjects
            .iter()
            .filter(|(s, _)| s.starts_with("shop."))
            .flat_map(|(s, msgs)| msgs.iter().map(move |(_, m)| (s.clone(), m.clone())))
            .collect();
        for (subject, payload) in again {
            sim.append(&subject, payload);
        }
        sim.settle();
        assert_eq!(sim.events_applied(), applied);
        assert_eq!(applied, 2);
    }
}

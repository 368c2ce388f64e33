//! One order: its events, what they imply whatever `as_of` is, and its view as
//! of an instant.
//!
//! The key observation that makes queries at any `as_of` cheap: for every
//! instant `t` the rules ask about ("is the order resolved at `t`?"), the
//! events with `at <= t` are fixed once `as_of >= t`, and later events can only
//! *remove* resolution, through a retroactive `tracking_rejected` (R2 a). So
//! "not resolved at `t`" becomes true at one instant, [`unresolved_from`], and
//! stays true. Each judgment (R3), the closure flag (R7) and the auto-close
//! (R8) therefore hold from one instant on; [`derive`] computes those instants
//! from the order's few events, and a query only compares instants.
//!
//! Records are compact (about 80 bytes for an order with one event) because a
//! platform has millions of them: ids are interned, instants are integers, and
//! the usual single event is stored inline.

use serde::{Deserialize, Serialize};

use crate::event::EventType;
use crate::policy::{limits, Policy};
use crate::time::{Day, UnixNs};

/// What the `paid` event said (R1). Ids are interner indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Paid {
    pub at: UnixNs,
    pub recorded_at: UnixNs,
    pub ship_by: Option<UnixNs>,
    pub amount_fen: i64,
    pub shop: u32,
    pub product: u32,
}

/// How a snapshot writes an order event's type: as the unit variant of an
/// enum of the six order-event types (every type but `paid` and
/// `deposit_topped_up`), numbered from 0 in code order. Snapshots written
/// before [`EventType`] existed hold exactly this, so they still read.
mod snapshot_type {
    use serde::de::{Error, VariantAccess};
    use serde::{Deserializer, Serializer};

    use crate::event::EventType;

    const ENUM: &str = "Kind";
    /// The variants' names, by number: variant `n` is the type of code
    /// `n + 1`.
    pub(super) const VARIANTS: &[&str] = &[
        "Shipped",
        "Uploaded",
        "Rejected",
        "Refunded",
        "RefundFailed",
        "Revoked",
    ];

    pub fn serialize<S: Serializer>(event_type: &EventType, s: S) -> Result<S::Ok, S::Error> {
        let index = usize::from(event_type.as_code())
            .checked_sub(1)
            .filter(|&index| index < VARIANTS.len())
            .ok_or_else(|| serde::ser::Error::custom("not an order event's type"))?;
        s.serialize_unit_variant(ENUM, index as u32, VARIANTS[index])
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<EventType, D::Error> {
        d.deserialize_enum(ENUM, VARIANTS, TypeVisitor)
    }

    /// A variant as its number (a binary format) or its name (JSON).
    struct Variant(usize);

    impl<'de> serde::Deserialize<'de> for Variant {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Variant, D::Error> {
            d.deserialize_identifier(VariantVisitor)
        }
    }

    struct VariantVisitor;

    impl serde::de::Visitor<'_> for VariantVisitor {
        type Value = Variant;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an order event's type")
        }
        fn visit_u64<E: Error>(self, index: u64) -> Result<Variant, E> {
            usize::try_from(index)
                .ok()
                .filter(|&index| index < VARIANTS.len())
                .map(Variant)
                .ok_or_else(|| E::custom("not an order event's type"))
        }
        fn visit_str<E: Error>(self, name: &str) -> Result<Variant, E> {
            VARIANTS
                .iter()
                .position(|&variant| variant == name)
                .map(Variant)
                .ok_or_else(|| E::unknown_variant(name, VARIANTS))
        }
    }

    struct TypeVisitor;

    impl<'de> serde::de::Visitor<'de> for TypeVisitor {
        type Value = EventType;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an order event's type")
        }
        fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<EventType, A::Error> {
            let (Variant(index), variant) = data.variant()?;
            variant.unit_variant()?;
            // Variant `n` is the type of code `n + 1`, and `n` is below 6.
            EventType::from_code(index as u8 + 1)
                .ok_or_else(|| A::Error::custom("not an order event's type"))
        }
    }
}

/// An order event, reduced to what the rules read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OrderEvent {
    pub at: UnixNs,
    pub recorded_at: UnixNs,
    pub value: i64,
    /// One of the order-event types (every type but `paid` and
    /// `deposit_topped_up`). Events at one instant sort by it: causes the
    /// `explain` lines should show first come first in code order.
    #[serde(with = "snapshot_type")]
    pub kind: EventType,
}

impl OrderEvent {
    pub fn is_shipment(&self) -> bool {
        matches!(self.kind, EventType::Shipped | EventType::TrackingUploaded)
    }

    /// The tracking number's index, for shipments and rejections.
    pub fn tracking(&self) -> Option<u32> {
        match self.kind {
            EventType::Shipped | EventType::TrackingUploaded | EventType::TrackingRejected => {
                u32::try_from(self.value).ok()
            }
            _ => None,
        }
    }
}

/// The events of an order, sorted. Most orders have one event, stored inline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Events {
    #[default]
    None,
    One(OrderEvent),
    Many(Vec<OrderEvent>),
}

impl Events {
    pub fn as_slice(&self) -> &[OrderEvent] {
        match self {
            Events::None => &[],
            Events::One(event) => std::slice::from_ref(event),
            Events::Many(events) => events,
        }
    }

    /// Inserts keeping the order given by `before` (a strict "sorts before").
    pub fn insert(&mut self, event: OrderEvent, before: impl Fn(&OrderEvent, &OrderEvent) -> bool) {
        match std::mem::take(self) {
            Events::None => *self = Events::One(event),
            Events::One(first) => {
                *self = Events::Many(if before(&event, &first) {
                    vec![event, first]
                } else {
                    vec![first, event]
                })
            }
            Events::Many(mut events) => {
                let index = events.partition_point(|e| !before(&event, e));
                events.insert(index, event);
                *self = Events::Many(events);
            }
        }
    }
}

/// An order: its `paid` event when it has arrived, and its other events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OrderRec {
    pub paid: Option<Paid>,
    pub events: Events,
    /// Bit `k - 1` is set when judgment `k`'s deduction is in the shop's
    /// settle-day index (it exists for some `as_of`).
    pub indexed: u16,
    /// True when, given its events so far, no judgment of the order exists
    /// for any `as_of` (kept with `indexed`): most orders ship on time, and a
    /// shop summary counts them without deriving their timelines.
    pub never_judged: bool,
}

/// Judgment `k` of an order as a function of `as_of`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct JudgmentTimeline {
    /// 1-based judgment number.
    pub number: u8,
    /// `T_k` (R3).
    pub judged_at: UnixNs,
    /// The judgment exists for every `as_of >= exists_from`; `None`: never.
    pub exists_from: Option<UnixNs>,
    /// The judgment is revoked for every `as_of >= revoked_from` (R11).
    pub revoked_from: Option<UnixNs>,
    /// When a consumer of the notice feed can first learn of it (R9): no earlier
    /// than `exists_from`, and no earlier than the recording of the events
    /// that decided it.
    pub visible_from: Option<UnixNs>,
}

impl JudgmentTimeline {
    pub fn exists(&self, as_of: UnixNs) -> bool {
        self.exists_from.is_some_and(|from| from <= as_of)
    }

    pub fn revoked(&self, as_of: UnixNs) -> bool {
        self.revoked_from.is_some_and(|from| from <= as_of)
    }

    /// Exists and is not revoked: it charges, bans, flags and counts.
    pub fn stands(&self, as_of: UnixNs) -> bool {
        self.exists(as_of) && !self.revoked(as_of)
    }
}

const MAX_J: usize = limits::MAX_JUDGMENTS_PER_ORDER as usize;

/// What the events of a paid order imply, independent of `as_of`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Derived {
    /// R1.
    pub deadline: UnixNs,
    /// R8: `paid.at + auto_close_days`.
    pub auto_close_at: UnixNs,
    judgments: [JudgmentTimeline; MAX_J],
    count: u8,
    /// R7: `T_final + closure_grace_hours`.
    pub flag_at: UnixNs,
    /// R7: the flag holds for `as_of >= flag_from` (while the final judgment
    /// stands).
    pub flag_from: Option<UnixNs>,
    /// R8: the order is auto-closed for `as_of >= auto_close_from`.
    pub auto_close_from: Option<UnixNs>,
}

impl Derived {
    /// Judgments 1 to `max_judgments_per_order`, whether or not they exist.
    pub fn judgments(&self) -> &[JudgmentTimeline] {
        &self.judgments[..usize::from(self.count)]
    }

    /// Judgment `number` (1-based).
    pub fn judgment(&self, number: u8) -> Option<&JudgmentTimeline> {
        self.judgments().get(usize::from(number).checked_sub(1)?)
    }

    /// No judgment exists for any `as_of` (R3).
    pub fn never_judged(&self) -> bool {
        self.judgments().iter().all(|j| j.exists_from.is_none())
    }

    /// The bit mask of the deductions that exist for some `as_of` (R4).
    pub fn deduction_mask(&self, policy: &Policy) -> u16 {
        self.judgments()
            .iter()
            .take(policy.max_deductions_per_order.into())
            .filter(|j| j.exists_from.is_some())
            .fold(0, |mask, j| mask | 1 << (j.number - 1))
    }
}

/// `T_k` of judgment `number` (R3).
pub(crate) fn judged_at(policy: &Policy, deadline: UnixNs, number: u8) -> UnixNs {
    deadline.plus_hours(i64::from(number - 1) * policy.rejudge_interval_hours)
}

/// R1.
pub(crate) fn deadline(policy: &Policy, paid: &Paid) -> UnixNs {
    paid.ship_by
        .unwrap_or_else(|| paid.at.plus_hours(policy.ship_window_hours))
}

/// The settle day of judgment `k`'s deduction (R4).
pub(crate) fn settle_day(policy: &Policy, judged_at: UnixNs) -> Day {
    judged_at.local_day(policy.utc_offset).next()
}

/// The settle days of every deduction the order can ever have, whatever
/// its events (R1, R3, R4, R8; `policy` is the version in force at its
/// `paid.at`, R15), ascending. `T_k` comes from the `paid` event alone;
/// events only decide whether judgment `k` exists, and with no events an
/// order is unresolved at every `T_k`, so each deduction that can exist
/// does. A reader holding a shop's settle day whole needs every order that
/// could ever put a deduction there: a later rejection (R2 a) can make a
/// judgment exist where a shipment had prevented it.
pub(crate) fn possible_deduction_days<'p>(
    policy: &'p Policy,
    paid: &Paid,
) -> impl Iterator<Item = Day> + use<'p> {
    let derived = derive(policy, paid, &[]);
    let deductions = usize::from(policy.max_deductions_per_order);
    (0..derived.judgments().len().min(deductions)).filter_map(move |k| {
        let judgment = derived.judgments()[k];
        judgment
            .exists_from
            .map(|_| settle_day(policy, judgment.judged_at))
    })
}

/// Computes [`Derived`] from the paid event and the sorted events.
pub(crate) fn derive(policy: &Policy, paid: &Paid, events: &[OrderEvent]) -> Derived {
    let deadline = deadline(policy, paid);
    let auto_close_at = paid.at.plus_days(policy.auto_close_days);
    let count = policy
        .max_judgments_per_order
        .min(limits::MAX_JUDGMENTS_PER_ORDER);
    let mut judgments = [JudgmentTimeline::default(); MAX_J];
    for number in 1..=count {
        let judged_at = judged_at(policy, deadline, number);
        // R3: judgment k needs T_k < auto_close_at and the order unresolved
        // at T_k.
        let exists_from = if judged_at < auto_close_at {
            unresolved_from(paid, events, judged_at)
        } else {
            None
        };
        let revoked_from = events
            .iter()
            .find(|e| e.kind == EventType::JudgmentRevoked && e.value == i64::from(number))
            .map(|e| e.at);
        let visible_from = exists_from.map(|from| visible_from(paid, events, from));
        judgments[usize::from(number - 1)] = JudgmentTimeline {
            number,
            judged_at,
            exists_from,
            revoked_from,
            visible_from,
        };
    }
    let last = judgments[usize::from(count) - 1];
    let flag_at = last.judged_at.plus_hours(policy.closure_grace_hours);
    // R7: the final judgment must exist, and the order must be unresolved at
    // the end of the grace period. Both hold from an instant on, and the later
    // of the two is when the flag appears.
    let flag_from = last.exists_from.and_then(|final_from| {
        unresolved_from(paid, events, flag_at).map(|from| from.max(final_from))
    });
    Derived {
        deadline,
        auto_close_at,
        judgments,
        count,
        flag_at,
        flag_from,
        auto_close_from: unresolved_from(paid, events, auto_close_at),
    }
}

/// The earliest rejection of a tracking number for this order, whenever it
/// happened (R2 a: retroactive).
pub(crate) fn first_rejection(events: &[OrderEvent], tracking: u32) -> Option<UnixNs> {
    events
        .iter()
        .find(|e| e.kind == EventType::TrackingRejected && e.tracking() == Some(tracking))
        .map(|e| e.at)
}

/// Whether a shipment's tracking number is valid as of `as_of`: no rejection
/// of it for this order with `at <= as_of` (R2 a).
pub(crate) fn tracking_valid(events: &[OrderEvent], tracking: u32, as_of: UnixNs) -> bool {
    first_rejection(events, tracking).is_none_or(|r| r > as_of)
}

/// The first `as_of` from which the order counts as *not* resolved at `t`
/// (R2), or `None` when it is resolved at `t` for every `as_of >= t`.
///
/// Shipments and refunds with `at <= t` are what can resolve at `t`. A full
/// refund resolves for good. A shipment stops counting from the first
/// rejection of its tracking number, whenever that rejection happened, so the
/// order is unresolved from the moment the last of its shipments has been
/// rejected.
pub(crate) fn unresolved_from(paid: &Paid, events: &[OrderEvent], t: UnixNs) -> Option<UnixNs> {
    // Exact: refunds may add up beyond `i64`.
    let mut refunded_fen: i128 = 0;
    let mut valid_until = t;
    for event in events.iter().take_while(|e| e.at <= t) {
        match event.kind {
            EventType::Refunded => {
                refunded_fen += i128::from(event.value);
                if refunded_fen >= i128::from(paid.amount_fen) {
                    return None;
                }
            }
            EventType::Shipped | EventType::TrackingUploaded => {
                let tracking = event.tracking()?;
                valid_until = valid_until.max(first_rejection(events, tracking)?);
            }
            _ => {}
        }
    }
    Some(valid_until)
}

/// R9: a judgment that exists from `from` is announced no earlier than the
/// recording of the events that decided it (those with `at <= from`), so a
/// feed consumer polling "after my cursor" never misses one that arrived late
/// with a judged_at in the past.
fn visible_from(paid: &Paid, events: &[OrderEvent], from: UnixNs) -> UnixNs {
    events
        .iter()
        .take_while(|e| e.at <= from)
        .map(|e| e.recorded_at)
        .fold(from.max(paid.recorded_at), UnixNs::max)
}

/// The sum of refunds with `at <= t`, exact (it may exceed `i64`).
pub(crate) fn refunded_by(events: &[OrderEvent], t: UnixNs) -> i128 {
    events
        .iter()
        .take_while(|e| e.at <= t)
        .filter(|e| e.kind == EventType::Refunded)
        .map(|e| i128::from(e.value))
        .sum()
}

/// What is left of `amount_fen` after the refunds with `at <= t`: never
/// below 0, computed exactly however far the refunds went past `i64`.
pub(crate) fn unrefunded_fen(amount_fen: i64, events: &[OrderEvent], t: UnixNs) -> i64 {
    let left = i128::from(amount_fen) - refunded_by(events, t);
    // Between 0 and `amount_fen` once floored at 0, so it fits an `i64`.
    i64::try_from(left.max(0)).unwrap_or(amount_fen)
}

/// R2: the earliest instant at which the order is resolved, as of `as_of`.
pub(crate) fn resolved_at(paid: &Paid, events: &[OrderEvent], as_of: UnixNs) -> Option<UnixNs> {
    let mut refunded_fen: i128 = 0;
    for event in events.iter().take_while(|e| e.at <= as_of) {
        match event.kind {
            EventType::Refunded => {
                refunded_fen += i128::from(event.value);
                if refunded_fen >= i128::from(paid.amount_fen) {
                    return Some(event.at);
                }
            }
            EventType::Shipped | EventType::TrackingUploaded
                if event
                    .tracking()
                    .is_some_and(|t| tracking_valid(events, t, as_of)) =>
            {
                return Some(event.at);
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000_000;

    /// An order paid at hour 0 for 100 fen, with no presale deadline.
    fn paid() -> Paid {
        Paid {
            at: UnixNs(0),
            recorded_at: UnixNs(0),
            ship_by: None,
            amount_fen: 100,
            shop: 0,
            product: 0,
        }
    }

    /// An event of `kind` at hour `hours`, recorded when it happened.
    fn at(hours: i64, kind: EventType, value: i64) -> OrderEvent {
        OrderEvent {
            at: UnixNs(hours * HOUR),
            recorded_at: UnixNs(hours * HOUR),
            value,
            kind,
        }
    }

    /// The events sorted as the ledger files them (by instant here).
    fn sorted(mut events: Vec<OrderEvent>) -> Vec<OrderEvent> {
        events.sort_by_key(|e| (e.at, e.kind));
        events
    }

    #[test]
    fn the_deadline_is_the_ship_window_unless_a_presale_deadline_replaces_it() {
        let policy = Policy::default();
        let window = UnixNs(policy.ship_window_hours * HOUR);
        assert_eq!(deadline(&policy, &paid()), window);
        let presale = Paid {
            ship_by: Some(UnixNs(500 * HOUR)),
            ..paid()
        };
        assert_eq!(deadline(&policy, &presale), UnixNs(500 * HOUR));
    }

    #[test]
    fn an_unshipped_order_is_judged_at_the_deadline_then_every_interval() {
        let policy = Policy::default();
        let derived = derive(&policy, &paid(), &[]);
        let deadline = deadline(&policy, &paid());
        assert_eq!(
            derived.judgments().len(),
            usize::from(policy.max_judgments_per_order)
        );
        for j in derived.judgments() {
            let t_k = deadline.plus_hours(i64::from(j.number - 1) * policy.rejudge_interval_hours);
            assert_eq!(j.judged_at, t_k);
            // Unresolved at T_k with nothing able to resolve it later.
            assert_eq!(j.exists_from, Some(t_k));
            assert!(!j.exists(UnixNs(t_k.0 - 1)) && j.stands(t_k));
        }
        assert!(!derived.never_judged());
    }

    #[test]
    fn a_shipment_in_time_means_no_judgment_ever() {
        let policy = Policy::default();
        let events = [at(1, EventType::Shipped, 0)];
        let derived = derive(&policy, &paid(), &events);
        assert!(derived.never_judged());
        assert_eq!(derived.deduction_mask(&policy), 0);
        assert_eq!(derived.auto_close_from, None);
        assert_eq!(
            resolved_at(&paid(), &events, UnixNs(2 * HOUR)),
            Some(UnixNs(HOUR))
        );
    }

    #[test]
    fn a_later_rejection_undoes_the_shipment_from_the_moment_it_arrives() {
        // R2 a: shipped at hour 1 under tracking 0, rejected at hour 100,
        // after judgment 1's T_1 (hour 48): judgment 1 exists from hour 100.
        let policy = Policy::default();
        let events = sorted(vec![
            at(1, EventType::Shipped, 0),
            at(100, EventType::TrackingRejected, 0),
        ]);
        let derived = derive(&policy, &paid(), &events);
        let first = derived.judgment(1).unwrap();
        assert_eq!(first.exists_from, Some(UnixNs(100 * HOUR)));
        assert_eq!(first_rejection(&events, 0), Some(UnixNs(100 * HOUR)));
        assert!(tracking_valid(&events, 0, UnixNs(99 * HOUR)));
        assert!(!tracking_valid(&events, 0, UnixNs(100 * HOUR)));
        // Another tracking number is not touched by that rejection.
        assert!(tracking_valid(
            &sorted(vec![
                at(1, EventType::Shipped, 1),
                at(100, EventType::TrackingRejected, 0)
            ]),
            1,
            UnixNs(200 * HOUR)
        ));
    }

    #[test]
    fn only_a_full_refund_resolves_and_refunds_add_up_exactly() {
        let policy = Policy::default();
        let partial = [at(1, EventType::Refunded, 99)];
        assert!(!derive(&policy, &paid(), &partial).never_judged());
        let full = sorted(vec![
            at(1, EventType::Refunded, 99),
            at(2, EventType::Refunded, 1),
        ]);
        assert!(derive(&policy, &paid(), &full).never_judged());
        assert_eq!(
            resolved_at(&paid(), &full, UnixNs(3 * HOUR)),
            Some(UnixNs(2 * HOUR))
        );
        assert_eq!(unrefunded_fen(100, &partial, UnixNs(HOUR)), 1);
        assert_eq!(unrefunded_fen(100, &partial, UnixNs(0)), 100);
        // Past `i64`, exactly, and never below 0.
        let huge = [
            at(1, EventType::Refunded, i64::MAX),
            at(1, EventType::Refunded, i64::MAX),
        ];
        assert_eq!(refunded_by(&huge, UnixNs(HOUR)), 2 * i128::from(i64::MAX));
        assert_eq!(unrefunded_fen(100, &huge, UnixNs(HOUR)), 0);
    }

    #[test]
    fn a_revocation_voids_only_the_judgment_it_names() {
        let policy = Policy::default();
        let events = [at(60, EventType::JudgmentRevoked, 1)];
        let derived = derive(&policy, &paid(), &events);
        let first = derived.judgment(1).unwrap();
        assert!(first.stands(UnixNs(59 * HOUR)));
        assert!(first.exists(UnixNs(60 * HOUR)) && !first.stands(UnixNs(60 * HOUR)));
        assert!(derived.judgment(2).unwrap().stands(UnixNs(80 * HOUR)));
    }

    #[test]
    fn events_stay_sorted_and_inline_while_single() {
        let mut events = Events::default();
        assert!(events.as_slice().is_empty());
        let by_instant = |a: &OrderEvent, b: &OrderEvent| a.at < b.at;
        events.insert(at(5, EventType::Shipped, 0), by_instant);
        assert!(matches!(events, Events::One(_)));
        events.insert(at(1, EventType::Refunded, 1), by_instant);
        events.insert(at(3, EventType::RefundFailed, 0), by_instant);
        events.insert(at(9, EventType::TrackingUploaded, 2), by_instant);
        let hours: Vec<i64> = events.as_slice().iter().map(|e| e.at.0 / HOUR).collect();
        assert_eq!(hours, [1, 3, 5, 9]);
        assert_eq!(events.as_slice()[3].tracking(), Some(2));
        assert!(events.as_slice()[3].is_shipment());
        assert_eq!(events.as_slice()[0].tracking(), None);
    }

    #[test]
    fn the_order_auto_closes_unresolved_and_is_flagged_after_the_final_judgment() {
        let policy = Policy::default();
        let derived = derive(&policy, &paid(), &[]);
        assert_eq!(
            derived.auto_close_at,
            UnixNs(0).plus_days(policy.auto_close_days)
        );
        assert_eq!(derived.auto_close_from, Some(derived.auto_close_at));
        let last = *derived.judgments().last().unwrap();
        assert_eq!(
            derived.flag_at,
            last.judged_at.plus_hours(policy.closure_grace_hours)
        );
        assert_eq!(derived.flag_from, Some(derived.flag_at));
    }

    proptest::proptest! {
        /// Whatever an order's events, each deduction it has lies on one of
        /// the days `possible_deduction_days` names from its `paid` alone:
        /// what lets an excerpt leave out the shop's other orders (R5).
        #[test]
        fn every_deduction_lies_on_a_possible_settle_day(
            paid_hour in 0i64..72,
            ship_by in proptest::option::of(0i64..400),
            window in 1i64..100,
            interval in 1i64..60,
            judgments in 1u8..=3,
            deductions in 0u8..=3,
            raw in proptest::collection::vec((0i64..300, 0usize..6, 0i64..4), 0..8),
        ) {
            let policy = Policy {
                ship_window_hours: window,
                rejudge_interval_hours: interval,
                max_judgments_per_order: judgments,
                max_deductions_per_order: deductions.min(judgments),
                auto_close_days: 5,
                ..Policy::default()
            };
            let paid = Paid {
                at: UnixNs(paid_hour * HOUR),
                ship_by: ship_by.map(|h| UnixNs(h * HOUR)),
                ..paid()
            };
            let kinds = [
                EventType::Shipped,
                EventType::TrackingUploaded,
                EventType::TrackingRejected,
                EventType::Refunded,
                EventType::RefundFailed,
                EventType::JudgmentRevoked,
            ];
            let events = sorted(
                raw.iter()
                    .map(|&(hour, kind, value)| {
                        let value = if kinds[kind] == EventType::Refunded { value * 40 } else { value };
                        at(hour, kinds[kind], value)
                    })
                    .collect(),
            );
            let possible: Vec<Day> = possible_deduction_days(&policy, &paid).collect();
            let derived = derive(&policy, &paid, &events);
            let mask = derived.deduction_mask(&policy);
            for j in derived.judgments() {
                if mask & (1 << (j.number - 1)) != 0 {
                    let day = settle_day(&policy, j.judged_at);
                    proptest::prop_assert!(possible.contains(&day), "{day:?} not in {possible:?}");
                }
            }
            proptest::prop_assert!(possible.windows(2).all(|w| w[0] <= w[1]));
            // With no events, every possible deduction exists.
            proptest::prop_assert_eq!(
                derive(&policy, &paid, &[]).deduction_mask(&policy).count_ones() as usize,
                possible.len()
            );
        }
    }

    fn event(kind: EventType) -> OrderEvent {
        OrderEvent {
            at: UnixNs(1),
            recorded_at: UnixNs(2),
            value: 3,
            kind,
        }
    }

    /// Snapshots keep an order event's type as the variant number of the
    /// six order-event types (0 `shipped` to 5 `judgment_revoked`), as
    /// they did before there was one event-type enum; a snapshot written
    /// then reads the same types now.
    #[test]
    fn snapshots_number_order_event_types_as_before() {
        let order_types = &EventType::ALL[1..7];
        for (number, &kind) in order_types.iter().enumerate() {
            let bytes = bincode::serialize(&event(kind)).unwrap();
            let (head, variant) = bytes.split_at(bytes.len() - 4);
            assert_eq!(variant, (number as u32).to_le_bytes(), "{kind:?}");
            assert_eq!(head.len(), 24);
            assert_eq!(
                bincode::deserialize::<OrderEvent>(&bytes).unwrap(),
                event(kind)
            );
            let json = serde_json::to_string(&event(kind)).unwrap();
            assert!(json.ends_with(&format!(
                r#""kind":"{}"}}"#,
                snapshot_type::VARIANTS[number]
            )));
            assert_eq!(
                serde_json::from_str::<OrderEvent>(&json).unwrap(),
                event(kind)
            );
        }
        for kind in [EventType::Paid, EventType::DepositToppedUp] {
            assert!(bincode::serialize(&event(kind)).is_err(), "{kind:?}");
        }
        let mut bytes = bincode::serialize(&event(EventType::Shipped)).unwrap();
        let last = bytes.len() - 4;
        bytes[last] = 6;
        assert!(bincode::deserialize::<OrderEvent>(&bytes).is_err());
    }
}

//! One order: its events, what they imply whatever `as_of` is, and its view as
//! of an instant.
//!
//! The key observation that makes queries at any `as_of` cheap: for every
//! instant `t` the rules ask about ("is the order resolved at `t`?"), the
//! events with `at <= t` are fixed once `as_of >= t`, and later events can only
//! *remove* resolution, through a retroactive `tracking_rejected` (R2 a). So
//! "not resolved at `t`" becomes true at one instant, [`OrderState::unresolved_from`],
//! and stays true. Each judgment (R3), the closure flag (R7) and the auto-close
//! (R8) therefore hold from one instant on, computed when an event for the
//! order arrives; a query only compares instants.

use serde::{Deserialize, Serialize};

use crate::event::EventKind;
use crate::policy::Policy;
use crate::time::{Day, Instant};

/// What the `paid` event said (R1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Paid {
    pub at: Instant,
    pub recorded_at: Instant,
    pub shop_id: String,
    pub product_id: String,
    pub amount_fen: i64,
    pub ship_by: Option<Instant>,
}

/// An event of an order other than `paid`, reduced to what the rules read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OrderEvent {
    pub at: Instant,
    pub recorded_at: Instant,
    pub event_id: u128,
    pub kind: OrderEventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum OrderEventKind {
    /// `shipped` (`uploaded == false`) or `tracking_uploaded`.
    Shipment {
        tracking_no: String,
        uploaded: bool,
    },
    Rejection {
        tracking_no: String,
    },
    Refund {
        amount_fen: i64,
    },
    RefundFailed,
    Revocation {
        judgment: u8,
    },
}

impl OrderEvent {
    /// Converts an event of an order; `None` for `paid` and `deposit_topped_up`.
    pub fn from_event(
        kind: &EventKind,
        at: Instant,
        recorded_at: Instant,
        event_id: u128,
    ) -> Option<OrderEvent> {
        let kind = match kind {
            EventKind::Shipped { tracking_no, .. } => OrderEventKind::Shipment {
                tracking_no: tracking_no.clone(),
                uploaded: false,
            },
            EventKind::TrackingUploaded { tracking_no, .. } => OrderEventKind::Shipment {
                tracking_no: tracking_no.clone(),
                uploaded: true,
            },
            EventKind::TrackingRejected { tracking_no, .. } => OrderEventKind::Rejection {
                tracking_no: tracking_no.clone(),
            },
            EventKind::Refunded { amount_fen, .. } => OrderEventKind::Refund {
                amount_fen: *amount_fen,
            },
            EventKind::RefundFailed { .. } => OrderEventKind::RefundFailed,
            EventKind::JudgmentRevoked { judgment, .. } => OrderEventKind::Revocation {
                judgment: *judgment,
            },
            EventKind::Paid { .. } | EventKind::DepositToppedUp { .. } => return None,
        };
        Some(OrderEvent {
            at,
            recorded_at,
            event_id,
            kind,
        })
    }
}

/// Judgment `k` of an order as a function of `as_of`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JudgmentTimeline {
    /// 1-based judgment number.
    pub number: u8,
    /// `T_k` (R3).
    pub judged_at: Instant,
    /// The judgment exists for every `as_of >= exists_from`; `None`: never.
    pub exists_from: Option<Instant>,
    /// The judgment is revoked for every `as_of >= revoked_from` (R11).
    pub revoked_from: Option<Instant>,
    /// When a consumer of the notice feed can first learn of it (R9): no earlier
    /// than `exists_from`, and no earlier than the recording of the events
    /// that decided it.
    pub visible_from: Option<Instant>,
}

impl JudgmentTimeline {
    pub fn exists(&self, as_of: Instant) -> bool {
        self.exists_from.is_some_and(|from| from <= as_of)
    }

    pub fn revoked(&self, as_of: Instant) -> bool {
        self.revoked_from.is_some_and(|from| from <= as_of)
    }

    /// Exists and is not revoked: it charges, bans, flags and counts.
    pub fn stands(&self, as_of: Instant) -> bool {
        self.exists(as_of) && !self.revoked(as_of)
    }
}

/// What the events of a paid order imply, independent of `as_of`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Derived {
    /// R1.
    pub deadline: Instant,
    /// R8: `paid.at + auto_close_days`.
    pub auto_close_at: Instant,
    /// R3: one per `k = 1 … max_judgments_per_order`.
    pub judgments: Vec<JudgmentTimeline>,
    /// R7: `T_final + closure_grace_hours`.
    pub flag_at: Instant,
    /// R7: the flag holds for `as_of >= flag_from` (while the final judgment
    /// stands).
    pub flag_from: Option<Instant>,
    /// R8: the order is auto-closed for `as_of >= auto_close_from`.
    pub auto_close_from: Option<Instant>,
}

impl Derived {
    /// Settle dates of the deductions this order may carry (R4), with the
    /// deduction's key; used by the shop's per-day index.
    pub fn deduction_keys(&self, policy: &Policy) -> impl Iterator<Item = (Day, Instant, u8)> + '_ {
        let offset = policy.utc_offset;
        self.judgments
            .iter()
            .take(policy.max_deductions_per_order.into())
            .filter(|j| j.exists_from.is_some())
            .map(move |j| (j.judged_at.local_day(offset).next(), j.judged_at, j.number))
    }
}

/// An order: its `paid` event when it has arrived, its other events, and what
/// they imply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OrderState {
    pub paid: Option<Paid>,
    /// Every other event of the order, sorted by (`at`, `event_id`) so that the
    /// state does not depend on arrival order.
    pub events: Vec<OrderEvent>,
    /// `None` until the order is paid (R13).
    pub derived: Option<Derived>,
}

impl OrderState {
    /// Inserts an event at its place in (`at`, `event_id`) order.
    pub fn insert(&mut self, event: OrderEvent) {
        let key = (event.at, event.event_id);
        let index = self.events.partition_point(|e| (e.at, e.event_id) <= key);
        self.events.insert(index, event);
    }

    /// Recomputes [`Derived`] from the events; `None` while unpaid.
    pub fn derive(&self, policy: &Policy) -> Option<Derived> {
        let paid = self.paid.as_ref()?;
        let deadline = paid
            .ship_by
            .unwrap_or_else(|| paid.at.plus_hours(policy.ship_window_hours));
        let auto_close_at = paid.at.plus_days(policy.auto_close_days);
        let judgments: Vec<JudgmentTimeline> = (1..=policy.max_judgments_per_order)
            .map(|number| {
                let judged_at = deadline.plus_hours(i64::from(number - 1) * policy.rejudge_interval_hours);
                // R3: judgment k needs T_k < auto_close_at and the order
                // unresolved at T_k.
                let exists_from = if judged_at < auto_close_at {
                    self.unresolved_from(paid, judged_at)
                } else {
                    None
                };
                let revoked_from = self
                    .events
                    .iter()
                    .filter(|e| matches!(e.kind, OrderEventKind::Revocation { judgment } if judgment == number))
                    .map(|e| e.at)
                    .min();
                let visible_from = exists_from.map(|from| self.visible_from(paid, from));
                JudgmentTimeline {
                    number,
                    judged_at,
                    exists_from,
                    revoked_from,
                    visible_from,
                }
            })
            .collect();
        let last = judgments.last().copied();
        let flag_at = last
            .map(|j| j.judged_at)
            .unwrap_or(deadline)
            .plus_hours(policy.closure_grace_hours);
        // R7: the final judgment must exist; the order must be unresolved at
        // the end of the grace period. Both hold from an instant on, and the
        // later of the two is when the flag appears.
        let flag_from = match last.and_then(|j| j.exists_from) {
            Some(final_from) => self
                .unresolved_from(paid, flag_at)
                .map(|from| from.max(final_from)),
            None => None,
        };
        let auto_close_from = self.unresolved_from(paid, auto_close_at);
        Some(Derived {
            deadline,
            auto_close_at,
            judgments,
            flag_at,
            flag_from,
            auto_close_from,
        })
    }

    /// The first `as_of` from which the order counts as *not* resolved at `t`
    /// (R2), or `None` when it is resolved at `t` for every `as_of >= t`.
    ///
    /// Shipments and refunds with `at <= t` are what can resolve at `t`. A full
    /// refund resolves for good. A shipment stops counting from the first
    /// rejection of its tracking number, whenever that rejection happened
    /// (retroactive, R2 a), so the order is unresolved from the moment the last
    /// of its shipments has been rejected.
    pub fn unresolved_from(&self, paid: &Paid, t: Instant) -> Option<Instant> {
        let mut refunded_fen: i64 = 0;
        let mut valid_until = t;
        for event in self.events.iter().take_while(|e| e.at <= t) {
            match &event.kind {
                OrderEventKind::Refund { amount_fen } => {
                    refunded_fen = refunded_fen.saturating_add(*amount_fen);
                    if refunded_fen >= paid.amount_fen {
                        return None;
                    }
                }
                OrderEventKind::Shipment { tracking_no, .. } => {
                    valid_until = valid_until.max(self.first_rejection(tracking_no)?);
                }
                _ => {}
            }
        }
        Some(valid_until)
    }

    /// The earliest rejection of a tracking number for this order, whenever it
    /// happened.
    pub fn first_rejection(&self, tracking_no: &str) -> Option<Instant> {
        self.events
            .iter()
            .find(|e| matches!(&e.kind, OrderEventKind::Rejection { tracking_no: t } if t == tracking_no))
            .map(|e| e.at)
    }

    /// R9: a judgment that exists from `from` is announced no earlier than the
    /// recording of the events that decided it (those with `at <= from`), so a
    /// feed consumer polling "after my cursor" never misses one that arrived
    /// late with a judged_at in the past.
    fn visible_from(&self, paid: &Paid, from: Instant) -> Instant {
        self.events
            .iter()
            .take_while(|e| e.at <= from)
            .map(|e| e.recorded_at)
            .fold(from.max(paid.recorded_at), Instant::max)
    }

    /// The sum of refunds with `at <= t`.
    pub fn refunded_by(&self, t: Instant) -> i64 {
        self.events
            .iter()
            .take_while(|e| e.at <= t)
            .filter_map(|e| match e.kind {
                OrderEventKind::Refund { amount_fen } => Some(amount_fen),
                _ => None,
            })
            .fold(0i64, i64::saturating_add)
    }

    /// Whether a shipment's tracking number is valid as of `as_of`: no rejection
    /// of it for this order with `at <= as_of` (R2 a).
    pub fn tracking_valid(&self, tracking_no: &str, as_of: Instant) -> bool {
        self.first_rejection(tracking_no).is_none_or(|r| r > as_of)
    }

    /// R2: the earliest instant at which the order is resolved, as of `as_of`.
    pub fn resolved_at(&self, paid: &Paid, as_of: Instant) -> Option<Instant> {
        let mut refunded_fen: i64 = 0;
        for event in self.events.iter().take_while(|e| e.at <= as_of) {
            match &event.kind {
                OrderEventKind::Refund { amount_fen } => {
                    refunded_fen = refunded_fen.saturating_add(*amount_fen);
                    if refunded_fen >= paid.amount_fen {
                        return Some(event.at);
                    }
                }
                OrderEventKind::Shipment { tracking_no, .. }
                    if self.tracking_valid(tracking_no, as_of) =>
                {
                    return Some(event.at);
                }
                _ => {}
            }
        }
        None
    }
}

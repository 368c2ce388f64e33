//! [`OrderView`]: one order as of an instant, with its parts at hand. The
//! ledger builds views ([`crate::Ledger`]'s `view`); the reports, `explain`
//! and at-risk read them. It lives apart from the ledger so that `explain`
//! reads an order without depending on the ledger that holds it.

use crate::event::EventType;
use crate::intern::{Arena, Interner};
use crate::order::{self, Derived, JudgmentTimeline, OrderEvent, Paid};
use crate::policy::Policy;
use crate::report::OrderStatus;
use crate::time::UnixNs;

/// The ledger's tables a view looks names up in, borrowed.
#[derive(Clone, Copy)]
pub(crate) struct Names<'a> {
    pub order_ids: &'a Interner,
    pub shop_ids: &'a Interner,
    pub product_ids: &'a Interner,
    pub tracking_nos: &'a Arena,
    /// Every policy version (R15), for parameters of other instants than
    /// the order's payment (a settle day's cap).
    pub policies: &'a Policy,
}

/// An order that exists as of some instant, with its parts at hand.
#[derive(Clone, Copy)]
pub(crate) struct OrderView<'a> {
    /// Where the order's ids and policy versions are looked up.
    pub names: Names<'a>,
    pub index: u32,
    pub paid: &'a Paid,
    pub events: &'a [OrderEvent],
    pub derived: Derived,
    /// The policy version in force at `paid.at` (R15): the order's parameters.
    pub policy: &'a Policy,
}

impl<'a> OrderView<'a> {
    pub fn order_id(&self) -> &'a str {
        self.names.order_ids.get(self.index)
    }

    pub fn shop_id(&self) -> &'a str {
        self.names.shop_ids.get(self.paid.shop)
    }

    pub fn product_id(&self) -> &'a str {
        self.names.product_ids.get(self.paid.product)
    }

    pub fn tracking_no(&self, event: &OrderEvent) -> &'a str {
        event
            .tracking()
            .map(|t| self.names.tracking_nos.get(t))
            .unwrap_or("")
    }

    /// The judgments that exist as of `as_of` (R3), revoked ones included.
    pub fn judgments(&self, as_of: UnixNs) -> impl Iterator<Item = JudgmentTimeline> + 'a {
        let derived = self.derived;
        (1..=derived.judgments().len() as u8)
            .filter_map(move |n| derived.judgment(n).copied())
            .filter(move |j| j.exists(as_of))
    }

    pub fn status(&self, as_of: UnixNs) -> OrderStatus {
        if self.auto_closed(as_of) {
            OrderStatus::AutoClosed
        } else if order::refunded_by(self.events, as_of) >= i128::from(self.paid.amount_fen) {
            OrderStatus::Refunded
        } else if self.events.iter().take_while(|e| e.at <= as_of).any(|e| {
            e.is_shipment()
                && e.tracking()
                    .is_some_and(|t| order::tracking_valid(self.events, t, as_of))
        }) {
            OrderStatus::Shipped
        } else {
            OrderStatus::AwaitingShipment
        }
    }

    pub fn resolved_at(&self, as_of: UnixNs) -> Option<UnixNs> {
        order::resolved_at(self.paid, self.events, as_of)
    }

    pub fn auto_closed(&self, as_of: UnixNs) -> bool {
        self.derived
            .auto_close_from
            .is_some_and(|from| from <= as_of)
    }

    /// R8: what the buyer is owed when auto-closed.
    pub fn refund_due_fen(&self, as_of: UnixNs) -> i64 {
        if self.auto_closed(as_of) {
            order::unrefunded_fen(
                self.paid.amount_fen,
                self.events,
                self.derived.auto_close_at,
            )
        } else {
            0
        }
    }

    /// R8: a `refund_failed` at or after the close.
    pub fn alternative_refund_required(&self, as_of: UnixNs) -> bool {
        self.auto_closed(as_of)
            && self.events.iter().any(|e| {
                e.kind == EventType::RefundFailed
                    && e.at >= self.derived.auto_close_at
                    && e.at <= as_of
            })
    }

    /// R6: this order's ban judgment stands.
    pub fn ban(&self, as_of: UnixNs) -> Option<JudgmentTimeline> {
        self.derived
            .judgment(self.policy.ban_at_judgment)
            .copied()
            .filter(|j| j.stands(as_of))
    }

    /// R7: the final judgment stands and the order was unresolved at the end
    /// of the grace period.
    pub fn flagged(&self, as_of: UnixNs) -> bool {
        self.derived.flag_from.is_some_and(|from| from <= as_of)
            && self
                .derived
                .judgments()
                .last()
                .is_some_and(|j| j.stands(as_of))
    }
}

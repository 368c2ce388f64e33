//! Events for the ledger's unit tests, named by what they do.

use super::Ledger;
use crate::event::{Event, EventKind};
use crate::policy::Policy;
use crate::time::UnixNs;

/// 2026-02-25T14:13:20+08:00 plus `hours`: early enough in a local day that
/// a few hours later is still the same day.
pub(super) fn at(hours: i64) -> UnixNs {
    UnixNs(1_772_000_000_000_000_000).plus_hours(hours)
}

fn event(at: UnixNs, kind: EventKind) -> Event {
    Event {
        event_id: 0,
        at,
        kind,
    }
}

pub(super) fn paid(order_id: &str, shop_id: &str, hours: i64) -> Event {
    event(
        at(hours),
        EventKind::Paid {
            order_id: order_id.into(),
            shop_id: shop_id.into(),
            product_id: format!("P-{order_id}"),
            amount_fen: 10_000,
            ship_by: None,
        },
    )
}

pub(super) fn shipped(order_id: &str, tracking_no: &str, hours: i64) -> Event {
    event(
        at(hours),
        EventKind::Shipped {
            order_id: order_id.into(),
            tracking_no: tracking_no.into(),
        },
    )
}

pub(super) fn rejected(order_id: &str, tracking_no: &str, hours: i64) -> Event {
    event(
        at(hours),
        EventKind::TrackingRejected {
            order_id: order_id.into(),
            tracking_no: tracking_no.into(),
        },
    )
}

pub(super) fn refunded(order_id: &str, amount_fen: i64, hours: i64) -> Event {
    event(
        at(hours),
        EventKind::Refunded {
            order_id: order_id.into(),
            amount_fen,
        },
    )
}

pub(super) fn revoked(order_id: &str, judgment: u8, hours: i64) -> Event {
    event(
        at(hours),
        EventKind::JudgmentRevoked {
            order_id: order_id.into(),
            judgment,
        },
    )
}

pub(super) fn topped_up(shop_id: &str, amount_fen: i64, hours: i64) -> Event {
    event(
        at(hours),
        EventKind::DepositToppedUp {
            shop_id: shop_id.into(),
            amount_fen,
        },
    )
}

/// A ledger under `policy` with `events` applied in the given order, each
/// recorded when it happened.
pub(super) fn folded(policy: Policy, events: &[Event]) -> Ledger {
    let mut ledger = Ledger::new(policy);
    for e in events {
        ledger.apply(e, e.at).expect("a test event applies");
    }
    ledger
}

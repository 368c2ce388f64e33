//! Property tests over random workloads (proptest).
//!
//! Times are drawn on a coarse grid (whole hours over a few weeks) so that the
//! boundaries of the rules (an event exactly at `T_k`, at midnight, at the end
//! of a grace period) are hit often rather than by luck.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use penalty_core::event::EventKind;
use penalty_core::{
    ApplyError, DeductionReport, DeductionStatus, Event, Ledger, OrderIds, OrderIndex, OrderStatus,
    Policy, PostingKind, RowFilter, UnixNs,
};
use proptest::prelude::*;

const HOUR_NANOS: i64 = 3_600_000_000_000;
/// 2026-03-01T00:00:00+08:00.
const START: i64 = 1_772_294_400 * 1_000_000_000;

fn at(hours: i64) -> UnixNs {
    UnixNs(START + hours * HOUR_NANOS)
}

/// A compact description of one event, turned into an [`Event`] later so that
/// shrinking stays readable.
#[derive(Clone, Debug)]
enum Spec {
    Paid {
        order: u8,
        shop: u8,
        product: u8,
        hours: i64,
        amount: i64,
        ship_by_after: Option<i64>,
    },
    Shipped {
        order: u8,
        hours: i64,
        tracking: u8,
    },
    Uploaded {
        order: u8,
        hours: i64,
        tracking: u8,
    },
    Rejected {
        order: u8,
        hours: i64,
        tracking: u8,
    },
    Refunded {
        order: u8,
        hours: i64,
        amount: i64,
    },
    RefundFailed {
        order: u8,
        hours: i64,
    },
    Revoked {
        order: u8,
        hours: i64,
        judgment: u8,
    },
    TopUp {
        shop: u8,
        hours: i64,
        amount: i64,
    },
}

fn spec() -> impl Strategy<Value = Spec> {
    let order = 0u8..12;
    let hours = 0i64..24 * 20;
    prop_oneof![
        4 => (order.clone(), 0u8..2, 0u8..4, 0i64..48, 1i64..5000, proptest::option::weighted(0.2, 0i64..24 * 10))
            .prop_map(|(order, shop, product, hours, amount, ship_by_after)| Spec::Paid { order, shop, product, hours, amount, ship_by_after }),
        2 => (order.clone(), hours.clone(), 0u8..3).prop_map(|(order, hours, tracking)| Spec::Shipped { order, hours, tracking }),
        1 => (order.clone(), hours.clone(), 0u8..3).prop_map(|(order, hours, tracking)| Spec::Uploaded { order, hours, tracking }),
        1 => (order.clone(), hours.clone(), 0u8..3).prop_map(|(order, hours, tracking)| Spec::Rejected { order, hours, tracking }),
        1 => (order.clone(), hours.clone(), 1i64..5000).prop_map(|(order, hours, amount)| Spec::Refunded { order, hours, amount }),
        1 => (order.clone(), hours.clone()).prop_map(|(order, hours)| Spec::RefundFailed { order, hours }),
        1 => (order.clone(), hours.clone(), 1u8..4).prop_map(|(order, hours, judgment)| Spec::Revoked { order, hours, judgment }),
        1 => (0u8..3, hours, 1i64..5000).prop_map(|(shop, hours, amount)| Spec::TopUp { shop, hours, amount }),
    ]
}

/// Turns specs into events, keeping only the first `paid` of each order (as
/// ingest does) and giving every event a distinct id.
fn events(specs: &[Spec]) -> Vec<Event> {
    let mut paid = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let event_id = i as u128 + 1;
        let o = |n: &u8| format!("O{n}");
        let (hours, kind) = match spec {
            Spec::Paid {
                order,
                shop,
                product,
                hours,
                amount,
                ship_by_after,
            } => {
                if !paid.insert(*order) {
                    continue;
                }
                (
                    *hours,
                    EventKind::Paid {
                        order_id: o(order),
                        shop_id: format!("S{shop}"),
                        product_id: format!("P{product}"),
                        amount_fen: *amount,
                        ship_by: ship_by_after.map(|after| at(hours + after)),
                    },
                )
            }
            Spec::Shipped {
                order,
                hours,
                tracking,
            } => (
                *hours,
                EventKind::Shipped {
                    order_id: o(order),
                    tracking_no: format!("T{tracking}"),
                },
            ),
            Spec::Uploaded {
                order,
                hours,
                tracking,
            } => (
                *hours,
                EventKind::TrackingUploaded {
                    order_id: o(order),
                    tracking_no: format!("T{tracking}"),
                },
            ),
            Spec::Rejected {
                order,
                hours,
                tracking,
            } => (
                *hours,
                EventKind::TrackingRejected {
                    order_id: o(order),
                    tracking_no: format!("T{tracking}"),
                },
            ),
            Spec::Refunded {
                order,
                hours,
                amount,
            } => (
                *hours,
                EventKind::Refunded {
                    order_id: o(order),
                    amount_fen: *amount,
                },
            ),
            Spec::RefundFailed { order, hours } => {
                (*hours, EventKind::RefundFailed { order_id: o(order) })
            }
            Spec::Revoked {
                order,
                hours,
                judgment,
            } => (
                *hours,
                EventKind::JudgmentRevoked {
                    order_id: o(order),
                    judgment: *judgment,
                },
            ),
            Spec::TopUp {
                shop,
                hours,
                amount,
            } => (
                *hours,
                EventKind::DepositToppedUp {
                    shop_id: format!("S{shop}"),
                    amount_fen: *amount,
                },
            ),
        };
        out.push(Event {
            event_id,
            at: at(hours),
            kind,
        });
    }
    out
}

/// Three policies: the default; one where the cap is crossed mid-deduction
/// and auto-close comes within the generated time range; and one with three
/// versions (R15), whose boundaries fall inside the generated range, one at a
/// midnight (a settle date's start) and one on the hour grid of the payments.
/// Every later version's bounds are within V0's, which the invariants use.
fn policy(kind: u8) -> Policy {
    match kind {
        0 => Policy::default(),
        1 => Policy {
            shop_daily_cap_fen: 1500,
            auto_close_days: 9,
            ..Policy::default()
        },
        _ => Policy::from_json(
            r#"{"versions": [{},
                {"effective_from": "2026-03-01T20:00:00+08:00", "shop_daily_cap_fen": 1500,
                 "deduction_fen": 700, "ship_window_hours": 24, "max_deductions_per_order": 1},
                {"effective_from": "2026-03-05T00:00:00+08:00", "shop_daily_cap_fen": 2000,
                 "rating_window_days": 7, "auto_close_days": 12}]}"#,
        )
        .unwrap(),
    }
}

fn ledger(policy: &Policy, events: &[Event]) -> Ledger {
    let mut ledger = Ledger::new(policy.clone());
    for e in events {
        ledger.apply(e, UnixNs(0)).unwrap();
    }
    ledger
}

/// Everything the ledger answers as of `as_of`, as JSON text.
fn answers(ledger: &Ledger, as_of: UnixNs) -> String {
    let mut out = String::new();
    for summary in ledger.shop_summaries(as_of) {
        let report = ledger.shop_report(&summary.shop_id, as_of, true).unwrap();
        out += &serde_json::to_string(&report).unwrap();
        let postings = ledger.postings(&summary.shop_id, as_of).unwrap();
        out += &serde_json::to_string(&postings).unwrap();
    }
    let mut order_ids: Vec<&str> = ledger.order_ids().collect();
    order_ids.sort();
    for id in order_ids {
        if let Ok(report) = ledger.order_report(id, as_of) {
            out += &serde_json::to_string(&report).unwrap();
        }
    }
    out
}

/// `specs` with the one at `index` dropped (`change` 0), an hour later (1),
/// or else: a `paid` with another amount (2), product (3) or shop (4), a
/// shipment or tracking event with another tracking number, any other an
/// hour earlier.
fn changed(specs: &[Spec], index: usize, change: u8) -> Vec<Spec> {
    let mut specs = specs.to_vec();
    if change == 0 {
        specs.remove(index);
        return specs;
    }
    let shift = if change == 1 { 1 } else { -1 };
    match &mut specs[index] {
        Spec::Paid {
            amount,
            product,
            shop,
            hours,
            ..
        } => match change {
            2 => *amount += 1,
            3 => *product = (*product + 1) % 4,
            4 => *shop = (*shop + 1) % 2,
            _ => *hours += shift,
        },
        Spec::Shipped {
            hours, tracking, ..
        }
        | Spec::Uploaded {
            hours, tracking, ..
        }
        | Spec::Rejected {
            hours, tracking, ..
        } => match change {
            1 => *hours += 1,
            _ => *tracking = (*tracking + 1) % 3,
        },
        Spec::Refunded { hours, .. }
        | Spec::RefundFailed { hours, .. }
        | Spec::Revoked { hours, .. }
        | Spec::TopUp { hours, .. } => *hours += shift,
    }
    specs
}

fn workload() -> impl Strategy<Value = (Vec<Spec>, u8, i64, Vec<usize>)> {
    (
        proptest::collection::vec(spec(), 1..80),
        0u8..3,
        0i64..24 * 22,
        proptest::collection::vec(any::<usize>(), 80),
    )
}

fn permute<T: Clone>(items: &[T], keys: &[usize]) -> Vec<T> {
    let mut keyed: Vec<(usize, T)> = items
        .iter()
        .enumerate()
        .map(|(i, x)| (keys[i % keys.len()].wrapping_mul(i + 1), x.clone()))
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, x)| x).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// RULES.md: the reports are a function of the set of events, whatever
    /// order they arrived in.
    #[test]
    fn arrival_order_does_not_matter((specs, kind, as_of_hours, keys) in workload()) {
        let policy = policy(kind);
        let events = events(&specs);
        let as_of = at(as_of_hours);
        let a = ledger(&policy, &events);
        let b = ledger(&policy, &permute(&events, &keys));
        prop_assert_eq!(a.digest(as_of), b.digest(as_of));
        prop_assert_eq!(answers(&a, as_of), answers(&b, as_of));
    }

    /// The digest tells apart two workloads whose answers differ: the second
    /// is the first with one event dropped, moved by an hour, or given
    /// another amount, product, shop or tracking number, so that the answers
    /// differ in a few figures at most and a figure the digest left out would
    /// go unseen.
    #[test]
    fn the_digest_differs_when_an_answer_does(
        (specs, kind, as_of_hours, _keys) in workload(),
        which in any::<usize>(),
        change in 0u8..5,
    ) {
        let policy = policy(kind);
        let as_of = at(as_of_hours);
        let changed = changed(&specs, which % specs.len(), change);
        let a = ledger(&policy, &events(&specs));
        let b = ledger(&policy, &events(&changed));
        if answers(&a, as_of) != answers(&b, as_of) {
            prop_assert_ne!(a.digest(as_of), b.digest(as_of));
        }
    }

    /// The incremental state, queried as of T, equals a fold from scratch of
    /// only the events that exist as of T (`at <= T`): events after T may sit
    /// in the state but must change nothing. Also: a state serialised half way
    /// (a checkpoint) and continued gives the same answers.
    #[test]
    fn incremental_equals_fold_of_the_past((specs, kind, as_of_hours, _keys) in workload()) {
        let policy = policy(kind);
        let events = events(&specs);
        let as_of = at(as_of_hours);
        let full = ledger(&policy, &events);
        let past: Vec<Event> = events.iter().filter(|e| e.at <= as_of).cloned().collect();
        let scratch = ledger(&policy, &past);
        prop_assert_eq!(answers(&full, as_of), answers(&scratch, as_of));
        prop_assert_eq!(full.digest(as_of), scratch.digest(as_of));

        // A bulk fold (replay) reaches the very state of the event-by-event one.
        let mut bulk = Ledger::new(policy.clone());
        prop_assert!(bulk.begin_bulk());
        for e in &events {
            bulk.apply(e, UnixNs(0)).unwrap();
        }
        bulk.end_bulk();
        prop_assert!(bulk == full, "bulk fold differs from the incremental one");

        // So does a bulk fold whose order ids are interned outside the
        // ledger, as a replay's reading thread does.
        let mut outside = Ledger::new(policy.clone());
        prop_assert!(outside.begin_bulk_outside());
        let mut ids = OrderIds::default();
        for e in &events {
            let order = e.order_id().map(|id| ids.intern(id).unwrap());
            let order = OrderIndex::Given(order);
            outside.apply_ref_indexed(e.at, e.kind_ref(), UnixNs(0), order).unwrap();
        }
        outside.end_bulk_outside(ids).unwrap();
        prop_assert!(outside == full, "a fold with ids outside differs from the incremental one");

        let half = events.len() / 2;
        let first = ledger(&policy, &events[..half]);
        let bytes = serde_json::to_vec(&first).unwrap();
        let mut resumed: Ledger = serde_json::from_slice(&bytes).unwrap();
        for e in &events[half..] {
            resumed.apply(e, UnixNs(0)).unwrap();
        }
        prop_assert_eq!(resumed.digest(as_of), full.digest(as_of));
    }

    /// R3, R4, R5 and the sums of CLI.md hold for every shop and order.
    #[test]
    fn invariants_of_judgments_and_money((specs, kind, as_of_hours, _keys) in workload()) {
        let policy = policy(kind);
        let events = events(&specs);
        let as_of = at(as_of_hours);
        let ledger = ledger(&policy, &events);
        // Every deduction as the shop report gives it, to hold the order
        // reports (which compute only their own order's charges) to it.
        let mut by_shop: HashMap<(String, u8), DeductionReport> = HashMap::new();
        for summary in ledger.shop_summaries(as_of) {
            let report = ledger.shop_report(&summary.shop_id, as_of, true).unwrap();
            let deductions = report.deductions.clone().unwrap();
            for d in &deductions {
                by_shop.insert((d.order_id.clone(), d.judgment), d.clone());
            }
            let mut per_day: HashMap<String, i64> = HashMap::new();
            let mut per_order: HashMap<String, usize> = HashMap::new();
            let mut not_revoked_fen = 0;
            for d in &deductions {
                prop_assert!(d.charged_fen >= 0 && d.waived_fen >= 0);
                prop_assert_eq!(d.charged_fen + d.waived_fen, if matches!(d.status, DeductionStatus::Pending | DeductionStatus::Revoked) { 0 } else { d.amount_fen });
                *per_day.entry(d.settle_date.clone()).or_default() += d.charged_fen;
                *per_order.entry(d.order_id.clone()).or_default() += 1;
                if d.status != DeductionStatus::Revoked {
                    not_revoked_fen += d.amount_fen;
                }
            }
            for charged in per_day.values() {
                prop_assert!(*charged <= policy.shop_daily_cap_fen, "a shop-day charged {} over the cap", charged);
            }
            for count in per_order.values() {
                prop_assert!(*count <= usize::from(policy.max_deductions_per_order));
            }
            prop_assert_eq!(report.charged_fen + report.waived_fen + report.pending_fen, i128::from(not_revoked_fen));
            prop_assert_eq!(&summary, &ShopReportWithout::strip(report.clone()));
            prop_assert!(report.violating_orders <= report.orders);
            prop_assert!(report.rating.timed_out_orders <= report.rating.due_orders);
        }
        for id in ledger.order_ids() {
            if let Ok(report) = ledger.order_report(id, as_of) {
                prop_assert!(report.judgments.len() <= usize::from(policy.max_judgments_per_order));
                prop_assert!(report.deductions.len() <= usize::from(policy.max_deductions_per_order));
                prop_assert!(report.refund_due_fen >= 0 && report.refund_due_fen <= report.amount_fen);
                for d in &report.deductions {
                    prop_assert_eq!(Some(d), by_shop.get(&(d.order_id.clone(), d.judgment)));
                }
            }
        }
    }

    /// As `as_of` grows, a judgment never disappears (R3: "once it exists, it
    /// stands"); it may only become revoked.
    #[test]
    fn judgments_never_disappear((specs, kind, as_of_hours, _keys) in workload(), later_hours in 0i64..24 * 10) {
        let policy = policy(kind);
        let events = events(&specs);
        let early = at(as_of_hours);
        let late = at(as_of_hours + later_hours);
        let ledger = ledger(&policy, &events);
        for id in ledger.order_ids() {
            let Ok(before) = ledger.order_report(id, early) else { continue };
            let after = ledger.order_report(id, late).unwrap();
            for j in before.judgments.iter() {
                prop_assert!(after.judgments.iter().any(|k| k.judgment == j.judgment),
                    "order {} judgment {} existed as of {:?} but not as of {:?}", id, j.judgment, early, late);
                if j.revoked {
                    prop_assert!(after.judgments.iter().any(|k| k.judgment == j.judgment && k.revoked));
                }
            }
            if before.product_banned && !after.judgments.iter().any(|k| k.revoked) {
                prop_assert!(after.product_banned);
            }
        }
    }

    /// At risk (CLI.md) is a forecast that comes true when nothing else
    /// happens: with only the events known as of T, an order warned of
    /// judgment k at X has judgment k standing as of X (or the flag, or the
    /// close), and every order that, left alone, gets a new judgment, flag
    /// or close within the horizon is warned of something no later.
    #[test]
    fn at_risk_comes_true_when_nothing_else_happens((specs, tight, as_of_hours, _keys) in workload(), within_hours in 1i64..24 * 10) {
        let policy = policy(tight);
        let now = at(as_of_hours);
        let known: Vec<Event> = events(&specs).into_iter().filter(|e| e.at <= now).collect();
        let ledger = ledger(&policy, &known);
        let within = penalty_core::Within::parse(&format!("{within_hours}h")).unwrap();
        let report = ledger.at_risk(None, now, within).unwrap();
        let mut warned = std::collections::HashMap::new();
        for o in &report.orders {
            let when = UnixNs::parse_rfc3339(&o.at).unwrap();
            prop_assert!(when > now && when <= UnixNs(now.0 + within_hours * 3_600_000_000_000));
            let then = ledger.order_report(&o.order_id, when).unwrap();
            match o.next {
                penalty_core::NextStep::Judgment => {
                    let k = o.judgment.unwrap();
                    prop_assert!(then.judgments.iter().any(|j| j.judgment == k && !j.revoked),
                        "order {} was warned of judgment {} at {}: {:?}", o.order_id, k, o.at, then.judgments);
                }
                penalty_core::NextStep::ClosureReview => prop_assert!(then.closure_review, "order {} flag at {}", o.order_id, o.at),
                penalty_core::NextStep::AutoClose => prop_assert!(then.auto_closed_at.is_some(), "order {} close at {}", o.order_id, o.at),
            }
            warned.insert(o.order_id.clone(), when);
        }
        let horizon = UnixNs(now.0 + within_hours * 3_600_000_000_000);
        for id in ledger.order_ids() {
            let (Ok(before), Ok(after)) = (ledger.order_report(id, now), ledger.order_report(id, horizon)) else { continue };
            // CLI.md leaves an order auto-closed as of `now` out of the
            // report, although R7 may still flag its shop later (auto-close
            // is not resolution): the seller can no longer act on it.
            if before.auto_closed_at.is_some() {
                continue;
            }
            let standing = |r: &penalty_core::OrderReport| r.judgments.iter().filter(|j| !j.revoked).count();
            let changes = standing(&after) > standing(&before)
                || (after.closure_review && !before.closure_review)
                || (after.auto_closed_at.is_some() && before.auto_closed_at.is_none());
            if changes {
                prop_assert!(warned.contains_key(id), "order {} changes by {:?} but was not warned", id, horizon);
            }
        }
    }

    /// The row counts behind a page of `GET /orders` are those of the rows
    /// themselves, shop by shop, and the rows a filter keeps are exactly
    /// those of the unfiltered list that pass it, read from the rows and
    /// the shop reports alone: status, standing judgments, the paid range,
    /// the closure-review flag (R7) and a deduction on a day whose cap cut
    /// something (R5).
    #[test]
    fn filtered_rows_and_their_counts_equal_the_rows_that_pass((specs, kind, as_of_hours, _keys) in workload()) {
        let policy = policy(kind);
        let events = events(&specs);
        let as_of = at(as_of_hours);
        let ledger = ledger(&policy, &events);
        let all = ledger.order_rows(as_of, |_| true);
        // Per order: whether one of its counted deductions lies on a capped
        // settle day of its shop.
        let mut on_capped_day: HashMap<String, bool> = HashMap::new();
        for shop in ledger.shop_summaries(as_of) {
            let report = ledger.shop_report(&shop.shop_id, as_of, true).unwrap();
            let deductions = report.deductions.unwrap_or_default();
            let capped: Vec<&str> = deductions
                .iter()
                .filter(|d| d.waived_fen > 0)
                .map(|d| d.settle_date.as_str())
                .collect();
            for d in &deductions {
                if d.charged_fen + d.waived_fen > 0 && capped.contains(&d.settle_date.as_str()) {
                    on_capped_day.insert(d.order_id.clone(), true);
                }
            }
        }
        let statuses = [
            None,
            Some(OrderStatus::AwaitingShipment),
            Some(OrderStatus::Shipped),
            Some(OrderStatus::Refunded),
            Some(OrderStatus::AutoClosed),
        ];
        let mut filters = Vec::new();
        for status in statuses {
            for violating in [false, true] {
                filters.push(RowFilter { status, violating, ..RowFilter::default() });
            }
        }
        for (capped_day, closure_review) in [(true, false), (false, true), (true, true)] {
            filters.push(RowFilter { capped_day, closure_review, ..RowFilter::default() });
        }
        for (from, to) in [(0, 24 * 3), (24 * 2, 24 * 9), (24 * 5, 24 * 5)] {
            filters.push(RowFilter { paid_from: Some(at(from)), paid_before: Some(at(to)), ..RowFilter::default() });
            filters.push(RowFilter { paid_from: Some(at(from)), capped_day: true, ..RowFilter::default() });
            filters.push(RowFilter { paid_before: Some(at(to)), violating: true, ..RowFilter::default() });
        }
        for filter in filters {
            let passes = |row: &penalty_core::OrderRow| {
                let paid_at = UnixNs::parse_rfc3339(&row.paid_at).unwrap();
                filter.status.is_none_or(|want| want == row.status)
                    && (!filter.violating || row.judgments > 0)
                    && filter.paid_from.is_none_or(|from| from <= paid_at)
                    && filter.paid_before.is_none_or(|end| paid_at < end)
                    && (!filter.closure_review || row.closure_review)
                    && (!filter.capped_day || on_capped_day.contains_key(&row.order_id))
            };
            let expected: Vec<&penalty_core::OrderRow> = all.iter().filter(|r| passes(r)).collect();
            let mut got = Vec::new();
            let _ = ledger.each_order_row(as_of, None, filter, |row| {
                got.push(row);
                Ok::<(), ()>(())
            });
            prop_assert_eq!(got.iter().collect::<Vec<_>>(), expected.clone(), "{:?}", filter);
            let mut rows: Vec<(String, usize)> = Vec::new();
            for row in &got {
                match rows.last_mut() {
                    Some((shop, n)) if *shop == row.shop_id => *n += 1,
                    _ => rows.push((row.shop_id.clone(), 1)),
                }
            }
            let counts: Vec<(String, usize)> = ledger
                .count_order_rows(as_of, None, filter)
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(shop, n)| (shop.to_string(), n))
                .collect();
            prop_assert_eq!(&counts, &rows, "{:?}", filter);
            if let Some((shop, n)) = rows.first() {
                let one = ledger.count_order_rows(as_of, Some(shop), filter);
                prop_assert_eq!(one, vec![(shop.as_str(), *n)]);
            }
            // A page of three from the second row is that part of the rows.
            let page = ledger.order_rows_page(as_of, None, filter, penalty_core::OrderSort::Order, 1, 3);
            prop_assert_eq!(page.total, got.len());
            let want: Vec<_> = got.iter().skip(1).take(3).cloned().collect();
            prop_assert_eq!(page.rows, want);
        }
    }

    /// R14: at the start of any day the booked sum of a shop equals R5's
    /// charged sum as of that instant; at any instant the shop report's
    /// `booked_fen` is the sum of the postings.
    #[test]
    fn booked_equals_charged_at_every_run((specs, kind, as_of_hours, _keys) in workload()) {
        let policy = policy(kind);
        let events = events(&specs);
        let ledger = ledger(&policy, &events);
        for day in 0..23i64 {
            let run = at(day * 24);
            for summary in ledger.shop_summaries(run) {
                let postings = ledger.postings(&summary.shop_id, run).unwrap();
                let sum: i128 = postings.postings.iter().map(|p| i128::from(p.amount_fen)).sum();
                prop_assert_eq!(sum, postings.booked_fen);
                prop_assert_eq!(sum, summary.charged_fen, "shop {} at the run of day {}", summary.shop_id, day);
                prop_assert_eq!(summary.booked_fen, summary.charged_fen);
            }
        }
        let as_of = at(as_of_hours);
        for summary in ledger.shop_summaries(as_of) {
            let postings = ledger.postings(&summary.shop_id, as_of).unwrap();
            prop_assert_eq!(summary.booked_fen, postings.booked_fen);
        }
    }

    /// A shop's days are its notices and deductions grouped by local day:
    /// standing judgments by the date judged, money and cap hits (R5) by
    /// settle date; and they add up to the shop report.
    #[test]
    fn shop_days_group_the_notices_and_deductions((specs, kind, as_of_hours, _keys) in workload()) {
        let policy = policy(kind);
        let events = events(&specs);
        let ledger = ledger(&policy, &events);
        let as_of = at(as_of_hours);
        for summary in ledger.shop_summaries(as_of) {
            let shop = summary.shop_id.as_str();
            let report = ledger.shop_report(shop, as_of, true).unwrap();
            let notices = ledger.notices(shop, as_of, None, usize::MAX).unwrap();
            let mut expected: std::collections::BTreeMap<String, (u64, i128, i128, u64)> = Default::default();
            for n in notices.iter().filter(|n| !n.revoked && n.posting.is_none()) {
                expected.entry(n.judged_at[..10].to_string()).or_default().0 += 1;
            }
            for d in report.deductions.as_ref().unwrap() {
                let day = expected.entry(d.settle_date.clone()).or_default();
                day.1 += i128::from(d.charged_fen);
                day.2 += i128::from(d.waived_fen);
                if matches!(d.status, DeductionStatus::Waived | DeductionStatus::Partial) {
                    day.3 += 1;
                }
            }
            let days = ledger.shop_days(shop, as_of).unwrap();
            let actual: std::collections::BTreeMap<String, (u64, i128, i128, u64)> = days
                .days
                .iter()
                .map(|d| (d.date.clone(), (d.judgments, d.charged_fen, d.waived_fen, d.cap_hits)))
                .collect();
            prop_assert_eq!(actual.len(), days.days.len(), "one row per day");
            prop_assert_eq!(&actual, &expected, "shop {}", shop);
            let judgments: u64 = days.days.iter().map(|d| d.judgments).sum();
            prop_assert_eq!(judgments, report.judgments);
        }
    }

    /// R14: a posting booked by run D is the same for every as_of >= the
    /// start of D: the postings as of T are exactly those as of any later
    /// instant whose run date is at most T's day. Kinds follow R14.
    #[test]
    fn postings_are_immutable((specs, kind, as_of_hours, _keys) in workload(), later_hours in 0i64..24 * 10) {
        let policy = policy(kind);
        let events = events(&specs);
        let ledger = ledger(&policy, &events);
        let as_of = at(as_of_hours);
        let later = at(as_of_hours + later_hours);
        let last_run = as_of.local_day(policy.utc_offset).to_iso();
        for summary in ledger.shop_summaries(as_of) {
            let now = ledger.postings(&summary.shop_id, as_of).unwrap().postings;
            let then: Vec<_> = ledger
                .postings(&summary.shop_id, later)
                .unwrap()
                .postings
                .into_iter()
                .filter(|p| p.run_date <= last_run)
                .collect();
            prop_assert_eq!(&now, &then);
            let mut seen = std::collections::HashSet::new();
            for p in &now {
                prop_assert!(p.amount_fen != 0);
                prop_assert!(p.run_date >= p.settle_date);
                let first = seen.insert((p.order_id.clone(), p.judgment));
                let expected = if first && p.run_date == p.settle_date {
                    PostingKind::Charge
                } else if p.amount_fen < 0 {
                    PostingKind::Refund
                } else {
                    PostingKind::LateCharge
                };
                prop_assert_eq!(p.kind, expected);
            }
        }
    }

    /// A walk of the postings resumed after any posting it gave (a
    /// download's next stretch) gives exactly the rest of the walk, for
    /// every shop and for one, within run dates or not; a page of a shop's
    /// booked ledger is that stretch of the whole.
    #[test]
    fn a_postings_walk_resumes_after_any_posting((specs, kind, as_of_hours, _keys) in workload(), from_day in 0i64..12, span_days in 0i64..12) {
        let policy = policy(kind);
        let ledger = ledger(&policy, &events(&specs));
        let as_of = at(as_of_hours);
        let first_day = at(0).local_day(policy.utc_offset).0;
        let from = Some(penalty_core::time::Day(first_day + from_day));
        let to = Some(penalty_core::time::Day(first_day + from_day + span_days));
        let shops: Vec<Option<String>> = std::iter::once(None)
            .chain(ledger.shop_summaries(as_of).into_iter().map(|s| Some(s.shop_id)))
            .collect();
        // A page of the booked ledger is that stretch of the whole.
        for summary in ledger.shop_summaries(as_of) {
            let whole = ledger.postings(&summary.shop_id, as_of).unwrap();
            for (offset, limit) in [(0, 1), (1, 2), (whole.postings.len(), 3), (2, 1000)] {
                let (page, total) = ledger
                    .postings_page_in(&summary.shop_id, as_of, offset, limit, penalty_core::labels::Lang::En)
                    .unwrap();
                prop_assert_eq!(total, whole.postings.len());
                prop_assert_eq!(page.booked_fen, whole.booked_fen);
                let wanted: Vec<_> = whole.postings.iter().skip(offset).take(limit).cloned().collect();
                prop_assert_eq!(page.postings, wanted);
            }
        }
        for shop in &shops {
            for (from, to) in [(None, None), (from, to)] {
                let walk = |after: Option<&penalty_core::PostingCursor>| {
                    let mut all = Vec::new();
                    let _ = ledger.each_posting_after(as_of, shop.as_deref(), from, to, after, |p| {
                        all.push(p);
                        Ok::<(), ()>(())
                    });
                    all
                };
                let whole = walk(None);
                for (i, posting) in whole.iter().enumerate() {
                    let cursor = ledger.posting_cursor(posting);
                    prop_assert!(cursor.is_some());
                    prop_assert_eq!(&walk(cursor.as_ref())[..], &whole[i + 1..]);
                }
            }
        }
    }
}

/// The `penalty shops` line of a shop is its report less the deductions.
struct ShopReportWithout;

impl ShopReportWithout {
    fn strip(mut report: penalty_core::ShopReport) -> penalty_core::ShopReport {
        report.deductions = None;
        report
    }
}

/// A fold with order ids outside the ledger refuses what would name an order
/// by the wrong id: an order event without its index, mixing in the ledger's
/// own interning, or ids that do not match the orders folded (the ledger is
/// then emptied rather than left half named).
#[test]
fn a_fold_with_ids_outside_refuses_mismatched_indices() {
    let policy = Policy::default();
    let paid = |order: &str| Event {
        event_id: 1,
        at: at(0),
        kind: EventKind::Paid {
            order_id: order.into(),
            shop_id: "S1".into(),
            product_id: "P1".into(),
            amount_fen: 100,
            ship_by: None,
        },
    };
    let (a, b) = (paid("O1"), paid("O2"));

    let mut ledger = Ledger::new(policy.clone());
    assert!(ledger.begin_bulk_outside());
    assert_eq!(
        ledger.apply_ref_indexed(a.at, a.kind_ref(), UnixNs(0), OrderIndex::Given(None)),
        Err(ApplyError::OrderIndexMismatch)
    );
    assert_eq!(
        ledger.apply(&a, UnixNs(0)),
        Err(ApplyError::OrderIndexMismatch)
    );
    ledger
        .apply_ref_indexed(a.at, a.kind_ref(), UnixNs(0), OrderIndex::Given(Some(0)))
        .unwrap();
    ledger
        .apply_ref_indexed(b.at, b.kind_ref(), UnixNs(0), OrderIndex::Given(Some(1)))
        .unwrap();
    let mut ids = OrderIds::default();
    ids.intern("O1");
    assert_eq!(
        ledger.end_bulk_outside(ids),
        Err(ApplyError::OrderIndexMismatch)
    );
    assert_eq!(ledger, Ledger::new(policy.clone()), "emptied");

    // Without begin_bulk_outside, given indices are refused.
    let mut plain = Ledger::new(policy);
    assert_eq!(
        plain.apply_ref_indexed(a.at, a.kind_ref(), UnixNs(0), OrderIndex::Given(Some(0))),
        Err(ApplyError::OrderIndexMismatch)
    );
    assert!(plain.apply(&a, UnixNs(0)).is_ok());
    assert!(!plain.begin_bulk_outside(), "only on an empty ledger");
}

/// Issue 20 (9): money sums are exact, never clamped. Three top-ups of
/// `i64::MAX` make a balance beyond `i64` (and `u64`), less the charges of
/// an unshipped order; two refunds near `i64::MAX` make a refunded total
/// beyond `i64` in the explanation. The JSON carries the exact integers.
#[test]
fn issue20_sums_are_exact_at_extreme_values() {
    let policy = Policy::default();
    let mut ledger = Ledger::new(policy.clone());
    let mut id = 0u128;
    let mut apply = |hours: i64, kind: EventKind| {
        id += 1;
        let event = Event {
            event_id: id,
            at: at(hours),
            kind,
        };
        ledger.apply(&event, UnixNs(0)).unwrap();
    };
    for hours in [0, 1, 2] {
        apply(
            hours,
            EventKind::DepositToppedUp {
                shop_id: "S1".into(),
                amount_fen: i64::MAX,
            },
        );
    }
    apply(
        0,
        EventKind::Paid {
            order_id: "O1".into(),
            shop_id: "S1".into(),
            product_id: "P1".into(),
            amount_fen: i64::MAX,
            ship_by: None,
        },
    );
    for hours in [1, 2] {
        apply(
            hours,
            EventKind::Refunded {
                order_id: "O1".into(),
                amount_fen: i64::MAX - 1,
            },
        );
    }
    apply(
        0,
        EventKind::Paid {
            order_id: "O2".into(),
            shop_id: "S1".into(),
            product_id: "P2".into(),
            amount_fen: 100,
            ship_by: None,
        },
    );
    let as_of = at(24 * 30);
    let report = ledger.shop_report("S1", as_of, true).unwrap();
    assert!(report.charged_fen > 0, "O2 was charged: {report:?}");
    let exact = 3 * i128::from(i64::MAX) - report.charged_fen;
    assert_eq!(report.deposit_balance_fen, exact);
    let text = serde_json::to_string(&report).unwrap();
    assert!(
        text.contains(&format!("\"deposit_balance_fen\":{exact},")),
        "{text}"
    );
    let summary = &ledger.shop_summaries(as_of)[0];
    assert_eq!(summary.deposit_balance_fen, exact);
    // The second refund brings the total beyond i64: the explanation says
    // how much in all, exactly.
    let order = ledger.order_report("O1", as_of).unwrap();
    // 2 * (i64::MAX - 1) = 18446744073709551612 fen.
    let total_yuan = "¥184,467,440,737,095,516.12";
    assert!(
        order.explain.iter().any(|line| line.contains(total_yuan)),
        "{total_yuan} in {:?}",
        order.explain
    );
}

/// What a page of `GET /orders` asks: a filter, a sort, a shop (or every
/// shop, or one unknown), an offset and a size.
type PageAsk = (
    RowFilter,
    penalty_core::OrderSort,
    Option<&'static str>,
    usize,
    usize,
);

fn page_ask() -> impl Strategy<Value = PageAsk> {
    let filter = (
        0usize..5,
        any::<bool>(),
        proptest::option::weighted(0.3, 0i64..24 * 4),
        proptest::option::weighted(0.3, 0i64..24 * 4),
        proptest::bool::weighted(0.25),
        proptest::bool::weighted(0.25),
    )
        .prop_map(
            |(status, violating, from, to, capped_day, closure_review)| RowFilter {
                status: [
                    None,
                    Some(OrderStatus::AwaitingShipment),
                    Some(OrderStatus::Shipped),
                    Some(OrderStatus::Refunded),
                    Some(OrderStatus::AutoClosed),
                ][status],
                violating,
                paid_from: from.map(at),
                paid_before: to.map(at),
                capped_day,
                closure_review,
            },
        );
    (
        filter,
        0usize..5,
        proptest::sample::select(vec![None, Some("S0"), Some("S1"), Some("S9")]),
        0usize..14,
        0usize..8,
    )
        .prop_map(|(filter, sort, shop, offset, limit)| {
            (
                filter,
                penalty_core::OrderSort::ALL[sort],
                shop,
                offset,
                limit,
            )
        })
}

/// The page `ask` cut from every row the export gives (the scan of each
/// shop's tally), sorted by the sort's compare, with the count of them.
fn scanned_page(
    ledger: &Ledger,
    as_of: UnixNs,
    ask: &PageAsk,
) -> (Vec<(UnixNs, penalty_core::OrderRow)>, usize) {
    let (filter, sort, shop, offset, limit) = *ask;
    let mut rows = Vec::new();
    let _ = ledger.each_order_row(as_of, shop, filter, |row| {
        rows.push((UnixNs::parse_rfc3339(&row.paid_at).unwrap(), row));
        Ok::<(), ()>(())
    });
    let total = rows.len();
    rows.sort_by(|a, b| sort.compare((a.0, &a.1), (b.0, &b.1)));
    (rows.into_iter().skip(offset).take(limit).collect(), total)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A page of orders through the shops' order indexes is the page cut
    /// from the scan of every row, for random filters, sorts, shops and
    /// pages, and so is a cluster partition's head; also after more events
    /// are folded into a ledger already paged, when a shop's index kept
    /// from before has fewer orders than the shop.
    #[test]
    fn indexed_pages_equal_the_scan(
        (specs, kind, as_of_hours, keys) in workload(),
        asks in proptest::collection::vec(page_ask(), 1..6),
    ) {
        let policy = policy(kind);
        let events = events(&specs);
        let as_of = at(as_of_hours);
        let split = keys[0] % (events.len() + 1);
        let mut ledger = ledger(&policy, &events[..split]);
        for round in 0..2 {
            for ask in &asks {
                let (filter, sort, shop, offset, limit) = *ask;
                let (want, total) = scanned_page(&ledger, as_of, ask);
                let page = ledger.order_rows_page(as_of, shop, filter, sort, offset, limit);
                prop_assert_eq!(page.total, total, "round {} {:?}", round, ask);
                let rows: Vec<_> = want.iter().map(|(_, row)| row.clone()).collect();
                prop_assert_eq!(&page.rows, &rows, "round {} {:?}", round, ask);
                let (head, head_total) = ledger.order_rows_head(as_of, shop, filter, sort, offset + limit);
                prop_assert_eq!(head_total, total);
                prop_assert_eq!(&head[offset.min(head.len())..], &want[..]);
                let counted: usize = ledger.count_order_rows(as_of, shop, filter).iter().map(|(_, n)| n).sum();
                prop_assert_eq!(counted, total);
                // A download resumed after any row gives the rows after it.
                let mut all = Vec::new();
                let _ = ledger.each_order_row(as_of, shop, filter, |row| {
                    all.push(row);
                    Ok::<(), ()>(())
                });
                let cut = offset.min(all.len());
                let after = cut.checked_sub(1).map(|i| (all[i].shop_id.as_str(), all[i].order_id.as_str()));
                let mut resumed = Vec::new();
                let _ = ledger.each_order_row_after(as_of, shop, filter, after, |row| {
                    resumed.push(row);
                    Ok::<bool, ()>(resumed.len() <= limit)
                });
                let end = (cut + limit + 1).min(all.len());
                prop_assert_eq!(&resumed[..], &all[cut..end], "resumed after {:?}", after);
            }
            if round == 0 {
                for e in &events[split..] {
                    ledger.apply(e, UnixNs(0)).unwrap();
                }
            }
        }
    }
}

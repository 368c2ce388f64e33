//! The ledger: every projection of RULES.md, kept up to date event by event.
//!
//! [`Ledger::apply`] is the fold (disintegrate's `mutate`): it files the event
//! under its order or shop and recomputes only that order's [`Derived`]
//! timelines and the shop's per-settle-day index entries for it, so one event
//! costs O(log n) plus the size of one order. The queries
//! ([`Ledger::shop_report`], [`Ledger::order_report`], …) are pure functions
//! of the state and an `as_of` instant.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::{Event, EventKind};
use crate::explain;
use crate::order::{Derived, JudgmentTimeline, OrderEvent, OrderEventKind, OrderState, Paid};
use crate::policy::Policy;
use crate::report::*;
use crate::time::{Day, Instant};

/// Why an event could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// A second `paid` for an order: ingest keeps the first (EVENTS.md), so the
    /// log never holds two, and the core refuses rather than guess.
    #[error("order `{order_id}` already has a paid event")]
    OrderAlreadyPaid {
        /// The order.
        order_id: String,
    },
}

/// Why a query found nothing to report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No order with this id exists as of the instant.
    #[error("no order `{order_id}` as of {as_of}{}", match .paid_at { Some(p) => format!(" (it is paid at {p}; ask with a later --as-of)"), None => " (no paid event for it is in the log)".into() })]
    UnknownOrder {
        /// The id asked for.
        order_id: String,
        /// The instant asked about.
        as_of: String,
        /// When it is paid, if it is paid later.
        paid_at: Option<String>,
    },
    /// No shop with this id exists as of the instant.
    #[error("no shop `{shop_id}` as of {as_of} (a shop exists from its first paid order or deposit top-up)")]
    UnknownShop {
        /// The id asked for.
        shop_id: String,
        /// The instant asked about.
        as_of: String,
    },
}

/// A shop: its orders, its top-ups, and an index of the deductions its orders
/// may carry by settle date (R4), which is what the daily cap (R5) groups by.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShopState {
    pub orders: BTreeSet<String>,
    pub topups: Vec<(Instant, i64)>,
    /// Settle day -> (judged_at, order_id, judgment) of every deduction that
    /// exists for some `as_of`; the cap's order is this set's order.
    pub day_index: BTreeMap<Day, BTreeSet<(Instant, String, u8)>>,
}

/// Charges per deduction of one shop as of an instant: `(order_id, judgment)`
/// -> `(charged_fen, waived_fen)`, for due deductions only.
type Charges<'a> = HashMap<(&'a str, u8), (i64, i64)>;

/// Every projection of the rule book over the events applied so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    policy: Policy,
    orders: HashMap<String, OrderState>,
    shops: HashMap<String, ShopState>,
    events_applied: u64,
}

/// An order that exists as of some instant, with its parts at hand.
#[derive(Clone, Copy)]
pub(crate) struct OrderView<'a> {
    pub order_id: &'a str,
    pub state: &'a OrderState,
    pub paid: &'a Paid,
    pub derived: &'a Derived,
}

impl<'a> OrderView<'a> {
    /// The judgments that exist as of `as_of` (R3), revoked ones included.
    pub fn judgments(&self, as_of: Instant) -> impl Iterator<Item = &'a JudgmentTimeline> + 'a {
        self.derived
            .judgments
            .iter()
            .filter(move |j| j.exists(as_of))
    }

    pub fn status(&self, as_of: Instant) -> OrderStatus {
        if self.auto_closed(as_of) {
            OrderStatus::AutoClosed
        } else if self.state.refunded_by(as_of) >= self.paid.amount_fen {
            OrderStatus::Refunded
        } else if self.state.events.iter().take_while(|e| e.at <= as_of).any(|e| {
            matches!(&e.kind, OrderEventKind::Shipment { tracking_no, .. } if self.state.tracking_valid(tracking_no, as_of))
        }) {
            OrderStatus::Shipped
        } else {
            OrderStatus::AwaitingShipment
        }
    }

    pub fn auto_closed(&self, as_of: Instant) -> bool {
        self.derived
            .auto_close_from
            .is_some_and(|from| from <= as_of)
    }

    /// R8: what the buyer is owed when auto-closed.
    pub fn refund_due_fen(&self, as_of: Instant) -> i64 {
        if self.auto_closed(as_of) {
            (self.paid.amount_fen - self.state.refunded_by(self.derived.auto_close_at)).max(0)
        } else {
            0
        }
    }

    /// R8: a `refund_failed` at or after the close.
    pub fn alternative_refund_required(&self, as_of: Instant) -> bool {
        self.auto_closed(as_of)
            && self.state.events.iter().any(|e| {
                matches!(e.kind, OrderEventKind::RefundFailed)
                    && e.at >= self.derived.auto_close_at
                    && e.at <= as_of
            })
    }

    /// R6: this order's ban judgment stands.
    pub fn ban(&self, policy: &Policy, as_of: Instant) -> Option<&'a JudgmentTimeline> {
        self.derived
            .judgments
            .get(usize::from(policy.ban_at_judgment).saturating_sub(1))
            .filter(|j| j.stands(as_of))
    }

    /// R7: the final judgment stands and the order was unresolved at the end
    /// of the grace period.
    pub fn flagged(&self, as_of: Instant) -> bool {
        self.derived.flag_from.is_some_and(|from| from <= as_of)
            && self
                .derived
                .judgments
                .last()
                .is_some_and(|j| j.stands(as_of))
    }
}

impl Ledger {
    /// An empty ledger under a policy.
    pub fn new(policy: Policy) -> Ledger {
        Ledger {
            policy,
            orders: HashMap::new(),
            shops: HashMap::new(),
            events_applied: 0,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// How many events were applied.
    pub fn events_applied(&self) -> u64 {
        self.events_applied
    }

    /// Folds one event into the state. `recorded_at` is when the log recorded
    /// it; only the notice feed (R9) reads it.
    pub fn apply(&mut self, event: &Event, recorded_at: Instant) -> Result<(), ApplyError> {
        match &event.kind {
            EventKind::DepositToppedUp {
                shop_id,
                amount_fen,
            } => {
                let shop = self.shops.entry(shop_id.clone()).or_default();
                let key = (event.at, *amount_fen);
                let index = shop.topups.partition_point(|t| *t <= key);
                shop.topups.insert(index, key);
            }
            EventKind::Paid {
                order_id,
                shop_id,
                product_id,
                amount_fen,
                ship_by,
            } => {
                let order = self.orders.entry(order_id.clone()).or_default();
                if order.paid.is_some() {
                    return Err(ApplyError::OrderAlreadyPaid {
                        order_id: order_id.clone(),
                    });
                }
                order.paid = Some(Paid {
                    at: event.at,
                    recorded_at,
                    shop_id: shop_id.clone(),
                    product_id: product_id.clone(),
                    amount_fen: *amount_fen,
                    ship_by: *ship_by,
                });
                self.shops
                    .entry(shop_id.clone())
                    .or_default()
                    .orders
                    .insert(order_id.clone());
                self.rederive(order_id);
            }
            kind => {
                let Some(order_id) = event.order_id() else {
                    return Ok(());
                };
                let Some(order_event) =
                    OrderEvent::from_event(kind, event.at, recorded_at, event.event_id)
                else {
                    return Ok(());
                };
                let order = self.orders.entry(order_id.to_string()).or_default();
                order.insert(order_event);
                // R13: until the order is paid the event only waits.
                if order.paid.is_some() {
                    self.rederive(order_id);
                }
            }
        }
        self.events_applied += 1;
        Ok(())
    }

    /// Recomputes one order's timelines and moves its entries in the shop's
    /// settle-day index.
    fn rederive(&mut self, order_id: &str) {
        let Some(order) = self.orders.get_mut(order_id) else {
            return;
        };
        let new = order.derive(&self.policy);
        let old = std::mem::replace(&mut order.derived, new.clone());
        let Some(shop_id) = order.paid.as_ref().map(|p| p.shop_id.clone()) else {
            return;
        };
        let shop = self.shops.entry(shop_id).or_default();
        if let Some(old) = old {
            for (day, judged_at, number) in old.deduction_keys(&self.policy) {
                if let Some(entries) = shop.day_index.get_mut(&day) {
                    entries.remove(&(judged_at, order_id.to_string(), number));
                    if entries.is_empty() {
                        shop.day_index.remove(&day);
                    }
                }
            }
        }
        if let Some(new) = new {
            for (day, judged_at, number) in new.deduction_keys(&self.policy) {
                shop.day_index.entry(day).or_default().insert((
                    judged_at,
                    order_id.to_string(),
                    number,
                ));
            }
        }
    }

    fn view<'a>(&'a self, order_id: &'a str, as_of: Instant) -> Option<OrderView<'a>> {
        let state = self.orders.get(order_id)?;
        let paid = state.paid.as_ref().filter(|p| p.at <= as_of)?;
        let derived = state.derived.as_ref()?;
        Some(OrderView {
            order_id,
            state,
            paid,
            derived,
        })
    }

    fn shop_exists(&self, shop: &ShopState, as_of: Instant) -> bool {
        shop.topups.first().is_some_and(|(at, _)| *at <= as_of)
            || shop.orders.iter().any(|id| self.view(id, as_of).is_some())
    }

    /// R5: the charges of one shop's due settle days, as of `as_of`.
    /// `days` limits the work to the days asked about (`None`: all).
    fn charges<'a>(
        &'a self,
        shop: &'a ShopState,
        as_of: Instant,
        days: Option<&[Day]>,
    ) -> Charges<'a> {
        let offset = self.policy.utc_offset;
        let cap = self.policy.shop_daily_cap_fen;
        let amount = self.policy.deduction_fen;
        let mut charges = Charges::new();
        let mut allocate = |day: &Day, entries: &'a BTreeSet<(Instant, String, u8)>| {
            if day.start(offset) > as_of {
                return;
            }
            let mut charged_today: i64 = 0;
            for (_, order_id, number) in entries {
                let stands = self
                    .view(order_id, as_of)
                    .and_then(|v| v.derived.judgments.get(usize::from(*number) - 1))
                    .is_some_and(|j| j.stands(as_of));
                if !stands {
                    continue;
                }
                let room = (cap - charged_today).max(0);
                let charged = amount.min(room);
                charged_today += charged;
                charges.insert((order_id.as_str(), *number), (charged, amount - charged));
            }
        };
        match days {
            Some(days) => {
                for day in days {
                    if let Some(entries) = shop.day_index.get(day) {
                        allocate(day, entries);
                    }
                }
            }
            None => {
                for (day, entries) in &shop.day_index {
                    allocate(day, entries);
                }
            }
        }
        charges
    }

    /// The deductions of one order as of `as_of` (R4, R5, R11).
    fn deductions(
        &self,
        view: OrderView<'_>,
        as_of: Instant,
        charges: &Charges<'_>,
    ) -> Vec<DeductionReport> {
        let offset = self.policy.utc_offset;
        view.judgments(as_of)
            .filter(|j| j.number <= self.policy.max_deductions_per_order)
            .map(|j| {
                let settle_day = j.judged_at.local_day(offset).next();
                let amount_fen = self.policy.deduction_fen;
                let (charged_fen, waived_fen, status) = if j.revoked(as_of) {
                    (0, 0, DeductionStatus::Revoked)
                } else if as_of < settle_day.start(offset) {
                    (0, 0, DeductionStatus::Pending)
                } else {
                    let (charged, waived) = charges
                        .get(&(view.order_id, j.number))
                        .copied()
                        .unwrap_or((0, amount_fen));
                    let status = if waived == 0 {
                        DeductionStatus::Charged
                    } else if charged == 0 {
                        DeductionStatus::Waived
                    } else {
                        DeductionStatus::Partial
                    };
                    (charged, waived, status)
                };
                DeductionReport {
                    order_id: view.order_id.to_string(),
                    judgment: j.number,
                    judged_at: j.judged_at.to_rfc3339(offset),
                    settle_date: settle_day.to_iso(),
                    amount_fen,
                    charged_fen,
                    waived_fen,
                    status,
                }
            })
            .collect()
    }

    /// One shop as of `as_of`, with its deductions when `with_deductions`.
    pub fn shop_report(
        &self,
        shop_id: &str,
        as_of: Instant,
        with_deductions: bool,
    ) -> Result<ShopReport, QueryError> {
        let unknown = || QueryError::UnknownShop {
            shop_id: shop_id.to_string(),
            as_of: as_of.to_rfc3339(self.policy.utc_offset),
        };
        let shop = self.shops.get(shop_id).ok_or_else(unknown)?;
        if !self.shop_exists(shop, as_of) {
            return Err(unknown());
        }
        Ok(self.build_shop_report(shop_id, shop, as_of, with_deductions))
    }

    fn build_shop_report(
        &self,
        shop_id: &str,
        shop: &ShopState,
        as_of: Instant,
        with_deductions: bool,
    ) -> ShopReport {
        let policy = &self.policy;
        let offset = policy.utc_offset;
        let charges = self.charges(shop, as_of, None);
        let window_start = as_of.plus_days(-policy.rating_window_days);
        let in_window = |t: Instant| t > window_start && t <= as_of;
        let mut report = ShopReport {
            shop_id: shop_id.to_string(),
            as_of: as_of.to_rfc3339(offset),
            orders: 0,
            judgments: 0,
            violating_orders: 0,
            charged_fen: 0,
            waived_fen: 0,
            pending_fen: 0,
            deposit_balance_fen: 0,
            deductions: None,
            banned_products: Vec::new(),
            closure_review: Vec::new(),
            rating: RatingReport {
                window_days: policy.rating_window_days,
                due_orders: 0,
                timed_out_orders: 0,
                timeout_rate: None,
                timeout_judgments: 0,
            },
        };
        let mut deductions = Vec::new();
        // product -> (banned_at, order_id): the earliest ban, ties to the
        // smallest order id (R6).
        let mut bans: BTreeMap<&str, (Instant, &str)> = BTreeMap::new();
        let mut flags: Vec<(Instant, &str)> = Vec::new();
        for order_id in &shop.orders {
            let Some(view) = self.view(order_id, as_of) else {
                continue;
            };
            report.orders += 1;
            let standing = view.judgments(as_of).filter(|j| !j.revoked(as_of));
            let mut standing_count = 0u64;
            for j in standing {
                standing_count += 1;
                if in_window(j.judged_at) {
                    report.rating.timeout_judgments += 1;
                }
            }
            report.judgments += standing_count;
            if standing_count > 0 {
                report.violating_orders += 1;
            }
            if in_window(view.derived.deadline) {
                report.rating.due_orders += 1;
                if standing_count > 0 {
                    report.rating.timed_out_orders += 1;
                }
            }
            if let Some(ban) = view.ban(policy, as_of) {
                let candidate = (ban.judged_at, view.order_id);
                bans.entry(view.paid.product_id.as_str())
                    .and_modify(|best| *best = (*best).min(candidate))
                    .or_insert(candidate);
            }
            if view.flagged(as_of) {
                flags.push((view.derived.flag_at, view.order_id));
            }
            deductions.extend(self.deductions(view, as_of, &charges));
        }
        for d in &deductions {
            report.charged_fen += d.charged_fen;
            report.waived_fen += d.waived_fen;
            if d.status == DeductionStatus::Pending {
                report.pending_fen += d.amount_fen;
            }
        }
        let topped_up_fen = shop
            .topups
            .iter()
            .take_while(|(at, _)| *at <= as_of)
            .fold(0i64, |sum, (_, amount)| sum.saturating_add(*amount));
        report.deposit_balance_fen = topped_up_fen.saturating_sub(report.charged_fen);
        if report.rating.due_orders > 0 {
            report.rating.timeout_rate =
                Some(report.rating.timed_out_orders as f64 / report.rating.due_orders as f64);
        }
        let mut bans: Vec<(Instant, &str, &str)> = bans
            .into_iter()
            .map(|(product, (at, order))| (at, product, order))
            .collect();
        bans.sort();
        report.banned_products = bans
            .into_iter()
            .map(|(at, product_id, order_id)| BanReport {
                product_id: product_id.to_string(),
                order_id: order_id.to_string(),
                banned_at: at.to_rfc3339(offset),
            })
            .collect();
        flags.sort();
        report.closure_review = flags
            .into_iter()
            .map(|(at, order_id)| FlagReport {
                order_id: order_id.to_string(),
                flagged_at: at.to_rfc3339(offset),
            })
            .collect();
        if with_deductions {
            // CLI.md: by (judged_at, order_id, judgment). judged_at strings
            // share one offset, but sort on instants to be safe with
            // fractional seconds.
            deductions.sort_by_cached_key(|d| {
                (
                    Instant::parse_rfc3339(&d.judged_at),
                    d.order_id.clone(),
                    d.judgment,
                )
            });
            report.deductions = Some(deductions);
        }
        report
    }

    /// Every shop existing as of `as_of`, sorted by id, without deductions.
    pub fn shop_summaries(&self, as_of: Instant) -> Vec<ShopReport> {
        let mut ids: Vec<&String> = self.shops.keys().collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|id| {
                let shop = &self.shops[id];
                self.shop_exists(shop, as_of)
                    .then(|| self.build_shop_report(id, shop, as_of, false))
            })
            .collect()
    }

    /// One order as of `as_of`.
    pub fn order_report(&self, order_id: &str, as_of: Instant) -> Result<OrderReport, QueryError> {
        let offset = self.policy.utc_offset;
        let Some(view) = self.view(order_id, as_of) else {
            let paid_at = self
                .orders
                .get(order_id)
                .and_then(|o| o.paid.as_ref())
                .map(|p| p.at.to_rfc3339(offset));
            return Err(QueryError::UnknownOrder {
                order_id: order_id.to_string(),
                as_of: as_of.to_rfc3339(offset),
                paid_at,
            });
        };
        let shop = self.shops.get(&view.paid.shop_id);
        let days: Vec<Day> = view
            .derived
            .deduction_keys(&self.policy)
            .map(|(day, _, _)| day)
            .collect();
        let charges = shop
            .map(|shop| self.charges(shop, as_of, Some(&days)))
            .unwrap_or_default();
        let deductions = self.deductions(view, as_of, &charges);
        let explain = explain::explain(&self.policy, view, as_of, &deductions);
        Ok(OrderReport {
            order_id: order_id.to_string(),
            shop_id: view.paid.shop_id.clone(),
            product_id: view.paid.product_id.clone(),
            amount_fen: view.paid.amount_fen,
            as_of: as_of.to_rfc3339(offset),
            paid_at: view.paid.at.to_rfc3339(offset),
            deadline: view.derived.deadline.to_rfc3339(offset),
            status: view.status(as_of),
            resolved_at: view
                .state
                .resolved_at(view.paid, as_of)
                .map(|t| t.to_rfc3339(offset)),
            judgments: view
                .judgments(as_of)
                .map(|j| JudgmentReport {
                    judgment: j.number,
                    judged_at: j.judged_at.to_rfc3339(offset),
                    revoked: j.revoked(as_of),
                })
                .collect(),
            deductions,
            product_banned: view.ban(&self.policy, as_of).is_some(),
            closure_review: view.flagged(as_of),
            auto_closed_at: view
                .auto_closed(as_of)
                .then(|| view.derived.auto_close_at.to_rfc3339(offset)),
            refund_due_fen: view.refund_due_fen(as_of),
            alternative_refund_required: view.alternative_refund_required(as_of),
            explain,
        })
    }

    /// One row per order existing as of `as_of`, sorted by (shop_id, order_id),
    /// keeping those `keep` accepts.
    pub fn order_rows(
        &self,
        as_of: Instant,
        mut keep: impl FnMut(&OrderRow) -> bool,
    ) -> Vec<OrderRow> {
        let offset = self.policy.utc_offset;
        let mut shop_ids: Vec<&String> = self.shops.keys().collect();
        shop_ids.sort();
        let mut rows = Vec::new();
        for shop_id in shop_ids {
            let shop = &self.shops[shop_id];
            let charges = self.charges(shop, as_of, None);
            for order_id in &shop.orders {
                let Some(view) = self.view(order_id, as_of) else {
                    continue;
                };
                let deductions = self.deductions(view, as_of, &charges);
                let mut row = OrderRow {
                    order_id: order_id.clone(),
                    shop_id: shop_id.clone(),
                    product_id: view.paid.product_id.clone(),
                    amount_fen: view.paid.amount_fen,
                    paid_at: view.paid.at.to_rfc3339(offset),
                    deadline: view.derived.deadline.to_rfc3339(offset),
                    status: view.status(as_of),
                    resolved_at: view
                        .state
                        .resolved_at(view.paid, as_of)
                        .map(|t| t.to_rfc3339(offset)),
                    judgments: 0,
                    revoked_judgments: 0,
                    charged_fen: 0,
                    waived_fen: 0,
                    pending_fen: 0,
                    product_banned: view.ban(&self.policy, as_of).is_some(),
                    closure_review: view.flagged(as_of),
                    auto_closed_at: view
                        .auto_closed(as_of)
                        .then(|| view.derived.auto_close_at.to_rfc3339(offset)),
                    refund_due_fen: view.refund_due_fen(as_of),
                    alternative_refund_required: view.alternative_refund_required(as_of),
                };
                for j in view.judgments(as_of) {
                    if j.revoked(as_of) {
                        row.revoked_judgments += 1;
                    } else {
                        row.judgments += 1;
                    }
                }
                for d in &deductions {
                    row.charged_fen += d.charged_fen;
                    row.waived_fen += d.waived_fen;
                    if d.status == DeductionStatus::Pending {
                        row.pending_fen += d.amount_fen;
                    }
                }
                if keep(&row) {
                    rows.push(row);
                }
            }
        }
        rows
    }

    /// The notice feed of one shop (R9) as of `as_of`: one notice per existing
    /// judgment, ordered by when it became visible, after `after` (a cursor of
    /// an earlier notice), at most `limit` of them.
    pub fn notices(
        &self,
        shop_id: &str,
        as_of: Instant,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Notice>, QueryError> {
        let offset = self.policy.utc_offset;
        let shop = self
            .shops
            .get(shop_id)
            .filter(|shop| self.shop_exists(shop, as_of))
            .ok_or_else(|| QueryError::UnknownShop {
                shop_id: shop_id.to_string(),
                as_of: as_of.to_rfc3339(offset),
            })?;
        let after = after.and_then(parse_cursor);
        let mut keyed: Vec<((i64, String, u8), Notice)> = Vec::new();
        for order_id in &shop.orders {
            let Some(view) = self.view(order_id, as_of) else {
                continue;
            };
            for j in view.judgments(as_of) {
                let visible = j.visible_from.unwrap_or(j.judged_at);
                let key = (visible.0, order_id.clone(), j.number);
                if after.as_ref().is_some_and(|a| key <= *a) {
                    continue;
                }
                let notice = Notice {
                    cursor: format!("{}.{}.{}", visible.0, j.number, order_id),
                    shop_id: shop_id.to_string(),
                    order_id: order_id.clone(),
                    judgment: j.number,
                    judged_at: j.judged_at.to_rfc3339(offset),
                    deduction_fen: (j.number <= self.policy.max_deductions_per_order)
                        .then_some(self.policy.deduction_fen),
                    revoked: j.revoked(as_of),
                };
                keyed.push((key, notice));
            }
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(keyed.into_iter().take(limit).map(|(_, n)| n).collect())
    }

    /// Orders with events but no `paid` event as of `as_of` (R13): their
    /// events wait and change nothing. The audit asks as of the end of time.
    pub fn orphans(&self, as_of: Instant) -> Vec<Orphan> {
        let offset = self.policy.utc_offset;
        let mut orphans: Vec<Orphan> = self
            .orders
            .iter()
            .filter(|(_, o)| o.paid.as_ref().is_none_or(|p| p.at > as_of))
            .filter_map(|(id, o)| {
                let waiting = o.events.iter().take_while(|e| e.at <= as_of).count();
                (waiting > 0).then(|| Orphan {
                    order_id: id.clone(),
                    events: waiting as u64,
                    first_at: o.events[0].at.to_rfc3339(offset),
                })
            })
            .collect();
        orphans.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        orphans
    }

    /// A SHA-256, in hex, of the canonical projection state as of `as_of`:
    /// every shop report with its deductions and every order's row, in id
    /// order, then the orphans. Equal for any two ledgers that answer every
    /// query alike, however their events arrived.
    pub fn digest(&self, as_of: Instant) -> String {
        let mut hasher = Sha256::new();
        let mut feed = |value: &dyn erased::Feed| value.feed(&mut hasher);
        let mut shop_ids: Vec<&String> = self.shops.keys().collect();
        shop_ids.sort();
        for shop_id in shop_ids {
            let shop = &self.shops[shop_id];
            if self.shop_exists(shop, as_of) {
                feed(&self.build_shop_report(shop_id, shop, as_of, true));
            }
        }
        for row in self.order_rows(as_of, |_| true) {
            feed(&row);
        }
        for orphan in self.orphans(as_of) {
            feed(&orphan);
        }
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Ids of every shop the ledger knows, whatever the instant.
    pub fn shop_ids(&self) -> impl Iterator<Item = &str> {
        self.shops.keys().map(String::as_str)
    }

    /// Ids of every paid order the ledger knows, whatever the instant.
    pub fn order_ids(&self) -> impl Iterator<Item = &str> {
        self.orders
            .iter()
            .filter(|(_, o)| o.paid.is_some())
            .map(|(id, _)| id.as_str())
    }
}

fn parse_cursor(text: &str) -> Option<(i64, String, u8)> {
    let mut parts = text.splitn(3, '.');
    let visible: i64 = parts.next()?.parse().ok()?;
    let number: u8 = parts.next()?.parse().ok()?;
    let order_id = parts.next()?.to_string();
    Some((visible, order_id, number))
}

/// Feeding serialisable values into the digest without naming their types.
mod erased {
    use sha2::{Digest, Sha256};

    pub trait Feed {
        fn feed(&self, hasher: &mut Sha256);
    }

    impl<T: serde::Serialize> Feed for T {
        fn feed(&self, hasher: &mut Sha256) {
            // A report always serialises: its keys are strings and its numbers
            // finite, so an error here is a programming error.
            let bytes = serde_json::to_vec(self).expect("reports serialise to JSON");
            hasher.update(&bytes);
            hasher.update(b"\n");
        }
    }
}

//! The ledger: every projection of RULES.md, kept up to date event by event.
//!
//! [`Ledger::apply`] is the fold (disintegrate's `mutate`): it files the event
//! under its order or shop and, for an order event, recomputes that order's
//! timelines and moves its entries in the shop's settle-day index, so one event
//! costs O(1) amortised plus the size of one order. The queries
//! ([`Ledger::shop_report`], [`Ledger::order_report`], …) are pure functions
//! of the state and an `as_of` instant.
//!
//! Layout: ids are interned (module `intern`); orders and shops are dense
//! vectors indexed by their interned id; an order's derived timelines are not
//! stored but recomputed when asked (a few dozen nanoseconds), which keeps an
//! order at about 80 bytes.
//!
//! Submodules: `fold` applies events (one by one or in bulk), `cap` walks a
//! shop's settle-day index for R5's daily cap, `tallies` computes a shop's
//! figures once for the shop report, the export rows and the digest,
//! `digest` hashes them, `at_risk` and `partition` answer their queries,
//! `postings` books the settlement runs (R14), `order_index` keeps each
//! shop's orders by id for the pages of orders. This file holds the state
//! and the queries.

pub mod at_risk;
mod cap;
mod days;
pub mod digest;
pub mod excerpt;
#[cfg(test)]
mod fixtures;
mod fold;
mod order_index;
pub mod partition;
mod postings;
mod rows;
mod tallies;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::explain;
use crate::intern::{Arena, Interner};
use crate::labels::Lang;
use crate::order::{self, OrderRec};
use crate::policy::Policy;
use crate::report::*;
use crate::time::{Day, UnixNs};
use crate::view::{Names, OrderView};

pub use postings::PostingCursor;
pub use rows::{OrderSort, RowsPage};

use fold::FoldMode;
use tallies::{FactsKept, OrderFacts, RawDeduction, ShopTally};

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
    /// More than 4 GiB of distinct ids: beyond what one ledger holds.
    #[error("the ledger holds more distinct ids than it can index (4 GiB of ids)")]
    TooManyIds,
    /// A fold that interns order ids outside the ledger (see [`OrderIds`])
    /// gave an order event without its order's index, or ids that do not
    /// cover the orders folded: a bug in the caller.
    #[error("a fold gave order indices that do not match its order ids")]
    OrderIndexMismatch,
}

/// Order ids interned outside the ledger, for a bulk fold that interns them
/// on another thread (see [`Ledger::begin_bulk_outside`]). Why: finding a
/// random order id among a million is most of what a replay's folding
/// thread does, while the thread that reads and decodes the log has time to
/// spare. The indices are those the ledger would give: the caller interns
/// the order id of every event that names one, in the order of the fold.
#[derive(Debug, Default)]
pub struct OrderIds(Interner);

impl OrderIds {
    /// Room for about `orders` ids.
    pub fn with_capacity(orders: usize) -> OrderIds {
        let mut ids = Interner::default();
        ids.reserve(orders, 12);
        OrderIds(ids)
    }

    /// The index of `order_id`, given at its first call; `None` only past
    /// 4 GiB of ids.
    pub fn intern(&mut self, order_id: &str) -> Option<u32> {
        self.0.intern(order_id)
    }

    /// [`OrderIds::intern`] of each of `order_ids` in turn, the indices
    /// appended to `out`; faster than one by one (their lookups' cache
    /// misses overlap).
    pub fn intern_all(&mut self, order_ids: &[&str], out: &mut Vec<Option<u32>>) {
        self.0.intern_all(order_ids, out);
    }

    /// How many distinct ids.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no id was interned.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }
}

/// Where [`Ledger::apply_ref_indexed`] takes an event's order index from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderIndex {
    /// The ledger's own table (every fold but the one below).
    Intern,
    /// The caller's [`OrderIds`], in a fold begun by
    /// [`Ledger::begin_bulk_outside`]: what [`OrderIds::intern`] gave the
    /// event's order id (`None` for a deposit top-up, which names none).
    Given(Option<u32>),
    /// What [`Ledger::intern_order_ids`] gave the event's order id, in any
    /// fold but the one above.
    Interned(u32),
}

/// Why a query found nothing to report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No order with this id exists as of the instant.
    #[error("{}", self.message(Lang::En))]
    UnknownOrder {
        /// The id asked for.
        order_id: String,
        /// The instant asked about.
        as_of: String,
        /// When it is paid, if it is paid later.
        paid_at: Option<String>,
    },
    /// No shop with this id exists as of the instant.
    #[error("{}", self.message(Lang::En))]
    UnknownShop {
        /// The id asked for.
        shop_id: String,
        /// The instant asked about.
        as_of: String,
    },
}

impl QueryError {
    /// The message in `lang` (its `Display` is the English one).
    pub fn message(&self, lang: Lang) -> String {
        use crate::labels::Phrase;
        match self {
            QueryError::UnknownOrder {
                order_id,
                as_of,
                paid_at: Some(paid_at),
            } => Phrase::UnknownOrderPaidLater.fill(lang, &[order_id, as_of, paid_at]),
            QueryError::UnknownOrder {
                order_id,
                as_of,
                paid_at: None,
            } => Phrase::UnknownOrder.fill(lang, &[order_id, as_of]),
            QueryError::UnknownShop { shop_id, as_of } => {
                Phrase::UnknownShop.fill(lang, &[shop_id, as_of])
            }
        }
    }
}

/// One entry of a shop's settle-day index: a deduction that exists for some
/// `as_of`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DayEntry {
    pub judged_at: UnixNs,
    pub order: u32,
    pub number: u8,
}

/// A shop: its orders, its top-ups, and the index of the deductions its
/// orders may carry by settle date (R4), which is what the daily cap (R5)
/// groups by. Each day's entries are kept in the cap's order: (judged_at,
/// order_id, judgment).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShopRec {
    pub orders: Vec<u32>,
    pub topups: Vec<(UnixNs, i64)>,
    pub days: BTreeMap<Day, Vec<DayEntry>>,
}

/// The order of the notice feed: (visible, order_id, judgment, run day of a
/// correction or `i64::MIN` for the judgment's own notice).
type NoticeKey<'a> = (i64, &'a str, u8, i64);

/// Every projection of the rule book over the events applied so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub(crate) policy: Policy,
    pub(crate) order_ids: Interner,
    pub(crate) shop_ids: Interner,
    product_ids: Interner,
    /// Deduplicated per order, not globally: R2 only ever compares an order's
    /// own tracking numbers (see [`Ledger::tracking`]).
    pub(crate) tracking_nos: Arena,
    /// Indexed by the order's interned id.
    pub(crate) orders: Vec<OrderRec>,
    /// Indexed by the shop's interned id.
    pub(crate) shops: Vec<ShopRec>,
    events_applied: u64,
    /// How events are being folded: one by one, or in a bulk fold that
    /// leaves the settle-day index (and maybe the order ids) for its end.
    #[serde(skip)]
    mode: FoldMode,
    /// Each shop's orders by order id, built when a page of orders first
    /// needs them; derived, so never stored (see `order_index`).
    #[serde(skip)]
    order_index: order_index::OrderIndexes,
}

impl Ledger {
    /// An empty ledger under a policy.
    pub fn new(policy: Policy) -> Ledger {
        Ledger {
            policy,
            order_ids: Interner::default(),
            shop_ids: Interner::default(),
            product_ids: Interner::default(),
            tracking_nos: Arena::default(),
            orders: Vec::new(),
            shops: Vec::new(),
            events_applied: 0,
            mode: FoldMode::OneByOne,
            order_index: order_index::OrderIndexes::default(),
        }
    }

    /// The policy, with its versions (R15).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// How many events were applied.
    pub fn events_applied(&self) -> u64 {
        self.events_applied
    }

    pub(crate) fn view(&self, order: u32, as_of: UnixNs) -> Option<OrderView<'_>> {
        let rec = self.orders.get(order as usize)?;
        let paid = rec.paid.as_ref().filter(|p| p.at <= as_of)?;
        let events = rec.events.as_slice();
        let policy = self.policy.at(paid.at);
        Some(OrderView {
            names: Names {
                order_ids: &self.order_ids,
                shop_ids: &self.shop_ids,
                product_ids: &self.product_ids,
                tracking_nos: &self.tracking_nos,
                policies: &self.policy,
            },
            index: order,
            paid,
            events,
            derived: order::derive(policy, paid, events),
            policy,
        })
    }

    /// The shop named `shop_id` with its index, when it exists as of
    /// `as_of`; else the error every shop query gives.
    pub(crate) fn existing_shop(
        &self,
        shop_id: &str,
        as_of: UnixNs,
    ) -> Result<(u32, &ShopRec), QueryError> {
        self.shop_ids
            .find(shop_id)
            .map(|index| (index, &self.shops[index as usize]))
            .filter(|(_, shop)| self.shop_exists(shop, as_of))
            .ok_or_else(|| QueryError::UnknownShop {
                shop_id: shop_id.to_string(),
                as_of: as_of.to_rfc3339(self.policy.utc_offset),
            })
    }

    pub(crate) fn shop_exists(&self, shop: &ShopRec, as_of: UnixNs) -> bool {
        shop.topups.first().is_some_and(|(at, _)| *at <= as_of)
            || shop
                .orders
                .iter()
                .any(|o| self.orders[*o as usize].paid.is_some_and(|p| p.at <= as_of))
    }

    fn format_deduction(&self, order_id: &str, d: &RawDeduction) -> DeductionReport {
        DeductionReport {
            order_id: order_id.to_string(),
            judgment: d.number,
            judged_at: d.judged_at.to_rfc3339(self.policy.utc_offset),
            settle_date: d.settle_day.to_iso(),
            amount_fen: d.amount_fen,
            charged_fen: d.charged_fen,
            waived_fen: d.waived_fen,
            status: d.status,
        }
    }

    /// One shop as of `as_of`, with its deductions when `with_deductions`.
    pub fn shop_report(
        &self,
        shop_id: &str,
        as_of: UnixNs,
        with_deductions: bool,
    ) -> Result<ShopReport, QueryError> {
        let (index, _) = self.existing_shop(shop_id, as_of)?;
        let keep = if with_deductions {
            FactsKept::Deductions
        } else {
            FactsKept::Summary
        };
        Ok(self.shop_report_of(&self.tally(index, as_of, keep), as_of, with_deductions))
    }

    /// The shop report of a tally.
    fn shop_report_of(
        &self,
        tally: &ShopTally<'_>,
        as_of: UnixNs,
        with_deductions: bool,
    ) -> ShopReport {
        let offset = self.policy.utc_offset;
        let deductions = with_deductions.then(|| {
            // CLI.md: by (judged_at, order_id, judgment).
            let mut all: Vec<(UnixNs, &str, &RawDeduction)> = tally
                .facts
                .iter()
                .flat_map(|f| {
                    f.deductions
                        .iter()
                        .map(move |d| (d.judged_at, f.view.order_id(), d))
                })
                .collect();
            all.sort_by(|a, b| (a.0, a.1, a.2.number).cmp(&(b.0, b.1, b.2.number)));
            all.into_iter()
                .map(|(_, order_id, d)| self.format_deduction(order_id, d))
                .collect()
        });
        ShopReport {
            shop_id: self.shop_ids.get(tally.index).to_string(),
            as_of: as_of.to_rfc3339(offset),
            orders: tally.orders,
            judgments: tally.judgments,
            violating_orders: tally.violating_orders,
            charged_fen: tally.charged_fen,
            waived_fen: tally.waived_fen,
            pending_fen: tally.pending_fen,
            deposit_balance_fen: tally.deposit_balance_fen,
            booked_fen: tally.booked_fen,
            deductions,
            banned_products: tally
                .bans
                .iter()
                .map(|(at, product_id, order_id)| BanReport {
                    product_id: product_id.to_string(),
                    order_id: order_id.to_string(),
                    banned_at: at.to_rfc3339(offset),
                })
                .collect(),
            closure_review: tally
                .flags
                .iter()
                .map(|(at, order_id)| FlagReport {
                    order_id: order_id.to_string(),
                    flagged_at: at.to_rfc3339(offset),
                })
                .collect(),
            rating: RatingReport {
                window_days: self.policy.at(as_of).rating_window_days,
                due_orders: tally.due_orders,
                timed_out_orders: tally.timed_out_orders,
                timeout_rate: (tally.due_orders > 0)
                    .then(|| tally.timed_out_orders as f64 / tally.due_orders as f64),
                timeout_judgments: tally.timeout_judgments,
            },
        }
    }

    pub(crate) fn sorted_shops(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = (0..self.shops.len() as u32).collect();
        ids.sort_by(|a, b| self.shop_ids.get(*a).cmp(self.shop_ids.get(*b)));
        ids
    }

    /// Every shop existing as of `as_of`, sorted by id, without deductions.
    pub fn shop_summaries(&self, as_of: UnixNs) -> Vec<ShopReport> {
        self.sorted_shops()
            .into_iter()
            .filter(|i| self.shop_exists(&self.shops[*i as usize], as_of))
            .map(|i| self.shop_report_of(&self.tally(i, as_of, FactsKept::Summary), as_of, false))
            .collect()
    }

    /// One order as of `as_of`, its `explain` lines in English.
    pub fn order_report(&self, order_id: &str, as_of: UnixNs) -> Result<OrderReport, QueryError> {
        self.order_report_in(order_id, as_of, Lang::En)
    }

    /// One order as of `as_of`, its `explain` lines in `lang`; every other
    /// field is the same in every language.
    pub fn order_report_in(
        &self,
        order_id: &str,
        as_of: UnixNs,
        lang: Lang,
    ) -> Result<OrderReport, QueryError> {
        let offset = self.policy.utc_offset;
        let found = self.order_ids.find(order_id);
        let Some(view) = found.and_then(|o| self.view(o, as_of)) else {
            let paid_at = found
                .and_then(|o| self.orders[o as usize].paid)
                .map(|p| p.at.to_rfc3339(offset));
            return Err(QueryError::UnknownOrder {
                order_id: order_id.to_string(),
                as_of: as_of.to_rfc3339(offset),
                paid_at,
            });
        };
        let days: Vec<Day> = view
            .derived
            .judgments()
            .iter()
            .take(view.policy.max_deductions_per_order.into())
            .map(|j| order::settle_day(view.policy, j.judged_at))
            .collect();
        let (charges, _) = self.charges(
            &self.shops[view.paid.shop as usize],
            as_of,
            Some(&days),
            Some(view.index),
            None,
        );
        let deductions: Vec<DeductionReport> = self
            .raw_deductions(&view, as_of, &charges)
            .iter()
            .map(|d| self.format_deduction(order_id, d))
            .collect();
        let explain = explain::explain(view.policy, &view, as_of, &deductions, lang);
        Ok(OrderReport {
            order_id: order_id.to_string(),
            shop_id: view.shop_id().to_string(),
            product_id: view.product_id().to_string(),
            amount_fen: view.paid.amount_fen,
            as_of: as_of.to_rfc3339(offset),
            paid_at: view.paid.at.to_rfc3339(offset),
            deadline: view.derived.deadline.to_rfc3339(offset),
            status: view.status(as_of),
            resolved_at: view.resolved_at(as_of).map(|t| t.to_rfc3339(offset)),
            judgments: view
                .judgments(as_of)
                .map(|j| JudgmentReport {
                    judgment: j.number,
                    judged_at: j.judged_at.to_rfc3339(offset),
                    revoked: j.revoked(as_of),
                })
                .collect(),
            deductions,
            product_banned: view.ban(as_of).is_some(),
            closure_review: view.flagged(as_of),
            auto_closed_at: view
                .auto_closed(as_of)
                .then(|| view.derived.auto_close_at.to_rfc3339(offset)),
            refund_due_fen: view.refund_due_fen(as_of),
            alternative_refund_required: view.alternative_refund_required(as_of),
            explain,
        })
    }

    fn row(&self, facts: &OrderFacts<'_>, as_of: UnixNs) -> OrderRow {
        let offset = self.policy.utc_offset;
        let view = &facts.view;
        let mut row = OrderRow {
            order_id: view.order_id().to_string(),
            shop_id: view.shop_id().to_string(),
            product_id: view.product_id().to_string(),
            amount_fen: view.paid.amount_fen,
            paid_at: view.paid.at.to_rfc3339(offset),
            deadline: view.derived.deadline.to_rfc3339(offset),
            status: view.status(as_of),
            resolved_at: view.resolved_at(as_of).map(|t| t.to_rfc3339(offset)),
            judgments: facts.standing,
            revoked_judgments: facts.revoked,
            charged_fen: 0,
            waived_fen: 0,
            pending_fen: 0,
            product_banned: facts.banned,
            closure_review: facts.flagged,
            auto_closed_at: view
                .auto_closed(as_of)
                .then(|| view.derived.auto_close_at.to_rfc3339(offset)),
            refund_due_fen: view.refund_due_fen(as_of),
            alternative_refund_required: view.alternative_refund_required(as_of),
        };
        for d in &facts.deductions {
            row.charged_fen += d.charged_fen;
            row.waived_fen += d.waived_fen;
            if d.status == DeductionStatus::Pending {
                row.pending_fen += d.amount_fen;
            }
        }
        row
    }

    /// The notice feed of one shop (R9) as of `as_of`: one notice per existing
    /// judgment, ordered by when it became visible, after `after` (a cursor of
    /// an earlier notice), at most `limit` of them; a correction's cause in
    /// English.
    pub fn notices(
        &self,
        shop_id: &str,
        as_of: UnixNs,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Notice>, QueryError> {
        self.notices_in(shop_id, as_of, after, limit, Lang::En)
    }

    /// [`Ledger::notices`] with a correction's cause in `lang`.
    pub fn notices_in(
        &self,
        shop_id: &str,
        as_of: UnixNs,
        after: Option<&str>,
        limit: usize,
        lang: Lang,
    ) -> Result<Vec<Notice>, QueryError> {
        let feed = self.notice_range(shop_id, as_of, after, None, lang)?;
        Ok(feed.into_iter().take(limit).collect())
    }

    /// The newest `limit` notices of the feed strictly between the cursors
    /// `after` and `before` (a missing bound is open), newest first: a
    /// seller's inbox reads the feed backwards a page at a time without
    /// walking it from its start.
    pub fn newest_notices_in(
        &self,
        shop_id: &str,
        as_of: UnixNs,
        after: Option<&str>,
        before: Option<&str>,
        limit: usize,
        lang: Lang,
    ) -> Result<Vec<Notice>, QueryError> {
        let feed = self.notice_range(shop_id, as_of, after, before, lang)?;
        Ok(feed.into_iter().rev().take(limit).collect())
    }

    /// The notices strictly between the cursors `after` and `before` (a
    /// missing bound is open), in feed order.
    fn notice_range(
        &self,
        shop_id: &str,
        as_of: UnixNs,
        after: Option<&str>,
        before: Option<&str>,
        lang: Lang,
    ) -> Result<Vec<Notice>, QueryError> {
        let offset = self.policy.utc_offset;
        let (_, shop) = self.existing_shop(shop_id, as_of)?;
        let after = after.and_then(parse_cursor);
        let before = before.and_then(parse_cursor);
        let mut keyed: Vec<(NoticeKey<'_>, Notice)> = Vec::new();
        let is_after = |key: &NoticeKey<'_>| {
            after
                .as_ref()
                .is_none_or(|a| *key > (a.0, a.1.as_str(), a.2, a.3))
                && before
                    .as_ref()
                    .is_none_or(|b| *key < (b.0, b.1.as_str(), b.2, b.3))
        };
        for &order in &shop.orders {
            let Some(view) = self.view(order, as_of) else {
                continue;
            };
            for j in view.judgments(as_of) {
                let visible = j.visible_from.unwrap_or(j.judged_at);
                let key = (visible.0, view.order_id(), j.number, i64::MIN);
                if !is_after(&key) {
                    continue;
                }
                let notice = Notice {
                    cursor: format!("{}.{}.{}", visible.0, j.number, view.order_id()),
                    shop_id: shop_id.to_string(),
                    order_id: view.order_id().to_string(),
                    judgment: j.number,
                    judged_at: j.judged_at.to_rfc3339(offset),
                    deduction_fen: (j.number <= view.policy.max_deductions_per_order)
                        .then_some(view.policy.deduction_fen),
                    revoked: j.revoked(as_of),
                    posting: None,
                };
                keyed.push((key, notice));
            }
        }
        // R9, R14: every refund and late charge is announced once, with its
        // cause, from its run (or from when the events that caused it were
        // recorded, if later).
        for posting in postings::shop_postings(self, shop, as_of) {
            if posting.kind == PostingKind::Charge {
                continue;
            }
            let visible = postings::notice_visible(self, &posting);
            let order_id = self.order_ids.get(posting.order);
            let key = (visible.0, order_id, posting.number, posting.run_day.0);
            if !is_after(&key) {
                continue;
            }
            let Some(view) = self.view(posting.order, as_of) else {
                continue;
            };
            let notice = Notice {
                cursor: format!(
                    "{}.{}~{}.{}",
                    visible.0, posting.number, posting.run_day.0, order_id
                ),
                shop_id: shop_id.to_string(),
                order_id: order_id.to_string(),
                judgment: posting.number,
                judged_at: posting.judged_at.to_rfc3339(offset),
                deduction_fen: Some(view.policy.deduction_fen),
                revoked: view
                    .derived
                    .judgment(posting.number)
                    .is_some_and(|j| j.revoked(as_of)),
                posting: Some(PostingNotice {
                    run_date: posting.run_day.to_iso(),
                    settle_date: posting.settle_day.to_iso(),
                    kind: posting.kind,
                    amount_fen: posting.amount_fen,
                    cause: postings::cause_text(self, &posting, lang),
                }),
            };
            keyed.push((key, notice));
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(keyed.into_iter().map(|(_, n)| n).collect())
    }

    /// Orders with events but no `paid` event as of `as_of` (R13): their
    /// events wait and change nothing. The audit asks as of the end of time.
    pub fn orphans(&self, as_of: UnixNs) -> Vec<Orphan> {
        let offset = self.policy.utc_offset;
        let mut orphans: Vec<Orphan> = self
            .orders
            .iter()
            .enumerate()
            .filter(|(_, o)| o.paid.is_none_or(|p| p.at > as_of))
            .filter_map(|(i, o)| {
                let events = o.events.as_slice();
                let waiting = events.iter().take_while(|e| e.at <= as_of).count();
                (waiting > 0).then(|| Orphan {
                    order_id: self.order_ids.get(i as u32).to_string(),
                    events: waiting as u64,
                    first_at: events[0].at.to_rfc3339(offset),
                })
            })
            .collect();
        orphans.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        orphans
    }

    /// Ids of every shop the ledger knows, whatever the instant.
    pub fn shop_ids(&self) -> impl Iterator<Item = &str> {
        (0..self.shop_ids.len() as u32).map(|i| self.shop_ids.get(i))
    }

    /// Ids of every paid order the ledger knows, whatever the instant.
    pub fn order_ids(&self) -> impl Iterator<Item = &str> {
        self.orders
            .iter()
            .enumerate()
            .filter(|(_, o)| o.paid.is_some())
            .map(|(i, _)| self.order_ids.get(i as u32))
    }
}

/// A notice's cursor: `visible.judgment.order_id` for a judgment's notice,
/// `visible.judgment~run_day.order_id` for a correction's (R14).
fn parse_cursor(text: &str) -> Option<(i64, String, u8, i64)> {
    let mut parts = text.splitn(3, '.');
    let visible: i64 = parts.next()?.parse().ok()?;
    let part = parts.next()?;
    let (number, run_day) = match part.split_once('~') {
        Some((number, run_day)) => (number.parse().ok()?, run_day.parse().ok()?),
        None => (part.parse().ok()?, i64::MIN),
    };
    let order_id = parts.next()?.to_string();
    Some((visible, order_id, number, run_day))
}

//! The reports of CLI.md, as plain serialisable values.
//!
//! Field order follows CLI.md so that `--json` output reads like the contract.
//! Instants are already formatted (RFC 3339 in the policy's offset) so that
//! every renderer, CLI or HTTP, prints the same bytes.

use serde::{Deserialize, Serialize};

use crate::time::{AskedInstantError, UnixNs, UtcOffset};

/// The status of one deduction (CLI.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeductionStatus {
    /// Before 00:00 local of its settle date (R4).
    Pending,
    /// Charged in full (R5).
    Charged,
    /// Part charged, the rest waived by the daily cap (R5).
    Partial,
    /// Due, but the daily cap was already reached (R5).
    Waived,
    /// Its judgment was revoked (R11).
    Revoked,
}

impl DeductionStatus {
    /// The name used in reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeductionStatus::Pending => "pending",
            DeductionStatus::Charged => "charged",
            DeductionStatus::Partial => "partial",
            DeductionStatus::Waived => "waived",
            DeductionStatus::Revoked => "revoked",
        }
    }
}

/// One deduction (R4) with what the daily cap (R5) made of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeductionReport {
    /// The order judged.
    pub order_id: String,
    /// The judgment number.
    pub judgment: u8,
    /// `T_k`.
    pub judged_at: String,
    /// `YYYY-MM-DD`, the local day after `judged_at`.
    pub settle_date: String,
    /// The deduction before the cap.
    pub amount_fen: i64,
    /// What was charged.
    pub charged_fen: i64,
    /// What the cap waived.
    pub waived_fen: i64,
    /// See [`DeductionStatus`].
    pub status: DeductionStatus,
}

/// A shop's history by local day (`GET /shops/{id}/days`), oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopDays {
    /// The shop.
    pub shop_id: String,
    /// The instant the figures hold at.
    pub as_of: String,
    /// Only the days with a standing judgment or a deduction.
    pub days: Vec<DayFigures>,
}

/// One local day of a shop's history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayFigures {
    /// `YYYY-MM-DD` in the policy's offset.
    pub date: String,
    /// Standing judgments judged on this day (R3).
    pub judgments: u64,
    /// Charged on this settle date (R4, R5).
    pub charged_fen: i128,
    /// Waived by the daily cap on this settle date (R5).
    pub waived_fen: i128,
    /// Deductions settling on this date that the cap waived in whole or in
    /// part (R5).
    pub cap_hits: u64,
}

/// A product ban (R6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanReport {
    /// The banned product.
    pub product_id: String,
    /// The order whose judgment banned it (the earliest).
    pub order_id: String,
    /// When.
    pub banned_at: String,
}

/// A closure-review flag (R7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagReport {
    /// The order that flagged the shop.
    pub order_id: String,
    /// `T_final + closure_grace_hours`.
    pub flagged_at: String,
}

/// The rating inputs (R10).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatingReport {
    /// The window's length.
    pub window_days: i64,
    /// Orders whose `T_1` lies in the window.
    pub due_orders: u64,
    /// Those with at least one standing judgment.
    pub timed_out_orders: u64,
    /// `timed_out_orders / due_orders`; `None` when nothing was due.
    pub timeout_rate: Option<f64>,
    /// Standing judgments whose `judged_at` lies in the window.
    pub timeout_judgments: u64,
}

/// One shop as of an instant (CLI.md "Shop report"). `deductions` is `None` in
/// the one-line-per-shop summary of `penalty shops`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShopReport {
    /// The shop.
    pub shop_id: String,
    /// The instant of the report.
    pub as_of: String,
    /// Paid orders as of `as_of`.
    pub orders: u64,
    /// Standing (non-revoked) judgments.
    pub judgments: u64,
    /// Orders with at least one standing judgment.
    pub violating_orders: u64,
    /// Sum of `deductions[].charged_fen`. The shop's sums are `i128`: each
    /// amount fits an `i64`, their sum need not, and it is never clamped.
    pub charged_fen: i128,
    /// Sum of `deductions[].waived_fen`.
    pub waived_fen: i128,
    /// Sum of the amounts of pending deductions.
    pub pending_fen: i128,
    /// Top-ups minus charges (R12); negative is a shortfall.
    pub deposit_balance_fen: i128,
    /// The sum of the booked ledger's postings (R14): what the settlement
    /// runs so far have moved; equal to `charged_fen` as of the last run.
    pub booked_fen: i128,
    /// Every deduction, revoked ones included, in (judged_at, order_id,
    /// judgment) order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deductions: Option<Vec<DeductionReport>>,
    /// Banned products, by (banned_at, product_id).
    pub banned_products: Vec<BanReport>,
    /// Closure-review flags, by (flagged_at, order_id).
    pub closure_review: Vec<FlagReport>,
    /// Rating inputs.
    pub rating: RatingReport,
}

/// One judgment as listed in an order report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JudgmentReport {
    /// The judgment number.
    pub judgment: u8,
    /// `T_k`.
    pub judged_at: String,
    /// Voided by an upheld appeal (R11).
    pub revoked: bool,
}

/// The status of an order (CLI.md): the first that applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// R8.
    AutoClosed,
    /// Refunds add up to the amount.
    Refunded,
    /// A valid tracking number exists.
    Shipped,
    /// None of the above.
    AwaitingShipment,
}

/// Which order rows a list or an export keeps (the filters of `GET
/// /orders`, `GET /orders.csv` and `penalty export orders`): each filter
/// given narrows the list, and the default keeps every existing order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowFilter {
    /// Only rows of this status.
    pub status: Option<OrderStatus>,
    /// Only rows with at least one standing judgment.
    pub violating: bool,
    /// Only orders paid at or after this instant.
    pub paid_from: Option<UnixNs>,
    /// Only orders paid before this instant (an exclusive end: see
    /// [`RowFilter::paid_to_end`]).
    pub paid_before: Option<UnixNs>,
    /// Only orders with a charged or waived deduction on a settle day whose
    /// deductions the daily cap cut (R5: some of that day's money waived).
    pub capped_day: bool,
    /// Only orders under a closure-review flag (R7).
    pub closure_review: bool,
}

impl RowFilter {
    /// Whether the row's own content matters: when it does not, every
    /// existing order is kept.
    pub fn is_everything(&self) -> bool {
        *self == RowFilter::default()
    }

    /// Whether an order paid at `paid_at` lies in the asked range.
    pub fn keeps_paid_at(&self, paid_at: UnixNs) -> bool {
        self.paid_from.is_none_or(|from| from <= paid_at)
            && self.paid_before.is_none_or(|end| paid_at < end)
    }

    /// The exclusive end of a range whose inclusive last instant a person
    /// wrote as `text` (`paid_to=`, `--paid-to`), by the one rule for an
    /// asked instant ([`UnixNs::parse_asked`]): a date (`YYYY-MM-DD`)
    /// includes its whole day in the policy's offset, as a person reading
    /// "paid to 2026-03-07" expects; an instant includes itself.
    pub fn paid_to_end(text: &str, offset: UtcOffset) -> Result<UnixNs, AskedInstantError> {
        let instant = UnixNs::parse_asked(text, offset)?;
        Ok(if text.len() == DATE_LEN {
            instant.local_day(offset).next().start(offset)
        } else {
            UnixNs(instant.0.saturating_add(1))
        })
    }
}

/// The length of `YYYY-MM-DD`, the only asked instant this short.
const DATE_LEN: usize = 10;

impl OrderStatus {
    /// Every status, in the order of an order's life: the one list behind
    /// [`OrderStatus::NAMES`], the CLI's `--status` choices and the OpenAPI
    /// document's enum.
    pub const ALL: [OrderStatus; 4] = [
        OrderStatus::AwaitingShipment,
        OrderStatus::Shipped,
        OrderStatus::Refunded,
        OrderStatus::AutoClosed,
    ];

    /// The names of [`OrderStatus::ALL`], in the same order.
    pub const NAMES: [&'static str; 4] = [
        OrderStatus::AwaitingShipment.as_str(),
        OrderStatus::Shipped.as_str(),
        OrderStatus::Refunded.as_str(),
        OrderStatus::AutoClosed.as_str(),
    ];

    /// The name used in reports and filters.
    pub const fn as_str(&self) -> &'static str {
        match self {
            OrderStatus::AutoClosed => "auto_closed",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Shipped => "shipped",
            OrderStatus::AwaitingShipment => "awaiting_shipment",
        }
    }

    /// Parses a status name, for filters.
    pub fn parse(text: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One order as of an instant (CLI.md "Order report").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderReport {
    /// The order.
    pub order_id: String,
    /// Its shop.
    pub shop_id: String,
    /// Its product.
    pub product_id: String,
    /// What the buyer paid.
    pub amount_fen: i64,
    /// The instant of the report.
    pub as_of: String,
    /// `paid.at`.
    pub paid_at: String,
    /// R1.
    pub deadline: String,
    /// See [`OrderStatus`].
    pub status: OrderStatus,
    /// R2's instant, whatever the status.
    pub resolved_at: Option<String>,
    /// Every judgment that exists, revoked ones included.
    pub judgments: Vec<JudgmentReport>,
    /// Its deductions, as in the shop report.
    pub deductions: Vec<DeductionReport>,
    /// This order's judgment banned its product (R6).
    pub product_banned: bool,
    /// This order flagged its shop (R7).
    pub closure_review: bool,
    /// R8.
    pub auto_closed_at: Option<String>,
    /// R8: what the buyer is owed when auto-closed.
    pub refund_due_fen: i64,
    /// R8: a refund failed after the close.
    pub alternative_refund_required: bool,
    /// Why, in time order, citing the rules.
    pub explain: Vec<String>,
}

/// One row of `penalty export orders`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRow {
    /// The order.
    pub order_id: String,
    /// Its shop.
    pub shop_id: String,
    /// Its product.
    pub product_id: String,
    /// What the buyer paid.
    pub amount_fen: i64,
    /// `paid.at`.
    pub paid_at: String,
    /// R1.
    pub deadline: String,
    /// See [`OrderStatus`].
    pub status: OrderStatus,
    /// R2.
    pub resolved_at: Option<String>,
    /// Standing judgments.
    pub judgments: u64,
    /// Revoked judgments.
    pub revoked_judgments: u64,
    /// Charged over this order's deductions.
    pub charged_fen: i64,
    /// Waived by the cap.
    pub waived_fen: i64,
    /// Not yet due.
    pub pending_fen: i64,
    /// R6.
    pub product_banned: bool,
    /// R7.
    pub closure_review: bool,
    /// R8.
    pub auto_closed_at: Option<String>,
    /// R8.
    pub refund_due_fen: i64,
    /// R8.
    pub alternative_refund_required: bool,
}

/// One notice of the per-shop feed (R9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Read the feed after this cursor to get the notices after this one.
    pub cursor: String,
    /// The shop.
    pub shop_id: String,
    /// The order judged.
    pub order_id: String,
    /// The judgment number.
    pub judgment: u8,
    /// `T_k`.
    pub judged_at: String,
    /// The deduction it carries, if any (R4).
    pub deduction_fen: Option<i64>,
    /// Revoked since (R11); the notice stays in the feed.
    pub revoked: bool,
    /// For a correction of the booked ledger (R14: a refund or a late
    /// charge), the posting it announces; absent for a judgment's notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posting: Option<PostingNotice>,
}

/// What a notice of a correction says (R9, R14).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostingNotice {
    /// The settlement run that booked it.
    pub run_date: String,
    /// The deduction's settle date.
    pub settle_date: String,
    /// refund or late_charge.
    pub kind: PostingKind,
    /// Signed, in fen.
    pub amount_fen: i64,
    /// The event that caused it, in words.
    pub cause: String,
}

/// An order with events but no `paid` (R13), listed by the audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphan {
    /// The order named by the events.
    pub order_id: String,
    /// How many events wait for its `paid`.
    pub events: u64,
    /// The earliest of their instants.
    pub first_at: String,
}

/// The kind of a posting of the booked ledger (R14).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostingKind {
    /// A deduction's first posting, booked by the run of its settle date.
    Charge,
    /// A negative posting: money returned to the deposit.
    Refund,
    /// A positive posting after the settle date's run: the first posting of
    /// a deduction booked late, or a later increase.
    LateCharge,
}

impl PostingKind {
    /// The name used in reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            PostingKind::Charge => "charge",
            PostingKind::Refund => "refund",
            PostingKind::LateCharge => "late_charge",
        }
    }

    /// The name a person reads in `lang`, from the one table of labels
    /// ([`crate::labels`]).
    pub fn label(&self, lang: crate::labels::Lang) -> String {
        crate::labels::text(crate::labels::CodeSet::PostingKind, self.as_str(), lang)
    }
}

/// One posting of the booked ledger (R14): immutable once its run happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostingReport {
    /// The settlement run that booked it: `YYYY-MM-DD`, the run is at 00:00
    /// local of that day.
    pub run_date: String,
    /// The shop.
    pub shop_id: String,
    /// The deduction's order.
    pub order_id: String,
    /// The deduction's judgment.
    pub judgment: u8,
    /// `T_k`.
    pub judged_at: String,
    /// The deduction's settle date.
    pub settle_date: String,
    /// charge, refund or late_charge.
    pub kind: PostingKind,
    /// Signed: negative is money returned to the deposit.
    pub amount_fen: i64,
    /// Why it was booked, in words; for a correction, the event that caused it.
    pub cause: String,
}

/// A shop's booked ledger as of an instant (R14).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostingsReport {
    /// The shop.
    pub shop_id: String,
    /// The instant of the report.
    pub as_of: String,
    /// The sum of every posting so far.
    pub booked_fen: i128,
    /// By (run_date, judged_at, order_id, judgment).
    pub postings: Vec<PostingReport>,
}

/// What comes next for an order at risk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NextStep {
    /// Judgment `k` (R3), with its deduction (R4) and maybe a ban (R6).
    Judgment,
    /// The shop is flagged for closure review (R7).
    ClosureReview,
    /// The order is closed and refunded (R8).
    AutoClose,
}

impl NextStep {
    /// The code of CLI.md.
    pub fn as_str(self) -> &'static str {
        match self {
            NextStep::Judgment => "judgment",
            NextStep::ClosureReview => "closure_review",
            NextStep::AutoClose => "auto_close",
        }
    }
}

/// One order at risk. `judgment`, `deduction_fen` and `bans_product` are
/// present for a coming judgment only; `refund_due_fen` for an auto-close.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AtRiskOrder {
    /// The order.
    pub order_id: String,
    /// Its shop.
    pub shop_id: String,
    /// Its product (what a coming ban would ban).
    pub product_id: String,
    /// What happens next unless the seller acts.
    pub next: NextStep,
    /// When, in the policy's offset.
    pub at: String,
    /// Seconds from `as_of` to `at`: the countdown.
    pub seconds_left: i64,
    /// The coming judgment's number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judgment: Option<u8>,
    /// What that judgment would charge (0 beyond `max_deductions_per_order`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deduction_fen: Option<i64>,
    /// That judgment is the one that bans the product (R6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bans_product: Option<bool>,
    /// What the auto-close would refund to the buyer (R8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_due_fen: Option<i64>,
}

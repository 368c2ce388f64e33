//! At risk (CLI.md, "At risk"): the orders that will be judged, flagged for
//! closure review or auto-closed soon unless the seller acts. This is the
//! warning *before* a penalty, so it reads only the events with `at <= as_of`:
//! a shipment recorded for later does not make an order safe now.
//!
//! An order is at risk as of `T` when it exists, is neither resolved (R2) nor
//! auto-closed (R8) as of `T`, and the earliest of its coming instants lies in
//! `(T, T + within]`. Its coming instants are the judgments still to come and
//! not already revoked (R3, R11), the closure-review flag (R7) and the
//! auto-close (R8).

use serde::{Serialize, Serializer};

use super::{Ledger, QueryError};
use crate::event::EventType;
use crate::report::{AtRiskOrder, NextStep};
use crate::time::UnixNs;
use crate::view::OrderView;

const NANOS_PER_MINUTE: i64 = 60 * 1_000_000_000;
/// The longest horizon asked about: a year covers every policy's judgments
/// and the usual 150-day auto-close.
const MAX_WITHIN_MINUTES: i64 = 366 * 24 * 60;

/// How far ahead to look: a whole number of minutes, written `90m`, `12h` or
/// `2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Within {
    minutes: i64,
}

/// Why a horizon was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message(crate::labels::Lang::En))]
pub struct WithinError {
    /// What was given, cut to 64 characters.
    pub text: String,
}

impl WithinError {
    /// The message in `lang` (its `Display` is the English one).
    pub fn message(&self, lang: crate::labels::Lang) -> String {
        crate::labels::Phrase::NotAHorizon.fill(lang, &[&self.text])
    }
}

impl Within {
    /// The default of CLI.md: 24 hours.
    pub const DAY: Within = Within { minutes: 24 * 60 };

    /// Parses `90m`, `12h` or `2d`: the one rule for the CLI's `--within` and
    /// the server's `within` (whose OpenAPI pattern states it too), so a
    /// leading zero is refused by both.
    pub fn parse(text: &str) -> Result<Within, WithinError> {
        let error = || WithinError {
            text: text.chars().take(64).collect(),
        };
        let split = text.len().checked_sub(1).ok_or_else(error)?;
        let (number, unit) = text.split_at_checked(split).ok_or_else(error)?;
        if number.is_empty()
            || number.starts_with('0')
            || !number.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(error());
        }
        let minutes_per_unit = match unit {
            "m" => 1,
            "h" => 60,
            "d" => 24 * 60,
            _ => return Err(error()),
        };
        let minutes = number
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(minutes_per_unit))
            .filter(|m| (1..=MAX_WITHIN_MINUTES).contains(m))
            .ok_or_else(error)?;
        Ok(Within { minutes })
    }

    /// The horizon in minutes.
    pub fn minutes(self) -> i64 {
        self.minutes
    }

    fn nanos(self) -> i64 {
        self.minutes * NANOS_PER_MINUTE
    }
}

/// The answer of `penalty at-risk`: the orders in the order (`at`, `order_id`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AtRiskReport {
    /// The instant asked about, in the policy's offset.
    pub as_of: String,
    /// The horizon, in hours (a whole number unless the horizon was given in
    /// minutes that do not make whole hours).
    #[serde(serialize_with = "hours_of")]
    pub within_hours: Within,
    /// The orders at risk.
    pub orders: Vec<AtRiskOrder>,
}

fn hours_of<S: Serializer>(within: &Within, serializer: S) -> Result<S::Ok, S::Error> {
    if within.minutes % 60 == 0 {
        serializer.serialize_i64(within.minutes / 60)
    } else {
        serializer.serialize_f64(within.minutes as f64 / 60.0)
    }
}

impl Ledger {
    /// The orders at risk as of `as_of` within `within`: of one shop, or of
    /// every shop when `shop_id` is `None`. An unknown shop is an error, as in
    /// every other shop query.
    pub fn at_risk(
        &self,
        shop_id: Option<&str>,
        as_of: UnixNs,
        within: Within,
    ) -> Result<AtRiskReport, QueryError> {
        let offset = self.policy.utc_offset;
        let until = UnixNs(as_of.0.saturating_add(within.nanos()));
        let mut found: Vec<(UnixNs, &str, AtRiskOrder)> = Vec::new();
        let mut look = |order: u32| {
            let Some(view) = self.view(order, as_of) else {
                return;
            };
            let Some((at, next, judgment)) = self.next_step(&view, as_of) else {
                return;
            };
            if at > until {
                return;
            }
            // R15: the parameters of the version in force at the order's
            // payment.
            let policy = view.policy;
            let entry = AtRiskOrder {
                order_id: view.order_id().to_string(),
                shop_id: view.shop_id().to_string(),
                product_id: view.product_id().to_string(),
                next,
                at: at.to_rfc3339(offset),
                seconds_left: (at.0 - as_of.0) / 1_000_000_000,
                judgment,
                deduction_fen: judgment.map(|k| {
                    if k <= policy.max_deductions_per_order {
                        policy.deduction_fen
                    } else {
                        0
                    }
                }),
                bans_product: judgment.map(|k| k == policy.ban_at_judgment),
                refund_due_fen: (next == NextStep::AutoClose).then(|| {
                    crate::order::unrefunded_fen(view.paid.amount_fen, view.events, as_of)
                }),
            };
            found.push((at, view.order_id(), entry));
        };
        match shop_id {
            Some(shop_id) => {
                let (_, shop) = self.existing_shop(shop_id, as_of)?;
                shop.orders.iter().for_each(|&order| look(order));
            }
            None => (0..self.orders.len() as u32).for_each(&mut look),
        }
        found.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        Ok(AtRiskReport {
            as_of: as_of.to_rfc3339(offset),
            within_hours: within,
            orders: found.into_iter().map(|(_, _, entry)| entry).collect(),
        })
    }

    /// The earliest coming instant of an order that is unresolved and open as
    /// of `as_of`, with what happens then; `None` when nothing is coming.
    fn next_step(
        &self,
        view: &OrderView<'_>,
        as_of: UnixNs,
    ) -> Option<(UnixNs, NextStep, Option<u8>)> {
        let derived = &view.derived;
        // Unresolved as of `as_of` means unresolved at every earlier instant
        // too, so an order past its auto-close instant is auto-closed (R8).
        if view.resolved_at(as_of).is_some() || derived.auto_close_at <= as_of {
            return None;
        }
        let known = || view.events.iter().take_while(|e| e.at <= as_of);
        let revoked = |number: u8| {
            known().any(|e| e.kind == EventType::JudgmentRevoked && e.value == i64::from(number))
        };
        let mut next: Option<(UnixNs, NextStep, Option<u8>)> = None;
        let mut consider = |at: UnixNs, step: NextStep, judgment: Option<u8>| {
            // On a tie the first considered wins: a judgment, then the flag,
            // then the close.
            if next.is_none_or(|(best, _, _)| at < best) {
                next = Some((at, step, judgment));
            }
        };
        if let Some(j) = derived.judgments().iter().find(|j| {
            j.judged_at > as_of && j.judged_at < derived.auto_close_at && !revoked(j.number)
        }) {
            consider(j.judged_at, NextStep::Judgment, Some(j.number));
        }
        if let Some(last) = derived.judgments().last() {
            if derived.flag_at > as_of
                && last.judged_at < derived.auto_close_at
                && !revoked(last.number)
            {
                consider(derived.flag_at, NextStep::ClosureReview, None);
            }
        }
        consider(derived.auto_close_at, NextStep::AutoClose, None);
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizons_are_whole_minutes_hours_or_days() {
        assert_eq!(Within::parse("90m").map(Within::minutes), Ok(90));
        assert_eq!(Within::parse("12h").map(Within::minutes), Ok(720));
        assert_eq!(Within::parse("2d").map(Within::minutes), Ok(2880));
        assert_eq!(Within::parse("366d").map(Within::minutes), Ok(366 * 1440));
        for bad in [
            "",
            "h",
            "24",
            "0h",
            "012h",
            "-1h",
            "1.5h",
            "24 h",
            "1w",
            "367d",
            "+3h",
            "99999999999999999999d",
            "２h",
        ] {
            assert!(Within::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn within_hours_is_a_whole_number_when_it_can_be() {
        let report = |text| AtRiskReport {
            as_of: String::new(),
            within_hours: Within::parse(text).unwrap_or(Within::DAY),
            orders: Vec::new(),
        };
        let json = |text| serde_json::to_value(report(text)).unwrap_or_default();
        assert_eq!(json("2d")["within_hours"], serde_json::json!(48));
        assert_eq!(json("90m")["within_hours"], serde_json::json!(1.5));
    }
}

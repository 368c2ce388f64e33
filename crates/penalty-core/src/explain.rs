//! The `explain` lines of an order report: the answer a seller gets to "why was
//! I charged?", in time order, each line citing its rule.

use crate::event::EventType;
use crate::order;
use crate::policy::Policy;
use crate::report::{AtRiskOrder, DeductionReport, DeductionStatus, NextStep};
use crate::time::UnixNs;
use crate::view::OrderView;

/// Formats fen as yuan, with the yuan sign, thousands separators and two
/// decimals: `1000` -> `¥10.00`, `123456789` -> `¥1,234,567.89`,
/// `-2000` -> `-¥20.00`. Sums beyond `i64` (a shop's, issue 20) are
/// formatted exactly too.
pub fn yuan(fen: impl Into<i128>) -> String {
    let fen: i128 = fen.into();
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    let whole = (abs / 100).to_string();
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{sign}¥{grouped}.{:02}", abs % 100)
}

pub(crate) fn explain(
    policy: &Policy,
    view: &OrderView<'_>,
    as_of: UnixNs,
    deductions: &[DeductionReport],
) -> Vec<String> {
    let offset = policy.utc_offset;
    let at = |t: UnixNs| t.to_human(offset);
    let paid = view.paid;
    let derived = &view.derived;
    // (instant, tie-breaker, text): the tie-breaker keeps causes before their
    // effects at one instant (an event before the judgment it prevents).
    let mut lines: Vec<(UnixNs, u8, String)> = Vec::new();

    let deadline_reason = match paid.ship_by {
        Some(_) => "the presale ship_by date".to_string(),
        None => format!("{} h after payment", policy.ship_window_hours),
    };
    lines.push((
        paid.at,
        0,
        format!(
            "{} paid {} for product {} in shop {}; ship by {} ({}) (R1)",
            at(paid.at),
            yuan(paid.amount_fen),
            view.product_id(),
            view.shop_id(),
            at(derived.deadline),
            deadline_reason
        ),
    ));

    // Exact: refunds may add up beyond `i64`.
    let mut refunded_fen: i128 = 0;
    for event in view.events.iter().take_while(|e| e.at <= as_of) {
        let when = at(event.at);
        let text = match event.kind {
            EventType::Shipped | EventType::TrackingUploaded => {
                let tracking_no = view.tracking_no(event);
                let verb = if event.kind == EventType::TrackingUploaded {
                    "tracking number uploaded"
                } else {
                    "shipped with tracking number"
                };
                match event
                    .tracking()
                    .and_then(|t| order::first_rejection(view.events, t))
                    .filter(|r| *r <= as_of)
                {
                    Some(rejected) => format!(
                        "{when} {verb} {tracking_no}, rejected on {}: it never counted as shipped (R2)",
                        at(rejected)
                    ),
                    None => format!("{when} {verb} {tracking_no}: the order counts as shipped from now (R2)"),
                }
            }
            EventType::TrackingRejected => format!(
                "{when} the platform rejected tracking number {}: shipments under it never counted (R2)",
                view.tracking_no(event)
            ),
            EventType::Refunded => {
                let amount_fen = &event.value;
                refunded_fen += i128::from(*amount_fen);
                if refunded_fen >= i128::from(paid.amount_fen) {
                    format!(
                        "{when} refunded {}, {} of {} in all: a full refund resolves the order (R2)",
                        yuan(*amount_fen),
                        yuan(refunded_fen),
                        yuan(paid.amount_fen)
                    )
                } else {
                    format!(
                        "{when} refunded {}, {} of {} in all: a partial refund does not resolve the order (R2)",
                        yuan(*amount_fen),
                        yuan(refunded_fen),
                        yuan(paid.amount_fen)
                    )
                }
            }
            EventType::RefundFailed => {
                if view.auto_closed(as_of) && event.at >= derived.auto_close_at {
                    format!("{when} the refund along the original payment path failed: an alternative refund is required (R8)")
                } else {
                    format!("{when} a refund failed; no auto-close refund was owed then, so nothing follows (R8)")
                }
            }
            EventType::JudgmentRevoked => {
                let judgment = event.value;
                let exists = u8::try_from(judgment)
                    .ok()
                    .and_then(|n| derived.judgment(n))
                    .is_some_and(|j| j.exists(as_of));
                if exists {
                    format!("{when} appeal upheld: judgment {judgment} is revoked and charges, bans and flags nothing (R11)")
                } else {
                    format!("{when} appeal for judgment {judgment}, which does not exist: no effect (R11)")
                }
            }
            // Filed on the order and the shop, never among an order's events.
            EventType::Paid | EventType::DepositToppedUp => continue,
        };
        lines.push((event.at, 1, text));
    }

    let judgments: Vec<_> = view.judgments(as_of).collect();
    for j in &judgments {
        let reason = if j.number == 1 {
            format!("not shipped by the deadline {}", at(derived.deadline))
        } else {
            format!(
                "still not shipped {} h after the deadline",
                i64::from(j.number - 1) * policy.rejudge_interval_hours
            )
        };
        let revoked = if j.revoked(as_of) {
            " (since revoked, R11)"
        } else {
            ""
        };
        lines.push((
            j.judged_at,
            2,
            format!(
                "{} judgment {}: {reason}{revoked} (R3)",
                at(j.judged_at),
                j.number
            ),
        ));
    }
    if judgments.is_empty() && derived.deadline <= as_of {
        let text = match view.resolved_at(as_of) {
            Some(t) if t <= derived.deadline => format!(
                "{} deadline met: resolved at {}, so no timeout judgment (R2, R3)",
                at(derived.deadline),
                at(t)
            ),
            _ if derived.deadline >= derived.auto_close_at => format!(
                "{} deadline falls at or after the auto-close, so no timeout judgment (R3, R8)",
                at(derived.deadline)
            ),
            _ => format!(
                "{} deadline passed without a judgment (R3)",
                at(derived.deadline)
            ),
        };
        lines.push((derived.deadline, 2, text));
    }

    for d in deductions {
        let Some(settle_day) =
            UnixNs::parse_rfc3339(&d.judged_at).map(|t| t.local_day(offset).next())
        else {
            continue;
        };
        let settle_start = settle_day.start(offset);
        let amount = yuan(d.amount_fen);
        let text = match d.status {
            DeductionStatus::Pending => format!(
                "{} deduction of {amount} for judgment {} pending: due on {} (R4)",
                at(settle_start),
                d.judgment,
                d.settle_date
            ),
            DeductionStatus::Charged => format!(
                "{} deduction of {amount} for judgment {} charged from the deposit (R4, R5)",
                at(settle_start),
                d.judgment
            ),
            DeductionStatus::Partial => format!(
                "{} deduction for judgment {}: {} charged, {} waived because the shop reached its daily cap of {} on {} (R4, R5)",
                at(settle_start),
                d.judgment,
                yuan(d.charged_fen),
                yuan(d.waived_fen),
                yuan(view.names.policies.at(settle_start).shop_daily_cap_fen),
                d.settle_date
            ),
            DeductionStatus::Waived => format!(
                "{} deduction of {amount} for judgment {} waived: the shop had reached its daily cap of {} on {} (R5)",
                at(settle_start),
                d.judgment,
                yuan(view.names.policies.at(settle_start).shop_daily_cap_fen),
                d.settle_date
            ),
            DeductionStatus::Revoked => format!(
                "{} deduction of {amount} for judgment {} not charged: the judgment was revoked on appeal (R11)",
                at(settle_start),
                d.judgment
            ),
        };
        lines.push((settle_start, 3, text));
    }

    if let Some(ban) = view.ban(as_of) {
        lines.push((
            ban.judged_at,
            4,
            format!(
                "{} product {} banned at judgment {} (R6)",
                at(ban.judged_at),
                view.product_id(),
                ban.number
            ),
        ));
    }
    if let Some(last) = derived.judgments().last().filter(|j| j.stands(as_of)) {
        if view.flagged(as_of) {
            lines.push((
                derived.flag_at,
                4,
                format!(
                    "{} shop flagged for closure review: still not resolved {} h after judgment {} (R7)",
                    at(derived.flag_at),
                    policy.closure_grace_hours,
                    last.number
                ),
            ));
        } else if derived.flag_at <= as_of {
            lines.push((
                derived.flag_at,
                4,
                format!(
                    "{} no closure review: the order was resolved within {} h of judgment {} (R7)",
                    at(derived.flag_at),
                    policy.closure_grace_hours,
                    last.number
                ),
            ));
        }
    }
    if view.auto_closed(as_of) {
        lines.push((
            derived.auto_close_at,
            4,
            format!(
                "{} auto-closed {} days after payment, neither shipped nor refunded: {} to be refunded to the buyer along the original payment path (R8)",
                at(derived.auto_close_at),
                policy.auto_close_days,
                yuan(view.refund_due_fen(as_of))
            ),
        ));
    }
    lines.sort_by_key(|line| (line.0, line.1));
    lines.into_iter().map(|(_, _, text)| text).collect()
}

/// A countdown in words: `2 d 3 h`, `5 h 20 min`, `12 min`, `less than a minute`.
pub fn time_left(seconds: i64) -> String {
    let minutes = seconds.max(0) / 60;
    let (days, hours, minutes) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => "less than a minute".to_string(),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// What an order at risk will cost unless the seller acts, in one sentence
/// citing its rules: "ship O1 within 5 h 20 min or be charged 10.00 yuan
/// (judgment 1, R3, R4)".
pub fn at_risk_line(order: &AtRiskOrder) -> String {
    let act = format!(
        "ship {} within {}",
        order.order_id,
        time_left(order.seconds_left)
    );
    match order.next {
        NextStep::Judgment => {
            let k = order.judgment.unwrap_or(0);
            let charge = order.deduction_fen.filter(|fen| *fen > 0);
            match (charge, order.bans_product == Some(true)) {
                (Some(fen), true) => format!(
                    "{act} or be charged {} and have product {} banned (judgment {k}, R3, R4, R6)",
                    yuan(fen),
                    order.product_id
                ),
                (Some(fen), false) => {
                    format!("{act} or be charged {} (judgment {k}, R3, R4)", yuan(fen))
                }
                (None, true) => format!(
                    "{act} or have product {} banned (judgment {k}, R3, R6)",
                    order.product_id
                ),
                (None, false) => format!("{act} or be judged late again (judgment {k}, R3)"),
            }
        }
        NextStep::ClosureReview => format!(
            "{act} or shop {} is flagged for closure review (R7)",
            order.shop_id
        ),
        NextStep::AutoClose => format!(
            "{act} or it is closed and {} refunded to the buyer (R8)",
            yuan(order.refund_due_fen.unwrap_or(0))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::{time_left, yuan};

    #[test]
    fn time_left_is_the_countdown_in_words() {
        assert_eq!(time_left(59), "less than a minute");
        assert_eq!(time_left(12 * 60 + 59), "12 min");
        assert_eq!(time_left(5 * 3600 + 20 * 60), "5 h 20 min");
        assert_eq!(time_left(2 * 86400 + 3 * 3600 + 59 * 60), "2 d 3 h");
        assert_eq!(time_left(-5), "less than a minute");
    }

    #[test]
    fn yuan_has_the_sign_separators_and_two_decimals() {
        assert_eq!(yuan(1000), "¥10.00");
        assert_eq!(yuan(19900), "¥199.00");
        assert_eq!(yuan(5), "¥0.05");
        assert_eq!(yuan(0), "¥0.00");
        assert_eq!(yuan(-2000), "-¥20.00");
        assert_eq!(yuan(99_999), "¥999.99");
        assert_eq!(yuan(100_000), "¥1,000.00");
        assert_eq!(yuan(123_456_789), "¥1,234,567.89");
        assert_eq!(yuan(i64::MIN), "-¥92,233,720,368,547,758.08");
    }
}

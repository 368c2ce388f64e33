//! The `explain` lines of an order report: the answer a seller gets to "why was
//! I charged?", in time order, each line citing its rule.

use crate::ledger::OrderView;
use crate::order::{self, Kind};
use crate::policy::Policy;
use crate::report::{DeductionReport, DeductionStatus};
use crate::time::Instant;

/// Formats fen as yuan with two decimals: `1000` -> `10.00 yuan`.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02} yuan", abs / 100, abs % 100)
}

pub(crate) fn explain(
    policy: &Policy,
    view: &OrderView<'_>,
    as_of: Instant,
    deductions: &[DeductionReport],
) -> Vec<String> {
    let offset = policy.utc_offset;
    let at = |t: Instant| t.to_human(offset);
    let paid = view.paid;
    let derived = &view.derived;
    // (instant, tie-breaker, text): the tie-breaker keeps causes before their
    // effects at one instant (an event before the judgment it prevents).
    let mut lines: Vec<(Instant, u8, String)> = Vec::new();

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

    let mut refunded_fen: i64 = 0;
    for event in view.events.iter().take_while(|e| e.at <= as_of) {
        let when = at(event.at);
        let text = match event.kind {
            Kind::Shipped | Kind::Uploaded => {
                let tracking_no = view.tracking_no(event);
                let verb = if event.kind == Kind::Uploaded {
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
            Kind::Rejected => format!(
                "{when} the platform rejected tracking number {}: shipments under it never counted (R2)",
                view.tracking_no(event)
            ),
            Kind::Refunded => {
                let amount_fen = &event.value;
                refunded_fen = refunded_fen.saturating_add(*amount_fen);
                if refunded_fen >= paid.amount_fen {
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
            Kind::RefundFailed => {
                if view.auto_closed(as_of) && event.at >= derived.auto_close_at {
                    format!("{when} the refund along the original payment path failed: an alternative refund is required (R8)")
                } else {
                    format!("{when} a refund failed; no auto-close refund was owed then, so nothing follows (R8)")
                }
            }
            Kind::Revoked => {
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
            Instant::parse_rfc3339(&d.judged_at).map(|t| t.local_day(offset).next())
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
                yuan(view.ledger.policy().at(settle_start).shop_daily_cap_fen),
                d.settle_date
            ),
            DeductionStatus::Waived => format!(
                "{} deduction of {amount} for judgment {} waived: the shop had reached its daily cap of {} on {} (R5)",
                at(settle_start),
                d.judgment,
                yuan(view.ledger.policy().at(settle_start).shop_daily_cap_fen),
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

#[cfg(test)]
mod tests {
    use super::yuan;

    #[test]
    fn yuan_has_two_decimals() {
        assert_eq!(yuan(1000), "10.00 yuan");
        assert_eq!(yuan(19900), "199.00 yuan");
        assert_eq!(yuan(5), "0.05 yuan");
        assert_eq!(yuan(-2000), "-20.00 yuan");
    }
}

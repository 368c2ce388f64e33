//! The `explain` lines of an order report: the answer a seller gets to "why was
//! I charged?", in time order, each line citing its rule; and the at-risk
//! sentence. Every sentence is written in English and in Chinese (zh-CN),
//! the language a person chose (`labels::Lang`, the one switch of the labels
//! and the dashboard); the two renderings sit side by side so that neither
//! can gain a case the other lacks. Ids, money and instants are the same in
//! both; no code of the reports (`ship_by`, `awaiting_shipment`) appears in a
//! sentence.

use crate::event::EventType;
use crate::labels::{Lang, Phrase};
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
    lang: Lang,
) -> Vec<String> {
    let zh = lang == Lang::Zh;
    let offset = policy.utc_offset;
    let at = |t: UnixNs| t.to_human(offset);
    let paid = view.paid;
    let derived = &view.derived;
    // (instant, tie-breaker, text): the tie-breaker keeps causes before their
    // effects at one instant (an event before the judgment it prevents).
    let mut lines: Vec<(UnixNs, u8, String)> = Vec::new();

    let deadline_reason = match (paid.ship_by, zh) {
        (Some(_), false) => "the presale ship_by date".to_string(),
        (Some(_), true) => "预售约定的发货日期".to_string(),
        (None, false) => format!("{} h after payment", policy.ship_window_hours),
        (None, true) => format!("付款后 {} 小时", policy.ship_window_hours),
    };
    // The reason for the deadline shares the rule's bracket, as a revoked
    // judgment's does below.
    lines.push((
        paid.at,
        0,
        if zh {
            format!(
                "{} 付款 {}，商品 {}，店铺 {}；须在 {} 前发货（{}，R1）",
                at(paid.at),
                yuan(paid.amount_fen),
                view.product_id(),
                view.shop_id(),
                at(derived.deadline),
                deadline_reason
            )
        } else {
            format!(
                "{} paid {} for product {} in shop {}; ship by {} ({}, R1)",
                at(paid.at),
                yuan(paid.amount_fen),
                view.product_id(),
                view.shop_id(),
                at(derived.deadline),
                deadline_reason
            )
        },
    ));

    // Exact: refunds may add up beyond `i64`.
    let mut refunded_fen: i128 = 0;
    for event in view.events.iter().take_while(|e| e.at <= as_of) {
        let when = at(event.at);
        let text = match event.kind {
            EventType::Shipped | EventType::TrackingUploaded => {
                let tracking_no = view.tracking_no(event);
                let verb = match (event.kind == EventType::TrackingUploaded, zh) {
                    (true, false) => "tracking number uploaded",
                    (false, false) => "shipped with tracking number",
                    (true, true) => "上传物流单号",
                    (false, true) => "发货，物流单号",
                };
                let rejected = event
                    .tracking()
                    .and_then(|t| order::first_rejection(view.events, t))
                    .filter(|r| *r <= as_of);
                match (rejected, zh) {
                    (Some(rejected), false) => format!(
                        "{when} {verb} {tracking_no}, rejected on {}: it never counted as shipped (R2)",
                        at(rejected)
                    ),
                    (Some(rejected), true) => format!(
                        "{when} {verb} {tracking_no}，已于 {} 被驳回：从未算作已发货（R2）",
                        at(rejected)
                    ),
                    (None, false) => format!("{when} {verb} {tracking_no}: the order counts as shipped from now (R2)"),
                    (None, true) => format!("{when} {verb} {tracking_no}：订单自此算作已发货（R2）"),
                }
            }
            EventType::TrackingRejected if zh => format!(
                "{when} 平台驳回物流单号 {}：以该单号的发货均不算数（R2）",
                view.tracking_no(event)
            ),
            EventType::TrackingRejected => format!(
                "{when} the platform rejected tracking number {}: shipments under it never counted (R2)",
                view.tracking_no(event)
            ),
            EventType::Refunded => {
                let amount_fen = &event.value;
                refunded_fen += i128::from(*amount_fen);
                let full = refunded_fen >= i128::from(paid.amount_fen);
                if zh {
                    format!(
                        "{when} 退款 {}，累计 {} / {}：{}（R2）",
                        yuan(*amount_fen),
                        yuan(refunded_fen),
                        yuan(paid.amount_fen),
                        if full {
                            "全额退款，订单已解决"
                        } else {
                            "部分退款不能解决订单"
                        }
                    )
                } else if full {
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
                let owed = view.auto_closed(as_of) && event.at >= derived.auto_close_at;
                match (owed, zh) {
                    (true, false) => format!("{when} the refund along the original payment path failed: an alternative refund is required (R8)"),
                    (false, false) => format!("{when} a refund failed; no auto-close refund was owed then, so nothing follows (R8)"),
                    (true, true) => format!("{when} 原路退款失败：须改用其他方式退款（R8）"),
                    (false, true) => format!("{when} 一笔退款失败；当时没有应付的自动关闭退款，因此无后续影响（R8）"),
                }
            }
            EventType::JudgmentRevoked => {
                let judgment = event.value;
                let exists = u8::try_from(judgment)
                    .ok()
                    .and_then(|n| derived.judgment(n))
                    .is_some_and(|j| j.exists(as_of));
                match (exists, zh) {
                    (true, false) => format!("{when} appeal upheld: judgment {judgment} is revoked and charges, bans and flags nothing (R11)"),
                    (false, false) => format!("{when} appeal for judgment {judgment}, which does not exist: no effect (R11)"),
                    (true, true) => format!("{when} 申诉成功：第 {judgment} 次判罚已撤销，不再扣款、禁售或标记（R11）"),
                    (false, true) => format!("{when} 对不存在的第 {judgment} 次判罚申诉：无效（R11）"),
                }
            }
            // Filed on the order and the shop, never among an order's events.
            EventType::Paid | EventType::DepositToppedUp => continue,
        };
        lines.push((event.at, 1, text));
    }

    let judgments: Vec<_> = view.judgments(as_of).collect();
    for j in &judgments {
        let late_hours = i64::from(j.number - 1) * policy.rejudge_interval_hours;
        let reason = match (j.number == 1, zh) {
            (true, false) => format!("not shipped by the deadline {}", at(derived.deadline)),
            (false, false) => format!("still not shipped {late_hours} h after the deadline"),
            (true, true) => format!("未在截止时间 {} 前发货", at(derived.deadline)),
            (false, true) => format!("截止时间后 {late_hours} 小时仍未发货"),
        };
        // The revocation joins the rule in one bracket, in both languages,
        // since two brackets in a row read as a stutter.
        let revoked = match (j.revoked(as_of), zh) {
            (false, _) => "",
            (true, false) => "; since revoked, R11",
            (true, true) => "；已撤销，R11",
        };
        let text = if zh {
            format!(
                "{} 第 {} 次判罚：{reason}（R3{revoked}）",
                at(j.judged_at),
                j.number
            )
        } else {
            format!(
                "{} judgment {}: {reason} (R3{revoked})",
                at(j.judged_at),
                j.number
            )
        };
        lines.push((j.judged_at, 2, text));
    }
    if judgments.is_empty() && derived.deadline <= as_of {
        let text = match view.resolved_at(as_of) {
            Some(t) if t <= derived.deadline && zh => format!(
                "{} 按时履约：已于 {} 解决，因此没有超时判罚（R2、R3）",
                at(derived.deadline),
                at(t)
            ),
            _ if derived.deadline >= derived.auto_close_at && zh => format!(
                "{} 截止时间在自动关闭之时或之后，因此没有超时判罚（R3、R8）",
                at(derived.deadline)
            ),
            _ if zh => format!("{} 截止时间已过，尚无判罚（R3）", at(derived.deadline)),
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
        let cap = || yuan(view.names.policies.at(settle_start).shop_daily_cap_fen);
        let text = if zh {
            let (when, n, day) = (at(settle_start), d.judgment, &d.settle_date);
            match d.status {
                DeductionStatus::Pending => {
                    format!("{when} 第 {n} 次判罚的扣款 {amount} 待结算：{day} 到期（R4）")
                }
                DeductionStatus::Charged => {
                    format!("{when} 第 {n} 次判罚的扣款 {amount} 已从保证金扣除（R4、R5）")
                }
                DeductionStatus::Partial => format!(
                    "{when} 第 {n} 次判罚的扣款：扣除 {}，免除 {}，因店铺 {day} 已达每日上限 {}（R4、R5）",
                    yuan(d.charged_fen),
                    yuan(d.waived_fen),
                    cap()
                ),
                DeductionStatus::Waived => format!(
                    "{when} 第 {n} 次判罚的扣款 {amount} 已免除：店铺 {day} 已达每日上限 {}（R5）",
                    cap()
                ),
                DeductionStatus::Revoked => {
                    format!("{when} 第 {n} 次判罚的扣款 {amount} 未扣除：该判罚已申诉撤销（R11）")
                }
            }
        } else {
            match d.status {
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
                cap(),
                d.settle_date
            ),
            DeductionStatus::Waived => format!(
                "{} deduction of {amount} for judgment {} waived: the shop had reached its daily cap of {} on {} (R5)",
                at(settle_start),
                d.judgment,
                cap(),
                d.settle_date
            ),
            DeductionStatus::Revoked => format!(
                "{} deduction of {amount} for judgment {} not charged: the judgment was revoked on appeal (R11)",
                at(settle_start),
                d.judgment
            ),
            }
        };
        lines.push((settle_start, 3, text));
    }

    if let Some(ban) = view.ban(as_of) {
        let (when, product, n) = (at(ban.judged_at), view.product_id(), ban.number);
        let text = if zh {
            format!("{when} 商品 {product} 因第 {n} 次判罚被禁售（R6）")
        } else {
            format!("{when} product {product} banned at judgment {n} (R6)")
        };
        lines.push((ban.judged_at, 4, text));
    }
    if let Some(last) = derived.judgments().last().filter(|j| j.stands(as_of)) {
        let (when, hours, n) = (at(derived.flag_at), policy.closure_grace_hours, last.number);
        let flagged = view.flagged(as_of);
        if flagged || derived.flag_at <= as_of {
            let text = match (flagged, zh) {
                (true, false) => format!("{when} shop flagged for closure review: still not resolved {hours} h after judgment {n} (R7)"),
                (false, false) => format!("{when} no closure review: the order was resolved within {hours} h of judgment {n} (R7)"),
                (true, true) => format!("{when} 店铺被标记关店审查：第 {n} 次判罚后 {hours} 小时仍未解决（R7）"),
                (false, true) => format!("{when} 无关店审查：订单在第 {n} 次判罚后 {hours} 小时内已解决（R7）"),
            };
            lines.push((derived.flag_at, 4, text));
        }
    }
    if view.auto_closed(as_of) {
        let (when, days, due) = (
            at(derived.auto_close_at),
            policy.auto_close_days,
            yuan(view.refund_due_fen(as_of)),
        );
        let text = if zh {
            format!(
                "{when} 付款 {days} 天后仍未发货也未退款，订单自动关闭：{due} 将原路退还买家（R8）"
            )
        } else {
            format!("{when} auto-closed {days} days after payment, neither shipped nor refunded: {due} to be refunded to the buyer along the original payment path (R8)")
        };
        lines.push((derived.auto_close_at, 4, text));
    }
    lines.sort_by_key(|line| (line.0, line.1));
    lines.into_iter().map(|(_, _, text)| text).collect()
}

/// A countdown in words: `2 d 3 h`, `5 h 20 min`, `12 min`, `less than a minute`.
pub fn time_left(seconds: i64) -> String {
    time_left_in(seconds, Lang::En)
}

/// A countdown in words in `lang`; in Chinese `2 天 3 小时`, `5 小时 20 分钟`,
/// `12 分钟`, `不到 1 分钟`; its words are phrases, which the dashboard's
/// `timeLeft` uses too.
pub fn time_left_in(seconds: i64, lang: Lang) -> String {
    let minutes = seconds.max(0) / 60;
    let (days, hours, minutes) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => Phrase::LessThanAMinute.text(lang).to_string(),
        (0, 0, m) => Phrase::LeftMinutes.fill(lang, &[&m]),
        (0, h, m) => Phrase::LeftHoursMinutes.fill(lang, &[&h, &m]),
        (d, h, _) => Phrase::LeftDaysHours.fill(lang, &[&d, &h]),
    }
}

/// What an order at risk will cost unless the seller acts, in one sentence
/// citing its rules: "ship O1 within 5 h 20 min or be charged 10.00 yuan
/// (judgment 1, R3, R4)".
pub fn at_risk_line(order: &AtRiskOrder) -> String {
    at_risk_line_in(order, Lang::En)
}

/// [`at_risk_line`] in `lang`: in Chinese "订单 O1 请在 5 小时 20 分钟内发货，否则将被扣款
/// ¥10.00（第 1 次判罚，R3、R4）".
pub fn at_risk_line_in(order: &AtRiskOrder, lang: Lang) -> String {
    if lang == Lang::Zh {
        return at_risk_line_zh(order);
    }
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

fn at_risk_line_zh(order: &AtRiskOrder) -> String {
    let act = format!(
        "订单 {} 请在 {}内发货",
        order.order_id,
        time_left_in(order.seconds_left, Lang::Zh)
    );
    match order.next {
        NextStep::Judgment => {
            let k = order.judgment.unwrap_or(0);
            let charge = order.deduction_fen.filter(|fen| *fen > 0);
            match (charge, order.bans_product == Some(true)) {
                (Some(fen), true) => format!(
                    "{act}，否则将被扣款 {} 并禁售商品 {}（第 {k} 次判罚，R3、R4、R6）",
                    yuan(fen),
                    order.product_id
                ),
                (Some(fen), false) => {
                    format!("{act}，否则将被扣款 {}（第 {k} 次判罚，R3、R4）", yuan(fen))
                }
                (None, true) => format!(
                    "{act}，否则商品 {} 将被禁售（第 {k} 次判罚，R3、R6）",
                    order.product_id
                ),
                (None, false) => format!("{act}，否则将再次被判超时（第 {k} 次判罚，R3）"),
            }
        }
        NextStep::ClosureReview => {
            format!("{act}，否则店铺 {} 将被标记关店审查（R7）", order.shop_id)
        }
        NextStep::AutoClose => format!(
            "{act}，否则订单将被关闭并向买家退款 {}（R8）",
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

//! Human-readable output: aligned tables and plain sentences. The JSON output
//! is the reports themselves; this module only reads them.

use std::borrow::Cow;
use std::fmt::Write as _;

use penalty_cluster::node::ClusterStatus;
use penalty_core::explain::{at_risk_line_in, yuan};
use penalty_core::labels::{self, CodeSet, Lang, Phrase};
use penalty_core::{
    AtRiskReport, DeductionReport, Notice, OrderReport, Orphan, Policy, PostingKind,
    PostingsReport, ShopReport,
};
use penalty_store::VerifyReport;
use unicode_width::UnicodeWidthStr;

/// Whether a character must not reach a terminal as it is: the C0 and C1
/// control characters and DEL (ESC starts colour, clear-screen and
/// window-title sequences; CR and BS overwrite what was printed), and the
/// bidirectional formatting characters, which reorder what is shown.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Text from the input (an id, a file name, an instant as typed) made safe
/// to print to a terminal: every character of [`is_unsafe`] is written as
/// its Rust escape, `\u{1b}`, so `S\u{1b}[31mRED` shows as typed instead of
/// turning the terminal red. Line breaks are escaped too, so that a value
/// cannot forge a line of the report. Text without such characters (all
/// real ids) is borrowed unchanged.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_keeping(text, false)
}

/// A whole block of human output, or an error message, made safe to print
/// to a terminal: as [`escape`], but its own line breaks are kept. Every
/// human text goes through this on its way out (`output::print_text` and
/// the error printer of `main`), behind the values escaped where they are
/// put in; escaping twice changes nothing, as the escapes are plain ASCII.
pub fn terminal_text(text: &str) -> Cow<'_, str> {
    escape_keeping(text, true)
}

/// A log line made safe for stderr: as [`terminal_text`], except that with
/// `keep_colours` (stderr is a terminal) the colour codes the log formatter
/// writes, `ESC [ digits ; … m`, pass; any other sequence (clear-screen,
/// cursor moves, a window title) in a logged value is escaped.
pub fn log_text(text: &str, keep_colours: bool) -> Cow<'_, str> {
    if !keep_colours {
        return terminal_text(text);
    }
    if !text.chars().any(|c| is_unsafe(c) && c != '\n') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\u{1b}' {
            let body = &rest[1..];
            let params = body.strip_prefix('[').map(|tail| {
                tail.len()
                    - tail
                        .trim_start_matches(|c: char| c.is_ascii_digit() || c == ';')
                        .len()
            });
            if let Some(params) = params {
                if body[1 + params..].starts_with('m') {
                    let end = 1 + 1 + params + 1;
                    out.push_str(&rest[..end]);
                    rest = &rest[end..];
                    continue;
                }
            }
        }
        if is_unsafe(c) && c != '\n' {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

fn escape_keeping(text: &str, keep_line_breaks: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| is_unsafe(c) && !(keep_line_breaks && c == '\n');
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The columns a text takes on a terminal: two for a Chinese character,
/// none for a combining mark, one for the rest (Unicode's East Asian Width,
/// as terminals show it).
pub fn display_width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

/// `text` followed by spaces up to `width` columns.
fn pad(text: &str, width: usize) -> String {
    let mut out = String::from(text);
    out += &" ".repeat(width.saturating_sub(display_width(text)));
    out
}

/// Left-aligned columns separated by two spaces, a header row first. Columns
/// are measured in display width, so that Chinese headings and cells, two
/// columns each, stay aligned.
fn table(header: &[Phrase], lang: Lang, rows: &[Vec<String>]) -> String {
    let header: Vec<&str> = header.iter().map(|h| h.text(lang)).collect();
    text_table(&header, rows)
}

fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    // Cells are escaped before they are measured, so that columns stay
    // aligned when a value holds control characters.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| escape(cell).into_owned()).collect())
        .collect();
    let rows = &rows;
    let mut widths: Vec<usize> = header.iter().map(|h| display_width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(display_width(cell));
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::from("  ");
        for (i, cell) in cells.iter().enumerate() {
            text += cell;
            if i + 1 < cells.len() {
                text += &" ".repeat(widths[i] - display_width(cell) + 2);
            }
        }
        out += text.trim_end();
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

fn rate(rate: Option<f64>, lang: Lang) -> String {
    match rate {
        Some(r) => format!("{:.1}%", r * 100.0),
        None => Phrase::NoRate.text(lang).into(),
    }
}

fn deduction_rows(deductions: &[DeductionReport], lang: Lang) -> Vec<Vec<String>> {
    deductions
        .iter()
        .map(|d| {
            vec![
                d.judged_at.clone(),
                d.order_id.clone(),
                d.judgment.to_string(),
                d.settle_date.clone(),
                yuan(d.amount_fen),
                yuan(d.charged_fen),
                yuan(d.waived_fen),
                labels::text(CodeSet::DeductionStatus, d.status.as_str(), lang),
            ]
        })
        .collect()
}

const DEDUCTION_HEADER: &[Phrase] = &[
    Phrase::JudgedAt,
    Phrase::OrderColumn,
    Phrase::JudgmentNumber,
    Phrase::Settles,
    Phrase::Amount,
    Phrase::ChargedColumn,
    Phrase::WaivedColumn,
    Phrase::StatusColumn,
];

/// A line of the output: two spaces, the phrase filled, a line break.
fn indented(phrase: Phrase, lang: Lang, values: &[&dyn std::fmt::Display]) -> String {
    format!("  {}\n", phrase.fill(lang, values))
}

/// A section title, a blank line before it.
fn section(phrase: Phrase, lang: Lang) -> String {
    format!("\n{}\n", phrase.text(lang))
}

fn none(lang: Lang) -> String {
    format!("  {}\n", Phrase::NoRows.text(lang))
}

pub fn shop(report: &ShopReport, lang: Lang) -> String {
    let mut out = shop_summary(report, lang);
    out += &shop_lists(report, lang);
    out
}

/// The figures of a shop (`penalty shop --summary`), without its lists.
pub fn shop_summary(report: &ShopReport, lang: Lang) -> String {
    let mut out = Phrase::ShopHeading.fill(lang, &[&escape(&report.shop_id), &report.as_of]);
    out.push('\n');
    out += &indented(
        Phrase::ShopCounts,
        lang,
        &[&report.orders, &report.judgments, &report.violating_orders],
    );
    out += &indented(
        Phrase::ShopMoney,
        lang,
        &[
            &yuan(report.charged_fen),
            &yuan(report.waived_fen),
            &yuan(report.pending_fen),
        ],
    );
    out += &indented(Phrase::ShopBooked, lang, &[&yuan(report.booked_fen)]);
    out += "  ";
    out += &Phrase::DepositBalance.fill(lang, &[&yuan(report.deposit_balance_fen)]);
    if report.deposit_balance_fen < 0 {
        out += "  ";
        out += &Phrase::Shortfall.fill(lang, &[&yuan(-report.deposit_balance_fen)]);
    }
    out.push('\n');
    let r = &report.rating;
    out += &indented(
        Phrase::Rating,
        lang,
        &[
            &r.window_days,
            &r.due_orders,
            &r.timed_out_orders,
            &rate(r.timeout_rate, lang),
            &r.timeout_judgments,
        ],
    );
    out
}

fn shop_lists(report: &ShopReport, lang: Lang) -> String {
    let mut out = String::new();
    if let Some(deductions) = &report.deductions {
        out += &section(Phrase::DeductionsRules, lang);
        if deductions.is_empty() {
            out += &none(lang);
        } else {
            out += &table(DEDUCTION_HEADER, lang, &deduction_rows(deductions, lang));
        }
    }
    out += &section(Phrase::BannedProducts, lang);
    if report.banned_products.is_empty() {
        out += &none(lang);
    } else {
        let rows: Vec<Vec<String>> = report
            .banned_products
            .iter()
            .map(|b| {
                vec![
                    b.product_id.clone(),
                    b.order_id.clone(),
                    b.banned_at.clone(),
                ]
            })
            .collect();
        out += &table(
            &[Phrase::Product, Phrase::OrderColumn, Phrase::BannedAt],
            lang,
            &rows,
        );
    }
    out += &section(Phrase::ClosureReview, lang);
    if report.closure_review.is_empty() {
        out += &none(lang);
    } else {
        let rows: Vec<Vec<String>> = report
            .closure_review
            .iter()
            .map(|f| vec![f.order_id.clone(), f.flagged_at.clone()])
            .collect();
        out += &table(&[Phrase::OrderColumn, Phrase::FlaggedAt], lang, &rows);
    }
    out
}

/// Where a page of a longer list lies, and how to get the next: nothing
/// when the page is the whole list.
fn page_footer(offset: usize, shown: usize, total: usize, lang: Lang) -> String {
    if offset == 0 && shown >= total {
        return String::new();
    }
    if shown == 0 {
        return format!("\n{}", indented(Phrase::NoRowsPast, lang, &[&total]));
    }
    let last = offset + shown;
    let next = if last < total {
        Phrase::NextPage.fill(lang, &[&last])
    } else {
        Phrase::LastPage.text(lang).to_string()
    };
    format!(
        "\n{}",
        indented(
            Phrase::RowsOfPage,
            lang,
            &[&(offset + 1), &last, &total, &next]
        )
    )
}

/// A page of the shop list: `limit` rows (0: all) after `offset`; the
/// deposit shortfall is counted over the whole list.
pub fn shops(reports: &[ShopReport], offset: usize, limit: usize, lang: Lang) -> String {
    if reports.is_empty() {
        return format!("{}\n", Phrase::NoShops.text(lang));
    }
    let limit = if limit == 0 { usize::MAX } else { limit };
    let rows: Vec<Vec<String>> = reports
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| {
            vec![
                r.shop_id.clone(),
                r.orders.to_string(),
                r.judgments.to_string(),
                r.violating_orders.to_string(),
                yuan(r.charged_fen),
                yuan(r.waived_fen),
                yuan(r.pending_fen),
                yuan(r.deposit_balance_fen),
                r.banned_products.len().to_string(),
                r.closure_review.len().to_string(),
                rate(r.rating.timeout_rate, lang),
            ]
        })
        .collect();
    let mut out = table(
        &[
            Phrase::ShopColumn,
            Phrase::OrdersColumn,
            Phrase::JudgmentsColumn,
            Phrase::Violating,
            Phrase::ChargedColumn,
            Phrase::WaivedColumn,
            Phrase::PendingColumn,
            Phrase::Balance,
            Phrase::Bans,
            Phrase::Flags,
            Phrase::TimeoutRate,
        ],
        lang,
        &rows,
    );
    out += &page_footer(offset, rows.len(), reports.len(), lang);
    let short = reports.iter().filter(|r| r.deposit_balance_fen < 0).count();
    if short > 0 {
        let phrase = if short == 1 {
            Phrase::OneShopShort
        } else {
            Phrase::ShopsShort
        };
        out += &phrase.fill(lang, &[&short]);
        out.push('\n');
    }
    out
}

/// An order's report; its `explain` lines are already in `lang` (the core
/// writes them, `Ledger::order_report_in`).
pub fn order(report: &OrderReport, lang: Lang) -> String {
    let mut out = Phrase::OrderHeading.fill(
        lang,
        &[
            &escape(&report.order_id),
            &escape(&report.shop_id),
            &escape(&report.product_id),
            &yuan(report.amount_fen),
            &report.as_of,
        ],
    );
    out.push('\n');
    // The three fields' names in one column, as wide as the widest of them
    // in this language.
    let names = [Phrase::PaidAt, Phrase::Deadline, Phrase::Status].map(|p| p.text(lang));
    let width = names.iter().map(|n| display_width(n)).max().unwrap_or(0) + 2;
    out += &format!("  {}{}\n", pad(names[0], width), report.paid_at);
    out += &format!("  {}{}\n", pad(names[1], width), report.deadline);
    out += &format!(
        "  {}{}",
        pad(names[2], width),
        labels::text(CodeSet::OrderStatus, report.status.as_str(), lang)
    );
    if let Some(resolved_at) = &report.resolved_at {
        out += &Phrase::ResolvedAt.fill(lang, &[resolved_at]);
    }
    out.push('\n');
    if report.product_banned {
        out += &indented(Phrase::ProductBanned, lang, &[]);
    }
    if report.closure_review {
        out += &indented(Phrase::FlaggedItsShop, lang, &[]);
    }
    if let Some(closed) = &report.auto_closed_at {
        let how = if report.alternative_refund_required {
            Phrase::ByAlternativeRefund.text(lang)
        } else {
            ""
        };
        out += &indented(
            Phrase::AutoClosed,
            lang,
            &[closed, &yuan(report.refund_due_fen), &how],
        );
    }
    if !report.deductions.is_empty() {
        out += &section(Phrase::Deductions, lang);
        out += &table(
            DEDUCTION_HEADER,
            lang,
            &deduction_rows(&report.deductions, lang),
        );
    }
    out += &section(Phrase::Why, lang);
    for line in &report.explain {
        out += &format!("  {}\n", escape(line));
    }
    out
}

/// The orders at risk, soonest first, each with what it will cost; at most
/// `limit` of them (0: all) after the first `offset`.
pub fn at_risk(report: &AtRiskReport, offset: usize, limit: usize, lang: Lang) -> String {
    let minutes = report.within_hours.minutes();
    let horizon = match minutes {
        m if m % 1440 == 0 => Phrase::Days.fill(lang, &[&(m / 1440)]),
        m if m % 60 == 0 => Phrase::Hours.fill(lang, &[&(m / 60)]),
        m => Phrase::Minutes.fill(lang, &[&m]),
    };
    let count = report.orders.len();
    let heading = if count == 1 {
        Phrase::AtRiskOne
    } else {
        Phrase::AtRiskMany
    };
    let mut out = heading.fill(lang, &[&report.as_of, &horizon, &count]);
    out.push('\n');
    if count == 0 {
        return out;
    }
    let from = offset.min(count);
    let end = if limit == 0 {
        count
    } else {
        from.saturating_add(limit).min(count)
    };
    let rows: Vec<Vec<String>> = report.orders[from..end]
        .iter()
        .map(|o| {
            vec![
                o.at.clone(),
                o.shop_id.clone(),
                o.order_id.clone(),
                at_risk_line_in(o, lang),
            ]
        })
        .collect();
    out += &table(
        &[
            Phrase::When,
            Phrase::ShopColumn,
            Phrase::OrderColumn,
            Phrase::UnlessTheSellerActs,
        ],
        lang,
        &rows,
    );
    if end < count {
        out += &Phrase::MoreNotShown.fill(lang, &[&(count - end), &end]);
        out.push('\n');
    }
    out
}

/// A page of a shop's notice feed (R9), and how to read the next page; a
/// correction's cause is already in `lang` (`Ledger::notices_in`).
pub fn notices(shop_id: &str, notices: &[Notice], limit: usize, lang: Lang) -> String {
    let mut out = Phrase::NoticesHeading.fill(lang, &[&escape(shop_id)]);
    out.push('\n');
    if notices.is_empty() {
        out += &none(lang);
        return out;
    }
    let rows: Vec<Vec<String>> = notices
        .iter()
        .map(|n| {
            let what = match &n.posting {
                // R14: a correction of the booked ledger, with its cause.
                Some(p) => Phrase::PostingNotice.fill(
                    lang,
                    &[
                        &p.kind.label(lang),
                        &yuan(p.amount_fen),
                        &p.run_date,
                        &p.cause,
                    ],
                ),
                None => {
                    let charge = n.deduction_fen.map_or_else(
                        || Phrase::NoDeduction.text(lang).to_string(),
                        |fen| Phrase::DeductionOf.fill(lang, &[&yuan(fen)]),
                    );
                    let revoked = if n.revoked {
                        Phrase::RevokedNote.text(lang)
                    } else {
                        ""
                    };
                    Phrase::JudgmentNotice.fill(lang, &[&charge, &revoked])
                }
            };
            vec![
                n.judged_at.clone(),
                n.order_id.clone(),
                n.judgment.to_string(),
                what,
            ]
        })
        .collect();
    out += &table(
        &[
            Phrase::JudgedAt,
            Phrase::OrderColumn,
            Phrase::JudgmentNumber,
            Phrase::NoticeColumn,
        ],
        lang,
        &rows,
    );
    if notices.len() == limit {
        if let Some(last) = notices.last() {
            out += &Phrase::MoreMayFollow.fill(lang, &[&escape(&last.cursor)]);
            out.push('\n');
        }
    }
    out
}

/// A line of the output, unindented.
fn line(phrase: Phrase, lang: Lang, values: &[&dyn std::fmt::Display]) -> String {
    format!("{}\n", phrase.fill(lang, values))
}

/// What `penalty recover` found and did, then the rebuilt log's check.
pub fn recover(
    recovered: Option<&penalty_store::recover::RecoverReport>,
    log: &VerifyReport,
    lang: Lang,
) -> String {
    let mut out = String::new();
    if let Some(r) = recovered {
        out += &line(
            Phrase::Rebuilt,
            lang,
            &[&r.blocks, &r.events, &r.last_seq, &r.acknowledged_seq],
        );
        if let Some(kept) = &r.damaged_sled {
            out += &line(
                Phrase::DamagedSledKept,
                lang,
                &[&escape(&kept.display().to_string())],
            );
        }
        if r.unacknowledged_tail_bytes > 0 {
            out += &line(
                Phrase::UnacknowledgedTail,
                lang,
                &[&r.unacknowledged_tail_bytes],
            );
        }
    }
    match &log.problem {
        Some(problem) => out += &line(Phrase::ProblemAt, lang, &[&problem.seq, &problem.detail]),
        None => out += &line(Phrase::RecoveredLogGood, lang, &[&log.blocks, &log.events]),
    }
    out
}

pub fn audit(
    log: &VerifyReport,
    checkpoint: Option<(u64, bool)>,
    orphans: &[Orphan],
    lang: Lang,
) -> String {
    let mut out = line(
        Phrase::LogCounts,
        lang,
        &[&log.blocks, &log.events, &log.last_seq],
    );
    match &log.problem {
        Some(problem) => {
            out += &line(Phrase::ProblemAt, lang, &[&problem.seq, &problem.detail]);
            out += &indented(Phrase::RestoreFromBackup, lang, &[]);
        }
        None => out += &line(Phrase::LogGood, lang, &[]),
    }
    match checkpoint {
        Some((seq, true)) => out += &line(Phrase::CheckpointEqual, lang, &[&seq]),
        Some((seq, false)) => out += &line(Phrase::CheckpointDiffers, lang, &[&seq]),
        None => {}
    }
    if orphans.is_empty() {
        out += &line(Phrase::NoOrphans, lang, &[]);
    } else {
        out += &line(Phrase::Orphans, lang, &[&orphans.len()]);
        let rows: Vec<Vec<String>> = orphans
            .iter()
            .map(|o| vec![o.order_id.clone(), o.events.to_string(), o.first_at.clone()])
            .collect();
        out += &table(
            &[Phrase::OrderColumn, Phrase::EventsColumn, Phrase::FirstAt],
            lang,
            &rows,
        );
    }
    out
}

/// A shop's booked ledger (R14): one row per posting, corrections with the
/// event that caused them (in `lang`, `Ledger::postings_in`); `offset` and
/// `limit` page the rows.
pub fn postings(report: &PostingsReport, offset: usize, limit: usize, lang: Lang) -> String {
    let mut out = line(
        Phrase::PostingsHeading,
        lang,
        &[&escape(&report.shop_id), &report.as_of],
    );
    out += &indented(
        Phrase::PostingsBooked,
        lang,
        &[&yuan(report.booked_fen), &report.postings.len()],
    );
    out.push('\n');
    if report.postings.is_empty() {
        out += &indented(Phrase::NoPostings, lang, &[]);
        return out;
    }
    let rows: Vec<Vec<String>> = report
        .postings
        .iter()
        .skip(offset)
        .take(if limit == 0 { usize::MAX } else { limit })
        .map(|p| {
            let correction = if p.kind == PostingKind::Charge {
                ""
            } else {
                "* "
            };
            vec![
                p.run_date.clone(),
                p.order_id.clone(),
                p.judgment.to_string(),
                p.settle_date.clone(),
                format!("{correction}{}", p.kind.label(lang)),
                yuan(p.amount_fen),
                p.cause.clone(),
            ]
        })
        .collect();
    out += &table(
        &[
            Phrase::RunDate,
            Phrase::OrderColumn,
            Phrase::JudgmentNumber,
            Phrase::Settles,
            Phrase::Kind,
            Phrase::Amount,
            Phrase::Cause,
        ],
        lang,
        &rows,
    );
    out += &page_footer(offset, rows.len(), report.postings.len(), lang);
    out.push('\n');
    out += &indented(Phrase::CorrectionNote, lang, &[]);
    out
}

/// The policy's versions (R15), one block each: every parameter by the
/// name a policy file gives it, what it means, its value and its rule.
pub fn policy(policy: &Policy, offset_text: &str, lang: Lang) -> String {
    let mut out = line(Phrase::PolicyHeading, lang, &[&offset_text]);
    for (index, (from, version)) in policy.versions().enumerate() {
        out.push('\n');
        out += &match from {
            None => line(Phrase::VersionFromStart, lang, &[&index]),
            Some(from) => line(
                Phrase::VersionFrom,
                lang,
                &[&index, &from.to_rfc3339(policy.utc_offset)],
            ),
        };
        let money = |fen: i64| format!("{fen} ({})", yuan(fen));
        let parameters: [(&str, Phrase, String, &str); 10] = [
            (
                "ship_window_hours",
                Phrase::ShipWindowHours,
                version.ship_window_hours.to_string(),
                "R1",
            ),
            (
                "rejudge_interval_hours",
                Phrase::RejudgeIntervalHours,
                version.rejudge_interval_hours.to_string(),
                "R3",
            ),
            (
                "max_judgments_per_order",
                Phrase::MaxJudgmentsPerOrder,
                version.max_judgments_per_order.to_string(),
                "R3",
            ),
            (
                "deduction_fen",
                Phrase::DeductionFen,
                money(version.deduction_fen),
                "R4",
            ),
            (
                "max_deductions_per_order",
                Phrase::MaxDeductionsPerOrder,
                version.max_deductions_per_order.to_string(),
                "R4",
            ),
            (
                "shop_daily_cap_fen",
                Phrase::ShopDailyCapFen,
                money(version.shop_daily_cap_fen),
                "R5",
            ),
            (
                "ban_at_judgment",
                Phrase::BanAtJudgment,
                version.ban_at_judgment.to_string(),
                "R6",
            ),
            (
                "closure_grace_hours",
                Phrase::ClosureGraceHours,
                version.closure_grace_hours.to_string(),
                "R7",
            ),
            (
                "auto_close_days",
                Phrase::AutoCloseDays,
                version.auto_close_days.to_string(),
                "R8",
            ),
            (
                "rating_window_days",
                Phrase::RatingWindowDays,
                version.rating_window_days.to_string(),
                "R10",
            ),
        ];
        let rows: Vec<Vec<String>> = parameters
            .into_iter()
            .map(|(name, meaning, value, rule)| {
                vec![
                    name.to_string(),
                    meaning.text(lang).to_string(),
                    value,
                    rule.to_string(),
                ]
            })
            .collect();
        out += &table(
            &[
                Phrase::Parameter,
                Phrase::Meaning,
                Phrase::Value,
                Phrase::Rule,
            ],
            lang,
            &rows,
        );
    }
    out.push('\n');
    out += &line(Phrase::PolicyVersions, lang, &[]);
    out
}

/// `penalty cluster status`: the partitions and live nodes, then one row
/// per stage and partition; a value the owner did not answer is `-`.
pub fn cluster_status(status: &ClusterStatus, lang: Lang) -> String {
    let live = if status.live.is_empty() {
        Phrase::NoRows.text(lang).to_string()
    } else {
        status.live.join(", ")
    };
    let mut out = line(
        Phrase::ClusterSummary,
        lang,
        &[&status.partitions, &escape(&live)],
    );
    let or_dash = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let rows: Vec<Vec<String>> = status
        .rows
        .iter()
        .map(|row| {
            vec![
                labels::text(CodeSet::ClusterStage, &row.stage, lang),
                row.partition.to_string(),
                row.owner.clone().unwrap_or_else(|| "-".to_string()),
                or_dash(row.applied_seq),
                or_dash(row.checkpointed_seq),
                row.last_seq.to_string(),
                or_dash(row.lag),
                row.checkpoint_age_s.map_or("-".to_string(), |s| {
                    Phrase::Seconds.fill(lang, &[&format_args!("{s:.1}")])
                }),
            ]
        })
        .collect();
    out += &table(
        &[
            Phrase::StageColumn,
            Phrase::PartitionColumn,
            Phrase::OwnerColumn,
            Phrase::AppliedColumn,
            Phrase::CheckpointedColumn,
            Phrase::LastSeqColumn,
            Phrase::LagColumn,
            Phrase::CheckpointAgeColumn,
        ],
        lang,
        &rows,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_escaping_twice_changes_nothing() {
        assert!(matches!(escape("S1-日本"), Cow::Borrowed("S1-日本")));
        assert_eq!(escape("S\u{1b}[31mRED"), r"S\u{1b}[31mRED");
        assert_eq!(
            escape("a\nb\tc\r\u{7f}\u{9b}"),
            r"a\u{a}b\u{9}c\u{d}\u{7f}\u{9b}"
        );
        assert_eq!(escape("x\u{202e}y"), r"x\u{202e}y");
        assert_eq!(
            terminal_text("a\u{1b}]0;t\u{7}\nb\n"),
            "a\\u{1b}]0;t\\u{7}\nb\n"
        );
        let once = escape("\u{1b}[2J\n");
        assert_eq!(escape(&once), once);
        assert_eq!(terminal_text(&once), once);
    }

    #[test]
    fn log_lines_keep_colour_codes_only_on_a_terminal() {
        let line =
            "\u{1b}[2mtime\u{1b}[0m \u{1b}[34;1mDEBUG\u{1b}[0m path=/a\u{1b}]0;t\u{7}\u{1b}[2J\n";
        assert_eq!(
            log_text(line, true),
            "\u{1b}[2mtime\u{1b}[0m \u{1b}[34;1mDEBUG\u{1b}[0m path=/a\\u{1b}]0;t\\u{7}\\u{1b}[2J\n"
        );
        assert!(!log_text(line, false).contains('\u{1b}'));
        assert_eq!(log_text("plain\n", true), "plain\n");
        assert_eq!(log_text("\u{1b}[", true), "\\u{1b}[");
    }

    #[test]
    fn chinese_cells_are_measured_in_display_columns() {
        let rows = vec![
            vec!["扣款".to_string(), "1".to_string()],
            vec!["ab".to_string(), "2".to_string()],
        ];
        let text = text_table(&["类型", "N"], &rows);
        // Two spaces, the first column (4 columns wide: two Chinese
        // characters), two spaces: the second starts at column 8 on every
        // line.
        for line in text.lines() {
            let (head, _) = line.rsplit_once(' ').unwrap();
            assert_eq!(display_width(head) + 1, 8, "{text}");
        }
    }

    #[test]
    fn a_table_stays_aligned_when_a_cell_holds_control_characters() {
        let rows = vec![
            vec!["O\u{1b}[2J".to_string(), "1".to_string()],
            vec!["O1".to_string(), "2".to_string()],
        ];
        let text = text_table(&["ORDER", "N"], &rows);
        let columns: Vec<usize> = text.lines().map(|l| l.rfind(' ').unwrap()).collect();
        assert!(columns.windows(2).all(|w| w[0] == w[1]), "{text}");
        assert!(!text.contains('\u{1b}'));
    }

    /// `penalty cluster status` in both languages, compared with
    /// `tests/cli/cluster-status.<lang>.golden` (rewritten by
    /// `UPDATE_EXPECT=1`): every stage has its label, and the Chinese table
    /// lines up by display width.
    #[test]
    fn golden_cluster_status_in_english_and_chinese() {
        use penalty_cluster::node::PartitionStatus;
        use penalty_cluster::wire::Stage;
        let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
        let mut rows = Vec::new();
        for stage in Stage::ALL {
            assert!(
                labels::find(CodeSet::ClusterStage, stage.name()).is_some(),
                "the stage {} has no label",
                stage.name()
            );
            for partition in 0..2u32 {
                let answered = partition == 0;
                rows.push(PartitionStatus {
                    stage: stage.name().to_string(),
                    partition,
                    owner: answered.then(|| "node-a".to_string()),
                    applied_seq: answered.then_some(1200),
                    checkpointed_seq: answered.then_some(1180),
                    last_seq: 1234,
                    lag: answered.then_some(54),
                    checkpoint_age_s: answered.then_some(2.25),
                });
            }
        }
        let status = ClusterStatus {
            partitions: 2,
            live: vec!["node-a".to_string(), "node-b".to_string()],
            rows,
        };
        let empty = ClusterStatus {
            partitions: 2,
            live: Vec::new(),
            rows: Vec::new(),
        };
        let mut failed = Vec::new();
        for lang in [Lang::En, Lang::Zh] {
            let actual = cluster_status(&status, lang) + &cluster_status(&empty, lang);
            let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("tests/cli/cluster-status.{}.golden", lang.tag()));
            if update {
                std::fs::write(&golden, &actual).unwrap();
            } else if std::fs::read_to_string(&golden).ok().as_deref() != Some(actual.as_str()) {
                failed.push(format!("{}:\n{actual}", golden.display()));
            }
        }
        assert!(
            failed.is_empty(),
            "the cluster status differs (rerun with UPDATE_EXPECT=1 and review the diff if the change is intended):\n{}",
            failed.join("\n")
        );
    }
}

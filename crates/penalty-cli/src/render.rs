//! Human-readable output: aligned tables and plain sentences. The JSON output
//! is the reports themselves; this module only reads them.

use std::borrow::Cow;
use std::fmt::Write as _;

use penalty_core::explain::{at_risk_line, yuan};
use penalty_core::{
    AtRiskReport, DeductionReport, Notice, OrderReport, Orphan, Policy, PostingKind,
    PostingsReport, ShopReport,
};
use penalty_store::VerifyReport;

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

/// Left-aligned columns separated by two spaces, a header row first.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    // Cells are escaped before they are measured, so that columns stay
    // aligned when a value holds control characters.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| escape(cell).into_owned()).collect())
        .collect();
    let rows = &rows;
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::from("  ");
        for (i, cell) in cells.iter().enumerate() {
            text += cell;
            if i + 1 < cells.len() {
                text += &" ".repeat(widths[i] - cell.chars().count() + 2);
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

fn rate(rate: Option<f64>) -> String {
    match rate {
        Some(r) => format!("{:.1}%", r * 100.0),
        None => "n/a (nothing due)".into(),
    }
}

fn deduction_rows(deductions: &[DeductionReport]) -> Vec<Vec<String>> {
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
                d.status.as_str().to_string(),
            ]
        })
        .collect()
}

const DEDUCTION_HEADER: &[&str] = &[
    "JUDGED AT",
    "ORDER",
    "#",
    "SETTLES",
    "AMOUNT",
    "CHARGED",
    "WAIVED",
    "STATUS",
];

pub fn shop(report: &ShopReport) -> String {
    let mut out = shop_summary(report);
    out += &shop_lists(report);
    out
}

/// The figures of a shop (`penalty shop --summary`), without its lists.
pub fn shop_summary(report: &ShopReport) -> String {
    let mut out = format!("Shop {} as of {}\n", escape(&report.shop_id), report.as_of);
    out += &format!(
        "  {} orders, {} judgments, {} violating orders\n",
        report.orders, report.judgments, report.violating_orders
    );
    out += &format!(
        "  charged {}, waived {} (daily cap), pending {}\n",
        yuan(report.charged_fen),
        yuan(report.waived_fen),
        yuan(report.pending_fen)
    );
    out += &format!(
        "  booked {} (the settlement runs' postings so far, R14)\n",
        yuan(report.booked_fen)
    );
    out += &format!("  deposit balance {}", yuan(report.deposit_balance_fen));
    if report.deposit_balance_fen < 0 {
        out += &format!(
            "  SHORTFALL: the deposit is {} short (R12)",
            yuan(-report.deposit_balance_fen)
        );
    }
    out.push('\n');
    let r = &report.rating;
    out += &format!(
        "  rating, last {} days: {} due, {} timed out, timeout rate {}, {} judgments\n",
        r.window_days,
        r.due_orders,
        r.timed_out_orders,
        rate(r.timeout_rate),
        r.timeout_judgments
    );
    out
}

fn shop_lists(report: &ShopReport) -> String {
    let mut out = String::new();
    if let Some(deductions) = &report.deductions {
        out += "\nDeductions (R4, R5)\n";
        if deductions.is_empty() {
            out += "  none\n";
        } else {
            out += &table(DEDUCTION_HEADER, &deduction_rows(deductions));
        }
    }
    out += "\nBanned products (R6)\n";
    if report.banned_products.is_empty() {
        out += "  none\n";
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
        out += &table(&["PRODUCT", "ORDER", "BANNED AT"], &rows);
    }
    out += "\nClosure review (R7)\n";
    if report.closure_review.is_empty() {
        out += "  none\n";
    } else {
        let rows: Vec<Vec<String>> = report
            .closure_review
            .iter()
            .map(|f| vec![f.order_id.clone(), f.flagged_at.clone()])
            .collect();
        out += &table(&["ORDER", "FLAGGED AT"], &rows);
    }
    out
}

/// Where a page of a longer list lies, and how to get the next: nothing
/// when the page is the whole list.
fn page_footer(offset: usize, shown: usize, total: usize) -> String {
    if offset == 0 && shown >= total {
        return String::new();
    }
    if shown == 0 {
        return format!("\n  no rows past {total}; --offset 0 starts again (--json lists all)\n");
    }
    let last = offset + shown;
    let next = if last < total {
        format!("the next page: --offset {last}, all: --limit 0")
    } else {
        "the last page".to_string()
    };
    format!(
        "\n  rows {} to {last} of {total}; {next} (--json lists all)\n",
        offset + 1
    )
}

/// A page of the shop list: `limit` rows (0: all) after `offset`; the
/// deposit shortfall is counted over the whole list.
pub fn shops(reports: &[ShopReport], offset: usize, limit: usize) -> String {
    if reports.is_empty() {
        return "no shops as of this instant\n".into();
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
                rate(r.rating.timeout_rate),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "SHOP",
            "ORDERS",
            "JUDGMENTS",
            "VIOLATING",
            "CHARGED",
            "WAIVED",
            "PENDING",
            "BALANCE",
            "BANS",
            "FLAGS",
            "TIMEOUT RATE",
        ],
        &rows,
    );
    out += &page_footer(offset, rows.len(), reports.len());
    let short = reports.iter().filter(|r| r.deposit_balance_fen < 0).count();
    if short > 0 {
        let noun = if short == 1 { "shop has" } else { "shops have" };
        out += &format!("{short} {noun} a deposit shortfall (negative balance, R12)\n");
    }
    out
}

pub fn order(report: &OrderReport) -> String {
    let mut out = format!(
        "Order {} of shop {} (product {}, {}) as of {}\n",
        escape(&report.order_id),
        escape(&report.shop_id),
        escape(&report.product_id),
        yuan(report.amount_fen),
        report.as_of
    );
    out += &format!("  paid      {}\n", report.paid_at);
    out += &format!("  deadline  {}\n", report.deadline);
    out += &format!("  status    {}", report.status.as_str());
    if let Some(resolved_at) = &report.resolved_at {
        out += &format!(" (resolved at {resolved_at})");
    }
    out.push('\n');
    if report.product_banned {
        out += "  product banned by this order (R6)\n";
    }
    if report.closure_review {
        out += "  flagged its shop for closure review (R7)\n";
    }
    if let Some(closed) = &report.auto_closed_at {
        out += &format!(
            "  auto-closed at {closed}; {} owed to the buyer{} (R8)\n",
            yuan(report.refund_due_fen),
            if report.alternative_refund_required {
                ", by an alternative refund"
            } else {
                ""
            }
        );
    }
    if !report.deductions.is_empty() {
        out += "\nDeductions\n";
        out += &table(DEDUCTION_HEADER, &deduction_rows(&report.deductions));
    }
    out += "\nWhy\n";
    for line in &report.explain {
        out += &format!("  {}\n", escape(line));
    }
    out
}

/// The orders at risk, soonest first, each with what it will cost; at most
/// `limit` of them (0: all).
pub fn at_risk(report: &AtRiskReport, limit: usize) -> String {
    let minutes = report.within_hours.minutes();
    let horizon = match minutes {
        m if m % 1440 == 0 => format!("{} d", m / 1440),
        m if m % 60 == 0 => format!("{} h", m / 60),
        m => format!("{m} min"),
    };
    let count = report.orders.len();
    let mut out = format!(
        "At risk as of {}, within {horizon}: {count} order{}\n",
        report.as_of,
        if count == 1 { "" } else { "s" }
    );
    if count == 0 {
        return out;
    }
    let shown = if limit == 0 { count } else { count.min(limit) };
    let rows: Vec<Vec<String>> = report.orders[..shown]
        .iter()
        .map(|o| {
            vec![
                o.at.clone(),
                o.shop_id.clone(),
                o.order_id.clone(),
                at_risk_line(o),
            ]
        })
        .collect();
    out += &table(&["WHEN", "SHOP", "ORDER", "UNLESS THE SELLER ACTS"], &rows);
    if shown < count {
        out += &format!(
            "{} more not shown: --limit 0 shows all, --json lists all\n",
            count - shown
        );
    }
    out
}

/// A page of a shop's notice feed (R9), and how to read the next page.
pub fn notices(shop_id: &str, notices: &[Notice], limit: usize) -> String {
    let mut out = format!("Notices to shop {} (R9)\n", escape(shop_id));
    if notices.is_empty() {
        out += "  none\n";
        return out;
    }
    let rows: Vec<Vec<String>> = notices
        .iter()
        .map(|n| {
            let what = match &n.posting {
                // R14: a correction of the booked ledger, with its cause.
                Some(p) => format!(
                    "{} {}, run of {}: {}",
                    p.kind.label(),
                    yuan(p.amount_fen),
                    p.run_date,
                    p.cause
                ),
                None => {
                    let charge = n.deduction_fen.map_or_else(
                        || "no deduction".into(),
                        |fen| format!("deduction {}", yuan(fen)),
                    );
                    let revoked = if n.revoked { ", revoked (R11)" } else { "" };
                    format!("judgment: {charge}{revoked}")
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
    out += &table(&["JUDGED AT", "ORDER", "#", "NOTICE"], &rows);
    if notices.len() == limit {
        if let Some(last) = notices.last() {
            out += &format!("more may follow: --after {}\n", escape(&last.cursor));
        }
    }
    out
}

/// What `penalty recover` found and did, then the rebuilt log's check.
pub fn recover(
    recovered: Option<&penalty_store::recover::RecoverReport>,
    log: &VerifyReport,
) -> String {
    let mut out = String::new();
    if let Some(r) = recovered {
        out += &format!(
            "rebuilt sled's part from events.log: {} blocks, {} events, last sequence number {} \
             (acknowledged: {})\n",
            r.blocks, r.events, r.last_seq, r.acknowledged_seq
        );
        if let Some(kept) = &r.damaged_sled {
            out += &format!(
                "the damaged sled directory is kept at {}\n",
                escape(&kept.display().to_string())
            );
        }
        if r.unacknowledged_tail_bytes > 0 {
            out += &format!(
                "{} bytes after the last whole block were never acknowledged; the next append \
                 overwrites them\n",
                r.unacknowledged_tail_bytes
            );
        }
    }
    match &log.problem {
        Some(problem) => {
            out += &format!(
                "PROBLEM at sequence number {}: {}\n",
                problem.seq, problem.detail
            );
        }
        None => {
            out += &format!(
                "log integrity: {} blocks, {} events, every checksum and sequence number is good; \
                 the projections are rebuilt by the next query\n",
                log.blocks, log.events
            );
        }
    }
    out
}

pub fn audit(log: &VerifyReport, checkpoint: Option<(u64, bool)>, orphans: &[Orphan]) -> String {
    let mut out = format!(
        "log: {} blocks, {} events, last sequence number {}\n",
        log.blocks, log.events, log.last_seq
    );
    match &log.problem {
        Some(problem) => {
            out += &format!(
                "PROBLEM at sequence number {}: {}\n  restore the data directory from a backup; the events before it are intact\n",
                problem.seq, problem.detail
            );
        }
        None => out += "log integrity: every block checksum and sequence number is good\n",
    }
    match checkpoint {
        Some((seq, true)) => out += &format!("projections: the checkpoint (at sequence number {seq}) plus the tail equals a replay of the log\n"),
        Some((seq, false)) => out += &format!("PROBLEM: the checkpoint (at sequence number {seq}) disagrees with a replay of the log; run `penalty replay` to rebuild it\n"),
        None => {}
    }
    if orphans.is_empty() {
        out += "orphans (R13): none\n";
    } else {
        out += &format!(
            "orphans (R13): {} orders have events but no paid event yet\n",
            orphans.len()
        );
        let rows: Vec<Vec<String>> = orphans
            .iter()
            .map(|o| vec![o.order_id.clone(), o.events.to_string(), o.first_at.clone()])
            .collect();
        out += &table(&["ORDER", "EVENTS", "FIRST AT"], &rows);
    }
    out
}

/// A shop's booked ledger (R14): one row per posting, corrections with the
/// event that caused them; `offset` and `limit` page the rows.
pub fn postings(report: &PostingsReport, offset: usize, limit: usize) -> String {
    let mut out = format!(
        "Booked ledger of shop {} as of {} (R14)\n  booked {} in {} postings\n\n",
        report.shop_id,
        report.as_of,
        yuan(report.booked_fen),
        report.postings.len()
    );
    if report.postings.is_empty() {
        out += "  no postings yet: a deduction is booked by the run at 00:00 of its settle date\n";
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
                format!("{correction}{}", p.kind.label()),
                yuan(p.amount_fen),
                p.cause.clone(),
            ]
        })
        .collect();
    out += &table(
        &[
            "RUN DATE", "ORDER", "#", "SETTLES", "KIND", "AMOUNT", "CAUSE",
        ],
        &rows,
    );
    out += &page_footer(offset, rows.len(), report.postings.len());
    out += "\n  * a correction of an earlier day's booking (a refund or a late charge)\n";
    out
}

/// The policy's versions (R15), one block each.
pub fn policy(policy: &Policy, offset_text: &str) -> String {
    let mut out = format!("Policy (calendar days in UTC{offset_text})\n");
    for (index, (from, version)) in policy.versions().enumerate() {
        match from {
            None => out += &format!("\nversion {index}: from the beginning of time\n"),
            Some(from) => {
                out += &format!(
                    "\nversion {index}: from {}\n",
                    from.to_rfc3339(policy.utc_offset)
                )
            }
        }
        let rows = vec![
            vec![
                "ship_window_hours".into(),
                version.ship_window_hours.to_string(),
                "R1".into(),
            ],
            vec![
                "rejudge_interval_hours".into(),
                version.rejudge_interval_hours.to_string(),
                "R3".into(),
            ],
            vec![
                "max_judgments_per_order".into(),
                version.max_judgments_per_order.to_string(),
                "R3".into(),
            ],
            vec![
                "deduction_fen".into(),
                format!(
                    "{} ({})",
                    version.deduction_fen,
                    yuan(version.deduction_fen)
                ),
                "R4".into(),
            ],
            vec![
                "max_deductions_per_order".into(),
                version.max_deductions_per_order.to_string(),
                "R4".into(),
            ],
            vec![
                "shop_daily_cap_fen".into(),
                format!(
                    "{} ({})",
                    version.shop_daily_cap_fen,
                    yuan(version.shop_daily_cap_fen)
                ),
                "R5".into(),
            ],
            vec![
                "ban_at_judgment".into(),
                version.ban_at_judgment.to_string(),
                "R6".into(),
            ],
            vec![
                "closure_grace_hours".into(),
                version.closure_grace_hours.to_string(),
                "R7".into(),
            ],
            vec![
                "auto_close_days".into(),
                version.auto_close_days.to_string(),
                "R8".into(),
            ],
            vec![
                "rating_window_days".into(),
                version.rating_window_days.to_string(),
                "R10".into(),
            ],
        ];
        out += &table(&["PARAMETER", "VALUE", "RULE"], &rows);
    }
    out += "\nAn order keeps the version in force at its payment; a settle date's cap is\nthe version at its start; the rating window the version at --as-of (R15).\n";
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
    fn a_table_stays_aligned_when_a_cell_holds_control_characters() {
        let rows = vec![
            vec!["O\u{1b}[2J".to_string(), "1".to_string()],
            vec!["O1".to_string(), "2".to_string()],
        ];
        let text = table(&["ORDER", "N"], &rows);
        let columns: Vec<usize> = text.lines().map(|l| l.rfind(' ').unwrap()).collect();
        assert!(columns.windows(2).all(|w| w[0] == w[1]), "{text}");
        assert!(!text.contains('\u{1b}'));
    }
}

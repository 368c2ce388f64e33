//! The CSV form of the exports (RFC 4180, CRLF line ends): the one home of
//! the columns and lines that `penalty export orders|postings --format csv`
//! writes and the server's downloads (`GET /orders.csv`, `GET
//! /shops/{id}/postings.csv`) send, so that both give the same bytes for the
//! same rows.

use crate::report::{OrderRow, PostingReport};

/// A row of an export with a CSV form.
pub trait CsvRow {
    /// The header line; with `excel`, the extra columns Excel wants.
    fn csv_header(excel: bool) -> String;
    /// This row's line; with `excel`, its extra columns too.
    fn csv_line(&self, excel: bool) -> String;
}

/// The UTF-8 byte-order mark an Excel-shaped CSV starts with, so that Excel
/// reads Chinese text as UTF-8.
pub const EXCEL_BOM: &str = "\u{feff}";

/// One CSV field: quoted when it holds a comma, quote or line break (RFC
/// 4180), and with a leading `'` when a spreadsheet would take it for a
/// formula (a text field starting with `=`, `+`, `-`, `@`, tab or CR).
fn csv_field(text: &str, is_text: bool) -> String {
    let guarded = if is_text && text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// Fields joined into one line, CRLF-ended.
fn line(fields: &[String]) -> String {
    let mut out = fields.join(",");
    out += "\r\n";
    out
}

/// Fen as a plain decimal of yuan (`-10.00`), which a spreadsheet reads as a
/// number.
pub fn yuan_decimal(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// The columns of the orders CSV.
const ORDER_COLUMNS: &[&str] = &[
    "order_id",
    "shop_id",
    "product_id",
    "amount_fen",
    "paid_at",
    "deadline",
    "status",
    "resolved_at",
    "judgments",
    "revoked_judgments",
    "charged_fen",
    "waived_fen",
    "pending_fen",
    "product_banned",
    "closure_review",
    "auto_closed_at",
    "refund_due_fen",
    "alternative_refund_required",
];

/// The yuan columns an Excel-shaped orders CSV adds after the others: the
/// same sums as their `_fen` columns, as decimals a spreadsheet reads.
const ORDER_YUAN_COLUMNS: &[&str] = &[
    "amount_yuan",
    "charged_yuan",
    "waived_yuan",
    "pending_yuan",
    "refund_due_yuan",
];

impl CsvRow for OrderRow {
    fn csv_header(excel: bool) -> String {
        let mut columns = ORDER_COLUMNS.to_vec();
        if excel {
            columns.extend_from_slice(ORDER_YUAN_COLUMNS);
        }
        line(&columns.iter().map(|c| c.to_string()).collect::<Vec<_>>())
    }

    fn csv_line(&self, excel: bool) -> String {
        let row = self;
        let mut fields: Vec<String> = vec![
            csv_field(&row.order_id, true),
            csv_field(&row.shop_id, true),
            csv_field(&row.product_id, true),
            row.amount_fen.to_string(),
            row.paid_at.clone(),
            row.deadline.clone(),
            row.status.as_str().to_string(),
            row.resolved_at.clone().unwrap_or_default(),
            row.judgments.to_string(),
            row.revoked_judgments.to_string(),
            row.charged_fen.to_string(),
            row.waived_fen.to_string(),
            row.pending_fen.to_string(),
            row.product_banned.to_string(),
            row.closure_review.to_string(),
            row.auto_closed_at.clone().unwrap_or_default(),
            row.refund_due_fen.to_string(),
            row.alternative_refund_required.to_string(),
        ];
        if excel {
            fields.extend(
                [
                    row.amount_fen,
                    row.charged_fen,
                    row.waived_fen,
                    row.pending_fen,
                    row.refund_due_fen,
                ]
                .map(yuan_decimal),
            );
        }
        line(&fields)
    }
}

/// The postings CSV has its yuan column in every form: `excel` changes
/// nothing but the byte-order mark, which the writer adds.
impl CsvRow for PostingReport {
    fn csv_header(_excel: bool) -> String {
        "run_date,shop_id,order_id,judgment,judged_at,settle_date,kind,amount_yuan,amount_fen,cause\r\n"
            .to_string()
    }

    fn csv_line(&self, _excel: bool) -> String {
        let p = self;
        line(&[
            p.run_date.clone(),
            csv_field(&p.shop_id, true),
            csv_field(&p.order_id, true),
            p.judgment.to_string(),
            p.judged_at.clone(),
            p.settle_date.clone(),
            p.kind.as_str().to_string(),
            yuan_decimal(p.amount_fen),
            p.amount_fen.to_string(),
            csv_field(&p.cause, true),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_guarded_against_formulas() {
        assert_eq!(csv_field("plain", true), "plain");
        assert_eq!(csv_field("a,b", true), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"", true), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=SUM(A1)", true), "'=SUM(A1)");
        assert_eq!(csv_field("-5", false), "-5");
        assert_eq!(csv_field("两行\n文字", true), "\"两行\n文字\"");
    }

    #[test]
    fn yuan_decimals_keep_two_places_and_the_sign() {
        assert_eq!(yuan_decimal(0), "0.00");
        assert_eq!(yuan_decimal(1_005), "10.05");
        assert_eq!(yuan_decimal(-7), "-0.07");
        assert_eq!(
            yuan_decimal(i64::MIN),
            "-92233720368547758.08",
            "the most negative fen has no positive counterpart in i64"
        );
    }

    #[test]
    fn the_excel_header_adds_the_yuan_columns_after_the_others() {
        let plain = OrderRow::csv_header(false);
        let excel = OrderRow::csv_header(true);
        assert!(excel.starts_with(plain.trim_end()));
        assert!(excel.trim_end().ends_with("refund_due_yuan"));
        assert_eq!(plain.matches(',').count() + 1, ORDER_COLUMNS.len());
    }
}

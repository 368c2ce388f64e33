//! Human labels, in English and Chinese (zh-CN), for every code a person can
//! see: order and deduction statuses, event types, what comes next for an
//! order at risk, posting kinds and reject reasons. The JSON reports keep the
//! codes of CLI.md and EVENTS.md; the CLI's tables and the dashboard show
//! these labels instead, from this one table. The words and sentences
//! around them (headings, summaries, advice) are [`phrases`].

use serde::Serialize;

pub mod phrases;

pub use phrases::Phrase;

/// A language of the labels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Lang {
    /// English, the default.
    #[default]
    #[serde(rename = "en")]
    En,
    /// Simplified Chinese (zh-CN).
    #[serde(rename = "zh-CN")]
    Zh,
}

impl Lang {
    /// The language of a locale or language tag: `zh`, `zh-CN`, `zh_CN.UTF-8`
    /// are Chinese; anything else is English.
    pub fn from_tag(tag: &str) -> Lang {
        let tag = tag.trim().to_ascii_lowercase();
        if tag == "zh" || tag.starts_with("zh-") || tag.starts_with("zh_") {
            Lang::Zh
        } else {
            Lang::En
        }
    }

    /// The language a tag names, for a choice that must be one of the two
    /// (`--lang`): `en`, `en-US`, `en_GB.UTF-8` are English, `zh`, `zh-CN`,
    /// `zh_CN.UTF-8` Chinese (any case); anything else (`fr`, `C`, `*`)
    /// names neither.
    pub fn parse(tag: &str) -> Option<Lang> {
        let lower = tag.trim().to_ascii_lowercase();
        if Lang::from_tag(&lower) == Lang::Zh {
            Some(Lang::Zh)
        } else if lower == "en" || lower.starts_with("en-") || lower.starts_with("en_") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The tag of the language, as `--lang` and `Accept-Language` write it.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// The language an HTTP `Accept-Language` header asks for (RFC 9110
    /// 12.5.4): the range of the highest weight (the first of equal ones)
    /// that is Chinese or English; a range with `q=0` is refused, a
    /// malformed weight counts as 1, anything else (`*`, `fr`, an empty
    /// header) is English. `zh-CN,zh;q=0.9,en;q=0.8` is Chinese;
    /// `en-US,zh;q=0.5` is English.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for range in header.split(',') {
            let mut parts = range.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let weight = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .map(|q| q.trim().parse::<f32>().unwrap_or(1.0))
                .next()
                .unwrap_or(1.0);
            let Some(lang) = Lang::parse(tag) else {
                continue;
            };
            if weight <= 0.0 {
                continue;
            }
            if best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, lang));
            }
        }
        best.map_or(Lang::En, |(_, lang)| lang)
    }
}

/// Which set of codes a code belongs to: `refunded` is an order status and an
/// event type, labelled differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeSet {
    /// `status` of an order report.
    OrderStatus,
    /// `status` of a deduction.
    DeductionStatus,
    /// `type` of an event.
    EventType,
    /// `next` of an order at risk.
    NextStep,
    /// `kind` of a posting (R14).
    PostingKind,
    /// `reason` of a rejected line (EVENTS.md).
    RejectReason,
    /// `stage` of a cluster partition (`penalty cluster status`).
    ClusterStage,
}

impl CodeSet {
    /// Every set, for the test that each has its labels.
    pub const ALL: &'static [CodeSet] = &[
        CodeSet::OrderStatus,
        CodeSet::DeductionStatus,
        CodeSet::EventType,
        CodeSet::NextStep,
        CodeSet::PostingKind,
        CodeSet::RejectReason,
        CodeSet::ClusterStage,
    ];
}

/// One code with its labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Label {
    /// The set the code belongs to.
    pub set: CodeSet,
    /// The code, as in the JSON reports.
    pub code: &'static str,
    /// The English label.
    pub en: &'static str,
    /// The Chinese label.
    #[serde(rename = "zh-CN")]
    pub zh: &'static str,
}

impl Label {
    /// The label in `lang`.
    pub fn text(&self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.en,
            Lang::Zh => self.zh,
        }
    }
}

const fn label(set: CodeSet, code: &'static str, en: &'static str, zh: &'static str) -> Label {
    Label { set, code, en, zh }
}

use CodeSet::*;

/// Every code with its labels, one line each (kept as a table by hand).
#[rustfmt::skip]
pub const LABELS: &[Label] = &[
    label(OrderStatus, "awaiting_shipment", "awaiting shipment", "待发货"),
    label(OrderStatus, "shipped", "shipped", "已发货"),
    label(OrderStatus, "refunded", "refunded", "已退款"),
    label(OrderStatus, "auto_closed", "closed automatically", "已自动关闭"),
    label(DeductionStatus, "pending", "pending", "待结算"),
    label(DeductionStatus, "charged", "charged", "已扣除"),
    label(DeductionStatus, "partial", "charged in part (daily cap)", "部分扣除（每日上限）"),
    label(DeductionStatus, "waived", "waived (daily cap)", "已免除（每日上限）"),
    label(DeductionStatus, "revoked", "revoked on appeal", "申诉撤销"),
    label(EventType, "paid", "paid", "买家付款"),
    label(EventType, "shipped", "shipped", "发货"),
    label(EventType, "tracking_uploaded", "tracking number uploaded", "上传运单号"),
    label(EventType, "tracking_rejected", "tracking number rejected", "运单号被驳回"),
    label(EventType, "refunded", "refund", "退款"),
    label(EventType, "refund_failed", "refund failed", "退款失败"),
    label(EventType, "judgment_revoked", "judgment revoked (appeal upheld)", "判罚撤销（申诉成立）"),
    label(EventType, "deposit_topped_up", "deposit topped up", "保证金充值"),
    label(NextStep, "judgment", "shipping-timeout judgment", "发货超时判罚"),
    label(NextStep, "closure_review", "closure review flag", "关店审查标记"),
    label(NextStep, "auto_close", "automatic close and refund", "自动关闭并退款"),
    label(PostingKind, "charge", "charge", "扣款"),
    label(PostingKind, "refund", "refund to the deposit", "退回保证金"),
    label(PostingKind, "late_charge", "late charge", "补扣"),
    label(RejectReason, "invalid_json", "not valid JSON", "不是有效的 JSON"),
    label(RejectReason, "line_too_long", "line too long", "行过长"),
    label(RejectReason, "unknown_type", "unknown event type", "未知事件类型"),
    label(RejectReason, "missing_field", "a required field is missing", "缺少必填字段"),
    label(RejectReason, "invalid_field", "a field has an invalid value", "字段值无效"),
    label(RejectReason, "event_id_conflict", "event id reused with other content", "事件 ID 重复但内容不同"),
    label(RejectReason, "order_already_paid", "order already paid", "订单已付款"),
    label(ClusterStage, "ids", "ids", "事件ID"),
    label(ClusterStage, "orders", "orders", "订单"),
    label(ClusterStage, "shops", "shops", "店铺"),
];

/// The label of `code` in `set`, or `None` for a code this table lacks. A
/// reject reason's field (`missing_field:order_id`) is not part of its code.
pub fn find(set: CodeSet, code: &str) -> Option<&'static Label> {
    let code = code.split(':').next().unwrap_or(code);
    LABELS.iter().find(|l| l.set == set && l.code == code)
}

/// The label of `code` in `set` in `lang`; the code itself where the table
/// has no label (a test keeps the table complete).
pub fn text(set: CodeSet, code: &str, lang: Lang) -> String {
    find(set, code).map_or_else(|| code.to_string(), |l| l.text(lang).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{DeductionStatus as Deduction, OrderStatus as Status};
    use crate::NextStep as Next;

    #[test]
    fn accept_language_picks_the_heaviest_of_chinese_and_english() {
        for (header, lang) in [
            ("zh-CN,zh;q=0.9,en;q=0.8", Lang::Zh),
            ("zh-CN", Lang::Zh),
            ("zh", Lang::Zh),
            ("en-US,zh;q=0.5", Lang::En),
            ("fr-FR, zh;q=0.4, en;q=0.3", Lang::Zh),
            ("en;q=0.2, zh-Hans;q=0.7", Lang::Zh),
            ("zh;q=0, en", Lang::En),
            ("zh;q=0", Lang::En),
            ("zh;q=x", Lang::Zh),
            ("*", Lang::En),
            ("fr", Lang::En),
            ("", Lang::En),
            (",;;q=,", Lang::En),
        ] {
            assert_eq!(Lang::from_accept_language(header), lang, "{header:?}");
        }
    }

    #[test]
    fn every_code_of_the_reports_has_both_labels() {
        let statuses = [
            Status::AwaitingShipment,
            Status::Shipped,
            Status::Refunded,
            Status::AutoClosed,
        ];
        for s in statuses {
            assert!(find(OrderStatus, s.as_str()).is_some(), "{}", s.as_str());
        }
        let deductions = [
            Deduction::Pending,
            Deduction::Charged,
            Deduction::Partial,
            Deduction::Waived,
            Deduction::Revoked,
        ];
        for d in deductions {
            assert!(
                find(DeductionStatus, d.as_str()).is_some(),
                "{}",
                d.as_str()
            );
        }
        for n in [Next::Judgment, Next::ClosureReview, Next::AutoClose] {
            assert!(find(NextStep, n.as_str()).is_some(), "{}", n.as_str());
        }
        // The eight types of EVENTS.md.
        for t in [
            "paid",
            "shipped",
            "tracking_uploaded",
            "tracking_rejected",
            "refunded",
            "refund_failed",
            "judgment_revoked",
            "deposit_topped_up",
        ] {
            assert!(find(EventType, t).is_some(), "{t}");
        }
        for reject in [
            crate::Reject::InvalidJson,
            crate::Reject::LineTooLong,
            crate::Reject::UnknownType,
            crate::Reject::MissingField("order_id"),
            crate::Reject::InvalidField("at"),
            crate::Reject::EventIdConflict,
            crate::Reject::OrderAlreadyPaid,
        ] {
            assert!(
                find(RejectReason, &reject.code()).is_some(),
                "{}",
                reject.code()
            );
        }
        for label in LABELS {
            assert!(
                !label.en.trim().is_empty(),
                "{} has no English label",
                label.code
            );
            assert!(
                !label.zh.trim().is_empty(),
                "{} has no Chinese label",
                label.code
            );
            assert!(!label.zh.is_ascii(), "{} has no Chinese label", label.code);
            assert_ne!(label.en, label.zh, "{}", label.code);
        }
        for set in CodeSet::ALL {
            assert!(LABELS.iter().any(|l| l.set == *set), "{set:?} has no label");
        }
        // The posting kinds of R14, from their enum.
        for kind in [
            crate::PostingKind::Charge,
            crate::PostingKind::Refund,
            crate::PostingKind::LateCharge,
        ] {
            assert!(
                find(PostingKind, kind.as_str()).is_some(),
                "{}",
                kind.as_str()
            );
        }
    }

    #[test]
    fn codes_are_unique_within_their_set() {
        for (i, a) in LABELS.iter().enumerate() {
            for b in &LABELS[i + 1..] {
                assert!(a.set != b.set || a.code != b.code, "{} twice", a.code);
            }
        }
    }

    #[test]
    fn lang_flag_values_name_one_language_or_none() {
        for (tag, lang) in [
            ("en", Some(Lang::En)),
            ("EN-us", Some(Lang::En)),
            ("en_GB.UTF-8", Some(Lang::En)),
            ("zh-CN", Some(Lang::Zh)),
            ("zh", Some(Lang::Zh)),
            ("zh_CN.UTF-8", Some(Lang::Zh)),
            ("fr", None),
            ("C", None),
            ("english", None),
            ("", None),
        ] {
            assert_eq!(Lang::parse(tag), lang, "{tag:?}");
        }
        assert_eq!(Lang::parse(Lang::Zh.tag()), Some(Lang::Zh));
        assert_eq!(Lang::parse(Lang::En.tag()), Some(Lang::En));
    }

    #[test]
    fn locales_name_their_language() {
        for zh in ["zh", "zh-CN", "zh_CN.UTF-8", "ZH-hans"] {
            assert_eq!(Lang::from_tag(zh), Lang::Zh, "{zh}");
        }
        for en in ["", "C", "C.UTF-8", "en_US.UTF-8", "zhx", "POSIX"] {
            assert_eq!(Lang::from_tag(en), Lang::En, "{en}");
        }
    }
}

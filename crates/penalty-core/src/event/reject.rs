//! [`Reject`]: why a line is refused, as the reason codes of EVENTS.md.

use super::types::{EventType, MAX_LINE_BYTES};
use crate::labels::{Lang, Phrase};

/// Why a line was rejected: the reason codes of EVENTS.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Not a JSON object (an empty line included).
    InvalidJson,
    /// Longer than [`MAX_LINE_BYTES`].
    LineTooLong,
    /// `type` names no known event type.
    UnknownType,
    /// A required field is absent.
    MissingField(&'static str),
    /// A field has the wrong type, a bad timestamp, or is out of range.
    InvalidField(&'static str),
    /// The `event_id` is in the log with other content.
    EventIdConflict,
    /// The order already has a `paid` event under another `event_id`.
    OrderAlreadyPaid,
}

impl Reject {
    /// The reason code as written to the rejects file.
    pub fn code(&self) -> String {
        match self {
            Reject::InvalidJson => "invalid_json".into(),
            Reject::LineTooLong => "line_too_long".into(),
            Reject::UnknownType => "unknown_type".into(),
            Reject::MissingField(name) => format!("missing_field:{name}"),
            Reject::InvalidField(name) => format!("invalid_field:{name}"),
            Reject::EventIdConflict => "event_id_conflict".into(),
            Reject::OrderAlreadyPaid => "order_already_paid".into(),
        }
    }

    /// A sentence in English saying what is wrong and how to fix it, for
    /// humans: [`Reject::hint_in`] in [`Lang::En`].
    pub fn hint(&self) -> String {
        self.hint_in(Lang::En)
    }

    /// A sentence saying what is wrong and how to fix it, in `lang`; its
    /// words are [`Phrase`]s, like the rest of the human output.
    pub fn hint_in(&self, lang: Lang) -> String {
        match self {
            Reject::InvalidJson => Phrase::RejectInvalidJson.text(lang).into(),
            Reject::LineTooLong => Phrase::RejectLineTooLong.fill(lang, &[&MAX_LINE_BYTES]),
            Reject::UnknownType => Phrase::RejectUnknownType
                .fill(lang, &[&EventType::ALL.map(EventType::name).join(", ")]),
            Reject::MissingField(name) => Phrase::RejectMissingField.fill(lang, &[name]),
            Reject::InvalidField(name) => Phrase::RejectInvalidField.fill(lang, &[name]),
            Reject::EventIdConflict => Phrase::RejectEventIdConflict.text(lang).into(),
            Reject::OrderAlreadyPaid => Phrase::RejectOrderAlreadyPaid.text(lang).into(),
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The English hints are the sentences the rejects file has always
    /// carried (scripts may match them); each has a Chinese rendering that
    /// keeps the field it names.
    #[test]
    fn hints_keep_their_english_and_have_chinese() {
        let types = EventType::ALL.map(EventType::name).join(", ");
        let cases = [
            (Reject::InvalidJson, "the line is not a JSON object; write one event object per line".to_string()),
            (Reject::LineTooLong, format!("the line is longer than {MAX_LINE_BYTES} bytes; an event is far smaller, so check for a missing line break")),
            (Reject::UnknownType, format!("`type` must be one of {types}")),
            (Reject::MissingField("order_id"), "add the required field `order_id`".to_string()),
            (Reject::InvalidField("at"), "`at` has the wrong type or is out of range; see EVENTS.md for its format".to_string()),
            (Reject::EventIdConflict, "this event_id is already in the log with other content; give a new event a new event_id".to_string()),
            (Reject::OrderAlreadyPaid, "this order already has a paid event (the first one received is kept)".to_string()),
        ];
        for (reject, english) in cases {
            assert_eq!(reject.hint(), english);
            assert_eq!(reject.hint_in(Lang::En), english);
            let chinese = reject.hint_in(Lang::Zh);
            assert!(!chinese.is_ascii(), "{reject:?}: {chinese}");
            assert!(!chinese.contains('{'), "{reject:?}: {chinese}");
        }
        assert!(Reject::MissingField("order_id")
            .hint_in(Lang::Zh)
            .contains("`order_id`"));
        assert!(Reject::InvalidField("at")
            .hint_in(Lang::Zh)
            .contains("`at`"));
        assert!(Reject::UnknownType.hint_in(Lang::Zh).contains(&types));
        assert!(Reject::LineTooLong
            .hint_in(Lang::Zh)
            .contains(&MAX_LINE_BYTES.to_string()));
    }
}

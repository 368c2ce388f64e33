//! [`Reject`]: why a line is refused, as the reason codes of EVENTS.md.

use super::types::{EventType, MAX_LINE_BYTES};

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

    /// A sentence saying what is wrong and how to fix it, for humans.
    pub fn hint(&self) -> String {
        match self {
            Reject::InvalidJson => "the line is not a JSON object; write one event object per line".into(),
            Reject::LineTooLong => format!("the line is longer than {MAX_LINE_BYTES} bytes; an event is far smaller, so check for a missing line break"),
            Reject::UnknownType => format!("`type` must be one of {}", EventType::ALL.map(EventType::name).join(", ")),
            Reject::MissingField(name) => format!("add the required field `{name}`"),
            Reject::InvalidField(name) => format!("`{name}` has the wrong type or is out of range; see EVENTS.md for its format"),
            Reject::EventIdConflict => "this event_id is already in the log with other content; give a new event a new event_id".into(),
            Reject::OrderAlreadyPaid => "this order already has a paid event (the first one received is kept)".into(),
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.code())
    }
}

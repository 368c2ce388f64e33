//! Events: the JSON Lines format of EVENTS.md, parsed and validated.
//!
//! [`parse_line`] turns one line of input into a typed [`Event`] plus the
//! line's canonical JSON (keys sorted, no insignificant white space), or into a
//! [`Reject`] carrying one of the reason codes of EVENTS.md. It never panics.
//! Two lines are "the same content" exactly when their canonical forms are
//! equal byte for byte, which is what "equal as parsed JSON values" means.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::time::Instant;

/// The longest line ingest accepts (EVENTS.md): 64 KiB, line ending excluded.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// The longest identifier (`order_id`, `shop_id`, `product_id`, `tracking_no`).
pub const MAX_ID_BYTES: usize = 128;
/// Judgment numbers a `judgment_revoked` event may name (EVENTS.md).
pub const MAX_REVOCABLE_JUDGMENT: u8 = 3;

/// The `type` of an event (EVENTS.md): the one list of event types, with
/// each type's name and its code in the compact form. The codes are part of
/// the log's format (every compact form starts with one), so they never
/// change; the declaration order is the code order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum EventType {
    /// `paid`, code 0.
    Paid = 0,
    /// `shipped`, code 1.
    Shipped = 1,
    /// `tracking_uploaded`, code 2.
    TrackingUploaded = 2,
    /// `tracking_rejected`, code 3.
    TrackingRejected = 3,
    /// `refunded`, code 4.
    Refunded = 4,
    /// `refund_failed`, code 5.
    RefundFailed = 5,
    /// `judgment_revoked`, code 6.
    JudgmentRevoked = 6,
    /// `deposit_topped_up`, code 7.
    DepositToppedUp = 7,
}

impl EventType {
    /// Every type, in code order.
    pub const ALL: [EventType; 8] = [
        EventType::Paid,
        EventType::Shipped,
        EventType::TrackingUploaded,
        EventType::TrackingRejected,
        EventType::Refunded,
        EventType::RefundFailed,
        EventType::JudgmentRevoked,
        EventType::DepositToppedUp,
    ];

    /// The code of the compact form.
    pub const fn as_code(self) -> u8 {
        self as u8
    }

    /// The type of a compact form's code; `None` for a code no type has.
    pub fn from_code(code: u8) -> Option<EventType> {
        EventType::ALL.get(usize::from(code)).copied()
    }

    /// The `type` field's value.
    pub const fn name(self) -> &'static str {
        match self {
            EventType::Paid => "paid",
            EventType::Shipped => "shipped",
            EventType::TrackingUploaded => "tracking_uploaded",
            EventType::TrackingRejected => "tracking_rejected",
            EventType::Refunded => "refunded",
            EventType::RefundFailed => "refund_failed",
            EventType::JudgmentRevoked => "judgment_revoked",
            EventType::DepositToppedUp => "deposit_topped_up",
        }
    }

    /// The type named `name` (the `type` field's text); `None` for an
    /// unknown type.
    pub fn from_name(name: &[u8]) -> Option<EventType> {
        Some(match name {
            b"paid" => EventType::Paid,
            b"shipped" => EventType::Shipped,
            b"tracking_uploaded" => EventType::TrackingUploaded,
            b"tracking_rejected" => EventType::TrackingRejected,
            b"refunded" => EventType::Refunded,
            b"refund_failed" => EventType::RefundFailed,
            b"judgment_revoked" => EventType::JudgmentRevoked,
            b"deposit_topped_up" => EventType::DepositToppedUp,
            _ => return None,
        })
    }
}

/// An event's kind as flat fields: its type and every field some type has,
/// the fields its type lacks empty or zero. The compact encodings (the
/// stored form, the scanner's output, a replay's buffer) hold kinds this
/// way, so that each turns into a [`KindRef`] and back through one match
/// ([`KindFields::to_kind_ref`], [`KindRef::fields`]). `T` is the text of
/// an identifier: `&str`, or bytes already checked as UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindFields<T> {
    /// The type.
    pub event_type: EventType,
    /// `order_id`, for every type but `deposit_topped_up`.
    pub order_id: T,
    /// `shop_id`, for `paid` and `deposit_topped_up`.
    pub shop_id: T,
    /// `product_id`, for `paid`.
    pub product_id: T,
    /// `tracking_no`, for `shipped`, `tracking_uploaded`, `tracking_rejected`.
    pub tracking_no: T,
    /// `amount_fen`, for `paid`, `refunded` and `deposit_topped_up`.
    pub amount_fen: i64,
    /// `judgment`, for `judgment_revoked`.
    pub judgment: u8,
    /// `ship_by`, for `paid`.
    pub ship_by: Option<Instant>,
}

impl<T: Default> KindFields<T> {
    /// A kind of type `event_type` with every field empty.
    pub fn empty(event_type: EventType) -> KindFields<T> {
        KindFields {
            event_type,
            order_id: T::default(),
            shop_id: T::default(),
            product_id: T::default(),
            tracking_no: T::default(),
            amount_fen: 0,
            judgment: 0,
            ship_by: None,
        }
    }
}

impl<'a> KindFields<&'a [u8]> {
    /// The fields with identifiers as text; `None` when one is not UTF-8.
    pub fn to_text(self) -> Option<KindFields<&'a str>> {
        let text = |bytes: &'a [u8]| std::str::from_utf8(bytes).ok();
        Some(KindFields {
            event_type: self.event_type,
            order_id: text(self.order_id)?,
            shop_id: text(self.shop_id)?,
            product_id: text(self.product_id)?,
            tracking_no: text(self.tracking_no)?,
            amount_fen: self.amount_fen,
            judgment: self.judgment,
            ship_by: self.ship_by,
        })
    }
}

impl<'a> KindFields<&'a str> {
    /// The kind these fields describe (those of other types are ignored).
    pub fn to_kind_ref(self) -> KindRef<'a> {
        let KindFields {
            event_type,
            order_id,
            shop_id,
            product_id,
            tracking_no,
            amount_fen,
            judgment,
            ship_by,
        } = self;
        match event_type {
            EventType::Paid => KindRef::Paid {
                order_id,
                shop_id,
                product_id,
                amount_fen,
                ship_by,
            },
            EventType::Shipped => KindRef::Shipped {
                order_id,
                tracking_no,
            },
            EventType::TrackingUploaded => KindRef::TrackingUploaded {
                order_id,
                tracking_no,
            },
            EventType::TrackingRejected => KindRef::TrackingRejected {
                order_id,
                tracking_no,
            },
            EventType::Refunded => KindRef::Refunded {
                order_id,
                amount_fen,
            },
            EventType::RefundFailed => KindRef::RefundFailed { order_id },
            EventType::JudgmentRevoked => KindRef::JudgmentRevoked { order_id, judgment },
            EventType::DepositToppedUp => KindRef::DepositToppedUp {
                shop_id,
                amount_fen,
            },
        }
    }
}

/// One validated event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The idempotency key, a UUID as a 128-bit number.
    pub event_id: u128,
    /// When it happened.
    pub at: Instant,
    /// What happened.
    pub kind: EventKind,
}

/// The event types of EVENTS.md with the fields the rules read. Fields the
/// rules do not read (`carrier`, `reason`, unknown extras) stay in the log's
/// JSON and are not copied here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The buyer paid; the order exists from `at` (R1).
    Paid {
        /// The order.
        order_id: String,
        /// The shop that sold it.
        shop_id: String,
        /// The product sold.
        product_id: String,
        /// What the buyer paid.
        amount_fen: i64,
        /// The presale shipping deadline, replacing the default window (R1).
        ship_by: Option<Instant>,
    },
    /// The shop shipped, with a tracking number (R2 a).
    Shipped {
        /// The order.
        order_id: String,
        /// The tracking number.
        tracking_no: String,
    },
    /// A tracking number was uploaded later (R2 a).
    TrackingUploaded {
        /// The order.
        order_id: String,
        /// The tracking number.
        tracking_no: String,
    },
    /// The platform rejected a tracking number: it never counted (R2 a).
    TrackingRejected {
        /// The order.
        order_id: String,
        /// The rejected tracking number.
        tracking_no: String,
    },
    /// Money went back to the buyer (R2 b, R8).
    Refunded {
        /// The order.
        order_id: String,
        /// How much.
        amount_fen: i64,
    },
    /// A refund along the original payment path failed (R8).
    RefundFailed {
        /// The order.
        order_id: String,
    },
    /// An appeal was upheld: judgment `judgment` is void (R11).
    JudgmentRevoked {
        /// The order.
        order_id: String,
        /// Which judgment, 1 to 3.
        judgment: u8,
    },
    /// The shop added money to its deposit (R12).
    DepositToppedUp {
        /// The shop.
        shop_id: String,
        /// How much.
        amount_fen: i64,
    },
}

/// An event's kind with borrowed text: what [`crate::Ledger::apply_ref`]
/// folds, so that a replay from the compact form allocates nothing per event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindRef<'a> {
    /// See [`EventKind::Paid`].
    Paid {
        /// The order.
        order_id: &'a str,
        /// The shop.
        shop_id: &'a str,
        /// The product.
        product_id: &'a str,
        /// What the buyer paid.
        amount_fen: i64,
        /// The presale deadline.
        ship_by: Option<Instant>,
    },
    /// See [`EventKind::Shipped`].
    Shipped {
        /// The order.
        order_id: &'a str,
        /// The tracking number.
        tracking_no: &'a str,
    },
    /// See [`EventKind::TrackingUploaded`].
    TrackingUploaded {
        /// The order.
        order_id: &'a str,
        /// The tracking number.
        tracking_no: &'a str,
    },
    /// See [`EventKind::TrackingRejected`].
    TrackingRejected {
        /// The order.
        order_id: &'a str,
        /// The tracking number.
        tracking_no: &'a str,
    },
    /// See [`EventKind::Refunded`].
    Refunded {
        /// The order.
        order_id: &'a str,
        /// How much.
        amount_fen: i64,
    },
    /// See [`EventKind::RefundFailed`].
    RefundFailed {
        /// The order.
        order_id: &'a str,
    },
    /// See [`EventKind::JudgmentRevoked`].
    JudgmentRevoked {
        /// The order.
        order_id: &'a str,
        /// Which judgment.
        judgment: u8,
    },
    /// See [`EventKind::DepositToppedUp`].
    DepositToppedUp {
        /// The shop.
        shop_id: &'a str,
        /// How much.
        amount_fen: i64,
    },
}

impl<'a> KindRef<'a> {
    /// The kind as flat fields: the inverse of [`KindFields::to_kind_ref`].
    pub fn fields(&self) -> KindFields<&'a str> {
        let ids = |event_type, order_id, tracking_no| KindFields {
            order_id,
            tracking_no,
            ..KindFields::empty(event_type)
        };
        match *self {
            KindRef::Paid {
                order_id,
                shop_id,
                product_id,
                amount_fen,
                ship_by,
            } => KindFields {
                shop_id,
                product_id,
                amount_fen,
                ship_by,
                ..ids(EventType::Paid, order_id, "")
            },
            KindRef::Shipped {
                order_id,
                tracking_no,
            } => ids(EventType::Shipped, order_id, tracking_no),
            KindRef::TrackingUploaded {
                order_id,
                tracking_no,
            } => ids(EventType::TrackingUploaded, order_id, tracking_no),
            KindRef::TrackingRejected {
                order_id,
                tracking_no,
            } => ids(EventType::TrackingRejected, order_id, tracking_no),
            KindRef::Refunded {
                order_id,
                amount_fen,
            } => KindFields {
                amount_fen,
                ..ids(EventType::Refunded, order_id, "")
            },
            KindRef::RefundFailed { order_id } => ids(EventType::RefundFailed, order_id, ""),
            KindRef::JudgmentRevoked { order_id, judgment } => KindFields {
                judgment,
                ..ids(EventType::JudgmentRevoked, order_id, "")
            },
            KindRef::DepositToppedUp {
                shop_id,
                amount_fen,
            } => KindFields {
                shop_id,
                amount_fen,
                ..KindFields::empty(EventType::DepositToppedUp)
            },
        }
    }

    /// The event's type.
    pub fn event_type(&self) -> EventType {
        self.fields().event_type
    }

    /// The order this event belongs to, if it belongs to one.
    pub fn order_id(&self) -> Option<&'a str> {
        match *self {
            KindRef::Paid { order_id, .. }
            | KindRef::Shipped { order_id, .. }
            | KindRef::TrackingUploaded { order_id, .. }
            | KindRef::TrackingRejected { order_id, .. }
            | KindRef::Refunded { order_id, .. }
            | KindRef::RefundFailed { order_id }
            | KindRef::JudgmentRevoked { order_id, .. } => Some(order_id),
            KindRef::DepositToppedUp { .. } => None,
        }
    }

    /// The owned kind: the inverse of [`Event::kind_ref`].
    pub fn to_kind(&self) -> EventKind {
        match *self {
            KindRef::Paid {
                order_id,
                shop_id,
                product_id,
                amount_fen,
                ship_by,
            } => EventKind::Paid {
                order_id: order_id.into(),
                shop_id: shop_id.into(),
                product_id: product_id.into(),
                amount_fen,
                ship_by,
            },
            KindRef::Shipped {
                order_id,
                tracking_no,
            } => EventKind::Shipped {
                order_id: order_id.into(),
                tracking_no: tracking_no.into(),
            },
            KindRef::TrackingUploaded {
                order_id,
                tracking_no,
            } => EventKind::TrackingUploaded {
                order_id: order_id.into(),
                tracking_no: tracking_no.into(),
            },
            KindRef::TrackingRejected {
                order_id,
                tracking_no,
            } => EventKind::TrackingRejected {
                order_id: order_id.into(),
                tracking_no: tracking_no.into(),
            },
            KindRef::Refunded {
                order_id,
                amount_fen,
            } => EventKind::Refunded {
                order_id: order_id.into(),
                amount_fen,
            },
            KindRef::RefundFailed { order_id } => EventKind::RefundFailed {
                order_id: order_id.into(),
            },
            KindRef::JudgmentRevoked { order_id, judgment } => EventKind::JudgmentRevoked {
                order_id: order_id.into(),
                judgment,
            },
            KindRef::DepositToppedUp {
                shop_id,
                amount_fen,
            } => EventKind::DepositToppedUp {
                shop_id: shop_id.into(),
                amount_fen,
            },
        }
    }
}

impl Event {
    /// The kind with borrowed text.
    pub fn kind_ref(&self) -> KindRef<'_> {
        match &self.kind {
            EventKind::Paid {
                order_id,
                shop_id,
                product_id,
                amount_fen,
                ship_by,
            } => KindRef::Paid {
                order_id,
                shop_id,
                product_id,
                amount_fen: *amount_fen,
                ship_by: *ship_by,
            },
            EventKind::Shipped {
                order_id,
                tracking_no,
            } => KindRef::Shipped {
                order_id,
                tracking_no,
            },
            EventKind::TrackingUploaded {
                order_id,
                tracking_no,
            } => KindRef::TrackingUploaded {
                order_id,
                tracking_no,
            },
            EventKind::TrackingRejected {
                order_id,
                tracking_no,
            } => KindRef::TrackingRejected {
                order_id,
                tracking_no,
            },
            EventKind::Refunded {
                order_id,
                amount_fen,
            } => KindRef::Refunded {
                order_id,
                amount_fen: *amount_fen,
            },
            EventKind::RefundFailed { order_id } => KindRef::RefundFailed { order_id },
            EventKind::JudgmentRevoked { order_id, judgment } => KindRef::JudgmentRevoked {
                order_id,
                judgment: *judgment,
            },
            EventKind::DepositToppedUp {
                shop_id,
                amount_fen,
            } => KindRef::DepositToppedUp {
                shop_id,
                amount_fen: *amount_fen,
            },
        }
    }

    /// The order this event belongs to, if it belongs to one.
    pub fn order_id(&self) -> Option<&str> {
        self.kind_ref().order_id()
    }

    /// The `type` field of EVENTS.md.
    pub fn type_name(&self) -> &'static str {
        self.kind_ref().event_type().name()
    }

    /// For a `paid` event, the order it pays for: ingest keeps only the first
    /// `paid` of an order (EVENTS.md, `order_already_paid`).
    pub fn paid_order_id(&self) -> Option<&str> {
        match &self.kind {
            EventKind::Paid { order_id, .. } => Some(order_id),
            _ => None,
        }
    }
}

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

/// A line that passed validation: the event and its canonical JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedLine {
    /// The typed event.
    pub event: Event,
    /// The line as compact JSON with its keys sorted: the form compared for
    /// duplicates, and kept in the log when there is no compact form.
    pub canonical_json: Vec<u8>,
    /// The compact binary form ([`crate::compact`]), when it reproduces
    /// `canonical_json` exactly: what the log keeps instead, decoded without
    /// parsing JSON.
    pub compact: Option<Vec<u8>>,
}

impl ParsedLine {
    /// The line as a [`ParsedRef`].
    pub fn as_parsed(&self) -> ParsedRef<'_> {
        ParsedRef {
            event_id: self.event.event_id,
            payload: match &self.compact {
                Some(compact) => Payload::Compact(compact),
                None => Payload::Json(&self.canonical_json),
            },
            paid_order_id: self.event.paid_order_id().map(str::as_bytes),
        }
    }
}

/// A validated line as the log needs it, borrowed from a [`ParsedLine`] or
/// from [`ParsedLines`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedRef<'a> {
    /// The idempotency key.
    pub event_id: u128,
    /// What the log keeps of the line.
    pub payload: Payload<'a>,
    /// For a `paid` event, the order it pays for.
    pub paid_order_id: Option<&'a [u8]>,
}

/// What the log keeps of a line: its compact form when it has one, else its
/// canonical JSON. Ingest's parser threads build only this: a line's
/// canonical JSON, when the line has a compact form, is regenerated from
/// that form where it is wanted (a duplicate to confirm, an event to show),
/// never written for every line (a sixth of ingest's work).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// The compact form ([`crate::compact`]), which regenerates the line's
    /// canonical JSON exactly.
    Compact(&'a [u8]),
    /// The canonical JSON of a line without a compact form.
    Json(&'a [u8]),
}

impl<'a> Payload<'a> {
    /// The bytes kept.
    pub fn bytes(&self) -> &'a [u8] {
        match *self {
            Payload::Compact(bytes) | Payload::Json(bytes) => bytes,
        }
    }

    /// Whether these are the compact form.
    pub fn is_compact(&self) -> bool {
        matches!(self, Payload::Compact(_))
    }

    /// The canonical JSON: kept, or regenerated from the compact form
    /// (empty if that form is damaged, which its block's checksum rules
    /// out for anything read from the log).
    pub fn canonical_json(&self) -> std::borrow::Cow<'a, [u8]> {
        match *self {
            Payload::Json(json) => std::borrow::Cow::Borrowed(json),
            Payload::Compact(compact) => {
                std::borrow::Cow::Owned(crate::compact::canonical_json(compact).unwrap_or_default())
            }
        }
    }

    /// Whether the two are "the same content" (EVENTS.md): equal canonical
    /// JSON. Two equal compact forms regenerate the same JSON, so they are
    /// the same content without regenerating it (the usual duplicate);
    /// anything else is compared as JSON.
    pub fn same_content(&self, other: &Payload<'_>) -> bool {
        if let (Payload::Compact(a), Payload::Compact(b)) = (self, other) {
            if a == b {
                return true;
            }
        }
        self.canonical_json() == other.canonical_json()
    }

    /// The typed event.
    pub fn event(&self) -> Result<Event, Reject> {
        match *self {
            Payload::Compact(compact) => match crate::compact::decode_ref(compact) {
                Some((event_id, at, kind)) => Ok(Event {
                    event_id,
                    at,
                    kind: kind.to_kind(),
                }),
                None => parse_stored(&self.canonical_json()),
            },
            Payload::Json(json) => parse_stored(json),
        }
    }
}

impl ParsedRef<'_> {
    /// The typed event, rebuilt from what the log keeps. Ingest keeps only
    /// these forms (building every event's owned strings was a third of its
    /// work); a caller that folds the events builds them here.
    pub fn event(&self) -> Result<Event, Reject> {
        self.payload.event()
    }
}

/// What [`ParsedRef`]s are taken from.
pub trait AsParsed {
    /// The line as a [`ParsedRef`].
    fn as_parsed(&self) -> ParsedRef<'_>;
}

impl AsParsed for ParsedLine {
    fn as_parsed(&self) -> ParsedRef<'_> {
        ParsedLine::as_parsed(self)
    }
}

impl AsParsed for ParsedRef<'_> {
    fn as_parsed(&self) -> ParsedRef<'_> {
        *self
    }
}

/// Many validated lines in one buffer: what ingest's parser threads fill.
///
/// Why: a [`ParsedLine`] holds five or six allocations (the event's strings,
/// the canonical JSON, the compact form), each freed on another thread than
/// the one that made it; at a million lines a second that was over a third
/// of ingest's CPU. Here a chunk of lines costs a few growing buffers.
#[derive(Debug, Default)]
pub struct ParsedLines {
    bytes: Vec<u8>,
    lines: Vec<Slot>,
}

/// Where one line's parts lie in [`ParsedLines::bytes`].
#[derive(Clone, Debug)]
struct Slot {
    event_id: u128,
    /// The payload, and whether it is the compact form.
    payload: std::ops::Range<usize>,
    compact: bool,
    paid_order_id: Option<std::ops::Range<usize>>,
}

impl ParsedLines {
    /// Room for `lines` lines of about `bytes` bytes in all.
    pub fn with_capacity(lines: usize, bytes: usize) -> ParsedLines {
        ParsedLines {
            // A payload is at most its line's size (the canonical JSON of
            // a line without a compact form), a paid order's id a few bytes
            // more: the lines' size and a quarter holds them all, so that
            // the buffer never grows (a grown buffer is copied, and keeps
            // up to twice the room it needs).
            bytes: Vec::with_capacity(bytes.saturating_add(bytes / 4)),
            lines: Vec::with_capacity(lines),
        }
    }

    /// Forgets every line and makes room as [`ParsedLines::with_capacity`]
    /// does, keeping the buffers: a reused `ParsedLines` writes into memory
    /// already mapped, where a new one's first writes are page faults.
    pub fn clear_with_room(&mut self, lines: usize, bytes: usize) {
        self.bytes.clear();
        self.lines.clear();
        self.bytes.reserve(bytes.saturating_add(bytes / 4));
        self.lines.reserve(lines);
    }

    /// Validates `line` as [`parse_line`] does; when valid, keeps it and
    /// returns its position.
    pub fn push(&mut self, line: &[u8]) -> Result<usize, Reject> {
        if line.len() > MAX_LINE_BYTES {
            return Err(Reject::LineTooLong);
        }
        let start = self.bytes.len();
        // Read without writing the canonical JSON: a line with a compact
        // form is kept as that form alone.
        let fields = fast::parse_fields(line);
        let read_fast = fields.is_some();
        // Borrowed, not moved: moving the read line (some 200 bytes) into
        // the closure was a copy of it for every line.
        let compact = fields.as_ref().and_then(|parsed| {
            let compact = parsed.encode_compact(&mut self.bytes)?;
            let paid_order_id = (parsed.kind.event_type == EventType::Paid)
                .then(|| self.keep(parsed.kind.order_id));
            Some(Slot {
                event_id: parsed.event_id,
                payload: compact,
                compact: true,
                paid_order_id,
            })
        });
        let slot = match compact {
            Some(slot) => {
                #[cfg(debug_assertions)]
                self.check_regenerates(line, &slot);
                slot
            }
            None => {
                self.bytes.truncate(start);
                // A line the fast path reads but cannot keep compact (an
                // event id not in lower case) is read again for its
                // canonical JSON; any other goes to the reference path.
                let parsed = match read_fast.then(|| fast::parse(line)).flatten() {
                    Some(parsed) => parsed,
                    None => parse_line_slow(line)?,
                };
                let payload = self.keep(&parsed.canonical_json);
                Slot {
                    event_id: parsed.event.event_id,
                    payload,
                    compact: false,
                    paid_order_id: parsed
                        .event
                        .paid_order_id()
                        .map(|order_id| self.keep(order_id.as_bytes())),
                }
            }
        };
        self.lines.push(slot);
        Ok(self.lines.len() - 1)
    }

    /// What release builds take on trust (the property tests of
    /// `compact` hold it over every shape of line): the compact form kept
    /// regenerates the line's canonical JSON exactly.
    #[cfg(debug_assertions)]
    fn check_regenerates(&self, line: &[u8], slot: &Slot) {
        let alone = parse_line(line).expect("a line the fast path read");
        assert!(
            crate::compact::regenerates(&self.bytes[slot.payload.clone()], &alone.canonical_json),
            "the compact form regenerates the canonical JSON of {}",
            String::from_utf8_lossy(line)
        );
    }

    fn keep(&mut self, bytes: &[u8]) -> std::ops::Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        start..self.bytes.len()
    }

    /// The line at `position`, as returned by [`ParsedLines::push`].
    pub fn get(&self, position: usize) -> Option<ParsedRef<'_>> {
        let slot = self.lines.get(position)?;
        let bytes = |range: &std::ops::Range<usize>| self.bytes.get(range.clone());
        let payload = bytes(&slot.payload)?;
        Some(ParsedRef {
            event_id: slot.event_id,
            payload: if slot.compact {
                Payload::Compact(payload)
            } else {
                Payload::Json(payload)
            },
            paid_order_id: slot.paid_order_id.as_ref().and_then(bytes),
        })
    }

    /// The length of a kept line's payload, without building its
    /// [`ParsedRef`]; 0 for a position not kept.
    pub fn payload_len(&self, position: usize) -> usize {
        self.lines
            .get(position)
            .map_or(0, |slot| slot.payload.len())
    }

    /// Lines kept.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether no line is kept.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Parses and validates one line (without its line ending).
pub fn parse_line(line: &[u8]) -> Result<ParsedLine, Reject> {
    if line.len() > MAX_LINE_BYTES {
        return Err(Reject::LineTooLong);
    }
    if let Some(parsed) = fast::parse(line) {
        return Ok(parsed);
    }
    parse_line_slow(line)
}

/// The reference path: a full `serde_json::Value`, validated field by field,
/// re-serialised with sorted keys. Every reject reason comes from here.
fn parse_line_slow(line: &[u8]) -> Result<ParsedLine, Reject> {
    let UniqueKeys(value) = serde_json::from_slice(line).map_err(|_| Reject::InvalidJson)?;
    let Value::Object(object) = value else {
        return Err(Reject::InvalidJson);
    };
    let event = validate_object(&object)?;
    // Serialising a `Value` cannot fail: every key is a string.
    let canonical_json = serde_json::to_vec(&object).map_err(|_| Reject::InvalidJson)?;
    Ok(ParsedLine {
        event,
        canonical_json,
        compact: None,
    })
}

/// A JSON value read by `serde_json` that refuses an object naming a key
/// twice, at any depth (EVENTS.md: such a line is `invalid_json`).
/// `serde_json::Value` keeps the last of the two silently. Keys are compared
/// as read, after unescaping, so `"a"` and `"\u0061"` are the same key. Only
/// the reference path reads through this; the fast path's scanner declines
/// any repeated key with a bit per known key and any unknown key at all, so
/// it never accepts such a line.
struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueKeysVisitor)
            .map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value without repeated keys")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON holds no NaN or infinity, so this is never `Null` for a
        // number `serde_json` read.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom("a key is named twice"));
            }
            let UniqueKeys(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Parses canonical JSON already in the log (no size limit applies: it was
/// checked on the way in).
pub fn parse_stored(json: &[u8]) -> Result<Event, Reject> {
    if let Some(parsed) = fast::parse(json) {
        return Ok(parsed.event);
    }
    let value: Value = serde_json::from_slice(json).map_err(|_| Reject::InvalidJson)?;
    let Value::Object(object) = value else {
        return Err(Reject::InvalidJson);
    };
    validate_object(&object)
}

fn validate_object(object: &Map<String, Value>) -> Result<Event, Reject> {
    let event_id = event_id(object)?;
    let type_name = match object.get("type") {
        None => return Err(Reject::MissingField("type")),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(Reject::InvalidField("type")),
    };
    let at = instant(object, "at")?.ok_or(Reject::MissingField("at"))?;
    let event_type = EventType::from_name(type_name.as_bytes()).ok_or(Reject::UnknownType)?;
    let kind = match event_type {
        EventType::Paid => {
            let ship_by = instant(object, "ship_by")?;
            if ship_by.is_some_and(|ship_by| ship_by < at) {
                return Err(Reject::InvalidField("ship_by"));
            }
            EventKind::Paid {
                order_id: identifier(object, "order_id")?,
                shop_id: identifier(object, "shop_id")?,
                product_id: identifier(object, "product_id")?,
                amount_fen: amount(object, "amount_fen")?,
                ship_by,
            }
        }
        EventType::Shipped | EventType::TrackingUploaded => {
            optional_string(object, "carrier")?;
            let order_id = identifier(object, "order_id")?;
            let tracking_no = identifier(object, "tracking_no")?;
            if event_type == EventType::Shipped {
                EventKind::Shipped {
                    order_id,
                    tracking_no,
                }
            } else {
                EventKind::TrackingUploaded {
                    order_id,
                    tracking_no,
                }
            }
        }
        EventType::TrackingRejected => EventKind::TrackingRejected {
            order_id: identifier(object, "order_id")?,
            tracking_no: identifier(object, "tracking_no")?,
        },
        EventType::Refunded => EventKind::Refunded {
            order_id: identifier(object, "order_id")?,
            amount_fen: amount(object, "amount_fen")?,
        },
        EventType::RefundFailed => EventKind::RefundFailed {
            order_id: identifier(object, "order_id")?,
        },
        EventType::JudgmentRevoked => {
            optional_string(object, "reason")?;
            let order_id = identifier(object, "order_id")?;
            let judgment = match object.get("judgment") {
                None => return Err(Reject::MissingField("judgment")),
                Some(v) => v
                    .as_i64()
                    .filter(|n| (1..=i64::from(MAX_REVOCABLE_JUDGMENT)).contains(n))
                    .ok_or(Reject::InvalidField("judgment"))? as u8,
            };
            EventKind::JudgmentRevoked { order_id, judgment }
        }
        EventType::DepositToppedUp => EventKind::DepositToppedUp {
            shop_id: identifier(object, "shop_id")?,
            amount_fen: amount(object, "amount_fen")?,
        },
    };
    Ok(Event { event_id, at, kind })
}

/// `event_id`: a UUID in the 8-4-4-4-12 hex form, and only that form.
fn event_id(object: &Map<String, Value>) -> Result<u128, Reject> {
    const FIELD: &str = "event_id";
    let text = match object.get(FIELD) {
        None => return Err(Reject::MissingField(FIELD)),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(Reject::InvalidField(FIELD)),
    };
    parse_event_id(text.as_bytes())
        .map(|(id, _)| id)
        .ok_or(Reject::InvalidField(FIELD))
}

/// The id of a UUID in the 8-4-4-4-12 hex form, and whether its hex digits
/// are all lower case (upper case is accepted too, as the `uuid` crate
/// reads it).
fn parse_event_id(bytes: &[u8]) -> Option<(u128, bool)> {
    let bytes: &[u8; 36] = bytes.try_into().ok()?;
    if [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
        return None;
    }
    // The 32 digits, eight at a time (every line has an id, so this runs
    // millions of times): the groups of four are paired into words. The
    // first digit goes to the word's top byte, so that it ends up the most
    // significant.
    let word = |at: usize| {
        u64::from(u32::from_be_bytes([
            bytes[at],
            bytes[at + 1],
            bytes[at + 2],
            bytes[at + 3],
        ]))
    };
    let words = [
        word(0) << 32 | word(4),
        word(9) << 32 | word(14),
        word(19) << 32 | word(24),
        word(28) << 32 | word(32),
    ];
    let mut value: u128 = 0;
    let mut upper = false;
    for word in words {
        let (digits, word_upper) = hex_word(word)?;
        value = value << 32 | u128::from(digits);
        upper |= word_upper;
    }
    Some((value, !upper))
}

/// The value of eight ASCII hex digits, the first in the top byte, and
/// whether any is an upper-case letter; `None` when a byte is not a hex
/// digit. All eight bytes are classified at once: with every byte below
/// 0x80, adding a constant to each byte cannot carry into the next, so the
/// top bit of each byte's sum tells whether the byte is above a bound.
fn hex_word(word: u64) -> Option<(u32, bool)> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    if word & HIGHS != 0 {
        return None;
    }
    // The top bit of each byte at least `low`, and of each at most `high`.
    let at_least = |w: u64, low: u8| w.wrapping_add(ONES * u64::from(0x80 - low)) & HIGHS;
    let at_most = |w: u64, high: u8| !w.wrapping_add(ONES * u64::from(0x7f - high)) & HIGHS;
    let digit = at_least(word, b'0') & at_most(word, b'9');
    // Setting bit 0x20 folds `A`-`F` onto `a`-`f` and moves no other byte
    // into that range.
    let folded = word | (ONES * 0x20);
    let letter = at_least(folded, b'a') & at_most(folded, b'f');
    if digit | letter != HIGHS {
        return None;
    }
    // An upper-case letter is a letter without bit 0x20.
    let upper = letter & ((!word & (ONES * 0x20)) << 2) != 0;
    // A digit's value is its low four bits, a letter's those plus 9.
    let nibbles = (word & (ONES * 0x0f)) + (letter >> 7) * 9;
    // Pack the eight nibbles, the top one first: pairs into bytes, bytes
    // into 16-bit halves, halves into the 32-bit value.
    let bytes = (nibbles | nibbles >> 4) & 0x00ff_00ff_00ff_00ff;
    let halves = (bytes | bytes >> 8) & 0x0000_ffff_0000_ffff;
    let value = (halves | halves >> 16) & 0xffff_ffff;
    Some((value as u32, upper))
}

/// A required identifier: a non-empty string of at most 128 bytes.
fn identifier(object: &Map<String, Value>, field: &'static str) -> Result<String, Reject> {
    match object.get(field) {
        None => Err(Reject::MissingField(field)),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_BYTES => Ok(s.clone()),
        Some(_) => Err(Reject::InvalidField(field)),
    }
}

/// A required amount: a JSON integer from 1 to `i64::MAX` (`1.0` is not one).
fn amount(object: &Map<String, Value>, field: &'static str) -> Result<i64, Reject> {
    match object.get(field) {
        None => Err(Reject::MissingField(field)),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|a| *a >= 1)
            .ok_or(Reject::InvalidField(field)),
        Some(_) => Err(Reject::InvalidField(field)),
    }
}

/// A timestamp. `at` is required (the caller turns `None` into
/// `missing_field`); a JSON `null` for it is `invalid_field` (EVENTS.md), while
/// for the optional `ship_by` a `null` counts as absent.
fn instant(object: &Map<String, Value>, field: &'static str) -> Result<Option<Instant>, Reject> {
    match object.get(field) {
        None => Ok(None),
        Some(Value::Null) if field != "at" => Ok(None),
        Some(Value::String(s)) => Instant::parse_rfc3339(s)
            .map(Some)
            .ok_or(Reject::InvalidField(field)),
        Some(_) => Err(Reject::InvalidField(field)),
    }
}

/// An optional string field (`carrier`, `reason`): absent, `null` or a string.
fn optional_string(object: &Map<String, Value>, field: &'static str) -> Result<(), Reject> {
    match object.get(field) {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(Reject::InvalidField(field)),
    }
}

/// The fast path for ordinary lines, about five times quicker than the
/// reference path: fields are borrowed as raw JSON text, and the canonical
/// form is assembled from them directly. It accepts only lines it can handle
/// exactly as the reference path would: known keys, each used by the event's
/// type, strings without escapes, no `null`, integers as plain digits. Any
/// other line, valid or not, goes to the reference path, which gives the same
/// result or the reject reason. The `fast_and_slow_paths_agree` and
/// `the_scanner_accepts_only_what_the_reference_accepts_alike` tests hold
/// them to that.
mod fast {
    use super::{
        parse_event_id, Event, EventType, KindFields, ParsedLine, MAX_ID_BYTES,
        MAX_REVOCABLE_JUDGMENT,
    };
    use crate::time::Instant;

    // The known keys, numbered in byte order: the order in which the
    // canonical JSON writes them.
    const AMOUNT_FEN: usize = 0;
    const AT: usize = 1;
    const CARRIER: usize = 2;
    const EVENT_ID: usize = 3;
    const JUDGMENT: usize = 4;
    const ORDER_ID: usize = 5;
    const PRODUCT_ID: usize = 6;
    const REASON: usize = 7;
    const SHIP_BY: usize = 8;
    const SHOP_ID: usize = 9;
    const TRACKING_NO: usize = 10;
    const TYPE: usize = 11;

    /// The bit of each key in [`Fields::present`] and in the masks of keys
    /// a type allows.
    const fn bit(key: usize) -> u16 {
        1 << key
    }

    /// The raw JSON text of each known field (a string with its quotes, or
    /// a number's digits), borrowed from the line, and what [`scan`]
    /// already read from the fields every line has.
    #[derive(Default)]
    struct Fields<'a> {
        /// By key number; empty where absent.
        raw: [&'a [u8]; 12],
        /// The keys present, as [`bit`]s.
        present: u16,
        /// The event id, when present.
        event_id: u128,
        /// Whether the event id was written without upper-case digits.
        id_lowercase: bool,
        /// `at`, when it was read in the common shape while scanning.
        at: Option<Instant>,
        /// `amount_fen`, when present.
        amount_fen: i64,
        /// `judgment`, when present.
        judgment: i64,
    }

    impl<'a> Fields<'a> {
        /// The raw text of a key, when present.
        fn get(&self, key: usize) -> Option<&'a [u8]> {
            (self.present & bit(key) != 0).then_some(self.raw[key])
        }
    }

    /// Reads the usual line: one flat object of known keys, each once, whose
    /// values are strings without escapes or plain digit runs. Anything else
    /// (escapes, other numbers, `null`, nesting, unknown or repeated keys,
    /// trailing text) is `None` and left to the reference path, which decides
    /// it; so this accepts only what `serde_json` accepts, with the same raw
    /// texts. It exists because it is several times faster than `serde_json`
    /// on these lines, and parsing is most of ingest's work.
    ///
    /// Values are read as far as their key allows: the event id as a UUID
    /// and `at` in its common shape, right where they lie, and numbers only
    /// for the two keys that take numbers, as positive `i64`s. A value of
    /// another form for these keys would make [`parse_into`] give up
    /// anyway, so giving up here instead changes no answer.
    ///
    /// The fields are read into `fields`, a fresh [`Fields::default`] of the
    /// caller's: returned by value, the struct (some 250 bytes) was copied
    /// out once more for every line.
    fn scan<'a>(bytes: &'a [u8], fields: &mut Fields<'a>) -> Option<()> {
        let mut at = skip_space(bytes, 0);
        if bytes.get(at) != Some(&b'{') {
            return None;
        }
        at = skip_space(bytes, at + 1);
        if bytes.get(at) == Some(&b'}') {
            at += 1;
        } else {
            loop {
                let (key, key_end) = key(bytes, at)?;
                if fields.present & bit(key) != 0 {
                    return None;
                }
                fields.present |= bit(key);
                // The colon usually follows at once.
                at = if bytes.get(key_end) == Some(&b':') {
                    key_end + 1
                } else {
                    let colon = skip_space(bytes, key_end);
                    if bytes.get(colon) != Some(&b':') {
                        return None;
                    }
                    colon + 1
                };
                at = skip_space(bytes, at);
                let value_end = match (key, *bytes.get(at)?) {
                    (EVENT_ID, b'"') => {
                        // The only form accepted is 36 bytes of hex
                        // digits and hyphens, which hold no quote, so the
                        // string ends where that form ends.
                        let end = at + 37;
                        if bytes.get(end) != Some(&b'"') {
                            return None;
                        }
                        let (id, lowercase) = parse_event_id(bytes.get(at + 1..end)?)?;
                        fields.event_id = id;
                        fields.id_lowercase = lowercase;
                        end + 1
                    }
                    (AT, b'"') => match common_instant(bytes, at) {
                        Some((end, instant)) => {
                            fields.at = Some(instant);
                            end
                        }
                        None => string_end(bytes, at)?,
                    },
                    (AMOUNT_FEN | JUDGMENT, b'1'..=b'9') => {
                        let (end, value) = positive(bytes, at)?;
                        if key == AMOUNT_FEN {
                            fields.amount_fen = value;
                        } else {
                            fields.judgment = value;
                        }
                        end
                    }
                    (AMOUNT_FEN | JUDGMENT, _) => return None,
                    (_, b'"') => string_end(bytes, at)?,
                    _ => return None,
                };
                fields.raw[key] = bytes.get(at..value_end)?;
                at = value_end;
                // And a comma or the closing brace usually follows at once.
                if !matches!(bytes.get(at), Some(b',' | b'}')) {
                    at = skip_space(bytes, at);
                }
                match bytes.get(at)? {
                    b',' => at = skip_space(bytes, at + 1),
                    b'}' => {
                        at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        (skip_space(bytes, at) == bytes.len()).then_some(())
    }

    /// The number of the known key whose string starts at `at` and the
    /// position after it; `None` for any other key, and for a key with an
    /// escape, which the reference path reads. The key is told by its first
    /// letter and then compared whole, with its closing quote, as one
    /// constant.
    fn key(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
        let rest = bytes.get(at..)?;
        let known =
            |text: &[u8], key: usize| rest.starts_with(text).then_some((key, at + text.len()));
        match rest.get(1)? {
            b'a' => known(b"\"at\"", AT).or_else(|| known(b"\"amount_fen\"", AMOUNT_FEN)),
            b'c' => known(b"\"carrier\"", CARRIER),
            b'e' => known(b"\"event_id\"", EVENT_ID),
            b'j' => known(b"\"judgment\"", JUDGMENT),
            b'o' => known(b"\"order_id\"", ORDER_ID),
            b'p' => known(b"\"product_id\"", PRODUCT_ID),
            b'r' => known(b"\"reason\"", REASON),
            b's' => known(b"\"shop_id\"", SHOP_ID).or_else(|| known(b"\"ship_by\"", SHIP_BY)),
            b't' => known(b"\"type\"", TYPE).or_else(|| known(b"\"tracking_no\"", TRACKING_NO)),
            _ => None,
        }
    }

    /// The instant of the string starting at `at` and the position after
    /// it, when it has the common shape (see
    /// [`crate::time::parse_common_rfc3339`]), which holds no quote: the
    /// string then ends at the quote after that shape.
    fn common_instant(bytes: &[u8], at: usize) -> Option<(usize, Instant)> {
        for length in [25, 20] {
            let end = at + 1 + length;
            if bytes.get(end) == Some(&b'"') {
                if let Some(instant) = crate::time::parse_common_rfc3339(bytes.get(at + 1..end)?) {
                    return Some((end + 1, instant));
                }
            }
        }
        None
    }

    /// The digit run starting at `at` (with a first digit from 1 to 9) as
    /// a positive `i64`, and the position after it; `None` when it does
    /// not fit, which the reference path rejects.
    fn positive(bytes: &[u8], at: usize) -> Option<(usize, i64)> {
        let mut value: i64 = 0;
        let mut end = at;
        while let Some(&byte) = bytes.get(end) {
            if !byte.is_ascii_digit() {
                break;
            }
            value = value.checked_mul(10)?.checked_add(i64::from(byte - b'0'))?;
            end += 1;
        }
        Some((end, value))
    }

    /// The position after JSON whitespace from `at`.
    fn skip_space(bytes: &[u8], mut at: usize) -> usize {
        while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            at += 1;
        }
        at
    }

    /// The position after the string starting at `at` (its opening quote),
    /// when it has no escape and no control character.
    fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
        if bytes.get(at) != Some(&b'"') {
            return None;
        }
        let body = &bytes[at + 1..];
        // Eight bytes at a time (most strings here are ids of 7 to 36
        // bytes), then byte by byte for the rest.
        let mut words = body.chunks_exact(8);
        let mut offset = 0;
        for chunk in &mut words {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            let found = string_stops(u64::from_le_bytes(word));
            if found != 0 {
                let end = at + 1 + offset + (found.trailing_zeros() / 8) as usize;
                return (bytes[end] == b'"').then_some(end + 1);
            }
            offset += 8;
        }
        let length = words
            .remainder()
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        let end = at + 1 + offset + length;
        (bytes[end] == b'"').then_some(end + 1)
    }

    /// The high bit of each byte of `word` that ends a plain string's
    /// body (a quote, a backslash or a control character), exact up to and
    /// including the lowest one, which is all `string_end` reads: the
    /// subtractions may only mark bytes above a true stop falsely.
    fn string_stops(word: u64) -> u64 {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let zero_byte = |value: u64| value.wrapping_sub(ONES) & !value & HIGHS;
        let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
        let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
        quote | backslash | control
    }

    /// A string's bytes, from its raw form as [`scan`] keeps it: `scan` only
    /// keeps strings that [`string_end`] passed, so there is no escape in
    /// it (and the raw text is already canonical); a number is `None`.
    fn text(raw: Option<&[u8]>) -> Option<&[u8]> {
        let inner = raw?.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
        debug_assert!(!inner.contains(&b'\\'), "scan keeps no escaped string");
        Some(inner)
    }

    /// An optional free-text field (`carrier`, `reason`): absent, or a
    /// string of UTF-8; `None` for anything else.
    fn optional_text(raw: Option<&[u8]>) -> Option<()> {
        match raw {
            None => Some(()),
            Some(raw) => utf8(text(Some(raw))?).then_some(()),
        }
    }

    /// Whether a string's bytes are UTF-8. The line as a whole is never
    /// checked: outside strings `scan` takes only ASCII bytes, and every
    /// string kept is either read as ASCII (the id, the type, instants of
    /// the common shape) or checked here, as the reference path checks it.
    /// ASCII, the usual case, is told a word at a time; only other bytes
    /// need the full check.
    fn utf8(bytes: &[u8]) -> bool {
        ascii(bytes) || std::str::from_utf8(bytes).is_ok()
    }

    /// Whether `bytes` are all ASCII, as `is_ascii` answers, for the short
    /// strings of events: from 4 to 16 bytes, as two words that overlap
    /// (the first and the last 4 or 8 bytes), with no loop.
    #[inline(always)]
    fn ascii(bytes: &[u8]) -> bool {
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let len = bytes.len();
        let word = |at: usize| -> u64 {
            match bytes.get(at..at + 8) {
                Some(chunk) => chunk.try_into().map_or(HIGHS, u64::from_le_bytes),
                None => HIGHS,
            }
        };
        let half = |at: usize| -> u64 {
            match bytes.get(at..at + 4) {
                Some(chunk) => chunk
                    .try_into()
                    .map_or(HIGHS, |chunk| u64::from(u32::from_le_bytes(chunk))),
                None => HIGHS,
            }
        };
        match len {
            8..=16 => (word(0) | word(len - 8)) & HIGHS == 0,
            4..=7 => (half(0) | half(len - 4)) & HIGHS == 0,
            _ => bytes.is_ascii(),
        }
    }

    fn id(raw: Option<&[u8]>) -> Option<&[u8]> {
        let id = text(raw)?;
        (!id.is_empty() && id.len() <= MAX_ID_BYTES && utf8(id)).then_some(id)
    }

    /// An instant field other than the one `scan` read: the common shape
    /// directly, anything else through its text (without trying the common
    /// shape a second time).
    fn instant(raw: Option<&[u8]>) -> Option<Instant> {
        let bytes = text(raw)?;
        crate::time::parse_common_rfc3339(bytes)
            .or_else(|| crate::time::parse_general_rfc3339(std::str::from_utf8(bytes).ok()?))
    }

    /// A line read by [`parse_into`]: the event with its identifiers
    /// borrowed from the line as bytes (checked as UTF-8), the texts the
    /// compact form keeps, and where its canonical JSON was written.
    pub(super) struct Borrowed<'a> {
        pub event_id: u128,
        /// Whether the id was written in lower case, as the canonical
        /// JSON regenerated from the compact form writes it.
        pub id_lowercase: bool,
        pub at: Instant,
        pub kind: KindFields<&'a [u8]>,
        pub texts: crate::compact::Texts<'a>,
        pub canonical: std::ops::Range<usize>,
    }

    impl Borrowed<'_> {
        /// Appends the line's compact form to `out`, where its canonical
        /// JSON lies, and says where the form lies (see
        /// [`crate::compact::encode_into`]).
        pub fn encode_compact(&self, out: &mut Vec<u8>) -> Option<std::ops::Range<usize>> {
            crate::compact::encode_into(
                self.event_id,
                self.id_lowercase,
                self.at,
                &self.kind,
                &self.texts,
                self.canonical.clone(),
                out,
            )
        }
    }

    /// The owned form of [`parse_into`], for callers that keep one line.
    pub(super) fn parse(line: &[u8]) -> Option<ParsedLine> {
        let mut bytes = Vec::with_capacity(line.len() * 2);
        let parsed = parse_into(line, &mut bytes)?;
        let compact = parsed.encode_compact(&mut bytes);
        Some(ParsedLine {
            event: Event {
                event_id: parsed.event_id,
                at: parsed.at,
                kind: parsed.kind.to_text()?.to_kind_ref().to_kind(),
            },
            canonical_json: bytes[parsed.canonical].to_vec(),
            compact: compact.map(|range| bytes[range].to_vec()),
        })
    }

    /// Reads the usual line and appends its canonical JSON to `out`,
    /// allocating nothing else. On `None`, `out` may hold part of a
    /// canonical form, which the caller drops.
    pub(super) fn parse_into<'a>(line: &'a [u8], out: &mut Vec<u8>) -> Option<Borrowed<'a>> {
        read::<true>(line, out)
    }

    /// Reads the usual line as [`parse_into`] does, validating it alike,
    /// but writes nothing: its `canonical` range is empty. Ingest keeps a
    /// line's compact form alone, so it never needs the JSON.
    pub(super) fn parse_fields(line: &[u8]) -> Option<Borrowed<'_>> {
        read::<false>(line, &mut Vec::new())
    }

    /// [`parse_into`] when `CANONICAL`, else [`parse_fields`].
    fn read<'a, const CANONICAL: bool>(line: &'a [u8], out: &mut Vec<u8>) -> Option<Borrowed<'a>> {
        let mut f = Fields::default();
        scan(line, &mut f)?;
        if f.present & bit(EVENT_ID) == 0 {
            return None;
        }
        let at = match f.at {
            Some(at) => at,
            None => instant(f.get(AT))?,
        };
        let type_name = text(f.get(TYPE))?;
        let amount_fen = (f.present & bit(AMOUNT_FEN) != 0).then_some(f.amount_fen);
        // Which optional keys the type uses; a known key on another type is
        // ignored by the rules but must be kept verbatim, which the
        // reference path does.
        let event_type = EventType::from_name(type_name)?;
        let mut kind = KindFields::empty(event_type);
        let allowed = match event_type {
            EventType::Paid => {
                let ship_by = match f.get(SHIP_BY) {
                    Some(raw) => Some(instant(Some(raw))?),
                    None => None,
                };
                if ship_by.is_some_and(|s| s < at) {
                    return None;
                }
                kind = KindFields {
                    order_id: id(f.get(ORDER_ID))?,
                    shop_id: id(f.get(SHOP_ID))?,
                    product_id: id(f.get(PRODUCT_ID))?,
                    amount_fen: amount_fen?,
                    ship_by,
                    ..kind
                };
                bit(AMOUNT_FEN) | bit(ORDER_ID) | bit(PRODUCT_ID) | bit(SHIP_BY) | bit(SHOP_ID)
            }
            EventType::Shipped | EventType::TrackingUploaded | EventType::TrackingRejected => {
                kind.order_id = id(f.get(ORDER_ID))?;
                kind.tracking_no = id(f.get(TRACKING_NO))?;
                if event_type == EventType::TrackingRejected {
                    bit(ORDER_ID) | bit(TRACKING_NO)
                } else {
                    optional_text(f.get(CARRIER))?;
                    bit(CARRIER) | bit(ORDER_ID) | bit(TRACKING_NO)
                }
            }
            EventType::Refunded => {
                kind.order_id = id(f.get(ORDER_ID))?;
                kind.amount_fen = amount_fen?;
                bit(AMOUNT_FEN) | bit(ORDER_ID)
            }
            EventType::RefundFailed => {
                kind.order_id = id(f.get(ORDER_ID))?;
                bit(ORDER_ID)
            }
            EventType::JudgmentRevoked => {
                optional_text(f.get(REASON))?;
                if f.present & bit(JUDGMENT) == 0 || f.judgment > i64::from(MAX_REVOCABLE_JUDGMENT)
                {
                    return None;
                }
                kind.order_id = id(f.get(ORDER_ID))?;
                kind.judgment = f.judgment as u8;
                bit(JUDGMENT) | bit(ORDER_ID) | bit(REASON)
            }
            EventType::DepositToppedUp => {
                kind.shop_id = id(f.get(SHOP_ID))?;
                kind.amount_fen = amount_fen?;
                bit(AMOUNT_FEN) | bit(SHOP_ID)
            }
        };
        if f.present & !(allowed | bit(AT) | bit(EVENT_ID) | bit(TYPE)) != 0 {
            return None;
        }
        let texts = crate::compact::Texts {
            at: text(f.get(AT))?,
            ship_by: text(f.get(SHIP_BY)),
            carrier: text(f.get(CARRIER)),
            reason: text(f.get(REASON)),
        };
        let start = out.len();
        // Ingest keeps a line with a compact form as that form alone.
        if !CANONICAL {
            return Some(Borrowed {
                event_id: f.event_id,
                id_lowercase: f.id_lowercase,
                at,
                kind,
                texts,
                canonical: start..start,
            });
        }
        // Written through a local vector, put back once: while the pieces
        // go through `out` itself, its length is stored and reloaded around
        // every byte written (the compiler cannot tell the bytes from the
        // vector's own fields), a fifth of this function's time. The
        // canonical form is never longer than the line.
        let mut canonical = std::mem::take(out);
        canonical.reserve(line.len());
        // Each field is two copies: its key as one constant piece (with the
        // comma that separates it from the previous field, the quotes and
        // the colon), then its raw text. `at` is always present and sorts
        // second, so only `amount_fen` can come before it, and every field
        // after `at` takes a comma.
        match f.get(AMOUNT_FEN) {
            Some(raw) => {
                field(&mut canonical, b"{\"amount_fen\":", raw);
                field(&mut canonical, b",\"at\":", f.raw[AT]);
            }
            None => field(&mut canonical, b"{\"at\":", f.raw[AT]),
        }
        // One call per key, not a loop over a table, so that every key's
        // length stays a constant.
        let rest = |out: &mut Vec<u8>, key: &[u8], raw: Option<&[u8]>| {
            if let Some(raw) = raw {
                field(out, key, raw);
            }
        };
        rest(&mut canonical, b",\"carrier\":", f.get(CARRIER));
        field(&mut canonical, b",\"event_id\":", f.raw[EVENT_ID]);
        rest(&mut canonical, b",\"judgment\":", f.get(JUDGMENT));
        rest(&mut canonical, b",\"order_id\":", f.get(ORDER_ID));
        rest(&mut canonical, b",\"product_id\":", f.get(PRODUCT_ID));
        rest(&mut canonical, b",\"reason\":", f.get(REASON));
        rest(&mut canonical, b",\"ship_by\":", f.get(SHIP_BY));
        rest(&mut canonical, b",\"shop_id\":", f.get(SHOP_ID));
        rest(&mut canonical, b",\"tracking_no\":", f.get(TRACKING_NO));
        field(&mut canonical, b",\"type\":", f.raw[TYPE]);
        canonical.push(b'}');
        *out = canonical;
        Some(Borrowed {
            event_id: f.event_id,
            id_lowercase: f.id_lowercase,
            at,
            kind,
            texts,
            canonical: start..out.len(),
        })
    }

    /// Appends one field of the canonical JSON: its key piece, then its raw
    /// text. Inlined so that each key's length is a constant at its call,
    /// and the key is copied by a few moves instead of a call to `memcpy`.
    #[inline(always)]
    fn field(out: &mut Vec<u8>, key: &[u8], raw: &[u8]) {
        out.extend_from_slice(key);
        out.extend_from_slice(raw);
    }

    #[cfg(test)]
    mod tests {
        use proptest::prelude::*;

        /// What `string_end` answers, byte by byte.
        fn string_end_bytewise(bytes: &[u8], at: usize) -> Option<usize> {
            if bytes.get(at) != Some(&b'"') {
                return None;
            }
            let length = bytes[at + 1..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
            let end = at + 1 + length;
            (bytes[end] == b'"').then_some(end + 1)
        }

        proptest! {
            /// The short-string ASCII test answers as `is_ascii`, at every
            /// length around the ones it reads as words.
            #[test]
            fn ascii_is_is_ascii(
                bytes in proptest::collection::vec(
                    prop_oneof![8 => 0u8..0x80, 1 => 0x80u8..=0xff],
                    0..24,
                ),
            ) {
                prop_assert_eq!(super::ascii(&bytes), bytes.is_ascii());
            }
        }

        proptest! {
            /// The word-at-a-time scan stops where the byte-wise one does,
            /// whatever bytes (quotes, backslashes, controls, UTF-8 above
            /// 0x7f) lie where.
            #[test]
            fn string_end_is_the_bytewise_scan(
                body in proptest::collection::vec(
                    prop_oneof![
                        4 => 0x20u8..0x7f,
                        1 => Just(b'"'),
                        1 => Just(b'\\'),
                        1 => 0u8..0x20,
                        1 => 0x80u8..=0xff,
                    ],
                    0..40,
                ),
                at in 0usize..3,
            ) {
                let mut bytes = vec![b'"'; at + 1];
                bytes.extend_from_slice(&body);
                prop_assert_eq!(super::string_end(&bytes, at), string_end_bytewise(&bytes, at));
            }
        }
    }
}

/// Formats a 128-bit event id in the 8-4-4-4-12 form.
pub fn format_event_id(event_id: u128) -> String {
    uuid::Uuid::from_u128(event_id).hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_ids_parse_as_the_uuid_crate_reads_the_hyphenated_form() {
        let good = "0b6f3c1e-6a53-4f43-9f0e-2d1c7f4a9b10";
        let mut cases = vec![
            good.to_string(),
            good.to_uppercase(),
            "00000000-0000-0000-0000-000000000000".to_string(),
            "ffffffff-ffff-ffff-ffff-ffffffffffff".to_string(),
            good.replace('-', ""),
            good[1..].to_string(),
            format!("{good}0"),
            good.replacen('-', "x", 1),
        ];
        // Every position holding every interesting byte.
        for position in 0..36 {
            for byte in [
                b'0', b'9', b'a', b'f', b'A', b'F', b'g', b'G', b'-', b' ', b'/', b':', b'`', b'@',
                0xff,
            ] {
                let mut bytes = good.as_bytes().to_vec();
                bytes[position] = byte;
                if let Ok(text) = String::from_utf8(bytes) {
                    cases.push(text);
                }
            }
        }
        for case in cases {
            let expected = if case.len() == 36 {
                uuid::Uuid::try_parse(&case).ok().map(|u| u.as_u128())
            } else {
                None
            };
            assert_eq!(
                super::parse_event_id(case.as_bytes()).map(|(id, _)| id),
                expected,
                "{case:?}"
            );
            if let Some((_, lowercase)) = super::parse_event_id(case.as_bytes()) {
                assert_eq!(
                    lowercase,
                    !case.bytes().any(|b| b.is_ascii_uppercase()),
                    "{case:?}"
                );
            }
        }
    }

    /// What `hex_word` answers, digit by digit.
    fn hex_word_bytewise(word: u64) -> Option<(u32, bool)> {
        let mut value = 0u32;
        let mut upper = false;
        for byte in word.to_be_bytes() {
            value = value << 4 | char::from(byte).to_digit(16)?;
            upper |= byte.is_ascii_uppercase();
        }
        Some((value, upper))
    }

    proptest::proptest! {
        /// The word-at-a-time hex reading answers as the digit-by-digit one
        /// over every kind of byte: digits, both cases of letters, the
        /// bytes just outside each range, and any byte at all.
        #[test]
        fn hex_word_is_the_bytewise_reading(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    4 => proptest::sample::select(b"0123456789abcdefABCDEF".to_vec()),
                    1 => proptest::sample::select(b"/:@G`g-\x00\x7f\x80\xb0\xc1\xe6\xff".to_vec()),
                    1 => proptest::prelude::any::<u8>(),
                ],
                8,
            ),
        ) {
            let word = u64::from_be_bytes(bytes.clone().try_into().unwrap());
            proptest::prop_assert_eq!(super::hex_word(word), hex_word_bytewise(word), "{:?}", bytes);
        }
    }

    use super::*;

    const ID: &str = "0b6f3c1e-6a53-4f43-9f0e-2d1c7f4a9b10";

    fn reject(line: &str) -> String {
        parse_line(line.as_bytes()).unwrap_err().code()
    }

    fn line(fields: &str) -> String {
        format!(r#"{{"event_id":"{ID}","at":"2026-03-01T10:00:00+08:00",{fields}}}"#)
    }

    #[test]
    fn parses_the_example_of_events_md() {
        let parsed = parse_line(
            br#"{"event_id":"0b6f3c1e-6a53-4f43-9f0e-2d1c7f4a9b10","type":"paid","at":"2026-03-01T10:00:00+08:00","order_id":"O1","shop_id":"S1","product_id":"P1","amount_fen":19900}"#,
        )
        .unwrap();
        assert_eq!(parsed.event.type_name(), "paid");
        assert_eq!(parsed.event.paid_order_id(), Some("O1"));
        assert_eq!(format_event_id(parsed.event.event_id), ID);
    }

    #[test]
    fn canonical_form_ignores_key_order_whitespace_and_escapes() {
        let a = parse_line(line(r#""type":"refund_failed","order_id":"O1""#).as_bytes()).unwrap();
        let b = parse_line(
            format!(r#" {{ "order_id" : "\u004f1", "type":"refund_failed", "at":"2026-03-01T10:00:00+08:00", "event_id":"{ID}" }}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(a.canonical_json, b.canonical_json);
        let c = parse_line(line(r#""type":"refund_failed","order_id":"O1","extra":1"#).as_bytes())
            .unwrap();
        assert_ne!(a.canonical_json, c.canonical_json);
    }

    /// "The same content" over what the log keeps: a compact form and the
    /// JSON of a line with none (it has an escape) compare by canonical
    /// JSON; equal compact forms are equal without regenerating them.
    #[test]
    fn payloads_are_the_same_content_exactly_when_their_canonical_json_is() {
        let compact =
            parse_line(line(r#""type":"refund_failed","order_id":"O1""#).as_bytes()).unwrap();
        let escaped = parse_line(
            format!(r#"{{"order_id":"\u004f1","type":"refund_failed","at":"2026-03-01T10:00:00+08:00","event_id":"{ID}"}}"#)
                .as_bytes(),
        )
        .unwrap();
        let other =
            parse_line(line(r#""type":"refund_failed","order_id":"O2""#).as_bytes()).unwrap();
        let (a, b, c) = (
            compact.as_parsed().payload,
            escaped.as_parsed().payload,
            other.as_parsed().payload,
        );
        assert!(a.is_compact() && !b.is_compact() && c.is_compact());
        assert!(a.same_content(&a));
        assert!(a.same_content(&b) && b.same_content(&a));
        assert!(!a.same_content(&c) && !c.same_content(&b));
        assert_eq!(a.canonical_json(), b.canonical_json());
        assert_eq!(a.event(), Ok(compact.event.clone()));
        assert_eq!(b.event(), Ok(compact.event));
    }

    #[test]
    fn every_validation_reason_code() {
        assert_eq!(reject(""), "invalid_json");
        assert_eq!(reject("[1,2]"), "invalid_json");
        assert_eq!(reject(r#"{"event_id": "#), "invalid_json");
        assert_eq!(reject(&"x".repeat(MAX_LINE_BYTES + 1)), "line_too_long");
        assert_eq!(
            reject(&line(r#""type":"parcel_lost","order_id":"O1""#)),
            "unknown_type"
        );
        assert_eq!(
            reject(&line(r#""type":"shipped","order_id":"O1""#)),
            "missing_field:tracking_no"
        );
        assert_eq!(reject(&line(r#""order_id":"O1""#)), "missing_field:type");
        assert_eq!(
            reject(r#"{"type":"refund_failed","at":"2026-03-01T10:00:00+08:00","order_id":"O1"}"#),
            "missing_field:event_id"
        );
        assert_eq!(
            reject(&format!(
                r#"{{"event_id":"{ID}","type":"refund_failed","order_id":"O1"}}"#
            )),
            "missing_field:at"
        );
        assert_eq!(
            reject(&format!(
                r#"{{"event_id":"{ID}","type":"refund_failed","at":"2026-03-02T09:00:00","order_id":"O1"}}"#
            )),
            "invalid_field:at"
        );
        assert_eq!(
            reject(&format!(
                r#"{{"event_id":"{ID}","type":"refund_failed","at":null,"order_id":"O1"}}"#
            )),
            "invalid_field:at"
        );
        assert_eq!(
            reject(&line(
                r#""type":"refunded","order_id":"O1","amount_fen":-100"#
            )),
            "invalid_field:amount_fen"
        );
        assert_eq!(
            reject(&line(
                r#""type":"refunded","order_id":"O1","amount_fen":1.0"#
            )),
            "invalid_field:amount_fen"
        );
        assert_eq!(
            reject(&line(
                r#""type":"refunded","order_id":"O1","amount_fen":9223372036854775808"#
            )),
            "invalid_field:amount_fen"
        );
        assert_eq!(
            reject(&line(r#""type":"refund_failed","order_id":"""#)),
            "invalid_field:order_id"
        );
        assert_eq!(
            reject(&line(r#""type":"refund_failed","order_id":null"#)),
            "invalid_field:order_id"
        );
        let long_id = "O".repeat(MAX_ID_BYTES + 1);
        assert_eq!(
            reject(&line(&format!(
                r#""type":"refund_failed","order_id":"{long_id}""#
            ))),
            "invalid_field:order_id"
        );
        assert_eq!(
            reject(&line(
                r#""type":"judgment_revoked","order_id":"O1","judgment":4"#
            )),
            "invalid_field:judgment"
        );
        assert_eq!(
            reject(&line(
                r#""type":"shipped","order_id":"O1","tracking_no":"T","carrier":7"#
            )),
            "invalid_field:carrier"
        );
        assert_eq!(
            reject(&line(
                r#""type":"paid","order_id":"O1","shop_id":"S1","product_id":"P1","amount_fen":1,"ship_by":"2026-03-01T09:59:59+08:00""#
            )),
            "invalid_field:ship_by"
        );
        assert_eq!(
            reject(
                r#"{"event_id":"0b6f3c1e6a534f439f0e2d1c7f4a9b10","type":"refund_failed","at":"2026-03-01T10:00:00+08:00","order_id":"O1"}"#
            ),
            "invalid_field:event_id"
        );
        assert_eq!(Reject::EventIdConflict.code(), "event_id_conflict");
        assert_eq!(Reject::OrderAlreadyPaid.code(), "order_already_paid");
    }

    #[test]
    fn null_optional_fields_count_as_absent() {
        let parsed = parse_line(
            line(r#""type":"paid","order_id":"O1","shop_id":"S1","product_id":"P1","amount_fen":1,"ship_by":null"#).as_bytes(),
        )
        .unwrap();
        assert!(matches!(
            parsed.event.kind,
            EventKind::Paid { ship_by: None, .. }
        ));
        assert!(parse_line(
            line(r#""type":"shipped","order_id":"O1","tracking_no":"T","carrier":null"#).as_bytes()
        )
        .is_ok());
    }

    /// Every golden scenario line, plus crafted ones: where the fast path
    /// accepts a line, it must give exactly what the reference path gives.
    #[test]
    fn fast_and_slow_paths_agree() {
        let mut lines: Vec<String> = vec![
            line(r#""type":"shipped","order_id":"O1","tracking_no":"T","carrier":"SF""#),
            line(r#""type":"shipped","order_id":"O1","tracking_no":"T","shop_id":"S1""#),
            line(r#""type":"shipped","order_id":"\u004f1","tracking_no":"T""#),
            line(
                r#""type":"paid","order_id":"O1","shop_id":"S1","product_id":"P1","amount_fen":100,"ship_by":"2026-03-05T00:00:00Z""#,
            ),
            line(r#""type":"refunded","order_id":"O1","amount_fen":1e3"#),
            line(r#""type":"judgment_revoked","order_id":"O1","judgment":2,"reason":"ok""#),
            line(r#""type":"judgment_revoked","order_id":"O1","judgment":2,"reason":{"a": 1}"#),
            line(r#""type":"deposit_topped_up","shop_id":"S1","amount_fen":5000"#),
            line(r#""type":"refund_failed","order_id":"O1","order_id":"O2""#),
            line(r#""type":"refund_failed","order_id":"日本""#),
        ];
        let scenarios =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/scenarios");
        for entry in std::fs::read_dir(scenarios).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path().join("events.jsonl"))
                .unwrap_or_default();
            lines.extend(text.lines().map(str::to_string));
        }
        let mut fast_count = 0;
        let mut compact_count = 0;
        for line in &lines {
            let slow = parse_line_slow(line.as_bytes());
            if let Some(fast) = fast::parse(line.as_bytes()) {
                fast_count += 1;
                let mut reference = slow.clone().unwrap();
                reference.compact = fast.compact.clone();
                assert_eq!(fast, reference, "{line}");
                // The compact form, when kept, gives back both the event and
                // the canonical JSON exactly.
                if let Some(compact) = &fast.compact {
                    assert_eq!(
                        crate::compact::decode_event(compact).as_ref(),
                        Some(&fast.event),
                        "{line}"
                    );
                    assert_eq!(
                        crate::compact::decode_ref(compact),
                        Some((fast.event.event_id, fast.event.at, fast.event.kind_ref())),
                        "{line}"
                    );
                    assert_eq!(
                        crate::compact::canonical_json(compact).as_ref(),
                        Some(&fast.canonical_json),
                        "{line}"
                    );
                    compact_count += 1;
                }
            }
        }
        assert!(
            fast_count * 2 > lines.len(),
            "the fast path takes most lines ({fast_count} of {})",
            lines.len()
        );
        assert!(
            compact_count * 10 > fast_count * 9,
            "most fast lines get a compact form ({compact_count} of {fast_count})"
        );
    }

    /// One generated value for a key: the shapes events use, and near
    /// misses of them (escapes, other number forms, upper-case ids, other
    /// instant shapes, non-ASCII and invalid UTF-8, empty and long texts).
    fn value_strategy() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let quoted = |text: String| format!("\"{text}\"").into_bytes();
        prop_oneof![
            // Ids and texts.
            "[A-Za-z0-9_-]{1,12}".prop_map(quoted),
            "[a-f0-9]{8}-[a-f0-9]{4}-[a-fA-F0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}".prop_map(quoted),
            "[ -~]{0,20}".prop_map(quoted),
            "[日本é ]{1,4}".prop_map(quoted),
            Just(b"\"\\u0041b\"".to_vec()),
            Just(b"\"a\xffb\"".to_vec()),
            Just(b"\"\xe6\x97\"".to_vec()),
            "[a-z]{129,140}".prop_map(quoted),
            // Instants, common and not.
            (
                1969i32..2201,
                1u32..13,
                1u32..32,
                0u32..25,
                0u32..61,
                0u32..61
            )
                .prop_map(|(y, mo, d, h, mi, se)| format!(
                    "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}Z"
                ))
                .prop_map(quoted),
            (
                2020i32..2030,
                1u32..13,
                1u32..29,
                0u32..24,
                prop_oneof![
                    Just("+08:00"),
                    Just("-05:30"),
                    Just("z"),
                    Just("+24:00"),
                    Just(".5Z")
                ]
            )
                .prop_map(|(y, mo, d, h, tail)| format!("{y:04}-{mo:02}-{d:02}T{h:02}:30:00{tail}"))
                .prop_map(quoted),
            // Numbers.
            (1i64..=i64::MAX).prop_map(|n| n.to_string().into_bytes()),
            prop_oneof![
                Just("0"),
                Just("01"),
                Just("-3"),
                Just("1.5"),
                Just("1e3"),
                Just("99999999999999999999"),
                Just("null"),
                Just("true"),
                Just("[]"),
                Just("{}")
            ]
            .prop_map(|t| t.as_bytes().to_vec()),
        ]
    }

    /// The keys each type uses, as a valid line of it has them.
    fn keys_of(type_name: &str) -> &'static [&'static str] {
        match type_name {
            "paid" => &["order_id", "shop_id", "product_id", "amount_fen", "ship_by"],
            "shipped" | "tracking_uploaded" => &["order_id", "tracking_no", "carrier"],
            "tracking_rejected" => &["order_id", "tracking_no"],
            "refunded" => &["order_id", "amount_fen"],
            "refund_failed" => &["order_id"],
            "judgment_revoked" => &["order_id", "judgment", "reason"],
            "deposit_topped_up" => &["shop_id", "amount_fen"],
            _ => &[],
        }
    }

    /// A valid value for a key.
    fn valid_value(key: &str, seed: u64) -> Vec<u8> {
        let text = match key {
            "event_id" => format!("\"0b6f3c1e-6a53-4f43-9f0e-{seed:012x}\""),
            "at" => format!(
                "\"2026-03-{:02}T10:{:02}:00+08:00\"",
                1 + seed % 28,
                seed % 60
            ),
            "ship_by" => "\"2026-04-01T00:00:00Z\"".to_string(),
            "amount_fen" => (1 + seed % 100_000).to_string(),
            "judgment" => (1 + seed % 20).to_string(),
            "carrier" | "reason" => format!("\"text {seed}\""),
            _ => format!("\"ID{seed}\""),
        };
        text.into_bytes()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// Generated lines of every type: a valid line (keys in any order),
        /// then up to three fields added or replaced by values of every
        /// shape (see `value_strategy`). Wherever the fast path accepts a
        /// line, the reference path accepts it with the same event and
        /// canonical JSON, and the compact form gives both back. (Of 3,000
        /// cases, about 660 take the fast path and 700 more only the
        /// reference path; a fast path that skipped the UTF-8 check of a
        /// carrier fails here.)
        #[test]
        fn generated_lines_read_alike_on_both_paths(
            type_name in proptest::sample::select(vec![
                "paid", "shipped", "tracking_uploaded", "tracking_rejected", "refunded",
                "refund_failed", "judgment_revoked", "deposit_topped_up", "other",
            ]),
            seed in proptest::prelude::any::<u64>(),
            order in proptest::prelude::any::<proptest::sample::Index>(),
            changes in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "event_id", "at", "order_id", "shop_id", "product_id", "amount_fen",
                        "ship_by", "tracking_no", "carrier", "judgment", "reason", "extra",
                    ]),
                    value_strategy(),
                ),
                0..4,
            ),
            spaced in proptest::prelude::any::<bool>(),
        ) {
            let mut fields: Vec<(&str, Vec<u8>)> = vec![
                ("type", format!("\"{type_name}\"").into_bytes()),
                ("event_id", valid_value("event_id", seed >> 16)),
                ("at", valid_value("at", seed)),
            ];
            for key in keys_of(type_name) {
                fields.push((key, valid_value(key, seed)));
            }
            for (key, value) in changes {
                match fields.iter_mut().find(|(k, _)| *k == key) {
                    Some(field) => field.1 = value,
                    None => fields.push((key, value)),
                }
            }
            let turn = order.index(fields.len());
            fields.rotate_left(turn);
            let separator: &[u8] = if spaced { b", " } else { b"," };
            let mut line = b"{".to_vec();
            for (number, (key, value)) in fields.iter().enumerate() {
                if number > 0 {
                    line.extend_from_slice(separator);
                }
                line.extend_from_slice(format!("\"{key}\":").as_bytes());
                line.extend_from_slice(value);
            }
            line.push(b'}');
            let text = String::from_utf8_lossy(&line).into_owned();
            // Declining is always allowed: the reference path decides.
            if let Some(fast) = fast::parse(&line) {
                let mut reference = parse_line_slow(&line).unwrap_or_else(|reject| {
                    panic!("fast accepted, reference rejects ({reject}): {text}")
                });
                reference.compact = fast.compact.clone();
                proptest::prop_assert_eq!(&fast, &reference, "{}", text);
                if let Some(compact) = &fast.compact {
                    let canonical = crate::compact::canonical_json(compact);
                    proptest::prop_assert_eq!(canonical.as_ref(), Some(&fast.canonical_json));
                    let event = crate::compact::decode_event(compact);
                    proptest::prop_assert_eq!(event.as_ref(), Some(&fast.event));
                }
            }
        }
    }

    /// The fast path's scanner against the reference path on variants of
    /// every golden line: whitespace between tokens, escapes, other number
    /// forms, `null`, nesting, unknown and repeated keys, control characters,
    /// invalid UTF-8, trailing text and every truncation. Wherever the fast
    /// path accepts a variant, the reference must accept it with the same
    /// event and canonical JSON.
    #[test]
    fn the_scanner_accepts_only_what_the_reference_accepts_alike() {
        let (bases, variants) = line_variants();
        let (mut accepted, mut spaced_accepted) = (0, 0);
        for variant in &variants {
            let Some(fast) = fast::parse(variant) else {
                continue;
            };
            accepted += 1;
            if variant.contains(&b'\t') {
                spaced_accepted += 1;
            }
            let text = String::from_utf8_lossy(variant);
            let mut reference = parse_line_slow(variant).unwrap_or_else(|reject| {
                panic!("fast accepted, reference rejects ({reject}): {text}")
            });
            reference.compact = fast.compact.clone();
            assert_eq!(fast, reference, "{text}");
        }
        // Most bases are valid, and each gives three spaced variants.
        assert!(
            accepted > bases.len() * 2,
            "the scanner takes the ordinary variants: {accepted} of {} bases",
            bases.len()
        );
        assert!(
            spaced_accepted * 2 > bases.len(),
            "and those with whitespace: {spaced_accepted} of {} bases",
            bases.len()
        );
    }

    /// Ingest's parser threads put a chunk of lines into one shared buffer,
    /// where a line the fast path gives up on midway leaves bytes behind:
    /// each line must still read exactly as it does alone.
    #[test]
    fn lines_sharing_one_buffer_read_as_each_line_alone() {
        let (_, variants) = line_variants();
        let mut shared = ParsedLines::default();
        let mut positions = Vec::new();
        for variant in &variants {
            positions.push(shared.push(variant));
        }
        let mut valid = 0;
        for (variant, position) in variants.iter().zip(positions) {
            let text = String::from_utf8_lossy(variant);
            match (parse_line(variant), position) {
                (Ok(alone), Ok(position)) => {
                    valid += 1;
                    let kept = shared.get(position).expect("a kept line");
                    assert_eq!(kept, alone.as_parsed(), "{text}");
                    assert_eq!(kept.event(), Ok(alone.event), "{text}");
                }
                (Err(alone), Err(shared)) => assert_eq!(alone, shared, "{text}"),
                (alone, shared) => panic!("alone {alone:?}, shared {shared:?}: {text}"),
            }
        }
        assert_eq!(shared.len(), valid);
        assert!(valid > 100, "enough valid lines to mean something: {valid}");
    }

    /// The scenario lines, and variants of each: whitespace, truncations,
    /// changed bytes, values of other forms, unknown and repeated keys.
    fn line_variants() -> (Vec<String>, Vec<Vec<u8>>) {
        let scenarios =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/scenarios");
        let mut bases: Vec<String> = Vec::new();
        for entry in std::fs::read_dir(scenarios).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path().join("events.jsonl"))
                .unwrap_or_default();
            bases.extend(text.lines().map(str::to_string));
        }
        bases.retain(|line| !line.is_empty());
        bases.sort();
        bases.dedup();
        let mut variants: Vec<Vec<u8>> = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for base in &bases {
            let bytes = base.as_bytes();
            // Whitespace after structural characters, and around the object.
            let mut spaced = Vec::new();
            let mut in_string = false;
            for (i, &b) in bytes.iter().enumerate() {
                spaced.push(b);
                if b == b'"' && (i == 0 || bytes[i - 1] != b'\\') {
                    in_string = !in_string;
                }
                if !in_string && matches!(b, b'{' | b',' | b':') {
                    spaced.extend_from_slice([&b" "[..], b"\t", b"\r\n", b""][next() as usize % 4]);
                }
            }
            variants.push(spaced.clone());
            variants.push([b" ", &spaced[..], b" \t"].concat());
            variants.push([&spaced[..], b"x"].concat());
            // Every truncation, and a byte changed at a few places.
            for end in 0..bytes.len() {
                variants.push(bytes[..end].to_vec());
            }
            for _ in 0..12 {
                let mut changed = bytes.to_vec();
                let at = next() as usize % changed.len();
                changed[at] = [
                    b'\\', b'"', 0x01, 0xff, b'n', b'-', b'.', b'e', b'0', b'{', b'[', b' ',
                ][next() as usize % 12];
                variants.push(changed);
            }
            // Values replaced by other forms.
            for replacement in [
                "null",
                "\"\\u004f1\"",
                "-5",
                "1.5",
                "1e3",
                "0100",
                "0",
                "true",
                "{}",
                "[1]",
                "\"\"",
                "\"a\\\"b\"",
                "\"日本\"",
                "99999999999999999999",
            ] {
                let mut text = base.clone();
                if let Some(colon) = text.find(':') {
                    let tail = &text[colon + 1..];
                    let value_end = tail.find([',', '}']).unwrap_or(tail.len());
                    text = format!("{}{}{}", &text[..=colon], replacement, &tail[value_end..]);
                }
                variants.push(text.clone().into_bytes());
                // The same at the last key.
                let mut text = base.clone();
                if let Some(colon) = text.rfind(':') {
                    let tail = &text[colon + 1..];
                    let value_end = tail.find([',', '}']).unwrap_or(tail.len());
                    text = format!("{}{}{}", &text[..=colon], replacement, &tail[value_end..]);
                }
                variants.push(text.into_bytes());
            }
            // Unknown, repeated and differently cased keys.
            variants.push(base.replacen('{', "{\"extra\":1,", 1).into_bytes());
            variants.push(base.replacen('{', "{\"at\":\"x\",", 1).into_bytes());
            variants.push(base.replacen("\"type\"", "\"Type\"", 1).into_bytes());
        }
        (bases, variants)
    }

    /// Issue 20 (9): an object naming a key twice, at the top level or
    /// nested in an unknown field, is `invalid_json` (EVENTS.md), on every
    /// way in: `parse_line`, the reference path alone, and a shared
    /// `ParsedLines` buffer. The scanner declines each of these lines (its
    /// seen-bitmask of known keys), so the reference path decides.
    #[test]
    fn issue20_a_key_named_twice_is_invalid_json() {
        let lines = [
            line(r#""type":"deposit_topped_up","shop_id":"S1","amount_fen":5,"amount_fen":70000"#),
            line(r#""type":"shipped","order_id":"K1","order_id":"K2","tracking_no":"T1""#),
            line(r#""type":"refund_failed","order_id":"O1","extra":1,"extra":2"#),
            line(r#""type":"refund_failed","order_id":"O1","meta":{"src":"app","src":"web"}"#),
            line(r#""type":"refund_failed","order_id":"O1","meta":[{"a":{"b":1,"b":1}}]"#),
            // The same key, once escaped: equal once read.
            line(r#""type":"refund_failed","order_id":"O1","\u006frder_id":"O1""#),
            line(r#""type":"refund_failed","order_id":"O1","type":"refund_failed""#),
        ];
        let mut shared = ParsedLines::default();
        for text in &lines {
            let bytes = text.as_bytes();
            assert!(fast::parse(bytes).is_none(), "the scanner declines {text}");
            assert_eq!(parse_line_slow(bytes), Err(Reject::InvalidJson), "{text}");
            assert_eq!(parse_line(bytes), Err(Reject::InvalidJson), "{text}");
            assert_eq!(shared.push(bytes), Err(Reject::InvalidJson), "{text}");
        }
        // Distinct keys at every depth, the same key in sibling objects, and
        // a key equal to a value, are all fine.
        for text in [
            line(r#""type":"refund_failed","order_id":"O1","note":{"a":1,"b":{"a":1}}"#),
            line(r#""type":"refund_failed","order_id":"O1","l":[{"a":1},{"a":2}]"#),
            line(r#""type":"refund_failed","order_id":"O1","order_id_":"order_id""#),
        ] {
            assert!(parse_line(text.as_bytes()).is_ok(), "{text}");
        }
    }

    /// The fields a reason code may name: those of EVENTS.md.
    const FIELDS: &[&str] = &[
        "event_id",
        "type",
        "at",
        "order_id",
        "shop_id",
        "product_id",
        "amount_fen",
        "ship_by",
        "tracking_no",
        "carrier",
        "judgment",
        "reason",
    ];

    /// Whether `code` is a reason code of EVENTS.md that parsing gives
    /// (the two that need the log, `event_id_conflict` and
    /// `order_already_paid`, never come from a line alone).
    fn is_parse_reason(code: &str) -> bool {
        match code.split_once(':') {
            Some(("missing_field" | "invalid_field", field)) => FIELDS.contains(&field),
            Some(_) => false,
            None => matches!(code, "invalid_json" | "line_too_long" | "unknown_type"),
        }
    }

    /// The fuzz corpus's seeds: every golden scenario line, and lines of
    /// every type with their optional fields.
    fn fuzz_seeds() -> &'static [Vec<u8>] {
        static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        SEEDS.get_or_init(|| {
            let (bases, _) = line_variants();
            let mut seeds: Vec<Vec<u8>> = bases.into_iter().map(String::into_bytes).collect();
            for fields in [
                r#""type":"paid","order_id":"O1","shop_id":"S1","product_id":"P1","amount_fen":100,"ship_by":"2026-03-05T00:00:00Z""#,
                r#""type":"shipped","order_id":"O1","tracking_no":"T","carrier":"SF""#,
                r#""type":"judgment_revoked","order_id":"O1","judgment":2,"reason":"ok""#,
                r#""type":"deposit_topped_up","shop_id":"S1","amount_fen":9223372036854775807"#,
            ] {
                seeds.push(line(fields).into_bytes());
            }
            seeds
        })
    }

    /// One change to a line: a byte replaced, bytes inserted, a range cut,
    /// the line cut short, a `"key":value` pair repeated, a value nested.
    #[derive(Clone, Debug)]
    enum Mutation {
        Replace(usize, u8),
        Insert(usize, Vec<u8>),
        Cut(usize, usize),
        Truncate(usize),
        RepeatPair(usize),
        Nest(usize),
    }

    fn mutation() -> impl proptest::strategy::Strategy<Value = Mutation> {
        use proptest::prelude::*;
        let tokens = prop_oneof![
            proptest::collection::vec(any::<u8>(), 1..4),
            proptest::sample::select(vec![
                &b"\\"[..],
                b"\"",
                b"\\u0000",
                b"\\ud800",
                b"{",
                b"}",
                b"[",
                b"]",
                b",",
                b":",
                b"null",
                b"-0",
                b"1e999",
                b"\xf0\x9f\x98",
                b"\x1b[31m",
                b" ",
                b"\t",
            ])
            .prop_map(<[u8]>::to_vec),
        ];
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Replace(at, byte)),
            (any::<usize>(), tokens).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
            (any::<usize>(), 1usize..16).prop_map(|(at, n)| Mutation::Cut(at, n)),
            any::<usize>().prop_map(Mutation::Truncate),
            any::<usize>().prop_map(Mutation::RepeatPair),
            any::<usize>().prop_map(Mutation::Nest),
        ]
    }

    fn mutate(line: &mut Vec<u8>, mutation: &Mutation) {
        let at = |n: usize, len: usize| if len == 0 { 0 } else { n % (len + 1) };
        match mutation {
            Mutation::Replace(n, byte) if !line.is_empty() => {
                let i = n % line.len();
                line[i] = *byte;
            }
            Mutation::Insert(n, bytes) => {
                let i = at(*n, line.len());
                line.splice(i..i, bytes.iter().copied());
            }
            Mutation::Cut(n, count) => {
                let i = at(*n, line.len());
                let end = (i + count).min(line.len());
                line.drain(i..end);
            }
            Mutation::Truncate(n) => line.truncate(at(*n, line.len())),
            Mutation::RepeatPair(n) | Mutation::Nest(n) => {
                // A pair starts after `{` or `,` with a quote, and (in
                // these lines) ends at the next `,` or `}`.
                let starts: Vec<usize> = (1..line.len())
                    .filter(|&i| line[i] == b'"' && matches!(line[i - 1], b'{' | b','))
                    .collect();
                if starts.is_empty() {
                    return;
                }
                let start = starts[n % starts.len()];
                let Some(len) = line[start..].iter().position(|b| matches!(b, b',' | b'}')) else {
                    return;
                };
                let pair = line[start..start + len].to_vec();
                if matches!(mutation, Mutation::RepeatPair(_)) {
                    line.splice(start..start, [&pair[..], b","].concat());
                } else if let Some(colon) = pair.iter().position(|&b| b == b':') {
                    // `"k":v` becomes `"k":{"k":v,"k":v}`: nested, with a
                    // key named twice inside.
                    let nested = [&pair[..=colon], b"{", &pair[..], b",", &pair[..], b"}"].concat();
                    line.splice(start..start + len, nested);
                }
            }
            Mutation::Replace(..) => {}
        }
    }

    /// What a line reads as on every way in, checked against each other:
    /// `parse_line` (fast path first), the reference path alone, a shared
    /// `ParsedLines` buffer, and the scanner alone where it accepts. A
    /// rejection is a reason code of EVENTS.md; an accepted line's
    /// canonical JSON reads back as the same event and JSON, and its
    /// compact form, when kept, gives both back.
    fn check_every_path(bytes: &[u8], shared: &mut ParsedLines) {
        let text = String::from_utf8_lossy(bytes);
        let result = parse_line(bytes);
        let mut ours = ParsedLines::default();
        let pushed = ours.push(bytes);
        let pushed_shared = shared.push(bytes);
        match &result {
            Err(reject) => {
                assert!(is_parse_reason(&reject.code()), "{reject:?}: {text}");
                assert_eq!(pushed, Err(*reject), "{text}");
                assert_eq!(pushed_shared, Err(*reject), "{text}");
            }
            Ok(parsed) => {
                let kept = ours.get(pushed.expect("accepted alike")).expect("kept");
                assert_eq!(kept.event(), Ok(parsed.event.clone()), "{text}");
                assert_eq!(kept.payload.canonical_json(), &parsed.canonical_json[..]);
                let kept = shared.get(pushed_shared.expect("alike")).expect("kept");
                assert_eq!(kept.event(), Ok(parsed.event.clone()), "{text}");
                let again = parse_line(&parsed.canonical_json).expect("canonical reads");
                assert_eq!(again.event, parsed.event, "{text}");
                assert_eq!(again.canonical_json, parsed.canonical_json, "{text}");
                if let Some(compact) = &parsed.compact {
                    assert_eq!(
                        crate::compact::decode_event(compact).as_ref(),
                        Some(&parsed.event)
                    );
                    assert_eq!(
                        crate::compact::canonical_json(compact).as_ref(),
                        Some(&parsed.canonical_json)
                    );
                }
            }
        }
        if bytes.len() <= MAX_LINE_BYTES {
            let reference = parse_line_slow(bytes);
            match (&result, &reference) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a.event, b.event, "{text}");
                    assert_eq!(a.canonical_json, b.canonical_json, "{text}");
                }
                (a, b) => assert_eq!(a.as_ref().err(), b.as_ref().err(), "{text}"),
            }
            if let Some(fast) = fast::parse(bytes) {
                let reference = reference.expect("the scanner accepts only valid lines");
                assert_eq!(fast.event, reference.event, "{text}");
                assert_eq!(fast.canonical_json, reference.canonical_json, "{text}");
            }
        }
    }

    /// How many cases each fuzz run takes: `PENALTY_FUZZ_CASES`, or a
    /// default that keeps it to a few seconds in a debug build.
    fn fuzz_cases(default: u32) -> u32 {
        std::env::var("PENALTY_FUZZ_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: fuzz_cases(1500),
            ..proptest::prelude::ProptestConfig::default()
        })]
        /// Issue 20 (fuzzing the event-line parser): a corpus line with up
        /// to six mutations, read on every path (`check_every_path`): no
        /// panic, the paths agree, every rejection is a typed reason.
        #[test]
        fn fuzz_mutated_lines_read_alike_on_every_path(
            seed in proptest::prelude::any::<proptest::sample::Index>(),
            mutations in proptest::collection::vec(mutation(), 0..6),
        ) {
            let seeds = fuzz_seeds();
            let mut bytes = seed.get(seeds).clone();
            for mutation in &mutations {
                mutate(&mut bytes, mutation);
            }
            check_every_path(&bytes, &mut ParsedLines::default());
        }

        /// Arbitrary bytes, and arbitrary text, on every path.
        #[test]
        fn fuzz_arbitrary_bytes_read_alike_on_every_path(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            text in "\\PC{0,200}",
        ) {
            let mut shared = ParsedLines::default();
            check_every_path(&bytes, &mut shared);
            check_every_path(text.as_bytes(), &mut shared);
            check_every_path(format!("{{{text}}}").as_bytes(), &mut shared);
        }
    }

    #[test]
    fn binary_garbage_is_invalid_json_not_a_panic() {
        assert_eq!(
            parse_line(&[0xff, 0xfe, 0x00, 0x7b]).unwrap_err(),
            Reject::InvalidJson
        );
    }
}

//! The event types of EVENTS.md as values: [`EventType`] (the one list of
//! types, with names and codes), the owned [`Event`] and [`EventKind`], the
//! borrowed [`KindRef`] that folds allocate nothing for, and the flat
//! [`KindFields`] the compact encodings hold.

use serde::{Deserialize, Serialize};

use crate::time::UnixNs;

/// The longest line ingest accepts (EVENTS.md): 64 KiB, line ending excluded.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// The longest identifier (`order_id`, `shop_id`, `product_id`, `tracking_no`).
pub const MAX_ID_BYTES: usize = 128;
/// Judgment numbers a `judgment_revoked` event may name (EVENTS.md).
pub const MAX_REVOCABLE_JUDGMENT: u8 = 3;

// The rules of single fields (EVENTS.md), each in one place: the scanner,
// the reference parser and the log's check of a compact form
// (`compact::decode_valid`) all ask these.

/// Whether `text` is long enough and short enough for an identifier: from
/// 1 to [`MAX_ID_BYTES`] bytes (that it is UTF-8 is the caller's to know).
pub(crate) fn id_fits(text: &[u8]) -> bool {
    !text.is_empty() && text.len() <= MAX_ID_BYTES
}

/// Whether `amount_fen` is an amount: at least one fen.
pub(crate) fn amount_fits(amount_fen: i64) -> bool {
    amount_fen >= 1
}

/// Whether `judgment` is a judgment a `judgment_revoked` event may name.
pub(crate) fn judgment_fits(judgment: i64) -> bool {
    (1..=i64::from(MAX_REVOCABLE_JUDGMENT)).contains(&judgment)
}

/// Whether a payment's presale deadline is allowed: absent, or not
/// before the payment.
pub(crate) fn ship_by_fits(ship_by: Option<UnixNs>, at: UnixNs) -> bool {
    ship_by.is_none_or(|ship_by| ship_by >= at)
}

/// Whether `byte` cannot stand as itself inside a JSON string: a quote, a
/// backslash or a control character. A string without any is "plain": its
/// JSON is its bytes between quotes, which read back as the same bytes.
pub(crate) fn ends_plain_string(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

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
    pub ship_by: Option<UnixNs>,
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
    pub at: UnixNs,
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
        ship_by: Option<UnixNs>,
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
        ship_by: Option<UnixNs>,
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

//! A compact binary form of an event, from which both the typed [`Event`] and
//! its canonical JSON are recovered without parsing JSON.
//!
//! Why: replaying the log is bound by parsing JSON (about 0.7 µs an event),
//! while decoding this form takes a small fraction of that. Exactness is by
//! construction: [`canonical_json`] of a form reproduces the line's canonical
//! JSON byte for byte, so the log can keep the compact form instead of the
//! JSON and lose nothing. Only lines read by the fast scanner get a form, and
//! their canonical JSON is each field's raw text under its key, in key order;
//! the form keeps every text verbatim, and the numbers, which the scanner
//! admits only as the digits `itoa` writes back. The one field written back
//! differently is the event id (lower case), so a line whose id has an
//! upper-case digit stays JSON, as do lines with escapes or extra fields.
//! Ingest used to regenerate each line's JSON from its form and compare, a
//! quarter of its instructions; now debug builds do, and a property test
//! over generated lines of every kind and shape holds the two writers equal.
//!
//! Layout (integers big-endian; `text` is a u8 length and UTF-8 bytes,
//! `long` a u16 length and bytes):
//!
//! ```text
//! u8 type (0 paid, 1 shipped, 2 tracking_uploaded, 3 tracking_rejected,
//!          4 refunded, 5 refund_failed, 6 judgment_revoked, 7 deposit_topped_up)
//! u128 event_id, i64 at (ns), text at as written
//! paid:               text order_id, text shop_id, text product_id, i64 amount_fen,
//!                     u8 has_ship_by [i64 ship_by, text ship_by as written]
//! shipped / uploaded: text order_id, text tracking_no, u8 has_carrier [long carrier]
//! tracking_rejected:  text order_id, text tracking_no
//! refunded:           text order_id, i64 amount_fen
//! refund_failed:      text order_id
//! judgment_revoked:   text order_id, u8 judgment, u8 has_reason [long reason]
//! deposit_topped_up:  text shop_id, i64 amount_fen
//! ```

use crate::event::{Event, KindRef};
use crate::time::Instant;

/// The texts of a line that the typed event does not keep.
pub(crate) struct Texts<'a> {
    pub at: &'a [u8],
    pub ship_by: Option<&'a [u8]>,
    pub carrier: Option<&'a [u8]>,
    pub reason: Option<&'a [u8]>,
}

/// The type codes of the layout.
pub(crate) const PAID: u8 = 0;
pub(crate) const SHIPPED: u8 = 1;
pub(crate) const TRACKING_UPLOADED: u8 = 2;
pub(crate) const TRACKING_REJECTED: u8 = 3;
pub(crate) const REFUNDED: u8 = 4;
pub(crate) const REFUND_FAILED: u8 = 5;
pub(crate) const JUDGMENT_REVOKED: u8 = 6;
pub(crate) const DEPOSIT_TOPPED_UP: u8 = 7;

/// A line's kind as the fast scanner holds it: the type as its code, and
/// the identifiers as bytes, already checked as UTF-8 but not made text
/// (making text of them took a call per identifier, on every line). What
/// the type does not have is empty or zero.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KindBytes<'a> {
    pub code: u8,
    pub order_id: &'a [u8],
    pub shop_id: &'a [u8],
    pub product_id: &'a [u8],
    pub tracking_no: &'a [u8],
    pub amount_fen: i64,
    pub judgment: u8,
    pub ship_by: Option<Instant>,
}

impl<'a> KindBytes<'a> {
    /// The kind with its identifiers as text; `None` for an unknown code
    /// or an identifier that is not UTF-8, which the scanner never gives.
    pub fn to_kind_ref(self) -> Option<KindRef<'a>> {
        let text = |bytes: &'a [u8]| std::str::from_utf8(bytes).ok();
        kind_ref(
            self.code,
            Ids {
                order_id: text(self.order_id)?,
                shop_id: text(self.shop_id)?,
                product_id: text(self.product_id)?,
                tracking_no: text(self.tracking_no)?,
            },
            self.amount_fen,
            self.judgment,
            self.ship_by,
        )
    }
}

/// A kind's identifiers as text; those its type does not have are empty.
struct Ids<'a> {
    order_id: &'a str,
    shop_id: &'a str,
    product_id: &'a str,
    tracking_no: &'a str,
}

/// The kind of type `code` with these fields (those of other types are
/// ignored); `None` for an unknown code. The one place codes become kinds,
/// for the scanner's [`KindBytes`] and for a stored form ([`decode_ref`]).
fn kind_ref<'a>(
    code: u8,
    ids: Ids<'a>,
    amount_fen: i64,
    judgment: u8,
    ship_by: Option<Instant>,
) -> Option<KindRef<'a>> {
    let Ids {
        order_id,
        shop_id,
        product_id,
        tracking_no,
    } = ids;
    Some(match code {
        PAID => KindRef::Paid {
            order_id,
            shop_id,
            product_id,
            amount_fen,
            ship_by,
        },
        SHIPPED => KindRef::Shipped {
            order_id,
            tracking_no,
        },
        TRACKING_UPLOADED => KindRef::TrackingUploaded {
            order_id,
            tracking_no,
        },
        TRACKING_REJECTED => KindRef::TrackingRejected {
            order_id,
            tracking_no,
        },
        REFUNDED => KindRef::Refunded {
            order_id,
            amount_fen,
        },
        REFUND_FAILED => KindRef::RefundFailed { order_id },
        JUDGMENT_REVOKED => KindRef::JudgmentRevoked { order_id, judgment },
        DEPOSIT_TOPPED_UP => KindRef::DepositToppedUp {
            shop_id,
            amount_fen,
        },
        _ => return None,
    })
}

fn text(out: &mut Vec<u8>, value: impl AsRef<[u8]>) -> Option<()> {
    let value = value.as_ref();
    out.push(u8::try_from(value.len()).ok()?);
    out.extend_from_slice(value);
    Some(())
}

fn long(out: &mut Vec<u8>, value: impl AsRef<[u8]>) -> Option<()> {
    let value = value.as_ref();
    out.extend_from_slice(&u16::try_from(value.len()).ok()?.to_be_bytes());
    out.extend_from_slice(value);
    Some(())
}

/// Appends the compact form of a line read by the fast scanner to `out`,
/// where its canonical JSON already lies at `canonical` (an empty range
/// when it was not written: the caller checks the form then), and returns
/// where the form lies; or `None` (with `out` as it was) when the form would not
/// reproduce the canonical JSON exactly: when the event id was not written
/// in lower case (`id_lowercase`), or a text is too long for its length
/// field. Why that is all it takes is in the module's documentation.
pub(crate) fn encode_into(
    event_id: u128,
    id_lowercase: bool,
    at: Instant,
    kind: &KindBytes<'_>,
    texts: &Texts<'_>,
    canonical: std::ops::Range<usize>,
    out: &mut Vec<u8>,
) -> Option<std::ops::Range<usize>> {
    let start = out.len();
    if id_lowercase && write_form(event_id, at, kind, texts, out).is_some() {
        debug_assert!(
            canonical.is_empty()
                || out
                    .split_at(start)
                    .0
                    .get(canonical)
                    .is_some_and(|json| regenerates(&out[start..], json)),
            "the compact form reproduces the canonical JSON"
        );
        return Some(start..out.len());
    }
    out.truncate(start);
    None
}

fn write_form(
    event_id: u128,
    at: Instant,
    kind: &KindBytes<'_>,
    texts: &Texts<'_>,
    out: &mut Vec<u8>,
) -> Option<()> {
    // The fixed-size head (type, id, instant and the length of `at` as
    // written) as one constant-size copy rather than four pieces.
    let mut head = [0; 26];
    head[0] = kind.code;
    head[1..17].copy_from_slice(&event_id.to_be_bytes());
    head[17..25].copy_from_slice(&at.0.to_be_bytes());
    head[25] = u8::try_from(texts.at.len()).ok()?;
    out.extend_from_slice(&head);
    out.extend_from_slice(texts.at);
    match kind.code {
        PAID => {
            text(out, kind.order_id)?;
            text(out, kind.shop_id)?;
            text(out, kind.product_id)?;
            out.extend_from_slice(&kind.amount_fen.to_be_bytes());
            match (kind.ship_by, texts.ship_by) {
                (Some(instant), Some(written)) => {
                    out.push(1);
                    out.extend_from_slice(&instant.0.to_be_bytes());
                    text(out, written)?;
                }
                (None, None) => out.push(0),
                _ => return None,
            }
        }
        SHIPPED | TRACKING_UPLOADED => {
            text(out, kind.order_id)?;
            text(out, kind.tracking_no)?;
            match texts.carrier {
                Some(carrier) => {
                    out.push(1);
                    long(out, carrier)?;
                }
                None => out.push(0),
            }
        }
        TRACKING_REJECTED => {
            text(out, kind.order_id)?;
            text(out, kind.tracking_no)?;
        }
        REFUNDED => {
            text(out, kind.order_id)?;
            out.extend_from_slice(&kind.amount_fen.to_be_bytes());
        }
        REFUND_FAILED => text(out, kind.order_id)?,
        JUDGMENT_REVOKED => {
            text(out, kind.order_id)?;
            out.push(kind.judgment);
            match texts.reason {
                Some(reason) => {
                    out.push(1);
                    long(out, reason)?;
                }
                None => out.push(0),
            }
        }
        DEPOSIT_TOPPED_UP => {
            text(out, kind.shop_id)?;
            out.extend_from_slice(&kind.amount_fen.to_be_bytes());
        }
        _ => return None,
    }
    Some(())
}

/// A reader over a compact form; every method fails softly on short input.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn u128(&mut self) -> Option<u128> {
        Some(u128::from_be_bytes(self.take(16)?.try_into().ok()?))
    }

    fn text(&mut self) -> Option<&'a str> {
        let len = usize::from(self.u8()?);
        std::str::from_utf8(self.take(len)?).ok()
    }

    fn long(&mut self) -> Option<&'a str> {
        let len = usize::from(u16::from_be_bytes(self.take(2)?.try_into().ok()?));
        std::str::from_utf8(self.take(len)?).ok()
    }

    fn flag(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
}

/// Everything a compact form holds, borrowed.
struct Fields<'a> {
    code: u8,
    event_id: u128,
    at: i64,
    at_text: &'a str,
    order_id: &'a str,
    shop_id: &'a str,
    product_id: &'a str,
    tracking_no: &'a str,
    amount_fen: i64,
    judgment: u8,
    ship_by: Option<(i64, &'a str)>,
    carrier: Option<&'a str>,
    reason: Option<&'a str>,
}

fn fields(bytes: &[u8]) -> Option<Fields<'_>> {
    let mut r = Reader { bytes };
    let mut f = Fields {
        code: r.u8()?,
        event_id: r.u128()?,
        at: r.i64()?,
        at_text: r.text()?,
        order_id: "",
        shop_id: "",
        product_id: "",
        tracking_no: "",
        amount_fen: 0,
        judgment: 0,
        ship_by: None,
        carrier: None,
        reason: None,
    };
    match f.code {
        PAID => {
            f.order_id = r.text()?;
            f.shop_id = r.text()?;
            f.product_id = r.text()?;
            f.amount_fen = r.i64()?;
            if r.flag()? {
                f.ship_by = Some((r.i64()?, r.text()?));
            }
        }
        SHIPPED | TRACKING_UPLOADED => {
            f.order_id = r.text()?;
            f.tracking_no = r.text()?;
            if r.flag()? {
                f.carrier = Some(r.long()?);
            }
        }
        TRACKING_REJECTED => {
            f.order_id = r.text()?;
            f.tracking_no = r.text()?;
        }
        REFUNDED => {
            f.order_id = r.text()?;
            f.amount_fen = r.i64()?;
        }
        REFUND_FAILED => f.order_id = r.text()?,
        JUDGMENT_REVOKED => {
            f.order_id = r.text()?;
            f.judgment = r.u8()?;
            if r.flag()? {
                f.reason = Some(r.long()?);
            }
        }
        DEPOSIT_TOPPED_UP => {
            f.shop_id = r.text()?;
            f.amount_fen = r.i64()?;
        }
        _ => return None,
    }
    r.bytes.is_empty().then_some(f)
}

/// The event of a compact form with borrowed text: its id, instant and kind.
pub fn decode_ref(bytes: &[u8]) -> Option<(u128, Instant, KindRef<'_>)> {
    let f = fields(bytes)?;
    let kind = kind_ref(
        f.code,
        Ids {
            order_id: f.order_id,
            shop_id: f.shop_id,
            product_id: f.product_id,
            tracking_no: f.tracking_no,
        },
        f.amount_fen,
        f.judgment,
        f.ship_by.map(|(ns, _)| Instant(ns)),
    )?;
    Some((f.event_id, Instant(f.at), kind))
}

/// Events decoded ahead of their fold, their text copied into one string:
/// what a replay's reading thread hands to the folding thread. Why: decoding
/// a compact form (checking its text is UTF-8 included) took about a fifth
/// of a replay's folding thread, which every event waits for, while the
/// reading thread sat mostly idle.
#[derive(Debug, Default)]
pub struct EventBuffer {
    text: String,
    events: Vec<Held>,
}

/// One event of an [`EventBuffer`]: its kind's code (as in the compact
/// form), numbers, and up to three texts as ranges of the buffer's string.
#[derive(Clone, Copy, Debug)]
struct Held {
    at: Instant,
    code: u8,
    judgment: u8,
    texts: [(u32, u32); 3],
    amount_fen: i64,
    ship_by: Option<Instant>,
}

impl EventBuffer {
    /// Room for `events` events of about `text_bytes` bytes of text in all.
    pub fn with_capacity(events: usize, text_bytes: usize) -> EventBuffer {
        EventBuffer {
            text: String::with_capacity(text_bytes),
            events: Vec::with_capacity(events),
        }
    }

    /// Keeps an event and returns its position; `None` only when the
    /// buffer's text would pass 4 GiB.
    pub fn push(&mut self, at: Instant, kind: &KindRef<'_>) -> Option<usize> {
        let (code, texts, amount_fen, judgment, ship_by): (u8, [&str; 3], i64, u8, _) = match *kind
        {
            KindRef::Paid {
                order_id,
                shop_id,
                product_id,
                amount_fen,
                ship_by,
            } => (
                PAID,
                [order_id, shop_id, product_id],
                amount_fen,
                0,
                ship_by,
            ),
            KindRef::Shipped {
                order_id,
                tracking_no,
            } => (SHIPPED, [order_id, tracking_no, ""], 0, 0, None),
            KindRef::TrackingUploaded {
                order_id,
                tracking_no,
            } => (TRACKING_UPLOADED, [order_id, tracking_no, ""], 0, 0, None),
            KindRef::TrackingRejected {
                order_id,
                tracking_no,
            } => (TRACKING_REJECTED, [order_id, tracking_no, ""], 0, 0, None),
            KindRef::Refunded {
                order_id,
                amount_fen,
            } => (REFUNDED, [order_id, "", ""], amount_fen, 0, None),
            KindRef::RefundFailed { order_id } => (REFUND_FAILED, [order_id, "", ""], 0, 0, None),
            KindRef::JudgmentRevoked { order_id, judgment } => {
                (JUDGMENT_REVOKED, [order_id, "", ""], 0, judgment, None)
            }
            KindRef::DepositToppedUp {
                shop_id,
                amount_fen,
            } => (DEPOSIT_TOPPED_UP, [shop_id, "", ""], amount_fen, 0, None),
        };
        let mut ranges = [(0u32, 0u32); 3];
        for (range, text) in ranges.iter_mut().zip(texts) {
            let start = u32::try_from(self.text.len()).ok()?;
            let end = u32::try_from(self.text.len() + text.len()).ok()?;
            self.text.push_str(text);
            *range = (start, end);
        }
        self.events.push(Held {
            at,
            code,
            judgment,
            texts: ranges,
            amount_fen,
            ship_by,
        });
        Some(self.events.len() - 1)
    }

    /// The event at `position`, as [`EventBuffer::push`] took it.
    pub fn get(&self, position: usize) -> Option<(Instant, KindRef<'_>)> {
        let held = self.events.get(position)?;
        let text = |n: usize| {
            let (start, end) = held.texts[n];
            self.text.get(start as usize..end as usize)
        };
        let kind = match held.code {
            PAID => KindRef::Paid {
                order_id: text(0)?,
                shop_id: text(1)?,
                product_id: text(2)?,
                amount_fen: held.amount_fen,
                ship_by: held.ship_by,
            },
            SHIPPED => KindRef::Shipped {
                order_id: text(0)?,
                tracking_no: text(1)?,
            },
            TRACKING_UPLOADED => KindRef::TrackingUploaded {
                order_id: text(0)?,
                tracking_no: text(1)?,
            },
            TRACKING_REJECTED => KindRef::TrackingRejected {
                order_id: text(0)?,
                tracking_no: text(1)?,
            },
            REFUNDED => KindRef::Refunded {
                order_id: text(0)?,
                amount_fen: held.amount_fen,
            },
            REFUND_FAILED => KindRef::RefundFailed { order_id: text(0)? },
            JUDGMENT_REVOKED => KindRef::JudgmentRevoked {
                order_id: text(0)?,
                judgment: held.judgment,
            },
            DEPOSIT_TOPPED_UP => KindRef::DepositToppedUp {
                shop_id: text(0)?,
                amount_fen: held.amount_fen,
            },
            _ => return None,
        };
        Some((held.at, kind))
    }

    /// Events kept.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is kept.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// The typed event of a compact form.
pub fn decode_event(bytes: &[u8]) -> Option<Event> {
    let (event_id, at, kind) = decode_ref(bytes)?;
    Some(Event {
        event_id,
        at,
        kind: kind.to_kind(),
    })
}

/// The canonical JSON (keys sorted, compact) of a compact form.
pub fn canonical_json(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(192);
    write_canonical_json(bytes, &mut out)?;
    Some(out)
}

/// Whether the compact form `bytes` regenerates exactly `canonical`: what
/// debug builds check of every compact form written, and the property
/// tests of all of them. It compares piece by piece as it goes instead of
/// building the JSON.
pub fn regenerates(bytes: &[u8], canonical: &[u8]) -> bool {
    let mut matcher = Matcher {
        rest: canonical,
        equal: true,
    };
    write_canonical_json(bytes, &mut matcher).is_some() && matcher.equal && matcher.rest.is_empty()
}

/// Where [`write_canonical_json`] writes.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Compares what is written with the expected bytes, consuming them.
struct Matcher<'a> {
    rest: &'a [u8],
    equal: bool,
}

impl Sink for Matcher<'_> {
    fn put(&mut self, bytes: &[u8]) {
        match self.rest.strip_prefix(bytes) {
            Some(rest) if self.equal => self.rest = rest,
            _ => self.equal = false,
        }
    }
}

fn write_canonical_json(bytes: &[u8], out: &mut impl Sink) -> Option<()> {
    let f = fields(bytes)?;
    let type_name = match f.code {
        PAID => "paid",
        SHIPPED => "shipped",
        TRACKING_UPLOADED => "tracking_uploaded",
        TRACKING_REJECTED => "tracking_rejected",
        REFUNDED => "refunded",
        REFUND_FAILED => "refund_failed",
        JUDGMENT_REVOKED => "judgment_revoked",
        _ => "deposit_topped_up",
    };
    let mut id_buffer = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let event_id: &str = uuid::Uuid::from_u128(f.event_id)
        .hyphenated()
        .encode_lower(&mut id_buffer);
    // Integers as `to_string` writes them, without allocating.
    let mut amount_buffer = itoa::Buffer::new();
    let amount = amount_buffer.format(f.amount_fen);
    let mut judgment_buffer = itoa::Buffer::new();
    let judgment = judgment_buffer.format(f.judgment);
    // (key, value, quoted): keys in byte order, as serde_json's map sorts them.
    let mut pairs: [(&str, &str, bool); 12] = [("", "", false); 12];
    let mut count = 0;
    let mut pair = |key, value, quoted| {
        pairs[count] = (key, value, quoted);
        count += 1;
    };
    let has_amount = matches!(f.code, PAID | REFUNDED | DEPOSIT_TOPPED_UP);
    if has_amount {
        pair("amount_fen", amount, false);
    }
    pair("at", f.at_text, true);
    if let Some(carrier) = f.carrier {
        pair("carrier", carrier, true);
    }
    pair("event_id", event_id, true);
    if f.code == JUDGMENT_REVOKED {
        pair("judgment", judgment, false);
    }
    if f.code != DEPOSIT_TOPPED_UP {
        pair("order_id", f.order_id, true);
    }
    if f.code == PAID {
        pair("product_id", f.product_id, true);
    }
    if let Some(reason) = f.reason {
        pair("reason", reason, true);
    }
    if let Some((_, written)) = f.ship_by {
        pair("ship_by", written, true);
    }
    if matches!(f.code, PAID | DEPOSIT_TOPPED_UP) {
        pair("shop_id", f.shop_id, true);
    }
    if matches!(f.code, SHIPPED | TRACKING_UPLOADED | TRACKING_REJECTED) {
        pair("tracking_no", f.tracking_no, true);
    }
    pair("type", type_name, true);
    out.put(b"{");
    for (i, (key, value, quoted)) in pairs[..count].iter().enumerate() {
        if i > 0 {
            out.put(b",");
        }
        out.put(b"\"");
        out.put(key.as_bytes());
        out.put(b"\":");
        if *quoted {
            out.put(b"\"");
            out.put(value.as_bytes());
            out.put(b"\"");
        } else {
            out.put(value.as_bytes());
        }
    }
    out.put(b"}");
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::UtcOffset;
    use proptest::prelude::*;

    /// An id as the fast scanner takes it: no quote, backslash or control
    /// character, some of it beyond ASCII.
    fn id_text() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_./:店铺é-]{1,24}"
    }

    /// An instant as events write it: any offset, sometimes a fraction.
    fn instant_text(seconds: i64, offset_minutes: i32, fraction: bool) -> String {
        let offset = UtcOffset {
            seconds: offset_minutes * 60,
        };
        let nanos = seconds * 1_000_000_000 + if fraction { 250_000_000 } else { 0 };
        Instant(nanos).to_rfc3339(offset)
    }

    prop_compose! {
        /// A line the fast scanner reads, of any kind, with any of its
        /// optional fields, keys in any order, any spacing, and an event id
        /// in any case.
        fn scanned_line()(
            code in 0u8..8,
            id in any::<u128>(),
            id_case in 0u8..3,
            at_seconds in 1_600_000_000i64..1_900_000_000,
            offset_minutes in -720i32..=840,
            fraction in proptest::bool::weighted(0.1),
            ship_by_hours in proptest::option::of(0i64..2000),
            order in id_text(),
            other in id_text(),
            product in id_text(),
            carrier in proptest::option::of("[A-Za-z 顺丰]{0,12}"),
            amount in 1i64..=i64::MAX,
            judgment in 1u8..=crate::event::MAX_REVOCABLE_JUDGMENT,
            key_order in Just(()).prop_perturb(|_, mut rng| rng.next_u64()),
            spaces in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("\t ")], 8),
        ) -> (String, bool) {
            let id_text = uuid::Uuid::from_u128(id).hyphenated().to_string();
            let id_text = match id_case {
                0 => id_text,
                1 => id_text.to_uppercase(),
                _ => id_text
                    .chars()
                    .enumerate()
                    .map(|(i, c)| if i % 3 == 0 { c.to_ascii_uppercase() } else { c })
                    .collect(),
            };
            let lowercase = !id_text.bytes().any(|b| b.is_ascii_uppercase());
            let at = instant_text(at_seconds, offset_minutes, fraction);
            let quoted = |text: &str| format!("\"{text}\"");
            let mut fields: Vec<(&str, String)> = vec![
                ("event_id", quoted(&id_text)),
                ("at", quoted(&at)),
            ];
            let type_name = ["paid", "shipped", "tracking_uploaded", "tracking_rejected",
                "refunded", "refund_failed", "judgment_revoked", "deposit_topped_up"][usize::from(code)];
            fields.push(("type", quoted(type_name)));
            match type_name {
                "paid" => {
                    fields.push(("order_id", quoted(&order)));
                    fields.push(("shop_id", quoted(&other)));
                    fields.push(("product_id", quoted(&product)));
                    fields.push(("amount_fen", amount.to_string()));
                    if let Some(hours) = ship_by_hours {
                        // With `at`'s fraction, so that zero hours is the
                        // valid edge `ship_by == at`, not 0.25 s before it.
                        let ship_by = instant_text(at_seconds + hours * 3600, -offset_minutes, fraction);
                        fields.push(("ship_by", quoted(&ship_by)));
                    }
                }
                "shipped" | "tracking_uploaded" => {
                    fields.push(("order_id", quoted(&order)));
                    fields.push(("tracking_no", quoted(&other)));
                    if let Some(carrier) = &carrier {
                        fields.push(("carrier", quoted(carrier)));
                    }
                }
                "tracking_rejected" => {
                    fields.push(("order_id", quoted(&order)));
                    fields.push(("tracking_no", quoted(&other)));
                }
                "refunded" => {
                    fields.push(("order_id", quoted(&order)));
                    fields.push(("amount_fen", amount.to_string()));
                }
                "refund_failed" => fields.push(("order_id", quoted(&order))),
                "judgment_revoked" => {
                    fields.push(("order_id", quoted(&order)));
                    fields.push(("judgment", judgment.to_string()));
                    if let Some(reason) = &carrier {
                        fields.push(("reason", quoted(reason)));
                    }
                }
                _ => {
                    fields.push(("shop_id", quoted(&other)));
                    fields.push(("amount_fen", amount.to_string()));
                }
            }
            // A shuffle driven by one random number.
            let mut state = key_order | 1;
            for i in (1..fields.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                fields.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let body: Vec<String> = fields
                .iter()
                .enumerate()
                .map(|(i, (key, value))| {
                    let space = spaces[i % spaces.len()];
                    format!("{space}\"{key}\"{space}:{space}{value}")
                })
                .collect();
            (format!("{{{}{}}}", body.join(","), spaces[7]), lowercase)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The compact form, kept without regenerating the JSON on ingest,
        /// gives back the line's canonical JSON exactly, for every kind and
        /// shape the fast scanner reads; and every such line with a
        /// lower-case id gets a form.
        #[test]
        fn every_compact_form_regenerates_its_canonical_json((line, lowercase) in scanned_line()) {
            let parsed = crate::event::parse_line(line.as_bytes()).unwrap();
            match &parsed.compact {
                Some(compact) => {
                    let regenerated = canonical_json(compact).unwrap();
                    prop_assert_eq!(
                        String::from_utf8_lossy(&regenerated),
                        String::from_utf8_lossy(&parsed.canonical_json)
                    );
                    prop_assert!(regenerates(compact, &parsed.canonical_json));
                    prop_assert!(lowercase);
                }
                None => prop_assert!(!lowercase, "no compact form for {}", line),
            }
        }
    }

    #[test]
    fn regenerates_is_exact() {
        let line = br#"{"amount_fen":19900,"at":"2026-03-01T10:00:00+08:00","event_id":"0b6f3c1e-6a53-4f43-9f0e-2d1c7f4a9b10","order_id":"O1","product_id":"P1","shop_id":"S1","type":"paid"}"#;
        let parsed = crate::event::parse_line(line).unwrap();
        let compact = parsed.compact.unwrap();
        assert_eq!(canonical_json(&compact).unwrap(), line.to_vec());
        assert!(regenerates(&compact, line));
        assert!(!regenerates(&compact, &line[..line.len() - 1]));
        let mut longer = line.to_vec();
        longer.push(b' ');
        assert!(!regenerates(&compact, &longer));
        let mut changed = line.to_vec();
        changed[20] ^= 1;
        assert!(!regenerates(&compact, &changed));
    }

    /// Every event of the scenarios, of every kind, comes back out of one
    /// shared buffer as it went in.
    #[test]
    fn an_event_buffer_gives_back_every_kind_as_kept() {
        let scenarios =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/scenarios");
        let mut events = Vec::new();
        for entry in std::fs::read_dir(scenarios).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path().join("events.jsonl"))
                .unwrap_or_default();
            events.extend(
                text.lines()
                    .filter_map(|line| crate::event::parse_line(line.as_bytes()).ok())
                    .map(|parsed| parsed.event),
            );
        }
        let mut buffer = EventBuffer::default();
        let positions: Vec<usize> = events
            .iter()
            .map(|event| buffer.push(event.at, &event.kind_ref()).unwrap())
            .collect();
        assert_eq!(buffer.len(), events.len());
        let mut kinds = std::collections::BTreeSet::new();
        for (event, position) in events.iter().zip(positions) {
            assert_eq!(buffer.get(position), Some((event.at, event.kind_ref())));
            kinds.insert(event.type_name());
        }
        assert_eq!(kinds.len(), 8, "the scenarios use every kind: {kinds:?}");
        assert_eq!(buffer.get(events.len()), None);
    }
}

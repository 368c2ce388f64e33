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
//! Release builds take this on trust: debug builds regenerate each line's
//! JSON from its form and compare, and a property test over generated lines
//! of every kind and shape holds the two writers equal.
//!
//! Layout (integers big-endian; `text` is a u8 length and UTF-8 bytes,
//! `long` a u16 length and bytes):
//!
//! ```text
//! u8 type (EventType::as_code: 0 paid, 1 shipped, 2 tracking_uploaded,
//!          3 tracking_rejected, 4 refunded, 5 refund_failed, 6 judgment_revoked,
//!          7 deposit_topped_up)
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

use super::{Event, EventType, KindFields, KindRef};
use crate::time::UnixNs;

/// The texts of a line that the typed event does not keep.
pub(crate) struct Texts<'a> {
    pub at: &'a [u8],
    pub ship_by: Option<&'a [u8]>,
    pub carrier: Option<&'a [u8]>,
    pub reason: Option<&'a [u8]>,
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
    at: UnixNs,
    kind: &KindFields<&[u8]>,
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
    at: UnixNs,
    kind: &KindFields<&[u8]>,
    texts: &Texts<'_>,
    out: &mut Vec<u8>,
) -> Option<()> {
    // The fixed-size head (type, id, instant and the length of `at` as
    // written) as one constant-size copy rather than four pieces.
    let mut head = [0; 26];
    head[0] = kind.event_type.as_code();
    head[1..17].copy_from_slice(&event_id.to_be_bytes());
    head[17..25].copy_from_slice(&at.0.to_be_bytes());
    head[25] = u8::try_from(texts.at.len()).ok()?;
    out.extend_from_slice(&head);
    out.extend_from_slice(texts.at);
    match kind.event_type {
        EventType::Paid => {
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
        EventType::Shipped | EventType::TrackingUploaded => {
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
        EventType::TrackingRejected => {
            text(out, kind.order_id)?;
            text(out, kind.tracking_no)?;
        }
        EventType::Refunded => {
            text(out, kind.order_id)?;
            out.extend_from_slice(&kind.amount_fen.to_be_bytes());
        }
        EventType::RefundFailed => text(out, kind.order_id)?,
        EventType::JudgmentRevoked => {
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
        EventType::DepositToppedUp => {
            text(out, kind.shop_id)?;
            out.extend_from_slice(&kind.amount_fen.to_be_bytes());
        }
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
    event_type: EventType,
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
        event_type: EventType::from_code(r.u8()?)?,
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
    match f.event_type {
        EventType::Paid => {
            f.order_id = r.text()?;
            f.shop_id = r.text()?;
            f.product_id = r.text()?;
            f.amount_fen = r.i64()?;
            if r.flag()? {
                f.ship_by = Some((r.i64()?, r.text()?));
            }
        }
        EventType::Shipped | EventType::TrackingUploaded => {
            f.order_id = r.text()?;
            f.tracking_no = r.text()?;
            if r.flag()? {
                f.carrier = Some(r.long()?);
            }
        }
        EventType::TrackingRejected => {
            f.order_id = r.text()?;
            f.tracking_no = r.text()?;
        }
        EventType::Refunded => {
            f.order_id = r.text()?;
            f.amount_fen = r.i64()?;
        }
        EventType::RefundFailed => f.order_id = r.text()?,
        EventType::JudgmentRevoked => {
            f.order_id = r.text()?;
            f.judgment = r.u8()?;
            if r.flag()? {
                f.reason = Some(r.long()?);
            }
        }
        EventType::DepositToppedUp => {
            f.shop_id = r.text()?;
            f.amount_fen = r.i64()?;
        }
    }
    r.bytes.is_empty().then_some(f)
}

/// The shop and the order a compact form names (as
/// [`crate::ledger::partition::shop_of`] and [`KindRef::order_id`] of its
/// decoded kind would), read without decoding the rest: what a reader of one
/// partition needs to tell its own events from the others', most of which it
/// then skips. `None` when the form does not decode that far.
pub fn shop_and_order(bytes: &[u8]) -> Option<(Option<&str>, Option<&str>)> {
    let mut r = Reader { bytes };
    let event_type = EventType::from_code(r.u8()?)?;
    // The event id and the instant, then the instant's text.
    r.take(16 + 8)?;
    let at_text = usize::from(r.u8()?);
    r.take(at_text)?;
    Some(match event_type {
        EventType::Paid => {
            let order_id = r.text()?;
            (Some(r.text()?), Some(order_id))
        }
        EventType::DepositToppedUp => (Some(r.text()?), None),
        EventType::Shipped
        | EventType::TrackingUploaded
        | EventType::TrackingRejected
        | EventType::Refunded
        | EventType::RefundFailed
        | EventType::JudgmentRevoked => (None, Some(r.text()?)),
    })
}

/// The event of a compact form with borrowed text: its id, instant and kind.
pub fn decode_ref(bytes: &[u8]) -> Option<(u128, UnixNs, KindRef<'_>)> {
    Some(event_ref(&fields(bytes)?))
}

/// [`decode_ref`], with the [`canonical_json`] appended to `out` (a buffer
/// the caller reuses), reading the compact form once: what the log's check
/// compares, for every stored event, without an allocation per event. On
/// `None` (not a compact form), `out` is as it was.
pub fn decode_ref_and_json<'a>(
    bytes: &'a [u8],
    out: &mut Vec<u8>,
) -> Option<(u128, UnixNs, KindRef<'a>)> {
    let f = fields(bytes)?;
    write_fields_json(&f, out);
    Some(event_ref(&f))
}

/// The event of a compact form when its canonical JSON would validate as
/// that very event: what the log's check of a stored event
/// ([`decode_ref_and_json`], then `parse_stored_with` of that JSON, then a
/// comparison of the two events) accepts, decided without writing or
/// parsing the JSON. `None` decides nothing: the caller takes that round
/// trip then, and its answer.
///
/// Why the answer is the round trip's: when every text of the form is
/// plain (see [`super::types::ends_plain_string`]), its JSON is the keys
/// of its type, each once, with the texts verbatim between quotes, so
/// both parsers read back exactly the form's texts and numbers and then
/// apply only the rules of single fields, asked here of the same
/// functions (`id_fits`, `amount_fits`, `judgment_fits`, `ship_by_fits`,
/// [`UnixNs::parse_rfc3339`]); and the events compare equal exactly when
/// the instants' texts read as the form's instants. A text that is not
/// plain gets `None`: its JSON may read back otherwise (an escape, another
/// key), which only the round trip tells. The property test
/// `decode_valid_is_the_round_trip` holds the two to one answer over
/// generated and mutated forms.
pub fn decode_valid(bytes: &[u8]) -> Option<(u128, UnixNs, KindRef<'_>)> {
    use super::types::{amount_fits, ends_plain_string, id_fits, judgment_fits, ship_by_fits};
    let f = fields(bytes)?;
    let plain = |text: &str| !text.bytes().any(ends_plain_string);
    let id = |text: &str| id_fits(text.as_bytes()) && plain(text);
    let instant =
        |text: &str, ns: i64| plain(text) && UnixNs::parse_rfc3339(text) == Some(UnixNs(ns));
    let valid = instant(f.at_text, f.at)
        && match f.event_type {
            EventType::Paid => {
                id(f.order_id)
                    && id(f.shop_id)
                    && id(f.product_id)
                    && amount_fits(f.amount_fen)
                    && f.ship_by.is_none_or(|(ns, text)| {
                        instant(text, ns) && ship_by_fits(Some(UnixNs(ns)), UnixNs(f.at))
                    })
            }
            EventType::Shipped | EventType::TrackingUploaded => {
                id(f.order_id) && id(f.tracking_no) && f.carrier.is_none_or(plain)
            }
            EventType::TrackingRejected => id(f.order_id) && id(f.tracking_no),
            EventType::Refunded => id(f.order_id) && amount_fits(f.amount_fen),
            EventType::RefundFailed => id(f.order_id),
            EventType::JudgmentRevoked => {
                id(f.order_id) && judgment_fits(i64::from(f.judgment)) && f.reason.is_none_or(plain)
            }
            EventType::DepositToppedUp => id(f.shop_id) && amount_fits(f.amount_fen),
        };
    valid.then(|| event_ref(&f))
}

/// The event id of a compact form and, for a `paid` event, its order id's
/// bytes, read without checking that any text is UTF-8: for a form already
/// found valid ([`decode_valid`]) by another thread, whose check of the
/// log needs only these two to compare with the block entry and to find
/// repeats. `None` when the form does not decode that far.
pub fn event_id_and_paid_order(bytes: &[u8]) -> Option<(u128, Option<&[u8]>)> {
    let mut r = Reader { bytes };
    let event_type = EventType::from_code(r.u8()?)?;
    let event_id = r.u128()?;
    if event_type != EventType::Paid {
        return Some((event_id, None));
    }
    r.take(8)?;
    let at_text = usize::from(r.u8()?);
    r.take(at_text)?;
    let order_id = usize::from(r.u8()?);
    Some((event_id, Some(r.take(order_id)?)))
}

/// The event of decoded fields, with their text borrowed.
fn event_ref<'a>(f: &Fields<'a>) -> (u128, UnixNs, KindRef<'a>) {
    let kind = KindFields {
        event_type: f.event_type,
        order_id: f.order_id,
        shop_id: f.shop_id,
        product_id: f.product_id,
        tracking_no: f.tracking_no,
        amount_fen: f.amount_fen,
        judgment: f.judgment,
        ship_by: f.ship_by.map(|(ns, _)| UnixNs(ns)),
    };
    (f.event_id, UnixNs(f.at), kind.to_kind_ref())
}

/// Events decoded ahead of their fold, their text copied into one string:
/// what a replay's reading thread hands to the folding thread. Why: every
/// event waits for the folding thread, so decoding a compact form (checking
/// its text is UTF-8 included) belongs on the reading thread, which has time
/// to spare.
#[derive(Debug, Default)]
pub struct EventBuffer {
    text: String,
    events: Vec<BufferedEvent>,
}

/// One event of an [`EventBuffer`]: its kind's type and numbers, and its
/// four identifiers as the ends of consecutive ranges of the buffer's
/// string, the first starting at `start` (an identifier its type lacks is
/// empty).
#[derive(Clone, Copy, Debug)]
struct BufferedEvent {
    at: UnixNs,
    event_type: EventType,
    judgment: u8,
    start: u32,
    ends: [u32; 4],
    amount_fen: i64,
    ship_by: Option<UnixNs>,
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
    pub fn push(&mut self, at: UnixNs, kind: &KindRef<'_>) -> Option<usize> {
        let fields = kind.fields();
        let start = u32::try_from(self.text.len()).ok()?;
        let mut ends = [start; 4];
        let ids = [
            fields.order_id,
            fields.shop_id,
            fields.product_id,
            fields.tracking_no,
        ];
        for (end, text) in ends.iter_mut().zip(ids) {
            self.text.push_str(text);
            *end = u32::try_from(self.text.len()).ok()?;
        }
        self.events.push(BufferedEvent {
            at,
            event_type: fields.event_type,
            judgment: fields.judgment,
            start,
            ends,
            amount_fen: fields.amount_fen,
            ship_by: fields.ship_by,
        });
        Some(self.events.len() - 1)
    }

    /// The event at `position`, as [`EventBuffer::push`] took it.
    pub fn get(&self, position: usize) -> Option<(UnixNs, KindRef<'_>)> {
        let held = self.events.get(position)?;
        let [order_id, shop_id, product_id, tracking_no] = held.ends;
        let text = |start: u32, end: u32| self.text.get(start as usize..end as usize);
        let kind = KindFields {
            event_type: held.event_type,
            order_id: text(held.start, order_id)?,
            shop_id: text(order_id, shop_id)?,
            product_id: text(shop_id, product_id)?,
            tracking_no: text(product_id, tracking_no)?,
            amount_fen: held.amount_fen,
            judgment: held.judgment,
            ship_by: held.ship_by,
        };
        Some((held.at, kind.to_kind_ref()))
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
    write_fields_json(&fields(bytes)?, out);
    Some(())
}

/// [`write_canonical_json`] of decoded fields.
fn write_fields_json(f: &Fields<'_>, out: &mut impl Sink) {
    let type_name = f.event_type.name();
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
    let has_amount = matches!(
        f.event_type,
        EventType::Paid | EventType::Refunded | EventType::DepositToppedUp
    );
    if has_amount {
        pair("amount_fen", amount, false);
    }
    pair("at", f.at_text, true);
    if let Some(carrier) = f.carrier {
        pair("carrier", carrier, true);
    }
    pair("event_id", event_id, true);
    if f.event_type == EventType::JudgmentRevoked {
        pair("judgment", judgment, false);
    }
    if f.event_type != EventType::DepositToppedUp {
        pair("order_id", f.order_id, true);
    }
    if f.event_type == EventType::Paid {
        pair("product_id", f.product_id, true);
    }
    if let Some(reason) = f.reason {
        pair("reason", reason, true);
    }
    if let Some((_, written)) = f.ship_by {
        pair("ship_by", written, true);
    }
    if matches!(f.event_type, EventType::Paid | EventType::DepositToppedUp) {
        pair("shop_id", f.shop_id, true);
    }
    if matches!(
        f.event_type,
        EventType::Shipped | EventType::TrackingUploaded | EventType::TrackingRejected
    ) {
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
        UnixNs(nanos).to_rfc3339(offset)
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
        /// shape the fast scanner reads, and its shop and order as
        /// `shop_and_order` reads them; and every such line with a
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
                    // The shop and order read without decoding the rest are
                    // the decoded kind's.
                    let kind = parsed.event.kind_ref();
                    prop_assert_eq!(
                        shop_and_order(compact),
                        Some((crate::ledger::partition::shop_of(&kind), kind.order_id()))
                    );
                }
                None => prop_assert!(!lowercase, "no compact form for {}", line),
            }
        }
    }

    /// What the log's check did with every compact form before
    /// [`decode_valid`]: regenerate the JSON, validate it, and accept the
    /// event only when the form decodes to the event the JSON reads as.
    fn round_trip(form: &[u8]) -> Option<(u128, UnixNs, crate::event::EventKind)> {
        let mut json = Vec::new();
        let decoded = decode_ref_and_json(form, &mut json)
            .map(|(event_id, at, kind)| (event_id, at, kind.to_kind()));
        if decoded.is_none() {
            json.clear();
        }
        let read = crate::event::parse_stored_with(&json, |event_id, at, kind| {
            (event_id, at, kind.to_kind())
        })
        .ok()?;
        (decoded.as_ref() == Some(&read)).then_some(read)
    }

    /// A text for a field of a compact form: mostly a good id (so that
    /// many forms hold one bad field only, which alone decides), sometimes
    /// one a rule refuses (empty, too long) or one that is not plain
    /// (a quote, a backslash, an escape, a control character, a quote that
    /// would open another key).
    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            40 => id_text(),
            1 => Just(String::new()),
            1 => Just("a".repeat(crate::event::MAX_ID_BYTES)),
            1 => Just("é".repeat(crate::event::MAX_ID_BYTES / 2 + 1)),
            1 => Just("O\"1".to_string()),
            1 => Just("O\\1".to_string()),
            1 => Just("O\\u0031".to_string()),
            1 => Just("O\u{1}1".to_string()),
            1 => Just("O1\",\"zz\":\"q".to_string()),
        ]
    }

    /// The written text of an instant: usually its own, sometimes another
    /// instant's, one that is no instant, or its own with more after it
    /// (another key, a backslash, a control character).
    fn any_instant_text(ns: i64, offset_minutes: i32) -> impl Strategy<Value = String> {
        let offset = UtcOffset {
            seconds: offset_minutes * 60,
        };
        let own = UnixNs(ns).to_rfc3339(offset);
        prop_oneof![
            40 => Just(own.clone()),
            1 => Just(UnixNs(ns + 1).to_rfc3339(offset)),
            1 => Just(UnixNs(ns).to_rfc3339(UtcOffset { seconds: 0 }).replace('T', " ")),
            1 => Just("yesterday".to_string()),
            1 => Just(String::new()),
            1 => Just(format!("{own}\",\"zz\":\"q")),
            1 => Just(format!("{own}\\")),
            1 => Just(format!("{own}\n")),
        ]
    }

    prop_compose! {
        /// A compact form as `write_form` lays it out, with any values its
        /// fields can hold (not only those ingest writes), then sometimes
        /// damaged: a byte changed, cut short or one added.
        fn any_form()(
            code in 0u8..8,
            event_id in any::<u128>(),
            at_ns in (1_600_000_000i64..1_900_000_000, 0i64..1_000_000_000)
                .prop_map(|(s, n)| s * 1_000_000_000 + if n % 4 == 0 { n } else { 0 }),
            offset_minutes in -720i32..=840,
            ids in proptest::collection::vec(any_text(), 4),
            amount_fen in prop_oneof![
                20 => 1i64..1_000_000,
                1 => Just(0i64),
                1 => Just(-1i64),
                1 => Just(i64::MIN),
                1 => Just(i64::MAX),
            ],
            judgment in prop_oneof![8 => 1u8..4, 2 => 0u8..6, 1 => any::<u8>()],
            ship_by_hours in proptest::option::of(prop_oneof![3 => 0i64..2000, 1 => -48i64..0]),
            extra in proptest::option::of(any_text()),
            damage in proptest::option::weighted(0.2, (any::<usize>(), any::<u8>(), 0u8..3)),
        )(
            at_text in any_instant_text(at_ns, offset_minutes),
            ship_by in match ship_by_hours {
                Some(hours) => {
                    let ns = at_ns + hours * 3_600_000_000_000;
                    any_instant_text(ns, -offset_minutes).prop_map(move |text| Some((ns, text))).boxed()
                }
                None => Just(None).boxed(),
            },
            code in Just(code), event_id in Just(event_id), at_ns in Just(at_ns), ids in Just(ids),
            amount_fen in Just(amount_fen), judgment in Just(judgment), extra in Just(extra),
            damage in Just(damage),
        ) -> Vec<u8> {
            let event_type = EventType::from_code(code).unwrap();
            let kind = KindFields {
                event_type,
                order_id: ids[0].as_bytes(),
                shop_id: ids[1].as_bytes(),
                product_id: ids[2].as_bytes(),
                tracking_no: ids[3].as_bytes(),
                amount_fen,
                judgment,
                ship_by: ship_by.as_ref().map(|(ns, _)| UnixNs(*ns)),
            };
            let texts = Texts {
                at: at_text.as_bytes(),
                ship_by: ship_by.as_ref().map(|(_, text)| text.as_bytes()),
                carrier: extra.as_deref().map(str::as_bytes),
                reason: extra.as_deref().map(str::as_bytes),
            };
            let mut form = Vec::new();
            write_form(event_id, UnixNs(at_ns), &kind, &texts, &mut form).unwrap();
            if let Some((at, byte, how)) = damage {
                let at = at % form.len();
                match how {
                    0 => form[at] = byte,
                    1 => form.truncate(at),
                    _ => form.insert(at, byte),
                }
            }
            form
        }
    }

    /// Whether every text a form holds is plain.
    fn all_plain(form: &[u8]) -> bool {
        let Some(f) = fields(form) else {
            return true;
        };
        let texts = [
            f.at_text,
            f.order_id,
            f.shop_id,
            f.product_id,
            f.tracking_no,
        ];
        let optional = [f.ship_by.map(|(_, text)| text), f.carrier, f.reason];
        texts
            .into_iter()
            .chain(optional.into_iter().flatten())
            .all(|text| !text.bytes().any(super::super::types::ends_plain_string))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        /// `decode_valid` accepts a form only as the round trip through
        /// its JSON does, as the same event; and every form whose texts
        /// are all plain it decides itself, as the round trip does, so
        /// that the round trip is left only to forms ingest never writes.
        #[test]
        fn decode_valid_is_the_round_trip(form in any_form()) {
            let direct = decode_valid(&form).map(|(event_id, at, kind)| (event_id, at, kind.to_kind()));
            let reference = round_trip(&form);
            if direct.is_some() || all_plain(&form) {
                prop_assert_eq!(direct, reference);
            }
        }

        /// What the log's check reads of a form another thread found
        /// valid is that form's event id and paid order.
        #[test]
        fn the_ids_of_a_valid_form_are_its_events(form in any_form()) {
            if let Some((event_id, _, kind)) = decode_valid(&form) {
                let paid = match kind {
                    KindRef::Paid { order_id, .. } => Some(order_id.as_bytes()),
                    _ => None,
                };
                prop_assert_eq!(event_id_and_paid_order(&form), Some((event_id, paid)));
            }
        }

        /// Every form ingest writes is decided directly, as accepted.
        #[test]
        fn decode_valid_accepts_what_ingest_writes((line, _) in scanned_line()) {
            let parsed = crate::event::parse_line(line.as_bytes()).unwrap();
            if let Some(compact) = &parsed.compact {
                let direct = decode_valid(compact).map(|(event_id, at, kind)| (event_id, at, kind.to_kind()));
                prop_assert_eq!(direct, Some((parsed.event.event_id, parsed.event.at, parsed.event.kind.clone())));
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

//! The scanner: the fast path for ordinary lines, several times quicker than the
//! reference path: fields are borrowed as raw JSON text, and the canonical
//! form is assembled from them directly. It accepts only lines it can handle
//! exactly as the reference path would: known keys, each used by the event's
//! type, strings without escapes, no `null`, integers as plain digits. Any
//! other line, valid or not, goes to the reference path, which gives the same
//! result or the reject reason. The `fast_and_slow_paths_agree` and
//! `the_scanner_accepts_only_what_the_reference_accepts_alike` tests hold
//! them to that.

use super::types::{
    amount_fits, ends_plain_string, id_fits, judgment_fits, ship_by_fits, Event, EventType,
    KindFields,
};
use super::uuid::parse_event_id;
use super::{compact, ParsedLine};
use crate::time::UnixNs;

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
    at: Option<UnixNs>,
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
    let known = |text: &[u8], key: usize| rest.starts_with(text).then_some((key, at + text.len()));
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
fn common_instant(bytes: &[u8], at: usize) -> Option<(usize, UnixNs)> {
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
        .position(|&b| ends_plain_string(b))?;
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
    (id_fits(id) && utf8(id)).then_some(id)
}

/// An instant field other than the one `scan` read: the common shape
/// directly, anything else through its text (without trying the common
/// shape a second time).
fn instant(raw: Option<&[u8]>) -> Option<UnixNs> {
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
    pub at: UnixNs,
    pub kind: KindFields<&'a [u8]>,
    pub texts: compact::Texts<'a>,
    pub canonical: std::ops::Range<usize>,
}

impl Borrowed<'_> {
    /// Appends the line's compact form to `out`, where its canonical
    /// JSON lies, and says where the form lies (see
    /// [`compact::encode_into`]).
    pub fn encode_compact(&self, out: &mut Vec<u8>) -> Option<std::ops::Range<usize>> {
        compact::encode_into(
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
    // `positive` read only digit runs from 1 up; the rule is asked anyway.
    let amount_fen = (f.present & bit(AMOUNT_FEN) != 0)
        .then_some(f.amount_fen)
        .filter(|amount_fen| amount_fits(*amount_fen));
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
            if !ship_by_fits(ship_by, at) {
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
            if f.present & bit(JUDGMENT) == 0 || !judgment_fits(f.judgment) {
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
    let texts = compact::Texts {
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
    // vector's own fields). The canonical form is never longer than the
    // line.
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

//! The validated lines ingest keeps: one owned [`ParsedLine`], a borrowed
//! [`ParsedRef`] with its [`Payload`] (the compact form or the canonical
//! JSON), and [`ParsedLines`], many lines in one buffer for the parser
//! threads.

use super::compact;
use super::reference::parse_stored;
use super::types::{Event, EventType, MAX_LINE_BYTES};
use super::{reference, scan, Reject};

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
/// never written for every line.
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
                std::borrow::Cow::Owned(compact::canonical_json(compact).unwrap_or_default())
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
            Payload::Compact(compact) => match compact::decode_ref(compact) {
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
    /// these forms, not every event's owned strings; a caller that folds the
    /// events builds them here.
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
/// the one that made it; here a chunk of lines costs a few growing buffers.
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
        let fields = scan::parse_fields(line);
        let read_fast = fields.is_some();
        // Borrowed, not moved: moving the read line (some 200 bytes) into
        // the closure would copy it for every line.
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
                let parsed = match read_fast.then(|| scan::parse(line)).flatten() {
                    Some(parsed) => parsed,
                    None => reference::parse_line(line)?,
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
        let alone = super::parse_line(line).expect("a line the fast path read");
        assert!(
            compact::regenerates(&self.bytes[slot.payload.clone()], &alone.canonical_json),
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

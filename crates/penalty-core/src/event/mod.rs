//! Events: the JSON Lines format of EVENTS.md, parsed, validated and
//! encoded.
//!
//! [`parse_line`] turns one line of input into a typed [`Event`] plus the
//! line's canonical JSON (keys sorted, no insignificant white space), or into a
//! [`Reject`] carrying one of the reason codes of EVENTS.md. It never panics.
//! Two lines are "the same content" exactly when their canonical forms are
//! equal byte for byte, which is what "equal as parsed JSON values" means.
//!
//! The submodules, each depending only on those above it:
//!
//! - `types`: [`EventType`], [`Event`], [`EventKind`], [`KindRef`],
//!   [`KindFields`] and the format's limits.
//! - `reject`: [`Reject`], the reason codes.
//! - `uuid`: reading and writing event ids ([`format_event_id`]).
//! - [`compact`]: the binary form the log keeps, which regenerates a line's
//!   canonical JSON exactly (re-exported as `penalty_core::compact`).
//! - `scan`: the fast scanner for ordinary lines, borrowing fields as raw
//!   text and writing the compact form directly.
//! - `reference`: the `serde_json` reference parser, which decides every
//!   line the scanner declines.
//! - `lines`: [`ParsedLine`], [`ParsedRef`], [`Payload`] and the
//!   [`ParsedLines`] buffer of ingest's parser threads.

pub mod compact;
mod lines;
mod reference;
mod reject;
mod scan;
mod types;
mod uuid;

pub use lines::{AsParsed, ParsedLine, ParsedLines, ParsedRef, Payload};
pub use reference::{parse_stored, parse_stored_with};
pub use reject::Reject;
pub use types::{
    Event, EventKind, EventType, KindFields, KindRef, MAX_ID_BYTES, MAX_LINE_BYTES,
    MAX_REVOCABLE_JUDGMENT,
};
pub use uuid::format_event_id;

/// Parses and validates one line (without its line ending).
pub fn parse_line(line: &[u8]) -> Result<ParsedLine, Reject> {
    if line.len() > MAX_LINE_BYTES {
        return Err(Reject::LineTooLong);
    }
    if let Some(parsed) = scan::parse(line) {
        return Ok(parsed);
    }
    reference::parse_line(line)
}

#[cfg(test)]
mod tests;

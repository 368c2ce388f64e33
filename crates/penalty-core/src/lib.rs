//! The rules of the penalty ledger, as a pure function of events and an instant.
//!
//! This crate is the functional core of the ledger. It never does I/O, never
//! reads a clock and never spawns a thread: time comes in as data (`as_of`),
//! events come in as values, and reports go out as values. The same events
//! therefore always give the same reports, byte for byte, whatever order they
//! arrived in, which is what makes a replay of the log an audit.
//!
//! The modules, from the event format up to the reports:
//!
//! - [`event`]: the event types ([`EventType`], [`Event`], [`KindRef`]), the
//!   rejects, and the parsing of EVENTS.md's lines (scanner and reference
//!   parser) into the forms the log keeps.
//! - [`compact`]: the binary form the log keeps for an event, which
//!   regenerates its canonical JSON exactly (it lives in `event`).
//! - [`time`]: instants and calendar days in the policy's offset.
//! - [`policy`]: the parameters of RULES.md and their versions (R15).
//! - `intern`: ids held once in an arena and named by dense indices.
//! - `order`: one order's events and the instants its judgments, flag and
//!   close hold from (R1 to R3, R7, R8, R11).
//! - `view`: an order as of an instant, as the reports and `explain` read it.
//! - [`ledger`]: the fold of events into per-order and per-shop state, and the
//!   queries (shop and order reports, the cap R5, notices R9, the booked
//!   ledger of settlement runs R14, the digest, at-risk).
//! - [`explain`]: the `explain` lines of an order report, and the money and
//!   countdown wording shared by every renderer.
//! - [`labels`]: the human labels of report codes.
//! - [`report`]: the reports of CLI.md as plain serialisable values.
//! - [`csv`]: the CSV lines of the order and posting exports, which the CLI
//!   and the server's downloads both write.

pub mod csv;
pub mod event;
pub mod explain;
mod intern;
pub mod labels;
pub mod ledger;
mod order;
pub mod policy;
pub mod ranking;
pub mod report;
pub mod time;
mod view;

pub use event::compact;
pub use event::{
    parse_line, AsParsed, Event, EventKind, KindRef, ParsedLine, ParsedLines, ParsedRef, Reject,
};
pub use ledger::at_risk::{AtRiskReport, Within, WithinError};
pub use ledger::PostingCursor;
pub use ledger::{ApplyError, Ledger, OrderIds, OrderIndex, OrderSort, QueryError, RowsPage};
pub use policy::Policy;
pub use ranking::{ShopRanking, ShopSort};
pub use report::*;
pub use time::UnixNs;

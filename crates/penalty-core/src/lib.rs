//! The rules of the penalty ledger, as a pure function of events and an instant.
//!
//! This crate is the functional core of the ledger. It never does I/O, never
//! reads a clock and never spawns a thread: time comes in as data (`as_of`),
//! events come in as values, and reports go out as values. The same events
//! therefore always give the same reports, byte for byte, whatever order they
//! arrived in, which is what makes a replay of the log an audit.
//!
//! - [`event`] parses and validates the JSON Lines of EVENTS.md.
//! - [`policy`] holds the parameters of RULES.md.
//! - [`time`] holds instants and calendar days in the policy's offset.
//! - module `postings` books the settlement runs' postings (R14).

pub mod event;
pub mod explain;
mod intern;
pub mod labels;
pub mod ledger;
mod order;
pub mod policy;
mod postings;
pub mod report;
pub mod time;
mod view;

pub use event::compact;
pub use event::{
    parse_line, AsParsed, Event, EventKind, KindRef, ParsedLine, ParsedLines, ParsedRef, Reject,
};
pub use ledger::at_risk::{AtRiskReport, Within, WithinError};
pub use ledger::{ApplyError, Ledger, OrderIds, OrderIndex, QueryError};
pub use policy::Policy;
pub use report::*;
pub use time::Instant;

//! The wall clock: the one place the shell reads it.
//!
//! The rules core never reads a clock (time comes in as data), so every
//! "now" of the ledger comes from here: the `recorded_at` stamp of each
//! block ingest writes, and the default `--as-of` / `as_of` of the CLI and
//! the server.

use penalty_core::UnixNs;

/// The wall clock as a [`UnixNs`]. A clock before 1970 reads as the
/// epoch, one past what 64-bit nanoseconds hold (2262) as the last instant.
pub fn now() -> UnixNs {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    UnixNs(nanos)
}

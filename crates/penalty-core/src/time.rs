//! Instants and calendar days.
//!
//! A [`UnixNs`] is a count of nanoseconds since the Unix epoch, in UTC. Events
//! may be written with any offset; RULES.md compares them as instants, so the
//! offset is dropped at parse time and only the policy's offset is used again, to
//! find calendar days (R4, R5) and to print.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Offset, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Serialize};

const NANOS_PER_SECOND: i64 = 1_000_000_000;
/// Nanoseconds in one hour.
pub const NANOS_PER_HOUR: i64 = 3_600 * NANOS_PER_SECOND;
/// Nanoseconds in one (24-hour) day.
pub const NANOS_PER_DAY: i64 = 24 * NANOS_PER_HOUR;

/// An instant as nanoseconds since 1970-01-01T00:00:00Z (UTC). The name
/// carries the unit, and keeps it apart from `std::time::Instant`, a
/// monotonic clock reading. The default is the epoch.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct UnixNs(pub i64);

impl UnixNs {
    /// Parses RFC 3339 with a mandatory offset (`Z`, `+08:00`, `-05:00`, …).
    /// Returns `None` for anything else, including instants outside the range
    /// that fits in 64-bit nanoseconds (years 1678 to 2261).
    pub fn parse_rfc3339(text: &str) -> Option<UnixNs> {
        parse_common_rfc3339(text.as_bytes()).or_else(|| parse_general_rfc3339(text))
    }

    /// RFC 3339 with an offset, or a bare date `YYYY-MM-DD` meaning 00:00 of
    /// that day in `offset` (the policy's). What a query accepts is the
    /// stricter [`UnixNs::parse_asked`].
    pub fn parse_rfc3339_or_date(text: &str, offset: UtcOffset) -> Option<UnixNs> {
        if let Some(instant) = UnixNs::parse_rfc3339(text) {
            return Some(instant);
        }
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        // In seconds first, then checked: midnight in `offset` may be in
        // range where midnight UTC is not, and the other way round, at
        // either end of 64-bit nanoseconds (the fuzz test found both).
        let seconds = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp() - i64::from(offset.seconds);
        seconds.checked_mul(NANOS_PER_SECOND).map(UnixNs)
    }

    /// The one rule for an instant a person asks a query about: the CLI's
    /// `--as-of`, `--known-at`, `--from` and `--to` and the server's `as_of`
    /// and `known_at`. It is [`UnixNs::parse_rfc3339_or_date`] restricted to
    /// the documented syntax ([`asked_instant_syntax_ok`]: at most 256 bytes,
    /// a `T` or `t` between date and time, at most nine fraction digits, no
    /// leap second, years 1678 to 2261), so that the CLI and the server's
    /// OpenAPI pattern accept the same strings. The error names no flag or
    /// parameter: the caller says which input it came from.
    pub fn parse_asked(text: &str, offset: UtcOffset) -> Result<UnixNs, AskedInstantError> {
        if text.len() <= MAX_ASKED_BYTES && asked_instant_syntax_ok(text) {
            if let Some(instant) = UnixNs::parse_rfc3339_or_date(text, offset) {
                return Ok(instant);
            }
        }
        Err(AskedInstantError {
            shown: text.chars().take(64).collect(),
            offset,
        })
    }

    /// Adds a number of hours, saturating instead of overflowing.
    pub fn plus_hours(self, hours: i64) -> UnixNs {
        UnixNs(self.0.saturating_add(hours.saturating_mul(NANOS_PER_HOUR)))
    }

    /// Adds a number of 24-hour days, saturating instead of overflowing.
    pub fn plus_days(self, days: i64) -> UnixNs {
        UnixNs(self.0.saturating_add(days.saturating_mul(NANOS_PER_DAY)))
    }

    /// The calendar day this instant falls on in the given offset.
    pub fn local_day(self, offset: UtcOffset) -> Day {
        let local_nanos = self.0 as i128 + offset.seconds as i128 * NANOS_PER_SECOND as i128;
        Day(local_nanos.div_euclid(NANOS_PER_DAY as i128) as i64)
    }

    /// RFC 3339 in the given offset, with fractional seconds only when present.
    pub fn to_rfc3339(self, offset: UtcOffset) -> String {
        self.in_offset(offset)
            .to_rfc3339_opts(SecondsFormat::AutoSi, false)
    }

    /// `YYYY-MM-DD HH:MM` (with `:SS` when the seconds are not zero) in the given
    /// offset, for the human-readable `explain` lines.
    pub fn to_human(self, offset: UtcOffset) -> String {
        let local = self.in_offset(offset);
        let whole_minute = self.0.rem_euclid(60 * NANOS_PER_SECOND) == 0;
        // Written directly for four-digit years (every instant that fits in
        // 64-bit nanoseconds): chrono's `format` parses its pattern at every
        // call, a tenth of a shop report's time.
        if (0..=9999).contains(&local.year()) {
            let (date, time) = (local.date_naive(), local.time());
            let day = four_digit_date(date);
            return if whole_minute {
                format!("{day} {:02}:{:02}", time.hour(), time.minute())
            } else {
                format!(
                    "{day} {:02}:{:02}:{:02}",
                    time.hour(),
                    time.minute(),
                    time.second()
                )
            };
        }
        if whole_minute {
            local.format("%Y-%m-%d %H:%M").to_string()
        } else {
            local.format("%Y-%m-%d %H:%M:%S").to_string()
        }
    }

    fn in_offset(self, offset: UtcOffset) -> DateTime<FixedOffset> {
        let utc: DateTime<Utc> = DateTime::from_timestamp_nanos(self.0);
        utc.with_timezone(&offset.fixed())
    }
}

/// A calendar day in the policy's offset: days since 1970-01-01 (local).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Day(pub i64);

impl Day {
    /// The next calendar day.
    pub fn next(self) -> Day {
        Day(self.0 + 1)
    }

    /// The instant at which this day starts (00:00 local) in the given offset.
    pub fn start(self, offset: UtcOffset) -> UnixNs {
        let nanos = self.0 as i128 * NANOS_PER_DAY as i128
            - offset.seconds as i128 * NANOS_PER_SECOND as i128;
        UnixNs(nanos.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }

    /// `YYYY-MM-DD`.
    pub fn to_iso(self) -> String {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        match epoch.checked_add_signed(chrono::TimeDelta::days(self.0)) {
            // Written directly for four-digit years, as `to_human` does.
            Some(date) if (0..=9999).contains(&date.year()) => four_digit_date(date),
            Some(date) => date.format("%Y-%m-%d").to_string(),
            None => format!("day{}", self.0),
        }
    }
}

/// `YYYY-MM-DD` of a date whose year has four digits.
fn four_digit_date(date: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day())
}

/// A fixed offset from UTC, such as `+08:00` (the policy's time zone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UtcOffset {
    /// Seconds east of UTC.
    pub seconds: i32,
}

impl UtcOffset {
    /// UTC+08:00, China Standard Time (no daylight saving).
    pub const CHINA: UtcOffset = UtcOffset { seconds: 8 * 3600 };

    /// Parses `+HH:MM`, `-HH:MM` or `Z`; hours at most 23, minutes at most 59.
    pub fn parse(text: &str) -> Option<UtcOffset> {
        UtcOffset::parse_bytes(text.as_bytes())
    }

    /// [`UtcOffset::parse`] on bytes, as every instant of every event is
    /// parsed: matched as a whole against the two shapes, with no
    /// conversion to text and no general number parsing.
    #[inline]
    pub(crate) fn parse_bytes(bytes: &[u8]) -> Option<UtcOffset> {
        let (sign, digits) = match *bytes {
            [b'Z' | b'z'] => return Some(UtcOffset { seconds: 0 }),
            [b'+', h1, h2, b':', m1, m2] => (1, [h1, h2, m1, m2]),
            [b'-', h1, h2, b':', m1, m2] => (-1, [h1, h2, m1, m2]),
            _ => return None,
        };
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let [h1, h2, m1, m2] = digits.map(|digit| i32::from(digit - b'0'));
        let (hours, minutes) = (h1 * 10 + h2, m1 * 10 + m2);
        if hours > 23 || minutes > 59 {
            return None;
        }
        Some(UtcOffset {
            seconds: sign * (hours * 3600 + minutes * 60),
        })
    }

    fn fixed(self) -> FixedOffset {
        // The constructor only fails beyond ±24 h, which `parse` never yields.
        FixedOffset::east_opt(self.seconds).unwrap_or_else(|| Utc.fix())
    }
}

impl std::fmt::Display for UtcOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.seconds < 0 { '-' } else { '+' };
        let abs = self.seconds.abs();
        write!(f, "{}{:02}:{:02}", sign, abs / 3600, (abs % 3600) / 60)
    }
}

/// The longest instant text a query accepts: every valid one is shorter
/// than 40 bytes.
const MAX_ASKED_BYTES: usize = 256;

/// Why an asked instant ([`UnixNs::parse_asked`]) was refused, with the
/// fix. Its text names no flag: the CLI puts `--as-of` before it, the server
/// `query parameter as_of`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message(crate::labels::Lang::En))]
pub struct AskedInstantError {
    /// The text given, cut to 64 characters.
    pub shown: String,
    /// The policy's offset, which a bare date is read in.
    pub offset: UtcOffset,
}

impl AskedInstantError {
    /// The message in `lang` (its `Display` is the English one).
    pub fn message(&self, lang: crate::labels::Lang) -> String {
        crate::labels::Phrase::NotAnInstant.fill(lang, &[&self.shown, &self.offset])
    }
}

/// True when `text` has the documented syntax of an asked instant: a date
/// `YYYY-MM-DD`, optionally followed by `THH:MM:SS[.fraction]` and an offset,
/// within the years whose every instant fits in [`UnixNs`] (1678 to 2261)
/// and with no leap second. The server's OpenAPI pattern
/// (`penalty_server::params::instant_pattern`) states the same syntax; a
/// test there compares the two.
pub fn asked_instant_syntax_ok(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 10 {
        return false;
    }
    let digits = |from: usize, count: usize| -> Option<u32> {
        let part = b.get(from..from + count)?;
        part.iter().try_fold(0u32, |value, byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + u32::from(byte - b'0'))
        })
    };
    let (Some(year), Some(month), Some(day)) = (digits(0, 4), digits(5, 2), digits(8, 2)) else {
        return false;
    };
    if b[4] != b'-' || b[7] != b'-' || !(1678..=2261).contains(&year) {
        return false;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if day < 1 || day > days {
        return false;
    }
    let rest = &b[10..];
    if rest.is_empty() {
        return true;
    }
    let two_digits_at_most = |pair: Option<&[u8]>, max: u32| -> bool {
        pair.is_some_and(|pair| {
            pair.iter().all(u8::is_ascii_digit)
                && u32::from(pair[0] - b'0') * 10 + u32::from(pair[1] - b'0') <= max
        })
    };
    if !matches!(rest[0], b'T' | b't')
        || !two_digits_at_most(rest.get(1..3), 23)
        || rest.get(3) != Some(&b':')
        || !two_digits_at_most(rest.get(4..6), 59)
        || rest.get(6) != Some(&b':')
        || !two_digits_at_most(rest.get(7..9), 59)
    {
        return false;
    }
    let mut at = 9;
    if rest.get(at) == Some(&b'.') {
        let fraction = rest[at + 1..]
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        if !(1..=9).contains(&fraction) {
            return false;
        }
        at += 1 + fraction;
    }
    match rest.get(at..) {
        Some([b'Z' | b'z']) => true,
        Some([b'+' | b'-', zone @ ..]) if zone.len() == 5 => {
            two_digits_at_most(zone.get(0..2), 23)
                && zone[2] == b':'
                && two_digits_at_most(zone.get(3..5), 59)
        }
        _ => false,
    }
}

/// The shape nearly every event's instant has, `YYYY-MM-DDTHH:MM:SS`
/// followed by an offset as [`UtcOffset::parse`] reads it, parsed directly:
/// chrono's general parser took a tenth of ingest's validation time.
/// Anything else (fractions, a lower-case `t`, a leap second, years outside
/// 1970 to 2199, any invalid field) is `None` here and goes to chrono, so the
/// answer is always chrono's (a test compares the two).
pub(crate) fn parse_common_rfc3339(text: &[u8]) -> Option<UnixNs> {
    if !(text.len() == 20 || text.len() == 25) {
        return None;
    }
    let (head, offset) = text.split_at(19);
    let head: &[u8; 19] = head.try_into().ok()?;
    let offset = UtcOffset::parse_bytes(offset)?;
    // `YYYY-MM-` and `DDTHH:MM` as two words, the first byte lowest: their
    // punctuation compared at once, their digits classified at once (see
    // `digits_at`), and each two-digit field read as one byte of `pairs`.
    let word = |at: usize| {
        u64::from_le_bytes([
            head[at],
            head[at + 1],
            head[at + 2],
            head[at + 3],
            head[at + 4],
            head[at + 5],
            head[at + 6],
            head[at + 7],
        ])
    };
    let (date, time) = (word(0), word(8));
    let byte = |at: u32, value: u8| u64::from(value) << (8 * at);
    const DATE_PUNCTUATION: u64 = 0xff << 32 | 0xff << 56;
    const TIME_PUNCTUATION: u64 = 0xff << 16 | 0xff << 40;
    if date & DATE_PUNCTUATION != byte(4, b'-') | byte(7, b'-')
        || time & TIME_PUNCTUATION != byte(2, b'T') | byte(5, b':')
        || digits_at(date) | DATE_PUNCTUATION != u64::MAX
        || digits_at(time) | TIME_PUNCTUATION != u64::MAX
        || head[16] != b':'
        || !head[17].is_ascii_digit()
        || !head[18].is_ascii_digit()
    {
        return None;
    }
    let (date, time) = (pairs(date), pairs(time));
    let field = |word: u64, at: u32| i64::from((word >> (8 * at)) as u8);
    let year = field(date, 0) * 100 + field(date, 2);
    let (month, day) = (field(date, 5), field(time, 0));
    let (hour, minute) = (field(time, 3), field(time, 6));
    let second = i64::from(head[17] - b'0') * 10 + i64::from(head[18] - b'0');
    if !(1970..2200).contains(&year) || !(1..=12).contains(&month) || day < 1 {
        return None;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    // Days in the months before each month of a common year, by month
    // (index 0 unused), and the month's own length as their difference.
    const DAYS_BEFORE: [i64; 14] = [
        0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365,
    ];
    let month = month as usize;
    let after_february = i64::from(leap && month > 2);
    let month_days = DAYS_BEFORE[month + 1] - DAYS_BEFORE[month] + i64::from(leap && month == 2);
    if day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days since the epoch: the years since 1970, the leap days of the
    // years before this one (every fourth year, but not centuries unless
    // divisible by 400; 477 of them fall before 1970), and the days of this
    // year before the date. The years are at least 1970, so the divisions
    // need no care for signs.
    let before = year - 1;
    let leap_days = before / 4 - before / 100 + before / 400 - 477;
    let days = (year - 1970) * 365 + leap_days + DAYS_BEFORE[month] + after_february + day - 1;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - i64::from(offset.seconds);
    Some(UnixNs(seconds * NANOS_PER_SECOND))
}

/// RFC 3339 in any shape chrono reads, for the instants
/// [`parse_common_rfc3339`] leaves aside.
pub(crate) fn parse_general_rfc3339(text: &str) -> Option<UnixNs> {
    let parsed = DateTime::parse_from_rfc3339(text).ok()?;
    parsed.timestamp_nanos_opt().map(UnixNs)
}

/// 0xff in each byte of `word` that is an ASCII digit, 0 in the others.
/// With each byte's top bit cleared first, adding a constant to a byte
/// cannot carry into the next, so the top bit of each sum tells whether the
/// byte is above a bound; a byte with its top bit set is no digit.
fn digits_at(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let low = word & !HIGHS;
    let at_least_0 = low.wrapping_add(ONES * u64::from(0x80 - b'0'));
    let above_9 = low.wrapping_add(ONES * u64::from(0x7f - b'9'));
    let digit = at_least_0 & !above_9 & !word & HIGHS;
    // Spread each marking top bit over its byte.
    (digit >> 7) * 0xff
}

/// Byte `i` of the result is ten times the digit in byte `i` of `word` plus
/// the digit in byte `i + 1` (the low four bits of each byte): every
/// two-digit field at once, wherever it starts. No byte overflows (at most
/// 15 * 10 + 15), so none carries into the next.
fn pairs(word: u64) -> u64 {
    let digits = word & 0x0f0f_0f0f_0f0f_0f0f;
    digits * 10 + (digits >> 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono_rfc3339(text: &str) -> Option<UnixNs> {
        DateTime::parse_from_rfc3339(text)
            .ok()?
            .timestamp_nanos_opt()
            .map(UnixNs)
    }

    /// The direct parser answers as chrono does wherever it answers, and
    /// answers for the shape events use, over valid and invalid fields.
    #[test]
    fn common_instants_are_parsed_as_chrono_parses_them() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        let mut direct = 0;
        for _ in 0..300_000 {
            let year = 1960 + next(260);
            let month = next(14);
            let day = next(33);
            let (hour, minute, second) = (next(26), next(62), next(62));
            let offset = match next(4) {
                0 => "Z".to_string(),
                1 => format!("+{:02}:{:02}", next(26), next(62)),
                2 => format!("-{:02}:{:02}", next(26), next(62)),
                _ => ["z", "+08", "+0800", ".5Z", "+08:00:00", " "][next(6) as usize].to_string(),
            };
            let separator = if next(50) == 0 { "t" } else { "T" };
            let text = format!(
                "{year:04}-{month:02}-{day:02}{separator}{hour:02}:{minute:02}:{second:02}{offset}"
            );
            let expected = chrono_rfc3339(&text);
            if let Some(instant) = parse_common_rfc3339(text.as_bytes()) {
                direct += 1;
                assert_eq!(Some(instant), expected, "{text}");
            }
            assert_eq!(UnixNs::parse_rfc3339(&text), expected, "{text}");
        }
        assert!(direct > 50_000, "the direct path was taken {direct} times");
        for text in [
            "2024-02-29T23:59:59+08:00",
            "2023-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2000-02-29T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "1970-01-01T00:00:00+00:01",
            "2199-12-31T23:59:59-23:59",
            "2026-13-01T00:00:00Z",
            "2026-00-10T00:00:00Z",
            "2026-01-10T00:00:60Z",
            "2026-01-1aT00:00:00Z",
            "+026-01-10T00:00:00Z",
        ] {
            assert_eq!(UnixNs::parse_rfc3339(text), chrono_rfc3339(text), "{text}");
        }
    }

    /// Every day the direct parser takes, from 1970 to 2199, gives the
    /// instant chrono gives, and the day after each month's last is
    /// refused by both.
    #[test]
    fn every_common_day_is_parsed_as_chrono_parses_it() {
        let mut date = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        while date.year() < 2200 {
            let text = format!("{}T12:34:56+08:00", four_digit_date(date));
            let direct = parse_common_rfc3339(text.as_bytes());
            assert!(direct.is_some(), "{text}");
            assert_eq!(direct, chrono_rfc3339(&text), "{text}");
            let next = date.succ_opt().unwrap();
            if next.month() != date.month() {
                let past = format!(
                    "{:04}-{:02}-{:02}T00:00:00Z",
                    date.year(),
                    date.month(),
                    date.day() + 1
                );
                assert_eq!(parse_common_rfc3339(past.as_bytes()), None, "{past}");
                assert_eq!(chrono_rfc3339(&past), None, "{past}");
            }
            date = next;
        }
    }

    proptest::proptest! {
        /// The word-at-a-time digit classification and pairing answer as
        /// byte-by-byte ones, over digits, the bytes beside them and any
        /// byte at all.
        #[test]
        fn word_digits_are_the_bytewise_digits(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    4 => b'0'..=b'9',
                    1 => proptest::sample::select(b"/:-T+Z\x00\x7f\x80\xb0\xb9\xff".to_vec()),
                    1 => proptest::prelude::any::<u8>(),
                ],
                8,
            ),
        ) {
            let word = u64::from_le_bytes(bytes.clone().try_into().unwrap());
            let digits = bytes.iter().enumerate().fold(0u64, |mask, (i, byte)| {
                mask | u64::from(if byte.is_ascii_digit() { 0xffu8 } else { 0 }) << (8 * i)
            });
            proptest::prop_assert_eq!(digits_at(word), digits, "{:?}", bytes);
            for i in 0..8 {
                let next = bytes.get(i + 1).map_or(0, |byte| byte & 0x0f);
                let pair = (bytes[i] & 0x0f) * 10 + next;
                proptest::prop_assert_eq!((pairs(word) >> (8 * i)) as u8, pair, "{:?}", bytes);
            }
        }
    }

    /// The direct formatting gives chrono's `format` bytes, over every day
    /// an instant can fall on and instants at every second of many days.
    #[test]
    fn dates_and_human_instants_are_written_as_chrono_writes_them() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let first = UnixNs(i64::MIN).local_day(UtcOffset::CHINA).0 - 2;
        let last = UnixNs(i64::MAX).local_day(UtcOffset::CHINA).0 + 2;
        for day in first..=last {
            let date = epoch
                .checked_add_signed(chrono::TimeDelta::days(day))
                .unwrap();
            assert_eq!(Day(day).to_iso(), date.format("%Y-%m-%d").to_string());
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for offset in [
            UtcOffset::CHINA,
            UtcOffset { seconds: -5 * 3600 },
            UtcOffset { seconds: 0 },
        ] {
            for _ in 0..200_000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Whole minutes, whole seconds and fractions, across the range.
                let nanos = match seed % 3 {
                    0 => (seed as i64) / (60 * NANOS_PER_SECOND) * (60 * NANOS_PER_SECOND),
                    1 => (seed as i64) / NANOS_PER_SECOND * NANOS_PER_SECOND,
                    _ => seed as i64,
                };
                let t = UnixNs(nanos);
                let local = t.in_offset(offset);
                let expected = if nanos.rem_euclid(60 * NANOS_PER_SECOND) == 0 {
                    local.format("%Y-%m-%d %H:%M").to_string()
                } else {
                    local.format("%Y-%m-%d %H:%M:%S").to_string()
                };
                assert_eq!(t.to_human(offset), expected, "{nanos}");
            }
        }
        // Past four digits, chrono's own writing.
        let far = epoch
            .checked_add_signed(chrono::TimeDelta::days(10_000_000))
            .unwrap();
        assert_eq!(Day(10_000_000).to_iso(), far.format("%Y-%m-%d").to_string());
        assert!(Day(10_000_000).to_iso().starts_with('+'));
    }

    #[test]
    fn offsets_compare_as_instants() {
        let a = UnixNs::parse_rfc3339("2026-03-03T16:00:00Z");
        let b = UnixNs::parse_rfc3339("2026-03-04T00:00:00+08:00");
        let c = UnixNs::parse_rfc3339("2026-03-03T11:00:00-05:00");
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn a_bare_date_is_midnight_in_the_policy_offset() {
        let t = UnixNs::parse_rfc3339_or_date("2026-03-07", UtcOffset::CHINA).unwrap();
        assert_eq!(t.to_rfc3339(UtcOffset::CHINA), "2026-03-07T00:00:00+08:00");
        assert_eq!(
            UnixNs::parse_rfc3339_or_date("2026-03-07T00:00:00Z", UtcOffset::CHINA),
            UnixNs::parse_rfc3339("2026-03-07T00:00:00Z")
        );
        assert_eq!(
            UnixNs::parse_rfc3339_or_date("2026-02-30", UtcOffset::CHINA),
            None
        );
        assert_eq!(
            UnixNs::parse_rfc3339_or_date("soon", UtcOffset::CHINA),
            None
        );
    }

    #[test]
    fn asked_instants_take_the_documented_syntax_and_name_no_flag() {
        let china = UtcOffset::CHINA;
        assert_eq!(
            UnixNs::parse_asked("2026-03-07", china).ok(),
            UnixNs::parse_rfc3339_or_date("2026-03-07", china)
        );
        assert!(UnixNs::parse_asked("2026-03-07t10:00:00.5z", china).is_ok());
        // Chrono reads these; the documented syntax does not.
        for refused in ["2026-03-07 10:00:00Z", "2026-03-07T10:00:60Z"] {
            assert!(UnixNs::parse_rfc3339(refused).is_some(), "{refused}");
            assert!(UnixNs::parse_asked(refused, china).is_err(), "{refused}");
        }
        let error = UnixNs::parse_asked(&"9".repeat(300), china).unwrap_err();
        assert_eq!(error.shown.chars().count(), 64);
        let message = error.to_string();
        assert!(
            message.contains("+08:00") && !message.contains("--"),
            "{message}"
        );
    }

    #[test]
    fn missing_offset_is_rejected() {
        assert_eq!(UnixNs::parse_rfc3339("2026-03-02T09:00:00"), None);
        assert_eq!(UnixNs::parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn local_day_boundaries_in_china_time() {
        let offset = UtcOffset::CHINA;
        let before = UnixNs::parse_rfc3339("2026-03-03T23:59:59+08:00").unwrap();
        let midnight = UnixNs::parse_rfc3339("2026-03-04T00:00:00+08:00").unwrap();
        assert_eq!(before.local_day(offset).to_iso(), "2026-03-03");
        assert_eq!(midnight.local_day(offset).to_iso(), "2026-03-04");
        assert_eq!(midnight.local_day(offset).start(offset), midnight);
    }

    #[test]
    fn prints_in_the_policy_offset() {
        let t = UnixNs::parse_rfc3339("2026-03-03T02:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(UtcOffset::CHINA), "2026-03-03T10:00:00+08:00");
        assert_eq!(t.to_human(UtcOffset::CHINA), "2026-03-03 10:00");
        let frac = UnixNs::parse_rfc3339("2026-03-03T02:00:00.5Z").unwrap();
        assert_eq!(
            frac.to_rfc3339(UtcOffset::CHINA),
            "2026-03-03T10:00:00.500+08:00"
        );
    }

    #[test]
    fn offset_parse_and_display() {
        assert_eq!(UtcOffset::parse("+08:00"), Some(UtcOffset::CHINA));
        assert_eq!(UtcOffset::parse("-05:30").map(|o| o.seconds), Some(-19800));
        assert_eq!(UtcOffset::parse("+24:00"), None);
        assert_eq!(UtcOffset::parse("8"), None);
        assert_eq!(
            UtcOffset::parse("-05:30").map(|o| o.to_string()).as_deref(),
            Some("-05:30")
        );
    }
}

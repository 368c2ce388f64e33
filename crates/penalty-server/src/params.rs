//! The syntax of query parameters, stated once for the checks and for the
//! OpenAPI document, so that what the document calls valid is exactly what
//! the server accepts.
//!
//! Each pattern below (ECMA 262 and Python `re` alike: only `[0-9]` classes,
//! no `\d`, which Python reads as any Unicode digit) has a hand-written
//! checker beside it that accepts exactly the strings the pattern matches;
//! the tests compare the two on random strings and check that every string
//! the instant pattern matches is one the core parses.

/// Years whose every instant fits in `UnixNs` (i64 nanoseconds since 1970,
/// from 1677-09-21 to 2262-04-11), even at an offset of ±23:59.
const YEAR: &str =
    "(?:167[89]|16[89][0-9]|1[7-9][0-9]{2}|20[0-9]{2}|21[0-9]{2}|22[0-5][0-9]|226[01])";
/// The leap years among them.
const LEAP_YEAR: &str = "(?:16(?:8[048]|9[26])|(?:1[7-9]|2[01])(?:0[48]|[2468][048]|[13579][26])|22(?:0[48]|[24][048]|[135][26]|60)|2000)";
/// Months and days, February 29 aside.
const MONTH_DAY: &str = "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))";
/// `THH:MM:SS[.fraction]` and the offset.
const TIME: &str = "[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,9})?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])";

/// `as_of` and `known_at`: RFC 3339 with an offset (no leap second, at most
/// nanoseconds), or a date, within the years an instant can hold.
pub fn instant_pattern() -> String {
    format!("^(?:{YEAR}-{MONTH_DAY}|{LEAP_YEAR}-02-29)(?:{TIME})?$")
}

/// The largest `offset` of a paged list (and `min_orders`): what the
/// checks accept and the OpenAPI document states as the maximum.
pub const MAX_OFFSET: usize = 1_000_000_000;

/// A notice cursor: `<visible ns>.<judgment>.<order id>` (penalty-core), the
/// nanoseconds within what an `i64` holds.
pub const CURSOR_PATTERN: &str = "^(?:-?[0-9]{1,18}|[1-8][0-9]{18})\\.(?:[0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])(?:~-?[0-9]{1,6})?\\.[\\s\\S]{1,128}$";

/// `within` of the at-risk query: 1m to 366d (the core's bounds), a whole
/// number without leading zeros and its unit.
pub const WITHIN_PATTERN: &str = "^(?:(?:[1-9][0-9]{0,4}|[1-4][0-9]{5}|5[01][0-9]{4}|52[0-6][0-9]{3}|5270[0-3][0-9]|527040)m|(?:[1-9][0-9]{0,2}|[1-7][0-9]{3}|8[0-6][0-9]{2}|87[0-7][0-9]|878[0-4])h|(?:[1-9][0-9]?|[12][0-9]{2}|3[0-5][0-9]|36[0-6])d)$";

/// True when `text` matches [`WITHIN_PATTERN`]: the core's one rule,
/// [`penalty_core::Within::parse`], which the CLI's `--within` uses too.
pub fn within_syntax_ok(text: &str) -> bool {
    penalty_core::Within::parse(text).is_ok()
}

/// True when `text` matches [`instant_pattern`]: the core's one rule for an
/// asked instant, which the CLI's `--as-of` and `--known-at` use too.
pub use penalty_core::time::asked_instant_syntax_ok as instant_syntax_ok;

/// True when `text` matches [`CURSOR_PATTERN`].
pub fn cursor_syntax_ok(text: &str) -> bool {
    let mut parts = text.splitn(3, '.');
    let (Some(nanos), Some(judgment), Some(order)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let nanos_ok = match nanos.strip_prefix('-') {
        Some(magnitude) => all_digits(magnitude) && magnitude.len() <= 18,
        None => {
            all_digits(nanos)
                && (nanos.len() <= 18
                    || (nanos.len() == 19 && (b'1'..=b'8').contains(&nanos.as_bytes()[0])))
        }
    };
    // A correction's notice (R14) names its run's day after the judgment:
    // `7~20520`.
    let (judgment, run_day_ok) = match judgment.split_once('~') {
        Some((judgment, day)) => {
            let magnitude = day.strip_prefix('-').unwrap_or(day);
            (judgment, all_digits(magnitude) && magnitude.len() <= 6)
        }
        None => (judgment, true),
    };
    let judgment_ok = run_day_ok
        && all_digits(judgment)
        && (judgment == "0" || !judgment.starts_with('0'))
        && judgment.len() <= 3
        && judgment.parse::<u16>().is_ok_and(|j| j <= 255);
    let order_chars = order.chars().count();
    nanos_ok && judgment_ok && (1..=128).contains(&order_chars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parses(text: &str) -> bool {
        penalty_core::UnixNs::parse_rfc3339_or_date(
            text,
            penalty_core::Policy::default().utc_offset,
        )
        .is_some()
    }

    #[test]
    fn instants_by_hand() {
        for ok in [
            "2026-03-07",
            "2024-02-29",
            "2000-02-29",
            "1678-01-01T00:00:00+23:59",
            "2261-12-31T23:59:59.999999999-23:59",
            "2026-03-07T00:00:00+08:00",
            "2026-03-07t10:00:00.5z",
        ] {
            assert!(instant_syntax_ok(ok), "{ok}");
            assert!(parses(ok), "{ok}");
        }
        for bad in [
            "",
            "2026-3-7",
            "2026-02-29",
            "1900-02-29",
            "2026-04-31",
            "1677-12-31",
            "2262-01-01",
            "2026-03-07T24:00:00Z",
            "2026-03-07T10:00:60Z",
            "2026-03-07T10:00:00",
            "2026-03-07T10:00:00.Z",
            "2026-03-07T10:00:00.1234567890Z",
            "2026-03-07 10:00:00Z",
            "2026-03-07T10:00:00+0800",
            "2026-03-07T10:00:00+24:00",
            "2026-03-07\n",
            "+2026-03-07",
            "２０２６-03-07",
        ] {
            assert!(!instant_syntax_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn cursors_by_hand() {
        for ok in [
            "1796606792531272381.1.O0215",
            "0.0.x",
            "-5.255.a.b.c",
            "8999999999999999999.3.O",
        ] {
            assert!(cursor_syntax_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "1.1.",
            "1..O",
            "x.1.O",
            "9223372036854775807.1.O",
            "1.256.O",
            "1.01.O",
            "--1.1.O",
        ] {
            assert!(!cursor_syntax_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn horizons_agree_with_the_pattern_and_the_core() {
        let pattern = regex::Regex::new(WITHIN_PATTERN).expect("pattern");
        for unit in ["m", "h", "d", "s", ""] {
            for n in (0..=530_000u32)
                .step_by(7)
                .chain([1, 8784, 8785, 366, 367, 527_040, 527_041])
            {
                for text in [format!("{n}{unit}"), format!("0{n}{unit}")] {
                    let ok = within_syntax_ok(&text);
                    assert_eq!(pattern.is_match(&text), ok, "{text}");
                    if ok {
                        assert!(penalty_core::Within::parse(&text).is_ok(), "{text}");
                    }
                }
            }
        }
        assert!(
            within_syntax_ok("527040m") && within_syntax_ok("8784h") && within_syntax_ok("366d")
        );
        assert!(
            !within_syntax_ok("527041m") && !within_syntax_ok("8785h") && !within_syntax_ok("367d")
        );
    }

    fn patterns() -> &'static (regex::Regex, regex::Regex) {
        static PATTERNS: std::sync::OnceLock<(regex::Regex, regex::Regex)> =
            std::sync::OnceLock::new();
        PATTERNS.get_or_init(|| {
            (
                regex::Regex::new(&instant_pattern()).expect("pattern"),
                regex::Regex::new(CURSOR_PATTERN).expect("pattern"),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every string the documented pattern matches is accepted by the
        /// checker and parsed by the core: the document never calls valid
        /// what the server refuses.
        #[test]
        fn every_instant_the_pattern_allows_is_accepted(
            text in proptest::string::string_regex(&instant_pattern()[1..instant_pattern().len() - 1]).expect("pattern")
        ) {
            prop_assert!(instant_syntax_ok(&text), "{text:?}");
            prop_assert!(parses(&text), "{text:?}");
        }

        /// The checkers agree with the patterns on strings near valid ones.
        #[test]
        fn checkers_agree_with_the_patterns(
            text in "[0-9Tt:+.Zz -]{0,40}|[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,11})?([Zz]|[+-][0-9]{2}:[0-9]{2})?)?",
            cursor in "-?[0-9]{0,20}\\.[0-9]{0,4}\\.[a-z.\\n]{0,3}",
        ) {
            let (instant, cursors) = patterns();
            prop_assert_eq!(instant.is_match(&text), instant_syntax_ok(&text), "{:?}", text);
            prop_assert_eq!(cursors.is_match(&cursor), cursor_syntax_ok(&cursor), "{:?}", cursor);
        }
    }
}

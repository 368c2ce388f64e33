//! Fuzz targets for the parsers of user input other than event lines (those
//! are fuzzed beside the parser, in `event.rs`, where both of its paths are
//! visible): the policy file and the instant or date of `--as-of`. Each is a
//! proptest corpus run in the normal suite for a bounded number of cases
//! (`PENALTY_FUZZ_CASES` raises it): no input panics, every refusal is a
//! typed error, and every answer is checked against an independent reading
//! (issue 20).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, NaiveDate};
use penalty_core::event::EventKind;
use penalty_core::time::UtcOffset;
use penalty_core::{Event, Ledger, Policy, UnixNs};
use proptest::prelude::*;

fn cases(default: u32) -> u32 {
    std::env::var("PENALTY_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// The keys of a policy file, with a few that are not.
const KEYS: &[&str] = &[
    "utc_offset",
    "ship_window_hours",
    "rejudge_interval_hours",
    "max_judgments_per_order",
    "deduction_fen",
    "max_deductions_per_order",
    "shop_daily_cap_fen",
    "ban_at_judgment",
    "closure_grace_hours",
    "auto_close_days",
    "rating_window_days",
    "versions",
    "effective_from",
    "Deduction_fen",
    "",
];

/// A JSON value of the shapes a policy file holds, their limits, and near
/// misses.
fn policy_value() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        (-5i64..20).prop_map(|n| n.to_string()),
        proptest::sample::select(vec![
            "0",
            "1",
            "3",
            "10",
            "11",
            "255",
            "256",
            "876600",
            "876601",
            "36600",
            "1000000000000",
            "1000000000001",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551616",
            "1.5",
            "1e3",
            "-0",
            "null",
            "true",
            "[]",
            "{}",
            "[1,2]",
            "\"+08:00\"",
            "\"-23:59\"",
            "\"+23:59\"",
            "\"Z\"",
            "\"z\"",
            "\"+24:00\"",
            "\"08:00\"",
            "\"\"",
            "\"2026-03-01T00:00:00+08:00\"",
        ])
        .prop_map(str::to_string),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

/// A policy file: an object of known (and some unknown) keys, sometimes
/// nested in `versions`, sometimes cut short or other JSON altogether.
fn policy_text() -> impl Strategy<Value = String> {
    let object = || {
        proptest::collection::vec((proptest::sample::select(KEYS), policy_value()), 0..6).prop_map(
            |pairs| {
                let body: Vec<String> = pairs
                    .iter()
                    .map(|(key, value)| format!("\"{key}\":{value}"))
                    .collect();
                format!("{{{}}}", body.join(","))
            },
        )
    };
    prop_oneof![
        4 => object(),
        1 => proptest::collection::vec(object(), 0..3)
            .prop_map(|versions| format!("{{\"versions\":[{}]}}", versions.join(","))),
        1 => (object(), any::<proptest::sample::Index>())
            .prop_map(|(text, cut)| text[..cut.index(text.len() + 1)].to_string()),
        1 => "\\PC{0,60}",
    ]
}

/// Folds a few events under `policy` and asks every report at instants from
/// the start to the end of time: an accepted policy never makes the rules
/// panic.
fn run_ledger(policy: &Policy) {
    let mut ledger = Ledger::new(policy.clone());
    let start = UnixNs::parse_rfc3339("2026-03-01T10:00:00+08:00").unwrap();
    let hour = 3_600_000_000_000i64;
    let events = [
        EventKind::Paid {
            order_id: "O1".into(),
            shop_id: "S1".into(),
            product_id: "P1".into(),
            amount_fen: 19_900,
            ship_by: None,
        },
        EventKind::Paid {
            order_id: "O2".into(),
            shop_id: "S1".into(),
            product_id: "P1".into(),
            amount_fen: 100,
            ship_by: Some(UnixNs(start.0 + 100 * hour)),
        },
        EventKind::DepositToppedUp {
            shop_id: "S1".into(),
            amount_fen: 5_000,
        },
        EventKind::Refunded {
            order_id: "O2".into(),
            amount_fen: 50,
        },
        EventKind::JudgmentRevoked {
            order_id: "O1".into(),
            judgment: 2,
        },
        EventKind::RefundFailed {
            order_id: "O1".into(),
        },
    ];
    for (n, kind) in events.into_iter().enumerate() {
        let event = Event {
            event_id: n as u128 + 1,
            at: UnixNs(start.0 + n as i64 * 30 * hour),
            kind,
        };
        ledger.apply(&event, UnixNs(0)).unwrap();
    }
    for as_of in [
        UnixNs(i64::MIN),
        start,
        UnixNs(start.0 + 24 * 400 * hour),
        UnixNs(i64::MAX),
    ] {
        let _ = ledger.shop_report("S1", as_of, true);
        let _ = ledger.order_report("O1", as_of);
        let _ = ledger.order_report("O2", as_of);
        let _ = ledger.shop_summaries(as_of);
        let _ = ledger.digest(as_of);
    }
}

/// What `--as-of` must give for `text`, read by chrono alone: RFC 3339 as
/// chrono reads it (within 64-bit nanoseconds), else a bare date at 00:00
/// in `offset`, computed exactly and refused when outside that range.
fn expected_instant(text: &str, offset: UtcOffset) -> Option<UnixNs> {
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return parsed.timestamp_nanos_opt().map(UnixNs);
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let seconds = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    let nanos = (i128::from(seconds) - i128::from(offset.seconds)) * 1_000_000_000;
    i64::try_from(nanos).ok().map(UnixNs)
}

/// Text an `--as-of` may hold: instants and dates across the whole range
/// of 64-bit nanoseconds and past it, in every shape, and arbitrary text.
fn instant_text() -> impl Strategy<Value = String> {
    let offset = prop_oneof![
        Just("Z".to_string()),
        Just("z".to_string()),
        (proptest::bool::ANY, 0u32..26, 0u32..61)
            .prop_map(|(minus, h, m)| format!("{}{h:02}:{m:02}", if minus { '-' } else { '+' })),
        Just(String::new()),
    ];
    let year = prop_oneof![
        1676i32..1680,
        1965i32..1975,
        2196i32..2203,
        2259i32..2264,
        0i32..10000
    ];
    prop_oneof![
        (
            year.clone(),
            0u32..14,
            0u32..33,
            0u32..25,
            0u32..61,
            0u32..62,
            proptest::sample::select(vec!["", ".5", ".123456789", ".1234567891"]),
            proptest::sample::select(vec!["T", "t", " "]),
            offset
        )
            .prop_map(|(y, mo, d, h, mi, s, frac, sep, off)| format!(
                "{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{off}"
            )),
        (year, 0u32..14, 0u32..33).prop_map(|(y, mo, d)| format!("{y:04}-{mo:02}-{d:02}")),
        proptest::sample::select(vec!["1677-09-21", "1677-09-22", "2262-04-10", "2262-04-11"])
            .prop_map(str::to_string),
        "\\PC{0,40}",
        "[0-9T:+-]{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2000), ..ProptestConfig::default() })]

    /// Issue 20 (fuzzing the policy-file parser): any text is a policy or a
    /// typed refusal with a message; an accepted policy is within its
    /// ranges, reads back from its own JSON as itself, and drives the rules
    /// without a panic.
    #[test]
    fn fuzz_policy_files(text in policy_text()) {
        match Policy::from_json(&text) {
            Ok(policy) => {
                prop_assert!(policy.validate().is_ok(), "{}", text);
                // A single version reads back from its own JSON, which is the
                // file's flat form once the (empty) list of later versions is
                // left out.
                if policy.later.is_empty() {
                    let mut json = serde_json::to_value(&policy).unwrap();
                    json.as_object_mut().unwrap().remove("later");
                    let again = Policy::from_json(&json.to_string()).unwrap();
                    prop_assert_eq!(&again, &policy);
                }
                run_ledger(&policy);
            }
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }

    /// Issue 20 (fuzzing the CLI's instant and date parser): any text gives
    /// exactly chrono's reading (`expected_instant`), never a panic or a
    /// wrapped number; an instant read prints and reads back as itself.
    #[test]
    fn fuzz_as_of_instants_and_dates(
        text in instant_text(),
        offset_seconds in prop_oneof![Just(0i32), Just(8 * 3600), -86_399i32..86_400],
    ) {
        let offset = UtcOffset { seconds: offset_seconds / 60 * 60 };
        let parsed = UnixNs::parse_rfc3339_or_date(&text, offset);
        prop_assert_eq!(parsed, expected_instant(&text, offset), "{:?}", text);
        if let Some(instant) = parsed {
            let printed = instant.to_rfc3339(offset);
            prop_assert_eq!(UnixNs::parse_rfc3339(&printed), Some(instant), "{}", printed);
        }
    }
}

/// The bare dates at the two ends of 64-bit nanoseconds, in the offsets
/// furthest from UTC: within range they read exactly, past it they are
/// refused (they once overflowed: a panic in a debug build, a wrapped
/// instant in a release build).
#[test]
fn dates_at_the_ends_of_the_range_read_exactly_or_are_refused() {
    for text in [
        "1677-09-21",
        "1677-09-22",
        "2262-04-10",
        "2262-04-11",
        "2262-04-12",
    ] {
        for seconds in [-86_340, -3600, 0, 3600, 86_340] {
            let offset = UtcOffset { seconds };
            assert_eq!(
                UnixNs::parse_rfc3339_or_date(text, offset),
                expected_instant(text, offset),
                "{text} at {seconds} s"
            );
        }
    }
}

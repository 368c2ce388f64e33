//! The parsing paths against each other and against EVENTS.md.

use super::*;
use super::{reference, scan};

const ID: &str = "0b6f3c1e-6a53-4f43-9f0e-2d1c7f4a9b10";

fn reject(line: &str) -> String {
    parse_line(line.as_bytes()).unwrap_err().code()
}

fn line(fields: &str) -> String {
    format!(r#"{{"event_id":"{ID}","at":"2026-03-01T10:00:00+08:00",{fields}}}"#)
}

#[test]
fn parses_the_example_of_events_md() {
    let parsed = parse_line(
        br#"{"event_id":"0b6f3c1e-6a53-4f43-9f0e-2d1c7f4a9b10","type":"paid","at":"2026-03-01T10:00:00+08:00","order_id":"O1","shop_id":"S1","product_id":"P1","amount_fen":19900}"#,
    )
    .unwrap();
    assert_eq!(parsed.event.type_name(), "paid");
    assert_eq!(parsed.event.paid_order_id(), Some("O1"));
    assert_eq!(format_event_id(parsed.event.event_id), ID);
}

#[test]
fn canonical_form_ignores_key_order_whitespace_and_escapes() {
    let a = parse_line(line(r#""type":"refund_failed","order_id":"O1""#).as_bytes()).unwrap();
    let b = parse_line(
        format!(r#" {{ "order_id" : "\u004f1", "type":"refund_failed", "at":"2026-03-01T10:00:00+08:00", "event_id":"{ID}" }}"#)
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(a.canonical_json, b.canonical_json);
    let c =
        parse_line(line(r#""type":"refund_failed","order_id":"O1","extra":1"#).as_bytes()).unwrap();
    assert_ne!(a.canonical_json, c.canonical_json);
}

/// "The same content" over what the log keeps: a compact form and the
/// JSON of a line with none (it has an escape) compare by canonical
/// JSON; equal compact forms are equal without regenerating them.
#[test]
fn payloads_are_the_same_content_exactly_when_their_canonical_json_is() {
    let compact = parse_line(line(r#""type":"refund_failed","order_id":"O1""#).as_bytes()).unwrap();
    let escaped = parse_line(
        format!(r#"{{"order_id":"\u004f1","type":"refund_failed","at":"2026-03-01T10:00:00+08:00","event_id":"{ID}"}}"#)
            .as_bytes(),
    )
    .unwrap();
    let other = parse_line(line(r#""type":"refund_failed","order_id":"O2""#).as_bytes()).unwrap();
    let (a, b, c) = (
        compact.as_parsed().payload,
        escaped.as_parsed().payload,
        other.as_parsed().payload,
    );
    assert!(a.is_compact() && !b.is_compact() && c.is_compact());
    assert!(a.same_content(&a));
    assert!(a.same_content(&b) && b.same_content(&a));
    assert!(!a.same_content(&c) && !c.same_content(&b));
    assert_eq!(a.canonical_json(), b.canonical_json());
    assert_eq!(a.event(), Ok(compact.event.clone()));
    assert_eq!(b.event(), Ok(compact.event));
}

#[test]
fn every_validation_reason_code() {
    assert_eq!(reject(""), "invalid_json");
    assert_eq!(reject("[1,2]"), "invalid_json");
    assert_eq!(reject(r#"{"event_id": "#), "invalid_json");
    assert_eq!(reject(&"x".repeat(MAX_LINE_BYTES + 1)), "line_too_long");
    assert_eq!(
        reject(&line(r#""type":"parcel_lost","order_id":"O1""#)),
        "unknown_type"
    );
    assert_eq!(
        reject(&line(r#""type":"shipped","order_id":"O1""#)),
        "missing_field:tracking_no"
    );
    assert_eq!(reject(&line(r#""order_id":"O1""#)), "missing_field:type");
    assert_eq!(
        reject(r#"{"type":"refund_failed","at":"2026-03-01T10:00:00+08:00","order_id":"O1"}"#),
        "missing_field:event_id"
    );
    assert_eq!(
        reject(&format!(
            r#"{{"event_id":"{ID}","type":"refund_failed","order_id":"O1"}}"#
        )),
        "missing_field:at"
    );
    assert_eq!(
        reject(&format!(
            r#"{{"event_id":"{ID}","type":"refund_failed","at":"2026-03-02T09:00:00","order_id":"O1"}}"#
        )),
        "invalid_field:at"
    );
    assert_eq!(
        reject(&format!(
            r#"{{"event_id":"{ID}","type":"refund_failed","at":null,"order_id":"O1"}}"#
        )),
        "invalid_field:at"
    );
    assert_eq!(
        reject(&line(
            r#""type":"refunded","order_id":"O1","amount_fen":-100"#
        )),
        "invalid_field:amount_fen"
    );
    assert_eq!(
        reject(&line(
            r#""type":"refunded","order_id":"O1","amount_fen":1.0"#
        )),
        "invalid_field:amount_fen"
    );
    assert_eq!(
        reject(&line(
            r#""type":"refunded","order_id":"O1","amount_fen":9223372036854775808"#
        )),
        "invalid_field:amount_fen"
    );
    assert_eq!(
        reject(&line(r#""type":"refund_failed","order_id":"""#)),
        "invalid_field:order_id"
    );
    assert_eq!(
        reject(&line(r#""type":"refund_failed","order_id":null"#)),
        "invalid_field:order_id"
    );
    let long_id = "O".repeat(MAX_ID_BYTES + 1);
    assert_eq!(
        reject(&line(&format!(
            r#""type":"refund_failed","order_id":"{long_id}""#
        ))),
        "invalid_field:order_id"
    );
    assert_eq!(
        reject(&line(
            r#""type":"judgment_revoked","order_id":"O1","judgment":4"#
        )),
        "invalid_field:judgment"
    );
    assert_eq!(
        reject(&line(
            r#""type":"shipped","order_id":"O1","tracking_no":"T","carrier":7"#
        )),
        "invalid_field:carrier"
    );
    assert_eq!(
        reject(&line(
            r#""type":"paid","order_id":"O1","shop_id":"S1","product_id":"P1","amount_fen":1,"ship_by":"2026-03-01T09:59:59+08:00""#
        )),
        "invalid_field:ship_by"
    );
    assert_eq!(
        reject(
            r#"{"event_id":"0b6f3c1e6a534f439f0e2d1c7f4a9b10","type":"refund_failed","at":"2026-03-01T10:00:00+08:00","order_id":"O1"}"#
        ),
        "invalid_field:event_id"
    );
    assert_eq!(Reject::EventIdConflict.code(), "event_id_conflict");
    assert_eq!(Reject::OrderAlreadyPaid.code(), "order_already_paid");
}

#[test]
fn null_optional_fields_count_as_absent() {
    let parsed = parse_line(
        line(r#""type":"paid","order_id":"O1","shop_id":"S1","product_id":"P1","amount_fen":1,"ship_by":null"#).as_bytes(),
    )
    .unwrap();
    assert!(matches!(
        parsed.event.kind,
        EventKind::Paid { ship_by: None, .. }
    ));
    assert!(parse_line(
        line(r#""type":"shipped","order_id":"O1","tracking_no":"T","carrier":null"#).as_bytes()
    )
    .is_ok());
}

/// Every golden scenario line, plus crafted ones: where the fast path
/// accepts a line, it must give exactly what the reference path gives.
#[test]
fn fast_and_slow_paths_agree() {
    let mut lines: Vec<String> = vec![
        line(r#""type":"shipped","order_id":"O1","tracking_no":"T","carrier":"SF""#),
        line(r#""type":"shipped","order_id":"O1","tracking_no":"T","shop_id":"S1""#),
        line(r#""type":"shipped","order_id":"\u004f1","tracking_no":"T""#),
        line(
            r#""type":"paid","order_id":"O1","shop_id":"S1","product_id":"P1","amount_fen":100,"ship_by":"2026-03-05T00:00:00Z""#,
        ),
        line(r#""type":"refunded","order_id":"O1","amount_fen":1e3"#),
        line(r#""type":"judgment_revoked","order_id":"O1","judgment":2,"reason":"ok""#),
        line(r#""type":"judgment_revoked","order_id":"O1","judgment":2,"reason":{"a": 1}"#),
        line(r#""type":"deposit_topped_up","shop_id":"S1","amount_fen":5000"#),
        line(r#""type":"refund_failed","order_id":"O1","order_id":"O2""#),
        line(r#""type":"refund_failed","order_id":"日本""#),
    ];
    let scenarios =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/scenarios");
    for entry in std::fs::read_dir(scenarios).unwrap() {
        let text =
            std::fs::read_to_string(entry.unwrap().path().join("events.jsonl")).unwrap_or_default();
        lines.extend(text.lines().map(str::to_string));
    }
    let mut fast_count = 0;
    let mut compact_count = 0;
    for line in &lines {
        let slow = reference::parse_line(line.as_bytes());
        if let Some(fast) = scan::parse(line.as_bytes()) {
            fast_count += 1;
            let mut reference = slow.clone().unwrap();
            reference.compact = fast.compact.clone();
            assert_eq!(fast, reference, "{line}");
            // The compact form, when kept, gives back both the event and
            // the canonical JSON exactly.
            if let Some(compact) = &fast.compact {
                assert_eq!(
                    compact::decode_event(compact).as_ref(),
                    Some(&fast.event),
                    "{line}"
                );
                assert_eq!(
                    compact::decode_ref(compact),
                    Some((fast.event.event_id, fast.event.at, fast.event.kind_ref())),
                    "{line}"
                );
                assert_eq!(
                    compact::canonical_json(compact).as_ref(),
                    Some(&fast.canonical_json),
                    "{line}"
                );
                compact_count += 1;
            }
        }
    }
    assert!(
        fast_count * 2 > lines.len(),
        "the fast path takes most lines ({fast_count} of {})",
        lines.len()
    );
    assert!(
        compact_count * 10 > fast_count * 9,
        "most fast lines get a compact form ({compact_count} of {fast_count})"
    );
}

/// One generated value for a key: the shapes events use, and near
/// misses of them (escapes, other number forms, upper-case ids, other
/// instant shapes, non-ASCII and invalid UTF-8, empty and long texts).
fn value_strategy() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let quoted = |text: String| format!("\"{text}\"").into_bytes();
    prop_oneof![
        // Ids and texts.
        "[A-Za-z0-9_-]{1,12}".prop_map(quoted),
        "[a-f0-9]{8}-[a-f0-9]{4}-[a-fA-F0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}".prop_map(quoted),
        "[ -~]{0,20}".prop_map(quoted),
        "[日本é ]{1,4}".prop_map(quoted),
        Just(b"\"\\u0041b\"".to_vec()),
        Just(b"\"a\xffb\"".to_vec()),
        Just(b"\"\xe6\x97\"".to_vec()),
        "[a-z]{129,140}".prop_map(quoted),
        // Instants, common and not.
        (
            1969i32..2201,
            1u32..13,
            1u32..32,
            0u32..25,
            0u32..61,
            0u32..61
        )
            .prop_map(|(y, mo, d, h, mi, se)| format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}Z"
            ))
            .prop_map(quoted),
        (
            2020i32..2030,
            1u32..13,
            1u32..29,
            0u32..24,
            prop_oneof![
                Just("+08:00"),
                Just("-05:30"),
                Just("z"),
                Just("+24:00"),
                Just(".5Z")
            ]
        )
            .prop_map(|(y, mo, d, h, tail)| format!("{y:04}-{mo:02}-{d:02}T{h:02}:30:00{tail}"))
            .prop_map(quoted),
        // Numbers.
        (1i64..=i64::MAX).prop_map(|n| n.to_string().into_bytes()),
        prop_oneof![
            Just("0"),
            Just("01"),
            Just("-3"),
            Just("1.5"),
            Just("1e3"),
            Just("99999999999999999999"),
            Just("null"),
            Just("true"),
            Just("[]"),
            Just("{}")
        ]
        .prop_map(|t| t.as_bytes().to_vec()),
    ]
}

/// The keys each type uses, as a valid line of it has them.
fn keys_of(type_name: &str) -> &'static [&'static str] {
    match type_name {
        "paid" => &["order_id", "shop_id", "product_id", "amount_fen", "ship_by"],
        "shipped" | "tracking_uploaded" => &["order_id", "tracking_no", "carrier"],
        "tracking_rejected" => &["order_id", "tracking_no"],
        "refunded" => &["order_id", "amount_fen"],
        "refund_failed" => &["order_id"],
        "judgment_revoked" => &["order_id", "judgment", "reason"],
        "deposit_topped_up" => &["shop_id", "amount_fen"],
        _ => &[],
    }
}

/// A valid value for a key.
fn valid_value(key: &str, seed: u64) -> Vec<u8> {
    let text = match key {
        "event_id" => format!("\"0b6f3c1e-6a53-4f43-9f0e-{seed:012x}\""),
        "at" => format!(
            "\"2026-03-{:02}T10:{:02}:00+08:00\"",
            1 + seed % 28,
            seed % 60
        ),
        "ship_by" => "\"2026-04-01T00:00:00Z\"".to_string(),
        "amount_fen" => (1 + seed % 100_000).to_string(),
        "judgment" => (1 + seed % 20).to_string(),
        "carrier" | "reason" => format!("\"text {seed}\""),
        _ => format!("\"ID{seed}\""),
    };
    text.into_bytes()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
    /// Generated lines of every type: a valid line (keys in any order),
    /// then up to three fields added or replaced by values of every
    /// shape (see `value_strategy`). Wherever the fast path accepts a
    /// line, the reference path accepts it with the same event and
    /// canonical JSON, and the compact form gives both back. (Of 3,000
    /// cases, about 660 take the fast path and 700 more only the
    /// reference path; a fast path that skipped the UTF-8 check of a
    /// carrier fails here.)
    #[test]
    fn generated_lines_read_alike_on_both_paths(
        type_name in proptest::sample::select(vec![
            "paid", "shipped", "tracking_uploaded", "tracking_rejected", "refunded",
            "refund_failed", "judgment_revoked", "deposit_topped_up", "other",
        ]),
        seed in proptest::prelude::any::<u64>(),
        order in proptest::prelude::any::<proptest::sample::Index>(),
        changes in proptest::collection::vec(
            (
                proptest::sample::select(vec![
                    "event_id", "at", "order_id", "shop_id", "product_id", "amount_fen",
                    "ship_by", "tracking_no", "carrier", "judgment", "reason", "extra",
                ]),
                value_strategy(),
            ),
            0..4,
        ),
        spaced in proptest::prelude::any::<bool>(),
    ) {
        let mut fields: Vec<(&str, Vec<u8>)> = vec![
            ("type", format!("\"{type_name}\"").into_bytes()),
            ("event_id", valid_value("event_id", seed >> 16)),
            ("at", valid_value("at", seed)),
        ];
        for key in keys_of(type_name) {
            fields.push((key, valid_value(key, seed)));
        }
        for (key, value) in changes {
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some(field) => field.1 = value,
                None => fields.push((key, value)),
            }
        }
        let turn = order.index(fields.len());
        fields.rotate_left(turn);
        let separator: &[u8] = if spaced { b", " } else { b"," };
        let mut line = b"{".to_vec();
        for (number, (key, value)) in fields.iter().enumerate() {
            if number > 0 {
                line.extend_from_slice(separator);
            }
            line.extend_from_slice(format!("\"{key}\":").as_bytes());
            line.extend_from_slice(value);
        }
        line.push(b'}');
        let text = String::from_utf8_lossy(&line).into_owned();
        // Declining is always allowed: the reference path decides.
        if let Some(fast) = scan::parse(&line) {
            let mut reference = reference::parse_line(&line).unwrap_or_else(|reject| {
                panic!("fast accepted, reference rejects ({reject}): {text}")
            });
            reference.compact = fast.compact.clone();
            proptest::prop_assert_eq!(&fast, &reference, "{}", text);
            if let Some(compact) = &fast.compact {
                let canonical = compact::canonical_json(compact);
                proptest::prop_assert_eq!(canonical.as_ref(), Some(&fast.canonical_json));
                let event = compact::decode_event(compact);
                proptest::prop_assert_eq!(event.as_ref(), Some(&fast.event));
                let mut json = b"kept".to_vec();
                let decoded = compact::decode_ref_and_json(compact, &mut json);
                proptest::prop_assert_eq!(decoded, compact::decode_ref(compact));
                proptest::prop_assert_eq!(&json[..4], b"kept");
                proptest::prop_assert_eq!(&json[4..], &fast.canonical_json[..]);
            }
        }
        // The borrowed read of a stored line (the log's check) accepts
        // and refuses what the owned one does, with the same event.
        let owned = parse_stored(&line).map(|event| (event.event_id, event.at, event.kind));
        let borrowed = parse_stored_with(&line, |id, at, kind| (id, at, kind.to_kind()));
        proptest::prop_assert_eq!(borrowed, owned, "{}", text);
    }
}

/// The fast path's scanner against the reference path on variants of
/// every golden line: whitespace between tokens, escapes, other number
/// forms, `null`, nesting, unknown and repeated keys, control characters,
/// invalid UTF-8, trailing text and every truncation. Wherever the fast
/// path accepts a variant, the reference must accept it with the same
/// event and canonical JSON.
#[test]
fn the_scanner_accepts_only_what_the_reference_accepts_alike() {
    let (bases, variants) = line_variants();
    let (mut accepted, mut spaced_accepted) = (0, 0);
    for variant in &variants {
        let Some(fast) = scan::parse(variant) else {
            continue;
        };
        accepted += 1;
        if variant.contains(&b'\t') {
            spaced_accepted += 1;
        }
        let text = String::from_utf8_lossy(variant);
        let mut reference = reference::parse_line(variant)
            .unwrap_or_else(|reject| panic!("fast accepted, reference rejects ({reject}): {text}"));
        reference.compact = fast.compact.clone();
        assert_eq!(fast, reference, "{text}");
    }
    // Most bases are valid, and each gives three spaced variants.
    assert!(
        accepted > bases.len() * 2,
        "the scanner takes the ordinary variants: {accepted} of {} bases",
        bases.len()
    );
    assert!(
        spaced_accepted * 2 > bases.len(),
        "and those with whitespace: {spaced_accepted} of {} bases",
        bases.len()
    );
}

/// Ingest's parser threads put a chunk of lines into one shared buffer,
/// where a line the fast path gives up on midway leaves bytes behind:
/// each line must still read exactly as it does alone.
#[test]
fn lines_sharing_one_buffer_read_as_each_line_alone() {
    let (_, variants) = line_variants();
    let mut shared = ParsedLines::default();
    let mut positions = Vec::new();
    for variant in &variants {
        positions.push(shared.push(variant));
    }
    let mut valid = 0;
    for (variant, position) in variants.iter().zip(positions) {
        let text = String::from_utf8_lossy(variant);
        match (parse_line(variant), position) {
            (Ok(alone), Ok(position)) => {
                valid += 1;
                let kept = shared.get(position).expect("a kept line");
                assert_eq!(kept, alone.as_parsed(), "{text}");
                assert_eq!(kept.event(), Ok(alone.event), "{text}");
            }
            (Err(alone), Err(shared)) => assert_eq!(alone, shared, "{text}"),
            (alone, shared) => panic!("alone {alone:?}, shared {shared:?}: {text}"),
        }
    }
    assert_eq!(shared.len(), valid);
    assert!(valid > 100, "enough valid lines to mean something: {valid}");
}

/// The scenario lines, and variants of each: whitespace, truncations,
/// changed bytes, values of other forms, unknown and repeated keys.
fn line_variants() -> (Vec<String>, Vec<Vec<u8>>) {
    let scenarios =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/scenarios");
    let mut bases: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(scenarios).unwrap() {
        let text =
            std::fs::read_to_string(entry.unwrap().path().join("events.jsonl")).unwrap_or_default();
        bases.extend(text.lines().map(str::to_string));
    }
    bases.retain(|line| !line.is_empty());
    bases.sort();
    bases.dedup();
    let mut variants: Vec<Vec<u8>> = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for base in &bases {
        let bytes = base.as_bytes();
        // Whitespace after structural characters, and around the object.
        let mut spaced = Vec::new();
        let mut in_string = false;
        for (i, &b) in bytes.iter().enumerate() {
            spaced.push(b);
            if b == b'"' && (i == 0 || bytes[i - 1] != b'\\') {
                in_string = !in_string;
            }
            if !in_string && matches!(b, b'{' | b',' | b':') {
                spaced.extend_from_slice([&b" "[..], b"\t", b"\r\n", b""][next() as usize % 4]);
            }
        }
        variants.push(spaced.clone());
        variants.push([b" ", &spaced[..], b" \t"].concat());
        variants.push([&spaced[..], b"x"].concat());
        // Every truncation, and a byte changed at a few places.
        for end in 0..bytes.len() {
            variants.push(bytes[..end].to_vec());
        }
        for _ in 0..12 {
            let mut changed = bytes.to_vec();
            let at = next() as usize % changed.len();
            changed[at] = [
                b'\\', b'"', 0x01, 0xff, b'n', b'-', b'.', b'e', b'0', b'{', b'[', b' ',
            ][next() as usize % 12];
            variants.push(changed);
        }
        // Values replaced by other forms.
        for replacement in [
            "null",
            "\"\\u004f1\"",
            "-5",
            "1.5",
            "1e3",
            "0100",
            "0",
            "true",
            "{}",
            "[1]",
            "\"\"",
            "\"a\\\"b\"",
            "\"日本\"",
            "99999999999999999999",
        ] {
            let mut text = base.clone();
            if let Some(colon) = text.find(':') {
                let tail = &text[colon + 1..];
                let value_end = tail.find([',', '}']).unwrap_or(tail.len());
                text = format!("{}{}{}", &text[..=colon], replacement, &tail[value_end..]);
            }
            variants.push(text.clone().into_bytes());
            // The same at the last key.
            let mut text = base.clone();
            if let Some(colon) = text.rfind(':') {
                let tail = &text[colon + 1..];
                let value_end = tail.find([',', '}']).unwrap_or(tail.len());
                text = format!("{}{}{}", &text[..=colon], replacement, &tail[value_end..]);
            }
            variants.push(text.into_bytes());
        }
        // Unknown, repeated and differently cased keys.
        variants.push(base.replacen('{', "{\"extra\":1,", 1).into_bytes());
        variants.push(base.replacen('{', "{\"at\":\"x\",", 1).into_bytes());
        variants.push(base.replacen("\"type\"", "\"Type\"", 1).into_bytes());
    }
    (bases, variants)
}

/// Issue 20 (9): an object naming a key twice, at the top level or
/// nested in an unknown field, is `invalid_json` (EVENTS.md), on every
/// way in: `parse_line`, the reference path alone, and a shared
/// `ParsedLines` buffer. The scanner declines each of these lines (its
/// seen-bitmask of known keys), so the reference path decides.
#[test]
fn issue20_a_key_named_twice_is_invalid_json() {
    let lines = [
        line(r#""type":"deposit_topped_up","shop_id":"S1","amount_fen":5,"amount_fen":70000"#),
        line(r#""type":"shipped","order_id":"K1","order_id":"K2","tracking_no":"T1""#),
        line(r#""type":"refund_failed","order_id":"O1","extra":1,"extra":2"#),
        line(r#""type":"refund_failed","order_id":"O1","meta":{"src":"app","src":"web"}"#),
        line(r#""type":"refund_failed","order_id":"O1","meta":[{"a":{"b":1,"b":1}}]"#),
        // The same key, once escaped: equal once read.
        line(r#""type":"refund_failed","order_id":"O1","\u006frder_id":"O1""#),
        line(r#""type":"refund_failed","order_id":"O1","type":"refund_failed""#),
    ];
    let mut shared = ParsedLines::default();
    for text in &lines {
        let bytes = text.as_bytes();
        assert!(scan::parse(bytes).is_none(), "the scanner declines {text}");
        assert_eq!(
            reference::parse_line(bytes),
            Err(Reject::InvalidJson),
            "{text}"
        );
        assert_eq!(parse_line(bytes), Err(Reject::InvalidJson), "{text}");
        assert_eq!(shared.push(bytes), Err(Reject::InvalidJson), "{text}");
    }
    // Distinct keys at every depth, the same key in sibling objects, and
    // a key equal to a value, are all fine.
    for text in [
        line(r#""type":"refund_failed","order_id":"O1","note":{"a":1,"b":{"a":1}}"#),
        line(r#""type":"refund_failed","order_id":"O1","l":[{"a":1},{"a":2}]"#),
        line(r#""type":"refund_failed","order_id":"O1","order_id_":"order_id""#),
    ] {
        assert!(parse_line(text.as_bytes()).is_ok(), "{text}");
    }
}

/// The fields a reason code may name: those of EVENTS.md.
const FIELDS: &[&str] = &[
    "event_id",
    "type",
    "at",
    "order_id",
    "shop_id",
    "product_id",
    "amount_fen",
    "ship_by",
    "tracking_no",
    "carrier",
    "judgment",
    "reason",
];

/// Whether `code` is a reason code of EVENTS.md that parsing gives
/// (the two that need the log, `event_id_conflict` and
/// `order_already_paid`, never come from a line alone).
fn is_parse_reason(code: &str) -> bool {
    match code.split_once(':') {
        Some(("missing_field" | "invalid_field", field)) => FIELDS.contains(&field),
        Some(_) => false,
        None => matches!(code, "invalid_json" | "line_too_long" | "unknown_type"),
    }
}

/// The fuzz corpus's seeds: every golden scenario line, and lines of
/// every type with their optional fields.
fn fuzz_seeds() -> &'static [Vec<u8>] {
    static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| {
        let (bases, _) = line_variants();
        let mut seeds: Vec<Vec<u8>> = bases.into_iter().map(String::into_bytes).collect();
        for fields in [
            r#""type":"paid","order_id":"O1","shop_id":"S1","product_id":"P1","amount_fen":100,"ship_by":"2026-03-05T00:00:00Z""#,
            r#""type":"shipped","order_id":"O1","tracking_no":"T","carrier":"SF""#,
            r#""type":"judgment_revoked","order_id":"O1","judgment":2,"reason":"ok""#,
            r#""type":"deposit_topped_up","shop_id":"S1","amount_fen":9223372036854775807"#,
        ] {
            seeds.push(line(fields).into_bytes());
        }
        seeds
    })
}

/// One change to a line: a byte replaced, bytes inserted, a range cut,
/// the line cut short, a `"key":value` pair repeated, a value nested.
#[derive(Clone, Debug)]
enum Mutation {
    Replace(usize, u8),
    Insert(usize, Vec<u8>),
    Cut(usize, usize),
    Truncate(usize),
    RepeatPair(usize),
    Nest(usize),
}

fn mutation() -> impl proptest::strategy::Strategy<Value = Mutation> {
    use proptest::prelude::*;
    let tokens = prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..4),
        proptest::sample::select(vec![
            &b"\\"[..],
            b"\"",
            b"\\u0000",
            b"\\ud800",
            b"{",
            b"}",
            b"[",
            b"]",
            b",",
            b":",
            b"null",
            b"-0",
            b"1e999",
            b"\xf0\x9f\x98",
            b"\x1b[31m",
            b" ",
            b"\t",
        ])
        .prop_map(<[u8]>::to_vec),
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Replace(at, byte)),
        (any::<usize>(), tokens).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), 1usize..16).prop_map(|(at, n)| Mutation::Cut(at, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        any::<usize>().prop_map(Mutation::RepeatPair),
        any::<usize>().prop_map(Mutation::Nest),
    ]
}

fn mutate(line: &mut Vec<u8>, mutation: &Mutation) {
    let at = |n: usize, len: usize| if len == 0 { 0 } else { n % (len + 1) };
    match mutation {
        Mutation::Replace(n, byte) if !line.is_empty() => {
            let i = n % line.len();
            line[i] = *byte;
        }
        Mutation::Insert(n, bytes) => {
            let i = at(*n, line.len());
            line.splice(i..i, bytes.iter().copied());
        }
        Mutation::Cut(n, count) => {
            let i = at(*n, line.len());
            let end = (i + count).min(line.len());
            line.drain(i..end);
        }
        Mutation::Truncate(n) => line.truncate(at(*n, line.len())),
        Mutation::RepeatPair(n) | Mutation::Nest(n) => {
            // A pair starts after `{` or `,` with a quote, and (in
            // these lines) ends at the next `,` or `}`.
            let starts: Vec<usize> = (1..line.len())
                .filter(|&i| line[i] == b'"' && matches!(line[i - 1], b'{' | b','))
                .collect();
            if starts.is_empty() {
                return;
            }
            let start = starts[n % starts.len()];
            let Some(len) = line[start..].iter().position(|b| matches!(b, b',' | b'}')) else {
                return;
            };
            let pair = line[start..start + len].to_vec();
            if matches!(mutation, Mutation::RepeatPair(_)) {
                line.splice(start..start, [&pair[..], b","].concat());
            } else if let Some(colon) = pair.iter().position(|&b| b == b':') {
                // `"k":v` becomes `"k":{"k":v,"k":v}`: nested, with a
                // key named twice inside.
                let nested = [&pair[..=colon], b"{", &pair[..], b",", &pair[..], b"}"].concat();
                line.splice(start..start + len, nested);
            }
        }
        Mutation::Replace(..) => {}
    }
}

/// What a line reads as on every way in, checked against each other:
/// `parse_line` (fast path first), the reference path alone, a shared
/// `ParsedLines` buffer, and the scanner alone where it accepts. A
/// rejection is a reason code of EVENTS.md; an accepted line's
/// canonical JSON reads back as the same event and JSON, and its
/// compact form, when kept, gives both back.
fn check_every_path(bytes: &[u8], shared: &mut ParsedLines) {
    let text = String::from_utf8_lossy(bytes);
    let result = parse_line(bytes);
    let mut ours = ParsedLines::default();
    let pushed = ours.push(bytes);
    let pushed_shared = shared.push(bytes);
    match &result {
        Err(reject) => {
            assert!(is_parse_reason(&reject.code()), "{reject:?}: {text}");
            assert_eq!(pushed, Err(*reject), "{text}");
            assert_eq!(pushed_shared, Err(*reject), "{text}");
        }
        Ok(parsed) => {
            let kept = ours.get(pushed.expect("accepted alike")).expect("kept");
            assert_eq!(kept.event(), Ok(parsed.event.clone()), "{text}");
            assert_eq!(kept.payload.canonical_json(), &parsed.canonical_json[..]);
            let kept = shared.get(pushed_shared.expect("alike")).expect("kept");
            assert_eq!(kept.event(), Ok(parsed.event.clone()), "{text}");
            let again = parse_line(&parsed.canonical_json).expect("canonical reads");
            assert_eq!(again.event, parsed.event, "{text}");
            assert_eq!(again.canonical_json, parsed.canonical_json, "{text}");
            if let Some(compact) = &parsed.compact {
                assert_eq!(compact::decode_event(compact).as_ref(), Some(&parsed.event));
                assert_eq!(
                    compact::canonical_json(compact).as_ref(),
                    Some(&parsed.canonical_json)
                );
            }
        }
    }
    if bytes.len() <= MAX_LINE_BYTES {
        let reference = reference::parse_line(bytes);
        match (&result, &reference) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.event, b.event, "{text}");
                assert_eq!(a.canonical_json, b.canonical_json, "{text}");
            }
            (a, b) => assert_eq!(a.as_ref().err(), b.as_ref().err(), "{text}"),
        }
        if let Some(fast) = scan::parse(bytes) {
            let reference = reference.expect("the scanner accepts only valid lines");
            assert_eq!(fast.event, reference.event, "{text}");
            assert_eq!(fast.canonical_json, reference.canonical_json, "{text}");
        }
    }
}

/// How many cases each fuzz run takes: `PENALTY_FUZZ_CASES`, or a
/// default that keeps it to a few seconds in a debug build.
fn fuzz_cases(default: u32) -> u32 {
    std::env::var("PENALTY_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: fuzz_cases(1500),
        ..proptest::prelude::ProptestConfig::default()
    })]
    /// Issue 20 (fuzzing the event-line parser): a corpus line with up
    /// to six mutations, read on every path (`check_every_path`): no
    /// panic, the paths agree, every rejection is a typed reason.
    #[test]
    fn fuzz_mutated_lines_read_alike_on_every_path(
        seed in proptest::prelude::any::<proptest::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 0..6),
    ) {
        let seeds = fuzz_seeds();
        let mut bytes = seed.get(seeds).clone();
        for mutation in &mutations {
            mutate(&mut bytes, mutation);
        }
        check_every_path(&bytes, &mut ParsedLines::default());
    }

    /// Arbitrary bytes, and arbitrary text, on every path.
    #[test]
    fn fuzz_arbitrary_bytes_read_alike_on_every_path(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        text in "\\PC{0,200}",
    ) {
        let mut shared = ParsedLines::default();
        check_every_path(&bytes, &mut shared);
        check_every_path(text.as_bytes(), &mut shared);
        check_every_path(format!("{{{text}}}").as_bytes(), &mut shared);
    }
}

#[test]
fn binary_garbage_is_invalid_json_not_a_panic() {
    assert_eq!(
        parse_line(&[0xff, 0xfe, 0x00, 0x7b]).unwrap_err(),
        Reject::InvalidJson
    );
}

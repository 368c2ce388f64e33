//! Golden scenarios: every folder of `fixtures/scenarios/` holds `events.jsonl`
//! and `expect.json` (the format of `../shared/scenarios`). The events are fed
//! to the core the way ingest would (validation, idempotency, first `paid`
//! wins), then every expected report is compared with the core's, field by
//! field, as `../shared/conformance/check` compares them.
//!
//! The same events are also applied in reverse and in a shuffled order; the
//! reports and the digest must not change (RULES.md: arrival order never
//! matters).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use penalty_core::{parse_line, Ledger, Policy, Reject, UnixNs, Within};
use serde_json::Value;

const TIMESTAMP_KEYS: &[&str] = &[
    "as_of",
    "paid_at",
    "deadline",
    "resolved_at",
    "judged_at",
    "banned_at",
    "flagged_at",
    "auto_closed_at",
    "at",
];

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/scenarios")
}

/// Ingest as EVENTS.md says, in memory: returns the accepted events and the
/// counts (read, appended, duplicates, rejected).
fn ingest(text: &str) -> (Vec<penalty_core::Event>, [u64; 4]) {
    let mut by_id: HashMap<u128, Vec<u8>> = HashMap::new();
    let mut paid_orders: HashMap<String, u128> = HashMap::new();
    let mut events = Vec::new();
    let mut counts = [0u64; 4];
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        counts[0] += 1;
        let outcome = parse_line(line.as_bytes()).and_then(|parsed| {
            match by_id.get(&parsed.event.event_id) {
                Some(content) if *content == parsed.canonical_json => return Ok(false),
                Some(_) => return Err(Reject::EventIdConflict),
                None => {}
            }
            if let Some(order_id) = parsed.event.paid_order_id() {
                if paid_orders.contains_key(order_id) {
                    return Err(Reject::OrderAlreadyPaid);
                }
                paid_orders.insert(order_id.to_string(), parsed.event.event_id);
            }
            by_id.insert(parsed.event.event_id, parsed.canonical_json.clone());
            events.push(parsed.event);
            Ok(true)
        });
        match outcome {
            Ok(true) => counts[1] += 1,
            Ok(false) => counts[2] += 1,
            Err(_) => counts[3] += 1,
        }
    }
    (events, counts)
}

struct Mismatches(Vec<String>);

impl Mismatches {
    fn compare(&mut self, path: &str, key: &str, expected: &Value, actual: &Value) {
        match expected {
            Value::Object(fields) => {
                let Some(actual) = actual.as_object() else {
                    self.0
                        .push(format!("{path}: expected an object, got {actual}"));
                    return;
                };
                for (k, e) in fields {
                    if k == "explain" || k == "notices" {
                        continue;
                    }
                    match actual.get(k) {
                        Some(a) => self.compare(&format!("{path}.{k}"), k, e, a),
                        None => self.0.push(format!("{path}.{k}: missing")),
                    }
                }
            }
            Value::String(e) if TIMESTAMP_KEYS.contains(&key) => {
                let ok = actual
                    .as_str()
                    .and_then(UnixNs::parse_rfc3339)
                    .is_some_and(|a| Some(a) == UnixNs::parse_rfc3339(e));
                if !ok {
                    self.0.push(format!("{path}: expected {e}, got {actual}"));
                }
            }
            Value::Number(e) if key == "timeout_rate" => {
                let ok = actual
                    .as_f64()
                    .zip(e.as_f64())
                    .is_some_and(|(a, e)| (a - e).abs() <= 1e-9);
                if !ok {
                    self.0.push(format!("{path}: expected {e}, got {actual}"));
                }
            }
            Value::Array(e) => {
                let Some(a) = actual.as_array() else {
                    self.0
                        .push(format!("{path}: expected a list, got {actual}"));
                    return;
                };
                if e.len() != a.len() {
                    self.0.push(format!(
                        "{path}: expected {} items, got {}: {actual}",
                        e.len(),
                        a.len()
                    ));
                    return;
                }
                // Lists other than deductions and postings (both in the
                // order CLI.md gives) may come in any order (the conformance
                // check matches them by key): sort both sides.
                let (mut e, mut a) = (e.clone(), a.clone());
                if key != "deductions" && key != "postings" {
                    let sort_key = |v: &Value| v.to_string();
                    e.sort_by_key(sort_key);
                    a.sort_by_key(sort_key);
                }
                for (i, (e, a)) in e.iter().zip(&a).enumerate() {
                    self.compare(&format!("{path}[{i}]"), key, e, a);
                }
            }
            _ => {
                if expected != actual {
                    self.0
                        .push(format!("{path}: expected {expected}, got {actual}"));
                }
            }
        }
    }
}

fn check(
    ledger: &Ledger,
    expect: &Value,
    at_risk: Option<&Value>,
    as_of: UnixNs,
    label: &str,
    mismatches: &mut Mismatches,
) {
    let shops = expect["shops"].as_object().cloned().unwrap_or_default();
    let summaries = ledger.shop_summaries(as_of);
    let listed: Vec<&str> = summaries.iter().map(|s| s.shop_id.as_str()).collect();
    let mut wanted: Vec<&str> = shops.keys().map(String::as_str).collect();
    wanted.sort();
    if listed != wanted {
        mismatches.0.push(format!(
            "{label} shops: expected {wanted:?}, listed {listed:?}"
        ));
    }
    for summary in &summaries {
        if let Some(expected) = shops.get(&summary.shop_id) {
            let mut expected = expected.clone();
            if let Some(fields) = expected.as_object_mut() {
                fields.remove("deductions");
            }
            let actual = serde_json::to_value(summary).unwrap();
            mismatches.compare(
                &format!("{label} shops[{}]", summary.shop_id),
                "",
                &expected,
                &actual,
            );
        }
    }
    for (shop_id, expected) in &shops {
        match ledger.shop_report(shop_id, as_of, true) {
            Ok(report) => {
                let actual = serde_json::to_value(&report).unwrap();
                mismatches.compare(&format!("{label} shop {shop_id}"), "", expected, &actual);
            }
            Err(e) => mismatches.0.push(format!("{label} shop {shop_id}: {e}")),
        }
    }
    let orders = expect["orders"].as_object().cloned().unwrap_or_default();
    for (order_id, expected) in &orders {
        match ledger.order_report(order_id, as_of) {
            Ok(report) => {
                let actual = serde_json::to_value(&report).unwrap();
                mismatches.compare(&format!("{label} order {order_id}"), "", expected, &actual);
                assert!(
                    !report.explain.is_empty(),
                    "order {order_id} has no explain lines"
                );
            }
            Err(e) => mismatches.0.push(format!("{label} order {order_id}: {e}")),
        }
    }
    if let Some(questions) = at_risk {
        for (i, q) in questions["queries"].as_array().unwrap().iter().enumerate() {
            let at = UnixNs::parse_rfc3339(q["as_of"].as_str().unwrap()).unwrap();
            let within = Within::parse(q["within"].as_str().unwrap()).unwrap();
            match ledger.at_risk(q["shop"].as_str(), at, within) {
                Ok(report) => {
                    let actual = serde_json::to_value(&report).unwrap();
                    mismatches.compare(
                        &format!(
                            "{label} at_risk[{i}] ({} within {})",
                            q["as_of"], q["within"]
                        ),
                        "",
                        &q["report"],
                        &actual,
                    );
                    // The order of the list is part of the answer.
                    let ids = |v: &Value| -> Vec<Value> {
                        v["orders"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|o| o["order_id"].clone())
                            .collect()
                    };
                    if ids(&q["report"]) != ids(&actual) {
                        mismatches
                            .0
                            .push(format!("{label} at_risk[{i}]: orders in another order"));
                    }
                }
                Err(e) => mismatches.0.push(format!("{label} at_risk[{i}]: {e}")),
            }
        }
    }
    // R14: the booked ledger, in three arrival orders.
    let postings = expect["postings"].as_object().cloned().unwrap_or_default();
    for (shop_id, expected) in &postings {
        match ledger.postings(shop_id, as_of) {
            Ok(report) => {
                let actual = serde_json::to_value(&report).unwrap();
                mismatches.compare(
                    &format!("{label} postings {shop_id}"),
                    "",
                    expected,
                    &actual,
                );
            }
            Err(e) => mismatches
                .0
                .push(format!("{label} postings {shop_id}: {e}")),
        }
    }
    if ledger.order_report("NO-SUCH-ORDER-4f1c", as_of).is_ok()
        || ledger.shop_report("NO-SUCH-SHOP-4f1c", as_of, true).is_ok()
    {
        mismatches
            .0
            .push(format!("{label}: an unknown id was found"));
    }
}

/// A deterministic shuffle (xorshift), so a failure reproduces.
fn shuffled<T: Clone>(items: &[T], mut seed: u64) -> Vec<T> {
    let mut out = items.to_vec();
    for i in (1..out.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    out
}

#[test]
fn golden_scenarios() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .expect("fixtures/scenarios exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expect.json").is_file() && p.join("events.jsonl").is_file())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 12,
        "expected the scenarios of ../shared at least, found {}",
        dirs.len()
    );
    let mut failed = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let expect: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expect.json")).unwrap())
                .unwrap();
        // The at-risk questions of fixtures/oracle/make_at_risk.py, where the
        // oracle answers them.
        let at_risk: Option<Value> = std::fs::read_to_string(dir.join("at_risk.json"))
            .ok()
            .map(|text| serde_json::from_str(&text).unwrap());
        let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let policy = match expect.get("policy") {
            Some(p) => Policy::from_json(&p.to_string()).unwrap(),
            None => Policy::default(),
        };
        let as_of = UnixNs::parse_rfc3339(expect["as_of"].as_str().unwrap()).unwrap();
        let (events, counts) = ingest(text);
        let mut mismatches = Mismatches(Vec::new());
        if let Some(expected) = expect.get("ingest") {
            for (i, key) in ["read", "appended", "duplicates", "rejected"]
                .iter()
                .enumerate()
            {
                if let Some(e) = expected.get(*key).and_then(Value::as_u64) {
                    if e != counts[i] {
                        mismatches
                            .0
                            .push(format!("ingest.{key}: expected {e}, got {}", counts[i]));
                    }
                }
            }
        }
        let mut digests = Vec::new();
        for (label, order) in [
            ("arrival", events.clone()),
            ("reversed", events.iter().rev().cloned().collect()),
            ("shuffled", shuffled(&events, 0x9e37_79b9_7f4a_7c15)),
        ] {
            let mut ledger = Ledger::new(policy.clone());
            for event in &order {
                ledger.apply(event, UnixNs(0)).unwrap();
            }
            check(
                &ledger,
                &expect,
                at_risk.as_ref(),
                as_of,
                label,
                &mut mismatches,
            );
            digests.push(ledger.digest(as_of));
        }
        if digests.iter().any(|d| *d != digests[0]) {
            mismatches
                .0
                .push(format!("digest depends on arrival order: {digests:?}"));
        }
        if mismatches.0.is_empty() {
            println!("ok   {name}");
        } else {
            println!("FAIL {name}");
            for m in mismatches.0.iter().take(20) {
                println!("  {m}");
            }
            failed.push(name);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} scenarios failed: {failed:?}",
        failed.len(),
        dirs.len()
    );
}

/// The seller-facing sentences of every scenario in both languages: each
/// order's `explain` lines at the scenario's `as_of`, each shop's posting
/// causes (R14; a correction's notice carries the same) and every at-risk
/// warning of its `at_risk.json` questions, compared with
/// `<scenario>/sentences.en.golden` and `<scenario>/sentences.zh-CN.golden`.
/// After a deliberate change of wording, rewrite them with
/// `UPDATE_EXPECT=1 cargo test -p penalty-core --test scenarios golden_sentences`
/// and review the diff; a missing golden file is a failure. The two
/// languages say the same things: the same number of lines, and a Chinese
/// line carries no English word and no code of the reports.
#[test]
fn golden_sentences_in_both_languages() {
    use penalty_core::explain::at_risk_line_in;
    use penalty_core::labels::{Lang, LABELS};

    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expect.json").is_file() && p.join("events.jsonl").is_file())
        .collect();
    dirs.sort();
    let mut failed = Vec::new();
    for dir in &dirs {
        let expect: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expect.json")).unwrap())
                .unwrap();
        let policy = match expect.get("policy") {
            Some(p) => Policy::from_json(&p.to_string()).unwrap(),
            None => Policy::default(),
        };
        let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
        let (events, _) = ingest(text.strip_suffix('\n').unwrap_or(&text));
        let mut ledger = Ledger::new(policy);
        for event in &events {
            ledger.apply(event, UnixNs(0)).unwrap();
        }
        let as_of_text = expect["as_of"].as_str().unwrap();
        let as_of = UnixNs::parse_rfc3339(as_of_text).unwrap();
        let at_risk: Option<Value> = std::fs::read_to_string(dir.join("at_risk.json"))
            .ok()
            .map(|text| serde_json::from_str(&text).unwrap());
        let mut orders: Vec<&String> = expect["orders"]
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        orders.sort();
        let mut shops: Vec<&String> = expect["shops"]
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        shops.sort();
        let mut transcripts = Vec::new();
        for lang in [Lang::En, Lang::Zh] {
            let mut out = Vec::new();
            for order in &orders {
                out.push(format!("# order {order} as of {as_of_text}"));
                match ledger.order_report_in(order, as_of, lang) {
                    Ok(report) => out.extend(report.explain),
                    Err(e) => out.push(format!("error: {e}")),
                }
            }
            for shop in &shops {
                if let Ok(report) = ledger.postings_in(shop, as_of, lang) {
                    out.push(format!("# postings of {shop} as of {as_of_text}"));
                    out.extend(report.postings.into_iter().map(|p| p.cause));
                }
            }
            let questions = at_risk.as_ref().and_then(|a| a["queries"].as_array());
            for q in questions.into_iter().flatten() {
                let shop = q["shop"].as_str();
                let within = q["within"].as_str().unwrap();
                let at_text = q["as_of"].as_str().unwrap();
                out.push(format!(
                    "# at risk: {} within {within} as of {at_text}",
                    shop.unwrap_or("every shop")
                ));
                let at = UnixNs::parse_rfc3339(at_text).unwrap();
                let report = ledger
                    .at_risk(shop, at, Within::parse(within).unwrap())
                    .unwrap();
                out.extend(report.orders.iter().map(|o| at_risk_line_in(o, lang)));
            }
            transcripts.push(out);
        }
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(
            transcripts[0].len(),
            transcripts[1].len(),
            "{name}: the two languages say the same number of things"
        );
        for line in transcripts[1].iter().filter(|l| !l.starts_with('#')) {
            assert!(
                line.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{name}: not Chinese: {line}"
            );
            for label in LABELS.iter().filter(|l| l.code.contains('_')) {
                assert!(
                    !line.contains(label.code),
                    "{name}: the code {} in {line}",
                    label.code
                );
            }
            // A run of lowercase letters is an English word left behind (ids
            // and rule numbers start with a capital or a digit).
            let words: Vec<&str> = line
                .split(|c: char| !c.is_ascii_alphabetic())
                .filter(|w| w.len() >= 3 && w.chars().all(|c| c.is_ascii_lowercase()))
                .collect();
            assert!(words.is_empty(), "{name}: English {words:?} in {line}");
        }
        for (lang, lines) in ["en", "zh-CN"].iter().zip(&transcripts) {
            let path = dir.join(format!("sentences.{lang}.golden"));
            let text = lines.join("\n") + "\n";
            if update {
                std::fs::write(&path, &text).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                failed.push(path.display().to_string());
            }
        }
    }
    assert!(
        failed.is_empty(),
        "sentences differ from their golden files (rerun with UPDATE_EXPECT=1 and review the diff if the change is intended):\n{}",
        failed.join("\n")
    );
}

//! Golden files for what people read: every human table of the CLI, the
//! seller's `explain` lines (inside `penalty order`), the notice feed
//! (`penalty notices`) and the at-risk warnings (`penalty at-risk`), over
//! every golden scenario of `fixtures/scenarios/`.
//!
//! Each scenario's transcript is compared with `<scenario>/cli.golden`. After
//! a deliberate change of wording or layout, rewrite them with
//! `UPDATE_EXPECT=1 cargo test -p penalty-cli --test cli golden` and review
//! the diff; a missing golden file is a failure, never silently created.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::penalty;

fn scenarios() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/scenarios");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixtures/scenarios exists")
        .map(|entry| entry.unwrap().path())
        .filter(|dir| dir.join("expect.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Runs one command and appends it, its output and any failure to `out`.
fn transcribe(out: &mut String, db: &Path, policy: Option<&Path>, args: &[&str]) {
    let mut command = penalty(db);
    if let Some(policy) = policy {
        command.arg("--policy").arg(policy);
    }
    let output = command.args(args).output().expect("penalty runs");
    *out += &format!("$ penalty {}\n", args.join(" "));
    *out += &String::from_utf8_lossy(&output.stdout);
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        *out += &format!("stderr: {line}\n");
    }
    if !output.status.success() {
        *out += &format!("exit: {:?}\n", output.status.code());
    }
    out.push('\n');
}

/// The transcript of one scenario: ingest, the shop list, and for each shop
/// and order of `expect.json` its human report and notices.
fn transcript(dir: &Path) -> String {
    let expect: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expect.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let policy = expect.get("policy").map(|policy| {
        let path = tmp.path().join("policy.json");
        std::fs::write(&path, policy.to_string()).unwrap();
        path
    });
    let policy = policy.as_deref();
    let as_of = expect["as_of"].as_str().unwrap();
    let events = dir.join("events.jsonl");
    let mut out = String::new();
    let mut ingest = penalty(&db);
    if let Some(policy) = policy {
        ingest.arg("--policy").arg(policy);
    }
    // Run from the temporary folder so that the rejects file's path, which
    // the summary names, is the same in every run.
    let status = ingest
        .current_dir(tmp.path())
        .args(["ingest", "--rejects", "rejects.jsonl"])
        .arg(&events)
        .output()
        .unwrap();
    out += "$ penalty ingest events.jsonl\n";
    out += &String::from_utf8_lossy(&status.stderr);
    out += &String::from_utf8_lossy(&status.stdout);
    out.push('\n');
    transcribe(&mut out, &db, policy, &["shops", "--as-of", as_of]);
    let ids = |key: &str| -> Vec<String> {
        let mut ids: Vec<String> = expect[key]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    };
    for shop in ids("shops") {
        transcribe(&mut out, &db, policy, &["shop", &shop, "--as-of", as_of]);
        transcribe(
            &mut out,
            &db,
            policy,
            &["notices", &shop, "--as-of", as_of, "--limit", "1000"],
        );
    }
    for order in ids("orders") {
        transcribe(&mut out, &db, policy, &["order", &order, "--as-of", as_of]);
    }
    // The first few at-risk questions that find something (at_risk.json,
    // fixtures/oracle/make_at_risk.py).
    if let Ok(text) = std::fs::read_to_string(dir.join("at_risk.json")) {
        let questions: Value = serde_json::from_str(&text).unwrap();
        let found = questions["queries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|q| {
                q["report"]["orders"]
                    .as_array()
                    .is_some_and(|o| !o.is_empty())
            })
            .take(3);
        for q in found {
            let mut args = vec!["at-risk", "--as-of", q["as_of"].as_str().unwrap()];
            args.extend(["--within", q["within"].as_str().unwrap()]);
            if let Some(shop) = q["shop"].as_str() {
                args.extend(["--shop", shop]);
            }
            transcribe(&mut out, &db, policy, &args);
        }
    }
    out
}

#[test]
fn golden_transcripts_of_every_scenario() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    let dirs = scenarios();
    assert!(dirs.len() >= 12, "found only {} scenarios", dirs.len());
    let mut failed = Vec::new();
    for dir in &dirs {
        let actual = transcript(dir);
        let golden = dir.join("cli.golden");
        failed.extend(check_golden(&golden, &actual, update));
    }
    assert!(
        failed.is_empty(),
        "golden transcripts differ (rerun with UPDATE_EXPECT=1 and review the diff if the change is intended):\n{}",
        failed.join("\n")
    );
}

/// The commands whose `--help` people read, each as its arguments.
const HELP_PAGES: &[&[&str]] = &[
    &[],
    &["ingest"],
    &["shop"],
    &["order"],
    &["at-risk"],
    &["notices"],
    &["shops"],
    &["postings"],
    &["policy"],
    &["export"],
    &["export", "orders"],
    &["export", "postings"],
    &["replay"],
    &["audit"],
    &["recover"],
    &["gen"],
    &["serve"],
    &["cluster"],
    &["cluster", "init"],
    &["cluster", "node"],
    &["cluster", "status"],
];

/// The one-line descriptions of a help page's "Commands:" list, by name.
fn listed_commands(help: &str) -> Vec<(String, String)> {
    help.lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .map(|line| {
            let line = line.trim_start();
            let (name, about) = line.split_once(' ').unwrap_or((line, ""));
            (name.to_string(), about.trim().to_string())
        })
        .collect()
}

/// Every `--help` page, compared with `tests/cli/help.golden` (rewritten by
/// `UPDATE_EXPECT=1`); every command in a list says what it does (a
/// description lost or attached to the wrong command is caught here), and
/// every command's own page shows an example.
#[test]
fn golden_help_pages() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    let mut actual = String::new();
    let mut undescribed = Vec::new();
    let mut unexampled = Vec::new();
    for args in HELP_PAGES {
        let output = std::process::Command::new(super::PENALTY)
            .env("PENALTY_LANG", "en")
            .args(*args)
            .arg("--help")
            .output()
            .expect("penalty runs");
        assert!(output.status.success(), "penalty {args:?} --help failed");
        let help = String::from_utf8(output.stdout).expect("help is UTF-8");
        let command: Vec<&str> = std::iter::once("penalty")
            .chain(args.iter().copied())
            .collect();
        let command = command.join(" ");
        for (name, about) in listed_commands(&help) {
            if about.is_empty() && name != "help" {
                undescribed.push(format!("{command} {name}"));
            }
        }
        let leaf = listed_commands(&help).is_empty();
        if leaf && !help.contains("\nExample") {
            unexampled.push(command.clone());
        }
        actual += &format!("$ {command} --help\n{help}\n");
    }
    assert!(
        undescribed.is_empty(),
        "commands listed without a description: {undescribed:?}"
    );
    assert!(
        unexampled.is_empty(),
        "commands whose --help shows no example: {unexampled:?}"
    );
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/help.golden");
    if let Some(difference) = check_golden(&golden, &actual, update) {
        panic!("{difference} (rerun with UPDATE_EXPECT=1 and review the diff if the change is intended)");
    }
}

/// The top `--help` and `shop --help` in each language, compared with
/// `tests/cli/help-top-shop.<lang>.golden` (rewritten by `UPDATE_EXPECT=1`):
/// Chinese is asked for by `--lang`, PENALTY_LANG and the locale alike, and
/// English is what it was before Chinese help existed.
#[test]
fn golden_help_in_two_languages() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    // Each run: what is shown, the environment, the arguments.
    type Run = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
    );
    let languages: [(&str, &[Run]); 2] = [
        (
            "en",
            &[
                ("penalty --help", &[("LANG", "C")], &["--help"]),
                ("penalty shop --help", &[("LANG", "C")], &["shop", "--help"]),
            ],
        ),
        (
            "zh-CN",
            &[
                (
                    "penalty --lang zh-CN --help",
                    &[("LANG", "C")],
                    &["--lang", "zh-CN", "--help"],
                ),
                (
                    "PENALTY_LANG=zh-CN penalty shop --help",
                    &[("LANG", "C"), ("PENALTY_LANG", "zh-CN")],
                    &["shop", "--help"],
                ),
                (
                    "LANG=zh_CN.UTF-8 penalty shop --help",
                    &[("LANG", "zh_CN.UTF-8")],
                    &["shop", "--help"],
                ),
            ],
        ),
    ];
    let mut differences = Vec::new();
    for (lang, runs) in languages {
        let mut actual = String::new();
        for (shown, env, args) in runs {
            let mut command = std::process::Command::new(super::PENALTY);
            command
                .env_remove("PENALTY_LANG")
                .env_remove("LC_ALL")
                .env_remove("LC_MESSAGES");
            let output = command
                .envs(env.iter().copied())
                .args(*args)
                .output()
                .unwrap();
            assert!(output.status.success(), "{shown} failed");
            actual += &format!("$ {shown}\n{}\n", String::from_utf8(output.stdout).unwrap());
        }
        let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/cli/help-top-shop.{lang}.golden"));
        differences.extend(check_golden(&golden, &actual, update));
    }
    assert!(
        differences.is_empty(),
        "help pages differ (rerun with UPDATE_EXPECT=1 and review the diff if the change is intended):\n{}",
        differences.join("\n")
    );
}

/// Compares `actual` with the golden file `golden`, or rewrites the file
/// with it when `update` (`UPDATE_EXPECT=1`): where they first differ, or
/// that the file is missing; `None` when they agree or were rewritten.
fn check_golden(golden: &Path, actual: &str, update: bool) -> Option<String> {
    if update {
        std::fs::write(golden, actual).unwrap();
        return None;
    }
    let Ok(expected) = std::fs::read_to_string(golden) else {
        return Some(format!("{} is missing", golden.display()));
    };
    if expected == actual {
        return None;
    }
    let first = expected
        .lines()
        .zip(actual.lines())
        .position(|(e, a)| e != a)
        .unwrap_or(expected.lines().count().min(actual.lines().count()));
    Some(format!(
        "{} differs from line {}:\n  expected: {:?}\n  actual:   {:?}",
        golden.display(),
        first + 1,
        expected.lines().nth(first).unwrap_or("<end>"),
        actual.lines().nth(first).unwrap_or("<end>"),
    ))
}

/// The demo's commands whose human output people read most: the shop list,
/// a shop, its notices and booked ledger, orders whose reasons touch most
/// rules, the orders at risk, the policy, a replay and an audit.
fn demo_commands() -> Vec<Vec<&'static str>> {
    let as_of = "2026-04-15";
    let mut commands: Vec<Vec<&'static str>> = vec![
        vec!["shops", "--as-of", as_of],
        vec!["shop", "S01", "--as-of", as_of, "--limit", "5"],
        // A notice's cursor holds the instant it became visible, for some
        // notices the instant their events were recorded (the day the test
        // runs), so the feed is shown whole, without a next-page cursor:
        // S06's is short and holds a correction and revoked judgments.
        vec!["notices", "S06", "--as-of", as_of, "--limit", "1000"],
        vec!["postings", "S01", "--as-of", as_of, "--limit", "6"],
        vec!["postings", "S06", "--as-of", as_of],
    ];
    for (order, order_as_of) in DEMO_ORDERS {
        commands.push(vec!["order", order, "--as-of", order_as_of]);
    }
    commands.extend([
        vec![
            "at-risk",
            "--as-of",
            "2026-03-20T12:00:00+08:00",
            "--limit",
            "6",
        ],
        vec!["policy"],
        vec!["replay", "--as-of", as_of],
        vec!["audit"],
        vec!["order", "NO-SUCH-ORDER", "--as-of", as_of],
    ]);
    commands
}

/// Orders of the demo, each with the instant to ask at, whose reasons
/// together touch most rules: judged, charged, banned, flagged, partly
/// refunded, auto-closed with its refund failed (O0076); a presale shipped
/// under a rejected tracking number, appealed (O0110); waived by the daily
/// cap (O0351); fully refunded (O0231); a deduction revoked (O0081).
const DEMO_ORDERS: &[(&str, &str)] = &[
    ("O0076", "2026-08-15"),
    ("O0110", "2026-04-15"),
    ("O0351", "2026-04-15"),
    ("O0231", "2026-04-15"),
    ("O0081", "2026-04-15"),
];

/// The transcript of the demo's commands in `lang` (`--lang` before each).
fn demo_transcript(lang: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/demo/events.jsonl");
    let ingest = penalty(&db)
        .current_dir(tmp.path())
        .args(["--lang", lang, "ingest", "--rejects", "rejects.jsonl"])
        .arg(&events)
        .output()
        .unwrap();
    let mut out = format!("$ penalty --lang {lang} ingest events.jsonl\n");
    out += &String::from_utf8_lossy(&ingest.stdout);
    out.push('\n');
    for args in demo_commands() {
        let mut with_lang = vec!["--lang", lang];
        with_lang.extend(args);
        transcribe(&mut out, &db, None, &with_lang);
    }
    out
}

/// The demo's main commands in English and in Chinese, compared with
/// `tests/cli/demo.<lang>.golden` (rewritten by `UPDATE_EXPECT=1`): the two
/// files side by side show every heading, label and sentence in both.
#[test]
fn golden_demo_transcripts_in_english_and_chinese() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    let mut failed = Vec::new();
    for lang in ["en", "zh-CN"] {
        let actual = demo_transcript(lang);
        let golden =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/cli/demo.{lang}.golden"));
        failed.extend(check_golden(&golden, &actual, update));
    }
    assert!(
        failed.is_empty(),
        "demo transcripts differ (rerun with UPDATE_EXPECT=1 and review the diff if the change is intended):\n{}",
        failed.join("\n")
    );
}

/// The columns of every table in a Chinese transcript line up on a
/// terminal: in each block of table lines, every column after the first
/// starts at the same display column (measured in display width, two
/// columns per Chinese character, not in bytes or characters).
#[test]
fn chinese_tables_line_up_by_display_width() {
    let text = demo_transcript("zh-CN");
    let width = |s: &str| -> usize {
        s.chars()
            .map(|c| {
                if (c as u32) >= 0x1100 && !c.is_ascii() {
                    2
                } else {
                    1
                }
            })
            .sum()
    };
    // A table's header row is the line after a blank or title line whose
    // cells are separated by two or more spaces; its rows follow until a
    // line that is not indented by two spaces.
    let lines: Vec<&str> = text.lines().collect();
    let mut checked = 0;
    let mut i = 0;
    while i < lines.len() {
        let header = lines[i];
        let is_header = header.starts_with("  ")
            && !header.starts_with("   ")
            && header.trim().contains("  ")
            && (header.contains("判罚时间")
                || header.contains("店铺")
                || header.contains("参数")
                || header.contains("结算运行日")
                || header.contains("时间"));
        if !is_header {
            i += 1;
            continue;
        }
        // Where each cell of the header starts, in display columns.
        let starts = |line: &str| -> Vec<usize> {
            let mut starts = Vec::new();
            let mut column = 0;
            let mut spaces = 0;
            for c in line.chars() {
                if c == ' ' {
                    spaces += 1;
                } else {
                    if spaces >= 2 && column > 2 {
                        starts.push(column);
                    }
                    spaces = 0;
                }
                column += width(&c.to_string());
            }
            starts
        };
        let columns = starts(header);
        let mut j = i + 1;
        while j < lines.len() && lines[j].starts_with("  ") && !lines[j].trim().is_empty() {
            let row = starts(lines[j]);
            // A row's cells start where the header's do (a cell may hold
            // two spaces itself only in the last column).
            for (k, start) in columns.iter().enumerate() {
                if let Some(got) = row.get(k) {
                    assert_eq!(
                        got, start,
                        "column {k} of {:?} under {:?}",
                        lines[j], header
                    );
                }
            }
            checked += 1;
            j += 1;
        }
        i = j;
    }
    assert!(checked > 20, "only {checked} table rows found:\n{text}");
}

/// Lines with one mistake each, one per reason code of EVENTS.md that a
/// single input can show: a rejects file's records name the file, the line,
/// the field and the fix.
const BAD_LINES: &str = concat!(
    "{oops\n",
    r#"{"event_id":"00000000-0000-4000-8000-000000000001","type":"teleported","at":"2026-03-01T10:00:00+08:00","order_id":"O1"}"#,
    "\n",
    r#"{"event_id":"00000000-0000-4000-8000-000000000002","type":"paid","at":"2026-03-01T10:00:00+08:00","shop_id":"S1","product_id":"P1","amount_fen":1990}"#,
    "\n",
    r#"{"event_id":"00000000-0000-4000-8000-000000000003","type":"paid","at":"yesterday","order_id":"O1","shop_id":"S1","product_id":"P1","amount_fen":1990}"#,
    "\n",
    r#"{"event_id":"00000000-0000-4000-8000-000000000004","type":"paid","at":"2026-03-01T10:00:00+08:00","order_id":"O1","shop_id":"S1","product_id":"P1","amount_fen":1990}"#,
    "\n",
    r#"{"event_id":"00000000-0000-4000-8000-000000000004","type":"paid","at":"2026-03-01T10:00:00+08:00","order_id":"O1","shop_id":"S1","product_id":"P1","amount_fen":2990}"#,
    "\n",
    r#"{"event_id":"00000000-0000-4000-8000-000000000005","type":"paid","at":"2026-03-01T11:00:00+08:00","order_id":"O1","shop_id":"S1","product_id":"P1","amount_fen":1990}"#,
    "\n",
);

/// An ingest of [`BAD_LINES`] in English and in Chinese (`--lang`), its
/// summary and its rejects file, compared with
/// `tests/cli/rejects.<lang>.golden` (rewritten by `UPDATE_EXPECT=1`): the
/// codes stay codes, the hints speak the language asked for.
#[test]
fn golden_rejects_in_english_and_chinese() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    let mut failed = Vec::new();
    for lang in ["en", "zh-CN"] {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("db");
        std::fs::write(tmp.path().join("bad.jsonl"), BAD_LINES).unwrap();
        let ingest = penalty(&db)
            .current_dir(tmp.path())
            .args([
                "--lang",
                lang,
                "ingest",
                "--rejects",
                "rejects.jsonl",
                "bad.jsonl",
            ])
            .output()
            .unwrap();
        assert!(ingest.status.success(), "{ingest:?}");
        let mut actual =
            format!("$ penalty --lang {lang} ingest --rejects rejects.jsonl bad.jsonl\n");
        actual += &String::from_utf8_lossy(&ingest.stdout);
        actual += "$ cat rejects.jsonl\n";
        actual += &std::fs::read_to_string(tmp.path().join("rejects.jsonl")).unwrap();
        let golden =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/cli/rejects.{lang}.golden"));
        failed.extend(check_golden(&golden, &actual, update));
    }
    assert!(
        failed.is_empty(),
        "rejects differ (rerun with UPDATE_EXPECT=1 and review the diff if the change is intended):\n{}",
        failed.join("\n")
    );
}

/// The errors that name an input, in `tests/cli/errors.<lang>.golden`
/// (rewritten by `UPDATE_EXPECT=1`): a policy file's unknown key, a value
/// out of range (also inside a version), a value of the wrong type, the
/// versions of R15 refused (none, a key beside them, one that is not an
/// object, one not later than the one before, an offset after V0), an
/// instant and a horizon refused, and ingest's input that cannot be read.
/// The English words are the types' `Display`; the Chinese ones the same
/// phrases in the language of `--lang`.
#[test]
fn golden_input_errors_in_english_and_chinese() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    let policies = [
        ("unknown-key.json", r#"{"shop_cap": 1}"#),
        ("out-of-range.json", r#"{"ban_at_judgment": 0}"#),
        (
            "version.json",
            r#"{"versions": [{}, {"effective_from": "2026-03-05T00:00:00+08:00", "deduction_fen": -1}]}"#,
        ),
        ("wrong-type.json", r#"{"deduction_fen": "x"}"#),
        ("no-versions.json", r#"{"versions": []}"#),
        (
            "beside-versions.json",
            r#"{"versions": [{}], "deduction_fen": 1}"#,
        ),
        ("version-not-an-object.json", r#"{"versions": [[]]}"#),
        (
            "version-not-later.json",
            r#"{"versions": [{}, {"effective_from": "2026-03-05T00:00:00+08:00"}, {"effective_from": "2026-03-05T00:00:00+08:00"}]}"#,
        ),
        (
            "version-offset.json",
            r#"{"versions": [{}, {"effective_from": "2026-03-05T00:00:00+08:00", "utc_offset": "+05:00"}]}"#,
        ),
    ];
    let mut failed = Vec::new();
    for lang in ["en", "zh-CN"] {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("db");
        std::fs::write(tmp.path().join("empty.jsonl"), "").unwrap();
        std::fs::create_dir(tmp.path().join("a-directory")).unwrap();
        let created = penalty(&db)
            .current_dir(tmp.path())
            .args(["ingest", "empty.jsonl"])
            .output()
            .unwrap();
        assert!(created.status.success(), "{created:?}");
        let mut commands: Vec<Vec<&str>> = vec![vec!["ingest", "a-directory"]];
        for (name, text) in policies {
            std::fs::write(tmp.path().join(name), text).unwrap();
            commands.push(vec!["--policy", name, "shops"]);
        }
        commands.push(vec!["shops", "--as-of", "2026-13-01"]);
        commands.push(vec!["shops", "--known-at", "yesterday"]);
        commands.push(vec!["at-risk", "--within", "0h"]);
        let mut actual = String::new();
        for args in commands {
            let output = penalty(&db)
                .current_dir(tmp.path())
                .args(["--lang", lang])
                .args(&args)
                .output()
                .unwrap();
            assert_eq!(output.status.code(), Some(1), "{args:?}: {output:?}");
            actual += &format!("$ penalty --lang {lang} {}\n", args.join(" "));
            actual += &String::from_utf8_lossy(&output.stderr);
        }
        let golden =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/cli/errors.{lang}.golden"));
        failed.extend(check_golden(&golden, &actual, update));
    }
    assert!(
        failed.is_empty(),
        "errors differ (rerun with UPDATE_EXPECT=1 and review the diff if the change is intended):\n{}",
        failed.join("\n")
    );
}

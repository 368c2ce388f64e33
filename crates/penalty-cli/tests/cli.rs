//! The `penalty` binary, end to end: every test runs the real executable on a
//! fresh data directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "cli/golden.rs"]
mod golden;
#[path = "cli/serve.rs"]
mod serve;
mod support;

const PENALTY: &str = env!("CARGO_BIN_EXE_penalty");

/// The binary on `db`, speaking English whatever the locale of the machine
/// running the tests (the tests of other languages ask with `--lang`).
fn penalty(db: &Path) -> Command {
    let mut command = Command::new(PENALTY);
    command.arg("--db").arg(db).env("PENALTY_LANG", "en");
    command
}

fn run(db: &Path, args: &[&str]) -> Output {
    penalty(db).args(args).output().expect("penalty runs")
}

fn json(output: &Output) -> Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {text}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn paid(n: u64, order: &str, shop: &str, at: &str) -> String {
    format!(
        r#"{{"event_id":"{}","type":"paid","at":"{at}","order_id":"{order}","shop_id":"{shop}","product_id":"P-{order}","amount_fen":1990}}"#,
        uuid(n)
    )
}

/// Ingests `text` through stdin; returns the counts and the rejects records.
/// `count` paid orders of shop S1, ORDER-00001 on, one line each.
fn paid_orders(count: u64) -> String {
    let mut text = String::new();
    for n in 1..=count {
        text += &paid(
            n,
            &format!("ORDER-{n:05}"),
            "S1",
            "2026-03-01T10:00:00+08:00",
        );
        text.push('\n');
    }
    text
}

fn ingest_text(db: &Path, text: &[u8]) -> (Value, Vec<Value>) {
    let rejects = db.with_extension("rejects.jsonl");
    let mut child = penalty(db)
        .args(["ingest", "-", "--json", "--rejects"])
        .arg(&rejects)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "ingest failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let records = std::fs::read_to_string(&rejects)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (json(&output), records)
}

fn counts(value: &Value) -> [u64; 4] {
    ["read", "appended", "duplicates", "rejected"].map(|k| value[k].as_u64().unwrap())
}

/// One test per reject reason of EVENTS.md, through the binary: the line is
/// counted as rejected and lands in the rejects file with its line number,
/// reason code and the line as received.
macro_rules! reject_test {
    ($name:ident, $reason:expr, $lines:expr) => {
        #[test]
        fn $name() {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("db");
            let lines: Vec<String> = $lines;
            let text = lines.join("\n");
            let (counts_json, records) = ingest_text(&db, text.as_bytes());
            let [read, appended, duplicates, rejected] = counts(&counts_json);
            assert_eq!(read, lines.len() as u64);
            assert_eq!(read, appended + duplicates + rejected);
            assert_eq!(rejected, 1, "{counts_json}");
            let record = &records[0];
            assert_eq!(record["reason"], $reason, "{record}");
            assert_eq!(record["line"], lines.len() as u64);
            let raw = record["raw"].as_str().unwrap();
            assert!(
                lines.last().unwrap().starts_with(raw),
                "raw is the line as received"
            );
        }
    };
}

reject_test!(
    reject_invalid_json,
    "invalid_json",
    vec!["{\"event_id\": ".into()]
);
reject_test!(
    reject_line_too_long,
    "line_too_long",
    vec![format!(r#"{{"x":"{}"}}"#, "y".repeat(70_000))]
);
reject_test!(
    reject_unknown_type,
    "unknown_type",
    vec![format!(
        r#"{{"event_id":"{}","type":"parcel_lost","at":"2026-03-02T09:00:00+08:00","order_id":"O1"}}"#,
        uuid(1)
    )]
);
reject_test!(
    reject_missing_field,
    "missing_field:tracking_no",
    vec![format!(
        r#"{{"event_id":"{}","type":"shipped","at":"2026-03-02T09:00:00+08:00","order_id":"O1"}}"#,
        uuid(1)
    )]
);
reject_test!(
    reject_invalid_field,
    "invalid_field:at",
    vec![format!(
        r#"{{"event_id":"{}","type":"shipped","at":"2026-03-02T09:00:00","order_id":"O1","tracking_no":"Q"}}"#,
        uuid(1)
    )]
);
reject_test!(
    reject_event_id_conflict,
    "event_id_conflict",
    vec![
        paid(1, "O1", "S1", "2026-03-01T10:00:00+08:00"),
        paid(1, "O1", "S2", "2026-03-01T10:00:00+08:00")
    ]
);
reject_test!(
    reject_order_already_paid,
    "order_already_paid",
    vec![
        paid(1, "O1", "S1", "2026-03-01T10:00:00+08:00"),
        paid(2, "O1", "S1", "2026-03-01T08:00:00+08:00")
    ]
);

#[test]
fn resending_a_file_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let file = dir.path().join("events.jsonl");
    std::fs::write(
        &file,
        (1..=50)
            .map(|n| paid(n, &format!("O{n}"), "S1", "2026-03-01T10:00:00+08:00") + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let first = run(&db, &["ingest", file.to_str().unwrap(), "--json"]);
    assert_eq!(counts(&json(&first)), [50, 50, 0, 0]);
    let second = run(&db, &["ingest", file.to_str().unwrap(), "--json"]);
    assert_eq!(counts(&json(&second)), [50, 0, 50, 0]);
}

#[test]
fn unknown_ids_exit_3_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ingest_text(
        &db,
        paid(1, "O1", "S1", "2026-03-01T10:00:00+08:00").as_bytes(),
    );
    for args in [
        ["order", "NOPE", "--as-of", "2026-03-07"],
        ["shop", "NOPE", "--as-of", "2026-03-07"],
        ["postings", "NOPE", "--as-of", "2026-03-07"],
    ] {
        let out = run(&db, &args);
        assert_eq!(out.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&out.stderr).contains("NOPE"));
    }
    // Paid after as_of: not yet an order, and the message says when it is.
    let out = run(&db, &["order", "O1", "--as-of", "2026-02-01"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2026-03-01T10:00:00+08:00"));
}

#[test]
fn bad_as_of_and_bad_policy_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let out = run(&db, &["shops", "--as-of", "yesterday"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, r#"{"daily_cap": 5}"#).unwrap();
    let out = penalty(&db)
        .arg("--policy")
        .arg(&policy)
        .args(["shops"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("daily_cap") && stderr.contains("policy.json"),
        "{stderr}"
    );
}

/// Every policy file of `fixtures/policy_refused` (also refused by the
/// oracle) is refused, the message naming the file, the version and the key.
#[test]
fn refused_policies_name_the_version_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/policy_refused");
    let mut seen = 0;
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let case: Value =
            serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        let policy = dir.path().join("policy.json");
        std::fs::write(&policy, case["policy"].to_string()).unwrap();
        let out = penalty(&db)
            .arg("--policy")
            .arg(&policy)
            .args(["policy"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{case}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let key = case["key"].as_str().unwrap();
        assert!(
            stderr.contains("policy.json") && stderr.contains(key),
            "{case}: {stderr}"
        );
        if case["policy"].get("versions").is_some() {
            let version = format!("version {}", case["version"]);
            assert!(stderr.contains(&version), "{case}: {stderr}");
        }
        seen += 1;
    }
    assert!(seen >= 6, "the fixtures are there");
}

/// R14 and R15 through the binary: the booked ledger as JSON, as a table with
/// its corrections' causes, as CSV with yuan and fen; `penalty policy` lists
/// the versions.
#[test]
fn postings_export_and_policy_versions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"versions": [{"shop_daily_cap_fen": 1000}, {"effective_from": "2026-03-20T00:00:00+08:00", "deduction_fen": 2000}]}"#,
    )
    .unwrap();
    let revoked = format!(
        r#"{{"event_id":"{}","type":"judgment_revoked","at":"2026-03-06T09:00:00+08:00","order_id":"O1","judgment":1,"reason":"appeal upheld"}}"#,
        uuid(9)
    );
    let text = format!(
        "{}\n{}\n{revoked}\n",
        paid(1, "O1", "S1", "2026-03-01T10:00:00+08:00"),
        paid(2, "O2", "S1", "2026-03-01T10:01:00+08:00")
    );
    let out = penalty(&db)
        .arg("--policy")
        .arg(&policy)
        .args(["ingest", "-", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let with_policy = |args: &[&str]| {
        penalty(&db)
            .arg("--policy")
            .arg(&policy)
            .args(args)
            .output()
            .unwrap()
    };
    let report = json(&with_policy(&[
        "postings",
        "S1",
        "--as-of",
        "2026-03-08",
        "--json",
    ]));
    assert_eq!(report["booked_fen"], 2000);
    let kinds: Vec<&str> = report["postings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["charge", "charge", "refund", "late_charge"]);
    let shop = json(&with_policy(&[
        "shop",
        "S1",
        "--as-of",
        "2026-03-08",
        "--json",
    ]));
    assert_eq!(shop["booked_fen"], 2000);

    let table = String::from_utf8(with_policy(&["postings", "S1", "--as-of", "2026-03-08"]).stdout)
        .unwrap();
    assert!(
        table.contains("judgment 1 of O1 revoked on 2026-03-06"),
        "{table}"
    );
    assert!(
        table.contains("late charge") && table.contains("-¥10.00"),
        "{table}"
    );

    let csv_path = dir.path().join("postings.csv");
    let out = with_policy(&[
        "export",
        "postings",
        "--as-of",
        "2026-03-08",
        "--from",
        "2026-03-07",
        "--format",
        "csv",
        "-o",
        csv_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "run_date,shop_id,order_id,judgment,judged_at,settle_date,kind,amount_yuan,amount_fen,cause");
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1].starts_with(
            "2026-03-07,S1,O1,1,2026-03-03T10:00:00+08:00,2026-03-04,refund,-10.00,-1000,"
        ),
        "{csv}"
    );

    let shown = String::from_utf8(with_policy(&["policy"]).stdout).unwrap();
    assert!(
        shown.contains("version 1: from 2026-03-20T00:00:00+08:00"),
        "{shown}"
    );
    let versions = json(&with_policy(&["policy", "--json"]));
    assert_eq!(versions["versions"][1]["deduction_fen"], 2000);
    assert_eq!(
        versions["versions"][1]["shop_daily_cap_fen"], 1000,
        "inherited"
    );
}

#[test]
fn binary_and_empty_files_do_not_crash_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(
        counts(&json(&run(
            &db,
            &["ingest", empty.to_str().unwrap(), "--json"]
        ))),
        [0, 0, 0, 0]
    );
    let binary = dir.path().join("binary.bin");
    let bytes: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let lines = bytes.split(|b| *b == b'\n').count() as u64;
    std::fs::write(&binary, &bytes).unwrap();
    let out = run(&db, &["ingest", binary.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let [read, appended, _, rejected] = counts(&json(&out));
    assert_eq!(read, lines);
    assert_eq!((appended, rejected), (0, lines));
}

/// Peak resident memory of a running process, from /proc (Linux).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_100_mb_line_is_rejected_without_reading_it_into_memory() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let rejects = dir.path().join("rejects.jsonl");
    let mut child = penalty(&db)
        .args(["ingest", "-", "--json", "--rejects"])
        .arg(&rejects)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..100 {
            stdin.write_all(&chunk).unwrap();
        }
        stdin.write_all(b"\n").unwrap();
        stdin
            .write_all(paid(1, "O1", "S1", "2026-03-01T10:00:00+08:00").as_bytes())
            .unwrap();
        stdin.write_all(b"\n").unwrap();
    });
    let mut peak_kib = 0;
    while !writer.is_finished() {
        peak_kib = peak_kib.max(peak_rss_kib(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(5));
    }
    writer.join().unwrap();
    peak_kib = peak_kib.max(peak_rss_kib(pid).unwrap_or(0));
    let output = child.wait_with_output().unwrap();
    assert_eq!(counts(&json(&output)), [2, 1, 0, 1]);
    let record: Value = serde_json::from_str(
        std::fs::read_to_string(&rejects)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(record["reason"], "line_too_long");
    assert_eq!(record["raw_bytes"], 100u64 << 20);
    assert!(
        peak_kib < 64 * 1024,
        "peak RSS {peak_kib} KiB while streaming a 100 MB line"
    );
}

/// Reads `--progress-jsonl` lines from the child's stderr on a thread.
fn progress_lines(child: &mut Child) -> std::sync::mpsc::Receiver<Value> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                if tx.send(value).is_err() {
                    break;
                }
            }
        }
    });
    rx
}

/// `penalty ingest - --json --progress-jsonl` with its stdin kept open: the
/// child, its progress lines, and the pipe to feed it.
fn ingest_from_pipe(
    db: &Path,
) -> (
    Child,
    std::sync::mpsc::Receiver<Value>,
    std::process::ChildStdin,
) {
    let mut child = penalty(db)
        .args(["ingest", "-", "--json", "--progress-jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let progress = progress_lines(&mut child);
    let stdin = child.stdin.take().unwrap();
    (child, progress, stdin)
}

#[test]
fn a_slow_pipe_makes_each_line_durable_within_about_100_ms() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let (child, progress, mut stdin) = ingest_from_pipe(&db);
    let mut latencies = Vec::new();
    for n in 1..=5u64 {
        let sent = Instant::now();
        writeln!(
            stdin,
            "{}",
            paid(n, &format!("O{n}"), "S1", "2026-03-01T10:00:00+08:00")
        )
        .unwrap();
        stdin.flush().unwrap();
        loop {
            let value = progress
                .recv_timeout(Duration::from_secs(5))
                .expect("a progress line within 5 s");
            if value["appended"] == n {
                break;
            }
        }
        latencies.push(sent.elapsed());
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let worst = latencies.iter().max().unwrap();
    // The target is 100 ms plus a flush; allow for a loaded CI machine.
    assert!(
        *worst < Duration::from_millis(600),
        "latencies {latencies:?}"
    );
}

#[test]
fn a_second_process_gets_a_clear_message_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut holder = penalty(&db)
        .args(["ingest", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(db.join("LOCK"))
        .unwrap_or_default()
        .contains(&holder.id().to_string())
    {
        assert!(
            Instant::now() < deadline,
            "the lock file never named the holder"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A reader neither waits nor fails.
    let started = Instant::now();
    let out = run(&db, &["shops", "--as-of", "2026-03-07"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a reader must not hang"
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second writer with --no-wait fails at once, naming the holder.
    let started = Instant::now();
    let out = penalty(&db)
        .args(["--no-wait", "ingest", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "--no-wait waits"
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use") && stderr.contains(&holder.id().to_string()),
        "{stderr}"
    );
    // Without it, the second writer says it waits, and goes on once the
    // first is done.
    let mut second = penalty(&db)
        .args(["ingest", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    second
        .stdin
        .take()
        .unwrap()
        .write_all(paid_orders(3).as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        second.try_wait().unwrap().is_none(),
        "the second writer waits its turn"
    );
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    let out = second.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("waiting for the data directory")
            && stderr.contains(&holder.id().to_string()),
        "{stderr}"
    );
    assert_eq!(counts(&json(&out)), [3, 3, 0, 0]);
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn ctrl_c_commits_what_was_read_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let (child, progress, mut stdin) = ingest_from_pipe(&db);
    for n in 1..=3u64 {
        writeln!(
            stdin,
            "{}",
            paid(n, &format!("O{n}"), "S1", "2026-03-01T10:00:00+08:00")
        )
        .unwrap();
    }
    stdin.flush().unwrap();
    while progress.recv_timeout(Duration::from_secs(5)).unwrap()["appended"] != 3 {}
    signal(&child, "INT");
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    assert_eq!(counts(&json(&output)), [3, 3, 0, 0]);
    drop(stdin);
    let replay = run(&db, &["replay", "--as-of", "2026-03-07", "--json"]);
    assert_eq!(json(&replay)["events"], 3);
}

/// A deterministic workload: `orders` orders over 50 shops, about 2 events each.
fn workload(orders: u64) -> String {
    let mut text = String::new();
    let mut n = 0;
    for i in 0..orders {
        let order = format!("O{i}");
        let shop = format!("S{}", i % 50);
        let minute = i % (20 * 24 * 60);
        let at = |extra_hours: u64| {
            let total = minute + extra_hours * 60;
            format!(
                "2026-03-{:02}T{:02}:{:02}:00+08:00",
                1 + total / 1440,
                (total / 60) % 24,
                total % 60
            )
        };
        n += 1;
        text += &paid(n, &order, &shop, &at(0));
        text.push('\n');
        if i % 10 != 0 {
            n += 1;
            let late = if i % 7 == 0 { 60 } else { 20 };
            text += &format!(
                r#"{{"event_id":"{}","type":"shipped","at":"{}","order_id":"{order}","tracking_no":"T{i}"}}"#,
                uuid(n),
                at(late)
            );
            text.push('\n');
        }
    }
    text
}

fn replay_json(db: &Path) -> Value {
    let out = run(
        db,
        &["replay", "--as-of", "2026-06-01T00:00:00+08:00", "--json"],
    );
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out)
}

/// Kills an ingest of a large file with SIGKILL at 24 random points, restarts
/// it each time, and checks that nothing reported appended was lost, nothing
/// is duplicated, and the final digest equals a clean run's.
#[test]
fn crash_test_sigkill_at_random_points_loses_nothing_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let text = workload(150_000);
    let lines = text.lines().count() as u64;
    std::fs::write(&file, &text).unwrap();

    let clean_db = dir.path().join("clean");
    let started = Instant::now();
    let out = run(&clean_db, &["ingest", file.to_str().unwrap(), "--json"]);
    let clean_duration = started.elapsed();
    assert_eq!(counts(&json(&out)), [lines, lines, 0, 0]);
    let clean = replay_json(&clean_db);
    assert_eq!(clean["events"], lines);

    let db = dir.path().join("crashy");
    let mut seed: u64 = 0x5eed_1234_abcd_0001;
    let mut reported_total = 0u64;
    let mut kills = 0;
    for round in 0..24 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % (clean_duration.as_micros() as u64 + 1));
        let mut child = penalty(&db)
            .args(["ingest", file.to_str().unwrap(), "--progress-jsonl"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        std::thread::sleep(delay);
        signal(&child, "KILL");
        child.wait().unwrap();
        kills += 1;
        let mut progress = String::new();
        stderr.read_to_string(&mut progress).unwrap();
        let reported: u64 = progress
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["appended"].as_u64())
            .max()
            .unwrap_or(0);
        reported_total += reported;
        let now = if db.join("events.log").exists() {
            replay_json(&db)["events"].as_u64().unwrap()
        } else {
            0
        };
        assert!(
            now >= reported_total,
            "round {round}: {reported_total} events were reported appended, the log holds {now}"
        );
        assert!(
            now <= lines,
            "round {round}: the log holds {now} events for {lines} lines"
        );
        reported_total = now;
    }
    assert!(kills >= 20);
    let out = run(&db, &["ingest", file.to_str().unwrap(), "--json"]);
    let [read, appended, duplicates, rejected] = counts(&json(&out));
    assert_eq!((read, rejected), (lines, 0));
    assert_eq!(appended + duplicates, lines);
    let finished = replay_json(&db);
    assert_eq!(finished["events"], lines, "no event lost, none duplicated");
    assert_eq!(finished["digest"], clean["digest"]);
    assert_eq!(
        finished["equal"], true,
        "the checkpoint plus tail equals the replay"
    );
    let audit = run(&db, &["audit", "--json"]);
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
}

#[test]
fn a_flipped_byte_in_the_stored_log_is_detected_by_audit() {
    // Events are stored in their compact form, not as text: find our block
    // magic in the data directory and damage the block at several offsets, each in a fresh data directory. Whether sled notices first
    // (it then drops or refuses its file) or our block checksum does, the
    // audit must fail and name a sequence number.
    for offset in [9usize, 40, 120, 300] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        ingest_text(&db, paid_orders(20).as_bytes());
        assert!(run(&db, &["audit"]).status.success());
        let flipped = flip_byte_after(&db, b"PLGB", offset);
        assert!(
            flipped.is_some(),
            "a block is somewhere in the data directory"
        );
        let out = run(&db, &["audit", "--json"]);
        assert_eq!(
            out.status.code(),
            Some(4),
            "offset {offset}: audit must fail on a flipped byte: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let report = json(&out);
        assert!(
            report["log"]["problem"]["seq"].as_u64().is_some(),
            "offset {offset}: names the sequence number: {report}"
        );
        // Queries never answer from a damaged log in silence: they refuse,
        // or answer from the snapshot taken before the damage and say on
        // stderr that the log is damaged, naming the block.
        let query = run(&db, &["shops", "--as-of", "2026-03-07"]);
        let stderr = String::from_utf8_lossy(&query.stderr);
        assert!(
            !query.status.success()
                || (stderr.contains("the log is damaged") && stderr.contains("sequence number 1")),
            "offset {offset}: a query answered from a damaged log in silence: {stderr}"
        );
    }
}

/// Finds `needle` in the files under `dir` (not our own journal or lock) and
/// flips one byte `offset` bytes after its start.
fn flip_byte_after(dir: &Path, needle: &[u8], offset: usize) -> Option<PathBuf> {
    for entry in walk(dir) {
        let name = entry.file_name()?.to_string_lossy().to_string();
        if name == "HEAD" || name == "LOCK" {
            continue;
        }
        let mut bytes = std::fs::read(&entry).ok()?;
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            let target = (at + offset).min(bytes.len() - 1);
            bytes[target] ^= 0x01;
            std::fs::write(&entry, &bytes).unwrap();
            return Some(entry);
        }
    }
    None
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// `--known-at T` answers with only the events recorded by T: "what did the
/// ledger say then?", for queries, the export and replay.
#[test]
fn known_at_answers_as_the_ledger_did_then() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    // O1 paid; by 03-07 it has 3 judgments and 2000 fen charged.
    ingest_text(
        &db,
        paid(1, "O1", "S1", "2026-03-01T10:00:00+08:00").as_bytes(),
    );
    let before = run(&db, &["shop", "S1", "--as-of", "2026-03-07", "--json"]);
    assert_eq!(json(&before)["charged_fen"], 2000);
    // The recording clock has millisecond-scale resolution at worst: step
    // past it, note the instant, then record a late shipment (at 03-02).
    std::thread::sleep(Duration::from_millis(50));
    let known_at = chrono_now_rfc3339();
    std::thread::sleep(Duration::from_millis(50));
    let shipped = format!(
        r#"{{"event_id":"{}","type":"shipped","at":"2026-03-02T10:00:00+08:00","order_id":"O1","tracking_no":"T1"}}"#,
        uuid(2)
    );
    ingest_text(&db, shipped.as_bytes());
    let now = run(&db, &["shop", "S1", "--as-of", "2026-03-07", "--json"]);
    assert_eq!(
        json(&now)["charged_fen"],
        0,
        "the late shipment resolves O1 before its deadline"
    );
    let then = run(
        &db,
        &[
            "shop",
            "S1",
            "--as-of",
            "2026-03-07",
            "--known-at",
            &known_at,
            "--json",
        ],
    );
    assert_eq!(
        json(&then),
        json(&before),
        "known-at gives the answer of that time"
    );
    let replay_then = run(
        &db,
        &[
            "replay",
            "--as-of",
            "2026-03-07",
            "--known-at",
            &known_at,
            "--json",
        ],
    );
    assert_eq!(json(&replay_then)["events"], 1);
    let rows = run(
        &db,
        &[
            "export",
            "orders",
            "--as-of",
            "2026-03-07",
            "--known-at",
            &known_at,
            "--format",
            "jsonl",
        ],
    );
    let row: Value = serde_json::from_slice(&rows.stdout).unwrap();
    assert_eq!(row["judgments"], 3);
}

/// The wall clock as RFC 3339 (UTC), from the system clock.
fn chrono_now_rfc3339() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let secs = (nanos / 1_000_000_000) as i64;
    let frac = (nanos % 1_000_000_000) as u32;
    // Days since the epoch to a civil date (Howard Hinnant's algorithm).
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[test]
fn csv_export_quotes_and_guards_cells_for_spreadsheets() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let tricky = format!(
        r#"{{"event_id":"{}","type":"paid","at":"2026-03-01T10:00:00+08:00","order_id":"=HYPERLINK(1)","shop_id":"S,1","product_id":"P \"x\"","amount_fen":1990}}"#,
        uuid(1)
    );
    ingest_text(&db, tricky.as_bytes());
    let out = run(
        &db,
        &[
            "export",
            "orders",
            "--as-of",
            "2026-03-07",
            "--format",
            "csv",
        ],
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.split("\r\n");
    assert!(lines
        .next()
        .unwrap()
        .starts_with("order_id,shop_id,product_id,amount_fen"));
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(r#"'=HYPERLINK(1),"S,1","P ""x""",1990,"#),
        "{row}"
    );
}

#[test]
fn an_export_into_a_pipe_closed_early_ends_quietly_with_success() {
    // `penalty export orders | head -1`: the export streams its rows, and a
    // reader that goes away is not an error, in either format.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ingest_text(&db, paid_orders(3000).as_bytes());
    for format in ["jsonl", "csv"] {
        let mut child = penalty(&db)
            .args([
                "export",
                "orders",
                "--as-of",
                "2026-03-07",
                "--format",
                format,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 64];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{format}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn recover_rebuilds_a_data_directory_whose_sled_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ingest_text(&db, paid_orders(50).as_bytes());
    let query = ["shops", "--as-of", "2026-03-07", "--json"];
    let before = run(&db, &query);
    assert!(before.status.success());

    // Nothing to do on a healthy log: nothing is moved.
    let idle = run(&db, &["recover", "--json"]);
    assert!(idle.status.success());
    assert_eq!(json(&idle)["recovered"], Value::Null);
    assert!(!dir.path().join("db/log.sled.damaged-1").exists());

    // sled's file destroyed: queries do not read sled and answer alike; a
    // writer refuses and names the way out.
    std::fs::write(db.join("log.sled/db"), vec![0x5A; 8192]).unwrap();
    let still = run(&db, &query);
    assert!(still.status.success());
    assert_eq!(still.stdout, before.stdout);
    let refused = penalty(&db)
        .args(["ingest", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("penalty recover"), "{message}");

    let out = run(&db, &["recover", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["ok"], true);
    assert_eq!(report["recovered"]["events"], 50);
    assert!(dir.path().join("db/log.sled.damaged-1/db").exists());
    let after = run(&db, &query);
    assert!(after.status.success());
    assert_eq!(after.stdout, before.stdout, "the same answers as before");
    assert!(run(&db, &["audit"]).status.success());
}

/// A full disk, simulated by a file-size limit (RLIMIT_FSIZE, with SIGXFSZ
/// ignored so that a write past it fails with EFBIG as on a full disk, rather
/// than killing the process): ingest stops with an error that names the
/// blocks file, acknowledges nothing it did not make durable, and once there
/// is room again the same input completes the log, every event once.
#[test]
#[cfg(target_os = "linux")]
fn a_full_disk_stops_ingest_cleanly_and_the_input_can_be_sent_again() {
    // A test that skips itself passes without testing anything: a machine
    // without prlimit fails here, saying what to install.
    assert!(
        Command::new("prlimit").arg("--version").output().is_ok(),
        "the disk-full test needs prlimit; install it with `apt-get install -y util-linux` (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let input = dir.path().join("events.jsonl");
    // About 3.5 MB of lines, several blocks of the largest size.
    std::fs::write(&input, paid_orders(20_000)).unwrap();
    // Create the data directory first, so that only the append meets the
    // limit; then allow about one large block more.
    let created = run(&db, &["ingest", "-", "--json"]);
    assert!(created.status.success());
    let limit_bytes = 1 << 20;
    let full = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; exec prlimit --fsize={limit_bytes} -- \"$0\" --db \"$1\" ingest \"$2\" --json"
        ))
        .arg(PENALTY)
        .arg(&db)
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert!(!full.status.success(), "the limit was not met: {stderr}");
    assert!(
        stderr.contains("events.log") && stderr.contains("File too large"),
        "the error names the file and the cause: {stderr}"
    );
    assert_eq!(
        stderr.matches("File too large").count(),
        1,
        "the cause once: {stderr}"
    );
    assert!(
        stderr.contains("send the same input again"),
        "the error says what to do: {stderr}"
    );
    // What it says is durable, which the next run finds in the log.
    let said_appended: u64 = stderr
        .split(" events from it are in the log")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("the error says what is durable: {stderr}"));
    assert!(!stderr.contains("panicked"), "{stderr}");

    let again = run(&db, &["ingest", input.to_str().unwrap(), "--json"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let [read, appended, duplicates, rejected] = counts(&json(&again));
    assert_eq!((read, rejected), (20_000, 0));
    assert_eq!(appended + duplicates, 20_000);
    assert_eq!(duplicates, said_appended, "what the error said was durable");
    assert!(appended > 0, "the full disk stopped ingest before the end");
    let audit = run(&db, &["audit"]);
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
    let replay = json(&run(
        &db,
        &[
            "shop",
            "S1",
            "--as-of",
            "2026-03-01T12:00:00+08:00",
            "--json",
        ],
    ));
    assert_eq!(replay["orders"].as_u64(), Some(20_000), "{replay}");
}

// Many readers and one writer (issue 18): read commands run beside each
// other and beside the one writer, never failing or waiting, each answering
// from an acknowledged prefix of the log at least as long as what was
// acknowledged when it started.

/// The instant every concurrent query asks at, so that answers compare.
const CONCURRENT_AS_OF: &str = "2026-04-01T00:00:00+08:00";

/// A workload from `penalty gen`, as lines.
fn generated(orders: u64, shops: u64, seed: u64) -> Vec<String> {
    let out = Command::new(PENALTY)
        .args(["gen", "--orders", &orders.to_string()])
        .args(["--shops", &shops.to_string(), "--seed", &seed.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The read commands each concurrent round runs, for a shop and an order
/// that exist once the first lines are in.
fn read_commands(shop: &str, order: &str) -> Vec<Vec<String>> {
    let as_of = CONCURRENT_AS_OF;
    [
        vec!["replay", "--as-of", as_of, "--json"],
        vec!["shop", shop, "--as-of", as_of, "--json"],
        vec!["order", order, "--as-of", as_of, "--json"],
        vec!["shops", "--as-of", as_of, "--json"],
        vec!["export", "orders", "--as-of", as_of, "--format", "jsonl"],
        vec!["audit", "--json"],
    ]
    .into_iter()
    .map(|args| args.into_iter().map(str::to_string).collect())
    .collect()
}

/// The shop and order of the first `paid` line among the first `within`.
fn early_shop_and_order(lines: &[String], within: usize) -> (String, String) {
    lines[..within]
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|event| event["type"] == "paid")
        .map(|event| {
            (
                event["shop_id"].as_str().unwrap().to_string(),
                event["order_id"].as_str().unwrap().to_string(),
            )
        })
        .expect("a paid line early in the workload")
}

/// Fresh ledgers holding prefixes of the input, built on demand, with the
/// answers they give.
struct Prefixes {
    lines: Vec<String>,
    dir: tempfile::TempDir,
    answers: std::collections::HashMap<(usize, Vec<String>), Vec<u8>>,
}

impl Prefixes {
    fn new(lines: Vec<String>) -> Prefixes {
        Prefixes {
            lines,
            dir: tempfile::tempdir().unwrap(),
            answers: std::collections::HashMap::new(),
        }
    }

    /// What `args` prints on a fresh ledger of the first `count` lines.
    fn answer(&mut self, count: usize, args: &[String]) -> Vec<u8> {
        let key = (count, args.to_vec());
        if let Some(answer) = self.answers.get(&key) {
            return answer.clone();
        }
        let db = self.dir.path().join(format!("prefix-{count}"));
        if !db.exists() {
            let mut text = self.lines[..count].join("\n");
            text.push('\n');
            ingest_text(&db, text.as_bytes());
        }
        let out = penalty(&db).args(args).output().unwrap();
        assert!(out.status.success(), "reference {args:?} at {count}");
        self.answers.insert(key, out.stdout.clone());
        out.stdout
    }
}

/// One read command run during a write, with what was acknowledged (in
/// input lines) before it started.
struct ReadRun {
    args: Vec<String>,
    acknowledged_before: u64,
    output: Output,
}

/// Launches 32 read commands at once from 8 threads (4 each, started
/// together), each noting what `acknowledged` said before it started.
fn launch_32_reads(
    db: &Path,
    commands: &[Vec<String>],
    acknowledged: &std::sync::atomic::AtomicU64,
) -> Vec<ReadRun> {
    let barrier = std::sync::Barrier::new(8);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let started: Vec<(Vec<String>, u64, Child)> = (0..4)
                        .map(|n| {
                            let args = commands[(thread * 4 + n) % commands.len()].clone();
                            let before = acknowledged.load(std::sync::atomic::Ordering::SeqCst);
                            let child = penalty(db)
                                .args(&args)
                                .stdout(Stdio::piped())
                                .stderr(Stdio::piped())
                                .spawn()
                                .unwrap();
                            (args, before, child)
                        })
                        .collect();
                    started
                        .into_iter()
                        .map(|(args, acknowledged_before, child)| ReadRun {
                            args,
                            acknowledged_before,
                            output: child.wait_with_output().unwrap(),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    })
}

/// Checks each run: it exited 0, and its answer is that of a fresh ledger
/// of a prefix of the input at least as long as what was acknowledged
/// before it started. `boundaries` are the acknowledged prefixes the writer
/// reported, as (lines read, events appended), in order: an answer's prefix
/// is one of them (the input repeats and rejects some lines, as `penalty
/// gen`'s does, so lines and events differ).
fn check_reads(runs: &[ReadRun], boundaries: &[(u64, u64)], prefixes: &mut Prefixes) {
    assert_eq!(runs.len(), 32);
    for run in runs {
        let stderr = String::from_utf8_lossy(&run.output.stderr);
        assert!(
            run.output.status.success(),
            "{:?} failed beside the writer: {stderr}",
            run.args
        );
        assert!(
            !stderr.contains("warning"),
            "{:?} warned: {stderr}",
            run.args
        );
        let before = run.acknowledged_before;
        let candidates: Vec<(u64, u64)> = boundaries
            .iter()
            .copied()
            .filter(|&(read, _)| read >= before)
            .collect();
        let before_events = candidates.first().map_or(u64::MAX, |&(_, events)| events);
        match run.args[0].as_str() {
            "replay" => {
                let value = json(&run.output);
                let events = value["events"].as_u64().unwrap();
                assert!(
                    events >= before_events,
                    "replay saw {events} events < {before_events} acknowledged"
                );
                assert_eq!(value["equal"], true, "{value}");
                let (read, _) = candidates
                    .iter()
                    .find(|&&(_, appended)| appended == events)
                    .unwrap_or_else(|| panic!("{events} events end no acknowledged prefix"));
                let reference: Value =
                    serde_json::from_slice(&prefixes.answer(*read as usize, &run.args)).unwrap();
                assert_eq!(value["digest"], reference["digest"], "at {events} events");
            }
            "audit" => {
                let value = json(&run.output);
                assert_eq!(value["ok"], true, "{value}");
                assert!(value["log"]["last_seq"].as_u64().unwrap() >= before_events);
            }
            _ => {
                let found = candidates.iter().any(|&(read, _)| {
                    prefixes.answer(read as usize, &run.args) == run.output.stdout
                });
                assert!(
                    found,
                    "{:?}: the answer is no acknowledged prefix's from {before} lines on",
                    run.args
                );
            }
        }
    }
}

#[test]
fn readers_run_beside_a_streaming_ingest() {
    let lines = generated(2_500, 40, 11);
    let (shop, order) = early_shop_and_order(&lines, 300);
    let commands = read_commands(&shop, &order);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let (child, progress, mut stdin) = ingest_from_pipe(&db);
    let acknowledged = std::sync::atomic::AtomicU64::new(0);
    let boundaries = std::sync::Mutex::new(vec![(0u64, 0u64)]);
    let total = lines.len() as u64;
    let runs = std::thread::scope(|scope| {
        // The writer's progress: each line follows a durable block.
        let (acknowledged_ref, boundaries_ref) = (&acknowledged, &boundaries);
        scope.spawn(move || {
            let (acknowledged, boundaries) = (acknowledged_ref, boundaries_ref);
            while let Ok(value) = progress.recv() {
                let read = value["read"].as_u64().unwrap();
                let appended = value["appended"].as_u64().unwrap();
                boundaries.lock().unwrap().push((read, appended));
                acknowledged.store(read, std::sync::atomic::Ordering::SeqCst);
            }
        });
        // The input, paced so that the write lasts a few seconds.
        let feeder = scope.spawn(move || {
            for chunk in lines.chunks(60) {
                let mut text = chunk.join("\n");
                text.push('\n');
                stdin.write_all(text.as_bytes()).unwrap();
                stdin.flush().unwrap();
                std::thread::sleep(Duration::from_millis(25));
            }
            lines
        });
        while acknowledged.load(std::sync::atomic::Ordering::SeqCst) < 400 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let runs = launch_32_reads(&db, &commands, &acknowledged);
        let still_writing = acknowledged.load(std::sync::atomic::Ordering::SeqCst) < total;
        let lines = feeder.join().unwrap();
        (runs, still_writing, lines)
    });
    let (runs, still_writing, lines) = runs;
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(counts(&json(&output))[0], total);
    assert!(still_writing, "the reads ran while the writer wrote");
    let boundaries = boundaries.into_inner().unwrap();
    check_reads(&runs, &boundaries, &mut Prefixes::new(lines));
}

/// The last sequence number a snapshot file (`projection.snap` or
/// `projection.parts`; both keep it at bytes 8..16) reflects; 0 when there
/// is none.
fn snapshot_end_seq(path: &Path) -> u64 {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() >= 16 => u64::from_be_bytes(bytes[8..16].try_into().unwrap()),
        _ => 0,
    }
}

/// Beside a writer fed by a stream, the follower snapshots in the
/// background: both snapshots' end advances while the writer still waits
/// for input, and `order`, `shop` and `shops` read from them answer as a
/// fresh ledger of an acknowledged prefix.
#[test]
fn a_streaming_writer_snapshots_in_the_background() {
    let lines = generated(7_000, 40, 13);
    assert!(
        lines.len() > 12_000,
        "enough events for a background snapshot"
    );
    let (shop, order) = early_shop_and_order(&lines, 300);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let (child, progress, mut stdin) = ingest_from_pipe(&db);
    let (first, last) = lines.split_at(lines.len() - 500);
    for chunk in first.chunks(500) {
        let mut text = chunk.join("\n");
        text.push('\n');
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(40));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let snapshotted = loop {
        let parts = snapshot_end_seq(&db.join("projection.parts"));
        let whole = snapshot_end_seq(&db.join("projection.snap"));
        if parts >= 10_000 && whole >= 10_000 {
            break parts.min(whole);
        }
        assert!(
            Instant::now() < deadline,
            "no background snapshot while the writer runs (parts {parts}, whole {whole})"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let as_of = CONCURRENT_AS_OF;
    let commands: Vec<Vec<String>> = [
        vec!["shop", &shop, "--as-of", as_of, "--json"],
        vec!["order", &order, "--as-of", as_of, "--json"],
        vec!["shops", "--as-of", as_of, "--json"],
    ]
    .into_iter()
    .map(|args| args.into_iter().map(str::to_string).collect())
    .collect();
    let outputs: Vec<Output> = commands
        .iter()
        .map(|args| penalty(&db).args(args).output().unwrap())
        .collect();
    let mut text = last.join("\n");
    text.push('\n');
    stdin.write_all(text.as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(counts(&json(&output))[0], lines.len() as u64);
    let boundaries: Vec<(u64, u64)> = progress
        .iter()
        .map(|value| {
            (
                value["read"].as_u64().unwrap(),
                value["appended"].as_u64().unwrap(),
            )
        })
        .filter(|&(_, appended)| appended >= snapshotted)
        .collect();
    assert!(
        boundaries
            .last()
            .is_some_and(|&(_, appended)| appended > snapshotted),
        "the snapshot came before the input's end"
    );
    let mut prefixes = Prefixes::new(lines);
    for (args, out) in commands.iter().zip(&outputs) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(!stderr.contains("warning"), "{args:?} warned: {stderr}");
        let found = boundaries
            .iter()
            .any(|&(read, _)| prefixes.answer(read as usize, args) == out.stdout);
        assert!(found, "{args:?}: the answer is no acknowledged prefix's");
    }
}

/// A minimal HTTP/1.1 POST of an NDJSON body; the response's status and
/// body.
fn post_events(addr: &str, body: &[u8]) -> (u16, Value) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-ndjson\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // One chunk of JSON: its size line, then the JSON.
        body.split_once("\r\n").map_or("", |(_, rest)| rest)
    } else {
        body
    };
    let json_text = body.trim().trim_end_matches("\r\n0").trim();
    (
        status,
        serde_json::from_str(json_text).unwrap_or(Value::Null),
    )
}

#[test]
fn readers_run_beside_a_server_taking_uploads() {
    let lines = generated(2_500, 40, 12);
    let (shop, order) = early_shop_and_order(&lines, 300);
    let commands = read_commands(&shop, &order);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    // The first lines through the CLI, so that the directory exists.
    let first = 300;
    let mut text = lines[..first].join("\n");
    text.push('\n');
    let (first_counts, _) = ingest_text(&db, text.as_bytes());
    let first_events = counts(&first_counts)[1];
    let (mut server, addr) = support::start_server(&db);
    let addr = addr.to_string();
    let acknowledged = std::sync::atomic::AtomicU64::new(first as u64);
    let mut boundaries = vec![(first as u64, first_events)];
    let total = lines.len() as u64;
    let runs = std::thread::scope(|scope| {
        let uploads = scope.spawn(|| {
            let mut sent = first;
            let mut events = first_events;
            let mut boundaries = Vec::new();
            for chunk in lines[first..].chunks(60) {
                let mut body = chunk.join("\n");
                body.push('\n');
                let (status, summary) = post_events(&addr, body.as_bytes());
                assert_eq!(status, 200, "{summary}");
                assert_eq!(summary["read"].as_u64(), Some(chunk.len() as u64));
                sent += chunk.len();
                events += summary["appended"].as_u64().unwrap();
                boundaries.push((sent as u64, events));
                acknowledged.store(sent as u64, std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(25));
            }
            boundaries
        });
        std::thread::sleep(Duration::from_millis(200));
        let runs = launch_32_reads(&db, &commands, &acknowledged);
        let still_writing = acknowledged.load(std::sync::atomic::Ordering::SeqCst) < total;
        boundaries.extend(uploads.join().unwrap());
        (runs, still_writing)
    });
    let (runs, still_writing) = runs;
    signal(&server, "INT");
    server.wait().unwrap();
    assert!(still_writing, "the reads ran while the server took uploads");
    check_reads(&runs, &boundaries, &mut Prefixes::new(lines));
}

/// The ids of the threads of process `pid` whose name starts with
/// `prefix` (the kernel keeps the first 15 bytes of a thread's name).
fn threads_named(pid: u32, prefix: &str) -> std::collections::BTreeSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map_while(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim_end().starts_with(prefix))
        })
        .filter_map(|task| task.file_name().to_str()?.parse().ok())
        .collect()
}

/// Issue 18: `penalty serve` keeps one ingest pipeline (reader, parsers,
/// block writer and syncer) across uploads, and across the pieces of one
/// large upload, instead of starting and joining its threads for each;
/// each upload is still answered only once its events are durable (a
/// read command launched after the answer sees them).
#[test]
fn the_server_keeps_its_ingest_threads_across_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let (mut server, addr) = support::start_server(&db);
    let addr = addr.to_string();
    assert!(
        threads_named(server.id(), "penalty-ingest").is_empty(),
        "no ingest before the first upload"
    );
    let mut first_threads = None;
    let mut sent = 0u64;
    // Uploads of one line, and of 20,000 (three pieces of 8,192 lines).
    for size in [1u64, 20_000, 1, 20_000, 5] {
        let mut body = String::new();
        for n in sent + 1..=sent + size {
            body += &paid(
                n,
                &format!("ORDER-{n:06}"),
                "S1",
                "2026-03-01T10:00:00+08:00",
            );
            body.push('\n');
        }
        sent += size;
        let (status, summary) = post_events(&addr, body.as_bytes());
        assert_eq!(status, 200, "{summary}");
        assert_eq!(summary["appended"].as_u64(), Some(size), "{summary}");
        let threads = threads_named(server.id(), "penalty-ingest");
        assert!(!threads.is_empty(), "the pipeline is kept after an upload");
        match &first_threads {
            None => first_threads = Some(threads),
            Some(first) => assert_eq!(&threads, first, "the same threads ingest every upload"),
        }
        // Durable and visible once answered.
        let last = format!("ORDER-{sent:06}");
        assert!(
            run(&db, &["order", &last, "--as-of", CONCURRENT_AS_OF])
                .status
                .success(),
            "{last} is not in the log once its upload was answered"
        );
    }
    signal(&server, "INT");
    assert!(server.wait().unwrap().success());
    assert!(run(&db, &["audit"]).status.success());
}

/// `lines` without the ones a fresh ledger would not append (repeats,
/// rejects): each line left is one event.
fn new_events_only(lines: Vec<String>) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut text = lines.join("\n");
    text.push('\n');
    let (_, rejects) = ingest_text(&db, text.as_bytes());
    let rejected: std::collections::HashSet<u64> = rejects
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    let mut seen = std::collections::HashSet::new();
    lines
        .into_iter()
        .enumerate()
        .filter(|(n, line)| !rejected.contains(&(*n as u64 + 1)) && seen.insert(line.clone()))
        .map(|(_, line)| line)
        .collect()
}

/// The writer killed with SIGKILL while it writes: readers running then and
/// after keep answering from acknowledged prefixes (never a torn or
/// unacknowledged block), and the next writer carries on.
#[test]
fn readers_keep_working_when_the_writer_is_killed_mid_block() {
    let lines = new_events_only(generated(4_000, 40, 13));
    let total = lines.len() as u64;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut prefixes = Prefixes::new(lines.clone());
    let replay: Vec<String> = ["replay", "--as-of", CONCURRENT_AS_OF, "--json"]
        .map(str::to_string)
        .to_vec();
    let (child, progress, mut stdin) = ingest_from_pipe(&db);
    let acknowledged = std::sync::atomic::AtomicU64::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let boundaries = std::sync::Mutex::new(vec![(0u64, 0u64)]);
    let (results, killed_at) = std::thread::scope(|scope| {
        let (acknowledged_ref, boundaries_ref) = (&acknowledged, &boundaries);
        scope.spawn(move || {
            let acknowledged = acknowledged_ref;
            while let Ok(value) = progress.recv() {
                let read = value["read"].as_u64().unwrap();
                let appended = value["appended"].as_u64().unwrap();
                boundaries_ref.lock().unwrap().push((read, appended));
                acknowledged.store(read, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let feeder = scope.spawn(move || {
            // Large writes: the blocks are large, and the kill is likely to
            // land while one is written.
            for chunk in lines.chunks(400) {
                let mut text = chunk.join("\n");
                text.push('\n');
                if stdin.write_all(text.as_bytes()).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (db, replay, acknowledged, stop) = (&db, &replay, &acknowledged, &stop);
                scope.spawn(move || {
                    let mut results = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let before = acknowledged.load(std::sync::atomic::Ordering::SeqCst);
                        if before == 0 {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        let output = penalty(db).args(replay).output().unwrap();
                        results.push((before, output));
                    }
                    results
                })
            })
            .collect();
        while acknowledged.load(std::sync::atomic::Ordering::SeqCst) < 2_000 {
            std::thread::sleep(Duration::from_millis(1));
        }
        signal(&child, "KILL");
        let killed_at = acknowledged.load(std::sync::atomic::Ordering::SeqCst);
        feeder.join().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let results: Vec<_> = readers
            .into_iter()
            .flat_map(|r| r.join().unwrap())
            .collect();
        (results, killed_at)
    });
    let _ = child.wait_with_output();
    assert!(killed_at < total, "killed before the end of the input");
    assert!(results.len() >= 4, "the readers ran");
    let boundaries = boundaries.into_inner().unwrap();
    let events_at = |read: u64| {
        boundaries
            .iter()
            .find(|&&(r, _)| r == read)
            .map(|&(_, events)| events)
            .unwrap()
    };
    for (before, output) in &results {
        assert!(
            output.status.success(),
            "a reader failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let value = json(output);
        let events = value["events"].as_u64().unwrap();
        assert!(events >= events_at(*before));
        // Every line of this input is a new event: the prefix of `events`
        // lines (the blocks acknowledged as the kill landed may not have
        // been reported).
        let reference: Value =
            serde_json::from_slice(&prefixes.answer(events as usize, &replay)).unwrap();
        assert_eq!(value["digest"], reference["digest"], "at {events} events");
    }
    // After the kill: at least what was acknowledged, and audit finds the
    // log sound (unacknowledged bytes past the end are not damage).
    let after = json(&run(
        &db,
        &replay.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert!(after["events"].as_u64().unwrap() >= events_at(killed_at));
    assert!(run(&db, &["audit"]).status.success());
    // The next writer carries on: the whole input, each event once.
    let mut text = prefixes.lines.join("\n");
    text.push('\n');
    let (counts_value, _) = ingest_text(&db, text.as_bytes());
    let [read, appended, duplicates, _] = counts(&counts_value);
    assert_eq!((read, appended + duplicates), (total, total));
    let finished = json(&run(
        &db,
        &replay.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert_eq!(finished["events"], total);
}

/// Issue 20 item 6: a read on a mistyped `--db` is an error naming it, and
/// creates nothing; only a writer creates a data directory.
#[test]
fn a_read_on_a_missing_db_is_an_error_naming_it_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("no-such-db");
    for args in [
        vec!["shop", "S1", "--as-of", "2026-03-07"],
        vec!["order", "O1", "--as-of", "2026-03-07"],
        vec!["shops", "--as-of", "2026-03-07"],
        vec![
            "export",
            "orders",
            "--as-of",
            "2026-03-07",
            "--format",
            "csv",
        ],
        vec!["replay", "--as-of", "2026-03-07"],
        vec!["audit"],
        vec!["postings", "S1", "--as-of", "2026-03-07"],
        vec![
            "export",
            "postings",
            "--as-of",
            "2026-03-07",
            "--format",
            "csv",
        ],
        // `recover` has nothing to rebuild: it creates nothing either.
        vec!["recover"],
    ] {
        let out = run(&db, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(db.to_str().unwrap()) && stderr.contains("nothing has been ingested"),
            "{args:?}: {stderr}"
        );
        assert!(!db.exists(), "{args:?} created the directory");
    }
    // An existing directory without a log is no log either.
    std::fs::create_dir(&db).unwrap();
    let out = run(&db, &["shops", "--as-of", "2026-03-07"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_dir(&db).unwrap().count(), 0);
    // A writer creates it.
    ingest_text(&db, paid_orders(1).as_bytes());
    assert!(run(&db, &["shops", "--as-of", "2026-03-07"])
        .status
        .success());
}

/// What the files under `dir` take on disk (allocated blocks).
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    walk(dir)
        .iter()
        .map(|path| std::fs::metadata(path).map_or(0, |m| m.blocks() * 512))
        .sum()
}

/// Bounded disk (issue 18): 100 one-line ingests into a log of 10,000
/// orders, each of which folds its line into a new projection snapshot,
/// leave the data directory within 1.5 times the JSON Lines plus a small
/// constant (sled's one 512 KiB segment and a few pages). The projection
/// used to be checkpointed into sled, whose blob files were never
/// reclaimed: 90 such ingests grew a directory from 42 to 353 MB.
#[test]
fn disk_stays_bounded_across_100_one_line_ingests() {
    let lines = generated(10_000, 100, 21);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let (bulk, tail) = lines.split_at(lines.len() - 100);
    let mut text = bulk.join("\n");
    text.push('\n');
    ingest_text(&db, text.as_bytes());
    // The first query folds the bulk ingest and writes the snapshot.
    assert!(run(&db, &["shops", "--as-of", CONCURRENT_AS_OF])
        .status
        .success());
    let after_bulk = disk_bytes(&db);
    for line in tail {
        ingest_text(&db, format!("{line}\n").as_bytes());
    }
    let jsonl: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
    let after = disk_bytes(&db);
    let allowed = jsonl * 3 / 2 + (1 << 20);
    eprintln!("JSONL {jsonl} bytes; data directory {after_bulk} after the bulk ingest, {after} after 100 one-line ingests (allowed {allowed})");
    assert!(
        after <= allowed,
        "the data directory takes {after} bytes for {jsonl} bytes of JSON Lines"
    );
    // One snapshot, no temporary file left.
    let names: Vec<String> = std::fs::read_dir(&db)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("projection.snap"))
            .count(),
        1,
        "{names:?}"
    );
    assert!(run(&db, &["audit"]).status.success());
}

/// Bounded disk (issue 18) through the server: 100 uploads of 10,000 lines
/// each to `penalty serve` (POST /events), each folded into the server's
/// projection and checkpointed as it sees fit, leave the data directory
/// within 1.5 times the JSON Lines sent so far plus a small constant,
/// checked after every tenth upload (once the snapshot the server writes
/// after it is in place) and once the server has stopped.
/// sled used to take 569 MB beside a 72 MB blocks file after 63 such
/// uploads.
#[test]
fn disk_stays_bounded_across_100_uploads_of_10k_lines() {
    const UPLOADS: usize = 100;
    const LINES: usize = 10_000;
    let mut lines = generated(500_000, 2_000, 41);
    assert!(lines.len() >= UPLOADS * LINES, "{} lines", lines.len());
    lines.truncate(UPLOADS * LINES);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    // The server is a writer: it creates the data directory.
    let (mut server, addr) = support::start_server(&db);
    let addr = addr.to_string();
    let allowed = |jsonl: u64| jsonl * 3 / 2 + (1 << 20);
    let mut jsonl = 0u64;
    let mut figures = Vec::new();
    for (n, chunk) in lines.chunks(LINES).enumerate() {
        let mut body = chunk.join("\n");
        body.push('\n');
        jsonl += body.len() as u64;
        let (status, summary) = post_events(&addr, body.as_bytes());
        assert_eq!(status, 200, "upload {n}: {summary}");
        assert_eq!(summary["read"].as_u64(), Some(LINES as u64));
        if n % 10 == 9 {
            // The server writes its snapshots in the background after an
            // upload's answer, each into a temporary file renamed over the
            // last, so for a moment both are on disk. The bound is of the
            // directory at rest: the snapshot being written is waited for.
            let writing = || {
                walk(&db)
                    .iter()
                    .any(|path| path.to_string_lossy().contains(".tmp."))
            };
            let waited = Instant::now();
            while writing() && waited.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let disk = disk_bytes(&db);
            figures.push(format!("{}: JSONL {jsonl}, disk {disk}", n + 1));
            assert!(
                disk <= allowed(jsonl),
                "after {} uploads the data directory takes {disk} bytes for {jsonl} bytes of JSON Lines",
                n + 1
            );
        }
    }
    signal(&server, "INT");
    assert!(server.wait().unwrap().success());
    let disk = disk_bytes(&db);
    figures.push(format!("stopped: JSONL {jsonl}, disk {disk}"));
    eprintln!("{}", figures.join("\n"));
    assert!(
        disk <= allowed(jsonl),
        "the data directory takes {disk} bytes for {jsonl} bytes of JSON Lines"
    );
    assert!(run(&db, &["audit"]).status.success());
}

/// Copies the files under `from` to `to`, keeping the tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().map_while(Result::ok) {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Issue 18 and issue 20 item 8: each file of a data directory damaged in
/// turn (a flipped byte in its middle, or cut to half its length, or
/// removed), each in a fresh copy: the damage is named by `penalty audit`
/// (exit 4, the file or the sequence number in its report), or `penalty
/// recover` repairs it (after which the audit passes, a writer appends and
/// the ledger is the one before the damage). Every read command beside it
/// either answers or fails with a message; none panics. The rejects file is
/// the user's report, read back by nothing: its damage is harmless (the
/// audit passes, the writer and readers work).
#[test]
fn damage_to_each_file_is_named_by_audit_or_repaired_by_recover() {
    let lines = generated(3_000, 30, 31);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    // A bulk ingest, its snapshot from the first query, then small ingests:
    // several blocks, several journal records, a snapshot at a block's end.
    let (bulk, tail) = lines.split_at(lines.len() - 20);
    let mut text = bulk.join("\n");
    text.push('\n');
    ingest_text(&good, text.as_bytes());
    assert!(run(&good, &["shops", "--as-of", CONCURRENT_AS_OF])
        .status
        .success());
    for chunk in tail.chunks(5) {
        let mut text = chunk.join("\n");
        text.push('\n');
        ingest_text(&good, text.as_bytes());
    }
    // A rejected line into the default rejects file, so that there is one
    // in the directory to damage.
    let mut child = penalty(&good)
        .args(["ingest", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"this is not an event\n")
        .unwrap();
    child.wait().unwrap();
    let replay = ["replay", "--as-of", CONCURRENT_AS_OF, "--json"];
    let expected = json(&run(&good, &replay));
    let files: Vec<PathBuf> = walk(&good);
    for name in [
        "events.log",
        "HEAD",
        "projection.snap",
        "projection.parts",
        "LOCK",
        "rejects.jsonl",
        "tail.index",
    ] {
        assert!(files.iter().any(|f| f.ends_with(name)), "no {name}");
    }
    assert!(files.iter().any(|f| f.starts_with(good.join("log.sled"))));
    let (shop, order) = early_shop_and_order(&lines, 300);
    let mut reads = read_commands(&shop, &order);
    for args in [
        vec!["postings", &shop, "--as-of", CONCURRENT_AS_OF, "--json"],
        vec![
            "export",
            "postings",
            "--as-of",
            CONCURRENT_AS_OF,
            "--format",
            "jsonl",
        ],
    ] {
        reads.push(args.into_iter().map(str::to_string).collect());
    }
    let mut outcomes = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&good).unwrap().to_path_buf();
        for damage in ["flip", "halve", "remove"] {
            let case = dir.path().join(format!("case-{}", outcomes.len()));
            copy_tree(&good, &case);
            let target = case.join(&relative);
            let mut bytes = std::fs::read(&target).unwrap();
            match damage {
                "flip" if bytes.is_empty() => continue,
                "flip" => {
                    let middle = bytes.len() / 2;
                    bytes[middle] ^= 0x10;
                    std::fs::write(&target, &bytes).unwrap();
                }
                "halve" => std::fs::write(&target, &bytes[..bytes.len() / 2]).unwrap(),
                _ => std::fs::remove_file(&target).unwrap(),
            }
            let what = format!("{} {damage}", relative.display());
            let name = relative.file_name().unwrap().to_string_lossy().to_string();
            // Read commands answer or refuse; none crashes.
            for args in &reads {
                let out = penalty(&case).args(args).output().unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(
                    matches!(out.status.code(), Some(0 | 1 | 3 | 4))
                        && !stderr.contains("panicked"),
                    "{what}: {args:?} ended with {:?}: {stderr}",
                    out.status
                );
            }
            let query = run(&case, &["shops", "--as-of", CONCURRENT_AS_OF, "--json"]);
            assert!(
                matches!(query.status.code(), Some(0 | 1)),
                "{what}: a query ended with {:?}",
                query.status
            );
            // Issue 20 item 8: a query never answers from a damaged log
            // in silence.
            if name == "events.log" || name == "HEAD" {
                let stderr = String::from_utf8_lossy(&query.stderr);
                assert!(
                    !query.status.success() || stderr.contains("damaged"),
                    "{what}: a query answered in silence: {stderr}"
                );
            }
            let audit = run(&case, &["audit", "--json"]);
            let named = audit.status.code() == Some(4);
            if named {
                let report = String::from_utf8_lossy(&audit.stdout).to_string();
                assert!(
                    report.contains(&name) || report.contains("sequence number"),
                    "{what}: the audit does not say what is damaged: {report}"
                );
                // The journal and the snapshot are rebuilt from the blocks
                // file, which holds everything; a damaged tail index is
                // removed (readers read every block without it).
                if name == "HEAD" || name == "projection.snap" || name == "tail.index" {
                    let recover = run(&case, &["recover", "--json"]);
                    assert!(recover.status.success(), "{what}: recover failed");
                    assert!(run(&case, &["audit"]).status.success(), "{what}");
                    assert_eq!(json(&run(&case, &replay))["digest"], expected["digest"]);
                    outcomes.push(format!("{what}: named by audit, repaired by recover"));
                } else {
                    outcomes.push(format!("{what}: named by audit"));
                }
                continue;
            }
            assert!(
                audit.status.success(),
                "{what}: audit failed without a report: {}",
                String::from_utf8_lossy(&audit.stderr)
            );
            // The audit reads the files readers read; what it passes must
            // leave them answering as before, and a writer must work again
            // after `recover`.
            let recover = run(&case, &["recover", "--json"]);
            assert!(
                recover.status.success(),
                "{what}: neither named by audit nor repaired by recover: {} {}",
                String::from_utf8_lossy(&recover.stdout),
                String::from_utf8_lossy(&recover.stderr)
            );
            let more = format!(
                "{}\n",
                paid(
                    9_999,
                    "DAMAGE-TEST",
                    "S-DAMAGE",
                    "2026-03-01T10:00:00+08:00"
                )
            );
            let (counts_value, _) = ingest_text(&case, more.as_bytes());
            assert_eq!(
                counts(&counts_value)[1],
                1,
                "{what}: the writer appends again"
            );
            let after = json(&run(&case, &replay));
            assert_eq!(
                after["events"].as_u64(),
                expected["events"].as_u64().map(|e| e + 1),
                "{what}"
            );
            assert!(run(&case, &["audit"]).status.success(), "{what}");
            let outcome = if json(&recover)["recovered"].is_null() {
                "harmless (recover found nothing to do; the writer and readers work)"
            } else {
                "repaired by recover"
            };
            outcomes.push(format!("{what}: {outcome}"));
        }
    }
    eprintln!("{}", outcomes.join("\n"));
}

/// Issue 20 (7): ids holding terminal escape sequences (colour,
/// clear-screen, a window title ended by BEL, a carriage return, a
/// bidirectional override) are printed escaped in every human output and
/// in error messages that quote input, and exactly in JSON.
#[test]
fn issue20_control_characters_are_escaped_in_human_output_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let shop = "S\u{1b}[31mRED";
    let order = "O\u{1b}[2J\u{1b}[H";
    let product = "P\u{1b}]0;pwned\u{7}\r\u{202e}";
    let line = format!(
        r#"{{"event_id":"{}","type":"paid","at":"2026-03-01T10:00:00+08:00","order_id":"{}","shop_id":"{}","product_id":"{}","amount_fen":1990}}"#,
        uuid(1),
        "O\\u001b[2J\\u001b[H",
        "S\\u001b[31mRED",
        "P\\u001b]0;pwned\\u0007\\r\u{202e}"
    );
    let (summary, _) = ingest_text(&db, format!("{line}\n").as_bytes());
    assert_eq!(counts(&summary), [1, 1, 0, 0]);
    let clean = |bytes: &[u8], what: &str| {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text
                .chars()
                .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
            "{what} holds a control character: {text:?}"
        );
        text.into_owned()
    };
    let as_of = "2026-03-07T00:00:00+08:00";
    for (args, shown) in [
        (vec!["shop", shop, "--as-of", as_of], r"S\u{1b}[31mRED"),
        (
            vec!["order", order, "--as-of", as_of],
            r"O\u{1b}[2J\u{1b}[H",
        ),
        (
            vec!["order", order, "--as-of", as_of],
            r"P\u{1b}]0;pwned\u{7}\u{d}\u{202e}",
        ),
        (vec!["shops", "--as-of", as_of], r"S\u{1b}[31mRED"),
        (
            vec!["at-risk", "--as-of", "2026-03-02T12:00:00+08:00"],
            r"O\u{1b}[2J\u{1b}[H",
        ),
        (
            vec!["notices", shop, "--as-of", as_of],
            r"O\u{1b}[2J\u{1b}[H",
        ),
    ] {
        let out = run(&db, &args);
        assert!(out.status.success(), "{args:?}");
        let stdout = clean(&out.stdout, "stdout");
        assert!(stdout.contains(shown), "{args:?} shows {shown}: {stdout}");
    }
    // Error messages quoting input: an unknown shop and a bad instant.
    let out = run(&db, &["shop", "X\u{1b}[2J", "--as-of", as_of]);
    assert_eq!(out.status.code(), Some(3));
    assert!(clean(&out.stderr, "stderr").contains(r"X\u{1b}[2J"));
    let out = run(&db, &["shops", "--as-of", "\u{1b}]0;title\u{7}"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(clean(&out.stderr, "stderr").contains(r"\u{1b}]0;title\u{7}"));
    // JSON carries the id exactly.
    let out = run(&db, &["shop", shop, "--as-of", as_of, "--json"]);
    assert_eq!(json(&out)["shop_id"], shop);
    let out = run(&db, &["order", order, "--as-of", as_of, "--json"]);
    assert_eq!(json(&out)["product_id"], product);
}

/// Issue 20 (7): log lines written to a pipe or a file carry no colour
/// codes, and a logged value (here the data directory's path, holding a
/// window-title sequence) no control character.
#[test]
fn issue20_log_lines_carry_no_colour_codes_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db\u{1b}]0;title\u{7}");
    // Only a writer creates a data directory (issue 18): ingest one order.
    ingest_text(&db, paid_orders(1).as_bytes());
    let out = penalty(&db)
        .args(["shops", "--as-of", "2026-03-07T00:00:00+08:00"])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DEBUG"), "some log lines: {stderr}");
    assert!(
        !stderr.chars().any(|c| c.is_control() && c != '\n'),
        "no escape codes: {stderr:?}"
    );
    assert!(stderr.contains(r"db\u{1b}]0;title\u{7}"), "{stderr}");
}

/// Issue 20 (10): when the rejects file fails mid-ingest (here it is
/// `/dev/full`), the error says how many events the input really added:
/// blocks being written as the error came are in the log too, and the
/// count is the one a replay finds.
#[test]
fn issue20_a_failed_ingest_reports_the_events_really_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let input = dir.path().join("events.jsonl");
    let mut text = paid_orders(40_000);
    text += "{bad\n";
    std::fs::write(&input, text).unwrap();
    let out = penalty(&db)
        .args(["ingest", "--rejects", "/dev/full"])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("No space left"), "{stderr}");
    let in_log: u64 = stderr
        .split(" events from it are in the log")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of the events in the log: {stderr}"));
    let events = replay_json(&db)["events"].as_u64().unwrap();
    assert_eq!(in_log, events, "{stderr}");
    assert!(events > 0, "some blocks were committed before the bad line");
}

#[test]
fn an_export_to_dev_null_succeeds() {
    // `-o /dev/null` (or any file that is not a regular one): written, not
    // synced, since such a file cannot be and need not be made durable.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ingest_text(&db, paid_orders(10).as_bytes());
    let out = run(
        &db,
        &[
            "export",
            "orders",
            "--as-of",
            "2026-03-07",
            "-o",
            "/dev/null",
        ],
    );
    assert!(succeeded(&out).contains("wrote 10 orders"));
}

/// A data directory holding the demo (fixtures/demo), in a folder removed
/// when the first value is dropped.
fn demo_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ingest_text(
        &db,
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/demo/events.jsonl"),
        )
        .unwrap(),
    );
    (dir, db)
}

#[test]
fn shop_lists_are_limited_and_summary_shows_figures_only() {
    let (_dir, db) = demo_db();
    let text = |args: &[&str]| {
        let out = run(&db, args);
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let all = text(&["shop", "S01", "--as-of", "2026-04-15", "--limit", "0"]);
    let limited = text(&["shop", "S01", "--as-of", "2026-04-15", "--limit", "3"]);
    let summary = text(&["shop", "S01", "--as-of", "2026-04-15", "--summary"]);
    assert!(all.lines().count() > 60, "{all}");
    assert!(limited.lines().count() < 30, "{limited}");
    assert!(limited.contains("more rows not shown"), "{limited}");
    assert!(!all.contains("more rows not shown"));
    // The summary is the first lines of the full report, and no list.
    assert!(all.starts_with(&summary), "{summary}");
    assert!(!summary.contains("Deductions"));
    assert!(
        summary
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("  rating"),
        "{summary}"
    );
}

/// The order ids a human output names, in order (each deduction, ban,
/// flag or order at risk names one); the pages' column widths differ, so
/// pages are compared by what they list.
fn order_ids(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| {
            word.len() == 5
                && word.starts_with('O')
                && word[1..].bytes().all(|b| b.is_ascii_digit())
        })
        .map(str::to_string)
        .collect()
}

/// The `--offset` a "more" line gives for the next page, if any.
fn next_offset(text: &str) -> Option<String> {
    let (_, after) = text.split_once("--offset ")?;
    Some(after.chars().take_while(char::is_ascii_digit).collect())
}

/// Following the "more" line's `--offset` from the first page of `penalty
/// shop` and of `penalty at-risk` reads every row of `--limit 0`, once.
#[test]
fn shop_and_at_risk_pages_lead_to_the_next() {
    let (_dir, db) = demo_db();
    let text = |args: &[&str]| {
        let out = run(&db, args);
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    for base in [
        &["shop", "S01", "--as-of", "2026-04-15"][..],
        &[
            "at-risk",
            "--as-of",
            "2026-03-20T12:00:00+08:00",
            "--within",
            "30d",
        ][..],
    ] {
        let with = |more: &[&str]| text(&[base, more].concat());
        let all = order_ids(&with(&["--limit", "0"]));
        let mut read = Vec::new();
        let mut offset = "0".to_string();
        let mut pages = 0;
        loop {
            let page = with(&["--limit", "3", "--offset", &offset]);
            read.extend(order_ids(&page));
            pages += 1;
            match next_offset(&page) {
                Some(next) => offset = next,
                None => break,
            }
            assert!(pages < 100, "{base:?} never ends");
        }
        assert!(pages > 2, "{base:?}: more than two pages of three");
        let (mut all, mut read) = (all, read);
        all.sort_unstable();
        read.sort_unstable();
        assert_eq!(read, all, "{base:?}");
    }
}

#[test]
fn shops_are_ranked_worst_first_with_top_and_min_orders() {
    let (_dir, db) = demo_db();
    let lines = |args: &[&str]| -> Vec<Value> {
        let out = run(&db, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    let base = ["shops", "--as-of", "2026-04-15", "--json"];
    let all = lines(&base);
    assert_eq!(all.len(), 6);
    let by_id: Vec<&str> = all.iter().map(|s| s["shop_id"].as_str().unwrap()).collect();
    let mut sorted = by_id.clone();
    sorted.sort_unstable();
    assert_eq!(by_id, sorted, "the default order is CLI.md's, by shop id");
    for (sort, key) in [("judgments", "judgments"), ("charged", "charged_fen")] {
        let ranked = lines(&[&base[..], &["--sort", sort]].concat());
        assert_eq!(ranked.len(), 6);
        for pair in ranked.windows(2) {
            let (a, b) = (
                pair[0][key].as_i64().unwrap(),
                pair[1][key].as_i64().unwrap(),
            );
            assert!(
                a > b || (a == b && pair[0]["shop_id"].as_str() < pair[1]["shop_id"].as_str()),
                "{sort}: {pair:?}"
            );
        }
        let top = lines(&[&base[..], &["--sort", sort, "--top", "2"]].concat());
        assert_eq!(
            top,
            ranked[..2].to_vec(),
            "--top keeps the first of the ranking"
        );
    }
    let rate = lines(&[&base[..], &["--sort", "rate"]].concat());
    let rates: Vec<f64> = rate
        .iter()
        .map(|s| s["rating"]["timeout_rate"].as_f64().unwrap_or(-1.0))
        .collect();
    assert!(rates.windows(2).all(|w| w[0] >= w[1]), "{rates:?}");
    // --min-orders leaves out the shops with fewer paid orders.
    let threshold = all
        .iter()
        .map(|s| s["orders"].as_u64().unwrap())
        .max()
        .unwrap();
    let big = lines(
        &[
            &base[..],
            &["--sort", "rate", "--min-orders", &threshold.to_string()],
        ]
        .concat(),
    );
    assert!(!big.is_empty());
    assert!(big
        .iter()
        .all(|s| s["orders"].as_u64().unwrap() >= threshold));
    assert!(big.len() < all.len());
    // The human table follows the same order.
    let out = run(
        &db,
        &[
            "shops",
            "--as-of",
            "2026-04-15",
            "--sort",
            "charged",
            "--top",
            "1",
        ],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let charged = lines(&[&base[..], &["--sort", "charged"]].concat());
    let worst = charged[0]["shop_id"].as_str().unwrap();
    assert!(
        text.lines().nth(1).unwrap().trim_start().starts_with(worst),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.trim_start().starts_with("S0"))
            .count(),
        1,
        "{text}"
    );
    // A sort that does not exist names the ones that do.
    let out = run(&db, &["shops", "--sort", "worst"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("shop, judgments, charged, rate"),
        "{stderr}"
    );
}

#[test]
fn an_excel_export_has_a_bom_and_yuan_columns_beside_the_same_rows() {
    let (_dir, db) = demo_db();
    let export = |extra: &[&str]| -> Vec<u8> {
        let out = run(
            &db,
            &[&["export", "orders", "--as-of", "2026-04-15"][..], extra].concat(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let plain = String::from_utf8(export(&[])).unwrap();
    let excel = export(&["--excel"]);
    assert!(
        excel.starts_with(b"\xEF\xBB\xBF"),
        "a UTF-8 byte-order mark first"
    );
    let excel = String::from_utf8(excel[3..].to_vec()).unwrap();
    let (plain_lines, excel_lines): (Vec<&str>, Vec<&str>) =
        (plain.lines().collect(), excel.lines().collect());
    assert_eq!(plain_lines.len(), excel_lines.len());
    assert!(plain_lines.len() > 300, "the demo's orders");
    let header: Vec<&str> = excel_lines[0].split(',').collect();
    let width = plain_lines[0].split(',').count();
    for (plain, excel) in plain_lines.iter().zip(&excel_lines).skip(1) {
        // The plain columns are the same, then each yuan column is its fen
        // column divided by 100.
        assert!(excel.starts_with(plain), "{excel}");
        let fields: Vec<&str> = excel.split(',').collect();
        for (index, name) in header.iter().enumerate().skip(width) {
            let fen_column = name.replace("_yuan", "_fen");
            let fen_index = header.iter().position(|h| *h == fen_column).unwrap();
            let fen: i64 = fields[fen_index].parse().unwrap();
            let yuan: f64 = fields[index].parse().unwrap();
            assert_eq!((yuan * 100.0).round() as i64, fen, "{name} in {excel}");
        }
    }
    assert!(header.contains(&"charged_yuan"), "{header:?}");
    // --excel is for CSV; postings take it too, and -o /dev/null works.
    let out = run(
        &db,
        &[
            "export",
            "orders",
            "--as-of",
            "2026-04-15",
            "--excel",
            "--format",
            "jsonl",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format csv"));
    let out = run(
        &db,
        &[
            "export",
            "postings",
            "--as-of",
            "2026-04-15",
            "--excel",
            "-o",
            "/dev/null",
        ],
    );
    assert!(succeeded(&out).contains("postings to /dev/null"));
}

/// The standard error of a command that must have succeeded.
fn succeeded(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// `export orders --paid-from/--paid-to/--capped-day/--closure-review`
/// keeps exactly the rows of the full export that pass, read from the rows
/// and the shop reports: paid in the range (a `--paid-to` date includes its
/// day), flagged for closure review (R7), a charged or waived deduction on a
/// settle day whose cap waived something (R5). A bad instant names its flag.
#[test]
fn order_exports_filter_by_paid_range_capped_days_and_closure_review() {
    let (_dir, db) = demo_db();
    let rows = |extra: &[&str]| -> Vec<Value> {
        let out = run(
            &db,
            &[
                &[
                    "export",
                    "orders",
                    "--as-of",
                    "2026-04-15",
                    "--format",
                    "jsonl",
                ][..],
                extra,
            ]
            .concat(),
        );
        succeeded(&out);
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    let all = rows(&[]);
    let mut capped_orders = std::collections::BTreeSet::new();
    let shops: std::collections::BTreeSet<String> = all
        .iter()
        .map(|r| r["shop_id"].as_str().unwrap().to_string())
        .collect();
    for shop in &shops {
        let report = json(&run(
            &db,
            &["shop", shop, "--as-of", "2026-04-15", "--json"],
        ));
        let deductions = report["deductions"].as_array().unwrap();
        let capped: Vec<&str> = deductions
            .iter()
            .filter(|d| d["waived_fen"].as_i64().unwrap() > 0)
            .map(|d| d["settle_date"].as_str().unwrap())
            .collect();
        for d in deductions {
            let counted =
                d["charged_fen"].as_i64().unwrap() + d["waived_fen"].as_i64().unwrap() > 0;
            if counted && capped.contains(&d["settle_date"].as_str().unwrap()) {
                capped_orders.insert(d["order_id"].as_str().unwrap().to_string());
            }
        }
    }
    let paid_on = |row: &Value| row["paid_at"].as_str().unwrap()[..10].to_string();
    type Keep<'a> = Box<dyn Fn(&Value) -> bool + 'a>;
    let cases: Vec<(Vec<&str>, Keep)> = vec![
        (
            vec!["--paid-from", "2026-03-05", "--paid-to", "2026-03-20"],
            Box::new(|r: &Value| {
                ("2026-03-05".to_string()..="2026-03-20".to_string()).contains(&paid_on(r))
            }),
        ),
        (
            vec!["--capped-day"],
            Box::new(|r: &Value| capped_orders.contains(r["order_id"].as_str().unwrap())),
        ),
        (
            vec!["--closure-review"],
            Box::new(|r: &Value| r["closure_review"] == true),
        ),
        (
            vec!["--capped-day", "--paid-to", "2026-03-22T14:10:00+08:00"],
            Box::new(|r: &Value| {
                capped_orders.contains(r["order_id"].as_str().unwrap())
                    && r["paid_at"].as_str().unwrap() <= "2026-03-22T14:10:00+08:00"
            }),
        ),
    ];
    for (flags, keep) in cases {
        let expected: Vec<Value> = all.iter().filter(|r| keep(r)).cloned().collect();
        assert!(
            !expected.is_empty() && expected.len() < all.len(),
            "{flags:?}: {} of {}",
            expected.len(),
            all.len()
        );
        assert_eq!(rows(&flags), expected, "{flags:?}");
    }
    for (flag, value) in [("--paid-from", "soon"), ("--paid-to", "2026-02-30")] {
        let out = run(&db, &["export", "orders", flag, value]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag) && stderr.contains(value), "{stderr}");
    }
}

/// `penalty shops` pages its human table: no more than `--limit` (200)
/// shops unasked, `--offset` walks the rest, every shop appears on exactly
/// one page and in the order of `--json`, and `--limit 0` shows them all.
#[test]
fn the_shop_list_is_paged() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let events = tmp.path().join("events.jsonl");
    std::fs::write(&events, generated(3_000, 450, 7).join("\n") + "\n").unwrap();
    assert!(run(&db, &["ingest", events.to_str().unwrap()])
        .status
        .success());
    let as_of = "2026-04-01T00:00:00+08:00";
    let listed: Vec<String> =
        String::from_utf8(run(&db, &["shops", "--as-of", as_of, "--json"]).stdout)
            .unwrap()
            .lines()
            .map(|line| {
                serde_json::from_str::<Value>(line).unwrap()["shop_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
    assert!(
        listed.len() > 400,
        "the workload has {} shops",
        listed.len()
    );
    let rows = |text: &str| -> Vec<String> {
        text.lines()
            .skip(1)
            .take_while(|line| !line.is_empty())
            .map(|line| line.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    let mut paged = Vec::new();
    let mut offset = 0;
    loop {
        let out = run(
            &db,
            &["shops", "--as-of", as_of, "--offset", &offset.to_string()],
        );
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let page = rows(&text);
        assert!(page.len() <= 200, "a page of {} rows", page.len());
        paged.extend(page.iter().cloned());
        offset += page.len();
        if offset >= listed.len() {
            assert!(text.contains("the last page"), "{text}");
            break;
        }
        assert!(text.contains(&format!("--offset {offset}")), "{text}");
    }
    assert_eq!(paged, listed);
    let all = run(&db, &["shops", "--as-of", as_of, "--limit", "0"]);
    assert_eq!(rows(&String::from_utf8(all.stdout).unwrap()), listed);
}

/// `--json` is the same, byte for byte, whatever the language asked for
/// (CLI.md: codes stay codes, the sentences of a report are its English
/// ones): by `--lang`, by PENALTY_LANG and by the locale.
#[test]
fn json_is_the_same_in_every_language() {
    let (_dir, db) = demo_db();
    let as_of = "2026-04-15";
    let commands: &[&[&str]] = &[
        &["shops", "--as-of", as_of, "--json"],
        &["shop", "S01", "--as-of", as_of, "--json"],
        &["order", "O0001", "--as-of", as_of, "--json"],
        &[
            "notices", "S01", "--as-of", as_of, "--limit", "1000", "--json",
        ],
        &["postings", "S01", "--as-of", as_of, "--json"],
        &["at-risk", "--as-of", "2026-03-20T12:00:00+08:00", "--json"],
        &["policy", "--json"],
        &["replay", "--as-of", as_of, "--json"],
    ];
    for args in commands {
        let english = run(&db, args);
        assert!(english.status.success(), "{args:?}");
        let flag = penalty(&db)
            .args(["--lang", "zh-CN"])
            .args(*args)
            .output()
            .unwrap();
        let variable = penalty(&db)
            .env("PENALTY_LANG", "zh-CN")
            .args(*args)
            .output()
            .unwrap();
        let locale = penalty(&db)
            .env_remove("PENALTY_LANG")
            .env("LANG", "zh_CN.UTF-8")
            .args(*args)
            .output()
            .unwrap();
        for (how, output) in [
            ("--lang", flag),
            ("PENALTY_LANG", variable),
            ("LANG", locale),
        ] {
            assert_eq!(
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&english.stdout),
                "{args:?} in Chinese by {how}"
            );
        }
    }
}

/// The language comes from `--lang`, else PENALTY_LANG, else the locale's
/// LC_ALL, LC_MESSAGES, LANG; a `--lang` naming neither language is a
/// usage error (exit 2) saying what to write.
#[test]
fn the_language_is_chosen_by_flag_variable_then_locale() {
    let (_dir, db) = demo_db();
    let shop = |command: &mut Command| -> String {
        let out = command
            .args(["shop", "S01", "--as-of", "2026-04-15", "--summary"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let english = |text: &str| text.starts_with("Shop S01 as of");
    let chinese = |text: &str| text.starts_with("店铺 S01，截至");
    let bare = || {
        let mut command = penalty(&db);
        command
            .env_remove("PENALTY_LANG")
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .env_remove("LANG");
        command
    };
    assert!(english(&shop(&mut bare())));
    assert!(chinese(&shop(bare().env("LANG", "zh_CN.UTF-8"))));
    assert!(chinese(&shop(
        bare()
            .env("LC_MESSAGES", "zh_CN.UTF-8")
            .env("LANG", "en_US.UTF-8")
    )));
    assert!(english(&shop(
        bare().env("LC_ALL", "C").env("LANG", "zh_CN.UTF-8")
    )));
    assert!(english(&shop(
        bare().env("PENALTY_LANG", "en").env("LANG", "zh_CN.UTF-8")
    )));
    assert!(chinese(&shop(bare().env("PENALTY_LANG", "zh-CN"))));
    assert!(english(&shop(
        bare().env("PENALTY_LANG", "zh-CN").args(["--lang", "en"])
    )));
    assert!(chinese(&shop(bare().args(["--lang", "zh-CN"]))));

    let refused = bare().args(["--lang", "fr", "shops"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("write zh-CN (Chinese) or en (English)"),
        "{refused:?}"
    );

    // The CLI's own errors speak the language too; the exit code is the same.
    let unknown = bare()
        .args([
            "--lang",
            "zh-CN",
            "order",
            "NO-SUCH",
            "--as-of",
            "2026-04-15",
        ])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("没有订单 `NO-SUCH`"),
        "{unknown:?}"
    );
    let bad_policy = bare()
        .args([
            "--lang",
            "zh-CN",
            "--policy",
            "/no/such/policy.json",
            "policy",
        ])
        .output()
        .unwrap();
    assert_eq!(bad_policy.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad_policy.stderr).starts_with("penalty: 错误：无法读取规则文件"),
        "{bad_policy:?}"
    );
}

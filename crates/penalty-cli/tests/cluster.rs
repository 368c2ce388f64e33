//! The cluster against one machine (issue 22, docs/SCALE-OUT.md): a
//! 3-server JetStream cluster and 3 ledger nodes with 16 partitions, started
//! and stopped here on free loopback ports, give the same ingest counts, the
//! same shop reports and the same order reports as one data directory fed
//! the same generated workload (duplicates, `order_already_paid`, orphans,
//! late events) plus hand-made lines for the decisions that need both
//! keys of a `paid`; re-sending the input appends nothing.
//!
//! Needs Debian's `nats-server` (JetStream): the test fails, saying so, when
//! it is missing. Every wait polls with a deadline; nothing sleeps a guess.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_penalty");
const PARTITIONS: u32 = 16;
/// The NATS servers' maximum payload (see [`Cluster::start`]).
const MAX_PAYLOAD_BYTES: usize = 1024;
const AS_OF: &str = "2026-09-01T00:00:00+08:00";
/// The tokens every node and the one-machine server take (`--tokens`):
/// an operator's, which every request of these tests sends unless told
/// otherwise, and a seller's of [`SELLER_SHOP`].
const OPERATOR_TOKEN: &str = "operator-secret";
const SELLER_TOKEN: &str = "seller-secret";
/// The seller's shop, and another shop of the workload (`gen --shops 24`).
const SELLER_SHOP: &str = "S000003";
const OTHER_SHOP: &str = "S000004";

/// Children killed (and reaped) when the test ends, however it ends.
struct Processes(Vec<(String, Child)>);

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A loopback port free now and never handed out before in this process:
/// the kernel may offer a port it just offered again once its probe socket
/// is closed, and two of a cluster's processes on one port would leave one
/// of them dead before the test starts.
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

fn wait_until<T>(what: &str, limit: Duration, check: impl FnMut() -> Result<T, String>) -> T {
    try_wait_until(limit, check).unwrap_or_else(|last| {
        let last: String = last.chars().take(1500).collect();
        panic!("timed out after {limit:?} waiting for {what}; last: {last}")
    })
}

/// `check` until it answers, or its last complaint after `limit`.
fn try_wait_until<T>(
    limit: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        match check() {
            Ok(value) => return Ok(value),
            Err(why) => last = why,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(last)
}

/// The last lines of each standard-error log in `dir` (`*.err.log`), for a
/// failure's message: the processes' own words on why they are not there.
fn error_logs(dir: &Path) -> String {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.to_string_lossy().ends_with(".err.log"))
        .collect();
    names.sort();
    let mut text = String::new();
    for path in names {
        let body = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = body.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n");
        text.push_str(&format!("\n--- {}:\n{tail}", path.display()));
    }
    text
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    Stdio::from(std::fs::File::create(dir.join(format!("{name}.log"))).expect("a log file"))
}

/// nats-server: on the PATH, or where Debian installs it (/usr/sbin, not on
/// every user's PATH). Fails the test, saying what to install, when absent.
fn nats_server() -> String {
    for candidate in ["nats-server", "/usr/sbin/nats-server"] {
        let found = Command::new(candidate).arg("--version").output();
        if found.is_ok_and(|o| o.status.success()) {
            return candidate.to_string();
        }
    }
    panic!(
        "nats-server is missing: the cluster tests need it (Debian: apt-get install nats-server; \
         .ci/run installs it)"
    );
}

fn penalty(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("penalty runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, stdout, stderr) = penalty(args);
    assert_eq!(code, 0, "penalty {args:?} failed: {stderr}");
    stdout
}

/// A GET on loopback: the status and the body.
fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    http_request(port, "GET", path, "")
}

/// A request on loopback (a POST's body is JSON Lines), as the operator:
/// the status and the body.
fn http_request(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
    http_request_as(Some(OPERATOR_TOKEN), port, method, path, body)
}

/// [`http_request`] with `token` (none: no `Authorization` header).
fn http_request_as(
    token: Option<&str>,
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let content = if method == "POST" {
        format!(
            "Content-Type: application/x-ndjson\r\nContent-Length: {}\r\n",
            body.len()
        )
    } else {
        String::new()
    };
    let auth = bearer(token);
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}{content}\r\n{body}"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // axum answers with a Content-Length body (not chunked) for JSON.
    Ok((status, body))
}

/// The `Authorization` header line of `token`, if any.
fn bearer(token: Option<&str>) -> String {
    token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"))
}

/// The hex SHA-256 of `text`, by coreutils' `sha256sum`.
fn sha256_hex(text: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("sha256sum reads");
    let out = child.wait_with_output().expect("sha256sum answers");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a hash")
        .to_string()
}

/// The tokens file of [`OPERATOR_TOKEN`] and [`SELLER_TOKEN`], in `dir`.
fn tokens_file(dir: &Path) -> String {
    let path = dir.join("tokens.json");
    let text = serde_json::json!([
        {"sha256": sha256_hex(OPERATOR_TOKEN), "role": "operator"},
        {"sha256": sha256_hex(SELLER_TOKEN), "role": "seller", "shop_id": SELLER_SHOP},
    ]);
    // Written aside and renamed into place: each node started rewrites it
    // while the nodes before it may be reading it.
    let aside = dir.join(format!("tokens.json.{}", free_port()));
    std::fs::write(&aside, text.to_string()).expect("the tokens file");
    std::fs::rename(&aside, &path).expect("the tokens file in place");
    path.display().to_string()
}

/// The one-machine server on `db`, with the tokens file of the nodes, for
/// the routes only it has an answer to compare with (`POST /events`'s
/// answer, the paged `GET /shops`).
fn start_single_server(processes: &mut Processes, dir: &Path, db: &str) -> u16 {
    let port = free_port();
    let child = Command::new(BIN)
        .args(["--db", db, "serve", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--tokens", &tokens_file(dir)])
        .stdout(log_file(dir, "single-server"))
        .stderr(log_file(dir, "single-server.err"))
        .spawn()
        .expect("penalty serve starts");
    processes.0.push(("single-server".into(), child));
    wait_until("the one-machine server", Duration::from_secs(30), || {
        http_get(port, "/healthz").map(|_| ())
    });
    port
}

/// A second workload, for `POST /events`: new orders (some paid in shops of
/// the first), lines already sent (duplicates), a conflict and bad lines.
fn second_body(dir: &Path, first: &str) -> String {
    let path = dir.join("second.jsonl");
    ok(&[
        "gen",
        "--orders",
        "300",
        "--shops",
        "30",
        "--seed",
        "23",
        "-o",
        &path.display().to_string(),
    ]);
    let mut body = std::fs::read_to_string(&path).expect("the second workload");
    let first = std::fs::read_to_string(first).expect("the workload");
    let mut again: Vec<&str> = first.lines().take(5).collect();
    let mut conflict: Value =
        serde_json::from_str(first.lines().nth(7).expect("8 lines")).expect("JSON");
    conflict["at"] = "2026-01-02T00:00:00Z".into();
    let conflict = conflict.to_string();
    again.push(&conflict);
    again.extend(["", "{\"event_id\": 5}"]);
    for line in again {
        body.push_str(line);
        body.push('\n');
    }
    body
}

/// `GET /shops` pages (by shop, ranked, filtered) through every node equal
/// the one-machine server's, field for field.
fn assert_same_shop_pages(cluster: &Cluster, single_port: u16) {
    let as_of = AS_OF.replace('+', "%2B");
    let queries = [
        format!("/shops?as_of={as_of}"),
        format!("/shops?as_of={as_of}&limit=7&offset=7"),
        format!("/shops?as_of={as_of}&sort=charged&limit=5"),
        format!("/shops?as_of={as_of}&sort=rate&min_orders=50&limit=3&offset=2"),
        "/shops?sort=nonsense".to_string(),
        "/shops?as_of=yesterday".to_string(),
    ];
    for (n, query) in queries.iter().enumerate() {
        let (status, body) = http_get(single_port, query).expect("the one-machine server answers");
        let expected = canonical(&body);
        let port = cluster.http[n % 3];
        wait_until(
            &format!("{query} as one machine"),
            Duration::from_secs(60),
            || {
                let (got_status, got) = http_get(port, query)?;
                let got = serde_json::from_str::<Value>(&got).map_err(|e| e.to_string())?;
                if got_status == status && got == expected {
                    Ok(())
                } else {
                    Err(format!(
                        "{got_status}: {got}\nexpected {status}: {expected}"
                    ))
                }
            },
        );
        if n == 0 {
            let shops = expected["shops"].as_array().expect("shops");
            assert!(shops.len() >= 20, "{query}: {expected}");
            // Some partition's summaries take more than one NATS message:
            // the merge gathered them in chunks.
            let mut bytes = vec![0usize; PARTITIONS as usize];
            for shop in shops {
                let id = shop["shop_id"].as_str().expect("an id");
                bytes[penalty_cluster::partition::partition_of(id, PARTITIONS) as usize] +=
                    shop.to_string().len();
            }
            let largest = bytes.iter().max().copied().unwrap_or(0);
            assert!(
                largest > 2 * MAX_PAYLOAD_BYTES,
                "a partition's summaries ({largest} bytes) fit in one NATS message"
            );
        }
    }
}

/// A GET over HTTP/1.0 (so that a streamed body comes whole, without
/// chunked framing), optionally with an `Accept-Language`: the status, the
/// `Content-Type` and the body.
fn http_get_whole(
    port: u16,
    path: &str,
    language: Option<&str>,
) -> Result<(u16, String, String), String> {
    http_get_whole_as(Some(OPERATOR_TOKEN), port, path, language)
}

/// [`http_get_whole`] with `token` (none: no `Authorization` header).
fn http_get_whole_as(
    token: Option<&str>,
    port: u16,
    path: &str,
    language: Option<&str>,
) -> Result<(u16, String, String), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let language = language.map_or(String::new(), |l| format!("Accept-Language: {l}\r\n"));
    let auth = bearer(token);
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}{language}\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no head in {response:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    Ok((status, content_type, body.to_string()))
}

/// A notice feed's page without what depends on when each event was
/// recorded: a notice's `cursor` (and the page's `next`) begins with its
/// visibility instant, the event's recording (R9), and the feed runs in
/// that order; a cluster records an event when its stream stores it, one
/// machine when its log appends it, so two ledgers of the same events (two
/// one-machine ingests too) differ there and only there. The notices are
/// compared as a set, each field for field.
fn without_recording_instants(mut page: Value) -> Value {
    if let Some(notices) = page["notices"].as_array_mut() {
        for notice in notices.iter_mut() {
            if let Some(fields) = notice.as_object_mut() {
                fields.remove("cursor");
            }
        }
        notices.sort_by_key(|n| n.to_string());
    }
    if let Some(fields) = page.as_object_mut() {
        fields.remove("next");
    }
    page
}

/// An order's timeline (`GET /orders/{id}/events`) without what depends
/// on where and when each event was recorded: an event's `seq` (its place
/// in one machine's log; in the shop stream on a cluster) and
/// `recorded_at`. The events are compared as a set, each field for field.
fn without_log_positions(mut page: Value) -> Value {
    if let Some(events) = page.get_mut("events").and_then(Value::as_array_mut) {
        for event in events.iter_mut() {
            if let Some(fields) = event.as_object_mut() {
                fields.remove("seq");
                fields.remove("recorded_at");
            }
        }
        events.sort_by_key(|e| e.to_string());
    }
    page
}

/// The routes a node forwards to a shop's host or merges over every
/// partition (postings, their CSV, notices, at-risk, `GET /orders` with its
/// filters, sorts and pages, `GET /orders.csv`, `GET /data-range`), asked
/// through every node in turn, equal the one-machine server's answers:
/// status, content type and body (JSON field for field, CSV byte for byte),
/// refusals included; a notice feed whole, without its recording instants
/// ([`without_recording_instants`]).
fn assert_same_routes(cluster: &Cluster, single_port: u16) {
    let as_of = AS_OF.replace('+', "%2B");
    let (_, _, listed) = http_get_whole(single_port, &format!("/shops?as_of={as_of}"), None)
        .expect("the one-machine server answers");
    let shops: Vec<String> = canonical(&listed)["shops"]
        .as_array()
        .expect("shops")
        .iter()
        .map(|s| s["shop_id"].as_str().expect("an id").to_string())
        .collect();
    let mut queries: Vec<(String, Option<&str>)> = Vec::new();
    for shop in shops.iter().step_by(5).chain([&"S-NOPE".to_string()]) {
        queries.extend([
            (format!("/shops/{shop}/postings?as_of={as_of}"), None),
            (
                format!("/shops/{shop}/postings?as_of={as_of}&limit=3&offset=2"),
                Some("zh-CN"),
            ),
            (format!("/shops/{shop}/postings.csv?as_of={as_of}"), None),
            (
                format!("/shops/{shop}/postings.csv?as_of={as_of}&excel=true&from=2026-03-01"),
                None,
            ),
            (
                format!("/shops/{shop}/notices?as_of={as_of}&limit=1000"),
                None,
            ),
            (
                format!("/shops/{shop}/notices?as_of={as_of}&newest=true&limit=1000"),
                Some("zh"),
            ),
            (
                format!("/shops/{shop}/at-risk?as_of=2026-03-01T00:00:00%2B08:00&within=7d"),
                None,
            ),
            (format!("/shops/{shop}/days?as_of={as_of}"), None),
            (
                format!("/shops/{shop}/deductions?as_of={as_of}&newest=true&limit=5&offset=1"),
                None,
            ),
            (
                format!("/shops/{shop}/closure-review?as_of={as_of}&limit=2&offset=1"),
                None,
            ),
            (format!("/shops/{shop}/bans?as_of={as_of}&limit=1"), None),
            (format!("/orders?as_of={as_of}&shop={shop}&limit=7"), None),
            (format!("/orders.csv?as_of={as_of}&shop={shop}"), None),
        ]);
    }
    queries.extend(
        [
            format!("/orders?as_of={as_of}"),
            format!("/orders?as_of={as_of}&limit=25&offset=40"),
            format!("/orders?as_of={as_of}&sort=charged&limit=30&offset=5"),
            format!("/orders?as_of={as_of}&sort=paid&limit=50&offset=1900"),
            format!("/orders?as_of={as_of}&sort=judgments&limit=20"),
            format!("/orders?as_of={as_of}&sort=status&limit=40&offset=100"),
            format!("/orders?as_of={as_of}&violating=true&sort=charged"),
            format!("/orders?as_of={as_of}&status=shipped&paid_from=2026-03-01&paid_to=2026-04-30"),
            format!("/orders?as_of={as_of}&capped_day=true&limit=10"),
            format!("/orders?as_of={as_of}&closure_review=true"),
            "/orders?sort=nonsense".to_string(),
            "/orders?excel=true".to_string(),
            "/orders?as_of=yesterday".to_string(),
            format!("/orders.csv?as_of={as_of}"),
            format!("/orders.csv?as_of={as_of}&excel=true&violating=true"),
            "/orders.csv?limit=5".to_string(),
            "/shops/S-NOPE/postings?limit=0".to_string(),
            "/data-range".to_string(),
            // Timelines: generated orders, the late paid's (its refund
            // parked first), the orphan's (parked, no paid), none, 400s.
            "/orders/O000000005/events".to_string(),
            format!("/orders/O000000100/events?as_of={as_of}"),
            "/orders/O000001000/events?as_of=2026-01-01".to_string(),
            "/orders/O-LATE/events".to_string(),
            "/orders/O-ORPHAN/events".to_string(),
            "/orders/O-NEVER/events".to_string(),
            "/orders/O000000005/events?as_of=yesterday".to_string(),
            "/orders/O000000005/events?known_at=2026-01-01".to_string(),
        ]
        .map(|q| (q, None)),
    );
    let mut timelines = 0;
    for (n, (query, language)) in queries.iter().enumerate() {
        let (status, content_type, body) =
            http_get_whole(single_port, query, *language).expect("the one-machine server answers");
        let json = content_type.starts_with("application/json");
        let feed = query.contains("/notices?");
        let timeline = query.contains("/events");
        if timeline
            && status == 200
            && !canonical(&body)["events"]
                .as_array()
                .is_none_or(Vec::is_empty)
        {
            timelines += 1;
        }
        let expected = if json && feed {
            without_recording_instants(canonical(&body))
        } else if json && timeline {
            without_log_positions(canonical(&body))
        } else if json {
            canonical(&body)
        } else {
            Value::String(body.clone())
        };
        if n == 0 || query.starts_with("/orders.csv?as_of") {
            assert!(
                status == 200 && body.len() > 100,
                "{query}: {status} {body}"
            );
        }
        let port = cluster.http[n % 3];
        wait_until(
            &format!("{query} as one machine"),
            Duration::from_secs(60),
            || {
                let (got_status, got_type, got) = http_get_whole(port, query, *language)?;
                let got = if json {
                    let got =
                        serde_json::from_str::<Value>(&got).map_err(|e| format!("{e}: {got}"))?;
                    if feed {
                        without_recording_instants(got)
                    } else if timeline {
                        without_log_positions(got)
                    } else {
                        got
                    }
                } else {
                    Value::String(got)
                };
                if got_status == status && got_type == content_type && got == expected {
                    Ok(())
                } else {
                    Err(format!(
                        "{got_status} {got_type}: {got}\nexpected {status} {content_type}: {expected}"
                    ))
                }
            },
        );
    }
    assert!(
        timelines >= 4,
        "only {timelines} timelines with events: the comparison sees too little"
    );
}

/// Answers with `known_at` (an instant between the workload and the second
/// body) through every node equal the one-machine server's, field for field,
/// and differ from the answers without it (the second body is left out).
fn assert_same_known_at(cluster: &Cluster, single_port: u16, known_at: &str) {
    let as_of = AS_OF.replace('+', "%2B");
    let k = format!("as_of={as_of}&known_at={known_at}");
    let queries = [
        format!("/shops?{k}"),
        format!("/shops?{k}&sort=charged&limit=5"),
        format!("/shops/S000001?{k}"),
        format!("/shops/S000025?{k}"),
        format!("/shops/S000002/postings?{k}"),
        format!("/shops/S000003/at-risk?{k}"),
        format!("/shops/S000002/days?{k}"),
        format!("/shops/S000002/deductions?{k}&limit=9"),
        format!("/orders?{k}&sort=charged&limit=30"),
        format!("/orders?{k}&shop=S000004"),
        format!("/orders.csv?{k}"),
        format!("/orders/O000000005?{k}"),
        format!("/shops?as_of={as_of}&known_at=never"),
    ];
    let mut changed = 0;
    for (n, query) in queries.iter().enumerate() {
        let (status, content_type, body) =
            http_get_whole(single_port, query, None).expect("the one-machine server answers");
        let now = query.replace(&format!("&known_at={known_at}"), "");
        let (_, _, body_now) =
            http_get_whole(single_port, &now, None).expect("the one-machine server answers");
        if body_now != body {
            changed += 1;
        }
        let port = cluster.http[n % 3];
        wait_until(
            &format!("{query} as one machine"),
            Duration::from_secs(60),
            || {
                let (got_status, got_type, got) = http_get_whole(port, query, None)?;
                let same = if content_type.starts_with("application/json") {
                    serde_json::from_str::<Value>(&got).ok() == serde_json::from_str(&body).ok()
                } else {
                    got == body
                };
                if got_status == status && got_type == content_type && same {
                    Ok(())
                } else {
                    Err(format!(
                        "{got_status} {got_type}: {got}\nexpected {status} {content_type}: {body}"
                    ))
                }
            },
        );
    }
    assert!(
        changed >= 5,
        "known_at changes few answers ({changed}): the test does not see it"
    );

    // A replay is kept: the same known_at asked again (here one not asked
    // before: now) reads the stream once, whichever node hosts the shop's
    // partition and whichever node is asked.
    let fresh = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%NZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .expect("date");
    assert_ne!(fresh, known_at);
    let query = format!("/shops/S000002/postings?as_of={as_of}&known_at={fresh}");
    let (status, _, expected) =
        http_get_whole(single_port, &query, None).expect("the one-machine server answers");
    let before = replay_counters(cluster);
    let mut after = Vec::new();
    for port in [cluster.http[0], cluster.http[2]] {
        let (got_status, _, got) = http_get_whole(port, &query, None).expect("a node answers");
        assert_eq!(
            (got_status, canonical(&got)),
            (status, canonical(&expected))
        );
        after.push(replay_counters(cluster));
    }
    assert_eq!(
        (after[0].0 - before.0, after[1].0 - after[0].0),
        (1, 0),
        "replays started by the first and the second question ({before:?}, {after:?})"
    );
    assert!(after[0].1 > before.1, "the first question read the stream");
    assert_eq!(after[1].1, after[0].1, "the second question read nothing");
}

/// The `known_at` replay counters summed over every node's `/metrics`:
/// (replays started, messages read).
fn replay_counters(cluster: &Cluster) -> (u64, u64) {
    let mut sums = (0, 0);
    for port in &cluster.http {
        let (status, body) = http_get(*port, "/metrics").expect("/metrics");
        assert_eq!(status, 200, "{body}");
        let value = |name: &str| -> u64 {
            body.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {body}"))
        };
        sums.0 += value("penalty_known_at_replays_total");
        sums.1 += value("penalty_known_at_replayed_messages_total");
    }
    sums
}

/// With `--tokens` on the nodes and the one-machine server: a seller's,
/// the operator's, no and a wrong token's answers through every node in
/// turn equal the one-machine server's (status, content type, body; JSON
/// field for field, CSV byte for byte): a seller sees its shop only, and
/// another shop or its order is an unknown one's 404; lists, exports and
/// the data range are confined to its shop; `POST /events`, `/status` and
/// `/metrics` are the operator's.
fn assert_same_for_tokens(cluster: &Cluster, single_port: u16) {
    let as_of = AS_OF.replace('+', "%2B");
    let order_of = |shop: &str| {
        let (status, body) = http_get(single_port, &format!("/orders?shop={shop}&limit=1"))
            .expect("the one-machine server answers");
        assert_eq!(status, 200, "{body}");
        canonical(&body)["orders"][0]["order_id"]
            .as_str()
            .expect("an order of the shop")
            .to_string()
    };
    let (own_order, other_order) = (order_of(SELLER_SHOP), order_of(OTHER_SHOP));
    let mut paths: Vec<String> = [
        "/shops?as_of={as_of}",
        "/shops?as_of={as_of}&limit=1&sort=charged",
        "/shops/{own}?as_of={as_of}",
        "/shops/{own}?as_of={as_of}&summary=true",
        "/shops/{own}?as_of={as_of}&full=true",
        "/shops/{own}?as_of={as_of}&limit=3",
        "/shops/{other}?as_of={as_of}&full=true",
        "/shops/{other}?as_of={as_of}",
        "/shops/S-NEVER?as_of={as_of}",
        "/shops/{other}?as_of=bad",
        "/shops/{own}/postings?as_of={as_of}&limit=7",
        "/shops/{other}/postings?as_of={as_of}",
        "/shops/{own}/postings.csv?as_of={as_of}",
        "/shops/{other}/postings.csv?as_of={as_of}",
        "/shops/{own}/notices?as_of={as_of}",
        "/shops/{other}/notices?as_of={as_of}",
        "/shops/{own}/at-risk?as_of={as_of}",
        "/shops/{other}/at-risk?as_of={as_of}",
        "/shops/{own}/days?as_of={as_of}",
        "/shops/{other}/days?as_of={as_of}",
        "/shops/{own}/deductions?as_of={as_of}",
        "/shops/{other}/deductions?as_of={as_of}",
        "/shops/{own}/closure-review?as_of={as_of}",
        "/shops/{other}/closure-review?as_of={as_of}",
        "/shops/{own}/bans?as_of={as_of}",
        "/shops/{other}/bans?as_of={as_of}",
        "/orders?as_of={as_of}",
        "/orders?as_of={as_of}&sort=charged&limit=5&offset=2",
        "/orders?as_of={as_of}&shop={own}",
        "/orders?as_of={as_of}&shop={other}",
        "/orders.csv?as_of={as_of}",
        "/orders.csv?as_of={as_of}&shop={other}",
        "/orders/{own_order}?as_of={as_of}",
        "/orders/{other_order}?as_of={as_of}",
        "/orders/O-NEVER?as_of={as_of}",
        "/orders/{own_order}/events?as_of={as_of}",
        "/orders/{other_order}/events?as_of={as_of}",
        "/orders/O-NEVER/events?as_of={as_of}",
        "/data-range",
    ]
    .iter()
    .map(|p| {
        p.replace("{as_of}", &as_of)
            .replace("{own_order}", &own_order)
            .replace("{other_order}", &other_order)
            .replace("{own}", SELLER_SHOP)
            .replace("{other}", OTHER_SHOP)
    })
    .collect();
    paths.sort();
    let mut seen = std::collections::BTreeMap::new();
    for (n, token) in [
        Some(SELLER_TOKEN),
        Some(OPERATOR_TOKEN),
        None,
        Some("wrong"),
    ]
    .into_iter()
    .enumerate()
    {
        for (k, path) in paths.iter().enumerate() {
            let (status, content_type, body) = http_get_whole_as(token, single_port, path, None)
                .expect("the one-machine server answers");
            *seen.entry((token, status)).or_insert(0) += 1;
            let port = cluster.http[(n + k) % 3];
            let (got_status, got_type, got_body) =
                http_get_whole_as(token, port, path, None).expect("a node answers");
            let what = format!("{path} with the token {token:?} on a node");
            assert_eq!(
                got_status, status,
                "{what}: {got_body}\none machine: {body}"
            );
            assert_eq!(got_type, content_type, "{what}");
            if content_type.starts_with("application/json") {
                let (mut got, mut expected) = (canonical(&got_body), canonical(&body));
                if path.contains("/notices") {
                    got = without_recording_instants(got);
                    expected = without_recording_instants(expected);
                }
                if path.contains("/events") {
                    got = without_log_positions(got);
                    expected = without_log_positions(expected);
                }
                assert_eq!(got, expected, "{what}");
            } else {
                assert_eq!(got_body, body, "{what}");
            }
        }
    }
    // The seller read its shop (and only it: the other shop's routes are
    // 404s), everyone else without a valid token got 401s.
    let (seller, operator) = (Some(SELLER_TOKEN), Some(OPERATOR_TOKEN));
    assert!(seen.get(&(seller, 200)) >= Some(&12), "{seen:?}");
    assert!(seen.get(&(seller, 404)) >= Some(&9), "{seen:?}");
    assert!(seen.get(&(operator, 200)) >= Some(&20), "{seen:?}");
    assert_eq!(seen.get(&(None, 401)), Some(&paths.len()), "{seen:?}");
    assert_eq!(seen.get(&(Some("wrong"), 401)), Some(&paths.len()));
    // The seller's lists hold its shop's rows only.
    let (_, _, orders) = http_get_whole_as(seller, cluster.http[0], "/orders?limit=1000", None)
        .expect("a node answers");
    let orders = canonical(&orders);
    let rows = orders["orders"].as_array().expect("rows");
    assert!(!rows.is_empty() && rows.iter().all(|r| r["shop_id"] == SELLER_SHOP));
    // Writes and the node's state are the operator's: POST /events is a
    // 403 for a seller and a 401 without a token, as on one machine.
    for token in [seller, None] {
        for port in [single_port, cluster.http[1]] {
            let (status, body) =
                http_request_as(token, port, "POST", "/events", "").expect("an answer");
            let expected = if token.is_some() { 403 } else { 401 };
            assert_eq!(status, expected, "POST /events with {token:?}: {body}");
        }
        for path in ["/status", "/metrics"] {
            let (status, _) =
                http_request_as(token, cluster.http[2], "GET", path, "").expect("an answer");
            assert!(
                status == 403 || status == 401,
                "{path} with {token:?}: {status}"
            );
        }
    }
}

struct Cluster {
    processes: Processes,
    url: String,
    http: Vec<u16>,
    dir: PathBuf,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let nats_server = nats_server();
        let mut processes = Processes(Vec::new());
        let client: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        // A maximum payload far under NATS's default (1 MiB), so that the
        // partitions' answers to merged routes (shop summaries, order rows,
        // exports) come in several chunks.
        let config = dir.join("nats.conf");
        std::fs::write(&config, format!("max_payload: {MAX_PAYLOAD_BYTES}\n"))
            .expect("the NATS configuration");
        for i in 0..3 {
            let others: Vec<String> = (0..3)
                .filter(|j| *j != i)
                .map(|j| format!("nats://127.0.0.1:{}", routes[j]))
                .collect();
            let child = Command::new(&nats_server)
                .args([
                    "-js",
                    "-n",
                    &format!("s{i}"),
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &client[i].to_string(),
                ])
                .args(["-c", &config.display().to_string()])
                .args(["-sd", &dir.join(format!("js{i}")).display().to_string()])
                .args(["--cluster_name", "penalty-test"])
                .args(["--cluster", &format!("nats://127.0.0.1:{}", routes[i])])
                .args(["--routes", &others.join(",")])
                .stdout(log_file(dir, &format!("nats{i}")))
                .stderr(log_file(dir, &format!("nats{i}.err")))
                .spawn()
                .expect("nats-server starts");
            processes.0.push((format!("nats{i}"), child));
        }
        let url = client
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        // The JetStream meta leader is elected a few seconds after the
        // routes connect: init is retried until it succeeds.
        let partitions = PARTITIONS.to_string();
        wait_until("cluster init", Duration::from_secs(60), || {
            let (code, _, stderr) = penalty(&[
                "cluster",
                "init",
                "--cluster",
                &url,
                "--partitions",
                &partitions,
                "--replicas",
                "3",
            ]);
            if code == 0 {
                Ok(())
            } else {
                Err(stderr)
            }
        });
        let mut cluster = Cluster {
            processes,
            url,
            http: Vec::new(),
            dir: dir.to_path_buf(),
        };
        for i in 0..3 {
            cluster.start_node(i, None);
        }
        cluster.wait_stable();
        cluster
    }

    fn start_node(&mut self, i: usize, port: Option<u16>) {
        self.start_node_with(i, port, &[]);
    }

    /// [`Cluster::start_node`] with more arguments.
    fn start_node_with(&mut self, i: usize, port: Option<u16>, extra: &[&str]) {
        let port = port.unwrap_or_else(free_port);
        let db = self.dir.join(format!("node{i}"));
        let child = Command::new(BIN)
            .args([
                "--db",
                &db.display().to_string(),
                "cluster",
                "node",
                "--cluster",
                &self.url,
            ])
            .args([
                "--node",
                &format!("n{i}"),
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--tokens",
                &tokens_file(&self.dir),
            ])
            .args(extra)
            .stdout(log_file(&self.dir, &format!("node{i}")))
            .stderr(log_file(&self.dir, &format!("node{i}.err")))
            .spawn()
            .expect("a node starts");
        self.processes.0.push((format!("node{i}"), child));
        if self.http.len() <= i {
            self.http.push(port);
        } else {
            self.http[i] = port;
        }
    }

    /// The arguments of `penalty ingest --cluster` of `events` from the
    /// test's client directory, its counts in JSON.
    fn ingest_args(&self, events: &str) -> Vec<String> {
        let client = self.dir.join("client").display().to_string();
        [
            "--db",
            &client,
            "ingest",
            "--cluster",
            &self.url,
            events,
            "--json",
        ]
        .map(str::to_string)
        .to_vec()
    }

    /// That ingest, started and not awaited: its counts on its piped
    /// stdout, its errors in the test's logs.
    fn start_ingest(&self, events: &str) -> Child {
        Command::new(BIN)
            .args(self.ingest_args(events))
            .stdout(Stdio::piped())
            .stderr(log_file(&self.dir, "ingest.err"))
            .spawn()
            .expect("the ingest starts")
    }

    /// Every node sees the three, and every stage partition is hosted by
    /// one of them and caught up.
    fn wait_stable(&self) {
        let stable = try_wait_until(Duration::from_secs(90), || {
            let mut hosted = std::collections::BTreeSet::new();
            for port in &self.http {
                let (status, body) = http_get(*port, "/status")?;
                if status != 200 {
                    return Err(format!("/status: {status}"));
                }
                let value: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                let live = value["live"].as_array().map_or(0, Vec::len);
                if live != 3 {
                    return Err(format!("a node sees {live} live nodes"));
                }
                for h in value["hosted"].as_array().into_iter().flatten() {
                    if h["caught_up"] == Value::Bool(true) {
                        hosted.insert((h["stage"].to_string(), h["partition"].as_u64()));
                    }
                }
            }
            if hosted.len() == 3 * PARTITIONS as usize {
                Ok(())
            } else {
                Err(format!(
                    "{} of {} stage partitions hosted and caught up",
                    hosted.len(),
                    3 * PARTITIONS
                ))
            }
        });
        if let Err(last) = stable {
            panic!(
                "timed out after 90 s waiting for 3 nodes hosting all partitions, caught up; last: {last}; logs:{}",
                error_logs(&self.dir)
            );
        }
    }
}

/// The generated workload, plus lines for the decisions that need both keys
/// of a `paid`, orphans, and lines rejected before publishing.
fn workload(dir: &Path) -> PathBuf {
    let path = dir.join("events.jsonl");
    ok(&[
        "gen",
        "--orders",
        "2000",
        "--shops",
        "24",
        "--seed",
        "22",
        "-o",
        &path.display().to_string(),
    ]);
    let text = std::fs::read_to_string(&path).expect("the workload");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("gen writes JSON"))
        .collect();
    let mut paid = lines.iter().filter(|l| l["type"] == "paid");
    let first = paid.next().expect("a paid").clone();
    let second = paid.next().expect("another paid").clone();
    let id = |n: u32| format!("00000000-0000-4000-8000-{n:012}");
    let mut second_paid_of_first = first.clone();
    second_paid_of_first["event_id"] = id(1).into();
    second_paid_of_first["shop_id"] = second["shop_id"].clone();
    let mut changed_first_line = lines[0].clone();
    changed_first_line["at"] = "2026-01-01T00:00:00Z".into();
    let extra = [
        // A second paid for an order: order_already_paid, twice (its id is
        // not recorded by the first rejection).
        second_paid_of_first.to_string(),
        second_paid_of_first.to_string(),
        // That id is free, so another event may take it: appended.
        serde_json::json!({"event_id": id(1), "type": "shipped", "at": "2026-02-01T00:00:00Z",
            "order_id": second["order_id"], "tracking_no": "XT-1"}).to_string(),
        // Now the rejected paid again meets the id: event_id_conflict.
        second_paid_of_first.to_string(),
        // An id of the log with other content: event_id_conflict.
        changed_first_line.to_string(),
        // An orphan whose paid never comes (R13), and one whose paid comes
        // last.
        serde_json::json!({"event_id": id(2), "type": "shipped", "at": "2026-02-01T00:00:00Z",
            "order_id": "O-ORPHAN", "tracking_no": "XT-2"}).to_string(),
        serde_json::json!({"event_id": id(3), "type": "refunded", "at": "2026-02-03T00:00:00Z",
            "order_id": "O-LATE", "amount_fen": 500}).to_string(),
        serde_json::json!({"event_id": id(4), "type": "paid", "at": "2026-02-01T00:00:00Z",
            "order_id": "O-LATE", "shop_id": first["shop_id"], "product_id": "P-LATE", "amount_fen": 500}).to_string(),
        // Rejected before publishing.
        String::new(),
        "{not json".to_string(),
    ];
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("the workload");
    for line in extra {
        writeln!(file, "{line}").expect("written");
    }
    path
}

/// The workload written into `dir` and ingested by one machine into
/// `dir/single`: the workload's path, the database's, and one machine's
/// counts, which the cluster's must equal.
fn workload_on_one_machine(dir: &Path) -> (String, String, Value) {
    let events = workload(dir).display().to_string();
    let single = dir.join("single").display().to_string();
    let one = canonical(&ok(&["--db", &single, "ingest", &events, "--json"]));
    (events, single, one)
}

fn canonical(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The test's directory; kept (its logs, the nodes' checkpoints, the NATS
/// data) when PENALTY_KEEP_TEST_DIR is set, to read after a failure.
fn test_dir() -> TestDir {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    if std::env::var_os("PENALTY_KEEP_TEST_DIR").is_some() {
        let path = tmp.keep();
        eprintln!("test directory kept: {}", path.display());
        TestDir::Path(path)
    } else {
        TestDir::Temp(tmp)
    }
}

enum TestDir {
    Temp(tempfile::TempDir),
    Path(PathBuf),
}

impl TestDir {
    fn path(&self) -> &Path {
        match self {
            TestDir::Temp(tmp) => tmp.path(),
            TestDir::Path(path) => path,
        }
    }
}

/// One test at a time: each runs six processes on a shared, small machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn cluster_ingest(cluster: &Cluster, events: &str) -> Value {
    let args = cluster.ingest_args(events);
    canonical(&ok(&args.iter().map(String::as_str).collect::<Vec<_>>()))
}

/// Every shop, and some orders (the late one, the orphan, an unknown one
/// among them), asked through every node in turn (most answers are
/// forwarded to the owner), equal one machine's answers.
fn assert_same_answers(cluster: &Cluster, single: &str, events: &str) {
    let shops: Vec<String> = ok(&["--db", single, "shops", "--as-of", AS_OF, "--json"])
        .lines()
        .map(|l| {
            canonical(l)["shop_id"]
                .as_str()
                .expect("a shop id")
                .to_string()
        })
        .collect();
    assert!(shops.len() >= 20, "shops: {shops:?}");
    let as_of = AS_OF.replace('+', "%2B");
    for (n, shop) in shops.iter().enumerate() {
        let expected = canonical(&ok(&[
            "--db", single, "shop", shop, "--as-of", AS_OF, "--json",
        ]));
        let port = cluster.http[n % 3];
        wait_until(
            &format!("shop {shop} as one machine"),
            Duration::from_secs(60),
            || {
                let (status, body) =
                    http_get(port, &format!("/shops/{shop}?as_of={as_of}&full=true"))?;
                let got = serde_json::from_str::<Value>(&body).map_err(|e| e.to_string())?;
                if status == 200 && got == expected {
                    Ok(())
                } else {
                    Err(format!("{status}: {body}\nexpected {expected}"))
                }
            },
        );
    }
    let text = std::fs::read_to_string(events).expect("the workload");
    let mut orders: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["type"] == "paid")
        .step_by(97)
        .map(|l| l["order_id"].as_str().unwrap_or_default().to_string())
        .collect();
    orders.extend(["O-LATE", "O-ORPHAN", "O-NEVER"].map(String::from));
    for (n, order) in orders.iter().enumerate() {
        let (code, stdout, stderr) =
            penalty(&["--db", single, "order", order, "--as-of", AS_OF, "--json"]);
        let port = cluster.http[n % 3];
        wait_until(
            &format!("order {order} as one machine"),
            Duration::from_secs(60),
            || {
                let (status, body) = http_get(port, &format!("/orders/{order}?as_of={as_of}"))?;
                let got = serde_json::from_str::<Value>(&body).map_err(|e| e.to_string())?;
                let same = match code {
                    0 => status == 200 && got == canonical(&stdout),
                    3 => status == 404 && stderr.contains(got["message"].as_str().unwrap_or("?")),
                    _ => false,
                };
                if same {
                    Ok(())
                } else {
                    Err(format!(
                        "{status}: {body}; one machine: {code} {stdout}{stderr}"
                    ))
                }
            },
        );
    }
}

#[test]
fn three_nodes_over_three_nats_servers_answer_as_one_machine() {
    let _serial = serial();
    let started = Instant::now();
    let tmp = test_dir();
    let dir = tmp.path();
    let events = workload(dir).display().to_string();
    let single = dir.join("single").display().to_string();

    let cluster = Cluster::start(dir);
    eprintln!("cluster up in {:?}", started.elapsed());

    let single_started = Instant::now();
    let one = canonical(&ok(&["--db", &single, "ingest", &events, "--json"]));
    eprintln!(
        "one machine's ingest of {} lines in {:?}",
        one["read"],
        single_started.elapsed()
    );
    let ingest_started = Instant::now();
    let many = cluster_ingest(&cluster, &events);
    eprintln!(
        "cluster ingest of {} lines in {:?}",
        one["read"],
        ingest_started.elapsed()
    );
    assert_eq!(many, one, "the cluster's counts differ from one machine's");
    assert!(
        one["rejected"].as_u64() >= Some(6),
        "the workload has its rejects: {one}"
    );
    assert!(
        one["duplicates"].as_u64() > Some(0),
        "the workload has duplicates: {one}"
    );

    assert_same_answers(&cluster, &single, &events);

    // Re-sending the whole input appends nothing, and counts as one machine.
    let one_again = canonical(&ok(&["--db", &single, "ingest", &events, "--json"]));
    let many_again = cluster_ingest(&cluster, &events);
    assert_eq!(one_again["appended"], 0);
    assert_eq!(
        many_again, one_again,
        "re-sent, the cluster's counts differ from one machine's"
    );

    // An instant after both ledgers recorded the workload and before the
    // second body: `known_at` of it must answer without the second body.
    std::thread::sleep(Duration::from_millis(100));
    let known_at = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%NZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .expect("date");
    std::thread::sleep(Duration::from_millis(100));

    // POST /events on a node answers as the one-machine server's POST
    // /events, field for field (counts and listed rejects), and the merged
    // GET /shops pages equal the one-machine server's.
    let mut cluster = cluster;
    let single_port = start_single_server(&mut cluster.processes, dir, &single);
    let body = second_body(dir, &events);
    let (status, expected) =
        http_request(single_port, "POST", "/events", &body).expect("the one-machine POST");
    assert_eq!(status, 200, "{expected}");
    let expected = canonical(&expected);
    let posted = Instant::now();
    let (status, got) =
        http_request(cluster.http[1], "POST", "/events", &body).expect("a node's POST");
    eprintln!(
        "POST /events of {} lines on a node in {:?}",
        expected["read"],
        posted.elapsed()
    );
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        canonical(&got),
        expected,
        "POST /events on a node differs from one machine's"
    );
    assert!(
        expected["duplicates"].as_u64() >= Some(5) && expected["rejected"].as_u64() >= Some(3),
        "the second body has duplicates and rejects: {expected}"
    );
    let (status, again) =
        http_request(cluster.http[2], "POST", "/events", &body).expect("a node's POST");
    assert_eq!(status, 200, "{again}");
    assert_eq!(canonical(&again)["appended"], 0, "re-posted: {again}");
    assert_same_shop_pages(&cluster, single_port);
    assert_same_routes(&cluster, single_port);
    assert_same_known_at(&cluster, single_port, &known_at);
    assert_same_for_tokens(&cluster, single_port);

    // Once all is applied and checkpointed, every node's /metrics shows a
    // lag of 0 for each stage partition it owns (all 3 × P between them),
    // and `penalty cluster status` the same.
    wait_until(
        "lag 0 in every node's /metrics",
        Duration::from_secs(60),
        || {
            let mut gauges = 0;
            for port in &cluster.http {
                let (status, body) = http_get(*port, "/metrics")?;
                if status != 200 {
                    return Err(format!("/metrics: {status}"));
                }
                for line in body
                    .lines()
                    .filter(|l| l.starts_with("penalty_partition_lag{"))
                {
                    gauges += 1;
                    if !line.ends_with(" 0") {
                        return Err(line.to_string());
                    }
                }
            }
            if gauges == 3 * PARTITIONS {
                Ok(())
            } else {
                Err(format!("{gauges} lag gauges"))
            }
        },
    );
    let table = ok(&["cluster", "status", "--cluster", &cluster.url]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3 * PARTITIONS as usize, "{table}");
    assert!(
        rows.iter()
            .all(|r| r.len() == 8 && r[6] == "0" && r[7].ends_with('s')),
        "every partition owned, lag 0, a checkpoint age: {table}"
    );
    eprintln!("whole test in {:?}", started.elapsed());
}

#[test]
fn a_killed_node_a_killed_nats_server_and_an_emptied_node_lose_and_double_nothing() {
    let _serial = serial();
    let started = Instant::now();
    let tmp = test_dir();
    let dir = tmp.path();
    let (events, single, one) = workload_on_one_machine(dir);

    let mut cluster = Cluster::start(dir);
    let mut ingest = cluster.start_ingest(&events);

    // Once the shops stage has applied something, the ingest is under way:
    // SIGKILL node 1, then NATS server 2.
    wait_until("the ingest under way", Duration::from_secs(60), || {
        let (_, body) = http_get(cluster.http[0], "/status")?;
        let value: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let applied: u64 = value["hosted"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| h["stage"] == "shops")
            .filter_map(|h| h["applied_seq"].as_u64())
            .sum();
        if applied > 0 {
            Ok(())
        } else {
            Err("nothing applied yet".into())
        }
    });
    let kill = |processes: &mut Processes, name: &str| {
        let (_, child) = processes
            .0
            .iter_mut()
            .find(|(n, _)| n == name)
            .expect("a process of that name");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    };
    assert!(
        matches!(ingest.try_wait(), Ok(None)),
        "the ingest ended before the faults: this test would prove nothing (give it more lines)"
    );
    kill(&mut cluster.processes, "node1");
    kill(&mut cluster.processes, "nats2");
    // The killed node comes back from an empty disk, under its name: it
    // rebuilds its partitions from the streams.
    std::fs::remove_dir_all(dir.join("node1")).expect("node 1's directory removed");
    let port = cluster.http[1];
    cluster.start_node(1, Some(port));

    wait_until(
        "the ingest to finish",
        Duration::from_secs(180),
        || match ingest.try_wait() {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err("still running".into()),
            Err(e) => Err(e.to_string()),
        },
    );
    let mut stdout = String::new();
    ingest
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut stdout)
        .expect("read");
    let status = ingest.wait().expect("reaped");
    let stderr = std::fs::read_to_string(dir.join("ingest.err.log")).unwrap_or_default();
    assert!(
        status.success(),
        "the ingest failed across the faults: {stderr}"
    );
    assert_eq!(
        canonical(&stdout),
        one,
        "across the faults, the cluster's counts differ from one machine's"
    );

    cluster.wait_stable();
    assert_same_answers(&cluster, &single, &events);
    let many_again = cluster_ingest(&cluster, &events);
    assert_eq!(
        many_again["appended"], 0,
        "re-sent after the faults, lines were appended again: {many_again}"
    );
    eprintln!("whole test in {:?}", started.elapsed());
}

/// The lag gauges of a node's `/metrics`: (labels, value).
fn lag_gauges(port: u16) -> Result<Vec<(String, u64)>, String> {
    let (status, body) = http_get(port, "/metrics")?;
    if status != 200 {
        return Err(format!("/metrics: {status}"));
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("penalty_partition_lag"))
        .map(|l| {
            let (labels, value) = l.rsplit_once(' ').ok_or(l.to_string())?;
            let value = value.parse().map_err(|_| l.to_string())?;
            Ok((labels.to_string(), value))
        })
        .collect()
}

/// A node whose checkpoints cannot be written (each one's path taken by a
/// directory) checkpoints nothing: its workers fail at their first
/// checkpoint and cannot reload one, so lines published meanwhile show as
/// a positive lag in its `/metrics` (what a restart would replay). Once
/// the paths are free again the node rebuilds those partitions from the
/// streams, the lag returns to 0 on every node, and the ingest ends with
/// one machine's counts.
#[test]
fn a_stalled_node_shows_its_lag_in_metrics_until_it_catches_up() {
    let _serial = serial();
    let started = Instant::now();
    let tmp = test_dir();
    let dir = tmp.path();
    let gen = |seed: &str| {
        let path = dir.join(format!("events-{seed}.jsonl"));
        ok(&[
            "gen",
            "--orders",
            "300",
            "--shops",
            "24",
            "--seed",
            seed,
            "-o",
            &path.display().to_string(),
        ]);
        path.display().to_string()
    };
    let (first, second) = (gen("5"), gen("6"));
    let single = dir.join("single").display().to_string();
    ok(&["--db", &single, "ingest", &first]);
    let one = canonical(&ok(&["--db", &single, "ingest", &second, "--json"]));

    let cluster = Cluster::start(dir);
    cluster_ingest(&cluster, &first);
    // Every checkpoint of node 0 is written (its partitions of the first
    // input applied), then its path is taken by a directory.
    let db0 = dir.join("node0");
    let stalled = wait_until("node 0's checkpoints", Duration::from_secs(60), || {
        let names: Vec<PathBuf> = std::fs::read_dir(&db0)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "ckpt"))
            .collect();
        let lags = lag_gauges(cluster.http[0])?;
        if !names.is_empty() && !lags.is_empty() && lags.iter().all(|(_, lag)| *lag == 0) {
            Ok(names)
        } else {
            Err(format!("{} checkpoints, lags {lags:?}", names.len()))
        }
    });
    for path in &stalled {
        std::fs::remove_file(path).expect("a checkpoint removed");
        std::fs::create_dir_all(path.join("taken")).expect("its path taken");
    }
    // In a guard of its own: killed if the test fails while it waits.
    let mut running = Processes(vec![("ingest".into(), cluster.start_ingest(&second))]);
    let ingest = &mut running.0[0].1;
    let behind = wait_until("a positive lag on node 0", Duration::from_secs(60), || {
        let lags = lag_gauges(cluster.http[0])?;
        let behind: Vec<_> = lags.into_iter().filter(|(_, lag)| *lag > 0).collect();
        if behind.is_empty() {
            Err("no lag yet".into())
        } else {
            Ok(behind)
        }
    });
    eprintln!("node 0 behind: {behind:?}");
    for path in &stalled {
        std::fs::remove_dir_all(path).expect("the path freed");
    }
    wait_until("lag 0 on every node", Duration::from_secs(120), || {
        for port in &cluster.http {
            let lags = lag_gauges(*port)?;
            if lags.is_empty() {
                return Err(format!("no lag gauges on port {port}"));
            }
            if let Some(behind) = lags.iter().find(|(_, lag)| *lag > 0) {
                return Err(format!("{behind:?}"));
            }
        }
        Ok(())
    });
    let status = ingest.wait().expect("the ingest ends");
    let mut stdout = String::new();
    ingest
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut stdout)
        .expect("read");
    let stderr = std::fs::read_to_string(dir.join("ingest.err.log")).unwrap_or_default();
    assert!(status.success(), "the ingest failed: {stderr}");
    assert_eq!(
        canonical(&stdout),
        one,
        "after the stall, the cluster's counts differ from one machine's"
    );
    eprintln!("whole test in {:?}", started.elapsed());
}

/// A node without `--tokens` listens on loopback only, as `penalty serve`;
/// a bad tokens file is refused as `penalty serve` refuses it. Both before
/// the node reaches for NATS (none listens on the given port).
#[test]
fn a_node_off_loopback_needs_tokens_as_one_machine() {
    let tmp = test_dir();
    let db = tmp.path().join("node").display().to_string();
    let nats = format!("nats://127.0.0.1:{}", free_port());
    let node = |extra: &[&str]| {
        let mut args = vec!["--db", &db, "cluster", "node", "--cluster", &nats];
        args.extend(["--node", "n1"]);
        args.extend(extra);
        penalty(&args)
    };
    let serve = |extra: &[&str]| {
        let mut args = vec!["--db", &db, "serve"];
        args.extend(extra);
        penalty(&args)
    };
    let open = ["--addr", "0.0.0.0:0"];
    let (code, _, stderr) = node(&open);
    let (serve_code, _, serve_stderr) = serve(&open);
    assert_ne!(code, 0);
    assert_eq!(code, serve_code, "{stderr}\n{serve_stderr}");
    assert!(stderr.contains("pass --tokens FILE"), "{stderr}");
    let bad = tmp.path().join("bad-tokens.json");
    std::fs::write(&bad, "[]").expect("a tokens file");
    let with_bad = [
        "--addr",
        "0.0.0.0:0",
        "--tokens",
        &bad.display().to_string(),
    ];
    let (code, _, stderr) = node(&with_bad);
    assert_ne!(code, 0);
    assert!(stderr.contains("lists no token"), "{stderr}");
}

/// SIGTERM to a node while a `POST /events` is in flight (its head read,
/// half its body sent): the node accepts no new connection, the request
/// finishes with one machine's counts, the node exits 0 within its graces
/// (10 s for requests, 5 s for the workers) and tells the others it
/// leaves, so they take its partitions within seconds rather than after
/// the heartbeat's 6 s. Restarted on its directory, it rejoins and every
/// answer is one machine's: nothing lost, nothing applied twice.
#[test]
fn a_node_stopped_by_sigterm_finishes_its_request_in_flight_and_exits_0() {
    let _serial = serial();
    let started = Instant::now();
    let tmp = test_dir();
    let dir = tmp.path();
    let (events, single, one) = workload_on_one_machine(dir);
    let mut cluster = Cluster::start(dir);

    let body = std::fs::read_to_string(&events).expect("the workload");
    let port = cluster.http[1];
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("node 1 listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("a timeout");
    let half = body.len() / 2;
    write!(
        stream,
        "POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{}\
         Content-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        bearer(Some(OPERATOR_TOKEN)),
        body.len()
    )
    .expect("the head sent");
    stream
        .write_all(&body.as_bytes()[..half])
        .expect("half the body sent");
    stream.flush().expect("sent");
    // The head is read at once: the request is in flight from then on.
    std::thread::sleep(Duration::from_millis(500));
    let pid = cluster
        .processes
        .0
        .iter()
        .find(|(name, _)| name == "node1")
        .map(|(_, child)| child.id())
        .expect("node 1");
    let signalled = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    wait_until(
        "node 1 to refuse new connections",
        Duration::from_secs(5),
        || match TcpStream::connect(("127.0.0.1", port)) {
            Err(_) => Ok(()),
            Ok(_) => Err("a new connection was accepted".to_string()),
        },
    );
    stream
        .write_all(&body.as_bytes()[half..])
        .expect("the rest of the body sent to the stopping node");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("the answer of the request in flight");
    let (head, answer) = response.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{response}");
    let answer = canonical(answer);
    for count in ["read", "appended", "duplicates", "rejected"] {
        assert_eq!(answer[count], one[count], "{count}: {answer} / {one}");
    }

    let (_, child) = cluster
        .processes
        .0
        .iter_mut()
        .find(|(name, _)| name == "node1")
        .expect("node 1");
    let status = wait_until("node 1 to exit", Duration::from_secs(30), || {
        match child.try_wait() {
            Ok(Some(status)) => Ok(status),
            Ok(None) => Err("still running".into()),
            Err(e) => Err(e.to_string()),
        }
    });
    let stopped_in = signalled.elapsed();
    eprintln!("node 1 stopped {stopped_in:?} after SIGTERM");
    assert!(
        status.success(),
        "node 1 exited with {status:?}; logs:{}",
        error_logs(dir)
    );
    assert!(
        stopped_in < Duration::from_secs(20),
        "node 1 took {stopped_in:?} to stop"
    );
    // Its last heartbeat said it leaves: the others stop counting it at
    // once, not after the heartbeat's time to live.
    let left = Instant::now();
    wait_until("node 0 to see node 1 leave", Duration::from_secs(4), || {
        let (_, body) = http_get(cluster.http[0], "/status")?;
        let value: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        match value["live"].as_array().map(Vec::len) {
            Some(2) => Ok(()),
            other => Err(format!("{other:?} live nodes")),
        }
    });
    eprintln!(
        "node 0 saw node 1 leave {:?} after it exited",
        left.elapsed()
    );
    cluster.processes.0.retain(|(name, _)| name != "node1");
    // Back with a tiny replay budget: its partitions refuse known_at at
    // once, saying why and what to do.
    cluster.start_node_with(1, Some(port), &["--max-replay-events", "10"]);
    cluster.wait_stable();
    assert_same_answers(&cluster, &single, &events);
    let again = cluster_ingest(&cluster, &events);
    assert_eq!(again["appended"], 0, "re-sent: {again}");
    let asked = Instant::now();
    let query = format!("/shops?known_at={}", AS_OF.replace('+', "%2B"));
    let (status, body) = http_get(cluster.http[0], &query).expect("node 0 answers");
    assert_eq!(status, 400, "{body}");
    let refusal = canonical(&body);
    assert_eq!(refusal["error"], "known_at_too_large", "{body}");
    let message = refusal["message"].as_str().expect("a message");
    assert!(
        message.contains("limit of 10 events") && message.contains("--max-replay-events"),
        "{message}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "refused in {:?}",
        asked.elapsed()
    );
    eprintln!("whole test in {:?}", started.elapsed());
}

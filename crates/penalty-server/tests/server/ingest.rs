//! `POST /events`: the CLI's counts and rejects, idempotence, durability,
//! limits, readers during an ingest, and uploads cut off mid-way.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode};
use penalty_server::{AppState, Config, Limits};
use serde_json::Value;

use super::support::*;

async fn post(router: &axum::Router, body: impl Into<Body>) -> (StatusCode, Value) {
    let (status, _, bytes) = call(router, Method::POST, "/events", None, body).await;
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn generated(orders: u64, shops: u64, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    penalty_gen::generate(
        &penalty_gen::GenOptions {
            orders,
            shops,
            seed,
        },
        &mut out,
    )
    .unwrap();
    out
}

#[tokio::test]
async fn counts_equal_the_cli_and_resending_is_safe() {
    let (dir, state) = open_state(None, Limits::default());
    let router = penalty_server::router(state.clone());
    // A generated workload has duplicates and order_already_paid rejects.
    let events = generated(3000, 20, 7);
    let reference = reference(events.clone());
    let (status, first) = post(&router, events.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let expected = reference.counts;
    assert_eq!(first["read"], expected.read);
    assert_eq!(first["appended"], expected.appended);
    assert_eq!(first["duplicates"], expected.duplicates);
    assert_eq!(first["rejected"], expected.rejected);
    assert_eq!(
        first["rejects"].as_array().unwrap().len() as u64,
        expected.rejected
    );
    // The reports agree with the CLI's way of folding the same input.
    let as_of = "2030-01-01";
    let instant = penalty_core::UnixNs::parse_rfc3339("2030-01-01T00:00:00+08:00").unwrap();
    let (_, shops) = get_json(&router, &format!("/shops?as_of={as_of}&limit=1000"), None).await;
    assert_eq!(
        shops["shops"],
        listed_shops(&reference.projection.ledger.shop_summaries(instant))
    );

    // Again: nothing new.
    let (_, second) = post(&router, events.clone()).await;
    assert_eq!(second["appended"], 0);
    assert_eq!(
        second["duplicates"].as_u64().unwrap() + second["rejected"].as_u64().unwrap(),
        expected.read
    );

    // Durable: a new server on the same directory has everything.
    drop(router);
    drop(state);
    let state = AppState::open(Config {
        db: dir.path().join("db"),
        policy: penalty_core::Policy::default(),
        tokens: None,
        limits: Limits::default(),
    })
    .unwrap();
    let router = penalty_server::router(state);
    let (_, reopened) = get_json(&router, &format!("/shops?as_of={as_of}"), None).await;
    assert_eq!(reopened, shops);
    let (_, health) = get_json(&router, "/healthz", None).await;
    assert_eq!(health["seq"], expected.appended);
}

#[tokio::test]
async fn rejects_are_listed_with_their_line_numbers_and_filed() {
    // Small chunks, so that line numbers must carry across them.
    let limits = Limits {
        ingest_chunk_lines: 2,
        max_rejects_listed: 3,
        ..Limits::default()
    };
    let (dir, state) = open_state(None, limits);
    let router = penalty_server::router(state);
    let demo = String::from_utf8(demo_events()).unwrap();
    let good: Vec<&str> = demo.lines().take(3).collect();
    let body = format!(
        "{}\n{{oops\n{}\n\n{}\n{{\"event_id\":\"x\"}}\n[1]\n",
        good[0], good[1], good[2]
    );
    let (status, summary) = post(&router, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(summary["read"], 7);
    assert_eq!(summary["appended"], 3);
    assert_eq!(summary["rejected"], 4);
    let rejects = summary["rejects"].as_array().unwrap();
    assert_eq!(rejects.len(), 3, "capped at max_rejects_listed");
    assert_eq!(summary["rejects_truncated"], true);
    assert_eq!(rejects[0]["line"], 2);
    assert_eq!(rejects[0]["reason"], "invalid_json");
    assert_eq!(rejects[1]["line"], 4);
    assert_eq!(rejects[2]["line"], 6);
    assert!(rejects[2]["reason"].as_str().unwrap().contains("event_id"));
    assert!(!rejects[0]["hint"].as_str().unwrap().is_empty());
    // All four are in the rejects file, with the body's line numbers.
    let filed = std::fs::read_to_string(dir.path().join("db/rejects.jsonl")).unwrap();
    let lines: Vec<Value> = filed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let numbers: Vec<u64> = lines.iter().map(|l| l["line"].as_u64().unwrap()).collect();
    assert_eq!(numbers, vec![2, 4, 6, 7]);
    assert_eq!(lines[0]["raw"], "{oops");

    // An empty body reads nothing.
    let (status, summary) = post(&router, Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(summary["read"], 0);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_ingests_nothing() {
    let limits = Limits {
        max_body_bytes: 1000,
        ..Limits::default()
    };
    let (_dir, state) = open_state(None, limits);
    let router = penalty_server::router(state);
    let message = expect_error(
        &router,
        Method::POST,
        "/events",
        None,
        Body::from(demo_events()),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    assert!(message.contains("1000 bytes"), "{message}");
    let (_, health) = get_json(&router, "/healthz", None).await;
    assert_eq!(health["seq"], 0);
    // A declared Content-Length over the limit is refused before reading.
    use tower::ServiceExt;
    let request = axum::http::Request::post("/events")
        .header("content-length", "5000")
        .header("content-type", "application/x-ndjson")
        .body(Body::from(vec![b'x'; 5000]))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_are_served_while_an_ingest_runs() {
    let (_dir, state) = open_state(None, Limits::default());
    let router = penalty_server::router(state.clone());
    post(&router, demo_events()).await;
    let big = Bytes::from(generated(40_000, 50, 3));
    let ingest = tokio::spawn({
        let state = state.clone();
        async move { state.ingest(big).await.unwrap() }
    });
    let mut served_during = 0;
    let mut seqs = Vec::new();
    while !ingest.is_finished() {
        let (status, _) = get_json(&router, &format!("/shops/S01?as_of={AS_OF}"), None).await;
        assert_eq!(status, StatusCode::OK);
        let (_, health) = get_json(&router, "/healthz", None).await;
        seqs.push(health["seq"].as_u64().unwrap());
        served_during += 1;
    }
    let summary = ingest.await.unwrap();
    assert!(summary.appended > 30_000);
    assert!(
        served_during >= 5,
        "only {served_during} reads during the ingest"
    );
    // Readers saw the ingest progress block by block, never backwards.
    assert!(seqs.windows(2).all(|w| w[0] <= w[1]));
    let distinct: std::collections::BTreeSet<_> = seqs.iter().collect();
    assert!(
        distinct.len() >= 2,
        "readers saw intermediate states: {distinct:?}"
    );
}

/// Starts an upload with a Content-Length, sends part of the body, and
/// drops the connection.
fn cut_off_upload(addr: std::net::SocketAddr, body: &[u8], sent: usize) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..sent]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(stream);
}

#[test]
fn a_client_that_disconnects_mid_upload_loses_nothing_acknowledged() {
    let server = LiveServer::start(None);
    let demo = demo_events();
    let text = String::from_utf8(demo.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let split = 300;
    let first: String = lines[..split].iter().map(|l| format!("{l}\n")).collect();
    let rest: String = lines[split..].iter().map(|l| format!("{l}\n")).collect();

    // The first part is acknowledged.
    let (status, body) = http(server.addr, "POST", "/events", None, first.as_bytes());
    assert_eq!(status, 200);
    let summary: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(summary["appended"], split);

    // The rest is cut off half-way: the body is received whole before any of
    // it is ingested, so none of it is.
    cut_off_upload(server.addr, rest.as_bytes(), rest.len() / 2);
    std::thread::sleep(Duration::from_millis(200));
    let (status, body) = http(server.addr, "GET", "/healthz", None, b"");
    assert_eq!(status, 200);
    let health: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        health["seq"], split,
        "what was acknowledged stays, nothing else"
    );
    let (status, _) = http(
        server.addr,
        "GET",
        &format!("/shops/S01?as_of={AS_OF}"),
        None,
        b"",
    );
    assert_eq!(status, 200);

    // Re-sending the whole file completes it: every line is appended or a
    // duplicate, and the reports equal those of a single clean ingest.
    let (status, body) = http(server.addr, "POST", "/events", None, &demo);
    assert_eq!(status, 200);
    let summary: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(summary["read"], lines.len());
    assert_eq!(summary["duplicates"], split);
    assert_eq!(
        summary["appended"].as_u64().unwrap() + summary["duplicates"].as_u64().unwrap(),
        lines.len() as u64
    );
    let reference = reference(demo);
    let (_, body) = http(
        server.addr,
        "GET",
        &format!("/shops?as_of={AS_OF}"),
        None,
        b"",
    );
    let shops: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        shops["shops"],
        listed_shops(&reference.projection.ledger.shop_summaries(as_of_instant()))
    );
    // And a cut-off upload of the headers alone does not wedge the server.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Le")
        .unwrap();
    drop(stream);
    let (status, _) = http(server.addr, "GET", "/healthz", None, b"");
    assert_eq!(status, 200);
    drop(server);
}

/// Paging through a past view asks for the same `known_at` again and again:
/// the replay is kept while the log does not grow, and an append makes the
/// next question replay again, so an answer is never stale.
#[tokio::test]
async fn a_known_at_replay_is_reused_until_the_log_grows() {
    use std::sync::atomic::Ordering;
    let (_dir, state) = open_state(None, Limits::default());
    let router = penalty_server::router(state.clone());
    let events = generated(400, 6, 3);
    let half = events
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .map(|(i, _)| i + 1)
        .nth(300)
        .unwrap();
    assert_eq!(
        post(&router, events[..half].to_vec()).await.0,
        StatusCode::OK
    );
    let replays = || {
        let metrics = state.metrics();
        (
            metrics.known_at_replays.load(Ordering::Relaxed),
            metrics.known_at_replays_reused.load(Ordering::Relaxed),
        )
    };
    let shops = "/shops?as_of=2026-04-01&known_at=2100-01-01";
    let (status, first) = get_json(&router, shops, None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, again) = get_json(&router, shops, None).await;
    assert_eq!(first, again);
    assert_eq!(replays(), (1, 1));
    // Another instant is another replay, and is then the one kept.
    get_json(&router, "/shops?as_of=2026-04-01&known_at=2000-01-01", None).await;
    assert_eq!(replays(), (2, 1));

    assert_eq!(
        post(&router, events[half..].to_vec()).await.0,
        StatusCode::OK
    );
    let (_, grown) = get_json(&router, shops, None).await;
    let (_, live) = get_json(&router, "/shops?as_of=2026-04-01", None).await;
    assert_eq!(grown, live, "the answer includes what was appended since");
    assert_ne!(grown, first);
    assert_eq!(replays(), (3, 1));
    get_json(&router, shops, None).await;
    assert_eq!(replays(), (3, 2));
}

/// The last sequence number a snapshot file (`projection.snap` or
/// `projection.parts`, both keep it at bytes 8..16) reflects; 0 when there
/// is none yet.
fn snapshot_end_seq(path: &std::path::Path) -> u64 {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| {
            bytes
                .get(8..16)
                .map(|b| u64::from_be_bytes(b.try_into().unwrap()))
        })
        .unwrap_or(0)
}

/// An upload that leaves 10,000 events or more unsaved gets its answer
/// while the checkpoint is written on a thread of its own: both snapshot
/// files then reach the upload's last event, and a reader's part comes
/// from them with nothing to fold. The checkpoint at shutdown waits for
/// the one in flight and ends at the log's end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_after_an_upload_is_written_off_its_answer() {
    use penalty_store::projection::{self, Origin, PartQuery};
    let (dir, state) = open_state(None, Limits::default());
    let router = penalty_server::router(state.clone());
    let (status, first) = post(&router, generated(6000, 20, 11)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let appended = first["appended"].as_u64().unwrap();
    assert!(appended >= penalty_store::projection::CHECKPOINT_TAIL_EVENTS);
    let db = dir.path().join("db");
    let started = std::time::Instant::now();
    while snapshot_end_seq(&db.join("projection.parts")) != appended
        || snapshot_end_seq(&db.join("projection.snap")) != appended
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint at {appended} after the upload"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reader = penalty_store::reader::LogReader::open(&db).unwrap();
    let opened = projection::open_part(
        &reader,
        &penalty_core::Policy::default(),
        PartQuery::Shop("S000001"),
    )
    .unwrap()
    .expect("a partitioned snapshot");
    assert_eq!(
        opened.origin,
        Origin::Checkpoint {
            seq: appended,
            tail: 0
        }
    );
    // Another upload starts a checkpoint of its own; the one at shutdown
    // waits for it and reflects everything.
    let (status, second) = post(&router, generated(6000, 20, 12)).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let (_, health) = get_json(&router, "/healthz", None).await;
    let last = health["seq"].as_u64().unwrap();
    assert!(last > appended);
    let saving = state.clone();
    tokio::task::spawn_blocking(move || saving.save_checkpoint_blocking())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snapshot_end_seq(&db.join("projection.parts")), last);
    assert_eq!(snapshot_end_seq(&db.join("projection.snap")), last);
}

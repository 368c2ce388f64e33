//! The attacker's tests of issue 20: cross-site writes and DNS rebinding,
//! connections that send nothing or too little, slow and refused uploads,
//! what a seller may learn of other shops' orders, and `known_at` replays
//! asked for in bulk.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use penalty_server::{AppState, Limits, ServeConfig, Tokens};
use serde_json::Value;
use tempfile::TempDir;

use super::support::*;

// ---------------------------------------------------------------------------
// Helpers

/// A server on a loopback socket with the given limits and connection
/// settings, whose shutdown can be timed.
struct Live {
    addr: SocketAddr,
    state: AppState,
    _dir: TempDir,
    runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl Live {
    fn start(tokens: Option<Tokens>, limits: Limits, config: ServeConfig) -> Live {
        let (dir, state) = open_state(tokens, limits);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = state.clone();
        let done = runtime.spawn(async move {
            penalty_server::serve_with(listener, serving, config, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Live {
            addr,
            state,
            _dir: dir,
            runtime,
            stop: Some(stop),
            done: Some(done),
        }
    }

    fn ingest(&self, body: Vec<u8>) {
        let summary = self
            .runtime
            .block_on(self.state.ingest(Bytes::from(body)))
            .unwrap();
        assert_eq!(summary.rejected, 0);
    }

    /// Signals the shutdown and returns how long the server took to stop.
    fn stop(&mut self) -> Duration {
        let started = Instant::now();
        let _ = self.stop.take().unwrap().send(());
        let done = self.done.take().unwrap();
        self.runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(20), done).await })
            .expect("the server stops within 20 s")
            .unwrap();
        started.elapsed()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn quick_config() -> ServeConfig {
    ServeConfig {
        header_read_timeout: Duration::from_secs(1),
        ..ServeConfig::default()
    }
}

/// True when the server closed the connection (EOF or reset) within `wait`.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

async fn health_seq(router: &axum::Router) -> u64 {
    let (_, value) = get_json(router, "/healthz", None).await;
    value["seq"].as_u64().unwrap()
}

async fn post_with(router: &axum::Router, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    use tower::ServiceExt;
    let mut request = Request::builder().method(Method::POST).uri("/events");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(demo_events())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

// ---------------------------------------------------------------------------
// 1. Cross-site writes and DNS rebinding

#[tokio::test]
async fn cross_site_and_simple_content_type_posts_append_nothing() {
    let (_dir, state) = open_state(None, Limits::default());
    let router = penalty_server::router(state);
    let ndjson = ("content-type", "application/x-ndjson");
    for (headers, status, code) in [
        (
            vec![ndjson, ("origin", "http://evil.example")],
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            vec![ndjson, ("origin", "null"), ("host", "127.0.0.1:8080")],
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            vec![ndjson, ("sec-fetch-site", "cross-site")],
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            vec![ndjson, ("sec-fetch-site", "same-site")],
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            vec![("content-type", "text/plain")],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            vec![("content-type", "application/x-www-form-urlencoded")],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            vec![],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ] {
        let (got, body) = post_with(&router, &headers).await;
        assert_eq!(got, status, "{headers:?}: {body}");
        assert_eq!(body["error"], code, "{headers:?}");
        assert_eq!(health_seq(&router).await, 0, "{headers:?} appended nothing");
    }
    // The same origin, a script (no Origin), JSON: accepted.
    let (got, body) = post_with(
        &router,
        &[
            ("content-type", "application/x-ndjson; charset=utf-8"),
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ],
    )
    .await;
    assert_eq!(got, StatusCode::OK, "{body}");
    let (got, body) = post_with(&router, &[("content-type", "application/json")]).await;
    assert_eq!(got, StatusCode::OK, "{body}");
    assert_eq!(body["duplicates"], body["read"]);
}

#[test]
fn only_the_bound_address_and_allowed_hosts_are_served() {
    let server = Live::start(
        None,
        Limits::default(),
        ServeConfig {
            allowed_hosts: vec!["ledger.localhost".into()],
            ..ServeConfig::default()
        },
    );
    let addr = server.addr;
    let port = addr.port();
    for (host, status) in [
        (format!("127.0.0.1:{port}"), 200),
        (format!("localhost:{port}"), 200),
        (format!("ledger.localhost:{port}"), 200),
        (format!("evil.example:{port}"), 421),
        ("evil.example".to_string(), 421),
        (format!("127.0.0.2:{port}"), 421),
    ] {
        let (got, body) = raw_request(
            addr,
            &format!("GET /shops HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
            b"",
        );
        assert_eq!(
            got,
            status,
            "Host: {host}: {}",
            String::from_utf8_lossy(&body)
        );
        if status == 421 {
            let value: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(value["error"], "wrong_host");
        }
    }
}

// ---------------------------------------------------------------------------
// 2. Timeouts, the connection limit, the shutdown

#[test]
fn idle_and_half_sent_connections_are_closed_after_the_header_timeout() {
    let server = Live::start(None, Limits::default(), quick_config());
    let mut idle = TcpStream::connect(server.addr).unwrap();
    let mut half = TcpStream::connect(server.addr).unwrap();
    half.write_all(b"GET /shops HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    // Kept alive after a response, then idle.
    let mut kept = TcpStream::connect(server.addr).unwrap();
    kept.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
        .unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    for (name, stream) in [
        ("idle", &mut idle),
        ("half-sent", &mut half),
        ("kept-alive", &mut kept),
    ] {
        assert!(
            closed_within(stream, Duration::from_secs(4)),
            "the {name} connection is still open 4 s after a 1 s header timeout"
        );
    }
}

#[test]
fn at_the_connection_limit_idle_connections_make_room() {
    let server = Live::start(
        None,
        Limits::default(),
        ServeConfig {
            max_connections: 8,
            ..ServeConfig::default()
        },
    );
    let mut idle: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let (status, _) = http(server.addr, "GET", "/healthz", None, b"");
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    // The oldest idle connections were closed to make room.
    assert!(closed_within(&mut idle[0], Duration::from_secs(2)));
    assert!(!closed_within(&mut idle[19], Duration::from_millis(100)));
}

/// An upload that sends its body slowly: a request in flight.
fn slow_upload(addr: SocketAddr, length: usize) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(b"{").unwrap();
    stream
}

#[test]
fn at_the_connection_limit_busy_connections_are_kept_and_newcomers_told() {
    let server = Live::start(
        None,
        Limits {
            max_concurrent_uploads: 8,
            body_rate_grace: Duration::from_secs(60),
            ..Limits::default()
        },
        ServeConfig {
            max_connections: 3,
            ..ServeConfig::default()
        },
    );
    let _busy: Vec<TcpStream> = (0..3).map(|_| slow_upload(server.addr, 1000)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = http(server.addr, "GET", "/healthz", None, b"");
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value["error"], "unavailable");
}

#[test]
fn shutdown_closes_half_sent_and_idle_connections_at_once_and_finishes_requests() {
    let mut server = Live::start(
        None,
        Limits::default(),
        ServeConfig {
            header_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            ..ServeConfig::default()
        },
    );
    server.ingest(demo_events());
    let mut held: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr).unwrap();
            stream
                .write_all(b"GET /shops HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .unwrap();
            stream
        })
        .collect();
    held.extend((0..10).map(|_| TcpStream::connect(server.addr).unwrap()));
    std::thread::sleep(Duration::from_millis(300));
    let took = server.stop();
    assert!(
        took < Duration::from_secs(3),
        "20 idle or half-sent connections held the shutdown for {took:?}"
    );
    for stream in &mut held {
        assert!(closed_within(stream, Duration::from_secs(1)));
    }
}

// ---------------------------------------------------------------------------
// 5. Slow and refused uploads

#[test]
fn a_slow_upload_is_cut_off_and_frees_its_slot() {
    let server = Live::start(
        None,
        Limits {
            max_concurrent_uploads: 1,
            min_body_bytes_per_sec: 64 << 10,
            body_rate_grace: Duration::from_secs(1),
            ..Limits::default()
        },
        ServeConfig::default(),
    );
    let body = demo_events();
    let mut slow = slow_upload(server.addr, body.len());
    let started = Instant::now();
    // 10 bytes every 100 ms: 100 B/s.
    slow.set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut sent = 1;
    while started.elapsed() < Duration::from_secs(4) && sent + 10 < body.len() {
        if slow.write_all(&body[sent..sent + 10]).is_err() {
            break;
        }
        sent += 10;
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut response = Vec::new();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = slow.read_to_end(&mut response);
    let (status, text) = parse_response(&response);
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&text));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut off after {:?}",
        started.elapsed()
    );
    // The slot is free again.
    let (status, _) = http(server.addr, "POST", "/events", None, &body);
    assert_eq!(status, 200);
}

#[test]
fn a_refused_upload_is_read_before_its_503() {
    let server = Live::start(
        None,
        Limits {
            max_concurrent_uploads: 1,
            body_rate_grace: Duration::from_secs(60),
            ..Limits::default()
        },
        ServeConfig::default(),
    );
    let _holder = slow_upload(server.addr, 1000);
    std::thread::sleep(Duration::from_millis(300));
    // 8 MiB: more than the socket buffers hold, so that a server answering
    // without reading would reset the connection under the writer.
    let body = vec![b'\n'; 8 << 20];
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST /events HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream
        .write_all(&body)
        .expect("the whole body is written: the server reads it before answering");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let (status, text) = parse_response(&response);
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&text));
}

// ---------------------------------------------------------------------------
// 3. Another shop's order is answered like an unknown one, and as fast

#[tokio::test]
async fn another_shops_order_costs_what_an_unknown_one_does() {
    let (_dir, state) = open_state(Some(tokens()), Limits::default());
    let router = penalty_server::router(state.clone());
    // S02's order with many stored events: reading them takes time, which a
    // seller of S01 must not be able to see.
    let mut lines = String::new();
    let uuid = |n: u64| format!("00000000-0000-4000-8000-{n:012}");
    lines += &format!(
        r#"{{"event_id":"{}","type":"paid","at":"2026-03-01T10:00:00+08:00","order_id":"BIG","shop_id":"S02","product_id":"P1","amount_fen":100}}"#,
        uuid(1)
    );
    lines += "\n";
    for n in 2..3000 {
        lines += &format!(
            r#"{{"event_id":"{}","type":"tracking_uploaded","at":"2026-03-01T11:00:00+08:00","order_id":"BIG","tracking_no":"T{n}"}}"#,
            uuid(n)
        );
        lines += "\n";
    }
    let summary = state.ingest(Bytes::from(lines)).await.unwrap();
    assert_eq!(summary.appended, 2999);
    let (status, operator_view) = get_json(
        &router,
        "/orders/BIG/events?as_of=2026-04-15",
        Some(OPERATOR),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // The default page is small; the pages after it, each read from the
    // `seq` the one before ends at, hold every event once, in log order.
    let first = operator_view["events"].as_array().unwrap();
    assert_eq!(first.len(), penalty_server::routes::DEFAULT_PAGE);
    let mut seqs: Vec<u64> = first.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let mut next = operator_view["next"].as_u64();
    while let Some(after) = next {
        let (status, page) = get_json(
            &router,
            &format!("/orders/BIG/events?as_of=2026-04-15&limit=1000&after={after}"),
            Some(OPERATOR),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let events = page["events"].as_array().unwrap();
        assert!(!events.is_empty() && events.len() <= 1000);
        seqs.extend(events.iter().map(|e| e["seq"].as_u64().unwrap()));
        next = page["next"].as_u64();
    }
    assert_eq!(seqs.len(), 2999);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "log order, each once");

    let ask = |path: String| {
        let router = router.clone();
        async move {
            let started = Instant::now();
            let (status, _, body) =
                call(&router, Method::GET, &path, Some(SELLER_S01), Body::empty()).await;
            (status, body, started.elapsed())
        }
    };
    for route in [
        "/orders/{}/events?as_of=2026-04-15",
        "/orders/{}?as_of=2026-04-15",
    ] {
        let other = route.replace("{}", "BIG");
        let unknown = route.replace("{}", "NOPE");
        let (other_status, other_body, _) = ask(other.clone()).await;
        let (unknown_status, unknown_body, _) = ask(unknown.clone()).await;
        assert_eq!(other_status, StatusCode::NOT_FOUND);
        assert_eq!(unknown_status, StatusCode::NOT_FOUND);
        assert_eq!(
            String::from_utf8_lossy(&other_body).replace("BIG", "NOPE"),
            String::from_utf8_lossy(&unknown_body),
            "{route}: the same words"
        );
        let mut others = Vec::new();
        let mut unknowns = Vec::new();
        for _ in 0..31 {
            others.push(ask(other.clone()).await.2);
            unknowns.push(ask(unknown.clone()).await.2);
        }
        others.sort();
        unknowns.sort();
        let (other_median, unknown_median) = (others[15], unknowns[15]);
        assert!(
            other_median < unknown_median * 3 + Duration::from_micros(300),
            "{route}: another shop's order answers in {other_median:?}, an unknown one in \
             {unknown_median:?}: the time tells them apart"
        );
    }
}

// ---------------------------------------------------------------------------
// 4. known_at replays in bulk

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_at_replays_in_bulk_do_not_hold_up_other_readers() {
    use std::fmt::Write as _;
    // Nine seller tokens, one per shop.
    let mut entries = vec![serde_json::json!({
        "sha256": penalty_server::auth::token_hash_hex(OPERATOR), "role": "operator"})];
    let shop = |n: u64| format!("S{n:06}");
    for n in 0..9 {
        entries.push(serde_json::json!({
            "sha256": penalty_server::auth::token_hash_hex(&format!("seller-{n}")),
            "role": "seller", "shop_id": shop(n)}));
    }
    let tokens = Tokens::parse(&serde_json::Value::Array(entries).to_string()).unwrap();
    let (_dir, state) = open_state(Some(tokens), Limits::default());
    let router = penalty_server::router(state.clone());
    // Uploaded in ten parts, so that the log holds ten block stamps and
    // known_at values between them ask for ten different replays.
    let mut events = Vec::new();
    penalty_gen::generate(
        &penalty_gen::GenOptions {
            orders: 6000,
            shops: 9,
            seed: 7,
        },
        &mut events,
    )
    .unwrap();
    let text = String::from_utf8(events).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut stamps = Vec::new();
    for part in lines.chunks(lines.len() / 10 + 1) {
        let mut body = String::new();
        for line in part {
            let _ = writeln!(body, "{line}");
        }
        state.ingest(Bytes::from(body)).await.unwrap();
        stamps.push(penalty_store::clock::now());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let known_at = |i: usize| stamps[i].to_rfc3339(penalty_core::Policy::default().utc_offset);
    let shop_path = |n: u64, known: Option<String>| match known {
        Some(k) => format!(
            "/shops/{}?as_of=2026-06-01&known_at={}",
            shop(n),
            k.replace('+', "%2B")
        ),
        None => format!("/shops/{}?as_of=2026-06-01", shop(n)),
    };
    let timed = |path: String, token: String| {
        let router = router.clone();
        async move {
            let started = Instant::now();
            let (status, _, _) =
                call(&router, Method::GET, &path, Some(&token), Body::empty()).await;
            (status, started.elapsed())
        }
    };
    // One replay alone: its cost.
    let (status, one_replay) = timed(shop_path(8, Some(known_at(9))), "seller-8".into()).await;
    assert_eq!(status, StatusCode::OK);
    // Nanoseconds apart, or anywhere between the same two uploads: the kept
    // replay.
    let reused_before = state
        .metrics()
        .known_at_replays_reused
        .load(Ordering::Relaxed);
    let later = stamps[9].0 + 1;
    let (status, _) = timed(
        shop_path(
            8,
            Some(
                penalty_core::UnixNs(later).to_rfc3339(penalty_core::Policy::default().utc_offset),
            ),
        ),
        "seller-8".into(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        state
            .metrics()
            .known_at_replays_reused
            .load(Ordering::Relaxed),
        reused_before + 1
    );
    let replays_before = state.metrics().known_at_replays.load(Ordering::Relaxed);

    // Eight sellers, each asking for three different past views at once.
    let mut attackers = Vec::new();
    for n in 0..8u64 {
        for i in 0..3 {
            attackers.push(tokio::spawn(timed(
                shop_path(n, Some(known_at((n as usize + i * 3) % 9))),
                format!("seller-{n}"),
            )));
        }
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Meanwhile another reader of the live projection.
    let mut reads = Vec::new();
    for _ in 0..5 {
        let (status, took) = timed(shop_path(8, None), "seller-8".into()).await;
        assert_eq!(status, StatusCode::OK);
        reads.push(took);
    }
    let mut statuses = Vec::new();
    for attacker in attackers {
        statuses.push(attacker.await.unwrap().0);
    }
    let replays = state.metrics().known_at_replays.load(Ordering::Relaxed) - replays_before;
    let limits = Limits::default();
    assert!(
        replays <= limits.max_pending_replays as u64 + 1,
        "{replays} replays ran for 24 questions"
    );
    assert!(
        statuses.iter().all(|s| [
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::SERVICE_UNAVAILABLE
        ]
        .contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    reads.sort();
    let slowest = reads[reads.len() - 1];
    assert!(
        slowest < one_replay,
        "a live read took {slowest:?} while replays were asked for; one replay takes {one_replay:?}"
    );
}

//! Shared helpers: a demo state, a reference ledger built the CLI's way, a
//! oneshot caller, and a tiny blocking HTTP/1.1 client for socket tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use penalty_core::{Policy, Reject};
use penalty_server::{AppState, Config, Limits, Tokens};
use penalty_store::ingest::{
    AppendedEvent, IngestCounts, IngestObserver, IngestOptions, RejectsSink,
};
use penalty_store::projection::{self, Projection};
use penalty_store::{EventLog, StoreError};
use serde_json::Value;
use tempfile::TempDir;

pub const AS_OF: &str = "2026-04-15";
pub const OPERATOR: &str = "operator-token-0123";
pub const SELLER_S01: &str = "seller-s01-token";
pub const SELLER_S02: &str = "seller-s02-token";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn demo_events() -> Vec<u8> {
    std::fs::read(repo_root().join("fixtures/demo/events.jsonl")).unwrap()
}

pub fn tokens() -> Tokens {
    let text = serde_json::json!([
        {"sha256": penalty_server::auth::token_hash_hex(OPERATOR), "role": "operator"},
        {"sha256": penalty_server::auth::token_hash_hex(SELLER_S01), "role": "seller", "shop_id": "S01"},
        {"sha256": penalty_server::auth::token_hash_hex(SELLER_S02), "role": "seller", "shop_id": "S02"},
    ])
    .to_string();
    Tokens::parse(&text).unwrap()
}

pub fn open_state(tokens: Option<Tokens>, limits: Limits) -> (TempDir, AppState) {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::open(Config {
        db: dir.path().join("db"),
        policy: Policy::default(),
        tokens,
        limits,
    })
    .unwrap();
    (dir, state)
}

/// A state with the demo loaded, with or without access control.
pub async fn demo_state(with_tokens: bool) -> (TempDir, AppState, Router) {
    let (dir, state) = open_state(with_tokens.then(tokens), Limits::default());
    let summary = state.ingest(Bytes::from(demo_events())).await.unwrap();
    assert_eq!(summary.appended, summary.read);
    let router = penalty_server::router(state.clone());
    (dir, state, router)
}

/// One request through the router, no socket.
pub async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, axum::http::HeaderMap, Bytes) {
    use tower::ServiceExt;
    let mut request = Request::builder().method(method.clone()).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if method == Method::POST {
        request = request.header("content-type", "application/x-ndjson");
    }
    let response = router
        .clone()
        .oneshot(request.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes)
}

pub async fn get_json(router: &Router, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
    let (status, headers, body) = call(router, Method::GET, uri, token, Body::empty()).await;
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{uri}: {status} with content type {content_type:?}: {}",
        String::from_utf8_lossy(&body)
    );
    (status, serde_json::from_slice(&body).unwrap())
}

/// Asserts a JSON error of this status and code, and returns its message.
pub async fn expect_error(
    router: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: impl Into<Body>,
    status: StatusCode,
    code: &str,
) -> String {
    let (got, headers, bytes) = call(router, method, uri, token, body).await;
    let text = String::from_utf8_lossy(&bytes).to_string();
    assert_eq!(got, status, "{uri}: {text}");
    assert!(
        headers
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("application/json")),
        "{uri}: errors are JSON"
    );
    let value: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(value["error"], code, "{uri}: {text}");
    let message = value["message"].as_str().unwrap().to_string();
    assert!(!message.is_empty());
    message
}

/// The demo ingested the CLI's way (EventLog + ingest + projection), as the
/// reference the API must agree with.
pub struct Reference {
    pub _dir: TempDir,
    pub projection: Projection,
    pub counts: IngestCounts,
}

/// Drops rejected lines: the reference is compared by its projection.
struct DropRejects;

impl RejectsSink for DropRejects {
    fn rejected(&mut self, _: u64, _: &Reject, _: &[u8], _: u64) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Applies each durable block to the projection.
struct ApplyToProjection<'a>(&'a mut Projection);

impl IngestObserver for ApplyToProjection<'_> {
    fn appended(&mut self, events: &[AppendedEvent<'_>]) -> Result<(), StoreError> {
        for event in events {
            let typed = event
                .line
                .event()
                .map_err(|e| StoreError::Sink(e.to_string().into()))?;
            self.0.apply(event.seq, event.recorded_at, &typed)?;
        }
        Ok(())
    }
}

pub fn reference(events: Vec<u8>) -> Reference {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    let (mut projection, _) = projection::open(&log, &Policy::default(), false).unwrap();
    let counts = penalty_store::ingest::ingest(
        &mut log,
        std::io::Cursor::new(events),
        &IngestOptions::default(),
        &mut DropRejects,
        &mut ApplyToProjection(&mut projection),
    )
    .unwrap();
    Reference {
        _dir: dir,
        projection,
        counts,
    }
}

pub fn as_of_instant() -> penalty_core::UnixNs {
    penalty_core::UnixNs::parse_rfc3339("2026-04-15T00:00:00+08:00").unwrap()
}

/// A blocking HTTP/1.1 request on a fresh connection (`Connection: close`):
/// status and body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        head += &format!("Authorization: Bearer {token}\r\n");
    }
    if method == "POST" {
        head += "Content-Type: application/x-ndjson\r\n";
    }
    head += "\r\n";
    raw_request(addr, &head, body)
}

/// A request written as given (`head` is the request line and headers,
/// through the blank line) on a fresh connection, read to its end: status
/// and body.
pub fn raw_request(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    parse_response(&response)
}

/// Splits a complete HTTP/1.1 response (with Content-Length or chunked).
pub fn parse_response(response: &[u8]) -> (u16, Vec<u8>) {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let rest = &response[split + 4..];
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = String::from_utf8_lossy(&data[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// A server on a real loopback socket, in this process, stopped on drop.
pub struct LiveServer {
    pub addr: SocketAddr,
    #[allow(dead_code)]
    pub state: AppState,
    pub _dir: TempDir,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl LiveServer {
    pub fn start(tokens: Option<Tokens>) -> LiveServer {
        let (dir, state) = open_state(tokens, Limits::default());
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
        runtime.spawn(async move {
            penalty_server::serve(listener, serving, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        LiveServer {
            addr,
            state,
            _dir: dir,
            runtime: Some(runtime),
            stop: Some(stop),
        }
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// The shops of a `GET /shops` page for `summaries` (`penalty shops
/// --json`'s lines): each with its closure-review flags and banned products
/// cut to their first `LISTED_SHOP_ITEMS`, and where the rest are.
pub fn listed_shops(summaries: &[penalty_core::ShopReport]) -> Value {
    let cut = penalty_server::routes::LISTED_SHOP_ITEMS;
    Value::Array(
        summaries
            .iter()
            .map(|summary| {
                let mut line = serde_json::to_value(summary).unwrap();
                for list in ["closure_review", "banned_products"] {
                    let all = line[list].as_array().unwrap().clone();
                    line[list] = Value::Array(all.iter().take(cut).cloned().collect());
                    line[format!("{list}_total")] = all.len().into();
                    line[format!("{list}_next")] = if all.len() > cut {
                        cut.into()
                    } else {
                        Value::Null
                    };
                }
                line
            })
            .collect(),
    )
}

//! The HTTP load test of docs/PERFORMANCE.md ("HTTP service"): requests per
//! second and latency percentiles of `GET /shops/{id}` with 32 concurrent
//! keep-alive clients, while another client ingests events in batches; then
//! the same reads while 1,000 idle connections are held open (issue 20: idle
//! clients must not starve the others).
//!
//! ```text
//! cargo run --release -p penalty-server --example load [-- SECONDS [CLIENTS [ORDERS [IDLE]]]]
//! ```
//!
//! Everything runs on loopback in this process: the server on `127.0.0.1:0`
//! with a temporary data directory, the clients on their own runtime. It is
//! bounded in time (default 5 s of measurement) and stops by itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use penalty_server::{AppState, Config, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The instant every report is asked at: after the generated span.
const AS_OF: &str = "2026-03-15";

fn generate(orders: u64, shops: u64, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(error) = penalty_gen::generate(
        &penalty_gen::GenOptions {
            orders,
            shops,
            seed,
        },
        &mut out,
    ) {
        eprintln!("load: generating the workload failed: {error}");
        std::process::exit(1);
    }
    out
}

/// Reads one HTTP/1.1 response with a Content-Length (what axum sends for
/// JSON); returns its status.
async fn read_response(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    head: &mut Vec<u8>,
    body: &mut Vec<u8>,
) -> std::io::Result<u16> {
    head.clear();
    loop {
        let byte = reader.read_u8().await?;
        head.push(byte);
        if head.ends_with(b"\r\n\r\n") {
            break;
        }
        if head.len() > 64 * 1024 {
            return Err(std::io::Error::other("response head too long"));
        }
    }
    let text = String::from_utf8_lossy(head);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length: usize = text
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| std::io::Error::other("no content-length"))?;
    body.resize(length, 0);
    reader.read_exact(body).await?;
    Ok(status)
}

/// One keep-alive client: GET the path until `stop`, recording latencies in
/// microseconds.
async fn reader_client(addr: SocketAddr, path: String, stop: Arc<AtomicBool>) -> (Vec<u32>, u64) {
    let mut latencies = Vec::with_capacity(100_000);
    let mut errors = 0;
    let Ok(stream) = TcpStream::connect(addr).await else {
        return (latencies, 1);
    };
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let (mut head, mut body) = (Vec::new(), Vec::new());
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        if write.write_all(request.as_bytes()).await.is_err() {
            errors += 1;
            break;
        }
        match read_response(&mut reader, &mut head, &mut body).await {
            Ok(200) => {
                let micros = started.elapsed().as_micros();
                latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            Ok(_) => errors += 1,
            Err(_) => {
                errors += 1;
                break;
            }
        }
    }
    (latencies, errors)
}

/// POSTs `body` in batches of `batch_lines` lines until `stop` or the end;
/// returns (lines posted, events appended, batches).
async fn ingest_client(
    addr: SocketAddr,
    body: Vec<u8>,
    batch_lines: usize,
    stop: Arc<AtomicBool>,
    appended: Arc<AtomicU64>,
) -> (u64, u64) {
    let text = String::from_utf8_lossy(&body).to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut posted = 0u64;
    let mut batches = 0u64;
    let Ok(stream) = TcpStream::connect(addr).await else {
        return (0, 0);
    };
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let (mut head, mut response) = (Vec::new(), Vec::new());
    for chunk in lines.chunks(batch_lines) {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut payload = chunk.join("\n");
        payload.push('\n');
        let request = format!(
            "POST /events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        );
        if write.write_all(request.as_bytes()).await.is_err()
            || write.write_all(payload.as_bytes()).await.is_err()
        {
            break;
        }
        match read_response(&mut reader, &mut head, &mut response).await {
            Ok(200) => {
                let summary: serde_json::Value =
                    serde_json::from_slice(&response).unwrap_or_default();
                appended.fetch_add(summary["appended"].as_u64().unwrap_or(0), Ordering::Relaxed);
                posted += chunk.len() as u64;
                batches += 1;
            }
            _ => break,
        }
    }
    (posted, batches)
}

/// The body size of one answer, for the record.
async fn response_size(addr: SocketAddr, path: &str) -> usize {
    let Ok(stream) = TcpStream::connect(addr).await else {
        return 0;
    };
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    if write.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let (mut head, mut body) = (Vec::new(), Vec::new());
    match read_response(&mut reader, &mut head, &mut body).await {
        Ok(_) => body.len(),
        Err(_) => 0,
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let clients: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(32);
    let orders: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let idle_connections: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let shops = (orders / 100).max(10);

    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("load: cannot create a temporary directory: {error}");
            std::process::exit(1);
        }
    };
    let state = match AppState::open(Config {
        db: dir.path().join("db"),
        policy: penalty_core::Policy::default(),
        tokens: None,
        limits: Limits::default(),
    }) {
        Ok(state) => state,
        Err(error) => {
            eprintln!("load: cannot open the data directory: {error}");
            std::process::exit(1);
        }
    };
    // The server's runtime: tokio's default, one worker per core.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("tokio runtime: {error}"));

    // Preload: a generated workload, ingested in-process.
    let preload = generate(orders, shops, 1);
    let preload_lines = preload.iter().filter(|b| **b == b'\n').count();
    let started = Instant::now();
    let summary = server_runtime
        .block_on(state.ingest(preload.into()))
        .unwrap_or_else(|error| panic!("preload ingest: {error}"));
    println!(
        "preloaded {} lines ({} events appended) over {shops} shops in {:.1} s",
        preload_lines,
        summary.appended,
        started.elapsed().as_secs_f64()
    );

    let listener = server_runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap_or_else(|error| panic!("bind: {error}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|error| panic!("local_addr: {error}"));
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = state.clone();
    server_runtime.spawn(async move {
        let _ = penalty_server::serve(listener, serving, async {
            let _ = server_stopped.await;
        })
        .await;
    });

    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("tokio runtime: {error}"));

    // Two shops: the largest (Zipf rank 1, about 13% of the orders: the most
    // expensive report) and a typical one (rank 100).
    let mut failed = false;
    for (phase, shop) in ["S000001", "S000100"].into_iter().enumerate() {
        // The whole report, every deduction: the figures in PERFORMANCE.md
        // measure that (the default answer holds a page of them).
        let path = format!("/shops/{shop}?as_of={AS_OF}&full=true");
        // New orders for the concurrent ingest: another seed, with the order
        // ids renamed so that they do not collide with the preloaded ones.
        let live = String::from_utf8_lossy(&generate(orders, shops, 2 + phase as u64))
            .replace("\"order_id\":\"O", &format!("\"order_id\":\"L{phase}-"))
            .into_bytes();
        let size = client_runtime.block_on(response_size(addr, &path));
        let stop = Arc::new(AtomicBool::new(false));
        let appended = Arc::new(AtomicU64::new(0));
        let (results, ingest, elapsed) = client_runtime.block_on(async {
            let ingest = tokio::spawn(ingest_client(
                addr,
                live,
                2_000,
                stop.clone(),
                appended.clone(),
            ));
            let readers: Vec<_> = (0..clients)
                .map(|_| tokio::spawn(reader_client(addr, path.clone(), stop.clone())))
                .collect();
            let started = Instant::now();
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            stop.store(true, Ordering::Relaxed);
            let elapsed = started.elapsed();
            let mut results = Vec::new();
            for reader in readers {
                if let Ok(result) = reader.await {
                    results.push(result);
                }
            }
            let ingest = ingest.await.unwrap_or((0, 0));
            (results, ingest, elapsed)
        });
        let errors: u64 = results.iter().map(|(_, e)| e).sum();
        let mut latencies: Vec<u32> = results.into_iter().flat_map(|(l, _)| l).collect();
        latencies.sort_unstable();
        let secs = elapsed.as_secs_f64();
        println!(
            "GET {path} ({size} bytes): {clients} keep-alive clients for {secs:.1} s while POST /events ran"
        );
        println!(
            "  {} requests, {:.0} requests/s, latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} errors",
            latencies.len(),
            latencies.len() as f64 / secs,
            percentile(&latencies, 50.0),
            percentile(&latencies, 90.0),
            percentile(&latencies, 99.0),
            percentile(&latencies, 100.0),
            errors
        );
        let (posted, batches) = ingest;
        println!(
            "  concurrent ingest: {posted} lines in {batches} POSTs of 2000 lines, {} events appended ({:.0} lines/s)",
            appended.load(Ordering::Relaxed),
            posted as f64 / secs
        );
        failed |= latencies.is_empty() || errors > 0 || batches == 0;
    }
    // Idle connections: opened and left silent (they stay within the
    // server's 10 s header timeout while the readers are measured).
    let path = format!("/shops/S000100?as_of={AS_OF}");
    let (results, opened, held, elapsed) = client_runtime.block_on(async {
        let mut idle = Vec::with_capacity(idle_connections);
        for _ in 0..idle_connections {
            match TcpStream::connect(addr).await {
                Ok(stream) => idle.push(stream),
                Err(_) => break,
            }
        }
        let opened = idle.len();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..clients)
            .map(|_| tokio::spawn(reader_client(addr, path.clone(), stop.clone())))
            .collect();
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds.min(8))).await;
        stop.store(true, Ordering::Relaxed);
        let elapsed = started.elapsed();
        let mut results = Vec::new();
        for reader in readers {
            if let Ok(result) = reader.await {
                results.push(result);
            }
        }
        // Still open: a read would block (nothing sent, not closed).
        let held = idle
            .iter()
            .filter(|stream| {
                let mut byte = [0u8; 1];
                matches!(stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            })
            .count();
        (results, opened, held, elapsed)
    });
    let errors: u64 = results.iter().map(|(_, e)| e).sum();
    let mut latencies: Vec<u32> = results.into_iter().flat_map(|(l, _)| l).collect();
    latencies.sort_unstable();
    let secs = elapsed.as_secs_f64();
    println!(
        "GET {path}: {clients} keep-alive clients for {secs:.1} s while {opened} idle connections were held ({held} still open at the end)"
    );
    println!(
        "  {} requests, {:.0} requests/s, latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} errors",
        latencies.len(),
        latencies.len() as f64 / secs,
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 100.0),
        errors
    );
    failed |= latencies.is_empty() || errors > 0 || opened < idle_connections;

    let _ = stop_server.send(());
    server_runtime.shutdown_timeout(Duration::from_secs(10));
    if failed {
        eprintln!("load: some requests failed, or no ingest ran during a measurement");
        std::process::exit(1);
    }
}

//! `penalty serve` from the outside: it refuses bad options before saying it
//! listens, and SIGTERM stops it cleanly, idle and half-sent connections
//! notwithstanding.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::PENALTY;
const BANNER: &str = "penalty serve: http://";

fn serve(db: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(PENALTY);
    command
        .arg("--db")
        .arg(db)
        .arg("serve")
        .args(args)
        .env_remove("PENALTY_DB");
    command
}

#[test]
fn a_bad_tokens_file_or_address_is_refused_before_the_banner() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let output = serve(
        &dir.path().join("db"),
        &[
            "--addr",
            "127.0.0.1:0",
            "--tokens",
            missing.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("missing.json"), "{stderr}");
    assert!(!stderr.contains(BANNER), "{stderr}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = serve(&dir.path().join("db"), &["--addr", &addr])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("cannot listen"), "{stderr}");
    assert!(!stderr.contains(BANNER), "{stderr}");
}

/// Starts `penalty serve` on a free port and returns it with its address,
/// read from the banner.
fn start(db: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = serve(db, &["--addr", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("a banner").unwrap();
        if let Some(rest) = line.strip_prefix(BANNER) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    // Keep reading stderr so that the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

#[test]
fn sigterm_stops_the_server_cleanly_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(&dir.path().join("db"));
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // An idle connection and a half-sent request head.
    let _idle = TcpStream::connect(addr).unwrap();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /shops HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("penalty serve still runs 20 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}: SIGTERM is a clean stop"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopping took {:?}",
        started.elapsed()
    );
}

//! `penalty serve` from the outside: it refuses bad options before saying it
//! listens, and SIGTERM stops it cleanly, idle and half-sent connections
//! notwithstanding.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::support::{banner_addr, get, serve, start_server, BANNER};
use super::PENALTY;

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

#[test]
fn sigterm_stops_the_server_cleanly_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_server(&dir.path().join("db"));
    let response = get(addr, "/healthz");
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

/// Issue 18: `serve` and `recover` are writers like `ingest`. While another
/// writer holds the data directory, each fails at once with `--no-wait`
/// (naming the holder), and otherwise says it waits and goes on once the
/// directory is free: the server says it listens only then.
#[test]
fn serve_and_recover_wait_their_turn_or_fail_at_once_with_no_wait() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut holder = Command::new(PENALTY)
        .env("PENALTY_LANG", "en")
        .arg("--db")
        .arg(&db)
        .args(["ingest", "-"])
        .env_remove("PENALTY_DB")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = holder.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(db.join("LOCK"))
        .unwrap_or_default()
        .contains(&pid)
    {
        assert!(Instant::now() < deadline, "the holder never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let no_wait = |command: &[&str]| {
        let started = Instant::now();
        let out = Command::new(PENALTY)
            .env("PENALTY_LANG", "en")
            .arg("--db")
            .arg(&db)
            .arg("--no-wait")
            .args(command)
            .env_remove("PENALTY_DB")
            .output()
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{command:?}: --no-wait waits"
        );
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{command:?}: {stderr}");
        assert!(
            stderr.contains("in use") && stderr.contains(&pid),
            "{command:?}: {stderr}"
        );
        assert!(!stderr.contains(BANNER), "{command:?}: {stderr}");
    };
    no_wait(&["serve", "--addr", "127.0.0.1:0"]);
    no_wait(&["recover"]);
    // Without --no-wait both wait, saying so.
    let mut server = serve(&db, &["--addr", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut recover = Command::new(PENALTY)
        .env("PENALTY_LANG", "en")
        .arg("--db")
        .arg(&db)
        .args(["recover", "--json"])
        .env_remove("PENALTY_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_out, lines) = std::sync::mpsc::channel();
    let stderr = server.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_out.send(line).is_err() {
                return;
            }
        }
    });
    let waiting = lines.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        waiting.contains("waiting for the data directory") && waiting.contains(&pid),
        "{waiting}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.try_wait().unwrap().is_none(), "the server waits");
    assert!(recover.try_wait().unwrap().is_none(), "recover waits");
    assert!(
        lines.try_recv().is_err(),
        "the server says nothing more while it waits"
    );
    // The holder ends: recover and the server go on, one after the other.
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    let addr: SocketAddr = loop {
        let line = lines.recv_timeout(Duration::from_secs(30)).unwrap();
        if let Some(addr) = banner_addr(&line) {
            break addr;
        }
    };
    // Keep draining the server's stderr.
    std::thread::spawn(move || for _ in lines {});
    let response = get(addr, "/healthz");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
    let out = recover.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("waiting for the data directory") && stderr.contains(&pid),
        "{stderr}"
    );
}

//! What the `penalty` binary's tests share to run `penalty serve`: the one
//! way to start it on a free port and to know where it listens, and a plain
//! HTTP GET.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::PENALTY;

/// What `penalty serve` prints on stderr once it listens, before its URL.
pub const BANNER: &str = "penalty serve: http://";

/// `penalty --db DB serve ARGS`, with no `PENALTY_DB` from the environment.
pub fn serve(db: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(PENALTY);
    command
        .arg("--db")
        .arg(db)
        .arg("serve")
        .args(args)
        .env_remove("PENALTY_DB");
    command
}

/// Starts `penalty serve` on a free port of the loopback and returns it with
/// its address, read from the banner: once this returns, it listens.
///
/// Why the banner and not a port chosen beforehand: the server binds port 0
/// itself, so no other process can take the port between choosing and
/// binding, and the banner is printed only once the socket is bound.
pub fn start_server(db: &Path) -> (Child, SocketAddr) {
    let mut child = serve(db, &["--addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("a banner").unwrap();
        if let Some(addr) = banner_addr(&line) {
            break addr;
        }
    };
    // Keep reading stderr so that the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// The address in a banner line, `None` for any other line.
pub fn banner_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.strip_prefix(BANNER)?;
    Some(rest.split('/').next()?.parse().unwrap())
}

/// A `GET path` on a connection of its own; the whole response, head and
/// body.
pub fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

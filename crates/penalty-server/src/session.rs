//! Sign-in for the dashboard: a session cookie in place of a bearer token.
//!
//! `POST /session` takes a token (as JSON, so that no cross-site form can
//! send it, and through the same origin guard as every unsafe method) and,
//! when the token is listed, answers with a cookie naming a fresh random
//! session. The server keeps only the SHA-256 of each session id, with the
//! role the token had, so a memory dump or a log line holds nothing a
//! browser could present. Requests without an `Authorization` header are
//! then read with the cookie's role. `DELETE /session` forgets the session
//! and clears the cookie.
//!
//! The cookie is `HttpOnly` (no script reads it) and `SameSite=Strict` (no
//! other site's page makes the browser send it). It is `Secure` unless the
//! request came to a loopback name (`localhost`, `127.0.0.0/8`, `[::1]`):
//! the server itself speaks plain HTTP, which on loopback never leaves the
//! machine, and browsers do not store a `Secure` cookie set over plain HTTP
//! on every loopback name. Exposed beyond loopback, the server belongs behind
//! a TLS proxy, and there the cookie must never travel in clear.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

use crate::auth::Access;
use crate::error::ApiError;

/// The cookie's name.
pub const COOKIE: &str = "penalty_session";
/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);
/// The most sessions held at once; past it, sign-in is refused (expired
/// sessions are dropped first).
pub const MAX_SESSIONS: usize = 10_000;

/// The live sessions, by the SHA-256 of their id.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<[u8; 32], (Access, Instant)>>,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Starts a session with this role; its id, to be sent as the cookie.
    pub fn start(&self, access: Access) -> Result<String, ApiError> {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut file| file.read_exact(&mut bytes))
            .map_err(|_| ApiError::Unavailable("no randomness for a session id; retry"))?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.len() >= MAX_SESSIONS {
            live.retain(|_, (_, expires)| *expires > now);
        }
        if live.len() >= MAX_SESSIONS {
            return Err(ApiError::Unavailable(
                "too many sessions are open; sign in later, or use a bearer token",
            ));
        }
        live.insert(digest(&id), (access, now + SESSION_TTL));
        Ok(id)
    }

    /// The role of a live session.
    pub fn lookup(&self, id: &str) -> Option<Access> {
        let key = digest(id);
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        match live.get(&key) {
            Some((access, expires)) if *expires > Instant::now() => Some(access.clone()),
            Some(_) => {
                live.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Forgets a session.
    pub fn end(&self, id: &str) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.remove(&digest(id));
    }
}

/// The session id of the request's cookie, if it sends one of the right
/// shape (64 hex digits).
pub fn cookie_session(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, id)| id.trim().to_string())
        .filter(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// True when the request's `Host` is a loopback name.
pub fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The `Set-Cookie` value starting a session.
pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value clearing it.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn sessions_start_look_up_and_end() {
        let sessions = Sessions::default();
        let id = sessions
            .start(Access::Seller {
                shop_id: "S1".into(),
            })
            .unwrap();
        assert_eq!(id.len(), 64);
        assert_eq!(
            sessions.lookup(&id),
            Some(Access::Seller {
                shop_id: "S1".into()
            })
        );
        // Only the hash is kept.
        assert!(!sessions.live.lock().unwrap().contains_key(id.as_bytes()));
        let other = sessions.start(Access::Operator).unwrap();
        assert_ne!(id, other);
        sessions.end(&id);
        assert_eq!(sessions.lookup(&id), None);
        assert_eq!(sessions.lookup(&other), Some(Access::Operator));
    }

    #[test]
    fn cookies_and_hosts() {
        let mut headers = HeaderMap::new();
        let id = "a".repeat(64);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; {COOKIE}={id}; y=2")).unwrap(),
        );
        assert_eq!(cookie_session(&headers), Some(id));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("penalty_session=short"),
        );
        assert_eq!(cookie_session(&headers), None);
        for (host, loopback) in [
            ("127.0.0.1:8080", true),
            ("localhost", true),
            ("[::1]:80", true),
            ("127.9.9.9", true),
            ("ledger.example:443", false),
            ("10.0.0.1:8080", false),
        ] {
            headers.insert(header::HOST, HeaderValue::from_static(host));
            assert_eq!(loopback_host(&headers), loopback, "{host}");
        }
        assert!(set_cookie("x", true).contains("; Secure"));
        assert!(!set_cookie("x", false).contains("Secure"));
        assert!(set_cookie("x", false).contains("HttpOnly; SameSite=Strict"));
    }
}

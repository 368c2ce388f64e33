//! Guards against requests a browser makes on another site's behalf.
//!
//! Without `--tokens` the server trusts whoever can connect to its loopback
//! address, and a browser on the same machine can connect. Two attacks follow
//! and are refused here, before any handler runs:
//!
//! - A cross-site write: a page on `evil.example` posts a form or a `fetch`
//!   with `mode: "no-cors"` to `http://127.0.0.1:8080/events`. Browsers send
//!   such requests without asking the server first only with a "simple"
//!   content type (`text/plain`, forms), and they mark them with `Origin` and
//!   `Sec-Fetch-Site`. So an unsafe method is refused when either header says
//!   another origin sent it, and `POST` must carry a JSON Lines or JSON
//!   content type, which no simple request can.
//! - DNS rebinding: `evil.example` resolves first to the attacker's server,
//!   then to 127.0.0.1; the page is then same-origin with this server in the
//!   browser's eyes and may read its answers. The request still carries
//!   `Host: evil.example`, so [`AllowedHosts`] answers only for the bound
//!   address, `localhost` and the names given with `--allowed-host`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The content types `POST` accepts (by their essence, parameters aside).
pub const POST_CONTENT_TYPES: [&str; 3] = [
    "application/x-ndjson",
    "application/jsonl",
    "application/json",
];

/// Refuses an unsafe method sent from another origin, and a `POST` without
/// a JSON Lines or JSON body type. Safe methods (`GET`, `HEAD`) pass: they
/// change nothing, and what a cross-site page may read of their answers is
/// the browser's same-origin policy's concern (and DNS rebinding's, below).
pub async fn same_origin(request: Request, next: Next) -> Response {
    if let Err(error) = check_request(request.method(), request.headers()) {
        return error.into_response();
    }
    next.run(request).await
}

fn check_request(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        // "none": typed by the user; "same-origin": this server's own page.
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Err(cross_site());
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).map(|h| h.as_bytes());
        if !origin_matches_host(origin.as_bytes(), host) {
            return Err(cross_site());
        }
    }
    if *method == Method::POST {
        let essence = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                value
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        if !essence.is_some_and(|essence| POST_CONTENT_TYPES.contains(&essence.as_str())) {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON Lines with `Content-Type: application/x-ndjson` \
                 (for curl: -H 'Content-Type: application/x-ndjson')",
            ));
        }
    }
    Ok(())
}

fn cross_site() -> ApiError {
    ApiError::Forbidden(
        "this request came from another site's page (its Origin or Sec-Fetch-Site header says \
         so); send it from a script or the command line, or from this server's own dashboard",
    )
}

/// `Origin: scheme://authority` names the same origin as `Host: authority`.
/// `Origin: null` (a sandboxed or file page) never does.
fn origin_matches_host(origin: &[u8], host: Option<&[u8]>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let Ok(origin) = std::str::from_utf8(origin) else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && authority.as_bytes().eq_ignore_ascii_case(host)
}

/// The `Host` values the server answers to.
#[derive(Clone, Debug)]
pub struct AllowedHosts {
    bound: IpAddr,
    /// Names from `--allowed-host`, lower case, each with or without a port.
    names: Vec<String>,
    /// False with `--tokens` and no `--allowed-host`: a rebinding page holds
    /// no token, so any name is served.
    enforced: bool,
}

impl AllowedHosts {
    /// The bound address, `localhost` when it is a loopback or unspecified
    /// address, and `names`. With tokens and no names, every host is served.
    pub fn new(bound: SocketAddr, names: &[String], has_tokens: bool) -> AllowedHosts {
        AllowedHosts {
            bound: bound.ip(),
            names: names.iter().map(|name| name.to_ascii_lowercase()).collect(),
            enforced: !has_tokens || !names.is_empty(),
        }
    }

    /// True when a request with this `Host` header (or none) is answered.
    pub fn allows(&self, host: Option<&[u8]>) -> bool {
        if !self.enforced {
            return true;
        }
        // Browsers always send Host; only a non-browser client (HTTP/1.0)
        // leaves it out, and it cannot be a rebinding page.
        let Some(host) = host else {
            return true;
        };
        let Ok(host) = std::str::from_utf8(host) else {
            return false;
        };
        let host = host.trim().to_ascii_lowercase();
        if self.names.contains(&host) {
            return true;
        }
        let name = strip_port(&host);
        if self.names.iter().any(|allowed| allowed == name) {
            return true;
        }
        let unspecified = self.bound.is_unspecified();
        if name == "localhost" || name == "localhost." {
            return self.bound.is_loopback() || unspecified;
        }
        // An IP literal cannot be rebound: a page at http://10.0.0.5/ is
        // that address's own origin.
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        match literal.parse::<IpAddr>() {
            Ok(ip) => unspecified || ip == self.bound,
            Err(_) => false,
        }
    }
}

/// `name:port` or `[v6]:port` without the port.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') => {
            name
        }
        _ => host,
    }
}

/// The middleware of [`AllowedHosts`]: a 421 for any other `Host`.
pub async fn check_host(
    State(allowed): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request.headers().get(header::HOST).map(|h| h.as_bytes());
    if !allowed.allows(host) {
        let shown: String = host
            .map(|h| String::from_utf8_lossy(h).chars().take(64).collect())
            .unwrap_or_default();
        return ApiError::MisdirectedRequest(format!(
            "this server does not answer for the host `{shown}`; use its address, or start it \
             with --allowed-host NAME for a name that points at it"
        ))
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("address")
    }

    #[test]
    fn hosts_on_loopback() {
        let hosts = AllowedHosts::new(addr("127.0.0.1:8080"), &[], false);
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "localhost:8080",
            "LOCALHOST",
            "localhost:1",
        ] {
            assert!(hosts.allows(Some(ok.as_bytes())), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.2:8080",
            "[::1]:8080",
            "",
            "x:y:z",
        ] {
            assert!(!hosts.allows(Some(bad.as_bytes())), "{bad}");
        }
        assert!(hosts.allows(None));
        let named = AllowedHosts::new(addr("127.0.0.1:8080"), &["Ledger.Internal".into()], false);
        assert!(named.allows(Some(b"ledger.internal:8080")));
        assert!(!named.allows(Some(b"evil.example")));
        let v6 = AllowedHosts::new(addr("[::1]:8080"), &[], false);
        assert!(v6.allows(Some(b"[::1]:8080")));
        assert!(v6.allows(Some(b"localhost:8080")));
    }

    #[test]
    fn hosts_with_tokens() {
        let open = AllowedHosts::new(addr("0.0.0.0:8080"), &[], true);
        assert!(open.allows(Some(b"anything.example")));
        let named = AllowedHosts::new(addr("0.0.0.0:8080"), &["ledger.example:443".into()], true);
        assert!(named.allows(Some(b"ledger.example:443")));
        assert!(!named.allows(Some(b"ledger.example:80")));
        assert!(named.allows(Some(b"10.1.2.3:8080")));
        assert!(!named.allows(Some(b"evil.example")));
    }

    #[test]
    fn origins() {
        assert!(origin_matches_host(
            b"http://127.0.0.1:8080",
            Some(b"127.0.0.1:8080")
        ));
        assert!(!origin_matches_host(
            b"http://evil.example",
            Some(b"127.0.0.1:8080")
        ));
        assert!(!origin_matches_host(b"null", Some(b"127.0.0.1:8080")));
        assert!(!origin_matches_host(b"http://127.0.0.1:8080", None));
    }
}

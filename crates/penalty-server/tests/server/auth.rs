//! Access control on every route, for every role: a seller token never reads
//! another shop, and what it is told leaks nothing about other shops.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::support::*;

/// Every read route, for a shop and one of its orders.
fn read_routes(shop: &str, order: &str) -> Vec<String> {
    vec![
        format!("/shops/{shop}?as_of={AS_OF}"),
        format!("/shops/{shop}/notices?as_of={AS_OF}"),
        format!("/shops/{shop}/at-risk?as_of={AS_OF}&within=30d"),
        format!("/shops/{shop}/postings?as_of={AS_OF}"),
        format!("/shops/{shop}/days?as_of={AS_OF}"),
        format!("/shops/{shop}/deductions?as_of={AS_OF}"),
        format!("/shops/{shop}/closure-review?as_of={AS_OF}"),
        format!("/shops/{shop}/bans?as_of={AS_OF}&limit=1&offset=1"),
        format!("/orders?as_of={AS_OF}&shop={shop}"),
        format!("/orders/{order}?as_of={AS_OF}"),
        format!("/orders/{order}/events?as_of={AS_OF}"),
        format!("/shops/{shop}?as_of={AS_OF}&full=true"),
        format!("/shops/{shop}?as_of={AS_OF}&limit=3"),
        format!("/shops/{shop}?as_of={AS_OF}&summary=true"),
        format!("/shops/{shop}/notices?as_of={AS_OF}&newest=true&limit=5"),
        format!("/shops/{shop}/deductions?as_of={AS_OF}&limit=2&offset=1&newest=true"),
        format!("/shops/{shop}?as_of={AS_OF}&known_at=2100-01-01"),
    ]
}

/// [`read_routes`] and the CSV downloads: every route a seller might ask
/// of a shop.
fn every_read_route(shop: &str, order: &str) -> Vec<String> {
    let mut routes = read_routes(shop, order);
    routes.push(format!("/shops/{shop}/postings.csv?as_of={AS_OF}"));
    routes.push(format!("/orders.csv?as_of={AS_OF}&shop={shop}"));
    routes.push(format!("/orders?as_of={AS_OF}&shop={shop}&limit=1001"));
    routes.push(format!(
        "/shops/{shop}/at-risk?as_of={AS_OF}&within=forever"
    ));
    routes
}

async fn first_order_of(router: &axum::Router, shop: &str) -> String {
    let (_, page) = get_json(
        router,
        &format!("/orders?as_of={AS_OF}&shop={shop}&limit=1"),
        Some(OPERATOR),
    )
    .await;
    page["orders"][0]["order_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn without_a_valid_token_every_data_route_is_401() {
    let (_dir, _state, router) = demo_state(true).await;
    let mut routes = read_routes("S01", "O0001");
    routes.push("/shops".into());
    routes.push("/orders".into());
    routes.push("/metrics".into());
    for uri in &routes {
        for token in [None, Some("wrong-token"), Some("")] {
            expect_error(
                &router,
                Method::GET,
                uri,
                token,
                Body::empty(),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            )
            .await;
        }
    }
    expect_error(
        &router,
        Method::POST,
        "/events",
        None,
        Body::from(demo_events()),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // Not `Bearer`: refused, and the response says how to send it.
    let (status, headers, _) = call(&router, Method::GET, "/shops", None, Body::empty()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    // Health, the document and the dashboard shell stay open.
    for uri in ["/healthz", "/openapi.json", "/", "/assets/app.js"] {
        let (status, _, _) = call(&router, Method::GET, uri, None, Body::empty()).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn an_operator_reads_everything_and_may_ingest() {
    let (_dir, _state, router) = demo_state(true).await;
    let order_s02 = first_order_of(&router, "S02").await;
    for uri in read_routes("S02", &order_s02)
        .into_iter()
        .chain(["/shops".to_string(), "/orders".to_string()])
    {
        let (status, _) = get_json(&router, &uri, Some(OPERATOR)).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
    let (_, shops) = get_json(&router, &format!("/shops?as_of={AS_OF}"), Some(OPERATOR)).await;
    assert_eq!(shops["shops"].as_array().unwrap().len(), 6);
    let (status, _, body) = call(
        &router,
        Method::GET,
        "/metrics",
        Some(OPERATOR),
        Body::empty(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = call(
        &router,
        Method::POST,
        "/events",
        Some(OPERATOR),
        Body::from(demo_events()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let summary: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(summary["duplicates"], 757);
}

#[tokio::test]
async fn a_seller_reads_its_own_shop_and_nothing_else() {
    let (_dir, _state, router) = demo_state(true).await;
    let own_order = first_order_of(&router, "S01").await;
    let other_order = first_order_of(&router, "S02").await;

    // Its own shop: everything readable, the same answers as the operator's.
    for uri in read_routes("S01", &own_order) {
        let (status, as_seller) = get_json(&router, &uri, Some(SELLER_S01)).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        let (_, as_operator) = get_json(&router, &uri, Some(OPERATOR)).await;
        assert_eq!(as_seller, as_operator, "{uri}");
    }
    // The lists hold its shop only.
    let (_, shops) = get_json(&router, &format!("/shops?as_of={AS_OF}"), Some(SELLER_S01)).await;
    let shops = shops["shops"].as_array().unwrap();
    assert_eq!(shops.len(), 1);
    assert_eq!(shops[0]["shop_id"], "S01");
    let (_, page) = get_json(
        &router,
        &format!("/orders?as_of={AS_OF}&limit=1000"),
        Some(SELLER_S01),
    )
    .await;
    let orders = page["orders"].as_array().unwrap();
    assert!(!orders.is_empty());
    assert!(orders.iter().all(|o| o["shop_id"] == "S01"));

    // Another shop's data: 404, worded as for a shop or order that does not
    // exist, so nothing leaks.
    for uri in read_routes("S02", &other_order) {
        let message = expect_error(
            &router,
            Method::GET,
            &uri,
            Some(SELLER_S01),
            Body::empty(),
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        assert!(!message.contains("paid at"), "{uri}: {message}");
    }
    // Every route, asked of another shop and of one that does not exist,
    // answers the same status and the same body but for the id asked.
    for (other, unknown) in every_read_route("S02", &other_order)
        .into_iter()
        .zip(every_read_route("S99", "O-NOPE"))
    {
        let (status, _, body) = call(
            &router,
            Method::GET,
            &other,
            Some(SELLER_S01),
            Body::empty(),
        )
        .await;
        let (unknown_status, _, unknown_body) = call(
            &router,
            Method::GET,
            &unknown,
            Some(SELLER_S01),
            Body::empty(),
        )
        .await;
        assert_eq!(status, unknown_status, "{other} and {unknown}");
        let body = String::from_utf8_lossy(&body)
            .replace("S02", "S99")
            .replace(&other_order, "O-NOPE");
        assert_eq!(
            body,
            String::from_utf8_lossy(&unknown_body),
            "{other} and {unknown}"
        );
    }
    let other = expect_error(
        &router,
        Method::GET,
        &format!("/shops/S02?as_of={AS_OF}"),
        Some(SELLER_S01),
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // The seller's answer for S02 (which exists) is worded exactly as its
    // answer for S99 (which does not).
    let nonexistent = expect_error(
        &router,
        Method::GET,
        &format!("/shops/S99?as_of={AS_OF}"),
        Some(SELLER_S01),
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(other.replace("S02", "S99"), nonexistent);
    let other_order_message = expect_error(
        &router,
        Method::GET,
        &format!("/orders/{other_order}?as_of={AS_OF}"),
        Some(SELLER_S01),
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let no_order_message = expect_error(
        &router,
        Method::GET,
        &format!("/orders/NOPE?as_of={AS_OF}"),
        Some(SELLER_S01),
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(
        other_order_message.replace(&other_order, "NOPE"),
        no_order_message
    );

    // The other seller, symmetrically.
    let (status, _) = get_json(
        &router,
        &format!("/shops/S02?as_of={AS_OF}"),
        Some(SELLER_S02),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    expect_error(
        &router,
        Method::GET,
        &format!("/orders/{own_order}?as_of={AS_OF}"),
        Some(SELLER_S02),
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // A seller cannot ingest or read the metrics.
    expect_error(
        &router,
        Method::POST,
        "/events",
        Some(SELLER_S01),
        Body::from(demo_events()),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect_error(
        &router,
        Method::GET,
        "/metrics",
        Some(SELLER_S01),
        Body::empty(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn a_seller_never_sees_an_orphan_or_a_known_at_replay_of_another_shop() {
    let (_dir, _state, router) = demo_state(true).await;
    let other_order = first_order_of(&router, "S02").await;
    // known_at goes through a replay: the same rules apply.
    expect_error(
        &router,
        Method::GET,
        &format!("/orders/{other_order}?as_of={AS_OF}&known_at=2100-01-01"),
        Some(SELLER_S01),
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let (_, shops) = get_json(
        &router,
        &format!("/shops?as_of={AS_OF}&known_at=2100-01-01"),
        Some(SELLER_S02),
    )
    .await;
    assert_eq!(shops["shops"].as_array().unwrap().len(), 1);
    // An order with events but no paid event (R13) has no shop: operators
    // only.
    let orphan = serde_json::json!({"event_id": "7d4b8c1e-0000-4000-8000-000000000001", "type": "shipped",
        "at": "2026-03-02T10:00:00+08:00", "order_id": "ORPHAN1", "tracking_no": "SF1"});
    let (status, _, _) = call(
        &router,
        Method::POST,
        "/events",
        Some(OPERATOR),
        Body::from(format!("{orphan}\n")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, value) = get_json(&router, "/orders/ORPHAN1/events", Some(OPERATOR)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(value["events"].as_array().unwrap().len(), 1);
    expect_error(
        &router,
        Method::GET,
        "/orders/ORPHAN1/events",
        Some(SELLER_S01),
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[test]
fn off_loopback_the_server_needs_tokens() {
    use penalty_server::{check_exposure, ServerError};
    let public: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let error = check_exposure(public, false).unwrap_err();
    assert!(matches!(error, ServerError::NeedsTokens { .. }));
    assert!(error.to_string().contains("--tokens"), "{error}");
    assert!(check_exposure(public, true).is_ok());
    for loopback in ["127.0.0.1:8080", "127.1.2.3:80", "[::1]:8080"] {
        assert!(check_exposure(loopback.parse().unwrap(), false).is_ok());
    }
    // `run` refuses before opening anything.
    let dir = tempfile::tempdir().unwrap();
    let error = penalty_server::run(penalty_server::ServeOptions {
        db: dir.path().join("db"),
        policy: penalty_core::Policy::default(),
        addr: public,
        tokens: None,
        allowed_hosts: Vec::new(),
    })
    .unwrap_err();
    assert!(matches!(error, ServerError::NeedsTokens { .. }));
    assert!(!dir.path().join("db").exists());
}

#[test]
fn a_bad_tokens_file_stops_the_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    std::fs::write(&path, r#"[{"sha256": "abc", "role": "operator"}]"#).unwrap();
    let error = penalty_server::run(penalty_server::ServeOptions {
        db: dir.path().join("db"),
        policy: penalty_core::Policy::default(),
        addr: "127.0.0.1:0".parse().unwrap(),
        tokens: Some(path.clone()),
        allowed_hosts: Vec::new(),
    })
    .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("tokens.json"), "{message}");
    assert!(message.contains("64 hex digits"), "{message}");
    let error = penalty_server::run(penalty_server::ServeOptions {
        db: dir.path().join("db"),
        policy: penalty_core::Policy::default(),
        addr: "127.0.0.1:0".parse().unwrap(),
        tokens: Some(dir.path().join("missing.json")),
        allowed_hosts: Vec::new(),
    })
    .unwrap_err();
    assert!(error.to_string().contains("check the path"), "{error}");
}

/// One request with explicit headers, no bearer token.
async fn raw(
    router: &axum::Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut request = axum::http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&bytes).to_string())
}

#[tokio::test]
async fn a_session_cookie_carries_the_token_role_and_nothing_more() {
    let (_dir, _state, router) = demo_state(true).await;
    let json = ("content-type", "application/json");
    let local = ("host", "127.0.0.1:8080");

    // A wrong token: 401, no cookie.
    let (status, headers, _) = raw(
        &router,
        Method::POST,
        "/session",
        &[json, local],
        r#"{"token":"wrong"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get("set-cookie").is_none());
    // A form post (what another site's page could send) is refused.
    let (status, _, _) = raw(
        &router,
        Method::POST,
        "/session",
        &[("content-type", "application/x-www-form-urlencoded"), local],
        &format!("token={SELLER_S01}"),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // The seller's token: a cookie, HttpOnly and SameSite=Strict, not
    // Secure on loopback plain HTTP.
    let (status, headers, body) = raw(
        &router,
        Method::POST,
        "/session",
        &[json, local, ("origin", "http://127.0.0.1:8080")],
        &format!(r#"{{"token":"{SELLER_S01}"}}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let who: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(who["role"], "seller");
    assert_eq!(who["shop_id"], "S01");
    let set = headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "{set}");
    assert!(
        !set.contains(SELLER_S01),
        "the cookie is not the token: {set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();

    // Off loopback, the cookie is Secure.
    let (_, headers, _) = raw(
        &router,
        Method::POST,
        "/session",
        &[json, ("host", "ledger.example")],
        &format!(r#"{{"token":"{SELLER_S01}"}}"#),
    )
    .await;
    assert!(headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("; Secure"));

    // The cookie reads the seller's own shop and at-risk list, and another
    // shop is the unknown shop's 404.
    let with_cookie = [("cookie", cookie.as_str()), local];
    let (status, _, body) = raw(&router, Method::GET, "/session", &with_cookie, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"S01\""), "{body}");
    for uri in read_routes("S01", &first_order_of(&router, "S01").await) {
        let (status, _, body) = raw(&router, Method::GET, &uri, &with_cookie, "").await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    }
    let (status, _, other) = raw(
        &router,
        Method::GET,
        &format!("/shops/S02?as_of={AS_OF}"),
        &with_cookie,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, unknown) = raw(
        &router,
        Method::GET,
        &format!("/shops/S99?as_of={AS_OF}"),
        &with_cookie,
        "",
    )
    .await;
    assert_eq!(other.replace("S02", "S99"), unknown);
    // A seller's cookie may not ingest, and a cross-site POST never passes.
    let (status, _, _) = raw(
        &router,
        Method::POST,
        "/events",
        &[
            ("cookie", cookie.as_str()),
            local,
            ("content-type", "application/x-ndjson"),
        ],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, op_headers, _) = raw(
        &router,
        Method::POST,
        "/session",
        &[json, local],
        &format!(r#"{{"token":"{OPERATOR}"}}"#),
    )
    .await;
    let op_cookie = op_headers.get("set-cookie").unwrap().to_str().unwrap();
    let op_cookie = op_cookie.split(';').next().unwrap();
    let (status, _, body) = raw(
        &router,
        Method::POST,
        "/events",
        &[
            ("cookie", op_cookie),
            local,
            ("content-type", "application/x-ndjson"),
            ("origin", "https://evil.example"),
        ],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Sign-out clears the cookie and forgets the session.
    let (status, headers, _) = raw(&router, Method::DELETE, "/session", &with_cookie, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let (status, _, body) = raw(
        &router,
        Method::GET,
        &format!("/shops/S01?as_of={AS_OF}"),
        &with_cookie,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains("Authorization"), "{body}");
}

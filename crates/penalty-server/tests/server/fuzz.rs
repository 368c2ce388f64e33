//! The HTTP query strings' fuzz target: random query strings on every GET
//! route with parameters, through the router. Whatever the bytes, the answer
//! is a 2xx or a 4xx whose JSON body names the problem: never a 5xx, never a
//! panic. A proptest corpus, bounded in cases, run with the suite.

use axum::body::Body;
use axum::http::Method;
use proptest::prelude::*;

use super::support::*;

const ROUTES: [&str; 8] = [
    "/shops",
    "/shops/S01/at-risk",
    "/labels",
    "/shops/S01",
    "/shops/S01/notices",
    "/orders",
    "/orders/O0001",
    "/orders/O0001/events",
];

/// A query parameter: a known name or not, a value near a valid one or not,
/// raw or percent-encoded.
fn pair() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("as_of".to_string()),
        Just("known_at".to_string()),
        Just("after".to_string()),
        Just("limit".to_string()),
        Just("offset".to_string()),
        Just("within".to_string()),
        Just("shop".to_string()),
        Just("status".to_string()),
        Just("violating".to_string()),
        "[a-z_%]{0,8}",
    ];
    let value = prop_oneof![
        "[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|%2B[0-9]{2}:[0-9]{2}))?",
        "-?[0-9]{0,25}(\\.[0-9]{0,4}\\.[A-Z0-9.]{0,4})?",
        "(true|false|shipped|S01|O0001|%00|%FF|%E4%B8%AD|%zz|%|\\+)*",
        "[ -~]{0,40}",
    ];
    (name, value).prop_map(|(name, value)| format!("{name}={value}"))
}

/// The demo, loaded once for every case.
fn demo_router() -> &'static axum::Router {
    static DEMO: std::sync::OnceLock<(tempfile::TempDir, axum::Router)> =
        std::sync::OnceLock::new();
    &DEMO
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (dir, _state, router) = runtime.block_on(demo_state(false));
            (dir, router)
        })
        .1
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_query_string_is_answered_2xx_or_a_json_4xx(
        route in 0..ROUTES.len(),
        pairs in proptest::collection::vec(pair(), 0..4),
        separator in prop_oneof![Just("&"), Just(";"), Just("&&")],
    ) {
        let router = demo_router();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let uri = format!("{}?{}", ROUTES[route], pairs.join(separator));
            // A URI the HTTP layer would refuse never reaches the router.
            let Ok(parsed) = uri.parse::<axum::http::Uri>() else {
                return Ok(());
            };
            let (status, headers, body) =
                call(router, Method::GET, &parsed.to_string(), None, Body::empty()).await;
            prop_assert!(status.as_u16() < 500, "{uri}: {status} {}", String::from_utf8_lossy(&body));
            prop_assert!(
                headers.get("content-type").is_some_and(|v| v.to_str().unwrap().starts_with("application/json")),
                "{uri}: not JSON"
            );
            if status.is_client_error() {
                let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
                prop_assert!(value["error"].is_string() && value["message"].is_string(), "{uri}: {value}");
            }
            Ok(())
        })?;
    }
}

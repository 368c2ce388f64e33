//! Every route, through the router with `oneshot`: good input, bad input, and
//! the answers compared with the reference ledger built the CLI's way.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use penalty_core::OrderStatus;
use serde_json::Value;

use super::support::*;

#[tokio::test]
async fn openapi_matches_the_routes() {
    let document = penalty_server::openapi::document();
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = penalty_server::routes::routes()
        .into_iter()
        .map(|(method, path, _)| {
            // axum's catch-all `{*page}` is OpenAPI's `{page}`.
            (method.to_string(), path.replace("{*", "{"))
        })
        .collect();
    assert_eq!(documented, routed);

    // And every documented route answers (not the router's 404 fallback).
    let (_dir, _state, router) = demo_state(false).await;
    for (method, path) in &routed {
        let uri = path.replace("{id}", "S01").replace("{page}", "shops/S01");
        let (status, _, body) = call(
            &router,
            Method::from_bytes(method.as_bytes()).unwrap(),
            &uri,
            None,
            Body::empty(),
        )
        .await;
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("no such route"),
            "{method} {uri} is documented but not routed"
        );
        assert!(status.as_u16() < 500, "{method} {uri}: {status} {text}");
    }
    // Without tokens, as served: no security scheme, no 401.
    let (status, served) = get_json(&router, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served, penalty_server::openapi::document_for(false));
    let text = served.to_string();
    assert!(
        !text.contains("securitySchemes") && !text.contains("\"401\""),
        "{text}"
    );
    assert!(!text.contains("\"security\""), "{text}");
    // With tokens: the bearer scheme, and no Authorization parameter.
    let (_dir, _state, router) = demo_state(true).await;
    let (_, served) = get_json(&router, "/openapi.json", None).await;
    assert_eq!(served, document);
    assert_eq!(
        served["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(!served.to_string().contains("\"Authorization\""));
}

#[tokio::test]
async fn healthz_reports_the_folded_sequence_number() {
    let (_dir, _state, router) = demo_state(true).await;
    let (status, value) = get_json(&router, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(value["status"], "ok");
    assert_eq!(value["seq"], 757);
}

#[tokio::test]
async fn shops_equal_the_cli_summaries() {
    let (_dir, _state, router) = demo_state(false).await;
    let reference = reference(demo_events());
    let expected = reference.projection.ledger.shop_summaries(as_of_instant());
    let (status, value) = get_json(&router, &format!("/shops?as_of={AS_OF}"), None).await;
    assert_eq!(status, StatusCode::OK);
    // Each shop is its CLI line with its two lists cut to their first
    // LISTED_SHOP_ITEMS, each with where the rest are and how many.
    assert_eq!(value["shops"], listed_shops(&expected));
    assert_eq!(value["total"], 6);
    assert_eq!(value["next"], Value::Null);
    let charged: i128 = expected.iter().map(|s| s.charged_fen).sum();
    assert_eq!(value["charged_fen"].as_i64().unwrap() as i128, charged);
    assert!(
        value["shops"][0].get("deductions").is_none(),
        "summaries have no deductions"
    );

    // Before anything happened, no shop exists.
    let (_, value) = get_json(&router, "/shops?as_of=2020-01-01", None).await;
    assert_eq!(value["shops"], serde_json::json!([]));
    assert_eq!(value["total"], 0);
    // Without as_of: now, which is after the demo.
    let (status, value) = get_json(&router, "/shops", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(value["shops"].as_array().unwrap().len(), 6);
}

/// The key a sort ranks by, worst first: larger is worse; a shop without a
/// rate ranks below every rate.
fn sort_key(sort: &str, shop: &Value) -> f64 {
    match sort {
        "judgments" => shop["judgments"].as_f64().unwrap(),
        "charged" => shop["charged_fen"].as_f64().unwrap(),
        "rate" => shop["rating"]["timeout_rate"].as_f64().unwrap_or(-1.0),
        _ => 0.0,
    }
}

#[tokio::test]
async fn shops_are_ranked_worst_first_filtered_and_paged() {
    let (_dir, _state, router) = demo_state(false).await;
    let reference = reference(demo_events());
    let summaries = reference.projection.ledger.shop_summaries(as_of_instant());
    for sort in ["shop", "judgments", "charged", "rate"] {
        for min_orders in [0u64, 40, 1_000_000] {
            let uri = format!("/shops?as_of={AS_OF}&sort={sort}&min_orders={min_orders}");
            let (status, all) = get_json(&router, &uri, None).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            let shops = all["shops"].as_array().unwrap();
            // Exactly the shops with enough orders.
            let mut ids: Vec<&str> = shops
                .iter()
                .map(|s| s["shop_id"].as_str().unwrap())
                .collect();
            let mut wanted: Vec<&str> = summaries
                .iter()
                .filter(|s| s.orders >= min_orders)
                .map(|s| s.shop_id.as_str())
                .collect();
            assert_eq!(all["total"], wanted.len(), "{uri}");
            // Worst first, ties by shop id ascending.
            for pair in shops.windows(2) {
                let (a, b) = (sort_key(sort, &pair[0]), sort_key(sort, &pair[1]));
                assert!(
                    a >= b,
                    "{uri}: {} before {}",
                    pair[0]["shop_id"],
                    pair[1]["shop_id"]
                );
                if a == b {
                    assert!(
                        pair[0]["shop_id"].as_str() < pair[1]["shop_id"].as_str(),
                        "{uri}: tie by id"
                    );
                }
            }
            ids.sort_unstable();
            wanted.sort_unstable();
            assert_eq!(ids, wanted, "{uri}");
            // Pages of 4 put together are the whole list.
            let mut paged = Vec::new();
            let mut offset = Some(0u64);
            while let Some(at) = offset {
                let (_, page) =
                    get_json(&router, &format!("{uri}&limit=4&offset={at}"), None).await;
                assert!(page["shops"].as_array().unwrap().len() <= 4);
                assert_eq!(page["total"], all["total"]);
                paged.extend(page["shops"].as_array().unwrap().iter().cloned());
                offset = page["next"].as_u64();
            }
            assert_eq!(&paged, shops, "{uri}");
        }
    }
    // The demo's shops differ in judgments, so the ranking is not the id order.
    let (_, by_judgments) = get_json(
        &router,
        &format!("/shops?as_of={AS_OF}&sort=judgments"),
        None,
    )
    .await;
    let (_, by_id) = get_json(&router, &format!("/shops?as_of={AS_OF}"), None).await;
    assert_ne!(by_judgments["shops"], by_id["shops"]);

    for (query, code) in [
        ("sort=worst", "invalid_sort"),
        ("limit=0", "invalid_limit"),
        ("limit=1001", "invalid_limit"),
        ("offset=1000000001", "invalid_offset"),
        ("min_orders=1000000001", "invalid_min_orders"),
        ("min_orders=-1", "invalid_query"),
    ] {
        expect_error(
            &router,
            Method::GET,
            &format!("/shops?{query}"),
            None,
            Body::empty(),
            StatusCode::BAD_REQUEST,
            code,
        )
        .await;
    }
}

#[tokio::test]
async fn shop_report_equals_the_cli_report() {
    let (_dir, _state, router) = demo_state(false).await;
    let reference = reference(demo_events());
    for shop in ["S01", "S02", "S06"] {
        let expected = reference
            .projection
            .ledger
            .shop_report(shop, as_of_instant(), true)
            .unwrap();
        let (status, value) = get_json(
            &router,
            &format!("/shops/{shop}?as_of={AS_OF}&full=true"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(value, serde_json::to_value(&expected).unwrap());
        assert!(value["deductions"].is_array());
    }
    // RFC 3339 with an offset works too, and means the same instant.
    let (_, by_date) = get_json(&router, "/shops/S01?as_of=2026-04-15", None).await;
    let (_, by_instant) = get_json(&router, "/shops/S01?as_of=2026-04-14T16:00:00Z", None).await;
    assert_eq!(by_date["charged_fen"], by_instant["charged_fen"]);
    assert_eq!(by_date["deductions"], by_instant["deductions"]);
}

#[tokio::test]
async fn shop_bad_input_is_a_4xx_that_says_what_is_wrong() {
    let (_dir, _state, router) = demo_state(false).await;
    let message = expect_error(
        &router,
        Method::GET,
        "/shops/NOPE?as_of=2026-04-15",
        None,
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert!(message.contains("no shop `NOPE`"), "{message}");
    let message = expect_error(
        &router,
        Method::GET,
        "/shops/S01?as_of=yesterday",
        None,
        Body::empty(),
        StatusCode::BAD_REQUEST,
        "invalid_instant",
    )
    .await;
    assert!(message.contains("as_of `yesterday`"), "{message}");
    let message = expect_error(
        &router,
        Method::GET,
        "/shops/S01?asof=2026-04-15",
        None,
        Body::empty(),
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
    assert!(message.contains("asof"), "{message}");
    let long = "S".repeat(129);
    expect_error(
        &router,
        Method::GET,
        &format!("/shops/{long}"),
        None,
        Body::empty(),
        StatusCode::BAD_REQUEST,
        "invalid_id",
    )
    .await;
    expect_error(
        &router,
        Method::GET,
        "/shops/S01?known_at=soon",
        None,
        Body::empty(),
        StatusCode::BAD_REQUEST,
        "invalid_instant",
    )
    .await;
    // A shop that exists only later is unknown as of before.
    expect_error(
        &router,
        Method::GET,
        "/shops/S01?as_of=2020-01-01",
        None,
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn order_report_equals_the_cli_report() {
    let (_dir, _state, router) = demo_state(false).await;
    let reference = reference(demo_events());
    let ledger = &reference.projection.ledger;
    let mut ids: Vec<&str> = ledger.order_ids().collect();
    ids.sort();
    for id in ids.iter().step_by(37) {
        let expected = ledger.order_report(id, as_of_instant()).unwrap();
        let (status, value) = get_json(&router, &format!("/orders/{id}?as_of={AS_OF}"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(value, serde_json::to_value(&expected).unwrap());
    }
    let message = expect_error(
        &router,
        Method::GET,
        "/orders/O0001?as_of=2020-01-01",
        None,
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert!(
        message.contains("as_of"),
        "HTTP names the parameter: {message}"
    );
    assert!(!message.contains("--as-of"), "{message}");
    expect_error(
        &router,
        Method::GET,
        "/orders/NOPE",
        None,
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        &router,
        Method::GET,
        "/orders/O0001?as_of=2026-13-01",
        None,
        Body::empty(),
        StatusCode::BAD_REQUEST,
        "invalid_instant",
    )
    .await;
}

/// Follows `GET /orders?{query}` page by page (`limit` rows each) from the
/// start; every page's total and the pages put together must be `expected`.
/// Returns how many pages there were.
async fn walk_pages(
    router: &axum::Router,
    query: &str,
    limit: usize,
    expected: &[penalty_core::OrderRow],
) -> usize {
    let mut collected: Vec<Value> = Vec::new();
    let mut offset = Some(0u64);
    let mut pages = 0;
    while let Some(at) = offset {
        let (status, page) = get_json(
            router,
            &format!("/orders?as_of={AS_OF}&{query}&limit={limit}&offset={at}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert_eq!(page["total"], expected.len(), "{query}");
        collected.extend(page["orders"].as_array().unwrap().iter().cloned());
        offset = page["next"].as_u64();
        pages += 1;
        assert!(
            pages <= expected.len().div_ceil(limit),
            "{query}: too many pages"
        );
    }
    assert_eq!(
        Value::Array(collected),
        serde_json::to_value(expected).unwrap(),
        "{query}"
    );
    pages
}

#[tokio::test]
async fn orders_are_filtered_and_paged_like_the_export() {
    let (_dir, _state, router) = demo_state(false).await;
    let reference = reference(demo_events());
    let ledger = &reference.projection.ledger;
    let all = ledger.order_rows(as_of_instant(), |_| true);

    // Paging: concatenated pages equal the whole list.
    let pages = walk_pages(&router, "", 100, &all).await;
    assert_eq!(pages, all.len().div_ceil(100));

    // Filters: the export's.
    let expected = ledger.order_rows(as_of_instant(), |row| {
        row.shop_id == "S02" && row.judgments > 0 && row.status == OrderStatus::AwaitingShipment
    });
    let (_, page) = get_json(
        &router,
        &format!(
            "/orders?as_of={AS_OF}&shop=S02&violating=true&status=awaiting_shipment&limit=1000"
        ),
        None,
    )
    .await;
    assert!(!expected.is_empty());
    assert_eq!(page["orders"], serde_json::to_value(&expected).unwrap());
    assert_eq!(page["next"], Value::Null);

    // A filter across every shop, in small pages that start and end inside
    // shops: the pages, put together, are the export's filtered rows.
    for (query, keep) in [
        (
            "violating=true",
            (|row: &penalty_core::OrderRow| row.judgments > 0)
                as fn(&penalty_core::OrderRow) -> bool,
        ),
        ("status=shipped", |row| row.status == OrderStatus::Shipped),
        ("status=refunded&violating=true", |row| {
            row.status == OrderStatus::Refunded && row.judgments > 0
        }),
    ] {
        let expected = ledger.order_rows(as_of_instant(), keep);
        assert!(!expected.is_empty(), "{query}: the demo has such rows");
        walk_pages(&router, query, 7, &expected).await;
    }

    let (_, page) = get_json(&router, &format!("/orders?as_of={AS_OF}&shop=NOPE"), None).await;
    assert_eq!(page["orders"], serde_json::json!([]));
    assert_eq!(page["total"], 0);

    // Each error names the parameter and what it takes.
    for (query, code, says) in [
        (
            "status=lost",
            "invalid_status",
            "status `lost` is not one of awaiting_shipment",
        ),
        (
            "limit=0",
            "invalid_limit",
            "limit 0 is out of range: ask for 1 to 1000",
        ),
        ("limit=1001", "invalid_limit", "limit 1001 is out of range"),
        (
            "limit=ten",
            "invalid_query",
            "query parameter limit must be a whole number",
        ),
        (
            "offset=-1",
            "invalid_query",
            "query parameter offset must be a whole number",
        ),
        (
            "violating=maybe",
            "invalid_query",
            "query parameter violating must be true or false",
        ),
        (
            "colour=red",
            "invalid_query",
            "unknown query parameter colour: this route takes one of `as_of`",
        ),
    ] {
        let message = expect_error(
            &router,
            Method::GET,
            &format!("/orders?{query}"),
            None,
            Body::empty(),
            StatusCode::BAD_REQUEST,
            code,
        )
        .await;
        assert!(message.starts_with(says), "{query}: {message}");
    }
}

/// The chart's and the deduction table's routes: `GET /shops/{id}/days`
/// is the core's `shop_days` and adds up to the shop report, and the pages
/// of `GET /shops/{id}/deductions` (in order, and newest first) are the
/// report's deductions.
#[tokio::test]
async fn days_and_deduction_pages_equal_the_shop_report() {
    let (_dir, _state, router) = demo_state(false).await;
    let reference = reference(demo_events());
    let ledger = &reference.projection.ledger;
    let report = ledger.shop_report("S01", as_of_instant(), true).unwrap();
    let deductions = serde_json::to_value(report.deductions.as_ref().unwrap()).unwrap();
    let deductions = deductions.as_array().unwrap().clone();
    assert!(deductions.len() > 5, "the demo's S01 has deductions");

    let (status, days) = get_json(&router, &format!("/shops/S01/days?as_of={AS_OF}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let expected = ledger.shop_days("S01", as_of_instant()).unwrap();
    assert_eq!(days, serde_json::to_value(&expected).unwrap());
    let sum = |key: &str| -> i64 {
        days["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d[key].as_i64().unwrap())
            .sum()
    };
    assert_eq!(sum("charged_fen"), report.charged_fen as i64);
    assert_eq!(sum("judgments"), report.judgments as i64);

    for (newest, expected) in [
        ("false", deductions.clone()),
        ("true", deductions.iter().rev().cloned().collect::<Vec<_>>()),
    ] {
        let mut read: Vec<Value> = Vec::new();
        let mut offset = Some(0u64);
        while let Some(at) = offset {
            let (status, page) = get_json(
                &router,
                &format!("/shops/S01/deductions?as_of={AS_OF}&newest={newest}&limit=4&offset={at}"),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(page["total"], deductions.len());
            assert!(page["deductions"].as_array().unwrap().len() <= 4);
            read.extend(page["deductions"].as_array().unwrap().iter().cloned());
            offset = page["next"].as_u64();
        }
        assert_eq!(read, expected, "newest={newest}");
    }
    for uri in ["/shops/NO-SUCH-SHOP/days", "/shops/NO-SUCH-SHOP/deductions"] {
        expect_error(
            &router,
            Method::GET,
            &format!("{uri}?as_of={AS_OF}"),
            None,
            Body::empty(),
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    expect_error(
        &router,
        Method::GET,
        &format!("/shops/S01/deductions?as_of={AS_OF}&limit=0"),
        None,
        Body::empty(),
        StatusCode::BAD_REQUEST,
        "invalid_limit",
    )
    .await;
}

/// R14 over HTTP: the pages of `GET /shops/{id}/postings` add up to the
/// core's booked ledger, and its sum is the shop report's `booked_fen`.
#[tokio::test]
async fn postings_are_paged_and_equal_the_booked_ledger() {
    let (_dir, _state, router) = demo_state(false).await;
    let reference = reference(demo_events());
    let expected = reference
        .projection
        .ledger
        .postings("S01", as_of_instant())
        .unwrap();
    assert!(!expected.postings.is_empty());
    let mut read: Vec<Value> = Vec::new();
    let mut offset = Some(0u64);
    while let Some(at) = offset {
        let (status, page) = get_json(
            &router,
            &format!("/shops/S01/postings?as_of={AS_OF}&limit=3&offset={at}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["total"], expected.postings.len());
        assert_eq!(page["booked_fen"], serde_json::json!(expected.booked_fen));
        read.extend(page["postings"].as_array().unwrap().iter().cloned());
        offset = page["next"].as_u64();
    }
    assert_eq!(
        read,
        serde_json::to_value(&expected.postings)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    );
    let (_, shop) = get_json(&router, &format!("/shops/S01?as_of={AS_OF}"), None).await;
    assert_eq!(shop["booked_fen"], serde_json::json!(expected.booked_fen));
    expect_error(
        &router,
        Method::GET,
        &format!("/shops/NO-SUCH-SHOP/postings?as_of={AS_OF}"),
        None,
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn the_inbox_reads_the_notice_feed_backwards_a_page_at_a_time() {
    let (_dir, _state, router) = demo_state(false).await;
    let (_, whole) = get_json(
        &router,
        &format!("/shops/S01/notices?as_of={AS_OF}&limit=1000"),
        None,
    )
    .await;
    let mut expected = whole["notices"].as_array().unwrap().clone();
    expected.reverse();
    assert!(expected.len() > 7, "the demo's S01 has more than a page");

    // newest=true, then `before` = `next`, 7 at a time: the whole feed newest
    // first, each notice once; `next` is null after the page that was not full.
    let mut read: Vec<Value> = Vec::new();
    let mut before: Option<String> = None;
    for _ in 0..200 {
        let uri = match &before {
            Some(cursor) => format!("/shops/S01/notices?as_of={AS_OF}&limit=7&before={cursor}"),
            None => format!("/shops/S01/notices?as_of={AS_OF}&limit=7&newest=true"),
        };
        let (status, page) = get_json(&router, &uri, None).await;
        assert_eq!(status, StatusCode::OK);
        let notices = page["notices"].as_array().unwrap();
        read.extend(notices.iter().cloned());
        match page["next"].as_str() {
            Some(cursor) => {
                assert_eq!(notices.len(), 7);
                assert_eq!(Some(cursor), notices.last().unwrap()["cursor"].as_str());
                before = Some(cursor.to_string());
            }
            None => {
                assert!(notices.len() < 7);
                break;
            }
        }
    }
    assert_eq!(read, expected);

    // `after` bounds a backwards read from below: the newest notices after
    // the third-oldest one are the feed without its first three.
    let third = expected[expected.len() - 3]["cursor"].as_str().unwrap();
    let (_, page) = get_json(
        &router,
        &format!("/shops/S01/notices?as_of={AS_OF}&limit=1000&newest=true&after={third}"),
        None,
    )
    .await;
    assert_eq!(
        page["notices"].as_array().unwrap()[..],
        expected[..expected.len() - 3]
    );
    assert!(page["next"].is_null());
    // The error names the parameter that is wrong.
    let message = expect_error(
        &router,
        Method::GET,
        "/shops/S01/notices?before=garbage",
        None,
        Body::empty(),
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
    )
    .await;
    assert!(message.starts_with("query parameter before "), "{message}");
}

/// `GET /shops/{id}` sends a first page of the closure-review flags and
/// of the banned products too (the largest shop at 1M has thousands of
/// flags); `closure_review_next` and `banned_products_next` lead into
/// `GET /shops/{id}/closure-review` and `GET /shops/{id}/bans`, whose pages
/// hold the rest, and `full=true` keeps both lists whole.
#[tokio::test]
async fn the_shop_report_pages_its_flags_and_bans_unless_asked_for_all() {
    let (_dir, _state, router) = demo_state(false).await;
    let reference = reference(demo_events());
    let ledger = &reference.projection.ledger;
    for (list, route) in [
        ("closure_review", "closure-review"),
        ("banned_products", "bans"),
    ] {
        // The demo shop with the longest list.
        let (shop, all) = ["S01", "S02", "S03", "S04", "S05"]
            .into_iter()
            .filter_map(|shop| ledger.shop_report(shop, as_of_instant(), false).ok())
            .map(|report| {
                let value = serde_json::to_value(&report).unwrap();
                (report.shop_id, value[list].as_array().unwrap().clone())
            })
            .max_by_key(|(_, all)| all.len())
            .unwrap();
        assert!(all.len() > 1, "a demo shop has more than one of {list}");
        let (status, first) = get_json(
            &router,
            &format!("/shops/{shop}?as_of={AS_OF}&limit=1"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(first[list].as_array().unwrap()[..], all[..1], "{list}");
        assert_eq!(first[format!("{list}_total")], all.len());
        assert_eq!(first[format!("{list}_next")], 1);
        // The summary pages them alike (only the deductions are left out).
        let (status, summary) = get_json(
            &router,
            &format!("/shops/{shop}?as_of={AS_OF}&summary=true&limit=1"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(summary[list], first[list], "{list}");
        assert_eq!(summary[format!("{list}_total")], all.len());
        assert_eq!(summary[format!("{list}_next")], 1);
        let mut read = first[list].as_array().unwrap().clone();
        let mut offset = first[format!("{list}_next")].as_u64();
        while let Some(at) = offset {
            let (status, page) = get_json(
                &router,
                &format!("/shops/{shop}/{route}?as_of={AS_OF}&limit=1&offset={at}"),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{route}");
            assert_eq!(page["total"], all.len());
            assert_eq!(page["shop_id"], shop.as_str());
            read.extend(page[list].as_array().unwrap().iter().cloned());
            offset = page["next"].as_u64();
        }
        assert_eq!(read, all, "{list}");
        let (_, whole) = get_json(
            &router,
            &format!("/shops/{shop}?as_of={AS_OF}&full=true&limit=1"),
            None,
        )
        .await;
        assert_eq!(whole[list], serde_json::Value::Array(all.clone()));
        assert!(whole.get(format!("{list}_next")).is_none());
        expect_error(
            &router,
            Method::GET,
            &format!("/shops/{shop}/{route}?as_of={AS_OF}&limit=0"),
            None,
            Body::empty(),
            StatusCode::BAD_REQUEST,
            "invalid_limit",
        )
        .await;
    }
    expect_error(
        &router,
        Method::GET,
        &format!("/shops/NO-SUCH-SHOP/bans?as_of={AS_OF}"),
        None,
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

/// `GET /shops/{id}` sends a page of the deductions unasked (a large
/// shop's whole list is megabytes): its first page is the report's first
/// deductions, `deductions_next` leads into `GET /shops/{id}/deductions`,
/// whose pages hold the rest, and `full=true` is the whole report.
#[tokio::test]
async fn the_shop_report_pages_its_deductions_unless_asked_for_all() {
    let (_dir, _state, router) = demo_state(false).await;
    let reference = reference(demo_events());
    let expected = reference
        .projection
        .ledger
        .shop_report("S01", as_of_instant(), true)
        .unwrap();
    let all = serde_json::to_value(expected.deductions.as_ref().unwrap()).unwrap();
    let all = all.as_array().unwrap().clone();
    assert!(all.len() > 3, "the demo's S01 has deductions");
    let (status, first) =
        get_json(&router, &format!("/shops/S01?as_of={AS_OF}&limit=3"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["deductions"].as_array().unwrap()[..], all[..3]);
    assert_eq!(first["deductions_total"], all.len());
    assert_eq!(first["deductions_next"], 3);
    assert_eq!(
        first["charged_fen"],
        serde_json::json!(expected.charged_fen)
    );
    let mut read = first["deductions"].as_array().unwrap().clone();
    let mut offset = first["deductions_next"].as_u64();
    while let Some(at) = offset {
        let (_, page) = get_json(
            &router,
            &format!("/shops/S01/deductions?as_of={AS_OF}&limit=3&offset={at}"),
            None,
        )
        .await;
        read.extend(page["deductions"].as_array().unwrap().iter().cloned());
        offset = page["next"].as_u64();
    }
    assert_eq!(read, all);
    // The default page is DEFAULT_PAGE long at most; one that holds every
    // deduction says so with a null `deductions_next`.
    let (_, default) = get_json(&router, &format!("/shops/S01?as_of={AS_OF}"), None).await;
    let shown = default["deductions"].as_array().unwrap().len();
    assert_eq!(shown, all.len().min(penalty_server::routes::DEFAULT_PAGE));
    assert_eq!(default["deductions_next"].is_null(), shown == all.len());
    let (_, whole) = get_json(
        &router,
        &format!("/shops/S01?as_of={AS_OF}&full=true"),
        None,
    )
    .await;
    assert_eq!(whole, serde_json::to_value(&expected).unwrap());
    assert!(whole.get("deductions_next").is_none());
    // summary=true wins over full=true, which wins over a limit.
    let (_, summary) = get_json(
        &router,
        &format!("/shops/S01?as_of={AS_OF}&summary=true&full=true&limit=3"),
        None,
    )
    .await;
    assert!(summary.get("deductions").is_none());
    let (_, also_whole) = get_json(
        &router,
        &format!("/shops/S01?as_of={AS_OF}&full=true&limit=3"),
        None,
    )
    .await;
    assert_eq!(also_whole, whole);
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=1001", "invalid_limit"),
    ] {
        expect_error(
            &router,
            Method::GET,
            &format!("/shops/S01?as_of={AS_OF}&{query}"),
            None,
            Body::empty(),
            StatusCode::BAD_REQUEST,
            code,
        )
        .await;
    }
}

#[tokio::test]
async fn the_shop_summary_is_the_report_without_its_deductions() {
    let (_dir, _state, router) = demo_state(false).await;
    let reference = reference(demo_events());
    for shop in ["S01", "S02", "S06"] {
        let expected = reference
            .projection
            .ledger
            .shop_report(shop, as_of_instant(), false)
            .unwrap();
        let (status, value) = get_json(
            &router,
            &format!("/shops/{shop}?as_of={AS_OF}&summary=true"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        // The figures, and the first page (DEFAULT_PAGE) of each list.
        let mut summary = serde_json::to_value(&expected).unwrap();
        for list in ["closure_review", "banned_products"] {
            let all = summary[list].as_array().unwrap().clone();
            let page = penalty_server::routes::DEFAULT_PAGE;
            summary[list] = Value::Array(all.iter().take(page).cloned().collect());
            summary[format!("{list}_total")] = all.len().into();
            summary[format!("{list}_next")] = if all.len() > page {
                page.into()
            } else {
                Value::Null
            };
        }
        assert_eq!(value, summary);
        assert!(value.get("deductions").is_none_or(Value::is_null));
        assert!(value.get("deductions_next").is_none());
        let (_, full) = get_json(
            &router,
            &format!("/shops/{shop}?as_of={AS_OF}&summary=false"),
            None,
        )
        .await;
        assert!(full["deductions"].is_array());
        assert_eq!(full["charged_fen"], value["charged_fen"]);
    }
}

#[tokio::test]
async fn notices_are_delivered_once_per_cursor_position() {
    let (_dir, _state, router) = demo_state(false).await;
    let reference = reference(demo_events());
    // The whole feed in one page.
    let (status, whole) = get_json(
        &router,
        &format!("/shops/S01/notices?as_of={AS_OF}&limit=1000"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let whole = whole["notices"].as_array().unwrap().clone();
    let shop = reference
        .projection
        .ledger
        .shop_report("S01", as_of_instant(), true)
        .unwrap();
    // One notice per existing judgment, revoked ones included.
    let revoked_or_standing = shop.judgments as usize;
    assert!(whole.len() >= revoked_or_standing && !whole.is_empty());

    // Read it 7 at a time, following `next`: the same notices, each once.
    let mut read: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..200 {
        let uri = match &after {
            Some(cursor) => format!("/shops/S01/notices?as_of={AS_OF}&limit=7&after={cursor}"),
            None => format!("/shops/S01/notices?as_of={AS_OF}&limit=7"),
        };
        let (_, page) = get_json(&router, &uri, None).await;
        let notices = page["notices"].as_array().unwrap();
        if notices.is_empty() {
            // The position is kept: `next` is still the last cursor.
            assert_eq!(page["next"].as_str(), after.as_deref());
            break;
        }
        read.extend(notices.iter().cloned());
        after = page["next"].as_str().map(str::to_string);
    }
    assert_eq!(read, whole);

    expect_error(
        &router,
        Method::GET,
        "/shops/S01/notices?limit=0",
        None,
        Body::empty(),
        StatusCode::BAD_REQUEST,
        "invalid_limit",
    )
    .await;
    for bad in ["garbage", "1.2", "x.1.O1", "1.999.O1", "1.1."] {
        expect_error(
            &router,
            Method::GET,
            &format!("/shops/S01/notices?after={bad}"),
            None,
            Body::empty(),
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        )
        .await;
    }
    expect_error(
        &router,
        Method::GET,
        &format!("/shops/S01/notices?after={}", "x".repeat(300)),
        None,
        Body::empty(),
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
    )
    .await;
    expect_error(
        &router,
        Method::GET,
        "/shops/NOPE/notices",
        None,
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn order_events_are_the_stored_timeline() {
    let (_dir, _state, router) = demo_state(false).await;
    let (status, value) = get_json(&router, "/orders/O0098/events", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(value["order_id"], "O0098");
    let events = value["events"].as_array().unwrap();
    assert!(events.len() >= 2, "{value}");
    assert!(events.iter().any(|e| e["event"]["type"] == "paid"));
    assert!(events.iter().all(|e| e["event"]["order_id"] == "O0098"));
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "log order");
    // Every line of the demo naming the order is there.
    let lines = String::from_utf8(demo_events()).unwrap();
    let in_fixture = lines
        .lines()
        .filter(|l| l.contains("\"order_id\":\"O0098\""))
        .count();
    assert_eq!(events.len(), in_fixture);

    assert_eq!(
        value["next"],
        serde_json::Value::Null,
        "one page holds them all"
    );

    // A page at a time, each resuming after the `seq` the last one named,
    // gives the same timeline, and the last page says there is no more.
    let mut paged = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let path = match after {
            Some(seq) => format!("/orders/O0098/events?limit=1&after={seq}"),
            None => "/orders/O0098/events?limit=1".to_string(),
        };
        let (status, page) = get_json(&router, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let events = page["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{page}");
        paged.extend(events.iter().cloned());
        match page["next"].as_u64() {
            Some(next) => {
                assert_eq!(Some(next), events.last().unwrap()["seq"].as_u64());
                after = Some(next);
            }
            None => break,
        }
        assert!(paged.len() <= seqs.len(), "the pages do not end");
    }
    assert_eq!(&paged, events);
    // After the last event: an empty page, not a 404.
    let last = seqs.last().unwrap();
    let (status, past) =
        get_json(&router, &format!("/orders/O0098/events?after={last}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(past["events"], serde_json::json!([]));
    assert_eq!(past["next"], serde_json::Value::Null);

    // as_of keeps only the events that happened by then.
    let (_, early) = get_json(&router, "/orders/O0098/events?as_of=2020-01-01", None).await;
    assert_eq!(early["events"], serde_json::json!([]));

    expect_error(
        &router,
        Method::GET,
        "/orders/NOPE/events",
        None,
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        &router,
        Method::GET,
        "/orders/O0098/events?known_at=2026-01-01",
        None,
        Body::empty(),
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
    expect_error(
        &router,
        Method::GET,
        "/orders/O0098/events?limit=0",
        None,
        Body::empty(),
        StatusCode::BAD_REQUEST,
        "invalid_limit",
    )
    .await;
}

#[tokio::test]
async fn known_at_answers_with_what_was_recorded_by_then() {
    let (_dir, _state, router) = demo_state(false).await;
    let (_, live) = get_json(&router, &format!("/shops/S01?as_of={AS_OF}"), None).await;
    let (status, later) = get_json(
        &router,
        &format!("/shops/S01?as_of={AS_OF}&known_at=2100-01-01"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(live, later);
    // Before anything was recorded, no shop is known.
    let (_, before) = get_json(
        &router,
        &format!("/shops?as_of={AS_OF}&known_at=2000-01-01"),
        None,
    )
    .await;
    assert_eq!(before["shops"], serde_json::json!([]));
    expect_error(
        &router,
        Method::GET,
        &format!("/orders/O0098?as_of={AS_OF}&known_at=2000-01-01"),
        None,
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let (_dir, _state, router) = demo_state(false).await;
    expect_error(
        &router,
        Method::GET,
        "/nope",
        None,
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        &router,
        Method::DELETE,
        "/shops/S01",
        None,
        Body::empty(),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    expect_error(
        &router,
        Method::GET,
        "/events",
        None,
        Body::empty(),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn metrics_count_ingest_and_time_requests() {
    let (_dir, _state, router) = demo_state(false).await;
    get_json(&router, "/shops/S01", None).await;
    get_json(&router, "/shops/S01", None).await;
    let (status, headers, body) = call(&router, Method::GET, "/metrics", None, Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("penalty_events_appended_total 757"), "{text}");
    assert!(text.contains("penalty_events_rejected_total 0"));
    assert!(text.contains("penalty_events_duplicates_total 0"));
    assert!(text.contains(
        "penalty_http_requests_total{method=\"GET\",route=\"/shops/{id}\",status=\"200\"} 2"
    ));
    assert!(text.contains(
        "penalty_http_request_duration_seconds_count{method=\"GET\",route=\"/shops/{id}\"} 2"
    ));
    assert!(text.contains("# TYPE penalty_http_request_duration_seconds histogram"));
}

#[tokio::test]
async fn the_dashboard_is_served_from_the_binary() {
    let (_dir, _state, router) = demo_state(false).await;
    for (uri, content_type) in [
        ("/", "text/html"),
        ("/ui/shops/S01", "text/html"),
        ("/ui/orders/O0098", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/phrases.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
    ] {
        let (status, headers, body) = call(&router, Method::GET, uri, None, Body::empty()).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with(content_type));
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!body.is_empty());
        // Offline: nothing is loaded from another host (the SVG namespace
        // is a name, not a fetch; `http://{0}/` in phrases.js is a place of
        // a CLI phrase, the start-up line of `penalty serve`, not a host).
        let text = String::from_utf8_lossy(&body)
            .replace("http://www.w3.org/2000/svg", "")
            .replace("http://{", "");
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{uri}"
        );
    }
}

/// The sentences of an answer follow `Accept-Language` (the dashboard's
/// language switch sends it): an order's explain lines, the at-risk lines
/// and the postings' and notices' causes are the core's in that language,
/// every other field the same.
#[tokio::test]
async fn sentences_follow_accept_language() {
    use penalty_core::labels::Lang;
    use tower::ServiceExt;
    let (_dir, _state, router) = demo_state(true).await;
    let reference = reference(demo_events());
    let ledger = &reference.projection.ledger;
    let as_of = penalty_core::UnixNs::parse_rfc3339("2026-03-20T00:00:00+08:00").unwrap();
    let ask = |uri: &str, language: Option<&str>| {
        let mut request = axum::http::Request::builder()
            .uri(uri)
            .header("authorization", format!("Bearer {SELLER_S01}"));
        if let Some(language) = language {
            request = request.header("accept-language", language);
        }
        let request = request.body(axum::body::Body::empty()).unwrap();
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let bytes = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        }
    };
    let risk = ledger
        .at_risk(Some("S01"), as_of, penalty_core::Within::DAY)
        .unwrap();
    assert!(!risk.orders.is_empty());
    let order_id = risk.orders[0].order_id.clone();
    let order_uri = format!("/orders/{order_id}?as_of=2026-03-20");
    let english = ask(&order_uri, None).await;
    for (header, lang) in [
        (None, Lang::En),
        (Some("en-US,en;q=0.9"), Lang::En),
        (Some("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh),
        (Some("fr, zh;q=0.5"), Lang::Zh),
    ] {
        let want = ledger.order_report_in(&order_id, as_of, lang).unwrap();
        let got = ask(&order_uri, header).await;
        assert_eq!(got, serde_json::to_value(&want).unwrap(), "{header:?}");
        let mut same = got.clone();
        same["explain"] = english["explain"].clone();
        assert_eq!(same, english, "only the sentences change");
        let page = ask("/shops/S01/at-risk?as_of=2026-03-20&limit=1000", header).await;
        let lines: Vec<&str> = page["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["line"].as_str().unwrap())
            .collect();
        let want: Vec<String> = risk
            .orders
            .iter()
            .map(|o| penalty_core::explain::at_risk_line_in(o, lang))
            .collect();
        assert_eq!(lines, want, "{header:?}");
        let causes = |postings: &Value| -> Vec<String> {
            postings
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["cause"].as_str().unwrap().to_string())
                .collect()
        };
        let page = ask("/shops/S01/postings?as_of=2026-03-20&limit=1000", header).await;
        let want = ledger.postings_in("S01", as_of, lang).unwrap();
        assert!(!want.postings.is_empty());
        let want: Vec<String> = want.postings.into_iter().map(|p| p.cause).collect();
        assert_eq!(causes(&page["postings"]), want, "{header:?}");
        // A correction's notice carries its posting's cause (cursors hold
        // when each was recorded, which differs between the two stores).
        let feed = ask("/shops/S01/notices?as_of=2026-03-20&limit=1000", header).await;
        let notice_causes: Vec<&str> = feed["notices"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["posting"]["cause"].as_str())
            .collect();
        let want: Vec<String> = ledger
            .notices_in("S01", as_of, None, 1000, lang)
            .unwrap()
            .into_iter()
            .filter_map(|n| n.posting.map(|p| p.cause))
            .collect();
        assert!(!want.is_empty(), "the demo's S01 has corrections");
        assert_eq!(notice_causes, want, "{header:?}");
    }
    let zh = ask(&order_uri, Some("zh-CN")).await;
    assert_ne!(zh["explain"], english["explain"]);
    assert!(zh["explain"][0].as_str().unwrap().contains("付款"), "{zh}");
}

#[tokio::test]
async fn at_risk_equals_the_core_query_and_is_bounded() {
    let (_dir, _state, router) = demo_state(true).await;
    let reference = reference(demo_events());
    let as_of = penalty_core::UnixNs::parse_rfc3339("2026-03-20T00:00:00+08:00").unwrap();
    for (within, minutes) in [("24h", 24 * 60), ("90m", 90), ("7d", 7 * 24 * 60)] {
        let expected = reference
            .projection
            .ledger
            .at_risk(
                Some("S01"),
                as_of,
                penalty_core::Within::parse(&format!("{minutes}m")).unwrap(),
            )
            .unwrap();
        let (status, value) = get_json(
            &router,
            &format!("/shops/S01/at-risk?as_of=2026-03-20&within={within}&limit=1000"),
            Some(SELLER_S01),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{value}");
        let mut want = serde_json::to_value(&expected).unwrap();
        for (order, typed) in want["orders"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .zip(&expected.orders)
        {
            order["line"] = penalty_core::explain::at_risk_line(typed).into();
        }
        want["total"] = expected.orders.len().into();
        want["next"] = serde_json::Value::Null;
        assert_eq!(value, want, "within={within}");
    }
    // The 24 h list is not empty at that instant, so the comparison means something.
    let (_, day) = get_json(
        &router,
        "/shops/S01/at-risk?as_of=2026-03-20",
        Some(SELLER_S01),
    )
    .await;
    assert!(day["total"].as_u64().unwrap() >= 2, "{day}");
    assert_eq!(day["within_hours"], 24);
    assert!(day["orders"][0]["line"]
        .as_str()
        .unwrap()
        .starts_with("ship O0051 within 7 h 42 min"));
    // limit bounds the list, total counts every order.
    let (_, one) = get_json(
        &router,
        "/shops/S01/at-risk?as_of=2026-03-20&within=30d&limit=1",
        Some(OPERATOR),
    )
    .await;
    assert_eq!(one["orders"].as_array().unwrap().len(), 1);
    assert!(one["total"].as_u64().unwrap() > 1);
    // Pages of one, each from the previous page's `next`, walk the list.
    let (_, all) = get_json(
        &router,
        "/shops/S01/at-risk?as_of=2026-03-20&within=30d&limit=1000",
        Some(OPERATOR),
    )
    .await;
    let mut walked = Vec::new();
    let mut offset = Some(0);
    while let Some(at) = offset {
        let (_, page) = get_json(
            &router,
            &format!("/shops/S01/at-risk?as_of=2026-03-20&within=30d&limit=1&offset={at}"),
            Some(OPERATOR),
        )
        .await;
        assert_eq!(page["total"], all["total"]);
        walked.extend(page["orders"].as_array().unwrap().iter().cloned());
        offset = page["next"].as_u64();
    }
    assert_eq!(&walked, all["orders"].as_array().unwrap());

    for bad in [
        "0h", "012h", "367d", "8785h", "527041m", "1w", "h", "", "1.5h",
    ] {
        expect_error(
            &router,
            Method::GET,
            &format!("/shops/S01/at-risk?within={bad}"),
            Some(OPERATOR),
            Body::empty(),
            StatusCode::BAD_REQUEST,
            "invalid_within",
        )
        .await;
    }
    for bad in ["0", "1001"] {
        expect_error(
            &router,
            Method::GET,
            &format!("/shops/S01/at-risk?limit={bad}"),
            Some(OPERATOR),
            Body::empty(),
            StatusCode::BAD_REQUEST,
            "invalid_limit",
        )
        .await;
    }
    // A seller asking for another shop, or any caller for an unknown one:
    // the same 404 bytes as for an unknown shop.
    let other = expect_error(
        &router,
        Method::GET,
        "/shops/S02/at-risk?as_of=2026-03-20",
        Some(SELLER_S01),
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let unknown = expect_error(
        &router,
        Method::GET,
        "/shops/S99/at-risk?as_of=2026-03-20",
        Some(SELLER_S01),
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(other.replace("S02", "S99"), unknown);
}

#[tokio::test]
async fn labels_are_the_core_table() {
    let (_dir, _state, router) = demo_state(true).await;
    // No token needed: the labels are the same for everyone.
    let (status, value) = get_json(&router, "/labels", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        value,
        serde_json::to_value(penalty_core::labels::LABELS).unwrap()
    );
    let awaiting = value
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["set"] == "order_status" && l["code"] == "awaiting_shipment")
        .unwrap();
    assert_eq!(awaiting["zh-CN"], "待发货");
    assert_eq!(awaiting["en"], "awaiting shipment");
}

/// `ShopRoute` lists exactly the routes of one shop, with their paths, so
/// that a cluster node, which serves them from that list, serves them all.
#[test]
fn the_shop_routes_are_the_servers_routes_under_a_shop() {
    use penalty_server::routes::ShopRoute;
    let under_a_shop: Vec<&str> = penalty_server::routes::routes()
        .into_iter()
        .map(|(_, path, _)| path)
        .filter(|path| *path == "/shops/{id}" || path.starts_with("/shops/{id}/"))
        .collect();
    let listed: Vec<&str> = ShopRoute::ALL.iter().map(|route| route.path()).collect();
    let mut sorted = (under_a_shop.clone(), listed.clone());
    sorted.0.sort_unstable();
    sorted.1.sort_unstable();
    assert_eq!(sorted.0, sorted.1);
    assert_eq!(listed.len(), under_a_shop.len());
}

/// Every route of one shop answers on one machine exactly as
/// `shop_route_answer` answers a cluster node from the same ledger: status,
/// content type, attachment name and body, byte for byte, for good and bad
/// queries (each check's refusal, in the order the checks run), a seller's
/// own shop, another shop and an unknown one, an invalid id, and both
/// languages.
#[tokio::test]
async fn one_machine_answers_every_shop_route_as_a_cluster_node_does() {
    use axum::http::Request;
    use http_body_util::BodyExt;
    use penalty_server::routes::{shop_route_answer, ShopRoute};
    use tower::ServiceExt;

    let (_dir, state, router) = demo_state(true).await;
    let queries = [
        "as_of=2026-04-15",
        "as_of=2026-03-20",
        "as_of=2026-04-15&limit=2",
        "as_of=2026-04-15&limit=2&offset=1",
        "as_of=2026-04-15&limit=0",
        "as_of=2026-04-15&limit=x",
        "as_of=2026-04-15&offset=2000000000",
        "as_of=2026-04-15&newest=true&limit=1",
        "as_of=2026-04-15&summary=true",
        "as_of=2026-04-15&full=true",
        "as_of=2026-04-15&full=maybe",
        "as_of=2026-03-20&within=48h",
        "as_of=2026-04-15&within=soon",
        "as_of=2026-04-15&after=nonsense",
        "as_of=2026-04-15&before=nonsense&limit=0",
        "as_of=2026-04-15&from=2026-03-01&to=2026-03-31&excel=true",
        "as_of=2026-04-15&from=yesterday",
        "as_of=2026-04-15&unknown=1",
        "as_of=2026-04-15&known_at=nonsense",
        "as_of=2026-04-15&known_at=nonsense&limit=0",
        "as_of=nonsense",
        "as_of=nonsense&limit=0&unknown=1",
        "as_of=2020-01-01",
    ];
    let long_id = "S".repeat(penalty_server::routes::MAX_ID_BYTES + 1);
    let shops = ["S01", "S02", "S99", long_id.as_str()];
    let callers = [(OPERATOR, None), (SELLER_S01, Some("S01"))];
    let mut compared = 0;
    for route in ShopRoute::ALL {
        for shop_id in shops {
            for query in queries {
                for (token, confined_to) in callers {
                    for language in ["", "zh-CN"] {
                        let uri = format!("{}?{query}", route.path().replace("{id}", shop_id));
                        let request = Request::builder()
                            .uri(&uri)
                            .header("authorization", format!("Bearer {token}"))
                            .header("accept-language", language)
                            .body(Body::empty())
                            .unwrap();
                        let response = router.clone().oneshot(request).await.unwrap();
                        let (confined_to, shop, query) =
                            (confined_to.map(str::to_string), shop_id.to_string(), query);
                        let cluster = state
                            .query_for(None, None, move |ledger| {
                                Ok(shop_route_answer(
                                    ledger,
                                    confined_to.as_deref(),
                                    route,
                                    &shop,
                                    Some(query),
                                    language,
                                ))
                            })
                            .await
                            .unwrap();
                        let mut answers = Vec::new();
                        for response in [response, cluster] {
                            let header = |name: &str| {
                                response
                                    .headers()
                                    .get(name)
                                    .map(|v| v.to_str().unwrap().to_string())
                            };
                            let head = (
                                response.status(),
                                header("content-type"),
                                header("content-disposition"),
                            );
                            let body = response.into_body().collect().await.unwrap().to_bytes();
                            answers.push((head, String::from_utf8_lossy(&body).to_string()));
                        }
                        assert_eq!(
                            answers[0], answers[1],
                            "{route:?} {uri} as {token} in {language:?}"
                        );
                        compared += 1;
                    }
                }
            }
        }
    }
    assert_eq!(
        compared,
        ShopRoute::ALL.len() * shops.len() * queries.len() * 4
    );
}

/// A cluster node pages a timeline it holds whole, in recording order, where
/// sequence numbers need not rise (a parked event's comes from another
/// stream): the page resumes after the event the cursor names, wherever it
/// stands.
#[test]
fn a_timeline_held_whole_resumes_after_the_cursors_event() {
    let event = |seq| penalty_server::state::TimelineEvent {
        seq,
        recorded_at: String::new(),
        event: serde_json::json!({}),
    };
    let ask = |after, limit| penalty_server::routes::EventsAsk {
        as_of: penalty_core::UnixNs(0),
        after,
        limit,
    };
    let seqs = |page: &[penalty_server::state::TimelineEvent]| -> Vec<u64> {
        page.iter().map(|e| e.seq).collect()
    };
    let timeline = || vec![event(7), event(3), event(9), event(4)];
    let (page, next) = ask(None, 2).page(timeline());
    assert_eq!((seqs(&page), next), (vec![7, 3], Some(3)));
    let (page, next) = ask(Some(3), 2).page(timeline());
    assert_eq!((seqs(&page), next), (vec![9, 4], None));
    let (page, next) = ask(Some(4), 2).page(timeline());
    assert_eq!((seqs(&page), next), (vec![], None));
}

/// What a person reads of a refusal follows `Accept-Language` as the
/// reports' sentences do: each 400 (and the core's 404s, and the hints of
/// rejected lines of `POST /events`) in English by default and in Chinese
/// for zh-CN, the status and code the same in both. The texts are golden
/// files, `refusals.en.golden` and `refusals.zh-CN.golden` beside this
/// test; after a deliberate change of wording, rewrite them with
/// `UPDATE_EXPECT=1 cargo test -p penalty-server --test server refusals`
/// and review the diff.
#[tokio::test]
async fn refusals_follow_accept_language() {
    use tower::ServiceExt;
    let (_dir, _state, router) = demo_state(false).await;
    let long_id = "x".repeat(129);
    let gets = [
        "/shops/S01?as_of=yesterday".to_string(),
        "/shops?known_at=2026-02-30".to_string(),
        "/shops?limit=0".to_string(),
        "/shops?offset=1000000001".to_string(),
        "/shops?min_orders=1000000001".to_string(),
        "/shops?sort=worst".to_string(),
        "/shops/S01/notices?after=nonsense".to_string(),
        "/shops/S01/at-risk?within=0h".to_string(),
        format!("/orders?shop={long_id}"),
        format!("/shops/{long_id}"),
        "/shops/NOPE?as_of=2026-03-20".to_string(),
        "/orders/NOPE?as_of=2026-03-20".to_string(),
    ];
    let ask = |method: Method, uri: &str, language: Option<&str>, body: &str| {
        let mut request = axum::http::Request::builder().method(method).uri(uri);
        if let Some(language) = language {
            request = request.header("accept-language", language);
        }
        let request = request
            .header("content-type", "application/x-ndjson")
            .body(Body::from(body.to_string()))
            .unwrap();
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };
    let rejected = [
        "not json",
        r#"{"event_id":"00000000-0000-4000-8000-000000000001","type":"refunded","at":"2026-03-01T00:00:00+08:00"}"#,
        r#"{"event_id":"00000000-0000-4000-8000-000000000002","type":"paid","at":"2026-03-01T00:00:00+08:00","order_id":"N1","shop_id":"S1","product_id":"P1","amount_fen":-5}"#,
    ]
    .join("\n");
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    let mut texts = Vec::new();
    for language in [None, Some("zh-CN,zh;q=0.9,en;q=0.8")] {
        let mut text = String::new();
        for uri in &gets {
            let (status, body) = ask(Method::GET, uri, language, "").await;
            let (_, english) = ask(Method::GET, uri, None, "").await;
            assert!(status.is_client_error(), "{uri}: {status}");
            assert_eq!(body["error"], english["error"], "{uri}: the same code");
            text.push_str(&format!(
                "GET {uri}\n  {} {}: {}\n",
                status.as_u16(),
                body["error"].as_str().unwrap(),
                body["message"].as_str().unwrap()
            ));
        }
        let (status, summary) = ask(Method::POST, "/events", language, &rejected).await;
        assert_eq!(status, StatusCode::OK, "{summary}");
        text.push_str("POST /events\n");
        for line in summary["rejects"].as_array().unwrap() {
            text.push_str(&format!(
                "  line {} {}: {}\n",
                line["line"],
                line["reason"].as_str().unwrap(),
                line["hint"].as_str().unwrap()
            ));
        }
        texts.push(text);
    }
    let dir = repo_root().join("crates/penalty-server/tests/server");
    let mut differ = Vec::new();
    for (name, text) in ["refusals.en.golden", "refusals.zh-CN.golden"]
        .into_iter()
        .zip(&texts)
    {
        let path = dir.join(name);
        if update {
            std::fs::write(&path, text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            differ.push(format!("{name}:\n{text}"));
        }
    }
    assert!(
        differ.is_empty(),
        "refusals differ from their golden files (rerun with UPDATE_EXPECT=1 and review the diff if the change is intended):\n{}",
        differ.join("\n")
    );
    // The Chinese texts are Chinese: no English sentence is left in them.
    for line in texts[1].lines().filter(|l| l.starts_with("  ")) {
        assert!(
            !line.contains(" is ") && !line.contains(" must ") && !line.contains(" the "),
            "an English sentence in Chinese: {line}"
        );
    }
}

/// A shop of `GET /shops` carries the first LISTED_SHOP_ITEMS of its
/// closure-review flags and banned products, never the whole list, and
/// `..._next` leads into the routes that hold the rest.
#[tokio::test]
async fn a_listed_shop_cuts_its_flags_and_bans_to_a_page() {
    let (_dir, state, router) = demo_state(false).await;
    // Orders of one shop, never shipped, each of its own product: each is
    // judged three times, so each bans its product (R6) and flags the shop
    // (R7).
    let cut = penalty_server::routes::LISTED_SHOP_ITEMS;
    let orders = cut + 3;
    let mut lines = String::new();
    for n in 0..orders {
        lines += &format!(
            r#"{{"event_id":"00000000-0000-4000-9000-{n:012}","type":"paid","at":"2026-03-01T10:00:00+08:00","order_id":"MANY{n}","shop_id":"SMANY","product_id":"PM{n}","amount_fen":100}}"#
        );
        lines += "\n";
    }
    let summary = state.ingest(axum::body::Bytes::from(lines)).await.unwrap();
    assert_eq!(summary.appended as usize, orders);
    let (status, page) = get_json(&router, &format!("/shops?as_of={AS_OF}&limit=1000"), None).await;
    assert_eq!(status, StatusCode::OK);
    let shop = page["shops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["shop_id"] == "SMANY")
        .unwrap()
        .clone();
    for (list, route) in [
        ("closure_review", "closure-review"),
        ("banned_products", "bans"),
    ] {
        assert_eq!(shop[list].as_array().unwrap().len(), cut, "{list}");
        assert_eq!(shop[format!("{list}_total")], orders, "{list}");
        assert_eq!(shop[format!("{list}_next")], cut, "{list}");
        let (_, rest) = get_json(
            &router,
            &format!("/shops/SMANY/{route}?as_of={AS_OF}&offset={cut}"),
            None,
        )
        .await;
        assert_eq!(rest[list].as_array().unwrap().len(), orders - cut, "{list}");
    }
}

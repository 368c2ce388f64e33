//! The order filters of `GET /orders` (paid range, capped days, closure
//! review), the CSV downloads (`GET /orders.csv`, `GET
//! /shops/{id}/postings.csv`) and `GET /data-range`, against the core's
//! answers on a reference ledger built the CLI's way.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use penalty_core::csv::{CsvRow, EXCEL_BOM};
use penalty_core::{OrderRow, OrderSort, PostingReport, RowFilter, UnixNs};
use serde_json::Value;

use super::support::*;

/// The core's rows for `filter` across every shop, or one shop.
fn rows(ledger: &penalty_core::Ledger, shop: Option<&str>, filter: RowFilter) -> Vec<OrderRow> {
    let mut rows = Vec::new();
    let _ = ledger.each_order_row(as_of_instant(), shop, filter, |row| {
        rows.push(row);
        Ok::<(), ()>(())
    });
    rows
}

/// The rows of `GET /orders?{query}`, walked page by page (`limit` each).
async fn walk(router: &axum::Router, query: &str, limit: usize, token: Option<&str>) -> Vec<Value> {
    let mut collected = Vec::new();
    let mut offset = Some(0u64);
    let mut total = None;
    while let Some(at) = offset {
        let (status, page) = get_json(
            router,
            &format!("/orders?as_of={AS_OF}&{query}&limit={limit}&offset={at}"),
            token,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        let this_total = page["total"].as_u64().unwrap();
        assert_eq!(*total.get_or_insert(this_total), this_total, "{query}");
        collected.extend(page["orders"].as_array().unwrap().iter().cloned());
        offset = page["next"].as_u64();
    }
    assert_eq!(collected.len() as u64, total.unwrap_or(0), "{query}");
    collected
}

fn at(text: &str) -> UnixNs {
    UnixNs::parse_asked(text, penalty_core::Policy::default().utc_offset).unwrap()
}

/// The filters of the shop page, each with the core filter it must equal.
fn filters() -> Vec<(&'static str, RowFilter)> {
    let paid = RowFilter {
        paid_from: Some(at("2026-03-05")),
        // `paid_to=2026-03-20` includes the whole of the 20th.
        paid_before: Some(at("2026-03-21")),
        ..RowFilter::default()
    };
    vec![
        ("paid_from=2026-03-05&paid_to=2026-03-20", paid),
        (
            "capped_day=true",
            RowFilter {
                capped_day: true,
                ..RowFilter::default()
            },
        ),
        (
            "closure_review=true",
            RowFilter {
                closure_review: true,
                ..RowFilter::default()
            },
        ),
        (
            "paid_from=2026-03-15&paid_to=2026-03-22&capped_day=true&violating=true",
            RowFilter {
                capped_day: true,
                violating: true,
                paid_from: Some(at("2026-03-15")),
                paid_before: Some(at("2026-03-23")),
                ..RowFilter::default()
            },
        ),
        (
            "paid_to=2026-03-18T12:00:00%2B08:00&status=shipped",
            RowFilter {
                paid_before: Some(UnixNs(at("2026-03-18T12:00:00+08:00").0 + 1)),
                status: Some(penalty_core::OrderStatus::Shipped),
                ..RowFilter::default()
            },
        ),
    ]
}

#[tokio::test]
async fn orders_are_filtered_by_paid_range_capped_days_and_closure_review_like_the_core() {
    let (_dir, _state, router) = demo_state(false).await;
    let reference = reference(demo_events());
    let ledger = &reference.projection.ledger;
    let everything = rows(ledger, None, RowFilter::default()).len();
    for (query, filter) in filters() {
        let expected = rows(ledger, None, filter);
        // Each filter must narrow the demo to something, or it tests nothing.
        assert!(
            !expected.is_empty() && expected.len() < everything,
            "{query}: {} of {everything} rows",
            expected.len()
        );
        let got = walk(&router, query, 13, None).await;
        assert_eq!(
            Value::Array(got),
            serde_json::to_value(&expected).unwrap(),
            "{query}"
        );
        // The same filter of one shop.
        let shop = expected[0].shop_id.clone();
        let got = walk(&router, &format!("{query}&shop={shop}"), 1000, None).await;
        let expected = rows(ledger, Some(&shop), filter);
        assert_eq!(
            Value::Array(got),
            serde_json::to_value(&expected).unwrap(),
            "{query}"
        );
    }
    for (query, code) in [
        ("paid_from=yesterday", "invalid_instant"),
        ("paid_to=2026-02-30", "invalid_instant"),
        ("capped_day=maybe", "invalid_query"),
        ("closure_review=1", "invalid_query"),
        ("excel=true", "invalid_query"),
    ] {
        expect_error(
            &router,
            Method::GET,
            &format!("/orders?{query}"),
            None,
            Body::empty(),
            StatusCode::BAD_REQUEST,
            code,
        )
        .await;
    }
}

#[tokio::test]
async fn each_sort_of_the_order_list_walked_in_pages_equals_the_cores_sorted_list() {
    let (_dir, _state, router) = demo_state(false).await;
    let reference = reference(demo_events());
    let ledger = &reference.projection.ledger;
    let violating = RowFilter {
        violating: true,
        ..RowFilter::default()
    };
    for sort in OrderSort::ALL {
        for (query, filter) in [("", RowFilter::default()), ("violating=true", violating)] {
            let all = ledger.order_rows_page(as_of_instant(), None, filter, sort, 0, usize::MAX);
            let unsorted = rows(ledger, None, filter);
            assert_eq!(all.total, unsorted.len());
            assert_eq!(all.rows.len(), unsorted.len());
            // The core's list is the filter's rows, each once, in the
            // sort's order (each key checked here on its own terms).
            let mut same = all.rows.clone();
            same.sort_by(|a, b| (&a.shop_id, &a.order_id).cmp(&(&b.shop_id, &b.order_id)));
            assert_eq!(same, unsorted, "{sort:?}");
            for pair in all.rows.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                let by_key = match sort {
                    OrderSort::Order => std::cmp::Ordering::Equal,
                    OrderSort::Paid => at(&a.paid_at).cmp(&at(&b.paid_at)),
                    OrderSort::Charged => b.charged_fen.cmp(&a.charged_fen),
                    OrderSort::Judgments => b.judgments.cmp(&a.judgments),
                    OrderSort::Status => {
                        let place = |r: &OrderRow| {
                            penalty_core::OrderStatus::ALL
                                .iter()
                                .position(|s| *s == r.status)
                        };
                        place(a).cmp(&place(b))
                    }
                };
                let ties = (&a.shop_id, &a.order_id).cmp(&(&b.shop_id, &b.order_id));
                assert_eq!(
                    by_key.then(ties),
                    std::cmp::Ordering::Less,
                    "{sort:?}: {a:?} {b:?}"
                );
            }
            let query = format!("sort={}&{query}", sort.as_str());
            let got = walk(&router, &query, 13, None).await;
            assert_eq!(
                Value::Array(got),
                serde_json::to_value(&all.rows).unwrap(),
                "{query}"
            );
        }
        // One shop's list in pages of 7.
        let shop = "S01";
        let all = ledger.order_rows_page(
            as_of_instant(),
            Some(shop),
            RowFilter::default(),
            sort,
            0,
            usize::MAX,
        );
        assert!(!all.rows.is_empty());
        let query = format!("sort={}&shop={shop}", sort.as_str());
        let got = walk(&router, &query, 7, None).await;
        assert_eq!(
            Value::Array(got),
            serde_json::to_value(&all.rows).unwrap(),
            "{query}"
        );
    }
    // The sorts differ on the demo, or the test would tell nothing.
    let firsts: std::collections::BTreeSet<String> = OrderSort::ALL
        .iter()
        .map(|&sort| {
            let page =
                ledger.order_rows_page(as_of_instant(), None, RowFilter::default(), sort, 0, 5);
            page.rows
                .iter()
                .map(|r| r.order_id.clone())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    assert!(firsts.len() >= 4, "{firsts:?}");
    let message = expect_error(
        &router,
        Method::GET,
        "/orders?sort=charged_fen",
        None,
        Body::empty(),
        StatusCode::BAD_REQUEST,
        "invalid_sort",
    )
    .await;
    assert!(
        message.contains("order, paid, charged, judgments, status"),
        "{message}"
    );
    // The CSV keeps the export's order and refuses a sort.
    expect_error(
        &router,
        Method::GET,
        "/orders.csv?sort=charged",
        None,
        Body::empty(),
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
}

/// The CLI's CSV of these rows (`penalty export orders --format csv`,
/// `--excel`): the core's lines, which the CLI writes.
fn csv_of<R: CsvRow>(rows: &[R], excel: bool) -> String {
    let mut out = if excel {
        EXCEL_BOM.to_string()
    } else {
        String::new()
    };
    out += &R::csv_header(excel);
    for row in rows {
        out += &row.csv_line(excel);
    }
    out
}

#[tokio::test]
async fn the_orders_csv_holds_the_filters_rows_as_the_export_writes_them() {
    let (_dir, _state, router) = demo_state(true).await;
    let reference = reference(demo_events());
    let ledger = &reference.projection.ledger;
    let mut queries = filters();
    queries.push(("", RowFilter::default()));
    for (query, filter) in queries {
        let expected = rows(ledger, None, filter);
        for excel in [false, true] {
            let uri = format!("/orders.csv?as_of={AS_OF}&{query}&excel={excel}");
            let (status, headers, body) =
                call(&router, Method::GET, &uri, Some(OPERATOR), Body::empty()).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
            assert!(headers["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment"));
            let body = String::from_utf8(body.to_vec()).unwrap();
            assert_eq!(body, csv_of(&expected, excel), "{uri}");
            // The totals a reader checks: rows and charged money.
            let charged: i64 = expected.iter().map(|r| r.charged_fen).sum();
            let lines = body.trim_end().split("\r\n").count() - 1;
            assert_eq!(lines, expected.len(), "{uri}");
            if filter.capped_day {
                assert!(charged > 0, "{uri}: capped days charge something");
            }
        }
    }
    // A seller downloads its own shop's rows only, also without naming it.
    let own = rows(ledger, Some("S01"), RowFilter::default());
    for uri in [
        format!("/orders.csv?as_of={AS_OF}"),
        format!("/orders.csv?as_of={AS_OF}&shop=S01"),
    ] {
        let (status, _, body) =
            call(&router, Method::GET, &uri, Some(SELLER_S01), Body::empty()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            String::from_utf8(body.to_vec()).unwrap(),
            csv_of(&own, false)
        );
    }
    for (query, code) in [
        ("limit=5", "invalid_query"),
        ("offset=1", "invalid_query"),
        ("excel=yes", "invalid_query"),
        ("paid_from=soon", "invalid_instant"),
    ] {
        expect_error(
            &router,
            Method::GET,
            &format!("/orders.csv?{query}"),
            Some(OPERATOR),
            Body::empty(),
            StatusCode::BAD_REQUEST,
            code,
        )
        .await;
    }
}

#[tokio::test]
async fn a_seller_asking_for_another_shops_csv_gets_the_404_of_an_unknown_shop() {
    let (_dir, _state, router) = demo_state(true).await;
    for (other, unknown) in [
        (
            format!("/orders.csv?as_of={AS_OF}&shop=S02"),
            format!("/orders.csv?as_of={AS_OF}&shop=S99"),
        ),
        (
            format!("/shops/S02/postings.csv?as_of={AS_OF}"),
            format!("/shops/S99/postings.csv?as_of={AS_OF}"),
        ),
    ] {
        let other = expect_error(
            &router,
            Method::GET,
            &other,
            Some(SELLER_S01),
            Body::empty(),
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let unknown = expect_error(
            &router,
            Method::GET,
            &unknown,
            Some(SELLER_S01),
            Body::empty(),
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        assert_eq!(other.replace("S02", "S99"), unknown);
    }
    // An operator asking for an unknown shop's postings gets the same 404
    // before any CSV, as GET /shops/{id}/postings answers.
    let message = expect_error(
        &router,
        Method::GET,
        &format!("/shops/S99/postings.csv?as_of={AS_OF}"),
        Some(OPERATOR),
        Body::empty(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert!(message.contains("S99"), "{message}");
    expect_error(
        &router,
        Method::GET,
        "/orders.csv",
        None,
        Body::empty(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn the_postings_csv_is_the_export_of_the_shop() {
    let (_dir, _state, router) = demo_state(false).await;
    let reference = reference(demo_events());
    let ledger = &reference.projection.ledger;
    let offset = penalty_core::Policy::default().utc_offset;
    for (query, from, to) in [
        ("", None, None),
        (
            "&from=2026-03-10&to=2026-03-20",
            Some("2026-03-10"),
            Some("2026-03-20"),
        ),
    ] {
        let day = |text: Option<&str>| text.map(|t| at(t).local_day(offset));
        let mut postings: Vec<PostingReport> = Vec::new();
        let _ = ledger.each_posting(as_of_instant(), Some("S01"), day(from), day(to), |p| {
            postings.push(p);
            Ok::<(), ()>(())
        });
        assert!(!postings.is_empty(), "{query}");
        let uri = format!("/shops/S01/postings.csv?as_of={AS_OF}{query}");
        let (status, _, body) = call(&router, Method::GET, &uri, None, Body::empty()).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(
            String::from_utf8(body.to_vec()).unwrap(),
            csv_of(&postings, false)
        );
    }
}

#[tokio::test]
async fn the_data_range_is_the_first_and_last_event_instant() {
    let (_dir, _state, router) = demo_state(true).await;
    let reference = reference(demo_events());
    let ledger = &reference.projection.ledger;
    let offset = penalty_core::Policy::default().utc_offset;
    for (token, shop) in [(OPERATOR, None), (SELLER_S01, Some("S01"))] {
        let (first, last) = ledger.event_span(shop).unwrap();
        let (status, range) = get_json(&router, "/data-range", Some(token)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(range["from"], first.to_rfc3339(offset));
        assert_eq!(range["to"], last.to_rfc3339(offset));
    }
    let (operator, seller) = (
        ledger.event_span(None).unwrap(),
        ledger.event_span(Some("S01")).unwrap(),
    );
    assert!(operator.0 <= seller.0 && seller.1 <= operator.1);
}

/// A generated workload of `orders` orders over `shops` shops.
fn generated(orders: u64, shops: u64, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    penalty_gen::generate(
        &penalty_gen::GenOptions {
            orders,
            shops,
            seed,
        },
        &mut out,
    )
    .unwrap();
    out
}

/// Waits until the download queue the metrics show stops growing (the
/// writer is paused or done), and answers it.
async fn settled_queue(state: &penalty_server::AppState) -> u64 {
    let queued = || {
        state
            .metrics()
            .download_bytes_queued
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let mut last = u64::MAX;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let now = queued();
        if now == last && now > 0 {
            return now;
        }
        last = now;
    }
    panic!("the download queue kept changing: {last} bytes");
}

/// A client that does not read holds its download back: the server
/// computes at most `AHEAD_CHUNKS` chunks ahead of it (what the metrics
/// show queued, a small part of the whole), lets the ledger go while it
/// waits (an upload is folded meanwhile), and what the client reads in the
/// end is the export's whole CSV, resumed where each pause stopped. Both
/// downloads, the orders' and a shop's postings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_holds_a_download_back_within_a_few_chunks() {
    use http_body_util::BodyExt;
    use penalty_server::download::{AHEAD_CHUNKS, CHUNK_BYTES};
    use tower::ServiceExt;
    let events = generated(30_000, 1, 5);
    let (_dir, state) = open_state(None, penalty_server::state::Limits::default());
    state
        .ingest(axum::body::Bytes::from(events.clone()))
        .await
        .unwrap();
    let router = penalty_server::router(state.clone());
    let reference = reference(events);
    let ledger = &reference.projection.ledger;
    let shop = ledger.shop_summaries(as_of_instant())[0].shop_id.clone();
    let mut postings: Vec<PostingReport> = Vec::new();
    let _ = ledger.each_posting(as_of_instant(), Some(&shop), None, None, |p| {
        postings.push(p);
        Ok::<(), ()>(())
    });
    // A shop whose id sorts before every other, paid during the pauses:
    // the rows after a pause are still the reference's.
    let mut upload = 0;
    for (uri, expected) in [
        (
            format!("/orders.csv?as_of={AS_OF}"),
            csv_of(&rows(ledger, None, RowFilter::default()), false),
        ),
        (
            format!("/shops/{shop}/postings.csv?as_of={AS_OF}"),
            csv_of(&postings, false),
        ),
    ] {
        // A chunk is sent once it holds CHUNK_BYTES: it is longer by less
        // than a line.
        let bound = (AHEAD_CHUNKS * (CHUNK_BYTES + 1024)) as u64;
        assert!(
            expected.len() as u64 > 2 * bound,
            "{uri}: a download of {} bytes is not held back",
            expected.len()
        );
        let request = axum::http::Request::get(&uri).body(Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        let mut body = response.into_body();
        let queued = settled_queue(&state).await;
        assert!(
            queued <= bound,
            "{uri}: {queued} bytes queued ahead of the client"
        );
        // The writer holds no lock while it waits: an upload is folded.
        upload += 1;
        let line = format!(
            "{{\"event_id\":\"00000000-0000-4000-8000-{upload:012}\",\"type\":\"paid\",\"at\":\"2026-01-02T00:00:00+08:00\",\"order_id\":\"0-ORDER-{upload}\",\"shop_id\":\"0-SHOP\",\"product_id\":\"P\",\"amount_fen\":100}}\n"
        );
        let folded = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            state.ingest(axum::body::Bytes::from(line)),
        )
        .await
        .expect("an upload is folded while a download waits for its client")
        .unwrap();
        assert_eq!(folded.appended, 1);
        // Read a chunk: the writer computes one more, no more.
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let queued = settled_queue(&state).await;
        assert!(
            queued <= bound,
            "{uri}: {queued} bytes queued ahead of the client"
        );
        let rest = body.collect().await.unwrap().to_bytes();
        let mut read = first.to_vec();
        read.extend_from_slice(&rest);
        assert!(
            String::from_utf8(read).unwrap() == expected,
            "{uri}: the download is the export"
        );
        assert_eq!(
            state
                .metrics()
                .download_bytes_queued
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
}

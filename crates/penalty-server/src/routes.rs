//! The HTTP routes: parse and check the request, ask the ledger, answer with
//! the core's report types as JSON (the same bytes as the CLI's `--json`).
//!
//! The router is built by [`router`] from one table ([`routes`]), which is
//! also what the OpenAPI document is checked against, so the two cannot
//! drift apart unnoticed.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, MatchedPath, Path, Query, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::{Json, Router};
use http_body_util::BodyExt;
use penalty_core::csv::CsvRow;
use penalty_core::labels::{Lang, Phrase};
use penalty_core::{OrderStatus, Policy, QueryError, UnixNs};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::Access;
use crate::error::ApiError;
use crate::state::{AppState, Limits};
use crate::{assets, guard, openapi, params};

/// The longest id accepted in a path or a filter: EVENTS.md's limit, as the
/// core checks it on every event.
pub use penalty_core::event::MAX_ID_BYTES;
/// The default and largest page of `GET /orders` and of the notice feed.
pub const DEFAULT_PAGE: usize = 100;
/// See [`DEFAULT_PAGE`].
pub const MAX_PAGE: usize = 1000;
pub use crate::params::MAX_OFFSET;

/// Every route: method, path template (axum's and OpenAPI's syntax), handler.
/// The routes of one shop take their paths from [`ShopRoute::path`], which
/// a cluster node routes by too, and are each answered by
/// [`shop_route_handler`].
pub fn routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    let mut routes = vec![
        (Method::GET, "/healthz", get(healthz)),
        (Method::GET, "/metrics", get(metrics)),
        (Method::GET, "/openapi.json", get(openapi_json)),
        (Method::GET, "/shops", get(list_shops)),
        (Method::GET, "/labels", get(labels)),
        (Method::GET, "/session", get(session_get)),
        (Method::POST, "/session", post(session_start)),
        (Method::DELETE, "/session", delete(session_end)),
        (Method::GET, "/orders", get(list_orders)),
        (Method::GET, "/orders.csv", get(orders_csv)),
        (Method::GET, "/data-range", get(data_range)),
        (Method::GET, "/orders/{id}", get(order)),
        (Method::GET, "/orders/{id}/events", get(order_events)),
        (Method::POST, "/events", post(post_events)),
        (Method::GET, "/", get(assets::index)),
        (Method::GET, "/ui/{*page}", get(assets::index)),
        (Method::GET, "/assets/app.js", get(assets::app_js)),
        (Method::GET, "/assets/phrases.js", get(assets::phrases_js)),
        (Method::GET, "/assets/style.css", get(assets::style_css)),
    ];
    routes
        .extend(ShopRoute::ALL.map(|route| (Method::GET, route.path(), shop_route_handler(route))));
    routes
}

/// The application: every route, request metrics, JSON errors for unknown
/// routes and methods.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in routes() {
        router = router.route(path, handler);
    }
    router
        .route_layer(middleware::from_fn_with_state(state.clone(), track))
        // On matched routes only: a method a route does not take stays a 405.
        .route_layer(middleware::from_fn(guard::same_origin))
        .fallback(|| async {
            ApiError::NotFound("no such route; GET /openapi.json lists them".into())
        })
        .method_not_allowed_fallback(|method: Method| async move {
            ApiError::MethodNotAllowed(method.to_string())
        })
        // Every error worded in both languages answers in the request's.
        .layer(middleware::from_fn(crate::error::localize))
        .with_state(state)
}

/// Times every matched request and counts it by route template and status.
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        _ => "OTHER",
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let mut response = next.run(request).await;
    state.metrics().observe(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    // Reports change with every ingest and with the clock: never cache them.
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Query parameters, parsed into `T`; a bad one is a 400 that names it.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| Params(value))
            .map_err(|rejection| query_refused(&rejection.body_text()))
    }
}

/// A query string the route's struct could not read, as a 400 naming the
/// parameter and what it takes. serde words it as `Failed to deserialize
/// query string: <name>: <why>`, which names the parameter but not the
/// fix for a number, a flag or an unknown name.
fn query_refused(text: &str) -> ApiError {
    let detail = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(text);
    let message = match detail.split_once(": ") {
        Some((name, why))
            if why.starts_with("invalid digit")
                || why.starts_with("number too large")
                || why.starts_with("cannot parse integer from empty string") =>
        {
            format!(
                "query parameter {name} must be a whole number, 0 or more (GET /openapi.json gives its range)"
            )
        }
        Some((name, why)) if why.contains("`true` or `false`") => {
            format!("query parameter {name} must be true or false")
        }
        Some((name, why)) => {
            match why.strip_prefix(&format!("unknown field `{name}`, expected ")) {
                Some(known) => format!("unknown query parameter {name}: this route takes {known}"),
                None => detail.to_string(),
            }
        }
        None => detail.to_string(),
    };
    ApiError::bad_request("invalid_query", message)
}

/// The language of the sentences in an answer (an order's `explain`, an
/// at-risk `line`, a posting's or a correction notice's `cause`): the
/// request's `Accept-Language`
/// ([`penalty_core::labels::Lang::from_accept_language`]), English without
/// one. The dashboard sends its language switch's choice in that header, so
/// the switch is the one place a person picks a language.
pub struct Language(pub penalty_core::labels::Lang);

impl<S: Send + Sync> FromRequestParts<S> for Language {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        Ok(Language(penalty_core::labels::Lang::from_accept_language(
            header,
        )))
    }
}

/// The `{id}` of a path: non-empty, at most [`MAX_ID_BYTES`] bytes.
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::bad_request("invalid_path", rejection.body_text()))?;
        check_id(&id, None)?;
        Ok(Id(id))
    }
}

/// An id is 1 to [`MAX_ID_BYTES`] characters. Stored ids are at most that
/// many bytes; a longer non-ASCII one is well-formed and simply unknown (a
/// 404), which is what the OpenAPI document's `maxLength`, a count of
/// characters, promises.
fn check_id(id: &str, parameter: Option<&str>) -> Result<(), ApiError> {
    if id.is_empty() || id.chars().count() > MAX_ID_BYTES {
        return Err(ApiError::bad_request_in(
            "invalid_id",
            |lang| match parameter {
                Some(name) => Phrase::ParameterIdLength.fill(lang, &[&name, &MAX_ID_BYTES]),
                None => Phrase::PathIdLength.fill(lang, &[&MAX_ID_BYTES]),
            },
        ));
    }
    Ok(())
}

/// `as_of` and `known_at`, shared by every report route.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AsOfParams {
    as_of: Option<String>,
    known_at: Option<String>,
}

/// When to answer for: `as_of` (default now) and the optional `known_at`.
/// A report's `as_of` and `known_at`, read by [`when`].
pub struct When {
    /// The instant asked for (default now).
    pub as_of: UnixNs,
    /// Only events recorded by then, if asked.
    pub known_at: Option<UnixNs>,
}

/// Reads a report's `as_of` (default now) and `known_at` by the core's one
/// rule; a bad one is a 400 naming it. Also the cluster node's.
pub fn when(
    policy: &Policy,
    as_of: Option<&str>,
    known_at: Option<&str>,
) -> Result<When, ApiError> {
    let as_of = match as_of {
        Some(text) => parse_instant(text, policy, "as_of")?,
        None => now(),
    };
    let known_at = known_at
        .map(|text| parse_instant(text, policy, "known_at"))
        .transpose()?;
    Ok(When { as_of, known_at })
}

/// The query of a report route, parsed (a 400 naming the bad parameter, as
/// [`Params`]), with its `as_of` and `known_at` read into a [`When`] (a 400
/// naming the bad instant). The query struct stays per route, so that
/// `deny_unknown_fields` still lists exactly what each route takes.
struct Asked<T> {
    params: T,
    when: When,
}

/// A route's query struct that carries `as_of` and `known_at`.
trait AsksWhen {
    fn as_of(&self) -> Option<&str>;
    fn known_at(&self) -> Option<&str>;
}

/// Implements [`AsksWhen`] for query structs with `as_of` and `known_at`
/// fields.
macro_rules! asks_when {
    ($($params:ty),* $(,)?) => {$(
        impl AsksWhen for $params {
            fn as_of(&self) -> Option<&str> {
                self.as_of.as_deref()
            }
            fn known_at(&self) -> Option<&str> {
                self.known_at.as_deref()
            }
        }
    )*};
}

asks_when!(
    AsOfParams,
    ShopParams,
    ShopListParams,
    NoticeParams,
    AtRiskParams,
    OrderListParams,
    PostingCsvParams,
    DeductionParams,
    ListParams,
);

impl<T: DeserializeOwned + AsksWhen> FromRequestParts<AppState> for Asked<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Params(params) = Params::<T>::from_request_parts(parts, state).await?;
        let when = when(state.policy(), params.as_of(), params.known_at())?;
        Ok(Asked { params, when })
    }
}

/// Refuses a shop a caller `confined_to` another shop (a seller) may not
/// read with the very answer an unknown shop gets ([`unknown_shop`]), so
/// that a seller learns nothing about other shops; an operator (`None`)
/// reads every shop.
fn confined_shop(
    confined_to: Option<&str>,
    shop_id: &str,
    as_of: UnixNs,
    policy: &Policy,
) -> Result<(), ApiError> {
    match confined_to {
        Some(own) if own != shop_id => Err(unknown_shop(shop_id, as_of, policy)),
        _ => Ok(()),
    }
}

/// The wall clock ([`penalty_store::clock`]): the default `as_of`.
fn now() -> UnixNs {
    penalty_store::clock::now()
}

/// An instant given as the query parameter `name`, by the core's one rule
/// ([`UnixNs::parse_asked`], which the CLI's `--as-of` uses too and
/// [`params::instant_pattern`] documents).
fn parse_instant(text: &str, policy: &Policy, name: &str) -> Result<UnixNs, ApiError> {
    UnixNs::parse_asked(text, policy.utc_offset).map_err(|error| {
        ApiError::bad_request_in("invalid_instant", |lang| {
            Phrase::QueryParameterIs.fill(lang, &[&name, &error.message(lang)])
        })
    })
}

/// The core's "unknown shop" message, also used for a shop a seller may not
/// see, so that both answers are the same bytes.
pub fn unknown_shop(shop_id: &str, as_of: UnixNs, policy: &Policy) -> ApiError {
    ApiError::from(QueryError::UnknownShop {
        shop_id: shop_id.to_string(),
        as_of: as_of.to_rfc3339(policy.utc_offset),
    })
}

/// For sellers, one "unknown order" message whatever the reason (not paid
/// yet, another shop's, no such order), so that nothing about other shops'
/// orders leaks through the wording.
pub fn unknown_order(order_id: &str, as_of: UnixNs, policy: &Policy) -> ApiError {
    let as_of = as_of.to_rfc3339(policy.utc_offset);
    let words = |lang| Phrase::UnknownOrderForToken.fill(lang, &[&order_id, &as_of]);
    ApiError::NotFound(words(Lang::En)).in_chinese(words(Lang::Zh))
}

/// A query that found nothing, as a 404: the core's text (which names no
/// flag or parameter) and, for an order paid later, the parameter to set.
fn not_found_for_http(error: QueryError) -> ApiError {
    let words = |lang| match &error {
        QueryError::UnknownOrder {
            paid_at: Some(_), ..
        } => Phrase::AsOfParameterSetsTheInstant.fill(lang, &[&error.message(lang)]),
        _ => error.message(lang),
    };
    ApiError::NotFound(words(Lang::En)).in_chinese(words(Lang::Zh))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    /// The last sequence number folded into the projection.
    seq: u64,
}

async fn healthz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    Ok(Json(Health {
        status: "ok",
        seq: state.projection_seq()?,
    }))
}

async fn metrics(State(state): State<AppState>, access: Access) -> Result<Response, ApiError> {
    access.require_operator()?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics().render(),
    )
        .into_response())
}

async fn openapi_json(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(openapi::document_for(state.tokens().is_some()))
}

/// The query of `GET /shops` (also a cluster node's).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopListParams {
    /// The instant asked for.
    pub as_of: Option<String>,
    /// Only events recorded by then.
    pub known_at: Option<String>,
    /// The order (`penalty_core::ShopSort`).
    pub sort: Option<String>,
    /// Only shops with at least this many orders.
    pub min_orders: Option<u64>,
    /// The page's size.
    pub limit: Option<usize>,
    /// The page's first shop.
    pub offset: Option<usize>,
}

/// A page of `GET /shops`: `penalty shops --sort S --min-orders M --json`,
/// paged, each shop's lists cut to their first [`LISTED_SHOP_ITEMS`].
#[derive(Serialize, Deserialize)]
pub struct ShopPage {
    /// The shops of this page.
    pub shops: Vec<ListedShop>,
    /// Pass as `offset` for the next page; `null` on the last page.
    pub next: Option<usize>,
    /// Shops that count (`min_orders`), over all pages.
    pub total: usize,
    /// The charged money of those shops, over all pages.
    pub charged_fen: i128,
}

/// The items of each list (`closure_review`, `banned_products`) a shop of
/// `GET /shops` carries: the largest shop has tens of thousands, and a list
/// is never sent whole unasked (CLI.md fixes the lists of `penalty shops
/// --json`, not of the HTTP page).
pub const LISTED_SHOP_ITEMS: usize = 10;

/// A shop of `GET /shops`: its summary (`penalty shops --json`'s line)
/// with the first [`LISTED_SHOP_ITEMS`] of each list, and where the rest
/// are.
#[derive(Serialize, Deserialize)]
pub struct ListedShop {
    /// The summary, its lists cut to their first items.
    #[serde(flatten)]
    pub report: penalty_core::ShopReport,
    /// Where the rest of its lists are.
    #[serde(flatten)]
    pub more: MoreFlagsAndBans,
}

impl ListedShop {
    fn of(mut report: penalty_core::ShopReport) -> ListedShop {
        let more = MoreFlagsAndBans::first_page(&mut report, LISTED_SHOP_ITEMS);
        ListedShop { report, more }
    }
}

/// The ranking and page a `GET /shops` asks for, checked (a 400 naming the
/// bad parameter): one home for the one-machine server and a cluster node,
/// which hands it the summaries of every partition.
#[derive(Clone, Copy)]
pub struct ShopListing {
    ranking: penalty_core::ShopRanking,
    page: Page,
}

impl ShopListing {
    /// Checks the page, the sort and `min_orders` of `params`, in that
    /// order.
    pub fn asked(params: &ShopListParams) -> Result<ShopListing, ApiError> {
        let page = Page::asked(params.limit, params.offset)?;
        let sort = asked_sort(
            params.sort.as_deref(),
            penalty_core::ShopSort::Shop,
            penalty_core::ShopSort::parse,
            penalty_core::ShopSort::names,
        )?;
        let min_orders = params.min_orders.unwrap_or(0);
        if min_orders > MAX_OFFSET as u64 {
            return Err(out_of_range(
                "invalid_min_orders",
                "min_orders",
                min_orders,
                0,
                MAX_OFFSET,
            ));
        }
        Ok(ShopListing {
            ranking: penalty_core::ShopRanking { sort, min_orders },
            page,
        })
    }

    /// The page of `shops` (summaries in shop id order, as
    /// `Ledger::shop_summaries` gives them), ranked.
    pub fn page(self, shops: Vec<penalty_core::ShopReport>) -> ShopPage {
        let ranked = self.ranking.apply(shops);
        let charged_fen = ranked.iter().map(|shop| shop.charged_fen).sum();
        let (shops, next, total) = self.page.of(ranked);
        ShopPage {
            shops: shops.into_iter().map(ListedShop::of).collect(),
            next,
            total,
            charged_fen,
        }
    }
}

async fn list_shops(
    State(state): State<AppState>,
    access: Access,
    Asked { params, when }: Asked<ShopListParams>,
) -> Result<Json<ShopPage>, ApiError> {
    let listing = ShopListing::asked(&params)?;
    let page = state
        .query_for(Some(&access.clone()), when.known_at, move |ledger| {
            let shops = match access.confined_to() {
                None => ledger.shop_summaries(when.as_of),
                Some(own) => ledger
                    .shop_report(own, when.as_of, false)
                    .map_or_else(|_| Vec::new(), |report| vec![report]),
            };
            Ok(listing.page(shops))
        })
        .await?;
    Ok(Json(page))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShopParams {
    as_of: Option<String>,
    known_at: Option<String>,
    summary: Option<bool>,
    full: Option<bool>,
    limit: Option<usize>,
}

/// What a `GET /shops/{id}` asks for, checked: the figures alone
/// (`summary=true`, with the first page of its flags and bans), the whole
/// report (`full=true`, `penalty shop ID --json`'s bytes), or by default
/// the report with the first page of each of its lists, since a large shop
/// has tens of thousands of deductions (and of flags) and a list is never
/// sent whole unasked.
#[derive(Clone, Copy)]
enum ShopAsk {
    Summary(usize),
    Full,
    FirstPage(usize),
}

impl ShopAsk {
    /// `summary=true` leaves the deductions out whatever else is asked
    /// (its `limit` pages the flags and bans), and `full=true` lists them
    /// all whatever the `limit`: every
    /// combination the OpenAPI document allows has an answer.
    fn checked(params: &ShopParams) -> Result<ShopAsk, ApiError> {
        let limit = page_limit(params.limit)?;
        Ok(if params.summary == Some(true) {
            ShopAsk::Summary(limit)
        } else if params.full == Some(true) {
            ShopAsk::Full
        } else {
            ShopAsk::FirstPage(limit)
        })
    }

    /// The answer for `shop_id` as of `as_of` from `ledger`.
    fn answer(
        self,
        ledger: &penalty_core::Ledger,
        shop_id: &str,
        as_of: UnixNs,
    ) -> Result<ShopAnswer, ApiError> {
        let with_deductions = !matches!(self, ShopAsk::Summary(_));
        let mut report = ledger
            .shop_report(shop_id, as_of, with_deductions)
            .map_err(not_found_for_http)?;
        let more = match self {
            ShopAsk::Full => None,
            // The summary leaves the deductions out; its other lists are
            // paged as in the default answer, since a large shop's are tens
            // of thousands long too.
            ShopAsk::Summary(limit) => Some(MoreOfTheLists {
                deductions: None,
                lists: MoreFlagsAndBans::first_page(&mut report, limit),
            }),
            ShopAsk::FirstPage(limit) => {
                let first = Page { limit, offset: 0 };
                let all = report.deductions.take().unwrap_or_default();
                let (page, deductions_next, deductions_total) = first.of(all);
                report.deductions = Some(page);
                Some(MoreOfTheLists {
                    deductions: Some(MoreDeductions {
                        deductions_next,
                        deductions_total,
                    }),
                    lists: MoreFlagsAndBans::first_page(&mut report, limit),
                })
            }
        };
        Ok(ShopAnswer { report, more })
    }
}

/// `GET /shops/{id}`'s answer: the shop report, and for a first page of
/// its lists where the rest are.
#[derive(Serialize)]
struct ShopAnswer {
    #[serde(flatten)]
    report: penalty_core::ShopReport,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    more: Option<MoreOfTheLists>,
}

/// Where the rest of a report's lists are, after their first pages: each
/// `..._next` is the `offset` of the next page of the list's own route
/// (`null` when the page holds the whole list), each `..._total` the
/// list's length over all pages.
#[derive(Serialize)]
struct MoreOfTheLists {
    /// The deductions' (none in a summary, which leaves them out).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    deductions: Option<MoreDeductions>,
    #[serde(flatten)]
    lists: MoreFlagsAndBans,
}

/// Where the rest of a report's deductions are.
#[derive(Serialize)]
struct MoreDeductions {
    /// Into `GET /shops/{id}/deductions`.
    deductions_next: Option<usize>,
    deductions_total: usize,
}

/// Where the rest of a shop's closure-review flags and banned products
/// are, after their first pages (as [`MoreOfTheLists`]).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct MoreFlagsAndBans {
    /// Into `GET /shops/{id}/closure-review`.
    pub closure_review_next: Option<usize>,
    /// The flags over all pages.
    pub closure_review_total: usize,
    /// Into `GET /shops/{id}/bans`.
    pub banned_products_next: Option<usize>,
    /// The banned products over all pages.
    pub banned_products_total: usize,
}

impl MoreFlagsAndBans {
    /// Cuts `report`'s closure-review flags and banned products to their
    /// first `limit`, saying where the rest are.
    fn first_page(report: &mut penalty_core::ShopReport, limit: usize) -> MoreFlagsAndBans {
        let first = Page { limit, offset: 0 };
        let (page, closure_review_next, closure_review_total) =
            first.of(std::mem::take(&mut report.closure_review));
        report.closure_review = page;
        let (page, banned_products_next, banned_products_total) =
            first.of(std::mem::take(&mut report.banned_products));
        report.banned_products = page;
        MoreFlagsAndBans {
            closure_review_next,
            closure_review_total,
            banned_products_next,
            banned_products_total,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeductionParams {
    as_of: Option<String>,
    known_at: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    newest: Option<bool>,
}

/// The query of a page of one shop's list: its postings, closure-review
/// flags or banned products.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    as_of: Option<String>,
    known_at: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// A page of one of a shop report's lists, in the report's order: its
/// deductions (R4, R5; newest first when asked), its closure-review flags
/// (R7) or its banned products (R6). In JSON the page's items go under the
/// list's own name in the report ([`ReportList::FIELD`]).
struct ListPage<T> {
    shop_id: String,
    as_of: String,
    items: Vec<T>,
    /// Pass as `offset` for the next page; `null` on the last page.
    next: Option<usize>,
    /// Items over all pages.
    total: usize,
}

impl<T: ReportList> Serialize for ListPage<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut page = serializer.serialize_struct("ListPage", 5)?;
        page.serialize_field("shop_id", &self.shop_id)?;
        page.serialize_field("as_of", &self.as_of)?;
        page.serialize_field(T::FIELD, &self.items)?;
        page.serialize_field("next", &self.next)?;
        page.serialize_field("total", &self.total)?;
        page.end()
    }
}

/// A list of the shop report that its own route pages.
trait ReportList: Serialize + Sized {
    /// The list's name in the report and in a page of it.
    const FIELD: &'static str;
    /// Whether the report must be asked with its deductions.
    const WITH_DEDUCTIONS: bool;
    /// The list, taken out of the report.
    fn take(report: &mut penalty_core::ShopReport) -> Vec<Self>;
}

impl ReportList for penalty_core::DeductionReport {
    const FIELD: &'static str = "deductions";
    const WITH_DEDUCTIONS: bool = true;
    fn take(report: &mut penalty_core::ShopReport) -> Vec<Self> {
        report.deductions.take().unwrap_or_default()
    }
}

impl ReportList for penalty_core::FlagReport {
    const FIELD: &'static str = "closure_review";
    const WITH_DEDUCTIONS: bool = false;
    fn take(report: &mut penalty_core::ShopReport) -> Vec<Self> {
        std::mem::take(&mut report.closure_review)
    }
}

impl ReportList for penalty_core::BanReport {
    const FIELD: &'static str = "banned_products";
    const WITH_DEDUCTIONS: bool = false;
    fn take(report: &mut penalty_core::ShopReport) -> Vec<Self> {
        std::mem::take(&mut report.banned_products)
    }
}

/// The `asked` page of a shop report's list `T`, newest first when
/// `newest`.
fn list_page<T: ReportList>(
    ledger: &penalty_core::Ledger,
    shop_id: &str,
    as_of: UnixNs,
    asked: Page,
    newest: bool,
) -> Result<ListPage<T>, ApiError> {
    let mut report = ledger
        .shop_report(shop_id, as_of, T::WITH_DEDUCTIONS)
        .map_err(not_found_for_http)?;
    let mut all = T::take(&mut report);
    if newest {
        all.reverse();
    }
    let (items, next, total) = asked.of(all);
    Ok(ListPage {
        shop_id: report.shop_id,
        as_of: report.as_of,
        items,
        next,
        total,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoticeParams {
    as_of: Option<String>,
    known_at: Option<String>,
    after: Option<String>,
    before: Option<String>,
    newest: Option<bool>,
    limit: Option<usize>,
}

/// A page of the notice feed (R9).
#[derive(Serialize)]
struct NoticePage {
    notices: Vec<penalty_core::Notice>,
    /// Pass as `after` to read on: the last notice's cursor, or the `after`
    /// given when nothing new came (so a consumer never loses its place).
    /// Read newest first (`newest` or `before`): pass as `before` for the
    /// older notices; `null` when this page was not full.
    next: Option<String>,
}

/// The checked query of the notice feed.
struct NoticeAsk {
    limit: usize,
    after: Option<String>,
    before: Option<String>,
    backwards: bool,
}

impl NoticeAsk {
    fn checked(params: NoticeParams) -> Result<NoticeAsk, ApiError> {
        let limit = page_limit(params.limit)?;
        for (name, cursor) in [("after", &params.after), ("before", &params.before)] {
            if let Some(cursor) = cursor {
                check_cursor(cursor, name)?;
            }
        }
        // The inbox reads the feed backwards (newest first, `after` and
        // `before` bounding it); a consumer following the feed reads it
        // forwards with `after`.
        let backwards = params.newest == Some(true) || params.before.is_some();
        Ok(NoticeAsk {
            limit,
            after: params.after,
            before: params.before,
            backwards,
        })
    }

    fn answer(
        self,
        ledger: &penalty_core::Ledger,
        shop_id: &str,
        as_of: UnixNs,
        lang: penalty_core::labels::Lang,
    ) -> Result<NoticePage, ApiError> {
        let NoticeAsk {
            limit,
            after,
            before,
            backwards,
        } = self;
        if backwards {
            let notices = ledger
                .newest_notices_in(
                    shop_id,
                    as_of,
                    after.as_deref(),
                    before.as_deref(),
                    limit,
                    lang,
                )
                .map_err(not_found_for_http)?;
            let next = (notices.len() == limit)
                .then(|| notices.last().map(|n| n.cursor.clone()))
                .flatten();
            return Ok(NoticePage { notices, next });
        }
        let notices = ledger
            .notices_in(shop_id, as_of, after.as_deref(), limit, lang)
            .map_err(not_found_for_http)?;
        let next = notices.last().map(|n| n.cursor.clone()).or(after);
        Ok(NoticePage { notices, next })
    }
}

/// A page of a shop's booked ledger (R14): `penalty postings ID --json`,
/// paged.
#[derive(Serialize)]
struct PostingPage {
    shop_id: String,
    as_of: String,
    /// The sum of every posting so far, over all pages.
    booked_fen: i128,
    postings: Vec<penalty_core::PostingReport>,
    /// Pass as `offset` for the next page; `null` on the last page.
    next: Option<usize>,
    /// Postings over all pages.
    total: usize,
}

/// The `asked` page of a shop's postings.
fn postings_page(
    ledger: &penalty_core::Ledger,
    shop_id: &str,
    as_of: UnixNs,
    asked: Page,
    lang: penalty_core::labels::Lang,
) -> Result<PostingPage, ApiError> {
    let (report, total) = ledger
        .postings_page_in(shop_id, as_of, asked.offset, asked.limit, lang)
        .map_err(not_found_for_http)?;
    let end = asked.offset.saturating_add(report.postings.len());
    Ok(PostingPage {
        shop_id: report.shop_id,
        as_of: report.as_of,
        booked_fen: report.booked_fen,
        postings: report.postings,
        next: (end < total).then_some(end),
        total,
    })
}

/// The page a paged list asks for: `limit` (see [`page_limit`]) and
/// `offset` (see [`page_offset`]), checked in that order.
#[derive(Clone, Copy)]
struct Page {
    limit: usize,
    offset: usize,
}

impl Page {
    fn asked(limit: Option<usize>, offset: Option<usize>) -> Result<Page, ApiError> {
        Ok(Page {
            limit: page_limit(limit)?,
            offset: page_offset(offset)?,
        })
    }

    /// This page of a whole list: its items, the `next` offset (`None` on
    /// the last page) and the list's length.
    fn of<T>(self, items: Vec<T>) -> (Vec<T>, Option<usize>, usize) {
        let total = items.len();
        let end = self.offset.saturating_add(self.limit).min(total);
        let page = items
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect();
        (page, (end < total).then_some(end), total)
    }
}

/// The `offset` of a paged list, 0 to [`MAX_OFFSET`].
fn page_offset(offset: Option<usize>) -> Result<usize, ApiError> {
    let offset = offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(out_of_range(
            "invalid_offset",
            "offset",
            offset,
            0,
            MAX_OFFSET,
        ));
    }
    Ok(offset)
}

/// A 400 `code` for a number `name` out of `low..=high`, in both languages.
fn out_of_range(
    code: &'static str,
    name: &str,
    value: impl std::fmt::Display,
    low: usize,
    high: usize,
) -> ApiError {
    ApiError::bad_request_in(code, |lang| {
        Phrase::OutOfRange.fill(lang, &[&name, &value, &low, &high])
    })
}

/// A notice cursor is `<visible ns>.<judgment>.<order_id>`, or
/// `<visible ns>.<judgment>~<run day>.<order_id>` for a correction's notice
/// (penalty-core). The core reads a malformed one as "from the start", which
/// would deliver the whole feed again; over HTTP a malformed cursor is a 400
/// instead, naming the parameter (`name`: `after` or `before`).
fn check_cursor(cursor: &str, name: &str) -> Result<(), ApiError> {
    if params::cursor_syntax_ok(cursor) {
        Ok(())
    } else {
        Err(ApiError::bad_request_in("invalid_cursor", |lang| {
            Phrase::NotANoticeCursor.fill(lang, &[&name])
        }))
    }
}

fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(limit) if (1..=MAX_PAGE).contains(&limit) => Ok(limit),
        Some(limit) => Err(out_of_range("invalid_limit", "limit", limit, 1, MAX_PAGE)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AtRiskParams {
    as_of: Option<String>,
    known_at: Option<String>,
    within: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// One order at risk, with its sentence (`penalty at-risk`'s line).
#[derive(Serialize)]
struct AtRiskEntry {
    #[serde(flatten)]
    order: penalty_core::AtRiskOrder,
    /// What it will cost unless the seller acts, citing its rules.
    line: String,
}

/// `penalty at-risk --shop ID --json` (CLI.md), a page of its orders.
#[derive(Serialize)]
struct AtRiskPage {
    as_of: String,
    within_hours: serde_json::Value,
    orders: Vec<AtRiskEntry>,
    /// Pass as `offset` for the next page; `null` on the last page.
    next: Option<usize>,
    /// Orders at risk in all, over all pages.
    total: usize,
}

/// The checked page and `within` of an at-risk list.
fn at_risk_asked(params: &AtRiskParams) -> Result<(Page, penalty_core::Within), ApiError> {
    let page = Page::asked(params.limit, params.offset)?;
    let within = match params.within.as_deref() {
        None => penalty_core::Within::DAY,
        Some(text) => within(text)?,
    };
    Ok((page, within))
}

/// A shop's orders at risk within `within`, the `asked` page of them.
fn at_risk_page(
    ledger: &penalty_core::Ledger,
    shop_id: &str,
    as_of: UnixNs,
    within: penalty_core::Within,
    asked: Page,
    lang: penalty_core::labels::Lang,
) -> Result<AtRiskPage, ApiError> {
    let report = ledger
        .at_risk(Some(shop_id), as_of, within)
        .map_err(not_found_for_http)?;
    let within_hours = serde_json::to_value(&report)
        .map(|value| value["within_hours"].clone())
        .unwrap_or(serde_json::Value::Null);
    let (orders, next, total) = asked.of(report.orders);
    let orders = orders
        .into_iter()
        .map(|order| AtRiskEntry {
            line: penalty_core::explain::at_risk_line_in(&order, lang),
            order,
        })
        .collect();
    Ok(AtRiskPage {
        as_of: report.as_of,
        within_hours,
        orders,
        next,
        total,
    })
}

/// A horizon, by the core's one rule ([`penalty_core::Within::parse`],
/// which the CLI's `--within` uses too and [`params::WITHIN_PATTERN`]
/// documents).
fn within(text: &str) -> Result<penalty_core::Within, ApiError> {
    penalty_core::Within::parse(text).map_err(|error| {
        ApiError::bad_request_in("invalid_within", |lang| {
            Phrase::QueryParameterIs.fill(lang, &[&"within", &error.message(lang)])
        })
    })
}

/// Every code a person can see, with its English and Chinese labels: the
/// core's one table, so that the dashboard never words a code itself.
async fn labels() -> Json<&'static [penalty_core::labels::Label]> {
    Json(penalty_core::labels::LABELS)
}

/// Who a request is: the dashboard's first question.
#[derive(Serialize)]
struct Whoami {
    role: &'static str,
    shop_id: Option<String>,
    /// True when the server runs without tokens (no sign-in needed).
    open: bool,
}

fn whoami(access: &Access, open: bool) -> Whoami {
    Whoami {
        role: match access {
            Access::Operator => "operator",
            Access::Seller { .. } => "seller",
        },
        shop_id: access.confined_to().map(str::to_string),
        open,
    }
}

async fn session_get(State(state): State<AppState>, access: Access) -> Json<Whoami> {
    Json(whoami(&access, state.tokens().is_none()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: String,
}

/// Signs in with a token: a session cookie with its role (crate::session).
async fn session_start(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Room for the longest token written with JSON escapes (12 bytes a
    // character at most), so that what the document allows is read.
    if body.len() > 64 * 1024 {
        return Err(ApiError::bad_request(
            "invalid_sign_in",
            "the sign-in body is too long: send {\"token\": \"<your token>\"}",
        ));
    }
    let sign_in: SignIn = serde_json::from_slice(&body).map_err(|_| {
        ApiError::bad_request(
            "invalid_sign_in",
            "send the token as JSON: {\"token\": \"<your token>\"}",
        )
    })?;
    if sign_in.token.chars().count() > crate::auth::MAX_TOKEN_BYTES {
        return Err(ApiError::bad_request(
            "invalid_sign_in",
            format!(
                "the token is longer than {} characters",
                crate::auth::MAX_TOKEN_BYTES
            ),
        ));
    }
    // Without tokens everyone is an operator already: nothing to sign in
    // to, so no cookie, and the answer says so (`open`).
    let Some(tokens) = state.tokens() else {
        return Ok(Json(whoami(&Access::Operator, true)).into_response());
    };
    let token = sign_in.token.trim();
    let access = (!token.is_empty() && token.len() <= crate::auth::MAX_TOKEN_BYTES)
        .then(|| tokens.lookup(token.as_bytes()))
        .flatten()
        .ok_or(ApiError::Unauthorized("the token is not valid"))?;
    let id = state.sessions().start(access.clone())?;
    let secure = !crate::session::loopback_host(&headers);
    let cookie = HeaderValue::from_str(&crate::session::set_cookie(&id, secure))
        .map_err(|_| ApiError::Unavailable("the session cookie could not be written; retry"))?;
    let mut response = Json(whoami(&access, false)).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Signs out: forgets the cookie's session and clears the cookie.
async fn session_end(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = crate::session::cookie_session(&headers) {
        state.sessions().end(&id);
    }
    let secure = !crate::session::loopback_host(&headers);
    let mut response = Json(serde_json::json!({"signed_out": true})).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&crate::session::clear_cookie(secure)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderListParams {
    as_of: Option<String>,
    known_at: Option<String>,
    shop: Option<String>,
    status: Option<String>,
    violating: Option<bool>,
    paid_from: Option<String>,
    paid_to: Option<String>,
    capped_day: Option<bool>,
    closure_review: Option<bool>,
    /// `GET /orders` only: the order of the rows
    /// (`penalty_core::OrderSort`). The CSV keeps the export's order (shop,
    /// then order id), which it streams without holding the rows.
    sort: Option<String>,
    /// `GET /orders` only.
    limit: Option<usize>,
    /// `GET /orders` only.
    offset: Option<usize>,
    /// `GET /orders.csv` only.
    excel: Option<bool>,
}

/// A page of `GET /orders`: rows as `penalty export orders --format jsonl`.
#[derive(Serialize)]
pub struct OrderPage {
    /// The rows of this page.
    pub orders: Vec<penalty_core::OrderRow>,
    /// Pass as `offset` for the next page; `null` on the last page.
    pub next: Option<usize>,
    /// Rows matching the filters, over all pages.
    pub total: usize,
}

/// The `Content-Disposition` of `GET /orders.csv`.
pub const ORDERS_CSV_DISPOSITION: &str = "attachment; filename=\"orders.csv\"";

/// A checked `GET /orders` query (with `csv`, `GET /orders.csv`'s): one
/// home for the one-machine server and a cluster node, which merges the
/// partitions' rows.
pub struct OrderListAsk {
    /// The instant asked for.
    pub as_of: UnixNs,
    /// Only this shop's rows, if given.
    pub shop: Option<String>,
    /// The filter.
    pub filter: penalty_core::RowFilter,
    /// The order of the rows (`GET /orders`).
    pub sort: penalty_core::OrderSort,
    /// The page's first row (`GET /orders`).
    pub offset: usize,
    /// The page's size (`GET /orders`).
    pub limit: usize,
    /// `GET /orders.csv`'s `excel`.
    pub excel: bool,
    /// Only events recorded by then, if asked.
    pub known_at: Option<UnixNs>,
}

impl OrderListAsk {
    /// Checks `params` as the route does, in its order; a seller's list is
    /// `confined_to` its shop.
    fn checked(
        policy: &Policy,
        confined_to: Option<&str>,
        params: &OrderListParams,
        csv: bool,
        as_of: UnixNs,
    ) -> Result<OrderListAsk, ApiError> {
        let (page, sort) = if csv {
            refuse_unless_none(&params.limit, "limit", "GET /orders.csv")?;
            refuse_unless_none(&params.offset, "offset", "GET /orders.csv")?;
            refuse_unless_none(&params.sort, "sort", "GET /orders.csv")?;
            (Page::asked(None, None)?, penalty_core::OrderSort::default())
        } else {
            refuse_unless_none(&params.excel, "excel", "GET /orders")?;
            let page = Page::asked(params.limit, params.offset)?;
            (page, order_sort(params)?)
        };
        let (shop, filter) = order_filter(policy, confined_to, params, as_of)?;
        Ok(OrderListAsk {
            as_of,
            shop,
            filter,
            sort,
            offset: page.offset,
            limit: page.limit,
            excel: params.excel.unwrap_or(false),
            known_at: None,
        })
    }

    /// The query string `query` of `GET /orders` (with `csv`, of `GET
    /// /orders.csv`) checked as the one-machine route checks it, for a
    /// caller `confined_to` a shop (a seller) or not (an operator).
    pub fn from_query(
        policy: &Policy,
        confined_to: Option<&str>,
        query: Option<&str>,
        csv: bool,
    ) -> Result<OrderListAsk, ApiError> {
        let (params, when) = parse_query_known::<OrderListParams>(query, policy)?;
        let asked = OrderListAsk::checked(policy, confined_to, &params, csv, when.as_of)?;
        Ok(OrderListAsk {
            known_at: when.known_at,
            ..asked
        })
    }
}

/// The shop and the filter of an order list (`GET /orders`, `GET
/// /orders.csv`), checked: the core's [`penalty_core::RowFilter`], with
/// its instants by the one parser. A seller's list is its own shop's;
/// naming another shop is a 404, as for `GET /shops/{other}`.
fn order_filter(
    policy: &Policy,
    confined_to: Option<&str>,
    params: &OrderListParams,
    as_of: UnixNs,
) -> Result<(Option<String>, penalty_core::RowFilter), ApiError> {
    let status = match params.status.as_deref() {
        None => None,
        Some(text) => Some(OrderStatus::parse(text).ok_or_else(|| {
            let shown: String = text.chars().take(64).collect();
            ApiError::bad_request(
                "invalid_status",
                format!(
                    "status `{shown}` is not one of {}",
                    OrderStatus::NAMES.join(", ")
                ),
            )
        })?),
    };
    let paid_from = params
        .paid_from
        .as_deref()
        .map(|text| parse_instant(text, policy, "paid_from"))
        .transpose()?;
    let paid_before = params
        .paid_to
        .as_deref()
        .map(|text| {
            penalty_core::RowFilter::paid_to_end(text, policy.utc_offset).map_err(|error| {
                ApiError::bad_request(
                    "invalid_instant",
                    format!("query parameter paid_to {error}"),
                )
            })
        })
        .transpose()?;
    if let Some(shop) = &params.shop {
        check_id(shop, Some("shop"))?;
    }
    let shop = match (confined_to, params.shop.clone()) {
        (None, shop) => shop,
        (Some(own), None) => Some(own.to_string()),
        (Some(own), Some(asked)) if asked == own => Some(asked),
        (Some(_), Some(asked)) => return Err(unknown_shop(&asked, as_of, policy)),
    };
    let filter = penalty_core::RowFilter {
        status,
        violating: params.violating.unwrap_or(false),
        paid_from,
        paid_before,
        capped_day: params.capped_day.unwrap_or(false),
        closure_review: params.closure_review.unwrap_or(false),
    };
    Ok((shop, filter))
}

/// A parameter this route of a shared query struct does not take: a 400,
/// as serde's `deny_unknown_fields` answers on the other routes.
fn refuse_unless_none<T>(value: &Option<T>, name: &str, route: &str) -> Result<(), ApiError> {
    match value {
        None => Ok(()),
        Some(_) => Err(ApiError::bad_request(
            "invalid_query",
            format!("{route} does not take the query parameter {name}"),
        )),
    }
}

async fn list_orders(
    State(state): State<AppState>,
    access: Access,
    Asked { params, when }: Asked<OrderListParams>,
) -> Result<Json<OrderPage>, ApiError> {
    let OrderListAsk {
        shop,
        filter,
        sort,
        offset,
        limit,
        ..
    } = OrderListAsk::checked(
        state.policy(),
        access.confined_to(),
        &params,
        false,
        when.as_of,
    )?;
    let page = state
        .query_for(Some(&access.clone()), when.known_at, move |ledger| {
            let page =
                ledger.order_rows_page(when.as_of, shop.as_deref(), filter, sort, offset, limit);
            let end = offset.saturating_add(page.rows.len());
            Ok(OrderPage {
                orders: page.rows,
                next: (end < page.total).then_some(end),
                total: page.total,
            })
        })
        .await?;
    Ok(Json(page))
}

/// The sort of an order list: the default order when not asked, else a
/// name of [`penalty_core::OrderSort`], or a 400 naming the valid ones.
fn order_sort(params: &OrderListParams) -> Result<penalty_core::OrderSort, ApiError> {
    asked_sort(
        params.sort.as_deref(),
        penalty_core::OrderSort::default(),
        penalty_core::OrderSort::parse,
        || penalty_core::OrderSort::names().join(", "),
    )
}

/// A list's `sort=`: `default` when not asked, else a name `parse` knows,
/// or a 400 `invalid_sort` listing the valid `names`.
fn asked_sort<T>(
    text: Option<&str>,
    default: T,
    parse: fn(&str) -> Option<T>,
    names: impl FnOnce() -> String,
) -> Result<T, ApiError> {
    let Some(text) = text else {
        return Ok(default);
    };
    parse(text).ok_or_else(|| {
        let shown: String = text.chars().take(64).collect();
        let names = names();
        ApiError::bad_request_in("invalid_sort", |lang| {
            Phrase::NotASort.fill(lang, &[&shown, &names])
        })
    })
}

/// `GET /orders.csv`: every row of `GET /orders`'s filter, as `penalty
/// export orders --format csv` writes them (with `excel`, as `--excel`).
async fn orders_csv(
    State(state): State<AppState>,
    access: Access,
    Asked { params, when }: Asked<OrderListParams>,
) -> Result<Response, ApiError> {
    let OrderListAsk {
        shop,
        filter,
        excel,
        ..
    } = OrderListAsk::checked(
        state.policy(),
        access.confined_to(),
        &params,
        true,
        when.as_of,
    )?;
    crate::download::csv(
        &state,
        &access,
        when.known_at,
        ORDERS_CSV_DISPOSITION,
        // The (shop, order) of the last row written: where the rows resume
        // after a pause for a slow client.
        {
            let mut last: Option<(String, String)> = None;
            move |ledger, out| {
                if !out.started() {
                    out.start(excel)?;
                    out.push(&<penalty_core::OrderRow as CsvRow>::csv_header(excel))?;
                }
                let after = last.clone();
                ledger.each_order_row_after(
                    when.as_of,
                    shop.as_deref(),
                    filter,
                    after.as_ref().map(|(s, o)| (s.as_str(), o.as_str())),
                    |row| {
                        out.push(&row.csv_line(excel))?;
                        last = Some((row.shop_id, row.order_id));
                        Ok(!out.paused())
                    },
                )
            }
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostingCsvParams {
    as_of: Option<String>,
    known_at: Option<String>,
    from: Option<String>,
    to: Option<String>,
    excel: Option<bool>,
}

const POSTINGS_CSV_DISPOSITION: &str = "attachment; filename=\"postings.csv\"";

/// The checked query of a postings download.
#[derive(Clone, Copy)]
struct PostingCsvAsk {
    from: Option<penalty_core::time::Day>,
    to: Option<penalty_core::time::Day>,
    excel: bool,
}

impl PostingCsvAsk {
    fn checked(params: &PostingCsvParams, policy: &Policy) -> Result<PostingCsvAsk, ApiError> {
        let day = |text: &Option<String>, name: &str| {
            text.as_deref()
                .map(|text| {
                    parse_instant(text, policy, name).map(|t| t.local_day(policy.utc_offset))
                })
                .transpose()
        };
        Ok(PostingCsvAsk {
            from: day(&params.from, "from")?,
            to: day(&params.to, "to")?,
            excel: params.excel.unwrap_or(false),
        })
    }

    /// Writes the shop's postings after the last `walk` handed over (a
    /// writer called again after a pause goes on from there, with the
    /// shop's postings the walk computed in the first stretch, instead of
    /// computing them again), and stops when `out` pauses.
    fn write(
        &self,
        ledger: &penalty_core::Ledger,
        shop_id: &str,
        as_of: UnixNs,
        out: &mut impl crate::download::CsvSink,
        walk: &mut penalty_core::PostingWalk,
    ) -> Result<(), ApiError> {
        let PostingCsvAsk { from, to, excel } = *self;
        if !out.started() {
            // An unknown shop is a 404 before the first byte, as GET
            // /shops/{id}/postings answers it.
            ledger
                .shop_report(shop_id, as_of, false)
                .map_err(not_found_for_http)?;
            out.start(excel)?;
            out.push(&<penalty_core::PostingReport as CsvRow>::csv_header(excel))?;
        }
        /// Why the walk of the postings ended early.
        enum Stop {
            Paused,
            Failed(ApiError),
        }
        let walked = ledger.each_posting_walked(as_of, Some(shop_id), from, to, walk, |posting| {
            out.push(&posting.csv_line(excel)).map_err(Stop::Failed)?;
            if out.paused() {
                return Err(Stop::Paused);
            }
            Ok(())
        });
        match walked {
            Ok(()) | Err(Stop::Paused) => Ok(()),
            Err(Stop::Failed(error)) => Err(error),
        }
    }
}

/// `GET /orders/{id}` from `ledger`, which holds every event of the order's
/// shop (a cluster partition's ledger), for a caller `confined_to` a shop
/// (a seller) or not (an operator): the one-machine handler's checks and
/// body, and for a seller its one "unknown order" answer whatever the
/// reason; `ledger` is already the one known at the query's `known_at`, if
/// any.
pub fn order_route_answer(
    ledger: &penalty_core::Ledger,
    confined_to: Option<&str>,
    order_id: &str,
    query: Option<&str>,
    accept_language: &str,
) -> Response {
    let lang = penalty_core::labels::Lang::from_accept_language(accept_language);
    let answer = || -> Result<Response, ApiError> {
        let (_, as_of) = parse_query_when::<AsOfParams>(query, ledger.policy())?;
        check_id(order_id, None)?;
        match (ledger.order_report_in(order_id, as_of, lang), confined_to) {
            (Ok(report), None) => Ok(Json(report).into_response()),
            (Ok(report), Some(own)) if report.shop_id == own => Ok(Json(report).into_response()),
            (Err(error), None) => Err(not_found_for_http(error)),
            _ => Err(unknown_order(order_id, as_of, ledger.policy())),
        }
    };
    // Worded in the request's language, as in [`shop_route_answer`].
    answer().unwrap_or_else(|error| error.into_response_in(lang))
}

/// A query string parsed as [`Asked`] parses it, for a cluster node: the
/// parameters and the `as_of`. A `known_at` is checked here but applied by
/// the caller: the ledger it hands over is already the one of the events
/// recorded by then.
fn parse_query_when<T: DeserializeOwned + AsksWhen>(
    query: Option<&str>,
    policy: &Policy,
) -> Result<(T, UnixNs), ApiError> {
    parse_query_known::<T>(query, policy).map(|(params, when)| (params, when.as_of))
}

/// [`parse_query_when`], with the `known_at` asked.
fn parse_query_known<T: DeserializeOwned + AsksWhen>(
    query: Option<&str>,
    policy: &Policy,
) -> Result<(T, When), ApiError> {
    let params: T = parse_query(query)?;
    let when = when(policy, params.as_of(), params.known_at())?;
    Ok((params, when))
}

/// A query string parsed as [`Params`] parses it (a 400 naming the bad
/// parameter).
fn parse_query<T: DeserializeOwned>(query: Option<&str>) -> Result<T, ApiError> {
    let uri: axum::http::Uri = format!("/?{}", query.unwrap_or(""))
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_query", "the query string is malformed"))?;
    Query::<T>::try_from_uri(&uri)
        .map(|Query(value)| value)
        .map_err(|rejection| query_refused(&rejection.body_text()))
}

/// The routes of one shop. One machine answers each with
/// [`shop_route_handler`]; a cluster node forwards it to the host of the
/// shop's partition, which answers it from its partition's ledger with
/// [`shop_route_answer`]. Both take the same steps, each in one place: the
/// query checked ([`ShopRoute::asked`]), the caller's access
/// ([`confined_shop`]), then the answer from the ledger of the query's
/// `known_at` ([`ShopQuestion::answer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShopRoute {
    /// `GET /shops/{id}`: the report with the first page of each of its
    /// lists, the whole of `penalty shop ID --json` with `full=true`, or
    /// with `summary=true` `penalty shop ID --summary`'s figures without
    /// the deductions ([`ShopAsk`]).
    Shop,
    /// `GET /shops/{id}/postings`: the booked ledger (R14), paged.
    Postings,
    /// `GET /shops/{id}/postings.csv`: the shop's postings as `penalty
    /// export postings --shop ID --format csv` writes them, runs from
    /// `from` to `to`.
    PostingsCsv,
    /// `GET /shops/{id}/notices`: the notice feed (R9) by cursor.
    Notices,
    /// `GET /shops/{id}/at-risk`: `penalty at-risk --shop ID --json`, paged.
    AtRisk,
    /// `GET /shops/{id}/days`: the shop's history by local day, what the
    /// dashboard's chart draws (a few dozen rows, where the full report of
    /// a large shop lists tens of thousands of deductions).
    Days,
    /// `GET /shops/{id}/deductions`: the report's deductions, paged, newest
    /// first with `newest=true`.
    Deductions,
    /// `GET /shops/{id}/closure-review`: the report's closure-review flags,
    /// paged (a large shop has thousands).
    ClosureReview,
    /// `GET /shops/{id}/bans`: the report's banned products, paged.
    Bans,
}

impl ShopRoute {
    /// Every route of one shop.
    pub const ALL: [ShopRoute; 9] = [
        ShopRoute::Shop,
        ShopRoute::Postings,
        ShopRoute::PostingsCsv,
        ShopRoute::Notices,
        ShopRoute::AtRisk,
        ShopRoute::Days,
        ShopRoute::Deductions,
        ShopRoute::ClosureReview,
        ShopRoute::Bans,
    ];

    /// The route's path template, as [`routes`] lists it.
    pub fn path(self) -> &'static str {
        match self {
            ShopRoute::Shop => "/shops/{id}",
            ShopRoute::Postings => "/shops/{id}/postings",
            ShopRoute::PostingsCsv => "/shops/{id}/postings.csv",
            ShopRoute::Notices => "/shops/{id}/notices",
            ShopRoute::AtRisk => "/shops/{id}/at-risk",
            ShopRoute::Days => "/shops/{id}/days",
            ShopRoute::Deductions => "/shops/{id}/deductions",
            ShopRoute::ClosureReview => "/shops/{id}/closure-review",
            ShopRoute::Bans => "/shops/{id}/bans",
        }
    }

    /// The query string `query` of this route, read and checked before any
    /// work: the parameters the route takes (a 400 naming one it does not
    /// read), `as_of` and `known_at` (a 400 naming a bad instant), then the
    /// route's own checks (a page's bounds, a cursor, a horizon, a day).
    /// `known_at` comes out beside the question, since it decides which
    /// ledger answers.
    fn asked(self, query: Option<&str>, policy: &Policy) -> Result<(ShopQuestion, When), ApiError> {
        Ok(match self {
            ShopRoute::Shop => {
                let (params, when) = parse_query_known::<ShopParams>(query, policy)?;
                (ShopQuestion::Shop(ShopAsk::checked(&params)?), when)
            }
            ShopRoute::PostingsCsv => {
                let (params, when) = parse_query_known::<PostingCsvParams>(query, policy)?;
                let asked = PostingCsvAsk::checked(&params, policy)?;
                (ShopQuestion::PostingsCsv(asked), when)
            }
            ShopRoute::Notices => {
                let (params, when) = parse_query_known::<NoticeParams>(query, policy)?;
                (ShopQuestion::Notices(NoticeAsk::checked(params)?), when)
            }
            ShopRoute::AtRisk => {
                let (params, when) = parse_query_known::<AtRiskParams>(query, policy)?;
                let (page, within) = at_risk_asked(&params)?;
                (ShopQuestion::AtRisk(page, within), when)
            }
            ShopRoute::Days => {
                let (_, when) = parse_query_known::<AsOfParams>(query, policy)?;
                (ShopQuestion::Days, when)
            }
            ShopRoute::Deductions => {
                let (params, when) = parse_query_known::<DeductionParams>(query, policy)?;
                let page = Page::asked(params.limit, params.offset)?;
                let newest = params.newest == Some(true);
                (ShopQuestion::Deductions(page, newest), when)
            }
            ShopRoute::Postings | ShopRoute::ClosureReview | ShopRoute::Bans => {
                let (params, when) = parse_query_known::<ListParams>(query, policy)?;
                let page = Page::asked(params.limit, params.offset)?;
                let question = match self {
                    ShopRoute::Postings => ShopQuestion::Postings(page),
                    ShopRoute::ClosureReview => ShopQuestion::ClosureReview(page),
                    _ => ShopQuestion::Bans(page),
                };
                (question, when)
            }
        })
    }
}

/// What a route of one shop asks, checked ([`ShopRoute::asked`]).
enum ShopQuestion {
    Shop(ShopAsk),
    Postings(Page),
    PostingsCsv(PostingCsvAsk),
    Notices(NoticeAsk),
    AtRisk(Page, penalty_core::Within),
    Days,
    /// The page, and whether newest first.
    Deductions(Page, bool),
    ClosureReview(Page),
    Bans(Page),
}

impl ShopQuestion {
    /// The answer for `shop_id` as of `as_of` from `ledger` (the one of
    /// the query's `known_at`), its sentences in `lang`; a postings CSV
    /// whole, which one machine streams instead ([`shop_route_handler`]).
    fn answer(
        self,
        ledger: &penalty_core::Ledger,
        shop_id: &str,
        as_of: UnixNs,
        lang: penalty_core::labels::Lang,
    ) -> Result<ShopAnswerBody, ApiError> {
        Ok(match self {
            ShopQuestion::Shop(asked) => {
                ShopAnswerBody::Shop(Box::new(asked.answer(ledger, shop_id, as_of)?))
            }
            ShopQuestion::Postings(page) => {
                ShopAnswerBody::Postings(postings_page(ledger, shop_id, as_of, page, lang)?)
            }
            ShopQuestion::PostingsCsv(asked) => {
                let mut text = String::new();
                asked.write(
                    ledger,
                    shop_id,
                    as_of,
                    &mut text,
                    &mut penalty_core::PostingWalk::default(),
                )?;
                ShopAnswerBody::PostingsCsv(text)
            }
            ShopQuestion::Notices(asked) => {
                ShopAnswerBody::Notices(asked.answer(ledger, shop_id, as_of, lang)?)
            }
            ShopQuestion::AtRisk(page, within) => {
                ShopAnswerBody::AtRisk(at_risk_page(ledger, shop_id, as_of, within, page, lang)?)
            }
            ShopQuestion::Days => ShopAnswerBody::Days(
                ledger
                    .shop_days(shop_id, as_of)
                    .map_err(not_found_for_http)?,
            ),
            ShopQuestion::Deductions(page, newest) => {
                ShopAnswerBody::Deductions(list_page(ledger, shop_id, as_of, page, newest)?)
            }
            ShopQuestion::ClosureReview(page) => {
                ShopAnswerBody::ClosureReview(list_page(ledger, shop_id, as_of, page, false)?)
            }
            ShopQuestion::Bans(page) => {
                ShopAnswerBody::Bans(list_page(ledger, shop_id, as_of, page, false)?)
            }
        })
    }
}

/// The body of a shop route's answer, as a value: it is written out as
/// JSON (or CSV) once the ledger is let go.
enum ShopAnswerBody {
    /// Boxed: a report is several times larger than the other answers.
    Shop(Box<ShopAnswer>),
    Postings(PostingPage),
    PostingsCsv(String),
    Notices(NoticePage),
    AtRisk(AtRiskPage),
    Days(penalty_core::ShopDays),
    Deductions(ListPage<penalty_core::DeductionReport>),
    ClosureReview(ListPage<penalty_core::FlagReport>),
    Bans(ListPage<penalty_core::BanReport>),
}

impl IntoResponse for ShopAnswerBody {
    fn into_response(self) -> Response {
        match self {
            ShopAnswerBody::Shop(body) => Json(body).into_response(),
            ShopAnswerBody::Postings(body) => Json(body).into_response(),
            ShopAnswerBody::PostingsCsv(text) => (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (header::CONTENT_DISPOSITION, POSTINGS_CSV_DISPOSITION),
                ],
                text,
            )
                .into_response(),
            ShopAnswerBody::Notices(body) => Json(body).into_response(),
            ShopAnswerBody::AtRisk(body) => Json(body).into_response(),
            ShopAnswerBody::Days(body) => Json(body).into_response(),
            ShopAnswerBody::Deductions(body) => Json(body).into_response(),
            ShopAnswerBody::ClosureReview(body) => Json(body).into_response(),
            ShopAnswerBody::Bans(body) => Json(body).into_response(),
        }
    }
}

/// One machine's handler of `route`: the query checked and the caller's
/// access decided before any work, then the answer from the projection (a
/// replay with `known_at`); a postings CSV is streamed as it is written
/// ([`crate::download::csv`]), the same bytes as [`ShopQuestion::answer`]'s.
fn shop_route_handler(route: ShopRoute) -> MethodRouter<AppState> {
    get(
        move |State(state): State<AppState>,
              access: Access,
              Id(shop_id): Id,
              Language(lang): Language,
              RawQuery(query): RawQuery| async move {
            let (question, when) = route.asked(query.as_deref(), state.policy())?;
            confined_shop(access.confined_to(), &shop_id, when.as_of, state.policy())?;
            if let ShopQuestion::PostingsCsv(asked) = question {
                let mut walk = penalty_core::PostingWalk::default();
                return crate::download::csv(
                    &state,
                    &access,
                    when.known_at,
                    POSTINGS_CSV_DISPOSITION,
                    move |ledger, out| asked.write(ledger, &shop_id, when.as_of, out, &mut walk),
                )
                .await;
            }
            let body = state
                .query_for(Some(&access.clone()), when.known_at, move |ledger| {
                    question.answer(ledger, &shop_id, when.as_of, lang)
                })
                .await?;
            Ok::<Response, ApiError>(body.into_response())
        },
    )
}

/// The answer of `route` for shop `shop_id` with the query string `query`
/// (an `Accept-Language` of `accept_language`), from `ledger`, which holds
/// every event of the shop (a cluster partition's ledger): one machine's
/// steps ([`shop_route_handler`]) in their order, and its body, byte for
/// byte; a caller `confined_to` another shop (a seller) gets an unknown
/// shop's answer. `ledger` is already the one of the events recorded by the
/// query's `known_at`, if any (the host replays its partition to that
/// instant).
pub fn shop_route_answer(
    ledger: &penalty_core::Ledger,
    confined_to: Option<&str>,
    route: ShopRoute,
    shop_id: &str,
    query: Option<&str>,
    accept_language: &str,
) -> Response {
    let policy = ledger.policy();
    let lang = penalty_core::labels::Lang::from_accept_language(accept_language);
    let answer = || -> Result<Response, ApiError> {
        check_id(shop_id, None)?;
        let (question, when) = route.asked(query, policy)?;
        confined_shop(confined_to, shop_id, when.as_of, policy)?;
        Ok(question
            .answer(ledger, shop_id, when.as_of, lang)?
            .into_response())
    };
    // A refusal is worded here, in the request's language, as the router's
    // `localize` layer words it on one machine: a cluster host sends back
    // only the status and the body.
    answer().unwrap_or_else(|error| error.into_response_in(lang))
}

/// What the data covers: the first and last event instant (`at`), in the
/// policy's offset; a seller's, of its own shop.
#[derive(Serialize)]
pub struct DataRange {
    /// The earliest event instant, `null` when there is no event.
    pub from: Option<String>,
    /// The latest event instant, `null` when there is no event.
    pub to: Option<String>,
}

impl DataRange {
    /// The range of `span` (first and last instant), in `policy`'s offset:
    /// one home for the one-machine server and a cluster node, which
    /// merges its partitions' spans.
    pub fn of(span: Option<(UnixNs, UnixNs)>, policy: &Policy) -> DataRange {
        let offset = policy.utc_offset;
        DataRange {
            from: span.map(|(first, _)| first.to_rfc3339(offset)),
            to: span.map(|(_, last)| last.to_rfc3339(offset)),
        }
    }
}

async fn data_range(
    State(state): State<AppState>,
    access: Access,
) -> Result<Json<DataRange>, ApiError> {
    let policy = state.policy().clone();
    let range = state
        .query_for(Some(&access.clone()), None, move |ledger| {
            Ok(DataRange::of(
                ledger.event_span(access.confined_to()),
                &policy,
            ))
        })
        .await?;
    Ok(Json(range))
}

async fn order(
    State(state): State<AppState>,
    access: Access,
    Id(order_id): Id,
    Language(lang): Language,
    Asked { when, .. }: Asked<AsOfParams>,
) -> Result<Json<penalty_core::OrderReport>, ApiError> {
    // Decided before any work, from an index: another shop's order costs
    // what an unknown one does.
    if !state.may_read_order(&order_id, &access)? {
        return Err(unknown_order(&order_id, when.as_of, state.policy()));
    }
    let policy = state.policy().clone();
    let report = state
        .query_for(Some(&access.clone()), when.known_at, move |ledger| {
            match (ledger.order_report_in(&order_id, when.as_of, lang), &access) {
                (Ok(report), access) if access.may_read_shop(&report.shop_id) => Ok(report),
                (Err(error), Access::Operator) => Err(not_found_for_http(error)),
                _ => Err(unknown_order(&order_id, when.as_of, &policy)),
            }
        })
        .await?;
    Ok(Json(report))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsParams {
    as_of: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// A page of an order's stored events.
#[derive(Serialize)]
struct OrderTimeline {
    order_id: String,
    events: Vec<crate::state::TimelineEvent>,
    /// Pass as `after` for the events after this page; `null` on the last
    /// page.
    next: Option<u64>,
}

/// The checked query of `GET /orders/{id}/events`: the instant, and the
/// page (`limit` events after the event whose `seq` is `after`), one
/// machine's and a cluster node's.
#[derive(Clone, Copy, Debug)]
pub struct EventsAsk {
    /// Only events with `at <= as_of`.
    pub as_of: UnixNs,
    /// The `seq` of the event the page follows (the `next` of the page
    /// before), or the start.
    pub after: Option<u64>,
    /// At most this many events.
    pub limit: usize,
}

impl EventsAsk {
    fn checked(params: &EventsParams, policy: &Policy) -> Result<EventsAsk, ApiError> {
        let as_of = when(policy, params.as_of.as_deref(), None)?.as_of;
        Ok(EventsAsk {
            as_of,
            after: params.after,
            limit: page_limit(params.limit)?,
        })
    }

    /// The page of a whole timeline (the events with `at <= as_of`, in the
    /// route's order): the events after the one whose `seq` is `after`
    /// (after those with a lower `seq` when none has it), and the `next`
    /// cursor, the page's last `seq` when more follow.
    pub fn page(
        self,
        events: Vec<crate::state::TimelineEvent>,
    ) -> (Vec<crate::state::TimelineEvent>, Option<u64>) {
        let start = match self.after {
            None => 0,
            Some(after) => events
                .iter()
                .position(|e| e.seq == after)
                .map(|at| at + 1)
                .unwrap_or_else(|| events.iter().take_while(|e| e.seq < after).count()),
        };
        let rest = events.len() - start;
        let page: Vec<_> = events.into_iter().skip(start).take(self.limit).collect();
        let next = (rest > self.limit)
            .then(|| page.last().map(|e| e.seq))
            .flatten();
        (page, next)
    }
}

async fn order_events(
    State(state): State<AppState>,
    access: Access,
    Id(order_id): Id,
    Params(params): Params<EventsParams>,
) -> Result<Response, ApiError> {
    let asked = EventsAsk::checked(&params, state.policy())?;
    let page = state
        .order_events(
            order_id.clone(),
            access.clone(),
            asked.as_of,
            asked.after,
            asked.limit,
        )
        .await?;
    order_timeline_answer(
        order_id,
        page,
        access.confined_to().is_some(),
        asked.as_of,
        state.policy(),
    )
}

/// The query of `GET /orders/{id}/events` from its query string, checked
/// as the route checks it: a cluster node's check.
pub fn order_events_asked(query: Option<&str>, policy: &Policy) -> Result<EventsAsk, ApiError> {
    let params: EventsParams = parse_query(query)?;
    EventsAsk::checked(&params, policy)
}

/// The answer of `GET /orders/{id}/events` from a page of the order's
/// stored events with `at <= as_of`, in log order, and the `next` cursor
/// (`None`: no event of the order, or none the caller may see, `confined`
/// for a seller): one machine's and a cluster node's.
pub fn order_timeline_answer(
    order_id: String,
    page: Option<(Vec<crate::state::TimelineEvent>, Option<u64>)>,
    confined: bool,
    as_of: UnixNs,
    policy: &Policy,
) -> Result<Response, ApiError> {
    match (page, confined) {
        (Some((events, next)), _) => Ok(Json(OrderTimeline {
            order_id,
            events,
            next,
        })
        .into_response()),
        (None, false) => Err(ApiError::NotFound(format!(
            "no event of order `{order_id}` is in the log"
        ))),
        (None, true) => Err(unknown_order(&order_id, as_of, policy)),
    }
}

async fn post_events(
    State(state): State<AppState>,
    access: Access,
    Language(lang): Language,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    access.require_operator()?;
    let (_permit, body) =
        receive_upload(&headers, body, state.limits(), || state.try_upload_permit()).await?;
    let summary = state.ingest_in(body, lang).await?;
    Ok((StatusCode::OK, Json(summary)).into_response())
}

/// Receives a `POST /events` body whole, within `limits` (its size, its
/// rate), holding an upload slot from `permit` (`None`: all taken, a 503):
/// the one home of an upload's limits, for the one-machine server and a
/// cluster node. The slot is held until the returned permit is dropped.
pub async fn receive_upload(
    headers: &HeaderMap,
    body: Body,
    limits: &Limits,
    permit: impl FnOnce() -> Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<(tokio::sync::OwnedSemaphorePermit, Bytes), ApiError> {
    let limit_bytes = limits.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit_bytes as u64) {
        return Err(ApiError::PayloadTooLarge { limit_bytes });
    }
    let Some(permit) = permit() else {
        drain_refused(body, headers, limits).await;
        return Err(ApiError::Unavailable(
            "too many uploads are being received at once; retry shortly",
        ));
    };
    let body = read_body(body, limits, declared).await?;
    Ok((permit, body))
}

/// By when, counted from the start of a body, more of it must have come
/// after `received` bytes: the grace, plus the time those bytes take at the
/// slowest rate allowed, and never later than the whole body's limit.
fn body_deadline(received: u64, limits: &Limits) -> Duration {
    let rate = limits.min_body_bytes_per_sec.max(1);
    let at_rate = Duration::from_secs(received / rate)
        + Duration::from_nanos((received % rate) * 1_000_000_000 / rate);
    (limits.body_rate_grace + at_rate).min(limits.body_read_timeout)
}

/// Receives the whole body before anything is ingested. A client that goes
/// away mid-upload therefore ingests nothing of that request (and is told
/// nothing, being gone); what earlier requests acknowledged stays, and
/// re-sending the whole body later is safe (duplicates are recognised). A
/// body slower than [`Limits::min_body_bytes_per_sec`] (after the grace) is
/// cut off with a 408, so that slow clients cannot hold the upload slots.
async fn read_body(
    mut body: Body,
    limits: &Limits,
    declared: Option<u64>,
) -> Result<Bytes, ApiError> {
    let limit_bytes = limits.max_body_bytes;
    let started = tokio::time::Instant::now();
    let capacity = declared.map_or(0, |length| usize::try_from(length).unwrap_or(0));
    let mut bytes: Vec<u8> = Vec::with_capacity(capacity.min(limit_bytes));
    loop {
        let deadline = started + body_deadline(bytes.len() as u64, limits);
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(ApiError::RequestTimeout(format!(
                    "the request body arrived too slowly ({} bytes in {} s; the least is {} KiB/s                      after {} s, and {} s in all); nothing was ingested, send it again, or split                      it into smaller requests",
                    bytes.len(),
                    started.elapsed().as_secs(),
                    limits.min_body_bytes_per_sec / 1024,
                    limits.body_rate_grace.as_secs(),
                    limits.body_read_timeout.as_secs(),
                )))
            }
            Ok(None) => return Ok(Bytes::from(bytes)),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if bytes.len() + data.len() > limit_bytes {
                        return Err(ApiError::PayloadTooLarge { limit_bytes });
                    }
                    bytes.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(_))) => {
                return Err(ApiError::bad_request(
                    "incomplete_body",
                    "the request body could not be read completely; nothing was ingested, send                      it again",
                ))
            }
        }
    }
}

/// Reads and drops the body of a refused upload, for at most
/// [`Limits::refused_body_drain`] and [`Limits::max_body_bytes`], at the
/// rate [`read_body`] asks: a client still sending when the answer comes and
/// the connection closes would see a reset instead of the status. A client
/// that asked `Expect: 100-continue` has sent nothing yet and is not asked
/// to.
async fn drain_refused(mut body: Body, headers: &HeaderMap, limits: &Limits) {
    let continues = headers
        .get(header::EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if continues {
        return;
    }
    let started = tokio::time::Instant::now();
    let mut received = 0u64;
    while received <= limits.max_body_bytes as u64 {
        let deadline = started + body_deadline(received, limits).min(limits.refused_body_drain);
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    received += data.len() as u64;
                }
            }
            _ => return,
        }
    }
}

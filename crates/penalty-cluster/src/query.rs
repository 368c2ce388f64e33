//! A node's answers that merge partitions or forward a shop's route to the
//! host of its partition: `GET /shops`, `GET /shops/{id}/postings` (and
//! `.csv`), `/notices`, `/at-risk`, `/days`, `/deductions`, `GET /orders`,
//! `GET /orders.csv` and `GET /data-range`.
//!
//! A node asks a partition's host on `penalty.qc.<stage>.<p>` (an [`Ask`])
//! and the host answers with an [`Answer`] cut into chunks no larger than
//! the NATS server's maximum payload (1 MiB by default), so that a
//! partition's answer (thousands of shop summaries, an export) is never
//! limited by it. The host computes with penalty-server's own functions
//! (its checks and its JSON); the node merges the partitions as one machine's
//! ledger orders them: shops by id, order rows by
//! [`penalty_core::OrderSort::compare`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Json;
use futures_util::StreamExt;
use penalty_core::csv::CsvRow;
use penalty_core::{OrderRow, UnixNs};
use penalty_server::auth::Access;
use penalty_server::download::CsvSink;
use penalty_server::error::ApiError;
use penalty_server::routes::{
    unknown_order, DataRange, Id, OrderListAsk, OrderPage, Params, ShopListParams, ShopListing,
    ShopPage, ShopRoute, ORDERS_CSV_DISPOSITION,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::node::{lock, Caller, Node, StageState};
use crate::partition::partition_of;
use crate::wire::Stage;
use crate::ClusterError;

/// How long a node waits for the first chunk of a `known_at` answer, which
/// replays the partition's stream first.
const REPLAY_WAIT: Duration = Duration::from_secs(60);

/// What a node asks of a partition's host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Ask {
    /// Every shop's summary as of the instant (`GET /shops`), of the
    /// events recorded by `known_at_ns` if given.
    Shops {
        as_of_ns: i64,
        known_at_ns: Option<i64>,
    },
    /// A route of one shop, answered by penalty-server's
    /// [`penalty_server::routes::shop_route_answer`].
    ShopRoute {
        confined_to: Option<String>,
        route: ShopRoute,
        shop_id: String,
        query: Option<String>,
        accept_language: String,
    },
    /// `GET /orders/{id}`, answered by penalty-server's
    /// [`penalty_server::routes::order_route_answer`].
    Order {
        confined_to: Option<String>,
        order_id: String,
        query: Option<String>,
        accept_language: String,
    },
    /// The first rows of `GET /orders`'s query, with their count.
    OrderHead {
        confined_to: Option<String>,
        query: Option<String>,
        as_of_ns: i64,
    },
    /// The rows of `GET /orders.csv`'s query after the row of `after`
    /// (shop id, order id; from the first when `None`), as CSV lines, one
    /// text per shop, until about `max_bytes` of them: a stretch of a
    /// download ([`CsvStretch`]).
    OrderCsv {
        confined_to: Option<String>,
        query: Option<String>,
        as_of_ns: i64,
        after: Option<(String, String)>,
        max_bytes: usize,
    },
    /// The span of the events of the partition's shops (of one shop, if
    /// given).
    Span { shop: Option<String> },
    /// The span of the events parked in the partition's order stage.
    ParkedSpan,
    /// The shop stream sequences of an order's events (its shop's
    /// partition).
    OrderEvents { order_id: String },
    /// An order's events parked for its paid (its own partition of the
    /// order stage).
    Parked { order_id: String },
}

impl Ask {
    /// The `known_at` of the ask: a field, or a parameter of the query
    /// string handed over (read loosely here: a malformed one is left to
    /// penalty-server's check, which answers it with its 400).
    fn known_at(&self, policy: &penalty_core::Policy) -> Option<UnixNs> {
        #[derive(Deserialize)]
        struct Loose {
            known_at: Option<String>,
        }
        let query = match self {
            Ask::Shops { known_at_ns, .. } => return known_at_ns.map(UnixNs),
            Ask::ShopRoute { query, .. }
            | Ask::Order { query, .. }
            | Ask::OrderHead { query, .. }
            | Ask::OrderCsv { query, .. } => query.as_deref()?,
            Ask::Span { .. } | Ask::ParkedSpan | Ask::OrderEvents { .. } | Ask::Parked { .. } => {
                return None
            }
        };
        let uri: axum::http::Uri = format!("/?{query}").parse().ok()?;
        let axum::extract::Query(loose) = axum::extract::Query::<Loose>::try_from_uri(&uri).ok()?;
        UnixNs::parse_asked(&loose.known_at?, policy.utc_offset).ok()
    }

    /// The stage whose state answers.
    fn stage(&self) -> Stage {
        match self {
            Ask::ParkedSpan | Ask::Parked { .. } => Stage::Orders,
            _ => Stage::Shops,
        }
    }
}

/// A host's answer: an HTTP status, the headers that matter and the body.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Answer {
    status: u16,
    content_type: Option<String>,
    disposition: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(value: &impl Serialize) -> Answer {
        match serde_json::to_vec(value) {
            Ok(body) => Answer {
                status: 200,
                content_type: Some("application/json".into()),
                disposition: None,
                body,
            },
            Err(error) => Answer::error(ApiError::internal(error)),
        }
    }

    /// An error as the one-machine server words it (its JSON body and
    /// status).
    fn error(error: ApiError) -> Answer {
        Answer::from_response(error.into_response())
    }

    /// The one-machine server's response, refusals included: its status,
    /// content type, attachment name and body, which is whole in memory
    /// (a JSON page or error, a CSV text).
    fn from_response(response: Response) -> Answer {
        let status = response.status().as_u16();
        let header_of = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header_of(header::CONTENT_TYPE);
        let disposition = header_of(header::CONTENT_DISPOSITION);
        let body = futures_util::FutureExt::now_or_never(axum::body::to_bytes(
            response.into_body(),
            usize::MAX,
        ))
        .and_then(Result::ok)
        .map(|bytes| bytes.to_vec())
        .unwrap_or_default();
        Answer {
            status,
            content_type,
            disposition,
            body,
        }
    }

    /// A 503 saying which partition did not answer.
    fn unavailable(why: String) -> Answer {
        tracing::warn!(%why, "a partition did not answer");
        Answer::error(ApiError::Unavailable(
            "a partition's host did not answer (it is moving or catching up); retry shortly",
        ))
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.body).into_response();
        let headers = response.headers_mut();
        for (name, value) in [
            (header::CONTENT_TYPE, self.content_type),
            (header::CONTENT_DISPOSITION, self.disposition),
        ] {
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(name, value);
            }
        }
        response
    }

    /// The body of a 200 as `T`; any other answer as it is.
    fn decoded<T: DeserializeOwned>(self) -> Result<T, Answer> {
        if self.status != 200 {
            return Err(self);
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            Answer::error(ApiError::internal(format!(
                "a partition's answer could not be read: {e}"
            )))
        })
    }
}

/// Computes the answer to `ask` from a hosted stage's state.
fn answer(state: &StageState, ask: Ask) -> Answer {
    match (state, ask) {
        (StageState::Shops(shops), ask) => answer_shops(shops, ask),
        (StageState::Orders(orders), Ask::ParkedSpan) => {
            Answer::json(&orders.parked_span().map(|(first, last)| (first.0, last.0)))
        }
        (StageState::Orders(orders), Ask::Parked { order_id }) => {
            Answer::json(&orders.parked_of(&order_id))
        }
        _ => Answer::error(ApiError::internal("a query reached the wrong stage")),
    }
}

/// Computes the answer to `ask` from a shop stage: a hosted one, or a
/// `known_at` replay.
fn answer_shops(shops: &crate::stages::ShopStage, ask: Ask) -> Answer {
    match ask {
        Ask::Shops { as_of_ns, .. } => Answer::json(&shops.ledger.shop_summaries(UnixNs(as_of_ns))),
        Ask::ShopRoute {
            confined_to,
            route,
            shop_id,
            query,
            accept_language,
        } => Answer::from_response(penalty_server::routes::shop_route_answer(
            &shops.ledger,
            confined_to.as_deref(),
            route,
            &shop_id,
            query.as_deref(),
            &accept_language,
        )),
        Ask::Order {
            confined_to,
            order_id,
            query,
            accept_language,
        } => Answer::from_response(penalty_server::routes::order_route_answer(
            &shops.ledger,
            confined_to.as_deref(),
            &order_id,
            query.as_deref(),
            &accept_language,
        )),
        Ask::OrderHead {
            confined_to,
            query,
            as_of_ns,
        } => {
            let ledger = &shops.ledger;
            let policy = ledger.policy();
            match OrderListAsk::from_query(policy, confined_to.as_deref(), query.as_deref(), false)
            {
                Ok(asked) => {
                    let (rows, total) = ledger.order_rows_head(
                        UnixNs(as_of_ns),
                        asked.shop.as_deref(),
                        asked.filter,
                        asked.sort,
                        asked.offset.saturating_add(asked.limit),
                    );
                    let rows: Vec<(i64, OrderRow)> =
                        rows.into_iter().map(|(at, row)| (at.0, row)).collect();
                    Answer::json(&(rows, total))
                }
                Err(error) => Answer::error(error),
            }
        }
        Ask::OrderCsv {
            confined_to,
            query,
            as_of_ns,
            after,
            max_bytes,
        } => {
            let ledger = &shops.ledger;
            let policy = ledger.policy();
            match OrderListAsk::from_query(policy, confined_to.as_deref(), query.as_deref(), true) {
                Ok(asked) => {
                    let mut stretch = CsvStretch::default();
                    let mut bytes = 0usize;
                    let mut full = false;
                    let _ = ledger.each_order_row_after(
                        UnixNs(as_of_ns),
                        asked.shop.as_deref(),
                        asked.filter,
                        after
                            .as_ref()
                            .map(|(shop, order)| (shop.as_str(), order.as_str())),
                        |row| {
                            let line = row.csv_line(asked.excel);
                            bytes += line.len();
                            match stretch.blocks.last_mut() {
                                Some((shop, text)) if *shop == row.shop_id => text.push_str(&line),
                                _ => stretch.blocks.push((row.shop_id.clone(), line)),
                            }
                            stretch.last = Some((row.shop_id, row.order_id));
                            full = bytes >= max_bytes;
                            Ok::<bool, std::convert::Infallible>(!full)
                        },
                    );
                    stretch.done = !full;
                    Answer::json(&stretch)
                }
                Err(error) => Answer::error(error),
            }
        }
        Ask::Span { shop } => Answer::json(
            &shops
                .ledger
                .event_span(shop.as_deref())
                .map(|(first, last)| (first.0, last.0)),
        ),
        Ask::OrderEvents { order_id } => Answer::json(&shops.events_of(&order_id)),
        Ask::ParkedSpan | Ask::Parked { .. } => {
            Answer::error(ApiError::internal("a query reached the wrong stage"))
        }
    }
}

/// Answers `penalty.qc.<stage>.<p>` for the partitions hosted here and
/// caught up (others are left to their host), in chunks.
pub(crate) async fn respond(node: Arc<Node>) {
    let mut subscription = match node.client.subscribe("penalty.qc.>").await {
        Ok(subscription) => subscription,
        Err(error) => {
            tracing::error!(%error, "cannot answer queries");
            return;
        }
    };
    while let Some(message) = subscription.next().await {
        let Some(reply_to) = message.reply.clone() else {
            continue;
        };
        let Some(p) = message
            .subject
            .as_str()
            .rsplit('.')
            .next()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(ask) = serde_json::from_slice::<Ask>(&message.payload) else {
            continue;
        };
        let hosted = lock(&node.hosted)
            .get(&(ask.stage(), p))
            .map(|(h, _)| h.clone());
        let Some(hosted) = hosted.filter(|h| h.caught_up.load(Ordering::SeqCst)) else {
            continue;
        };
        let node = node.clone();
        tokio::spawn(async move {
            // The computation holds the partition's state: off the async
            // threads, as one machine's queries. With `known_at`, it runs on
            // a replay of the partition's events recorded by then.
            let computed = match ask.known_at(&node.options.policy) {
                Some(known_at) if ask.stage() == Stage::Shops => {
                    let replay = node
                        .replays
                        .get(
                            &node.js,
                            &node.options.policy,
                            node.options.max_replay_events,
                            p,
                            known_at,
                        )
                        .await;
                    match replay {
                        Ok(replay) => {
                            tokio::task::spawn_blocking(move || answer_shops(&replay.stage, ask))
                                .await
                        }
                        Err(error @ ClusterError::ReplayTooLarge { .. }) => Ok(Answer::error(
                            ApiError::bad_request("known_at_too_large", error.to_string()),
                        )),
                        Err(error) => Ok(Answer::unavailable(error.to_string())),
                    }
                }
                _ => tokio::task::spawn_blocking(move || answer(&lock(&hosted.state), ask)).await,
            };
            let answer = match computed {
                Ok(answer) => answer,
                Err(error) => Answer::error(ApiError::internal(error)),
            };
            let sent = match bincode::serialize(&answer) {
                Ok(bytes) => crate::chunks::send_chunks(&node.client, reply_to, &bytes).await,
                Err(error) => Err(error.to_string()),
            };
            if let Err(error) = sent {
                tracing::warn!(%error, "answering a query");
            }
        });
    }
}

/// Asks the host of partition `p` (of `ask`'s stage) and gathers its
/// chunked answer; a 503 when no host answers in time or chunks are lost.
pub(crate) async fn ask(node: &Node, p: u32, ask: &Ask) -> Answer {
    let subject = format!("penalty.qc.{}.{p}", ask.stage().name());
    let payload = serde_json::to_vec(ask).unwrap_or_default();
    // A replay reads the partition's stream before the first chunk.
    let first_wait = if ask.known_at(&node.options.policy).is_some() {
        REPLAY_WAIT
    } else {
        crate::chunks::CHUNK_WAIT
    };
    match crate::chunks::request_chunks(&node.client, subject, payload, first_wait).await {
        Ok(bytes) => bincode::deserialize(&bytes)
            .unwrap_or_else(|e| Answer::unavailable(format!("an unreadable answer: {e}"))),
        Err(why) => Answer::unavailable(why),
    }
}

/// Asks every partition; the answers in partition order, or the first
/// failure.
async fn ask_all<T: DeserializeOwned>(
    node: &Arc<Node>,
    make: impl Fn() -> Ask,
) -> Result<Vec<T>, Answer> {
    let asks = (0..node.config.partitions).map(|p| {
        let request = make();
        async move { ask(node, p, &request).await }
    });
    futures_util::future::join_all(asks)
        .await
        .into_iter()
        .map(Answer::decoded)
        .collect()
}

/// The one-machine server's answer of an error.
fn refused(error: ApiError) -> Response {
    error.into_response()
}

/// `GET /shops` on any node: every partition's shop summaries, asked of
/// their hosts, merged in shop id order (as one machine's ledger lists
/// them), then ranked and paged by the one-machine server's
/// [`ShopListing`]: the same JSON, field for field.
pub(crate) async fn http_shops(
    State(node): State<Arc<Node>>,
    Caller(access): Caller,
    Params(params): Params<ShopListParams>,
) -> Result<Json<ShopPage>, Response> {
    let when = penalty_server::routes::when(
        &node.options.policy,
        params.as_of.as_deref(),
        params.known_at.as_deref(),
    )
    .map_err(refused)?;
    let listing = ShopListing::asked(&params).map_err(refused)?;
    let parts: Vec<Vec<penalty_core::ShopReport>> = ask_all(&node, || Ask::Shops {
        as_of_ns: when.as_of.0,
        known_at_ns: when.known_at.map(|k| k.0),
    })
    .await
    .map_err(Answer::into_response)?;
    let mut shops: Vec<penalty_core::ShopReport> = parts.into_iter().flatten().collect();
    // A seller lists its own shop only, as on one machine.
    if let Some(own) = access.confined_to() {
        shops.retain(|shop| shop.shop_id == own);
    }
    shops.sort_by(|a, b| a.shop_id.cmp(&b.shop_id));
    Ok(Json(listing.page(shops)))
}

/// A route of one shop, forwarded to the host of its partition, which
/// answers it with the one-machine server's code.
async fn shop_route(
    node: &Node,
    access: &Access,
    route: ShopRoute,
    shop_id: String,
    query: Option<String>,
    headers: &HeaderMap,
) -> Response {
    let accept_language = accept_language(headers);
    let p = partition_of(&shop_id, node.config.partitions);
    ask(
        node,
        p,
        &Ask::ShopRoute {
            confined_to: access.confined_to().map(str::to_string),
            route,
            shop_id,
            query,
            accept_language,
        },
    )
    .await
    .into_response()
}

/// The `Accept-Language` of a request, handed to the host as it came.
fn accept_language(headers: &HeaderMap) -> String {
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The handler of a route of one shop (`GET /shops/{id}` and the routes
/// under it): the one shape of them all, forwarded by [`shop_route`] with
/// the query string and `Accept-Language` as they came.
pub(crate) fn shop_route_handler(route: ShopRoute) -> MethodRouter<Arc<Node>> {
    get(
        move |State(node): State<Arc<Node>>,
              Caller(access): Caller,
              Id(shop_id): Id,
              RawQuery(query): RawQuery,
              headers: HeaderMap| async move {
            shop_route(&node, &access, route, shop_id, query, &headers).await
        },
    )
}

/// `as_of` and `known_at` of `GET /orders/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AsOf {
    as_of: Option<String>,
    known_at: Option<String>,
}

/// `GET /orders/{id}`: the order's shop, asked of the host of the order's
/// partition in stage 2, then the report, asked of the host of the shop's
/// partition.
pub(crate) async fn http_order(
    State(node): State<Arc<Node>>,
    Caller(access): Caller,
    Id(order_id): Id,
    RawQuery(query): RawQuery,
    Params(params): Params<AsOf>,
    headers: HeaderMap,
) -> Response {
    let when = penalty_server::routes::when(
        &node.options.policy,
        params.as_of.as_deref(),
        params.known_at.as_deref(),
    );
    let as_of = match when {
        Ok(when) => when.as_of,
        Err(error) => return refused(error),
    };
    let request = crate::node::QueryRequest {
        id: order_id.clone(),
        as_of_ns: as_of.0,
    };
    let p = partition_of(&order_id, node.config.partitions);
    let found = crate::node::ask(&node, format!("penalty.q.ordshop.{p}"), &request).await;
    if found.status != 200 {
        return crate::node::into_response(found);
    }
    let shop_id = found.body.get("shop_id").and_then(|s| s.as_str());
    if let Some(own) = access.confined_to() {
        // A seller gets one answer for an order it may not read, whatever
        // the reason (no such order, another shop's), as on one machine.
        if shop_id != Some(own) {
            return refused(unknown_order(&order_id, as_of, &node.options.policy));
        }
    }
    let Some(shop_id) = shop_id else {
        // No paid passed stage 2: the ledger of one machine says the same.
        return refused(ApiError::from(penalty_core::QueryError::UnknownOrder {
            order_id,
            as_of: as_of.to_rfc3339(node.options.policy.utc_offset),
            paid_at: None,
        }));
    };
    let p = partition_of(shop_id, node.config.partitions);
    ask(
        &node,
        p,
        &Ask::Order {
            confined_to: access.confined_to().map(str::to_string),
            order_id,
            query,
            accept_language: accept_language(&headers),
        },
    )
    .await
    .into_response()
}

/// `GET /orders/{id}/events`: the order's shop, asked of stage 2 (as
/// `GET /orders/{id}`); then the sequences of its events, asked of its
/// shop's host, and the events read from the shop stream (the log of
/// record); or, for an order whose paid has not come, the events stage 2
/// parks for it (R13). The one-machine server's code checks the query,
/// pages the timeline (`EventsAsk::page`: the first `max_order_events` are
/// read, then the page after the cursor's event is cut from them) and
/// words the answer; `seq` is the event's sequence in the shop stream (in
/// the order stream for a parked one) and `recorded_at` when stage 1
/// stored it, so both differ from one machine's, as they would between any
/// two ledgers of the same events.
pub(crate) async fn http_order_events(
    State(node): State<Arc<Node>>,
    Caller(access): Caller,
    Id(order_id): Id,
    RawQuery(query): RawQuery,
) -> Response {
    let policy = &node.options.policy;
    let asked = match penalty_server::routes::order_events_asked(query.as_deref(), policy) {
        Ok(asked) => asked,
        Err(error) => return refused(error),
    };
    let as_of = asked.as_of;
    let confined = access.confined_to();
    let timeline = |page| {
        penalty_server::routes::order_timeline_answer(
            order_id.clone(),
            page,
            confined.is_some(),
            as_of,
            policy,
        )
        .unwrap_or_else(refused)
    };
    let request = crate::node::QueryRequest {
        id: order_id.clone(),
        as_of_ns: as_of.0,
    };
    let p = partition_of(&order_id, node.config.partitions);
    let found = crate::node::ask(&node, format!("penalty.q.ordshop.{p}"), &request).await;
    if found.status != 200 {
        return crate::node::into_response(found);
    }
    let shop_id = found
        .body
        .get("shop_id")
        .and_then(|s| s.as_str())
        .map(str::to_string);
    if let Some(own) = confined {
        // Another shop's order, or one whose shop is not known: the
        // unknown order's answer, as on one machine.
        if shop_id.as_deref() != Some(own) {
            return timeline(None);
        }
    }
    let max_events = node.limits.max_order_events;
    let stored: Vec<(u64, i64, String)> = match shop_id {
        Some(shop) => {
            let asked = Ask::OrderEvents {
                order_id: order_id.clone(),
            };
            let p = partition_of(&shop, node.config.partitions);
            let seqs = match ask(&node, p, &asked).await.decoded::<Vec<u64>>() {
                Ok(seqs) => seqs,
                Err(answer) => return answer.into_response(),
            };
            match read_shop_messages(&node, &seqs[..seqs.len().min(max_events)]).await {
                Ok(stored) => stored,
                Err(why) => return Answer::unavailable(why).into_response(),
            }
        }
        None => {
            let asked = Ask::Parked {
                order_id: order_id.clone(),
            };
            match ask(&node, p, &asked)
                .await
                .decoded::<Vec<(u64, i64, String)>>()
            {
                Ok(mut parked) => {
                    parked.truncate(max_events);
                    parked
                }
                Err(answer) => return answer.into_response(),
            }
        }
    };
    if stored.is_empty() {
        return timeline(None);
    }
    let mut events = Vec::with_capacity(stored.len());
    for (seq, recorded_at_ns, json) in stored {
        let event = match penalty_core::event::parse_stored(json.as_bytes()) {
            Ok(event) => event,
            Err(reject) => return refused(ApiError::internal(reject)),
        };
        if event.at > as_of {
            continue;
        }
        let value = match serde_json::from_str(&json) {
            Ok(value) => value,
            Err(error) => return refused(ApiError::internal(error)),
        };
        events.push((
            recorded_at_ns,
            penalty_server::state::TimelineEvent {
                seq,
                recorded_at: UnixNs(recorded_at_ns).to_rfc3339(policy.utc_offset),
                event: value,
            },
        ));
    }
    // In recording order, as one machine's log holds them (stage 2 sends an
    // order's parked events to the shop stream after their paid).
    events.sort_by_key(|(at, event)| (*at, event.seq));
    timeline(Some(
        asked.page(events.into_iter().map(|(_, event)| event).collect()),
    ))
}

/// The shop stream's messages at `seqs`: (seq, recorded_at, event JSON).
async fn read_shop_messages(node: &Node, seqs: &[u64]) -> Result<Vec<(u64, i64, String)>, String> {
    let stream = node
        .js
        .get_stream(Stage::Shops.stream())
        .await
        .map_err(|e| format!("opening the shop stream: {e}"))?;
    let reads = seqs.iter().map(|seq| stream.direct_get(*seq));
    let mut stored = Vec::with_capacity(seqs.len());
    for (seq, read) in seqs.iter().zip(futures_util::future::join_all(reads).await) {
        let message = read.map_err(|e| format!("reading the shop stream at {seq}: {e}"))?;
        let msg: crate::wire::ShopMsg = serde_json::from_slice(&message.payload)
            .map_err(|e| format!("the shop stream at {seq}: {e}"))?;
        stored.push((*seq, msg.recorded_at_ns, msg.json));
    }
    Ok(stored)
}

/// The partitions an order list asks: its shop's, or all.
fn partitions_of(node: &Node, shop: Option<&str>) -> Vec<u32> {
    match shop {
        Some(shop) => vec![partition_of(shop, node.config.partitions)],
        None => (0..node.config.partitions).collect(),
    }
}

/// The common half of `GET /orders` and `GET /orders.csv` on any node: the
/// list's query checked as one machine checks it (`csv` says which of the
/// two), then the same question asked of every partition the list spans
/// (its shop's, or all) at once, each answer decoded as `T`. The first
/// refusal or failed answer is the response.
async fn ask_order_partitions<T: DeserializeOwned>(
    node: &Arc<Node>,
    access: &Access,
    query: Option<String>,
    csv: bool,
    question: fn(Option<String>, Option<String>, i64) -> Ask,
) -> Result<(OrderListAsk, Vec<T>), Response> {
    let confined_to = access.confined_to();
    let policy = &node.options.policy;
    let asked =
        OrderListAsk::from_query(policy, confined_to, query.as_deref(), csv).map_err(refused)?;
    let request = question(confined_to.map(str::to_string), query, asked.as_of.0);
    let asks = partitions_of(node, asked.shop.as_deref())
        .into_iter()
        .map(|p| {
            let (node, request) = (node.clone(), request.clone());
            async move { ask(&node, p, &request).await }
        });
    let mut answers = Vec::new();
    for answer in futures_util::future::join_all(asks).await {
        answers.push(answer.decoded::<T>().map_err(Answer::into_response)?);
    }
    Ok((asked, answers))
}

/// `GET /orders` on any node: each partition's first `offset + limit` rows
/// by the asked sort, merged by [`penalty_core::OrderSort::compare`] (the
/// order one ledger gives), then the page cut from them; the total is the
/// partitions' sum.
pub(crate) async fn http_orders(
    State(node): State<Arc<Node>>,
    Caller(access): Caller,
    RawQuery(query): RawQuery,
) -> Response {
    let question = |confined_to, query, as_of_ns| Ask::OrderHead {
        confined_to,
        query,
        as_of_ns,
    };
    let (asked, answers) = match ask_order_partitions::<(Vec<(i64, OrderRow)>, usize)>(
        &node, &access, query, false, question,
    )
    .await
    {
        Ok(gathered) => gathered,
        Err(response) => return response,
    };
    let mut rows: Vec<(UnixNs, OrderRow)> = Vec::new();
    let mut total = 0usize;
    for (part, count) in answers {
        rows.extend(part.into_iter().map(|(at, row)| (UnixNs(at), row)));
        total += count;
    }
    rows.sort_by(|a, b| asked.sort.compare((a.0, &a.1), (b.0, &b.1)));
    let orders: Vec<OrderRow> = rows
        .into_iter()
        .skip(asked.offset)
        .take(asked.limit)
        .map(|(_, row)| row)
        .collect();
    let end = asked.offset.saturating_add(orders.len());
    Json(OrderPage {
        orders,
        next: (end < total).then_some(end),
        total,
    })
    .into_response()
}

/// A stretch of a partition's rows of `GET /orders.csv`, in the export's
/// order (shop id, then order id).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct CsvStretch {
    /// The rows as CSV lines, one text per shop.
    blocks: Vec<(String, String)>,
    /// The shop and order id of the last row, where the next stretch starts.
    last: Option<(String, String)>,
    /// No row follows.
    done: bool,
}

/// What a download asks of the partitions at a time, in all: the node holds
/// at most about this much of their rows at once, however large the export
/// (a partition's stretch grows to this divided among them, or
/// [`FIRST_STRETCH_BYTES`] when that is larger).
const CSV_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// A partition's first stretch: the first byte of a download waits for
/// every partition's first stretch, so it is small; each next one is twice
/// as large, up to the partition's share of [`CSV_BUFFER_BYTES`], so a
/// large export takes few questions.
const FIRST_STRETCH_BYTES: usize = 16 * 1024;

/// One partition's side of a download: the rows received and not yet sent,
/// and where its next stretch starts.
struct CsvSource {
    partition: u32,
    blocks: std::collections::VecDeque<(String, String)>,
    after: Option<(String, String)>,
    done: bool,
    /// The size of the next stretch asked.
    stretch_bytes: usize,
    /// The largest stretch asked.
    max_stretch_bytes: usize,
}

/// A download merging the partitions' stretches as the client reads.
struct CsvMerge {
    node: Arc<Node>,
    /// The ask of every stretch, `after` set per partition.
    request: Ask,
    sources: Vec<CsvSource>,
    /// The BOM and header, sent first.
    head: Option<String>,
}

impl CsvMerge {
    /// Asks partition `source` for its next stretch.
    async fn refill(node: &Node, request: &Ask, source: &mut CsvSource) -> Result<(), Answer> {
        let mut request = request.clone();
        if let Ask::OrderCsv {
            after, max_bytes, ..
        } = &mut request
        {
            after.clone_from(&source.after);
            *max_bytes = source.stretch_bytes;
        }
        source.stretch_bytes = (source.stretch_bytes * 2).min(source.max_stretch_bytes);
        let stretch: CsvStretch = ask(node, source.partition, &request).await.decoded()?;
        source.blocks.extend(stretch.blocks);
        if stretch.last.is_some() {
            source.after = stretch.last;
        }
        source.done = stretch.done;
        Ok(())
    }

    /// Asks every partition whose rows sent so far are all sent, and that
    /// has more, for its next stretch, all at once.
    async fn refill_empty(&mut self) -> Result<(), Answer> {
        let (node, request) = (&self.node, &self.request);
        let asks = self
            .sources
            .iter_mut()
            .filter(|source| source.blocks.is_empty() && !source.done)
            .map(|source| CsvMerge::refill(node, request, source));
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .collect()
    }

    /// The next text of the body, about 64 KiB of it; `None` at the end.
    /// Shops are whole in one partition and each partition's stretches
    /// come in the export's order, so the smallest shop id at the head of
    /// a partition (once each has a row at hand, or none left) is next.
    async fn next_text(&mut self) -> Result<Option<String>, Answer> {
        const CHUNK_BYTES: usize = 64 * 1024;
        let mut text = self.head.take().unwrap_or_default();
        while text.len() < CHUNK_BYTES {
            self.refill_empty().await?;
            let next = self
                .sources
                .iter_mut()
                .filter(|source| !source.blocks.is_empty())
                .min_by(|a, b| a.blocks[0].0.cmp(&b.blocks[0].0));
            let Some(source) = next else {
                break;
            };
            if let Some((_, block)) = source.blocks.pop_front() {
                text.push_str(&block);
            }
        }
        Ok((!text.is_empty()).then_some(text))
    }
}

/// `GET /orders.csv` on any node: each partition's rows asked a stretch at
/// a time and merged in the export's order (shop id, then order id; shops
/// are whole in one partition) as the client reads, under `penalty export
/// orders`'s header: the node holds at most about [`CSV_BUFFER_BYTES`] of
/// rows, whatever the export's size. A refusal (a bad query, a seller's
/// foreign shop, a partition that does not answer) found before the first
/// row is its JSON error; one after it cuts the body short, as one machine
/// does.
pub(crate) async fn http_orders_csv(
    State(node): State<Arc<Node>>,
    Caller(access): Caller,
    RawQuery(query): RawQuery,
) -> Response {
    let confined_to = access.confined_to();
    let policy = &node.options.policy;
    let asked = match OrderListAsk::from_query(policy, confined_to, query.as_deref(), true) {
        Ok(asked) => asked,
        Err(error) => return refused(error),
    };
    let partitions = partitions_of(&node, asked.shop.as_deref());
    let max_stretch_bytes = (CSV_BUFFER_BYTES / partitions.len().max(1)).max(FIRST_STRETCH_BYTES);
    let request = Ask::OrderCsv {
        confined_to: confined_to.map(str::to_string),
        query,
        as_of_ns: asked.as_of.0,
        after: None,
        max_bytes: FIRST_STRETCH_BYTES,
    };
    let mut head = String::new();
    let written = CsvSink::start(&mut head, asked.excel)
        .and_then(|()| CsvSink::push(&mut head, &<OrderRow as CsvRow>::csv_header(asked.excel)));
    if let Err(error) = written {
        return refused(error);
    }
    let mut merge = CsvMerge {
        node: node.clone(),
        request,
        sources: partitions
            .into_iter()
            .map(|partition| CsvSource {
                partition,
                blocks: std::collections::VecDeque::new(),
                after: None,
                done: false,
                stretch_bytes: FIRST_STRETCH_BYTES,
                max_stretch_bytes,
            })
            .collect(),
        head: Some(head),
    };
    // Every partition's first stretch before the status: a refusal is
    // still a JSON error.
    if let Err(answer) = merge.refill_empty().await {
        return answer.into_response();
    }
    let body = futures_util::stream::unfold(Some(merge), |merge| async move {
        let mut merge = merge?;
        match merge.next_text().await {
            Ok(Some(text)) => Some((Ok(bytes::Bytes::from(text)), Some(merge))),
            Ok(None) => None,
            // The body has begun: it is cut short, which the client sees as
            // a download that did not end, never as a whole file.
            Err(answer) => {
                tracing::warn!(
                    status = answer.status,
                    "a partition failed during a download"
                );
                Some((
                    Err(std::io::Error::other(
                        "a partition failed during a download",
                    )),
                    None,
                ))
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, ORDERS_CSV_DISPOSITION),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

/// `GET /data-range` on any node: the first and last event instant over
/// every partition's shops and the events parked for their paid (which one
/// machine's ledger holds too); a seller's, of its own shop only (no parked
/// event is known to be its shop's, as on one machine).
pub(crate) async fn http_data_range(
    State(node): State<Arc<Node>>,
    Caller(access): Caller,
) -> Response {
    let (shops, parked) = match access.confined_to() {
        None => {
            futures_util::future::join(
                ask_all::<Option<(i64, i64)>>(&node, || Ask::Span { shop: None }),
                ask_all::<Option<(i64, i64)>>(&node, || Ask::ParkedSpan),
            )
            .await
        }
        Some(own) => {
            let p = partition_of(own, node.config.partitions);
            let span = ask(
                &node,
                p,
                &Ask::Span {
                    shop: Some(own.to_string()),
                },
            )
            .await
            .decoded::<Option<(i64, i64)>>();
            (span.map(|span| vec![span]), Ok(Vec::new()))
        }
    };
    let spans = match (shops, parked) {
        (Ok(shops), Ok(parked)) => shops.into_iter().chain(parked).flatten(),
        (Err(answer), _) | (_, Err(answer)) => return answer.into_response(),
    };
    let span = spans.fold(None, |span: Option<(i64, i64)>, (lo, hi)| match span {
        None => Some((lo, hi)),
        Some((a, b)) => Some((a.min(lo), b.max(hi))),
    });
    Json(DataRange::of(
        span.map(|(lo, hi)| (UnixNs(lo), UnixNs(hi))),
        &node.options.policy,
    ))
    .into_response()
}

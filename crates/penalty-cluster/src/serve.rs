//! A node process: its HTTP route table and its entry point. The table
//! names the handlers of [`crate::node`] (ingest, status, metrics) and of
//! [`crate::query`] (every report route); keeping it here, above both, lets
//! `query` use the node's state without `node` knowing the routes.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use penalty_server::routes::ShopRoute;

use crate::node::{self, Node, NodeOptions};
use crate::query;
use crate::ClusterError;

/// Runs a node until `shutdown` completes, then stops it gracefully (see
/// [`node::serve`]): the one entry point of `penalty cluster node`.
pub async fn run(
    options: NodeOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ClusterError> {
    let node = node::start(options).await?;
    tokio::spawn(query::respond(node.clone()));
    node::serve(node, routes(), shutdown).await
}

/// A node's routes: the report routes of `penalty serve` that a cluster
/// answers, `POST /events`, `/status` and `/metrics`.
fn routes() -> Router<Arc<Node>> {
    let mut router = Router::new()
        .route("/events", post(node::http_post_events))
        .route("/shops", get(query::http_shops))
        .route("/orders", get(query::http_orders))
        .route("/orders.csv", get(query::http_orders_csv))
        .route("/data-range", get(query::http_data_range))
        .route("/orders/{id}", get(query::http_order))
        .route("/orders/{id}/events", get(query::http_order_events))
        .route("/status", get(node::http_status))
        .route("/metrics", get(node::http_metrics));
    // A shop's routes, answered by the host of its partition.
    for route in ShopRoute::ALL {
        router = router.route(route.path(), query::shop_route_handler(route));
    }
    // Every error worded in both languages answers in the request's, as on
    // one machine.
    router.layer(axum::middleware::from_fn(penalty_server::error::localize))
}

//! The OpenAPI 3.1 document served at `GET /openapi.json`, written by hand.
//!
//! A generator would need macros on every handler and type; the API is small
//! enough to describe directly, and a test (`openapi_matches_the_routes`)
//! checks that the document and the router list the same routes.

use serde_json::{json, Value};

fn as_of_params() -> Value {
    json!([
        {"name": "as_of", "in": "query", "required": false,
         "description": "The instant to evaluate at: RFC 3339 with an offset, or YYYY-MM-DD (00:00 in the policy's offset). Default: now.",
         "schema": instant_schema()},
        {"name": "known_at", "in": "query", "required": false,
         "description": "Answer with only the events recorded by this instant (a replay of the log: slower; one under way per token, more are a 429).",
         "schema": instant_schema()}
    ])
}

/// `as_of` and `known_at`: exactly what the server parses.
fn instant_schema() -> Value {
    json!({"type": "string", "pattern": crate::params::instant_pattern()})
}

/// The language of an answer's sentences (`explain`, an at-risk `line`, a
/// `cause`).
fn lang_param() -> Value {
    json!({"name": "Accept-Language", "in": "header", "required": false,
           "description": "The language of the sentences (`explain`, `line`, `cause`): Chinese when the heaviest of Chinese and English ranges is zh (zh-CN), else English. Codes and figures are the same in both.",
           "schema": {"type": "string"}})
}

fn id_param(description: &str) -> Value {
    json!({"name": "id", "in": "path", "required": true, "description": description,
           "schema": {"type": "string", "minLength": 1, "maxLength": 128}})
}

fn with(mut params: Value, more: Value) -> Value {
    if let (Some(list), Value::Array(more)) = (params.as_array_mut(), more) {
        list.extend(more);
    }
    params
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn errors(codes: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for code in codes {
        let description = match *code {
            "400" => "Bad input; the message says what is wrong.",
            "401" => "No token, or an unknown token (only when the server runs with --tokens).",
            "403" => "A seller token; only operators may do this.",
            "404" => "Unknown, or not visible to this token (a seller sees only its own shop).",
            "408" => "The body arrived too slowly; nothing was ingested.",
            "413" => "The body is larger than the limit (64 MiB).",
            "415" => "The body is not sent as application/x-ndjson or application/json.",
            "429" => "This token already has a known_at replay under way; retry after it.",
            "503" => "Busy (too many uploads or known_at replays at once); retry.",
            _ => "Error.",
        };
        map.insert(
            (*code).to_string(),
            json_response(description, json!({"$ref": "#/components/schemas/Error"})),
        );
    }
    Value::Object(map)
}

fn responses(ok: Value, error_codes: &[&str]) -> Value {
    let mut all = errors(error_codes);
    if let Some(map) = all.as_object_mut() {
        map.insert("200".into(), ok);
    }
    all
}

fn csv_response(description: &str) -> Value {
    json!({"description": description, "content": {"text/csv": {"schema": {"type": "string"}}}})
}

/// The filters of GET /orders and GET /orders.csv (the core's `RowFilter`).
fn order_filter_params() -> Value {
    json!([
        {"name": "shop", "in": "query", "required": false, "description": "Only this shop's orders.", "schema": {"type": "string", "minLength": 1, "maxLength": 128}},
        {"name": "status", "in": "query", "required": false, "description": "Only orders with this status.", "schema": {"$ref": "#/components/schemas/OrderStatus"}},
        {"name": "violating", "in": "query", "required": false, "description": "Only orders with at least one standing judgment.", "schema": {"type": "boolean"}},
        {"name": "paid_from", "in": "query", "required": false, "description": "Only orders paid at or after this instant.", "schema": instant_schema()},
        {"name": "paid_to", "in": "query", "required": false, "description": "Only orders paid at or before this instant; a date (YYYY-MM-DD) includes its whole day.", "schema": instant_schema()},
        {"name": "capped_day", "in": "query", "required": false, "description": "Only orders with a charged or waived deduction on a settle day whose daily cap cut something (R5).", "schema": {"type": "boolean"}},
        {"name": "closure_review", "in": "query", "required": false, "description": "Only orders under a closure-review flag (R7).", "schema": {"type": "boolean"}}
    ])
}

fn html() -> Value {
    json!({"description": "The dashboard page.", "content": {"text/html": {"schema": {"type": "string"}}}})
}

/// The document of a server with `--tokens`: every route but the open ones
/// asks for a bearer token.
pub fn document() -> Value {
    document_for(true)
}

/// The document as served: without tokens configured no route asks for
/// one, so neither the security scheme nor the 401 answers are described.
pub fn document_for(has_tokens: bool) -> Value {
    let mut document = full_document();
    if !has_tokens {
        if let Some(map) = document.as_object_mut() {
            map.remove("security");
        }
        if let Some(components) = document
            .get_mut("components")
            .and_then(Value::as_object_mut)
        {
            components.remove("securitySchemes");
        }
        if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
            for (method, operation) in paths
                .values_mut()
                .filter_map(Value::as_object_mut)
                .flat_map(|item| item.iter_mut())
                .filter_map(|(method, operation)| Some((method, operation.as_object_mut()?)))
            {
                operation.remove("security");
                if let Some(responses) = operation
                    .get_mut("responses")
                    .and_then(Value::as_object_mut)
                {
                    responses.remove("401");
                    if method == "get" {
                        responses.remove("403");
                    }
                }
            }
        }
    }
    document
}

fn full_document() -> Value {
    let deduction = json!({"type": "object", "required": ["order_id", "judgment", "judged_at", "settle_date", "amount_fen", "charged_fen", "waived_fen", "status"],
        "properties": {"order_id": {"type": "string"}, "judgment": {"type": "integer"}, "judged_at": {"type": "string"},
            "settle_date": {"type": "string", "format": "date"}, "amount_fen": {"type": "integer"}, "charged_fen": {"type": "integer"},
            "waived_fen": {"type": "integer"}, "status": {"enum": ["pending", "charged", "partial", "waived", "revoked"]}}});
    let ban = json!({"type": "object", "properties": {"product_id": {"type": "string"}, "order_id": {"type": "string"}, "banned_at": {"type": "string"}}});
    let flag = json!({"type": "object", "properties": {"order_id": {"type": "string"}, "flagged_at": {"type": "string"}}});
    let shop = json!({"type": "object", "description": "CLI.md's shop report; `deductions` only in GET /shops/{id}, which by default sends a first page of each list (deductions, banned_products, closure_review) unless full=true.",
        "required": ["shop_id", "as_of", "orders", "judgments", "violating_orders", "charged_fen", "waived_fen", "pending_fen", "deposit_balance_fen", "banned_products", "closure_review", "rating"],
        "properties": {"shop_id": {"type": "string"}, "as_of": {"type": "string"}, "orders": {"type": "integer"},
            "judgments": {"type": "integer"}, "violating_orders": {"type": "integer"}, "charged_fen": {"type": "integer"},
            "waived_fen": {"type": "integer"}, "pending_fen": {"type": "integer"}, "deposit_balance_fen": {"type": "integer"},
            "booked_fen": {"type": "integer", "description": "The sum of the booked ledger's postings so far (R14)."},
            "deductions": {"type": "array", "items": {"$ref": "#/components/schemas/Deduction"}},
            "banned_products": {"type": "array", "items": {"$ref": "#/components/schemas/Ban"}},
            "closure_review": {"type": "array", "items": {"$ref": "#/components/schemas/Flag"}},
            "rating": {"type": "object", "properties": {"window_days": {"type": "integer"}, "due_orders": {"type": "integer"},
                "timed_out_orders": {"type": "integer"}, "timeout_rate": {"type": ["number", "null"]}, "timeout_judgments": {"type": "integer"}}}}});
    let order = json!({"type": "object", "description": "CLI.md's order report.",
        "required": ["order_id", "shop_id", "product_id", "amount_fen", "as_of", "paid_at", "deadline", "status", "judgments", "deductions", "explain"],
        "properties": {"order_id": {"type": "string"}, "shop_id": {"type": "string"}, "product_id": {"type": "string"},
            "amount_fen": {"type": "integer"}, "as_of": {"type": "string"}, "paid_at": {"type": "string"}, "deadline": {"type": "string"},
            "status": {"$ref": "#/components/schemas/OrderStatus"}, "resolved_at": {"type": ["string", "null"]},
            "judgments": {"type": "array", "items": {"type": "object", "properties": {"judgment": {"type": "integer"}, "judged_at": {"type": "string"}, "revoked": {"type": "boolean"}}}},
            "deductions": {"type": "array", "items": {"$ref": "#/components/schemas/Deduction"}},
            "product_banned": {"type": "boolean"}, "closure_review": {"type": "boolean"}, "auto_closed_at": {"type": ["string", "null"]},
            "refund_due_fen": {"type": "integer"}, "alternative_refund_required": {"type": "boolean"},
            "explain": {"type": "array", "items": {"type": "string"}}}});
    let order_row = json!({"type": "object", "description": "One row of `penalty export orders --format jsonl`.",
        "properties": {"order_id": {"type": "string"}, "shop_id": {"type": "string"}, "product_id": {"type": "string"},
            "amount_fen": {"type": "integer"}, "paid_at": {"type": "string"}, "deadline": {"type": "string"},
            "status": {"$ref": "#/components/schemas/OrderStatus"}, "resolved_at": {"type": ["string", "null"]},
            "judgments": {"type": "integer"}, "revoked_judgments": {"type": "integer"}, "charged_fen": {"type": "integer"},
            "waived_fen": {"type": "integer"}, "pending_fen": {"type": "integer"}, "product_banned": {"type": "boolean"},
            "closure_review": {"type": "boolean"}, "auto_closed_at": {"type": ["string", "null"]},
            "refund_due_fen": {"type": "integer"}, "alternative_refund_required": {"type": "boolean"}}});
    let notice = json!({"type": "object", "properties": {"cursor": {"type": "string"}, "shop_id": {"type": "string"},
        "order_id": {"type": "string"}, "judgment": {"type": "integer"}, "judged_at": {"type": "string"},
        "deduction_fen": {"type": ["integer", "null"]}, "revoked": {"type": "boolean"},
        "posting": {"type": "object", "description": "For a correction of the booked ledger (R14): the refund or late charge it announces.",
            "properties": {"run_date": {"type": "string", "format": "date"}, "settle_date": {"type": "string", "format": "date"},
                "kind": {"enum": ["refund", "late_charge"]}, "amount_fen": {"type": "integer"}, "cause": {"type": "string"}}}}});
    let posting = json!({"type": "object", "description": "One posting of the booked ledger (R14): immutable once its run happened.",
        "required": ["run_date", "shop_id", "order_id", "judgment", "judged_at", "settle_date", "kind", "amount_fen", "cause"],
        "properties": {"run_date": {"type": "string", "format": "date"}, "shop_id": {"type": "string"}, "order_id": {"type": "string"},
            "judgment": {"type": "integer"}, "judged_at": {"type": "string"}, "settle_date": {"type": "string", "format": "date"},
            "kind": {"enum": ["charge", "refund", "late_charge"]}, "amount_fen": {"type": "integer", "description": "Signed: negative is money returned to the deposit."},
            "cause": {"type": "string", "description": "Why it was booked; for a correction, the event that caused it."}}});
    let ingest = json!({"type": "object", "required": ["read", "appended", "duplicates", "rejected", "rejects", "rejects_truncated"],
        "properties": {"read": {"type": "integer"}, "appended": {"type": "integer"}, "duplicates": {"type": "integer"},
            "rejected": {"type": "integer"}, "rejects_truncated": {"type": "boolean"},
            "rejects": {"type": "array", "maxItems": 1000, "items": {"type": "object", "properties": {
                "line": {"type": "integer"}, "reason": {"type": "string"}, "hint": {"type": "string"}}}}}});
    let at_risk = json!({"type": "object", "required": ["as_of", "within_hours", "orders", "next", "total"],
        "properties": {"as_of": {"type": "string"}, "within_hours": {"type": "number"}, "total": {"type": "integer"},
            "next": {"type": ["integer", "null"], "description": "Pass as `offset` for the next page; `null` on the last page."},
            "orders": {"type": "array", "maxItems": 1000, "items": {"type": "object", "required": ["order_id", "shop_id", "product_id", "next", "at", "seconds_left", "line"],
                "properties": {"order_id": {"type": "string"}, "shop_id": {"type": "string"}, "product_id": {"type": "string"},
                    "next": {"enum": ["judgment", "closure_review", "auto_close"]}, "at": {"type": "string"}, "seconds_left": {"type": "integer"},
                    "judgment": {"type": "integer"}, "deduction_fen": {"type": "integer"}, "bans_product": {"type": "boolean"},
                    "refund_due_fen": {"type": "integer"}, "line": {"type": "string"}}}}}});
    let error = json!({"type": "object", "required": ["error", "message"],
        "properties": {"error": {"type": "string", "description": "A stable code, such as invalid_query or not_found."},
            "message": {"type": "string", "description": "What is wrong, in a sentence."}}});

    // Added after the rest: one `json!` over every path exceeds the macro
    // recursion limit.
    let days_path = json!({"get": {"summary": "The shop's history by local day, what the dashboard's chart draws: standing judgments by the day judged (R3), money charged and waived and the deductions the daily cap cut (R5) by settle date; only days with something, oldest first. The days add up to the shop report's judgments, charged_fen and waived_fen.",
                "parameters": with(json!([id_param("The shop.")]), as_of_params()),
                "responses": responses(json_response("The days.", json!({"type": "object", "required": ["shop_id", "as_of", "days"], "properties": {
                    "shop_id": {"type": "string"}, "as_of": {"type": "string"},
                    "days": {"type": "array", "items": {"type": "object", "required": ["date", "judgments", "charged_fen", "waived_fen", "cap_hits"], "properties": {
                        "date": {"type": "string"}, "judgments": {"type": "integer"}, "charged_fen": {"type": "integer"},
                        "waived_fen": {"type": "integer"}, "cap_hits": {"type": "integer"}}}}}})), &["400", "401", "404", "429", "503"])}});
    let deductions_path = json!({"get": {"summary": "The shop report's deductions (R4, R5), paged: by (judged_at, order_id, judgment), or newest first with newest=true.",
                "parameters": with(with(json!([id_param("The shop.")]), as_of_params()), json!([
                    {"name": "newest", "in": "query", "required": false, "description": "Newest first.", "schema": {"type": "boolean"}},
                    {"name": "limit", "in": "query", "required": false, "description": "Page size (1 to 1000, default 100).", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "offset", "in": "query", "required": false, "description": "Deductions to skip (the `next` of the previous page).", "schema": {"type": "integer", "minimum": 0, "maximum": crate::params::MAX_OFFSET}}])),
                "responses": responses(json_response("A page of deductions.", json!({"type": "object", "required": ["shop_id", "as_of", "deductions", "next", "total"], "properties": {
                    "shop_id": {"type": "string"}, "as_of": {"type": "string"},
                    "deductions": {"type": "array", "items": {"$ref": "#/components/schemas/Deduction"}},
                    "next": {"type": ["integer", "null"]}, "total": {"type": "integer"}}})), &["400", "401", "404", "429", "503"])}});
    let list_params = |what: &str| {
        with(
            with(json!([id_param("The shop.")]), as_of_params()),
            json!([
            {"name": "limit", "in": "query", "required": false, "description": "Page size (1 to 1000, default 100).", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
            {"name": "offset", "in": "query", "required": false, "description": format!("{what} to skip (the `next` of the previous page, or the report's `..._next`)."), "schema": {"type": "integer", "minimum": 0, "maximum": crate::params::MAX_OFFSET}}]),
        )
    };
    let closure_review_path = json!({"get": {"summary": "The shop report's closure-review flags (R7), paged, in the report's order; GET /shops/{id}'s `closure_review_next` is the `offset` after its first page.",
                "parameters": list_params("Flags"),
                "responses": responses(json_response("A page of closure-review flags.", json!({"type": "object", "required": ["shop_id", "as_of", "closure_review", "next", "total"], "properties": {
                    "shop_id": {"type": "string"}, "as_of": {"type": "string"},
                    "closure_review": {"type": "array", "items": {"$ref": "#/components/schemas/Flag"}},
                    "next": {"type": ["integer", "null"]}, "total": {"type": "integer"}}})), &["400", "401", "404", "429", "503"])}});
    let bans_path = json!({"get": {"summary": "The shop report's banned products (R6), paged, in the report's order; GET /shops/{id}'s `banned_products_next` is the `offset` after its first page.",
                "parameters": list_params("Banned products"),
                "responses": responses(json_response("A page of banned products.", json!({"type": "object", "required": ["shop_id", "as_of", "banned_products", "next", "total"], "properties": {
                    "shop_id": {"type": "string"}, "as_of": {"type": "string"},
                    "banned_products": {"type": "array", "items": {"$ref": "#/components/schemas/Ban"}},
                    "next": {"type": ["integer", "null"]}, "total": {"type": "integer"}}})), &["400", "401", "404", "429", "503"])}});

    let events_path = json!({"get": {"summary": "The order's stored events with `at <= as_of`, in log order: its timeline, a page at a time.",
                "parameters": [id_param("The order."), {"name": "as_of", "in": "query", "required": false, "description": "Only events that happened by then (default now).", "schema": instant_schema()},
                    {"name": "after", "in": "query", "required": false, "description": "The `seq` of the event to read on after (the `next` of the previous page); the start when absent.", "schema": {"type": "integer", "minimum": 0, "maximum": u64::MAX}},
                    {"name": "limit", "in": "query", "required": false, "description": "At most this many events (1 to 1000, default 100).", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                "responses": responses(json_response("A page of the events; pass `next` as `after` to read on.", json!({"type": "object", "required": ["order_id", "events", "next"], "properties": {"order_id": {"type": "string"},
                    "events": {"type": "array", "maxItems": 1000, "items": {"type": "object", "properties": {"seq": {"type": "integer"}, "recorded_at": {"type": "string"}, "event": {"type": "object"}}}},
                    "next": {"type": ["integer", "null"], "description": "Pass as `after` for the events after this page; `null` on the last page."}}})), &["400", "401", "404"])}});
    let listed_shop = json!({"allOf": [{"$ref": "#/components/schemas/ShopReport"}, {"type": "object", "required": ["closure_review_next", "closure_review_total", "banned_products_next", "banned_products_total"], "properties": {
        "closure_review": {"maxItems": crate::routes::LISTED_SHOP_ITEMS}, "banned_products": {"maxItems": crate::routes::LISTED_SHOP_ITEMS},
        "closure_review_next": {"type": ["integer", "null"], "description": "Pass as `offset` to GET /shops/{id}/closure-review for the flags after the first 10; `null` when these are all."},
        "closure_review_total": {"type": "integer"},
        "banned_products_next": {"type": ["integer", "null"], "description": "Pass as `offset` to GET /shops/{id}/bans for the banned products after the first 10; `null` when these are all."},
        "banned_products_total": {"type": "integer"}}}]});

    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "penalty-ledger",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Shipping-timeout penalties of marketplace shops (RULES.md R1-R15). Reports are the CLI's JSON. With --tokens, send `Authorization: Bearer <token>`: operators read everything and may POST /events; a seller reads only its own shop (anything else is a 404)."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Deduction": deduction, "Ban": ban, "Flag": flag, "ShopReport": shop, "OrderReport": order, "OrderRow": order_row,
                "Notice": notice, "AtRisk": at_risk,
                "Whoami": {"type": "object", "required": ["role", "shop_id", "open"], "properties": {"role": {"enum": ["operator", "seller"]},
                    "shop_id": {"type": ["string", "null"]}, "open": {"type": "boolean"}}}, "Posting": posting, "IngestSummary": ingest, "Error": error,
                "OrderStatus": {"enum": penalty_core::OrderStatus::NAMES}}
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {"summary": "Liveness, and the last sequence number folded in. No token needed.", "security": [],
                "responses": {"200": json_response("Up.", json!({"type": "object", "properties": {"status": {"const": "ok"}, "seq": {"type": "integer"}}}))}}},
            "/metrics": {"get": {"summary": "Prometheus text: ingest counters, requests and latencies by route. Operators only.",
                "responses": responses(json!({"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}), &["401", "403"])}},
            "/openapi.json": {"get": {"summary": "This document. No token needed.", "security": [],
                "responses": {"200": json_response("The document.", json!({"type": "object"}))}}},
            "/shops": {"get": {"summary": "Every shop existing as of the instant, without deductions (`penalty shops --sort S --min-orders M --json`), paged: by id, or the worst first by judgments, charged money or timeout rate, ties by id; each shop's banned_products and closure_review cut to their first 10, with `..._next` and `..._total` (GET /shops/{id}/bans and /closure-review hold the rest). A seller gets only its own.",
                "parameters": with(as_of_params(), json!([
                    {"name": "sort", "in": "query", "required": false, "description": "shop (by id, the default), or the worst first: judgments, charged, rate (timeout rate, R10; shops without a rate last).", "schema": {"enum": ["shop", "judgments", "charged", "rate"]}},
                    {"name": "min_orders", "in": "query", "required": false, "description": "Only shops with at least this many paid orders.", "schema": {"type": "integer", "minimum": 0, "maximum": crate::params::MAX_OFFSET}},
                    {"name": "limit", "in": "query", "required": false, "description": "Page size (1 to 1000, default 100).", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "offset", "in": "query", "required": false, "description": "Shops to skip (the `next` of the previous page).", "schema": {"type": "integer", "minimum": 0, "maximum": crate::params::MAX_OFFSET}}])),
                "responses": responses(json_response("A page of shop summaries; `total` and `charged_fen` are over all pages.", json!({"type": "object", "required": ["shops", "next", "total", "charged_fen"], "properties": {
                    "shops": {"type": "array", "maxItems": 1000, "items": listed_shop},
                    "next": {"type": ["integer", "null"]}, "total": {"type": "integer"}, "charged_fen": {"type": "integer"}}})), &["400", "401", "429", "503"])}},
            "/shops/{id}": {"get": {"summary": "One shop's report with the first page of each of its lists: deductions, banned_products and closure_review (each `..._next` is the `offset` of the next page of GET /shops/{id}/deductions, /bans or /closure-review, each `..._total` counts the list); the whole report with every item (`penalty shop ID --json`) with `full=true`, or the figures without deductions, with the first page of banned_products and closure_review, with `summary=true`.",
                "parameters": with(with(json!([id_param("The shop.")]), as_of_params()), json!([
                    {"name": "summary", "in": "query", "required": false, "description": "true: the figures, `deductions` left out (`penalty shop ID --summary`), with the first page of banned_products and closure_review.", "schema": {"type": "boolean"}},
                    {"name": "full", "in": "query", "required": false, "description": "true: every item of every list, the whole report (`penalty shop ID --json`; a large shop's is megabytes). summary=true wins over it.", "schema": {"type": "boolean"}},
                    {"name": "limit", "in": "query", "required": false, "description": "The size of the first page of each list (1 to 1000, default 100); with summary=true of banned_products and closure_review; nothing with full=true.", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}])),
                "responses": responses(json_response("The report; by default with a page of each list and its `..._next` and `..._total`.", json!({"allOf": [{"$ref": "#/components/schemas/ShopReport"}, {"type": "object", "properties": {
                    "deductions_next": {"type": ["integer", "null"], "description": "Pass as `offset` to GET /shops/{id}/deductions for the deductions after this page; `null` when this page holds them all. Absent with summary=true or full=true."},
                    "deductions_total": {"type": "integer", "description": "Deductions over all pages. Absent with summary=true or full=true."},
                    "closure_review_next": {"type": ["integer", "null"], "description": "Pass as `offset` to GET /shops/{id}/closure-review for the flags after this page; `null` when this page holds them all. Absent with full=true."},
                    "closure_review_total": {"type": "integer", "description": "Closure-review flags over all pages. Absent with full=true."},
                    "banned_products_next": {"type": ["integer", "null"], "description": "Pass as `offset` to GET /shops/{id}/bans for the banned products after this page; `null` when this page holds them all. Absent with full=true."},
                    "banned_products_total": {"type": "integer", "description": "Banned products over all pages. Absent with full=true."}}}]})), &["400", "401", "404", "429", "503"])}},
            "/shops/{id}/notices": {"get": {"summary": "The shop's notice feed (R9): one notice per judgment, after a cursor; each is delivered once per cursor position.",
                "parameters": with(with(json!([id_param("The shop.")]), as_of_params()), json!([
                    {"name": "after", "in": "query", "required": false, "description": "A notice's cursor: only the notices after it.", "schema": {"type": "string", "pattern": crate::params::CURSOR_PATTERN}},
                    {"name": "newest", "in": "query", "required": false, "description": "true: read the feed backwards, the newest notices first (`before` implies it).", "schema": {"type": "boolean"}},
                    {"name": "before", "in": "query", "required": false, "description": "A notice's cursor: the newest notices before it, newest first (the `next` of a backwards page).", "schema": {"type": "string", "pattern": crate::params::CURSOR_PATTERN}},
                    {"name": "limit", "in": "query", "required": false, "description": "At most this many (1 to 1000, default 100).", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    lang_param()])),
                "responses": responses(json_response("A page of the feed; pass `next` as `after` to read on (backwards: as `before`, `null` after a page that was not full).", json!({"type": "object", "properties": {
                    "notices": {"type": "array", "items": {"$ref": "#/components/schemas/Notice"}}, "next": {"type": ["string", "null"]}}})), &["400", "401", "404", "429", "503"])}},
            "/shops/{id}/at-risk": {"get": {"summary": "The shop's orders at risk (`penalty at-risk --shop ID --json`, CLI.md): unresolved orders whose next judgment, closure-review flag or auto-close comes within the horizon, soonest first, each with its sentence (`line`). A page of `limit` of them from `offset`; `total` counts all.",
                "parameters": with(with(json!([id_param("The shop.")]), as_of_params()), json!([
                    {"name": "within", "in": "query", "required": false, "description": "The horizon: a whole number and m, h or d, from 1m to 366d (default 24h).", "schema": {"type": "string", "pattern": crate::params::WITHIN_PATTERN}},
                    {"name": "limit", "in": "query", "required": false, "description": "Page size (1 to 1000, default 100).", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "offset", "in": "query", "required": false, "description": "Orders to skip (the `next` of the previous page).", "schema": {"type": "integer", "minimum": 0, "maximum": crate::params::MAX_OFFSET}},
                    lang_param()])),
                "responses": responses(json_response("The orders at risk.", json!({"$ref": "#/components/schemas/AtRisk"})), &["400", "401", "404", "429", "503"])}},
            "/labels": {"get": {"summary": "Every code a person can see (order and deduction statuses, event types, next steps, posting kinds, reject reasons, cluster stages) with its English and Chinese (zh-CN) label. No token needed.", "security": [],
                "responses": {"200": json_response("The labels.", json!({"type": "array", "items": {"type": "object", "required": ["set", "code", "en", "zh-CN"],
                    "properties": {"set": {"enum": ["order_status", "deduction_status", "event_type", "next_step", "posting_kind", "reject_reason", "cluster_stage"]},
                        "code": {"type": "string"}, "en": {"type": "string"}, "zh-CN": {"type": "string"}}}}))}}},
            "/session": {
                "get": {"summary": "Who the caller is (role and shop), by its bearer token or its dashboard session cookie.",
                    "responses": responses(json_response("The caller.", json!({"$ref": "#/components/schemas/Whoami"})), &["401"])},
                "post": {"summary": "Signs in to the dashboard: with a listed token, answers with an HttpOnly, SameSite=Strict session cookie (Secure unless on a loopback name) carrying the token's role. No token needed to call it.", "security": [],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["token"], "additionalProperties": false, "properties": {"token": {"type": "string", "maxLength": 4096}}}}}},
                    "responses": responses(json_response("Signed in; the cookie is set.", json!({"$ref": "#/components/schemas/Whoami"})), &["400", "401", "403", "415", "503"])},
                "delete": {"summary": "Signs out: forgets the session and clears its cookie.", "security": [],
                    "responses": responses(json_response("Signed out.", json!({"type": "object", "properties": {"signed_out": {"const": true}}})), &["403"])}},
            "/shops/{id}/postings": {"get": {"summary": "The shop's booked ledger (R14, `penalty postings ID --json`), paged: the postings of the settlement runs by (run_date, judged_at, order_id, judgment), each correction with its cause.",
                "parameters": with(with(json!([id_param("The shop.")]), as_of_params()), json!([
                    {"name": "limit", "in": "query", "required": false, "description": "Page size (1 to 1000, default 100).", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "offset", "in": "query", "required": false, "description": "Postings to skip (the `next` of the previous page).", "schema": {"type": "integer", "minimum": 0, "maximum": 1_000_000_000}},
                    lang_param()])),
                "responses": responses(json_response("A page of the booked ledger.", json!({"type": "object", "required": ["shop_id", "as_of", "booked_fen", "postings", "next", "total"], "properties": {
                    "shop_id": {"type": "string"}, "as_of": {"type": "string"}, "booked_fen": {"type": "integer"},
                    "postings": {"type": "array", "items": {"$ref": "#/components/schemas/Posting"}},
                    "next": {"type": ["integer", "null"]}, "total": {"type": "integer"}}})), &["400", "401", "404", "429", "503"])}},
            "/orders": {"get": {"summary": "The filtered order list (`penalty export orders --format jsonl`), by shop then order unless sorted otherwise, paged. A seller sees its own shop only; naming another shop is a 404.",
                "parameters": with(with(as_of_params(), order_filter_params()), json!([
                    {"name": "sort", "in": "query", "required": false, "description": "order (by shop then order id, the default), paid (oldest first), charged (most first), judgments (standing, most first) or status (awaiting_shipment, shipped, refunded, auto_closed); ties by shop then order id.", "schema": {"enum": penalty_core::OrderSort::names()}},
                    {"name": "limit", "in": "query", "required": false, "description": "Page size (1 to 1000, default 100).", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "offset", "in": "query", "required": false, "description": "Rows to skip (the `next` of the previous page).", "schema": {"type": "integer", "minimum": 0, "maximum": crate::params::MAX_OFFSET}}])),
                "responses": responses(json_response("A page of rows.", json!({"type": "object", "properties": {
                    "orders": {"type": "array", "items": {"$ref": "#/components/schemas/OrderRow"}},
                    "next": {"type": ["integer", "null"]}, "total": {"type": "integer"}}})), &["400", "401", "404", "429", "503"])}},
            "/orders.csv": {"get": {"summary": "Every row of GET /orders's filter as CSV (`penalty export orders --format csv`, the same bytes; with excel, `--excel`), by shop then order, streamed as an attachment. A seller sees its own shop only; naming another shop is a 404.",
                "parameters": with(with(as_of_params(), order_filter_params()), json!([
                    {"name": "excel", "in": "query", "required": false, "description": "CSV for Excel: a UTF-8 byte-order mark first and yuan columns beside the fen ones (`--excel`).", "schema": {"type": "boolean"}}])),
                "responses": responses(csv_response("The rows, RFC 4180 with CRLF line ends."), &["400", "401", "404", "429", "503"])}},
            "/shops/{id}/postings.csv": {"get": {"summary": "The shop's booked ledger (R14) as CSV (`penalty export postings --shop ID --format csv`, the same bytes), runs from `from` to `to`, streamed as an attachment.",
                "parameters": with(with(json!([id_param("The shop.")]), as_of_params()), json!([
                    {"name": "from", "in": "query", "required": false, "description": "Only runs on or after this date (the day of an instant, in the policy's offset).", "schema": instant_schema()},
                    {"name": "to", "in": "query", "required": false, "description": "Only runs on or before this date (the day of an instant, in the policy's offset).", "schema": instant_schema()},
                    {"name": "excel", "in": "query", "required": false, "description": "A UTF-8 byte-order mark first, for Excel (`--excel`).", "schema": {"type": "boolean"}}])),
                "responses": responses(csv_response("The postings, RFC 4180 with CRLF line ends."), &["400", "401", "404", "429", "503"])}},
            "/data-range": {"get": {"summary": "What the data covers: the first and the last event instant (`at`) in the log, in the policy's offset; for a seller, of its own shop. The dashboard's \"data from … to …\" and its default as-of when the data lies in the past.",
                "responses": responses(json_response("The range; both null without events.", json!({"type": "object", "required": ["from", "to"], "properties": {
                    "from": {"type": ["string", "null"]}, "to": {"type": ["string", "null"]}}})), &["401", "429", "503"])}},
            "/orders/{id}": {"get": {"summary": "One order's report, with the explain lines (`penalty order ID --json`).",
                "parameters": with(with(json!([id_param("The order.")]), as_of_params()), json!([lang_param()])),
                "responses": responses(json_response("The report.", json!({"$ref": "#/components/schemas/OrderReport"})), &["400", "401", "404", "429", "503"])}},
            "/events": {"post": {"summary": "Ingest JSON Lines (EVENTS.md) with the CLI's semantics: every line appended, duplicate or rejected; durable before the answer; idempotent. The whole body is received before anything is ingested: an upload cut off mid-way ingests nothing. Operators only.",
                "requestBody": {"required": true, "description": "JSON Lines; each line is judged on its own (a line that is not an event object is rejected and listed, the others go on), so any text is a valid body. application/json is read the same way.",
                    "content": {"application/x-ndjson": {"schema": {"type": "string", "maxLength": 67_108_864}}, "application/json": {"schema": {}}}},
                "responses": responses(json_response("The counts, and the first rejected lines (all are also in <db>/rejects.jsonl).", json!({"$ref": "#/components/schemas/IngestSummary"})), &["400", "401", "403", "408", "413", "415", "503"])}},
            "/": {"get": {"summary": "The dashboard.", "security": [], "responses": {"200": html()}}},
            "/ui/{page}": {"get": {"summary": "The dashboard at a page (`shops/{id}`, `orders/{id}`): the same shell; its script reads the URL.", "security": [],
                "parameters": [{"name": "page", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": html()}}},
            "/assets/app.js": {"get": {"summary": "The dashboard's script.", "security": [],
                "responses": {"200": {"description": "JavaScript.", "content": {"text/javascript": {"schema": {"type": "string"}}}}}}},
            "/assets/phrases.js": {"get": {"summary": "The dashboard's words: every phrase of the core by name, in English and Chinese (zh-CN).", "security": [],
                "responses": {"200": {"description": "JavaScript.", "content": {"text/javascript": {"schema": {"type": "string"}}}}}}},
            "/assets/style.css": {"get": {"summary": "The dashboard's style sheet.", "security": [],
                "responses": {"200": {"description": "CSS.", "content": {"text/css": {"schema": {"type": "string"}}}}}}}
        }
    });
    document["paths"]["/shops/{id}/days"] = days_path;
    document["paths"]["/orders/{id}/events"] = events_path;
    document["paths"]["/shops/{id}/deductions"] = deductions_path;
    document["paths"]["/shops/{id}/closure-review"] = closure_review_path;
    document["paths"]["/shops/{id}/bans"] = bans_path;
    document
}

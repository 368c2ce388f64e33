//! The one error type of the HTTP layer.
//!
//! Every failure a handler can meet becomes an [`ApiError`], and every
//! [`ApiError`] becomes a JSON body `{"error": CODE, "message": TEXT}` with a
//! status code. Client mistakes (4xx) say exactly what is wrong and are logged
//! at `debug` only: a caller sending bad input is not a fault of the server.
//! Internal failures (5xx) are logged at `error` with their cause, and the
//! client gets a generic sentence, never the cause: paths, sled messages and
//! the like stay on the server.
//!
//! An error a person reads (a 400 naming the bad input and the fix, a 404
//! from the core) may carry its Chinese (zh-CN) wording too
//! ([`ApiError::in_chinese`], from the core's phrases): the body is the
//! English one, with the Chinese one beside it in the response's
//! extensions, and [`localize`] swaps it in when the request's
//! `Accept-Language` asks for Chinese, as the reports' sentences follow it.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use penalty_core::labels::Lang;
use serde::Serialize;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed input: a bad query parameter, a bad instant, an id too long.
    #[error("{message}")]
    BadRequest {
        /// A stable, machine-readable code, such as `invalid_query`.
        code: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// No credentials, or credentials that match no token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Valid credentials without the right to do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Nothing here, or nothing this caller may see: a seller asking for
    /// another shop's data gets the same answer as for a shop that does not
    /// exist, so the answer leaks nothing.
    #[error("{0}")]
    NotFound(String),
    /// The route exists, not with this method.
    #[error("this route does not accept the method {0}")]
    MethodNotAllowed(String),
    /// The request body is larger than the limit.
    #[error("the request body is larger than {limit_bytes} bytes; split the input into smaller requests (re-sending lines is safe)")]
    PayloadTooLarge {
        /// The limit.
        limit_bytes: usize,
    },
    /// Busy: too many uploads at once, or the log is held by a long task.
    #[error("{0}")]
    Unavailable(&'static str),
    /// This caller already has as much costly work queued as it may.
    #[error("{0}")]
    TooManyRequests(&'static str),
    /// The request body arrived too slowly.
    #[error("{0}")]
    RequestTimeout(String),
    /// A body in a media type the route does not take.
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    /// A `Host` this server does not answer for (DNS rebinding).
    #[error("{0}")]
    MisdirectedRequest(String),
    /// A failure of the server itself; the cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
    /// An ingest that failed part-way: the blocks committed before the
    /// failure are durable, the rest is not; the cause is logged, never sent.
    #[error("ingest failed: {0}")]
    IngestFailed(String),
    /// `error`, with its message also in Chinese: the status and code are
    /// `error`'s, the text follows the request's `Accept-Language`.
    #[error("{error}")]
    Worded {
        /// The error, with its English message.
        error: Box<ApiError>,
        /// Its message in Chinese (zh-CN).
        zh: String,
    },
}

/// The Chinese body of an error response, kept beside the English one until
/// [`localize`] decides which the client reads.
#[derive(Clone)]
struct ChineseBody(Bytes);

impl ApiError {
    /// A malformed request.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A malformed request worded by `words` in each language (from the
    /// core's phrases): the English is the message, the Chinese goes beside
    /// it.
    pub fn bad_request_in(code: &'static str, words: impl Fn(Lang) -> String) -> ApiError {
        ApiError::bad_request(code, words(Lang::En)).in_chinese(words(Lang::Zh))
    }

    /// This error, with its message worded in Chinese (zh-CN) too.
    pub fn in_chinese(self, zh: String) -> ApiError {
        ApiError::Worded {
            error: Box::new(self),
            zh,
        }
    }

    /// A failure of the server; `cause` goes to the log only.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(cause.to_string())
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MisdirectedRequest(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::Internal(_) | ApiError::IngestFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Worded { error, .. } => error.status(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::TooManyRequests(_) => "too_many_requests",
            ApiError::RequestTimeout(_) => "body_too_slow",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::MisdirectedRequest(_) => "wrong_host",
            ApiError::Internal(_) => "internal",
            ApiError::IngestFailed(_) => "ingest_failed",
            ApiError::Worded { error, .. } => error.code(),
        }
    }
}

/// The JSON body of every error response.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Worded { error, zh } = self {
            let chinese = serde_json::to_vec(&ErrorBody {
                error: error.code(),
                message: zh,
            })
            .unwrap_or_default();
            let mut response = error.into_response();
            response
                .headers_mut()
                .insert(header::VARY, HeaderValue::from_static("accept-language"));
            response
                .extensions_mut()
                .insert(ChineseBody(Bytes::from(chinese)));
            return response;
        }
        let status = self.status();
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                "the server failed to answer this request; the cause is in its log".to_string()
            }
            ApiError::IngestFailed(cause) => {
                tracing::error!(%cause, "ingest failed");
                "the ingest failed part-way (the cause is in the server's log); some lines may \
                 have been appended: send the whole body again once the server is healthy, lines \
                 already appended count as duplicates"
                    .to_string()
            }
            other => {
                tracing::debug!(status = status.as_u16(), error = %other, "request refused");
                other.to_string()
            }
        };
        let body = ErrorBody {
            error: self.code(),
            message,
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"penalty-ledger\""),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<penalty_core::QueryError> for ApiError {
    fn from(error: penalty_core::QueryError) -> ApiError {
        ApiError::NotFound(error.to_string()).in_chinese(error.message(Lang::Zh))
    }
}

/// Answers an error in Chinese when the request's `Accept-Language` asks
/// for it ([`Lang::from_accept_language`], English without one) and the
/// error has a Chinese wording; every other response passes as it is.
pub async fn localize(request: Request, next: Next) -> Response {
    let lang = request
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|value| value.to_str().ok())
        .map_or(Lang::En, Lang::from_accept_language);
    let mut response = next.run(request).await;
    answer_in(&mut response, lang);
    response
}

/// Keeps the body of `response` in `lang`: swaps in its Chinese wording,
/// if it has one, for [`Lang::Zh`].
fn answer_in(response: &mut Response, lang: Lang) {
    if let Some(ChineseBody(chinese)) = response.extensions_mut().remove::<ChineseBody>() {
        if lang == Lang::Zh {
            response.headers_mut().remove(header::CONTENT_LENGTH);
            *response.body_mut() = Body::from(chinese);
        }
    }
}

impl ApiError {
    /// This error's response in `lang`, for an answer that does not pass
    /// through [`localize`]: a cluster host answers a request it read from
    /// NATS and sends back only the status and body.
    pub fn into_response_in(self, lang: Lang) -> Response {
        let mut response = self.into_response();
        answer_in(&mut response, lang);
        response
    }
}

impl From<penalty_store::StoreError> for ApiError {
    fn from(error: penalty_store::StoreError) -> ApiError {
        ApiError::internal(error)
    }
}

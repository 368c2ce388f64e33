//! Who asks: the [`Access`] of a request, from its bearer token or, when it
//! sends none, the dashboard's session cookie. It is the one place that
//! needs the server's state (the tokens and the live sessions) to answer;
//! `auth` (tokens and roles) and `session` (sign-in) need none, so neither
//! depends on `state`.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::auth::{Access, Tokens, MAX_TOKEN_BYTES};
use crate::error::ApiError;
use crate::state::AppState;

impl FromRequestParts<AppState> for Access {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Access, ApiError> {
        // The dashboard's session cookie (crate::session), read only when
        // no bearer token is sent.
        request_access(state.tokens(), &parts.headers, || {
            crate::session::cookie_session(&parts.headers)
                .and_then(|id| state.sessions().lookup(&id))
        })
    }
}

/// The [`Access`] of a request with `headers`, for a server with `tokens`
/// (a one-machine server, a cluster node): its bearer token's, or when it
/// sends none, `session`'s (a dashboard's sign-in; a node has none).
pub fn request_access(
    tokens: Option<&Tokens>,
    headers: &HeaderMap,
    session: impl FnOnce() -> Option<Access>,
) -> Result<Access, ApiError> {
    // Without a tokens file the server only listens on loopback (see
    // `check_exposure`), where whoever can connect already has the machine.
    let Some(tokens) = tokens else {
        return Ok(Access::Operator);
    };
    let Some(header) = headers.get(AUTHORIZATION) else {
        return session().ok_or(ApiError::Unauthorized(
            "this server needs a token: sign in on the dashboard, or send it as a bearer token",
        ));
    };
    let token = crate::auth::bearer_token(header.as_bytes()).ok_or(ApiError::Unauthorized(
        "the Authorization header must be `Bearer <token>`",
    ))?;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(ApiError::Unauthorized("the token is not valid"));
    }
    tokens
        .lookup(token)
        .ok_or(ApiError::Unauthorized("the token is not valid"))
}

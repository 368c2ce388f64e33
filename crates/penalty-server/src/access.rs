//! Who asks: the [`Access`] of a request, from its bearer token or, when it
//! sends none, the dashboard's session cookie. It is the one place that
//! needs the server's state (the tokens and the live sessions) to answer;
//! `auth` (tokens and roles) and `session` (sign-in) need none, so neither
//! depends on `state`.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::auth::{Access, MAX_TOKEN_BYTES};
use crate::error::ApiError;
use crate::state::AppState;

impl FromRequestParts<AppState> for Access {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Access, ApiError> {
        // Without a tokens file the server only listens on loopback (see
        // `run`), where whoever can connect already has the machine.
        let Some(tokens) = state.tokens() else {
            return Ok(Access::Operator);
        };
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            // The dashboard's session cookie (crate::session), read only when
            // no bearer token is sent.
            return crate::session::cookie_session(&parts.headers)
                .and_then(|id| state.sessions().lookup(&id))
                .ok_or(ApiError::Unauthorized(
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
}

//! The one integration test binary of penalty-server: router tests (no
//! socket, `tower::ServiceExt::oneshot`), socket tests (uploads cut off,
//! readers during an ingest), and the end-to-end dashboard test in headless
//! Chromium.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server {
    pub mod support;

    mod auth;
    mod dashboard_e2e;
    mod downloads;
    mod fuzz;
    mod hardening;
    mod ingest;
    mod routes;
}

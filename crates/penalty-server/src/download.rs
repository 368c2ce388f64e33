//! CSV downloads (`GET /orders.csv`, `GET /shops/{id}/postings.csv`): the
//! CLI's export bytes, streamed as they are computed.
//!
//! The rows are computed under the projection's read lock, like any query,
//! and handed in chunks to the response body through an unbounded channel:
//! the lock is held for the computation only, never for as long as a slow
//! client takes to read, at the price of holding in memory what the client
//! has not read yet. A refusal found before the first row (an unknown shop,
//! a busy server) is still a JSON error with its status; the first chunk
//! commits to 200.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use hyper::body::Frame;
use penalty_core::Ledger;
use tokio::sync::{mpsc, oneshot};

use crate::auth::Access;
use crate::error::ApiError;
use crate::state::AppState;

/// Rows are sent in chunks of about this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;

/// Whether the download may start (`Ok`) or what to answer instead.
type Ready = Arc<Mutex<Option<oneshot::Sender<Result<(), ApiError>>>>>;

/// Where a download's writer puts its text.
pub struct CsvOut {
    ready: Ready,
    sender: mpsc::UnboundedSender<Result<Bytes, std::io::Error>>,
    chunk: String,
}

/// Where a CSV's writer puts its text: a download's body ([`CsvOut`]), or
/// a whole text (a cluster partition's answer, forwarded by a node).
pub trait CsvSink {
    /// Commits to a 200: from here on, what is pushed is the body; with
    /// `excel`, a UTF-8 byte-order mark first (as `--excel` writes it).
    fn start(&mut self, excel: bool) -> Result<(), ApiError>;
    /// Appends text to the body.
    fn push(&mut self, text: &str) -> Result<(), ApiError>;
}

impl CsvSink for String {
    fn start(&mut self, excel: bool) -> Result<(), ApiError> {
        if excel {
            self.push_str(penalty_core::csv::EXCEL_BOM);
        }
        Ok(())
    }

    fn push(&mut self, text: &str) -> Result<(), ApiError> {
        self.push_str(text);
        Ok(())
    }
}

impl CsvSink for CsvOut {
    fn start(&mut self, excel: bool) -> Result<(), ApiError> {
        CsvOut::start(self, excel)
    }

    fn push(&mut self, text: &str) -> Result<(), ApiError> {
        CsvOut::push(self, text)
    }
}

impl CsvOut {
    /// Commits to a 200: from here on, what is pushed is the body; with
    /// `excel`, a UTF-8 byte-order mark first (as `--excel` writes it).
    pub fn start(&mut self, excel: bool) -> Result<(), ApiError> {
        if let Some(ready) = self.ready.lock().ok().and_then(|mut r| r.take()) {
            let _ = ready.send(Ok(()));
        }
        if excel {
            self.push(penalty_core::csv::EXCEL_BOM)?;
        }
        Ok(())
    }

    /// Appends text to the body; an error once the client is gone, which
    /// stops the computation.
    pub fn push(&mut self, text: &str) -> Result<(), ApiError> {
        self.chunk.push_str(text);
        if self.chunk.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ApiError> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.chunk, String::with_capacity(CHUNK_BYTES));
        self.sender
            .send(Ok(Bytes::from(chunk)))
            .map_err(|_| ApiError::Unavailable("the client went away during a download"))
    }
}

/// The body of a download: the chunks as they come, to the end of the
/// computation.
struct ChunkBody(mpsc::UnboundedReceiver<Result<Bytes, std::io::Error>>);

impl hyper::body::Body for ChunkBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| bytes.map(Frame::data)))
    }
}

/// Answers with the CSV `write` produces on the ledger (as of `known_at`,
/// when given) as an attachment (`disposition`, a `Content-Disposition`). `write` calls
/// [`CsvOut::start`] once it knows the answer is a 200; an error before
/// that is the answer.
pub async fn csv<F>(
    state: &AppState,
    access: &Access,
    known_at: Option<penalty_core::UnixNs>,
    disposition: &'static str,
    write: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(&Ledger, &mut CsvOut) -> Result<(), ApiError> + Send + 'static,
{
    let (ready_sender, ready_receiver) = oneshot::channel();
    let ready: Ready = Arc::new(Mutex::new(Some(ready_sender)));
    let (sender, receiver) = mpsc::unbounded_channel();
    let cut = sender.clone();
    let mut out = CsvOut {
        ready: ready.clone(),
        sender,
        chunk: String::with_capacity(CHUNK_BYTES),
    };
    let state = state.clone();
    let access = access.clone();
    tokio::spawn(async move {
        let asked = ready.clone();
        let result = state
            .query_for(Some(&access), known_at, move |ledger| {
                write(ledger, &mut out)?;
                out.flush()
            })
            .await;
        if let Err(error) = result {
            match asked.lock().ok().and_then(|mut r| r.take()) {
                Some(ready) => {
                    let _ = ready.send(Err(error));
                }
                // The body has begun: it is aborted, which the client sees
                // as a cut-off download (no final chunk), never as a
                // complete file.
                None => {
                    tracing::debug!(%error, "a download stopped part-way");
                    let _ = cut.send(Err(std::io::Error::other(error.to_string())));
                }
            }
        }
    });
    match ready_receiver.await {
        Ok(Ok(())) => Ok((
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/csv; charset=utf-8"),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_static(disposition),
                ),
            ],
            Body::new(ChunkBody(receiver)),
        )
            .into_response()),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(ApiError::internal("a download ended before it began")),
    }
}

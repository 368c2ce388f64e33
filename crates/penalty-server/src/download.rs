//! CSV downloads (`GET /orders.csv`, `GET /shops/{id}/postings.csv`): the
//! CLI's export bytes, streamed as they are computed.
//!
//! The rows are computed under the projection's read lock, like any query,
//! and handed in chunks to the response body through a channel of
//! [`AHEAD_CHUNKS`] chunks. A writer never waits for the client while it
//! holds the lock (an ingest's fold would wait behind it, and every reader
//! behind that): once the client is that far behind, the writer stops after
//! the row it wrote ([`CsvOut::paused`]), the lock is let go, and the writer
//! is called again from where it stopped once the client has read a chunk.
//! So a download holds at most about [`AHEAD_CHUNKS`] + 1 chunks of memory
//! whatever its size and however slowly it is read. Each stretch reads the
//! ledger as it then is: every row is as of the asked `as_of`, and an event
//! recorded during a pause may show in the rows after it, as in a cluster's
//! download; `known_at` fixes the events read. A postings download computes
//! a shop's postings once, in the stretch that reaches the shop, and words
//! them over the stretches that follow ([`penalty_core::PostingWalk`]), so
//! its rows of one shop are of one moment. A refusal found before the
//! first row (an unknown shop, a busy server) is still a JSON error with
//! its status; the first chunk commits to 200.

use std::pin::Pin;
use std::sync::atomic::Ordering;
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
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Chunks a download computes ahead of its client at most.
pub const AHEAD_CHUNKS: usize = 4;

/// Whether the download may start (`Ok`) or what to answer instead.
type Ready = Arc<Mutex<Option<oneshot::Sender<Result<(), ApiError>>>>>;

/// A chunk of the body, or the error that cuts it short.
type Chunk = Result<Bytes, std::io::Error>;

/// Where a download's writer puts its text.
pub struct CsvOut {
    state: AppState,
    ready: Ready,
    started: bool,
    sender: mpsc::Sender<Chunk>,
    chunk: String,
    /// A whole chunk the channel had no room for: the client is
    /// [`AHEAD_CHUNKS`] behind, and the writer stops until it reads on.
    held: Option<Chunk>,
}

/// Where a CSV's writer puts its text: a download's body ([`CsvOut`]), or
/// a whole text (a cluster partition's answer, forwarded by a node).
pub trait CsvSink {
    /// Commits to a 200: from here on, what is pushed is the body; with
    /// `excel`, a UTF-8 byte-order mark first (as `--excel` writes it).
    fn start(&mut self, excel: bool) -> Result<(), ApiError>;
    /// Appends text to the body.
    fn push(&mut self, text: &str) -> Result<(), ApiError>;
    /// Whether the writer is to stop after the row it has just pushed, and
    /// resume after it when called again (the client is behind).
    fn paused(&self) -> bool {
        false
    }
    /// Whether [`CsvSink::start`] was called: a writer called again after
    /// a pause does not start twice.
    fn started(&self) -> bool;
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

    /// A writer into a whole text is called once, never again after a
    /// pause, so it always starts.
    fn started(&self) -> bool {
        false
    }
}

impl CsvSink for CsvOut {
    fn start(&mut self, excel: bool) -> Result<(), ApiError> {
        CsvOut::start(self, excel)
    }

    fn push(&mut self, text: &str) -> Result<(), ApiError> {
        CsvOut::push(self, text)
    }

    fn paused(&self) -> bool {
        CsvOut::paused(self)
    }

    fn started(&self) -> bool {
        self.started
    }
}

impl CsvOut {
    /// Commits to a 200: from here on, what is pushed is the body; with
    /// `excel`, a UTF-8 byte-order mark first (as `--excel` writes it).
    pub fn start(&mut self, excel: bool) -> Result<(), ApiError> {
        self.started = true;
        if let Some(ready) = self.ready.lock().ok().and_then(|mut r| r.take()) {
            let _ = ready.send(Ok(()));
        }
        if excel {
            self.push(penalty_core::csv::EXCEL_BOM)?;
        }
        Ok(())
    }

    /// Appends text to the body; an error once the client is gone, which
    /// stops the computation. A writer checks [`CsvOut::paused`] after
    /// each row.
    pub fn push(&mut self, text: &str) -> Result<(), ApiError> {
        self.chunk.push_str(text);
        if self.chunk.len() >= CHUNK_BYTES && self.held.is_none() {
            let chunk = std::mem::replace(&mut self.chunk, String::with_capacity(CHUNK_BYTES));
            let length = chunk.len();
            match self.sender.try_send(Ok(Bytes::from(chunk))) {
                Ok(()) => queued(&self.state, length),
                Err(mpsc::error::TrySendError::Full(chunk)) => self.held = Some(chunk),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(gone()),
            }
        }
        Ok(())
    }

    /// Whether [`CsvOut::start`] was called (a writer called again after a
    /// pause does not start twice).
    pub fn started(&self) -> bool {
        self.started
    }

    /// True once the client is [`AHEAD_CHUNKS`] chunks behind: the writer
    /// returns after the row it has pushed, and is called again (without
    /// the projection's lock in between) once the client has read on.
    pub fn paused(&self) -> bool {
        self.held.is_some()
    }

    /// Waits, holding no lock, until the client has taken the held chunk.
    async fn send_held(&mut self) -> Result<(), ApiError> {
        let Some(chunk) = self.held.take() else {
            return Ok(());
        };
        let length = chunk.as_ref().map_or(0, Bytes::len);
        self.sender.send(chunk).await.map_err(|_| gone())?;
        queued(&self.state, length);
        Ok(())
    }

    /// Sends what is left once the writer is done.
    async fn finish(mut self) -> Result<(), ApiError> {
        self.send_held().await?;
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.chunk);
        let length = chunk.len();
        self.sender
            .send(Ok(Bytes::from(chunk)))
            .await
            .map_err(|_| gone())?;
        queued(&self.state, length);
        Ok(())
    }
}

/// Counts `length` bytes into the queue of chunks clients have not read.
fn queued(state: &AppState, length: usize) {
    state
        .metrics()
        .download_bytes_queued
        .fetch_add(length as u64, Ordering::Relaxed);
}

/// Counts `length` bytes out of that queue: read, or dropped unread.
fn dequeued(state: &AppState, length: usize) {
    state
        .metrics()
        .download_bytes_queued
        .fetch_sub(length as u64, Ordering::Relaxed);
}

fn gone() -> ApiError {
    ApiError::Unavailable("the client went away during a download")
}

/// The body of a download: the chunks as they come, to the end of the
/// computation.
struct ChunkBody {
    state: AppState,
    chunks: mpsc::Receiver<Chunk>,
}

impl hyper::body::Body for ChunkBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = self.chunks.poll_recv(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &polled {
            dequeued(&self.state, bytes.len());
        }
        polled.map(|chunk| chunk.map(|bytes| bytes.map(Frame::data)))
    }
}

impl Drop for ChunkBody {
    /// A client gone before the end: the chunks it left are dropped, and
    /// the writer, finding the channel closed, stops.
    fn drop(&mut self) {
        self.chunks.close();
        while let Ok(chunk) = self.chunks.try_recv() {
            if let Ok(bytes) = chunk {
                dequeued(&self.state, bytes.len());
            }
        }
    }
}

/// Answers with the CSV `write` produces on the ledger (as of `known_at`,
/// when given) as an attachment (`disposition`, a `Content-Disposition`).
/// `write` calls [`CsvOut::start`] once it knows the answer is a 200; an
/// error before that is the answer. It is called again, from where it
/// stopped, for as long as it returns [`CsvOut::paused`]: it keeps its
/// place itself (the last row written).
pub async fn csv<F>(
    state: &AppState,
    access: &Access,
    known_at: Option<penalty_core::UnixNs>,
    disposition: &'static str,
    write: F,
) -> Result<Response, ApiError>
where
    F: FnMut(&Ledger, &mut CsvOut) -> Result<(), ApiError> + Send + 'static,
{
    let (ready_sender, ready_receiver) = oneshot::channel();
    let ready: Ready = Arc::new(Mutex::new(Some(ready_sender)));
    let (sender, receiver) = mpsc::channel(AHEAD_CHUNKS);
    let cut = sender.clone();
    let out = CsvOut {
        state: state.clone(),
        ready: ready.clone(),
        started: false,
        sender,
        chunk: String::with_capacity(CHUNK_BYTES),
        held: None,
    };
    let body_state = state.clone();
    let state = state.clone();
    let access = access.clone();
    tokio::spawn(async move {
        let asked = ready.clone();
        let mut writing = (out, write);
        let result = loop {
            let stretch = state
                .query_for(Some(&access), known_at, move |ledger| {
                    let (mut out, mut write) = writing;
                    write(ledger, &mut out)?;
                    Ok((out, write))
                })
                .await;
            match stretch {
                Ok((mut out, write)) if out.paused() => {
                    if let Err(error) = out.send_held().await {
                        break Err(error);
                    }
                    writing = (out, write);
                }
                Ok((out, _)) => break out.finish().await,
                Err(error) => break Err(error),
            }
        };
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
                    let _ = cut
                        .send(Err(std::io::Error::other(error.to_string())))
                        .await;
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
            Body::new(ChunkBody {
                state: body_state,
                chunks: receiver,
            }),
        )
            .into_response()),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(ApiError::internal("a download ended before it began")),
    }
}

//! Answers in chunks: a reply larger than the NATS server's maximum payload
//! (1 MiB by default) sent as several messages, each tagged with the
//! answer's token, its index and the count, and gathered by the asker.
//! Used for a partition's answers ([`crate::query`]) and a node's status
//! (`penalty cluster status`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;

/// How long an asker waits for the next chunk of an answer.
pub(crate) const CHUNK_WAIT: Duration = Duration::from_secs(5);

/// The bytes before a chunk's data: the answer's token (u64), the chunk's
/// index and the count of chunks (u32 each), big-endian.
const CHUNK_HEADER: usize = 16;

/// The chunk data size under this connection's server's maximum payload.
fn chunk_bytes(client: &async_nats::Client) -> usize {
    client
        .server_info()
        .max_payload
        .saturating_sub(CHUNK_HEADER + 256)
        .max(256)
}

/// Sends `bytes` to `reply_to` in chunks, each no larger than the server's
/// maximum payload, tagged with a token of this answer (two hosts may both
/// answer while a partition moves: the asker keeps the first one's). Also
/// a node's answer to `penalty cluster status`.
pub(crate) async fn send_chunks(
    client: &async_nats::Client,
    reply_to: async_nats::Subject,
    bytes: &[u8],
) -> Result<(), String> {
    static ANSWERS: AtomicU64 = AtomicU64::new(0);
    let token = (std::process::id() as u64) << 32 | ANSWERS.fetch_add(1, Ordering::Relaxed);
    let size = chunk_bytes(client);
    let count = u32::try_from(bytes.len().div_ceil(size).max(1))
        .map_err(|_| "an answer of more than 2^32 chunks".to_string())?;
    for index in 0..count {
        let start = index as usize * size;
        let data = &bytes[start.min(bytes.len())..(start + size).min(bytes.len())];
        let mut chunk = Vec::with_capacity(CHUNK_HEADER + data.len());
        chunk.extend_from_slice(&token.to_be_bytes());
        chunk.extend_from_slice(&index.to_be_bytes());
        chunk.extend_from_slice(&count.to_be_bytes());
        chunk.extend_from_slice(data);
        client
            .publish(reply_to.clone(), chunk.into())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Publishes `payload` on `subject` and gathers the chunks of the first
/// answer ([`send_chunks`]): its bytes, or why none came whole in time.
pub(crate) async fn request_chunks(
    client: &async_nats::Client,
    subject: String,
    payload: Vec<u8>,
    first_wait: Duration,
) -> Result<Vec<u8>, String> {
    let inbox = client.new_inbox();
    let mut replies = client
        .subscribe(inbox.clone())
        .await
        .map_err(|error| format!("{subject}: {error}"))?;
    client
        .publish_with_reply(subject.clone(), inbox, payload.into())
        .await
        .map_err(|error| format!("{subject}: {error}"))?;
    let mut token = None;
    let mut bytes = Vec::new();
    let mut next = 0u32;
    loop {
        let wait = if next == 0 { first_wait } else { CHUNK_WAIT };
        let chunk = match tokio::time::timeout(wait, replies.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Err(format!("{subject}: the replies ended")),
            Err(_) => {
                return Err(format!(
                    "{subject}: no chunk within {wait:?} (the partition is moving or \
                     catching up)"
                ))
            }
        };
        let payload = &chunk.payload;
        if payload.len() < CHUNK_HEADER {
            continue;
        }
        let word = |at: usize| u32::from_be_bytes([0, 1, 2, 3].map(|i| payload[at + i]));
        let from = u64::from_be_bytes([0, 1, 2, 3, 4, 5, 6, 7].map(|i| payload[i]));
        let (index, count) = (word(8), word(12));
        if *token.get_or_insert(from) != from {
            continue;
        }
        if index != next {
            return Err(format!(
                "{subject}: chunk {index} came where {next} was due"
            ));
        }
        bytes.extend_from_slice(&payload[CHUNK_HEADER..]);
        next += 1;
        if next == count {
            break;
        }
    }
    let _ = replies.unsubscribe().await;
    Ok(bytes)
}

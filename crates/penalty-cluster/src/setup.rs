//! Connecting to the NATS servers, and `penalty cluster init`.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use serde::{Deserialize, Serialize};

use crate::wire::{DEC_STREAM, IN_STREAM, META_BUCKET, ORD_STREAM, SHOP_STREAM};
use crate::ClusterError;

/// The settings fixed when the cluster is created, kept in `PENALTY_META`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// P: the partitions of every stage.
    pub partitions: u32,
    /// The replicas of every stream and bucket.
    pub replicas: u32,
    /// The policy every node must hold (its JSON), since the ledgers of
    /// all partitions must follow the same rules.
    pub policy_json: String,
}

/// Connects to `url`: one `nats://host:port`, or several separated by
/// commas (the client moves to another when one fails).
pub async fn connect(url: &str) -> Result<async_nats::Client, ClusterError> {
    let addrs: Vec<&str> = url
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
        .connect(addrs)
        .await
        .map_err(|e| ClusterError::nats(&format!("cannot connect to {url}"), e))
}

/// A JetStream context whose requests wait long enough for a loaded
/// machine and a stream leader election.
pub fn jetstream(client: async_nats::Client) -> jetstream::Context {
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(10));
    js
}

/// Creates the streams and buckets (`penalty cluster init`). Run again with
/// the same settings, it changes nothing; with other settings it refuses,
/// since P decides where every key lives.
pub async fn init(js: &jetstream::Context, config: &ClusterConfig) -> Result<(), ClusterError> {
    if config.partitions == 0 || config.partitions > 4096 {
        return Err(ClusterError::Config(format!(
            "--partitions {} is out of range; give 1 to 4096",
            config.partitions
        )));
    }
    if !(1..=5).contains(&config.replicas) {
        return Err(ClusterError::Config(format!(
            "--replicas {} is out of range; JetStream allows 1 to 5",
            config.replicas
        )));
    }
    let replicas = config.replicas as usize;
    let meta = create_bucket(js, META_BUCKET, Duration::ZERO, replicas).await?;
    let text = serde_json::to_vec(config).map_err(|e| ClusterError::Decode(e.to_string()))?;
    match meta.create("config", text.into()).await {
        Ok(_) => {}
        Err(create_error) => {
            let existing = read_config(js).await.map_err(|_| {
                ClusterError::nats("recording the cluster's settings", &create_error)
            })?;
            if existing != *config {
                return Err(ClusterError::Config(format!(
                    "the cluster already exists with {} partitions and {} replicas (and its own \
                     policy); P cannot change, since it decides where every key lives",
                    existing.partitions, existing.replicas
                )));
            }
        }
    }
    for (name, subjects, max_age) in [
        (IN_STREAM, "in.*", Duration::ZERO),
        (ORD_STREAM, "ord.*", Duration::ZERO),
        (SHOP_STREAM, "shop.*", Duration::ZERO),
        // Decisions matter only while their ingest waits.
        (DEC_STREAM, "dec.*", Duration::from_secs(24 * 3600)),
    ] {
        js.get_or_create_stream(stream::Config {
            name: name.into(),
            subjects: vec![subjects.into()],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            max_age,
            // Readers use direct gets, answered by any replica.
            allow_direct: true,
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::nats(&format!("creating the stream {name}"), e))?;
    }
    Ok(())
}

/// Creates a key-value bucket, as `Context::create_key_value` would, by
/// creating its stream: that call first asks for the account's limits in a
/// form that Debian's nats-server 2.9 does not send (`reserved_memory`).
async fn create_bucket(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, ClusterError> {
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: replicas,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| ClusterError::nats(&format!("creating the bucket {bucket}"), e))?;
    js.get_key_value(bucket)
        .await
        .map_err(|e| ClusterError::nats(&format!("opening the bucket {bucket}"), e))
}

/// The settings `init` recorded.
pub async fn read_config(js: &jetstream::Context) -> Result<ClusterConfig, ClusterError> {
    let missing = |cause: String| {
        ClusterError::Config(format!(
            "the cluster's settings cannot be read ({cause}): if `penalty cluster init \
             --cluster nats://… --partitions P --replicas R` was not run, run it first"
        ))
    };
    let meta = js
        .get_key_value(META_BUCKET)
        .await
        .map_err(|e| missing(e.to_string()))?;
    let value = meta
        .get("config")
        .await
        .map_err(|e| ClusterError::nats("reading the cluster's settings", e))?
        .ok_or_else(|| missing("no `config` key".into()))?;
    serde_json::from_slice(&value).map_err(|e| ClusterError::Decode(e.to_string()))
}

/// The most publications an [`Outbox`] keeps unacknowledged before it waits
/// for them all.
pub const OUTBOX_IN_FLIGHT: usize = 512;

/// A stage's forwarding: publications sent asynchronously, many
/// acknowledgements in flight, with one rule that keeps exactly once: on one
/// subject at most one publication is unacknowledged. A receiver drops an
/// origin at or below the highest it applied from the same source (see
/// [`crate::wire::Origin`]), so two publications of one source on one
/// subject must land in order; if the first failed (a leader election) while
/// the second landed, the first's retry would land after it and be dropped.
/// Decisions (`dec.*`) are read by their ingest whatever their order, so they
/// are not held to it.
pub struct Outbox {
    js: jetstream::Context,
    on_subject: std::collections::HashMap<String, jetstream::context::PublishAckFuture>,
    unordered: Vec<jetstream::context::PublishAckFuture>,
}

impl Outbox {
    /// An empty outbox publishing through `js`.
    pub fn new(js: jetstream::Context) -> Outbox {
        Outbox {
            js,
            on_subject: std::collections::HashMap::new(),
            unordered: Vec::new(),
        }
    }

    /// Publications sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.on_subject.len() + self.unordered.len()
    }

    /// Sends `payload` to `subject` with a `Nats-Msg-Id`, first waiting for
    /// the acknowledgement of the publication in flight on that subject, if
    /// any, and for all of them when [`OUTBOX_IN_FLIGHT`] are.
    pub async fn send(
        &mut self,
        subject: String,
        msg_id: &str,
        payload: Vec<u8>,
    ) -> Result<(), ClusterError> {
        if self.in_flight() >= OUTBOX_IN_FLIGHT {
            self.flush().await?;
        }
        let ordered = !subject.starts_with("dec.");
        if ordered {
            if let Some(earlier) = self.on_subject.remove(&subject) {
                acknowledged(earlier).await?;
            }
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        let ack = self
            .js
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await
            .map_err(|e| ClusterError::nats("publishing", e))?;
        if ordered {
            self.on_subject.insert(subject, ack);
        } else {
            self.unordered.push(ack);
        }
        Ok(())
    }

    /// Waits until every publication sent is in its stream (replicated).
    /// After an error, publications may or may not have landed: the caller
    /// replays from its checkpoint, publishing them again under the same
    /// message ids.
    pub async fn flush(&mut self) -> Result<(), ClusterError> {
        // Awaited together: an acknowledgement's timeout runs from when it
        // is awaited, so awaiting hundreds of lost ones in turn (a stream
        // leader killed) would take a timeout each.
        let acks = self
            .on_subject
            .drain()
            .map(|(_, ack)| ack)
            .chain(self.unordered.drain(..))
            .map(acknowledged);
        futures_util::future::join_all(acks)
            .await
            .into_iter()
            .find_map(Result::err)
            .map_or(Ok(()), Err)
    }
}

async fn acknowledged(ack: jetstream::context::PublishAckFuture) -> Result<(), ClusterError> {
    ack.await
        .map(|_| ())
        .map_err(|e| ClusterError::nats("waiting for the stream's acknowledgement", e))
}

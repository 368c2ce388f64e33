//! The append path, in one place: **stage** a batch (classify its lines
//! against the idempotency index and encode the new events as a block placed
//! after the last one, on the caller's thread: [`EventLog::stage_keyed`]),
//! **write** the block ([`BlockJob::write`]), **sync** it with the blocks
//! written meanwhile, locate them in sled and record the log's new end in the
//! head journal ([`BlockJob::sync_group`]), then **acknowledge** it
//! ([`EventLog::acknowledge`]): only then may its events be reported as
//! appended. Any error gives up everything pending ([`EventLog::abandon`]).
//!
//! Two drivers: [`EventLog::append_batch`] runs the four steps one after the
//! other on the caller's thread; an [`Appender`] (what ingest's committing
//! thread uses) writes and syncs on two threads of its own while the caller
//! stages the next batches, up to [`IN_FLIGHT_BLOCKS`] blocks ahead, and
//! hands back, in order, what the caller attached to each block once it is
//! acknowledged.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use penalty_core::event::{AsParsed, ParsedRef};
use penalty_core::time::UnixNs;

use super::{lock_head, spare_offsets, AppendOutcome, EventLog, Keys, SLED_FLUSH_EVERY_BLOCKS};
use crate::block::{self, block_key, Locator};
use crate::direct::Prepared;
use crate::head::{Head, HeadRecord};
use crate::StoreError;
/// Blocks the writer threads may hold at once. With one, the committing
/// thread waited for each block's write and sync before handing over the
/// next (60-120 ms a million orders); with three, for about 3 ms.
pub(crate) const IN_FLIGHT_BLOCKS: usize = 3;

// The block writer keeps room for every block in flight and the one being
// staged.
const _: () = assert!(crate::direct::MAX_PENDING_BLOCKS == IN_FLIGHT_BLOCKS + 1);

/// The durable half of an append (see [`EventLog::stage_keyed`]): writes a
/// pending block, syncs the blocks file, locates the block in sled
/// (flushing sled every [`SLED_FLUSH_EVERY_BLOCKS`] blocks), and records
/// the log's new end in the head journal. It owns
/// or shares all it needs, so it may run on another thread than the log's;
/// jobs are written and synced in the order their blocks were staged
/// (see [`BlockJob::sync_group`]).
pub(crate) struct BlockJob {
    prepared: Prepared,
    first_seq: u64,
    end_seq: u64,
    locator: Locator,
    file: Arc<File>,
    file_path: PathBuf,
    blocks: sled::Tree,
    db: sled::Db,
    sled_path: PathBuf,
    /// Whether this block's job flushes sled.
    flush_sled: bool,
    head: Arc<Mutex<Head>>,
}

/// What a [`BlockJob`] did, for [`EventLog::acknowledge`].
pub(crate) struct BlockDone {
    first_seq: u64,
    /// Whether a direct write was refused (see [`Prepared::write`]).
    result: Result<bool, StoreError>,
}

impl BlockDone {
    /// Whether the block failed.
    pub(crate) fn is_err(&self) -> bool {
        self.result.is_err()
    }
}

/// A block that [`BlockJob::write`] wrote to the blocks file, not yet
/// synced: [`BlockJob::sync_group`] makes it durable.
pub(crate) struct WrittenBlock {
    job: BlockJob,
    /// Whether the direct write was refused, or why the write failed.
    refused: Result<bool, StoreError>,
}

impl BlockJob {
    /// The block's first sequence number and where it goes.
    pub(crate) fn place(&self) -> (u64, Locator) {
        (self.first_seq, self.locator)
    }

    /// Makes the block durable. The job's share of the block's buffer is
    /// released before it returns.
    pub(crate) fn run(self) -> BlockDone {
        let mut done = BlockJob::sync_group(vec![self.write()], false);
        done.pop().expect("one block, one result")
    }

    /// The first half of [`BlockJob::run`]: writes the block to the blocks
    /// file, where it is not durable yet.
    pub(crate) fn write(self) -> WrittenBlock {
        let refused = self
            .prepared
            .write(&self.file)
            .map_err(|source| StoreError::Io {
                action: "writing a block to the blocks file",
                path: self.file_path.clone(),
                source,
            });
        WrittenBlock { job: self, refused }
    }

    /// The second half: makes written blocks durable together, in order.
    /// Syncs the blocks file, locates them, and records the log's new end
    /// once for the group. Every block gets the group's result. When
    /// `given_up` (an earlier group failed), fails them all untouched: the
    /// head journal must never name a block after one that failed.
    ///
    /// Why groups: a sync and the head journal cost about half as much
    /// disk time as a block's write, whatever its size. Ingest's writer
    /// thread writes the next block while the one before is synced, and
    /// the blocks written meanwhile share the next sync.
    pub(crate) fn sync_group(mut group: Vec<WrittenBlock>, given_up: bool) -> Vec<BlockDone> {
        let started = std::time::Instant::now();
        let result = if given_up {
            Err(None)
        } else {
            BlockJob::make_durable(&mut group).map_err(Some)
        };
        let mut error = match result {
            Ok(refused) => {
                for written in &group {
                    let job = &written.job;
                    tracing::debug!(
                        first_seq = job.first_seq,
                        events = job.end_seq - job.first_seq,
                        bytes = job.locator.len,
                        group = group.len(),
                        micros = started.elapsed().as_micros() as u64,
                        "appended a block"
                    );
                }
                return group
                    .iter()
                    .zip(refused)
                    .map(|(written, refused)| BlockDone {
                        first_seq: written.job.first_seq,
                        result: Ok(refused),
                    })
                    .collect();
            }
            Err(error) => error,
        };
        // No block of the group is acknowledged, and the log abandons them
        // all. The first carries the error.
        group
            .iter()
            .map(|written| {
                let job = &written.job;
                BlockDone {
                    first_seq: job.first_seq,
                    result: Err(error.take().unwrap_or_else(|| {
                        StoreError::corrupt_block(
                            job.first_seq,
                            job.end_seq - job.first_seq,
                            "not written: writing an earlier block failed",
                        )
                    })),
                }
            })
            .collect()
    }

    /// Returns, for each block, whether its direct write was refused.
    fn make_durable(group: &mut [WrittenBlock]) -> Result<Vec<bool>, StoreError> {
        let mut refused = Vec::with_capacity(group.len());
        for written in group.iter_mut() {
            refused.push(std::mem::replace(&mut written.refused, Ok(false))?);
        }
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            return Ok(refused);
        };
        let (first, last) = (&first.job, &last.job);
        let db_error = |source| StoreError::Database {
            path: first.sled_path.clone(),
            source,
        };
        // One sync for the group: every block of it was written to this
        // file before.
        debug_assert!(
            group.iter().all(|w| Arc::ptr_eq(&w.job.file, &first.file)),
            "one blocks file"
        );
        first.file.sync_data().map_err(|source| StoreError::Io {
            action: "syncing the blocks file",
            path: first.file_path.clone(),
            source,
        })?;
        for WrittenBlock { job, .. } in group.iter() {
            // compare_and_swap rather than insert: a block already under
            // this key would mean the index disagrees with the disk, and
            // overwriting it would destroy events.
            let written = job
                .blocks
                .compare_and_swap(
                    block_key(job.first_seq),
                    None as Option<&[u8]>,
                    Some(&job.locator.encode()[..]),
                )
                .map_err(db_error)?;
            if written.is_err() {
                return Err(StoreError::corrupt_block(
                    job.first_seq,
                    1,
                    "a block already exists where the next one belongs; the log's tail is inconsistent",
                ));
            }
        }
        if group.iter().any(|written| written.job.flush_sled) {
            first.db.flush().map_err(db_error)?;
        }
        // The blocks are acknowledged from here on: the journal is the
        // record of what was, and the blocks it covers are already synced,
        // so an open after a crash finds them even if their locators never
        // reached sled's disk.
        lock_head(&last.head).record(HeadRecord {
            last_seq: last.end_seq - 1,
            block_first_seq: last.first_seq,
            block_crc: last.locator.crc,
        })?;
        Ok(refused)
    }
}

impl EventLog {
    /// Appends the new events among `items` as one block, durably, and says
    /// what happened to each item, in order. Items already in the log (or
    /// earlier in `items`) are duplicates or conflicts and are not written.
    /// When nothing is new, nothing is written.
    ///
    /// On an error nothing is reported as appended; the block may or may not
    /// have reached the disk, and the next call re-reads the log to find out.
    pub fn append_batch<T: AsParsed>(
        &mut self,
        items: &[T],
        recorded_at: UnixNs,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let keyed: Vec<(ParsedRef<'_>, Keys)> = items
            .iter()
            .map(|item| {
                let line = item.as_parsed();
                (line, Keys::of_line(&self.hasher, &line))
            })
            .collect();
        self.append_keyed(&keyed, recorded_at)
    }

    /// [`EventLog::append_batch`] of lines whose [`Keys`] are already
    /// computed, with [`EventLog::hasher`].
    pub(crate) fn append_keyed(
        &mut self,
        items: &[(ParsedRef<'_>, Keys)],
        recorded_at: UnixNs,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        assert_eq!(
            self.writer.pending(),
            0,
            "an append waits for no other block"
        );
        let (outcomes, job) = self.stage_keyed(items, recorded_at)?;
        if let Some(job) = job {
            self.acknowledge(job.run())?;
        }
        Ok(outcomes)
    }

    /// The first half of an append, on the caller's thread: classifies the
    /// items against the index (which records the new events at once, as
    /// [`EventLog::append_batch`] reports them) and encodes the new ones as
    /// a block placed after the last one, pending. Returns the outcomes and,
    /// when any event is new, the job that makes the block durable. The
    /// caller runs the jobs (on other threads) in order and hands what each
    /// returns to [`EventLog::acknowledge`], in order; until then its
    /// outcomes are not to be reported.
    ///
    /// Why two halves: ingest stages the next batches while the blocks
    /// before are written and synced, which takes about as long. Any error, here
    /// or in the job, drops the index and the pending blocks (see
    /// [`EventLog::abandon`]).
    pub(crate) fn stage_keyed(
        &mut self,
        items: &[(ParsedRef<'_>, Keys)],
        recorded_at: UnixNs,
    ) -> Result<(Vec<AppendOutcome>, Option<BlockJob>), StoreError> {
        if items.is_empty() {
            return Ok((Vec::new(), None));
        }
        let staged = self.stage_unchecked(items, recorded_at);
        if staged.is_err() {
            self.abandon();
        }
        staged
    }

    fn stage_unchecked(
        &mut self,
        items: &[(ParsedRef<'_>, Keys)],
        recorded_at: UnixNs,
    ) -> Result<(Vec<AppendOutcome>, Option<BlockJob>), StoreError> {
        let mut index = match self.index.take() {
            Some(index) => index,
            None => self.build_index()?,
        };
        // The index keeps sequence numbers in 32 bits (`slots`): refused
        // before anything is recorded, should this batch pass the limit.
        // (As after any error, `stage_keyed` then gives the index up.)
        self.within_max_events(index.next_seq.saturating_add(items.len() as u64) - 1)?;
        // The index records new events as they are classified: on an error
        // it is left dropped (`None`), and the next append rebuilds it from
        // the log.
        let (outcomes, entries) = self.classify(&mut index, items)?;
        if entries.is_empty() {
            self.index = Some(index);
            return Ok((outcomes, None));
        }
        let first_seq = index.next_seq;
        let end_seq = first_seq + entries.len() as u64;
        let block_bytes = block::encoded_len(&entries);
        let count = u32::try_from(entries.len()).expect("a batch fits in u32");
        // Until this block is acknowledged, where the file ends is not known
        // for sure: a failed write may leave part of it behind.
        let end = match self.file_end.take() {
            Some(end) => end,
            None => self.blocks_end()?,
        };
        // Where its entries start, for confirming later duplicates against
        // it while it is kept in memory (see `with_stored`).
        let mut offsets = spare_offsets(&mut self.recent_offsets);
        let prepared = self
            .writer
            .prepare(
                &self.reader.file_path,
                end,
                block_bytes,
                (first_seq, end_seq),
                |out| {
                    block::encode_noting_offsets(
                        first_seq,
                        recorded_at,
                        &entries,
                        out,
                        Some(&mut offsets),
                    );
                },
            )
            .map_err(|source| StoreError::Io {
                action: "opening the blocks file for direct writes",
                path: self.reader.file_path.clone(),
                source,
            })?;
        let locator = Locator::of(prepared.bytes(), prepared.offset, count);
        // The next block goes after this one, assuming it will be written:
        // if it is not, everything pending is abandoned and the end is read
        // again from the disk.
        self.file_end = Some(locator.end());
        self.recent_offsets.push((first_seq, offsets));
        index.next_seq = end_seq;
        self.index = Some(index);
        let job = BlockJob {
            prepared,
            first_seq,
            end_seq,
            locator,
            file: Arc::clone(&self.reader.file),
            file_path: self.reader.file_path.clone(),
            blocks: self.blocks.clone(),
            db: self.db.clone(),
            sled_path: self.sled_path.clone(),
            flush_sled: self.staged_blocks % SLED_FLUSH_EVERY_BLOCKS == SLED_FLUSH_EVERY_BLOCKS - 1,
            head: Arc::clone(&self.head),
        };
        self.staged_blocks += 1;
        Ok((outcomes, Some(job)))
    }

    /// The second half of an append: takes what the oldest pending block's
    /// job returned. On success the block's events are acknowledged and may
    /// be reported; on an error, everything pending is abandoned.
    pub(crate) fn acknowledge(&mut self, done: BlockDone) -> Result<(), StoreError> {
        match done.result {
            Ok(direct_refused) => {
                if direct_refused {
                    self.writer.direct_refused();
                }
                self.writer.acknowledged(done.first_seq);
                Ok(())
            }
            Err(error) => {
                self.abandon();
                Err(error)
            }
        }
    }

    /// Gives up the blocks prepared and not acknowledged: their events
    /// leave the index (all of it is dropped, and rebuilt from the disk by
    /// the next append), and where the blocks file ends is read again. A
    /// given-up block may or may not have reached the disk; the disk says
    /// which. The caller makes sure no job of theirs is still running.
    pub(crate) fn abandon(&mut self) {
        self.index = None;
        self.file_end = None;
        self.cached_blocks.clear();
        // A block given up may be staged again under the same first
        // sequence number, with other events.
        self.recent_offsets.clear();
        self.writer.abandon();
    }
}

/// The writer threads of one ingest: one writes the [`BlockJob`]s it is
/// handed, one at a time, and hands each to the other, which syncs the
/// blocks written so far together ([`BlockJob::sync_group`]) and hands
/// back what became of each, in order. So the next block is written while
/// the one before is synced.
struct WriterLane {
    jobs: Option<SyncSender<BlockJob>>,
    done: Receiver<BlockDone>,
    threads: Vec<JoinHandle<()>>,
}

impl WriterLane {
    fn start() -> Result<WriterLane, StoreError> {
        // At most IN_FLIGHT_BLOCKS jobs are in flight (the committer waits
        // for the oldest before handing over another), so these never fill.
        let (jobs, job_input) = mpsc::sync_channel::<BlockJob>(IN_FLIGHT_BLOCKS);
        let (written_output, written_input) = mpsc::sync_channel(IN_FLIGHT_BLOCKS);
        let (done_output, done) = mpsc::sync_channel(IN_FLIGHT_BLOCKS);
        let spawn_error = |thread| move |source| StoreError::Spawn { thread, source };
        let writer = std::thread::Builder::new()
            .name("penalty-ingest-writer".into())
            .spawn(move || {
                for job in job_input {
                    if written_output.send(job.write()).is_err() {
                        return;
                    }
                }
            })
            .map_err(spawn_error("ingest block writer"))?;
        let syncer = std::thread::Builder::new()
            .name("penalty-ingest-syncer".into())
            .spawn(move || {
                let mut given_up = false;
                while let Ok(written) = written_input.recv() {
                    let mut group = vec![written];
                    while let Ok(more) = written_input.try_recv() {
                        group.push(more);
                    }
                    for done in BlockJob::sync_group(group, given_up) {
                        given_up |= done.is_err();
                        if done_output.send(done).is_err() {
                            return;
                        }
                    }
                }
            });
        let syncer = match syncer {
            Ok(syncer) => syncer,
            Err(source) => {
                // The writer ends once its jobs' sender is dropped.
                drop(jobs);
                let _ = writer.join();
                return Err(spawn_error("ingest block syncer")(source));
            }
        };
        Ok(WriterLane {
            jobs: Some(jobs),
            done,
            threads: vec![writer, syncer],
        })
    }

    fn gone() -> StoreError {
        StoreError::ThreadEnded {
            thread: "ingest block writer",
        }
    }

    fn send(&self, job: BlockJob) -> Result<(), StoreError> {
        match &self.jobs {
            Some(jobs) => jobs.send(job).map_err(|_| WriterLane::gone()),
            None => Err(WriterLane::gone()),
        }
    }

    fn recv(&self) -> Result<BlockDone, StoreError> {
        self.done.recv().map_err(|_| WriterLane::gone())
    }

    /// What the oldest job did, if it is done.
    fn try_recv(&self) -> Result<Option<BlockDone>, StoreError> {
        match self.done.try_recv() {
            Ok(done) => Ok(Some(done)),
            Err(mpsc::TryRecvError::Empty) => Ok(None),
            Err(mpsc::TryRecvError::Disconnected) => Err(WriterLane::gone()),
        }
    }

    /// Lets the thread finish the job it has and end; an error if it
    /// panicked.
    fn finish(mut self) -> Result<(), StoreError> {
        self.join()
    }

    fn join(&mut self) -> Result<(), StoreError> {
        // The writer ends when its jobs' sender is dropped, and the syncer
        // when the writer's is.
        drop(self.jobs.take());
        let mut result = Ok(());
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                result = Err(WriterLane::gone());
            }
        }
        result
    }
}

impl Drop for WriterLane {
    /// Even when the committing thread unwinds from a panic, the writer
    /// thread's last job ends before the log (and its directory lock) is
    /// released: another process must never find the directory free while
    /// a block is still being written to it.
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// Blocks on their way to the disk, oldest first, each with what its
/// stager attached to it (ingest: the batch to report), handed back once
/// the block is acknowledged. The caller stages on its own thread while the
/// [`WriterLane`] writes and syncs; at most [`IN_FLIGHT_BLOCKS`] at once.
pub(crate) struct Appender<T> {
    writer: WriterLane,
    in_flight: VecDeque<T>,
}

impl<T> Appender<T> {
    /// Starts the writer threads.
    pub(crate) fn start() -> Result<Appender<T>, StoreError> {
        Ok(Appender {
            writer: WriterLane::start()?,
            in_flight: VecDeque::new(),
        })
    }

    /// Stages `items` as the next block (see [`EventLog::stage_keyed`]):
    /// the outcomes, and the job when any event is new. The outcomes are
    /// not to be reported before the block is acknowledged.
    pub(crate) fn stage(
        &mut self,
        log: &mut EventLog,
        items: &[(ParsedRef<'_>, Keys)],
        recorded_at: UnixNs,
    ) -> Result<(Vec<AppendOutcome>, Option<BlockJob>), StoreError> {
        log.stage_keyed(items, recorded_at)
    }

    /// Whether as many blocks are in flight as may be: the oldest must be
    /// acknowledged before another is sent.
    pub(crate) fn is_full(&self) -> bool {
        self.in_flight.len() >= IN_FLIGHT_BLOCKS
    }

    /// Whether no block is in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Hands a staged block to the writer threads, with what to hand back
    /// once it is acknowledged.
    pub(crate) fn send(&mut self, job: BlockJob, attached: T) -> Result<(), StoreError> {
        assert!(!self.is_full(), "the oldest block is acknowledged first");
        self.writer.send(job)?;
        self.in_flight.push_back(attached);
        Ok(())
    }

    /// Acknowledges the oldest block in flight if it is durable already,
    /// handing back what was attached to it; `None` when there is none or
    /// it is not durable yet.
    pub(crate) fn try_acknowledge(&mut self, log: &mut EventLog) -> Result<Option<T>, StoreError> {
        if self.in_flight.is_empty() {
            return Ok(None);
        }
        match self.writer.try_recv()? {
            Some(done) => self.acknowledge_with(log, done).map(Some),
            None => Ok(None),
        }
    }

    /// Waits for the oldest block in flight, if any, and acknowledges it.
    pub(crate) fn acknowledge_oldest(
        &mut self,
        log: &mut EventLog,
    ) -> Result<Option<T>, StoreError> {
        if self.in_flight.is_empty() {
            return Ok(None);
        }
        let done = self.writer.recv()?;
        self.acknowledge_with(log, done).map(Some)
    }

    fn acknowledge_with(&mut self, log: &mut EventLog, done: BlockDone) -> Result<T, StoreError> {
        let attached = self.in_flight.pop_front().expect("a block in flight");
        log.acknowledge(done)?;
        Ok(attached)
    }

    /// Ends the writer threads of an appender with no block in flight.
    pub(crate) fn finish_idle(self) -> Result<(), StoreError> {
        assert!(self.in_flight.is_empty(), "no block in flight");
        self.writer.finish()
    }

    /// Ends the writer threads once their jobs are done, so that nothing
    /// writes the log after. When `failed`, or when a block was left
    /// unacknowledged, everything pending is given up: the disk says
    /// whether it was written.
    pub(crate) fn finish(self, log: &mut EventLog, failed: bool) -> Result<(), StoreError> {
        let Appender { writer, in_flight } = self;
        let ended = writer.finish();
        if failed || ended.is_err() || !in_flight.is_empty() {
            log.abandon();
        }
        ended
    }
}

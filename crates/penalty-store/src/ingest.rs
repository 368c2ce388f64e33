//! The streaming ingest pipeline: JSON Lines in, durable blocks out.
//!
//! Threads share the work. A reader thread splits the input into lines and
//! deals chunks of them in turn to parser threads (one per core, plus one),
//! which validate them into [`ParsedLines`] and hash them (the costly,
//! CPU-bound part) on every core; the calling thread takes the parsed chunks
//! back in the same turn, so in input order, batches them and hands each
//! batch to the log's append path (`log::append`: its [`Appender`] stages the
//! block, two writer threads write and sync it, up to [`IN_FLIGHT_BLOCKS`] at
//! once, and it is acknowledged), then reports it. They talk over bounded
//! channels of line chunks, so memory stays constant whatever the input size:
//! at most a few chunks in flight plus a few batches. A [`Pipeline`] keeps
//! these threads from one input to the next (the server's uploads).
//!
//! A block is committed when the batch reaches [`IngestOptions::max_batch_events`]
//! lines or [`IngestOptions::max_batch_bytes`] bytes, when
//! [`IngestOptions::max_latency`] has passed since its first line, or at the
//! end of the input. Because the committing thread waits with `recv_timeout`,
//! the latency bound holds even while the reader is blocked on a slow pipe:
//! the reader hands over every complete line before each read that may block.
//!
//! Every line read ends in exactly one of appended, duplicate or rejected
//! (EVENTS.md), and [`IngestCounts`] asserts that they add up.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use penalty_core::event::{ParsedLines, ParsedRef, Reject, MAX_LINE_BYTES};
use penalty_core::labels::Lang;
use penalty_core::time::UnixNs;
use serde::Serialize;

use crate::block::content_hashes;
use crate::log::{AppendOutcome, Appender, BlockJob, IdHasher, Keys, IN_FLIGHT_BLOCKS};
use crate::{EventLog, StoreError};

/// How much of a too-long line is kept for the rejects file.
pub const REJECT_RAW_PREFIX_BYTES: usize = 4096;
/// The read buffer of the reader thread.
const READ_BUFFER_BYTES: usize = 256 * 1024;
/// A chunk handed to the committing thread holds at most this many lines…
/// Each chunk is a hand-off between threads (reader to parser to committer
/// and back to the reader), and each hand-off may wake a thread: at a
/// million orders, 2,048-line chunks took about 3% less CPU and time than
/// 1,024-line ones (see PERFORMANCE.md, ninth round).
const CHUNK_LINES: usize = 2048;
/// …or about this many bytes.
const CHUNK_BYTES: usize = 1 << 20;
/// The most bytes of lines a chunk holds: it is handed over once it holds
/// [`CHUNK_BYTES`], so it takes at most one line past them, and a line
/// longer than [`MAX_LINE_BYTES`] is kept only in part.
const CHUNK_RAW_CAPACITY: usize = CHUNK_BYTES + MAX_LINE_BYTES;
/// Chunks waiting in the channel; with the limits above this bounds the
/// memory between the threads to a few megabytes.
const CHANNEL_CHUNKS: usize = 4;
/// The most parser threads ingest starts.
const MAX_PARSERS: usize = 8;

/// Parser threads: one per core, plus one. Parsing is most of ingest's
/// work, and the committing thread waits for parsed chunks about half the
/// time; the extra parser fills those gaps (on two cores, three parsers
/// ingest a million orders about 10% faster than two).
fn parsers() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores + 1).clamp(2, MAX_PARSERS)
}
/// While blocks are in flight and no chunk is ready, how long the
/// committing thread waits for one before it looks again for blocks made
/// durable meanwhile, to report them.
const SETTLE_POLL: Duration = Duration::from_millis(1);
/// How often the committing thread looks at the stop flag while idle.
const STOP_POLL: Duration = Duration::from_millis(50);

/// How [`ingest`] batches its writes.
#[derive(Clone, Debug)]
pub struct IngestOptions {
    /// Commit a block once the batch holds this many lines (default 8192).
    pub max_batch_events: usize,
    /// Commit a block once the batch holds this many bytes of lines (default
    /// 16 MiB), so that long lines cannot make a batch huge.
    pub max_batch_bytes: usize,
    /// Commit a block at the latest this long after its first line was read
    /// (default 100 ms), even when the input is slow.
    pub max_latency: Duration,
    /// When set (Ctrl-C), ingest commits what it has read and returns.
    pub stop: Arc<AtomicBool>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            max_batch_events: 8192,
            max_batch_bytes: 16 << 20,
            max_latency: Duration::from_millis(100),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// What happened to the lines of one input (EVENTS.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IngestCounts {
    /// Lines read.
    pub read: u64,
    /// Lines written to the log as new events.
    pub appended: u64,
    /// Lines already in the log with the same content.
    pub duplicates: u64,
    /// Lines rejected, each written to the rejects file.
    pub rejected: u64,
}

impl IngestCounts {
    /// Adds another input's counts, for the total of several files.
    pub fn add(&mut self, other: &IngestCounts) {
        self.read += other.read;
        self.appended += other.appended;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
    }

    fn assert_consistent(&self) {
        assert_eq!(
            self.read,
            self.appended + self.duplicates + self.rejected,
            "every line read ends appended, duplicate or rejected: {self:?}"
        );
    }
}

/// An event that has just become durable.
#[derive(Clone, Copy, Debug)]
pub struct AppendedEvent<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// When its block was recorded.
    pub recorded_at: UnixNs,
    /// The event's forms; [`ParsedRef::event`] gives the typed event.
    pub line: ParsedRef<'a>,
}

/// The work that makes a sink's rejects durable (an fsync), handed over by
/// [`RejectsSink::sync_job`] to run on another thread.
pub type SyncJob = Box<dyn FnOnce() -> Result<(), StoreError> + Send>;

/// Where [`ingest`] keeps the lines it rejects; [`RejectsFile`] is the usual
/// one. When a batch is committed ingest calls `rejected` for its rejected
/// lines in line order, then `sync_job`; once its block and that job are
/// done, `sync`, before the batch's events are reported to the
/// [`IngestObserver`]. Batches are reported in input order, but a batch may
/// be committed (its `rejected` calls made) while the blocks of up to three
/// batches before it are still being written.
pub trait RejectsSink {
    /// A rejected line. `raw` is the line as received, or for `line_too_long`
    /// its first [`REJECT_RAW_PREFIX_BYTES`] bytes; `raw_bytes` is the full
    /// length of the line (without its line ending).
    fn rejected(
        &mut self,
        line_no: u64,
        reason: &Reject,
        raw: &[u8],
        raw_bytes: u64,
    ) -> Result<(), StoreError>;

    /// Makes the rejects reported so far durable; called before the batch's
    /// events are reported.
    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Hands over the work of making the rejects reported so far durable,
    /// for ingest to run on a thread of its own while the batch's block is
    /// written; `None` when there is none, or when [`RejectsSink::sync`]
    /// does it. Ingest waits for the job before it calls `sync`.
    ///
    /// Why: an fsync of the rejects file on the committing thread, which
    /// every line waits for, stopped it for 20-60 ms a million orders (a
    /// disk flush for each batch with a reject), while the writer thread's
    /// flush of the block could have covered the same time.
    fn sync_job(&mut self) -> Result<Option<SyncJob>, StoreError> {
        Ok(None)
    }
}

/// What [`ingest`] tells of its progress, batch by batch, once a batch's
/// block is durable and its rejects synced: `appended` with its new events
/// in sequence order (none when [`IngestObserver::wants_appended`] says
/// so), then `progress`. `()` observes nothing.
pub trait IngestObserver {
    /// Events now durable in the log, in sequence order.
    fn appended(&mut self, events: &[AppendedEvent<'_>]) -> Result<(), StoreError> {
        let _ = events;
        Ok(())
    }

    /// Where the block of the events of the next
    /// [`IngestObserver::appended`] call lies: its first sequence number
    /// and place, told just before that call when the batch appended any.
    fn located(&mut self, first_seq: u64, block: &crate::block::Locator) {
        let _ = (first_seq, block);
    }

    /// Whether [`IngestObserver::appended`] needs the events; when not, it
    /// is called with none. Listing two million events only to drop them
    /// was about a twentieth of the committing thread's work.
    fn wants_appended(&self) -> bool {
        true
    }

    /// The counts so far and the input bytes consumed, after each block.
    fn progress(&mut self, counts: &IngestCounts, bytes_read: u64) {
        let _ = (counts, bytes_read);
    }
}

/// Observes nothing, and so asks for no events.
impl IngestObserver for () {
    fn wants_appended(&self) -> bool {
        false
    }
}

/// Streams JSON Lines from `input` into `log`, keeping rejected lines in
/// `rejects` and reporting progress to `observer`. Returns
/// the counts of this input; they add up (`read = appended + duplicates +
/// rejected`). When `options.stop` is set, commits what was read and returns.
///
/// An input read error ends ingest with [`StoreError::Input`] after the lines
/// before it were committed.
///
/// One input on a [`Pipeline`] of its own, ended with it; a writer that
/// takes input after input (the server) keeps one [`Pipeline`] instead.
pub fn ingest(
    log: &mut EventLog,
    input: impl Read + Send + 'static,
    options: &IngestOptions,
    rejects: &mut dyn RejectsSink,
    observer: &mut dyn IngestObserver,
) -> Result<IngestCounts, StoreError> {
    let mut pipeline = Pipeline::new(log);
    let counts = pipeline.ingest(log, input, options, rejects, observer)?;
    pipeline.finish();
    // The blocks are durable and acknowledged; flushing sled spares the next
    // open locating the last ones from the blocks file.
    log.flush_locators()?;
    Ok(counts)
}

/// Ingest's threads (the input reader, the parsers, the block writer and
/// syncer, the rejects syncer), kept from one input to the next: the server
/// ingests every upload on the one pipeline it started with, instead of
/// starting and joining about a dozen threads per upload. A pipeline is
/// tied to the log it was made for (the parsers hash lines with its
/// hasher). After a failure, or an input stopped by
/// [`IngestOptions::stop`], its threads are ended and the next input starts
/// new ones: lines of the failed input may still be in flight.
pub struct Pipeline {
    hasher: IdHasher,
    threads: Option<Threads>,
}

/// The running threads of a [`Pipeline`], idle between inputs.
struct Threads {
    lanes: Lanes,
    appender: Appender<Staged>,
    syncer: SyncLane,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("running", &self.threads.is_some())
            .finish()
    }
}

impl Pipeline {
    /// A pipeline for `log`; its threads start with the first input.
    pub fn new(log: &EventLog) -> Pipeline {
        Pipeline {
            hasher: log.hasher(),
            threads: None,
        }
    }

    /// Whether its threads are running (idle between inputs).
    pub fn is_running(&self) -> bool {
        self.threads.is_some()
    }

    /// [`ingest`] of one input on this pipeline's threads: returns once
    /// every line of it is appended (durable and acknowledged), a duplicate
    /// or rejected, and reported. `log` must be the log the pipeline was
    /// made for.
    pub fn ingest(
        &mut self,
        log: &mut EventLog,
        input: impl Read + Send + 'static,
        options: &IngestOptions,
        rejects: &mut dyn RejectsSink,
        observer: &mut dyn IngestObserver,
    ) -> Result<IngestCounts, StoreError> {
        assert!(
            options.max_batch_events >= 1,
            "a batch holds at least one line"
        );
        assert!(
            self.hasher == log.hasher(),
            "a pipeline ingests into the log it was made for"
        );
        let Threads {
            mut lanes,
            appender,
            syncer,
        } = match self.threads.take() {
            Some(threads) => threads,
            None => Threads {
                lanes: Lanes::start(self.hasher)?,
                appender: Appender::start()?,
                syncer: SyncLane::default(),
            },
        };
        lanes.feed(Box::new(input))?;
        let mut committer = Committer {
            log,
            appender,
            rejects,
            observer,
            counts: IngestCounts::default(),
            bytes_read: 0,
            syncer,
            pool: lanes.pool.clone(),
        };
        let result = committer.run(&mut lanes, options, self.hasher);
        let Committer {
            log,
            appender,
            counts,
            bytes_read,
            syncer,
            ..
        } = committer;
        let done = |counts: IngestCounts| {
            tracing::info!(
                read = counts.read,
                appended = counts.appended,
                duplicates = counts.duplicates,
                rejected = counts.rejected,
                bytes_read,
                "ingest done"
            );
            Ok(counts)
        };
        if matches!(result, Ok(Some(Ok(())))) && appender.is_empty() {
            // Every block handed to the writer is acknowledged and every
            // rejects job done: the threads wait, idle, for the next input.
            self.threads = Some(Threads {
                lanes,
                appender,
                syncer,
            });
            return done(counts);
        }
        // Every job handed to the writer is finished before ingest returns, so
        // that nothing writes the log after; a block whose job ended without
        // being acknowledged (after an error) is given up, and the disk says
        // whether it was written.
        let writer_ended = appender.finish(log, result.is_err());
        // Likewise no fsync of the rejects sink's is left running.
        let syncer_ended = syncer.finish();
        let finished = result?;
        writer_ended?;
        syncer_ended?;
        match finished {
            // Stopped: the reader may be blocked on a read that never returns
            // (a terminal, a pipe), so it is left to end on its own; dropping the
            // receiver makes its next send fail.
            None => done(counts),
            Some(Ok(())) => {
                lanes.join();
                done(counts)
            }
            Some(Err(source)) => Err(StoreError::Input {
                line: counts.read,
                source,
            }),
        }
    }

    /// Ends the threads, once idle.
    pub fn finish(mut self) {
        if let Some(Threads {
            lanes,
            appender,
            syncer,
        }) = self.threads.take()
        {
            lanes.join();
            if appender.finish_idle().is_err() || syncer.finish().is_err() {
                tracing::warn!("an ingest writer thread panicked after the end of input");
            }
        }
    }
}

/// The calling thread's side of [`ingest`]: takes the parsed chunks in
/// input order, batches them, stages each batch as a block and reports it
/// once the writer threads have made it durable.
struct Committer<'a> {
    log: &'a mut EventLog,
    /// Makes the staged blocks durable and hands back their batches, oldest
    /// first, once acknowledged.
    appender: Appender<Staged>,
    rejects: &'a mut dyn RejectsSink,
    observer: &'a mut dyn IngestObserver,
    counts: IngestCounts,
    bytes_read: u64,
    /// Runs the rejects sink's [`SyncJob`]s.
    syncer: SyncLane,
    /// Where reported batches' chunks go back to the reader.
    pool: ChunkPool,
}

/// A batch staged as a block: its lines, and what became of each valid one.
struct Staged {
    batch: Batch,
    outcomes: Vec<AppendOutcome>,
    recorded_at: UnixNs,
    /// The input consumed when the batch was committed.
    bytes_read: u64,
    /// What became of the batch's lines.
    counts: IngestCounts,
    /// Whether a [`SyncJob`] for its rejects was handed to the syncer.
    syncing: bool,
    /// Its block's first sequence number and place, when it has one.
    block: Option<(u64, crate::block::Locator)>,
}

impl Committer<'_> {
    /// Runs until the input ends (returning the reader's last word) or the
    /// stop flag is set (returning `None`), with every batch reported.
    fn run(
        &mut self,
        lanes: &mut Lanes,
        options: &IngestOptions,
        hasher: IdHasher,
    ) -> Result<Option<std::io::Result<()>>, StoreError> {
        let mut batch = Batch::default();
        let mut deadline: Option<std::time::Instant> = None;
        // `None` while reading; the reader's final word once it has one.
        let mut finished: Option<std::io::Result<()>> = None;
        while finished.is_none() {
            if options.stop.load(Ordering::Relaxed) {
                tracing::info!(
                    lines = self.counts.read + batch.lines as u64,
                    "ingest stopped on request"
                );
                break;
            }
            let wait = deadline.map_or(STOP_POLL, |deadline| {
                deadline
                    .saturating_duration_since(std::time::Instant::now())
                    .min(STOP_POLL)
            });
            // Blocks made durable meanwhile are reported first. Then, with
            // blocks in flight, the wait for a chunk is short, so that their
            // reports do not wait for slow input.
            while self.try_settle()? {}
            let wait = if self.appender.is_empty() {
                wait
            } else {
                wait.min(SETTLE_POLL)
            };
            let message = lanes.recv_timeout(wait);
            match message {
                Some(Message::Lines {
                    chunk,
                    bytes_read: total,
                }) => {
                    self.bytes_read = total;
                    batch.add(chunk, &hasher);
                    loop {
                        if batch.lines == 0 {
                            deadline = Some(std::time::Instant::now() + options.max_latency);
                        }
                        if batch.take(options.max_batch_events, options.max_batch_bytes) == 0 {
                            break;
                        }
                        if batch.lines >= options.max_batch_events
                            || batch.bytes >= options.max_batch_bytes
                        {
                            self.commit(&mut batch)?;
                            deadline = None;
                        }
                    }
                    if batch.lines == 0 {
                        deadline = None;
                    }
                }
                Some(Message::End(result)) => finished = Some(result),
                None => {}
            }
            if deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline) {
                self.commit(&mut batch)?;
                deadline = None;
            }
        }
        self.commit(&mut batch)?;
        while !self.appender.is_empty() {
            self.settle()?;
        }
        Ok(finished)
    }

    /// Stages the batch's lines as a block and hands it to the writer
    /// thread, after reporting the block before it.
    fn commit(&mut self, batch: &mut Batch) -> Result<(), StoreError> {
        if batch.lines == 0 {
            return Ok(());
        }
        let recorded_at = crate::clock::now();
        let batch = batch.take_lines();
        // Each valid line's parsed form is built once, here; reporting
        // reads only each line's status.
        let mut valid: Vec<(ParsedRef<'_>, Keys)> = Vec::with_capacity(batch.lines);
        valid.extend(
            batch
                .taken()
                .filter_map(|(chunk, position)| chunk.valid(position)),
        );
        let (outcomes, job) = self.appender.stage(self.log, &valid, recorded_at)?;
        assert_eq!(outcomes.len(), valid.len(), "one outcome per item");
        drop(valid);
        // Blocks become durable in order, and are reported in order: the
        // oldest first, when the writer threads hold as many as they may,
        // or when this batch has no block to wait behind them.
        while self.appender.is_full() || (job.is_none() && !self.appender.is_empty()) {
            self.settle()?;
        }
        let mut staged = Staged {
            batch,
            outcomes,
            recorded_at,
            bytes_read: self.bytes_read,
            counts: IngestCounts::default(),
            syncing: false,
            block: job.as_ref().map(BlockJob::place),
        };
        self.record(&mut staged)?;
        if let Some(sync) = self.rejects.sync_job()? {
            self.syncer.send(sync)?;
            staged.syncing = true;
        }
        match job {
            Some(job) => self.appender.send(job, staged),
            // Nothing new (duplicates, rejects): nothing to wait for.
            None => self.report(staged),
        }
    }

    /// Counts what became of the batch's lines and hands its rejected ones
    /// to the rejects sink, before its block is durable: a line is rejected
    /// whatever becomes of the block (if the block fails, ingest fails, and
    /// a re-sent input rejects the line again).
    fn record(&mut self, staged: &mut Staged) -> Result<(), StoreError> {
        let counts = &mut staged.counts;
        let mut outcomes = staged.outcomes.iter();
        for (chunk, position) in staged.batch.taken() {
            counts.read += 1;
            let reject = match chunk.status[position] {
                Err(reason) => Some(reason),
                Ok(_) => match outcomes.next().expect("one outcome per valid line") {
                    AppendOutcome::Appended { .. } => {
                        counts.appended += 1;
                        None
                    }
                    AppendOutcome::Duplicate { .. } => {
                        counts.duplicates += 1;
                        None
                    }
                    outcome => outcome.reject(),
                },
            };
            if let Some(reason) = reject {
                counts.rejected += 1;
                let line = &chunk.lines[position];
                self.rejects
                    .rejected(line.line_no, &reason, chunk.raw_of(line), line.raw_bytes)?;
            }
        }
        assert!(outcomes.next().is_none(), "one outcome per valid line");
        counts.assert_consistent();
        Ok(())
    }

    /// Reports the oldest block being written if it is durable already;
    /// false when there is none or it is not.
    fn try_settle(&mut self) -> Result<bool, StoreError> {
        match self.appender.try_acknowledge(self.log)? {
            Some(staged) => self.report(staged).map(|()| true),
            None => Ok(false),
        }
    }

    /// Waits for the oldest block being written, if any, and reports it.
    fn settle(&mut self) -> Result<(), StoreError> {
        match self.appender.acknowledge_oldest(self.log)? {
            Some(staged) => self.report(staged),
            None => Ok(()),
        }
    }

    /// Reports a batch whose new events are durable to the observer, once its
    /// rejects are durable too.
    fn report(&mut self, staged: Staged) -> Result<(), StoreError> {
        let Staged {
            batch,
            outcomes,
            recorded_at,
            bytes_read,
            counts,
            syncing,
            block,
        } = staged;
        if syncing {
            self.syncer.recv()?;
        }
        self.rejects.sync()?;
        self.counts.add(&counts);
        self.counts.assert_consistent();
        let mut appended = Vec::new();
        if self.observer.wants_appended() {
            appended.reserve(counts.appended as usize);
            let mut outcomes = outcomes.into_iter();
            for (chunk, position) in batch.taken() {
                if let Some((line, _)) = chunk.valid(position) {
                    let outcome = outcomes.next().expect("one outcome per valid line");
                    if let AppendOutcome::Appended { seq } = outcome {
                        appended.push(AppendedEvent {
                            seq,
                            recorded_at,
                            line,
                        });
                    }
                }
            }
        }
        if let Some((first_seq, block)) = &block {
            self.observer.located(*first_seq, block);
        }
        self.observer.appended(&appended)?;
        self.observer.progress(&self.counts, bytes_read);
        // The events borrow from the chunks, which go back to the reader.
        drop(appended);
        self.pool.give(batch.chunks);
        Ok(())
    }
}

/// The thread that runs a rejects sink's [`SyncJob`]s, one at a time, in order;
/// started with the first job (most inputs have no rejects).
#[derive(Default)]
struct SyncLane {
    jobs: Option<SyncSender<SyncJob>>,
    done: Option<Receiver<Result<(), StoreError>>>,
    thread: Option<JoinHandle<()>>,
}

impl SyncLane {
    fn gone() -> StoreError {
        StoreError::ThreadEnded {
            thread: "ingest rejects syncer",
        }
    }

    fn send(&mut self, job: SyncJob) -> Result<(), StoreError> {
        if self.jobs.is_none() {
            // A job per batch in flight at most, and one for the batch
            // being committed, so these never fill.
            let (jobs, job_input) = mpsc::sync_channel::<SyncJob>(IN_FLIGHT_BLOCKS + 1);
            let (done_output, done) = mpsc::sync_channel(IN_FLIGHT_BLOCKS + 1);
            let thread = std::thread::Builder::new()
                .name("penalty-ingest-rejects".into())
                .spawn(move || {
                    for job in job_input {
                        if done_output.send(job()).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|source| StoreError::Spawn {
                    thread: "ingest rejects syncer",
                    source,
                })?;
            self.jobs = Some(jobs);
            self.done = Some(done);
            self.thread = Some(thread);
        }
        match &self.jobs {
            Some(jobs) => jobs.send(job).map_err(|_| SyncLane::gone()),
            None => Err(SyncLane::gone()),
        }
    }

    /// What the oldest job did.
    fn recv(&self) -> Result<(), StoreError> {
        match &self.done {
            Some(done) => done.recv().map_err(|_| SyncLane::gone())?,
            None => Err(SyncLane::gone()),
        }
    }

    /// Lets the thread finish the job it has and end; an error if it
    /// panicked.
    fn finish(mut self) -> Result<(), StoreError> {
        self.join()
    }

    fn join(&mut self) -> Result<(), StoreError> {
        drop(self.jobs.take());
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| SyncLane::gone()),
            None => Ok(()),
        }
    }
}

impl Drop for SyncLane {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// The lines read since the last commit: a run of lines over the chunks it
/// holds. Every chunk's lines are taken in full except perhaps the last
/// one's, whose rest goes to the next batch.
#[derive(Default)]
struct Batch {
    /// Shared: a batch taken for a block keeps its chunks until it is
    /// reported, while the next batch takes the rest of the last one.
    chunks: VecDeque<Arc<Chunk>>,
    /// Lines of the first chunk that an earlier batch took.
    skip: usize,
    /// Lines of the last chunk taken so far.
    taken_in_last: usize,
    /// Lines taken.
    lines: usize,
    /// Bytes taken (the lines and their payloads), to bound a batch.
    bytes: usize,
}

impl Batch {
    /// Adds a chunk whose lines are then taken one by one.
    fn add(&mut self, mut chunk: Chunk, hasher: &IdHasher) {
        assert!(
            self.chunks
                .back()
                .is_none_or(|last| self.taken_in_last == last.lines.len()),
            "a chunk's lines are all taken before the next chunk"
        );
        // Parser threads validate every chunk; this only runs if none did.
        chunk.parse(hasher);
        self.chunks.push_back(Arc::new(chunk));
        self.taken_in_last = 0;
        if self.chunks.len() == 1 {
            self.skip = 0;
        }
    }

    /// Takes lines of the last chunk into the batch, in order, up to the
    /// first that brings it to `max_lines` lines or `max_bytes` bytes (that
    /// line included; at least one line, while any is left); returns how
    /// many.
    ///
    /// Why whole runs: taking lines one by one read three arrays of the
    /// chunk for every line, on the committing thread, which every line
    /// waits for (6% of its time). A chunk's running byte counts
    /// ([`Chunk::ends`], summed by the parser thread) give a run's size at
    /// once.
    fn take(&mut self, max_lines: usize, max_bytes: usize) -> usize {
        let Some(last) = self.chunks.back() else {
            return 0;
        };
        let from = self.taken_in_last;
        let left = last.lines.len().saturating_sub(from);
        let lines = left.min(max_lines.saturating_sub(self.lines).max(1));
        if lines == 0 {
            return 0;
        }
        let before = from.checked_sub(1).map_or(0, |line| last.ends[line]);
        let ends = &last.ends[from..from + lines];
        // The first line that brings the batch to `max_bytes` ends the run.
        let room = max_bytes.saturating_sub(self.bytes);
        let lines = match ends.partition_point(|&end| end - before < room) {
            reaching if reaching < lines => reaching + 1,
            _ => lines,
        };
        self.bytes += ends[lines - 1] - before;
        self.taken_in_last += lines;
        self.lines += lines;
        lines
    }

    /// The lines taken, in order: each as its chunk and its position there.
    fn taken(&self) -> impl Iterator<Item = (&Chunk, usize)> + '_ {
        let last = self.chunks.len().saturating_sub(1);
        self.chunks
            .iter()
            .enumerate()
            .flat_map(move |(number, chunk)| {
                let from = if number == 0 { self.skip } else { 0 };
                let to = if number == last {
                    self.taken_in_last
                } else {
                    chunk.lines.len()
                };
                let chunk: &Chunk = chunk;
                (from..to).map(move |position| (chunk, position))
            })
    }

    /// The lines taken, as a batch of their own, leaving this one with the
    /// untaken rest of the last chunk.
    fn take_lines(&mut self) -> Batch {
        let taken = Batch {
            chunks: self.chunks.clone(),
            skip: self.skip,
            taken_in_last: self.taken_in_last,
            lines: self.lines,
            bytes: self.bytes,
        };
        self.clear();
        taken
    }

    /// Forgets the lines taken, keeping the untaken rest of the last chunk.
    fn clear(&mut self) {
        let untaken = self
            .chunks
            .back()
            .is_some_and(|last| self.taken_in_last < last.lines.len());
        let keep = if untaken {
            self.chunks.pop_back()
        } else {
            None
        };
        self.chunks.clear();
        self.skip = 0;
        if let Some(last) = keep {
            self.skip = self.taken_in_last;
            self.chunks.push_back(last);
        } else {
            self.taken_in_last = 0;
        }
        self.lines = 0;
        self.bytes = 0;
    }
}

/// Lines as the reader splits them, in one buffer, and once a parser thread
/// has validated them, their parsed forms in another: a chunk costs a few
/// allocations instead of several per line.
#[derive(Debug, Default)]
struct Chunk {
    /// The lines as received, back to back.
    raw: Vec<u8>,
    lines: Vec<LineInfo>,
    parsed: ParsedLines,
    /// The keys of each line of `parsed`.
    keys: Vec<Keys>,
    /// Per line once validated: its position in `parsed`, or why it was
    /// rejected. Empty until then.
    status: Vec<Result<usize, Reject>>,
    /// Per line once validated: the bytes of the lines up to and including
    /// it (each line as received and its payload), which bound a batch.
    ends: Vec<usize>,
}

impl Chunk {
    /// Appends line `line_no`, `raw_bytes` long without its line ending, of
    /// which `bytes` were kept: all of them, or for a line too long to be
    /// valid only its first [`REJECT_RAW_PREFIX_BYTES`], for the rejects file.
    fn push_line(&mut self, line_no: u64, bytes: &[u8], raw_bytes: u64) {
        let kept = if raw_bytes > MAX_LINE_BYTES as u64 {
            &bytes[..bytes.len().min(REJECT_RAW_PREFIX_BYTES)]
        } else {
            bytes
        };
        let start = self.raw.len();
        self.raw.extend_from_slice(kept);
        self.lines.push(LineInfo {
            line_no,
            raw: start..self.raw.len(),
            raw_bytes,
        });
    }

    /// An empty chunk with room for as much as a chunk may hold (a
    /// recycled one from `pool` if there is one), so that filling it never
    /// grows a buffer. Why the most, not the likely size: a buffer grown on
    /// reuse is copied into fresh memory, every page of it a page fault,
    /// which is what the pool is there to spare; room never written costs
    /// address space only.
    fn recycled(pool: &ChunkPool) -> Chunk {
        let mut chunk = pool.take().unwrap_or_default();
        chunk.raw.clear();
        chunk.lines.clear();
        chunk.status.clear();
        chunk.raw.reserve(CHUNK_RAW_CAPACITY);
        chunk.lines.reserve(CHUNK_LINES);
        chunk
    }

    /// Whether it holds enough lines to be handed to a parser.
    fn is_full(&self) -> bool {
        self.lines.len() >= CHUNK_LINES || self.raw.len() >= CHUNK_BYTES
    }
}

/// One line of a [`Chunk`].
#[derive(Clone, Debug)]
struct LineInfo {
    line_no: u64,
    /// Where the line lies in `Chunk::raw`: the line as received, or a
    /// prefix of a too-long line.
    raw: Range<usize>,
    /// The full length of the line.
    raw_bytes: u64,
}

impl Chunk {
    /// Validates the lines and computes their keys, once.
    fn parse(&mut self, hasher: &IdHasher) {
        if self.status.len() == self.lines.len() {
            return;
        }
        // The buffers may be a recycled chunk's (see `ChunkPool`): room
        // for the most a chunk holds, as in `Chunk::recycled`.
        let lines = self.lines.len().max(CHUNK_LINES);
        self.parsed
            .clear_with_room(lines, self.raw.len().max(CHUNK_RAW_CAPACITY));
        self.keys.clear();
        self.keys.reserve(lines);
        self.status.clear();
        self.status.reserve(lines);
        self.status.extend(self.lines.iter().map(|line| {
            if line.raw_bytes > MAX_LINE_BYTES as u64 {
                Err(Reject::LineTooLong)
            } else {
                self.parsed.push(&self.raw[line.raw.clone()])
            }
        }));
        // The content hashes four lines at a time, side by side (see
        // `block::content_hashes`), then the rest one by one.
        let parsed = &self.parsed;
        let line = |position: usize| parsed.get(position).expect("a kept line");
        let mut position = 0;
        while position + 4 <= parsed.len() {
            let lines = [0, 1, 2, 3].map(|offset| line(position + offset));
            let contents = content_hashes(lines.map(|line| line.payload.bytes()));
            for (line, content) in lines.iter().zip(contents) {
                self.keys
                    .push(Keys::of(hasher, line.event_id, line.paid_order_id, content));
            }
            position += 4;
        }
        for position in position..parsed.len() {
            self.keys.push(Keys::of_line(hasher, &line(position)));
        }
        self.ends.clear();
        self.ends.reserve(lines);
        let mut end = 0;
        self.ends
            .extend(self.lines.iter().zip(&self.status).map(|(line, status)| {
                end += line.raw.len();
                if let Ok(position) = status {
                    end += parsed.payload_len(*position);
                }
                end
            }));
        assert_eq!(
            self.keys.len(),
            self.parsed.len(),
            "one key per parsed line"
        );
    }

    /// The parsed form and keys of the line at `position`, when it is
    /// valid.
    fn valid(&self, position: usize) -> Option<(ParsedRef<'_>, Keys)> {
        match self.status.get(position) {
            Some(&Ok(parsed)) => Some((
                self.parsed.get(parsed).expect("a validated line is kept"),
                self.keys[parsed],
            )),
            Some(Err(_)) => None,
            None => unreachable!("a batch holds only validated chunks"),
        }
    }

    /// A line's bytes as received (or a too-long line's kept prefix).
    fn raw_of(&self, line: &LineInfo) -> &[u8] {
        &self.raw[line.raw.clone()]
    }
}

/// The reader and parser threads of one input, and the receiving ends of
/// the parsers' channels. Messages are dealt to the parsers in turn and
/// taken back in the same turn, which keeps them in input order.
struct Lanes {
    /// Where reported chunks go back to the reader.
    pool: ChunkPool,
    receivers: Vec<Receiver<Message>>,
    /// The parser whose message comes next.
    turn: usize,
    /// Where the inputs go to the reader, one after the other.
    inputs: Option<SyncSender<Box<dyn Read + Send>>>,
    reader: JoinHandle<()>,
    parsers: Vec<JoinHandle<()>>,
}

impl Lanes {
    fn start(hasher: IdHasher) -> Result<Lanes, StoreError> {
        let spawn_error = |thread| move |source| StoreError::Spawn { thread, source };
        let parser_count = parsers();
        let mut to_parsers = Vec::with_capacity(parser_count);
        let mut receivers = Vec::with_capacity(parser_count);
        let mut parsers = Vec::with_capacity(parser_count);
        for number in 0..parser_count {
            let (to_parser, parser_input) = mpsc::sync_channel(CHANNEL_CHUNKS);
            let (parser_output, receiver) = mpsc::sync_channel(CHANNEL_CHUNKS);
            parsers.push(
                std::thread::Builder::new()
                    .name(format!("penalty-ingest-parser-{number}"))
                    .spawn(move || parse_chunks(parser_input, parser_output, hasher))
                    .map_err(spawn_error("ingest parser"))?,
            );
            to_parsers.push(to_parser);
            receivers.push(receiver);
        }
        let pool = ChunkPool::new();
        let reader_pool = pool.clone();
        let (inputs, reader_inputs) = mpsc::sync_channel(1);
        let reader = std::thread::Builder::new()
            .name("penalty-ingest-reader".into())
            .spawn(move || read_inputs(reader_inputs, RoundRobin::new(to_parsers), reader_pool))
            .map_err(spawn_error("ingest input reader"))?;
        Ok(Lanes {
            receivers,
            turn: 0,
            inputs: Some(inputs),
            reader,
            parsers,
            pool,
        })
    }

    /// Hands the reader its next input, which it reads once it has ended the
    /// one before (with its `End`).
    fn feed(&self, input: Box<dyn Read + Send>) -> Result<(), StoreError> {
        let gone = || StoreError::ThreadEnded {
            thread: "ingest input reader",
        };
        match &self.inputs {
            Some(inputs) => inputs.send(input).map_err(|_| gone()),
            None => Err(gone()),
        }
    }

    /// The next message in input order, or `None` when none came within
    /// `wait`. Threads gone without their last word end the input with an
    /// error.
    fn recv_timeout(&mut self, wait: Duration) -> Option<Message> {
        match self.receivers[self.turn].recv_timeout(wait) {
            Ok(message) => {
                self.turn = (self.turn + 1) % self.receivers.len();
                Some(message)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Message::End(Err(std::io::Error::other(
                "the input reader thread ended unexpectedly",
            )))),
        }
    }

    /// Joins the threads once the reader's `End(Ok)` has come: the reader
    /// has sent its last message and the parsers have passed it on, and it
    /// ends once it has no more input, so the joins are prompt.
    fn join(mut self) {
        drop(self.inputs.take());
        if self.reader.join().is_err() || self.parsers.into_iter().any(|p| p.join().is_err()) {
            tracing::warn!("an input thread panicked after the end of input");
        }
    }
}

/// What [`validate`] found in one input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ValidateCounts {
    /// Lines read.
    pub read: u64,
    /// Lines that are valid events (EVENTS.md), duplicates included.
    pub valid: u64,
    /// Lines that are not.
    pub rejected: u64,
    /// Input bytes read.
    pub bytes_read: u64,
}

/// Reads and validates `input` as [`ingest`] does, on the same reader and
/// parser threads, and stores nothing: there is no log, so no duplicate or
/// conflict is found and nothing is durable. The benchmark runs it to
/// measure the ceiling that reading and validating alone put on ingest's
/// throughput.
pub fn validate(input: impl Read + Send + 'static) -> Result<ValidateCounts, StoreError> {
    let mut lanes = Lanes::start(IdHasher::new())?;
    lanes.feed(Box::new(input))?;
    let mut counts = ValidateCounts::default();
    loop {
        match lanes.recv_timeout(STOP_POLL) {
            Some(Message::Lines { chunk, bytes_read }) => {
                let valid = chunk.status.iter().filter(|status| status.is_ok()).count();
                assert_eq!(
                    chunk.status.len(),
                    chunk.lines.len(),
                    "parser threads validate every line"
                );
                counts.read += chunk.lines.len() as u64;
                counts.valid += valid as u64;
                counts.rejected += (chunk.lines.len() - valid) as u64;
                counts.bytes_read = bytes_read;
            }
            Some(Message::End(Ok(()))) => {
                lanes.join();
                return Ok(counts);
            }
            Some(Message::End(Err(source))) => {
                return Err(StoreError::Input {
                    line: counts.read,
                    source,
                })
            }
            None => {}
        }
    }
}

/// A parser thread: validates the lines of each chunk and passes every
/// message on, in order. Ends with its input, or when the committing thread
/// is gone.
fn parse_chunks(input: Receiver<Message>, output: SyncSender<Message>, hasher: IdHasher) {
    for message in input {
        let message = match message {
            Message::Lines {
                mut chunk,
                bytes_read,
            } => {
                chunk.parse(&hasher);
                Message::Lines { chunk, bytes_read }
            }
            end => end,
        };
        if output.send(message).is_err() {
            return;
        }
    }
}

/// Chunks whose batches were reported, for the reader to fill again.
///
/// Why: a chunk's buffers (its lines, their parsed forms, their keys) are
/// about 1.5 MB; new ones cost about 400 page faults a chunk, each on the
/// thread that first writes them, where a reused chunk's memory is mapped
/// already. With several blocks in flight, the allocator gave freed chunks
/// back to the kernel and took fresh ones, some 20K faults a million
/// orders.
#[derive(Clone)]
struct ChunkPool(Arc<std::sync::Mutex<Vec<Chunk>>>);

/// The most chunks a [`ChunkPool`] keeps: what a few batches in flight
/// hold; beyond, chunks are freed.
const POOL_CHUNKS: usize = 32;

impl ChunkPool {
    fn new() -> ChunkPool {
        ChunkPool(Arc::new(std::sync::Mutex::new(Vec::new())))
    }

    fn take(&self) -> Option<Chunk> {
        self.0.lock().ok()?.pop()
    }

    /// Keeps the chunks of a reported batch that nothing else shares.
    fn give(&self, chunks: impl IntoIterator<Item = Arc<Chunk>>) {
        let Ok(mut pool) = self.0.lock() else {
            return;
        };
        for chunk in chunks {
            if pool.len() >= POOL_CHUNKS {
                return;
            }
            // A chunk the next batch still reads from is given back by
            // that batch.
            if let Ok(chunk) = Arc::try_unwrap(chunk) {
                pool.push(chunk);
            }
        }
    }
}

/// The reader's side of the parser channels: each message goes to the next
/// parser in turn.
struct RoundRobin {
    senders: Vec<SyncSender<Message>>,
    turn: usize,
}

impl RoundRobin {
    fn new(senders: Vec<SyncSender<Message>>) -> RoundRobin {
        assert!(!senders.is_empty(), "at least one parser");
        RoundRobin { senders, turn: 0 }
    }

    /// False when the committing side is gone.
    fn send(&mut self, message: Message) -> bool {
        let sent = self.senders[self.turn].send(message).is_ok();
        self.turn = (self.turn + 1) % self.senders.len();
        sent
    }
}

enum Message {
    /// Complete lines, and the input bytes consumed up to their end.
    Lines { chunk: Chunk, bytes_read: u64 },
    /// The end of the input, or the read error that ended it.
    End(std::io::Result<()>),
}

/// The reader thread: reads the inputs it is handed, one after the other,
/// until there are no more or the receiver is gone.
fn read_inputs(inputs: Receiver<Box<dyn Read + Send>>, mut sender: RoundRobin, pool: ChunkPool) {
    for input in inputs {
        if !read_lines(input, &mut sender, &pool) {
            return;
        }
    }
}

/// Splits `input` into lines and deals them in chunks to the parsers, then
/// its `End`. False when the receiver is gone.
fn read_lines(input: impl Read, sender: &mut RoundRobin, pool: &ChunkPool) -> bool {
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, input);
    let mut splitter = LineSplitter::default();
    let mut chunk = Chunk::recycled(pool);
    let mut bytes_read: u64 = 0;
    let send = |sender: &mut RoundRobin, chunk: &mut Chunk, bytes_read: u64| {
        let chunk = std::mem::replace(chunk, Chunk::recycled(pool));
        sender.send(Message::Lines { chunk, bytes_read })
    };
    loop {
        // An empty buffer means the next `fill_buf` calls `read`, which may
        // block for long on a slow pipe: hand over the complete lines first
        // so that they are committed within the latency bound meanwhile.
        if reader.buffer().is_empty()
            && !chunk.lines.is_empty()
            && !send(sender, &mut chunk, bytes_read)
        {
            return false;
        }
        let consumed = match reader.fill_buf() {
            Ok([]) => {
                splitter.finish_last(&mut chunk);
                if !chunk.lines.is_empty() && !send(sender, &mut chunk, bytes_read) {
                    return false;
                }
                return sender.send(Message::End(Ok(())));
            }
            Ok(buffer) => take_lines(&mut splitter, buffer, &mut chunk),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                // The complete lines before the error still count.
                if !chunk.lines.is_empty() && !send(sender, &mut chunk, bytes_read) {
                    return false;
                }
                return sender.send(Message::End(Err(error)));
            }
        };
        reader.consume(consumed);
        bytes_read += consumed as u64;
        if chunk.is_full() && !send(sender, &mut chunk, bytes_read) {
            return false;
        }
    }
}

/// Moves the lines that `buffer` (what the reader holds) completes into
/// `chunk`, until the chunk is full, and keeps a last, unfinished line in
/// `splitter`; returns how many bytes of `buffer` it used. A line wholly
/// inside `buffer` is copied once, straight into the chunk.
fn take_lines(splitter: &mut LineSplitter, buffer: &[u8], chunk: &mut Chunk) -> usize {
    let mut consumed = 0;
    for end in memchr::memchr_iter(b'\n', buffer) {
        let line = &buffer[consumed..end];
        if splitter.total == 0 {
            splitter.finish_whole(line, chunk);
        } else {
            splitter.push(line);
            splitter.finish(chunk);
        }
        consumed = end + 1;
        if chunk.is_full() {
            return consumed;
        }
    }
    splitter.push(&buffer[consumed..]);
    buffer.len()
}

/// Accumulates one line across reads, keeping at most one byte more than a
/// valid line can have (for a trailing `\r`): a longer line is only counted,
/// never buffered whole.
#[derive(Default)]
struct LineSplitter {
    bytes: Vec<u8>,
    /// The line's length so far, including bytes not kept.
    total: u64,
    last_byte: Option<u8>,
    line_no: u64,
}

/// What the splitter keeps of a line: enough to tell a valid line (up to
/// `MAX_LINE_BYTES` plus a `\r`) from a too-long one.
const KEEP_BYTES: usize = MAX_LINE_BYTES + 1;

impl LineSplitter {
    fn push(&mut self, part: &[u8]) {
        let Some(&last) = part.last() else {
            return;
        };
        self.total += part.len() as u64;
        self.last_byte = Some(last);
        let room = KEEP_BYTES.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&part[..room.min(part.len())]);
    }

    /// Ends the current line (its `\n` was seen) and appends it to `chunk`.
    fn finish(&mut self, chunk: &mut Chunk) {
        self.line_no += 1;
        let complete = self.bytes.len() as u64 == self.total;
        let mut length = self.total;
        if self.last_byte == Some(b'\r') {
            length -= 1;
            if complete {
                self.bytes.pop();
            }
        }
        chunk.push_line(self.line_no, &self.bytes, length);
        self.bytes.clear();
        self.total = 0;
        self.last_byte = None;
    }

    /// [`LineSplitter::push`] of a whole `line` then
    /// [`LineSplitter::finish`], when no part of it was pushed before:
    /// without the copy through `bytes`.
    fn finish_whole(&mut self, line: &[u8], chunk: &mut Chunk) {
        debug_assert_eq!(self.total, 0, "no part of this line was pushed");
        self.line_no += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        chunk.push_line(self.line_no, line, line.len() as u64);
    }

    /// At the end of input: the last line, if it has any bytes (a final line
    /// without `\n` counts; an input ending in `\n` has no extra line).
    fn finish_last(&mut self, chunk: &mut Chunk) {
        if self.total > 0 {
            self.finish(chunk);
        }
    }
}

/// The rejects file's name in the data directory, where the CLI's ingest
/// (unless `--rejects` names another) and the server's `POST /events` keep
/// rejected lines.
pub const REJECTS_FILE: &str = "rejects.jsonl";

/// A ready sink for the rejects file: JSON Lines appended to a file, one
/// object per rejected line, fsynced on [`RejectsSink::sync`].
///
/// ```json
/// {"source":"events.jsonl","line":3,"reason":"invalid_json","hint":"…","raw":"{oops"}
/// ```
///
/// A `line_too_long` record also has `"raw_truncated": true` and
/// `"raw_bytes": N`, and its `raw` is a prefix of the line. `raw` is the line
/// as received, decoded as UTF-8 with invalid bytes replaced.
pub struct RejectsFile {
    path: PathBuf,
    file: BufWriter<SharedFile>,
    source: String,
    unsynced: bool,
    written: u64,
    lang: Lang,
}

#[derive(Serialize)]
struct RejectRecord<'a> {
    source: &'a str,
    line: u64,
    reason: String,
    hint: String,
    /// The line as received: its text when it is UTF-8, else its bytes in
    /// base64, and then `raw_encoding` says so.
    raw: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_encoding: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_truncated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_bytes: Option<u64>,
}

impl RejectsFile {
    /// Opens `path` for appending, creating it if needed. `source` names the
    /// input in each record (a file name, or `-` for stdin).
    pub fn open(path: &Path, source: &str) -> Result<RejectsFile, StoreError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| StoreError::Rejects {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(RejectsFile {
            path: path.to_path_buf(),
            file: BufWriter::new(SharedFile(Arc::new(file))),
            source: source.to_string(),
            unsynced: false,
            written: 0,
            lang: Lang::En,
        })
    }

    /// Words each record's `hint` in `lang` (English unless set); the
    /// `reason` stays the code of EVENTS.md.
    pub fn set_lang(&mut self, lang: Lang) {
        self.lang = lang;
    }

    /// Names the next input, when one rejects file serves several.
    pub fn set_source(&mut self, source: &str) {
        self.source = source.to_string();
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records written through this handle.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends one record (buffered until [`RejectsFile::sync`]).
    pub fn write(
        &mut self,
        line_no: u64,
        reason: &Reject,
        raw: &[u8],
        raw_bytes: u64,
    ) -> Result<(), StoreError> {
        let truncated = (raw.len() as u64) < raw_bytes;
        // Lossy decoding would replace the bytes that are not UTF-8 and lose
        // what was received (issue 20); base64 keeps every byte.
        let (raw, raw_encoding) = match std::str::from_utf8(raw) {
            Ok(text) => (Cow::Borrowed(text), None),
            Err(_) => (Cow::Owned(base64(raw)), Some("base64")),
        };
        let record = RejectRecord {
            source: &self.source,
            line: line_no,
            reason: reason.code(),
            hint: reason.hint_in(self.lang),
            raw,
            raw_encoding,
            raw_truncated: truncated.then_some(true),
            raw_bytes: truncated.then_some(raw_bytes),
        };
        let result = serde_json::to_writer(&mut self.file, &record)
            .map_err(std::io::Error::from)
            .and_then(|()| self.file.write_all(b"\n"));
        result.map_err(|source| StoreError::Rejects {
            path: self.path.clone(),
            source,
        })?;
        self.unsynced = true;
        self.written += 1;
        Ok(())
    }

    /// Flushes and fsyncs what was written, if anything was.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        match self.sync_job()? {
            Some(job) => job(),
            None => Ok(()),
        }
    }

    /// Flushes what was written to the file and returns the fsync that
    /// makes it durable, to run on any thread; `None` if nothing was
    /// written since the last.
    pub fn sync_job(&mut self) -> Result<Option<SyncJob>, StoreError> {
        if !self.unsynced {
            return Ok(None);
        }
        self.file.flush().map_err(|source| StoreError::Rejects {
            path: self.path.clone(),
            source,
        })?;
        self.unsynced = false;
        let file = Arc::clone(&self.file.get_ref().0);
        let path = self.path.clone();
        Ok(Some(Box::new(move || {
            file.sync_data()
                .map_err(|source| StoreError::Rejects { path, source })
        })))
    }
}

/// Standard base64 (RFC 4648, with padding) of `bytes`.
fn base64(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let word = group
            .iter()
            .enumerate()
            .fold(0u32, |word, (i, &b)| word | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(DIGITS[(word >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A file written through a shared handle, so that its fsync can run on
/// another thread while this one writes on.
struct SharedFile(Arc<File>);

impl Write for SharedFile {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

impl RejectsSink for RejectsFile {
    fn rejected(
        &mut self,
        line_no: u64,
        reason: &Reject,
        raw: &[u8],
        raw_bytes: u64,
    ) -> Result<(), StoreError> {
        self.write(line_no, reason, raw, raw_bytes)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        RejectsFile::sync(self)
    }

    fn sync_job(&mut self) -> Result<Option<SyncJob>, StoreError> {
        RejectsFile::sync_job(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The test vectors of RFC 4648, section 10.
    #[test]
    fn base64_is_that_of_rfc_4648() {
        for (bytes, text) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(bytes.as_bytes()), text);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    fn split(input: &[u8]) -> Vec<(u64, Vec<u8>, u64)> {
        let mut splitter = LineSplitter::default();
        let mut chunk = Chunk::default();
        let mut rest = input;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            splitter.push(&rest[..end]);
            splitter.finish(&mut chunk);
            rest = &rest[end + 1..];
        }
        splitter.push(rest);
        splitter.finish_last(&mut chunk);
        chunk
            .lines
            .iter()
            .map(|line| {
                (
                    line.line_no,
                    chunk.raw[line.raw.clone()].to_vec(),
                    line.raw_bytes,
                )
            })
            .collect()
    }

    /// The one line `splitter` holds, ended and validated as a parser
    /// thread would.
    fn finish_one(splitter: &mut LineSplitter) -> (Chunk, Result<(), Reject>) {
        let mut chunk = Chunk::default();
        splitter.finish(&mut chunk);
        chunk.parse(&IdHasher::new());
        let result = chunk.status[0].map(|_| ());
        (chunk, result)
    }

    proptest! {
        /// Runs of lines end where taking lines one by one (the way before
        /// `Batch::take`) ended them: at the line that brings a batch to
        /// its line or byte bound, over chunks of lines of any lengths,
        /// valid or not.
        #[test]
        fn batches_end_where_line_by_line_ended_them(
            chunks in proptest::collection::vec(
                proptest::collection::vec((0usize..300, proptest::bool::ANY), 0..40),
                1..6,
            ),
            max_lines in 1usize..50,
            max_bytes in 1usize..6000,
        ) {
            let hasher = IdHasher::new();
            let mut number = 0u32;
            let chunks: Vec<Chunk> = chunks.iter().map(|lines| {
                let mut chunk = Chunk::default();
                for &(padding, valid) in lines {
                    number += 1;
                    let line = if valid {
                        format!(
                            r#"{{"event_id":"00000000-0000-4000-8000-{number:012x}","type":"deposit_topped_up","at":"2026-01-01T00:00:00Z","shop_id":"S{}","amount_fen":1}}"#,
                            "1".repeat(padding % 60 + 1)
                        )
                    } else {
                        "x".repeat(padding)
                    };
                    chunk.push_line(u64::from(number), line.as_bytes(), line.len() as u64);
                }
                chunk.parse(&hasher);
                chunk
            }).collect();

            // Line by line: each line's bytes, a batch ended by the line
            // that reaches a bound.
            let mut expected = Vec::new();
            let (mut lines, mut bytes) = (0, 0);
            for chunk in &chunks {
                for (position, line) in chunk.lines.iter().enumerate() {
                    lines += 1;
                    bytes += line.raw.len();
                    if let Ok(parsed) = chunk.status[position] {
                        bytes += chunk.parsed.payload_len(parsed);
                    }
                    if lines >= max_lines || bytes >= max_bytes {
                        expected.push((lines, bytes));
                        (lines, bytes) = (0, 0);
                    }
                }
            }

            let mut batch = Batch::default();
            let mut actual = Vec::new();
            for chunk in chunks {
                batch.add(chunk, &hasher);
                while batch.take(max_lines, max_bytes) > 0 {
                    if batch.lines >= max_lines || batch.bytes >= max_bytes {
                        actual.push((batch.lines, batch.bytes));
                        let taken = batch.take_lines();
                        prop_assert_eq!(taken.taken().count(), taken.lines);
                    }
                }
            }
            prop_assert_eq!(actual, expected);
            prop_assert_eq!((batch.lines, batch.bytes), (lines, bytes));
        }

        /// The reader's way (whole lines at once from whatever a read
        /// returned, chunk by chunk) splits as line by line does, wherever
        /// the reads end: across `\r\n`, inside long lines, at chunk limits.
        #[test]
        fn take_lines_splits_as_line_by_line_does(
            pieces in proptest::collection::vec(
                prop_oneof![
                    8 => proptest::collection::vec(
                        prop_oneof![8 => Just(b'x'), 1 => Just(b'\n'), 1 => Just(b'\r')],
                        0..12,
                    ),
                    1 => (MAX_LINE_BYTES - 2..MAX_LINE_BYTES + 3).prop_map(|n| vec![b'y'; n]),
                ],
                0..12,
            ),
            read_bytes in 1usize..9000,
        ) {
            let input: Vec<u8> = pieces.concat();
            let mut splitter = LineSplitter::default();
            let mut chunks = vec![Chunk::default()];
            let mut rest = &input[..];
            while !rest.is_empty() {
                let buffer = &rest[..read_bytes.min(rest.len())];
                let chunk = chunks.last_mut().expect("a chunk");
                let used = take_lines(&mut splitter, buffer, chunk);
                prop_assert!(used > 0);
                if chunk.is_full() {
                    chunks.push(Chunk::default());
                }
                rest = &rest[used..];
            }
            splitter.finish_last(chunks.last_mut().expect("a chunk"));
            let taken: Vec<(u64, Vec<u8>, u64)> = chunks
                .iter()
                .flat_map(|chunk| {
                    chunk.lines.iter().map(|line| {
                        (line.line_no, chunk.raw[line.raw.clone()].to_vec(), line.raw_bytes)
                    })
                })
                .collect();
            prop_assert_eq!(taken, split(&input));
        }
    }

    #[test]
    fn splits_lines_like_events_md_says() {
        assert!(split(b"").is_empty());
        assert_eq!(split(b"\n"), vec![(1, vec![], 0)]);
        assert_eq!(
            split(b"a\r\nb"),
            vec![(1, b"a".to_vec(), 1), (2, b"b".to_vec(), 1)]
        );
        assert_eq!(split(b"a\n\n"), vec![(1, b"a".to_vec(), 1), (2, vec![], 0)]);
    }

    #[test]
    fn a_line_of_exactly_the_limit_plus_cr_is_not_too_long() {
        let mut line = vec![b' '; MAX_LINE_BYTES];
        line.push(b'\r');
        let mut splitter = LineSplitter::default();
        splitter.push(&line);
        let (chunk, result) = finish_one(&mut splitter);
        assert_eq!(chunk.lines[0].raw_bytes, MAX_LINE_BYTES as u64);
        assert_eq!(result, Err(Reject::InvalidJson));

        line.insert(0, b' ');
        splitter.push(&line);
        let (chunk, result) = finish_one(&mut splitter);
        assert_eq!(result, Err(Reject::LineTooLong));
        assert_eq!(chunk.raw.len(), REJECT_RAW_PREFIX_BYTES);
        assert_eq!(chunk.lines[0].raw_bytes, MAX_LINE_BYTES as u64 + 1);
    }

    #[test]
    fn a_huge_line_pushed_in_pieces_keeps_a_bounded_buffer() {
        let piece = vec![b'x'; 1 << 20];
        let mut splitter = LineSplitter::default();
        for _ in 0..20 {
            splitter.push(&piece);
            assert!(splitter.bytes.len() <= KEEP_BYTES);
        }
        let (chunk, result) = finish_one(&mut splitter);
        assert_eq!(chunk.lines[0].raw_bytes, 20 << 20);
        assert_eq!(result, Err(Reject::LineTooLong));
    }

    /// A recycled chunk filled with more than it held before writes into
    /// the same buffers: none is grown, which would copy it into fresh
    /// memory (page faults) and defeat the pool.
    #[test]
    fn a_recycled_chunk_keeps_its_buffers_however_full_it_gets() {
        let hasher = IdHasher::new();
        let pool = ChunkPool::new();
        let short = r#"{"event_id":"00000000-0000-4000-8000-000000000001","type":"deposit_topped_up","at":"2026-01-01T00:00:00Z","shop_id":"S1","amount_fen":1}"#;
        let mut first = Chunk::recycled(&pool);
        first.push_line(1, short.as_bytes(), short.len() as u64);
        first.parse(&hasher);
        let buffers = |chunk: &Chunk| {
            (
                chunk.raw.as_ptr(),
                chunk.lines.as_ptr(),
                chunk.keys.as_ptr(),
                chunk.status.as_ptr(),
            )
        };
        let before = buffers(&first);
        pool.give([Arc::new(first)]);

        // Then as full as a chunk gets: lines as long as valid lines may
        // be, until it is handed over.
        let mut second = Chunk::recycled(&pool);
        let padding = "x".repeat(MAX_LINE_BYTES - short.len() - 20);
        let long = short.replace(r#""S1""#, &format!(r#""S1","reason":"{padding}""#));
        assert!(long.len() <= MAX_LINE_BYTES);
        let mut line_no = 0;
        while !second.is_full() {
            line_no += 1;
            second.push_line(line_no, long.as_bytes(), long.len() as u64);
        }
        second.parse(&hasher);
        assert!(second.raw.len() >= CHUNK_BYTES);
        assert_eq!(buffers(&second), before, "the same buffers, none grown");
        assert_eq!(second.status.len(), line_no as usize);
    }

    /// A chunk the reader takes from the pool, with its buffers full of an
    /// earlier chunk's lines, parses exactly as a new chunk does.
    #[test]
    fn a_recycled_chunk_parses_as_a_new_one() {
        let hasher = IdHasher::new();
        let line = |n: u32, kind: &str| {
            format!(
                r#"{{"event_id":"00000000-0000-4000-8000-{n:012x}","type":"{kind}","at":"2026-01-0{}T00:00:00Z","shop_id":"S{n}","amount_fen":{}}}"#,
                n % 9 + 1,
                n + 1
            )
        };
        let fill = |chunk: &mut Chunk, lines: &[String]| {
            for (number, line) in lines.iter().enumerate() {
                chunk.push_line(number as u64 + 1, line.as_bytes(), line.len() as u64);
            }
            chunk.parse(&hasher);
        };
        let pool = ChunkPool::new();
        let mut earlier = Chunk::recycled(&pool);
        let earlier_lines: Vec<String> = (0..200).map(|n| line(n, "deposit_topped_up")).collect();
        fill(&mut earlier, &earlier_lines);
        let capacity = earlier.raw.capacity();
        pool.give([Arc::new(earlier)]);

        let lines = vec![
            line(7, "deposit_topped_up"),
            "{oops".to_string(),
            line(8, "no_such_type"),
            line(9, "deposit_topped_up"),
        ];
        let mut recycled = Chunk::recycled(&pool);
        assert!(recycled.raw.capacity() >= capacity, "the pool's chunk");
        assert!(recycled.lines.is_empty() && recycled.status.is_empty());
        fill(&mut recycled, &lines);
        let mut fresh = Chunk::default();
        fill(&mut fresh, &lines);
        assert_eq!(recycled.status, fresh.status);
        assert_eq!(recycled.parsed.len(), 2);
        for position in 0..lines.len() {
            let (recycled, fresh) = (recycled.valid(position), fresh.valid(position));
            assert_eq!(recycled.is_some(), fresh.is_some());
            if let (Some((a, a_keys)), Some((b, b_keys))) = (recycled, fresh) {
                assert_eq!(a.event_id, b.event_id);
                assert_eq!(a.payload.bytes(), b.payload.bytes());
                assert_eq!(a.paid_order_id, b.paid_order_id);
                assert_eq!(a_keys, b_keys);
            }
        }
    }
}

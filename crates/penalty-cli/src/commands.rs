//! What each command does: open the store, ask the core, hand values to the
//! renderers.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use penalty_core::csv::CsvRow;
use penalty_core::labels::{Lang, Phrase};
use penalty_core::{Ledger, OrderStatus, Policy, QueryError, UnixNs, Within};
use penalty_store::ingest::{
    AppendedEvent, IngestCounts, IngestObserver, IngestOptions, RejectsFile,
};
use penalty_store::projection::{self, BackgroundSnapshots, Follower, PartQuery};
use penalty_store::reader::LogReader;
use penalty_store::snapshot::Snapshot;
use penalty_store::{EventLog, StoreError};
use serde::Serialize;

use crate::cli::*;
use crate::inputs::{ingest_summary, open_inputs};
use crate::output::{json_line, print, print_text};
use crate::render;

/// A low guess of an event line's size, to size the idempotency index from
/// a file's size: typical lines are 150 to 250 bytes, and a guess too high
/// only leaves some rehashing to do.
const ESTIMATED_LINE_BYTES: u64 = 160;

/// An unknown shop or order: exit code 3 (CLI.md).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotFound(pub String);

/// An unknown shop or order, in `lang`.
fn not_found(error: &QueryError, lang: Lang) -> NotFound {
    NotFound(error.message(lang))
}

/// Runs the command, its human output in `lang`; JSON output is the same
/// in every language (CLI.md), so every report printed as JSON is asked
/// for in English, whose sentences the JSON has always carried.
pub fn run(cli: Cli, lang: Lang) -> anyhow::Result<ExitCode> {
    let policy = load_policy(cli.policy.as_deref(), lang)?;
    match cli.command {
        Command::Ingest(args) if args.cluster.is_some() => {
            crate::cluster::ingest(&cli.db, &policy, args, lang)
        }
        Command::Ingest(args) => ingest(&cli.db, &policy, cli.no_wait, args, lang),
        Command::Cluster(command) => crate::cluster::run(&cli.db, &policy, command, lang),
        Command::Shop(args) => {
            let (ledger, as_of) = part_ledger(
                &cli.db,
                &policy,
                (&args.query).into(),
                PartQuery::Shop(&args.shop_id),
                lang,
            )?;
            let started = std::time::Instant::now();
            let report = ledger
                .shop_report(&args.shop_id, as_of, true)
                .map_err(|e| not_found(&e, lang))?;
            tracing::debug!(target: projection::TIMING, us = projection::micros(started), "report made");
            if args.query.json {
                print(&json_line(&report)?)?;
            } else if args.summary {
                print_text(&render::shop_summary(&report, lang))?;
            } else {
                let mut report = report;
                let page = ListPage {
                    offset: args.offset,
                    limit: args.limit,
                };
                let mut hidden = 0;
                if let Some(deductions) = report.deductions.as_mut() {
                    hidden += page.keep(deductions);
                }
                hidden += page.keep(&mut report.banned_products);
                hidden += page.keep(&mut report.closure_review);
                let mut text = render::shop(&report, lang);
                if hidden > 0 {
                    text += &format!(
                        "\n{}\n",
                        Phrase::MoreRowsHidden
                            .fill(lang, &[&hidden, &args.limit, &(args.offset + args.limit)])
                    );
                }
                print_text(&text)?;
            }
            // The process ends now: the operating system takes the
            // ledger's memory back faster than freeing it piece by piece.
            std::mem::forget(ledger);
            Ok(ExitCode::SUCCESS)
        }
        Command::Order(args) => {
            let (ledger, as_of) = part_ledger(
                &cli.db,
                &policy,
                (&args.query).into(),
                PartQuery::Order(&args.order_id),
                lang,
            )?;
            let sentences = if args.query.json { Lang::En } else { lang };
            let started = std::time::Instant::now();
            let report = ledger
                .order_report_in(&args.order_id, as_of, sentences)
                .map_err(|error| {
                    // The core's text names no flag; for an order paid
                    // later, say which one sets the instant.
                    let message = error.message(lang);
                    NotFound(match &error {
                        QueryError::UnknownOrder {
                            paid_at: Some(_), ..
                        } => Phrase::AsOfSetsTheInstant.fill(lang, &[&message]),
                        _ => message,
                    })
                })?;
            tracing::debug!(target: projection::TIMING, us = projection::micros(started), "report made");
            if args.query.json {
                print(&json_line(&report)?)?;
            } else {
                print_text(&render::order(&report, lang))?;
            }
            // As for `shop`: the process ends now.
            std::mem::forget(ledger);
            Ok(ExitCode::SUCCESS)
        }
        Command::AtRisk(args) => {
            let within =
                Within::parse(&args.within).map_err(|error| BadFlag::new("--within", error))?;
            let (ledger, as_of) = shop_or_whole_ledger(
                &cli.db,
                &policy,
                (&args.query).into(),
                args.shop.as_deref(),
                lang,
            )?;
            let report = ledger
                .at_risk(args.shop.as_deref(), as_of, within)
                .map_err(|e| not_found(&e, lang))?;
            if args.query.json {
                print(&json_line(&report)?)?;
            } else {
                print_text(&render::at_risk(&report, args.offset, args.limit, lang))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Notices(args) => {
            let (ledger, as_of) = part_ledger(
                &cli.db,
                &policy,
                (&args.query).into(),
                PartQuery::Shop(&args.shop_id),
                lang,
            )?;
            let notices = ledger
                .notices_in(
                    &args.shop_id,
                    as_of,
                    args.after.as_deref(),
                    usize::from(args.limit),
                    if args.query.json { Lang::En } else { lang },
                )
                .map_err(|e| not_found(&e, lang))?;
            if args.query.json {
                let mut text = String::new();
                for notice in &notices {
                    text += &json_line(notice)?;
                }
                print(&text)?;
            } else {
                print_text(&render::notices(
                    &args.shop_id,
                    &notices,
                    usize::from(args.limit),
                    lang,
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Shops(args) => {
            let (ledger, as_of) = query_ledger(&cli.db, &policy, &args.query, lang)?;
            let ranking = penalty_core::ShopRanking {
                sort: args.sort,
                min_orders: args.min_orders,
            };
            let mut summaries = ranking.apply(ledger.shop_summaries(as_of));
            if let Some(top) = args.top {
                summaries.truncate(top);
            }
            if args.query.json {
                let mut text = String::new();
                for summary in &summaries {
                    text += &json_line(summary)?;
                }
                print(&text)?;
            } else {
                print_text(&render::shops(&summaries, args.offset, args.limit, lang))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Postings(args) => {
            let (ledger, as_of) = part_ledger(
                &cli.db,
                &policy,
                (&args.query).into(),
                PartQuery::Shop(&args.shop_id),
                lang,
            )?;
            let causes = if args.query.json { Lang::En } else { lang };
            let report = ledger
                .postings_in(&args.shop_id, as_of, causes)
                .map_err(|e| not_found(&e, lang))?;
            if args.query.json {
                print(&json_line(&report)?)?;
            } else {
                print_text(&render::postings(&report, args.offset, args.limit, lang))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(args) => {
            if args.json {
                print(&json_line(&PolicyOutput::of(&policy))?)?;
            } else {
                print_text(&render::policy(
                    &policy,
                    &policy.utc_offset.to_string(),
                    lang,
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(ExportCommand::Orders(args)) => export_orders(&cli.db, &policy, args, lang),
        Command::Export(ExportCommand::Postings(args)) => {
            export_postings(&cli.db, &policy, args, lang)
        }
        Command::Replay(args) => replay(&cli.db, &policy, args, lang),
        Command::Audit(args) => audit(&cli.db, &policy, args, lang),
        Command::Recover(args) => recover(&cli.db, &policy, cli.no_wait, args, lang),
        Command::Gen(args) => gen(args, lang),
        Command::Serve(args) => {
            // Everything that can be refused (the address, the tokens file,
            // the data directory) is, before the banner says it listens.
            let options = penalty_server::ServeOptions {
                db: cli.db.clone(),
                policy,
                addr: args.addr,
                tokens: args.access.tokens,
                allowed_hosts: args.access.allowed_hosts,
            };
            // Like every writer, the server waits its turn for the data
            // directory, unless `--no-wait`.
            let mut on_wait = |locked: &StoreError| waiting_message(&cli.db, locked, lang);
            let on_wait: Option<&mut dyn FnMut(&StoreError)> = if cli.no_wait {
                None
            } else {
                Some(&mut on_wait)
            };
            let server = penalty_server::Server::bind_waiting(options, on_wait)?;
            eprintln!("{}", Phrase::Serving.fill(lang, &[&server.local_addr()]));
            server.run()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load_policy(path: Option<&Path>, lang: Lang) -> anyhow::Result<Policy> {
    let Some(path) = path else {
        return Ok(Policy::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| Phrase::CannotReadPolicy.fill(lang, &[&path.display()]))?;
    Policy::from_json(&text).with_context(|| Phrase::PolicyNotValid.fill(lang, &[&path.display()]))
}

/// `--as-of` (default: the wall clock, [`penalty_store::clock`]) and
/// `--known-at`.
fn instants(
    policy: &Policy,
    as_of: Option<&str>,
    known_at: Option<&str>,
) -> anyhow::Result<(UnixNs, Option<UnixNs>)> {
    let as_of = match as_of {
        Some(text) => parse_instant(text, policy, "--as-of")?,
        None => penalty_store::clock::now(),
    };
    let known_at = known_at
        .map(|text| parse_instant(text, policy, "--known-at"))
        .transpose()?;
    Ok((as_of, known_at))
}

/// An instant given as `flag`, by the core's one rule
/// ([`UnixNs::parse_asked`], which the server's `as_of` uses too).
fn parse_instant(text: &str, policy: &Policy, flag: &'static str) -> anyhow::Result<UnixNs> {
    UnixNs::parse_asked(text, policy.utc_offset).map_err(|error| BadFlag::new(flag, error).into())
}

/// A flag's value its parser refused: the flag, then the parser's error,
/// which `main` words in the language of `--lang` (`--as-of `x` is not an
/// instant; …`).
#[derive(Debug)]
pub struct BadFlag {
    /// The flag, such as `--as-of`.
    pub flag: &'static str,
    /// Why its value was refused.
    pub error: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl BadFlag {
    fn new(flag: &'static str, error: impl std::error::Error + Send + Sync + 'static) -> BadFlag {
        BadFlag {
            flag,
            error: Box::new(error),
        }
    }
}

impl std::fmt::Display for BadFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.flag, self.error)
    }
}

impl std::error::Error for BadFlag {}

/// Opens the log for writing, taking the directory lock: waiting for it,
/// with a message, while another writer holds it, unless `no_wait`.
fn open_writer(db: &Path, no_wait: bool, lang: Lang) -> anyhow::Result<EventLog> {
    if no_wait {
        return EventLog::open(db).map_err(anyhow::Error::from);
    }
    EventLog::open_waiting(db, &mut |locked| waiting_message(db, locked, lang))
        .map_err(anyhow::Error::from)
}

/// What a writer (`ingest`, `recover`, `serve`) says while it waits for the
/// data directory another writer holds.
fn waiting_message(db: &Path, locked: &StoreError, lang: Lang) {
    let holder = match locked {
        StoreError::Locked { holder, .. } => holder.clone(),
        other => other.to_string(),
    };
    eprintln!(
        "penalty: {}",
        Phrase::Waiting.fill(lang, &[&db.display(), &holder])
    );
}

/// Opens the log for reading: no lock, nothing created (a missing
/// directory is an error naming it).
fn open_reader(db: &Path) -> anyhow::Result<LogReader> {
    LogReader::open(db).map_err(anyhow::Error::from)
}

/// Says on stderr what a read found damaged that its answer does not rest
/// on.
fn warn_all(warnings: &[String], lang: Lang) {
    for warning in warnings {
        eprintln!("penalty: {}", Phrase::Warning.fill(lang, &[warning]));
    }
}

/// The ledger to answer a query from, and the instant to ask at.
fn query_ledger(
    db: &Path,
    policy: &Policy,
    args: &QueryArgs,
    lang: Lang,
) -> anyhow::Result<(Ledger, UnixNs)> {
    ledger_at(
        db,
        policy,
        args.as_of.as_deref(),
        args.known_at.as_deref(),
        lang,
    )
}

/// The ledger to answer one shop or order from (`shop`, `order`,
/// `postings`, `notices`, `at-risk --shop`): only its partition's part of
/// the snapshot and tail (see `projection::open_part`), which answers it
/// exactly as the whole ledger does; the whole ledger when there is no
/// partitioned snapshot yet or the query is `--known-at`.
fn part_ledger(
    db: &Path,
    policy: &Policy,
    asked: Asked<'_>,
    query: PartQuery<'_>,
    lang: Lang,
) -> anyhow::Result<(Ledger, UnixNs)> {
    if asked.known_at.is_none() {
        let (as_of, _) = instants(policy, asked.as_of, None)?;
        let started = std::time::Instant::now();
        let reader = open_reader(db)?;
        tracing::debug!(target: projection::TIMING, us = projection::micros(started), "reader opened");
        if let Some(opened) = projection::open_part(&reader, policy, query)? {
            warn_all(&opened.warnings, lang);
            return Ok((opened.projection.ledger, as_of));
        }
    }
    ledger_at(db, policy, asked.as_of, asked.known_at, lang)
}

/// The ledger for a question about one shop when `shop_id` is given (its
/// partition, as [`part_ledger`] reads it), else the whole ledger.
fn shop_or_whole_ledger(
    db: &Path,
    policy: &Policy,
    asked: Asked<'_>,
    shop_id: Option<&str>,
    lang: Lang,
) -> anyhow::Result<(Ledger, UnixNs)> {
    match shop_id {
        Some(shop_id) => part_ledger(db, policy, asked, PartQuery::Shop(shop_id), lang),
        None => ledger_at(db, policy, asked.as_of, asked.known_at, lang),
    }
}

/// The instants a query names: `--as-of` and `--known-at`, as given.
#[derive(Clone, Copy)]
struct Asked<'a> {
    as_of: Option<&'a str>,
    known_at: Option<&'a str>,
}

impl<'a> From<&'a QueryArgs> for Asked<'a> {
    fn from(args: &'a QueryArgs) -> Self {
        Asked {
            as_of: args.as_of.as_deref(),
            known_at: args.known_at.as_deref(),
        }
    }
}

impl<'a> From<&'a ExportQuery> for Asked<'a> {
    fn from(args: &'a ExportQuery) -> Self {
        Asked {
            as_of: args.as_of.as_deref(),
            known_at: args.known_at.as_deref(),
        }
    }
}

fn ledger_at(
    db: &Path,
    policy: &Policy,
    as_of: Option<&str>,
    known_at: Option<&str>,
    lang: Lang,
) -> anyhow::Result<(Ledger, UnixNs)> {
    let (as_of, known_at) = instants(policy, as_of, known_at)?;
    let reader = open_reader(db)?;
    if let Some(damage) = &reader.head().damage {
        if known_at.is_some() {
            warn_all(std::slice::from_ref(damage), lang);
        }
    }
    let ledger = match known_at {
        Some(known_at) => {
            projection::replay_read(&reader, policy, Some(known_at))?
                .0
                .ledger
        }
        None => {
            let opened = projection::open_read(&reader, policy, true, true)?;
            warn_all(&opened.warnings, lang);
            opened.projection.ledger
        }
    };
    Ok((ledger, as_of))
}

/// Shows ingest's progress: the bar, and with `--progress-jsonl` a line of
/// counts per block on stderr. The rejects go straight to the rejects file.
struct ProgressDisplay {
    bar: Option<ProgressBar>,
    base: IngestCounts,
    /// The counts of every input so far, as of the last durable block.
    committed: IngestCounts,
    progress_jsonl: bool,
    /// Folds the appended events beside the appends, for the snapshots
    /// written at the end.
    follower: Option<Follower>,
    /// The language of the bar's counts.
    lang: Lang,
}

impl IngestObserver for ProgressDisplay {
    fn wants_appended(&self) -> bool {
        self.follower.is_some()
    }

    fn located(&mut self, first_seq: u64, block: &penalty_store::block::Locator) {
        if let Some(follower) = &mut self.follower {
            follower.located(first_seq, *block);
        }
    }

    fn appended(&mut self, events: &[AppendedEvent<'_>]) -> Result<(), StoreError> {
        if let Some(follower) = &mut self.follower {
            follower.push(events);
        }
        Ok(())
    }

    fn progress(&mut self, counts: &IngestCounts, bytes_read: u64) {
        let mut total = self.base;
        total.add(counts);
        self.committed = total;
        if self.progress_jsonl {
            if let Ok(line) = json_line(&total) {
                eprint!("{line}");
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_position(bytes_read);
            bar.set_message(Phrase::IngestProgress.fill(
                self.lang,
                &[
                    &total.read,
                    &total.appended,
                    &total.duplicates,
                    &total.rejected,
                ],
            ));
        }
    }
}

fn ingest(
    db: &Path,
    policy: &Policy,
    no_wait: bool,
    args: IngestArgs,
    lang: Lang,
) -> anyhow::Result<ExitCode> {
    let inputs = open_inputs(&args.files, lang)?;
    let mut log = open_writer(db, no_wait, lang)?;
    // The projection of what the log holds now, opened beside the appends
    // and following them; without it (it could not start) the end of the
    // ingest opens the projection as a reader would.
    let expected_events =
        inputs.iter().filter_map(|(_, size, _)| *size).sum::<u64>() / ESTIMATED_LINE_BYTES;
    // Beside a stream (standard input, fed by a producer for as long as it
    // runs), the follower also snapshots now and then, so that readers fold
    // a short tail; a file's ingest ends soon and snapshots at its end.
    let streaming = inputs.iter().any(|(_, size, _)| size.is_none());
    let follower = LogReader::open(db)
        .and_then(|reader| {
            if streaming {
                Follower::start_snapshotting(
                    reader,
                    policy.clone(),
                    expected_events,
                    BackgroundSnapshots::default(),
                )
            } else {
                Follower::start(reader, policy.clone(), expected_events)
            }
        })
        .map_err(|error| tracing::info!(%error, "the projection does not follow this ingest"))
        .ok();
    let rejects_path = args
        .rejects
        .clone()
        .unwrap_or_else(|| db.join(penalty_store::ingest::REJECTS_FILE));
    let mut rejects = RejectsFile::open(&rejects_path, "-")?;
    rejects.set_lang(lang);

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // A second Ctrl-C while committing is ignored: the first already asks
        // for a clean stop, and killing mid-commit would gain nothing.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let options = IngestOptions {
        stop: stop.clone(),
        ..IngestOptions::default()
    };
    let show_bar = !args.quiet && io::stderr().is_terminal();
    let mut display = ProgressDisplay {
        bar: None,
        base: IngestCounts::default(),
        committed: IngestCounts::default(),
        progress_jsonl: args.progress_jsonl,
        follower,
        lang,
    };
    let mut total = IngestCounts::default();
    for (name, size, reader) in inputs {
        rejects.set_source(&name);
        display.base = total;
        display.bar = show_bar.then(|| progress_bar(&name, size));
        if let Some(size) = size {
            // Sizing the idempotency index from the file's size spares a
            // large ingest the rehashing of millions of entries as it fills.
            log.reserve(size / ESTIMATED_LINE_BYTES)
                .with_context(|| Phrase::PreparingToIngest.fill(lang, &[&name]))?;
        }
        display.committed = total;
        // Appends wait for the follower's projection (loaded beside the
        // idempotency index above): blocks appended before it could index
        // them would be read whole by every `order` and `shop` meanwhile.
        if let Some(follower) = &mut display.follower {
            follower.wait_loaded();
        }
        let seq_before = log.last_seq()?;
        let counts = match penalty_store::ingest::ingest(
            &mut log,
            reader,
            &options,
            &mut rejects,
            &mut display,
        ) {
            Ok(counts) => counts,
            Err(error) => {
                // Blocks being written when the error came may have reached
                // the log without being reported (issue 20: "0 appended"
                // with 8,145 committed). The log, opened again as the next
                // reader will open it, says how many events this input
                // really added.
                drop(log);
                let in_log = EventLog::open(db)
                    .and_then(|log| log.last_seq())
                    .ok()
                    .map(|seq| seq.saturating_sub(seq_before));
                let message = ingest_failure(&name, &total, &display.committed, in_log, lang);
                return Err(anyhow::Error::new(error).context(message));
            }
        };
        if let Some(bar) = display.bar.take() {
            bar.finish_and_clear();
        }
        total.add(&counts);
        if stop.load(Ordering::SeqCst) {
            break;
        }
    }
    let rejects_written = rejects.written();
    // The events are durable; the projections are derived data, folded in
    // and snapshotted now (the whole and its partitions), so that no query
    // pays for folding what this ingest appended.
    // The follower folded them as they became durable; should it have
    // stopped or missed any, they are folded now from the log.
    if total.appended > 0 {
        let last_seq = log.last_seq()?;
        // No append follows: the snapshots' encodings get its memory.
        log.release_index();
        let followed = display.follower.take().map(Follower::finish);
        let current = match followed {
            Some(Ok(projection)) if projection.seq == last_seq => projection,
            followed => {
                if let Some(Err(error)) = followed {
                    tracing::info!(%error, "the projection did not follow the ingest");
                }
                projection::open(&log, policy, false)?.0
            }
        };
        current
            .save(&log)
            .context("saving the projection checkpoint")?;
        // The process ends soon: the operating system takes the ledger's
        // memory back faster than freeing it piece by piece.
        std::mem::forget(current);
    }
    let interrupted = stop.load(Ordering::SeqCst);
    if args.json {
        print(&json_line(&total)?)?;
    } else {
        let mut text = ingest_summary(&total, lang);
        if rejects_written > 0 {
            text += &Phrase::RejectsAt.fill(lang, &[&rejects_path.display()]);
            text.push('\n');
        }
        if interrupted {
            text += Phrase::Interrupted.text(lang);
            text.push('\n');
        }
        print_text(&text)?;
    }
    Ok(if interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// What an ingest that failed on input `name` leaves behind: `before` are
/// the counts of the inputs before it, `reported` those reported durable up
/// to the error, and `in_log` the events the log holds from `name` (`None`
/// when the log could not be opened again to count them).
fn ingest_failure(
    name: &str,
    before: &IngestCounts,
    reported: &IngestCounts,
    in_log: Option<u64>,
    lang: Lang,
) -> String {
    let appended_reported = reported.appended - before.appended;
    let committed = match in_log {
        Some(in_log) if in_log > appended_reported => Phrase::InLogWithUnreported.fill(
            lang,
            &[&in_log, &appended_reported, &(in_log - appended_reported)],
        ),
        Some(in_log) => Phrase::InLog.fill(lang, &[&in_log]),
        None => Phrase::AtLeastInLog.fill(lang, &[&appended_reported]),
    };
    let earlier = if before.read > 0 {
        Phrase::EarlierInputsDone.fill(
            lang,
            &[
                &before.read,
                &before.appended,
                &before.duplicates,
                &before.rejected,
            ],
        )
    } else {
        String::new()
    };
    Phrase::IngestFailed.fill(
        lang,
        &[
            &name,
            &committed,
            &(reported.read - before.read),
            &(reported.duplicates - before.duplicates),
            &(reported.rejected - before.rejected),
            &earlier,
        ],
    )
}

fn progress_bar(name: &str, size: Option<u64>) -> ProgressBar {
    let bar = match size {
        Some(size) => ProgressBar::new(size).with_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{prefix} {spinner} {bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_prefix(render::escape(name).into_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

fn export_orders(
    db: &Path,
    policy: &Policy,
    args: ExportOrdersArgs,
    lang: Lang,
) -> anyhow::Result<ExitCode> {
    let (ledger, as_of) =
        shop_or_whole_ledger(db, policy, (&args.query).into(), args.shop.as_deref(), lang)?;
    let offset = policy.utc_offset;
    let filter = penalty_core::RowFilter {
        status: args.status.as_deref().and_then(OrderStatus::parse),
        violating: args.violating,
        paid_from: args
            .paid_from
            .as_deref()
            .map(|text| parse_instant(text, policy, "--paid-from"))
            .transpose()?,
        paid_before: args
            .paid_to
            .as_deref()
            .map(|text| {
                penalty_core::RowFilter::paid_to_end(text, offset)
                    .map_err(|error| BadFlag::new("--paid-to", error))
            })
            .transpose()?,
        capped_day: args.capped_day,
        closure_review: args.closure_review,
    };
    // Rows are written as they are computed, one shop at a time, so that an
    // export of millions of orders never holds them all.
    let write_rows = |out: &mut dyn Write| -> anyhow::Result<u64> {
        let mut rows = ExportRows::<penalty_core::OrderRow>::start(out, &args.output)?;
        ledger.each_order_row(as_of, args.shop.as_deref(), filter, |row| rows.write(&row))?;
        rows.finish()
    };
    write_export(&args.output, Phrase::OrdersNoun, write_rows, lang)?;
    Ok(ExitCode::SUCCESS)
}

/// The one row writer of `export orders` and `export postings`: a JSON line
/// or a CSV line (the core's [`CsvRow`], which the server's downloads also
/// write) per row, the CSV header first, and the count of rows written.
struct ExportRows<'o, R> {
    out: &'o mut dyn Write,
    format: ExportFormat,
    excel: bool,
    written: u64,
    row: std::marker::PhantomData<R>,
}

impl<'o, R: Serialize + CsvRow> ExportRows<'o, R> {
    fn start(out: &'o mut dyn Write, output: &ExportOutput) -> anyhow::Result<Self> {
        if output.format == ExportFormat::Csv {
            out.write_all(R::csv_header(output.excel).as_bytes())?;
        }
        Ok(ExportRows {
            out,
            format: output.format,
            excel: output.excel,
            written: 0,
            row: std::marker::PhantomData,
        })
    }

    fn write(&mut self, row: &R) -> anyhow::Result<()> {
        self.written += 1;
        match self.format {
            ExportFormat::Jsonl => {
                serde_json::to_writer(&mut *self.out, row)?;
                self.out.write_all(b"\n")?;
            }
            ExportFormat::Csv => self.out.write_all(row.csv_line(self.excel).as_bytes())?,
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<u64> {
        self.out.flush()?;
        Ok(self.written)
    }
}

/// Writes an export to `-o FILE` or standard output: with `--excel`, a
/// UTF-8 byte-order mark first; a regular file is synced before the count
/// of `noun` written is reported (/dev/null, a FIFO or a terminal cannot be
/// synced, EINVAL, and need not be).
fn write_export(
    output: &ExportOutput,
    noun: Phrase,
    write_rows: impl FnOnce(&mut dyn Write) -> anyhow::Result<u64>,
    lang: Lang,
) -> anyhow::Result<()> {
    if output.excel && output.format != ExportFormat::Csv {
        anyhow::bail!(Phrase::ExcelNeedsCsv.text(lang));
    }
    let write = |out: &mut dyn Write| -> anyhow::Result<u64> {
        if output.excel {
            out.write_all(penalty_core::csv::EXCEL_BOM.as_bytes())?;
        }
        write_rows(out)
    };
    let Some(path) = &output.output else {
        write(&mut BufWriter::with_capacity(1 << 16, io::stdout().lock()))?;
        return Ok(());
    };
    let file =
        File::create(path).with_context(|| Phrase::CannotCreate.fill(lang, &[&path.display()]))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let written = write(&mut out)
        .and_then(|written| {
            let file = out.into_inner().map_err(|e| e.into_error())?;
            if file.metadata()?.file_type().is_file() {
                file.sync_all()?;
            }
            Ok(written)
        })
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "{}",
        Phrase::WroteRows.fill(
            lang,
            &[
                &written,
                &noun.text(lang),
                &render::escape(&path.display().to_string()),
            ],
        )
    );
    Ok(())
}

/// `penalty policy --json`: the versions in the file's own form, every
/// parameter filled in.
#[derive(Serialize)]
struct PolicyOutput {
    versions: Vec<serde_json::Value>,
}

impl PolicyOutput {
    fn of(policy: &Policy) -> PolicyOutput {
        let versions = policy
            .versions()
            .map(|(from, version)| {
                let mut value = serde_json::to_value(version).unwrap_or_default();
                if let Some(object) = value.as_object_mut() {
                    object.remove("later");
                    if let Some(from) = from {
                        object.insert(
                            "effective_from".into(),
                            from.to_rfc3339(policy.utc_offset).into(),
                        );
                    }
                }
                value
            })
            .collect();
        PolicyOutput { versions }
    }
}

fn export_postings(
    db: &Path,
    policy: &Policy,
    args: ExportPostingsArgs,
    lang: Lang,
) -> anyhow::Result<ExitCode> {
    let (ledger, as_of) =
        shop_or_whole_ledger(db, policy, (&args.query).into(), args.shop.as_deref(), lang)?;
    let day =
        |text: &Option<String>, flag: &str| -> anyhow::Result<Option<penalty_core::time::Day>> {
            text.as_deref()
                .map(|text| {
                    UnixNs::parse_asked(text, policy.utc_offset)
                        .map(|t| t.local_day(policy.utc_offset))
                        .map_err(|_| anyhow::anyhow!(Phrase::NotADate.fill(lang, &[&flag, &text])))
                })
                .transpose()
        };
    let (from, to) = (day(&args.from, "--from")?, day(&args.to, "--to")?);
    let write_rows = |out: &mut dyn Write| -> anyhow::Result<u64> {
        let mut rows = ExportRows::<penalty_core::PostingReport>::start(out, &args.output)?;
        ledger.each_posting(as_of, args.shop.as_deref(), from, to, |posting| {
            rows.write(&posting)
        })?;
        rows.finish()
    };
    write_export(&args.output, Phrase::PostingsNoun, write_rows, lang)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct ReplayOutput {
    events: u64,
    digest: String,
    as_of: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    known_at: Option<String>,
    /// The digest the stored (incremental) projections give at the same
    /// instant; absent with --known-at, where no stored state applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    incremental_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    equal: Option<bool>,
}

fn replay(db: &Path, policy: &Policy, args: QueryArgs, lang: Lang) -> anyhow::Result<ExitCode> {
    let (as_of, known_at) = instants(policy, args.as_of.as_deref(), args.known_at.as_deref())?;
    let reader = open_reader(db)?;
    let offset = policy.utc_offset;
    let mut output = ReplayOutput {
        events: 0,
        digest: String::new(),
        as_of: as_of.to_rfc3339(offset),
        known_at: known_at.map(|t| t.to_rfc3339(offset)),
        incremental_digest: None,
        equal: None,
    };
    match known_at {
        Some(_) => {
            let (rebuilt, _) = projection::replay_read(&reader, policy, known_at)?;
            output.events = rebuilt.ledger.events_applied();
            output.digest = projection::digest(&rebuilt.ledger, as_of);
        }
        None => {
            // The snapshot file is read beside the replay; when it holds
            // exactly the replay's state, that state is digested once.
            let (stored, replayed) =
                read_snapshot_beside(&reader, || projection::replay_read(&reader, policy, None))?;
            let (rebuilt, end) = replayed?;
            let compared = projection::compare(&reader, policy, as_of, stored, rebuilt, end)?;
            warn_all(&compared.warnings, lang);
            output.events = compared.rebuilt.ledger.events_applied();
            output.equal = Some(compared.stored_digest == compared.digest);
            // What is stale of the snapshots is rewritten from the replay,
            // for the next reader; a directory this process may not write
            // to (a read-only copy) keeps what it has.
            if let Err(error) = projection::refresh_read(&reader, &compared) {
                tracing::info!(%error, "could not write the rebuilt snapshot");
            }
            output.incremental_digest = Some(compared.stored_digest);
            output.digest = compared.digest;
            // The process ends here: the operating system takes the
            // ledger's memory back faster than freeing it piece by piece.
            std::mem::forget(compared.rebuilt);
        }
    }
    if args.json {
        print(&json_line(&output)?)?;
    } else {
        let mut text = format!(
            "{}\n{}\n",
            Phrase::Replayed.fill(lang, &[&output.events, &output.as_of]),
            Phrase::Digest.fill(lang, &[&output.digest])
        );
        if let Some(known_at) = &output.known_at {
            text += &Phrase::KnownAt.fill(lang, &[known_at]);
            text.push('\n');
        }
        if let Some(equal) = output.equal {
            text += if equal {
                Phrase::SameDigest
            } else {
                Phrase::OtherDigest
            }
            .text(lang);
            text.push('\n');
        }
        print_text(&text)?;
    }
    Ok(if output.equal == Some(false) {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Serialize)]
struct AuditOutput {
    ok: bool,
    log: penalty_store::VerifyReport,
    checkpoint: Option<CheckpointAudit>,
    /// What is wrong with the projection snapshot file, when anything is.
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot_problem: Option<String>,
    orphans: Vec<penalty_core::Orphan>,
}

#[derive(Serialize)]
struct CheckpointAudit {
    seq: u64,
    as_of: String,
    digest: String,
    replay_digest: String,
    equal: bool,
}

/// Runs `work` while another thread reads the projection snapshot file of
/// `reader`'s directory (its bytes are mostly a wait on the disk).
fn read_snapshot_beside<T: Send>(
    reader: &LogReader,
    work: impl FnOnce() -> T + Send,
) -> anyhow::Result<(Result<Option<Snapshot>, StoreError>, T)> {
    std::thread::scope(|scope| {
        let stored = std::thread::Builder::new()
            .name("penalty-snapshot-read".into())
            .spawn_scoped(scope, || penalty_store::snapshot::read(reader.dir()))
            .context("starting a thread to read the snapshot")?;
        let done = work();
        let stored = stored
            .join()
            .map_err(|_| anyhow::anyhow!("reading the snapshot failed (a bug)"))?;
        Ok((stored, done))
    })
}

/// The log's check when the log cannot even be opened: no block checked,
/// and the error as its problem.
fn problem_report(error: &StoreError) -> penalty_store::VerifyReport {
    penalty_store::VerifyReport {
        blocks: 0,
        events: 0,
        last_seq: 0,
        problem: Some(penalty_store::VerifyProblem {
            seq: error.corrupt_seq().unwrap_or(1),
            detail: error.to_string(),
        }),
    }
}

/// What is wrong with the projection snapshot of `reader`'s directory (it
/// fails its checksum, or it does not describe this log), or else with
/// its tail index.
fn snapshot_problem<'l>(
    reader: &LogReader,
    stored: &Result<Option<Snapshot>, StoreError>,
    known: &dyn Fn() -> Option<&'l Ledger>,
) -> Option<String> {
    let file = penalty_store::snapshot::SNAPSHOT_FILE;
    let snapshot = match stored {
        Ok(None) => None,
        Ok(Some(stored)) => reader.check_snapshot_end(&stored.end).err().map(|why| {
            format!(
                "the projection snapshot {file} does not match the log: {why}; queries replay \
                 the log instead, and `penalty recover` removes it"
            )
        }),
        Err(error) => Some(error.to_string()),
    };
    snapshot.or_else(|| penalty_store::tail_index::check_against(reader, known))
}

#[derive(Serialize)]
struct RecoverOutput {
    ok: bool,
    recovered: Option<penalty_store::recover::RecoverReport>,
    log: penalty_store::VerifyReport,
}

/// The ledger of everything `reader` holds, to check the tail index
/// against (`tail_index::check_against`); `None` when it does not open
/// (the checks name why).
fn ledger_of(reader: &LogReader, policy: &Policy) -> Option<Ledger> {
    projection::open_read(reader, policy, true, true)
        .ok()
        .map(|opened| opened.projection.ledger)
}

/// The checks `recover` passes before and after: the log through sled (the
/// writer's view), the files alone (the readers'), and the snapshot.
fn check_everything(
    db: &Path,
    policy: &Policy,
    log: &EventLog,
) -> anyhow::Result<penalty_store::VerifyReport> {
    let mut report = log.verify()?;
    if report.is_ok() {
        let reader = open_reader(db)?;
        let files = reader.verify();
        let known = std::cell::OnceCell::new();
        let known = || known.get_or_init(|| ledger_of(&reader, policy)).as_ref();
        if !files.is_ok() {
            report = files;
        } else if let Some(detail) = snapshot_problem(
            &reader,
            &penalty_store::snapshot::read(reader.dir()),
            &known,
        ) {
            report.problem = Some(penalty_store::VerifyProblem {
                seq: report.last_seq,
                detail,
            });
        }
    }
    Ok(report)
}

fn recover(
    db: &Path,
    policy: &Policy,
    no_wait: bool,
    args: RecoverArgs,
    lang: Lang,
) -> anyhow::Result<ExitCode> {
    if !db.is_dir() {
        return Err(StoreError::NoLog {
            dir: db.to_path_buf(),
            reason: "the directory does not exist",
        }
        .into());
    }
    // A log that opens and checks good has nothing to recover: leave it
    // (and its snapshot) as it is.
    let healthy = match open_writer(db, no_wait, lang) {
        Ok(log) => {
            let report = check_everything(db, policy, &log)?;
            report.is_ok().then_some(report)
        }
        Err(error)
            if matches!(
                error.downcast_ref::<StoreError>(),
                Some(StoreError::Locked { .. } | StoreError::Io { .. })
            ) =>
        {
            return Err(error)
        }
        Err(_) => None,
    };
    if let Some(report) = healthy {
        if args.json {
            let output = RecoverOutput {
                ok: true,
                recovered: None,
                log: report,
            };
            print(&json_line(&output)?)?;
        } else {
            print_text(&format!(
                "{}\n",
                Phrase::NothingToRecover.fill(lang, &[&report.blocks, &report.events])
            ))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (recovered, log) = match penalty_store::recover::recover(db) {
        Ok(mut recovered) => {
            // A tail index whose days or partitions only a ledger of the
            // log shows untrue goes too (the store's recovery checks what
            // the blocks alone tell).
            if let Ok(reader) = LogReader::open(db) {
                let known = std::cell::OnceCell::new();
                let known = || known.get_or_init(|| ledger_of(&reader, policy)).as_ref();
                recovered.snapshot_removed |=
                    penalty_store::tail_index::remove_if_damaged_against(&reader, &known)?;
            }
            // The rebuilt database must pass everything an audit checks of
            // the log.
            let log = match EventLog::open(db) {
                Ok(log) => check_everything(db, policy, &log)?,
                Err(error @ StoreError::Corrupt { .. }) => problem_report(&error),
                Err(error) => return Err(error.into()),
            };
            (Some(recovered), log)
        }
        Err(error @ StoreError::Corrupt { .. }) => (None, problem_report(&error)),
        Err(error) => {
            return Err(anyhow::Error::new(error)
                .context(Phrase::WhileRecovering.fill(lang, &[&db.display()])))
        }
    };
    let ok = log.is_ok();
    if args.json {
        let output = RecoverOutput { ok, recovered, log };
        print(&json_line(&output)?)?;
    } else {
        let mut text = String::new();
        if let Some(r) = &recovered {
            if r.head_rewritten {
                text += &Phrase::HeadRewritten.fill(lang, &[&r.last_seq]);
                text.push('\n');
            }
            if r.snapshot_removed {
                text += Phrase::SnapshotRemoved.text(lang);
                text.push('\n');
            }
        }
        print_text(&(render::recover(recovered.as_ref(), &log, lang) + &text))?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    })
}

/// Blocks the replay of `audit` may have read ahead of the log's check
/// (about a megabyte each): enough that neither waits on the other's
/// unevenness, few enough to add little memory.
const SHARED_BLOCKS: usize = 8;

fn audit(db: &Path, policy: &Policy, args: AuditArgs, lang: Lang) -> anyhow::Result<ExitCode> {
    // The audit reads as any query does (no lock, beside a writer), and
    // checks every acknowledged block and the head journal.
    let reader = match LogReader::open(db) {
        Ok(reader) => reader,
        Err(error @ StoreError::Corrupt { .. }) => {
            let output = AuditOutput {
                ok: false,
                log: problem_report(&error),
                checkpoint: None,
                snapshot_problem: None,
                orphans: Vec::new(),
            };
            if args.json {
                print(&json_line(&output)?)?;
            } else {
                print_text(&render::audit(&output.log, None, &[], lang))?;
            }
            return Ok(ExitCode::from(4));
        }
        Err(error) => return Err(error.into()),
    };
    let as_of = penalty_store::clock::now();
    // The log's check runs on its own thread beside the replay, the
    // snapshot's read and then the digests (each of which uses the cores the
    // check leaves), so that no core waits for another. The replay hands it
    // every block it has read and checksummed: the log is read once.
    let (report, snapshot_problem, compared) = std::thread::scope(|scope| {
        let (spent, shared) = std::sync::mpsc::sync_channel(SHARED_BLOCKS);
        let checking = &reader;
        let checked = std::thread::Builder::new()
            .name("penalty-verify".into())
            .spawn_scoped(scope, move || checking.verify_shared(shared.into_iter()))
            .context("starting a thread to check the log")?;
        let (stored, replayed) = read_snapshot_beside(&reader, || {
            projection::replay_read_sharing(&reader, policy, spent)
        })?;
        // The replay's ledger also tells whether the tail index says true
        // what its blocks alone cannot tell (each event's order's
        // partition and days).
        let known = replayed.as_ref().ok().map(|(rebuilt, _)| &rebuilt.ledger);
        let snapshot_problem = snapshot_problem(&reader, &stored, &|| known);
        // A damaged log makes the replay stop with an error; the check
        // names the damage, and nothing is compared.
        let compared = replayed.and_then(|(rebuilt, end)| {
            projection::compare(&reader, policy, as_of, stored, rebuilt, end)
        });
        let report = checked
            .join()
            .map_err(|_| anyhow::anyhow!("checking the log failed (a bug)"))?;
        anyhow::Ok((report, snapshot_problem, compared))
    })?;
    let mut output = AuditOutput {
        ok: report.is_ok() && snapshot_problem.is_none(),
        log: report,
        checkpoint: None,
        snapshot_problem,
        orphans: Vec::new(),
    };
    // A damaged log is named by the check alone; the replay, which stops
    // at the damage, is not compared.
    if output.log.is_ok() {
        let compared = compared?;
        let seq = match compared.stored_origin {
            projection::Origin::Checkpoint { seq, .. } => seq,
            projection::Origin::Replay { .. } => 0,
        };
        let equal = compared.stored_digest == compared.digest;
        output.ok &= equal;
        output.orphans = compared.rebuilt.ledger.orphans(UnixNs(i64::MAX));
        output.checkpoint = Some(CheckpointAudit {
            seq,
            as_of: as_of.to_rfc3339(policy.utc_offset),
            digest: compared.stored_digest,
            replay_digest: compared.digest,
            equal,
        });
        // The process ends here: the operating system takes the ledger's
        // memory back faster than freeing it piece by piece.
        std::mem::forget(compared.rebuilt);
    } else if let Ok(compared) = compared {
        std::mem::forget(compared.rebuilt);
    }
    if args.json {
        print(&json_line(&output)?)?;
    } else {
        let mut text = render::audit(
            &output.log,
            output.checkpoint.as_ref().map(|c| (c.seq, c.equal)),
            &output.orphans,
            lang,
        );
        if let Some(problem) = &output.snapshot_problem {
            text += &Phrase::Problem.fill(lang, &[problem]);
            text.push('\n');
        }
        print_text(&text)?;
    }
    Ok(if output.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    })
}

fn gen(args: GenArgs, lang: Lang) -> anyhow::Result<ExitCode> {
    let options = penalty_gen::GenOptions {
        orders: args.orders,
        shops: args.shops,
        seed: args.seed,
    };
    let stats = match &args.output {
        Some(path) => {
            let file = File::create(path)
                .with_context(|| Phrase::CannotCreate.fill(lang, &[&path.display()]))?;
            let mut out = io::BufWriter::with_capacity(1 << 20, file);
            let stats = penalty_gen::generate(&options, &mut out)?;
            out.flush()?;
            eprintln!(
                "{}",
                Phrase::WroteLines.fill(
                    lang,
                    &[
                        &stats.lines,
                        &stats.bytes,
                        &render::escape(&path.display().to_string()),
                    ],
                )
            );
            stats
        }
        None => {
            let mut out = io::BufWriter::with_capacity(1 << 20, io::stdout().lock());
            let stats = penalty_gen::generate(&options, &mut out)?;
            out.flush()?;
            stats
        }
    };
    let _ = stats;
    Ok(ExitCode::SUCCESS)
}

/// One page of each of a shop report's lists in its human output: the
/// rows from `offset`, at most `limit` of them (0: all).
#[derive(Clone, Copy)]
struct ListPage {
    offset: usize,
    limit: usize,
}

impl ListPage {
    /// Keeps this page of `rows`; answers how many rows come after it.
    fn keep<T>(self, rows: &mut Vec<T>) -> usize {
        rows.drain(..self.offset.min(rows.len()));
        if self.limit == 0 {
            return 0;
        }
        let after = rows.len().saturating_sub(self.limit);
        rows.truncate(self.limit);
        after
    }
}

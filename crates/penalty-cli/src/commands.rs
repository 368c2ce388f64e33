//! What each command does: open the store, ask the core, hand values to the
//! renderers.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use penalty_core::{Instant, Ledger, OrderStatus, Policy, Within};
use penalty_store::ingest::{IngestCounts, IngestOptions, IngestSink, RejectsFile, SyncJob};
use penalty_store::projection;
use penalty_store::{EventLog, StoreError};
use serde::Serialize;

use crate::cli::*;
use crate::output::{json_line, print};
use crate::render;

/// A low guess of an event line's size, to size the idempotency index from
/// a file's size: typical lines are 150 to 250 bytes, and a guess too high
/// only leaves some rehashing to do.
const ESTIMATED_LINE_BYTES: u64 = 160;

/// An unknown shop or order: exit code 3 (CLI.md).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotFound(pub String);

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let policy = load_policy(cli.policy.as_deref())?;
    match cli.command {
        Command::Ingest(args) if args.cluster.is_some() => {
            crate::cluster::ingest(&cli.db, &policy, args)
        }
        Command::Ingest(args) => ingest(&cli.db, &policy, args),
        Command::Cluster(command) => crate::cluster::run(&cli.db, &policy, command),
        Command::Shop(args) => {
            let (ledger, as_of) = query_ledger(&cli.db, &policy, &args.query)?;
            let report = ledger
                .shop_report(&args.shop_id, as_of, true)
                .map_err(|e| NotFound(e.to_string()))?;
            if args.query.json {
                print(&json_line(&report)?)?;
            } else {
                print(&render::shop(&report))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Order(args) => {
            let (ledger, as_of) = query_ledger(&cli.db, &policy, &args.query)?;
            let report = ledger
                .order_report(&args.order_id, as_of)
                .map_err(|e| NotFound(e.to_string()))?;
            if args.query.json {
                print(&json_line(&report)?)?;
            } else {
                print(&render::order(&report))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::AtRisk(args) => {
            let within = Within::parse(&args.within).context("--within")?;
            let (ledger, as_of) = query_ledger(&cli.db, &policy, &args.query)?;
            let report = ledger
                .at_risk(args.shop.as_deref(), as_of, within)
                .map_err(|e| NotFound(e.to_string()))?;
            if args.query.json {
                print(&json_line(&report)?)?;
            } else {
                print(&render::at_risk(&report, args.limit))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Notices(args) => {
            let (ledger, as_of) = query_ledger(&cli.db, &policy, &args.query)?;
            let notices = ledger
                .notices(
                    &args.shop_id,
                    as_of,
                    args.after.as_deref(),
                    usize::from(args.limit),
                )
                .map_err(|e| NotFound(e.to_string()))?;
            if args.query.json {
                let mut text = String::new();
                for notice in &notices {
                    text += &json_line(notice)?;
                }
                print(&text)?;
            } else {
                print(&render::notices(
                    &args.shop_id,
                    &notices,
                    usize::from(args.limit),
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Shops(args) => {
            let (ledger, as_of) = query_ledger(&cli.db, &policy, &args)?;
            let summaries = ledger.shop_summaries(as_of);
            if args.json {
                let mut text = String::new();
                for summary in &summaries {
                    text += &json_line(summary)?;
                }
                print(&text)?;
            } else {
                print(&render::shops(&summaries))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(ExportCommand::Orders(args)) => export_orders(&cli.db, &policy, args),
        Command::Replay(args) => replay(&cli.db, &policy, args),
        Command::Audit(args) => audit(&cli.db, &policy, args),
        Command::Recover(args) => recover(&cli.db, args),
        Command::Gen(args) => gen(args),
        Command::Serve(args) => {
            eprintln!(
                "penalty serve: http://{}/ (API: /openapi.json); Ctrl-C to stop",
                args.addr
            );
            penalty_server::run(penalty_server::ServeOptions {
                db: cli.db.clone(),
                policy,
                addr: args.addr,
                tokens: args.tokens,
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load_policy(path: Option<&Path>) -> anyhow::Result<Policy> {
    let Some(path) = path else {
        return Ok(Policy::default());
    };
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the policy file {}; check the path",
            path.display()
        )
    })?;
    Policy::from_json(&text)
        .with_context(|| format!("the policy file {} is not valid", path.display()))
}

/// `--as-of` (default: the wall clock, the only clock the CLI reads; the
/// rules core never reads one) and `--known-at`.
fn instants(
    policy: &Policy,
    as_of: Option<&str>,
    known_at: Option<&str>,
) -> anyhow::Result<(Instant, Option<Instant>)> {
    let as_of = match as_of {
        Some(text) => parse_instant(text, policy, "--as-of")?,
        None => penalty_store::now(),
    };
    let known_at = known_at
        .map(|text| parse_instant(text, policy, "--known-at"))
        .transpose()?;
    Ok((as_of, known_at))
}

/// RFC 3339 with an offset, or a bare date meaning 00:00 in the policy's
/// offset.
fn parse_instant(text: &str, policy: &Policy, flag: &str) -> anyhow::Result<Instant> {
    Instant::parse_rfc3339_or_date(text, policy.utc_offset).ok_or_else(|| {
        anyhow::anyhow!(
            "{flag} `{text}` is not an instant; write RFC 3339 with an offset, such as \
             2026-03-07T00:00:00+08:00, or a date such as 2026-03-07 (00:00 in the policy's offset {})",
            policy.utc_offset
        )
    })
}

fn open_log(db: &Path) -> anyhow::Result<EventLog> {
    EventLog::open(db).map_err(anyhow::Error::from)
}

/// The ledger to answer a query from, and the instant to ask at.
fn query_ledger(db: &Path, policy: &Policy, args: &QueryArgs) -> anyhow::Result<(Ledger, Instant)> {
    ledger_at(db, policy, args.as_of.as_deref(), args.known_at.as_deref())
}

fn ledger_at(
    db: &Path,
    policy: &Policy,
    as_of: Option<&str>,
    known_at: Option<&str>,
) -> anyhow::Result<(Ledger, Instant)> {
    let (as_of, known_at) = instants(policy, as_of, known_at)?;
    let log = open_log(db)?;
    let ledger = match known_at {
        Some(known_at) => projection::replay(&log, policy, Some(known_at))?.ledger,
        None => projection::open(&log, policy, true)?.0.ledger,
    };
    Ok((ledger, as_of))
}

/// Feeds ingest's callbacks into the rejects file and the progress bar.
struct CliSink {
    rejects: RejectsFile,
    bar: Option<ProgressBar>,
    base: IngestCounts,
    /// The counts of every input so far, as of the last durable block.
    committed: IngestCounts,
    progress_jsonl: bool,
}

impl IngestSink for CliSink {
    fn rejected(
        &mut self,
        line_no: u64,
        reason: &penalty_core::Reject,
        raw: &[u8],
        raw_bytes: u64,
    ) -> Result<(), StoreError> {
        self.rejects.write(line_no, reason, raw, raw_bytes)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.rejects.sync()
    }

    fn sync_job(&mut self) -> Result<Option<SyncJob>, StoreError> {
        self.rejects.sync_job()
    }

    /// The CLI counts the appended events; it does not look at them.
    fn wants_appended(&self) -> bool {
        false
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
            bar.set_message(format!(
                "{} read, {} appended, {} duplicates, {} rejected",
                total.read, total.appended, total.duplicates, total.rejected
            ));
        }
    }
}

fn ingest(db: &Path, policy: &Policy, args: IngestArgs) -> anyhow::Result<ExitCode> {
    // Open every input first, so that a mistyped name stops the command before
    // anything is appended.
    let mut inputs: Vec<(String, Option<u64>, Box<dyn Read + Send>)> = Vec::new();
    let files = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files.clone()
    };
    for path in &files {
        if path.as_os_str() == "-" {
            inputs.push(("-".into(), None, Box::new(io::stdin())));
        } else {
            let file = File::open(path).with_context(|| {
                format!(
                    "cannot open the input file {}; check the path (nothing was ingested)",
                    path.display()
                )
            })?;
            let size = file.metadata().ok().map(|m| m.len());
            inputs.push((path.display().to_string(), size, Box::new(file)));
        }
    }
    let mut log = open_log(db)?;
    let rejects_path = args
        .rejects
        .clone()
        .unwrap_or_else(|| db.join("rejects.jsonl"));
    let rejects = RejectsFile::open(&rejects_path, "-")?;

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
    let mut sink = CliSink {
        rejects,
        bar: None,
        base: IngestCounts::default(),
        committed: IngestCounts::default(),
        progress_jsonl: args.progress_jsonl,
    };
    let mut total = IngestCounts::default();
    for (name, size, reader) in inputs {
        sink.rejects.set_source(&name);
        sink.base = total;
        sink.bar = show_bar.then(|| progress_bar(&name, size));
        if let Some(size) = size {
            // Sizing the idempotency index from the file's size spares a
            // large ingest the rehashing of millions of entries as it fills.
            log.reserve(size / ESTIMATED_LINE_BYTES)
                .with_context(|| format!("while preparing to ingest {name}"))?;
        }
        sink.committed = total;
        let counts = penalty_store::ingest::ingest(&mut log, reader, &options, &mut sink)
            .with_context(|| {
                // What was acknowledged stays: say so, and that sending the
                // same input again finishes the job.
                let done = sink.committed;
                format!(
                    "while ingesting {name} (before the error, {} lines were read and are \
                     durable: {} appended, {} duplicates, {} rejected; once the cause is \
                     fixed, send the same input again: what is already in the log counts as \
                     duplicates)",
                    done.read, done.appended, done.duplicates, done.rejected
                )
            })?;
        if let Some(bar) = sink.bar.take() {
            bar.finish_and_clear();
        }
        total.add(&counts);
        if stop.load(Ordering::SeqCst) {
            break;
        }
    }
    let rejects_written = sink.rejects.written();
    // The events are durable; the projections are derived data. A small
    // append is folded in and checkpointed now, so that the next query starts
    // from a current checkpoint. A large one is left to the next reader,
    // which folds the whole tail once and checkpoints it (projection::open):
    // folding here would cost ingest a third of its time and hold the whole
    // ledger in memory besides the idempotency index.
    if (1..projection::CHECKPOINT_TAIL_EVENTS).contains(&total.appended) {
        let (current, _) = projection::open(&log, policy, false)?;
        current
            .save(&log)
            .context("saving the projection checkpoint")?;
    }
    let interrupted = stop.load(Ordering::SeqCst);
    if args.json {
        print(&json_line(&total)?)?;
    } else {
        let mut text = format!(
            "read {} lines: {} appended, {} duplicates, {} rejected\n",
            total.read, total.appended, total.duplicates, total.rejected
        );
        if rejects_written > 0 {
            text += &format!(
                "rejected lines, with their reasons: {}\n",
                rejects_path.display()
            );
        }
        if interrupted {
            text += "interrupted: the lines above are committed; run the same command again to complete (re-sending is safe)\n";
        }
        print(&text)?;
    }
    Ok(if interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
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
    bar.set_prefix(name.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

fn export_orders(db: &Path, policy: &Policy, args: ExportOrdersArgs) -> anyhow::Result<ExitCode> {
    let (ledger, as_of) = ledger_at(
        db,
        policy,
        args.query.as_of.as_deref(),
        args.query.known_at.as_deref(),
    )?;
    let status = args.status.as_deref().and_then(OrderStatus::parse);
    let keep = |row: &penalty_core::OrderRow| {
        status.is_none_or(|s| s == row.status) && (!args.violating || row.judgments > 0)
    };
    // Rows are written as they are computed, one shop at a time, so that an
    // export of millions of orders never holds them all.
    let write_rows = |out: &mut dyn Write| -> anyhow::Result<u64> {
        let mut written: u64 = 0;
        if args.format == ExportFormat::Csv {
            out.write_all(render::orders_csv_header().as_bytes())?;
        }
        ledger.each_order_row(as_of, args.shop.as_deref(), |row| {
            if !keep(&row) {
                return Ok::<(), anyhow::Error>(());
            }
            written += 1;
            match args.format {
                ExportFormat::Jsonl => {
                    serde_json::to_writer(&mut *out, &row)?;
                    out.write_all(b"\n")?;
                }
                ExportFormat::Csv => out.write_all(render::order_csv_line(&row).as_bytes())?,
            }
            Ok(())
        })?;
        out.flush()?;
        Ok(written)
    };
    match &args.output {
        Some(path) => {
            let file = File::create(path).with_context(|| {
                format!(
                    "cannot create {}; check the directory exists and is writable",
                    path.display()
                )
            })?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            let written = write_rows(&mut out)
                .and_then(|written| {
                    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                    Ok(written)
                })
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {written} orders to {}", path.display());
        }
        None => {
            write_rows(&mut BufWriter::with_capacity(1 << 16, io::stdout().lock()))?;
        }
    }
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

fn replay(db: &Path, policy: &Policy, args: QueryArgs) -> anyhow::Result<ExitCode> {
    let (as_of, known_at) = instants(policy, args.as_of.as_deref(), args.known_at.as_deref())?;
    let log = open_log(db)?;
    let offset = policy.utc_offset;
    let mut output = ReplayOutput {
        events: 0,
        digest: String::new(),
        as_of: as_of.to_rfc3339(offset),
        known_at: known_at.map(|t| t.to_rfc3339(offset)),
        incremental_digest: None,
        equal: None,
    };
    // The stored projection is digested and dropped before the replay, so
    // that only one ledger is in memory at a time.
    let incremental = match known_at {
        None => Some(
            projection::open(&log, policy, false)?
                .0
                .ledger
                .digest(as_of),
        ),
        Some(_) => None,
    };
    let rebuilt = projection::replay(&log, policy, known_at)?;
    output.events = rebuilt.ledger.events_applied();
    output.digest = rebuilt.ledger.digest(as_of);
    if let Some(incremental) = incremental {
        output.equal = Some(incremental == output.digest);
        output.incremental_digest = Some(incremental);
        rebuilt
            .save(&log)
            .context("saving the rebuilt checkpoint")?;
    }
    if args.json {
        print(&json_line(&output)?)?;
    } else {
        let mut text = format!(
            "replayed {} events as of {}\ndigest {}\n",
            output.events, output.as_of, output.digest
        );
        if let Some(known_at) = &output.known_at {
            text += &format!("known at {known_at}: only events recorded by then\n");
        }
        if let Some(equal) = output.equal {
            text += if equal {
                "the stored projections give the same digest\n"
            } else {
                "the stored projections gave ANOTHER digest; the checkpoint was rebuilt from the log\n"
            };
        }
        print(&text)?;
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

#[derive(Serialize)]
struct RecoverOutput {
    ok: bool,
    recovered: Option<penalty_store::recover::RecoverReport>,
    log: penalty_store::VerifyReport,
}

fn recover(db: &Path, args: RecoverArgs) -> anyhow::Result<ExitCode> {
    // A log that opens and checks good has nothing to recover: leave it
    // (and its checkpoint) as it is.
    if let Ok(log) = EventLog::open(db) {
        let report = log.verify()?;
        if report.is_ok() {
            if args.json {
                let output = RecoverOutput {
                    ok: true,
                    recovered: None,
                    log: report,
                };
                print(&json_line(&output)?)?;
            } else {
                print(&format!(
                    "the log opens and checks good ({} blocks, {} events): nothing to recover\n",
                    report.blocks, report.events
                ))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
    }
    let (recovered, log) = match penalty_store::recover::recover(db) {
        Ok(recovered) => {
            // The rebuilt database must pass everything an audit checks of
            // the log.
            let log = match EventLog::open(db) {
                Ok(log) => log.verify()?,
                Err(error @ StoreError::Corrupt { .. }) => problem_report(&error),
                Err(error) => return Err(error.into()),
            };
            (Some(recovered), log)
        }
        Err(error @ StoreError::Corrupt { .. }) => (None, problem_report(&error)),
        Err(error) => {
            return Err(anyhow::Error::new(error).context(format!(
                "while recovering the data directory {}",
                db.display()
            )))
        }
    };
    let ok = log.is_ok();
    if args.json {
        let output = RecoverOutput { ok, recovered, log };
        print(&json_line(&output)?)?;
    } else {
        print(&render::recover(recovered.as_ref(), &log))?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    })
}

fn audit(db: &Path, policy: &Policy, args: AuditArgs) -> anyhow::Result<ExitCode> {
    // A damaged log is what the audit is for: open it anyway and report.
    let log = match EventLog::open_for_audit(db) {
        Ok(log) => log,
        Err(error @ StoreError::Corrupt { .. }) => {
            let report = problem_report(&error);
            if args.json {
                let output = AuditOutput {
                    ok: false,
                    log: report,
                    checkpoint: None,
                    orphans: Vec::new(),
                };
                print(&json_line(&output)?)?;
            } else {
                print(&render::audit(&report, None, &[]))?;
            }
            return Ok(ExitCode::from(4));
        }
        Err(error) => return Err(error.into()),
    };
    let report = log.verify()?;
    let mut output = AuditOutput {
        ok: report.is_ok(),
        log: report,
        checkpoint: None,
        orphans: Vec::new(),
    };
    if output.ok {
        let as_of = penalty_store::now();
        // One ledger in memory at a time: the stored one is digested and
        // dropped before the replay.
        let (stored, origin) = projection::open(&log, policy, false)?;
        let seq = match origin {
            projection::Origin::Checkpoint { seq, .. } => seq,
            projection::Origin::Replay { .. } => 0,
        };
        let digest = stored.ledger.digest(as_of);
        drop(stored);
        let rebuilt = projection::replay(&log, policy, None)?;
        let replay_digest = rebuilt.ledger.digest(as_of);
        let equal = digest == replay_digest;
        output.ok &= equal;
        output.checkpoint = Some(CheckpointAudit {
            seq,
            as_of: as_of.to_rfc3339(policy.utc_offset),
            digest,
            replay_digest,
            equal,
        });
        output.orphans = rebuilt.ledger.orphans(Instant(i64::MAX));
    }
    if args.json {
        print(&json_line(&output)?)?;
    } else {
        print(&render::audit(
            &output.log,
            output.checkpoint.as_ref().map(|c| (c.seq, c.equal)),
            &output.orphans,
        ))?;
    }
    Ok(if output.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    })
}

fn gen(args: GenArgs) -> anyhow::Result<ExitCode> {
    let options = penalty_gen::GenOptions {
        orders: args.orders,
        shops: args.shops,
        seed: args.seed,
    };
    let stats = match &args.output {
        Some(path) => {
            let file = File::create(path).with_context(|| {
                format!(
                    "cannot create {}; check the directory exists and is writable",
                    path.display()
                )
            })?;
            let mut out = io::BufWriter::with_capacity(1 << 20, file);
            let stats = penalty_gen::generate(&options, &mut out)?;
            out.flush()?;
            eprintln!(
                "wrote {} lines ({} bytes) to {}",
                stats.lines,
                stats.bytes,
                path.display()
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

//! `penalty`: the command line of the penalty ledger.
//!
//! Glue only (ripgrep's `core`): parse arguments, open the store, ask the rules
//! core, render. This is the only crate that prints. Exit codes: 0 success,
//! 1 error, 2 usage, 3 unknown shop or order, 4 the audit found a problem,
//! 130 interrupted (Ctrl-C) after committing what was read.

mod cli;
mod cluster;
mod commands;
mod help_zh;
mod inputs;
mod output;
mod render;

use std::io::IsTerminal;
use std::process::ExitCode;

use penalty_core::labels::Lang;

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    // The help pages speak the output's language, so it is read from the
    // raw arguments before clap parses (and may print help).
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args = help_zh::parse(argv.clone(), help_zh::lang_of_args(&argv));
    let lang = args.lang();
    init_tracing();
    let timing =
        tracing::enabled!(target: penalty_store::projection::TIMING, tracing::Level::DEBUG);
    if timing {
        tracing::debug!(target: penalty_store::projection::TIMING, us = penalty_store::projection::micros(started), "arguments read");
    }
    let result = commands::run(args, lang);
    if timing {
        log_process(started);
    }
    match result {
        Ok(code) => code,
        Err(error) => {
            if output::is_broken_pipe(&error) {
                // The reader went away (`penalty shops | head`): not an error.
                return ExitCode::SUCCESS;
            }
            if let Some(not_found) = error.downcast_ref::<commands::NotFound>() {
                eprintln!("penalty: {}", render::terminal_text(&not_found.to_string()));
                return ExitCode::from(3);
            }
            // Messages quote input (an id, a path, an instant as typed).
            let text = penalty_core::labels::Phrase::Error.fill(lang, &[&message(&error, lang)]);
            eprintln!("penalty: {}", render::terminal_text(&text));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, each once, in `lang`: the store's messages
/// already end with their cause and the advice that goes with it, which
/// `{:#}` would then repeat after the advice.
fn message(error: &anyhow::Error, lang: Lang) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = in_lang(cause, lang);
        if text.contains(&cause) {
            continue;
        }
        text = if text.is_empty() {
            cause
        } else {
            penalty_core::labels::Phrase::CauseFollows.fill(lang, &[&text, &cause])
        };
    }
    text
}

/// One cause in `lang`: the errors that name an input have their words in
/// the core's phrases (their `message(lang)`); any other keeps its text.
fn in_lang(cause: &(dyn std::error::Error + 'static), lang: Lang) -> String {
    if let Some(bad) = cause.downcast_ref::<commands::BadFlag>() {
        format!("{} {}", bad.flag, in_lang(bad.error.as_ref(), lang))
    } else if let Some(error) = cause.downcast_ref::<penalty_store::StoreError>() {
        error.message(lang)
    } else if let Some(error) = cause.downcast_ref::<penalty_core::policy::PolicyError>() {
        error.message(lang)
    } else if let Some(error) = cause.downcast_ref::<penalty_core::time::AskedInstantError>() {
        error.message(lang)
    } else if let Some(error) = cause.downcast_ref::<penalty_core::WithinError>() {
        error.message(lang)
    } else {
        cause.to_string()
    }
}

/// What the process spent, for `RUST_LOG=penalty::timing=debug`: its CPU
/// and its wait for a core (`/proc/self/schedstat`, nanoseconds), what it
/// read (`/proc/self/io`), its context switches and page faults.
fn log_process(started: std::time::Instant) {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    // "name: value" lines (`/proc/self/io`, `/proc/self/status`).
    let field = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let schedstat = read("/proc/self/schedstat");
    let mut sched = schedstat.split_whitespace();
    let io = read("/proc/self/io");
    let status = read("/proc/self/status");
    let stat = read("/proc/self/stat");
    // minflt and majflt are fields 10 and 12, after the command's name.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    tracing::debug!(
        target: penalty_store::projection::TIMING,
        us = penalty_store::projection::micros(started),
        cpu_ns = sched.next().unwrap_or(""),
        wait_ns = sched.next().unwrap_or(""),
        minflt = fields.get(7).copied().unwrap_or(""),
        majflt = fields.get(9).copied().unwrap_or(""),
        rchar = field(&io, "rchar"),
        syscr = field(&io, "syscr"),
        read_bytes = field(&io, "read_bytes"),
        voluntary = field(&status, "voluntary_ctxt_switches"),
        involuntary = field(&status, "nonvoluntary_ctxt_switches"),
        "process"
    );
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings only),
/// with colour codes only when stderr is a terminal: a log file or a pipe
/// gets plain lines.
fn init_tracing() {
    let colours = std::io::stderr().is_terminal();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || LogWriter { colours })
        .with_ansi(colours)
        .try_init();
}

/// Stderr for log lines, through [`render::log_text`]: a logged value (a
/// path, a request's text under `serve`) cannot send a terminal sequence.
/// The formatter writes each line with one call.
struct LogWriter {
    colours: bool,
}

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(bytes);
        std::io::stderr()
            .lock()
            .write_all(render::log_text(&text, self.colours).as_bytes())?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

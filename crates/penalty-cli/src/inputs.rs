//! What both ingests (one machine's `penalty ingest` and `penalty ingest
//! --cluster`) share: their inputs opened, and their counts in one line.
//! Its own module so that the command dispatcher (`commands`) and the
//! cluster's commands (`cluster`) both take it from here instead of one
//! from the other, which calls it.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use anyhow::Context;
use penalty_core::labels::{Lang, Phrase};
use penalty_store::ingest::IngestCounts;

/// The inputs of `penalty ingest` (one machine's and `--cluster`'s): each
/// file's name, size when known, and reader; standard input for `-` or no
/// file. Every input is opened first, so that a mistyped name stops the
/// command before anything is ingested.
pub(crate) type Input = (String, Option<u64>, Box<dyn Read + Send>);

pub(crate) fn open_inputs(files: &[PathBuf], lang: Lang) -> anyhow::Result<Vec<Input>> {
    let stdin = [PathBuf::from("-")];
    let files = if files.is_empty() { &stdin[..] } else { files };
    let mut inputs: Vec<Input> = Vec::new();
    for path in files {
        if path.as_os_str() == "-" {
            inputs.push(("-".into(), None, Box::new(io::stdin())));
        } else {
            let file = File::open(path)
                .with_context(|| Phrase::CannotOpenInput.fill(lang, &[&path.display()]))?;
            let size = file.metadata().ok().map(|m| m.len());
            inputs.push((path.display().to_string(), size, Box::new(file)));
        }
    }
    Ok(inputs)
}

/// The counts of an ingest, one line, for `penalty ingest` and
/// `penalty ingest --cluster`.
pub(crate) fn ingest_summary(total: &IngestCounts, lang: Lang) -> String {
    let counts: [&dyn std::fmt::Display; 4] = [
        &total.read,
        &total.appended,
        &total.duplicates,
        &total.rejected,
    ];
    format!("{}\n", Phrase::IngestCounts.fill(lang, &counts))
}

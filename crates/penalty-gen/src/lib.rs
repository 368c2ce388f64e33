//! A seeded workload generator (issue: benchmarks). Work in progress: the
//! entry point is fixed so that the CLI can call it.

use std::io::Write;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Orders to generate.
    pub orders: u64,
    /// Shops they are spread over (skewed sizes).
    pub shops: u64,
    /// The seed: the same options give the same bytes.
    pub seed: u64,
}

/// What was generated.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GenStats {
    /// Lines written.
    pub lines: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes the workload as JSON Lines to `out`.
pub fn generate(options: &GenOptions, out: &mut dyn Write) -> std::io::Result<GenStats> {
    let _ = (options, out);
    Err(std::io::Error::other("the generator is not written yet"))
}

//! Standard output that tells a closed pipe apart from a real error.

use std::io::{self, Write};

/// True when the error chain holds a broken pipe: the reader of our output
/// went away, which is not the user's problem (ripgrep does the same).
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            // serde_json keeps the io::Error inside, out of the chain.
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(io::ErrorKind::BrokenPipe)
    })
}

/// Writes text to stdout and flushes it.
pub fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Writes human-readable text to stdout: every control character but its
/// line breaks escaped ([`crate::render::terminal_text`]), so that no id in
/// it can send a terminal escape sequence.
pub fn print_text(text: &str) -> io::Result<()> {
    print(&crate::render::terminal_text(text))
}

/// Serialises a value as one line of compact JSON.
pub fn json_line<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    let mut text = serde_json::to_string(value)?;
    text.push('\n');
    Ok(text)
}

//! Opens inputs: a path, `-` for standard input, `.gz` decompressed transparently.

use std::io::BufRead;
use std::path::Path;

use anyhow::Result;

/// Size of the read buffer in front of every input.
pub const READ_BUFFER_BYTES: usize = 1 << 20;

/// Opens `path` for line reading (`-` is standard input; `*.gz` is gunzipped).
pub fn open_input(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let _ = path;
    anyhow::bail!("not implemented")
}

/// Whether `path` means standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Whether `path` is read through gunzip.
pub fn is_compressed(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "gz")
}

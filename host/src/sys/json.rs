//! JSON files the host reads and writes (configs, states, reports), with errors that name
//! the file; writes are atomic.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Reads a JSON file with an error naming it.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Writes `v` as pretty JSON to `path`, atomically.
pub fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    crate::sys::atomic::write_ctx(path, serde_json::to_string_pretty(v)?.as_bytes())
}

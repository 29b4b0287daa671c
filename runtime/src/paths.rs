//! Where the team's data lives on a host: one env var, one default, one error.

use std::path::PathBuf;

/// The env var that points at the data folder (`fer2013/`, `faces/`, `haarcascades/`…).
pub const DATA_ENV: &str = "EMOEDGE_DATA";
/// Its default, relative to the current directory (the repository root).
pub const DATA_DEFAULT: &str = "../shared/data";

/// The data folder is missing.
#[derive(Debug)]
pub struct DataDirMissing {
    /// The path that was looked at.
    pub path: PathBuf,
    /// Whether it came from [`DATA_ENV`].
    pub from_env: bool,
}

impl std::fmt::Display for DataDirMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let abs = std::path::absolute(&self.path).unwrap_or_else(|_| self.path.clone());
        if self.from_env {
            write!(
                f,
                "data folder {} (from ${DATA_ENV}) does not exist",
                abs.display()
            )
        } else {
            write!(
                f,
                "data folder {} does not exist: run from the repository root with the data \
                 folder at {DATA_DEFAULT}, or set ${DATA_ENV}",
                abs.display()
            )
        }
    }
}

impl std::error::Error for DataDirMissing {}

/// The data folder: `$EMOEDGE_DATA` if set, else `../shared/data`; an error naming the path
/// if it is not a directory.
pub fn data_dir() -> Result<PathBuf, DataDirMissing> {
    let (path, from_env) = match std::env::var_os(DATA_ENV) {
        Some(p) if !p.is_empty() => (PathBuf::from(p), true),
        _ => (PathBuf::from(DATA_DEFAULT), false),
    };
    if path.is_dir() {
        Ok(path)
    } else {
        Err(DataDirMissing { path, from_env })
    }
}

/// A sub-folder of the data folder (e.g. `fer2013`), with the same error when missing.
pub fn data_subdir(name: &str) -> Result<PathBuf, DataDirMissing> {
    let root = data_dir()?;
    let path = root.join(name);
    if path.is_dir() {
        Ok(path)
    } else {
        Err(DataDirMissing {
            path,
            from_env: std::env::var_os(DATA_ENV).is_some(),
        })
    }
}

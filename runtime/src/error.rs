//! Why a model folder cannot be loaded or a face cannot be classified.

use std::path::PathBuf;

/// Errors of this crate; each names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The blob is damaged, truncated or of another format version.
    #[error("{path}: {source}")]
    Blob {
        path: PathBuf,
        source: emoedge_core::ModelError,
    },
    /// tract cannot load or optimize the ONNX model.
    #[error("tract cannot load {path}: {message}")]
    TractLoad { path: PathBuf, message: String },
    /// tract failed on a face.
    #[error("tract: {0}")]
    TractRun(String),
    /// The ONNX model does not output one logit per class.
    #[error("the ONNX model outputs {got} values, expected {expected}")]
    Outputs { got: usize, expected: usize },
    /// The engine cannot run the model (arena too small, inconsistent layers).
    #[error("engine: {0}")]
    Engine(#[from] emoedge_core::EngineError),
}

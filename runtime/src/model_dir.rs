//! The model folder, as `emoedge quantize` writes it and every runtime reads it: one list
//! of its files, so that the writer and the readers cannot drift apart.

use crate::Error;
use emoedge_core::Model;
use std::path::{Path, PathBuf};

/// The int8 QOperator ONNX model (tract, onnxruntime).
pub const ONNX: &str = "model.int8.onnx";
/// The same network for the `emoedge-core` engine and the firmware (header + postcard body).
pub const BLOB: &str = "model.blob";
/// Every scale, zero point, multiplier and shift, as JSON.
pub const QUANT: &str = "quant.json";
/// The float network's configuration (Burn).
pub const CONFIG: &str = "config.json";
/// The float network's weights (Burn).
pub const WEIGHTS: &str = "model.bpk";

/// A model folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelDir {
    path: PathBuf,
}

impl ModelDir {
    /// The folder at `path` (nothing is read yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of [`ONNX`].
    pub fn onnx(&self) -> PathBuf {
        self.path.join(ONNX)
    }

    /// Path of [`BLOB`].
    pub fn blob(&self) -> PathBuf {
        self.path.join(BLOB)
    }

    /// Path of [`QUANT`].
    pub fn quant(&self) -> PathBuf {
        self.path.join(QUANT)
    }

    /// Path of [`CONFIG`].
    pub fn config(&self) -> PathBuf {
        self.path.join(CONFIG)
    }

    /// Path of [`WEIGHTS`].
    pub fn weights(&self) -> PathBuf {
        self.path.join(WEIGHTS)
    }

    /// Whether the folder also holds the float network (its config and weights).
    pub fn has_float(&self) -> bool {
        self.weights().is_file() && self.config().is_file()
    }

    /// Whether the folder holds a quantized model (an int8 ONNX).
    pub fn has_int8(&self) -> bool {
        self.onnx().is_file()
    }

    /// Reads the blob; [`ModelBlob::model`] parses it.
    pub fn read_blob(&self) -> Result<ModelBlob, Error> {
        ModelBlob::read(&self.blob())
    }
}

/// A blob's bytes, read from a file.
#[derive(Clone, Debug)]
pub struct ModelBlob {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl ModelBlob {
    /// Reads the blob at `path`.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
        })
    }

    /// The file it came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw bytes, as flashed to a device.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The file it came from and its bytes.
    pub fn into_parts(self) -> (PathBuf, Vec<u8>) {
        (self.path, self.bytes)
    }

    /// Parses and validates the blob (header, CRC, every layer); the error names the file.
    pub fn model(&self) -> Result<Model<'_>, Error> {
        Model::parse(&self.bytes).map_err(|source| Error::Blob {
            path: self.path.clone(),
            source,
        })
    }
}

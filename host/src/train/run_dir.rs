//! A run folder: where `train` keeps its config, checkpoints, best weights and metrics,
//! and what `eval`, `quantize`, `average` and the teachers read back.
//!
//! Layout:
//! - `config.json` — [`ModelConfig`] (rebuilds the network), `train.json` — the
//!   [`crate::train::config::TrainConfig`];
//! - `model.bpk` — weights of the epoch with the best `test` accuracy (what `eval` and
//!   `quantize` read);
//! - `ckpt/epoch-NNNN.{model,optim}.bpk` + `state.json` — the last checkpoint. `state.json` is
//!   written last, so after a kill at any moment it names a complete checkpoint;
//! - `metrics.csv` — one row per epoch; `curves.png` — the same as a picture.

use crate::model::{Model, ModelConfig};
use crate::report::history::EpochMetrics;
use crate::sys::json::read_json;
use anyhow::{Context, Result};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use emoedge_runtime::model_dir;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What `state.json` records: the last complete checkpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs completed (the checkpoint is of this epoch).
    pub epochs_done: usize,
    /// Best evaluation accuracy so far, and its epoch.
    pub best_acc: f64,
    /// Epoch of `best_acc` (its weights are `model.bpk`).
    pub best_epoch: usize,
    /// Every epoch so far.
    pub history: Vec<EpochMetrics>,
}

/// The two files of an epoch's checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checkpoint {
    /// The training model's weights.
    Model,
    /// The optimizer's state.
    Optimizer,
}

/// Paths inside a run folder.
#[derive(Clone, Debug)]
pub struct RunDir(pub PathBuf);

impl RunDir {
    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.0.join(model_dir::CONFIG)
    }
    /// `train.json`.
    pub fn train(&self) -> PathBuf {
        self.0.join("train.json")
    }
    /// `model.bpk` (best weights).
    pub fn weights(&self) -> PathBuf {
        self.0.join(model_dir::WEIGHTS)
    }
    /// `state.json`.
    pub fn state(&self) -> PathBuf {
        self.0.join("ckpt").join("state.json")
    }
    /// `ckpt/epoch-NNNN.{model,optim}.bpk`: the training model's weights after `epoch`
    /// (kept for every epoch) and its optimizer state (only the latest).
    pub fn ckpt(&self, epoch: usize, part: Checkpoint) -> PathBuf {
        let what = match part {
            Checkpoint::Model => "model",
            Checkpoint::Optimizer => "optim",
        };
        self.0
            .join("ckpt")
            .join(format!("epoch-{epoch:04}.{what}.bpk"))
    }
    /// The weights files of `epochs`, in order: what `emoedge average --epochs` reads.
    pub fn epoch_weights(&self, epochs: std::ops::RangeInclusive<usize>) -> Vec<PathBuf> {
        epochs.map(|e| self.ckpt(e, Checkpoint::Model)).collect()
    }
    /// `teacher.bin`: the teachers' probabilities on the training images, cached.
    pub fn teacher_cache(&self) -> PathBuf {
        self.0.join("teacher.bin")
    }
    /// `average.json`: where averaged weights came from and what they scored.
    pub fn average(&self) -> PathBuf {
        self.0.join("average.json")
    }
    /// `curves.png`: loss and accuracy per epoch, redrawn after every epoch.
    pub fn curves(&self) -> PathBuf {
        self.0.join("curves.png")
    }

    /// `metrics.csv`: one row per epoch.
    pub fn metrics(&self) -> PathBuf {
        self.0.join("metrics.csv")
    }
}

/// Writes `model`'s weights to `path` (atomically), as `train` writes `model.bpk`.
pub fn save_module(model: &Model, path: &Path) -> Result<()> {
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .context("serializing weights")?;
    crate::sys::atomic::write_ctx(path, &bytes)
}

/// Loads weights into a freshly built model; errors name the file.
pub fn load_module(model: Model, path: &Path) -> Result<Model> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading weights {}", path.display()))?;
    load_module_bytes(model, bytes, path)
}

/// [`load_module`] on bytes already read from `path` (named in errors).
pub fn load_module_bytes(model: Model, bytes: Vec<u8>, path: &Path) -> Result<Model> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("{} is not a weights file", path.display()))?;
    model
        .try_load_record(record)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| {
            format!(
                "weights in {} do not match the model config",
                path.display()
            )
        })
}

/// Loads the float model of a run folder (config + best weights) onto `device`.
pub fn load_run(dir: &Path, device: &Device) -> Result<(ModelConfig, Model)> {
    let run = RunDir(dir.to_path_buf());
    let config: ModelConfig = read_json(&run.config())?;
    config
        .check()
        .map_err(|e| anyhow::anyhow!("{}: {e}", run.config().display()))?;
    let model = load_module(config.init(device), &run.weights())?;
    Ok((config, model.valid()))
}

//! Weight averaging of a run's last epochs (stochastic weight averaging, SWA).
//!
//! Why: the weights of the last epochs of one run lie in the same basin, and their mean
//! usually generalizes better than any one of them, at no cost at inference: the averaged
//! network has the same blocks, MACs and int8 size. An ensemble of separate runs helped
//! the edge nets by 0.5-1 pp (`docs/experiments.md`) but costs its size in MACs; averaging is
//! the free part of that gain, if there is one. The runs keep every epoch's weights in
//! `ckpt/` for this.
//!
//! BatchNorm's running statistics are not averaged usefully (they belong to each epoch's
//! weights), so [`recalibrate_batchnorm`] re-estimates them on training batches.

use crate::data::load_split;
use crate::eval::predict::evaluate_loss;
use crate::model::{Model, ModelConfig};
use crate::sys::hash::sha256_hex;
use crate::sys::json::{read_json, write_json};
use crate::train::batch::{Batch, TrainSet, batch_producer, images_tensor};
use crate::train::config::{TrainConfig, read_train_config};
use crate::train::run_dir::{RunDir, RunState, load_module_bytes, save_module};
use anyhow::{Context, Result, bail};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use emoedge_runtime::model_dir;
use indicatif::ProgressBar;
use serde::Serialize;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Collects every float tensor of a module (parameters and running statistics) in visit
/// order, adding it to `sums`.
struct Accumulate<'a> {
    sums: &'a mut Vec<Vec<f64>>,
    at: usize,
}

impl ModuleVisitor for Accumulate<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let v: Vec<f32> = param
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_default();
        if self.at == self.sums.len() {
            self.sums.push(vec![0.0; v.len()]);
        }
        for (s, x) in self.sums[self.at].iter_mut().zip(v) {
            *s += x as f64;
        }
        self.at += 1;
    }
}

/// Replaces every float tensor, in visit order, by `sums / n`.
struct Replace<'a> {
    sums: &'a [Vec<f64>],
    n: f64,
    at: usize,
}

impl ModuleMapper for Replace<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let mean: Vec<f32> = self.sums[self.at]
            .iter()
            .map(|s| (s / self.n) as f32)
            .collect();
        self.at += 1;
        param.map(|t| {
            let (shape, device) = (t.shape(), t.device());
            Tensor::from_data(TensorData::new(mean, shape), &device)
        })
    }
}

/// The element-wise mean of the weights of `epochs` in run `dir`, a model on `device`.
/// Errors name the first missing or unreadable checkpoint.
pub fn average_checkpoints(
    dir: &Path,
    config: &ModelConfig,
    epochs: RangeInclusive<usize>,
    device: &Device,
) -> Result<Model> {
    let files = RunDir(dir.to_path_buf()).epoch_weights(epochs);
    Ok(average_files(&files, config, device)?.0)
}

/// The element-wise mean of the weights in `files` (one file: its weights, with no
/// gradient tracking), and each file's SHA-256, from the one read of its bytes.
pub fn average_files(
    files: &[PathBuf],
    config: &ModelConfig,
    device: &Device,
) -> Result<(Model, Vec<String>)> {
    let mut sums = Vec::new();
    let mut hashes = Vec::new();
    let mut last = None;
    for path in files {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "reading {} (averaging needs every epoch's weights; runs from before \
                 `emoedge average` existed kept only the latest epoch's)",
                path.display()
            )
        })?;
        hashes.push(sha256_hex(&bytes));
        let m = load_module_bytes(config.init(device), bytes, path)?;
        m.visit(&mut Accumulate {
            sums: &mut sums,
            at: 0,
        });
        last = Some(m);
    }
    let Some(base) = last else {
        bail!("no weights to average");
    };
    let model = base.map(&mut Replace {
        sums: &sums,
        n: files.len() as f64,
        at: 0,
    });
    Ok((model, hashes))
}

/// Re-estimates every BatchNorm's running mean and variance as the plain average of their
/// values over `batches` training batches (momentum `1 / (k + 1)` at batch `k`, instead of
/// training's exponential 0.1), with the run's own augmentation and mixup: the statistics
/// the averaged weights see in training. `model` must be on an autodiff device (BatchNorm
/// only updates its statistics there); no gradients are taken. The batches are those of a
/// fixed shuffle (epoch 0's, which no training epoch uses), so the result is repeatable.
///
/// Returns the model with its BatchNorm momenta restored, and the number of batches used.
///
/// With `plain`, the images go in without the run's augmentation and mixup: as they are
/// (the inputs direct classification sees), except for a `camera` share of them drawn as
/// the crops a device makes of them (the inputs the camera pipeline sees).
pub fn recalibrate_batchnorm(
    mut model: Model,
    cfg: &TrainConfig,
    images: crate::data::Dataset,
    batches: usize,
    plain: Option<PlainImages>,
) -> (Model, usize) {
    // The targets play no part here: no teachers or FER+ votes are needed.
    let mut cfg = cfg.clone();
    cfg.distill = None;
    cfg.ferplus = 0.0;
    if let Some(PlainImages { camera }) = plain {
        cfg.augment = crate::train::augment::AugmentConfig {
            camera,
            ..crate::train::augment::AugmentConfig::NONE
        };
        cfg.mixup = 0.0;
    }
    let set = Arc::new(TrainSet {
        data: images,
        soft: None,
        teacher: None,
    });
    // No parameter takes part in a gradient: without this, every forward on the autodiff
    // device would keep its graph (nothing calls backward) until memory runs out, as it
    // did on a full pass over FER2013 with weights loaded for training.
    model = model.no_grad();
    let momenta: Vec<Option<f64>> = model
        .convs
        .iter()
        .map(|c| c.bn.as_ref().map(|b| b.momentum))
        .collect();
    let device = model
        .convs
        .first()
        .map(|c| c.conv.weight.val().device())
        .unwrap_or_default();
    let mut used = 0;
    for batch in batch_producer(set, &cfg, 0).iter().take(batches) {
        let m = 1.0 / (used + 1) as f64;
        for c in &mut model.convs {
            if let Some(bn) = &mut c.bn {
                bn.momentum = m;
            }
        }
        let Batch { pixels, labels, .. } = batch;
        let n = labels.len();
        drop(model.forward(images_tensor(pixels, n, &device)));
        used += 1;
    }
    for (c, m) in model.convs.iter_mut().zip(momenta) {
        if let (Some(bn), Some(m)) = (&mut c.bn, m) {
            bn.momentum = m;
        }
    }
    (model, used)
}

/// BatchNorm statistics taken without the run's augmentation (see
/// [`recalibrate_batchnorm`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PlainImages {
    /// Share of the images drawn as the crops a device makes of them (0: all as they are).
    pub camera: f32,
}

/// What to average and where to write it (`emoedge average`).
#[derive(Clone, Debug)]
pub struct AverageOptions {
    /// Run folder (with `epochs`: its `ckpt/` holds the epochs' weights), or any model
    /// folder whose BatchNorm statistics to redo.
    pub run: PathBuf,
    /// Epochs to average; `None`: the folder's `model.bpk` alone.
    pub epochs: Option<RangeInclusive<usize>>,
    /// Model folder to write; it must not hold a model yet.
    pub out: PathBuf,
    /// Training batches for the BatchNorm statistics (`None`: one pass over `train/`).
    pub bn_batches: Option<usize>,
    /// BatchNorm statistics on the training images as they are, not augmented.
    pub bn_plain: bool,
    /// With `bn_plain`, the share of them drawn as device crops.
    pub bn_camera: f32,
    /// Dataset folder holding `train/` and `test/`.
    pub data: PathBuf,
}

/// What `average.json` records: where the weights came from and what they scored.
#[derive(Clone, Debug, Serialize)]
pub struct AverageRecord {
    /// The folder averaged.
    pub run: PathBuf,
    /// The averaged epochs; absent when the folder's `model.bpk` was taken alone.
    pub first_epoch: Option<usize>,
    /// The last averaged epoch.
    pub last_epoch: Option<usize>,
    /// SHA-256 of each weights file taken, in epoch order.
    pub checkpoints_sha256: Vec<String>,
    /// Training batches the BatchNorm statistics came from.
    pub bn_batches: usize,
    /// BatchNorm statistics taken without augmentation (`--bn-plain`).
    pub bn_plain: bool,
    /// Share of those images drawn as device crops (`--bn-camera`).
    pub bn_camera: f32,
    /// Accuracy on `test` of the written model.
    pub test_accuracy: f64,
    /// Its loss on `test`.
    pub test_loss: f64,
    /// The same weights' `test` accuracy before: the run's own figure for the last
    /// averaged epoch, or the folder's model.bpk with its training statistics.
    pub before_test_accuracy: Option<f64>,
}

/// What [`average_run`] did.
#[derive(Clone, Debug)]
pub struct Averaged {
    /// What was averaged, in words ("average of epochs 56-70", "model.bpk").
    pub what: String,
    /// The record written to `average.json`.
    pub record: AverageRecord,
    /// Images skipped while decoding the data.
    pub skipped: Vec<crate::data::Skipped>,
}

/// Averages the weights `o` names, re-estimates BatchNorm's statistics, and writes a model
/// folder (config, training config, the run's metrics and curves, `average.json`, then the
/// weights last, so a folder with `model.bpk` is complete). `bar(what)` gives a progress bar
/// for decoding each split; `note` hears what is about to happen.
pub fn average_run(
    o: &AverageOptions,
    bar: &dyn Fn(&str) -> ProgressBar,
    note: &dyn Fn(&str),
) -> Result<Averaged> {
    let src = RunDir(o.run.clone());
    let out = RunDir(o.out.clone());
    if out.weights().exists() {
        bail!(
            "{} already holds a model: choose another --out",
            o.out.display()
        );
    }
    let config: ModelConfig = read_json(&src.config())?;
    let cfg = read_train_config(&src.train())?;
    let (files, state): (Vec<PathBuf>, Option<RunState>) = match &o.epochs {
        Some(epochs) => {
            let state: RunState = read_json(&src.state())?;
            if *epochs.end() > state.epochs_done {
                bail!(
                    "{} has finished {} epochs; --epochs {}-{} reaches past them",
                    o.run.display(),
                    state.epochs_done,
                    epochs.start(),
                    epochs.end()
                );
            }
            (src.epoch_weights(epochs.clone()), Some(state))
        }
        None => (vec![src.weights()], None),
    };
    // Before the data: a missing checkpoint fails at once.
    let device = crate::sys::backend::device();
    let ad = device.clone().autodiff();
    let (model, hashes) = average_files(&files, &config, &ad)?;
    let (train_set, mut skipped) = load_split(&o.data.join("train"), &bar("decode train"))?;
    let (test_set, skipped_test) = load_split(&o.data.join("test"), &bar("decode test"))?;
    skipped.extend(skipped_test);
    let (train_set, test_set) = (
        train_set.relabelled(&config.labels)?,
        test_set.relabelled(&config.labels)?,
    );

    // What the same weights scored before: the run's own figure for the last averaged
    // epoch (its training statistics), or, for one folder's weights, measured here.
    let (what, before) = match (&o.epochs, &state) {
        (Some(epochs), Some(state)) => {
            let acc = state.history.iter().find(|m| m.epoch == *epochs.end());
            (
                format!("average of epochs {}-{}", epochs.start(), epochs.end()),
                acc.map(|m| m.test_acc),
            )
        }
        _ => (
            model_dir::WEIGHTS.to_string(),
            Some(evaluate_loss(&model.valid(), &test_set, &device).1),
        ),
    };
    let steps = train_set.len().div_ceil(cfg.batch_size);
    let want = o.bn_batches.unwrap_or(steps);
    note(&format!(
        "{what} of {}; BatchNorm statistics from {want} training batches{}",
        o.run.display(),
        match (o.bn_plain, o.bn_camera) {
            (false, _) => String::new(),
            (true, 0.0) => ", not augmented".to_string(),
            (true, c) => format!(", not augmented, {:.0}% as device crops", c * 100.0),
        }
    ));
    let plain = o.bn_plain.then_some(PlainImages {
        camera: o.bn_camera,
    });
    let (model, used) = recalibrate_batchnorm(model, &cfg, train_set, want, plain);
    let model = model.valid();
    let (test_loss, test_acc) = evaluate_loss(&model, &test_set, &device);

    write_json(&out.config(), &config)?;
    write_json(&out.train(), &cfg)?;
    for (from, to) in [(src.metrics(), out.metrics()), (src.curves(), out.curves())] {
        if from.exists() {
            let bytes =
                std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
            crate::sys::atomic::write_ctx(&to, &bytes)?;
        }
    }
    let record = AverageRecord {
        run: o.run.clone(),
        first_epoch: o.epochs.as_ref().map(|e| *e.start()),
        last_epoch: o.epochs.as_ref().map(|e| *e.end()),
        checkpoints_sha256: hashes,
        bn_batches: used,
        bn_plain: o.bn_plain,
        bn_camera: o.bn_camera,
        test_accuracy: test_acc,
        test_loss,
        before_test_accuracy: before,
    };
    write_json(&out.average(), &record)?;
    // The weights last: a folder with model.bpk is complete.
    save_module(&model, &out.weights())?;
    Ok(Averaged {
        what,
        record,
        skipped,
    })
}

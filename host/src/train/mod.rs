//! Training: the loop, seeded, augmenting off the critical path, checkpointing every epoch
//! atomically ([`run_dir`]), and resuming exactly.
//!
//! Exact resume: every source of randomness is derived from `(seed, epoch)` (shuffle,
//! augmentation, dropout), and the LR is a pure function of the step ([`config::lr_at`]), so
//! epoch `k + 1` after a resume sees the same inputs as it would have without the
//! interruption.

pub mod augment;
pub mod average;
pub mod batch;
pub mod config;
pub mod distill;
pub mod run_dir;

use crate::data::Dataset;
use crate::eval::predict::evaluate_loss;
use crate::report::history::{EpochMetrics, write_metrics_csv};
use crate::sys::json::{read_json, write_json};
use anyhow::{Context, Result, bail};
use batch::{Batch, TrainSet, batch_producer, epoch_seed, images_tensor};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::{Bytes, TensorData};
use config::{TrainConfig, lr_at};
use run_dir::{Checkpoint, RunDir, RunState, load_module, save_module};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Progress events of a run; the CLI draws them, tests ignore them.
pub trait Observer {
    /// An epoch starts with `steps` steps.
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _steps: usize) {}
    /// A step finished.
    fn step(&mut self, _step: usize, _loss: f64, _acc: f64, _images_per_s: f64) {}
    /// The epoch finished and was checkpointed.
    fn epoch_end(&mut self, _m: &EpochMetrics) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// A batch's soft targets and per-sample class weights as tensors.
fn targets(batch: &Batch, class_w: &[f32], device: &Device) -> (Tensor<2>, Tensor<1>) {
    let n = batch.labels.len();
    let classes = class_w.len();
    let t = batch.targets.clone();
    let w: Vec<f32> = batch.labels.iter().map(|&l| class_w[l as usize]).collect();
    (
        Tensor::from_data(TensorData::new(t, [n, classes]), device),
        Tensor::from_data(TensorData::new(w, [n]), device),
    )
}

/// Weighted soft-target cross-entropy: `Σ_i w_i · H(t_i, softmax(z_i)) / Σ_i w_i`.
fn loss_fn(logits: Tensor<2>, targets: Tensor<2>, weights: Tensor<1>) -> Tensor<1> {
    let logp = burn::tensor::activation::log_softmax(logits, 1);
    let per = (targets * logp).sum_dim(1).neg().flatten::<1>(0, 1);
    (per * weights.clone()).sum() / weights.sum()
}

fn count_right(logits: &Tensor<2>, labels: &[u8]) -> usize {
    let pred: Vec<i64> = logits
        .clone()
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .unwrap_or_default();
    pred.iter()
        .zip(labels)
        .filter(|(p, l)| **p == **l as i64)
        .count()
}

/// How to start and where to stop a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Continue from the last checkpoint in the run folder.
    pub resume: bool,
    /// Stop after this epoch (the schedule still spans `epochs`), to split a long run
    /// into parts; `--resume` continues it.
    pub stop_after: Option<usize>,
}

/// Trains (or resumes) a run. Returns the state after the last epoch run.
pub fn train(
    dir: &Path,
    cfg: &TrainConfig,
    train_set: impl Into<TrainSet>,
    test_set: &Dataset,
    device: &Device,
    opts: RunOptions,
    obs: &mut dyn Observer,
) -> Result<RunState> {
    let resume = opts.resume;
    let train_set: TrainSet = train_set.into();
    for (split, classes) in [
        ("training", &train_set.data.classes),
        ("test", &test_set.classes),
    ] {
        if *classes != cfg.model.labels {
            bail!(
                "the model classifies {} but the {split} images are labelled {}",
                cfg.model.labels.join(", "),
                classes.join(", ")
            );
        }
    }
    if let Some(soft) = &train_set.soft
        && soft.len() != train_set.data.len()
    {
        bail!(
            "{} soft labels for {} images",
            soft.len(),
            train_set.data.len()
        );
    }
    if cfg.ferplus > 0.0 && train_set.soft.is_none() {
        bail!(
            "the config asks for FER+ targets (ferplus {}) but none were loaded",
            cfg.ferplus
        );
    }
    match (&cfg.distill, &train_set.teacher) {
        (Some(_), None) => bail!("the config names teachers but no teacher targets were given"),
        (None, Some(_)) => bail!("teacher targets were given but the config names no teachers"),
        (_, Some(t)) if t.len() != train_set.data.len() => bail!(
            "{} teacher targets for {} images",
            t.len(),
            train_set.data.len()
        ),
        _ => {}
    }
    cfg.check()?;
    if train_set.data.is_empty() {
        bail!("the training split has no usable images");
    }
    let run = RunDir(dir.to_path_buf());
    let ad = device.clone().autodiff();
    let mut model = cfg.model.init(&ad);
    let mut optim: ModuleOptimizer = AdamWConfig::new()
        .with_weight_decay(cfg.weight_decay)
        .init();
    let mut state = RunState::default();
    if resume {
        state = read_json(&run.state()).context("--resume needs a checkpoint")?;
        let e = state.epochs_done;
        model = load_module(model, &run.ckpt(e, Checkpoint::Model))?;
        let bytes = std::fs::read(run.ckpt(e, Checkpoint::Optimizer))
            .with_context(|| format!("reading {}", run.ckpt(e, Checkpoint::Optimizer).display()))?;
        optim = optim
            .from_bytes(Bytes::from_bytes_vec(bytes))
            .map_err(|e| anyhow::anyhow!("{e:?}"))
            .context("loading optimizer state")?;
    } else {
        if run.state().exists() {
            bail!(
                "{} already holds a run: pass --resume to continue it, or choose another --out",
                dir.display()
            );
        }
        std::fs::create_dir_all(dir.join("ckpt"))
            .with_context(|| format!("creating {}", dir.display()))?;
        device.seed(cfg.seed);
        model = cfg.model.init(&ad);
        if let Some(w) = &cfg.init {
            model = w.load(&cfg.model, model)?;
        }
        // Persist the initial weights as "epoch 0" so a kill during epoch 1 resumes exactly.
        save_module(&model, &run.ckpt(0, Checkpoint::Model))?;
        crate::sys::atomic::write_ctx(
            &run.ckpt(0, Checkpoint::Optimizer),
            &optim.into_bytes().map_err(|e| anyhow::anyhow!("{e:?}"))?,
        )?;
        write_json(&run.state(), &state)?;
    }
    write_json(&run.config(), &cfg.model)?;
    write_json(&run.train(), cfg)?;

    let counts = train_set.data.class_counts();
    let classes = counts.len() as f32;
    let class_w: Vec<f32> = if cfg.class_weights {
        counts
            .iter()
            .map(|&n| train_set.data.len() as f32 / (classes * n.max(1) as f32))
            .collect()
    } else {
        vec![1.0; counts.len()]
    };
    let data = Arc::new(train_set);
    let steps = data.data.len().div_ceil(cfg.batch_size);
    let total = steps * cfg.epochs;
    let last = opts.stop_after.map_or(cfg.epochs, |s| s.min(cfg.epochs));
    for epoch in state.epochs_done + 1..=last {
        obs.epoch_start(epoch, cfg.epochs, steps);
        ad.seed(epoch_seed(cfg.seed, epoch) ^ 1);
        let batches = batch_producer(data.clone(), cfg, epoch);
        let t0 = Instant::now();
        let (mut loss_sum, mut right, mut seen) = (0f64, 0usize, 0usize);
        let mut lr = 0.0;
        for (step, batch) in batches.iter().enumerate() {
            let n = batch.labels.len();
            lr = lr_at(cfg, (epoch - 1) * steps + step, total, steps);
            let (t, w) = targets(&batch, &class_w, &ad);
            let logits = model.forward(images_tensor(batch.pixels, n, &ad));
            right += count_right(&logits, &batch.labels);
            let loss = loss_fn(logits, t, w);
            let l: f64 = loss.clone().into_scalar::<f32>() as f64;
            if !l.is_finite() {
                bail!("loss became {l} at epoch {epoch} step {step}: lower --lr");
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            loss_sum += l * n as f64;
            seen += n;
            obs.step(
                step + 1,
                loss_sum / seen as f64,
                right as f64 / seen as f64,
                seen as f64 / t0.elapsed().as_secs_f64(),
            );
        }
        let train_seconds = t0.elapsed().as_secs_f64();
        let valid = model.valid();
        let t_eval = Instant::now();
        let (test_loss, test_acc) = evaluate_loss(&valid, test_set, device);
        let eval_seconds = t_eval.elapsed().as_secs_f64();
        let m = EpochMetrics {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: right as f64 / seen.max(1) as f64,
            test_loss,
            test_acc,
            lr,
            train_seconds,
            images_per_s: seen as f64 / train_seconds,
            eval_seconds,
        };
        // Checkpoint: weights and optimizer first, the state that names them last.
        save_module(&model, &run.ckpt(epoch, Checkpoint::Model))?;
        crate::sys::atomic::write_ctx(
            &run.ckpt(epoch, Checkpoint::Optimizer),
            &optim.into_bytes().map_err(|e| anyhow::anyhow!("{e:?}"))?,
        )?;
        if test_acc > state.best_acc || state.best_epoch == 0 {
            save_module(&valid, &run.weights())?;
            state.best_acc = test_acc;
            state.best_epoch = epoch;
        }
        state.epochs_done = epoch;
        state.history.push(m.clone());
        write_json(&run.state(), &state)?;
        write_metrics_csv(&run.metrics(), &state.history)?;
        crate::report::plots::curves(&state.history, &run.curves())?;
        // Every epoch's weights stay (0.7-1 MB each) for `emoedge average`; only the
        // optimizer state, twice their size and needed just to resume, is replaced.
        let _ = std::fs::remove_file(run.ckpt(epoch - 1, Checkpoint::Optimizer));
        obs.epoch_end(&m);
    }
    Ok(state)
}

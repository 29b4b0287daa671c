//! The training loop: seeded, augmenting off the critical path, checkpointing every epoch
//! atomically, and resuming exactly.
//!
//! Run folder layout:
//! - `config.json` — [`ModelConfig`] (rebuilds the network), `train.json` — [`TrainConfig`];
//! - `model.bpk` — weights of the epoch with the best `test` accuracy (what `eval` and
//!   `quantize` read);
//! - `ckpt/epoch-NNNN.{model,optim}.bpk` + `state.json` — the last checkpoint. `state.json` is
//!   written last, so after a kill at any moment it names a complete checkpoint;
//! - `metrics.csv` — one row per epoch; `curves.png` — the same as a picture.
//!
//! Exact resume: every source of randomness is derived from `(seed, epoch)` (shuffle,
//! augmentation, dropout), and the LR is a pure function of the step, so epoch `k + 1` after
//! a resume sees the same inputs as it would have without the interruption.

use crate::augment::{AugmentConfig, augment, to_float};
use crate::data::Dataset;
use crate::model::{Model, ModelConfig};
use anyhow::{Context, Result, bail};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, TensorData};
use emoedge_core::NUM_CLASSES;
use emoedge_core::model_files;
use emoedge_core::preprocess::{INPUT_LEN, INPUT_SIDE};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Training hyper-parameters, saved as `train.json`.
#[derive(Config, Debug)]
pub struct TrainConfig {
    /// The network.
    pub model: ModelConfig,
    /// Epochs in the schedule.
    #[config(default = 60)]
    pub epochs: usize,
    /// Images per step.
    #[config(default = 64)]
    pub batch_size: usize,
    /// Peak learning rate (AdamW), reached after warm-up, then cosine to zero.
    #[config(default = 2e-3)]
    pub lr: f64,
    /// Linear warm-up epochs.
    #[config(default = 1)]
    pub warmup_epochs: usize,
    /// AdamW decoupled weight decay.
    #[config(default = 1e-4)]
    pub weight_decay: f32,
    /// Label smoothing of the cross-entropy targets.
    #[config(default = 0.1)]
    pub label_smoothing: f32,
    /// Weigh each class by `N / (7 · n_class)` in the loss (helps rare `disgusted`).
    #[config(default = false)]
    pub class_weights: bool,
    /// Weight of the FER+ vote shares in the target, `0` = FER2013 labels only:
    /// `target = (1 - s) · ((1 - f) · onehot + f · votes) + s / 7` with `s` the smoothing.
    #[config(default = 0.0)]
    pub ferplus: f32,
    /// Distillation: teacher models and their share `g` of the target, which becomes
    /// `(1 - s) · ((1 - f - g) · onehot + f · votes + g · teacher) + s / 7`. `None` (and
    /// absent from older `train.json` files) = no teachers.
    pub distill: Option<crate::teacher::Distill>,
    /// Warm start: the trained weights the run starts from instead of random ones (`None` =
    /// random, also in older `train.json` files).
    pub init: Option<WarmStart>,
    /// Mixup: each training image is blended with another of its batch, pixels and targets
    /// alike, at a share `λ ~ Beta(α, α)` folded to `max(λ, 1 - λ)`, so its own label
    /// stays the larger part. `α = 0` (and absent from older `train.json` files) = off.
    #[config(default = 0.0)]
    pub mixup: f32,
    /// Learning-rate schedule after the warm-up (absent from older `train.json` files =
    /// cosine, the only one before).
    #[config(default = "Schedule::Cosine")]
    pub schedule: Schedule,
    /// Seed of every random choice.
    #[config(default = 42)]
    pub seed: u64,
    /// Augmentation ranges.
    pub augment: AugmentConfig,
}

impl TrainConfig {
    /// The FER+ and teacher shares of the target must each be in `0..=1` and sum to at most 1
    /// (the label keeps the rest).
    pub fn check_shares(&self) -> Result<()> {
        let g = self.distill.as_ref().map_or(0.0, |d| d.weight);
        if !(0.0..=1.0).contains(&self.ferplus)
            || !(0.0..=1.0).contains(&g)
            || self.ferplus + g > 1.0
        {
            bail!(
                "--ferplus {} and --teacher-weight {g} must each be in 0..=1 and sum to at most 1",
                self.ferplus
            );
        }
        Ok(())
    }
}

/// Weights a run starts from: a trained model folder, and the SHA-256 of its `model.bpk`
/// when the run began.
///
/// Why: a long CPU schedule can go on from a finished model with new targets (a stronger
/// teacher, a new learning-rate cycle) instead of starting again from random weights. The
/// hash is checked when the run starts, and kept in `train.json`, so that the record says
/// exactly which weights it grew from even after the folder changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WarmStart {
    /// Model folder (`config.json` + `model.bpk`).
    pub from: PathBuf,
    /// Lower-case hex SHA-256 of `from/model.bpk`.
    pub sha256: String,
}

impl WarmStart {
    /// Records the weights now in `dir`.
    pub fn of(dir: &Path) -> Result<Self> {
        let run = RunDir(dir.to_path_buf());
        let bytes = std::fs::read(run.weights())
            .with_context(|| format!("reading weights {}", run.weights().display()))?;
        Ok(Self {
            from: dir.to_path_buf(),
            sha256: sha256_hex(&bytes),
        })
    }

    /// Loads the weights into `model` (built from `cfg`), after checking that the folder's
    /// network is `cfg` and its weights are the ones recorded.
    fn load(&self, cfg: &ModelConfig, model: Model) -> Result<Model> {
        let run = RunDir(self.from.clone());
        let theirs: ModelConfig = read_json(&run.config())?;
        if theirs.arch != cfg.arch || theirs.blocks != cfg.blocks {
            bail!(
                "warm start: {} holds a {:?} network, this run trains {:?}",
                self.from.display(),
                theirs.arch,
                cfg.arch
            );
        }
        let path = run.weights();
        let bytes =
            std::fs::read(&path).with_context(|| format!("reading weights {}", path.display()))?;
        let got = sha256_hex(&bytes);
        if got != self.sha256 {
            bail!(
                "warm start: {} has SHA-256 {got}, the run recorded {}",
                path.display(),
                self.sha256
            );
        }
        // The bytes just hashed are the ones loaded: no second read that could differ.
        load_module_bytes(model, bytes, &path)
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    crate::quantize::hex_string(&sha2::Sha256::digest(bytes))
}

/// One epoch's figures (a row of `metrics.csv`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (augmented inputs, dropout on).
    pub train_acc: f64,
    /// Mean loss on the evaluation split.
    pub test_loss: f64,
    /// Accuracy on the evaluation split.
    pub test_acc: f64,
    /// Learning rate at the epoch's end.
    pub lr: f64,
    /// Wall time of the training part of the epoch.
    pub train_seconds: f64,
    /// Training images per second.
    pub images_per_s: f64,
}

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

/// Paths inside a run folder.
#[derive(Clone, Debug)]
pub struct RunDir(pub PathBuf);

impl RunDir {
    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.0.join(model_files::CONFIG)
    }
    /// `train.json`.
    pub fn train(&self) -> PathBuf {
        self.0.join("train.json")
    }
    /// `model.bpk` (best weights).
    pub fn weights(&self) -> PathBuf {
        self.0.join(model_files::WEIGHTS)
    }
    /// `state.json`.
    pub fn state(&self) -> PathBuf {
        self.0.join("ckpt").join("state.json")
    }
    /// `ckpt/epoch-NNNN.{model,optim}.bpk`: the training model's weights after `epoch`
    /// (kept for every epoch) and its optimizer state (only the latest).
    pub fn ckpt(&self, epoch: usize, what: &str) -> PathBuf {
        self.0
            .join("ckpt")
            .join(format!("epoch-{epoch:04}.{what}.bpk"))
    }
    /// The weights files of `epochs`, in order: what `emoedge average --epochs` reads.
    pub fn epoch_weights(&self, epochs: std::ops::RangeInclusive<usize>) -> Vec<PathBuf> {
        epochs.map(|e| self.ckpt(e, "model")).collect()
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
    crate::atomic::write_ctx(path, &bytes)
}

/// Loads weights into a freshly built model; errors name the file.
pub fn load_module(model: Model, path: &Path) -> Result<Model> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading weights {}", path.display()))?;
    load_module_bytes(model, bytes, path)
}

/// [`load_module`] on bytes already read from `path` (named in errors).
pub(crate) fn load_module_bytes(model: Model, bytes: Vec<u8>, path: &Path) -> Result<Model> {
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

/// Reads a JSON file with an error naming it.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Reads a run's `train.json`. Settings added after the file was written take their
/// defaults (what that run trained with): Burn's `Config` derive passes no `serde(default)`
/// through, so without this a run from before `mixup` or `schedule` existed could not be
/// resumed, averaged or reused as a teacher cache.
pub fn read_train_config(path: &Path) -> Result<TrainConfig> {
    let mut file: serde_json::Value = read_json(path)?;
    let defaults = serde_json::to_value(TrainConfig::new(
        ModelConfig::for_arch(crate::model::Arch::Edge),
        AugmentConfig::default(),
    ))?;
    if let (Some(have), serde_json::Value::Object(all)) = (file.as_object_mut(), defaults) {
        // The network and the augmentation have no default: a file without them is damaged.
        for (key, value) in all
            .into_iter()
            .filter(|(k, _)| k != "model" && k != "augment")
        {
            have.entry(key).or_insert(value);
        }
    }
    serde_json::from_value(file).with_context(|| format!("parsing {}", path.display()))
}

pub(crate) fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    crate::atomic::write_ctx(path, serde_json::to_string_pretty(v)?.as_bytes())
}

/// Loads the float model of a run folder (config + best weights) onto `device`.
pub fn load_run(dir: &Path, device: &Device) -> Result<(ModelConfig, Model)> {
    let run = RunDir(dir.to_path_buf());
    let config: ModelConfig = read_json(&run.config())?;
    let model = load_module(config.init(device), &run.weights())?;
    Ok((config, model.valid()))
}

/// How the learning rate moves after the warm-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Cosine from the peak to zero at the last step: one run to one model.
    #[default]
    Cosine,
    /// The peak throughout. Why: weight averaging (`emoedge average`) wants epochs that
    /// move around one basin at a steady rate, not ones frozen at the end of a cosine.
    Constant,
}

/// The learning rate at global step `t` of `total`: linear warm-up, then the schedule.
pub fn lr_at(cfg: &TrainConfig, t: usize, total: usize, steps_per_epoch: usize) -> f64 {
    let warm = cfg.warmup_epochs * steps_per_epoch;
    if t < warm {
        return cfg.lr * (t + 1) as f64 / warm as f64;
    }
    if cfg.schedule == Schedule::Constant {
        return cfg.lr;
    }
    let p = (t - warm) as f64 / (total - warm).max(1) as f64;
    cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * p.min(1.0)).cos())
}

fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (epoch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// A batch ready for the device: pixels `[b, 48·48]`, labels and soft targets `[b, 7]`.
pub(crate) struct Batch {
    pub(crate) pixels: Vec<f32>,
    pub(crate) labels: Vec<u8>,
    pub(crate) targets: Vec<f32>,
}

/// The training images and, optionally, per-image soft labels (FER+ vote shares; `None`
/// where an image has none) and teacher probabilities, aligned with the images.
pub struct TrainSet {
    /// The images.
    pub data: Dataset,
    /// Vote shares per image, when training on FER+ targets.
    pub soft: Option<Vec<Option<[f32; NUM_CLASSES]>>>,
    /// Teacher probabilities per image, when distilling.
    pub teacher: Option<Vec<[f32; NUM_CLASSES]>>,
}

impl From<Dataset> for TrainSet {
    fn from(data: Dataset) -> Self {
        TrainSet {
            data,
            soft: None,
            teacher: None,
        }
    }
}

/// Writes the soft target of one image:
/// `(1 - s) · ((1 - f - g) · onehot + f · votes + g · teacher) + s / 7`.
fn target_row(
    label: u8,
    votes: Option<&[f32; NUM_CLASSES]>,
    teacher: Option<&[f32; NUM_CLASSES]>,
    cfg: &TrainConfig,
    out: &mut [f32],
) {
    let s = cfg.label_smoothing;
    let f = if votes.is_some() { cfg.ferplus } else { 0.0 };
    let g = match (teacher, &cfg.distill) {
        (Some(_), Some(d)) => d.weight,
        _ => 0.0,
    };
    for (c, t) in out.iter_mut().enumerate() {
        let onehot = (c == label as usize) as u8 as f32;
        let v = votes.map_or(0.0, |p| p[c]);
        let p = teacher.map_or(0.0, |p| p[c]);
        *t = (1.0 - s) * ((1.0 - f - g) * onehot + f * v + g * p) + s / NUM_CLASSES as f32;
    }
}

/// Mixup within a batch (`pixels` `[n, 48·48]`, `targets` `[n, 7]`): row `k` becomes
/// `λ_k · row_k + (1 - λ_k) · row_{π(k)}` for a random permutation `π` and
/// `λ_k = max(λ, 1 - λ)`, `λ ~ Beta(alpha, alpha)`. The `max` keeps each image's own label
/// (what train accuracy counts) the larger part of its target. Draws only from `rng`, so
/// a resumed epoch mixes the same pairs.
fn mix_batch(pixels: &mut [f32], targets: &mut [f32], alpha: f32, rng: &mut ChaCha8Rng) {
    use rand_distr::{Beta, Distribution};
    let n = targets.len() / NUM_CLASSES;
    let Ok(beta) = Beta::new(alpha, alpha) else {
        return;
    };
    let mut partner: Vec<usize> = (0..n).collect();
    partner.shuffle(rng);
    let (src_px, src_t) = (pixels.to_vec(), targets.to_vec());
    for (k, &j) in partner.iter().enumerate() {
        let l: f32 = beta.sample(rng);
        let l = l.max(1.0 - l);
        let mix = |dst: &mut [f32], src: &[f32], len: usize| {
            let (a, b) = (&src[k * len..(k + 1) * len], &src[j * len..(j + 1) * len]);
            for ((d, &x), &y) in dst[k * len..(k + 1) * len].iter_mut().zip(a).zip(b) {
                *d = l * x + (1.0 - l) * y;
            }
        };
        mix(pixels, &src_px, INPUT_LEN);
        mix(targets, &src_t, NUM_CLASSES);
    }
}

/// Spawns the thread that shuffles and augments one epoch's batches, a few ahead of the
/// training step, so the step never waits on augmentation.
pub(crate) fn batch_producer(
    set: Arc<TrainSet>,
    cfg: &TrainConfig,
    epoch: usize,
) -> std::sync::mpsc::Receiver<Batch> {
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    let cfg = cfg.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(epoch_seed(cfg.seed, epoch));
    std::thread::spawn(move || {
        let data = &set.data;
        let mut order: Vec<usize> = (0..data.len()).collect();
        order.shuffle(&mut rng);
        for chunk in order.chunks(cfg.batch_size) {
            let mut pixels = vec![0f32; chunk.len() * INPUT_LEN];
            let mut labels = Vec::with_capacity(chunk.len());
            let mut targets = vec![0f32; chunk.len() * NUM_CLASSES];
            for (k, &i) in chunk.iter().enumerate() {
                let out = &mut pixels[k * INPUT_LEN..(k + 1) * INPUT_LEN];
                augment(data.image(i), &cfg.augment, &mut rng, out);
                labels.push(data.labels[i]);
                let votes = set.soft.as_ref().and_then(|s| s[i].as_ref());
                let teacher = set.teacher.as_ref().map(|t| &t[i]);
                let row = &mut targets[k * NUM_CLASSES..(k + 1) * NUM_CLASSES];
                target_row(data.labels[i], votes, teacher, &cfg, row);
            }
            if cfg.mixup > 0.0 {
                mix_batch(&mut pixels, &mut targets, cfg.mixup, &mut rng);
            }
            if tx
                .send(Batch {
                    pixels,
                    labels,
                    targets,
                })
                .is_err()
            {
                return;
            }
        }
    });
    rx
}

pub(crate) fn images_tensor(pixels: Vec<f32>, n: usize, device: &Device) -> Tensor<4> {
    Tensor::from_data(
        TensorData::new(pixels, [n, 1, INPUT_SIDE, INPUT_SIDE]),
        device,
    )
}

/// A batch's soft targets and per-sample class weights as tensors.
fn targets(batch: &Batch, class_w: &[f32; NUM_CLASSES], device: &Device) -> (Tensor<2>, Tensor<1>) {
    let n = batch.labels.len();
    let t = batch.targets.clone();
    let w: Vec<f32> = batch.labels.iter().map(|&l| class_w[l as usize]).collect();
    (
        Tensor::from_data(TensorData::new(t, [n, NUM_CLASSES]), device),
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

/// Float logits of a model over a whole dataset (no augmentation), batch by batch.
pub fn predict(
    model: &Model,
    data: &Dataset,
    device: &Device,
    on_batch: &dyn Fn(usize),
) -> Vec<[f32; NUM_CLASSES]> {
    const BATCH: usize = 256;
    let mut out = Vec::with_capacity(data.len());
    for start in (0..data.len()).step_by(BATCH) {
        let n = BATCH.min(data.len() - start);
        let mut px = vec![0f32; n * INPUT_LEN];
        for (k, o) in px.chunks_exact_mut(INPUT_LEN).enumerate() {
            to_float(data.image(start + k), o);
        }
        let logits = model.forward(images_tensor(px, n, device));
        let v: Vec<f32> = logits
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_default();
        out.extend(
            v.chunks_exact(NUM_CLASSES)
                .map(|c| <[f32; NUM_CLASSES]>::try_from(c).unwrap_or_default()),
        );
        on_batch(n);
    }
    out
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
    cfg.check_shares()?;
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
        model = load_module(model, &run.ckpt(e, "model"))?;
        let bytes = std::fs::read(run.ckpt(e, "optim"))
            .with_context(|| format!("reading {}", run.ckpt(e, "optim").display()))?;
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
        save_module(&model, &run.ckpt(0, "model"))?;
        crate::atomic::write_ctx(
            &run.ckpt(0, "optim"),
            &optim.into_bytes().map_err(|e| anyhow::anyhow!("{e:?}"))?,
        )?;
        write_json(&run.state(), &state)?;
    }
    write_json(&run.config(), &cfg.model)?;
    write_json(&run.train(), cfg)?;

    let counts = train_set.data.class_counts();
    let class_w: [f32; NUM_CLASSES] = if cfg.class_weights {
        std::array::from_fn(|c| {
            train_set.data.len() as f32 / (NUM_CLASSES as f32 * counts[c].max(1) as f32)
        })
    } else {
        [1.0; NUM_CLASSES]
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
        let (test_loss, test_acc) = evaluate_loss(&valid, test_set, device);
        let m = EpochMetrics {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: right as f64 / seen.max(1) as f64,
            test_loss,
            test_acc,
            lr,
            train_seconds,
            images_per_s: seen as f64 / train_seconds,
        };
        // Checkpoint: weights and optimizer first, the state that names them last.
        save_module(&model, &run.ckpt(epoch, "model"))?;
        crate::atomic::write_ctx(
            &run.ckpt(epoch, "optim"),
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
        crate::plots::curves(&state.history, &run.curves())?;
        // Every epoch's weights stay (0.7-1 MB each) for `emoedge average`; only the
        // optimizer state, twice their size and needed just to resume, is replaced.
        let _ = std::fs::remove_file(run.ckpt(epoch - 1, "optim"));
        obs.epoch_end(&m);
    }
    Ok(state)
}

/// Mean cross-entropy (no smoothing) and accuracy of a model on a dataset.
pub fn evaluate_loss(model: &Model, data: &Dataset, device: &Device) -> (f64, f64) {
    if data.is_empty() {
        return (f64::NAN, 0.0);
    }
    let logits = predict(model, data, device, &|_| {});
    let (mut loss, mut right) = (0f64, 0usize);
    for (z, &l) in logits.iter().zip(&data.labels) {
        let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = m + z.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        loss += lse - z[l as usize] as f64;
        right += (emoedge_core::emotion::argmax(z) == Some(l as usize)) as usize;
    }
    (loss / data.len() as f64, right as f64 / data.len() as f64)
}

fn write_metrics_csv(path: &Path, rows: &[EpochMetrics]) -> Result<()> {
    let mut s = String::from(
        "epoch,train_loss,train_acc,test_loss,test_acc,lr,train_seconds,images_per_s\n",
    );
    for m in rows {
        s += &format!(
            "{},{:.5},{:.5},{:.5},{:.5},{:.3e},{:.1},{:.1}\n",
            m.epoch,
            m.train_loss,
            m.train_acc,
            m.test_loss,
            m.test_acc,
            m.lr,
            m.train_seconds,
            m.images_per_s
        );
    }
    crate::atomic::write_ctx(path, s.as_bytes())
}

/// Reads a run's `metrics.csv` back (to redraw `curves.png` for a shipped model folder).
pub fn read_metrics_csv(path: &Path) -> Result<Vec<EpochMetrics>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    r.deserialize()
        .enumerate()
        .map(|(i, row)| row.with_context(|| format!("{}, row {}", path.display(), i + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Arch;
    use crate::teacher::Distill;

    fn row(cfg: &TrainConfig, votes: Option<&[f32; 7]>, teacher: Option<&[f32; 7]>) -> [f32; 7] {
        let mut out = [0f32; 7];
        target_row(2, votes, teacher, cfg, &mut out);
        out
    }

    #[test]
    fn schedules_warm_up_then_fall_or_hold() {
        let cfg = TrainConfig::new(ModelConfig::for_arch(Arch::Edge), AugmentConfig::NONE)
            .with_lr(1e-3)
            .with_warmup_epochs(1);
        let (steps, total) = (10, 50);
        assert!((lr_at(&cfg, 4, total, steps) - 5e-4).abs() < 1e-12);
        assert!((lr_at(&cfg, 10, total, steps) - 1e-3).abs() < 1e-12);
        assert!((lr_at(&cfg, 30, total, steps) - 5e-4).abs() < 1e-12);
        assert!(lr_at(&cfg, 49, total, steps) < 1e-5);
        let flat = cfg.clone().with_schedule(Schedule::Constant);
        assert!((lr_at(&flat, 4, total, steps) - 5e-4).abs() < 1e-12);
        for t in [10, 30, 49] {
            assert_eq!(lr_at(&flat, t, total, steps), 1e-3);
        }
        // A train.json written before schedules and mixup existed reads as what it ran.
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("train.json");
        let mut old = serde_json::to_value(flat.clone().with_mixup(0.3)).unwrap();
        for key in ["schedule", "mixup"] {
            old.as_object_mut().unwrap().remove(key);
        }
        std::fs::write(&path, old.to_string()).unwrap();
        let back = read_train_config(&path).unwrap();
        assert_eq!((back.schedule, back.mixup), (Schedule::Cosine, 0.0));
        assert_eq!(back.lr, 1e-3);
        std::fs::write(&path, "{\"epochs\": 3}").unwrap();
        let e = format!("{:#}", read_train_config(&path).unwrap_err());
        assert!(e.contains("train.json") && e.contains("model"), "{e}");
    }

    #[test]
    fn mixup_blends_pairs_and_keeps_each_own_label_ahead() {
        let n = 16;
        // Image k is a constant k + 1, and its target one-hot on class k % 7.
        let mut px: Vec<f32> = (0..n)
            .flat_map(|k| std::iter::repeat_n((k + 1) as f32, INPUT_LEN))
            .collect();
        let mut t = vec![0f32; n * NUM_CLASSES];
        for k in 0..n {
            t[k * NUM_CLASSES + k % NUM_CLASSES] = 1.0;
        }
        let (px0, t0) = (px.clone(), t.clone());
        mix_batch(&mut px, &mut t, 0.4, &mut ChaCha8Rng::seed_from_u64(7));
        let mut mixed = 0;
        for k in 0..n {
            let row = &t[k * NUM_CLASSES..(k + 1) * NUM_CLASSES];
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
            let own = row[k % NUM_CLASSES];
            assert!(own >= 0.5 - 1e-6, "image {k}: own share {own}");
            // The pixels carry the same share: v = own·(k+1) + (1-own)·(j+1) for one j.
            let v = px[k * INPUT_LEN];
            assert!(
                px[k * INPUT_LEN..(k + 1) * INPUT_LEN]
                    .iter()
                    .all(|&x| x == v)
            );
            if own < 1.0 - 1e-6 {
                mixed += 1;
            }
            if own < 0.99 {
                // (far enough from 1 for the partner to be solved for in f32)
                let j1 = (v - own * (k + 1) as f32) / (1.0 - own);
                let j = j1.round() as usize - 1;
                assert!(
                    (j1 - (j + 1) as f32).abs() < 1e-2,
                    "image {k}: partner {j1}"
                );
                assert!((row[j % NUM_CLASSES] - (1.0 - own)).abs() < 1e-5 || j % 7 == k % 7);
            }
        }
        assert!(mixed >= n / 2, "only {mixed} of {n} images were mixed");
        // Same seed, same mix (exact resume); another seed, another.
        let (mut px2, mut t2) = (px0.clone(), t0.clone());
        mix_batch(&mut px2, &mut t2, 0.4, &mut ChaCha8Rng::seed_from_u64(7));
        assert_eq!((&px2, &t2), (&px, &t));
        let (mut px3, mut t3) = (px0, t0);
        mix_batch(&mut px3, &mut t3, 0.4, &mut ChaCha8Rng::seed_from_u64(8));
        assert_ne!(t3, t);
    }

    #[test]
    fn targets_mix_label_votes_and_teacher() {
        let base = TrainConfig::new(ModelConfig::for_arch(Arch::Edge), AugmentConfig::NONE)
            .with_label_smoothing(0.0);
        let votes = [0.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.0];
        let teacher = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(row(&base, None, None), [0., 0., 1., 0., 0., 0., 0.]);
        // Teacher targets without a configured share are ignored, and vice versa.
        assert_eq!(
            row(&base, None, Some(&teacher)),
            [0., 0., 1., 0., 0., 0., 0.]
        );
        let d = base.clone().with_distill(Some(Distill {
            teachers: vec![],
            weight: 0.25,
            teacher_sha256: vec![],
        }));
        assert_eq!(
            row(&d, None, Some(&teacher)),
            [0., 0., 0.75, 0., 0., 0., 0.25]
        );
        assert_eq!(row(&d, None, None), [0., 0., 1., 0., 0., 0., 0.]);
        let both = d.with_ferplus(0.5).with_label_smoothing(0.1);
        let r = row(&both, Some(&votes), Some(&teacher));
        let want = [0.0, 0.0, 0.5, 0.25, 0.0, 0.0, 0.25].map(|t| 0.9 * t + 0.1 / 7.0);
        for (a, b) in r.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{r:?} vs {want:?}");
        }
        assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
}

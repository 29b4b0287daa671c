//! What a run trains with, saved as `train.json`: the network, the schedule, the targets
//! (labels, FER+ votes, teachers), augmentation and the seed.

use crate::model::{Model, ModelConfig};
use crate::sys::json::read_json;
use crate::train::augment::AugmentConfig;
use crate::train::run_dir::{RunDir, load_module_bytes};
use anyhow::{Context, Result, bail};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    pub distill: Option<Distill>,
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
    /// Checks the settings no type rules out: the FER+ and teacher shares of the target must
    /// each be in `0..=1` and sum to at most 1 (the label keeps the rest), and mixup's Beta
    /// parameter must be 0 (off) or positive.
    pub fn check(&self) -> Result<()> {
        let g = self.distill.as_ref().map_or(0.0, |d| d.weight);
        if !(0.0..=1.0).contains(&self.ferplus)
            || !(0.0..=1.0).contains(&g)
            || self.ferplus + g > 1.0
        {
            bail!(
                "the FER+ share ({}) and the teachers' share ({g}) of the targets must each be \
                 in 0..=1 and sum to at most 1",
                self.ferplus
            );
        }
        if !(self.mixup.is_finite() && self.mixup >= 0.0) {
            bail!(
                "mixup's Beta parameter ({}) must be 0 (off) or positive",
                self.mixup
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
            sha256: crate::sys::hash::sha256_hex(&bytes),
        })
    }

    /// Loads the weights into `model` (built from `cfg`), after checking that the folder's
    /// network is `cfg` and its weights are the ones recorded.
    pub(crate) fn load(&self, cfg: &ModelConfig, model: Model) -> Result<Model> {
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
        if theirs.labels != cfg.labels {
            bail!(
                "warm start: {} classifies {}, this run {}",
                self.from.display(),
                theirs.labels.join(", "),
                cfg.labels.join(", ")
            );
        }
        let path = run.weights();
        let bytes =
            std::fs::read(&path).with_context(|| format!("reading weights {}", path.display()))?;
        let got = crate::sys::hash::sha256_hex(&bytes);
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

/// Which models teach, and how much of the target is theirs (saved in `train.json`;
/// [`crate::train::distill`] makes their targets).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Distill {
    /// Model folders (`config.json` + `model.bpk`: a run folder or a shipped model).
    pub teachers: Vec<PathBuf>,
    /// Share of the target given to the teachers' probabilities (0 to 1).
    pub weight: f32,
    /// Lower-case hex SHA-256 of each teacher's `model.bpk` when the run began, in the order
    /// of `teachers`; empty in runs made before it was recorded.
    ///
    /// Why: `--teacher-cache` reuses another run's targets when it had the same teachers;
    /// folder names alone would accept a teacher retrained in place, and with it targets that
    /// no longer match its weights.
    #[serde(default)]
    pub teacher_sha256: Vec<String>,
}

impl Distill {
    /// Teachers `teachers` at share `weight`, recording the weights each folder holds now.
    pub fn of(teachers: &[PathBuf], weight: f32) -> Result<Self> {
        let teacher_sha256 = teachers
            .iter()
            .map(|dir| {
                let path = RunDir(dir.clone()).weights();
                std::fs::read(&path)
                    .map(|b| crate::sys::hash::sha256_hex(&b))
                    .with_context(|| format!("reading teacher weights {}", path.display()))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            teachers: teachers.to_vec(),
            weight,
            teacher_sha256,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Arch;

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
}

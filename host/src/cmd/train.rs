//! `emoedge train`: train (or resume) a model on a FER-style dataset.

use super::{Outcome, progress};
use anyhow::{Context, Result};
use emoedge::data::{CsvClasses, Split, load_dataset};
use emoedge::model::{Arch, ModelConfig, costs};
use emoedge::report::history::EpochMetrics;
use emoedge::train::augment::AugmentConfig;
use emoedge::train::batch::TrainSet;
use emoedge::train::config::Distill;
use emoedge::train::config::{Schedule, TrainConfig, WarmStart, read_train_config};
use emoedge::train::distill::{self, TeacherSource};
use emoedge::train::run_dir::RunDir;
use emoedge::train::{Observer, RunOptions, train};
use indicatif::ProgressBar;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dataset: a folder holding train/ and test/ with one folder per class, or FER2013's
    /// fer2013.csv (its Training rows to train on, PublicTest to test). The class folders
    /// are the model's classes: folders that all name emotions (either FER2013 folder
    /// naming, any letter case) give the seven emotions; any other folders, 2 to 16 of
    /// them, give classes named by the folders in lower case (a-z, 0-9, _ - + .), in
    /// alphabetical order. Images of any size and colour are taken as face crops: their
    /// centred square (a non-square image loses the ends of its longer side) in gray,
    /// area-averaged to 48x48, as the Pi makes its input [default: $EMOEDGE_DATA/fer2013]
    #[arg(long)]
    data: Option<PathBuf>,
    /// With a CSV --data: the class names of its label codes 0, 1, 2, … in order, comma
    /// separated (e.g. --classes no_smile,smile). Without it a CSV's codes are FER2013's
    /// seven emotions.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    classes: Vec<String>,
    /// Run folder for checkpoints, metrics and weights.
    #[arg(long)]
    out: PathBuf,
    /// Network architecture.
    #[arg(long, value_enum, default_value_t = Arch::Edge)]
    arch: Arch,
    /// Epochs in the schedule (with --resume: extends or keeps the run's).
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Label smoothing.
    #[arg(long, default_value_t = 0.1)]
    smoothing: f32,
    /// Weigh classes by inverse frequency in the loss.
    #[arg(long)]
    class_weights: bool,
    /// Turn augmentation off.
    #[arg(long)]
    no_augment: bool,
    /// Share of the training images (0 to 1) replaced, each time they are drawn, by the crop
    /// a device makes of them: the face drawn into a camera-like frame as `emoedge stream`
    /// draws it, cropped where the shipped detector and crop contract put their box
    /// (scatter measured on `train`), area-averaged to 48x48. Trains for the camera pipeline.
    #[arg(
        long,
        value_name = "SHARE",
        default_value_t = 0.0,
        conflicts_with = "no_augment"
    )]
    camera_crops: f32,
    /// Train on FER+ crowd votes: weight of the vote shares in each target (0 to 1; 0 = the
    /// FER2013 labels only). Images FER+ calls not-a-face are dropped from training.
    #[arg(long, default_value_t = 0.0)]
    ferplus: f32,
    /// FER+ label file [default: $EMOEDGE_DATA/ferplus/fer2013new.csv]
    #[arg(long)]
    ferplus_csv: Option<PathBuf>,
    /// Distil from this trained model folder (config.json + model.bpk); repeat to average
    /// several. Their probabilities on each training image and its mirror become part of
    /// the target, cached in the run folder as teacher.bin.
    #[arg(long = "teacher", value_name = "DIR")]
    teachers: Vec<PathBuf>,
    /// Share of each target given to the teachers' probabilities (0 to 1).
    #[arg(long, default_value_t = 0.5)]
    teacher_weight: f32,
    /// Reuse the teacher probabilities another run cached (its teacher.bin) instead of
    /// running the teachers on the training set again (they still score `test` first):
    /// that run's train.json must record the same teacher weights (or, where it records no
    /// weights, name the same --teacher folders), and the file must cover this run's
    /// training images.
    #[arg(long, value_name = "FILE", requires = "teachers")]
    teacher_cache: Option<PathBuf>,
    /// Start from the weights of this trained model folder (same --arch) instead of random
    /// ones; the schedule and optimizer start afresh.
    #[arg(long, value_name = "DIR")]
    init: Option<PathBuf>,
    /// Mixup: blend each training image and its target with another of its batch at a
    /// share drawn from Beta(ALPHA, ALPHA) (0: off; 0.2-0.4 is usual).
    #[arg(long, value_name = "ALPHA", default_value_t = 0.0)]
    mixup: f32,
    /// Learning-rate schedule after the one-epoch warm-up (constant: for `emoedge average`).
    #[arg(long, value_enum, default_value_t = Schedule::Cosine)]
    schedule: Schedule,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Use at most this many training images, spread evenly over the split (quick experiments).
    #[arg(long)]
    limit: Option<usize>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Stop after this epoch, keeping the schedule of --epochs (continue with --resume).
    #[arg(long)]
    stop_after: Option<usize>,
    /// On the CPU, take Burn's own operations instead of emoedge's training kernels
    /// (convolutions, fused BatchNorm + ReLU, max pooling, dropout): slower, for comparisons.
    #[arg(long)]
    burn_ops: bool,
}

struct Bars {
    bar: Option<ProgressBar>,
}

impl Observer for Bars {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize) {
        let pb = indicatif::ProgressBar::new(steps as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:25}] {pos}/{len} {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_prefix(format!("epoch {epoch}/{epochs}"));
        self.bar = Some(pb);
    }
    fn step(&mut self, step: usize, loss: f64, acc: f64, ips: f64) {
        if let Some(pb) = &self.bar {
            pb.set_position(step as u64);
            pb.set_message(format!(
                "loss {loss:.4} acc {:.1}% {ips:.0} img/s",
                acc * 100.0
            ));
        }
    }
    fn epoch_end(&mut self, m: &EpochMetrics) {
        if let Some(pb) = self.bar.take() {
            pb.finish_and_clear();
        }
        eprintln!(
            "epoch {:>3}: train loss {:.4} acc {:.2}% | test loss {:.4} acc {:.2}% | {:.0} img/s, {:.0} s + {:.0} s evaluation",
            m.epoch,
            m.train_loss,
            m.train_acc * 100.0,
            m.test_loss,
            m.test_acc * 100.0,
            m.images_per_s,
            m.train_seconds,
            m.eval_seconds
        );
    }
}

pub fn run(a: Args) -> Result<Outcome> {
    emoedge_train_ops::set_enabled(!a.burn_ops);
    let data = match a.data {
        Some(d) => d,
        None => emoedge_runtime::paths::data_subdir("fer2013")?,
    };
    let run = RunDir(a.out.clone());
    if a.resume && (!a.teachers.is_empty() || a.init.is_some()) {
        anyhow::bail!(
            "--teacher and --init start a run; a resumed run keeps the teachers and the warm start of its train.json"
        );
    }
    if !a.resume && run.state().exists() {
        anyhow::bail!(
            "{} already holds a run: pass --resume to continue it, or choose another --out",
            a.out.display()
        );
    }
    let cfg = if a.resume {
        let mut cfg =
            read_train_config(&run.train()).context("--resume: no run to continue in --out")?;
        if let Some(e) = a.epochs {
            cfg.epochs = e;
        }
        cfg
    } else {
        if !(0.0..=1.0).contains(&a.camera_crops) {
            anyhow::bail!("--camera-crops {}: a share, 0 to 1", a.camera_crops);
        }
        let augment = if a.no_augment {
            AugmentConfig::NONE
        } else {
            AugmentConfig {
                camera: a.camera_crops,
                ..AugmentConfig::default()
            }
        };
        TrainConfig::new(ModelConfig::for_arch(a.arch), augment)
            .with_epochs(a.epochs.unwrap_or(60))
            .with_batch_size(a.batch)
            .with_lr(a.lr)
            .with_label_smoothing(a.smoothing)
            .with_class_weights(a.class_weights)
            .with_ferplus(a.ferplus)
            .with_distill(
                (!a.teachers.is_empty())
                    .then(|| Distill::of(&a.teachers, a.teacher_weight))
                    .transpose()?,
            )
            .with_init(a.init.as_deref().map(WarmStart::of).transpose()?)
            .with_mixup(a.mixup)
            .with_schedule(a.schedule)
            .with_seed(a.seed)
    };
    // Before the data and the teachers are loaded; train() checks again for library callers.
    cfg.check().with_context(|| {
        format!(
            "--ferplus {}, --teacher-weight {}, --mixup {}",
            cfg.ferplus,
            cfg.distill.as_ref().map_or(0.0, |d| d.weight),
            cfg.mixup
        )
    })?;
    let csv_classes = csv_classes(&a.classes, &data, a.resume.then_some(&cfg.model.labels))?;
    let (train_set, mut skipped) = load_dataset(
        &data,
        Split::Train,
        &csv_classes,
        &progress::bar("decode train", 0),
    )?;
    let (test_set, skipped_test) = load_dataset(
        &data,
        Split::Test,
        &csv_classes,
        &progress::bar("decode test", 0),
    )?;
    skipped.extend(skipped_test);
    let train_set = match a.limit {
        Some(n) => train_set.subsample(n),
        None => train_set,
    };
    let (mut train_set, test_set) = emoedge::data::check_classes(train_set, test_set)?;
    let mut cfg = cfg;
    if !a.resume {
        cfg.model = ModelConfig::for_classes(a.arch, train_set.classes.clone());
    }
    let k = costs(&cfg.model.blocks);
    eprintln!(
        "{:?} network of {} classes ({}): {} parameters, {} int8 weight bytes, {:.2} M MACs, peak activation {} B, engine arena {} B; device {}",
        cfg.model.arch,
        cfg.model.labels.len(),
        cfg.model.labels.join(", "),
        k.params,
        k.weight_bytes,
        k.macs as f64 / 1e6,
        k.peak_activation,
        k.arena,
        emoedge::sys::backend::name()
    );
    let soft = if cfg.ferplus > 0.0 {
        let csv = match a.ferplus_csv {
            Some(p) => p,
            None => emoedge_runtime::paths::data_subdir("ferplus")?.join("fer2013new.csv"),
        };
        let rows = emoedge::data::ferplus::load(&csv)?;
        let (kept, soft, dropped) = emoedge::data::ferplus::join(train_set, &rows)?;
        eprintln!(
            "FER+ targets (weight {}) from {}: {dropped} not-a-face images dropped",
            cfg.ferplus,
            csv.display()
        );
        train_set = kept;
        Some(soft)
    } else {
        None
    };
    eprintln!(
        "train: {} images {:?}; test: {} images",
        train_set.len(),
        train_set.class_counts(),
        test_set.len()
    );
    if let Some(w) = rare_classes_warning(&train_set.classes, &train_set.class_counts()) {
        eprintln!("{w}");
    }
    let device = emoedge::sys::backend::device();
    let teacher = match &cfg.distill {
        Some(d) => Some(distill::teacher_targets(
            &run,
            d,
            TeacherSource {
                resume: a.resume,
                reuse: a.teacher_cache.as_deref(),
            },
            (&train_set, &test_set),
            &device,
            &progress::bar,
            &|n| eprintln!("{n}"),
        )?),
        None => None,
    };
    let state = train(
        &a.out,
        &cfg,
        TrainSet {
            data: train_set,
            soft,
            teacher,
        },
        &test_set,
        &device,
        RunOptions {
            resume: a.resume,
            stop_after: a.stop_after,
        },
        &mut Bars { bar: None },
    )?;
    eprintln!(
        "done: {} epochs; best test accuracy {:.2}% at epoch {} (weights: {})",
        state.epochs_done,
        state.best_acc * 100.0,
        state.best_epoch,
        run.weights().display()
    );
    Ok(super::report_skipped(&skipped))
}

/// What a CSV's label codes name: `--classes` when given (a CSV only), the resumed run's
/// classes, else FER2013's seven emotions.
fn csv_classes(
    given: &[String],
    data: &std::path::Path,
    resumed: Option<&Vec<String>>,
) -> Result<CsvClasses> {
    if given.is_empty() {
        return Ok(resumed.map_or(CsvClasses::Fer2013, |l| CsvClasses::for_model(l)));
    }
    if !emoedge::data::is_csv(data) {
        anyhow::bail!(
            "--classes names a CSV's label codes; {} is a folder, whose classes are its class folders",
            data.display()
        );
    }
    emoedge_core::labels::check(given).with_context(|| format!("--classes {}", given.join(",")))?;
    let named = CsvClasses::Named(given.to_vec());
    if let Some(l) = resumed
        && CsvClasses::for_model(l) != named
    {
        anyhow::bail!(
            "--classes differs from the resumed run's classes ({})",
            l.join(",")
        );
    }
    Ok(named)
}

/// A warning naming the classes that hold under 1% of the training images (with every
/// class's count), which the model will rarely predict; `None` when every class has 1% or
/// more (FER2013's rarest, disgusted, has 1.5%).
fn rare_classes_warning(names: &[String], counts: &[usize]) -> Option<String> {
    let total: usize = counts.iter().sum();
    let classes = names.iter().zip(counts.iter().copied());
    let rare: Vec<String> = classes
        .clone()
        .filter(|&(_, n)| n * 100 < total)
        .map(|(e, n)| format!("{e} ({n})"))
        .collect();
    (!rare.is_empty()).then(|| {
        let all: Vec<String> = classes.map(|(e, n)| format!("{e} {n}")).collect();
        format!(
            "warning: under 1% of the {total} training images: {}; the model will rarely predict {}. Counts: {}",
            rare.join(", "),
            if rare.len() == 1 { "it" } else { "them" },
            all.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn rare_classes_are_named_with_the_counts() {
        let names = emoedge::model::emotion_labels();
        assert_eq!(
            super::rare_classes_warning(&names, &[3995, 436, 4097, 7215, 4965, 4830, 3171]),
            None
        );
        let w = super::rare_classes_warning(&names, &[500, 4, 500, 500, 500, 500, 500]).unwrap();
        assert!(
            w.contains("disgusted (4)") && w.contains("happy 500"),
            "{w}"
        );
    }
}

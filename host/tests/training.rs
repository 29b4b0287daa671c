//! Training on a tiny generated dataset: loss falls, checkpoints resume exactly, eval reports.

use burn::prelude::*;
use emoedge::data::{Dataset, load_split};
use emoedge::eval::predict::evaluate_loss;
use emoedge::model::{Arch, ModelConfig};
use emoedge::train::augment::AugmentConfig;
use emoedge::train::config::{TrainConfig, WarmStart};
use emoedge::train::run_dir::{Checkpoint, RunDir, load_run};
use emoedge::train::{Quiet, RunOptions, train};
use emoedge_test_support::{seed_lock, write_split};
use indicatif::ProgressBar;
use std::path::Path;

fn tiny() -> (tempfile::TempDir, Dataset, Dataset) {
    let t = tempfile::tempdir().unwrap();
    write_split(&t.path().join("train"), 8, 0);
    write_split(&t.path().join("test"), 3, 11);
    let (tr, _) = load_split(&t.path().join("train"), &ProgressBar::hidden()).unwrap();
    let (te, _) = load_split(&t.path().join("test"), &ProgressBar::hidden()).unwrap();
    (t, tr, te)
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig::new(
        ModelConfig::for_arch(Arch::Edge),
        AugmentConfig {
            rotate_deg: 5.0,
            ..AugmentConfig::default()
        },
    )
    .with_epochs(epochs)
    .with_batch_size(16)
    .with_lr(3e-3)
    .with_warmup_epochs(0)
    .with_seed(7)
}

/// A whole run of `cfg` in `dir`, uninterrupted and quiet.
fn train_through(
    dir: &Path,
    cfg: &TrainConfig,
    tr: &Dataset,
    te: &Dataset,
    device: &Device,
) -> emoedge::train::run_dir::RunState {
    train(
        dir,
        cfg,
        tr.clone(),
        te,
        device,
        RunOptions::default(),
        &mut Quiet,
    )
    .unwrap()
}

#[test]
fn trains_resumes_exactly_and_evaluates() {
    let _lock = seed_lock();
    let (t, tr, te) = tiny();
    let device = Device::flex();
    let cfg = config(3);

    // Uninterrupted reference run.
    let a = t.path().join("a");
    let sa = train_through(&a, &cfg, &tr, &te, &device);
    assert_eq!(sa.epochs_done, 3);
    let h = &sa.history;
    assert!(
        h[2].train_loss < h[0].train_loss,
        "loss did not fall: {h:?}"
    );

    // The same run, stopped after epoch 1 and resumed.
    let b = t.path().join("b");
    let sb1 = train(
        &b,
        &cfg,
        tr.clone(),
        &te,
        &device,
        RunOptions {
            resume: false,
            stop_after: Some(1),
        },
        &mut Quiet,
    )
    .unwrap();
    assert_eq!(sb1.epochs_done, 1);
    let again = train(
        &b,
        &cfg,
        tr.clone(),
        &te,
        &device,
        RunOptions::default(),
        &mut Quiet,
    );
    assert!(again.unwrap_err().to_string().contains("--resume"));
    let sb = train(
        &b,
        &cfg,
        tr,
        &te,
        &device,
        RunOptions {
            resume: true,
            stop_after: None,
        },
        &mut Quiet,
    )
    .unwrap();
    assert_eq!(sb.epochs_done, 3);
    // Everything but the wall-clock fields must agree: epochs, accuracies and learning
    // rates exactly, losses to within float rounding. Burn Flex's kernels are not bit-
    // reproducible on every host: on one of ours, two uninterrupted first epochs of the
    // same seed (run a's and run b's) differed in their losses' last bit, also in a
    // one-thread rayon pool. A broken resume (fresh optimizer state, another data order
    // or learning rate) moves the later epochs' losses by far more than 1e-9.
    let (ha, hb) = (&sa.history, &sb.history);
    assert_eq!(ha.len(), hb.len());
    for (x, y) in ha.iter().zip(hb) {
        assert_eq!(
            (x.epoch, x.train_acc, x.test_acc, x.lr),
            (y.epoch, y.train_acc, y.test_acc, y.lr),
            "resumed run diverged: {ha:?} vs {hb:?}"
        );
        for (p, q) in [(x.train_loss, y.train_loss), (x.test_loss, y.test_loss)] {
            assert!(
                (p - q).abs() <= 1e-9 * p.abs(),
                "resumed run diverged at epoch {}: loss {p} vs {q}",
                x.epoch
            );
        }
    }
    // Weight files carry random parameter ids, so compare what the weights compute.
    let net = |dir: &Path| {
        let m = emoedge::train::run_dir::load_module(
            cfg.model.init(&device),
            &dir.join("ckpt/epoch-0003.model.bpk"),
        )
        .unwrap();
        emoedge::eval::predict::predict(&m.valid(), &te, &device, &|_| {})
    };
    let (za, zb) = (net(&a), net(&b));
    let worst = za
        .iter()
        .flatten()
        .zip(zb.iter().flatten())
        .map(|(p, q)| (p - q).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= 1e-4,
        "resumed weights differ from the uninterrupted run: logits up to {worst} apart"
    );
    // Every epoch's weights stay (for `emoedge average`); only the latest optimizer state.
    for e in 1..=3 {
        assert!(b.join(format!("ckpt/epoch-{e:04}.model.bpk")).exists());
    }
    assert!(
        !b.join("ckpt/epoch-0002.optim.bpk").exists()
            && b.join("ckpt/epoch-0003.optim.bpk").exists(),
        "only the latest optimizer state is kept"
    );

    // The run folder alone rebuilds the model, and it evaluates.
    let (mc, model) = load_run(&a, &device).unwrap();
    assert_eq!(mc.arch, Arch::Edge);
    let (loss, acc) = evaluate_loss(&model, &te, &device);
    assert!(loss.is_finite());
    assert!(
        (acc - sa.best_acc).abs() < 1e-9,
        "best weights reload to the recorded accuracy"
    );
    let csv = std::fs::read_to_string(RunDir(a).metrics()).unwrap();
    assert_eq!(csv.lines().count(), 4);
}

#[test]
fn damaged_run_folders_are_clear_errors() {
    let _lock = seed_lock(); // load_run builds (randomly initialised) models
    let t = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let err = load_run(t.path(), &device).unwrap_err();
    assert!(format!("{err:#}").contains("config.json"), "{err:#}");
    let run = RunDir(t.path().to_path_buf());
    std::fs::write(
        run.config(),
        serde_json::to_string(&ModelConfig::for_arch(Arch::Edge)).unwrap(),
    )
    .unwrap();
    std::fs::write(run.weights(), b"garbage").unwrap();
    let err = load_run(t.path(), &device).unwrap_err();
    assert!(format!("{err:#}").contains("model.bpk"), "{err:#}");
}

#[test]
fn warm_start_refuses_weights_other_than_recorded() {
    let _lock = seed_lock();
    let (t, tr, te) = tiny();
    let device = Device::flex();
    // A fresh run folder in `t` whose schedule stops at its start (the epoch-0 checkpoint).
    let start = |dir: &str, cfg: &TrainConfig| {
        let opts = RunOptions {
            resume: false,
            stop_after: Some(0),
        };
        train(
            &t.path().join(dir),
            cfg,
            tr.clone(),
            &te,
            &device,
            opts,
            &mut Quiet,
        )
    };
    let a = t.path().join("a");
    start("a", &config(1)).unwrap();
    std::fs::copy(a.join("ckpt/epoch-0000.model.bpk"), a.join("model.bpk")).unwrap();
    let recorded = WarmStart::of(&a).unwrap();
    start("b", &config(1).with_init(Some(recorded.clone()))).unwrap();
    // A config written before the weights changed: its hash no longer matches.
    let stale = WarmStart {
        sha256: "0".repeat(64),
        ..recorded
    };
    let e = start("c", &config(1).with_init(Some(stale)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the run recorded") && e.contains("model.bpk"),
        "{e}"
    );
}

#[test]
fn averaging_means_the_epochs_and_recalibrates_batchnorm() {
    use emoedge::train::average::{average_checkpoints, recalibrate_batchnorm};
    let _lock = seed_lock();
    let (t, tr, te) = tiny();
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let cfg = config(2);
    let dir = t.path().join("run");
    train_through(&dir, &cfg, &tr, &te, &device);
    let run = RunDir(dir.clone());
    let epoch = |e: usize| {
        emoedge::train::run_dir::load_module(cfg.model.init(&ad), &run.ckpt(e, Checkpoint::Model))
            .unwrap()
    };
    let floats = |t: Tensor<1>| {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    };
    let first_conv = |m: &emoedge::model::Model| floats(m.convs[0].conv.weight.val().flatten(0, 3));
    let dense = |m: &emoedge::model::Model| floats(m.denses[0].weight.val().flatten(0, 1));
    let bn_mean =
        |m: &emoedge::model::Model| floats(m.convs[0].bn.as_ref().unwrap().running_mean.value());

    // The mean, tensor by tensor (weights and running statistics alike).
    let (e1, e2) = (epoch(1), epoch(2));
    let avg = average_checkpoints(&dir, &cfg.model, 1..=2, &ad).unwrap();
    for get in [&first_conv as &dyn Fn(&_) -> Vec<f32>, &dense, &bn_mean] {
        let (a, b, m) = (get(&e1), get(&e2), get(&avg));
        assert_ne!(a, b, "two epochs with the same weights prove nothing");
        for ((x, y), z) in a.iter().zip(&b).zip(&m) {
            assert!((0.5 * (x + y) - z).abs() <= 1e-6, "{x} {y} -> {z}");
        }
    }
    let one = average_checkpoints(&dir, &cfg.model, 2..=2, &ad).unwrap();
    assert_eq!(first_conv(&one), first_conv(&e2));
    let missing = average_checkpoints(&dir, &cfg.model, 2..=3, &ad).unwrap_err();
    assert!(
        missing.to_string().contains("epoch-0003.model.bpk"),
        "{missing}"
    );

    // BatchNorm statistics: the plain mean over two equal batches is the mean over all 56
    // images (training's momentum 0.1 would give 0.19·first + 0.1·second + 0.81·old).
    // With `plain`, over the images as they are, though the run augments and mixes.
    let augmented = TrainConfig {
        batch_size: 28,
        mixup: 0.4,
        ..cfg.clone()
    };
    let before = bn_mean(&avg);
    let (cal, used) =
        recalibrate_batchnorm(avg, &augmented, tr.clone(), 5, Some(Default::default()));
    assert_eq!(used, 2, "56 images in batches of 28");
    let mut px = vec![0f32; tr.len() * 48 * 48];
    for (i, o) in px.chunks_exact_mut(48 * 48).enumerate() {
        emoedge_core::preprocess::float_input(tr.image(i), o);
    }
    let x = Tensor::<4>::from_data(TensorData::new(px, [tr.len(), 1, 48, 48]), &ad);
    // The first BatchNorm's input is a plain convolution of the pixels, the same in any batch.
    let want = floats(
        cal.convs[0]
            .conv
            .forward(x)
            .mean_dim(3)
            .mean_dim(2)
            .mean_dim(0)
            .flatten(0, 3),
    );
    let close = |got: &[f32]| {
        got.iter()
            .zip(&want)
            .all(|(g, w)| (g - w).abs() <= 1e-4 * (1.0 + w.abs()))
    };
    let got = bn_mean(&cal);
    assert_ne!(got, before);
    assert!(close(&got), "{got:?} vs {want:?}");
    assert_eq!(cal.convs[0].bn.as_ref().unwrap().momentum, 0.1);
    // Without `plain`, the run's augmentation and mixup shape the statistics.
    let again = average_checkpoints(&dir, &cfg.model, 1..=2, &ad).unwrap();
    let (aug, _) = recalibrate_batchnorm(again, &augmented, tr.clone(), 5, None);
    assert!(
        !close(&bn_mean(&aug)),
        "augmented statistics equal the plain ones"
    );
    // Weights loaded for training track gradients; recalibration must not, or each
    // forward keeps its autodiff graph (a full FER2013 pass ran out of memory that way).
    let loaded = epoch(2);
    assert!(loaded.convs[0].conv.weight.val().is_require_grad());
    let (cal2, _) =
        recalibrate_batchnorm(loaded, &augmented, tr.clone(), 1, Some(Default::default()));
    assert!(!cal2.convs[0].conv.weight.val().is_require_grad());
}

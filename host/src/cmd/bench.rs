//! `emoedge bench`: throughput and latency figures, medians over repeated measurements.

use super::Outcome;
use super::quantize::{BLOB_FILE, ONNX_FILE};
use crate::data::load_split;
use crate::inference::{TractModel, engine_logits, parse_blob};
use crate::model::{Arch, ModelConfig, costs};
use crate::training::TrainConfig;
use anyhow::{Context, Result};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use indicatif::ProgressBar;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Training images/s of one architecture (forward + backward + AdamW step).
    Train {
        /// Network architecture.
        #[arg(long, value_enum, default_value_t = Arch::Edge)]
        arch: Arch,
        /// Images per step.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Measured steps (after 3 warm-up steps).
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Also write the network's config.json here (for bench/train_peer.py).
        #[arg(long)]
        save_config: Option<std::path::PathBuf>,
    },
    /// One 48x48 inference: the engine on the blob vs tract on the int8 ONNX, same model.
    Infer {
        /// Model folder [default: models/edge]
        #[arg(long, default_value = "models/edge")]
        model: PathBuf,
        /// Images (from the FER2013 test split) to time, each `--reps` times.
        #[arg(long, default_value_t = 64)]
        images: usize,
        /// Repetitions per image.
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(a: Args) -> Result<Outcome> {
    match a.what {
        What::Train {
            arch,
            batch,
            steps,
            save_config,
        } => {
            if let Some(path) = save_config {
                let cfg = ModelConfig::for_arch(arch);
                crate::atomic::write_ctx(&path, serde_json::to_string_pretty(&cfg)?.as_bytes())?;
            }
            bench_train(arch, batch, steps)
        }
        What::Infer {
            model,
            images,
            reps,
        } => bench_infer(model, images, reps),
    }
}

fn bench_train(arch: Arch, batch: usize, steps: usize) -> Result<Outcome> {
    let device = crate::backend::device().autodiff();
    device.seed(1);
    let cfg = TrainConfig::new(ModelConfig::for_arch(arch), Default::default());
    let mut model = cfg.model.init(&device);
    let mut optim = AdamWConfig::new().init();
    let k = costs(&cfg.model.blocks);
    let x: Vec<f32> = (0..batch * 48 * 48)
        .map(|i| (i % 251) as f32 / 251.0)
        .collect();
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 7).collect();
    let mut times = Vec::new();
    for step in 0..steps + 3 {
        let t0 = Instant::now();
        let xb = Tensor::<4>::from_data(TensorData::new(x.clone(), [batch, 1, 48, 48]), &device);
        let yb = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [batch]), &device);
        let logits = model.forward(xb);
        let loss = burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits, yb);
        // Read the loss each step, as the training loop does.
        std::hint::black_box(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
        if step >= 3 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    let med = median(&mut times);
    println!(
        "bench train: {arch:?} ({} params, {:.1} M MACs), batch {batch}, {} on {} threads: {:.1} images/s (median of {steps} steps, {:.1} ms/step)",
        k.params,
        k.macs as f64 / 1e6,
        crate::backend::name(),
        rayon::current_num_threads(),
        batch as f64 / med,
        med * 1e3
    );
    Ok(Outcome::Ok)
}

fn bench_infer(dir: PathBuf, images: usize, reps: usize) -> Result<Outcome> {
    let blob_path = dir.join(BLOB_FILE);
    let bytes =
        std::fs::read(&blob_path).with_context(|| format!("reading {}", blob_path.display()))?;
    let model = parse_blob(&bytes, &blob_path)?;
    let tract = TractModel::load(
        &dir.join(ONNX_FILE),
        model.body().output_scale,
        model.output_zero_point(),
    )?;
    let test = emoedge_core::paths::data_subdir("fer2013")?.join("test");
    let (ds, _) = load_split(&test, &ProgressBar::hidden())?;
    let ds = ds.subsample(images);
    let mut arena = vec![0i8; model.arena_len()];
    let (mut te, mut tt) = (Vec::new(), Vec::new());
    for i in 0..ds.len() {
        engine_logits(&model, &mut arena, ds.image(i))?;
        tract.logits(ds.image(i))?;
        for _ in 0..reps {
            let t0 = Instant::now();
            std::hint::black_box(engine_logits(&model, &mut arena, ds.image(i))?);
            te.push(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            std::hint::black_box(tract.logits(ds.image(i))?);
            tt.push(t0.elapsed().as_secs_f64());
        }
    }
    let (e, t) = (median(&mut te), median(&mut tt));
    println!(
        "bench infer: {} ({:.2} M MACs), {} images x {reps}: engine {:.3} ms, tract int8 {:.3} ms (medians, 1 thread each); engine/tract time = {:.2}",
        dir.display(),
        model.macs() as f64 / 1e6,
        ds.len(),
        e * 1e3,
        t * 1e3,
        e / t
    );
    Ok(Outcome::Ok)
}

//! `emoedge bench`: throughput and latency figures, medians over repeated measurements.

use super::Outcome;
use anyhow::Result;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use emoedge::data::load_split;
use emoedge::model::{Arch, ModelConfig, costs};
use emoedge::train::config::TrainConfig;
use emoedge_runtime::{ModelDir, TractModel, engine_logits};
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
        /// Measure the network of this config.json instead of --arch (to try a design's
        /// cost before training it).
        #[arg(long, conflicts_with = "arch")]
        config: Option<std::path::PathBuf>,
        /// Instead, time each convolution block's forward (conv, BatchNorm, ReLU apart) and
        /// backward in isolation on its real input shape: where a training step's time goes.
        #[arg(long)]
        profile: bool,
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
            config,
            profile,
        } => {
            let cfg = match config {
                Some(path) => emoedge::json::read_json::<ModelConfig>(&path)?,
                None => ModelConfig::for_arch(arch),
            };
            if let Some(path) = save_config {
                emoedge::atomic::write_ctx(&path, serde_json::to_string_pretty(&cfg)?.as_bytes())?;
            }
            if profile {
                profile_train(cfg, batch, steps)
            } else {
                bench_train(cfg, batch, steps)
            }
        }
        What::Infer {
            model,
            images,
            reps,
        } => bench_infer(model, images, reps),
    }
}

fn bench_train(model_cfg: ModelConfig, batch: usize, steps: usize) -> Result<Outcome> {
    let arch = model_cfg.arch;
    let device = emoedge::backend::device().autodiff();
    device.seed(1);
    let cfg = TrainConfig::new(model_cfg, Default::default());
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
        "bench train: {arch:?} ({} params, {:.1} M MACs), batch {batch}, {} on {} threads: {:.1} images/s (median of {steps} steps, {:.1} ms/step; {})",
        k.params,
        k.macs as f64 / 1e6,
        emoedge::backend::name(),
        rayon::current_num_threads(),
        batch as f64 / med,
        med * 1e3,
        emoedge::malloc::tuning().map_or("allocator untouched".to_string(), |t| t.to_string())
    );
    Ok(Outcome::Ok)
}

/// Per-block training cost: for each conv block (conv + BatchNorm + ReLU) of the network,
/// its input is made by running the blocks before it; then, `reps` times, the block's
/// forward is timed op by op and its backward (from `sum` of its output, with the input
/// requiring a gradient as inside a network) as a whole. Medians, milliseconds per batch.
fn profile_train(cfg: ModelConfig, batch: usize, reps: usize) -> Result<Outcome> {
    let arch = cfg.arch;
    use emoedge::model::Block;
    let device = emoedge::backend::device().autodiff();
    device.seed(1);
    let model = cfg.init(&device);
    let pool = burn::nn::pool::MaxPool2dConfig::new([2, 2])
        .with_strides([2, 2])
        .init();
    let px: Vec<f32> = (0..batch * 48 * 48)
        .map(|i| (i % 251) as f32 / 251.0)
        .collect();
    let mut x = Tensor::<4>::from_data(TensorData::new(px, [batch, 1, 48, 48]), &device);
    let sync = |d: &Device| d.sync().map_err(|e| anyhow::anyhow!("{e:?}"));
    println!(
        "profile train: {arch:?}, batch {batch}, {} on {} threads, median of {reps} (ms per batch)",
        emoedge::backend::name(),
        rayon::current_num_threads()
    );
    println!(
        "{:>3} {:<10} {:>16} {:>8} {:>8} {:>8} {:>9} {:>8}",
        "#", "block", "output", "conv", "bn", "relu", "backward", "total"
    );
    let (mut ci, mut sum_total) = (0usize, 0f64);
    let mut rows = Vec::new();
    for b in &cfg.blocks {
        match b {
            Block::Conv { .. } | Block::Depthwise { .. } | Block::Pointwise { .. } => {
                let block = &model.convs[ci];
                let input = x.clone().detach();
                let (mut tc, mut tb, mut tr, mut tk) = (vec![], vec![], vec![], vec![]);
                for _ in 0..reps.max(1) {
                    let a = input.clone().require_grad();
                    sync(&device)?;
                    let t0 = Instant::now();
                    let y = block.conv.forward(a);
                    sync(&device)?;
                    let t1 = Instant::now();
                    let y = match &block.bn {
                        Some(bn) => bn.forward(y),
                        None => y,
                    };
                    sync(&device)?;
                    let t2 = Instant::now();
                    let y = burn::tensor::activation::relu(y);
                    sync(&device)?;
                    let t3 = Instant::now();
                    let g = y.sum().backward();
                    sync(&device)?;
                    std::hint::black_box(g);
                    tc.push((t1 - t0).as_secs_f64());
                    tb.push((t2 - t1).as_secs_f64());
                    tr.push((t3 - t2).as_secs_f64());
                    tk.push(t3.elapsed().as_secs_f64());
                }
                x = block.forward(input);
                let dims = x.dims();
                let ms = |v: &mut Vec<f64>| median(v) * 1e3;
                let (c, bn, r, k) = (ms(&mut tc), ms(&mut tb), ms(&mut tr), ms(&mut tk));
                let total = c + bn + r + k;
                sum_total += total;
                let name = match b {
                    Block::Conv { k, stride, .. } => format!("conv{k}x{k}/{stride}"),
                    Block::Depthwise { .. } => "depthwise".into(),
                    _ => "pointwise".into(),
                };
                rows.push((
                    ci,
                    name,
                    format!("{}x{}x{}", dims[1], dims[2], dims[3]),
                    [c, bn, r, k, total],
                ));
                ci += 1;
            }
            Block::MaxPool => x = pool.forward(x),
            _ => {}
        }
    }
    for (i, name, shape, [c, bn, r, k, total]) in &rows {
        println!(
            "{i:>3} {name:<10} {shape:>16} {c:>8.2} {bn:>8.2} {r:>8.2} {k:>9.2} {total:>8.2} ({:.0}%)",
            100.0 * total / sum_total
        );
    }
    println!("conv blocks in all: {sum_total:.1} ms per batch of {batch}");
    Ok(Outcome::Ok)
}

fn bench_infer(dir: PathBuf, images: usize, reps: usize) -> Result<Outcome> {
    let dir = ModelDir::new(dir);
    let blob = dir.read_blob()?;
    let model = blob.model()?;
    let tract = TractModel::load(
        &dir.onnx(),
        model.body().output_scale,
        model.output_zero_point(),
    )?;
    let test = emoedge_runtime::paths::data_subdir("fer2013")?.join("test");
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
        dir.path().display(),
        model.macs() as f64 / 1e6,
        ds.len(),
        e * 1e3,
        t * 1e3,
        e / t
    );
    Ok(Outcome::Ok)
}

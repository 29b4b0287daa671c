//! `emoedge bench`: throughput and latency figures, medians over repeated measurements.

use super::Outcome;
use anyhow::Result;
use emoedge::bench::{infer_latency, profile_train, train_throughput};
use emoedge::data::load_split;
use emoedge::model::{Arch, ModelConfig};
use emoedge_runtime::ModelDir;
use indicatif::ProgressBar;
use std::path::PathBuf;

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
        /// Instead, time each convolution block's forward (conv, then BatchNorm + ReLU) and
        /// backward in isolation on its real input shape: where a training step's time goes.
        #[arg(long)]
        profile: bool,
        /// Take Burn's own CPU operations instead of emoedge's training kernels
        /// (convolutions, fused BatchNorm + ReLU, max pooling, dropout): what they gain.
        #[arg(long)]
        burn_ops: bool,
    },
    /// One 48x48 inference: the engine on the blob vs tract on the int8 ONNX, same model.
    Infer {
        /// Model folder.
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

pub fn run(a: Args) -> Result<Outcome> {
    match a.what {
        What::Train {
            arch,
            batch,
            steps,
            save_config,
            config,
            profile,
            burn_ops,
        } => {
            emoedge_train_ops::set_enabled(!burn_ops);
            let cfg = match config {
                Some(path) => emoedge::sys::json::read_json::<ModelConfig>(&path)?,
                None => ModelConfig::for_arch(arch),
            };
            if let Some(path) = save_config {
                emoedge::sys::atomic::write_ctx(
                    &path,
                    serde_json::to_string_pretty(&cfg)?.as_bytes(),
                )?;
            }
            let threads = rayon::current_num_threads();
            if profile {
                let arch = cfg.arch;
                println!(
                    "profile train: {arch:?}, batch {batch}, {} on {threads} threads, median of {steps} (ms per batch)",
                    emoedge::sys::backend::name(),
                );
                println!(
                    "{:>3} {:<10} {:>16} {:>8} {:>8} {:>9} {:>8}",
                    "#", "block", "output", "conv", "bn+relu", "backward", "total"
                );
                let rows = profile_train(cfg, batch, steps)?;
                let sum: f64 = rows.iter().map(|r| r.total_ms()).sum();
                for r in &rows {
                    println!(
                        "{:>3} {:<10} {:>16} {:>8.2} {:>8.2} {:>9.2} {:>8.2} ({:.0}%)",
                        r.index,
                        r.name,
                        r.output,
                        r.conv_ms,
                        r.bn_relu_ms,
                        r.backward_ms,
                        r.total_ms(),
                        100.0 * r.total_ms() / sum
                    );
                }
                println!("conv blocks in all: {sum:.1} ms per batch of {batch}");
            } else {
                let t = train_throughput(cfg, batch, steps)?;
                println!(
                    "bench train: {:?} ({} params, {:.1} M MACs), batch {batch}, {} on {threads} threads: {:.1} images/s (median of {steps} steps, {:.1} ms/step; {})",
                    t.arch,
                    t.params,
                    t.macs as f64 / 1e6,
                    emoedge::sys::backend::name(),
                    t.images_per_s(),
                    t.step_s * 1e3,
                    emoedge::sys::malloc::tuning()
                        .map_or("allocator untouched".to_string(), |t| t.to_string())
                );
            }
            Ok(Outcome::Ok)
        }
        What::Infer {
            model,
            images,
            reps,
        } => {
            let dir = ModelDir::new(model);
            let test = emoedge_runtime::paths::data_subdir("fer2013")?.join("test");
            let (ds, _) = load_split(&test, &ProgressBar::hidden())?;
            let l = infer_latency(&dir, &ds.subsample(images), reps)?;
            println!(
                "bench infer: {} ({:.2} M MACs), {} images x {reps}: engine {:.3} ms, tract int8 {:.3} ms (medians, 1 thread each); engine/tract time = {:.2}",
                dir.path().display(),
                l.macs as f64 / 1e6,
                l.images,
                l.engine_s * 1e3,
                l.tract_s * 1e3,
                l.engine_s / l.tract_s
            );
            Ok(Outcome::Ok)
        }
    }
}

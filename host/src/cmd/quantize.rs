//! `emoedge quantize`: a training run → a model folder with every deployable form.

use super::{Outcome, progress};
use crate::data::{Dataset, decode_face, list_split};
use crate::export::{blob::to_blob, onnx::to_onnx};
use crate::quantize::{ConvKind, Method, QOp, Scales, calibrate, hex_string, quantize_with};
use crate::training::{RunDir, load_run};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Training run folder (config.json + model.bpk).
    #[arg(long)]
    model: PathBuf,
    /// Model folder to write (replaced atomically).
    #[arg(long)]
    out: PathBuf,
    /// Dataset folder whose train/ split provides calibration images [default: $EMOEDGE_DATA/fer2013]
    #[arg(long)]
    data: Option<PathBuf>,
    /// Calibration images, spread evenly over train/.
    #[arg(long, default_value_t = 2000)]
    calib: usize,
    /// How activation ranges are taken from the calibration images (mse: the best mean and
    /// worst case over 1,000-8,000 images on two models: models/MODEL.md).
    #[arg(long, value_enum, default_value_t = Method::Mse)]
    calibration: Method,
    /// How weight scales are chosen: exact makes tract's requantization exact, so that tract
    /// and the engine agree bit for bit (plain: as before session 8, 1-3 LSB apart on some
    /// outputs).
    #[arg(long, value_enum, default_value_t = Scales::Exact)]
    scales: Scales,
}

/// Names of the files in a model folder.
pub const ONNX_FILE: &str = "model.int8.onnx";
/// The MCU blob.
pub const BLOB_FILE: &str = "model.blob";
/// Quantization parameters.
pub const QUANT_FILE: &str = "quant.json";

fn calibration_set(train_dir: &Path, n: usize) -> Result<Dataset> {
    let files = list_split(train_dir)?;
    let mut ds = Dataset::default();
    let n = n.min(files.len()).max(1);
    for k in 0..n {
        let (path, e) = &files[k * files.len() / n];
        // A bad calibration image is skipped; calibration needs a sample, not every file.
        if let Ok(px) = decode_face(path) {
            ds.pixels.extend_from_slice(&px);
            ds.labels.push(*e as u8);
            ds.paths.push(path.clone());
        }
    }
    if ds.is_empty() {
        bail!("no readable calibration images in {}", train_dir.display());
    }
    Ok(ds)
}

/// Writes `files` into `out` as one step: a sibling temp folder renamed into place.
fn write_folder(out: &Path, files: &[(&str, Vec<u8>)]) -> Result<()> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".quantize-")
        .tempdir_in(parent)?;
    for (name, bytes) in files {
        crate::atomic::write_ctx(&tmp.path().join(name), bytes)?;
    }
    let tmp = tmp.keep();
    if out.exists() {
        let old = parent.join(format!(".old-{}", std::process::id()));
        std::fs::rename(out, &old)
            .with_context(|| format!("moving the old {} aside", out.display()))?;
        std::fs::rename(&tmp, out).with_context(|| format!("renaming into {}", out.display()))?;
        std::fs::remove_dir_all(&old).ok();
    } else {
        std::fs::rename(&tmp, out).with_context(|| format!("renaming into {}", out.display()))?;
    }
    Ok(())
}

pub fn run(a: Args) -> Result<Outcome> {
    let data = match a.data {
        Some(d) => d,
        None => emoedge_core::paths::data_subdir("fer2013")?,
    };
    let device = crate::backend::device();
    let (config, model) = load_run(&a.model, &device)?;
    let pb = progress::bar("calibrate", 0);
    let calib_set = calibration_set(&data.join("train"), a.calib)?;
    pb.finish_and_clear();
    let calib = calibrate(&model, &calib_set, &device, a.calibration)?;
    let q = quantize_with(&model, &calib, a.scales)?;
    let onnx = to_onnx(&q);
    let blob = to_blob(&q)?;
    let run = RunDir(a.model.clone());
    let weights = std::fs::read(run.weights())
        .with_context(|| format!("reading {}", run.weights().display()))?;
    let files = [
        (ONNX_FILE, onnx),
        (BLOB_FILE, blob.clone()),
        (QUANT_FILE, serde_json::to_vec_pretty(&q)?),
        ("config.json", serde_json::to_vec_pretty(&config)?),
        ("model.bpk", weights),
    ];
    write_folder(&a.out, &files)?;
    let parsed = emoedge_core::Model::parse(&blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The global average pool is written as a depthwise convolution of equal weights (so
    // the ONNX needs only standard ops): its bytes are constant, not learnt, and `train`'s
    // count (`model::costs`) leaves them out.
    let pool_bytes: usize = q
        .ops
        .iter()
        .filter_map(|o| match o {
            QOp::Conv(c) if c.kind == ConvKind::GlobalPool => {
                Some(c.input.iter().product::<usize>())
            }
            _ => None,
        })
        .sum();
    eprintln!(
        "wrote {}: {} layers, {} int8 weight bytes ({} learnt + {pool_bytes} the global pool's constant weights), blob {} B, arena {} B, {:.2} M MACs, weights sha256 {}",
        a.out.display(),
        q.ops.iter().filter(|o| matches!(o, QOp::Conv(_))).count(),
        parsed.weight_bytes(),
        parsed.weight_bytes().saturating_sub(pool_bytes),
        blob.len(),
        parsed.arena_len(),
        parsed.macs() as f64 / 1e6,
        &hex_string(&q.weights_hash)[..16]
    );
    if q.scales == Scales::Exact {
        let (inexact, channels) = q.ops.iter().fold((0, 0), |(i, n), o| match o {
            QOp::Conv(c) => (i + c.inexact_channels, n + c.out_c),
            _ => (i, n),
        });
        eprintln!(
            "exact requantization scales on {} of {channels} channels{}",
            channels - inexact,
            if inexact > 0 {
                " (on the others tract and the engine can part by 1 LSB at near-ties)"
            } else {
                ""
            }
        );
    }
    Ok(Outcome::Ok)
}

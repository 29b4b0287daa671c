//! `emoedge quantize`: a training run → a model folder with every deployable form.

use super::{Outcome, progress};
use anyhow::{Context, Result, bail};
use emoedge::data::{Dataset, decode_face, list_split};
use emoedge::export::{blob::to_blob, onnx::to_onnx};
use emoedge::hash::hex_string;
use emoedge::quantize::{ConvKind, Method, QOp, Scales, calibrate, quantize_with};
use emoedge::train::run_dir::{RunDir, load_run};
use emoedge_runtime::model_dir;
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
    /// worst case over 1,000-8,000 images on two models: docs/experiments.md).
    #[arg(long, value_enum, default_value_t = Method::Mse)]
    calibration: Method,
    /// How weight scales are chosen: exact makes tract's requantization exact, so that tract
    /// and the engine agree bit for bit (plain: `max |w| / 127`, the older rule, 1-3 LSB apart
    /// on some outputs).
    #[arg(long, value_enum, default_value_t = Scales::Exact)]
    scales: Scales,
}

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
        emoedge::atomic::write_ctx(&tmp.path().join(name), bytes)?;
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

/// A warning naming the layers whose outputs barely varied over the calibration images
/// ([`emoedge::quantize::Calibration::narrow`]), as quantize's errors name layers; `None` when
/// there are none.
fn narrow_warning(q: &emoedge::quantize::QuantModel) -> Option<String> {
    let narrow = q.calibration.narrow();
    if narrow.is_empty() {
        return None;
    }
    // Quantization points are the convolution-like layers' outputs, in order.
    let layers: Vec<(usize, ConvKind)> = q
        .ops
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match o {
            QOp::Conv(c) => Some((i, c.kind)),
            QOp::MaxPool { .. } => None,
        })
        .collect();
    let named: Vec<String> = narrow
        .iter()
        .map(|n| match layers.get(n.point) {
            Some((i, kind)) => format!("layer {i} ({kind:?}) {:.2e}", n.span),
            None => format!("quantization point {} {:.2e}", n.point, n.span),
        })
        .collect();
    Some(format!(
        "warning: {} layer output(s) barely vary over {} calibration images, under {} of the widest ({:.3}): {}. Such a layer is (nearly) dead, or the calibration images are too few or unlike the data; a dead layer silences the layers after it. Check the deployed forms with `emoedge verify`.",
        narrow.len(),
        q.calibration.images,
        emoedge::quantize::NARROW_FRACTION,
        q.calibration.widest(),
        named.join(", ")
    ))
}

pub fn run(a: Args) -> Result<Outcome> {
    let data = match a.data {
        Some(d) => d,
        None => emoedge_runtime::paths::data_subdir("fer2013")?,
    };
    let device = emoedge::backend::device();
    let (config, model) = load_run(&a.model, &device)?;
    let pb = progress::bar("calibrate", 0);
    let calib_set = calibration_set(&data.join("train"), a.calib)?;
    pb.finish_and_clear();
    let calib = calibrate(&model, &calib_set, &device, a.calibration)?;
    let q = quantize_with(&model, &calib, a.scales)?;
    if let Some(w) = narrow_warning(&q) {
        eprintln!("{w}");
    }
    let onnx = to_onnx(&q);
    let blob = to_blob(&q)?;
    let run = RunDir(a.model.clone());
    let weights = std::fs::read(run.weights())
        .with_context(|| format!("reading {}", run.weights().display()))?;
    let files = [
        (model_dir::ONNX, onnx),
        (model_dir::BLOB, blob.clone()),
        (model_dir::QUANT, serde_json::to_vec_pretty(&q)?),
        (model_dir::CONFIG, serde_json::to_vec_pretty(&config)?),
        (model_dir::WEIGHTS, weights),
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

#[cfg(test)]
mod tests {
    use super::*;
    use emoedge::model::{Arch, ModelConfig};
    use emoedge::quantize::{Calibration, quantize};

    /// An untrained edge net quantized with `spans(i)` as point `i`'s range.
    fn quantized_with(spans: impl Fn(usize) -> f32) -> emoedge::quantize::QuantModel {
        let device = emoedge::backend::device();
        let model = ModelConfig::for_arch(Arch::Edge).init(&device);
        let points = model.convs.len() + 2; // convs, global pool, dense
        let calib = Calibration {
            method: "test",
            images: 9,
            ranges: (0..points).map(|i| (0.0, spans(i))).collect(),
        };
        quantize(&model, &calib).unwrap()
    }

    #[test]
    fn a_collapsed_layer_is_named_as_errors_name_it() {
        assert_eq!(narrow_warning(&quantized_with(|_| 4.0)), None);
        // Point 4 is the edge net's first depthwise layer: op 5, after the max pool, which
        // has no point of its own.
        let w = narrow_warning(&quantized_with(|i| if i == 4 { 4e-6 } else { 4.0 })).unwrap();
        assert!(
            w.starts_with(
                "warning: 1 layer output(s) barely vary over 9 calibration images, under 0.001 of the widest (4.000): layer 5 (Depthwise) 4.00e-6."
            ),
            "{w}"
        );
    }
}

//! `emoedge quantize`: a training run → a model folder with every deployable form.

use super::{Outcome, progress};
use anyhow::Result;
use emoedge::quantize::folder::{QuantizeOptions, quantize_run};
use emoedge::quantize::{ConvKind, Method, QOp, Scales};
use emoedge::sys::hash::hex_string;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Training run folder (config.json + model.bpk).
    #[arg(long)]
    model: PathBuf,
    /// Model folder to write: a new or empty folder, or one `quantize` wrote before, which
    /// is replaced as one step (a folder holding anything else is refused).
    #[arg(long)]
    out: PathBuf,
    /// Dataset whose training split provides calibration images: a folder holding train/, or
    /// FER2013's fer2013.csv (its Training rows) [default: $EMOEDGE_DATA/fer2013]
    #[arg(long)]
    data: Option<PathBuf>,
    /// Calibration images, spread evenly over the training split.
    #[arg(long, default_value_t = 2000)]
    calib: usize,
    /// How activation ranges are taken from the calibration images (mse: the best mean and
    /// worst case over 1,000-8,000 images on two models: docs/experiments.md).
    #[arg(long, value_enum, default_value_t = Method::Mse)]
    calibration: Method,
    /// How weight scales are chosen: exact makes tract's requantization exact, so that tract
    /// and the engine agree bit for bit; plain (`max |w| / 127`) leaves them 1-3 LSB apart on
    /// some outputs (docs/quantization.md).
    #[arg(long, value_enum, default_value_t = Scales::Exact)]
    scales: Scales,
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
    let pb = progress::bar("calibrate", 0);
    let done = quantize_run(&QuantizeOptions {
        run: a.model,
        out: a.out.clone(),
        data,
        calib_images: a.calib,
        method: a.calibration,
        scales: a.scales,
    })?;
    pb.finish_and_clear();
    let q = &done.model;
    if let Some(w) = narrow_warning(q) {
        eprintln!("{w}");
    }
    let parsed = emoedge_core::Model::parse(&done.blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pool_bytes = q.global_pool_weight_bytes();
    eprintln!(
        "wrote {}: {} layers, {} int8 weight bytes ({} learnt + {pool_bytes} the global pool's constant weights), blob {} B, arena {} B, {:.2} M MACs, weights sha256 {}",
        a.out.display(),
        q.ops.iter().filter(|o| matches!(o, QOp::Conv(_))).count(),
        parsed.weight_bytes(),
        parsed.weight_bytes().saturating_sub(pool_bytes),
        done.blob.len(),
        parsed.arena_len(),
        parsed.macs() as f64 / 1e6,
        &hex_string(&q.weights_hash)[..16]
    );
    if q.scales == Scales::Exact {
        let (inexact, channels) = q.inexact_channels();
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
        let device = emoedge::sys::backend::device();
        let model = ModelConfig::for_arch(Arch::Edge).init(&device);
        let points = model.convs.len() + 2; // convs, global pool, dense
        let calib = Calibration {
            method: "test",
            images: 9,
            ranges: (0..points).map(|i| (0.0, spans(i))).collect(),
        };
        quantize(&model, &emoedge::model::emotion_labels(), &calib).unwrap()
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

//! Activation ranges from real images.

use crate::augment::to_float;
use crate::data::Dataset;
use crate::model::Model;
use burn::prelude::*;
use burn::tensor::TensorData;
use emoedge_core::preprocess::{INPUT_LEN, INPUT_SIDE};
use serde::Serialize;

/// Observed `(min, max)` of every quantized tensor, in network order.
#[derive(Clone, Debug, Serialize)]
pub struct Calibration {
    /// Method name, for the record.
    pub method: &'static str,
    /// Images seen.
    pub images: usize,
    /// One range per quantization point.
    pub ranges: Vec<(f32, f32)>,
}

/// How activation ranges are taken from the calibration images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// The extremes over every image: nothing is ever clipped, at the cost of resolution
    /// when outliers are rare.
    Minmax,
    /// The mean over batches of 128 images of each batch's extremes (PyTorch's
    /// moving-average observer with equal weights): rare outliers are clipped, and the
    /// common range gets finer steps. The logits keep min/max (never clipped).
    MeanMinmax,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Minmax => "minmax",
            Method::MeanMinmax => "mean-minmax",
        }
    }
}

/// Calibration: the float model runs over `data` in batches and every quantized tensor's
/// range is taken by `method`.
pub fn calibrate(model: &Model, data: &Dataset, device: &Device, method: Method) -> Calibration {
    const BATCH: usize = 128;
    let mut ranges: Vec<(f32, f32)> = Vec::new();
    let mut sums: Vec<(f64, f64)> = Vec::new();
    let mut batches = 0usize;
    for start in (0..data.len()).step_by(BATCH) {
        let n = BATCH.min(data.len() - start);
        let mut px = vec![0f32; n * INPUT_LEN];
        for (k, o) in px.chunks_exact_mut(INPUT_LEN).enumerate() {
            to_float(data.image(start + k), o);
        }
        let x = Tensor::from_data(TensorData::new(px, [n, 1, INPUT_SIDE, INPUT_SIDE]), device);
        let mut i = 0;
        let mut obs = |lo: f32, hi: f32| {
            if i == ranges.len() {
                ranges.push((lo, hi));
                sums.push((0.0, 0.0));
            } else {
                ranges[i] = (ranges[i].0.min(lo), ranges[i].1.max(hi));
            }
            sums[i].0 += lo as f64;
            sums[i].1 += hi as f64;
            i += 1;
        };
        model.forward_observed(x, Some(&mut obs));
        batches += 1;
    }
    if method == Method::MeanMinmax {
        let b = batches.max(1) as f64;
        // The logits keep their full range: a clipped logit ties with the others clipped
        // at the same bound, and the argmax among ties is arbitrary.
        let last = ranges.len().saturating_sub(1);
        for (i, (r, (lo, hi))) in ranges.iter_mut().zip(&sums).enumerate() {
            if i != last {
                *r = ((lo / b) as f32, (hi / b) as f32);
            }
        }
    }
    Calibration {
        method: method.name(),
        images: data.len(),
        ranges,
    }
}

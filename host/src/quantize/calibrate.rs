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

/// Min/max calibration: the float model runs over `data` in batches and every quantized
/// tensor keeps its extreme values. With ReLU outputs calibrated on `[0, max]`, this keeps
/// every activation in range (no clipping), at the cost of resolution when outliers are rare.
pub fn calibrate(model: &Model, data: &Dataset, device: &Device) -> Calibration {
    const BATCH: usize = 128;
    let mut ranges: Vec<(f32, f32)> = Vec::new();
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
            } else {
                ranges[i] = (ranges[i].0.min(lo), ranges[i].1.max(hi));
            }
            i += 1;
        };
        model.forward_observed(x, Some(&mut obs));
    }
    Calibration {
        method: "minmax",
        images: data.len(),
        ranges,
    }
}

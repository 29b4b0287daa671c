//! The float model on a whole dataset: logits, loss and accuracy.

use crate::data::Dataset;
use crate::model::Model;
use crate::train::batch::images_tensor;
use burn::prelude::*;
use emoedge_core::preprocess::{INPUT_LEN, float_input};

/// Float logits of a model over a whole dataset (no augmentation), batch by batch.
pub fn predict(
    model: &Model,
    data: &Dataset,
    device: &Device,
    on_batch: &dyn Fn(usize),
) -> Vec<Vec<f32>> {
    const BATCH: usize = 256;
    let mut out = Vec::with_capacity(data.len());
    for start in (0..data.len()).step_by(BATCH) {
        let n = BATCH.min(data.len() - start);
        let mut px = vec![0f32; n * INPUT_LEN];
        for (k, o) in px.chunks_exact_mut(INPUT_LEN).enumerate() {
            float_input(data.image(start + k), o);
        }
        let logits = model.forward(images_tensor(px, n, device));
        let v: Vec<f32> = logits
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_default();
        let classes = v.len() / n;
        out.extend(v.chunks_exact(classes.max(1)).map(<[f32]>::to_vec));
        on_batch(n);
    }
    out
}

/// Mean cross-entropy (no smoothing) and accuracy of a model on a dataset.
pub fn evaluate_loss(model: &Model, data: &Dataset, device: &Device) -> (f64, f64) {
    if data.is_empty() {
        return (f64::NAN, 0.0);
    }
    let logits = predict(model, data, device, &|_| {});
    let (mut loss, mut right) = (0f64, 0usize);
    for (z, &l) in logits.iter().zip(&data.labels) {
        let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = m + z.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        loss += lse - z[l as usize] as f64;
        right += (emoedge_core::emotion::argmax(z) == Some(l as usize)) as usize;
    }
    (loss / data.len() as f64, right as f64 / data.len() as f64)
}

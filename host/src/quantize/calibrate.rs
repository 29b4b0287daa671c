//! Activation ranges from real images.

use crate::data::Dataset;
use crate::model::Model;
use anyhow::{Result, anyhow, ensure};
use burn::prelude::*;
use burn::tensor::TensorData;
use emoedge_core::preprocess::float_input;
use emoedge_core::preprocess::{INPUT_LEN, INPUT_SIDE};
use serde::Serialize;

use super::histogram::Histogram;

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

/// A quantization point whose calibrated range is suspiciously narrow ([`Calibration::narrow`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Narrow {
    /// Index of the point, in network order (one per convolution, pool or dense layer).
    pub point: usize,
    /// Its range's width, `max - min`.
    pub span: f32,
}

/// A point narrower than this fraction of the widest is reported by [`Calibration::narrow`].
/// Trained models' 18 points span 0.67 to 14.9 (the shipped one and its `teacher-edge`);
/// in `edge_paths`' dead-layer test, where one BatchNorm is scaled by 1e-7, that layer and
/// every later one but the logits (whose dense bias restores a span of 0.1) span 9e-8 down
/// to 1.3e-11, against the first layer's 1.4.
pub const NARROW_FRACTION: f32 = 1e-3;

impl Calibration {
    /// Each point's span, `max - min`, in network order.
    fn spans(&self) -> impl Iterator<Item = f32> + '_ {
        self.ranges.iter().map(|&(lo, hi)| hi - lo)
    }

    /// The widest point's span.
    pub fn widest(&self) -> f32 {
        self.spans().fold(0.0, f32::max)
    }

    /// Points whose range is below [`NARROW_FRACTION`] of the widest. Why: such a layer
    /// outputs (nearly) the same value for every calibration image. It is dead, or the
    /// calibration set is too small or unlike the data. It still quantizes (its scales are
    /// raised to fit, see `weight_scale`), but the user should hear of it. The widest point
    /// is the yardstick, not the median: a dead layer without biases after it silences
    /// every later layer, which then make up most of the network.
    pub fn narrow(&self) -> Vec<Narrow> {
        let widest = self.widest();
        self.spans()
            .enumerate()
            // A NaN span (a non-finite range) is reported too.
            .filter(|&(_, span)| span.is_nan() || span < NARROW_FRACTION * widest)
            .map(|(point, span)| Narrow { point, span })
            .collect()
    }
}

/// How activation ranges are taken from the calibration images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// The extremes over every image: nothing is ever clipped, at the cost of resolution
    /// when outliers are rare.
    Minmax,
    /// The mean over batches of 128 images of each batch's extremes (PyTorch's
    /// moving-average observer with equal weights): rare outliers are clipped, and the
    /// common range gets finer steps.
    MeanMinmax,
    /// A histogram of every value, clipped where the expected squared int8 error (clipping
    /// plus rounding) is least.
    Mse,
    /// A histogram of every value, clipped at its 99.99th percentile.
    Percentile,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Minmax => "minmax",
            Method::MeanMinmax => "mean-minmax",
            Method::Mse => "histogram-mse",
            Method::Percentile => "histogram-p99.99",
        }
    }
}

/// Images per forward pass.
const BATCH: usize = 128;
/// Histogram bins per tensor: the clip point is chosen to 1/2048 of the tensor's maximum,
/// finer than the 1/255 int8 step.
const BINS: usize = 2048;
/// The fraction of values [`Method::Percentile`] keeps unclipped.
const PERCENTILE: f64 = 0.9999;

/// Runs the float model over `data` and hands `(point, values)` of every quantized tensor
/// of every batch to `f`.
fn observe(
    model: &Model,
    data: &Dataset,
    device: &Device,
    mut f: impl FnMut(usize, &[f32]),
) -> Result<()> {
    for start in (0..data.len()).step_by(BATCH) {
        let n = BATCH.min(data.len() - start);
        let mut px = vec![0f32; n * INPUT_LEN];
        for (k, o) in px.chunks_exact_mut(INPUT_LEN).enumerate() {
            float_input(data.image(start + k), o);
        }
        let x = Tensor::from_data(TensorData::new(px, [n, 1, INPUT_SIDE, INPUT_SIDE]), device);
        let mut i = 0;
        let mut err = None;
        let mut obs = |t: Tensor<1>| {
            match t.into_data().convert::<f32>().try_into_vec::<f32>() {
                Ok(v) => f(i, &v),
                Err(e) => err = Some(anyhow!("activation {i}: {e:?}")),
            }
            i += 1;
        };
        model.forward_observed(x, Some(&mut obs));
        if let Some(e) = err {
            return Err(e);
        }
    }
    Ok(())
}

fn extremes(v: &[f32]) -> (f32, f32) {
    v.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// Calibration: the float model runs over `data` in batches and every quantized tensor's
/// range is taken by `method`. The logits always keep their full range: a clipped logit
/// ties with the others clipped at the same bound, and the argmax among ties is arbitrary.
/// A histogram method needs a second pass (the first finds each tensor's maximum, which
/// fixes its bins) and applies to tensors that are never negative (ReLU outputs and their
/// averages, every one but the logits in our networks); a signed tensor keeps min/max.
pub fn calibrate(
    model: &Model,
    data: &Dataset,
    device: &Device,
    method: Method,
) -> Result<Calibration> {
    ensure!(!data.is_empty(), "no calibration images");
    let mut ranges: Vec<(f32, f32)> = Vec::new();
    let mut sums: Vec<(f64, f64)> = Vec::new();
    observe(model, data, device, |i, v| {
        let (lo, hi) = extremes(v);
        if i == ranges.len() {
            ranges.push((lo, hi));
            sums.push((0.0, 0.0));
        } else {
            ranges[i] = (ranges[i].0.min(lo), ranges[i].1.max(hi));
        }
        sums[i].0 += lo as f64;
        sums[i].1 += hi as f64;
    })?;
    let last = ranges.len().saturating_sub(1);
    match method {
        Method::Minmax => {}
        Method::MeanMinmax => {
            let b = data.len().div_ceil(BATCH) as f64;
            for (r, (lo, hi)) in ranges[..last].iter_mut().zip(&sums) {
                *r = ((lo / b) as f32, (hi / b) as f32);
            }
        }
        Method::Mse | Method::Percentile => {
            let mut hists: Vec<Option<Histogram>> = ranges
                .iter()
                .enumerate()
                .map(|(i, &(lo, hi))| (i != last && lo >= 0.0).then(|| Histogram::new(hi, BINS)))
                .collect();
            observe(model, data, device, |i, v| {
                if let Some(h) = hists.get_mut(i).and_then(Option::as_mut) {
                    h.add(v);
                }
            })?;
            for (r, h) in ranges.iter_mut().zip(&hists) {
                if let Some(h) = h {
                    let hi = if method == Method::Mse {
                        h.mse_clip()
                    } else {
                        h.percentile(PERCENTILE)
                    };
                    *r = (0.0, hi.min(r.1));
                }
            }
        }
    }
    Ok(Calibration {
        method: method.name(),
        images: data.len(),
        ranges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Arch, ModelConfig};
    use std::path::PathBuf;

    /// Ranges of an untrained edge net over 40 noise images, by each method.
    #[test]
    fn histogram_methods_narrow_relu_ranges_and_keep_the_logits() {
        let device = Device::flex();
        let model = ModelConfig::for_arch(Arch::Edge).init(&device);
        let mut data = Dataset::default();
        let mut s = 7u32;
        for k in 0..40u8 {
            let img: [u8; INPUT_LEN] = std::array::from_fn(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 24) as u8
            });
            data.push(&img, k % 7, PathBuf::from(format!("noise-{k}.png")));
        }
        let by = |m| calibrate(&model, &data, &device, m).unwrap();
        let full = by(Method::Minmax);
        let last = full.ranges.len() - 1;
        assert_eq!(full.images, 40);
        for m in [Method::MeanMinmax, Method::Mse, Method::Percentile] {
            let c = by(m);
            assert_eq!(c.ranges.len(), full.ranges.len(), "{m:?}");
            assert_eq!(c.ranges[last], full.ranges[last], "{m:?}: logits clipped");
            for (i, (r, f)) in c.ranges[..last].iter().zip(&full.ranges).enumerate() {
                assert!(f.0 >= 0.0, "point {i} is a ReLU output");
                assert!(
                    r.0 >= f.0 && r.1 <= f.1 && r.1 > 0.0,
                    "{m:?} point {i}: {r:?} vs {f:?}"
                );
            }
        }
        // With one batch, the batch mean of extremes is the extremes.
        assert_eq!(by(Method::MeanMinmax).ranges, full.ranges);
        // The error-minimising clip cuts somewhere.
        let mse = by(Method::Mse);
        assert!(mse.ranges.iter().zip(&full.ranges).any(|(r, f)| r.1 < f.1));
    }

    fn with_spans(spans: &[f32]) -> Calibration {
        Calibration {
            method: "test",
            images: 1,
            ranges: spans.iter().map(|&s| (0.0, s)).collect(),
        }
    }

    /// A trained model's spans (`teacher-edge` quantized, rounded) raise nothing; a
    /// collapsed point among them is named, and so is each point after it that collapsed too.
    #[test]
    fn only_a_collapsed_point_is_narrow() {
        let shipped = [
            9.872, 7.835, 7.462, 6.69, 8.704, 6.868, 9.362, 8.051, 8.178, 6.682, 8.511, 7.089,
            11.666, 7.2, 14.892, 3.748, 1.097, 7.004,
        ];
        assert_eq!(with_spans(&shipped).narrow(), vec![]);
        let mut dead = shipped;
        dead[4] = 1e-6;
        let n = with_spans(&dead).narrow();
        assert_eq!(
            n,
            vec![Narrow {
                point: 4,
                span: 1e-6
            }]
        );
        dead[5..17].fill(1e-9);
        let points: Vec<usize> = with_spans(&dead).narrow().iter().map(|n| n.point).collect();
        assert_eq!(points, (4..17).collect::<Vec<_>>());
        // Just above the fraction of the widest is not narrow.
        assert_eq!(with_spans(&[1.0, 1.1e-3]).narrow(), vec![]);
        assert_eq!(with_spans(&[]).narrow(), vec![]);
        // A NaN range is reported, not passed over.
        assert_eq!(with_spans(&[1.0, f32::NAN, 1.0]).narrow()[0].point, 1);
    }

    #[test]
    fn no_images_is_an_error() {
        let device = Device::flex();
        let model = ModelConfig::for_arch(Arch::Edge).init(&device);
        let e = calibrate(&model, &Dataset::default(), &device, Method::Mse).unwrap_err();
        assert!(e.to_string().contains("no calibration images"), "{e}");
    }
}

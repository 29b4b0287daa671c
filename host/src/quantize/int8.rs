//! The int8 network as the writers (ONNX, blob) take it: integers, plus the scales the
//! ONNX format needs.

use super::{Calibration, Scales};
use anyhow::Result;
use emoedge_core::preprocess::INPUT_ZERO_POINT;
use emoedge_core::quant::Requant;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Quantization of one activation tensor.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ActQuant {
    /// Real value of one step.
    pub scale: f32,
    /// int8 value of real zero.
    pub zero_point: i8,
}

impl ActQuant {
    /// The model input: pixels `p / 255` ↔ int8 `p - 128`.
    pub const INPUT: Self = Self {
        scale: 1.0 / 255.0,
        zero_point: INPUT_ZERO_POINT,
    };

    /// The affine int8 map of `[min, max]` (widened to include 0).
    pub fn from_range(min: f32, max: f32) -> Self {
        let (min, max) = (min.min(0.0), max.max(0.0));
        let span = (max - min).max(1e-8);
        let scale = span / 255.0;
        let zp = (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i8;
        Self {
            scale,
            zero_point: zp,
        }
    }
}

/// What a [`QConv`] is, for the two writers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvKind {
    /// Dense k x k convolution.
    Dense,
    /// Depthwise (group = channels).
    Depthwise,
    /// 1x1 convolution.
    Pointwise,
    /// Global average pool, lowered to a depthwise convolution with equal weights.
    GlobalPool,
    /// Fully connected layer over the whole input (a convolution whose kernel is the input).
    Linear,
}

/// One int8 convolution-like layer. Weights in ONNX order: `[out, in / group, kh, kw]`.
#[derive(Clone, Debug, Serialize)]
pub struct QConv {
    /// Which op.
    pub kind: ConvKind,
    /// Input height, width, channels.
    pub input: [usize; 3],
    /// Output channels.
    pub out_c: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride.
    pub stride: usize,
    /// Padding on each side.
    pub pad: usize,
    /// int8 weights, `[out, in / group, kh, kw]`.
    #[serde(skip)]
    pub weights: Vec<i8>,
    /// Per-output-channel weight scale.
    pub w_scale: Vec<f32>,
    /// int32 bias at scale `input.scale · w_scale[c]`.
    pub bias: Vec<i32>,
    /// Input quantization.
    pub in_q: ActQuant,
    /// Output quantization.
    pub out_q: ActQuant,
    /// Per-channel requantization (`(in · w) / out` in f32, exact).
    pub requant: Vec<(i32, i32)>,
    /// Channels whose weight scale could not be made exact for tract
    /// ([`exact_weight_scale`]): there tract and the engine may part by 1 LSB at near-ties.
    /// 0 with [`Scales::Plain`], which does not try.
    pub inexact_channels: usize,
}

impl QConv {
    /// Group count in ONNX terms.
    pub fn group(&self) -> usize {
        match self.kind {
            ConvKind::Depthwise | ConvKind::GlobalPool => self.input[2],
            _ => 1,
        }
    }

    /// Output height and width.
    pub fn output_hw(&self) -> [usize; 2] {
        let [h, w, _] = self.input;
        [
            (h + 2 * self.pad - self.kernel[0]) / self.stride + 1,
            (w + 2 * self.pad - self.kernel[1]) / self.stride + 1,
        ]
    }

    /// The requantization of channel `c` as the engine applies it.
    pub fn requant_of(&self, c: usize) -> Result<Requant> {
        let (m, s) = self.requant[c];
        Requant::new(m, s).map_err(|e| anyhow::anyhow!("channel {c}: invalid requant {e:?}"))
    }
}

/// One step of the int8 network.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum QOp {
    /// A convolution-like layer.
    Conv(QConv),
    /// 2x2 max pool, stride 2, on `[h, w, c]`; keeps the quantization.
    MaxPool {
        /// Input height, width, channels.
        input: [usize; 3],
    },
}

/// The whole int8 network, ready for both writers.
#[derive(Clone, Debug, Serialize)]
pub struct QuantModel {
    /// Layers in order.
    pub ops: Vec<QOp>,
    /// Input quantization (fixed by the preprocessing contract).
    pub input: ActQuant,
    /// Logit quantization.
    pub output: ActQuant,
    /// SHA-256 over every layer's int8 weights (ONNX order) and int32 bias (LE), in order.
    #[serde(serialize_with = "hex")]
    pub weights_hash: [u8; 32],
    /// The class names, in output order.
    pub labels: Vec<String>,
    /// How activations were calibrated.
    pub calibration: Calibration,
    /// How weight scales were chosen.
    pub scales: Scales,
}

impl QuantModel {
    /// Weight bytes of the global average pool, written as a depthwise convolution of equal
    /// weights (so the ONNX needs only standard ops): constant, not learnt, and left out of
    /// `train`'s count (`model::costs`).
    pub fn global_pool_weight_bytes(&self) -> usize {
        self.ops
            .iter()
            .filter_map(|o| match o {
                QOp::Conv(c) if c.kind == ConvKind::GlobalPool => {
                    Some(c.input.iter().product::<usize>())
                }
                _ => None,
            })
            .sum()
    }

    /// Channels whose requantization scale could not be made exact for tract, and channels
    /// in all.
    pub fn inexact_channels(&self) -> (usize, usize) {
        self.ops.iter().fold((0, 0), |(i, n), o| match o {
            QOp::Conv(c) => (i + c.inexact_channels, n + c.out_c),
            _ => (i, n),
        })
    }
}

fn hex<S: serde::Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::sys::hash::hex_string(h))
}

/// The canonical weights hash: int8 weights then LE int32 biases of each layer, in order.
pub fn weights_hash<'a>(layers: impl IntoIterator<Item = (&'a [i8], &'a [i32])>) -> [u8; 32] {
    let mut h = Sha256::new();
    for (w, b) in layers {
        h.update(w.iter().map(|&v| v as u8).collect::<Vec<_>>());
        for v in b {
            h.update(v.to_le_bytes());
        }
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_include_zero_and_relu_maps_to_minus_128() {
        let q = ActQuant::from_range(0.0, 6.0);
        assert_eq!(q.zero_point, -128);
        assert!((q.scale - 6.0 / 255.0).abs() < 1e-9);
        let q = ActQuant::from_range(1.0, 2.0);
        assert_eq!(q.zero_point, -128);
        let q = ActQuant::from_range(-1.0, 1.0);
        assert!(q.zero_point == 0 || q.zero_point == -1);
    }

    #[test]
    fn input_quantization_is_the_contract() {
        assert_eq!(ActQuant::INPUT.zero_point, -128);
        // p / 255 quantized with scale 1/255 is p: exactly, for every pixel.
        for p in 0..=255u32 {
            let x = p as f32 / 255.0;
            assert_eq!((x / ActQuant::INPUT.scale).round() as u32, p);
        }
    }
}

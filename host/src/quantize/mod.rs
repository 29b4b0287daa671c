//! Float → int8: BatchNorm folding, activation calibration, per-channel weight quantization
//! and fixed-point requantization. All float math of the int8 path lives here; the result,
//! a [`QuantModel`], holds only integers plus the scales the ONNX format needs.
//!
//! The scheme (`../shared/DESIGN.md`): weights int8 symmetric per output channel; bias int32
//! at scale `x_scale · w_scale[c]`; activations int8 per tensor with a zero point. A ReLU
//! output is calibrated on `[0, max]`, so its zero point is `-128` and int8 saturation *is*
//! the ReLU — the same in tract (plain `QLinearConv`) and in the engine (clamp at `-128`).
//! Requantization scales are computed in `f32` as `(x_scale · w_scale) / y_scale`, the ONNX
//! graph's order, and turned into multiplier + shift exactly ([`Requant::from_f32`]). Each
//! channel's weight scale is first raised slightly ([`exact_weight_scale`]) so that this
//! scale is also what tract computes after rewriting the division as a product with the
//! reciprocal, and a multiple of `2^-16`: tract multiplies the accumulator by it in `f32`,
//! and only then is that product exact for every output that is not saturated, so that
//! tract and the engine round every such output alike.

mod calibrate;
mod histogram;

pub use calibrate::{Calibration, Method, NARROW_FRACTION, Narrow, calibrate};

use crate::model::{Block, Model};
use anyhow::{Context, Result, bail, ensure};
use burn::prelude::*;
use emoedge_core::preprocess::{INPUT_SIDE, INPUT_ZERO_POINT};
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
    /// How activations were calibrated.
    pub calibration: Calibration,
    /// How weight scales were chosen.
    pub scales: Scales,
}

fn hex<S: serde::Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex_string(h))
}

/// Lowercase hex of a hash.
pub fn hex_string(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
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

fn floats<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// How each channel's weight scale is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scales {
    /// `max |w| / 127`, raised where needed so that tract's `f32` requantization is exact
    /// and tract and the engine give bit-identical outputs ([`tract_friendly_scale`]; where
    /// no exact scale is in reach, a rare near-tie can still part them by 1 LSB).
    #[default]
    Exact,
    /// `max |w| / 127` as it is: the older rule. tract and the
    /// engine then differ by 1-3 LSB on some outputs (kept to reproduce those artifacts and
    /// to test `verify`'s bounds).
    Plain,
}

/// A folded float layer: weights `[out, in/group, kh, kw]` and bias.
struct Folded {
    w: Vec<f32>,
    b: Vec<f32>,
}

fn fold(conv: &crate::model::ConvBn) -> Result<Folded> {
    let w = floats(conv.conv.weight.val())?;
    let out = conv.conv.weight.val().dims()[0];
    let mut b = match &conv.conv.bias {
        Some(b) => floats(b.val())?,
        None => vec![0.0; out],
    };
    let mut w = w;
    if let Some(bn) = &conv.bn {
        let (g, beta) = (floats(bn.gamma.val())?, floats(bn.beta.val())?);
        let (mean, var) = (
            floats(bn.running_mean.value())?,
            floats(bn.running_var.value())?,
        );
        let per = w.len() / out;
        for o in 0..out {
            let s = g[o] / (var[o] + bn.epsilon as f32).sqrt();
            for v in &mut w[o * per..(o + 1) * per] {
                *v *= s;
            }
            b[o] = (b[o] - mean[o]) * s + beta[o];
        }
    }
    Ok(Folded { w, b })
}

/// Where a layer sits and what shape it has: everything of a [`QConv`] but its numbers.
#[derive(Clone)]
struct Geometry {
    kind: ConvKind,
    input: [usize; 3],
    out_c: usize,
    kernel: [usize; 2],
    stride: usize,
    pad: usize,
}

/// The largest quantized bias a channel may have: `2^30` leaves the accumulator another
/// `2^30` for the products, which need at most `taps · 2^15`. See [`weight_scale`].
const BIAS_LIMIT: f64 = (1u32 << 30) as f64;

/// The smallest requantization scale a channel may have: `2^-30`, above the `2^-32` that
/// [`Requant`]'s largest shift can express, with room for `f32` rounding. See
/// [`weight_scale`].
const MIN_REQUANT: f64 = 1.0 / (1u32 << 30) as f64;

/// The weight scale of one output channel: `max |w| / 127`, raised where that would put the
/// bias beyond [`BIAS_LIMIT`] or the requantization scale below [`MIN_REQUANT`].
///
/// Why: a layer whose input calibration saw at or near zero everywhere (after a dead ReLU
/// layer, say) has a tiny input scale, down to [`ActQuant::from_range`]'s floor of
/// `1e-8 / 255`. Its bias at `in_scale · w_scale` can then exceed `i32`, and its
/// requantization scale fall below what a shift can express; quantizing failed on such
/// models (an untrained network in CI did it). The raised scale moves the output by at most
/// `taps · 255 · 2^-31` of the bias, or `taps · 255 · 2^-31` of an output step, about 1e-4
/// for a 3x3x128 kernel: nothing that survives rounding. The shipped model is far from both
/// bounds: it re-quantizes to the same blob and ONNX bytes as before.
fn weight_scale(row: &[f32], bias: f32, in_scale: f32, out_scale: f32) -> f32 {
    let max_abs = row.iter().fold(0f32, |m, v| m.max(v.abs()));
    let from_weights = if max_abs > 0.0 { max_abs / 127.0 } else { 1.0 };
    let for_bias = bias.abs() as f64 / (in_scale as f64 * BIAS_LIMIT);
    let for_requant = MIN_REQUANT * out_scale as f64 / in_scale as f64;
    from_weights.max(for_bias.max(for_requant) as f32)
}

/// Quantizes folded float weights per output channel and the bias at `in_scale · w_scale`.
fn quantize_layer(
    f: &Folded,
    g: Geometry,
    in_q: ActQuant,
    out_q: ActQuant,
    scales: Scales,
    first: bool,
) -> Result<QConv> {
    let out_c = g.out_c;
    let per = f.w.len() / out_c;
    let (mut wq, mut ws, mut bq, mut rq) = (
        Vec::with_capacity(f.w.len()),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut inexact_channels = 0;
    for o in 0..out_c {
        let row = &f.w[o * per..(o + 1) * per];
        ensure!(
            f.b[o].is_finite() && row.iter().all(|v| v.is_finite()),
            "channel {o} has a weight or bias that is not a finite number"
        );
        let scale = weight_scale(row, f.b[o], in_q.scale, out_q.scale);
        let scale = match scales {
            Scales::Exact => {
                let (scale, exact) = tract_friendly_scale(scale, in_q.scale, out_q.scale, first);
                inexact_channels += usize::from(!exact);
                scale
            }
            Scales::Plain => scale,
        };
        wq.extend(
            row.iter()
                .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8),
        );
        let bias = (f.b[o] as f64 / (in_q.scale as f64 * scale as f64)).round();
        ensure!(
            bias.abs() < i32::MAX as f64,
            "bias of channel {o} ({}) overflows int32 at input scale {:e}",
            f.b[o],
            in_q.scale
        );
        bq.push(bias as i32);
        let r = Requant::from_f32((in_q.scale * scale) / out_q.scale)
            .with_context(|| format!("channel {o}: requant scale out of range"))?;
        rq.push((r.mult(), r.shift()));
        ws.push(scale);
    }
    let Geometry {
        kind,
        input,
        out_c,
        kernel,
        stride,
        pad,
    } = g;
    Ok(QConv {
        kind,
        input,
        out_c,
        kernel,
        stride,
        pad,
        weights: wq,
        w_scale: ws,
        bias: bq,
        in_q,
        out_q,
        requant: rq,
        inexact_channels,
    })
}

/// Requantization scales are made multiples of `2^-REQUANT_QUANTUM_EXP`.
///
/// Why: tract requantizes a convolution's accumulator as `round(acc · scale)` with the
/// product in `f32`, the engine exactly; both round ties to even. An output that int8 does
/// not saturate has `|acc · scale| < 2^8` (the zero point is at most 255 steps from either
/// bound); with `scale = n · 2^-16`, `|acc · n| < 2^24`, which `f32` holds exactly, so the
/// product is exact in both and they round alike. With any other scale `f32` rounds the
/// product first, and near a tie (`k + 0.5 ± 2^-17`) the two runtimes can part.
const REQUANT_QUANTUM_EXP: i32 = 16;

/// The requantization scale as each of tract's rewrites computes it, in `f32`: the ONNX
/// graph's `(in_scale · w) / out_scale`, and the same with the division by a constant turned
/// into a product with its reciprocal; for the first layer (`first`) also
/// `w · (in_scale / out_scale)` and `w · (in_scale · (1 / out_scale))`, where tract folds
/// the two activation scales first. Measured with `examples/layer_diff.rs`
/// (`LAYER_DIFF_SCALES`): tract 0.23 ran the second on 1,101 of the 1,104 channels it
/// exposes in edge-tkd1 and the first on the other 3, and the first layer's convolution
/// (its input straight from the model's `QuantizeLinear`) with a folded one: on the shipped
/// edge-tkd1 files 2 of its 16 channels, on the CI pipeline test's 2-epoch model 5 of 16,
/// were one `f32` step off the first two. Every later layer it exposes matched the first
/// two on both models; asking the folded ones of every layer too left 225 of edge-tkd1's
/// 2,519 channels without an exact scale (against 1), so they are asked of the first only.
fn tract_scales(in_scale: f32, w: f32, out_scale: f32, first: bool) -> [f32; 4] {
    let recip = 1.0 / out_scale;
    let (onnx, rewritten) = ((in_scale * w) / out_scale, (in_scale * w) * recip);
    if first {
        [
            onnx,
            rewritten,
            w * (in_scale / out_scale),
            w * (in_scale * recip),
        ]
    } else {
        [onnx, rewritten, onnx, rewritten]
    }
}

/// The smallest weight scale `>= want` whose requantization scale is a multiple of `2^-16`
/// ([`REQUANT_QUANTUM_EXP`]) and the same `f32` however tract computes it
/// ([`tract_scales`]). The engine gets that value exactly ([`Requant::from_f32`]). Before
/// this, the formulas differed by one `f32` step on about a third of the channels, and tract
/// and the engine parted by 1-3 LSB on some logits; with only the first two formulas
/// matched, a first-layer accumulator whose exact product was a tie (`22.5`)
/// still rounded one way in the engine and the other in tract, one `f32` step above.
///
/// The weights are then quantized with the larger scale: coarser by a median 0.4% of a step
/// over edge-tkd1's 2,519 channels (99th percentile 3.8%, at most 7.5%; one channel found
/// none; measured with the first two formulas), never beyond ±127, since the scale only
/// grows. Found by walking up from `want` one `f32` step at a time, as the `f32` roundings
/// skip some multiples. `None` when none is reached within `2^20` steps (6-12% above
/// `want`; always so for requantization scales below `2^-16`). That happens where the
/// roundings skip every multiple in reach for a layer's pair of activation scales (1 of
/// edge-tkd1's 2,519 channels, 30 of edge-ft2's, with two formulas);
/// [`tract_friendly_scale`] then falls back to [`agreeing_weight_scale`].
fn exact_weight_scale(want: f32, in_scale: f32, out_scale: f32, first: bool) -> Option<f32> {
    let quantum = 2f32.powi(-REQUANT_QUANTUM_EXP);
    if !(want > 0.0 && want.is_finite()) {
        return None;
    }
    let mut w = want;
    for _ in 0..1u32 << 20 {
        let all = tract_scales(in_scale, w, out_scale, first);
        let r = all[0];
        // Dividing by a power of two is exact, so `fract` sees the true remainder.
        if r >= quantum && (r / quantum).fract() == 0.0 && all.iter().all(|&v| v == r) {
            return Some(w);
        }
        w = f32::from_bits(w.to_bits() + 1);
    }
    None
}

/// The smallest weight scale `>= want` on which all of tract's formulas for the
/// requantization scale ([`tract_scales`]) give the same `f32`, within `2^10` steps: the
/// engine then multiplies by exactly tract's scale, and only `f32` rounding of tract's
/// product can still part them, at near-ties.
fn agreeing_weight_scale(want: f32, in_scale: f32, out_scale: f32, first: bool) -> Option<f32> {
    if !(want > 0.0 && want.is_finite()) {
        return None;
    }
    let mut w = want;
    for _ in 0..1u32 << 10 {
        let all = tract_scales(in_scale, w, out_scale, first);
        if all.iter().all(|&v| v == all[0]) {
            return Some(w);
        }
        w = f32::from_bits(w.to_bits() + 1);
    }
    None
}

/// The weight scale [`Scales::Exact`] uses, and whether it is exact: [`exact_weight_scale`]
/// where it finds one, else [`agreeing_weight_scale`], else `want`.
fn tract_friendly_scale(want: f32, in_scale: f32, out_scale: f32, first: bool) -> (f32, bool) {
    match exact_weight_scale(want, in_scale, out_scale, first) {
        Some(w) => (w, true),
        None => (
            agreeing_weight_scale(want, in_scale, out_scale, first).unwrap_or(want),
            false,
        ),
    }
}

/// Builds the int8 network from a float model and its calibration, with [`Scales::Exact`].
pub fn quantize(model: &Model, calib: &Calibration) -> Result<QuantModel> {
    quantize_with(model, calib, Scales::Exact)
}

/// Builds the int8 network from a float model and its calibration.
pub fn quantize_with(model: &Model, calib: &Calibration, scales: Scales) -> Result<QuantModel> {
    let mut ops = Vec::new();
    let (mut h, mut c) = (INPUT_SIDE, 1usize);
    let mut flat_hw: Option<usize> = None; // spatial side when a Flatten precedes a Dense
    let mut q = ActQuant::INPUT;
    let (mut ci, mut di, mut pi) = (0, 0, 0);
    let point = |pi: &mut usize| -> Result<ActQuant> {
        let (min, max) = *calib
            .ranges
            .get(*pi)
            .context("calibration has fewer points than the network")?;
        *pi += 1;
        Ok(ActQuant::from_range(min, max))
    };
    for b in &model.blocks {
        match *b {
            Block::Conv { .. } | Block::Depthwise { .. } | Block::Pointwise { .. } => {
                let cb = &model.convs[ci];
                ci += 1;
                let [out_c, _, kh, kw] = cb.conv.weight.val().dims();
                let kind = match b {
                    Block::Depthwise { .. } => ConvKind::Depthwise,
                    Block::Pointwise { .. } => ConvKind::Pointwise,
                    _ => ConvKind::Dense,
                };
                let (stride, pad) = match *b {
                    Block::Conv {
                        k, stride, same, ..
                    } => (stride, if same { k / 2 } else { 0 }),
                    Block::Depthwise { k, stride } => (stride, k / 2),
                    _ => (1, 0),
                };
                let out_q = point(&mut pi)?;
                let g = Geometry {
                    kind,
                    input: [h, h, c],
                    out_c,
                    kernel: [kh, kw],
                    stride,
                    pad,
                };
                let first = ops.is_empty();
                let l = quantize_layer(&fold(cb)?, g, q, out_q, scales, first)
                    .with_context(|| format!("layer {} ({kind:?})", ops.len()))?;
                h = l.output_hw()[0];
                c = out_c;
                q = out_q;
                ops.push(QOp::Conv(l));
            }
            Block::MaxPool => {
                ops.push(QOp::MaxPool { input: [h, h, c] });
                h /= 2;
            }
            Block::Dropout { .. } => {}
            Block::GlobalAvgPool => {
                let out_q = point(&mut pi)?;
                let f = Folded {
                    w: vec![1.0 / (h * h) as f32; c * h * h],
                    b: vec![0.0; c],
                };
                let g = Geometry {
                    kind: ConvKind::GlobalPool,
                    input: [h, h, c],
                    out_c: c,
                    kernel: [h, h],
                    stride: 1,
                    pad: 0,
                };
                let first = ops.is_empty();
                let l = quantize_layer(&f, g, q, out_q, scales, first)
                    .with_context(|| format!("layer {} (global pool)", ops.len()))?;
                ops.push(QOp::Conv(l));
                h = 1;
                q = out_q;
            }
            Block::Flatten => flat_hw = Some(h),
            Block::Dense { out } => {
                let lin = &model.denses[di];
                di += 1;
                // Burn's Linear weight is [in, out]; ONNX conv order wants [out, in].
                let w_io = floats(lin.weight.val())?;
                let n_in = w_io.len() / out;
                ensure!(
                    n_in == c * h * h,
                    "dense input {n_in} does not match {c}x{h}x{h}"
                );
                let mut w = vec![0f32; w_io.len()];
                for i in 0..n_in {
                    for o in 0..out {
                        w[o * n_in + i] = w_io[i * out + o];
                    }
                }
                let b = match &lin.bias {
                    Some(b) => floats(b.val())?,
                    None => vec![0.0; out],
                };
                let out_q = point(&mut pi)?;
                let side = flat_hw.take().unwrap_or(h);
                let g = Geometry {
                    kind: ConvKind::Linear,
                    input: [side, side, c],
                    out_c: out,
                    kernel: [side, side],
                    stride: 1,
                    pad: 0,
                };
                let first = ops.is_empty();
                let l = quantize_layer(&Folded { w, b }, g, q, out_q, scales, first)
                    .with_context(|| format!("layer {} (dense)", ops.len()))?;
                ops.push(QOp::Conv(l));
                h = 1;
                c = out;
                q = out_q;
            }
        }
    }
    if pi != calib.ranges.len() {
        bail!(
            "calibration has {} points, the network {}",
            calib.ranges.len(),
            pi
        );
    }
    let weights_hash = weights_hash(ops.iter().filter_map(|o| match o {
        QOp::Conv(c) => Some((c.weights.as_slice(), c.bias.as_slice())),
        QOp::MaxPool { .. } => None,
    }));
    Ok(QuantModel {
        ops,
        input: ActQuant::INPUT,
        output: q,
        weights_hash,
        calibration: calib.clone(),
        scales,
    })
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

    /// tract's per-channel requantization of an accumulator: the product in `f32`, then
    /// rounded half to even (`tract_core::ops::quant::scale_by`).
    fn tract_requant(acc: i32, scale: f32) -> i32 {
        let p = (acc.unsigned_abs() as f32) * scale;
        p.round_ties_even() as i32 * acc.signum()
    }

    #[test]
    fn exact_scales_make_tract_round_as_the_engine() {
        // Scales like edge-tkd1's: hidden layers 2^-10..2^-6, logits 2^-12.
        let cases = [
            (0.003921569f32, 0.03181573f32, 0.0432425f32),
            (0.0432425, 0.0019632082, 0.046096314),
            (0.046, 0.0002, 0.029426435),
            (0.1, 0.05, 0.04),
        ];
        let mut seed = 1u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as i64
        };
        let mut tract_slips_before = 0;
        for (x, want, y) in cases {
            let w = exact_weight_scale(want, x, y, false).expect("in range");
            assert!(w >= want, "the scale only grows: {w} < {want}");
            let r = (x * w) / y;
            assert!(
                tract_scales(x, w, y, false).iter().all(|&v| v == r),
                "every formula of tract's gives it"
            );
            assert!(w / want - 1.0 < 0.13, "{w} vs {want}");
            let q = 2f64.powi(-REQUANT_QUANTUM_EXP);
            assert_eq!((r as f64 / q).fract(), 0.0, "{r} is a multiple of 2^-16");
            let exact = Requant::from_f32(r).unwrap();
            // Before: the engine had the ONNX formula, tract ran the rewritten one.
            let old = Requant::from_f32((x * want) / y).unwrap();
            let old_r = (x * want) * (1.0 / y);
            // Every accumulator whose output int8 does not saturate: |acc · r| < 256.
            let bound = (256.0 / r) as i64;
            let accs = (0..200_000).map(|_| next() % (2 * bound + 1) - bound);
            // Near-ties of the old scale, where f32 rounding of the product matters.
            let ties = (0..bound).flat_map(|a| {
                let p = a as f64 * old_r as f64;
                ((p.fract() - 0.5).abs() < 1e-5).then_some([a, -a])
            });
            for acc in accs.chain(ties.flatten()) {
                let acc = acc as i32;
                assert_eq!(
                    tract_requant(acc, r),
                    exact.apply(acc),
                    "acc {acc} scale {r}"
                );
                tract_slips_before += (tract_requant(acc, old_r) != old.apply(acc)) as u32;
            }
        }
        // The test can fail: without the adjustment, tract and the engine do differ.
        assert!(tract_slips_before > 0);
    }

    #[test]
    fn without_an_exact_multiple_the_formulas_still_agree() {
        // edge-ft2's first layer, channel 0: the roundings skip every multiple in reach.
        let (x, y, want) = (0.003921569f32, 0.043351166f32, 0.03127604f32);
        assert_eq!(exact_weight_scale(want, x, y, true), None);
        let (w, exact) = tract_friendly_scale(want, x, y, true);
        assert!(!exact);
        assert!(w >= want && w / want - 1.0 < 1e-3, "{w} vs {want}");
        let all = tract_scales(x, w, y, true);
        assert!(all.iter().all(|&v| v == all[0]), "{all:?}");
        // The formulas do differ on some scale near it: the search has something to find.
        let differ = (0..64u32)
            .map(|i| f32::from_bits(want.to_bits() + i))
            .any(|v| (x * v) / y != (x * v) * (1.0 / y));
        assert!(differ);
    }

    #[test]
    fn the_first_layers_folded_scales_agree_too() {
        // The CI pipeline test's 2-epoch model, first layer, channel 12, as the first
        // two matched formulas quantized it: a multiple of 2^-16 (120 · 2^-16) under the ONNX formula and its
        // reciprocal rewrite, but one f32 step above under `w · (x / y)`, which tract ran
        // there; the accumulator 12288 then gave the tie 22.5 in the engine (rounded to 22)
        // and 22.500002 in tract (23): 1 LSB on one test image.
        let (x, y, w_old) = (0.003921569f32, 0.023132572f32, 0.010801036f32);
        let old = tract_scales(x, w_old, y, true);
        assert_eq!(old[0], old[1]);
        assert_eq!(old[0] * 65536.0, 120.0);
        assert_ne!(old[2], old[0], "the case the fix is for");
        assert_ne!(
            tract_requant(12288, old[2]),
            Requant::from_f32(old[0]).unwrap().apply(12288)
        );
        let w = exact_weight_scale(w_old, x, y, true).expect("in reach");
        assert!(w > w_old && w / w_old - 1.0 < 0.13);
        let r = tract_scales(x, w, y, true);
        assert!(r.iter().all(|&v| v == r[0]), "{r:?}");
        let engine = Requant::from_f32(r[0]).unwrap();
        for acc in -40_000..40_000 {
            assert_eq!(tract_requant(acc, r[2]), engine.apply(acc), "acc {acc}");
        }
    }

    /// A layer whose input calibration saw as zero everywhere: its input scale is
    /// `from_range`'s floor, and a bias of 0.6 at `in_scale · max|w| / 127` would need
    /// about 6.5e13 steps.
    #[test]
    fn a_bias_on_a_dead_input_still_fits() {
        let dead = ActQuant::from_range(0.0, 0.0);
        let out_q = ActQuant::from_range(0.0, 1.0);
        let f = Folded {
            w: vec![0.01, -0.02, 0.03, 0.0, 0.02, -0.01],
            b: vec![0.6, 0.0],
        };
        let g = Geometry {
            kind: ConvKind::Pointwise,
            input: [1, 1, 3],
            out_c: 2,
            kernel: [1, 1],
            stride: 1,
            pad: 0,
        };
        for scales in [Scales::Exact, Scales::Plain] {
            let l = quantize_layer(&f, g.clone(), dead, out_q, scales, false).unwrap();
            assert!(l.bias[0].unsigned_abs() <= 1 << 30, "{}", l.bias[0]);
            let back = l.bias[0] as f64 * dead.scale as f64 * l.w_scale[0] as f64;
            assert!((back - 0.6).abs() < 1e-6, "bias reads back as {back}");
            // Both channels' requantization scales are in range.
            assert!(l.requant.iter().all(|&(m, s)| Requant::new(m, s).is_ok()));
            // The output is the bias alone: 0.6 of the range, 153 steps above -128.
            let r = Requant::new(l.requant[0].0, l.requant[0].1).unwrap();
            assert_eq!(r.apply(l.bias[0]) + out_q.zero_point as i32, -128 + 153);
        }
        let nan = Folded {
            w: vec![0.01; 6],
            b: vec![f32::NAN, 0.0],
        };
        let e = quantize_layer(&nan, g.clone(), dead, out_q, Scales::Exact, false).unwrap_err();
        assert!(e.to_string().contains("channel 0"), "{e}");
    }

    /// On a live input neither bound applies: the scale is `max |w| / 127`.
    #[test]
    fn a_live_layer_keeps_the_scale_its_weights_ask_for() {
        let row = [0.01, -0.02, 0.03];
        let w = weight_scale(&row, 0.6, 0.05, 0.1);
        assert_eq!(w, 0.03 / 127.0);
        assert_eq!(weight_scale(&[0.0; 3], 0.0, 0.05, 0.1), 1.0);
    }

    #[test]
    fn tiny_requant_scales_are_left_alone() {
        // 1e-6 · 0.01 / 0.05 = 2e-7, far below 2^-16: no exact multiple within reach.
        assert_eq!(exact_weight_scale(1e-6, 0.01, 0.05, false), None);
        assert_eq!(exact_weight_scale(0.0, 0.01, 0.05, false), None);
        // The smallest: no f32 scale between `want` and the answer is exact.
        let (x, y) = (0.0432425f32, 0.046096314f32);
        let want = 0.0019632082f32;
        let w = exact_weight_scale(want, x, y, false).unwrap();
        let is_multiple = |v: f32| {
            let all = tract_scales(x, v, y, false);
            (all[0] * 65536.0).fract() == 0.0 && all.iter().all(|&r| r == all[0])
        };
        assert!(is_multiple(w));
        let steps = w.to_bits() - want.to_bits();
        assert!(steps > 0, "this case needs raising");
        assert!((0..steps).all(|i| !is_multiple(f32::from_bits(want.to_bits() + i))));
    }
}

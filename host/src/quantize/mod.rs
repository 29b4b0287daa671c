//! Float → int8: BatchNorm folding, activation calibration, per-channel weight quantization
//! and fixed-point requantization. All float math of the int8 path lives here; the result,
//! a [`QuantModel`], holds only integers plus the scales the ONNX format needs.
//!
//! The scheme (`docs/quantization.md`): weights int8 symmetric per output channel; bias int32
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
mod fold;
pub mod folder;
mod histogram;
mod int8;
mod scales;

pub use calibrate::{Calibration, Method, NARROW_FRACTION, Narrow, calibrate};
pub use int8::{ActQuant, ConvKind, QConv, QOp, QuantModel, weights_hash};
pub use scales::Scales;

use crate::model::{Block, Model};
use anyhow::{Context, Result, bail, ensure};
use emoedge_core::preprocess::INPUT_SIDE;
use emoedge_core::quant::Requant;
use fold::{Folded, floats, fold};
use scales::{Reach, tract_friendly_scale, weight_scale};

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
    let reach = match g.kind {
        ConvKind::GlobalPool => Reach::Pool,
        _ => Reach::Learnt,
    };
    // The last search, reused: a pool's channels all ask the same, and a search that finds
    // nothing walks all of its reach.
    let mut last: Option<(f32, (f32, bool))> = None;
    for o in 0..out_c {
        let row = &f.w[o * per..(o + 1) * per];
        ensure!(
            f.b[o].is_finite() && row.iter().all(|v| v.is_finite()),
            "channel {o} has a weight or bias that is not a finite number"
        );
        let scale = weight_scale(row, f.b[o], in_q.scale, out_q.scale);
        let scale = match scales {
            Scales::Exact => {
                let (scale, exact) = match last {
                    Some((want, found)) if want == scale => found,
                    _ => {
                        let found =
                            tract_friendly_scale(scale, in_q.scale, out_q.scale, first, reach);
                        last = Some((scale, found));
                        found
                    }
                };
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

/// Builds the int8 network from a float model of the classes `labels` and its calibration,
/// with [`Scales::Exact`].
pub fn quantize(model: &Model, labels: &[String], calib: &Calibration) -> Result<QuantModel> {
    quantize_with(model, labels, calib, Scales::Exact)
}

/// Builds the int8 network from a float model of the classes `labels` and its calibration.
pub fn quantize_with(
    model: &Model,
    labels: &[String],
    calib: &Calibration,
    scales: Scales,
) -> Result<QuantModel> {
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
    let outputs = match ops.last() {
        Some(QOp::Conv(c)) => c.out_c,
        _ => 0,
    };
    if outputs != labels.len() {
        anyhow::bail!(
            "the network outputs {outputs} logits for {} class names",
            labels.len()
        );
    }
    Ok(QuantModel {
        ops,
        input: ActQuant::INPUT,
        output: q,
        weights_hash,
        labels: labels.to_vec(),
        calibration: calib.clone(),
        scales,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

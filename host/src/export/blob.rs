//! The MCU blob: `emoedge-core`'s header + postcard body, in the engine's layouts (HWC).

use crate::quantize::{ConvKind, QConv, QOp, QuantModel};
use anyhow::{Context, Result};
use emoedge_core::kernels::ChannelParams;
use emoedge_core::model::{Layer, ModelBody, write_blob};
use emoedge_core::quant::OutputQuant;
use emoedge_core::shape::{Shape, Window};

/// Per-layer byte buffers the body borrows from.
struct Owned {
    weights: Vec<u8>,
    channels: Vec<u8>,
}

/// Engine weight layout for a layer, from ONNX order `[out, in/group, kh, kw]`.
fn engine_weights(c: &QConv) -> Vec<u8> {
    let [kh, kw] = c.kernel;
    let cin = c.input[2];
    let w = |i: usize| c.weights[i] as u8;
    match c.kind {
        // (out, kh, kw, in)
        ConvKind::Dense | ConvKind::Linear => {
            let mut v = Vec::with_capacity(c.weights.len());
            for o in 0..c.out_c {
                for y in 0..kh {
                    for x in 0..kw {
                        for i in 0..cin {
                            v.push(w(((o * cin + i) * kh + y) * kw + x));
                        }
                    }
                }
            }
            v
        }
        // (out, in): same as ONNX for a 1x1 kernel.
        ConvKind::Pointwise => c.weights.iter().map(|&v| v as u8).collect(),
        // (kh, kw, c) from [c, 1, kh, kw]
        ConvKind::Depthwise | ConvKind::GlobalPool => {
            let mut v = Vec::with_capacity(c.weights.len());
            for y in 0..kh {
                for x in 0..kw {
                    for ch in 0..cin {
                        v.push(w((ch * kh + y) * kw + x));
                    }
                }
            }
            v
        }
    }
}

fn channel_records(c: &QConv) -> Result<Vec<u8>> {
    let recs = (0..c.out_c)
        .map(|o| Ok((c.bias[o], c.requant_of(o)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(ChannelParams::encode(&recs))
}

fn out_quant(c: &QConv) -> OutputQuant {
    // ReLU outputs have zero point -128, where the clamp is the int8 range itself.
    OutputQuant::linear(c.out_q.zero_point)
}

/// Serializes the model as a blob.
pub fn to_blob(q: &QuantModel) -> Result<Vec<u8>> {
    let owned: Vec<Option<Owned>> = q
        .ops
        .iter()
        .map(|op| match op {
            QOp::Conv(c) => Ok(Some(Owned {
                weights: engine_weights(c),
                channels: channel_records(c)?,
            })),
            QOp::MaxPool { .. } => Ok(None),
        })
        .collect::<Result<_>>()?;
    let mut layers = heapless::Vec::new();
    for (op, o) in q.ops.iter().zip(&owned) {
        let layer = match (op, o) {
            (QOp::MaxPool { .. }, _) => Layer::MaxPool {
                window: Window::square(2, 2, 0),
            },
            (QOp::Conv(c), Some(o)) => {
                let (weights, channels, output) = (&o.weights[..], &o.channels[..], out_quant(c));
                let window = |k: [usize; 2]| Window {
                    kh: k[0] as u8,
                    kw: k[1] as u8,
                    sh: c.stride as u8,
                    sw: c.stride as u8,
                    pad: [c.pad as u8; 4],
                };
                match c.kind {
                    ConvKind::Dense => Layer::Conv2d {
                        window: window(c.kernel),
                        out_c: c.out_c as u16,
                        weights,
                        channels,
                        output,
                    },
                    ConvKind::Pointwise => Layer::Pointwise {
                        out_c: c.out_c as u16,
                        weights,
                        channels,
                        output,
                    },
                    ConvKind::Depthwise | ConvKind::GlobalPool => Layer::Depthwise {
                        window: window(c.kernel),
                        weights,
                        channels,
                        output,
                    },
                    ConvKind::Linear => Layer::Dense {
                        out_len: c.out_c as u16,
                        weights,
                        channels,
                        output,
                    },
                }
            }
            (QOp::Conv(_), None) => unreachable!("every conv has its buffers"),
        };
        layers
            .push(layer)
            .map_err(|_| anyhow::anyhow!("more than {} layers", emoedge_core::model::MAX_LAYERS))?;
    }
    let body = ModelBody {
        input: Shape::new(48, 48, 1),
        input_zp: q.input.zero_point,
        weights_hash: q.weights_hash,
        output_scale: q.output.scale,
        layers,
        labels: q.labels.iter().map(String::as_str).collect(),
    };
    let blob = write_blob(&body).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Parse it back: the blob we write must be one the engine accepts.
    emoedge_core::Model::parse(&blob)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the written blob does not parse")?;
    Ok(blob)
}

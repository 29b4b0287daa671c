//! BatchNorm folded into the preceding convolution's weights and bias: the int8 network has
//! no BatchNorm of its own.

use anyhow::Result;
use burn::prelude::*;

/// A folded float layer: weights `[out, in/group, kh, kw]` and bias.
pub(super) struct Folded {
    pub(super) w: Vec<f32>,
    pub(super) b: Vec<f32>,
}

pub(super) fn fold(conv: &crate::model::ConvBn) -> Result<Folded> {
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

pub(super) fn floats<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}

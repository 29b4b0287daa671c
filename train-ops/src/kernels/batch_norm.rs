//! BatchNorm (batch statistics) followed by ReLU, forward and backward, fused per channel.
//!
//! Burn's composite makes two transposed copies of the activation and walks it about eight
//! times forward and ten times backward. Here the forward reads `x` twice (statistics, then
//! the output) and the backward reads `x` and the gradient twice (two sums per channel, then
//! the input gradient); the ReLU mask is recomputed from `x`, so nothing but `x` and the two
//! per-channel statistics is kept for the backward.

use super::{LANES, Nchw};
use multiversion::multiversion;
use rayon::prelude::*;

/// Per-channel mean and biased variance of `x` (`[n, c, spatial]`, contiguous).
///
/// Sums are taken relative to the channel's first value (a shift that keeps the one-pass
/// variance exact enough when the mean is large against the spread), in `LANES` (16) lanes
/// within a row and in `f64` across rows. Rows are summed in memory order and the row sums
/// added per channel after: walking one channel's rows at a time jumps through memory at
/// every row, which at 6x6 is every 36 values.
pub fn channel_stats(x: &[f32], d: Nchw) -> (Vec<f32>, Vec<f32>) {
    let m = (d.n * d.spatial) as f64;
    let shifts: Vec<f32> = (0..d.c).map(|ch| x[ch * d.spatial]).collect();
    let rows: Vec<(f64, f64)> = x
        .par_chunks(d.spatial)
        .enumerate()
        .map(|(r, row)| lane_sums(row, shifts[r % d.c]))
        .collect();
    (0..d.c)
        .map(|ch| {
            let (s1, s2) = per_channel(&rows, d, ch);
            let mean_d = s1 / m;
            let var = (s2 / m - mean_d * mean_d).max(0.0);
            ((shifts[ch] as f64 + mean_d) as f32, var as f32)
        })
        .unzip()
}

/// Channel `ch`'s total of per-row sum pairs.
fn per_channel(rows: &[(f64, f64)], d: Nchw, ch: usize) -> (f64, f64) {
    (0..d.n).fold((0.0, 0.0), |(a, b), n| {
        let (x, y) = rows[n * d.c + ch];
        (a + x, b + y)
    })
}

/// `Σ (v - shift)` and `Σ (v - shift)²` over one row, in [`LANES`] independent lanes.
#[multiversion(targets = "simd")]
fn lane_sums(row: &[f32], shift: f32) -> (f64, f64) {
    let mut a = [0f32; LANES];
    let mut b = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            let v = c[l] - shift;
            a[l] += v;
            b[l] += v * v;
        }
    }
    let (mut s1, mut s2): (f64, f64) = (
        a.iter().map(|&v| v as f64).sum(),
        b.iter().map(|&v| v as f64).sum(),
    );
    for &v in tail {
        let v = (v - shift) as f64;
        s1 += v;
        s2 += v * v;
    }
    (s1, s2)
}

/// One channel's BatchNorm as applied: `(x - mean) · scale + beta`, then ReLU.
///
/// Why `x - mean` first and not `x · scale + (beta - mean · scale)`: where the mean is large
/// against the spread the folded form cancels, and a value that normalises to about zero
/// can land on the other side of the ReLU than Burn's `(x - mean)` puts it.
#[derive(Clone, Copy, Debug)]
struct Affine {
    /// `gamma / sqrt(var + eps)`.
    scale: f32,
    beta: f32,
    mean: f32,
}

impl Affine {
    fn per_channel(gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32], eps: f64) -> Vec<Self> {
        (0..gamma.len())
            .map(|c| Affine {
                scale: (gamma[c] as f64 * (1.0 / (var[c] as f64 + eps).sqrt())) as f32,
                beta: beta[c],
                mean: mean[c],
            })
            .collect()
    }

    /// The value before the ReLU, from `x - mean` ([`Affine::centred`]). The forward and
    /// both backward passes take the ReLU's mask from this one expression, so they agree on
    /// every value.
    #[inline(always)]
    fn normalised(&self, centred: f32) -> f32 {
        centred * self.scale + self.beta
    }

    #[inline(always)]
    fn centred(&self, x: f32) -> f32 {
        x - self.mean
    }
}

/// What the input gradient of one channel needs: `dx = scale · g + p + q · (x - mean)`,
/// `g = dy` where the ReLU passed.
#[derive(Clone, Copy, Debug)]
struct InputGrad {
    affine: Affine,
    p: f32,
    q: f32,
}

/// `y = relu(gamma · (x - mean) / sqrt(var + eps) + beta)` with the batch's own statistics;
/// returns `(y, mean, var)` (biased variance, as Burn's `batch_norm_train` returns it).
pub fn forward(
    x: &[f32],
    d: Nchw,
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mean, var) = channel_stats(x, d);
    let ab = Affine::per_channel(gamma, beta, &mean, &var, eps);
    let mut y = super::zeroed(x.len());
    y.par_chunks_mut(d.spatial)
        .zip(x.par_chunks(d.spatial))
        .enumerate()
        .for_each(|(r, (yr, xr))| affine_relu(xr, ab[r % d.c], yr));
    (y, mean, var)
}

#[multiversion(targets = "simd")]
fn affine_relu(x: &[f32], a: Affine, y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = a.normalised(a.centred(v)).max(0.0);
    }
}

/// Gradients of [`forward`] given the gradient `dy` of its output: `(dx, dgamma, dbeta)`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: &[f32],
    dy: &[f32],
    d: Nchw,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let ab = Affine::per_channel(gamma, beta, mean, var, eps);
    let m = (d.n * d.spatial) as f64;
    // Per channel: Σ g and Σ g·(x - mean), g = dy where the ReLU passed; by rows in memory
    // order, as in `channel_stats`.
    let rows: Vec<(f64, f64)> = x
        .par_chunks(d.spatial)
        .zip(dy.par_chunks(d.spatial))
        .enumerate()
        .map(|(r, (xr, gr))| masked_sums(xr, gr, ab[r % d.c]))
        .collect();
    let sums: Vec<(f64, f64)> = (0..d.c).map(|ch| per_channel(&rows, d, ch)).collect();
    let mut dgamma = vec![0f32; d.c];
    let mut dbeta = vec![0f32; d.c];
    // dx = scale · g + p + q · (x - mean), with p and q constant per channel.
    let pq: Vec<InputGrad> = (0..d.c)
        .map(|ch| {
            let (sg, sgx) = sums[ch];
            let inv_std = 1.0 / (var[ch] as f64 + eps).sqrt();
            let scale = ab[ch].scale as f64;
            dbeta[ch] = sg as f32;
            dgamma[ch] = (sgx * inv_std) as f32;
            let q = -scale * inv_std * inv_std * sgx / m;
            let p = -scale * sg / m;
            InputGrad {
                affine: ab[ch],
                p: p as f32,
                q: q as f32,
            }
        })
        .collect();
    let mut dx = super::zeroed(x.len());
    dx.par_chunks_mut(d.spatial)
        .zip(x.par_chunks(d.spatial).zip(dy.par_chunks(d.spatial)))
        .enumerate()
        .for_each(|(r, (o, (xr, gr)))| {
            input_grad_row(xr, gr, pq[r % d.c], o);
        });
    (dx, dgamma, dbeta)
}

/// One row's `Σ g` and `Σ g·(x - mean)`, `g = dy` where the ReLU passed, else 0.
#[multiversion(targets = "simd")]
fn masked_sums(xr: &[f32], gr: &[f32], a: Affine) -> (f64, f64) {
    let mut l1 = [0f32; LANES];
    let mut l2 = [0f32; LANES];
    let xc = xr.chunks_exact(LANES);
    let gc = gr.chunks_exact(LANES);
    let (xt, gt) = (xc.remainder(), gc.remainder());
    for (xv, gv) in xc.zip(gc) {
        for l in 0..LANES {
            let c = a.centred(xv[l]);
            let g = if a.normalised(c) > 0.0 { gv[l] } else { 0.0 };
            l1[l] += g;
            l2[l] += g * c;
        }
    }
    let mut sg = l1.iter().map(|&v| v as f64).sum::<f64>();
    let mut sgx = l2.iter().map(|&v| v as f64).sum::<f64>();
    for (&xv, &gv) in xt.iter().zip(gt) {
        let c = a.centred(xv);
        if a.normalised(c) > 0.0 {
            sg += gv as f64;
            sgx += (gv * c) as f64;
        }
    }
    (sg, sgx)
}

/// One row of the input gradient: `a · g + p + q · (x - mean)`.
#[multiversion(targets = "simd")]
fn input_grad_row(x: &[f32], dy: &[f32], k: InputGrad, out: &mut [f32]) {
    let a = k.affine;
    for ((o, &xv), &gv) in out.iter_mut().zip(x).zip(dy) {
        let c = a.centred(xv);
        let g = if a.normalised(c) > 0.0 { gv } else { 0.0 };
        *o = a.scale * g + k.p + k.q * c;
    }
}

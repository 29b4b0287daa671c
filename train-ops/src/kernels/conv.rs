//! Convolutions on NCHW `f32` data, dilation 1: forward and both gradients, dense and
//! depthwise.
//!
//! - Dense: one GEMM per image over its im2col columns (the image itself for a 1x1 stride-1
//!   convolution), col2im after the input gradient's. The weight gradient,
//!   `dW[co, (ci, i, j)] = Σₙ dyₙ[co, p] · colsₙ[(ci, i, j), p]`, accumulates per thread;
//!   Burn's default takes a convolution of two transposed views instead, which Flex first
//!   copies in full, and runs the whole output map as the kernel.
//! - Depthwise (one input channel per group): per channel plane, at stride 1 in the flat
//!   padded layout (`Flat`) and otherwise in direct loops, where Burn's gradients loop over
//!   channels with a slice, a one-channel convolution and a `slice_assign` each.

use super::LANES;
use multiversion::multiversion;
use rayon::prelude::*;

/// The geometry of one 2-D convolution: input `[n, cin, h, w]`, output `[n, cout, oh, ow]`,
/// kernel `kh x kw`, stride and the padding before each spatial axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub pad: [usize; 2],
}

impl ConvGeom {
    fn in_plane(&self) -> usize {
        self.h * self.w
    }
    fn out_plane(&self) -> usize {
        self.oh * self.ow
    }
    /// Output positions `o` along one axis whose input `o·s + k - pad` is inside `0..len`.
    fn valid(k: usize, s: usize, pad: usize, len: usize, out: usize) -> core::ops::Range<usize> {
        let lo = if pad > k { (pad - k).div_ceil(s) } else { 0 };
        let hi = if len + pad > k {
            ((len + pad - k - 1) / s + 1).min(out)
        } else {
            0
        };
        lo..hi.max(lo)
    }
    fn rows(&self, i: usize) -> core::ops::Range<usize> {
        Self::valid(i, self.stride[0], self.pad[0], self.h, self.oh)
    }
    fn cols(&self, j: usize) -> core::ops::Range<usize> {
        Self::valid(j, self.stride[1], self.pad[1], self.w, self.ow)
    }
    /// Rows of an image's im2col matrix, `cin · kh · kw` (its columns are the `oh · ow`
    /// output positions).
    fn col_rows(&self) -> usize {
        self.cin * self.kh * self.kw
    }
    /// Whether an image is its own im2col matrix: a 1x1 convolution, stride 1, no padding.
    fn image_is_columns(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.pad == [0, 0]
    }
    /// Scratch for one image's im2col matrix (nothing where the image is its own).
    fn col_scratch(&self) -> Vec<f32> {
        match self.image_is_columns() {
            true => Vec::new(),
            false => vec![0f32; self.col_rows() * self.out_plane()],
        }
    }
    /// Image `xb`'s im2col matrix: `xb` itself, or written into `scratch`.
    fn columns<'a>(&self, xb: &'a [f32], scratch: &'a mut [f32]) -> &'a [f32] {
        if self.image_is_columns() {
            return xb;
        }
        im2col(xb, self, scratch);
        scratch
    }
}

/// im2col of one image: `cols[(ci·kh + i)·kw + j][oh·ow]`, zero where the window is padding.
#[multiversion(targets = "simd")]
fn im2col(x: &[f32], g: &ConvGeom, cols: &mut [f32]) {
    let p = g.out_plane();
    for ci in 0..g.cin {
        let plane = &x[ci * g.in_plane()..][..g.in_plane()];
        for i in 0..g.kh {
            let rows = g.rows(i);
            for j in 0..g.kw {
                let dst = &mut cols[((ci * g.kh + i) * g.kw + j) * p..][..p];
                let cr = g.cols(j);
                for oy in 0..g.oh {
                    let out = &mut dst[oy * g.ow..][..g.ow];
                    if !rows.contains(&oy) {
                        out.fill(0.0);
                        continue;
                    }
                    let iy = oy * g.stride[0] + i - g.pad[0];
                    let src = &plane[iy * g.w..][..g.w];
                    out[..cr.start].fill(0.0);
                    out[cr.end..].fill(0.0);
                    if g.stride[1] == 1 {
                        let x0 = cr.start + j - g.pad[1];
                        out[cr.clone()].copy_from_slice(&src[x0..x0 + cr.len()]);
                    } else {
                        for ox in cr.clone() {
                            out[ox] = src[ox * g.stride[1] + j - g.pad[1]];
                        }
                    }
                }
            }
        }
    }
}

/// col2im of one image, the adjoint of [`im2col`]: adds each column value back onto the
/// input pixel it was taken from (`dx` must start zeroed).
#[multiversion(targets = "simd")]
fn col2im(cols: &[f32], g: &ConvGeom, dx: &mut [f32]) {
    let p = g.out_plane();
    for ci in 0..g.cin {
        let plane = &mut dx[ci * g.in_plane()..][..g.in_plane()];
        for i in 0..g.kh {
            let rows = g.rows(i);
            for j in 0..g.kw {
                let src = &cols[((ci * g.kh + i) * g.kw + j) * p..][..p];
                for oy in rows.clone() {
                    let iy = oy * g.stride[0] + i - g.pad[0];
                    let dst = &mut plane[iy * g.w..][..g.w];
                    add_taps(dst, &src[oy * g.ow..][..g.ow], 1.0, j, g);
                }
            }
        }
    }
}

/// Forward of a dense (`groups == 1`) convolution without bias: `[n, cout, oh, ow]`, per image
/// `yₙ = W · colsₙ` (the image itself as its columns for a 1x1 stride-1 convolution).
pub fn dense_forward(x: &[f32], weight: &[f32], g: &ConvGeom) -> Vec<f32> {
    let ckk = g.col_rows();
    let p = g.out_plane();
    assert_eq!(weight.len(), g.cout * ckk);
    assert_eq!(x.len(), g.n * g.cin * g.in_plane());
    let mut y = super::zeroed(g.n * g.cout * p);
    y.par_chunks_mut(g.cout * p).enumerate().for_each_init(
        || g.col_scratch(),
        |scratch, (b, yb)| {
            let xb = &x[b * g.cin * g.in_plane()..][..g.cin * g.in_plane()];
            let cols = g.columns(xb, scratch);
            gemm_acc(
                g.cout,
                p,
                ckk,
                yb,
                Dst::Overwrite,
                weight,
                (1, ckk as isize),
                cols,
                (1, p as isize),
            );
        },
    );
    y
}

/// Forward of a depthwise convolution without bias, through the flat layout (`Flat`) where it
/// applies (`None` elsewhere).
pub fn depthwise_forward(x: &[f32], weight: &[f32], g: &ConvGeom) -> Option<Vec<f32>> {
    let f = Flat::of(g)?;
    let kk = g.kh * g.kw;
    let mut y = super::zeroed(g.n * g.cout * g.out_plane());
    y.par_chunks_mut(g.out_plane()).enumerate().for_each_init(
        || f.buffers(),
        |(xp, yp), (plane, out)| {
            let ch = plane % g.cin;
            f.pad_input(&x[plane * g.in_plane()..][..g.in_plane()], g, xp);
            flat_forward(xp, &weight[ch * kk..][..kk], f.w, g.kh, g.kw, yp);
            for (oy, row) in out.chunks_exact_mut(g.ow).enumerate() {
                row.copy_from_slice(&yp[oy * f.w..][..g.ow]);
            }
        },
    );
    Some(y)
}

/// `y[t] = Σᵢⱼ w[i, j] · xp[t + i·w + j]` over the output rows.
#[multiversion(targets = "simd")]
fn flat_forward(xp: &[f32], wc: &[f32], w: usize, kh: usize, kw: usize, y: &mut [f32]) {
    let len = y.len() - (kh - 1) * w - w;
    let y = &mut y[..len];
    y.fill(0.0);
    for i in 0..kh {
        for j in 0..kw {
            let wv = wc[i * kw + j];
            for (o, &v) in y.iter_mut().zip(&xp[i * w + j..][..len]) {
                *o += wv * v;
            }
        }
    }
}

/// Input gradient of a dense (`groups == 1`) convolution: `[n, cin, h, w]`. Per image,
/// `colsₙ = Wᵀ · dyₙ` (one GEMM), then `col2im`; a 1x1 stride-1 convolution without
/// padding writes `Wᵀ · dyₙ` straight into the image's gradient.
pub fn dense_input_grad(dy: &[f32], weight: &[f32], g: &ConvGeom) -> Vec<f32> {
    let ckk = g.col_rows();
    let p = g.out_plane();
    assert_eq!(weight.len(), g.cout * ckk);
    assert_eq!(dy.len(), g.n * g.cout * p);
    let mut dx = super::zeroed(g.n * g.cin * g.in_plane());
    dx.par_chunks_mut(g.cin * g.in_plane())
        .enumerate()
        .for_each_init(
            || g.col_scratch(),
            |scratch, (b, dxb)| {
                let dyb = &dy[b * g.cout * p..][..g.cout * p];
                // Wᵀ[ckk, cout]: W is [cout, ckk] row-major. Where the image is its own
                // columns, Wᵀ · dyₙ is its gradient as it stands.
                let cols = match g.image_is_columns() {
                    true => &mut *dxb,
                    false => &mut scratch[..],
                };
                let (wt, set) = ((ckk as isize, 1), Dst::Overwrite);
                gemm_acc(ckk, p, g.cout, cols, set, weight, wt, dyb, (1, p as isize));
                if !g.image_is_columns() {
                    col2im(scratch, g, dxb);
                }
            },
        );
    dx
}

/// Whether a GEMM adds onto its destination or overwrites it (without reading it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dst {
    Add,
    Overwrite,
}

/// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]` with explicit strides (column, row), no parallelism
/// inside: the callers split the batch across threads.
#[allow(clippy::too_many_arguments)]
fn gemm_acc(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    mode: Dst,
    lhs: &[f32],
    lhs_strides: (isize, isize),
    rhs: &[f32],
    rhs_strides: (isize, isize),
) {
    debug_assert!(dst.len() >= m * n);
    // SAFETY: every index the strides reach is inside the slices: `dst` is `m x n` row-major;
    // the callers pass `lhs` and `rhs` slices that hold the `m x k` and `k x n` operands at
    // the strides given (checked by the debug assertions of the callers' shapes).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            mode == Dst::Add,
            lhs.as_ptr(),
            lhs_strides.0,
            lhs_strides.1,
            rhs.as_ptr(),
            rhs_strides.0,
            rhs_strides.1,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Splits `0..n` into one contiguous range per worker thread.
fn batch_ranges(n: usize) -> Vec<core::ops::Range<usize>> {
    let parts = rayon::current_num_threads().clamp(1, n.max(1));
    (0..parts)
        .map(|t| (t * n / parts)..((t + 1) * n / parts))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Weight gradient of a dense (`groups == 1`) convolution: `[cout, cin, kh, kw]`.
pub fn dense_weight_grad(x: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    let ckk = g.col_rows();
    let p = g.out_plane();
    assert_eq!(x.len(), g.n * g.cin * g.in_plane());
    assert_eq!(dy.len(), g.n * g.cout * p);
    let partial: Vec<Vec<f32>> = batch_ranges(g.n)
        .into_par_iter()
        .map(|range| {
            let mut acc = vec![0f32; g.cout * ckk];
            let mut scratch = g.col_scratch();
            for b in range {
                let xb = &x[b * g.cin * g.in_plane()..][..g.cin * g.in_plane()];
                let dyb = &dy[b * g.cout * p..][..g.cout * p];
                let cols = g.columns(xb, &mut scratch);
                // acc[cout, ckk] += dyb[cout, p] · colsᵀ[p, ckk]
                gemm_acc(
                    g.cout,
                    ckk,
                    p,
                    &mut acc,
                    Dst::Add,
                    dyb,
                    (1, p as isize),
                    cols,
                    (p as isize, 1),
                );
            }
            acc
        })
        .collect();
    let mut it = partial.into_iter();
    let mut dw = it.next().unwrap_or_else(|| vec![0f32; g.cout * ckk]);
    for part in it {
        for (a, b) in dw.iter_mut().zip(part) {
            *a += b;
        }
    }
    dw
}

/// Weight gradient of a depthwise convolution (`groups == cin == cout`): `[c, 1, kh, kw]`.
pub fn depthwise_weight_grad(x: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    let kk = g.kh * g.kw;
    let mut dw = vec![0f32; g.cin * kk];
    match Flat::of(g) {
        Some(f) => dw.par_chunks_mut(kk).enumerate().for_each_init(
            || f.buffers(),
            |(xp, gp), (ch, dwc)| {
                for b in 0..g.n {
                    let plane = b * g.cin + ch;
                    f.pad_input(&x[plane * g.in_plane()..][..g.in_plane()], g, xp);
                    f.spread_output(&dy[plane * g.out_plane()..][..g.out_plane()], g, gp);
                    flat_weight_grad(xp, gp, f.w, g.kh, g.kw, dwc);
                }
            },
        ),
        None => dw
            .par_chunks_mut(kk)
            .enumerate()
            .for_each(|(ch, dwc)| depthwise_weight_grad_channel(x, dy, g, ch, dwc)),
    }
    dw
}

/// A stride-1 plane laid out flat at the padded width `w`: input pixel `(y, x)` at
/// `(y + pad₀)·w + x + pad₁`, output pixel `(y, x)` at `y·w + x` (the `w - ow` columns past
/// each output row are zero). Then the tap `(i, j)` of every output pixel is `i·w + j`
/// further on, and a depthwise convolution's gradients become one long dot product (weight)
/// or one long `axpy` (input) per tap, instead of one short one per row: 6- and 12-pixel
/// rows are too short to fill a vector register.
#[derive(Clone, Copy, Debug)]
struct Flat {
    /// Padded width.
    w: usize,
    /// Padded height (plus a row of slack for the last taps' overrun).
    h: usize,
}

impl Flat {
    fn of(g: &ConvGeom) -> Option<Flat> {
        let (hp, wp) = (g.oh + g.kh - 1, g.ow + g.kw - 1);
        (g.stride == [1, 1] && g.h + g.pad[0] <= hp && g.w + g.pad[1] <= wp)
            .then_some(Flat { w: wp, h: hp + 1 })
    }

    /// Scratch for one padded input and one spread output plane.
    fn buffers(&self) -> (Vec<f32>, Vec<f32>) {
        (vec![0f32; self.h * self.w], vec![0f32; self.h * self.w])
    }

    fn pad_input(&self, plane: &[f32], g: &ConvGeom, out: &mut [f32]) {
        out.fill(0.0);
        for (y, row) in plane.chunks_exact(g.w).enumerate() {
            out[(y + g.pad[0]) * self.w + g.pad[1]..][..g.w].copy_from_slice(row);
        }
    }

    fn spread_output(&self, plane: &[f32], g: &ConvGeom, out: &mut [f32]) {
        out.fill(0.0);
        for (y, row) in plane.chunks_exact(g.ow).enumerate() {
            out[y * self.w..][..g.ow].copy_from_slice(row);
        }
    }

    /// The input-gradient plane from its padded, flat form.
    fn crop_input(&self, flat: &[f32], g: &ConvGeom, plane: &mut [f32]) {
        for (y, row) in plane.chunks_exact_mut(g.w).enumerate() {
            row.copy_from_slice(&flat[(y + g.pad[0]) * self.w + g.pad[1]..][..g.w]);
        }
    }
}

/// `dw[i, j] += Σₜ gp[t] · xp[t + i·w + j]` over the output rows.
#[multiversion(targets = "simd")]
fn flat_weight_grad(xp: &[f32], gp: &[f32], w: usize, kh: usize, kw: usize, dw: &mut [f32]) {
    let len = gp.len() - (kh - 1) * w - w;
    for i in 0..kh {
        for j in 0..kw {
            dw[i * kw + j] += dot(&gp[..len], &xp[i * w + j..][..len]);
        }
    }
}

/// `dx[t + i·w + j] += w[i, j] · gp[t]` over the output rows.
#[multiversion(targets = "simd")]
fn flat_input_grad(gp: &[f32], wc: &[f32], w: usize, kh: usize, kw: usize, dx: &mut [f32]) {
    let len = gp.len() - (kh - 1) * w - w;
    dx.fill(0.0);
    for i in 0..kh {
        for j in 0..kw {
            let wv = wc[i * kw + j];
            for (o, &v) in dx[i * w + j..][..len].iter_mut().zip(&gp[..len]) {
                *o += wv * v;
            }
        }
    }
}

#[multiversion(targets = "simd")]
fn depthwise_weight_grad_channel(x: &[f32], dy: &[f32], g: &ConvGeom, ch: usize, dwc: &mut [f32]) {
    {
        for b in 0..g.n {
            let plane = b * g.cin + ch;
            let xp = &x[plane * g.in_plane()..][..g.in_plane()];
            let gp = &dy[plane * g.out_plane()..][..g.out_plane()];
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let cr = g.cols(j);
                    let mut acc = 0f32;
                    for oy in g.rows(i) {
                        let iy = oy * g.stride[0] + i - g.pad[0];
                        let xr = &xp[iy * g.w..][..g.w];
                        let gr = &gp[oy * g.ow..][..g.ow];
                        if g.stride[1] == 1 {
                            let x0 = cr.start + j - g.pad[1];
                            acc += dot(&gr[cr.clone()], &xr[x0..x0 + cr.len()]);
                        } else {
                            for ox in cr.clone() {
                                acc += gr[ox] * xr[ox * g.stride[1] + j - g.pad[1]];
                            }
                        }
                    }
                    dwc[i * g.kw + j] += acc;
                }
            }
        }
    }
}

/// Input gradient of a depthwise convolution: `[n, c, h, w]`.
pub fn depthwise_input_grad(dy: &[f32], weight: &[f32], g: &ConvGeom) -> Vec<f32> {
    let mut dx = super::zeroed(g.n * g.cin * g.in_plane());
    let kk = g.kh * g.kw;
    if let Some(f) = Flat::of(g) {
        dx.par_chunks_mut(g.in_plane()).enumerate().for_each_init(
            || f.buffers(),
            |(dxp, gp), (plane, out)| {
                let ch = plane % g.cin;
                f.spread_output(&dy[plane * g.out_plane()..][..g.out_plane()], g, gp);
                flat_input_grad(gp, &weight[ch * kk..][..kk], f.w, g.kh, g.kw, dxp);
                f.crop_input(dxp, g, out);
            },
        );
        return dx;
    }
    dx.par_chunks_mut(g.in_plane())
        .enumerate()
        .for_each(|(plane, dxp)| depthwise_input_grad_plane(dy, weight, g, plane, dxp));
    dx
}

#[multiversion(targets = "simd")]
fn depthwise_input_grad_plane(
    dy: &[f32],
    weight: &[f32],
    g: &ConvGeom,
    plane: usize,
    dxp: &mut [f32],
) {
    let kk = g.kh * g.kw;
    let ch = plane % g.cin;
    let gp = &dy[plane * g.out_plane()..][..g.out_plane()];
    let wc = &weight[ch * kk..][..kk];
    for i in 0..g.kh {
        for j in 0..g.kw {
            let wv = wc[i * g.kw + j];
            for oy in g.rows(i) {
                let iy = oy * g.stride[0] + i - g.pad[0];
                let xr = &mut dxp[iy * g.w..][..g.w];
                add_taps(xr, &gp[oy * g.ow..][..g.ow], wv, j, g);
            }
        }
    }
}

/// `dst[ox·s + j - pad] += scale · src[ox]` for the output columns `ox` whose tap `j` lands
/// inside the input row `dst` (the scatter of col2im and of the depthwise input gradient).
#[inline(always)]
fn add_taps(dst: &mut [f32], src: &[f32], scale: f32, j: usize, g: &ConvGeom) {
    let cr = g.cols(j);
    if g.stride[1] == 1 {
        let x0 = cr.start + j - g.pad[1];
        for (o, &v) in dst[x0..x0 + cr.len()].iter_mut().zip(&src[cr]) {
            *o += scale * v;
        }
    } else {
        for ox in cr {
            dst[ox * g.stride[1] + j - g.pad[1]] += scale * src[ox];
        }
    }
}

/// Dot product in [`LANES`] independent lanes (so it vectorises).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut l = [0f32; LANES];
    let ac = a.chunks_exact(LANES);
    let bc = b.chunks_exact(LANES);
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for k in 0..LANES {
            l[k] += x[k] * y[k];
        }
    }
    l.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ranges_cover_exactly_the_inside() {
        for len in 1usize..9 {
            for k in 0..4 {
                for s in 1..4 {
                    for pad in 0..3 {
                        let out = (len + 2 * pad).saturating_sub(k) / s + 1;
                        let r = ConvGeom::valid(k, s, pad, len, out);
                        for o in 0..out {
                            let inside = (o * s + k) >= pad && (o * s + k - pad) < len;
                            assert_eq!(
                                r.contains(&o),
                                inside,
                                "len {len} k {k} s {s} pad {pad} o {o}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod against_loops {
    //! The dense kernels against plain loops, independent of the `gemm` crate (the tests
    //! against Burn share it with Flex, so they could not see a fault in it).
    use super::*;

    fn values(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    /// `f(b, co, ci, oy, ox, i, j, iy, ix)` for every tap that lands inside the input.
    fn taps(g: &ConvGeom, mut f: impl FnMut([usize; 9])) {
        for b in 0..g.n {
            for co in 0..g.cout {
                for ci in 0..g.cin {
                    for oy in 0..g.oh {
                        for ox in 0..g.ow {
                            for i in 0..g.kh {
                                for j in 0..g.kw {
                                    let iy = (oy * g.stride[0] + i) as isize - g.pad[0] as isize;
                                    let ix = (ox * g.stride[1] + j) as isize - g.pad[1] as isize;
                                    if iy >= 0
                                        && ix >= 0
                                        && (iy as usize) < g.h
                                        && (ix as usize) < g.w
                                    {
                                        f([b, co, ci, oy, ox, i, j, iy as usize, ix as usize]);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn close(what: &str, got: &[f32], want: &[f32]) {
        for (k, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{what}[{k}]: {a} against {b}"
            );
        }
    }

    #[test]
    fn dense_kernels_equal_plain_loops() {
        let shapes = [
            (2, 3, 5, 9, 7, 3, 3, [1, 1], [1, 1]),
            (1, 16, 32, 24, 24, 3, 3, [2, 2], [1, 1]),
            (3, 4, 6, 8, 11, 1, 1, [1, 1], [0, 0]),
            (2, 5, 7, 10, 6, 3, 2, [2, 1], [0, 1]),
            (2, 64, 128, 12, 12, 1, 1, [1, 1], [0, 0]),
        ];
        for (t, &(n, cin, cout, h, w, kh, kw, stride, pad)) in shapes.iter().enumerate() {
            let g = ConvGeom {
                n,
                cin,
                h,
                w,
                cout,
                oh: (h + 2 * pad[0] - kh) / stride[0] + 1,
                ow: (w + 2 * pad[1] - kw) / stride[1] + 1,
                kh,
                kw,
                stride,
                pad,
            };
            let x = values(t as u64 * 3 + 1, n * cin * h * w);
            let wt = values(t as u64 * 3 + 2, cout * cin * kh * kw);
            let dy = values(t as u64 * 3 + 3, n * cout * g.oh * g.ow);
            let (mut y, mut dx, mut dw) = (
                vec![0f32; dy.len()],
                vec![0f32; x.len()],
                vec![0f32; wt.len()],
            );
            taps(&g, |[b, co, ci, oy, ox, i, j, iy, ix]| {
                let yi = ((b * cout + co) * g.oh + oy) * g.ow + ox;
                let xi = ((b * cin + ci) * h + iy) * w + ix;
                let wi = ((co * cin + ci) * kh + i) * kw + j;
                y[yi] += wt[wi] * x[xi];
                dx[xi] += wt[wi] * dy[yi];
                dw[wi] += x[xi] * dy[yi];
            });
            close("forward", &dense_forward(&x, &wt, &g), &y);
            close("input gradient", &dense_input_grad(&dy, &wt, &g), &dx);
            close("weight gradient", &dense_weight_grad(&x, &dy, &g), &dw);
        }
    }
}

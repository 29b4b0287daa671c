//! 2x2 max pooling with stride 2, forward and backward, on contiguous `[planes, h, w]`.
//!
//! Burn's CPU pooling runs every window through its general 3-D code (bounds per tap,
//! dilation, an `i64` index per output) and keeps those indices for the backward. Here the
//! forward writes only the maxima, and the backward finds each window's winner again from
//! the input, by Burn's rule: the first largest value in row order, a NaN winning (the
//! last NaN, as PyTorch reports it). An odd last row or column belongs to no window, as
//! with Burn's floor mode, and gets a zero gradient.

use multiversion::multiversion;
use rayon::prelude::*;

/// A contiguous stack of `planes` planes of `h x w` values (`n · c` planes for NCHW).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planes {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
}

impl Planes {
    /// The pooled side lengths, `[h / 2, w / 2]`.
    pub fn pooled(&self) -> [usize; 2] {
        [self.h / 2, self.w / 2]
    }

    fn in_plane(&self) -> usize {
        self.h * self.w
    }

    fn out_plane(&self) -> usize {
        let [oh, ow] = self.pooled();
        oh * ow
    }
}

/// Planes handed to one task: enough work per task that scheduling costs nothing.
fn planes_per_task(d: Planes) -> usize {
    (16_384 / d.in_plane().max(1)).max(1)
}

/// The first of two values in row order unless the second is larger or NaN: Burn's rule
/// for a window, one comparison at a time. Applied as `pick(pick(tl, tr), pick(bl, br))` it
/// gives the same winner as a walk through the four in row order (the rule is
/// associative), and the pairs along a row vectorise.
#[inline(always)]
fn pick(a: (f32, u8), b: (f32, u8)) -> (f32, u8) {
    if b.0 > a.0 || b.0.is_nan() { b } else { a }
}

/// Which of a window's four values `[top-left, top-right, bottom-left, bottom-right]`
/// Burn picks: the first largest, or the last NaN.
#[inline(always)]
fn winner(v: [f32; 4]) -> (f32, u8) {
    pick(pick((v[0], 0), (v[1], 1)), pick((v[2], 2), (v[3], 3)))
}

/// The window maxima of every plane, `[planes, h / 2, w / 2]`.
pub fn max_pool2x2_forward(x: &[f32], d: Planes) -> Vec<f32> {
    let per = planes_per_task(d);
    let mut y = super::zeroed(d.planes * d.out_plane());
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(per * d.out_plane())
        .zip(x.par_chunks(per * d.in_plane()))
        .for_each(|(y, x)| forward_planes(x, d, y));
    y
}

#[multiversion(targets = "simd")]
fn forward_planes(x: &[f32], d: Planes, y: &mut [f32]) {
    let [oh, ow] = d.pooled();
    for (xp, yp) in x
        .chunks_exact(d.in_plane())
        .zip(y.chunks_exact_mut(d.out_plane()))
    {
        for (i, yr) in yp.chunks_exact_mut(ow).enumerate().take(oh) {
            let top = xp[2 * i * d.w..][..2 * ow].chunks_exact(2);
            let bottom = xp[(2 * i + 1) * d.w..][..2 * ow].chunks_exact(2);
            for ((out, t), b) in yr.iter_mut().zip(top).zip(bottom) {
                *out = winner([t[0], t[1], b[0], b[1]]).0;
            }
        }
    }
}

/// The input gradient: each output's gradient `dy` goes to its window's winner in `x`.
pub fn max_pool2x2_backward(x: &[f32], dy: &[f32], d: Planes) -> Vec<f32> {
    let per = planes_per_task(d);
    let mut dx = super::zeroed(d.planes * d.in_plane());
    if dx.is_empty() || dy.is_empty() {
        return dx;
    }
    dx.par_chunks_mut(per * d.in_plane())
        .zip(x.par_chunks(per * d.in_plane()))
        .zip(dy.par_chunks(per * d.out_plane()))
        .for_each(|((dx, x), dy)| backward_planes(x, dy, d, dx));
    dx
}

#[multiversion(targets = "simd")]
fn backward_planes(x: &[f32], dy: &[f32], d: Planes, dx: &mut [f32]) {
    let [oh, ow] = d.pooled();
    for ((xp, gp), dxp) in x
        .chunks_exact(d.in_plane())
        .zip(dy.chunks_exact(d.out_plane()))
        .zip(dx.chunks_exact_mut(d.in_plane()))
    {
        for (i, g) in gp.chunks_exact(ow).enumerate().take(oh) {
            let (top, bottom) = (2 * i * d.w, (2 * i + 1) * d.w);
            let xt = xp[top..][..2 * ow].chunks_exact(2);
            let xb = xp[bottom..][..2 * ow].chunks_exact(2);
            let (upper, lower) = dxp[top..].split_at_mut(d.w);
            let dt = upper[..2 * ow].chunks_exact_mut(2);
            let db = lower[..2 * ow].chunks_exact_mut(2);
            for ((((&gv, t), b), dt), db) in g.iter().zip(xt).zip(xb).zip(dt).zip(db) {
                let k = winner([t[0], t[1], b[0], b[1]]).1;
                let at = |i: u8| if k == i { gv } else { 0.0 };
                dt[0] = at(0);
                dt[1] = at(1);
                db[0] = at(2);
                db[1] = at(3);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_go_to_the_first_and_nan_wins() {
        assert_eq!(winner([1.0, 1.0, 0.0, 1.0]).1, 0);
        assert_eq!(winner([0.0, 2.0, 2.0, 1.0]).1, 1);
        assert_eq!(winner([0.0, f32::NAN, 5.0, f32::NAN]).1, 3);
        assert_eq!(winner([f32::NAN, 1.0, 5.0, 2.0]).1, 0);
        assert_eq!(winner([-3.0, -2.0, -1.0, -1.5]).1, 2);
        assert_eq!(
            winner([-0.0, 0.0, 0.0, 0.0]).0.to_bits(),
            (-0.0f32).to_bits()
        );
    }

    #[test]
    fn odd_edges_get_no_gradient() {
        let d = Planes {
            planes: 1,
            h: 3,
            w: 3,
        };
        let x = [1., 5., 9., 2., 3., 9., 9., 9., 9.];
        assert_eq!(max_pool2x2_forward(&x, d), [5.0]);
        let dx = max_pool2x2_backward(&x, &[2.0], d);
        assert_eq!(dx, [0., 2., 0., 0., 0., 0., 0., 0., 0.]);
    }
}

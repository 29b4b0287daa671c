//! The int8 matrix product under every matrix-shaped kernel (conv2d through its im2col
//! columns, pointwise, dense): each output is `finish(bias + Σ (x - zp) · w)` of one input
//! column and one weight row. Kernels hand over [`MatMulBody::COLUMNS`] columns (output
//! pixels) at a time, contiguous, so that each weight is loaded once for all of them.
//!
//! Three bodies keep one contract, [`MatMulBody`] (the same wrapping `i32` sums, so the same
//! bits), and every one is compiled and tested on every target (`kernels::cases`); the
//! target picks the one it runs in `kernels::native`:
//! - [`Dsp`] (Cortex-M4/M7, M33 with DSP), two columns: both are first widened to `x - zp`
//!   in int16 pairs (`SXTAB16`), in the scrambled lane order of `SXTB16` so that the weights
//!   need no reordering, and interleaved so that one `LDM` loads four pairs; the loop then
//!   does 8 MACs in 9 instructions (`dsp::dot_pair`). This is CMSIS-NN's
//!   `arm_nn_mat_mult_kernel_s8_s16` idea with one weight row per loop instead of two: two
//!   rows need 15 registers and Thumb-2 `asm!` has 12.
//! - [`Thumb1`] (Arm cores without DSP: Cortex-M0+/M0, M3), four columns: widened to `x - zp`
//!   in interleaved int32 words, then an assembly loop where each weight is loaded and
//!   sign-extended once for four MACs, 60 instructions per 16 MACs (`thumb1::dot_quad`).
//! - [`Portable`] (hosts), one column: 16-bit products in vector lanes.
//!
//! Accumulators wrap: a parsed model's layers are bounded so that the true sum fits `i32`,
//! and wrapping addition is associative, so the order of the additions cannot change the
//! result.

use super::ChannelParams;
use super::native;
use crate::quant::OutputQuant;

/// What every matrix-product body does, each in its own way: the contract the tests hold
/// every implementation to.
pub(crate) trait MatMulBody {
    /// Columns (output pixels) per [`MatMulBody::block`], at most [`MAX_COLUMNS`].
    const COLUMNS: usize;

    /// Every output channel of [`MatMulBody::COLUMNS`] columns: `x` holds them one after
    /// the other (`COLUMNS · k` values), `y` gets their outputs the same way
    /// (`COLUMNS · out_c`). `scratch` holds [`block_scratch_len`] bytes.
    fn block(m: &MatMul, x: &[i8], y: &mut [i8], scratch: &mut [i8]);

    /// `Σ (x[i] - zp) · w[i]`, `x` and `w` of equal length, wrapping. By default the plain
    /// loop, which the Cortex-M bodies use for what is left after their blocks.
    #[inline(always)]
    fn dot(x: &[i8], w: &[u8], zp: i8) -> i32 {
        plain_dot(x, w, zp)
    }
}

/// The body this build runs.
pub(crate) type Native = native::MatMul;

/// Most columns any target blocks: the scratch is sized for it everywhere, so that a
/// model's arena is the same on every target.
pub(crate) const MAX_COLUMNS: usize = 4;

/// One matrix-shaped layer: weight rows of `k` bytes, their channel parameters, the input
/// zero point and the output quantization.
#[derive(Clone, Copy)]
pub(crate) struct MatMul<'a> {
    /// Weight rows, `(out_c, k)`.
    pub weights: &'a [u8],
    /// Row length: values per input column (at least 1).
    pub k: usize,
    /// Bias and requantization per row.
    pub channels: ChannelParams<'a>,
    /// Output zero point and clamp.
    pub output: OutputQuant,
    /// Input zero point.
    pub zp: i8,
}

/// Scratch bytes [`MatMul::block`] needs for columns of `k` values: the widened copies of
/// the columns (four int32 columns on Armv6-M, the largest) and 4 bytes to align them.
pub(crate) const fn block_scratch_len(k: usize) -> usize {
    4 * MAX_COLUMNS * k + 4
}

impl MatMul<'_> {
    /// Every output channel of one column, with body `B`'s dot product.
    pub(crate) fn single<B: MatMulBody>(&self, x: &[i8], y: &mut [i8]) {
        let rows = self
            .weights
            .chunks_exact(self.k.max(1))
            .zip(self.channels.iter());
        for (y, (w, (b, r))) in y.iter_mut().zip(rows) {
            *y = self.output.finish(b.wrapping_add(B::dot(x, w, self.zp)), r);
        }
    }

    /// Every output channel of every column of `x` (`n · k` values, any `n`) with body
    /// `B`: blocks of [`MatMulBody::COLUMNS`], then the rest one by one.
    pub(crate) fn columns<B: MatMulBody>(&self, x: &[i8], y: &mut [i8], scratch: &mut [i8]) {
        let (k, oc) = (self.k.max(1), self.channels.len().max(1));
        let mut xs = x.chunks_exact(B::COLUMNS * k);
        let mut ys = y.chunks_exact_mut(B::COLUMNS * oc);
        for (x, y) in xs.by_ref().zip(ys.by_ref()) {
            B::block(self, x, y, scratch);
        }
        let rest = xs.remainder().chunks_exact(k);
        for (x, y) in rest.zip(ys.into_remainder().chunks_exact_mut(oc)) {
            self.single::<B>(x, y);
        }
    }
}

/// The plain loop, for what is left after the blocks on the Cortex-M bodies.
#[inline(always)]
fn plain_dot(x: &[i8], w: &[u8], zp: i8) -> i32 {
    let zp = zp as i32;
    x.iter()
        .zip(w)
        .map(|(&x, &w)| (x as i32 - zp) * (w as i8 as i32))
        .fold(0i32, i32::wrapping_add)
}

/// Cores with the DSP extension: two columns per block, 8 MACs per `dot_pair` turn.
#[allow(dead_code)] // compiled on every target, so that the host tests run it too
pub(crate) struct Dsp;

impl MatMulBody for Dsp {
    const COLUMNS: usize = 2;

    fn block(m: &MatMul, x: &[i8], y: &mut [i8], scratch: &mut [i8]) {
        use super::dsp::{load_i8x4, pair as lanes, words};
        use native::dsp::{dot_pair, sxtab16, sxtab16_ror8};
        let dot = plain_dot;
        let k = m.k.max(1);
        let groups = k / 4;
        let (x0, x1) = x.split_at(k);
        let (y0, y1) = y.split_at_mut(y.len() / 2);
        let neg = lanes(-(m.zp as i16));
        let ab = &mut words(scratch)[..4 * groups];
        for ((q, a), b) in ab
            .chunks_exact_mut(4)
            .zip(x0.chunks_exact(4))
            .zip(x1.chunks_exact(4))
        {
            let (a, b) = (load_i8x4(a), load_i8x4(b));
            q[0] = sxtab16(neg, a);
            q[1] = sxtab16_ror8(neg, a);
            q[2] = sxtab16(neg, b);
            q[3] = sxtab16_ror8(neg, b);
        }
        let ab = &*ab;
        let (t0, t1) = (&x0[4 * groups..], &x1[4 * groups..]);
        let rows = m.weights.chunks_exact(k).zip(m.channels.iter());
        for ((w, (bias, rq)), (y0, y1)) in rows.zip(y0.iter_mut().zip(y1.iter_mut())) {
            let [mut a0, mut a1] = dot_pair(ab, w, [bias, bias]);
            if !t0.is_empty() {
                let wt = &w[4 * groups..];
                a0 = a0.wrapping_add(dot(t0, wt, m.zp));
                a1 = a1.wrapping_add(dot(t1, wt, m.zp));
            }
            let rq = rq.prepare();
            *y0 = m.output.finish_prepared(a0, &rq);
            *y1 = m.output.finish_prepared(a1, &rq);
        }
    }
}

/// Arm cores without the DSP extension: four columns per block, each weight loaded once
/// for four MACs.
#[allow(dead_code)] // compiled on every target, so that the host tests run it too
pub(crate) struct Thumb1;

impl MatMulBody for Thumb1 {
    const COLUMNS: usize = 4;

    fn block(m: &MatMul, x: &[i8], y: &mut [i8], scratch: &mut [i8]) {
        use super::thumb1::words;
        use native::thumb1::dot_quad;
        let dot = plain_dot;
        let k = m.k.max(1);
        let groups = k / 4;
        let zp = m.zp as i32;
        let oc = y.len() / 4;
        let (x01, x23) = x.split_at(2 * k);
        let ((x0, x1), (x2, x3)) = (x01.split_at(k), x23.split_at(k));
        let q = &mut words(scratch)[..16 * groups];
        let cols = x0.iter().zip(x1).zip(x2.iter().zip(x3));
        for (q, ((&a, &b), (&c, &d))) in q.chunks_exact_mut(4).zip(cols) {
            q[0] = a as i32 - zp;
            q[1] = b as i32 - zp;
            q[2] = c as i32 - zp;
            q[3] = d as i32 - zp;
        }
        let q = &*q;
        let tails = [x0, x1, x2, x3].map(|x| &x[4 * groups..]);
        let rows = m.weights.chunks_exact(k).zip(m.channels.iter());
        for (c, (w, (bias, rq))) in rows.enumerate().take(oc) {
            let mut acc = dot_quad(q, w).map(|s| s.wrapping_add(bias));
            if !tails[0].is_empty() {
                let wt = &w[4 * groups..];
                for (a, t) in acc.iter_mut().zip(tails) {
                    *a = a.wrapping_add(dot(t, wt, m.zp));
                }
            }
            let rq = rq.prepare();
            for (p, a) in acc.into_iter().enumerate() {
                if let Some(y) = y.get_mut(p * oc + c) {
                    *y = m.output.finish_prepared(a, &rq);
                }
            }
        }
    }
}

/// Hosts: each output one [`Portable::dot`]; the vector lanes already use every loaded
/// value once per lane.
#[allow(dead_code)] // compiled on every target, so that the host tests run it too
pub(crate) struct Portable;

impl MatMulBody for Portable {
    const COLUMNS: usize = 1;

    fn block(m: &MatMul, x: &[i8], y: &mut [i8], _scratch: &mut [i8]) {
        m.single::<Self>(x, y);
    }

    /// Hosts: each product is exact in i16 (`|x - zp| <= 255`, `|w| <= 128`), so they are
    /// formed 8 at a time in an i16 lane array, which compiles to one 16-bit vector multiply
    /// (x86 `pmullw`, Arm `mul.8h`), then widened and summed in i32. Written as one i32
    /// expression, the products were widened first, and 32-bit vector multiplies cost
    /// several instructions each on x86-64's baseline SSE2.
    #[inline(always)]
    fn dot(x: &[i8], w: &[u8], zp: i8) -> i32 {
        const LANES: usize = 8;
        let zp = zp as i16;
        let prod = |x: i8, w: u8| (x as i16 - zp).wrapping_mul(w as i8 as i16);
        let (xc, wc) = (x.chunks_exact(LANES), w.chunks_exact(LANES));
        let tail = xc
            .remainder()
            .iter()
            .zip(wc.remainder())
            .map(|(&x, &w)| prod(x, w) as i32)
            .fold(0i32, i32::wrapping_add);
        let mut acc = [0i32; LANES];
        for (xs, ws) in xc.zip(wc) {
            let mut p = [0i16; LANES];
            for ((p, &x), &w) in p.iter_mut().zip(xs).zip(ws) {
                *p = prod(x, w);
            }
            for (a, p) in acc.iter_mut().zip(p) {
                *a = a.wrapping_add(p as i32);
            }
        }
        acc.iter().fold(tail, |s, &a| s.wrapping_add(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::*;
    use proptest::prelude::*;

    /// `m.columns::<B>` against the definition of the product.
    fn check<B: MatMulBody>(m: &MatMul, x: &[i8]) -> Result<(), TestCaseError> {
        let (k, rows) = (m.k, m.channels.len());
        let want: Vec<i8> = x
            .chunks_exact(k)
            .flat_map(|x| {
                m.weights.chunks_exact(k).enumerate().map(move |(c, w)| {
                    let sum: i32 = x
                        .iter()
                        .zip(w)
                        .map(|(&x, &w)| (x as i32 - m.zp as i32) * (w as i8 as i32))
                        .sum();
                    let (b, r) = m.channels.get(c);
                    m.output.finish(b + sum, r)
                })
            })
            .collect();
        let mut y = vec![0; x.len() / k * rows];
        m.columns::<B>(x, &mut y, &mut vec![0; block_scratch_len(k)]);
        prop_assert_eq!(&y, &want);
        Ok(())
    }

    proptest! {
        #[test]
        fn every_body_gives_the_sums(
            k in 1usize..40, rows in 1usize..6, n in 1usize..11, zp in any::<i8>(),
            seed in any::<u64>(), ch in channels(5), output in output_quant(),
        ) {
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s as u8 };
            let x: Vec<i8> = (0..n * k).map(|_| next() as i8).collect();
            let weights: Vec<u8> = (0..rows * k).map(|_| next()).collect();
            let channels = ChannelParams::parse(&ch[..rows * 9], rows).unwrap();
            let m = MatMul { weights: &weights, k, channels, output, zp };
            check::<Portable>(&m, &x)?;
            check::<Dsp>(&m, &x)?;
            check::<Thumb1>(&m, &x)?;
        }
    }
}

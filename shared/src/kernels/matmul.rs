//! The int8 matrix product under every matrix-shaped kernel (conv2d through its im2col
//! columns, pointwise, dense): each output is `finish(bias + Σ (x - zp) · w)` of one input
//! column and one weight row, and the kernels hand over two columns (two output pixels) at
//! a time so that each weight is loaded once for both.
//!
//! Three bodies, one contract (the same wrapping `i32` sums, so the same bits):
//! - `emoedge_dsp` (Cortex-M4/M7, M33 with DSP): both columns are first widened to `x - zp`
//!   in int16 pairs (`SXTAB16`), in the scrambled lane order of `SXTB16` so that the weights
//!   need no reordering, and interleaved so that one `LDM` loads four pairs; the loop then
//!   does 8 MACs in 10 instructions ([`super::dsp::dot_pair`]). This is CMSIS-NN's
//!   `arm_nn_mat_mult_kernel_s8_s16` idea with one weight row per loop instead of two: two
//!   rows need 15 registers and Thumb-2 `asm!` has 12, and the spills cost more than the
//!   second row saves.
//! - other Arm cores (Cortex-M0+/M0/M3): both columns widened to `x - zp` in interleaved
//!   int32 words, then an assembly loop of 36 instructions per 8 MACs
//!   ([`super::armv6m::dot_pair`]);
//! - elsewhere (hosts): 16-bit products in vector lanes, one column by one row.
//!
//! Accumulators wrap: a parsed model's layers are bounded so that the true sum fits `i32`,
//! and wrapping addition is associative, so the order of the additions cannot change the
//! result.

use super::ChannelParams;
use crate::quant::OutputQuant;

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

/// Scratch bytes [`MatMul::pair`] needs for columns of `k` values: the widened copies of
/// both columns (int32 on Armv6-M, int16 pairs with the DSP extension) and 4 bytes to align
/// them, reserved on every target so that a model's arena is the same everywhere.
pub(crate) const fn pair_scratch_len(k: usize) -> usize {
    8 * k + 4
}

impl MatMul<'_> {
    /// Every output channel of two columns: `y0[c]` from `x0`, `y1[c]` from `x1`.
    /// `scratch` holds [`pair_scratch_len`] bytes.
    #[inline(always)]
    pub(crate) fn pair(
        &self,
        (x0, x1): (&[i8], &[i8]),
        (y0, y1): (&mut [i8], &mut [i8]),
        scratch: &mut [i8],
    ) {
        imp::pair(self, (x0, x1), (y0, y1), scratch)
    }

    /// Every output channel of one column.
    pub(crate) fn single(&self, x: &[i8], y: &mut [i8]) {
        let rows = self
            .weights
            .chunks_exact(self.k.max(1))
            .zip(self.channels.iter());
        for (y, (w, (b, r))) in y.iter_mut().zip(rows) {
            *y = self.output.finish(b.wrapping_add(dot(x, w, self.zp)), r);
        }
    }
}

/// `Σ (x[i] - zp) · w[i]`, `x` and `w` of equal length.
#[inline(always)]
pub(crate) fn dot(x: &[i8], w: &[u8], zp: i8) -> i32 {
    imp::dot(x, w, zp)
}

#[cfg(emoedge_dsp)]
mod imp {
    use super::MatMul;
    use crate::kernels::dsp::{dot_pair, load_i8x4, pair as lanes, sxtab16, sxtab16_ror8, words};

    pub(super) fn pair(
        m: &MatMul,
        (x0, x1): (&[i8], &[i8]),
        (y0, y1): (&mut [i8], &mut [i8]),
        scratch: &mut [i8],
    ) {
        let k = m.k.max(1);
        let groups = k / 4;
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
        let (t0, t1) = (&x0[4 * groups..k], &x1[4 * groups..k]);
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

    /// One column by one row (dense layers, odd pixels, tails): plain multiply-accumulates;
    /// what is left after the blocks is too short to pay for unpacking.
    #[inline(always)]
    pub(super) fn dot(x: &[i8], w: &[u8], zp: i8) -> i32 {
        let zp = zp as i32;
        x.iter()
            .zip(w)
            .map(|(&x, &w)| (x as i32 - zp) * (w as i8 as i32))
            .fold(0i32, i32::wrapping_add)
    }
}

#[cfg(all(target_arch = "arm", not(emoedge_dsp)))]
mod imp {
    use super::MatMul;
    use crate::kernels::armv6m::{dot_pair, words};

    pub(super) fn pair(
        m: &MatMul,
        (x0, x1): (&[i8], &[i8]),
        (y0, y1): (&mut [i8], &mut [i8]),
        scratch: &mut [i8],
    ) {
        let k = m.k.max(1);
        let groups = k / 4;
        let zp = m.zp as i32;
        let ab = &mut words(scratch)[..8 * groups];
        for ((q, &a), &b) in ab.chunks_exact_mut(2).zip(x0).zip(x1) {
            q[0] = a as i32 - zp;
            q[1] = b as i32 - zp;
        }
        let ab = &*ab;
        let (t0, t1) = (&x0[4 * groups..k], &x1[4 * groups..k]);
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

    /// One column by one row: the plain loop.
    #[inline(always)]
    pub(super) fn dot(x: &[i8], w: &[u8], zp: i8) -> i32 {
        let zp = zp as i32;
        x.iter()
            .zip(w)
            .map(|(&x, &w)| (x as i32 - zp) * (w as i8 as i32))
            .fold(0i32, i32::wrapping_add)
    }
}

#[cfg(not(target_arch = "arm"))]
mod imp {
    use super::MatMul;

    /// Hosts: each output one [`dot`]; the vector lanes already use every loaded value once
    /// per lane, and blocking bought nothing measurable here.
    pub(super) fn pair(
        m: &MatMul,
        (x0, x1): (&[i8], &[i8]),
        (y0, y1): (&mut [i8], &mut [i8]),
        _scratch: &mut [i8],
    ) {
        m.single(x0, y0);
        m.single(x1, y1);
    }

    /// Hosts: each product is exact in i16 (`|x - zp| <= 255`, `|w| <= 128`), so they are
    /// formed 8 at a time in an i16 lane array, which compiles to one 16-bit vector multiply
    /// (x86 `pmullw`, Arm `mul.8h`), then widened and summed in i32. Written as one i32
    /// expression, the products were widened first, and 32-bit vector multiplies cost
    /// several instructions each on x86-64's baseline SSE2.
    #[inline(always)]
    pub(super) fn dot(x: &[i8], w: &[u8], zp: i8) -> i32 {
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

    proptest! {
        #[test]
        fn pairs_and_singles_are_the_sums(
            k in 1usize..40, rows in 1usize..6, zp in any::<i8>(), seed in any::<u64>(),
            ch in channels(5), output in output_quant(),
        ) {
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s as u8 };
            let x: Vec<Vec<i8>> = (0..2).map(|_| (0..k).map(|_| next() as i8).collect()).collect();
            let weights: Vec<u8> = (0..rows * k).map(|_| next()).collect();
            let channels = ChannelParams::parse(&ch[..rows * 9], rows).unwrap();
            let m = MatMul { weights: &weights, k, channels, output, zp };
            let want = |x: &[i8]| -> Vec<i8> {
                weights.chunks_exact(k).enumerate().map(|(c, w)| {
                    let sum: i32 = x.iter().zip(w).map(|(&x, &w)| (x as i32 - zp as i32) * (w as i8 as i32)).sum();
                    let (b, r) = channels.get(c);
                    output.finish(b + sum, r)
                }).collect()
            };
            let (mut y0, mut y1, mut y) = (vec![0; rows], vec![0; rows], vec![0; rows]);
            m.pair((&x[0], &x[1]), (&mut y0, &mut y1), &mut vec![0; pair_scratch_len(k)]);
            m.single(&x[1], &mut y);
            prop_assert_eq!(&y0, &want(&x[0]));
            prop_assert_eq!(&y1, &want(&x[1]));
            prop_assert_eq!(&y, &want(&x[1]));
        }
    }
}

//! Depthwise convolution, channel multiplier 1 (ONNX `QLinearConv` with `group = C`).

use super::{ChannelParams, KernelError, check_io, check_len, dsp, native};
use crate::quant::{OutputQuant, Prepared, Requant};
use crate::shape::{Shape, Window};

/// A depthwise layer. Weights are `(kh, kw, c)`, so the per-tap run over channels is
/// contiguous like the input; padding reads as `input_zp`.
#[derive(Clone, Copy, Debug)]
pub struct DepthwiseParams<'a> {
    /// Input shape (HWC); output has the same channels.
    pub input: Shape,
    /// Kernel, stride and padding.
    pub window: Window,
    /// Input zero point.
    pub input_zp: i8,
    /// Weights as bytes, `(kh, kw, c)`.
    pub weights: &'a [u8],
    /// Bias and requantization per channel.
    pub channels: ChannelParams<'a>,
    /// Output zero point and fused activation clamp.
    pub output: OutputQuant,
}

impl DepthwiseParams<'_> {
    /// Output shape, after checking weights and channel params.
    pub fn output_shape(&self) -> Result<Shape, KernelError> {
        let (oh, ow) = self
            .window
            .output_hw(self.input.h, self.input.w)
            .ok_or(KernelError::BadWindow)?;
        let c = self.input.c as usize;
        let wlen = self.window.kh as usize * self.window.kw as usize * c;
        check_len(wlen, self.weights.len(), |expected, got| {
            KernelError::WeightsLen { expected, got }
        })?;
        check_len(c, self.channels.len(), |expected, got| {
            KernelError::ChannelsLen { expected, got }
        })?;
        if !self.output.is_valid() {
            return Err(KernelError::BadClamp);
        }
        Ok(Shape::new(oh, ow, self.input.c))
    }

    /// Multiply-accumulates of one run.
    pub fn macs(&self) -> Result<u64, KernelError> {
        Ok(self.output_shape()?.len() as u64 * self.window.kh as u64 * self.window.kw as u64)
    }
}

/// Channels accumulated at once: a stack block of `i32`s, so that the tap loop streams over
/// contiguous channel runs of input and weights without a heap or an arena scratch.
const BLOCK: usize = 32;

/// What every depthwise body does, each in its own way: the contract the tests hold every
/// implementation to.
pub(crate) trait DepthwiseBody {
    /// What the body keeps from pixel to pixel of one run (the DSP body's tap table).
    type State<'a>;

    /// A fresh state, once per run of layer `p`.
    fn state<'a>(p: &DepthwiseParams<'a>) -> Self::State<'a>;

    /// `acc[i] += (x[i] - zp) · w[i]` over one tap's run of channels.
    fn mac(acc: &mut [i32], x: &[i8], w: &[u8], zp: i32);

    /// Output pixel `taps` for the `acc.len()` channels from `c0` (at most [`BLOCK`]):
    /// `y[i] = finish(bias[i] + Σ_taps (x_i - zp) · w_i, rq[i])`, `acc` being room for the
    /// accumulators. By default every tap goes through [`DepthwiseBody::mac`].
    #[inline(always)]
    fn pixel<'a>(
        _state: &mut Self::State<'a>,
        p: &DepthwiseParams<'a>,
        input: &'a [i8],
        taps: Taps,
        c0: usize,
        block: (&mut [i32], &[i32], &[Prepared]),
        y: &mut [i8],
    ) {
        mac_pixel::<Self>(p, input, taps, c0, block, y)
    }
}

/// The default [`DepthwiseBody::pixel`]: every tap through `B::mac`, then each channel
/// requantized.
#[inline(always)]
fn mac_pixel<B: DepthwiseBody + ?Sized>(
    p: &DepthwiseParams,
    input: &[i8],
    taps: Taps,
    c0: usize,
    (acc, bias, rq): (&mut [i32], &[i32], &[Prepared]),
    y: &mut [i8],
) {
    let (n, zp) = (acc.len(), p.input_zp as i32);
    acc.copy_from_slice(bias);
    taps.each(p, c0, |xi, wi| {
        B::mac(acc, &input[xi..xi + n], &p.weights[wi..wi + n], zp);
    });
    for ((y, &a), r) in y.iter_mut().zip(acc.iter()).zip(rq) {
        *y = p.output.finish_prepared(a, r);
    }
}

/// The body this build runs.
type Native = native::Depthwise;

/// Runs the depthwise convolution a block of channels at a time: the block's biases and
/// requantization constants are worked out once, then every output pixel accumulates its
/// valid taps over the block's contiguous run of channels (on DSP cores four channels at a
/// time with the accumulators in registers, `dsp::depthwise_taps`).
pub fn depthwise(p: &DepthwiseParams, input: &[i8], output: &mut [i8]) -> Result<(), KernelError> {
    depthwise_with::<Native>(p, input, output)
}

/// [`depthwise`] on body `B`.
pub(crate) fn depthwise_with<B: DepthwiseBody>(
    p: &DepthwiseParams,
    input: &[i8],
    output: &mut [i8],
) -> Result<(), KernelError> {
    run::<B>(p, input, output)
}

/// [`depthwise_with`], with the input and the weights under one lifetime, which the DSP
/// body's tap table keeps.
#[inline(always)]
fn run<'a, B: DepthwiseBody>(
    p: &DepthwiseParams<'a>,
    input: &'a [i8],
    output: &mut [i8],
) -> Result<(), KernelError> {
    let out = p.output_shape()?;
    check_io(p.input, out, input, output)?;
    let c = p.input.c as usize;
    let mut acc = [0i32; BLOCK];
    let mut bias = [0i32; BLOCK];
    let mut rq = [Requant::ZERO.prepare(); BLOCK];
    let mut state = B::state(p);
    for c0 in (0..c).step_by(BLOCK) {
        let n = BLOCK.min(c - c0);
        let records = p.channels.iter().skip(c0);
        for ((b, r), (bb, rr)) in bias.iter_mut().zip(rq.iter_mut()).zip(records).take(n) {
            (*b, *r) = (bb, rr.prepare());
        }
        let (acc, bias, rq) = (&mut acc[..n], &bias[..n], &rq[..n]);
        let mut o = c0;
        for oy in 0..out.h {
            for ox in 0..out.w {
                let taps = Taps::of(p, (oy, ox));
                let y = &mut output[o..o + n];
                o += c;
                B::pixel(&mut state, p, input, taps, c0, (acc, bias, rq), y);
            }
        }
    }
    Ok(())
}

/// Hosts: products formed in an i16 block first, which compiles to 16-bit vector multiplies
/// (see `matmul`).
#[allow(dead_code)] // compiled on every target, so that the host tests run it too
pub(crate) struct Portable;

impl DepthwiseBody for Portable {
    type State<'a> = ();

    fn state<'a>(_: &DepthwiseParams<'a>) -> Self::State<'a> {}

    #[inline(always)]
    fn mac(acc: &mut [i32], x: &[i8], w: &[u8], zp: i32) {
        let zp = zp as i16;
        let mut prod = [0i16; BLOCK];
        for ((q, &x), &w) in prod.iter_mut().zip(x).zip(w) {
            *q = (x as i16 - zp).wrapping_mul(w as i8 as i16);
        }
        for (a, &q) in acc.iter_mut().zip(&prod) {
            *a += q as i32;
        }
    }
}

/// Arm cores without the DSP extension: 32-bit multiply-accumulates (see `matmul`).
#[allow(dead_code)] // compiled on every target, so that the host tests run it too
pub(crate) struct Thumb1;

impl DepthwiseBody for Thumb1 {
    type State<'a> = ();

    fn state<'a>(_: &DepthwiseParams<'a>) -> Self::State<'a> {}

    #[inline(always)]
    fn mac(acc: &mut [i32], x: &[i8], w: &[u8], zp: i32) {
        for ((a, &x), &w) in acc.iter_mut().zip(x).zip(w) {
            *a += (x as i32 - zp) * (w as i8 as i32);
        }
    }
}

/// Cores with the DSP extension: windows up to 4x4 go through a table of the pixel's taps
/// that one assembly loop walks four channels at a time, accumulators in registers
/// (`dsp::depthwise_taps`); larger windows take [`DepthwiseBody::mac`] over the channel
/// run, four channels per word, and the channels past the last multiple of four a plain
/// loop.
#[allow(dead_code)] // compiled on every target, so that the host tests run it too
pub(crate) struct Dsp;

/// The DSP body's state: the tap table (`None` for windows larger than it holds), and the
/// input zero point's negation in both halves, as `SXTAB16` adds it.
#[allow(dead_code)] // compiled on every target, so that the host tests run it too
pub(crate) struct DspState<'a> {
    table: Option<dsp::TapTable<'a>>,
    neg: u32,
}

impl DepthwiseBody for Dsp {
    type State<'a> = DspState<'a>;

    fn state<'a>(p: &DepthwiseParams<'a>) -> DspState<'a> {
        let taps = p.window.kh as usize * p.window.kw as usize;
        DspState {
            table: (taps <= dsp::TapTable::MAX).then(dsp::TapTable::new),
            neg: dsp::pair(-(p.input_zp as i16)),
        }
    }

    /// Four channels per word (CMSIS-NN's depthwise shape): one load of input and one of
    /// weights, `SXTAB16` subtracts the zero point while unpacking, and `SMLABB`/`SMLATT`
    /// do the four per-channel MACs.
    #[inline(always)]
    fn mac(acc: &mut [i32], x: &[i8], w: &[u8], zp: i32) {
        use super::dsp::{load_i8x4, load_u8x4, pair};
        use native::dsp::{smlabb, smlatt, sxtab16, sxtab16_ror8, sxtb16, sxtb16_ror8};
        let neg = pair(-(zp as i16));
        let (mut ac, mut xc, mut wc) = (
            acc.chunks_exact_mut(4),
            x.chunks_exact(4),
            w.chunks_exact(4),
        );
        for ((a, xs), ws) in ac.by_ref().zip(xc.by_ref()).zip(wc.by_ref()) {
            let (xw, ww) = (load_i8x4(xs), load_u8x4(ws));
            let (x02, x13) = (sxtab16(neg, xw), sxtab16_ror8(neg, xw));
            let (w02, w13) = (sxtb16(ww), sxtb16_ror8(ww));
            a[0] = smlabb(x02, w02, a[0]);
            a[1] = smlabb(x13, w13, a[1]);
            a[2] = smlatt(x02, w02, a[2]);
            a[3] = smlatt(x13, w13, a[3]);
        }
        let rest = ac
            .into_remainder()
            .iter_mut()
            .zip(xc.remainder())
            .zip(wc.remainder());
        for ((a, &x), &w) in rest {
            *a += (x as i32 - zp) * (w as i8 as i32);
        }
    }

    #[inline(always)]
    fn pixel<'a>(
        DspState { table, neg }: &mut DspState<'a>,
        p: &DepthwiseParams<'a>,
        input: &'a [i8],
        taps: Taps,
        c0: usize,
        (acc, bias, rq): (&mut [i32], &[i32], &[Prepared]),
        y: &mut [i8],
    ) {
        let Some(table) = table else {
            return mac_pixel::<Self>(p, input, taps, c0, (acc, bias, rq), y);
        };
        let (n, zp, neg) = (acc.len(), p.input_zp as i32, *neg);
        acc.copy_from_slice(bias);
        table.clear();
        let weights: &'a [u8] = p.weights;
        taps.each(p, c0, |xi, wi| {
            table.push(&input[xi..xi + n], &weights[wi..wi + n]);
        });
        let quads = y.chunks_exact_mut(4).zip(acc.chunks_exact(4));
        for (g, ((y, a), r)) in quads.zip(rq.chunks_exact(4)).enumerate() {
            let a = native::dsp::depthwise_taps(table, 4 * g, neg, [a[0], a[1], a[2], a[3]]);
            for ((y, a), r) in y.iter_mut().zip(a).zip(r) {
                *y = p.output.finish_prepared(a, r);
            }
        }
        // Channels past the last multiple of four.
        for i in n / 4 * 4..n {
            let mut a = acc[i];
            taps.each(p, c0 + i, |xi, wi| {
                a += (input[xi] as i32 - zp) * (p.weights[wi] as i8 as i32);
            });
            y[i] = p.output.finish_prepared(a, &rq[i]);
        }
    }
}

/// The valid taps of one output pixel: window rows `ky0..ky1`, and `cols` columns from
/// `kx0`, over the input origin `(y0, x0)` (which the padding may put outside the input).
#[derive(Clone, Copy)]
pub(crate) struct Taps {
    y0: isize,
    x0: isize,
    ky: (isize, isize),
    kx0: isize,
    cols: usize,
}

impl Taps {
    fn of(p: &DepthwiseParams, (oy, ox): (u16, u16)) -> Self {
        let (h, w) = (p.input.h as isize, p.input.w as isize);
        let (kh, kw) = (p.window.kh as isize, p.window.kw as isize);
        let y0 = oy as isize * p.window.sh as isize - p.window.pad[0] as isize;
        let x0 = ox as isize * p.window.sw as isize - p.window.pad[1] as isize;
        let (kx0, kx1) = (0.max(-x0), kw.min(w - x0));
        Taps {
            y0,
            x0,
            ky: (0.max(-y0), kh.min(h - y0)),
            kx0,
            cols: (kx1 - kx0).max(0) as usize,
        }
    }

    /// Calls `f(input index, weight index)` for each valid tap, for channel `ch` (nested
    /// loops: an iterator chain cost the Cortex-M0+ 7% more instructions here).
    #[inline(always)]
    fn each(self, p: &DepthwiseParams, ch: usize, mut f: impl FnMut(usize, usize)) {
        let (w, kw, c) = (p.input.w as isize, p.window.kw as isize, p.input.c as usize);
        for ky in self.ky.0..self.ky.1 {
            let xrow = ((self.y0 + ky) * w + self.x0 + self.kx0) as usize * c + ch;
            let wrow = (ky * kw + self.kx0) as usize * c + ch;
            for t in 0..self.cols {
                f(xrow + t * c, wrow + t * c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference;
    use crate::kernels::testutil::*;
    use proptest::prelude::*;

    #[test]
    fn fixture_two_channels_padded() {
        // 2x2x2 input; channel 0 = 1,2,3,4; channel 1 = 10,20,30,40; zp 0.
        let x = [1i8, 10, 2, 20, 3, 30, 4, 40];
        // 3x3 kernel: channel 0 all ones, channel 1 only the centre tap = 2.
        let mut wts = [0u8; 18];
        for t in 0..9 {
            wts[t * 2] = 1;
        }
        wts[4 * 2 + 1] = 2;
        let ch = unit_channels(&[0, 1]);
        let p = DepthwiseParams {
            input: Shape::new(2, 2, 2),
            window: Window::square(3, 1, 1),
            input_zp: 0,
            weights: &wts,
            channels: ChannelParams::parse(&ch, 2).unwrap(),
            output: OutputQuant::linear(0),
        };
        let mut y = [0i8; 8];
        depthwise(&p, &x, &mut y).unwrap();
        assert_eq!(y, [10, 21, 10, 41, 10, 61, 10, 81]);
    }

    #[allow(clippy::type_complexity)] // proptest strategy tuple
    fn case() -> impl Strategy<Value = (Shape, Window, i8, Vec<u8>, Vec<u8>, OutputQuant, Vec<i8>)>
    {
        (1u16..9, 1u16..9, 1u16..80, 1u8..4, 1u8..3, 0u8..2)
            .prop_filter("window fits", |&(h, w, _, k, _, pad)| {
                Window::square(k, 1, pad.min(k - 1))
                    .output_hw(h, w)
                    .is_some()
            })
            .prop_flat_map(|(h, w, c, k, s, pad)| {
                let shape = Shape::new(h, w, c);
                (
                    Just(shape),
                    Just(Window::square(k, s, pad.min(k - 1))),
                    any::<i8>(),
                    bytes(k as usize * k as usize * c as usize),
                    channels(c as usize),
                    output_quant(),
                    acts(shape.len()),
                )
            })
    }

    proptest! {
        #[test]
        fn every_body_matches_reference((input, window, input_zp, weights, ch, output, x) in case()) {
            let p = DepthwiseParams { input, window, input_zp, weights: &weights, channels: ChannelParams::parse(&ch, input.c as usize).unwrap(), output };
            let n = p.output_shape().unwrap().len();
            let mut want = vec![0i8; n];
            reference::depthwise(&p, &x, &mut want).unwrap();
            for (name, run) in [
                ("portable", depthwise_with::<Portable> as fn(&_, &_, &mut _) -> _),
                ("thumb1", depthwise_with::<Thumb1>),
                ("dsp", depthwise_with::<Dsp>),
            ] {
                let mut got = vec![0i8; n];
                run(&p, &x, &mut got).unwrap();
                prop_assert_eq!(&got, &want, "{}", name);
            }
        }
    }
}

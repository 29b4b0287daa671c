//! 2-D convolution, `groups = 1`, any kernel size, stride and padding (ONNX `QLinearConv`).

use super::{ChannelParams, KernelError, check_io, check_len};
use crate::quant::OutputQuant;
use crate::shape::{Shape, Window};

/// A convolution layer. Weights are `(out_c, kh, kw, in_c)`, int8 symmetric (zero point 0);
/// padding reads as `input_zp`, i.e. as a real zero.
#[derive(Clone, Copy, Debug)]
pub struct Conv2dParams<'a> {
    /// Input shape (HWC).
    pub input: Shape,
    /// Kernel, stride and padding.
    pub window: Window,
    /// Output channels.
    pub out_c: u16,
    /// Input zero point.
    pub input_zp: i8,
    /// Weights as bytes, `(out_c, kh, kw, in_c)`.
    pub weights: &'a [u8],
    /// Bias and requantization per output channel.
    pub channels: ChannelParams<'a>,
    /// Output zero point and fused activation clamp.
    pub output: OutputQuant,
}

impl Conv2dParams<'_> {
    /// Output shape, after checking weights and channel params against the layer shape.
    pub fn output_shape(&self) -> Result<Shape, KernelError> {
        let (oh, ow) = self
            .window
            .output_hw(self.input.h, self.input.w)
            .ok_or(KernelError::BadWindow)?;
        let wlen = self.out_c as usize
            * self.window.kh as usize
            * self.window.kw as usize
            * self.input.c as usize;
        check_len(wlen, self.weights.len(), |expected, got| {
            KernelError::WeightsLen { expected, got }
        })?;
        check_len(self.out_c as usize, self.channels.len(), |expected, got| {
            KernelError::ChannelsLen { expected, got }
        })?;
        if !self.output.is_valid() {
            return Err(KernelError::BadClamp);
        }
        Ok(Shape::new(oh, ow, self.out_c))
    }

    /// Multiply-accumulates of one run.
    pub fn macs(&self) -> Result<u64, KernelError> {
        let o = self.output_shape()?;
        Ok(o.len() as u64 * self.window.kh as u64 * self.window.kw as u64 * self.input.c as u64)
    }
}

/// Runs the convolution. Loop order: output pixel, then output channel, then the valid taps,
/// with the input-channel dot product innermost and contiguous on both sides.
pub fn conv2d(p: &Conv2dParams, input: &[i8], output: &mut [i8]) -> Result<(), KernelError> {
    let out = p.output_shape()?;
    check_io(p.input, out, input, output)?;
    let (h, w, c) = (p.input.h as isize, p.input.w as isize, p.input.c as usize);
    let (kh, kw) = (p.window.kh as isize, p.window.kw as isize);
    let zp = p.input_zp as i32;
    let mut o = 0;
    for oy in 0..out.h as isize {
        let y0 = oy * p.window.sh as isize - p.window.pad[0] as isize;
        let (ky0, ky1) = (0.max(-y0), kh.min(h - y0));
        for ox in 0..out.w as isize {
            let x0 = ox * p.window.sw as isize - p.window.pad[1] as isize;
            let (kx0, kx1) = (0.max(-x0), kw.min(w - x0));
            let run = (kx1 - kx0) as usize * c;
            for oc in 0..out.c as usize {
                let (bias, rq) = p.channels.get(oc);
                let mut acc = bias;
                for ky in ky0..ky1 {
                    let xi = (((y0 + ky) * w + x0 + kx0) as usize) * c;
                    let wi = ((oc as isize * kh + ky) * kw + kx0) as usize * c;
                    acc += dot(&input[xi..xi + run], &p.weights[wi..wi + run], zp);
                }
                output[o] = p.output.finish(acc, rq);
                o += 1;
            }
        }
    }
    Ok(())
}

/// `Σ (x - zp) · w` over two equal-length runs. Each product is exact in i16
/// (`|x - zp| <= 255`, `|w| <= 128`, so `|product| <= 32,640`), so they are formed 8 at a
/// time in an i16 lane array, which compiles to one 16-bit vector multiply (x86 `pmullw`,
/// Arm `mul.8h`), then widened and summed in i32. Written as one i32 expression, the
/// products were widened first, and 32-bit vector multiplies cost several instructions each
/// on x86-64's baseline SSE2 (the lanes halved the engine's time per face on the host).
#[cfg(not(target_arch = "arm"))]
#[inline(always)]
pub(crate) fn dot(x: &[i8], w: &[u8], zp: i32) -> i32 {
    const LANES: usize = 8;
    let zp = zp as i16;
    let prod = |x: i8, w: u8| (x as i16 - zp).wrapping_mul(w as i8 as i16);
    let (xc, wc) = (x.chunks_exact(LANES), w.chunks_exact(LANES));
    let tail: i32 = xc
        .remainder()
        .iter()
        .zip(wc.remainder())
        .map(|(&x, &w)| prod(x, w) as i32)
        .sum();
    let mut acc = [0i32; LANES];
    for (xs, ws) in xc.zip(wc) {
        let mut p = [0i16; LANES];
        for ((p, &x), &w) in p.iter_mut().zip(xs).zip(ws) {
            *p = prod(x, w);
        }
        for (a, p) in acc.iter_mut().zip(p) {
            *a += p as i32;
        }
    }
    acc.iter().sum::<i32>() + tail
}

/// `Σ (x - zp) · w` over two equal-length runs. Cortex-M has no vector unit and a
/// single-cycle 32-bit multiply-accumulate, so the plain loop is its fastest form: the i16
/// lanes above cost it 19% more instructions per inference in QEMU.
#[cfg(target_arch = "arm")]
#[inline(always)]
pub(crate) fn dot(x: &[i8], w: &[u8], zp: i32) -> i32 {
    x.iter()
        .zip(w)
        .map(|(&x, &w)| (x as i32 - zp) * (w as i8 as i32))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference;
    use crate::kernels::testutil::*;
    use proptest::prelude::*;

    #[test]
    fn fixture_3x3_same_padding() {
        // 3x3 input, 1 channel, values 1..=9 with zp 1 (real 0..=8); all-ones 3x3 kernel.
        let x: Vec<i8> = (1..=9).collect();
        let ch = unit_channels(&[0]);
        let p = Conv2dParams {
            input: Shape::new(3, 3, 1),
            window: Window::square(3, 1, 1),
            out_c: 1,
            input_zp: 1,
            weights: &[1; 9],
            channels: ChannelParams::parse(&ch, 1).unwrap(),
            output: OutputQuant::linear(0),
        };
        let mut y = [0i8; 9];
        conv2d(&p, &x, &mut y).unwrap();
        // Real input [[0,1,2],[3,4,5],[6,7,8]]: 3x3 box sums with zero padding.
        assert_eq!(y, [8, 15, 12, 21, 36, 27, 20, 33, 24]);
        let mut r = [0i8; 9];
        reference::conv2d(&p, &x, &mut r).unwrap();
        assert_eq!(r, y);
    }

    #[test]
    fn fixture_stride_2_two_channels_and_relu() {
        // 4x4x2 input; kernel 2x2 stride 2; channel 0 sums channel 0, channel 1 negates it.
        let x: Vec<i8> = (0..32)
            .map(|i| if i % 2 == 0 { (i / 2) as i8 } else { 100 })
            .collect();
        let mut wts = vec![0u8; 2 * 2 * 2 * 2];
        for t in 0..4 {
            wts[t * 2] = 1;
            wts[8 + t * 2] = (-1i8) as u8;
        }
        let ch = unit_channels(&[0, 0]);
        let p = Conv2dParams {
            input: Shape::new(4, 4, 2),
            window: Window::square(2, 2, 0),
            out_c: 2,
            input_zp: 0,
            weights: &wts,
            channels: ChannelParams::parse(&ch, 2).unwrap(),
            output: OutputQuant::relu(0),
        };
        let mut y = [0i8; 8];
        conv2d(&p, &x, &mut y).unwrap();
        assert_eq!(y, [10, 0, 18, 0, 42, 0, 50, 0]);
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let ch = unit_channels(&[0]);
        let p = Conv2dParams {
            input: Shape::new(3, 3, 1),
            window: Window::square(3, 1, 1),
            out_c: 1,
            input_zp: 0,
            weights: &[1; 8],
            channels: ChannelParams::parse(&ch, 1).unwrap(),
            output: OutputQuant::linear(0),
        };
        assert_eq!(
            conv2d(&p, &[0; 9], &mut [0; 9]),
            Err(KernelError::WeightsLen {
                expected: 9,
                got: 8
            })
        );
        let p = Conv2dParams {
            weights: &[1; 9],
            ..p
        };
        assert_eq!(
            conv2d(&p, &[0; 8], &mut [0; 9]),
            Err(KernelError::InputLen {
                expected: 9,
                got: 8
            })
        );
        assert_eq!(
            conv2d(&p, &[0; 9], &mut [0; 10]),
            Err(KernelError::OutputLen {
                expected: 9,
                got: 10
            })
        );
        let p = Conv2dParams {
            window: Window::square(3, 0, 1),
            ..p
        };
        assert_eq!(
            conv2d(&p, &[0; 9], &mut [0; 9]),
            Err(KernelError::BadWindow)
        );
    }

    #[allow(clippy::type_complexity)] // proptest strategy tuple
    fn case() -> impl Strategy<
        Value = (
            Shape,
            Window,
            u16,
            i8,
            Vec<u8>,
            Vec<u8>,
            OutputQuant,
            Vec<i8>,
        ),
    > {
        (
            1u16..9,
            1u16..9,
            1u16..6,
            1u8..4,
            1u8..4,
            1u8..3,
            0u8..3,
            1u16..6,
        )
            .prop_filter("window fits", |&(h, w, _, kh, kw, _, pad, _)| {
                Window {
                    kh,
                    kw,
                    sh: 1,
                    sw: 1,
                    pad: [
                        pad.min(kh - 1),
                        pad.min(kw - 1),
                        pad.min(kh - 1),
                        pad.min(kw - 1),
                    ],
                }
                .output_hw(h, w)
                .is_some()
            })
            .prop_flat_map(|(h, w, c, kh, kw, s, pad, oc)| {
                let win = Window {
                    kh,
                    kw,
                    sh: s,
                    sw: s,
                    pad: [
                        pad.min(kh - 1),
                        pad.min(kw - 1),
                        pad.min(kh - 1),
                        pad.min(kw - 1),
                    ],
                };
                let shape = Shape::new(h, w, c);
                (
                    Just(shape),
                    Just(win),
                    Just(oc),
                    any::<i8>(),
                    bytes(oc as usize * kh as usize * kw as usize * c as usize),
                    channels(oc as usize),
                    output_quant(),
                    acts(shape.len()),
                )
            })
    }

    proptest! {
        #[test]
        fn fast_matches_reference((input, window, out_c, input_zp, weights, ch, output, x) in case()) {
            let p = Conv2dParams { input, window, out_c, input_zp, weights: &weights, channels: ChannelParams::parse(&ch, out_c as usize).unwrap(), output };
            let n = p.output_shape().unwrap().len();
            let (mut a, mut b) = (vec![0i8; n], vec![0i8; n]);
            conv2d(&p, &x, &mut a).unwrap();
            reference::conv2d(&p, &x, &mut b).unwrap();
            prop_assert_eq!(a, b);
        }
    }
}

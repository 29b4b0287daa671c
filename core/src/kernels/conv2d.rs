//! 2-D convolution, `groups = 1`, any kernel size, stride and padding (ONNX `QLinearConv`).

use super::matmul::{self, MatMulBody};
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

impl Conv2dParams<'_> {
    /// Length of one im2col column: every input value one output reads, `kh · kw · in_c`.
    pub fn column_len(&self) -> usize {
        self.window.kh as usize * self.window.kw as usize * self.input.c as usize
    }

    /// Scratch bytes [`conv2d`] needs: the im2col columns of one block of pixels and the
    /// matrix product's own.
    pub fn scratch_len(&self) -> usize {
        let k = self.column_len();
        matmul::MAX_COLUMNS * k + matmul::block_scratch_len(k)
    }
}

/// Runs the convolution as a matrix product: a block of output pixels at a time
/// (`MatMulBody::COLUMNS`, 1 to 4 by target), their input windows are copied into im2col
/// columns (`kh · kw · in_c` bytes each, in the weights' order, padding written as
/// `input_zp`, i.e. a real zero), and the matrix product computes every output channel of
/// all of them. `scratch` holds the columns ([`Conv2dParams::scratch_len`] bytes or more).
pub fn conv2d(
    p: &Conv2dParams,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> Result<(), KernelError> {
    conv2d_with::<matmul::Native>(p, input, output, scratch)
}

/// [`conv2d`] on matrix-product body `B`.
pub(crate) fn conv2d_with<B: MatMulBody>(
    p: &Conv2dParams,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> Result<(), KernelError> {
    let out = p.output_shape()?;
    check_io(p.input, out, input, output)?;
    let k = p.column_len();
    if scratch.len() < p.scratch_len() {
        return Err(KernelError::ScratchLen {
            needed: p.scratch_len(),
            got: scratch.len(),
        });
    }
    let (cols, rest) = scratch.split_at_mut(matmul::MAX_COLUMNS * k);
    let cols = &mut cols[..B::COLUMNS * k];
    let m = matmul::MatMul {
        weights: p.weights,
        k,
        channels: p.channels,
        output: p.output,
        zp: p.input_zp,
    };
    let (ow, oc) = (out.w as usize, out.c as usize);
    let mut ys = output.chunks_exact_mut(B::COLUMNS * oc);
    let mut px = 0;
    for y in ys.by_ref() {
        for col in cols.chunks_exact_mut(k) {
            im2col(p, input, (px / ow, px % ow), col);
            px += 1;
        }
        B::block(&m, cols, y, rest);
    }
    // The pixels after the last whole block.
    for y in ys.into_remainder().chunks_exact_mut(oc) {
        let col = &mut cols[..k];
        im2col(p, input, (px / ow, px % ow), col);
        m.single::<B>(col, y);
        px += 1;
    }
    Ok(())
}

/// Copies the input window of output pixel `(oy, ox)` into `col`, in the weights' `(kh, kw,
/// in_c)` order; taps in the padding read `input_zp`.
fn im2col(p: &Conv2dParams, input: &[i8], (oy, ox): (usize, usize), col: &mut [i8]) {
    let (h, w, c) = (p.input.h as isize, p.input.w as isize, p.input.c as usize);
    let (kh, kw) = (p.window.kh as isize, p.window.kw as isize);
    let y0 = oy as isize * p.window.sh as isize - p.window.pad[0] as isize;
    let x0 = ox as isize * p.window.sw as isize - p.window.pad[1] as isize;
    let (kx0, kx1) = (0.max(-x0).min(kw), kw.min(w - x0).max(0));
    let row = kw as usize * c;
    for (ky, dst) in (0..kh).zip(col.chunks_exact_mut(row)) {
        let iy = y0 + ky;
        if iy < 0 || iy >= h || kx0 >= kx1 {
            dst.fill(p.input_zp);
            continue;
        }
        let (left, rest) = dst.split_at_mut(kx0 as usize * c);
        let (mid, right) = rest.split_at_mut((kx1 - kx0) as usize * c);
        left.fill(p.input_zp);
        let start = ((iy * w + x0 + kx0) as usize) * c;
        mid.copy_from_slice(&input[start..start + mid.len()]);
        right.fill(p.input_zp);
    }
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
        conv2d(&p, &x, &mut y, &mut vec![0; p.scratch_len()]).unwrap();
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
        conv2d(&p, &x, &mut y, &mut vec![0; p.scratch_len()]).unwrap();
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
            conv2d(&p, &[0; 9], &mut [0; 9], &mut [0; 18]),
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
            conv2d(&p, &[0; 8], &mut [0; 9], &mut [0; 18]),
            Err(KernelError::InputLen {
                expected: 9,
                got: 8
            })
        );
        assert_eq!(
            conv2d(&p, &[0; 9], &mut [0; 10], &mut [0; 18]),
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
            conv2d(&p, &[0; 9], &mut [0; 9], &mut [0; 18]),
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
            conv2d(&p, &x, &mut a, &mut vec![0; p.scratch_len()]).unwrap();
            reference::conv2d(&p, &x, &mut b).unwrap();
            prop_assert_eq!(a, b);
        }
    }
}

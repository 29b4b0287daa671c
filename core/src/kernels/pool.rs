//! Pooling: max pool, average pool and global average pool.
//!
//! Max pooling keeps the input quantization (it commutes with any monotonic affine map).
//! Average pooling is a depthwise convolution with equal weights: `Σ (x - zp)` over the
//! window (padding counts as a real zero, ONNX `count_include_pad = 1`) times a requant
//! `in_scale / (kh · kw · out_scale)`. That is how the ONNX export writes it, because
//! tract has no integer `QLinearAveragePool` / `QLinearGlobalAveragePool`.

use super::{KernelError, check_io};
use crate::quant::{OutputQuant, Requant};
use crate::shape::{Shape, Window};

/// A max-pool layer. Padding never wins (it reads as `-inf`).
#[derive(Clone, Copy, Debug)]
pub struct MaxPoolParams {
    /// Input shape (HWC); output has the same channels.
    pub input: Shape,
    /// Kernel, stride and padding.
    pub window: Window,
}

impl MaxPoolParams {
    /// Output shape.
    pub fn output_shape(&self) -> Result<Shape, KernelError> {
        let (oh, ow) = self
            .window
            .output_hw(self.input.h, self.input.w)
            .ok_or(KernelError::BadWindow)?;
        Ok(Shape::new(oh, ow, self.input.c))
    }
}

/// Runs the max pool.
pub fn max_pool(p: &MaxPoolParams, input: &[i8], output: &mut [i8]) -> Result<(), KernelError> {
    let out = p.output_shape()?;
    check_io(p.input, out, input, output)?;
    let (h, w, c) = (p.input.h as isize, p.input.w as isize, p.input.c as usize);
    let (kh, kw) = (p.window.kh as isize, p.window.kw as isize);
    let mut o = 0;
    for oy in 0..out.h as isize {
        let y0 = oy * p.window.sh as isize - p.window.pad[0] as isize;
        let (ky0, ky1) = (0.max(-y0), kh.min(h - y0));
        for ox in 0..out.w as isize {
            let x0 = ox * p.window.sw as isize - p.window.pad[1] as isize;
            let (kx0, kx1) = (0.max(-x0), kw.min(w - x0));
            let y = &mut output[o..o + c];
            y.fill(i8::MIN);
            for ky in ky0..ky1 {
                for kx in kx0..kx1 {
                    let xi = (((y0 + ky) * w + x0 + kx) as usize) * c;
                    for (m, &x) in y.iter_mut().zip(&input[xi..xi + c]) {
                        *m = (*m).max(x);
                    }
                }
            }
            o += c;
        }
    }
    Ok(())
}

/// An average-pool layer (see the module docs for its integer contract).
#[derive(Clone, Copy, Debug)]
pub struct AvgPoolParams {
    /// Input shape (HWC); output has the same channels.
    pub input: Shape,
    /// Kernel, stride and padding.
    pub window: Window,
    /// Input zero point.
    pub input_zp: i8,
    /// `in_scale / (kh · kw · out_scale)` in fixed point.
    pub requant: Requant,
    /// Output zero point and clamp.
    pub output: OutputQuant,
}

impl AvgPoolParams {
    /// The global average pool of an `input`: one window over the whole plane.
    pub fn global(
        input: Shape,
        input_zp: i8,
        requant: Requant,
        output: OutputQuant,
    ) -> Result<Self, KernelError> {
        let (kh, kw) = (u8::try_from(input.h), u8::try_from(input.w));
        let (Ok(kh), Ok(kw)) = (kh, kw) else {
            return Err(KernelError::BadWindow);
        };
        Ok(Self {
            input,
            window: Window {
                kh,
                kw,
                sh: 1,
                sw: 1,
                pad: [0; 4],
            },
            input_zp,
            requant,
            output,
        })
    }

    /// Output shape.
    pub fn output_shape(&self) -> Result<Shape, KernelError> {
        let (oh, ow) = self
            .window
            .output_hw(self.input.h, self.input.w)
            .ok_or(KernelError::BadWindow)?;
        if !self.output.is_valid() {
            return Err(KernelError::BadClamp);
        }
        Ok(Shape::new(oh, ow, self.input.c))
    }
}

/// Runs the average pool, a block of channels at a time per output pixel.
pub fn avg_pool(p: &AvgPoolParams, input: &[i8], output: &mut [i8]) -> Result<(), KernelError> {
    const BLOCK: usize = 32;
    let out = p.output_shape()?;
    check_io(p.input, out, input, output)?;
    let (h, w, c) = (p.input.h as isize, p.input.w as isize, p.input.c as usize);
    let (kh, kw) = (p.window.kh as isize, p.window.kw as isize);
    let zp = p.input_zp as i32;
    let mut acc = [0i32; BLOCK];
    let mut o = 0;
    for oy in 0..out.h as isize {
        let y0 = oy * p.window.sh as isize - p.window.pad[0] as isize;
        let (ky0, ky1) = (0.max(-y0), kh.min(h - y0));
        for ox in 0..out.w as isize {
            let x0 = ox * p.window.sw as isize - p.window.pad[1] as isize;
            let (kx0, kx1) = (0.max(-x0), kw.min(w - x0));
            for c0 in (0..c).step_by(BLOCK) {
                let n = BLOCK.min(c - c0);
                let acc = &mut acc[..n];
                acc.fill(0);
                for ky in ky0..ky1 {
                    for kx in kx0..kx1 {
                        let xi = (((y0 + ky) * w + x0 + kx) as usize) * c + c0;
                        for (a, &x) in acc.iter_mut().zip(&input[xi..xi + n]) {
                            *a += x as i32 - zp;
                        }
                    }
                }
                for (y, &a) in output[o + c0..o + c0 + n].iter_mut().zip(acc.iter()) {
                    *y = p.output.finish(a, p.requant);
                }
            }
            o += c;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference;
    use crate::kernels::testutil::*;
    use proptest::prelude::*;

    #[test]
    fn fixture_max_pool_2x2() {
        let x = [1i8, -5, 3, 2, 0, 7, -128, 4, 9, 8, -1, -2, 6, 5, 4, 3];
        let p = MaxPoolParams {
            input: Shape::new(4, 4, 1),
            window: Window::square(2, 2, 0),
        };
        let mut y = [0i8; 4];
        max_pool(&p, &x, &mut y).unwrap();
        assert_eq!(y, [7, 4, 9, 4]);
    }

    #[test]
    fn fixture_global_average_rounds_half_even() {
        // Real values (zp -1): 0,1,2,3 -> mean 1.5 -> 2 (tie to even); 1,1,1,2 -> 1.25 -> 1.
        let x = [-1i8, 0, 0, 0, 1, 0, 2, 1];
        let quarter = Requant::new(1 << 30, 1).unwrap();
        let p = AvgPoolParams::global(Shape::new(2, 2, 2), -1, quarter, OutputQuant::linear(0))
            .unwrap();
        let mut y = [0i8; 2];
        avg_pool(&p, &x, &mut y).unwrap();
        assert_eq!(y, [2, 1]);
    }

    #[allow(clippy::type_complexity)] // proptest strategy tuple
    fn case() -> impl Strategy<Value = (Shape, Window, i8, Vec<u8>, OutputQuant, Vec<i8>)> {
        (1u16..9, 1u16..9, 1u16..70, 1u8..4, 1u8..3, 0u8..2)
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
                    channels(1),
                    output_quant(),
                    acts(shape.len()),
                )
            })
    }

    proptest! {
        #[test]
        fn max_pool_matches_reference((input, window, _zp, _ch, _out, x) in case()) {
            let p = MaxPoolParams { input, window };
            let n = p.output_shape().unwrap().len();
            let (mut a, mut b) = (vec![0i8; n], vec![0i8; n]);
            max_pool(&p, &x, &mut a).unwrap();
            reference::max_pool(&p, &x, &mut b).unwrap();
            prop_assert_eq!(a, b);
        }

        #[test]
        fn avg_pool_matches_reference((input, window, input_zp, ch, output, x) in case()) {
            let requant = crate::kernels::ChannelParams::parse(&ch, 1).unwrap().get(0).1;
            let p = AvgPoolParams { input, window, input_zp, requant, output };
            let n = p.output_shape().unwrap().len();
            let (mut a, mut b) = (vec![0i8; n], vec![0i8; n]);
            avg_pool(&p, &x, &mut a).unwrap();
            reference::avg_pool(&p, &x, &mut b).unwrap();
            prop_assert_eq!(a, b);
        }
    }
}

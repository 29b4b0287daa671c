//! Naive, obviously-correct kernels that the fast ones are tested against.
//!
//! Each output element is computed on its own from the definition: every tap is bounds
//! checked, padding contributes a real zero, nothing is hoisted or blocked.

use super::conv2d::Conv2dParams;
use super::dense::DenseParams;
use super::depthwise::DepthwiseParams;
use super::pointwise::PointwiseParams;
use super::pool::{AvgPoolParams, MaxPoolParams};
use super::{KernelError, check_io, check_len};
use crate::quant::Requant;
use crate::shape::{Shape, Window};

/// The input element under tap `(ky, kx)` of output `(oy, ox)`, channel `ch`, or `None` in
/// the padding.
fn tap(
    input: &[i8],
    s: Shape,
    win: Window,
    (oy, ox): (usize, usize),
    (ky, kx): (usize, usize),
    ch: usize,
) -> Option<i8> {
    let iy = (oy * win.sh as usize + ky) as isize - win.pad[0] as isize;
    let ix = (ox * win.sw as usize + kx) as isize - win.pad[1] as isize;
    if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
        return None;
    }
    Some(input[(iy as usize * s.w as usize + ix as usize) * s.c as usize + ch])
}

fn idx(s: Shape, y: usize, x: usize, c: usize) -> usize {
    (y * s.w as usize + x) * s.c as usize + c
}

/// Reference [`super::conv2d::conv2d`].
pub fn conv2d(p: &Conv2dParams, input: &[i8], output: &mut [i8]) -> Result<(), KernelError> {
    let out = p.output_shape()?;
    check_io(p.input, out, input, output)?;
    let (kh, kw, ic) = (
        p.window.kh as usize,
        p.window.kw as usize,
        p.input.c as usize,
    );
    for oy in 0..out.h as usize {
        for ox in 0..out.w as usize {
            for oc in 0..out.c as usize {
                let (bias, rq) = p.channels.get(oc);
                let mut acc = bias;
                for ky in 0..kh {
                    for kx in 0..kw {
                        for ch in 0..ic {
                            if let Some(x) = tap(input, p.input, p.window, (oy, ox), (ky, kx), ch) {
                                let w = p.weights[((oc * kh + ky) * kw + kx) * ic + ch] as i8;
                                acc += (x as i32 - p.input_zp as i32) * w as i32;
                            }
                        }
                    }
                }
                output[idx(out, oy, ox, oc)] = p.output.finish(acc, rq);
            }
        }
    }
    Ok(())
}

/// Reference [`super::depthwise::depthwise`].
pub fn depthwise(p: &DepthwiseParams, input: &[i8], output: &mut [i8]) -> Result<(), KernelError> {
    let out = p.output_shape()?;
    check_io(p.input, out, input, output)?;
    let (kh, kw, c) = (
        p.window.kh as usize,
        p.window.kw as usize,
        p.input.c as usize,
    );
    for oy in 0..out.h as usize {
        for ox in 0..out.w as usize {
            for ch in 0..c {
                let (bias, rq) = p.channels.get(ch);
                let mut acc = bias;
                for ky in 0..kh {
                    for kx in 0..kw {
                        if let Some(x) = tap(input, p.input, p.window, (oy, ox), (ky, kx), ch) {
                            let w = p.weights[(ky * kw + kx) * c + ch] as i8;
                            acc += (x as i32 - p.input_zp as i32) * w as i32;
                        }
                    }
                }
                output[idx(out, oy, ox, ch)] = p.output.finish(acc, rq);
            }
        }
    }
    Ok(())
}

/// Reference [`super::pointwise::pointwise`].
pub fn pointwise(p: &PointwiseParams, input: &[i8], output: &mut [i8]) -> Result<(), KernelError> {
    let out = p.output_shape()?;
    check_io(p.input, out, input, output)?;
    let ic = p.input.c as usize;
    for px in 0..(p.input.h as usize * p.input.w as usize) {
        for oc in 0..out.c as usize {
            let (bias, rq) = p.channels.get(oc);
            let mut acc = bias;
            for ch in 0..ic {
                let x = input[px * ic + ch] as i32 - p.input_zp as i32;
                acc += x * p.weights[oc * ic + ch] as i8 as i32;
            }
            output[px * out.c as usize + oc] = p.output.finish(acc, rq);
        }
    }
    Ok(())
}

/// Reference [`super::dense::dense`].
pub fn dense(p: &DenseParams, input: &[i8], output: &mut [i8]) -> Result<(), KernelError> {
    let n = p.output_len()?;
    check_len(p.input_len as usize, input.len(), |expected, got| {
        KernelError::InputLen { expected, got }
    })?;
    check_len(n, output.len(), |expected, got| KernelError::OutputLen {
        expected,
        got,
    })?;
    for (o, y) in output.iter_mut().enumerate() {
        let (bias, rq) = p.channels.get(o);
        let mut acc = bias;
        for (i, &x) in input.iter().enumerate() {
            acc += (x as i32 - p.input_zp as i32) * p.weights[o * input.len() + i] as i8 as i32;
        }
        *y = p.output.finish(acc, rq);
    }
    Ok(())
}

/// Reference [`super::pool::max_pool`].
pub fn max_pool(p: &MaxPoolParams, input: &[i8], output: &mut [i8]) -> Result<(), KernelError> {
    let out = p.output_shape()?;
    check_io(p.input, out, input, output)?;
    for oy in 0..out.h as usize {
        for ox in 0..out.w as usize {
            for ch in 0..out.c as usize {
                let mut m = i8::MIN;
                for ky in 0..p.window.kh as usize {
                    for kx in 0..p.window.kw as usize {
                        if let Some(x) = tap(input, p.input, p.window, (oy, ox), (ky, kx), ch) {
                            m = m.max(x);
                        }
                    }
                }
                output[idx(out, oy, ox, ch)] = m;
            }
        }
    }
    Ok(())
}

/// Reference [`super::pool::avg_pool`].
pub fn avg_pool(p: &AvgPoolParams, input: &[i8], output: &mut [i8]) -> Result<(), KernelError> {
    let out = p.output_shape()?;
    check_io(p.input, out, input, output)?;
    for oy in 0..out.h as usize {
        for ox in 0..out.w as usize {
            for ch in 0..out.c as usize {
                let mut acc = 0i32;
                for ky in 0..p.window.kh as usize {
                    for kx in 0..p.window.kw as usize {
                        if let Some(x) = tap(input, p.input, p.window, (oy, ox), (ky, kx), ch) {
                            acc += x as i32 - p.input_zp as i32;
                        }
                    }
                }
                output[idx(out, oy, ox, ch)] = p.output.finish(acc, p.requant);
            }
        }
    }
    Ok(())
}

/// Reference [`Requant::apply`]: `round_half_even(acc · mult / 2^(31 + shift))` saturated to
/// `i32`, computed straight from the definition in `i128`.
pub fn requant(acc: i32, r: Requant) -> i32 {
    let v = acc as i128 * r.mult() as i128;
    let s = 31 + r.shift();
    let q = v >> s;
    let rem = v - (q << s);
    let half = 1i128 << (s - 1);
    let up = rem > half || (rem == half && q & 1 == 1);
    (q + up as i128).clamp(i32::MIN as i128, i32::MAX as i128) as i32
}

//! Seeded kernel cases, the one set every implementation is held to: the host tests run
//! them through every body (portable, DSP and Thumb-1, their instructions as plain-Rust
//! models) and the firmware's `kernel-check` through the core's own, in QEMU, each against
//! [`super::reference`]. `no_std` and allocation-free, so the firmware runs it as it is.
//!
//! Cases: the shipped network's layer shapes (with a smaller image where the shape allows),
//! then seeded random shapes that cover the remainders (odd pixel counts, channels and
//! column lengths that are not multiples of 4, strides, asymmetric padding), random weights,
//! activations, zero points, biases, requantization pairs and fused activations; and random
//! requantizations, exact ties among them.

use super::conv2d::Conv2dParams;
use super::dense::DenseParams;
use super::depthwise::DepthwiseParams;
use super::pointwise::PointwiseParams;
use super::{CHANNEL_RECORD_LEN, ChannelParams, KernelError, reference};
#[cfg(test)]
use super::{depthwise::DepthwiseBody, matmul::MatMulBody};
use crate::quant::{OutputQuant, Requant};
use crate::shape::{Shape, Window};

/// The seed the host tests and `kernel-check` both draw from.
pub const SEED: u32 = 0x2545_f491;

/// Largest activation tensor a case uses.
pub const MAX_ACTS: usize = 12 * 1024;
/// Largest weight tensor a case uses.
pub const MAX_WEIGHTS: usize = 64 * 1024;
/// Most output channels a case has.
pub const MAX_CHANNELS: usize = 256;
/// Most kernel scratch a case needs.
pub const MAX_SCRATCH: usize = 16 * 1024;

/// Xorshift32 (Marsaglia): a fixed, seeded stream; statistical quality does not matter here.
#[derive(Clone, Debug)]
pub struct Rng(u32);

impl Rng {
    /// A stream from `seed` (0 is replaced, as xorshift would stay at 0).
    pub const fn new(seed: u32) -> Self {
        Self(if seed == 0 { SEED } else { seed })
    }

    /// The next 32 bits.
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    /// Uniform enough in `lo..=hi` for shapes.
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.next_u32() % (hi - lo + 1)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            *b = self.next_u32() as u8;
        }
    }

    fn fill_i8(&mut self, out: &mut [i8]) {
        for b in out {
            *b = self.next_u32() as i8;
        }
    }

    /// A valid requantization pair with a realistic scale (about 2^-12 .. 2^-3).
    fn requant(&mut self) -> Requant {
        let mult = (1 << 30) | (self.next_u32() as i32 & 0x3fff_ffff);
        Requant::new(mult, self.range(2, 11) as i32).unwrap_or(Requant::ZERO)
    }

    fn output(&mut self) -> OutputQuant {
        let zp = self.next_u32() as i8;
        if self.next_u32() & 1 == 0 {
            OutputQuant::relu(zp)
        } else {
            OutputQuant::linear(zp)
        }
    }

    /// A random window that fits `h x w` (kernel 1-3, stride 1-2, padding below the kernel).
    fn window(&mut self, h: u16, w: u16) -> Window {
        let (kh, kw) = (self.range(1, 3) as u8, self.range(1, 3) as u8);
        let s = self.range(1, 2) as u8;
        let pad = [
            self.range(0, kh as u32 - 1) as u8,
            self.range(0, kw as u32 - 1) as u8,
            self.range(0, kh as u32 - 1) as u8,
            self.range(0, kw as u32 - 1) as u8,
        ];
        let win = Window {
            kh,
            kw,
            sh: s,
            sw: s,
            pad,
        };
        if win.output_hw(h, w).is_some() {
            win
        } else {
            Window::square(1, 1, 0)
        }
    }
}

/// The layer a case runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// A convolution.
    Conv2d {
        input: Shape,
        window: Window,
        out_c: u16,
    },
    /// A depthwise convolution.
    Depthwise { input: Shape, window: Window },
    /// A 1x1 convolution.
    Pointwise { input: Shape, out_c: u16 },
    /// A dense layer.
    Dense { input_len: u32, out_len: u16 },
}

impl Layer {
    /// The kernel's name.
    pub fn kernel(&self) -> &'static str {
        match self {
            Layer::Conv2d { .. } => "conv2d",
            Layer::Depthwise { .. } => "depthwise",
            Layer::Pointwise { .. } => "pointwise",
            Layer::Dense { .. } => "dense",
        }
    }
}

/// One case: a layer and the seed of its values (activations, weights, zero points,
/// channel records, output quantization).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    /// Its place in the sequence.
    pub index: usize,
    /// The layer.
    pub layer: Layer,
    /// Seed of its values.
    pub seed: u32,
}

/// The shipped network's layer shapes, then `random` random layers of each kind.
#[derive(Clone, Debug)]
pub struct Cases {
    rng: Rng,
    index: usize,
    random: usize,
}

/// Layer shapes of the shipped network, with the image cut to fit [`MAX_ACTS`].
const SHIPPED: [Layer; 12] = {
    let same3 = Window::square(3, 1, 1);
    [
        Layer::Conv2d {
            input: Shape::new(16, 16, 1),
            window: same3,
            out_c: 16,
        },
        Layer::Conv2d {
            input: Shape::new(12, 12, 16),
            window: Window::square(3, 2, 1),
            out_c: 32,
        },
        Layer::Conv2d {
            input: Shape::new(8, 8, 32),
            window: same3,
            out_c: 32,
        },
        Layer::Conv2d {
            input: Shape::new(6, 6, 32),
            window: same3,
            out_c: 64,
        },
        Layer::Depthwise {
            input: Shape::new(6, 6, 64),
            window: same3,
        },
        Layer::Depthwise {
            input: Shape::new(6, 6, 128),
            window: same3,
        },
        Layer::Depthwise {
            input: Shape::new(6, 6, 256),
            window: same3,
        },
        Layer::Pointwise {
            input: Shape::new(3, 3, 64),
            out_c: 128,
        },
        Layer::Pointwise {
            input: Shape::new(3, 3, 128),
            out_c: 128,
        },
        Layer::Pointwise {
            input: Shape::new(3, 3, 128),
            out_c: 256,
        },
        Layer::Pointwise {
            input: Shape::new(3, 3, 256),
            out_c: 256,
        },
        Layer::Dense {
            input_len: 256,
            out_len: 7,
        },
    ]
};

impl Cases {
    /// The shipped shapes, then `random` random layers of each of the four kinds, drawn
    /// from `seed`.
    pub const fn new(seed: u32, random: usize) -> Self {
        Self {
            rng: Rng::new(seed),
            index: 0,
            random,
        }
    }

    /// Cases in all.
    pub const fn len(&self) -> usize {
        SHIPPED.len() + 4 * self.random
    }

    /// Whether there are none (never: the shipped shapes are always there).
    pub const fn is_empty(&self) -> bool {
        false
    }

    fn random_layer(&mut self, kind: usize) -> Layer {
        let r = &mut self.rng;
        let (h, w) = (r.range(1, 9) as u16, r.range(1, 9) as u16);
        match kind {
            0 => {
                let (c, out_c) = (r.range(1, 20) as u16, r.range(1, 20) as u16);
                let window = r.window(h, w);
                Layer::Conv2d {
                    input: Shape::new(h, w, c),
                    window,
                    out_c,
                }
            }
            1 => {
                let c = r.range(1, 40) as u16;
                let window = r.window(h, w);
                Layer::Depthwise {
                    input: Shape::new(h, w, c),
                    window,
                }
            }
            2 => {
                let (c, out_c) = (r.range(1, 70) as u16, r.range(1, 20) as u16);
                Layer::Pointwise {
                    input: Shape::new(h, w, c),
                    out_c,
                }
            }
            _ => Layer::Dense {
                input_len: r.range(1, 300),
                out_len: r.range(1, 9) as u16,
            },
        }
    }
}

impl Iterator for Cases {
    type Item = Case;

    fn next(&mut self) -> Option<Case> {
        let i = self.index;
        if i >= self.len() {
            return None;
        }
        self.index += 1;
        let layer = match SHIPPED.get(i) {
            Some(&l) => l,
            None => self.random_layer((i - SHIPPED.len()) % 4),
        };
        Some(Case {
            index: i,
            layer,
            seed: self.rng.next_u32(),
        })
    }
}

/// A convolution kernel: params, input, output, scratch.
pub type Conv2dFn = fn(&Conv2dParams, &[i8], &mut [i8], &mut [i8]) -> Result<(), KernelError>;
/// A depthwise kernel: params, input, output.
pub type DepthwiseFn = fn(&DepthwiseParams, &[i8], &mut [i8]) -> Result<(), KernelError>;
/// A 1x1 convolution kernel: params, input, output, scratch.
pub type PointwiseFn = fn(&PointwiseParams, &[i8], &mut [i8], &mut [i8]) -> Result<(), KernelError>;
/// A dense kernel: params, input, output.
pub type DenseFn = fn(&DenseParams, &[i8], &mut [i8]) -> Result<(), KernelError>;

/// The kernels a case runs: one body's version of each op.
#[derive(Clone, Copy)]
pub struct Kernels {
    /// Convolution.
    pub conv2d: Conv2dFn,
    /// Depthwise convolution.
    pub depthwise: DepthwiseFn,
    /// 1x1 convolution.
    pub pointwise: PointwiseFn,
    /// Dense layer.
    pub dense: DenseFn,
}

impl Kernels {
    /// What this build runs.
    pub const NATIVE: Kernels = Kernels {
        conv2d: super::conv2d::conv2d,
        depthwise: super::depthwise::depthwise,
        pointwise: super::pointwise::pointwise,
        dense: super::dense::dense,
    };

    /// The ops on matrix-product body `M` and depthwise body `D`.
    #[cfg(test)]
    fn of<M: MatMulBody, D: DepthwiseBody>() -> Kernels {
        Kernels {
            conv2d: super::conv2d::conv2d_with::<M>,
            depthwise: super::depthwise::depthwise_with::<D>,
            pointwise: super::pointwise::pointwise_with::<M>,
            dense: super::dense::dense_with::<M>,
        }
    }
}

/// The memory a case runs in (the firmware's is static; the host's on the heap).
pub struct Buffers<'b> {
    /// Activations in, at least [`MAX_ACTS`].
    pub input: &'b mut [i8],
    /// The fast kernel's output, at least [`MAX_ACTS`].
    pub fast: &'b mut [i8],
    /// The reference's output, at least [`MAX_ACTS`].
    pub slow: &'b mut [i8],
    /// Weights, at least [`MAX_WEIGHTS`].
    pub weights: &'b mut [u8],
    /// Channel records, at least `MAX_CHANNELS · CHANNEL_RECORD_LEN`.
    pub channels: &'b mut [u8],
    /// Kernel scratch, at least [`MAX_SCRATCH`].
    pub scratch: &'b mut [i8],
}

/// Why a case failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The case does not fit the buffers.
    TooLarge,
    /// A kernel refused the case (fast, then reference result).
    Refused(Result<(), KernelError>, Result<(), KernelError>),
    /// An output differs.
    Differs {
        /// Its index.
        output: usize,
        /// The kernel under test's value.
        fast: i8,
        /// The reference's.
        reference: i8,
    },
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Failure::TooLarge => write!(f, "too large for the buffers"),
            Failure::Refused(a, b) => write!(f, "refused: {a:?} / {b:?}"),
            Failure::Differs {
                output,
                fast,
                reference,
            } => write!(
                f,
                "output {output} is {fast} on this body, {reference} by the reference"
            ),
        }
    }
}

impl<'b> Buffers<'b> {
    /// Random activations, weights and `n` channel records from `rng`.
    fn randomize(&mut self, rng: &mut Rng, acts: usize, weights: usize, n: usize) {
        rng.fill_i8(&mut self.input[..acts]);
        rng.fill(&mut self.weights[..weights]);
        for rec in self.channels.chunks_exact_mut(CHANNEL_RECORD_LEN).take(n) {
            let bias = (rng.next_u32() as i32) >> 14; // within ±2^17
            let rq = rng.requant();
            rec[..4].copy_from_slice(&bias.to_le_bytes());
            rec[4..8].copy_from_slice(&rq.mult().to_le_bytes());
            rec[8] = rq.shift() as i8 as u8;
        }
    }

    /// Runs `case` through `kernels` and the reference and compares the outputs.
    pub fn run(&mut self, case: &Case, kernels: &Kernels) -> Result<(), Failure> {
        let mut rng = Rng::new(case.seed);
        let (input_zp, output) = (rng.next_u32() as i8, rng.output());
        let (acts, wlen, channels) = match case.layer {
            Layer::Conv2d {
                input,
                window,
                out_c,
            } => (
                input.len(),
                out_c as usize * window.kh as usize * window.kw as usize * input.c as usize,
                out_c as usize,
            ),
            Layer::Depthwise { input, window } => (
                input.len(),
                window.kh as usize * window.kw as usize * input.c as usize,
                input.c as usize,
            ),
            Layer::Pointwise { input, out_c } => (
                input.len(),
                out_c as usize * input.c as usize,
                out_c as usize,
            ),
            Layer::Dense { input_len, out_len } => (
                input_len as usize,
                input_len as usize * out_len as usize,
                out_len as usize,
            ),
        };
        if acts > self.input.len().min(MAX_ACTS)
            || wlen > self.weights.len()
            || channels * CHANNEL_RECORD_LEN > self.channels.len()
        {
            return Err(Failure::TooLarge);
        }
        self.randomize(&mut rng, acts, wlen, channels);
        let Buffers {
            input: x,
            fast,
            slow,
            weights,
            channels: records,
            scratch,
        } = self;
        let (x, weights) = (&x[..acts], &weights[..wlen]);
        let channels = ChannelParams::parse(&records[..channels * CHANNEL_RECORD_LEN], channels)
            .map_err(|_| Failure::TooLarge)?;
        let (r1, r2, n) = match case.layer {
            Layer::Conv2d {
                input,
                window,
                out_c,
            } => {
                let p = Conv2dParams {
                    input,
                    window,
                    out_c,
                    input_zp,
                    weights,
                    channels,
                    output,
                };
                let n = fit(
                    p.output_shape().map(|s| s.len()),
                    fast,
                    p.scratch_len(),
                    scratch,
                )?;
                let r1 = (kernels.conv2d)(&p, x, &mut fast[..n], scratch);
                (r1, reference::conv2d(&p, x, &mut slow[..n]), n)
            }
            Layer::Depthwise { input, window } => {
                let p = DepthwiseParams {
                    input,
                    window,
                    input_zp,
                    weights,
                    channels,
                    output,
                };
                let n = fit(p.output_shape().map(|s| s.len()), fast, 0, scratch)?;
                let r1 = (kernels.depthwise)(&p, x, &mut fast[..n]);
                (r1, reference::depthwise(&p, x, &mut slow[..n]), n)
            }
            Layer::Pointwise { input, out_c } => {
                let p = PointwiseParams {
                    input,
                    out_c,
                    input_zp,
                    weights,
                    channels,
                    output,
                };
                let n = fit(
                    p.output_shape().map(|s| s.len()),
                    fast,
                    p.scratch_len(),
                    scratch,
                )?;
                let r1 = (kernels.pointwise)(&p, x, &mut fast[..n], scratch);
                (r1, reference::pointwise(&p, x, &mut slow[..n]), n)
            }
            Layer::Dense {
                input_len,
                out_len: out,
            } => {
                let p = DenseParams {
                    input_len,
                    out_len: out,
                    input_zp,
                    weights,
                    channels,
                    output,
                };
                let n = fit(p.output_len(), fast, 0, scratch)?;
                let r1 = (kernels.dense)(&p, x, &mut fast[..n]);
                (r1, reference::dense(&p, x, &mut slow[..n]), n)
            }
        };
        if r1.is_err() || r2.is_err() {
            return Err(Failure::Refused(r1, r2));
        }
        match fast[..n].iter().zip(&slow[..n]).position(|(a, b)| a != b) {
            Some(i) => Err(Failure::Differs {
                output: i,
                fast: fast[i],
                reference: slow[i],
            }),
            None => Ok(()),
        }
    }
}

/// The output length of a layer whose shape check passed, if it and the `needed` scratch
/// bytes fit the buffers.
fn fit(
    len: Result<usize, KernelError>,
    output: &[i8],
    needed: usize,
    scratch: &[i8],
) -> Result<usize, Failure> {
    match len {
        Ok(n) if n <= output.len() && needed <= scratch.len() => Ok(n),
        Ok(_) => Err(Failure::TooLarge),
        Err(e) => Err(Failure::Refused(Err(e), Err(e))),
    }
}

/// A requantization that differs from its definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequantMismatch {
    /// The accumulator.
    pub acc: i32,
    /// The pair.
    pub requant: Requant,
    /// What [`Requant::apply`] gave.
    pub got: i32,
    /// What [`reference::requant`] gives.
    pub want: i32,
}

/// `n` random requantizations over the whole valid shift range, every second one an exact
/// tie (an odd multiple of half a step, which must go to the even neighbour), each against
/// [`reference::requant`].
pub fn check_requant(rng: &mut Rng, n: usize) -> Result<(), RequantMismatch> {
    let check = |acc: i32, r: Requant| {
        let (got, want) = (r.apply(acc), reference::requant(acc, r));
        if got == want {
            Ok(())
        } else {
            Err(RequantMismatch {
                acc,
                requant: r,
                got,
                want,
            })
        }
    };
    for case in 0..n {
        let mult = (1 << 30) | (rng.next_u32() as i32 & 0x3fff_ffff);
        let shift = rng.range(0, 61) as i32 - 30;
        let Ok(r) = Requant::new(mult, shift) else {
            continue;
        };
        let acc = if case % 2 == 0 {
            rng.next_u32() as i32
        } else {
            // mult 2^30, shift n: acc · 2^-(n + 1); odd multiples of 2^n are ties.
            let s = rng.range(0, 20);
            let tie = Requant::new(1 << 30, s as i32).unwrap_or(Requant::ZERO);
            let q = (rng.next_u32() as i32) >> 12;
            let acc = q.wrapping_mul(2 << s).wrapping_add(1 << s);
            check(acc, tie)?;
            acc
        };
        check(acc, r)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{depthwise, matmul};
    use std::vec;
    use std::vec::Vec;

    /// Heap memory for [`Buffers`], each part at its largest.
    struct Memory([Vec<i8>; 4], Vec<u8>, Vec<u8>);

    impl Memory {
        fn new() -> Self {
            Self(
                [0; 4].map(|_| vec![0i8; MAX_ACTS.max(MAX_SCRATCH)]),
                vec![0u8; MAX_WEIGHTS],
                vec![0u8; MAX_CHANNELS * CHANNEL_RECORD_LEN],
            )
        }

        fn buffers(&mut self) -> Buffers<'_> {
            let [input, fast, slow, scratch] = &mut self.0;
            Buffers {
                input,
                fast,
                slow,
                weights: &mut self.1,
                channels: &mut self.2,
                scratch,
            }
        }
    }

    /// Every body of every op that differs by core, on the cases `kernel-check` runs.
    #[test]
    fn every_body_equals_the_reference_on_the_shared_cases() {
        let bodies = [
            (
                "portable",
                Kernels::of::<matmul::Portable, depthwise::Portable>(),
            ),
            ("dsp", Kernels::of::<matmul::Dsp, depthwise::Dsp>()),
            ("thumb1", Kernels::of::<matmul::Thumb1, depthwise::Thumb1>()),
            ("native", Kernels::NATIVE),
        ];
        let mut memory = Memory::new();
        let mut b = memory.buffers();
        let mut kinds = [0usize; 4];
        for case in Cases::new(SEED, 150) {
            for (name, kernels) in &bodies {
                if let Err(e) = b.run(&case, kernels) {
                    panic!("{name}: {case:?}: {e}");
                }
            }
            kinds[match case.layer {
                Layer::Conv2d { .. } => 0,
                Layer::Depthwise { .. } => 1,
                Layer::Pointwise { .. } => 2,
                Layer::Dense { .. } => 3,
            }] += 1;
        }
        assert_eq!(kinds, [154, 153, 154, 151]);
        check_requant(&mut Rng::new(SEED), 20_000).unwrap();
    }

    #[test]
    fn a_wrong_kernel_is_caught() {
        fn off_by_one(p: &DenseParams, x: &[i8], y: &mut [i8]) -> Result<(), KernelError> {
            reference::dense(p, x, y)?;
            y[0] = y[0].wrapping_add(1);
            Ok(())
        }
        let kernels = Kernels {
            dense: off_by_one,
            ..Kernels::NATIVE
        };
        let mut memory = Memory::new();
        let mut b = memory.buffers();
        let dense = Cases::new(SEED, 0).last().unwrap();
        assert!(matches!(
            b.run(&dense, &kernels),
            Err(Failure::Differs { output: 0, .. })
        ));
    }
}

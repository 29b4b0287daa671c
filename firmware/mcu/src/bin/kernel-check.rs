//! kernel-check: runs every int8 kernel whose code differs by core (conv2d, pointwise and
//! dense on the matrix-product blocks, depthwise, requantization) against the reference
//! kernels of `emoedge_core::kernels::reference`, on the core itself, and exits with
//! success only if every output is equal.
//!
//! The host tests run the portable kernels; the assembly and DSP-instruction bodies exist
//! only in the Cortex-M builds, so they are checked here, in QEMU, for each build
//! (`emoedge flash --kernel-check --core …` or the `mcu_qemu` host test).
//!
//! Cases: the shipped network's layer shapes (with a smaller image where the shape allows),
//! then seeded random shapes that cover the remainders (odd pixel counts, channels and
//! column lengths that are not multiples of 4, strides, asymmetric padding), random weights,
//! activations, zero points, biases, requantization pairs and fused activations.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use emoedge_core::kernels::conv2d::{Conv2dParams, conv2d};
use emoedge_core::kernels::dense::{DenseParams, dense};
use emoedge_core::kernels::depthwise::{DepthwiseParams, depthwise};
use emoedge_core::kernels::pointwise::{PointwiseParams, pointwise};
use emoedge_core::kernels::{CHANNEL_RECORD_LEN, ChannelParams, reference};
use emoedge_core::quant::{OutputQuant, Requant};
use emoedge_core::shape::{Shape, Window};
use emoedge_mcu::semihosting::{exit_ok, fail};

/// Largest tensor, weight and scratch sizes a case may use.
const MAX_ACTS: usize = 12 * 1024;
const MAX_WEIGHTS: usize = 64 * 1024;
const MAX_CHANNELS: usize = 256;
const MAX_SCRATCH: usize = 16 * 1024;
/// Random cases per kernel.
const RANDOM_CASES: usize = 150;
/// Random requantizations checked against the definition.
const REQUANT_CASES: usize = 20_000;
const SEED: u32 = 0x2545_f491;

/// Xorshift32 (Marsaglia): a fixed, seeded stream; statistical quality does not matter here.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    /// Uniform enough in `lo..=hi` for shapes.
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.next() % (hi - lo + 1)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            *b = self.next() as u8;
        }
    }

    fn fill_i8(&mut self, out: &mut [i8]) {
        for b in out {
            *b = self.next() as i8;
        }
    }

    /// A valid requantization pair with a realistic scale (about 2^-12 .. 2^-3).
    fn requant(&mut self) -> Requant {
        let mult = (1 << 30) | (self.next() as i32 & 0x3fff_ffff);
        Requant::new(mult, self.range(2, 11) as i32).unwrap_or(Requant::ZERO)
    }

    fn output(&mut self) -> OutputQuant {
        let zp = self.next() as i8;
        if self.next() & 1 == 0 {
            OutputQuant::relu(zp)
        } else {
            OutputQuant::linear(zp)
        }
    }
}

/// The buffers every case draws from (in RAM, not on the stack).
struct Buffers {
    input: [i8; MAX_ACTS],
    fast: [i8; MAX_ACTS],
    slow: [i8; MAX_ACTS],
    weights: [u8; MAX_WEIGHTS],
    channels: [u8; MAX_CHANNELS * CHANNEL_RECORD_LEN],
    scratch: [i8; MAX_SCRATCH],
}

static mut BUFFERS: Buffers = Buffers {
    input: [0; MAX_ACTS],
    fast: [0; MAX_ACTS],
    slow: [0; MAX_ACTS],
    weights: [0; MAX_WEIGHTS],
    channels: [0; MAX_CHANNELS * CHANNEL_RECORD_LEN],
    scratch: [0; MAX_SCRATCH],
};

impl Buffers {
    /// Random activations, weights and `n` channel records.
    fn randomize(&mut self, rng: &mut Rng, acts: usize, weights: usize, n: usize) {
        rng.fill_i8(&mut self.input[..acts]);
        rng.fill(&mut self.weights[..weights]);
        for rec in self.channels.chunks_exact_mut(CHANNEL_RECORD_LEN).take(n) {
            let bias = (rng.next() as i32) >> 14; // within ±2^17
            let rq = rng.requant();
            rec[..4].copy_from_slice(&bias.to_le_bytes());
            rec[4..8].copy_from_slice(&rq.mult().to_le_bytes());
            rec[8] = rq.shift() as i8 as u8;
        }
    }
}

/// The first `n` records of `bytes`.
fn records(bytes: &[u8], n: usize) -> ChannelParams<'_> {
    ChannelParams::parse(&bytes[..n * CHANNEL_RECORD_LEN], n)
        .unwrap_or_else(|e| fail(format_args!("channel records: {:?}", e)))
}

/// Compares the two outputs of case `case` of `kernel`; stops the run on a difference.
fn same(kernel: &str, case: usize, what: core::fmt::Arguments, fast: &[i8], slow: &[i8]) {
    if let Some(i) = fast.iter().zip(slow).position(|(a, b)| a != b) {
        fail(format_args!(
            "{} case {} ({}): output {} is {} on this core, {} by the reference",
            kernel, case, what, i, fast[i], slow[i]
        ));
    }
}

fn check_conv2d(
    b: &mut Buffers,
    rng: &mut Rng,
    case: usize,
    input: Shape,
    window: Window,
    out_c: u16,
) {
    let wlen = out_c as usize * window.kh as usize * window.kw as usize * input.c as usize;
    let input_zp = rng.next() as i8;
    let output = rng.output();
    b.randomize(rng, input.len(), wlen, out_c as usize);
    let channels = records(&b.channels, out_c as usize);
    let p = Conv2dParams {
        input,
        window,
        out_c,
        input_zp,
        weights: &b.weights[..wlen],
        channels,
        output,
    };
    let Ok(out) = p.output_shape() else { return };
    let n = out.len();
    if n > MAX_ACTS || p.scratch_len() > MAX_SCRATCH {
        fail(format_args!(
            "conv2d case {} too large for the buffers",
            case
        ));
    }
    let x = &b.input[..input.len()];
    let r1 = conv2d(&p, x, &mut b.fast[..n], &mut b.scratch);
    let r2 = reference::conv2d(&p, x, &mut b.slow[..n]);
    if r1.is_err() || r2.is_err() {
        fail(format_args!("conv2d case {}: {:?} / {:?}", case, r1, r2));
    }
    let what = format_args!("{:?} {:?} -> {}", input, window, out_c);
    same("conv2d", case, what, &b.fast[..n], &b.slow[..n]);
}

fn check_depthwise(b: &mut Buffers, rng: &mut Rng, case: usize, input: Shape, window: Window) {
    let wlen = window.kh as usize * window.kw as usize * input.c as usize;
    let input_zp = rng.next() as i8;
    let output = rng.output();
    b.randomize(rng, input.len(), wlen, input.c as usize);
    let channels = records(&b.channels, input.c as usize);
    let p = DepthwiseParams {
        input,
        window,
        input_zp,
        weights: &b.weights[..wlen],
        channels,
        output,
    };
    let Ok(out) = p.output_shape() else { return };
    let n = out.len();
    let x = &b.input[..input.len()];
    let r1 = depthwise(&p, x, &mut b.fast[..n]);
    let r2 = reference::depthwise(&p, x, &mut b.slow[..n]);
    if r1.is_err() || r2.is_err() {
        fail(format_args!("depthwise case {}: {:?} / {:?}", case, r1, r2));
    }
    let what = format_args!("{:?} {:?}", input, window);
    same("depthwise", case, what, &b.fast[..n], &b.slow[..n]);
}

fn check_pointwise(b: &mut Buffers, rng: &mut Rng, case: usize, input: Shape, out_c: u16) {
    let wlen = out_c as usize * input.c as usize;
    let input_zp = rng.next() as i8;
    let output = rng.output();
    b.randomize(rng, input.len(), wlen, out_c as usize);
    let channels = records(&b.channels, out_c as usize);
    let p = PointwiseParams {
        input,
        out_c,
        input_zp,
        weights: &b.weights[..wlen],
        channels,
        output,
    };
    let n = input.h as usize * input.w as usize * out_c as usize;
    let x = &b.input[..input.len()];
    let r1 = pointwise(&p, x, &mut b.fast[..n], &mut b.scratch);
    let r2 = reference::pointwise(&p, x, &mut b.slow[..n]);
    if r1.is_err() || r2.is_err() {
        fail(format_args!("pointwise case {}: {:?} / {:?}", case, r1, r2));
    }
    let what = format_args!("{:?} -> {}", input, out_c);
    same("pointwise", case, what, &b.fast[..n], &b.slow[..n]);
}

fn check_dense(b: &mut Buffers, rng: &mut Rng, case: usize, input_len: u32, out_len: u16) {
    let wlen = input_len as usize * out_len as usize;
    let input_zp = rng.next() as i8;
    let output = rng.output();
    b.randomize(rng, input_len as usize, wlen, out_len as usize);
    let channels = records(&b.channels, out_len as usize);
    let p = DenseParams {
        input_len,
        out_len,
        input_zp,
        weights: &b.weights[..wlen],
        channels,
        output,
    };
    let n = out_len as usize;
    let x = &b.input[..input_len as usize];
    let r1 = dense(&p, x, &mut b.fast[..n]);
    let r2 = reference::dense(&p, x, &mut b.slow[..n]);
    if r1.is_err() || r2.is_err() {
        fail(format_args!("dense case {}: {:?} / {:?}", case, r1, r2));
    }
    let what = format_args!("{} -> {}", input_len, out_len);
    same("dense", case, what, &b.fast[..n], &b.slow[..n]);
}

/// A random window that fits `h x w` (kernel 1-3, stride 1-2, padding below the kernel).
fn window(rng: &mut Rng, h: u16, w: u16) -> Window {
    let (kh, kw) = (rng.range(1, 3) as u8, rng.range(1, 3) as u8);
    let s = rng.range(1, 2) as u8;
    let pad = [
        rng.range(0, kh as u32 - 1) as u8,
        rng.range(0, kw as u32 - 1) as u8,
        rng.range(0, kh as u32 - 1) as u8,
        rng.range(0, kw as u32 - 1) as u8,
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

#[entry]
fn main() -> ! {
    // SAFETY: the only reference to BUFFERS, taken once, here.
    let b: &mut Buffers = unsafe { &mut *core::ptr::addr_of_mut!(BUFFERS) };
    let mut rng = Rng(SEED);
    let same3 = Window::square(3, 1, 1);

    // The shipped network's layer shapes (spatial size cut where the buffers need it).
    check_conv2d(b, &mut rng, 0, Shape::new(16, 16, 1), same3, 16);
    check_conv2d(
        b,
        &mut rng,
        1,
        Shape::new(12, 12, 16),
        Window::square(3, 2, 1),
        32,
    );
    check_conv2d(b, &mut rng, 2, Shape::new(8, 8, 32), same3, 32);
    check_conv2d(b, &mut rng, 3, Shape::new(6, 6, 32), same3, 64);
    for (i, c) in [64u16, 128, 256].into_iter().enumerate() {
        check_depthwise(b, &mut rng, i, Shape::new(6, 6, c), same3);
    }
    for (i, (c, oc)) in [(64u16, 128u16), (128, 128), (128, 256), (256, 256)]
        .into_iter()
        .enumerate()
    {
        check_pointwise(b, &mut rng, i, Shape::new(3, 3, c), oc);
    }
    check_dense(b, &mut rng, 0, 256, 7);

    // Random shapes.
    for case in 0..RANDOM_CASES {
        let (h, w) = (rng.range(1, 9) as u16, rng.range(1, 9) as u16);
        let (c, oc) = (rng.range(1, 20) as u16, rng.range(1, 20) as u16);
        let win = window(&mut rng, h, w);
        check_conv2d(b, &mut rng, 100 + case, Shape::new(h, w, c), win, oc);
        let c = rng.range(1, 40) as u16;
        let win = window(&mut rng, h, w);
        check_depthwise(b, &mut rng, 100 + case, Shape::new(h, w, c), win);
        let (c, oc) = (rng.range(1, 70) as u16, rng.range(1, 20) as u16);
        check_pointwise(b, &mut rng, 100 + case, Shape::new(h, w, c), oc);
        let (n, out) = (rng.range(1, 300), rng.range(1, 9) as u16);
        check_dense(b, &mut rng, 100 + case, n, out);
    }

    // Requantization: random accumulators and pairs over the whole valid shift range, and
    // exact ties (odd multiples of half a step), which must go to the even neighbour.
    for case in 0..REQUANT_CASES {
        let mult = (1 << 30) | (rng.next() as i32 & 0x3fff_ffff);
        let shift = rng.range(0, 61) as i32 - 30;
        let Ok(r) = Requant::new(mult, shift) else {
            continue;
        };
        let acc = if case % 2 == 0 {
            rng.next() as i32
        } else {
            // mult 2^30, shift n: acc · 2^-(n + 1); odd multiples of 2^n are ties.
            let n = rng.range(0, 20);
            let tie = Requant::new(1 << 30, n as i32).unwrap_or(Requant::ZERO);
            let q = (rng.next() as i32) >> 12;
            let acc = q.wrapping_mul(2 << n).wrapping_add(1 << n);
            if tie.apply(acc) != reference::requant(acc, tie) {
                fail(format_args!("requant tie: acc {} shift {}", acc, n));
            }
            acc
        };
        if r.apply(acc) != reference::requant(acc, r) {
            fail(format_args!(
                "requant: acc {} mult {} shift {}: {} on this core, {} by definition",
                acc,
                mult,
                shift,
                r.apply(acc),
                reference::requant(acc, r)
            ));
        }
    }

    hprintln!(
        "kernel-check: conv2d, depthwise, pointwise, dense: {} layer shapes and {} random cases each, requantization: {} cases; all equal the reference",
        12,
        RANDOM_CASES,
        REQUANT_CASES
    );
    exit_ok()
}

//! int8 kernels, one op per file. Each op has a params struct, a shape check, the fast
//! function and, in [`reference`], a naive version that the tests hold it to.
//!
//! Layout contract for every kernel: activations are one image, HWC, `i8`; weights are
//! `i8` stored as bytes (`u8`, reinterpreted with `as i8`) so that they can be borrowed
//! straight out of a model blob without copying or alignment requirements.
//!
//! The ops whose fast code differs by core (the matrix product under conv2d, pointwise and
//! dense; depthwise) have one contract each, a trait (`MatMulBody`, `DepthwiseBody`),
//! implemented by a portable body, a DSP body (Cortex-M4/M7/M33) and a Thumb-1 body
//! (Cortex-M0+/M0/M3). Every body is compiled on every target, its core-specific
//! instructions standing in as plain-Rust models where the core is absent, so the host
//! tests run all of them; [`cases`] draws the shapes and values that both the host tests
//! and the firmware's `kernel-check` (on each core, in QEMU) run against [`reference`]. The
//! target picks what it runs in one place, `native`.

pub mod cases;
mod channels;
pub mod conv2d;
pub mod dense;
pub mod depthwise;
// Compiled on every target, so that the host tests run every body; a build runs only its own.
#[allow(dead_code)]
mod dsp;
mod matmul;
pub mod pointwise;
pub mod pool;
pub mod reference;
#[allow(dead_code)] // as `dsp`
mod thumb1;

/// What this build runs: the bodies and the instruction layer its target has. The only
/// place a kernel's code is chosen by target (`build.rs` sets `emoedge_dsp` for cores with
/// the DSP extension).
mod native {
    #[cfg(not(emoedge_dsp))]
    pub(crate) use super::dsp::model as dsp;
    #[cfg(emoedge_dsp)]
    pub(crate) use super::{depthwise::Dsp as Depthwise, dsp::asm as dsp, matmul::Dsp as MatMul};

    #[cfg(not(all(target_arch = "arm", not(emoedge_dsp))))]
    pub(crate) use super::thumb1::model as thumb1;
    #[cfg(all(target_arch = "arm", not(emoedge_dsp)))]
    pub(crate) use super::{
        depthwise::Thumb1 as Depthwise, matmul::Thumb1 as MatMul, thumb1::asm as thumb1,
    };

    #[cfg(not(target_arch = "arm"))]
    pub(crate) use super::{depthwise::Portable as Depthwise, matmul::Portable as MatMul};
}

pub use channels::{CHANNEL_RECORD_LEN, ChannelParams, ChannelParamsError};

use crate::shape::Shape;

/// Why a kernel refused to run. Kernels check every length before touching data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KernelError {
    /// The window does not fit the input (zero stride, kernel larger than padded input…).
    BadWindow,
    /// The input slice length does not match the input shape.
    InputLen { expected: usize, got: usize },
    /// The output slice length does not match the output shape.
    OutputLen { expected: usize, got: usize },
    /// The weight slice length does not match the layer's shape.
    WeightsLen { expected: usize, got: usize },
    /// The number of per-channel parameters does not match the output channels.
    ChannelsLen { expected: usize, got: usize },
    /// Clamp bounds are inverted (`min > max`).
    BadClamp,
    /// The scratch slice is shorter than the kernel needs.
    ScratchLen { needed: usize, got: usize },
}

pub(crate) fn check_len(
    expected: usize,
    got: usize,
    err: fn(usize, usize) -> KernelError,
) -> Result<(), KernelError> {
    if expected == got {
        Ok(())
    } else {
        Err(err(expected, got))
    }
}

pub(crate) fn check_io(input: Shape, output: Shape, x: &[i8], y: &[i8]) -> Result<(), KernelError> {
    check_len(input.len(), x.len(), |expected, got| {
        KernelError::InputLen { expected, got }
    })?;
    check_len(output.len(), y.len(), |expected, got| {
        KernelError::OutputLen { expected, got }
    })
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::ChannelParams;
    use crate::quant::{OutputQuant, Requant};
    use proptest::prelude::*;
    use std::vec::Vec;

    /// Random per-channel params with realistic multipliers (scale in about 2^-12..2^-4).
    pub fn channels(n: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec((-5000i32..5000, (1i32 << 30)..i32::MAX, 3i32..12), n).prop_map(
            |v| {
                let recs: Vec<(i32, Requant)> = v
                    .into_iter()
                    .map(|(b, m, s)| (b, Requant::new(m, s).unwrap()))
                    .collect();
                ChannelParams::encode(&recs)
            },
        )
    }

    pub fn output_quant() -> impl Strategy<Value = OutputQuant> {
        (any::<i8>(), any::<bool>()).prop_map(|(zp, relu)| {
            if relu {
                OutputQuant::relu(zp)
            } else {
                OutputQuant::linear(zp)
            }
        })
    }

    pub fn bytes(n: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), n)
    }

    pub fn acts(n: usize) -> impl Strategy<Value = Vec<i8>> {
        proptest::collection::vec(any::<i8>(), n)
    }

    /// One channel record whose requant is exactly 1.0, for fixtures with exact asserts.
    pub fn unit_channels(biases: &[i32]) -> Vec<u8> {
        let one = Requant::new(1 << 30, -1).unwrap();
        ChannelParams::encode(&biases.iter().map(|&b| (b, one)).collect::<Vec<_>>())
    }
}

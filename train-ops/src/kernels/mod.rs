//! The kernels on plain `f32` slices in Burn's own (NCHW, contiguous) layout: no tensor
//! types, so they can be tested, benchmarked and moved upstream on their own.

pub mod batch_norm;
pub mod conv;
pub mod dropout;
pub mod pool;

/// Lanes the kernels sum in: one AVX-512 register of `f32`, two AVX2 ones.
///
/// The loops are written to auto-vectorise; each is a `#[multiversion]` function, built
/// for the common SIMD instruction sets (`targets = "simd"`) and picked at run time, since the target's
/// baseline (SSE2 on x86-64) would leave most of a modern CPU's vector width unused.
pub(crate) const LANES: usize = 16;

/// A contiguous `[n, c, spatial]` activation (spatial = `h · w`, or 1 for `[n, c]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nchw {
    pub n: usize,
    pub c: usize,
    pub spatial: usize,
}

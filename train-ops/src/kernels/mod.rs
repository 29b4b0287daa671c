//! The kernels on plain `f32` slices in Burn's own (NCHW, contiguous) layout: no tensor
//! types, so they can be tested, benchmarked and moved upstream on their own.

pub mod batch_norm;
pub mod conv;
pub mod dropout;
pub mod pool;

use rayon::prelude::*;
use std::mem::MaybeUninit;

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

/// `len` zeros, written by all the rayon threads. Why not `vec![0.0; len]`: the allocator
/// hands back memory it keeps (glibc, `host/src/sys/malloc.rs`), so that zeroes it with one
/// `memset` on the calling thread while the others wait: 9% of an `edge` training step,
/// since every activation and gradient the kernels make is a fresh buffer.
pub(crate) fn zeroed(len: usize) -> Vec<f32> {
    const CHUNK: usize = 1 << 16;
    let mut v = Vec::with_capacity(len);
    if len <= CHUNK {
        v.resize(len, 0.0);
        return v;
    }
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(CHUNK)
        .for_each(|c| c.fill(MaybeUninit::new(0.0)));
    // SAFETY: the chunks above cover `0..len` of the capacity, and every one was written.
    unsafe { v.set_len(len) };
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn zeroed_is_all_zeros_at_every_length() {
        for len in [0, 1, 65_535, 65_536, 65_537, 300_001] {
            let v = super::zeroed(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0.0));
        }
    }
}

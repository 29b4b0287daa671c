//! Dropout masks from a counter-based generator: every value's draw is a hash of its index
//! and a seed, so the mask is made in parallel, the same on any number of threads, and at a
//! few instructions a value.
//!
//! Burn draws a Bernoulli tensor from its ChaCha stream one value at a time on one thread
//! (7% of a training step of the tutorial network), then multiplies twice forward and twice
//! backward; with a mask of `0` or `1 / keep` the layer is one product each way.

use rayon::prelude::*;

/// SplitMix64's output function: a bijective mix of 64 bits, each output bit depending on
/// every input bit.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Values per parallel task.
const CHUNK: usize = 1 << 14;

/// `len` values, each `1 / keep` with probability `keep` (to 16 bits) and `0` otherwise:
/// value `i` keeps when the `i % 4`-th 16 bits of `mix(seed + i / 4)` fall below
/// `keep · 2^16`. `keep` must lie in `(0, 1]`.
pub fn mask(seed: u64, len: usize, keep: f64) -> Vec<f32> {
    assert!(keep > 0.0 && keep <= 1.0, "keep probability {keep}");
    let threshold = (keep * 65536.0).round() as u32;
    let scale = (1.0 / keep) as f32;
    let mut m = super::zeroed(len);
    m.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
        let first = (c * CHUNK / 4) as u64;
        for (j, four) in out.chunks_mut(4).enumerate() {
            let bits = mix(seed.wrapping_add(first + j as u64));
            for (k, v) in four.iter_mut().enumerate() {
                let draw = ((bits >> (16 * k)) & 0xFFFF) as u32;
                *v = if draw < threshold { scale } else { 0.0 };
            }
        }
    });
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_asked_share_and_scales_it() {
        for keep in [0.5, 0.7, 0.75] {
            let m = mask(42, 1 << 20, keep);
            let kept = m.iter().filter(|&&v| v != 0.0).count() as f64 / m.len() as f64;
            // 2^20 draws: a standard deviation of 0.0005.
            assert!((kept - keep).abs() < 0.003, "kept {kept} of {keep}");
            assert!(m.iter().all(|&v| v == 0.0 || v == (1.0 / keep) as f32));
        }
    }

    #[test]
    fn the_seed_decides_and_neighbours_are_independent() {
        let (a, b) = (mask(1, 4096, 0.5), mask(2, 4096, 0.5));
        assert_eq!(a, mask(1, 4096, 0.5));
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        assert!((1800..2300).contains(&same), "{same} of 4096 equal");
        // Neighbouring values (same 64-bit draw) agree about half the time.
        let pairs = a.chunks(2).filter(|p| p[0] == p[1]).count();
        assert!((900..1150).contains(&pairs), "{pairs} of 2048 pairs equal");
    }
}

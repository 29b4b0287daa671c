//! On-the-fly augmentation of 48x48 faces: flip, shift, rotation, scale (one inverse affine
//! map with bilinear sampling and edge replication), then brightness and contrast.

use emoedge_core::preprocess::{INPUT_LEN, INPUT_SIDE};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

/// Ranges of the random transforms. Zeroes turn a transform off.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    /// Mirror left-right with probability 1/2.
    pub flip: bool,
    /// Largest shift in pixels, each axis.
    pub shift_px: f32,
    /// Largest rotation in degrees, either way.
    pub rotate_deg: f32,
    /// Largest relative change of scale (0.1 = 0.9x..1.1x).
    pub scale: f32,
    /// Largest brightness offset, as a fraction of full range.
    pub brightness: f32,
    /// Largest relative contrast change.
    pub contrast: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            flip: true,
            shift_px: 4.0,
            rotate_deg: 10.0,
            scale: 0.1,
            brightness: 0.15,
            contrast: 0.2,
        }
    }
}

impl AugmentConfig {
    /// No augmentation.
    pub const NONE: Self = Self {
        flip: false,
        shift_px: 0.0,
        rotate_deg: 0.0,
        scale: 0.0,
        brightness: 0.0,
        contrast: 0.0,
    };
}

fn sym(rng: &mut impl Rng, r: f32) -> f32 {
    if r == 0.0 {
        0.0
    } else {
        rng.random_range(-r..=r)
    }
}

/// Writes `src` (pixels `0..=255`) transformed into `out` as floats `p / 255` (the trainer's
/// side of the preprocessing contract), clamped to `[0, 1]`.
pub fn augment(src: &[u8; INPUT_LEN], cfg: &AugmentConfig, rng: &mut impl Rng, out: &mut [f32]) {
    let flip = cfg.flip && rng.random::<bool>();
    let (dx, dy) = (sym(rng, cfg.shift_px), sym(rng, cfg.shift_px));
    let angle = sym(rng, cfg.rotate_deg).to_radians();
    let scale = 1.0 + sym(rng, cfg.scale);
    let bright = sym(rng, cfg.brightness);
    let contrast = 1.0 + sym(rng, cfg.contrast);
    let n = INPUT_SIDE as f32;
    let c = (n - 1.0) / 2.0;
    let (sin, cos) = angle.sin_cos();
    let identity = dx == 0.0 && dy == 0.0 && angle == 0.0 && scale == 1.0;
    for y in 0..INPUT_SIDE {
        for x in 0..INPUT_SIDE {
            let xo = if flip { n - 1.0 - x as f32 } else { x as f32 };
            let v = if identity {
                src[y * INPUT_SIDE + xo as usize] as f32
            } else {
                // Inverse map: output pixel → source position.
                let (u, w) = ((xo - c - dx) / scale, (y as f32 - c - dy) / scale);
                let sx = cos * u + sin * w + c;
                let sy = -sin * u + cos * w + c;
                bilinear(src, sx, sy)
            };
            let p = ((v / 255.0 - 0.5) * contrast + 0.5 + bright).clamp(0.0, 1.0);
            out[y * INPUT_SIDE + x] = p;
        }
    }
}

fn bilinear(src: &[u8; INPUT_LEN], x: f32, y: f32) -> f32 {
    let max = (INPUT_SIDE - 1) as f32;
    let (x, y) = (x.clamp(0.0, max), y.clamp(0.0, max));
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(INPUT_SIDE - 1), (y0 + 1).min(INPUT_SIDE - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let p = |x: usize, y: usize| src[y * INPUT_SIDE + x] as f32;
    let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
    let bot = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
    top * (1.0 - fy) + bot * fy
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn none_is_the_identity_and_seeds_repeat() {
        let src: [u8; INPUT_LEN] = std::array::from_fn(|i| (i % 256) as u8);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (mut a, mut b) = (vec![0.0; INPUT_LEN], vec![0.0; INPUT_LEN]);
        augment(&src, &AugmentConfig::NONE, &mut rng, &mut a);
        emoedge_core::preprocess::float_input(&src, &mut b);
        assert!(
            a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6),
            "NONE changed the image"
        );
        let cfg = AugmentConfig::default();
        augment(
            &src,
            &cfg,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(7),
            &mut a,
        );
        augment(
            &src,
            &cfg,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(7),
            &mut b,
        );
        assert!(a == b, "same seed, different output");
        assert!(a.iter().all(|p| (0.0..=1.0).contains(p)));
    }

    #[test]
    fn flip_mirrors() {
        let src: [u8; INPUT_LEN] =
            std::array::from_fn(|i| if i % INPUT_SIDE == 0 { 255 } else { 0 });
        let cfg = AugmentConfig {
            flip: true,
            ..AugmentConfig::NONE
        };
        let mut out = vec![0.0; INPUT_LEN];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        // Draw until a flip happens; both outcomes must be exact mirrors or copies.
        for _ in 0..8 {
            augment(&src, &cfg, &mut rng, &mut out);
            let left = out[0] == 1.0 && out[INPUT_SIDE - 1] == 0.0;
            let right = out[0] == 0.0 && out[INPUT_SIDE - 1] == 1.0;
            assert!(left || right);
        }
    }
}

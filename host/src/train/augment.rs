//! On-the-fly augmentation of 48x48 faces: flip, shift, rotation, scale (one inverse affine
//! map with bilinear sampling and edge replication), then brightness and contrast; or, for a
//! share of the images, the crop a device makes of the face seen by a camera.

use crate::stream::{CropScatter, StreamSpec};
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
    /// Share of the images replaced by the crop a device makes of them (then flipped as
    /// the others): the face drawn as `emoedge stream` draws it (96-192 px, turned up to 5
    /// degrees, exposure, side light, sensor noise) and cropped where the shipped detector
    /// and crop contract put the box ([`CropScatter::SHIPPED_DETECTOR`]), area-averaged
    /// to 48x48 by the runtimes' code. Trains on what the camera pipeline feeds the model.
    #[serde(default)]
    pub camera: f32,
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
            camera: 0.0,
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
        camera: 0.0,
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
    // No draw when the share is 0, so runs without camera crops see the same stream of
    // random choices as before the option existed (and resume exactly).
    if cfg.camera > 0.0 && rng.random::<f32>() < cfg.camera {
        let mut crop = [0u8; INPUT_LEN];
        StreamSpec::default().device_crop(rng, src, &CropScatter::SHIPPED_DETECTOR, &mut crop);
        let flip = cfg.flip && rng.random::<bool>();
        for y in 0..INPUT_SIDE {
            for x in 0..INPUT_SIDE {
                let xs = if flip { INPUT_SIDE - 1 - x } else { x };
                out[y * INPUT_SIDE + x] = crop[y * INPUT_SIDE + xs] as f32 / 255.0;
            }
        }
        return;
    }
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

    /// With every image a device crop: the crop of a uniform face is that face's grey, give
    /// or take exposure, light and noise; a seed repeats it; and the images differ from
    /// the affine ones.
    #[test]
    fn camera_crops_replace_the_share_asked() {
        let src: [u8; INPUT_LEN] = std::array::from_fn(|i| (60 + (i % 48) * 2) as u8);
        let camera = AugmentConfig {
            camera: 1.0,
            ..AugmentConfig::default()
        };
        let run = |cfg: &AugmentConfig, seed| {
            let mut out = vec![0.0; INPUT_LEN];
            augment(
                &src,
                cfg,
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
                &mut out,
            );
            out
        };
        let a = run(&camera, 5);
        assert_eq!(a, run(&camera, 5));
        assert_ne!(a, run(&camera, 6));
        assert_ne!(a, run(&AugmentConfig::default(), 5));
        assert!(a.iter().all(|p| (0.0..=1.0).contains(p)));
        let flat: [u8; INPUT_LEN] = [128; INPUT_LEN];
        let mut out = vec![0.0; INPUT_LEN];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        augment(&flat, &camera, &mut rng, &mut out);
        let mean = out.iter().sum::<f32>() / INPUT_LEN as f32 * 255.0;
        // Gain 0.7-1.2 and up to 30% side light around 128; the frame's grey shows at the
        // crop's edge only where the box reaches past the face's context.
        assert!((60.0..=170.0).contains(&mean), "{mean}");
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

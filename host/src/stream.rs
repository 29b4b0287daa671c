//! Camera-like frames made from a labelled folder of 48x48 faces: each face enlarged, turned
//! a little, given some mirrored context, lit unevenly and placed somewhere in a noisy grey
//! frame, with the box the face's 48x48 image covers recorded as its truth.
//!
//! Why: a model scores on pre-cropped faces, but a device classifies what its detector found
//! and cropped. These frames let the whole camera pipeline (detect, crop, classify) be
//! measured against the same faces classified directly, without a camera or a studio. Every
//! frame depends only on the spec, the seed and the face's index, so a stream can be
//! re-made anywhere, in any order, in parallel.

use emoedge_core::preprocess::{FaceBox, INPUT_LEN, INPUT_SIDE};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// How the frames are made. Ranges are drawn uniformly per frame.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct StreamSpec {
    /// Frame width and height, pixels.
    pub frame: (u32, u32),
    /// Side of the face's 48x48 image in the frame, pixels.
    pub face_px: (u32, u32),
    /// Mirrored context around the face on each side, as a fraction of its side.
    pub context: (f32, f32),
    /// Largest rotation either way, degrees.
    pub rotation_deg: f32,
    /// Exposure gain range (1: as the dataset's image).
    pub gain: (f32, f32),
    /// Side light: brightness change from one side of the face to the other, as a
    /// fraction, either way.
    pub side_light: f32,
    /// Sensor noise, standard deviation in grey levels.
    pub noise: f32,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for StreamSpec {
    fn default() -> Self {
        Self {
            frame: (640, 480),
            face_px: (96, 192),
            context: (0.15, 0.35),
            rotation_deg: 5.0,
            gain: (0.7, 1.2),
            side_light: 0.3,
            noise: 3.0,
            seed: 1,
        }
    }
}

/// One camera-like frame with the face it shows.
#[derive(Clone, Debug)]
pub struct Shot {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width · height` gray pixels.
    pub gray: Vec<u8>,
    /// Where the face's 48x48 image lies (before its rotation).
    pub truth: FaceBox,
    /// The rotation the face was given, degrees (positive: clockwise on screen).
    pub rotation_deg: f32,
}

/// Why a spec cannot make frames.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    /// A face with its context does not fit in the frame.
    #[error(
        "a {face}-pixel face with {context:.2} context does not fit in a {w}x{h} frame; use smaller faces or a larger frame"
    )]
    TooBig {
        face: u32,
        context: f32,
        w: u32,
        h: u32,
    },
    /// A range is empty or a value is out of its domain.
    #[error("{0}")]
    Range(&'static str),
}

impl StreamSpec {
    /// Checks that every frame can be made.
    pub fn check(&self) -> Result<(), SpecError> {
        let ordered = |(a, b): (f32, f32)| a.is_finite() && b.is_finite() && a <= b;
        if self.face_px.0 < 8 || self.face_px.0 > self.face_px.1 {
            return Err(SpecError::Range("face sizes: need 8 <= MIN <= MAX"));
        }
        if !ordered(self.context) || self.context.0 < 0.0 || self.context.1 > 1.0 {
            return Err(SpecError::Range("context: need 0 <= MIN <= MAX <= 1"));
        }
        if !ordered(self.gain) || self.gain.0 <= 0.0 {
            return Err(SpecError::Range("gain: need 0 < MIN <= MAX"));
        }
        for (v, max, what) in [
            (self.rotation_deg, 45.0, "rotation: need 0..=45 degrees"),
            (self.side_light, 1.0, "side light: need 0..=1"),
            (self.noise, 64.0, "noise: need 0..=64 grey levels"),
        ] {
            if !(0.0..=max).contains(&v) {
                return Err(SpecError::Range(what));
            }
        }
        let reach = self.reach(self.face_px.1, self.context.1).ceil() as u32;
        if 2 * reach + 2 > self.frame.0.min(self.frame.1) {
            return Err(SpecError::TooBig {
                face: self.face_px.1,
                context: self.context.1,
                w: self.frame.0,
                h: self.frame.1,
            });
        }
        Ok(())
    }

    /// Half the side of the square a face and its context can cover at any rotation.
    fn reach(&self, face: u32, context: f32) -> f32 {
        face as f32 * (0.5 + context) * std::f32::consts::SQRT_2
    }

    /// Frame `index` of the stream, showing `face`. The spec must have passed
    /// [`StreamSpec::check`].
    pub fn render(&self, index: u64, face: &[u8; INPUT_LEN]) -> Shot {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index);
        let (fw, fh) = self.frame;
        let side = rng.random_range(self.face_px.0..=self.face_px.1);
        let context = rng.random_range(self.context.0..=self.context.1);
        let angle = rng.random_range(-self.rotation_deg..=self.rotation_deg);
        let gain = rng.random_range(self.gain.0..=self.gain.1);
        let light = rng.random_range(-self.side_light..=self.side_light);
        let light_dir = rng.random_range(0.0..std::f32::consts::TAU);
        let reach = self.reach(side, context).ceil() as u32;
        let cx = rng.random_range(reach + 1..=fw - reach - 1) as f32;
        let cy = rng.random_range(reach + 1..=fh - reach - 1) as f32;
        // Background: a grey level with a gentle gradient across the frame.
        let level = rng.random_range(50.0f32..=200.0);
        let (gx, gy) = (
            rng.random_range(-0.08f32..=0.08),
            rng.random_range(-0.08f32..=0.08),
        );
        let noise = Normal::new(0.0f32, self.noise.max(1e-6)).expect("checked spec");

        let scale = side as f32 / INPUT_SIDE as f32; // frame pixels per face pixel
        let half_ctx = INPUT_SIDE as f32 * (0.5 + context); // in face pixels
        let (sin, cos) = angle.to_radians().sin_cos();
        let (lx, ly) = (light_dir.cos(), light_dir.sin());
        let mut gray = Vec::with_capacity((fw * fh) as usize);
        for y in 0..fh {
            for x in 0..fw {
                let (px, py) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                // Into face pixels, turning back by the face's rotation.
                let u = (cos * px + sin * py) / scale;
                let v = (-sin * px + cos * py) / scale;
                let value = if u.abs() < half_ctx && v.abs() < half_ctx {
                    let shade = 1.0 + light * (lx * u + ly * v) / INPUT_SIDE as f32;
                    sample_mirrored(
                        face,
                        u + INPUT_SIDE as f32 / 2.0,
                        v + INPUT_SIDE as f32 / 2.0,
                    ) * shade
                } else {
                    level + gx * (x as f32 - fw as f32 / 2.0) + gy * (y as f32 - fh as f32 / 2.0)
                };
                let p = value * gain + noise.sample(&mut rng);
                gray.push(p.round().clamp(0.0, 255.0) as u8);
            }
        }
        Shot {
            width: fw,
            height: fh,
            gray,
            truth: FaceBox::new(
                (cx - side as f32 / 2.0).round() as i32,
                (cy - side as f32 / 2.0).round() as i32,
                side,
                side,
            ),
            rotation_deg: angle,
        }
    }
}

/// The face's grey level at `(u, v)` in face pixels (pixel centres at `i + 0.5`), bilinear,
/// with the image mirrored at its edges: what lies just outside a FER2013 crop is unknown,
/// and a mirror keeps its texture and brightness.
fn sample_mirrored(face: &[u8; INPUT_LEN], u: f32, v: f32) -> f32 {
    let n = INPUT_SIDE as i32;
    let at = |i: i32, j: i32| {
        let m = |k: i32| {
            let k = k.rem_euclid(2 * n);
            if k < n { k } else { 2 * n - 1 - k }
        };
        face[(m(j) * n + m(i)) as usize] as f32
    };
    let (fu, fv) = (u - 0.5, v - 0.5);
    let (i, j) = (fu.floor() as i32, fv.floor() as i32);
    let (a, b) = (fu - i as f32, fv - j as f32);
    let top = at(i, j) * (1.0 - a) + at(i + 1, j) * a;
    let bottom = at(i, j + 1) * (1.0 - a) + at(i + 1, j + 1) * a;
    top * (1.0 - b) + bottom * b
}

#[cfg(test)]
mod tests {
    use super::*;
    use emoedge_core::preprocess::{Frame, PixelFormat, crop_to_input};

    fn face() -> [u8; INPUT_LEN] {
        core::array::from_fn(|i| {
            let (x, y) = (i % INPUT_SIDE, i / INPUT_SIDE);
            (40 + (x * 3 + y * 2) % 170) as u8
        })
    }

    /// Without rotation, light or noise, cropping the truth box gives back the face.
    #[test]
    fn the_truth_box_holds_the_face() {
        let spec = StreamSpec {
            rotation_deg: 0.0,
            gain: (1.0, 1.0),
            side_light: 0.0,
            noise: 0.0,
            face_px: (96, 96),
            ..StreamSpec::default()
        };
        spec.check().unwrap();
        let f = face();
        for index in 0..4 {
            let shot = spec.render(index, &f);
            let frame =
                Frame::new(&shot.gray, shot.width, shot.height, PixelFormat::Gray8).unwrap();
            let mut crop = [0u8; INPUT_LEN];
            crop_to_input(&frame, shot.truth, &mut crop).unwrap();
            let err = crop
                .iter()
                .zip(&f)
                .map(|(&a, &b)| a.abs_diff(b) as u32)
                .sum::<u32>() as f64
                / INPUT_LEN as f64;
            assert!(err < 3.0, "frame {index}: mean error {err}");
        }
    }

    #[test]
    fn frames_depend_only_on_seed_and_index() {
        let spec = StreamSpec::default();
        let f = face();
        let a = spec.render(7, &f);
        assert_eq!(a.gray, spec.render(7, &f).gray);
        assert_ne!(a.gray, spec.render(8, &f).gray);
        let other = StreamSpec { seed: 2, ..spec };
        assert_ne!(a.gray, other.render(7, &f).gray);
    }

    #[test]
    fn specs_that_cannot_be_made_are_refused() {
        let big = StreamSpec {
            face_px: (96, 400),
            ..StreamSpec::default()
        };
        assert!(matches!(big.check(), Err(SpecError::TooBig { .. })));
        let flipped = StreamSpec {
            context: (0.5, 0.1),
            ..StreamSpec::default()
        };
        assert!(matches!(flipped.check(), Err(SpecError::Range(_))));
        StreamSpec::default().check().unwrap();
    }
}

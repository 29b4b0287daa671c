//! Camera-like frames made from a labelled folder of 48x48 faces: each face enlarged, turned
//! a little, given some mirrored context, lit unevenly and placed somewhere in a noisy grey
//! frame, with the box the face's 48x48 image covers recorded as its truth.
//!
//! Why: a model scores on pre-cropped faces, but a device classifies what its detector found
//! and cropped. These frames let the whole camera pipeline (detect, crop, classify) be
//! measured against the same faces classified directly, without a camera or a studio. Every
//! frame depends only on the spec, the seed and the face's index, so a stream can be
//! re-made anywhere, in any order, in parallel.

use emoedge_core::preprocess::{FaceBox, Frame, INPUT_LEN, INPUT_SIDE, PixelFormat, crop_to_input};
use rand::{Rng, RngExt, SeedableRng};
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

    /// Draws how the camera shows one face: its size, context, rotation, exposure and light.
    fn look(&self, rng: &mut ChaCha8Rng) -> Look {
        let side = rng.random_range(self.face_px.0..=self.face_px.1);
        let context = rng.random_range(self.context.0..=self.context.1);
        let angle = rng.random_range(-self.rotation_deg..=self.rotation_deg);
        let gain = rng.random_range(self.gain.0..=self.gain.1);
        let light = rng.random_range(-self.side_light..=self.side_light);
        let light_dir: f32 = rng.random_range(0.0..std::f32::consts::TAU);
        Look {
            side,
            context,
            angle,
            gain,
            light,
            turn: angle.to_radians().sin_cos(),
            light_xy: (light_dir.cos(), light_dir.sin()),
        }
    }

    /// Frame `index` of the stream, showing `face`. The spec must have passed
    /// [`StreamSpec::check`].
    pub fn render(&self, index: u64, face: &[u8; INPUT_LEN]) -> Shot {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index);
        let (fw, fh) = self.frame;
        let look = self.look(&mut rng);
        let side = look.side;
        let reach = self.reach(side, look.context).ceil() as u32;
        let cx = rng.random_range(reach + 1..=fw - reach - 1) as f32;
        let cy = rng.random_range(reach + 1..=fh - reach - 1) as f32;
        // Background: a grey level with a gentle gradient across the frame.
        let level = rng.random_range(50.0f32..=200.0);
        let (gx, gy) = (
            rng.random_range(-0.08f32..=0.08),
            rng.random_range(-0.08f32..=0.08),
        );
        let noise = Normal::new(0.0f32, self.noise.max(1e-6)).expect("checked spec");
        let mut gray = Vec::with_capacity((fw * fh) as usize);
        for y in 0..fh {
            for x in 0..fw {
                let (px, py) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                let value = look.face_at(face, px, py).unwrap_or_else(|| {
                    level + gx * (x as f32 - fw as f32 / 2.0) + gy * (y as f32 - fh as f32 / 2.0)
                });
                let p = value * look.gain + noise.sample(&mut rng);
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
            rotation_deg: look.angle,
        }
    }

    /// The 48x48 input a device makes of `face` seen by this camera: the face drawn as in a
    /// frame of the stream, the crop box placed around it as a detector and the crop
    /// contract place it (`scatter`), and the box area-averaged to 48x48 by the runtimes'
    /// own [`crop_to_input`]. Only the box's pixels are drawn, so it costs a fraction of a
    /// frame; what lies outside the face's context is a flat grey.
    pub fn device_crop(
        &self,
        rng: &mut impl Rng,
        face: &[u8; INPUT_LEN],
        scatter: &CropScatter,
        out: &mut [u8; INPUT_LEN],
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(rng.random());
        let look = self.look(&mut rng);
        let side = look.side as f32;
        let crop = (side * scatter.ratio.draw(&mut rng)).round().max(1.0);
        // The crop's top-left corner relative to the face's centre, in frame pixels.
        let x0 = side * scatter.dx.draw(&mut rng) - crop / 2.0;
        let y0 = side * scatter.dy.draw(&mut rng) - crop / 2.0;
        let level = rng.random_range(50.0f32..=200.0);
        let noise = Normal::new(0.0f32, self.noise.max(1e-6)).expect("checked spec");
        let n = crop as u32;
        let mut gray = Vec::with_capacity((n * n) as usize);
        for y in 0..n {
            for x in 0..n {
                let (px, py) = (x0 + x as f32 + 0.5, y0 + y as f32 + 0.5);
                let value = look.face_at(face, px, py).unwrap_or(level);
                let p = value * look.gain + noise.sample(&mut rng);
                gray.push(p.round().clamp(0.0, 255.0) as u8);
            }
        }
        let frame = Frame::new(&gray, n, n, PixelFormat::Gray8).expect("n x n gray pixels");
        // The box is the whole buffer, so the crop cannot fail.
        let _ = crop_to_input(&frame, FaceBox::new(0, 0, n, n), out);
    }
}

/// How the camera shows one face (see [`StreamSpec`]).
struct Look {
    /// Side of the face's 48x48 image, frame pixels.
    side: u32,
    /// Mirrored context on each side, as a fraction of the side.
    context: f32,
    /// Rotation, degrees.
    angle: f32,
    /// Exposure gain.
    gain: f32,
    /// Brightness change across the face.
    light: f32,
    /// Sine and cosine of the rotation, worked out once: [`Look::face_at`] runs per pixel.
    turn: (f32, f32),
    /// The light's direction as a unit vector.
    light_xy: (f32, f32),
}

impl Look {
    /// The face's shaded grey level (before gain and noise) at `(px, py)` frame pixels from
    /// the face's centre; `None` outside the face and its context.
    fn face_at(&self, face: &[u8; INPUT_LEN], px: f32, py: f32) -> Option<f32> {
        let scale = self.side as f32 / INPUT_SIDE as f32; // frame pixels per face pixel
        let half_ctx = INPUT_SIDE as f32 * (0.5 + self.context); // in face pixels
        let (sin, cos) = self.turn;
        // Into face pixels, turning back by the face's rotation.
        let u = (cos * px + sin * py) / scale;
        let v = (-sin * px + cos * py) / scale;
        if u.abs() >= half_ctx || v.abs() >= half_ctx {
            return None;
        }
        let (lx, ly) = self.light_xy;
        let shade = 1.0 + self.light * (lx * u + ly * v) / INPUT_SIDE as f32;
        let half = INPUT_SIDE as f32 / 2.0;
        Some(sample_mirrored(face, u + half, v + half) * shade)
    }
}

/// Where a device's crop box falls around a face, relative to the box the face's 48x48 image
/// covers (the training framing): its side as a ratio of the face's, and its centre's offset
/// as a fraction of the face's side, right and down. Each is drawn from its measured
/// distribution, independently.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropScatter {
    /// Crop side / face side.
    pub ratio: Quantiles,
    /// Crop centre's offset to the right, in face sides.
    pub dx: Quantiles,
    /// Crop centre's offset down, in face sides.
    pub dy: Quantiles,
}

impl CropScatter {
    /// The shipped detector (OpenCV's `alt2` cascade, scale 1.1, 3 neighbours) and crop
    /// contract on 1,000 frames of `train` (731 faces found), measured with
    /// `emoedge eval-camera --data $EMOEDGE_DATA/fer2013/train --faces 1000 --json F` (each
    /// found face's crop box against its truth box).
    pub const SHIPPED_DETECTOR: Self = Self {
        ratio: Quantiles([0.645, 0.763, 0.838, 0.93, 0.988, 1.053, 1.144, 1.202, 1.564]),
        dx: Quantiles([
            -0.24, -0.067, -0.038, -0.015, 0.0, 0.015, 0.036, 0.083, 0.247,
        ]),
        dy: Quantiles([
            -0.227, -0.101, -0.072, -0.018, -0.001, 0.013, 0.03, 0.047, 0.197,
        ]),
    };
}

/// A distribution given by its values at [`Quantiles::LEVELS`], drawn from by linear
/// interpolation of the inverse CDF between them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quantiles(pub [f32; 9]);

impl Quantiles {
    /// The cumulative shares the values are taken at: minimum, 5%, 10%, quartiles, 90%, 95%,
    /// maximum.
    pub const LEVELS: [f32; 9] = [0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0];

    /// One draw.
    pub fn draw(&self, rng: &mut impl Rng) -> f32 {
        let u: f32 = rng.random_range(0.0..1.0);
        let k = Self::LEVELS.partition_point(|&l| l <= u).clamp(1, 8);
        let (l0, l1) = (Self::LEVELS[k - 1], Self::LEVELS[k]);
        let (v0, v1) = (self.0[k - 1], self.0[k]);
        v0 + (v1 - v0) * (u - l0) / (l1 - l0)
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

    fn face() -> [u8; INPUT_LEN] {
        core::array::from_fn(|i| {
            let (x, y) = (i % INPUT_SIDE, i / INPUT_SIDE);
            (40 + (x * 3 + y * 2) % 170) as u8
        })
    }

    /// Mean absolute difference of two images, in grey levels.
    fn mean_error(a: &[u8], b: &[u8]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| x.abs_diff(y) as u32)
            .sum::<u32>() as f64
            / a.len() as f64
    }

    /// A camera that only enlarges the face (to 96 pixels): no rotation, light or noise.
    fn plain_camera() -> StreamSpec {
        StreamSpec {
            rotation_deg: 0.0,
            gain: (1.0, 1.0),
            side_light: 0.0,
            noise: 0.0,
            face_px: (96, 96),
            ..StreamSpec::default()
        }
    }

    /// Without rotation, light or noise, cropping the truth box gives back the face.
    #[test]
    fn the_truth_box_holds_the_face() {
        let spec = plain_camera();
        spec.check().unwrap();
        let f = face();
        for index in 0..4 {
            let shot = spec.render(index, &f);
            let frame =
                Frame::new(&shot.gray, shot.width, shot.height, PixelFormat::Gray8).unwrap();
            let mut crop = [0u8; INPUT_LEN];
            crop_to_input(&frame, shot.truth, &mut crop).unwrap();
            let err = mean_error(&crop, &f);
            assert!(err < 3.0, "frame {index}: mean error {err}");
        }
    }

    /// A device crop with no scatter and a plain camera is the face; a crop box moved right
    /// by a quarter of the face shows the face moved left by 12 of its pixels.
    #[test]
    fn device_crops_frame_the_face_as_the_scatter_says() {
        let spec = plain_camera();
        let fixed = |v: f32| Quantiles([v; 9]);
        let f = face();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut crop = [0u8; INPUT_LEN];
        let centred = CropScatter {
            ratio: fixed(1.0),
            dx: fixed(0.0),
            dy: fixed(0.0),
        };
        spec.device_crop(&mut rng, &f, &centred, &mut crop);
        assert!(mean_error(&crop, &f) < 2.0, "{}", mean_error(&crop, &f));
        let right = CropScatter {
            dx: fixed(0.25),
            ..centred
        };
        spec.device_crop(&mut rng, &f, &right, &mut crop);
        let (mut moved, mut face_part) = (Vec::new(), Vec::new());
        for y in 0..INPUT_SIDE {
            for x in 0..INPUT_SIDE - 12 {
                moved.push(crop[y * INPUT_SIDE + x]);
                face_part.push(f[y * INPUT_SIDE + x + 12]);
            }
        }
        assert!(
            mean_error(&moved, &face_part) < 2.0,
            "{}",
            mean_error(&moved, &face_part)
        );
        assert!(
            mean_error(&crop, &f) > 10.0,
            "the moved crop must differ from the face"
        );
    }

    #[test]
    fn quantiles_are_drawn_in_their_shares() {
        let q = CropScatter::SHIPPED_DETECTOR.ratio;
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let draws: Vec<f32> = (0..20_000).map(|_| q.draw(&mut rng)).collect();
        assert!(draws.iter().all(|v| (q.0[0]..=q.0[8]).contains(v)));
        for (k, level) in Quantiles::LEVELS.iter().enumerate().skip(1).take(7) {
            let below = draws.iter().filter(|&&v| v < q.0[k]).count() as f32 / 20_000.0;
            assert!(
                (below - level).abs() < 0.01,
                "{below} below the {level} quantile"
            );
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

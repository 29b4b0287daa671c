//! The preprocessing contract, integer only: frame → gray → face crop → 48x48 → int8.
//!
//! Every runtime (trainer, tract, engine, firmware) feeds the model the same bytes for the
//! same crop: gray `p` becomes `p - 128` (scale `1/255`, zero point `-128`), and the trainer
//! sees `p / 255`.

/// Side of the square model input.
pub const INPUT_SIDE: usize = 48;
/// Pixels of one model input.
pub const INPUT_LEN: usize = INPUT_SIDE * INPUT_SIDE;
/// Zero point of the model input (scale [`INPUT_SCALE`]).
pub const INPUT_ZERO_POINT: i8 = -128;
/// Scale of the model input: gray `p` is the float `p · INPUT_SCALE`, that is `p / 255`.
pub const INPUT_SCALE: f32 = 1.0 / 255.0;

/// Pixel layout of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    /// One byte per pixel.
    Gray8,
    /// Three bytes per pixel, R G B.
    Rgb8,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub const fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Gray8 => 1,
            Self::Rgb8 => 3,
        }
    }
}

/// A borrowed camera frame, rows top to bottom, no padding between rows.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    data: &'a [u8],
    width: u32,
    height: u32,
    format: PixelFormat,
}

/// A frame's buffer does not match its stated size, or a crop box is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreprocessError {
    /// `data.len()` is not `width · height · bytes_per_pixel`.
    FrameLen { expected: usize, got: usize },
    /// The frame has no pixels.
    EmptyFrame,
    /// The crop box lies entirely outside the frame or has zero size.
    EmptyCrop,
}

impl<'a> Frame<'a> {
    /// Wraps a buffer, checking its length.
    pub fn new(
        data: &'a [u8],
        width: u32,
        height: u32,
        format: PixelFormat,
    ) -> Result<Self, PreprocessError> {
        if width == 0 || height == 0 {
            return Err(PreprocessError::EmptyFrame);
        }
        let expected = width as usize * height as usize * format.bytes_per_pixel();
        if data.len() != expected {
            return Err(PreprocessError::FrameLen {
                expected,
                got: data.len(),
            });
        }
        Ok(Self {
            data,
            width,
            height,
            format,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Gray value of pixel `(x, y)` (in range by the caller).
    #[inline(always)]
    fn gray(&self, x: u32, y: u32) -> u32 {
        let i = y as usize * self.width as usize + x as usize;
        match self.format {
            PixelFormat::Gray8 => self.data[i] as u32,
            PixelFormat::Rgb8 => {
                let p = &self.data[i * 3..i * 3 + 3];
                rgb_to_gray(p[0], p[1], p[2]) as u32
            }
        }
    }
}

/// ITU-R BT.601 luma in 8-bit fixed point: `(77 R + 150 G + 29 B + 128) >> 8`.
#[inline(always)]
pub const fn rgb_to_gray(r: u8, g: u8, b: u8) -> u8 {
    ((77 * r as u32 + 150 * g as u32 + 29 * b as u32 + 128) >> 8) as u8
}

/// A face box in frame pixels (may extend past the frame; it is clipped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaceBox {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

impl FaceBox {
    /// A box from its left and top edges and its size.
    pub const fn new(x: i32, y: i32, w: u32, h: u32) -> Self {
        Self { x, y, w, h }
    }

    /// One past the right edge.
    pub const fn right(&self) -> i32 {
        self.x + self.w as i32
    }

    /// One past the bottom edge.
    pub const fn bottom(&self) -> i32 {
        self.y + self.h as i32
    }

    /// Intersection over union with another box: 0 for boxes that do not overlap, 1 for
    /// the same box. Used to follow a face from frame to frame and to match detections
    /// with reference boxes.
    pub fn iou(&self, o: &FaceBox) -> f64 {
        let ix = self.right().min(o.right()) - self.x.max(o.x);
        let iy = self.bottom().min(o.bottom()) - self.y.max(o.y);
        if ix <= 0 || iy <= 0 {
            return 0.0;
        }
        let inter = ix as i64 * iy as i64;
        let union = self.w as i64 * self.h as i64 + o.w as i64 * o.h as i64 - inter;
        inter as f64 / union as f64
    }
}

/// Written as `[x, y, w, h]`, as every emoedge JSON report has it.
impl serde::Serialize for FaceBox {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        [self.x, self.y, self.w as i32, self.h as i32].serialize(s)
    }
}

/// How a face detector's box becomes the box the model's 48x48 crop is cut from: the crop is
/// `scale` times the box's size, its centre moved by (`dx`, `dy`) box sides. All in
/// thousandths, so every runtime computes the same pixels with integers alone.
///
/// Why it exists: FER2013's faces were cut from OpenCV detections with their own framing
/// (more forehead and chin than the Haar box covers). A crop framed differently from the
/// training images costs accuracy though the face was found; the contract reproduces the
/// training framing from the detector's box. [`CropContract::FER2013`] was fitted by
/// measurement (`emoedge eval-camera` on a stream made from `train`; `models/MODEL.md`, "Crop contract").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropContract {
    /// Crop side over box side, thousandths (1000: the box as it is).
    pub scale_milli: u32,
    /// Crop centre to the right of the box centre, thousandths of the box width.
    pub dx_milli: i32,
    /// Crop centre below the box centre, thousandths of the box height.
    pub dy_milli: i32,
}

/// Why a crop contract could not be read from text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CropContractError {
    /// Not three comma-separated numbers.
    Shape,
    /// A part is not a decimal number with at most three digits after the point.
    Number,
    /// The scale is not above zero or above 10.
    Scale,
}

impl core::error::Error for CropContractError {}

impl core::fmt::Display for CropContractError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Shape => "expected SCALE,DX,DY, e.g. 1.25,0,0.05",
            Self::Number => "each part must be a decimal number with at most 3 decimals",
            Self::Scale => "the scale must be above 0 and at most 10",
        })
    }
}

impl CropContract {
    /// The contract fitted to FER2013's framing with OpenCV's default frontal cascade; the
    /// one every runtime uses unless told otherwise.
    pub const FER2013: Self = Self {
        scale_milli: 1021,
        dx_milli: 0,
        dy_milli: 6,
    };

    /// The detector's box as it is.
    pub const BOX: Self = Self {
        scale_milli: 1000,
        dx_milli: 0,
        dy_milli: 0,
    };

    /// The crop box for a detector box.
    pub fn crop_box(self, b: FaceBox) -> FaceBox {
        let (w, h) = (b.w as i64, b.h as i64);
        let s = self.scale_milli as i64;
        let cw = round_div(w * s, 1000).max(1);
        let ch = round_div(h * s, 1000).max(1);
        // Twice the crop centre, so that odd sizes stay exact.
        let cx2 = 2 * b.x as i64 + w + round_div(2 * w * self.dx_milli as i64, 1000);
        let cy2 = 2 * b.y as i64 + h + round_div(2 * h * self.dy_milli as i64, 1000);
        FaceBox {
            x: (cx2 - cw).div_euclid(2) as i32,
            y: (cy2 - ch).div_euclid(2) as i32,
            w: cw as u32,
            h: ch as u32,
        }
    }
}

impl core::str::FromStr for CropContract {
    type Err = CropContractError;

    /// Reads `SCALE,DX,DY` as decimals, e.g. `1.25,0,0.05`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.split(',').map(|p| milli(p.trim()));
        let (Some(s), Some(dx), Some(dy), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CropContractError::Shape);
        };
        let (s, dx, dy) = (s?, dx?, dy?);
        if s <= 0 || s > 10_000 {
            return Err(CropContractError::Scale);
        }
        Ok(Self {
            scale_milli: s as u32,
            dx_milli: dx,
            dy_milli: dy,
        })
    }
}

impl core::fmt::Display for CropContract {
    /// The form [`CropContract`]'s `FromStr` reads.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = |v: i32| {
            let sign = if v < 0 { "-" } else { "" };
            (sign, v.unsigned_abs() / 1000, v.unsigned_abs() % 1000)
        };
        let (a, b, c) = (
            m(self.scale_milli as i32),
            m(self.dx_milli),
            m(self.dy_milli),
        );
        write!(
            f,
            "{}{}.{:03},{}{}.{:03},{}{}.{:03}",
            a.0, a.1, a.2, b.0, b.1, b.2, c.0, c.1, c.2
        )
    }
}

/// `n / d` rounded to the nearest integer, halves up (`d > 0`).
fn round_div(n: i64, d: i64) -> i64 {
    (2 * n + d).div_euclid(2 * d)
}

/// A decimal with at most three fraction digits, in thousandths.
fn milli(t: &str) -> Result<i32, CropContractError> {
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty())
        || !all_digits(int)
        || !all_digits(frac)
        || frac.len() > 3
        || int.len() > 5
    {
        return Err(CropContractError::Number);
    }
    let int: i32 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| CropContractError::Number)?
    };
    let mut f = 0i32;
    for k in 0..3 {
        f = f * 10 + frac.as_bytes().get(k).map_or(0, |b| (b - b'0') as i32);
    }
    let v = int * 1000 + f;
    Ok(if neg { -v } else { v })
}

/// Crops `face` out of `frame` and resizes it to 48x48 gray by area averaging: each output
/// pixel is the rounded mean of the source pixels its footprint covers (at least one).
/// Parts of the box outside the frame are clipped away first, so the crop keeps its
/// content's aspect as far as the frame allows.
pub fn crop_to_input(
    frame: &Frame,
    face: FaceBox,
    out: &mut [u8; INPUT_LEN],
) -> Result<(), PreprocessError> {
    let x0 = face.x.max(0) as i64;
    let y0 = face.y.max(0) as i64;
    let x1 = (face.x as i64 + face.w as i64).min(frame.width as i64);
    let y1 = (face.y as i64 + face.h as i64).min(frame.height as i64);
    if x1 <= x0 || y1 <= y0 {
        return Err(PreprocessError::EmptyCrop);
    }
    let (w, h) = ((x1 - x0) as u64, (y1 - y0) as u64);
    let n = INPUT_SIDE as u64;
    for oy in 0..n {
        let sy0 = (oy * h / n) as i64;
        let sy1 = (((oy + 1) * h).div_ceil(n) as i64).max(sy0 + 1);
        for ox in 0..n {
            let sx0 = (ox * w / n) as i64;
            let sx1 = (((ox + 1) * w).div_ceil(n) as i64).max(sx0 + 1);
            let mut sum = 0u32;
            for sy in sy0..sy1 {
                for sx in sx0..sx1 {
                    sum += frame.gray((x0 + sx) as u32, (y0 + sy) as u32);
                }
            }
            let count = ((sy1 - sy0) * (sx1 - sx0)) as u32;
            out[(oy * n + ox) as usize] = ((sum + count / 2) / count) as u8;
        }
    }
    Ok(())
}

/// Maps gray pixels to the model's int8 input: `p - 128`.
pub fn quantize_input(gray: &[u8; INPUT_LEN], out: &mut [i8; INPUT_LEN]) {
    for (q, &p) in out.iter_mut().zip(gray) {
        *q = (p as i16 + INPUT_ZERO_POINT as i16) as i8;
    }
}

/// Maps gray pixels to the float input the trainer and the float runtimes see: `p / 255`.
///
/// Quantized with [`INPUT_SCALE`] and [`INPUT_ZERO_POINT`], `p / 255` is [`quantize_input`]'s
/// `p - 128` exactly, for every pixel: the float and int8 forms see the same face.
pub fn float_input(gray: &[u8], out: &mut [f32]) {
    for (x, &p) in out.iter_mut().zip(gray) {
        *x = p as f32 / 255.0;
    }
}

/// Mirrors a 48x48 face left to right, in place. For test-time flip averaging: the model
/// was trained on randomly mirrored faces, so a face and its mirror are two views of one
/// expression, and summing their logits ([`sum_logits`]) evens out some of either's errors.
pub fn mirror(face: &mut [u8; INPUT_LEN]) {
    for row in face.chunks_exact_mut(INPUT_SIDE) {
        row.reverse();
    }
}

/// Sums two int8 logit vectors of the same model (same scale and zero point) without
/// overflow, value by value (as many values as the shorter has). The argmax of the sum is
/// the argmax of the mean of the dequantized logits.
pub fn sum_logits<'a>(a: &'a [i8], b: &'a [i8]) -> impl Iterator<Item = i16> + 'a {
    a.iter().zip(b).map(|(&x, &y)| x as i16 + y as i16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_input_quantizes_to_the_int8_input() {
        let gray: [u8; INPUT_LEN] = core::array::from_fn(|i| (i % 256) as u8);
        let (mut f, mut q) = ([0f32; INPUT_LEN], [0i8; INPUT_LEN]);
        float_input(&gray, &mut f);
        quantize_input(&gray, &mut q);
        for (x, z) in f.iter().zip(q) {
            let back = (x / INPUT_SCALE).round() as i32 + INPUT_ZERO_POINT as i32;
            assert_eq!(back, z as i32);
        }
        assert_eq!(f[255], 1.0);
    }

    #[test]
    fn mirror_reverses_rows_and_twice_is_identity() {
        let orig: [u8; INPUT_LEN] = core::array::from_fn(|i| (i * 31 % 251) as u8);
        let mut f = orig;
        mirror(&mut f);
        for y in 0..INPUT_SIDE {
            for x in 0..INPUT_SIDE {
                assert_eq!(
                    f[y * INPUT_SIDE + x],
                    orig[y * INPUT_SIDE + INPUT_SIDE - 1 - x]
                );
            }
        }
        mirror(&mut f);
        assert_eq!(f, orig);
    }

    #[test]
    fn logit_sums_do_not_overflow() {
        let sum: heapless::Vec<i16, 3> = sum_logits(&[127, -128, 5], &[127, -128, -6]).collect();
        assert_eq!(sum, [254, -256, -1]);
    }

    #[test]
    fn gray_weights_sum_to_one() {
        assert_eq!(rgb_to_gray(255, 255, 255), 255);
        assert_eq!(rgb_to_gray(0, 0, 0), 0);
        assert_eq!(rgb_to_gray(255, 0, 0), 77);
    }

    #[test]
    fn identity_crop_of_a_48x48_frame() {
        let data: Vec<u8> = (0..INPUT_LEN).map(|i| (i * 7 % 256) as u8).collect();
        let f = Frame::new(&data, 48, 48, PixelFormat::Gray8).unwrap();
        let mut out = [0u8; INPUT_LEN];
        crop_to_input(
            &f,
            FaceBox {
                x: 0,
                y: 0,
                w: 48,
                h: 48,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[..], &data[..]);
    }

    #[test]
    fn downscale_by_two_averages_blocks_with_rounding() {
        // 96x96: each 2x2 block holds 0, 1, 1, 1 -> mean 0.75 -> 1.
        let data: Vec<u8> = (0..96 * 96)
            .map(|i| {
                if (i / 96) % 2 == 0 && i % 2 == 0 {
                    0
                } else {
                    1
                }
            })
            .collect();
        let f = Frame::new(&data, 96, 96, PixelFormat::Gray8).unwrap();
        let mut out = [9u8; INPUT_LEN];
        crop_to_input(
            &f,
            FaceBox {
                x: 0,
                y: 0,
                w: 96,
                h: 96,
            },
            &mut out,
        )
        .unwrap();
        assert!(out.iter().all(|&p| p == 1));
    }

    #[test]
    fn rgb_crop_clips_to_the_frame() {
        let data = [200u8; 10 * 10 * 3];
        let f = Frame::new(&data, 10, 10, PixelFormat::Rgb8).unwrap();
        let mut out = [0u8; INPUT_LEN];
        crop_to_input(
            &f,
            FaceBox {
                x: -5,
                y: -5,
                w: 10,
                h: 10,
            },
            &mut out,
        )
        .unwrap();
        assert!(out.iter().all(|&p| p == 200));
        assert_eq!(
            crop_to_input(
                &f,
                FaceBox {
                    x: 10,
                    y: 0,
                    w: 5,
                    h: 5
                },
                &mut out
            ),
            Err(PreprocessError::EmptyCrop)
        );
        assert_eq!(
            Frame::new(&data[1..], 10, 10, PixelFormat::Rgb8).err(),
            Some(PreprocessError::FrameLen {
                expected: 300,
                got: 299
            })
        );
    }

    #[test]
    fn input_quantization_is_p_minus_128() {
        let mut g = [0u8; INPUT_LEN];
        g[1] = 128;
        g[2] = 255;
        let mut q = [0i8; INPUT_LEN];
        quantize_input(&g, &mut q);
        assert_eq!(&q[..3], &[-128, 0, 127]);
    }

    #[test]
    fn crop_contract_scales_and_shifts_about_the_box_centre() {
        let b = FaceBox {
            x: 100,
            y: 50,
            w: 100,
            h: 80,
        };
        assert_eq!(CropContract::BOX.crop_box(b), b);
        let grown = "1.2,0,0".parse::<CropContract>().unwrap().crop_box(b);
        assert_eq!(
            grown,
            FaceBox {
                x: 90,
                y: 42,
                w: 120,
                h: 96
            }
        );
        let moved = "1,0.1,-0.25".parse::<CropContract>().unwrap().crop_box(b);
        assert_eq!(
            moved,
            FaceBox {
                x: 110,
                y: 30,
                w: 100,
                h: 80
            }
        );
    }

    #[test]
    fn crop_contract_text_round_trips_and_bad_text_is_named() {
        for c in [
            CropContract::FER2013,
            CropContract::BOX,
            "1.375,-0.012,0.5".parse::<CropContract>().unwrap(),
        ] {
            let mut s = heapless::String::<40>::new();
            core::fmt::write(&mut s, format_args!("{c}")).unwrap();
            assert_eq!(s.parse::<CropContract>(), Ok(c), "{s}");
        }
        assert_eq!(
            "1.2,0".parse::<CropContract>(),
            Err(CropContractError::Shape)
        );
        assert_eq!(
            "1.2,0,0,0".parse::<CropContract>(),
            Err(CropContractError::Shape)
        );
        assert_eq!(
            "1.2,x,0".parse::<CropContract>(),
            Err(CropContractError::Number)
        );
        assert_eq!(
            "1.2345,0,0".parse::<CropContract>(),
            Err(CropContractError::Number)
        );
        assert_eq!(
            "0,0,0".parse::<CropContract>(),
            Err(CropContractError::Scale)
        );
        assert_eq!(
            "-1,0,0".parse::<CropContract>(),
            Err(CropContractError::Scale)
        );
    }
}

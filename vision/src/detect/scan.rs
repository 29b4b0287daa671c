//! The image pyramid and the window scan, in integers and caller-owned buffers: what every
//! device runs, the Pi with buffers as large as the frame, a microcontroller with a strip
//! of integral rows.
//!
//! Each pyramid level is the frame resized (bilinear, 8-bit weights, pixel centres aligned
//! as OpenCV's `INTER_LINEAR`) by a fixed-point factor; its rows are made one at a time
//! and summed into a strip of integral rows, which slides down the level. The integral
//! tables hold wrapping `u32` sums: a rectangle's sum is a difference of four entries and
//! exact whatever the strip's first row, so the strip height changes the memory a level
//! needs, never the windows' verdicts.

use super::blob::{CascadeBlob, Features, Window};
use emoedge_core::preprocess::FaceBox;

/// One in 2^16: the fixed-point unit of pyramid factors.
pub const SCALE_ONE: u32 = 1 << 16;

/// `detectMultiScale` parameters, with OpenCV's meanings, in integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetectParams {
    /// Pyramid step (OpenCV `scaleFactor`) in 1/65536ths: above [`SCALE_ONE`].
    pub scale: u32,
    /// Detections a group needs to be kept (OpenCV `minNeighbors`).
    pub min_neighbors: u32,
    /// Smallest face side in frame pixels.
    pub min_size: u32,
}

/// The defaults go with OpenCV's `haarcascade_frontalface_alt2.xml`, the shipped cascade:
/// on camera-like frames of FER2013 faces they found the most faces without more false
/// positives on real photos than OpenCV's usual `default` cascade at 5 neighbours
/// (`models/MODEL.md`, "Face detector", has the table).
impl Default for DetectParams {
    fn default() -> Self {
        Self {
            scale: scale_from_ratio(1.1),
            min_neighbors: 3,
            min_size: 30,
        }
    }
}

/// A pyramid step given as a ratio (1.1) in 1/65536ths, rounded.
pub const fn scale_from_ratio(ratio: f64) -> u32 {
    (ratio * SCALE_ONE as f64 + 0.5) as u32
}

/// Why a frame cannot be scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// The pixels do not make a `width x height` gray frame.
    #[error("a {width}x{height} gray frame has {expected} bytes, {actual} given")]
    FrameSize {
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
        /// `width · height`.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The pyramid step is not above 1.
    #[error("the pyramid step must be above 1 ({scale}/65536 given)")]
    Scale {
        /// The step given.
        scale: u32,
    },
    /// A buffer of the workspace is smaller than this frame's levels need.
    #[error("the detector's {buffer} holds {have}, this frame needs {need}")]
    Workspace {
        /// Which buffer.
        buffer: &'static str,
        /// Its length.
        have: usize,
        /// The length needed.
        need: usize,
    },
}

/// A gray frame, checked: `width · height` bytes, row after row.
#[derive(Clone, Copy, Debug)]
pub struct Gray<'a> {
    pixels: &'a [u8],
    width: u32,
    height: u32,
}

impl<'a> Gray<'a> {
    /// A frame; an error when the length is not `width · height`.
    pub fn new(pixels: &'a [u8], width: u32, height: u32) -> Result<Self, DetectError> {
        // A size whose pixel count does not fit usize can match no buffer.
        let expected = (width as usize).saturating_mul(height as usize);
        if pixels.len() != expected {
            return Err(DetectError::FrameSize {
                width,
                height,
                expected,
                actual: pixels.len(),
            });
        }
        Ok(Self {
            pixels,
            width,
            height,
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

    /// The pixels, row after row.
    pub fn pixels(&self) -> &'a [u8] {
        self.pixels
    }
}

/// One pyramid level: the frame shrunk by `factor / 65536`, scanned with the cascade's
/// window, which covers `window` frame pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Level {
    /// Shrink factor in 1/65536ths.
    pub factor: u32,
    /// Level width.
    pub width: u32,
    /// Level height.
    pub height: u32,
    /// The cascade window's size in frame pixels.
    pub window: (u32, u32),
}

impl Level {
    /// A level coordinate in frame pixels, rounded.
    pub fn to_frame(&self, v: u32) -> i32 {
        ((v as u64 * self.factor as u64 + (1 << 15)) >> 16) as i32
    }

    /// Window step: every 2nd window up to a factor of 2, every window beyond (OpenCV's).
    pub fn step(&self) -> u32 {
        if self.factor > 2 * SCALE_ONE { 1 } else { 2 }
    }

    /// Length of each integral table a strip of `rows` integral rows needs at this level.
    pub fn table_len(&self, rows: usize) -> usize {
        (self.width as usize + 1) * rows
    }
}

/// The pyramid OpenCV's `detectMultiScale` scans: from the first level whose window covers
/// at least `min_size` pixels to the last the window still fits in.
pub fn levels(
    width: u32,
    height: u32,
    window: (u32, u32),
    p: &DetectParams,
) -> impl Iterator<Item = Level> {
    let (ww, wh) = window;
    let (min_size, step) = (p.min_size, p.scale as u64);
    let mut factor = SCALE_ONE as u64;
    core::iter::from_fn(move || {
        loop {
            if step <= SCALE_ONE as u64 || factor > u32::MAX as u64 {
                return None;
            }
            let f = factor;
            let size = |v: u32| (((v as u64) << 17) + f) / (2 * f);
            let win = |v: u32| ((v as u64 * f + (1 << 15)) >> 16) as u32;
            let (sw, sh) = (size(width) as u32, size(height) as u32);
            if sw <= ww || sh <= wh {
                return None;
            }
            factor = (factor * step + (1 << 15)) >> 16;
            let window = (win(ww), win(wh));
            if window.0 >= min_size && window.1 >= min_size {
                return Some(Level {
                    factor: f as u32,
                    width: sw,
                    height: sh,
                    window,
                });
            }
        }
    })
}

/// Where raw detections go: a `Vec` on the host, a fixed array on a microcontroller.
pub trait Hits {
    /// Keeps a detection; a full sink drops it and counts it.
    fn push(&mut self, face: FaceBox);
}

#[cfg(feature = "std")]
impl Hits for Vec<FaceBox> {
    fn push(&mut self, face: FaceBox) {
        Vec::push(self, face);
    }
}

/// A fixed-capacity sink that counts what it could not keep.
#[derive(Debug)]
pub struct BoundedHits<'a> {
    boxes: &'a mut [FaceBox],
    len: usize,
    dropped: u32,
}

impl<'a> BoundedHits<'a> {
    /// An empty sink over `boxes`.
    pub fn new(boxes: &'a mut [FaceBox]) -> Self {
        Self {
            boxes,
            len: 0,
            dropped: 0,
        }
    }

    /// The detections kept, in order.
    pub fn as_slice(&self) -> &[FaceBox] {
        &self.boxes[..self.len]
    }

    /// Detections that did not fit.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// Empties the sink.
    pub fn clear(&mut self) {
        self.len = 0;
        self.dropped = 0;
    }
}

impl Hits for BoundedHits<'_> {
    fn push(&mut self, face: FaceBox) {
        match self.boxes.get_mut(self.len) {
            Some(slot) => {
                *slot = face;
                self.len += 1;
            }
            None => self.dropped = self.dropped.saturating_add(1),
        }
    }
}

/// The buffers one level's scan uses: two integral tables of [`Level::table_len`] for a
/// strip of at least `window height + 2` rows, and a row and a column-tap buffer at least
/// as long as the level is wide.
pub struct Strip<'a> {
    /// Integral of pixels.
    pub sum: &'a mut [u32],
    /// Integral of squared pixels.
    pub sq: &'a mut [u32],
    /// One resized row.
    pub row: &'a mut [u8],
    /// Bilinear column taps: source column | weight << 16.
    pub taps: &'a mut [u32],
}

/// What one level's scan looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanCount {
    /// Windows evaluated.
    pub windows: u32,
    /// Windows that passed every stage.
    pub faces: u32,
}

/// Bilinear position of output `i` of `n` on `len` source pixels: `(i0, weight/256)`.
fn tap(i: u32, n: u32, len: u32) -> (u32, u32) {
    // f = (i + 0.5) · len / n - 0.5 = ((2i + 1) · len - n) / 2n, clamped at 0.
    let num = ((2 * i as u64 + 1) * len as u64).saturating_sub(n as u64);
    let den = 2 * n as u64;
    let i0 = (num / den) as u32;
    if i0 >= len - 1 {
        return (len - 1, 0);
    }
    (i0, ((num % den) * 256 / den) as u32)
}

/// Makes row `y` of the level into `out`.
fn level_row(frame: &Gray, level: &Level, taps: &[u32], y: u32, out: &mut [u8]) {
    let (w, h) = (frame.width, frame.height);
    let px = frame.pixels;
    if level.width == w && level.height == h {
        out.copy_from_slice(&px[(y * w) as usize..][..w as usize]);
        return;
    }
    let (y0, wy) = tap(y, level.height, h);
    let y1 = (y0 + 1).min(h - 1);
    let (r0, r1) = (
        &px[(y0 * w) as usize..][..w as usize],
        &px[(y1 * w) as usize..][..w as usize],
    );
    for (o, &t) in out.iter_mut().zip(taps) {
        let (x0, wx) = ((t & 0xffff) as usize, t >> 16);
        let x1 = (x0 + 1).min(w as usize - 1);
        let top = r0[x0] as u32 * (256 - wx) + r0[x1] as u32 * wx;
        let bot = r1[x0] as u32 * (256 - wx) + r1[x1] as u32 * wx;
        *o = ((top * (256 - wy) + bot * wy + (1 << 15)) >> 16) as u8;
    }
}

/// Scans one level with the cascade, pushing each window that passes every stage to `hits`
/// as a box in frame pixels. The windows OpenCV looks at: rows and columns `step` apart
/// (excluding the last position, as OpenCV), and one more step past a window the first
/// stage rejects (its neighbour will most likely be rejected too).
pub fn scan_level(
    cascade: &CascadeBlob,
    frame: &Gray,
    level: &Level,
    strip: &mut Strip,
    hits: &mut impl Hits,
) -> Result<ScanCount, DetectError> {
    let (ww, wh) = (cascade.width(), cascade.height());
    let sw = level.width;
    let stride = sw as usize + 1;
    let table = strip.sum.len().min(strip.sq.len());
    let need = |buffer, have: usize, need: usize| {
        if have < need {
            Err(DetectError::Workspace { buffer, have, need })
        } else {
            Ok(())
        }
    };
    need("integral tables", table, level.table_len(wh as usize + 2))?;
    need("row buffer", strip.row.len(), sw as usize)?;
    need("column taps", strip.taps.len(), sw as usize)?;
    if frame.width > 0xffff {
        return Err(DetectError::Workspace {
            buffer: "column taps (frame width)",
            have: 0xffff,
            need: frame.width as usize,
        });
    }
    for (x, t) in strip.taps[..sw as usize].iter_mut().enumerate() {
        let (x0, wx) = tap(x as u32, sw, frame.width);
        *t = x0 | wx << 16;
    }
    // One scan loop per feature type, each with its window test inlined.
    Ok(match cascade.features() {
        Features::Haar => scan_rows(frame, level, strip, (ww, wh), hits, |sum, sq, base| {
            cascade.classify_haar(sum, sq, base, stride)
        }),
        Features::Lbp => scan_rows(frame, level, strip, (ww, wh), hits, |sum, _, base| {
            cascade.classify_lbp(sum, base, stride)
        }),
    })
}

/// The strip's rows made and slid down the level, and every window of the scan judged by
/// `classify(sum, sq, base)`; `strip`'s taps are set and its sizes checked.
fn scan_rows(
    frame: &Gray,
    level: &Level,
    strip: &mut Strip,
    (ww, wh): (u32, u32),
    hits: &mut impl Hits,
    classify: impl Fn(&[u32], &[u32], usize) -> Window,
) -> ScanCount {
    let (sw, sh) = (level.width, level.height);
    let stride = sw as usize + 1;
    let rows_cap = strip.sum.len().min(strip.sq.len()) / stride;
    let (sum, sq) = (&mut *strip.sum, &mut *strip.sq);
    sum[..stride].fill(0);
    sq[..stride].fill(0);
    // Table row j holds the integral through level row `first + j - 1`.
    let (mut first, mut filled, mut next) = (0u32, 1usize, 0u32);
    let step = level.step();
    let mut count = ScanCount::default();
    let mut y = 0;
    while y < sh - wh {
        while next < y + wh {
            if filled == rows_cap {
                // Slide: keep the rows from this window row on.
                let drop = (y - first) as usize;
                sum.copy_within(drop * stride..filled * stride, 0);
                sq.copy_within(drop * stride..filled * stride, 0);
                filled -= drop;
                first = y;
            }
            let row = &mut strip.row[..sw as usize];
            level_row(frame, level, &strip.taps[..sw as usize], next, row);
            let (above, here) =
                sum[(filled - 1) * stride..(filled + 1) * stride].split_at_mut(stride);
            let (above_sq, here_sq) =
                sq[(filled - 1) * stride..(filled + 1) * stride].split_at_mut(stride);
            let (mut s, mut q) = (0u32, 0u32);
            here[0] = above[0];
            here_sq[0] = above_sq[0];
            for (x, &p) in row.iter().enumerate() {
                let p = p as u32;
                s = s.wrapping_add(p);
                q = q.wrapping_add(p * p);
                here[x + 1] = above[x + 1].wrapping_add(s);
                here_sq[x + 1] = above_sq[x + 1].wrapping_add(q);
            }
            filled += 1;
            next += 1;
        }
        let row_base = (y - first) as usize * stride;
        let mut x = 0;
        while x < sw - ww {
            count.windows += 1;
            match classify(sum, sq, row_base + x as usize) {
                Window::Face => {
                    count.faces += 1;
                    hits.push(FaceBox::new(
                        level.to_frame(x),
                        level.to_frame(y),
                        level.window.0,
                        level.window.1,
                    ))
                }
                Window::Rejected { stage: 0 } => x += step,
                Window::Rejected { .. } | Window::Flat => {}
            }
            x += step;
        }
        y += step;
    }
    count
}

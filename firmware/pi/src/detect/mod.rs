//! Face detection with OpenCV's Haar cascades, in pure Rust, reading the cascade XML files
//! as OpenCV writes them. The algorithm follows `CascadeClassifier::detectMultiScale`: an
//! image pyramid, a 24x24 (or the cascade's) window evaluated with integral images and a
//! per-window variance normalisation, then `groupRectangles` with `minNeighbors`.

mod cascade;
mod group;
mod integral;

pub use cascade::{Cascade, CascadeError};
pub use group::group_rectangles;

use cascade::{Compiled, Window};
use integral::Integral;
use rayon::prelude::*;

/// An axis-aligned box in frame pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Rect {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub w: i32,
    /// Height.
    pub h: i32,
}

impl Rect {
    /// Intersection over union with another box.
    pub fn iou(&self, o: &Rect) -> f64 {
        let ix = (self.x + self.w).min(o.x + o.w) - self.x.max(o.x);
        let iy = (self.y + self.h).min(o.y + o.h) - self.y.max(o.y);
        if ix <= 0 || iy <= 0 {
            return 0.0;
        }
        let inter = (ix * iy) as f64;
        inter / ((self.w * self.h + o.w * o.h) as f64 - inter)
    }
}

/// `detectMultiScale` parameters, with OpenCV's meanings.
#[derive(Clone, Copy, Debug)]
pub struct DetectParams {
    /// Pyramid step (OpenCV `scaleFactor`), > 1.
    pub scale_factor: f64,
    /// Detections a group needs to be kept (OpenCV `minNeighbors`).
    pub min_neighbors: usize,
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
            scale_factor: 1.1,
            min_neighbors: 3,
            min_size: 30,
        }
    }
}

/// One pyramid level's buffers, kept from frame to frame.
#[derive(Default)]
struct Level {
    factor: f64,
    size: (u32, u32),
    window: (u32, u32),
    scaled: Vec<u8>,
    integral: Integral,
    compiled: Option<Compiled>,
    hits: Vec<Rect>,
    resizer: Resizer,
}

/// Runs the cascade over a gray frame (`width · height` bytes) at every pyramid scale.
/// Pyramid levels run in parallel (the Pi has 4 cores), each with its own buffers and the
/// cascade laid out for its row length, all reused between frames of one size: once warm,
/// a frame allocates nothing but the result.
pub struct Detector {
    cascade: Cascade,
    levels: Vec<Level>,
    hits: Vec<Rect>,
}

impl Detector {
    /// A detector for `cascade`.
    pub fn new(cascade: Cascade) -> Self {
        Self {
            cascade,
            levels: Vec::new(),
            hits: Vec::new(),
        }
    }

    /// Faces in the frame, grouped.
    pub fn detect(&mut self, gray: &[u8], width: u32, height: u32, p: &DetectParams) -> Vec<Rect> {
        let (ww, wh) = (self.cascade.width, self.cascade.height);
        // The levels this frame needs: OpenCV's pyramid, from the first window of at least
        // min_size to the last that fits.
        let mut n = 0;
        let mut factor = 1.0f64;
        loop {
            let window = (
                (ww as f64 * factor).round() as u32,
                (wh as f64 * factor).round() as u32,
            );
            let size = (
                (width as f64 / factor).round() as u32,
                (height as f64 / factor).round() as u32,
            );
            if size.0 <= ww || size.1 <= wh {
                break;
            }
            if window.0 >= p.min_size && window.1 >= p.min_size {
                if self.levels.len() == n {
                    self.levels.push(Level::default());
                }
                let lv = &mut self.levels[n];
                lv.factor = factor;
                lv.size = size;
                lv.window = window;
                n += 1;
            }
            factor *= p.scale_factor;
        }
        let cascade = &self.cascade;
        self.levels[..n].par_iter_mut().for_each(|lv| {
            let (sw, sh) = lv.size;
            lv.resizer
                .resize(gray, width, height, sw, sh, &mut lv.scaled);
            lv.integral.compute(&lv.scaled, sw, sh);
            if lv.compiled.as_ref().map(|c| c.stride()) != Some(lv.integral.stride) {
                lv.compiled = Some(cascade.compile(lv.integral.stride));
            }
            let Some(compiled) = lv.compiled.as_ref() else {
                return;
            };
            lv.hits.clear();
            // OpenCV's scan: every 2nd window on levels up to 2x, every window beyond, and
            // one more step past a window the first stage rejects (its neighbour will most
            // likely be rejected too). The windows OpenCV looks at, so the faces it finds.
            let step = if lv.factor > 2.0 { 1 } else { 2 };
            for y in (0..sh - wh).step_by(step as usize) {
                let mut x = 0;
                while x < sw - ww {
                    match cascade.classify(compiled, &lv.integral, x, y) {
                        Window::Face => lv.hits.push(Rect {
                            x: (x as f64 * lv.factor).round() as i32,
                            y: (y as f64 * lv.factor).round() as i32,
                            w: lv.window.0 as i32,
                            h: lv.window.1 as i32,
                        }),
                        Window::Rejected { stage: 0 } => x += step,
                        Window::Rejected { .. } | Window::Flat => {}
                    }
                    x += step;
                }
            }
        });
        self.hits.clear();
        for lv in &self.levels[..n] {
            self.hits.extend_from_slice(&lv.hits);
        }
        group_rectangles(&self.hits, p.min_neighbors, 0.2)
    }
}

/// A bilinear resizer (pixel centres aligned, as OpenCV's `INTER_LINEAR`; fixed point) that
/// keeps its column taps between calls for the same sizes, so
/// resizing video frames allocates nothing once warm.
#[derive(Default)]
pub struct Resizer {
    taps: Vec<(usize, usize, u32)>,
    sizes: (u32, u32),
}

impl Resizer {
    /// Resizes `src` (`w x h`) into `dst` (`dw x dh`).
    pub fn resize(&mut self, src: &[u8], w: u32, h: u32, dw: u32, dh: u32, dst: &mut Vec<u8>) {
        dst.clear();
        dst.resize((dw * dh) as usize, 0);
        if dw == w && dh == h {
            dst.copy_from_slice(src);
            return;
        }
        let (sx, sy) = (w as f64 / dw as f64, h as f64 / dh as f64);
        // Column taps once per pair of widths.
        if self.sizes != (w, dw) || self.taps.len() != dw as usize {
            self.sizes = (w, dw);
            self.taps.clear();
            self.taps.extend((0..dw).map(|x| {
                let fx = ((x as f64 + 0.5) * sx - 0.5).max(0.0);
                let x0 = (fx.floor() as u32).min(w - 1);
                let x1 = (x0 + 1).min(w - 1);
                (
                    x0 as usize,
                    x1 as usize,
                    ((fx - x0 as f64).min(1.0) * 256.0) as u32,
                )
            }));
        }
        let cols = &self.taps;
        for y in 0..dh {
            let fy = ((y as f64 + 0.5) * sy - 0.5).max(0.0);
            let y0 = (fy.floor() as u32).min(h - 1);
            let y1 = (y0 + 1).min(h - 1);
            let wy = ((fy - y0 as f64).min(1.0) * 256.0) as u32;
            let (r0, r1) = (
                &src[(y0 * w) as usize..][..w as usize],
                &src[(y1 * w) as usize..][..w as usize],
            );
            let out = &mut dst[(y * dw) as usize..][..dw as usize];
            for (o, &(x0, x1, wx)) in out.iter_mut().zip(cols) {
                let top = r0[x0] as u32 * (256 - wx) + r0[x1] as u32 * wx;
                let bot = r1[x0] as u32 * (256 - wx) + r1[x1] as u32 * wx;
                *o = ((top * (256 - wy) + bot * wy + (1 << 15)) >> 16) as u8;
            }
        }
    }
}

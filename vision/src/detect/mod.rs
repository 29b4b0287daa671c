//! Face detection with OpenCV's Haar cascades, in pure Rust, reading the cascade XML files
//! as OpenCV writes them. The algorithm follows `CascadeClassifier::detectMultiScale`: an
//! image pyramid, a 24x24 (or the cascade's) window evaluated with integral images and a
//! per-window variance normalisation, then `groupRectangles` with `minNeighbors`.

mod cascade;
mod group;
mod integral;

pub use cascade::{Cascade, CascadeError};
pub use group::group_rectangles;

use crate::resize::Resizer;
use cascade::{Compiled, Window};
use emoedge_core::preprocess::FaceBox;
use integral::Integral;
use rayon::prelude::*;

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
    hits: Vec<FaceBox>,
    resizer: Resizer,
}

/// Runs the cascade over a gray frame (`width · height` bytes) at every pyramid scale.
/// Pyramid levels run in parallel (the Pi has 4 cores), each with its own buffers and the
/// cascade laid out for its row length, all reused between frames of one size: once warm,
/// a frame allocates nothing but the result.
pub struct Detector {
    cascade: Cascade,
    levels: Vec<Level>,
    hits: Vec<FaceBox>,
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
    pub fn detect(
        &mut self,
        gray: &[u8],
        width: u32,
        height: u32,
        p: &DetectParams,
    ) -> Vec<FaceBox> {
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
                        Window::Face => lv.hits.push(FaceBox::new(
                            (x as f64 * lv.factor).round() as i32,
                            (y as f64 * lv.factor).round() as i32,
                            lv.window.0,
                            lv.window.1,
                        )),
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

//! Per frame: detect faces, crop each by the crop contract to 48x48 gray, classify, smooth over
//! time per tracked face (video), and report with per-stage timings.

use crate::detect::{DetectParams, Detector};
use crate::face::{Face, Labels};
use crate::frame::Frame;
use crate::resize::Resizer;
use crate::track::Tracker;
use anyhow::Result;
use emoedge_core::emotion::argmax;
use emoedge_core::preprocess::{CropContract, FaceBox, INPUT_LEN, crop_to_input};
use emoedge_runtime::{Classifier, Score};
use serde::Serialize;
use std::time::Instant;

/// Pipeline settings.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Detector parameters, in frame pixels.
    pub detect: DetectParams,
    /// Run the detector on a copy of the frame at most this wide (0: full size). Boxes are
    /// mapped back to full-size coordinates, and crops come from the full-size frame.
    pub detect_width: u32,
    /// How each detected box becomes the box its 48x48 crop is cut from.
    pub crop: CropContract,
    /// On video, run the detector on one frame in this many (1: every frame) and carry
    /// the tracked boxes over the frames between: detection is most of a frame's cost,
    /// and faces move little in a few frames. A face that enters is found at the next
    /// detection; `BENCHMARKS.md` has the recall this costs.
    pub detect_every: u32,
    /// With `detect_every` > 1: detect at once, instead of carrying boxes, when the frame
    /// has changed from the last detected one by more than this mean absolute difference
    /// in grey levels (0: never). Measured on an 80x60 thumbnail (~0.05 ms): a cut, a
    /// camera swing or a person stepping close makes the carried boxes stale, and waiting
    /// up to `detect_every` frames would label the wrong places.
    pub redetect_change: u8,
}

/// Side of the thumbnail scene changes are measured on.
const THUMB: (u32, u32) = (80, 60);

/// Milliseconds spent per stage.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Timings {
    /// Reading and decoding the frame.
    pub decode: f64,
    /// Face detection.
    pub detect: f64,
    /// Cropping and resizing faces.
    pub crop: f64,
    /// Classifying faces.
    pub infer: f64,
}

/// One line of output.
#[derive(Clone, Debug, Serialize)]
pub struct FrameReport {
    /// File path or stream name.
    pub source: String,
    /// Frame index within the source.
    pub frame: u64,
    /// Seconds since the run started.
    pub time: f64,
    /// Faces found.
    pub faces: Vec<Face>,
    /// Per-stage milliseconds.
    pub timings_ms: Timings,
}

/// The loaded pipeline; buffers are reused from frame to frame.
pub struct Pipeline {
    detector: Detector,
    classifier: Classifier,
    /// The classifier's class names, shared by the faces reported.
    labels: Labels,
    opts: Options,
    small: Vec<u8>,
    tracker: Tracker,
    start: Instant,
    crops: Vec<[u8; INPUT_LEN]>,
    scores: Vec<Score>,
    resizer: Resizer,
    /// Video frames since the last detection (`None` before the first).
    since_detect: Option<u32>,
    /// Thumbnails of the last detected frame and of the current one.
    thumb_ref: Vec<u8>,
    thumb: Vec<u8>,
    thumb_resizer: Resizer,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

impl Pipeline {
    /// A pipeline from its parts.
    pub fn new(detector: Detector, classifier: Classifier, opts: Options) -> Self {
        let labels = classifier.labels().iter().map(|l| l.to_string()).collect();
        Self {
            detector,
            classifier,
            labels,
            opts,
            small: Vec::new(),
            tracker: Tracker::default(),
            start: Instant::now(),
            crops: Vec::new(),
            scores: Vec::new(),
            resizer: Resizer::default(),
            since_detect: None,
            thumb_ref: Vec::new(),
            thumb: Vec::new(),
            thumb_resizer: Resizer::default(),
        }
    }

    /// The classifier, for classifying faces the detector did not find (the host's
    /// measurements compare the pipeline with direct classification of the same faces).
    pub fn classifier_mut(&mut self) -> &mut Classifier {
        &mut self.classifier
    }

    /// Mean absolute difference, in grey levels, between this frame's thumbnail (computed
    /// into `self.thumb`) and the last detected frame's.
    fn change(&mut self, f: &Frame) -> f64 {
        let (tw, th) = THUMB;
        self.thumb_resizer
            .resize(&f.gray, f.width, f.height, tw, th, &mut self.thumb);
        if self.thumb_ref.len() != self.thumb.len() {
            return f64::INFINITY;
        }
        let total: u64 = self
            .thumb
            .iter()
            .zip(&self.thumb_ref)
            .map(|(&a, &b)| a.abs_diff(b) as u64)
            .sum();
        total as f64 / self.thumb.len() as f64
    }

    /// Faces in the frame, in frame coordinates.
    fn detect(&mut self, f: &Frame) -> Result<Vec<FaceBox>> {
        let dw = self.opts.detect_width;
        if dw == 0 || f.width <= dw {
            return self
                .detector
                .detect(&f.gray, f.width, f.height, &self.opts.detect)
                .map_err(|e| anyhow::anyhow!("{}: {e}", f.source));
        }
        let s = dw as f64 / f.width as f64;
        let dh = ((f.height as f64 * s).round() as u32).max(1);
        self.resizer
            .resize(&f.gray, f.width, f.height, dw, dh, &mut self.small);
        let mut p = self.opts.detect;
        p.min_size = ((p.min_size as f64 * s).round() as u32).max(1);
        let boxes = self
            .detector
            .detect(&self.small, dw, dh, &p)
            .map_err(|e| anyhow::anyhow!("{}: {e}", f.source))?;
        Ok(boxes
            .into_iter()
            .map(|r| {
                FaceBox::new(
                    (r.x as f64 / s).round() as i32,
                    (r.y as f64 / s).round() as i32,
                    (r.w as f64 / s).round() as u32,
                    (r.h as f64 / s).round() as u32,
                )
            })
            .collect())
    }

    /// Processes one frame; `decode_ms` is what reading it cost.
    pub fn process(&mut self, f: &Frame, decode_ms: f64) -> Result<FrameReport> {
        let mut t = Timings {
            decode: decode_ms,
            ..Default::default()
        };
        let t0 = Instant::now();
        let every = self.opts.detect_every.max(1);
        let watch = f.video && every > 1 && self.opts.redetect_change > 0;
        // One thumbnail per watched frame: compared on frames that would carry, kept as the
        // reference on frames that detect.
        let changed = watch && self.change(f) > self.opts.redetect_change as f64;
        let carry = f.video && !changed && self.since_detect.is_some_and(|n| n + 1 < every);
        let boxes = if carry {
            self.since_detect = self.since_detect.map(|n| n + 1);
            self.tracker.boxes().collect()
        } else {
            if watch {
                std::mem::swap(&mut self.thumb, &mut self.thumb_ref);
            }
            self.since_detect = f.video.then_some(0);
            self.detect(f)?
        };
        t.detect = ms(t0);
        let frame = f.view()?;
        let t1 = Instant::now();
        self.crops.clear();
        for &r in &boxes {
            let fb = self.opts.crop.crop_box(r);
            let mut crop = [0u8; INPUT_LEN];
            crop_to_input(&frame, fb, &mut crop)
                .map_err(|e| anyhow::anyhow!("{}: crop {e:?}", f.source))?;
            self.crops.push(crop);
        }
        t.crop = ms(t1);
        let t2 = Instant::now();
        self.classifier.scores(&self.crops, &mut self.scores)?;
        t.infer = ms(t2);
        let mut faces = Vec::with_capacity(boxes.len());
        for (k, bbox) in boxes.into_iter().enumerate() {
            let score = &self.scores[k];
            let probs = self.classifier.probabilities(score);
            let (class, track) = if f.video {
                let (id, class) = self.tracker.follow(bbox, score);
                (class, Some(id))
            } else {
                (argmax(score).unwrap_or(0), None)
            };
            faces.push(Face {
                bbox,
                class,
                probs,
                track,
                labels: self.labels.clone(),
            });
        }
        if f.video {
            self.tracker.keep_seen();
        }
        Ok(FrameReport {
            source: f.source.clone(),
            frame: f.index,
            time: self.start.elapsed().as_secs_f64(),
            faces,
            timings_ms: t,
        })
    }
}

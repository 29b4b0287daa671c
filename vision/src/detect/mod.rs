//! Face detection with OpenCV's Haar cascades, in integers, without heap: the one detector
//! the Pi, the host's measurements and the microcontroller firmware run. The algorithm
//! follows `CascadeClassifier::detectMultiScale`: an image pyramid, the cascade's window
//! evaluated on integral images with a per-window variance normalisation, then
//! `groupRectangles` with `minNeighbors`.
//!
//! - [`blob`]: the cascade as checked fixed-point integers (converted from OpenCV's XML on
//!   the host, flashed beside the model on a board);
//! - [`scan`]: the pyramid levels and one level's window scan over a strip of integral rows;
//! - [`group`]: grouping raw windows into faces;
//! - [`detect_into`]: a whole frame, level after level, in caller-owned buffers (a
//!   microcontroller); [`Detector`] (`std`): the same functions, levels in parallel, in
//!   buffers it owns (the Pi and the host).
//!
//! Every step is integer arithmetic that does not depend on buffer sizes or on the order
//! levels run in, so a frame gives the same boxes on every device; only a raw-detection
//! buffer too small for a frame changes the result, and [`Detection::dropped`] says so.

pub mod blob;
#[cfg(feature = "std")]
mod cascade;
pub mod group;
pub mod scan;

pub use blob::{BlobError, CascadeBlob, Features};
#[cfg(feature = "std")]
pub use cascade::{Cascade, CascadeError};
pub use group::{Cluster, group_rectangles};
pub use scan::{
    BoundedHits, DetectError, DetectParams, Gray, Hits, Level, SCALE_ONE, ScanCount, Strip, levels,
    scale_from_ratio, scan_level,
};

/// What one frame's detection looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Detection {
    /// Pyramid levels scanned.
    pub levels: u32,
    /// Windows the cascade evaluated, all levels.
    pub windows: u32,
    /// Windows that passed every stage (before grouping).
    pub raw: u32,
    /// Raw windows that did not fit the raw-detection buffer (0 on the host): the frame's
    /// faces were grouped from the others.
    pub dropped: u32,
}

/// The buffers of one frame's detection, borrowed: static arrays on a microcontroller.
pub struct Workspace<'a> {
    /// Integral strip, row and taps: sized for the widest level (the frame's width) and
    /// at least `window height + 2` integral rows.
    pub strip: Strip<'a>,
    /// Raw detections of all levels.
    pub raw: BoundedHits<'a>,
    /// Grouping state: one entry per raw detection the buffer holds.
    pub clusters: &'a mut [Cluster],
}

/// Detects the faces of `frame`, level after level, pushing them to `out`.
pub fn detect_into(
    cascade: &CascadeBlob,
    frame: &Gray,
    p: &DetectParams,
    ws: &mut Workspace,
    out: &mut impl Hits,
) -> Result<Detection, DetectError> {
    if p.scale <= SCALE_ONE {
        return Err(DetectError::Scale { scale: p.scale });
    }
    ws.raw.clear();
    let mut d = Detection::default();
    for level in levels(
        frame.width(),
        frame.height(),
        (cascade.width(), cascade.height()),
        p,
    ) {
        let c = scan_level(cascade, frame, &level, &mut ws.strip, &mut ws.raw)?;
        d.levels += 1;
        d.windows += c.windows;
        d.raw += c.faces;
    }
    d.dropped = ws.raw.dropped();
    group_rectangles(ws.raw.as_slice(), p.min_neighbors, ws.clusters, out);
    Ok(d)
}

#[cfg(feature = "std")]
pub use host::Detector;

#[cfg(feature = "std")]
mod host {
    use super::*;
    use emoedge_core::preprocess::FaceBox;
    use rayon::prelude::*;

    /// One level's buffers, kept from frame to frame.
    #[derive(Default)]
    struct LevelBuffers {
        level: Level,
        sum: Vec<u32>,
        sq: Vec<u32>,
        row: Vec<u8>,
        taps: Vec<u32>,
        hits: Vec<FaceBox>,
        count: ScanCount,
    }

    /// The detector with buffers it owns: levels run in parallel (the Pi has 4 cores), each
    /// over an integral strip as tall as the level, so nothing slides; the same
    /// [`scan_level`] and [`group_rectangles`] as [`detect_into`], so the same boxes.
    /// Once warm, a frame allocates nothing but the result.
    pub struct Detector {
        cascade: Cascade,
        levels: Vec<LevelBuffers>,
        hits: Vec<FaceBox>,
        clusters: Vec<Cluster>,
        last: Detection,
    }

    impl Detector {
        /// A detector for `cascade`.
        pub fn new(cascade: Cascade) -> Self {
            Self {
                cascade,
                levels: Vec::new(),
                hits: Vec::new(),
                clusters: Vec::new(),
                last: Detection::default(),
            }
        }

        /// The cascade it runs.
        pub fn cascade(&self) -> &Cascade {
            &self.cascade
        }

        /// What the last frame's detection looked at.
        pub fn last(&self) -> Detection {
            self.last
        }

        /// Faces in the frame, grouped; an error when `gray` is not `width · height` bytes
        /// or the pyramid step is not above 1.
        pub fn detect(
            &mut self,
            gray: &[u8],
            width: u32,
            height: u32,
            p: &DetectParams,
        ) -> Result<Vec<FaceBox>, DetectError> {
            let frame = Gray::new(gray, width, height)?;
            if p.scale <= SCALE_ONE {
                return Err(DetectError::Scale { scale: p.scale });
            }
            let blob = self.cascade.blob();
            let window = (blob.width(), blob.height());
            let mut n = 0;
            for level in levels(width, height, window, p) {
                if self.levels.len() == n {
                    self.levels.push(LevelBuffers::default());
                }
                self.levels[n].level = level;
                n += 1;
            }
            self.levels[..n].par_iter_mut().try_for_each(|b| {
                let level = &b.level;
                let len = level.table_len(level.height as usize + 1);
                b.sum.resize(len, 0);
                b.sq.resize(len, 0);
                b.row.resize(level.width as usize, 0);
                b.taps.resize(level.width as usize, 0);
                b.hits.clear();
                let mut strip = Strip {
                    sum: &mut b.sum,
                    sq: &mut b.sq,
                    row: &mut b.row,
                    taps: &mut b.taps,
                };
                b.count = scan_level(&blob, &frame, &b.level, &mut strip, &mut b.hits)?;
                Ok::<_, DetectError>(())
            })?;
            self.hits.clear();
            let mut d = Detection {
                levels: n as u32,
                ..Detection::default()
            };
            for b in &self.levels[..n] {
                self.hits.extend_from_slice(&b.hits);
                d.windows += b.count.windows;
                d.raw += b.count.faces;
            }
            if self.clusters.len() < self.hits.len() {
                self.clusters.resize(self.hits.len(), Cluster::default());
            }
            // Only a grouping of over MAX_RAW windows leaves some out.
            d.dropped = self.hits.len().saturating_sub(group::MAX_RAW) as u32;
            let mut out = Vec::new();
            group_rectangles(&self.hits, p.min_neighbors, &mut self.clusters, &mut out);
            self.last = d;
            Ok(out)
        }
    }
}

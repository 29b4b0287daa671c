//! The whole job on the board: find the faces in each camera frame with the face cascade
//! flashed beside the model, crop each by the crop contract, classify it, and report.
//!
//! The detector is `emoedge_vision::detect`, the one the Pi and the host run, in buffers
//! the board sets aside once ([`detect_buffers!`]): a strip of integral rows as wide as the
//! board's largest camera frame ([`Board::camera_max`]), so detection needs kilobytes, not
//! a frame-sized table. The same frame gives the same boxes, crops and logits as on the Pi.
//!
//! Report, per frame, then a summary:
//!
//! ```text
//! frame 5 faces 1 more 0 windows 7711 raw 8 dropped 0 detect 38669661 classify 39025190 instructions
//! face 5 0 box 64 45 41 41 label angry logits [41, -76, -35, -65, -67, 30, -81]
//! emoedge-mcu: 20 camera frames 160x120, 14 faces, 39351248 instructions detection and 39025310 per face (means)
//! ```

use crate::app::{Console, Failure, Ran, timed_run};
use emoedge_camera::{Scene, SceneSource};
use emoedge_core::Engine;
use emoedge_core::Model;
use emoedge_core::camera_frames::CameraFrames;
use emoedge_core::emotion::argmax;
use emoedge_core::labels::name_of;
use emoedge_core::link::CostUnit;
use emoedge_core::model::MAX_LAYERS;
pub use emoedge_core::preprocess::FaceBox;
use emoedge_core::preprocess::{CropContract, Frame, INPUT_LEN, PixelFormat, crop_to_input};
pub use emoedge_vision::detect::Cluster;
use emoedge_vision::detect::{
    BoundedHits, CascadeBlob, DetectParams, Gray, Strip, Workspace, detect_into,
};

/// Integral rows in the detector's strip: at least the cascade window's height + 2 (22 for
/// the shipped 20x20 cascade, 26 for OpenCV's 24x24 `default`); more rows slide less often.
pub const STRIP_ROWS: usize = 28;
/// Raw detections (windows that passed every stage) one frame keeps for grouping; more are
/// counted as dropped in the frame's line and the faces are grouped from the others.
pub const MAX_RAW: usize = 192;
/// Faces one frame reports; more are counted in the frame's line (`more N`).
pub const MAX_FACES: usize = 8;

/// The detector's buffers on a board, set aside once by [`detect_buffers!`].
pub struct DetectBuffers {
    /// Integral of pixels: `(camera width + 1) · STRIP_ROWS`.
    pub sum: &'static mut [u32],
    /// Integral of squared pixels, as long.
    pub sq: &'static mut [u32],
    /// One resized row: camera width.
    pub row: &'static mut [u8],
    /// Bilinear column taps: camera width.
    pub taps: &'static mut [u32],
    /// Raw detections.
    pub raw: &'static mut [FaceBox],
    /// Grouping state, one per raw detection.
    pub clusters: &'static mut [Cluster],
}

impl DetectBuffers {
    /// Bytes the buffers take.
    pub fn bytes(&self) -> usize {
        core::mem::size_of_val(self.sum)
            + core::mem::size_of_val(self.sq)
            + core::mem::size_of_val(self.taps)
            + self.row.len()
            + core::mem::size_of_val(self.raw)
            + core::mem::size_of_val(self.clusters)
    }
}

/// The detector's buffers for `$board` (a `const` [`Board`](crate::Board)), sized by its
/// `camera_max`, as statics. Expand it once, in the board's main.
#[macro_export]
macro_rules! detect_buffers {
    ($board:expr) => {{
        const WIDTH: usize = $board.camera_max.0 as usize;
        const TABLE: usize = (WIDTH + 1) * $crate::pipeline::STRIP_ROWS;
        static mut SUM: [u32; TABLE] = [0; TABLE];
        static mut SQ: [u32; TABLE] = [0; TABLE];
        static mut ROW: [u8; WIDTH] = [0; WIDTH];
        static mut TAPS: [u32; WIDTH] = [0; WIDTH];
        static mut RAW: [$crate::pipeline::FaceBox; $crate::pipeline::MAX_RAW] =
            [$crate::pipeline::FaceBox::new(0, 0, 0, 0); $crate::pipeline::MAX_RAW];
        static mut CLUSTERS: [$crate::pipeline::Cluster; $crate::pipeline::MAX_RAW] =
            [$crate::pipeline::Cluster::EMPTY; $crate::pipeline::MAX_RAW];
        // SAFETY: the board's main expands this once and runs once, so each static is
        // borrowed once, for the rest of the program.
        unsafe {
            $crate::pipeline::DetectBuffers {
                sum: &mut *core::ptr::addr_of_mut!(SUM),
                sq: &mut *core::ptr::addr_of_mut!(SQ),
                row: &mut *core::ptr::addr_of_mut!(ROW),
                taps: &mut *core::ptr::addr_of_mut!(TAPS),
                raw: &mut *core::ptr::addr_of_mut!(RAW),
                clusters: &mut *core::ptr::addr_of_mut!(CLUSTERS),
            }
        }
    }};
}

/// The face cascade flashed in its region, checked.
pub fn load_cascade(region: &'static [u8]) -> Result<CascadeBlob<'static>, Failure> {
    CascadeBlob::parse(region).map_err(Failure::Cascade)
}

/// Camera frames flashed for a board without a camera, read in place: the same
/// [`SceneSource`] as the camera driver's (`emoedge_camera::arducam::ArduCamScenes`).
pub struct FlashScenes {
    frames: CameraFrames<'static>,
    next: usize,
}

impl FlashScenes {
    /// The frames of a camera-frames region, from the first.
    pub fn new(frames: CameraFrames<'static>) -> Self {
        Self { frames, next: 0 }
    }
}

impl SceneSource for FlashScenes {
    type Error = core::convert::Infallible;

    fn next_scene(&mut self) -> Result<Option<Scene<'_>>, Self::Error> {
        let Some(pixels) = self.frames.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        Ok(Some(Scene {
            pixels,
            width: self.frames.width(),
            height: self.frames.height(),
        }))
    }
}

/// The `cascade ok` line of the report.
pub fn report_cascade(out: &mut impl Console, cascade: &CascadeBlob, bufs: &DetectBuffers) {
    let _ = writeln!(
        out,
        "emoedge-mcu: cascade ok: {}x{} window, {} stages, {} bytes, crc {:#010x}; detector buffers {} bytes",
        cascade.width(),
        cascade.height(),
        cascade.stages(),
        cascade.len(),
        cascade.crc(),
        bufs.bytes()
    );
}

/// Runs the whole job on every frame `source` gives, reporting each frame and each face on
/// `out` with costs from `clock`; stops quietly when a host speaks. A camera never runs out
/// of frames; flashed frames end with the summary line.
#[allow(clippy::too_many_arguments)]
pub fn run_scenes<F: SceneSource>(
    out: &mut impl Console,
    clock: &mut impl FnMut() -> u64,
    unit: CostUnit,
    model: &Model,
    cascade: &CascadeBlob,
    source: &mut F,
    bufs: &mut DetectBuffers,
    arena: &mut [i8],
) -> Result<Ran, Failure> {
    report_cascade(out, cascade, bufs);
    let engine = Engine::new(model);
    let params = DetectParams::default();
    let contract = CropContract::FER2013;
    let mut layer_units = [0u64; MAX_LAYERS];
    let (mut detect_total, mut classify_total, mut faces_total) = (0u64, 0u64, 0u64);
    let mut size = (0, 0);
    let mut i = 0;
    loop {
        if out.host_spoke() {
            return Ok(Ran::HostSpoke);
        }
        let scene = match source.next_scene() {
            Ok(Some(scene)) => scene,
            Ok(None) => break,
            Err(_) => return Err(Failure::Camera { frame: i }),
        };
        let (pixels, width, height) = (scene.pixels, scene.width, scene.height);
        size = (width, height);
        if width as usize > bufs.row.len() {
            return Err(Failure::FrameTooWide {
                width,
                max: bufs.row.len() as u32,
            });
        }
        let gray =
            Gray::new(pixels, width, height).map_err(|e| Failure::Detect { frame: i, error: e })?;
        let mut ws = Workspace {
            strip: Strip {
                sum: bufs.sum,
                sq: bufs.sq,
                row: bufs.row,
                taps: bufs.taps,
            },
            raw: BoundedHits::new(bufs.raw),
            clusters: bufs.clusters,
        };
        let mut found = [FaceBox::new(0, 0, 0, 0); MAX_FACES];
        let mut faces = BoundedHits::new(&mut found);
        let start = clock();
        let d = detect_into(cascade, &gray, &params, &mut ws, &mut faces)
            .map_err(|error| Failure::Detect { frame: i, error })?;
        let detect_units = clock() - start;
        detect_total += detect_units;
        let frame = Frame::new(pixels, width, height, PixelFormat::Gray8)
            .map_err(|_| Failure::Crop { frame: i })?;
        // Classify first, report after: the frame line carries the classification cost.
        let mut logits_of = [[0i8; emoedge_core::MAX_CLASSES]; MAX_FACES];
        let mut classify_units = 0u64;
        for (k, face) in faces.as_slice().iter().enumerate() {
            let mut crop = [0u8; INPUT_LEN];
            crop_to_input(&frame, contract.crop_box(*face), &mut crop)
                .map_err(|_| Failure::Crop { frame: i })?;
            let (logits, units) = timed_run(&engine, &crop, arena, clock, &mut layer_units)
                .map_err(|error| Failure::Engine { frame: i, error })?;
            classify_units += units;
            logits_of[k][..logits.len()].copy_from_slice(logits);
        }
        classify_total += classify_units;
        let n = faces.as_slice().len();
        faces_total += n as u64;
        let _ = writeln!(
            out,
            "frame {} faces {} more {} windows {} raw {} dropped {} detect {} classify {} {}",
            i,
            n,
            faces.dropped(),
            d.windows,
            d.raw,
            d.dropped,
            detect_units,
            classify_units,
            unit.plural()
        );
        let classes = model.labels().len();
        for (k, face) in faces.as_slice().iter().enumerate() {
            let logits = &logits_of[k][..classes];
            let _ = writeln!(
                out,
                "face {} {} box {} {} {} {} label {} logits {:?}",
                i,
                k,
                face.x,
                face.y,
                face.w,
                face.h,
                name_of(model.labels(), argmax(logits).unwrap_or(0)),
                logits
            );
        }
        i += 1;
    }
    let n = i.max(1) as u64;
    let _ = writeln!(
        out,
        "emoedge-mcu: {} camera frames {}x{}, {} faces, {} {} detection and {} per face (means)",
        i,
        size.0,
        size.1,
        faces_total,
        detect_total / n,
        unit.plural(),
        classify_total / faces_total.max(1)
    );
    Ok(Ran::AllFrames)
}

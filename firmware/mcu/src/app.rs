//! What the firmware does on every board: checks the model blob flashed into its region,
//! runs the engine on each test frame of the frames region, and reports one line per frame
//! (frame number, label, int8 logits), the cost of each layer and the whole inference, over
//! the board's console.
//!
//! Costs come from the board's clock ([`CostUnit`]): a running count of instructions (QEMU) or
//! cycles (rp2040js, silicon), read before and after each layer.

use core::fmt::Write;
use cortex_m::peripheral::{SYST, syst::SystClkSource};
use emoedge_camera::{FrameInfo, FrameSource};
use emoedge_core::emotion::argmax;
use emoedge_core::labels::name_of;
use emoedge_core::link::{BlobId, CostUnit};
use emoedge_core::model::{HEADER_LEN, Header, MAX_LAYERS};
use emoedge_core::preprocess::{INPUT_LEN, quantize_input};
use emoedge_core::test_frames::TestFrames;
use emoedge_core::{Engine, Model};

/// A running count from SysTick on the core clock, for boards with nothing better: SysTick
/// counts down 24 bits, so each reading adds the ticks since the last one, and readings must
/// come less than 2^24 ticks apart (every layer on QEMU's boards, where a tick is 40 or 50
/// instructions). Each tick is worth `num / den` units.
pub struct SysTickCount {
    last: u32,
    ticks: u64,
    num: u64,
    den: u64,
}

impl SysTickCount {
    /// Starts SysTick free-running on the core clock; a tick is worth `num / den` units.
    pub fn start(syst: &mut SYST, num: u32, den: u32) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(0x00ff_ffff);
        syst.clear_current();
        syst.enable_counter();
        Self {
            last: SYST::get_current(),
            ticks: 0,
            num: num as u64,
            den: den.max(1) as u64,
        }
    }

    /// Units counted since [`SysTickCount::start`].
    pub fn now(&mut self) -> u64 {
        let now = SYST::get_current();
        self.ticks += (self.last.wrapping_sub(now) & 0x00ff_ffff) as u64;
        self.last = now;
        self.ticks * self.num / self.den
    }
}

/// Why the run stopped early. Every case is reported as one `emoedge-mcu: error:` line.
#[derive(Clone, Copy, Debug)]
pub enum Failure {
    /// No valid header at the blob region's start (erased flash, another image, truncated).
    NoBlob(emoedge_core::ModelError),
    /// The header promises more bytes than the region holds.
    BlobTooLarge { len: usize, region: usize },
    /// The blob parsed as a header but its body was refused (CRC, layers, bounds).
    Rejected(emoedge_core::ModelError),
    /// The model needs more working memory than the firmware has.
    Arena { needed: usize, have: usize },
    /// The frames region holds no valid test frames.
    Frames(emoedge_core::test_frames::TestFramesError),
    /// The engine refused a frame (cannot happen for a parsed model and a right-sized arena).
    Engine {
        frame: usize,
        error: emoedge_core::EngineError,
    },
    /// The frames region holds camera frames but the cascade region no usable cascade.
    Cascade(emoedge_vision::detect::BlobError),
    /// The frames region starts like camera frames but does not hold them.
    CameraFrames(emoedge_core::camera_frames::CameraFramesError),
    /// Camera frames wider than the detector's buffers (the board's `camera_max`).
    FrameTooWide { width: u32, max: u32 },
    /// The detector refused a frame.
    Detect {
        frame: usize,
        error: emoedge_vision::detect::DetectError,
    },
    /// A face's crop was empty (cannot happen for a box the detector found in the frame).
    Crop { frame: usize },
    /// The camera gave no frame.
    Camera { frame: usize },
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Failure::NoBlob(e) => write!(f, "no valid model blob in its flash region: {e}"),
            Failure::BlobTooLarge { len, region } => {
                write!(
                    f,
                    "model blob of {len} bytes exceeds its {region} byte region"
                )
            }
            Failure::Rejected(e) => write!(f, "model blob rejected: {e}"),
            Failure::Arena { needed, have } => {
                write!(f, "model needs {needed} arena bytes, firmware has {have}")
            }
            Failure::Frames(e) => write!(f, "test frames: {e}"),
            Failure::Engine { frame, error } => write!(f, "frame {frame}: {error}"),
            Failure::Cascade(e) => write!(f, "no usable face cascade in its flash region: {e}"),
            Failure::CameraFrames(e) => write!(f, "camera frames: {e}"),
            Failure::FrameTooWide { width, max } => write!(
                f,
                "camera frames {width} pixels wide; this board's detector buffers take {max}"
            ),
            Failure::Detect { frame, error } => write!(f, "frame {frame}: {error}"),
            Failure::Crop { frame } => write!(f, "frame {frame}: a face's crop is empty"),
            Failure::Camera { frame } => write!(f, "frame {frame}: the camera gave no frame"),
        }
    }
}

/// Where the report goes, and whether a host has started speaking to the board (which
/// stops the stand-alone run so that the board can answer it: see [`crate::link`]).
pub trait Console: Write {
    /// Whether a host has sent something; consoles no host can reach say no.
    fn host_spoke(&mut self) -> bool {
        false
    }
}

/// How the stand-alone run over the flashed frames ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ran {
    /// Every frame was classified and the summary printed.
    AllFrames,
    /// A host spoke before the last frame; the run stopped quietly, so that nothing but
    /// the link's frames goes out from here on.
    HostSpoke,
}

/// A blob the firmware can run: the model parsed from its flash region, and what tells it
/// apart from other blobs for a host ([`BlobId`]).
pub struct Loaded {
    /// The parsed model, borrowing the flash region.
    pub model: Model<'static>,
    /// Its length, body CRC and weights hash.
    pub id: BlobId,
}

/// Parses the model blob at the start of `blob_region` and checks that it fits an arena of
/// `arena_len` bytes.
pub fn load(blob_region: &'static [u8], arena_len: usize) -> Result<Loaded, Failure> {
    // The header first, so that a missing or truncated blob is named as such.
    let header = Header::parse(blob_region.get(..HEADER_LEN).unwrap_or(blob_region))
        .map_err(Failure::NoBlob)?;
    let blob = blob_region
        .get(..header.blob_len())
        .ok_or(Failure::BlobTooLarge {
            len: header.blob_len(),
            region: blob_region.len(),
        })?;
    let model = Model::parse(blob).map_err(Failure::Rejected)?;
    if model.arena_len() > arena_len {
        return Err(Failure::Arena {
            needed: model.arena_len(),
            have: arena_len,
        });
    }
    let id = BlobId::new(&header, &model);
    Ok(Loaded { model, id })
}

/// The `model ok` and `classes` lines of the report.
pub fn report_model(out: &mut impl Write, loaded: &Loaded) {
    let model = &loaded.model;
    let _ = writeln!(
        out,
        "emoedge-mcu: model ok: {} bytes, {} layers, {} weight bytes, {} MACs, arena {} bytes",
        loaded.id.len,
        model.steps().len(),
        model.weight_bytes(),
        model.macs(),
        model.arena_len()
    );
    let _ = write!(out, "emoedge-mcu: classes");
    for label in model.labels() {
        let _ = write!(out, " {label}");
    }
    let _ = writeln!(out);
}

/// Classifies every frame of `frames_region` with `model` and reports each, then the cost
/// per layer; stops quietly when a host speaks ([`Ran::HostSpoke`]).
pub fn run_frames(
    out: &mut impl Console,
    clock: &mut impl FnMut() -> u64,
    unit: CostUnit,
    model: &Model,
    frames_region: &'static [u8],
    arena: &mut [i8],
) -> Result<Ran, Failure> {
    let frames = TestFrames::parse(frames_region).map_err(Failure::Frames)?;
    let mut frames = FlashFrames { frames, next: 0 };
    let engine = Engine::new(model);
    let (mut right, mut known) = (0usize, 0usize);
    let mut layer_units = [0u64; MAX_LAYERS];
    let mut total_units = 0u64;
    let mut gray = [0u8; INPUT_LEN];
    let mut count = 0;
    while let Ok(Some(info)) = frames.next_frame(&mut gray) {
        if out.host_spoke() {
            return Ok(Ran::HostSpoke);
        }
        let i = count;
        count += 1;
        let (logits, units) = timed_run(&engine, &gray, arena, clock, &mut layer_units)
            .map_err(|error| Failure::Engine { frame: i, error })?;
        total_units += units;
        let label = argmax(logits).unwrap_or(0);
        if let Some(truth) = info.label {
            known += 1;
            right += (truth as usize == label) as usize;
        }
        let _ = writeln!(
            out,
            "frame {} label {} logits {:?}",
            i,
            name_of(model.labels(), label),
            logits
        );
    }
    let n = count.max(1) as u64;
    for (i, s) in model.steps().iter().enumerate() {
        let units = layer_units[i] / n;
        let _ = writeln!(
            out,
            "layer {} {} macs {} {} {} ({}.{:02} MAC/{})",
            i,
            s.step.op_name(),
            s.macs,
            unit.plural(),
            units,
            s.macs / units.max(1),
            (s.macs * 100 / units.max(1)) % 100,
            unit.short(),
        );
    }
    let _ = writeln!(
        out,
        "emoedge-mcu: {} frames, {}/{} right, {} {} per inference",
        count,
        right,
        known,
        total_units / n,
        unit.plural()
    );
    Ok(Ran::AllFrames)
}

/// Runs `engine` on the gray face `gray`, timing it with `clock`: returns the logits and
/// the inference's cost, and adds each layer's cost to `layer_units` (one slot per layer).
pub fn timed_run<'a>(
    engine: &Engine,
    gray: &[u8; INPUT_LEN],
    arena: &'a mut [i8],
    clock: &mut impl FnMut() -> u64,
    layer_units: &mut [u64],
) -> Result<(&'a [i8], u64), emoedge_core::EngineError> {
    let mut x = [0i8; INPUT_LEN];
    quantize_input(gray, &mut x);
    let start = clock();
    let mut last = start;
    let logits = engine.run_observed(&x, arena, |layer| {
        let now = clock();
        if let Some(slot) = layer_units.get_mut(layer) {
            *slot += now - last;
        }
        last = now;
    })?;
    Ok((logits, last - start))
}

/// Writes the verdict line of a run on a board's UART: `emoedge-mcu: done`, or
/// `emoedge-mcu: error: …` naming the failure. The emulator runners stop at either.
pub fn report_verdict(out: &mut impl Write, result: Result<Ran, Failure>) {
    let _ = match result {
        Ok(Ran::AllFrames) => writeln!(out, "emoedge-mcu: done"),
        Ok(Ran::HostSpoke) => Ok(()),
        Err(e) => writeln!(out, "emoedge-mcu: error: {e}"),
    };
}

/// Test frames flashed into their own region ([`emoedge_core::test_frames`]). The camera
/// driver of `emoedge-camera` implements the same [`FrameSource`], so a board with a camera
/// runs the same loop.
struct FlashFrames {
    frames: TestFrames<'static>,
    next: usize,
}

impl FrameSource for FlashFrames {
    type Error = core::convert::Infallible;

    fn next_frame(
        &mut self,
        out: &mut [u8; INPUT_LEN],
    ) -> Result<Option<FrameInfo>, core::convert::Infallible> {
        let Some((label, pixels)) = self.frames.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        out.copy_from_slice(pixels);
        Ok(Some(FrameInfo { label }))
    }
}

//! Every board's main after its set-up: the engine's arena, the blob, frames and cascade
//! regions of the board's memory map, the run (test faces, or the whole job on camera
//! frames) and its verdict; and the fault handlers that report on
//! the board's console ([`fault_handlers!`]).

use crate::app::{self, Console, Failure, Loaded, Ran};
use crate::link::{self, Port};
use crate::pipeline::{self, DetectBuffers};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};
use embedded_hal_nb::serial;
use emoedge_boards::Board;
use emoedge_core::camera_frames::{self, CameraFrames};
use emoedge_core::link::{CostUnit, ModelState};

/// The engine's working memory on every board: the shipped model needs 61,060 bytes
/// (activations and kernel scratch, `Model::arena_len`); the smallest board has 128 KiB,
/// which also holds the face detector's buffers.
pub const ARENA_LEN: usize = 64 * 1024;

static mut ARENA: [i8; ARENA_LEN] = [0; ARENA_LEN];
static ARENA_TAKEN: AtomicBool = AtomicBool::new(false);

unsafe extern "C" {
    /// Start of the blob region (`memory.x`, from [`Board::memory_x`]).
    static _model_blob: u8;
    /// Start of the frames region.
    static _frames: u8;
    /// Start of the face cascade region.
    static _cascade: u8;
}

/// The model blob, frames and cascade regions of `board`'s flash, as its `memory.x` places
/// them.
fn regions(board: &Board) -> (&'static [u8], &'static [u8], &'static [u8]) {
    // SAFETY: the firmware's memory.x is `board.memory_x()` (each board's build script
    // writes it from the same constant), which puts `_model_blob`, `_frames` and `_cascade`
    // at the starts of these regions, inside mapped flash and outside the firmware's code;
    // nothing writes them while the firmware runs.
    unsafe {
        (
            crate::flash_region(&raw const _model_blob, board.blob.len as usize),
            crate::flash_region(&raw const _frames, board.frames.len as usize),
            crate::flash_region(&raw const _cascade, board.cascade.len as usize),
        )
    }
}

/// The stand-alone run over the frames region: the whole job when it holds camera frames
/// (which needs the cascade), the model alone on test faces otherwise.
#[allow(clippy::too_many_arguments)]
fn run_region(
    out: &mut impl Console,
    clock: &mut impl FnMut() -> u64,
    unit: CostUnit,
    loaded: &Loaded,
    frames: &'static [u8],
    cascade: &'static [u8],
    bufs: &mut DetectBuffers,
    arena: &mut [i8],
) -> Result<Ran, Failure> {
    if !frames.starts_with(&camera_frames::MAGIC) {
        return app::run_frames(out, clock, unit, &loaded.model, frames, arena);
    }
    let frames = CameraFrames::parse(frames).map_err(Failure::CameraFrames)?;
    let cascade = pipeline::load_cascade(cascade)?;
    let mut source = pipeline::FlashScenes::new(frames);
    pipeline::run_scenes(
        out,
        clock,
        unit,
        &loaded.model,
        &cascade,
        &mut source,
        bufs,
        arena,
    )
}

/// The engine's arena, handed out once: main runs once, before any interrupt could ask.
fn take_arena() -> Result<&'static mut [i8; ARENA_LEN], Failure> {
    // Load and store, not swap: Armv6-M (the Pico) has no atomic read-modify-write.
    if ARENA_TAKEN.load(Ordering::Relaxed) {
        return Err(Failure::Arena {
            needed: ARENA_LEN,
            have: 0,
        });
    }
    ARENA_TAKEN.store(true, Ordering::Relaxed);
    // SAFETY: the flag above lets this reference be taken once.
    Ok(unsafe { &mut *core::ptr::addr_of_mut!(ARENA) })
}

/// Runs the model flashed on `board` over its frames region (test faces, or camera frames
/// through the face pipeline with `bufs`), reporting on `console` with costs from `clock`.
/// Call it once, from the board's main.
pub fn run(
    console: &mut impl Console,
    clock: &mut impl FnMut() -> u64,
    unit: CostUnit,
    board: &Board,
    bufs: &mut DetectBuffers,
) -> Result<Ran, Failure> {
    let arena = take_arena()?;
    let (blob, frames, cascade) = regions(board);
    let loaded = app::load(blob, arena.len())?;
    app::report_model(console, &loaded);
    run_region(console, clock, unit, &loaded, frames, cascade, bufs, arena)
}

/// A board's whole life on its serial port: the stand-alone report over the flashed test
/// frames and its verdict line (cut short, without a verdict, as soon as a host speaks),
/// then the host link ([`link::serve`]) for as long as the board runs. A board without a
/// usable blob still answers the host, naming why in its hello. Call it once, from the
/// board's main.
pub fn run_and_serve<S: serial::Read<u8> + serial::Write<u8>>(
    serial: S,
    clock: &mut impl FnMut() -> u64,
    unit: CostUnit,
    board: &Board,
    bufs: &mut DetectBuffers,
) -> ! {
    let mut port = Port::new(serial);
    let arena = match take_arena() {
        Ok(a) => a,
        Err(e) => {
            app::report_verdict(&mut port, Err(e));
            crate::halt()
        }
    };
    let (blob, frames, cascade) = regions(board);
    let loaded = app::load(blob, arena.len());
    let result = match &loaded {
        Ok(l) => {
            app::report_model(&mut port, l);
            run_region(&mut port, clock, unit, l, frames, cascade, bufs, arena)
        }
        Err(e) => Err(*e),
    };
    // The reason a blob was refused, kept for the hello.
    let mut refused = heapless::String::<160>::new();
    if let Err(e) = &loaded {
        let _ = write!(refused, "{e}");
    }
    app::report_verdict(&mut port, result);
    let state = match &loaded {
        Ok(l) => ModelState::Ready(l.id),
        Err(_) => ModelState::Refused(&refused),
    };
    let hello = link::hello(board, unit, arena.len(), state);
    let model = loaded.as_ref().ok().map(|l| &l.model);
    link::serve(&mut port, clock, &hello, model, arena)
}

/// The hard-fault and panic handlers of a board without semihosting: each writes one
/// `emoedge-mcu: error: …` line through `$console` (a unit struct implementing
/// [`core::fmt::Write`] that reaches the UART's registers directly, since the HAL's handle
/// is out of reach there) and halts, so that the emulators' runners stop at the verdict.
#[macro_export]
macro_rules! fault_handlers {
    ($console:expr) => {
        #[cortex_m_rt::exception]
        unsafe fn HardFault(ef: &cortex_m_rt::ExceptionFrame) -> ! {
            let _ = core::fmt::Write::write_fmt(
                &mut $console,
                format_args!("emoedge-mcu: error: hard fault at pc {:#010x}\n", ef.pc()),
            );
            $crate::halt()
        }

        #[panic_handler]
        fn panic(info: &core::panic::PanicInfo) -> ! {
            let _ = core::fmt::Write::write_fmt(
                &mut $console,
                format_args!("emoedge-mcu: error: panic: {info}\n"),
            );
            $crate::halt()
        }
    };
}

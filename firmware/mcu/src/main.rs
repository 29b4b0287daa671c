//! emoedge-mcu: runs the `emoedge-core` int8 engine on a Cortex-M, on a model blob flashed
//! separately from the firmware, over a batch of 48x48 frames from a second flash region.
//! Results and per-layer costs go out over semihosting.
//!
//! Flash layout (`memory/`): on MPS2 AN386/AN385 (Cortex-M4F, M0+ code) firmware at 0x0,
//! model blob at 0x00080000, frames at 0x00180000; on AN505 (Cortex-M33) the same offsets
//! from 0x10000000. Frames region: the test-frames format of `emoedge_core::test_frames`.
//!
//! Timing: QEMU has no cycle model; run with `-icount shift=0` and SysTick (core clock,
//! 25 MHz on AN386/AN385, 20 MHz on AN505) advances once per 40 (50) retired instructions,
//! so the counts printed here are instructions, not cycles.
#![no_std]
#![no_main]

use cortex_m::peripheral::{SYST, syst::SystClkSource};
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use emoedge_camera::{FrameInfo, FrameSource};
use emoedge_core::emotion::argmax;
use emoedge_core::model::{HEADER_LEN, Header};
use emoedge_core::preprocess::{INPUT_LEN, quantize_input};
use emoedge_core::test_frames::TestFrames;
use emoedge_core::{Emotion, Engine, Model};
use emoedge_mcu::{exit_ok, fail};

unsafe extern "C" {
    static _model_blob: u8;
    static _frames: u8;
}

/// Bytes reserved for the model blob region and the frames region (`memory/`).
const BLOB_REGION: usize = 0x10_0000;
const FRAMES_REGION: usize = 0x20_0000;
/// The engine's working memory. The shipped edge model needs 61,060 bytes (activations and
/// kernel scratch; `Model::arena_len`).
const ARENA_LEN: usize = 96 * 1024;
/// Instructions per SysTick tick with `-icount shift=0` (one instruction per nanosecond) at
/// the board's core clock: 25 MHz on MPS2 AN386/AN385, 20 MHz on AN505.
#[cfg(not(mps2_an505))]
const INSTR_PER_TICK: u32 = 40;
#[cfg(mps2_an505)]
const INSTR_PER_TICK: u32 = 50;
/// Most layers whose costs are kept.
const MAX_LAYERS: usize = emoedge_core::model::MAX_LAYERS;

static mut ARENA: [i8; ARENA_LEN] = [0; ARENA_LEN];

/// A read-only view of a flash region.
fn region(start: *const u8, len: usize) -> &'static [u8] {
    // SAFETY: the regions are reserved in the memory map (`memory/`), mapped for the whole run, and nothing
    // writes them while the firmware runs.
    unsafe { core::slice::from_raw_parts(start, len) }
}

#[entry]
fn main() -> ! {
    let mut cp =
        cortex_m::Peripherals::take().unwrap_or_else(|| fail(format_args!("peripherals taken")));
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(0x00ff_ffff);
    cp.SYST.clear_current();
    cp.SYST.enable_counter();

    // The blob: check the header first, so a missing or truncated one is named as such.
    let blob_start = &raw const _model_blob;
    let header = Header::parse(region(blob_start, HEADER_LEN)).unwrap_or_else(|e| {
        fail(format_args!(
            "no valid model blob at {:p}: {}",
            blob_start, e
        ))
    });
    if header.blob_len() > BLOB_REGION {
        fail(format_args!(
            "model blob of {} bytes exceeds its {} byte region",
            header.blob_len(),
            BLOB_REGION
        ));
    }
    let blob = region(blob_start, header.blob_len());
    let model =
        Model::parse(blob).unwrap_or_else(|e| fail(format_args!("model blob rejected: {}", e)));
    if model.arena_len() > ARENA_LEN {
        fail(format_args!(
            "model needs {} arena bytes, firmware has {}",
            model.arena_len(),
            ARENA_LEN
        ));
    }
    hprintln!(
        "emoedge-mcu: model ok: {} bytes, {} layers, {} weight bytes, {} MACs, arena {} bytes",
        blob.len(),
        model.steps().len(),
        model.weight_bytes(),
        model.macs(),
        model.arena_len()
    );

    let frames_start = &raw const _frames;
    let frames = TestFrames::parse(region(frames_start, FRAMES_REGION))
        .unwrap_or_else(|e| fail(format_args!("at {:p}: {}", frames_start, e)));
    let mut frames = FlashFrames { frames, next: 0 };
    // SAFETY: the only reference to ARENA, taken once, here.
    let arena: &mut [i8; ARENA_LEN] = unsafe { &mut *core::ptr::addr_of_mut!(ARENA) };
    let engine = Engine::new(&model);
    let (mut right, mut known) = (0usize, 0usize);
    let mut layer_ticks = [0u32; MAX_LAYERS];
    let mut total_ticks = 0u64;
    let mut gray = [0u8; INPUT_LEN];
    let mut count = 0;
    while let Ok(Some(info)) = frames.next_frame(&mut gray) {
        let i = count;
        count += 1;
        let mut x = [0i8; INPUT_LEN];
        quantize_input(&gray, &mut x);
        let start = SYST::get_current();
        let mut last = start;
        let logits = *engine
            .run_observed(&x, &mut arena[..], |layer| {
                let now = SYST::get_current();
                // SysTick counts down, 24 bits.
                layer_ticks[layer] += last.wrapping_sub(now) & 0x00ff_ffff;
                last = now;
            })
            .unwrap_or_else(|e| fail(format_args!("frame {}: {}", i, e)));
        total_ticks += (start.wrapping_sub(last) & 0x00ff_ffff) as u64;
        let label = argmax(&logits)
            .and_then(Emotion::from_index)
            .unwrap_or(Emotion::Neutral);
        if let Some(truth) = info.label {
            known += 1;
            right += (truth as usize == label.index()) as usize;
        }
        hprintln!("frame {} label {} logits {:?}", i, label.name(), logits);
    }
    let n = count.max(1) as u64;
    for (i, s) in model.steps().iter().enumerate() {
        let instr = layer_ticks[i] as u64 * INSTR_PER_TICK as u64 / n;
        hprintln!(
            "layer {} {} macs {} instructions {} ({}.{:02} MAC/instr)",
            i,
            s.step.op_name(),
            s.macs,
            instr,
            s.macs / instr.max(1),
            (s.macs * 100 / instr.max(1)) % 100
        );
    }
    hprintln!(
        "emoedge-mcu: {} frames, {}/{} right, {} instructions per inference",
        count,
        right,
        known,
        total_ticks * INSTR_PER_TICK as u64 / n
    );
    exit_ok()
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

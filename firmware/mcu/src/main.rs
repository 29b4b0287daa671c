//! emoedge-mcu on QEMU's MPS2 boards: AN386 (Cortex-M4F), AN385 (runs the Cortex-M0+ build)
//! and AN505 (Cortex-M33). The board layer only: the flash regions of the memory map, the
//! report over semihosting and the exit with the verdict; the rest is `emoedge_mcu::app`.
//!
//! Flash layout (`memory/`): on AN386/AN385 firmware at 0x0, model blob at 0x00080000,
//! frames at 0x00180000; on AN505 the same offsets from 0x10000000. Frames region: the
//! test-frames format of `emoedge_core::test_frames`.
//!
//! Timing: QEMU has no cycle model; run with `-icount shift=0` and SysTick (core clock,
//! 25 MHz on AN386/AN385, 20 MHz on AN505) advances once per 40 (50) retired instructions,
//! so the counts printed are instructions, not cycles.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use emoedge_mcu::app::{self, Cost, SysTickCount};
use emoedge_mcu::flash_region;
use emoedge_mcu::semihosting::{Console, exit_ok, fail};

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

static mut ARENA: [i8; ARENA_LEN] = [0; ARENA_LEN];

#[entry]
fn main() -> ! {
    let mut cp =
        cortex_m::Peripherals::take().unwrap_or_else(|| fail(format_args!("peripherals taken")));
    let cost = Cost {
        unit: "instructions",
        short: "instr",
    };
    let mut count = SysTickCount::start(&mut cp.SYST, INSTR_PER_TICK, 1);
    // SAFETY: the only reference to ARENA, taken once, here.
    let arena: &mut [i8; ARENA_LEN] = unsafe { &mut *core::ptr::addr_of_mut!(ARENA) };
    // SAFETY: memory.x reserves both regions in flash, and nothing writes them.
    let blob = unsafe { flash_region(&raw const _model_blob, BLOB_REGION) };
    let frames = unsafe { flash_region(&raw const _frames, FRAMES_REGION) };
    let mut clock = || count.now();
    match app::run(&mut Console::open(), &mut clock, cost, blob, frames, arena) {
        Ok(()) => exit_ok(),
        Err(e) => fail(format_args!("{e}")),
    }
}

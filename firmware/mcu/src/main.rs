//! emoedge-mcu on QEMU's MPS2 boards: AN386 (Cortex-M4F), AN385 (runs the Cortex-M0+ build)
//! and AN505 (Cortex-M33), whose memory maps are `emoedge_boards::MPS2_*`. The board layer
//! only: the report over semihosting and the exit with the verdict; the rest is
//! `emoedge_mcu::board`.
//!
//! Timing: QEMU has no cycle model; run with `-icount shift=0` and SysTick (the board's core
//! clock, 25 MHz on AN386/AN385, 20 MHz on AN505) advances once per 40 (50) retired
//! instructions, so the counts printed are instructions, not cycles.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use emoedge_core::link::CostUnit;
use emoedge_mcu::app::SysTickCount;
use emoedge_mcu::semihosting::{Console, exit_ok, fail};
use emoedge_mcu::{Board, board};

/// The board this build runs on, as the build script chose it from the target.
const BOARD: &Board = match emoedge_boards::by_name(env!("EMOEDGE_BOARD")) {
    Some(b) => b,
    None => panic!("EMOEDGE_BOARD names no board"),
};

/// Instructions per SysTick tick with `-icount shift=0` (one instruction per nanosecond).
const INSTR_PER_TICK: u32 = 1_000_000_000 / BOARD.clock_hz;

#[entry]
fn main() -> ! {
    let mut cp =
        cortex_m::Peripherals::take().unwrap_or_else(|| fail(format_args!("peripherals taken")));
    let mut count = SysTickCount::start(&mut cp.SYST, INSTR_PER_TICK, 1);
    let mut clock = || count.now();
    let mut detect = emoedge_mcu::detect_buffers!(BOARD);
    match board::run(
        &mut Console::open(),
        &mut clock,
        CostUnit::Instructions,
        BOARD,
        &mut detect,
    ) {
        Ok(_) => exit_ok(),
        Err(e) => fail(format_args!("{e}")),
    }
}

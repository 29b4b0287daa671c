//! The emoedge firmware's shared part: [`app`] (check the flashed model blob, run the
//! engine on each test face, report) and [`pipeline`] (the whole job on camera frames:
//! detect, crop, classify) are the same on every board, [`board`] is every board's main
//! after its set-up, and [`link`] answers a host on the board's serial port; a board brings
//! its clocks and console, and its memory map comes from `emoedge-boards`. The MPS2 boards in QEMU report over [`semihosting`].
#![no_std]

pub mod app;
pub mod board;
pub mod link;
pub mod pipeline;
#[cfg(feature = "semihosting")]
pub mod semihosting;

pub use emoedge_boards::Board;

/// A flash region the board's memory map reserves, as a read-only slice.
///
/// # Safety
///
/// `start..start + len` must be a region the memory map reserves inside mapped flash, and
/// nothing may write it while the firmware runs (both hold for the blob and frames regions of
/// every board's `memory.x`).
pub unsafe fn flash_region(start: *const u8, len: usize) -> &'static [u8] {
    // SAFETY: the caller's promise above.
    unsafe { core::slice::from_raw_parts(start, len) }
}

/// Stops: the core sleeps until reset (what a board does after its report; an emulator's
/// runner stops at the verdict line).
pub fn halt() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

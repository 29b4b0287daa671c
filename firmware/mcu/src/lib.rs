//! The emoedge firmware's shared part: [`app`] (check the flashed model blob, run the
//! engine on each test frame, report) is the same on every board; a board brings its clocks,
//! console and memory map. The MPS2 boards in QEMU report over [`semihosting`].
#![no_std]

pub mod app;
#[cfg(feature = "semihosting")]
pub mod semihosting;

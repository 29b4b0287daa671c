//! Frame sources for emoedge firmware, `no_std` and allocation-free.
//!
//! Every source hands the firmware 48x48 gray frames through one trait, [`FrameSource`], so
//! the inference loop is the same whether frames come from a camera module ([`arducam`]) or
//! from a batch of test images in flash (the QEMU build of `emoedge-mcu`).
#![no_std]
#![forbid(unsafe_code)]

pub mod arducam;
pub mod binner;

pub use emoedge_core::preprocess::{INPUT_LEN, INPUT_SIDE};

/// What a source knows about a frame besides its pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    /// The true class index, when the frame comes from a labelled test set.
    pub label: Option<u8>,
}

/// A supplier of 48x48 gray frames (row-major, one byte per pixel).
pub trait FrameSource {
    /// Why a frame could not be had.
    type Error: core::fmt::Debug;

    /// Fills `out` with the next frame; `Ok(None)` once the source has no more frames.
    fn next_frame(&mut self, out: &mut [u8; INPUT_LEN]) -> Result<Option<FrameInfo>, Self::Error>;
}

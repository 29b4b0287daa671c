//! Frame sources for emoedge firmware, `no_std` and allocation-free.
//!
//! Two traits, each implemented by the camera module's driver ([`arducam`]) and by frames
//! flashed for a board without a camera (`emoedge-mcu`), so the firmware's loops are the
//! same either way:
//! - [`FrameSource`]: 48x48 gray faces, for the model alone;
//! - [`SceneSource`]: whole gray camera frames, for the whole job (find the faces, crop,
//!   classify).
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

/// A whole gray camera frame, row-major, borrowed from its source.
#[derive(Clone, Copy, Debug)]
pub struct Scene<'a> {
    /// `width · height` pixels.
    pub pixels: &'a [u8],
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A supplier of whole gray camera frames (the face pipeline's input).
pub trait SceneSource {
    /// Why a frame could not be had.
    type Error: core::fmt::Debug;

    /// The next frame, valid until the next call; `Ok(None)` once the source has no more.
    fn next_scene(&mut self) -> Result<Option<Scene<'_>>, Self::Error>;
}

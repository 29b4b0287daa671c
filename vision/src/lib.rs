//! `emoedge-vision`: the face pipeline every emoedge front end shares — frames in, faces
//! found by OpenCV's Haar cascades, cropped by the model's crop contract, classified by
//! `emoedge-runtime`, followed over time, reported as typed [`Face`]s.
//!
//! `emoedge-pi` (the Raspberry Pi / Linux app) and `emoedge eval-camera` (the host's
//! measurement of that app's accuracy) are two front ends of this one library, so the host
//! measures exactly what the device runs.
//!
//! Without its `std` feature the crate is the detector alone ([`detect`]): `no_std`, no
//! heap, no float, for the microcontroller firmware, which finds faces with the same code.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

#[cfg(feature = "clap")]
pub mod args;
pub mod detect;
#[cfg(feature = "std")]
pub mod face;
#[cfg(feature = "std")]
pub mod frame;
#[cfg(feature = "std")]
pub mod pipeline;
#[cfg(feature = "std")]
pub mod resize;
#[cfg(feature = "std")]
pub mod track;

#[cfg(feature = "std")]
pub use face::{Face, Labels};
#[cfg(feature = "std")]
pub use frame::{Frame, FrameSource};
#[cfg(feature = "std")]
pub use pipeline::{FrameReport, Options, Pipeline, Timings};

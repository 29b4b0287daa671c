//! `emoedge-vision`: the face pipeline every emoedge front end shares — frames in, faces
//! found by OpenCV's Haar cascades, cropped by the model's crop contract, classified by
//! `emoedge-runtime`, followed over time, reported as typed [`Face`]s.
//!
//! `emoedge-pi` (the Raspberry Pi / Linux app) and `emoedge eval-camera` (the host's
//! measurement of that app's accuracy) are two front ends of this one library, so the host
//! measures exactly what the device runs.
#![forbid(unsafe_code)]

#[cfg(feature = "clap")]
pub mod args;
pub mod detect;
pub mod face;
pub mod frame;
pub mod pipeline;
pub mod resize;
pub mod track;

pub use face::{Face, Labels};
pub use frame::{Frame, FrameSource};
pub use pipeline::{FrameReport, Options, Pipeline, Timings};

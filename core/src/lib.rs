//! `emoedge-core`: the int8 engine every emoedge runtime shares.
//!
//! It holds the kernels, the fixed-point quantization rule, the model blob format, the
//! preprocessing contract and the class labels (the seven emotions unless a model names
//! its own). It needs no heap and no floats at run
//! time: the caller hands the [`engine::Engine`] an arena whose size the model states.
//!
//! The preprocessing contract, identical on every runtime: a 48x48 gray face crop with
//! pixels `p` in `0..=255` is the float input `p / 255` for the trainer and the int8 input
//! `p - 128` (scale `1/255`, zero point `-128`) for every int8 runtime.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(unsafe_code)]

pub mod camera_frames;
pub mod emotion;
pub mod engine;
pub mod kernels;
pub mod labels;
pub mod link;
pub mod model;
pub mod preprocess;
pub mod quant;
pub mod shape;
pub mod test_frames;

pub use emotion::Emotion;
pub use engine::{Engine, EngineError};
pub use labels::{LabelError, MAX_CLASSES};
pub use model::{Model, ModelError};

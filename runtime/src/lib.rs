//! `emoedge-runtime`: what every host-side runtime of a quantized model shares.
//!
//! A model folder ([`ModelDir`]) holds the same network twice: `model.blob` for the
//! `emoedge-core` engine (and the firmware), `model.int8.onnx` for tract and onnxruntime.
//! A [`Classifier`] runs either one on 48x48 gray faces, with or without flip averaging,
//! and gives the same int8 logits; `emoedge-pi`, `emoedge eval`, `verify` and `bench` all
//! classify through it (or through its two parts, [`TractModel`] and [`engine_logits`]).
#![forbid(unsafe_code)]

pub mod classifier;
pub mod error;
pub mod model_dir;
pub mod paths;
pub mod tract;

pub use classifier::{Classifier, Runtime, Score};
pub use error::Error;
pub use model_dir::{ModelBlob, ModelDir};
pub use tract::TractModel;

use emoedge_core::preprocess::INPUT_LEN;
use emoedge_core::{Engine, Model};

/// int8 logits of one face, one per class of the model.
pub type Logits = Vec<i8>;

/// int8 logits of one face through the engine; `arena` holds at least
/// [`Model::arena_len`] bytes.
pub fn engine_logits(
    model: &Model,
    arena: &mut [i8],
    gray: &[u8; INPUT_LEN],
) -> Result<Logits, Error> {
    Ok(Engine::new(model).run_gray(gray, arena)?.to_vec())
}

//! The emoedge host: data loading, training, evaluation, quantization, export and the
//! deployment checks of the facial-emotion models, as a library under the `emoedge` CLI.
//!
//! - [`data`]: FER-style folders and the FER+ crowd labels;
//! - [`model`]: the networks; [`train`]: the training loop, its run folder, distillation
//!   and weight averaging;
//! - [`quantize`]: float to int8; [`export`]: the int8 ONNX and the MCU blob;
//! - [`eval`]: every form of a model on a dataset; [`verify`]: the check that the deployed
//!   forms are as accurate as the trained one; [`mcu`]: the boards and their firmware in
//!   emulators; [`report`]: figures and pictures;
//! - [`sys`]: the plumbing under them (atomic writes, the compute device, digests, JSON
//!   files, allocator settings).
//!
//! The `emoedge` binary (`src/main.rs` and `src/cmd/`, one thin module per subcommand) parses
//! flags and prints; everything it does is here.

pub mod bench;
pub mod camera_eval;
pub mod data;
pub mod eval;
pub mod export;
pub mod mcu;
pub mod model;
pub mod quantize;
pub mod report;
pub mod stream;
pub mod sys;
pub mod train;
pub mod verify;

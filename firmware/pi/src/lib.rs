//! The emoedge Pi / Linux runtime as a library: frame sources, the Haar face detector and
//! the per-frame pipeline around `emoedge-runtime`'s classifier (the `emoedge-core` engine
//! on the blob, or tract on the int8 ONNX). The `emoedge-pi` binary is a thin shell around
//! it.

pub mod annotate;
pub mod camera;
pub mod detect;
pub mod pipeline;
pub mod serve;
pub mod source;

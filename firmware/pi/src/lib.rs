//! The emoedge Pi / Linux runtime as a library: frame sources, the Haar face detector, the
//! emotion classifier (tract on the int8 ONNX, or the `shared/` engine on the blob), and the
//! per-frame pipeline. The `emoedge-pi` binary is a thin shell around it.

pub mod annotate;
pub mod camera;
pub mod classify;
pub mod detect;
pub mod pipeline;
pub mod source;

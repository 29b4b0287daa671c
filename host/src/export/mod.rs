//! Writers of the deployable forms of a [`crate::quantize::QuantModel`].

pub mod blob;
pub mod onnx;

//! Writers of the deployable forms of a [`crate::quantize::QuantModel`].

pub mod blob;
pub mod flash_image;
pub mod onnx;

//! The files of a model folder, as `emoedge quantize` writes it and every runtime reads it.
//! One list, so that the writer and the readers cannot drift apart.

/// The int8 QOperator ONNX model (tract, onnxruntime).
pub const ONNX: &str = "model.int8.onnx";
/// The same network for the `emoedge-core` engine and the firmware (header + postcard body).
pub const BLOB: &str = "model.blob";
/// Every scale, zero point, multiplier and shift, as JSON.
pub const QUANT: &str = "quant.json";
/// The float network's configuration (Burn).
pub const CONFIG: &str = "config.json";
/// The float network's weights (Burn).
pub const WEIGHTS: &str = "model.bpk";

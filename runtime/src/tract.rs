//! The int8 ONNX in tract.

use crate::{Error, Logits};
use emoedge_core::preprocess::{INPUT_LEN, INPUT_SIDE, float_input};
use std::path::Path;
use tract_onnx::prelude::*;

/// The int8 ONNX model, loaded and optimized once; runs from several threads at once.
pub struct TractModel {
    plan: Arc<TypedRunnableModel>,
    /// Scale and zero point of the logits, to turn tract's dequantized output back to int8.
    out_scale: f32,
    out_zp: i8,
    /// Logits per face: the blob's class count, which the ONNX must match.
    classes: usize,
}

fn tract_err(e: impl std::fmt::Debug) -> String {
    format!("{e:?}")
}

impl TractModel {
    /// Loads and optimizes `path`; `out_scale`/`out_zp` are the logits' quantization and
    /// `classes` their count (the blob's: [`emoedge_core::Model::body`] `.output_scale`,
    /// [`emoedge_core::Model::output_zero_point`], [`emoedge_core::Model::labels`]).
    pub fn load(path: &Path, out_scale: f32, out_zp: i8, classes: usize) -> Result<Self, Error> {
        let plan = tract_onnx::onnx()
            .model_for_path(path)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| Error::TractLoad {
                path: path.to_path_buf(),
                message: tract_err(e),
            })?;
        Ok(Self {
            plan,
            out_scale,
            out_zp,
            classes,
        })
    }

    /// Names of the ops in the optimized plan (to check that convolutions run as integers).
    pub fn op_names(&self) -> Vec<String> {
        self.plan
            .model()
            .nodes()
            .iter()
            .map(|n| n.op().name().to_string())
            .collect()
    }

    /// Datum types flowing out of every matrix-product node of the optimized plan: `i32`
    /// accumulators (or `i8`, where tract fuses an integer requantization into the kernel)
    /// mean tract runs that convolution with integer kernels.
    pub fn matmul_output_types(&self) -> Vec<String> {
        self.plan
            .model()
            .nodes()
            .iter()
            .filter(|n| n.op().name() == "OptMatMul")
            .map(|n| format!("{:?}", n.outputs[0].fact.datum_type))
            .collect()
    }

    /// int8 logits of one face: the float input `p / 255`, tract's dequantized logits
    /// quantized back with the blob's output scale.
    pub fn logits(&self, gray: &[u8; INPUT_LEN]) -> Result<Logits, Error> {
        let mut x = vec![0f32; INPUT_LEN];
        float_input(gray, &mut x);
        let input = Tensor::from_shape(&[1, 1, INPUT_SIDE, INPUT_SIDE], &x)
            .map_err(|e| Error::TractRun(tract_err(e)))?;
        let out = self
            .plan
            .run(tvec!(input.into()))
            .map_err(|e| Error::TractRun(tract_err(e)))?;
        let v = out[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| Error::TractRun(tract_err(e)))?;
        let v = v
            .as_slice()
            .ok_or_else(|| Error::TractRun("output is not contiguous".into()))?;
        if v.len() != self.classes {
            return Err(Error::Outputs {
                got: v.len(),
                expected: self.classes,
            });
        }
        Ok(emoedge_core::quant::int8_logits(
            v,
            self.out_scale,
            self.out_zp,
        ))
    }
}

//! Running the deployed forms on the host: the int8 ONNX in tract, and the blob in the
//! `shared/` engine. Both take 48x48 gray pixels and return the int8 logits.

use anyhow::{Context, Result};
use emoedge_core::preprocess::INPUT_LEN;
use emoedge_core::{Engine, Model, NUM_CLASSES};
use std::path::Path;
use tract_onnx::prelude::*;

/// The int8 ONNX model, loaded and optimized once.
pub struct TractModel {
    plan: Arc<TypedRunnableModel>,
    /// Scale and zero point of the logits, to turn tract's dequantized output back to int8.
    out_scale: f32,
    out_zp: i8,
}

impl TractModel {
    /// Loads and optimizes `path`; `out_scale`/`out_zp` are the logits' quantization.
    pub fn load(path: &Path, out_scale: f32, out_zp: i8) -> Result<Self> {
        let model = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(|e| anyhow::anyhow!("{e:?}"))
            .with_context(|| format!("tract cannot load {}", path.display()))?;
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| anyhow::anyhow!("{e:?}"))
            .with_context(|| format!("tract cannot optimize {}", path.display()))?;
        Ok(Self {
            plan,
            out_scale,
            out_zp,
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
        let m = self.plan.model();
        m.nodes()
            .iter()
            .filter(|n| n.op().name() == "OptMatMul")
            .map(|n| format!("{:?}", n.outputs[0].fact.datum_type))
            .collect()
    }

    /// int8 logits of one face.
    pub fn logits(&self, gray: &[u8; INPUT_LEN]) -> Result<[i8; NUM_CLASSES]> {
        let x: Vec<f32> = gray.iter().map(|&p| p as f32 / 255.0).collect();
        let input = tract_ndarray::Array4::from_shape_vec((1, 1, 48, 48), x)?.into_tensor();
        let out = self
            .plan
            .run(tvec!(input.into()))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let v = out[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let v = v.as_slice().context("tract output is not contiguous")?;
        emoedge_core::quant::int8_logits(v, self.out_scale, self.out_zp)
            .with_context(|| format!("model outputs {} values, expected {NUM_CLASSES}", v.len()))
    }
}

/// int8 logits of one face through the engine (arena allocated by the caller).
pub fn engine_logits(
    model: &Model,
    arena: &mut [i8],
    gray: &[u8; INPUT_LEN],
) -> Result<[i8; NUM_CLASSES]> {
    Ok(*Engine::new(model)
        .run_gray(gray, arena)
        .map_err(|e| anyhow::anyhow!("{e}"))?)
}

/// Parses a blob with an error naming the file.
pub fn parse_blob<'a>(bytes: &'a [u8], path: &Path) -> Result<Model<'a>> {
    Model::parse(bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

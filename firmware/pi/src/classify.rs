//! The emotion classifier: the int8 ONNX in tract, or the `shared/` engine on the blob.
//! Both are loaded once; a face costs one run and no model rebuilding.

use anyhow::{Context, Result};
use emoedge_core::preprocess::{INPUT_LEN, quantize_input};
use emoedge_core::{Engine, Model, NUM_CLASSES};
use std::path::Path;
use tract_onnx::prelude::*;

/// Which runtime classifies faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    /// tract on `model.int8.onnx` (integer kernels).
    Tract,
    /// The `emoedge-core` engine on `model.blob`.
    Core,
}

/// A loaded classifier.
pub struct Classifier {
    model: Model<'static>,
    arena: Vec<i8>,
    tract: Option<Arc<TypedRunnableModel>>,
    input: Vec<f32>,
}

impl Classifier {
    /// Loads `dir/model.blob` (always: it carries the logits' quantization) and, for tract,
    /// `dir/model.int8.onnx`.
    pub fn load(dir: &Path, kind: EngineKind) -> Result<Self> {
        let blob_path = dir.join("model.blob");
        let bytes = std::fs::read(&blob_path)
            .with_context(|| format!("reading {}", blob_path.display()))?;
        // Loaded once per process and used until exit.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let model =
            Model::parse(bytes).map_err(|e| anyhow::anyhow!("{}: {e}", blob_path.display()))?;
        let tract = match kind {
            EngineKind::Core => None,
            EngineKind::Tract => {
                let onnx = dir.join("model.int8.onnx");
                let m = tract_onnx::onnx()
                    .model_for_path(&onnx)
                    .and_then(|m| m.into_optimized())
                    .and_then(|m| m.into_runnable())
                    .map_err(|e| anyhow::anyhow!("{e:?}"))
                    .with_context(|| format!("tract cannot load {}", onnx.display()))?;
                Some(m)
            }
        };
        Ok(Self {
            arena: vec![0; model.arena_len()],
            model,
            tract,
            input: vec![0.0; INPUT_LEN],
        })
    }

    /// int8 logits of a 48x48 gray face.
    pub fn logits(&mut self, gray: &[u8; INPUT_LEN]) -> Result<[i8; NUM_CLASSES]> {
        match &self.tract {
            None => {
                let mut x = [0i8; INPUT_LEN];
                quantize_input(gray, &mut x);
                Ok(*Engine::new(&self.model)
                    .run(&x, &mut self.arena)
                    .map_err(|e| anyhow::anyhow!("{e}"))?)
            }
            Some(plan) => {
                for (o, &p) in self.input.iter_mut().zip(gray) {
                    *o = p as f32 / 255.0;
                }
                let t = Tensor::from_shape(&[1, 1, 48, 48], &self.input)?;
                let out = plan
                    .run(tvec!(t.into()))
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                let v = out[0]
                    .to_plain_array_view::<f32>()
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                let v = v.as_slice().context("tract output is not contiguous")?;
                emoedge_core::quant::int8_logits(
                    v,
                    self.model.body().output_scale,
                    self.model.output_zero_point(),
                )
                .with_context(|| {
                    format!("model outputs {} values, expected {NUM_CLASSES}", v.len())
                })
            }
        }
    }

    /// Softmax probabilities of int8 logits (dequantized with the model's output scale).
    pub fn probabilities(&self, logits: &[i8; NUM_CLASSES]) -> [f32; NUM_CLASSES] {
        let (scale, zp) = (
            self.model.body().output_scale,
            self.model.output_zero_point() as f32,
        );
        let z = logits.map(|q| (q as f32 - zp) * scale);
        let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let e = z.map(|v| (v - m).exp());
        let s: f32 = e.iter().sum();
        e.map(|v| v / s)
    }
}

//! The emotion classifier: the int8 ONNX in tract, or the `shared/` engine on the blob.
//! Both are loaded once; a face costs one run and no model rebuilding.

use anyhow::{Context, Result};
use emoedge_core::model_files;
use emoedge_core::preprocess::{INPUT_LEN, mirror};
use emoedge_core::{Engine, Model, NUM_CLASSES};
use std::path::Path;
use tract_onnx::prelude::*;

/// Which int8 runtime classifies faces: named as `emoedge eval --form` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    /// tract on `model.int8.onnx` (integer kernels).
    Tract,
    /// The `emoedge-core` engine on `model.blob`.
    #[value(alias = "core")]
    Engine,
}

/// A loaded classifier.
pub struct Classifier {
    model: Model<'static>,
    arena: Vec<i8>,
    /// One engine arena per face classified at once (`logits_many`), kept between frames.
    arenas: Vec<Vec<i8>>,
    tract: Option<Arc<TypedRunnableModel>>,
    input: Vec<f32>,
    /// Test-time flip averaging: each face is also classified mirrored, and the two views'
    /// int8 logits are summed (as `emoedge eval --flip` does on the host).
    flip: bool,
    /// With `flip`, the faces and their mirrors, as classified by [`Self::scores_many`].
    views: Vec<[u8; INPUT_LEN]>,
    view_logits: Vec<[i8; NUM_CLASSES]>,
}

/// A face's score: the sum of its views' int8 logits (one view, or the face and its mirror
/// with flip averaging). Its argmax is the label; [`Classifier::probabilities`] turns it
/// into probabilities.
pub type Score = [i16; NUM_CLASSES];

impl Classifier {
    /// Loads `dir/model.blob` (always: it carries the logits' quantization) and, for tract,
    /// `dir/model.int8.onnx`.
    pub fn load(dir: &Path, kind: Runtime) -> Result<Self> {
        let blob_path = dir.join(model_files::BLOB);
        let bytes = std::fs::read(&blob_path)
            .with_context(|| format!("reading {}", blob_path.display()))?;
        // Loaded once per process and used until exit.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let model =
            Model::parse(bytes).map_err(|e| anyhow::anyhow!("{}: {e}", blob_path.display()))?;
        let tract = match kind {
            Runtime::Engine => None,
            Runtime::Tract => {
                let onnx = dir.join(model_files::ONNX);
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
            arenas: Vec::new(),
            model,
            tract,
            input: vec![0.0; INPUT_LEN],
            flip: false,
            views: Vec::new(),
            view_logits: Vec::new(),
        })
    }

    /// Turns test-time flip averaging on or off: twice the inference per face for a gain
    /// measured on FER2013 `test` (`models/MODEL.md`). The engine runs a face and its
    /// mirror in parallel, so on a multi-core Pi a frame with one face costs little more.
    pub fn with_flip(mut self, on: bool) -> Self {
        self.flip = on;
        self
    }

    /// Views classified per face: 2 with flip averaging, else 1.
    pub fn views_per_face(&self) -> usize {
        if self.flip { 2 } else { 1 }
    }

    /// Scores of several faces (see [`Score`]); all views of all faces are classified
    /// together ([`Self::logits_many`]).
    pub fn scores_many(&mut self, faces: &[[u8; INPUT_LEN]], out: &mut Vec<Score>) -> Result<()> {
        let mut logits = std::mem::take(&mut self.view_logits);
        let result = if self.flip {
            // The faces, then their mirrors: one batch, so the engine runs them in parallel.
            let mut views = std::mem::take(&mut self.views);
            views.clear();
            views.extend_from_slice(faces);
            views.extend(faces.iter().map(|f| {
                let mut m = *f;
                mirror(&mut m);
                m
            }));
            let r = self.logits_many(&views, &mut logits);
            self.views = views;
            r
        } else {
            self.logits_many(faces, &mut logits)
        };
        out.clear();
        if result.is_ok() {
            let (direct, mirrored) = logits.split_at(faces.len());
            out.extend(direct.iter().enumerate().map(|(k, z)| {
                let zm = mirrored.get(k).copied().unwrap_or([0; NUM_CLASSES]);
                emoedge_core::preprocess::sum_logits(z, &zm)
            }));
        }
        self.view_logits = logits;
        result
    }

    /// int8 logits of a 48x48 gray face.
    pub fn logits(&mut self, gray: &[u8; INPUT_LEN]) -> Result<[i8; NUM_CLASSES]> {
        match &self.tract {
            None => engine_logits(&self.model, gray, &mut self.arena),
            Some(plan) => tract_logits(&self.model, plan, gray, &mut self.input),
        }
    }

    /// int8 logits of several faces; the engine classifies them in parallel (one face per
    /// core), so a frame with two faces costs about one face's time on a 2-core machine.
    pub fn logits_many(
        &mut self,
        faces: &[[u8; INPUT_LEN]],
        out: &mut Vec<[i8; NUM_CLASSES]>,
    ) -> Result<()> {
        use rayon::prelude::*;
        // tract runs one face after another: run on rayon's worker threads it left the
        // detector of the next frame 1.8x slower (30.0 vs 16.4 ms per 640x480 frame,
        // measured), more than it saved.
        if faces.len() <= 1 || self.tract.is_some() {
            out.clear();
            for f in faces {
                out.push(self.logits(f)?);
            }
            return Ok(());
        }
        while self.arenas.len() < faces.len() {
            self.arenas.push(vec![0; self.model.arena_len()]);
        }
        let model = &self.model;
        let results: Vec<Result<[i8; NUM_CLASSES]>> = faces
            .par_iter()
            .zip(self.arenas.par_iter_mut())
            .map(|(f, arena)| engine_logits(model, f, arena))
            .collect();
        out.clear();
        for r in results {
            out.push(r?);
        }
        Ok(())
    }

    /// Softmax probabilities of a face's score: the mean of its views' int8 logits,
    /// dequantized with the model's output scale.
    pub fn probabilities(&self, score: &Score) -> [f32; NUM_CLASSES] {
        let (scale, zp) = (
            self.model.body().output_scale,
            self.model.output_zero_point() as f32,
        );
        let views = self.views_per_face() as f32;
        emoedge_core::emotion::softmax(&score.map(|s| (s as f32 / views - zp) * scale))
    }
}

/// The engine on one face.
fn engine_logits(
    model: &Model<'static>,
    gray: &[u8; INPUT_LEN],
    arena: &mut [i8],
) -> Result<[i8; NUM_CLASSES]> {
    Ok(*Engine::new(model)
        .run_gray(gray, arena)
        .map_err(|e| anyhow::anyhow!("{e}"))?)
}

/// tract on one face; `input` is a reusable float buffer.
fn tract_logits(
    model: &Model<'static>,
    plan: &Arc<TypedRunnableModel>,
    gray: &[u8; INPUT_LEN],
    input: &mut Vec<f32>,
) -> Result<[i8; NUM_CLASSES]> {
    input.clear();
    input.extend(gray.iter().map(|&p| p as f32 / 255.0));
    let t = Tensor::from_shape(&[1, 1, 48, 48], input)?;
    let out = plan
        .run(tvec!(t.into()))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let v = out[0]
        .to_plain_array_view::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let v = v.as_slice().context("tract output is not contiguous")?;
    emoedge_core::quant::int8_logits(v, model.body().output_scale, model.output_zero_point())
        .with_context(|| format!("model outputs {} values, expected {NUM_CLASSES}", v.len()))
}

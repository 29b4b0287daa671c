//! One classifier over either int8 runtime, with test-time flip averaging.

use crate::{Error, Logits, ModelBlob, ModelDir, TractModel, engine_logits};
use emoedge_core::Model;
use emoedge_core::preprocess::{INPUT_LEN, mirror, sum_logits};
use rayon::prelude::*;

/// Which int8 runtime classifies faces. Both give the same logits on the shipped model
/// (`emoedge verify` measures it); they differ in speed and dependencies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Runtime {
    /// tract on `model.int8.onnx` (integer kernels).
    Tract,
    /// The `emoedge-core` engine on `model.blob`.
    #[cfg_attr(feature = "clap", value(alias = "core"))]
    Engine,
}

impl Runtime {
    /// How reports and `--runtime` name it.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Tract => "tract",
            Runtime::Engine => "engine",
        }
    }
}

/// A face's score: the sum of its views' int8 logits (one view, or the face and its mirror
/// with flip averaging), one per class. Its argmax is the label's index in
/// [`Classifier::labels`]; [`Classifier::probabilities`] turns it into probabilities.
pub type Score = Vec<i16>;

self_cell::self_cell!(
    /// A blob's bytes and the model parsed from them (which borrows them), kept together so
    /// that a classifier owns its model: parsed once, movable, no lifetime to carry.
    struct ParsedBlob {
        owner: Vec<u8>,
        #[covariant]
        dependent: Model,
    }
);

/// A loaded classifier over a parsed blob, which it owns. Buffers are kept from call to
/// call, so a face costs one inference per view and no allocation in the steady state.
pub struct Classifier {
    model: ParsedBlob,
    /// With [`Runtime::Tract`], the ONNX model (the blob still gives the logits' scale).
    tract: Option<TractModel>,
    /// One engine arena per face classified at once, kept between calls.
    arenas: Vec<Vec<i8>>,
    /// Test-time flip averaging: each face is also classified mirrored and the two views'
    /// int8 logits are summed.
    flip: bool,
    /// With `flip`, the faces and their mirrors, as classified by [`Self::scores`].
    views: Vec<[u8; INPUT_LEN]>,
    view_logits: Vec<Logits>,
}

impl Classifier {
    /// A classifier of the folder's model on `runtime`: its blob is read and parsed, and for
    /// tract, its int8 ONNX loaded and optimized, here, once.
    pub fn open(dir: &ModelDir, runtime: Runtime) -> Result<Self, Error> {
        Self::new(dir, dir.read_blob()?, runtime)
    }

    /// A classifier of `blob` (the folder's, already read) on `runtime`.
    pub fn new(dir: &ModelDir, blob: ModelBlob, runtime: Runtime) -> Result<Self, Error> {
        let (path, bytes) = blob.into_parts();
        let model = ParsedBlob::try_new(bytes, |b| Model::parse(b))
            .map_err(|source| Error::Blob { path, source })?;
        let m = model.borrow_dependent();
        let tract = match runtime {
            Runtime::Engine => None,
            Runtime::Tract => Some(TractModel::load(
                &dir.onnx(),
                m.body().output_scale,
                m.output_zero_point(),
                m.labels().len(),
            )?),
        };
        Ok(Self {
            model,
            tract,
            arenas: Vec::new(),
            flip: false,
            views: Vec::new(),
            view_logits: Vec::new(),
        })
    }

    /// Turns test-time flip averaging on or off: twice the inference per face, for a gain
    /// measured on FER2013 `test` (`models/MODEL.md`). The engine runs a face and its
    /// mirror in parallel, so on a multi-core machine one face costs little more.
    pub fn with_flip(mut self, on: bool) -> Self {
        self.flip = on;
        self
    }

    /// The runtime it classifies with.
    pub fn runtime(&self) -> Runtime {
        if self.tract.is_some() {
            Runtime::Tract
        } else {
            Runtime::Engine
        }
    }

    /// The parsed blob.
    pub fn model(&self) -> &Model<'_> {
        self.model.borrow_dependent()
    }

    /// Views classified per face: 2 with flip averaging, else 1.
    pub fn views_per_face(&self) -> usize {
        if self.flip { 2 } else { 1 }
    }

    /// Scores of several faces (see [`Score`]); all views of all faces are classified
    /// together ([`Self::logits_many`]).
    pub fn scores(&mut self, faces: &[[u8; INPUT_LEN]], out: &mut Vec<Score>) -> Result<(), Error> {
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
            out.extend(
                direct
                    .iter()
                    .enumerate()
                    .map(|(k, z)| match mirrored.get(k) {
                        Some(zm) => sum_logits(z, zm).collect(),
                        None => z.iter().map(|&v| v as i16).collect(),
                    }),
            );
        }
        self.view_logits = logits;
        result
    }

    /// int8 logits of one 48x48 gray face (no flip averaging).
    pub fn logits(&mut self, gray: &[u8; INPUT_LEN]) -> Result<Logits, Error> {
        match &self.tract {
            Some(t) => t.logits(gray),
            None => {
                let model = self.model.borrow_dependent();
                if self.arenas.is_empty() {
                    self.arenas.push(vec![0; model.arena_len()]);
                }
                engine_logits(model, &mut self.arenas[0], gray)
            }
        }
    }

    /// int8 logits of several faces (no flip averaging); the engine classifies them in
    /// parallel, one face per core.
    pub fn logits_many(
        &mut self,
        faces: &[[u8; INPUT_LEN]],
        out: &mut Vec<Logits>,
    ) -> Result<(), Error> {
        out.clear();
        // tract runs one face after another: run on rayon's worker threads it left the Pi
        // pipeline's detector of the next frame 1.8x slower (30.0 vs 16.4 ms per 640x480
        // frame, measured), more than it saved.
        if faces.len() <= 1 || self.tract.is_some() {
            for f in faces {
                out.push(self.logits(f)?);
            }
            return Ok(());
        }
        let model = self.model.borrow_dependent();
        while self.arenas.len() < faces.len() {
            self.arenas.push(vec![0; model.arena_len()]);
        }
        let results: Vec<Result<Logits, Error>> = faces
            .par_iter()
            .zip(self.arenas.par_iter_mut())
            .map(|(f, arena)| engine_logits(model, arena, f))
            .collect();
        for r in results {
            out.push(r?);
        }
        Ok(())
    }

    /// Softmax probabilities of a face's score: the mean of its views' int8 logits,
    /// dequantized with the model's output scale.
    pub fn probabilities(&self, score: &[i16]) -> Vec<f32> {
        let model = self.model();
        let (scale, zp) = (model.body().output_scale, model.output_zero_point() as f32);
        let views = self.views_per_face() as f32;
        let z: Vec<f32> = score
            .iter()
            .map(|&s| (s as f32 / views - zp) * scale)
            .collect();
        emoedge_core::emotion::softmax(&z)
    }

    /// The model's class names, in output order: what a score's index means.
    pub fn labels(&self) -> &[&str] {
        self.model().labels()
    }
}

//! Every form of a model on a dataset: the Burn float network of a run folder, or the int8
//! model of a model folder through either runtime. [`predict`](mod@predict) holds the float
//! pass that training also uses for its per-epoch test loss.

pub mod predict;

use crate::data::Dataset;
use crate::sys::backend::device;
use crate::train::run_dir::load_run;
use anyhow::Result;
use emoedge_runtime::{Classifier, ModelDir, Runtime};
use predict::predict;
use serde::Serialize;
use std::path::Path;

/// A form of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// The Burn float model.
    Float,
    /// The int8 ONNX in tract.
    Tract,
    /// The blob in the `emoedge-core` engine.
    Engine,
}

impl Form {
    /// How reports name the form.
    pub fn name(self) -> &'static str {
        match self {
            Form::Float => "float",
            Form::Tract => "tract int8",
            Form::Engine => "engine int8",
        }
    }
}

impl Form {
    /// The int8 runtime of an int8 form; `None` for float.
    pub fn runtime(self) -> Option<Runtime> {
        match self {
            Form::Float => None,
            Form::Tract => Some(Runtime::Tract),
            Form::Engine => Some(Runtime::Engine),
        }
    }
}

/// The class names of the model in `dir`, in output order: its blob's for a model folder
/// with int8 forms, else its float network's config (a training run folder).
pub fn model_labels(dir: &Path) -> Result<Vec<String>> {
    let md = ModelDir::new(dir);
    if md.has_int8() {
        let blob = md.read_blob()?;
        let model = blob.model()?;
        return Ok(model.labels().iter().map(|l| l.to_string()).collect());
    }
    let run = crate::train::run_dir::RunDir(dir.to_path_buf());
    let config: crate::model::ModelConfig = crate::sys::json::read_json(&run.config())?;
    Ok(config.labels)
}

/// Predicted class per image for one form of the model in `dir`; with `flip`, from the sum
/// of each image's logits and its mirror's.
pub fn predict_form(
    dir: &Path,
    form: Form,
    flip: bool,
    ds: &Dataset,
    tick: &dyn Fn(usize),
) -> Result<Vec<u8>> {
    let argmax = |z: &[i16]| emoedge_core::emotion::argmax(z).unwrap_or(0) as u8;
    match form.runtime() {
        None => {
            let device = device();
            let (_, model) = load_run(dir, &device)?;
            let mut logits = predict(&model, ds, &device, tick);
            if flip {
                let m = ds.mirrored();
                for (z, zm) in logits.iter_mut().zip(predict(&model, &m, &device, &|_| {})) {
                    z.iter_mut().zip(zm).for_each(|(a, b)| *a += b);
                }
            }
            Ok(logits
                .iter()
                .map(|z| emoedge_core::emotion::argmax(z).unwrap_or(0) as u8)
                .collect())
        }
        Some(runtime) => {
            let mut classifier = Classifier::open(&ModelDir::new(dir), runtime)?.with_flip(flip);
            let mut scores = Vec::new();
            (0..ds.len())
                .map(|i| {
                    tick(1);
                    classifier.scores(std::slice::from_ref(ds.image(i)), &mut scores)?;
                    Ok(argmax(&scores[0]))
                })
                .collect()
        }
    }
}

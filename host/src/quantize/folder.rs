//! A training run → a model folder with every deployable form: the int8 ONNX, the blob,
//! `quant.json`, and the float network it came from.

use super::{Method, QuantModel, Scales, calibrate, quantize_with};
use crate::data::{CsvClasses, Dataset, Split, decode_face, is_csv, list_split, load_csv};
use crate::export::{blob::to_blob, onnx::to_onnx};
use crate::train::run_dir::{RunDir, load_run};
use anyhow::{Context, Result, bail};
use emoedge_runtime::model_dir;
use std::path::{Path, PathBuf};

/// What to quantize and how (`emoedge quantize`).
#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    /// Training run folder (`config.json` + `model.bpk`).
    pub run: PathBuf,
    /// Model folder to write (replaced as one step).
    pub out: PathBuf,
    /// The dataset whose training split the calibration set is drawn from: a folder
    /// holding `train/<class>/`, or a `fer2013.csv`.
    pub data: PathBuf,
    /// Calibration images, spread evenly over the training split.
    pub calib_images: usize,
    /// How activation ranges are taken.
    pub method: Method,
    /// How weight scales are chosen.
    pub scales: Scales,
}

/// What [`quantize_run`] wrote.
#[derive(Clone, Debug)]
pub struct Quantized {
    /// The int8 network.
    pub model: QuantModel,
    /// Its blob, as written.
    pub blob: Vec<u8>,
}

/// Calibrates, quantizes and exports the run, and writes the model folder.
pub fn quantize_run(o: &QuantizeOptions) -> Result<Quantized> {
    let device = crate::sys::backend::device();
    let (config, model) = load_run(&o.run, &device)?;
    let calib_set = calibration_set(&o.data, &config.labels, o.calib_images)?;
    let calib = calibrate(&model, &calib_set, &device, o.method)?;
    let q = quantize_with(&model, &config.labels, &calib, o.scales)?;
    let onnx = to_onnx(&q);
    let blob = to_blob(&q)?;
    let run = RunDir(o.run.clone());
    let weights = std::fs::read(run.weights())
        .with_context(|| format!("reading {}", run.weights().display()))?;
    let files = [
        (model_dir::ONNX, onnx),
        (model_dir::BLOB, blob.clone()),
        (model_dir::QUANT, serde_json::to_vec_pretty(&q)?),
        (model_dir::CONFIG, serde_json::to_vec_pretty(&config)?),
        (model_dir::WEIGHTS, weights),
    ];
    crate::sys::atomic::write_folder(&o.out, &files)?;
    Ok(Quantized { model: q, blob })
}

/// `n` images spread evenly over a dataset's training split (at least one), for a model of
/// the classes `labels`; an unreadable one is skipped, as calibration needs a sample, not
/// every file. From a folder only those `n` are decoded; a CSV is read through.
pub fn calibration_set(data: &Path, labels: &[String], n: usize) -> Result<Dataset> {
    if is_csv(data) {
        let bar = indicatif::ProgressBar::hidden();
        let (ds, _) = load_csv(data, Split::Train, &CsvClasses::for_model(labels), &bar)?;
        return Ok(ds.subsample(n.max(1)));
    }
    let train_dir = data.join(Split::Train.folder());
    let (classes, files) = list_split(&train_dir)?;
    let mut ds = Dataset::with_classes(&classes);
    let n = n.min(files.len()).max(1);
    for k in 0..n {
        let (path, class) = &files[k * files.len() / n];
        // A bad calibration image is skipped; calibration needs a sample, not every file.
        if let Ok(px) = decode_face(path) {
            ds.push(&px, *class, path.clone());
        }
    }
    if ds.is_empty() {
        bail!("no readable calibration images in {}", train_dir.display());
    }
    Ok(ds)
}

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
    check_replaceable(&o.out)?;
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

/// Refuses an `out` whose replacement would lose work. The model folder is replaced whole,
/// so only a new or empty folder, or a model folder written before (it holds the blob, and
/// no subfolder), may be the target: pointed at a training run, `quantize` would otherwise
/// delete its checkpoints. Checked before any work, so a wrong `--out` costs nothing.
fn check_replaceable(out: &Path) -> Result<()> {
    const CHOOSE: &str = "choose a new or empty folder, or an earlier model folder, for --out";
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        bail!("{}: exists and is not a folder; {CHOOSE}", out.display());
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))? {
        let entry = entry.with_context(|| format!("reading {}", out.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() {
            bail!(
                "{}: holds the folder `{name}`, which writing the model there would delete (the \
                 model folder is replaced whole); {CHOOSE}",
                out.display()
            );
        }
        names.push(name);
    }
    if !names.is_empty() && !names.iter().any(|n| n == model_dir::BLOB) {
        names.sort();
        bail!(
            "{}: not a model folder (no {}), and writing the model there would delete {}; \
             {CHOOSE}",
            out.display(),
            model_dir::BLOB,
            names.join(", ")
        );
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::check_replaceable;

    #[test]
    fn only_new_empty_or_model_folders_are_replaced() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        assert!(check_replaceable(&p.join("new")).is_ok());
        std::fs::create_dir(p.join("empty")).unwrap();
        assert!(check_replaceable(&p.join("empty")).is_ok());

        // An earlier model folder, with the files a user adds beside the model.
        let model = p.join("model");
        std::fs::create_dir(&model).unwrap();
        for f in [
            "model.blob",
            "model.int8.onnx",
            "metrics.csv",
            "confusion.png",
        ] {
            std::fs::write(model.join(f), b"x").unwrap();
        }
        assert!(check_replaceable(&model).is_ok());

        // A training run: its checkpoints must survive a wrong --out.
        let run = p.join("run");
        std::fs::create_dir_all(run.join("ckpt")).unwrap();
        std::fs::write(run.join("metrics.csv"), b"epoch\n").unwrap();
        let e = check_replaceable(&run).unwrap_err().to_string();
        assert!(e.contains("run: holds the folder `ckpt`"), "{e}");
        std::fs::remove_dir(run.join("ckpt")).unwrap();
        let e = check_replaceable(&run).unwrap_err().to_string();
        assert!(e.contains("not a model folder (no model.blob)"), "{e}");
        assert!(e.contains("would delete metrics.csv"), "{e}");

        let e = check_replaceable(&model.join("model.blob"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.blob: exists and is not a folder"), "{e}");
    }
}

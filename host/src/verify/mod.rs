//! The product's central check: every deployed form of a model (tract on the int8 ONNX, the
//! engine on the blob, and optionally the MCU firmware in QEMU) is as accurate as the
//! trained float network, the two int8 runtimes agree to the logit, and the artifacts carry
//! the weights they say they carry.
//!
//! [`verify`] measures and returns a [`Report`]; the report's `failures` name every bound
//! it breaks. `emoedge verify` prints it, writes it as JSON and fails if any is named.

pub mod artifacts;
pub mod board;

use crate::data::{Dataset, load_for_model};
use crate::eval::Form;
use crate::eval::predict::predict;
use crate::report::metrics::Confusion;
use crate::train::run_dir::load_run;
use anyhow::{Result, bail};
use artifacts::{artifact_hashes, compare_blobs};
use emoedge_core::Model;
use emoedge_core::labels::name_of;
use emoedge_runtime::{ModelDir, TractModel, engine_logits};
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::Serialize;
use std::path::PathBuf;

/// What to verify and the bounds to hold it to.
#[derive(Clone, Debug)]
pub struct Options {
    /// The model folder written by `quantize`.
    pub model: PathBuf,
    /// A split's folder of `<class>/<image>`, or a `fer2013.csv`.
    pub data: PathBuf,
    /// With a `fer2013.csv` as `data`: which rows.
    pub split: crate::data::Split,
    /// A blob read back from a device: must equal the shipped one byte for byte.
    pub device_blob: Option<PathBuf>,
    /// Largest allowed accuracy drop of an int8 form below float, in percentage points.
    pub max_drop_pp: f64,
    /// Smallest allowed label agreement between tract and the engine (0 to 1).
    pub min_agree: f64,
    /// Largest allowed logit difference between tract and the engine, in LSB.
    pub max_lsb: u32,
    /// Also run the firmware in QEMU on this many images, spread over the data.
    pub mcu: Option<McuCheck>,
}

/// The MCU part of a verification.
#[derive(Clone, Debug)]
pub struct McuCheck {
    /// The board whose emulator runs the firmware.
    pub board: &'static crate::mcu::Board,
    /// Its firmware ELF.
    pub firmware: PathBuf,
    /// Images to run.
    pub images: usize,
}

/// Accuracy of one form.
#[derive(Clone, Debug, Serialize)]
pub struct FormReport {
    /// Which form.
    pub form: Form,
    /// Share of images labelled right.
    pub accuracy: f64,
    /// Recall per class, in label order.
    pub recall: Vec<(String, f64)>,
}

/// An image on which the forms part.
#[derive(Clone, Debug, Serialize)]
pub struct Disagreement {
    /// The image.
    pub path: PathBuf,
    /// Its label.
    pub truth: String,
    /// The float network's label, when the folder has it.
    pub float: Option<String>,
    /// tract's label.
    pub tract: String,
    /// The engine's label.
    pub engine: String,
    /// Largest logit difference between tract and the engine, in LSB.
    pub max_lsb: u32,
}

/// Everything [`verify`] measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The model folder.
    pub model: PathBuf,
    /// The data folder.
    pub data: PathBuf,
    /// Images classified.
    pub images: usize,
    /// Images skipped as unreadable.
    pub skipped: usize,
    /// The weights hashes the artifacts record.
    pub weights_sha256: String,
    /// The weights hashes, recorded and recomputed, in one line for people.
    #[serde(skip)]
    pub weights_summary: String,
    /// Whether the device blob equals the shipped one, when one was given.
    #[serde(skip)]
    pub device_blob_identical: Option<bool>,
    /// The crop contract every runtime with a face detector applies (`SCALE,DX,DY`): the
    /// accuracy here holds for faces cropped that way (`emoedge eval-camera` measures it).
    pub crop_contract: String,
    /// Accuracy per form: float (when the folder has it), tract, engine.
    pub forms: Vec<FormReport>,
    /// Share of images on which tract and the engine give the same label.
    pub agreement_tract_engine: f64,
    /// Share of images on which float and tract give the same label.
    pub agreement_float_tract: Option<f64>,
    /// Largest logit difference between tract and the engine over all images, in LSB.
    pub max_lsb_tract_engine: u32,
    /// Images whose logits differ by more than the allowed LSB.
    pub logits_off_by_more_than_tolerance: usize,
    /// Images on which the QEMU firmware equalled the engine, of those run.
    pub mcu_equal: Option<(usize, usize)>,
    /// Images on which the forms part.
    pub disagreements: Vec<Disagreement>,
    /// Every bound broken, as a sentence; empty when the model verifies.
    pub failures: Vec<String>,
    /// Paths and reasons of the images skipped.
    #[serde(skip)]
    pub skipped_files: Vec<crate::data::Skipped>,
}

impl Report {
    /// Whether every bound held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Accuracy of `form`, if it was run.
    pub fn accuracy(&self, form: Form) -> Option<f64> {
        self.forms
            .iter()
            .find(|r| r.form == form)
            .map(|r| r.accuracy)
    }
}

fn argmax(z: &[i8]) -> u8 {
    emoedge_core::emotion::argmax(z).unwrap_or(0) as u8
}

/// Largest absolute difference between two logit vectors, in LSB.
fn lsb(a: &[i8], b: &[i8]) -> u32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as i32 - *y as i32).unsigned_abs())
        .max()
        .unwrap_or(0)
}

/// Runs every check; `progress` makes the bar for each stage (decode, float, int8).
pub fn verify(o: &Options, progress: &dyn Fn(&'static str, u64) -> ProgressBar) -> Result<Report> {
    let mut failures = Vec::new();

    // 1. The artifacts themselves.
    let dir = ModelDir::new(&o.model);
    let blob_file = dir.read_blob()?;
    let blob = blob_file.bytes();
    let hashes = artifact_hashes(&o.model)?;
    failures.extend(hashes.failures());
    if let Some(dev) = &o.device_blob {
        let read_back =
            std::fs::read(dev).map_err(|e| anyhow::anyhow!("reading {}: {e}", dev.display()))?;
        if let Some(diff) = compare_blobs(blob, &read_back) {
            failures.push(format!(
                "device blob {} differs from {}: {diff}",
                dev.display(),
                blob_file.path().display()
            ));
        }
    }
    let device_blob_identical = o
        .device_blob
        .as_ref()
        .map(|_| !failures.iter().any(|f| f.starts_with("device blob")));

    // 2. Every form over the data.
    let model = blob_file.model()?;
    let classes = model.labels();
    failures.extend(artifacts::label_failures(&o.model, classes)?);
    let (ds, skipped) = load_for_model(&o.data, o.split, classes, &progress("decode", 0))?;
    if ds.is_empty() {
        bail!("{} holds no readable images", o.data.display());
    }
    let float_pred = if dir.has_float() {
        Some(float_labels(
            &o.model,
            &ds,
            &progress("float", ds.len() as u64),
        )?)
    } else {
        None
    };
    let tract = TractModel::load(
        &dir.onnx(),
        model.body().output_scale,
        model.output_zero_point(),
        classes.len(),
    )?;
    let pb = progress("int8", ds.len() as u64);
    let logits: Vec<(Vec<i8>, Vec<i8>)> = (0..ds.len())
        .into_par_iter()
        .map_init(
            || vec![0i8; model.arena_len()],
            |arena, i| -> Result<_> {
                let t = tract.logits(ds.image(i))?;
                let e = engine_logits(&model, arena, ds.image(i))?;
                pb.inc(1);
                Ok((t, e))
            },
        )
        .collect::<Result<_>>()?;
    pb.finish_and_clear();
    let tract_pred: Vec<u8> = logits.iter().map(|(t, _)| argmax(t)).collect();
    let engine_pred: Vec<u8> = logits.iter().map(|(_, e)| argmax(e)).collect();
    let lsbs: Vec<u32> = logits.iter().map(|(t, e)| lsb(t, e)).collect();

    // 3. The figures.
    let form_report = |form, pred: &[u8]| {
        let c = Confusion::from_pairs(classes, &ds.labels, pred);
        FormReport {
            form,
            accuracy: c.accuracy(),
            recall: c
                .per_class()
                .into_iter()
                .map(|m| (m.class, m.recall))
                .collect(),
        }
    };
    let mut forms = Vec::new();
    if let Some(p) = &float_pred {
        forms.push(form_report(Form::Float, p));
    }
    forms.push(form_report(Form::Tract, &tract_pred));
    forms.push(form_report(Form::Engine, &engine_pred));
    let agree = |a: &[u8], b: &[u8]| {
        a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
    };
    let agreement_tract_engine = agree(&tract_pred, &engine_pred);
    let agreement_float_tract = float_pred.as_ref().map(|f| agree(f, &tract_pred));
    let max_lsb = lsbs.iter().copied().max().unwrap_or(0);
    let over = lsbs.iter().filter(|&&d| d > o.max_lsb).count();
    let disagreements: Vec<Disagreement> = (0..ds.len())
        .filter(|&i| {
            tract_pred[i] != engine_pred[i]
                || lsbs[i] > o.max_lsb
                || float_pred.as_ref().is_some_and(|f| f[i] != tract_pred[i])
        })
        .map(|i| Disagreement {
            path: ds.paths[i].clone(),
            truth: name_of(classes, ds.labels[i] as usize).into(),
            float: float_pred
                .as_ref()
                .map(|f| name_of(classes, f[i] as usize).into()),
            tract: name_of(classes, tract_pred[i] as usize).into(),
            engine: name_of(classes, engine_pred[i] as usize).into(),
            max_lsb: lsbs[i],
        })
        .collect();

    // 4. The MCU firmware in QEMU, on a sample.
    let mcu_equal = match &o.mcu {
        Some(m) => {
            let (equal, run) = mcu_agreement(m, blob, &model, &ds)?;
            if equal != run {
                failures.push(format!(
                    "the MCU firmware's logits differ from the engine's on {} images",
                    run - equal
                ));
            }
            Some((equal, run))
        }
        None => None,
    };

    // 5. The bounds.
    let mut report = Report {
        model: o.model.clone(),
        data: o.data.clone(),
        images: ds.len(),
        skipped: skipped.len(),
        weights_sha256: hashes.recorded(),
        weights_summary: hashes.summary(),
        device_blob_identical,
        crop_contract: emoedge_core::preprocess::CropContract::FER2013.to_string(),
        forms,
        agreement_tract_engine,
        agreement_float_tract,
        max_lsb_tract_engine: max_lsb,
        logits_off_by_more_than_tolerance: over,
        mcu_equal,
        disagreements,
        failures,
        skipped_files: skipped,
    };
    report.failures.extend(bounds_broken(&report, o));
    Ok(report)
}

/// Labels of the float network of the folder.
fn float_labels(dir: &std::path::Path, ds: &Dataset, pb: &ProgressBar) -> Result<Vec<u8>> {
    let device = crate::sys::backend::device();
    let (_, fm) = load_run(dir, &device)?;
    let z = predict(&fm, ds, &device, &|n| pb.inc(n as u64));
    pb.finish_and_clear();
    Ok(z.iter()
        .map(|z| emoedge_core::emotion::argmax(z).unwrap_or(0) as u8)
        .collect())
}

/// Runs the board's firmware in its emulator on a sample of `ds`; returns on how many images its logits
/// equal the engine's, and how many it ran.
fn mcu_agreement(m: &McuCheck, blob: &[u8], model: &Model, ds: &Dataset) -> Result<(usize, usize)> {
    let sample = ds.subsample(m.images);
    let (_, got) = crate::mcu::run_frames(m.board, &m.firmware, blob, &sample)?;
    let mut arena = vec![0i8; model.arena_len()];
    let mut equal = 0;
    for (i, g) in got.iter().enumerate() {
        equal += (*g == engine_logits(model, &mut arena, sample.image(i))?) as usize;
    }
    Ok((equal, got.len()))
}

/// The accuracy and agreement bounds `r` breaks.
fn bounds_broken(r: &Report, o: &Options) -> Vec<String> {
    let mut failures = Vec::new();
    if let Some(fa) = r.accuracy(Form::Float) {
        for f in [Form::Tract, Form::Engine] {
            let drop = (fa - r.accuracy(f).unwrap_or(0.0)) * 100.0;
            if drop > o.max_drop_pp {
                failures.push(format!(
                    "{f:?} accuracy is {drop:.2} pp below float (max {} pp)",
                    o.max_drop_pp
                ));
            }
        }
    }
    if r.agreement_tract_engine < o.min_agree {
        failures.push(format!(
            "tract/engine label agreement {:.4}% is below {:.4}%",
            r.agreement_tract_engine * 100.0,
            o.min_agree * 100.0
        ));
    }
    if r.max_lsb_tract_engine > o.max_lsb {
        failures.push(format!(
            "a logit differs by {} LSB between tract and the engine (max {})",
            r.max_lsb_tract_engine, o.max_lsb
        ));
    }
    failures
}

//! `emoedge eval`: accuracy, per-class figures and the confusion matrix of a model.

use super::{Outcome, progress};
use crate::data::Dataset;
use crate::data::load_split;
use crate::inference::{TractModel, engine_logits, parse_blob};
use crate::metrics::{ClassMetrics, Confusion};
use crate::training::{load_run, predict};
use anyhow::{Context, Result};
use emoedge_core::NUM_CLASSES;
use emoedge_core::model_files;
use emoedge_core::preprocess::{INPUT_LEN, mirror, sum_logits};
use serde::Serialize;
use std::path::Path;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A training run folder (float) or a model folder written by `quantize`.
    #[arg(long)]
    model: PathBuf,
    /// Which form to run [default: float for a run folder, tract for a model folder]
    #[arg(long, value_enum)]
    form: Option<Form>,
    /// Folder of <class>/*.png [default: $EMOEDGE_DATA/fer2013/test]
    #[arg(long)]
    data: Option<PathBuf>,
    /// Write the full report as JSON here (atomically).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the confusion matrix here [default: confusion.png beside --json, else none]
    #[arg(long)]
    confusion: Option<PathBuf>,
    /// Test-time flip averaging: sum each face's logits with its mirror image's (twice the
    /// inference per face).
    #[arg(long)]
    flip: bool,
}

/// A form of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// The Burn float model.
    Float,
    /// The int8 ONNX in tract.
    Tract,
    /// The blob in the `shared/` engine.
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

#[derive(Serialize)]
struct Report {
    model: PathBuf,
    data: PathBuf,
    form: Form,
    flip: bool,
    images: usize,
    skipped: usize,
    accuracy: f64,
    per_class: Vec<ClassMetrics>,
    confusion: Confusion,
}

pub fn run(a: Args) -> Result<Outcome> {
    let data = match a.data {
        Some(d) => d,
        None => emoedge_core::paths::data_subdir("fer2013")?.join("test"),
    };
    let is_model_folder = a.model.join(model_files::ONNX).exists();
    let form = a.form.unwrap_or(if is_model_folder {
        Form::Tract
    } else {
        Form::Float
    });
    let (ds, skipped) = load_split(&data, &progress::bar("decode", 0))?;
    let pb = progress::bar("eval", ds.len() as u64);
    let pred = predict_form(&a.model, form, a.flip, &ds, &|n| pb.inc(n as u64))?;
    pb.finish_and_clear();
    let confusion = Confusion::from_pairs(&ds.labels, &pred);
    print!("{}", confusion.to_table());
    let picture = a
        .confusion
        .clone()
        .or_else(|| a.json.as_ref().map(|j| j.with_file_name("confusion.png")));
    if let Some(png) = &picture {
        let title = format!(
            "{} ({}{}), accuracy {:.2}%",
            a.model.display(),
            form.name(),
            if a.flip { ", flip-averaged" } else { "" },
            confusion.accuracy() * 100.0
        );
        crate::plots::confusion(&confusion, &title, png)?;
        eprintln!("confusion matrix drawn to {}", png.display());
    }
    if let Some(path) = &a.json {
        let report = Report {
            model: a.model.clone(),
            data: data.clone(),
            form,
            flip: a.flip,
            images: ds.len(),
            skipped: skipped.len(),
            accuracy: confusion.accuracy(),
            per_class: confusion.per_class(),
            confusion: confusion.clone(),
        };
        crate::atomic::write_ctx(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(super::report_skipped(&skipped))
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
    let mirrored = |i: usize| {
        let mut m = *ds.image(i);
        mirror(&mut m);
        m
    };
    match form {
        Form::Float => {
            let device = crate::backend::device();
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
        Form::Engine | Form::Tract => {
            let blob_path = dir.join(model_files::BLOB);
            let bytes = std::fs::read(&blob_path)
                .with_context(|| format!("reading {}", blob_path.display()))?;
            let model = parse_blob(&bytes, &blob_path)?;
            let tract = match form {
                Form::Tract => Some(TractModel::load(
                    &dir.join(model_files::ONNX),
                    model.body().output_scale,
                    model.output_zero_point(),
                )?),
                _ => None,
            };
            let mut arena = vec![0i8; model.arena_len()];
            let mut logits = |face: &[u8; INPUT_LEN]| match &tract {
                Some(t) => t.logits(face),
                None => engine_logits(&model, &mut arena, face),
            };
            (0..ds.len())
                .map(|i| {
                    tick(1);
                    let z = logits(ds.image(i))?;
                    let zm = if flip {
                        logits(&mirrored(i))?
                    } else {
                        [0; NUM_CLASSES]
                    };
                    Ok(argmax(&sum_logits(&z, &zm)))
                })
                .collect()
        }
    }
}

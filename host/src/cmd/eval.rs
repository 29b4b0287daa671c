//! `emoedge eval`: accuracy, per-class figures and the confusion matrix of a model.

use super::{Outcome, progress};
use anyhow::Result;
use emoedge::data::{Split, load_for_model};
use emoedge::eval::{Form, predict_form};
use emoedge::report::metrics::{ClassMetrics, Confusion};
use emoedge_runtime::ModelDir;
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A training run folder (float) or a model folder written by `quantize`.
    #[arg(long)]
    model: PathBuf,
    /// Which form to run [default: float for a run folder, tract for a model folder]
    #[arg(long, value_enum)]
    form: Option<Form>,
    /// A split's folder of <class>/<image> (any FER2013 folder naming, any image size), or
    /// FER2013's fer2013.csv with --split [default: $EMOEDGE_DATA/fer2013/test]
    #[arg(long)]
    data: Option<PathBuf>,
    /// With --data fer2013.csv: which rows (its Usage column) to evaluate.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    split: Split,
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
        None => emoedge_runtime::paths::data_subdir("fer2013")?.join("test"),
    };
    let is_model_folder = ModelDir::new(&a.model).has_int8();
    let form = a.form.unwrap_or(if is_model_folder {
        Form::Tract
    } else {
        Form::Float
    });
    let classes = emoedge::eval::model_labels(&a.model)?;
    let (ds, skipped) = load_for_model(&data, a.split, &classes, &progress::bar("decode", 0))?;
    let pb = progress::bar("eval", ds.len() as u64);
    let pred = predict_form(&a.model, form, a.flip, &ds, &|n| pb.inc(n as u64))?;
    pb.finish_and_clear();
    let confusion = Confusion::from_pairs(&classes, &ds.labels, &pred);
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
        emoedge::report::plots::confusion(&confusion, &title, png)?;
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
        emoedge::sys::atomic::write_ctx(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(super::report_skipped(&skipped))
}

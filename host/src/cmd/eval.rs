//! `emoedge eval`: accuracy, per-class figures and the confusion matrix of a model.

use super::{Outcome, progress};
use crate::data::load_split;
use crate::metrics::{ClassMetrics, Confusion};
use crate::training::{load_run, predict};
use anyhow::Result;
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A training run folder (config.json + model.bpk).
    #[arg(long)]
    model: PathBuf,
    /// Folder of <class>/*.png [default: $EMOEDGE_DATA/fer2013/test]
    #[arg(long)]
    data: Option<PathBuf>,
    /// Write the full report as JSON here (atomically).
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report {
    model: PathBuf,
    data: PathBuf,
    form: &'static str,
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
    let device = crate::backend::device();
    let (_, model) = load_run(&a.model, &device)?;
    let (ds, skipped) = load_split(&data, &progress::bar("decode", 0))?;
    let pb = progress::bar("eval", ds.len() as u64);
    let logits = predict(&model, &ds, &device, |n| pb.inc(n as u64));
    pb.finish_and_clear();
    let pred: Vec<u8> = logits.iter().map(|z| emoedge_core::emotion::argmax(z).unwrap_or(0) as u8).collect();
    let confusion = Confusion::from_pairs(&ds.labels, &pred);
    print!("{}", confusion.to_table());
    if let Some(path) = &a.json {
        let report = Report {
            model: a.model.clone(),
            data: data.clone(),
            form: "float",
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

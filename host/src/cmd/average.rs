//! `emoedge average`: the mean of a run's weights over a range of epochs (SWA), with its
//! BatchNorm statistics re-estimated, written as a model folder that `eval`, `quantize`,
//! `verify` and `train --teacher` take like any run.

use super::{Outcome, progress};
use anyhow::{Context, Result, bail};
use burn::module::Module;
use emoedge::data::load_split;
use emoedge::json::{read_json, write_json};
use emoedge::model::ModelConfig;
use emoedge::train::average::{average_files, recalibrate_batchnorm};
use emoedge::train::config::read_train_config;
use emoedge::train::predict::evaluate_loss;
use emoedge::train::run_dir::{RunDir, RunState, save_module};
use emoedge_runtime::model_dir;
use serde::Serialize;
use std::ops::RangeInclusive;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run folder (with --epochs: its ckpt/ holds the epochs' weights), or any model
    /// folder (config.json, train.json, model.bpk) whose BatchNorm statistics to redo.
    run: PathBuf,
    /// Epochs to average, FIRST-LAST (inclusive), e.g. 56-70 [default: the folder's
    /// model.bpk alone, only re-estimating its BatchNorm statistics]
    #[arg(long, value_parser = parse_epochs)]
    epochs: Option<RangeInclusive<usize>>,
    /// Model folder to write (config.json, train.json, model.bpk, average.json, and the
    /// run's metrics.csv and curves.png); it must not hold a model yet.
    #[arg(long)]
    out: PathBuf,
    /// Training batches for the BatchNorm statistics [default: one pass over train/].
    #[arg(long)]
    bn_batches: Option<usize>,
    /// Take the BatchNorm statistics on the training images as they are, without the run's
    /// augmentation and mixup.
    #[arg(long)]
    bn_plain: bool,
    /// Dataset folder holding train/ and test/ [default: $EMOEDGE_DATA/fer2013]
    #[arg(long)]
    data: Option<PathBuf>,
}

/// `FIRST-LAST` or a single epoch, 1-based, `FIRST <= LAST`.
fn parse_epochs(s: &str) -> Result<RangeInclusive<usize>, String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let num = |t: &str| {
        t.trim()
            .parse::<usize>()
            .map_err(|_| format!("`{s}` is not FIRST-LAST (e.g. 56-70)"))
    };
    let (a, b) = (num(a)?, num(b)?);
    if a == 0 || a > b {
        return Err(format!(
            "`{s}`: epochs count from 1 and FIRST must not exceed LAST"
        ));
    }
    Ok(a..=b)
}

/// What `average.json` records: where the weights came from and what they scored.
#[derive(Serialize)]
struct Record {
    run: PathBuf,
    /// The averaged epochs; absent when the folder's `model.bpk` was taken alone.
    first_epoch: Option<usize>,
    last_epoch: Option<usize>,
    /// SHA-256 of each weights file taken, in epoch order.
    checkpoints_sha256: Vec<String>,
    bn_batches: usize,
    /// BatchNorm statistics taken without augmentation (`--bn-plain`).
    bn_plain: bool,
    test_accuracy: f64,
    test_loss: f64,
    /// The same weights' `test` accuracy before: the run's own figure for the last
    /// averaged epoch, or the folder's model.bpk with its training statistics.
    before_test_accuracy: Option<f64>,
}

pub fn run(a: Args) -> Result<Outcome> {
    let src = RunDir(a.run.clone());
    let out = RunDir(a.out.clone());
    if out.weights().exists() {
        bail!(
            "{} already holds a model: choose another --out",
            a.out.display()
        );
    }
    let config: ModelConfig = read_json(&src.config())?;
    let cfg = read_train_config(&src.train())?;
    let (files, state): (Vec<PathBuf>, Option<RunState>) = match &a.epochs {
        Some(epochs) => {
            let state: RunState = read_json(&src.state())?;
            if *epochs.end() > state.epochs_done {
                bail!(
                    "{} has finished {} epochs; --epochs {}-{} reaches past them",
                    a.run.display(),
                    state.epochs_done,
                    epochs.start(),
                    epochs.end()
                );
            }
            (src.epoch_weights(epochs.clone()), Some(state))
        }
        None => (vec![src.weights()], None),
    };
    // Before the data: a missing checkpoint fails at once.
    let device = emoedge::backend::device();
    let ad = device.clone().autodiff();
    let (model, hashes) = average_files(&files, &config, &ad)?;
    let data = match a.data {
        Some(d) => d,
        None => emoedge_runtime::paths::data_subdir("fer2013")?,
    };
    let (train_set, mut skipped) =
        load_split(&data.join("train"), &progress::bar("decode train", 0))?;
    let (test_set, skipped_test) =
        load_split(&data.join("test"), &progress::bar("decode test", 0))?;
    skipped.extend(skipped_test);

    // What the same weights scored before: the run's own figure for the last averaged
    // epoch (its training statistics), or, for one folder's weights, measured here.
    let (what, before) = match (&a.epochs, &state) {
        (Some(epochs), Some(state)) => {
            let acc = state.history.iter().find(|m| m.epoch == *epochs.end());
            (
                format!("average of epochs {}-{}", epochs.start(), epochs.end()),
                acc.map(|m| m.test_acc),
            )
        }
        _ => (
            model_dir::WEIGHTS.to_string(),
            Some(evaluate_loss(&model.valid(), &test_set, &device).1),
        ),
    };
    let steps = train_set.len().div_ceil(cfg.batch_size);
    let want = a.bn_batches.unwrap_or(steps);
    eprintln!(
        "{what} of {}; BatchNorm statistics from {want} training batches{}",
        a.run.display(),
        if a.bn_plain { ", not augmented" } else { "" }
    );
    let (model, used) = recalibrate_batchnorm(model, &cfg, train_set, want, a.bn_plain);
    let model = model.valid();
    let (test_loss, test_acc) = evaluate_loss(&model, &test_set, &device);

    write_json(&out.config(), &config)?;
    write_json(&out.train(), &cfg)?;
    for name in ["metrics.csv", "curves.png"] {
        let from = a.run.join(name);
        if from.exists() {
            let bytes =
                std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
            emoedge::atomic::write_ctx(&a.out.join(name), &bytes)?;
        }
    }
    write_json(
        &a.out.join("average.json"),
        &Record {
            run: a.run.clone(),
            first_epoch: a.epochs.as_ref().map(|e| *e.start()),
            last_epoch: a.epochs.as_ref().map(|e| *e.end()),
            checkpoints_sha256: hashes,
            bn_batches: used,
            bn_plain: a.bn_plain,
            test_accuracy: test_acc,
            test_loss,
            before_test_accuracy: before,
        },
    )?;
    // The weights last: a folder with model.bpk is complete.
    save_module(&model, &out.weights())?;
    println!(
        "{what}: test {:.2}% (loss {test_loss:.4}), the same weights before: {}; weights: {}",
        test_acc * 100.0,
        before.map_or("not in metrics".into(), |v| format!("{:.2}%", v * 100.0)),
        out.weights().display()
    );
    Ok(super::report_skipped(&skipped))
}

#[cfg(test)]
mod tests {
    use super::parse_epochs;

    #[test]
    fn epoch_ranges_parse_and_bad_ones_say_why() {
        assert_eq!(parse_epochs("56-70"), Ok(56..=70));
        assert_eq!(parse_epochs("7"), Ok(7..=7));
        for bad in ["0-3", "9-3", "a-3", "3-", ""] {
            assert!(parse_epochs(bad).is_err(), "{bad}");
        }
    }
}

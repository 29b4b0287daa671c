//! `emoedge average`: the mean of a run's weights over a range of epochs (SWA), with its
//! BatchNorm statistics re-estimated, written as a model folder that `eval`, `quantize`,
//! `verify` and `train --teacher` take like any run.

use super::{Outcome, progress};
use anyhow::Result;
use emoedge::train::average::{AverageOptions, average_run};
use emoedge::train::run_dir::RunDir;
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
    /// With --bn-plain: the share of those images (0 to 1) drawn as the crops a device makes
    /// of them (as `train --camera-crops` draws them), the rest as they are: statistics
    /// for the inputs the camera pipeline feeds the model.
    #[arg(
        long,
        value_name = "SHARE",
        default_value_t = 0.0,
        requires = "bn_plain"
    )]
    bn_camera: f32,
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

pub fn run(a: Args) -> Result<Outcome> {
    if !(0.0..=1.0).contains(&a.bn_camera) {
        anyhow::bail!("--bn-camera {}: a share, 0 to 1", a.bn_camera);
    }
    let data = match a.data {
        Some(d) => d,
        None => emoedge_runtime::paths::data_subdir("fer2013")?,
    };
    let options = AverageOptions {
        run: a.run,
        epochs: a.epochs,
        out: a.out,
        bn_batches: a.bn_batches,
        bn_plain: a.bn_plain,
        bn_camera: a.bn_camera,
        data,
    };
    let done = average_run(&options, &|what| progress::bar(what, 0), &|n| {
        eprintln!("{n}")
    })?;
    let r = &done.record;
    println!(
        "{}: test {:.2}% (loss {:.4}), the same weights before: {}; weights: {}",
        done.what,
        r.test_accuracy * 100.0,
        r.test_loss,
        r.before_test_accuracy
            .map_or("not in metrics".into(), |v| format!("{:.2}%", v * 100.0)),
        RunDir(options.out).weights().display()
    );
    Ok(super::report_skipped(&done.skipped))
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

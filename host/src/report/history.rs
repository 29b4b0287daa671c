//! A run's history: one row of figures per epoch, kept as `metrics.csv`.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One epoch's figures (a row of `metrics.csv`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (augmented inputs, dropout on).
    pub train_acc: f64,
    /// Mean loss on the evaluation split.
    pub test_loss: f64,
    /// Accuracy on the evaluation split.
    pub test_acc: f64,
    /// Learning rate at the epoch's end.
    pub lr: f64,
    /// Wall time of the training part of the epoch.
    pub train_seconds: f64,
    /// Training images per second.
    pub images_per_s: f64,
    /// Wall time of the evaluation on the evaluation split after the training part (0 in
    /// runs recorded before it was kept).
    #[serde(default)]
    pub eval_seconds: f64,
}

/// Writes the rows as `metrics.csv`, atomically.
pub fn write_metrics_csv(path: &Path, rows: &[EpochMetrics]) -> Result<()> {
    let mut s = String::from(
        "epoch,train_loss,train_acc,test_loss,test_acc,lr,train_seconds,images_per_s,eval_seconds\n",
    );
    for m in rows {
        s += &format!(
            "{},{:.5},{:.5},{:.5},{:.5},{:.3e},{:.1},{:.1},{:.1}\n",
            m.epoch,
            m.train_loss,
            m.train_acc,
            m.test_loss,
            m.test_acc,
            m.lr,
            m.train_seconds,
            m.images_per_s,
            m.eval_seconds
        );
    }
    crate::sys::atomic::write_ctx(path, s.as_bytes())
}

/// Reads a run's `metrics.csv` back (to redraw `curves.png` for a shipped model folder).
pub fn read_metrics_csv(path: &Path) -> Result<Vec<EpochMetrics>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    r.deserialize()
        .enumerate()
        .map(|(i, row)| row.with_context(|| format!("{}, row {}", path.display(), i + 1)))
        .collect()
}

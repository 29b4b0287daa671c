//! Classification metrics: accuracy, per-class precision/recall/F1, confusion matrix.

use serde::Serialize;

/// Confusion matrix: `counts[truth][predicted]`, over a model's classes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// The class names, in label order.
    pub classes: Vec<String>,
    /// Counts, rows are the true class.
    pub counts: Vec<Vec<u64>>,
}

/// Per-class figures.
#[derive(Clone, Debug, Serialize)]
pub struct ClassMetrics {
    /// Class name.
    pub class: String,
    /// Images of this class.
    pub support: u64,
    /// Fraction of predictions of this class that are right.
    pub precision: f64,
    /// Fraction of this class's images predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
}

impl Confusion {
    /// Builds a matrix of `classes` from labels and predictions (indices into `classes`).
    pub fn from_pairs<S: AsRef<str>>(classes: &[S], truth: &[u8], pred: &[u8]) -> Self {
        let n = classes.len();
        let mut c = Self {
            classes: classes.iter().map(|s| s.as_ref().to_string()).collect(),
            counts: vec![vec![0; n]; n],
        };
        for (&t, &p) in truth.iter().zip(pred) {
            if let Some(cell) = c
                .counts
                .get_mut(t as usize)
                .and_then(|r| r.get_mut(p as usize))
            {
                *cell += 1;
            }
        }
        c
    }

    /// Total images.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Fraction right (0 for an empty matrix).
    pub fn accuracy(&self) -> f64 {
        let right: u64 = (0..self.counts.len()).map(|i| self.counts[i][i]).sum();
        if self.total() == 0 {
            0.0
        } else {
            right as f64 / self.total() as f64
        }
    }

    /// Per-class precision, recall and F1.
    pub fn per_class(&self) -> Vec<ClassMetrics> {
        self.classes
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let tp = self.counts[i][i] as f64;
                let support: u64 = self.counts[i].iter().sum();
                let predicted: u64 = self.counts.iter().map(|row| row[i]).sum();
                let precision = if predicted == 0 {
                    0.0
                } else {
                    tp / predicted as f64
                };
                let recall = if support == 0 {
                    0.0
                } else {
                    tp / support as f64
                };
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassMetrics {
                    class: name.clone(),
                    support,
                    precision,
                    recall,
                    f1,
                }
            })
            .collect()
    }

    /// A text table of the matrix and per-class figures.
    pub fn to_table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = write!(s, "{:>10} |", "true\\pred");
        for name in &self.classes {
            let _ = write!(s, " {:>5}", &name[..5.min(name.len())]);
        }
        let _ = writeln!(s, " | {:>6} {:>6} {:>6} {:>5}", "prec", "recall", "f1", "n");
        for ((name, m), row) in self.classes.iter().zip(self.per_class()).zip(&self.counts) {
            let _ = write!(s, "{name:>10} |");
            for count in row {
                let _ = write!(s, " {count:>5}");
            }
            let _ = writeln!(
                s,
                " | {:>6.3} {:>6.3} {:>6.3} {:>5}",
                m.precision, m.recall, m.f1, m.support
            );
        }
        let _ = writeln!(
            s,
            "accuracy {:.4} ({} images)",
            self.accuracy(),
            self.total()
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_from_a_small_matrix() {
        let classes = emoedge_core::labels::EMOTIONS;
        let c = Confusion::from_pairs(&classes, &[0, 0, 1, 1, 3], &[0, 1, 1, 1, 0]);
        assert_eq!(c.total(), 5);
        assert!((c.accuracy() - 0.6).abs() < 1e-12);
        let m = c.per_class();
        assert!((m[0].precision - 0.5).abs() < 1e-12 && (m[0].recall - 0.5).abs() < 1e-12);
        assert!((m[1].precision - 2.0 / 3.0).abs() < 1e-12 && m[1].recall == 1.0);
        assert_eq!(m[3].recall, 0.0);
        assert_eq!(m[2].support, 0);
        assert!(c.to_table().contains("accuracy 0.6000"));
        assert_eq!(m[3].class, "happy");
        // A model's own classes name the rows.
        let own = Confusion::from_pairs(&["smile", "no_smile"], &[0, 1, 1], &[0, 1, 0]);
        assert_eq!(own.per_class()[1].class, "no_smile");
        assert!(
            own.to_table().contains("  no_smile |     1     1 |"),
            "{}",
            own.to_table()
        );
    }
}

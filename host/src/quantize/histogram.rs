//! The distribution of one non-negative activation tensor, and the clip points read from it.
//!
//! Batch extremes (min/max and its batch mean) depend on the handful of largest values in
//! the calibration sample, so the int8 step swings with the sample: one model lost 0.67 pp
//! with 2,000 images and 0.03 pp with 8,000 (`docs/experiments.md`). A
//! histogram over every value lets the clip point depend on the bulk of the distribution.

/// Counts of the values of a ReLU output over `(0, max]` in equal bins; exact zeros
/// (about half of a ReLU output) are counted apart because int8 represents them exactly
/// (zero point `-128`) whatever the clip point.
#[derive(Clone, Debug)]
pub struct Histogram {
    max: f32,
    zeros: u64,
    bins: Vec<u64>,
}

impl Histogram {
    /// An empty histogram of `bins` equal bins over `(0, max]`.
    pub fn new(max: f32, bins: usize) -> Self {
        Self {
            max: max.max(f32::MIN_POSITIVE),
            zeros: 0,
            bins: vec![0; bins.max(1)],
        }
    }

    fn width(&self) -> f64 {
        self.max as f64 / self.bins.len() as f64
    }

    /// Counts `values`; values above `max` (none, when `max` came from a first pass over
    /// the same images) go to the last bin, values at or below zero to the zeros.
    pub fn add(&mut self, values: &[f32]) {
        let n = self.bins.len();
        let per = n as f64 / self.max as f64;
        for &v in values {
            if v > 0.0 {
                let i = ((v as f64 * per) as usize).min(n - 1);
                self.bins[i] += 1;
            } else {
                self.zeros += 1;
            }
        }
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.zeros + self.bins.iter().sum::<u64>()
    }

    /// The upper edge of the bin holding the `p`-th fraction of all values (zeros
    /// included), so that at most `1 - p` of the values lie above it.
    pub fn percentile(&self, p: f64) -> f32 {
        let target = (p.clamp(0.0, 1.0) * self.count() as f64).ceil() as u64;
        let mut seen = self.zeros;
        if seen >= target {
            return self.width() as f32;
        }
        for (i, &c) in self.bins.iter().enumerate() {
            seen += c;
            if seen >= target {
                return ((i + 1) as f64 * self.width()) as f32;
            }
        }
        self.max
    }

    /// Expected squared error per value when the tensor is quantized to 256 steps over
    /// `[0, hi]`: values above `hi` are clipped (their distance to `hi`, at bin centres);
    /// values below it are rounded, `step² / 12` each; zeros are exact.
    pub fn clip_error(&self, hi: f64) -> f64 {
        let step = hi / 255.0;
        let w = self.width();
        let mut e = 0.0;
        for (i, &c) in self.bins.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let centre = (i as f64 + 0.5) * w;
            e += c as f64
                * if centre > hi {
                    (centre - hi).powi(2)
                } else {
                    step * step / 12.0
                };
        }
        e / self.count().max(1) as f64
    }

    /// The clip point among the bins' upper edges with the least [`Histogram::clip_error`]:
    /// a wider range costs every value resolution, a narrower one clips the largest.
    pub fn mse_clip(&self) -> f32 {
        let w = self.width();
        let best = (1..=self.bins.len())
            .map(|k| (k, self.clip_error(k as f64 * w)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(self.bins.len(), |(k, _)| k);
        (best as f64 * w) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(n: usize, max: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 + 0.5) / n as f32 * max).collect()
    }

    #[test]
    fn zeros_and_values_are_counted() {
        let mut h = Histogram::new(4.0, 4);
        h.add(&[0.0, -0.0, 0.5, 1.5, 3.99, 4.0, 7.0]);
        assert_eq!(h.zeros, 2);
        assert_eq!(h.bins, vec![1, 1, 0, 3]);
        assert_eq!(h.count(), 7);
    }

    #[test]
    fn percentile_counts_zeros_and_returns_bin_edges() {
        let mut h = Histogram::new(100.0, 100);
        h.add(&uniform(1000, 100.0));
        assert_eq!(h.percentile(0.5), 50.0);
        assert_eq!(h.percentile(1.0), 100.0);
        // Adding 1,000 zeros moves the median to the zeros (reported as the first edge).
        h.add(&[0.0; 1000]);
        assert_eq!(h.percentile(0.5), 1.0);
        assert_eq!(h.percentile(0.75), 50.0);
    }

    #[test]
    fn mse_clip_cuts_a_long_thin_tail_and_keeps_a_flat_range() {
        // A flat distribution: clipping any of it costs more than it saves.
        let mut flat = Histogram::new(1.0, 512);
        flat.add(&uniform(100_000, 1.0));
        assert!(flat.mse_clip() >= 0.97, "{}", flat.mse_clip());
        // Exponential quantiles (max ln(200,000) = 12.2): the thinnest of the tail is
        // clipped (where the tail's mass, 2·e^-hi, meets the rounding error, hi²/255²/12).
        let n = 100_000;
        let tail: Vec<f32> = (0..n)
            .map(|i| -((i as f64 + 0.5) / n as f64).ln() as f32)
            .collect();
        let mut h = Histogram::new(tail.iter().copied().fold(0.0, f32::max), 2048);
        h.add(&tail);
        let hi = h.mse_clip();
        assert!((9.5..=11.5).contains(&hi), "{hi}");
        assert!(h.clip_error(hi as f64) < h.clip_error(h.max as f64));
        // A lone value far out is honoured: its squared distance outweighs the resolution
        // lost by every other value (why MSE is not a percentile).
        let mut lone = Histogram::new(50.0, 2048);
        lone.add(&uniform(100_000, 1.0));
        lone.add(&[50.0]);
        assert!(lone.mse_clip() > 25.0, "{}", lone.mse_clip());
    }

    #[test]
    fn an_all_zero_tensor_gets_the_narrowest_range() {
        let mut h = Histogram::new(3.0, 8);
        h.add(&[0.0; 10]);
        assert_eq!(h.count(), 10);
        assert_eq!(h.percentile(0.999), 3.0 / 8.0);
        assert_eq!(h.mse_clip(), 3.0 / 8.0);
        assert_eq!(h.clip_error(3.0), 0.0);
    }
}

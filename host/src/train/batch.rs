//! Batches of one epoch: shuffled and augmented on a thread of their own, with each image's
//! soft target (label, FER+ votes, teacher probabilities, smoothing) and optional mixup.
//!
//! Every random choice is drawn from `(seed, epoch)`, so a resumed epoch sees the same
//! batches as it would have without the interruption.

use crate::data::Dataset;
use crate::train::augment::augment;
use crate::train::config::TrainConfig;
use burn::prelude::*;
use burn::tensor::TensorData;
use emoedge_core::preprocess::{INPUT_LEN, INPUT_SIDE};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// The seed of `epoch`'s random choices.
pub(crate) fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (epoch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// A batch ready for the device: pixels `[b, 48·48]`, labels and soft targets
/// `[b, classes]`.
pub(crate) struct Batch {
    pub(crate) pixels: Vec<f32>,
    pub(crate) labels: Vec<u8>,
    pub(crate) targets: Vec<f32>,
}

/// The training images and, optionally, per-image soft labels (FER+ vote shares; `None`
/// where an image has none) and teacher probabilities, aligned with the images.
pub struct TrainSet {
    /// The images.
    pub data: Dataset,
    /// Vote shares per image (one per class), when training on FER+ targets.
    pub soft: Option<Vec<Option<Vec<f32>>>>,
    /// Teacher probabilities per image (one per class), when distilling.
    pub teacher: Option<Vec<Vec<f32>>>,
}

impl From<Dataset> for TrainSet {
    fn from(data: Dataset) -> Self {
        TrainSet {
            data,
            soft: None,
            teacher: None,
        }
    }
}

/// Writes the soft target of one image:
/// `(1 - s) · ((1 - f - g) · onehot + f · votes + g · teacher) + s / classes`, with as
/// many classes as `out` has.
fn target_row(
    label: u8,
    votes: Option<&[f32]>,
    teacher: Option<&[f32]>,
    cfg: &TrainConfig,
    out: &mut [f32],
) {
    let s = cfg.label_smoothing;
    let f = if votes.is_some() { cfg.ferplus } else { 0.0 };
    let g = match (teacher, &cfg.distill) {
        (Some(_), Some(d)) => d.weight,
        _ => 0.0,
    };
    let classes = out.len() as f32;
    for (c, t) in out.iter_mut().enumerate() {
        let onehot = (c == label as usize) as u8 as f32;
        let v = votes.map_or(0.0, |p| p[c]);
        let p = teacher.map_or(0.0, |p| p[c]);
        *t = (1.0 - s) * ((1.0 - f - g) * onehot + f * v + g * p) + s / classes;
    }
}

/// Mixup within a batch (`pixels` `[n, 48·48]`, `targets` `[n, classes]`): row `k` becomes
/// `λ_k · row_k + (1 - λ_k) · row_{π(k)}` for a random permutation `π` and
/// `λ_k = max(λ, 1 - λ)`, `λ ~ Beta(alpha, alpha)`. The `max` keeps each image's own label
/// (what train accuracy counts) the larger part of its target. Draws only from `rng`, so
/// a resumed epoch mixes the same pairs.
fn mix_batch(pixels: &mut [f32], targets: &mut [f32], alpha: f32, rng: &mut ChaCha8Rng) {
    use rand_distr::{Beta, Distribution};
    let n = pixels.len() / INPUT_LEN;
    let classes = targets.len() / n.max(1);
    let Ok(beta) = Beta::new(alpha, alpha) else {
        return;
    };
    let mut partner: Vec<usize> = (0..n).collect();
    partner.shuffle(rng);
    let (src_px, src_t) = (pixels.to_vec(), targets.to_vec());
    for (k, &j) in partner.iter().enumerate() {
        let l: f32 = beta.sample(rng);
        let l = l.max(1.0 - l);
        let mix = |dst: &mut [f32], src: &[f32], len: usize| {
            let (a, b) = (&src[k * len..(k + 1) * len], &src[j * len..(j + 1) * len]);
            for ((d, &x), &y) in dst[k * len..(k + 1) * len].iter_mut().zip(a).zip(b) {
                *d = l * x + (1.0 - l) * y;
            }
        };
        mix(pixels, &src_px, INPUT_LEN);
        mix(targets, &src_t, classes);
    }
}

/// Spawns the thread that shuffles and augments one epoch's batches, a few ahead of the
/// training step, so the step never waits on augmentation.
pub(crate) fn batch_producer(
    set: Arc<TrainSet>,
    cfg: &TrainConfig,
    epoch: usize,
) -> std::sync::mpsc::Receiver<Batch> {
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    let cfg = cfg.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(epoch_seed(cfg.seed, epoch));
    std::thread::spawn(move || {
        let data = &set.data;
        let classes = data.classes.len();
        let mut order: Vec<usize> = (0..data.len()).collect();
        order.shuffle(&mut rng);
        for chunk in order.chunks(cfg.batch_size) {
            let mut pixels = vec![0f32; chunk.len() * INPUT_LEN];
            let mut labels = Vec::with_capacity(chunk.len());
            let mut targets = vec![0f32; chunk.len() * classes];
            for (k, &i) in chunk.iter().enumerate() {
                let out = &mut pixels[k * INPUT_LEN..(k + 1) * INPUT_LEN];
                augment(data.image(i), &cfg.augment, &mut rng, out);
                labels.push(data.labels[i]);
                let votes = set.soft.as_ref().and_then(|s| s[i].as_deref());
                let teacher = set.teacher.as_ref().map(|t| t[i].as_slice());
                let row = &mut targets[k * classes..(k + 1) * classes];
                target_row(data.labels[i], votes, teacher, &cfg, row);
            }
            if cfg.mixup > 0.0 {
                mix_batch(&mut pixels, &mut targets, cfg.mixup, &mut rng);
            }
            if tx
                .send(Batch {
                    pixels,
                    labels,
                    targets,
                })
                .is_err()
            {
                return;
            }
        }
    });
    rx
}

pub(crate) fn images_tensor(pixels: Vec<f32>, n: usize, device: &Device) -> Tensor<4> {
    Tensor::from_data(
        TensorData::new(pixels, [n, 1, INPUT_SIDE, INPUT_SIDE]),
        device,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Arch, ModelConfig};
    use crate::train::augment::AugmentConfig;
    use crate::train::config::Distill;

    const NUM_CLASSES: usize = 7;

    fn row(cfg: &TrainConfig, votes: Option<&[f32; 7]>, teacher: Option<&[f32; 7]>) -> [f32; 7] {
        let mut out = [0f32; 7];
        target_row(
            2,
            votes.map(|v| &v[..]),
            teacher.map(|t| &t[..]),
            cfg,
            &mut out,
        );
        out
    }

    #[test]
    fn mixup_blends_pairs_and_keeps_each_own_label_ahead() {
        let n = 16;
        // Image k is a constant k + 1, and its target one-hot on class k % 7.
        let mut px: Vec<f32> = (0..n)
            .flat_map(|k| std::iter::repeat_n((k + 1) as f32, INPUT_LEN))
            .collect();
        let mut t = vec![0f32; n * NUM_CLASSES];
        for k in 0..n {
            t[k * NUM_CLASSES + k % NUM_CLASSES] = 1.0;
        }
        let (px0, t0) = (px.clone(), t.clone());
        mix_batch(&mut px, &mut t, 0.4, &mut ChaCha8Rng::seed_from_u64(7));
        let mut mixed = 0;
        for k in 0..n {
            let row = &t[k * NUM_CLASSES..(k + 1) * NUM_CLASSES];
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
            let own = row[k % NUM_CLASSES];
            assert!(own >= 0.5 - 1e-6, "image {k}: own share {own}");
            // The pixels carry the same share: v = own·(k+1) + (1-own)·(j+1) for one j.
            let v = px[k * INPUT_LEN];
            assert!(
                px[k * INPUT_LEN..(k + 1) * INPUT_LEN]
                    .iter()
                    .all(|&x| x == v)
            );
            if own < 1.0 - 1e-6 {
                mixed += 1;
            }
            if own < 0.99 {
                // (far enough from 1 for the partner to be solved for in f32)
                let j1 = (v - own * (k + 1) as f32) / (1.0 - own);
                let j = j1.round() as usize - 1;
                assert!(
                    (j1 - (j + 1) as f32).abs() < 1e-2,
                    "image {k}: partner {j1}"
                );
                assert!((row[j % NUM_CLASSES] - (1.0 - own)).abs() < 1e-5 || j % 7 == k % 7);
            }
        }
        assert!(mixed >= n / 2, "only {mixed} of {n} images were mixed");
        // Same seed, same mix (exact resume); another seed, another.
        let (mut px2, mut t2) = (px0.clone(), t0.clone());
        mix_batch(&mut px2, &mut t2, 0.4, &mut ChaCha8Rng::seed_from_u64(7));
        assert_eq!((&px2, &t2), (&px, &t));
        let (mut px3, mut t3) = (px0, t0);
        mix_batch(&mut px3, &mut t3, 0.4, &mut ChaCha8Rng::seed_from_u64(8));
        assert_ne!(t3, t);
    }

    #[test]
    fn targets_mix_label_votes_and_teacher() {
        let base = TrainConfig::new(ModelConfig::for_arch(Arch::Edge), AugmentConfig::NONE)
            .with_label_smoothing(0.0);
        let votes = [0.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.0];
        let teacher = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(row(&base, None, None), [0., 0., 1., 0., 0., 0., 0.]);
        // Teacher targets without a configured share are ignored, and vice versa.
        assert_eq!(
            row(&base, None, Some(&teacher)),
            [0., 0., 1., 0., 0., 0., 0.]
        );
        let d = base.clone().with_distill(Some(Distill {
            teachers: vec![],
            weight: 0.25,
            teacher_sha256: vec![],
        }));
        assert_eq!(
            row(&d, None, Some(&teacher)),
            [0., 0., 0.75, 0., 0., 0., 0.25]
        );
        assert_eq!(row(&d, None, None), [0., 0., 1., 0., 0., 0., 0.]);
        let both = d.with_ferplus(0.5).with_label_smoothing(0.1);
        let r = row(&both, Some(&votes), Some(&teacher));
        let want = [0.0, 0.0, 0.5, 0.25, 0.0, 0.0, 0.25].map(|t| 0.9 * t + 0.1 / 7.0);
        for (a, b) in r.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{r:?} vs {want:?}");
        }
        assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
}
